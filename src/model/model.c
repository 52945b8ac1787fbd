#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "nn/nn.h"
#include "model/model.h"
#include "nn/optim.h"

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

/* Training batches are cut into shards of rows that run in parallel, each with its own
 * scratch and gradient, summed in shard order: products of a small network split into
 * panels gain little from a second thread, a shard on each thread nearly twice as much.
 * The shards depend on B alone, so results do not depend on the thread count. */
#define SHARD_MIN 64  /* rows of a shard (smaller ones lose more in their products than a thread gains) */
#define SHARDS 2

static int n_shards(int B) { return B >= SHARDS * SHARD_MIN ? SHARDS : 1; }
static int shard_rows(int B, int s) { const int S = n_shards(B); return B / S + (s < B % S); }

static size_t shard_work(const model_layout *M, int B) {
    return model_fwd_work(M, B) + flow_bwd_work(&M->L, B) + (size_t)B * M->L.nc +
           feat_bwd_work(&M->F, B) + (size_t)B;
}

size_t model_grad_work(const model_layout *M, int B) {
    const int S = n_shards(B);
    size_t w = (size_t)(S - 1) * M->n_params;  /* the gradients of shards 1.. */
    for (int s = 0; s < S; s++) w += shard_work(M, shard_rows(B, s));
    return w;
}

void model_mask(const model_layout *M, double *v) { flow_mask(&M->L, v + M->F.n_params, 1); }

model_eval model_eval_prepare(const model_layout *M, const double *params, int B, double *work,
                              const nn_ctx *cx) {
    model_eval E = {work, work + feat_fwd_work(&M->F, B)};
    flow_sample_prepare(&M->L, params + M->F.n_params, E.flow, cx);
    return E;
}

void model_log_prob(const model_layout *M, const double *params, const model_eval *E,
                    const double *x, int x_rows, const double *theta, int B, double tau,
                    double *logq, const nn_ctx *cx) {
    const double *ctx = feat_forward(&M->F, params, x, x_rows, E->feat, cx);
    flow_log_prob(&M->L, theta, ctx, x_rows, B, tau, logq, E->flow, cx);
}

/* one shard: its summed negative log-density; adds the gradient of that sum / norm */
static double shard_nll_grad(const model_layout *M, const double *params, const double *x,
                             const double *theta, int B, double norm, double *grad,
                             double *work, const nn_ctx *cx) {
    const size_t nf = feat_fwd_work(&M->F, B), nl = flow_fwd_work(&M->L, B);
    double *fw = work, *lw = fw + nf, *bw = lw + nl, *dctx = bw + flow_bwd_work(&M->L, B);
    double *fbw = dctx + (size_t)B * M->L.nc, *g = fbw + feat_bwd_work(&M->F, B);
    const double *ctx = feat_forward(&M->F, params, x, B, fw, cx);
    double *logq = g;  /* logq, then overwritten by dLoss/dlogq */
    flow_forward(&M->L, params + M->F.n_params, theta, ctx, B, B, 1.0, logq, lw, cx);
    double loss = 0.0;
    for (int i = 0; i < B; i++) loss -= logq[i];
    for (int i = 0; i < B; i++) g[i] = -1.0 / norm;
    flow_backward(&M->L, params + M->F.n_params, ctx, B, g, grad + M->F.n_params,
                  M->F.type == FEAT_IDENTITY ? NULL : dctx, NULL, lw, bw, cx);
    feat_backward(&M->F, params, x, B, dctx, grad, fw, fbw, cx);
    return loss;
}

double model_nll_grad(const model_layout *M, const double *params, const double *x,
                      const double *theta, int B, double *grad, double *work, const nn_ctx *cx) {
    const int threads = cx->threads;
    const int S = n_shards(B);
    if (S == 1) return shard_nll_grad(M, params, x, theta, B, B, grad, work, cx) / B;
    const size_t np = M->n_params;
    double loss[SHARDS], *gs[SHARDS], *ws[SHARDS];
    int r0[SHARDS];
    double *w = work + (S - 1) * np;
    for (int s = 0, r = 0; s < S; s++) {
        gs[s] = s == 0 ? grad : work + (s - 1) * np;
        ws[s] = w;
        r0[s] = r;
        r += shard_rows(B, s);
        w += shard_work(M, shard_rows(B, s));
    }
    copy_fill(work, NULL, (S - 1) * np, threads);
    /* threads beyond the shards go to each shard's products: a nested team, which runs only
     * where the OpenMP runtime allows nesting (OMP_MAX_ACTIVE_LEVELS >= 2; the global
     * setting is the user's, not changed here); otherwise each shard's products run on its
     * own thread. The shards and their tiles depend on B alone: results do not change. */
    const int outer = threads < S ? threads : S;
    int inner = threads / outer;
#ifdef _OPENMP
    if (omp_get_max_active_levels() < 2) inner = 1;
#endif
    const nn_ctx scx = nn_ctx_threads(cx, inner);
    #pragma omp parallel for num_threads(outer) schedule(static)
    for (int s = 0; s < S; s++)
        loss[s] = shard_nll_grad(M, params, x + (size_t)r0[s] * M->F.n_in,
                                 theta + (size_t)r0[s] * M->L.d, shard_rows(B, s), B, gs[s],
                                 ws[s], &scx);
    double total = 0.0;
    for (int s = 0; s < S; s++) total += loss[s];
    #pragma omp parallel for num_threads(threads) if (np > 16384) schedule(static)
    for (size_t i = 0; i < np; i++)
        for (int s = 1; s < S; s++) grad[i] += gs[s][i];
    return total / B;
}
