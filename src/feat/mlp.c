#include <math.h>
#include <string.h>
#include "nn/nn.h"
#include "feat/feat.h"
#include "rng.h"

/* width of layer l's output: hidden[l] for l < n_hidden, n_out for the last */
static int width(const feat_layout *F, int l) {
    return l < F->n_hidden ? F->hidden[l] : F->n_out;
}
static int width_in(const feat_layout *F, int l) { return l == 0 ? F->n_in : F->hidden[l - 1]; }

int feat_layout_init(feat_layout *F, int type, int n_in, int n_hidden, const int *hidden,
                     int n_out, int act) {
    memset(F, 0, sizeof(*F));
    if (n_in < 1) return 1;
    F->type = type; F->n_in = n_in; F->act = act;
    if (type == FEAT_IDENTITY) { F->n_out = n_in; return 0; }
    if (type != FEAT_MLP) return 2;
    if (n_hidden < 0 || n_hidden > FEAT_MAX_LAYERS) return 3;
    if (n_out < 1) return 4;
    if (act < 0 || act > 2) return 5;
    F->n_hidden = n_hidden; F->n_out = n_out;
    for (int l = 0; l < n_hidden; l++) {
        if (hidden[l] < 1) return 3;
        F->hidden[l] = hidden[l];
    }
    for (int l = 0; l <= n_hidden; l++)
        F->n_params += (size_t)width(F, l) * width_in(F, l) + width(F, l);
    return 0;
}

static void mlp_init_params(const feat_layout *F, double *params, uint64_t seed) {
    rng_t r = rng_stream(seed, 1);
    double *q = params;
    for (int l = 0; l <= F->n_hidden; l++) {
        const int OC = width(F, l), C = width_in(F, l);
        const double s = 1.0 / sqrt((double)C);
        for (size_t i = 0; i < (size_t)OC * C; i++) q[i] = s * (2.0 * rng_unif(&r) - 1.0);
        q += (size_t)OC * C;
        for (int o = 0; o < OC; o++) q[o] = 0.0;
        q += OC;
    }
}

static size_t mlp_fwd_work(const feat_layout *F, int B) {
    size_t n = 0;
    for (int l = 0; l < F->n_hidden; l++) n += 2 * (size_t)B * F->hidden[l];
    return n + (size_t)B * F->n_out;
}

static size_t mlp_bwd_work(const feat_layout *F, int B) {
    int m = F->n_out;
    for (int l = 0; l < F->n_hidden; l++) if (F->hidden[l] > m) m = F->hidden[l];
    return 2 * (size_t)B * m;
}

/* work holds, per hidden layer, pre then post activations, then the output */
static const double *mlp_forward(const feat_layout *F, const double *params, const double *x,
                                 int B, double *work, const nn_ctx *cx) {
    const int threads = cx->threads;
    const double *in = x, *q = params;
    for (int l = 0; l <= F->n_hidden; l++) {
        const int OC = width(F, l), C = width_in(F, l);
        double *pre = work;
        linear_forward(cx, pre, in, q, q + (size_t)OC * C, B, C, OC);
        q += (size_t)OC * C + OC;
        if (l == F->n_hidden) return pre;
        double *post = pre + (size_t)B * OC;
        act_forward(post, pre, (size_t)B * OC, F->act, threads);
        in = post;
        work = post + (size_t)B * OC;
    }
    return NULL; /* not reached */
}

static void mlp_backward(const feat_layout *F, const double *params, const double *x, int B,
                         const double *dfeat, double *dparams, const double *fwd, double *work,
                         const nn_ctx *cx) {
    const int threads = cx->threads;
    size_t off_p[FEAT_MAX_LAYERS + 1], off_w[FEAT_MAX_LAYERS + 1], po = 0, wo = 0;
    for (int l = 0; l <= F->n_hidden; l++) {
        off_p[l] = po; off_w[l] = wo;
        po += (size_t)width(F, l) * width_in(F, l) + width(F, l);
        wo += 2 * (size_t)B * width(F, l);
    }
    double *g = work, *gin = work + mlp_bwd_work(F, B) / 2;
    memcpy(g, dfeat, (size_t)B * F->n_out * sizeof(double));
    for (int l = F->n_hidden; l >= 0; l--) {
        const int OC = width(F, l), C = width_in(F, l);
        const double *in = l == 0 ? x : fwd + off_w[l - 1] + (size_t)B * C;
        const double *w = params + off_p[l];
        double *dw = dparams + off_p[l];
        linear_backward(cx, l > 0 ? gin : NULL, dw, dw + (size_t)OC * C, g, in, w, B, C, OC);
        if (l > 0) {  /* through the activation of layer l-1 */
            const double *pre = fwd + off_w[l - 1], *post = pre + (size_t)B * C;
            act_backward(g, gin, pre, post, (size_t)B * C, F->act, threads);
        }
    }
}

const feat_ops feat_ops_mlp = {mlp_init_params, mlp_fwd_work, mlp_bwd_work, mlp_forward,
                               mlp_backward};

/* the identity: no parameters, no work, the input is the output */
static void id_init_params(const feat_layout *F, double *params, uint64_t seed) {
    (void)F; (void)params; (void)seed;
}
static size_t id_work(const feat_layout *F, int B) { (void)F; (void)B; return 0; }
static const double *id_forward(const feat_layout *F, const double *params, const double *x,
                                int B, double *work, const nn_ctx *cx) {
    (void)F; (void)params; (void)B; (void)work; (void)cx;
    return x;
}
static void id_backward(const feat_layout *F, const double *params, const double *x, int B,
                        const double *dfeat, double *dparams, const double *fwd, double *work,
                        const nn_ctx *cx) {
    (void)F; (void)params; (void)x; (void)B; (void)dfeat; (void)dparams; (void)fwd; (void)work;
    (void)cx;
}
const feat_ops feat_ops_identity = {id_init_params, id_work, id_work, id_forward, id_backward};

/* the dispatch: one table, indexed by F->type */
static const feat_ops *ops_of(const feat_layout *F) {
    static const feat_ops *const ops[] = {&feat_ops_identity, &feat_ops_mlp,
                                          &feat_ops_resnet_gru, &feat_ops_set_transformer,
                                          &feat_ops_timeseries};
    return ops[F->type];
}
void feat_init_params(const feat_layout *F, double *params, uint64_t seed) {
    ops_of(F)->init_params(F, params, seed);
}
size_t feat_fwd_work(const feat_layout *F, int B) { return ops_of(F)->fwd_work(F, B); }
size_t feat_bwd_work(const feat_layout *F, int B) { return ops_of(F)->bwd_work(F, B); }
const double *feat_forward(const feat_layout *F, const double *params, const double *x, int B,
                           double *work, const nn_ctx *cx) {
    return ops_of(F)->forward(F, params, x, B, work, cx);
}
void feat_backward(const feat_layout *F, const double *params, const double *x, int B,
                   const double *dfeat, double *dparams, const double *fwd, double *work,
                   const nn_ctx *cx) {
    ops_of(F)->backward(F, params, x, B, dfeat, dparams, fwd, work, cx);
}
