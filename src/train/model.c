#include <string.h>
#include "train/model.h"

int model_layout_link(model_layout *M) {
    if (M->L.nc != M->F.n_out) return 1;
    M->n_params = M->F.n_params + M->L.n_params;
    return 0;
}

size_t model_fwd_work(const model_layout *M, int B) {
    return feat_fwd_work(&M->F, B) + flow_fwd_work(&M->L, B);
}

size_t model_eval_work(const model_layout *M, int B, int threads) {
    return feat_fwd_work(&M->F, B) + flow_sample_work(&M->L, B, threads);
}

size_t model_grad_work(const model_layout *M, int B) {
    return model_fwd_work(M, B) + flow_bwd_work(&M->L, B) + (size_t)B * M->L.nc +
           feat_bwd_work(&M->F, B) + (size_t)B;
}

void model_mask(const model_layout *M, double *v) { flow_mask(&M->L, v + M->F.n_params); }

model_eval model_eval_prepare(const model_layout *M, const double *params, int B, double *work) {
    model_eval E = {work, work + feat_fwd_work(&M->F, B)};
    flow_sample_prepare(&M->L, params + M->F.n_params, E.flow);
    return E;
}

void model_log_prob(const model_layout *M, const double *params, const model_eval *E,
                    const double *x, int x_rows, const double *theta, int B, double tau,
                    double *logq, int threads) {
    const double *ctx = feat_forward(&M->F, params, x, x_rows, E->feat, threads);
    flow_log_prob(&M->L, theta, ctx, x_rows, B, tau, logq, E->flow, threads);
}

double model_nll_grad(const model_layout *M, const double *params, const double *x,
                      const double *theta, int B, double *grad, double *work, int threads) {
    const size_t nf = feat_fwd_work(&M->F, B), nl = flow_fwd_work(&M->L, B);
    double *fw = work, *lw = fw + nf, *bw = lw + nl, *dctx = bw + flow_bwd_work(&M->L, B);
    double *fbw = dctx + (size_t)B * M->L.nc, *g = fbw + feat_bwd_work(&M->F, B);
    const double *ctx = feat_forward(&M->F, params, x, B, fw, threads);
    double *logq = g;  /* logq, then overwritten by dLoss/dlogq */
    flow_forward(&M->L, params + M->F.n_params, theta, ctx, B, B, 1.0, logq, lw, threads);
    double loss = 0.0;
    for (int i = 0; i < B; i++) loss -= logq[i];
    for (int i = 0; i < B; i++) g[i] = -1.0 / B;
    flow_backward(&M->L, params + M->F.n_params, ctx, B, g, grad + M->F.n_params,
                  M->F.type == FEAT_IDENTITY ? NULL : dctx, NULL, lw, bw, threads);
    feat_backward(&M->F, params, x, B, dctx, grad, fw, fbw, threads);
    return loss / B;
}
