/* Set-transformer featurizer for sets of rows (token, values) (seed 003). A sample is R rows of
 * 1 + V doubles: the token (1..n_tokens; anything else, e.g. 0, marks a padding row) and V values.
 * Each row is embedded as E[token] + Wv values + bv, a learned class token is prepended
 * (S = R + 1 rows), `layers` pre-norm blocks follow,
 *   h += MHA(LN1 h) (padding keys masked),  h += W2 gelu(W1 LN2 h + b1) + b2,
 * and the class token's final layer norm goes through a linear map to n_out. Without positional
 * encodings and with masked keys skipped, the features do not depend on the order of the rows
 * nor on the number of padding rows. Padding rows are embedded as zeros (their values are never
 * read) and receive exactly zero gradient. */
#include <math.h>
#include <string.h>
#include "nn/nn.h"
#include "feat/feat.h"
#include "rng.h"

typedef struct {
    /* forward-cache offsets: LN1 out, mean, rstd; q|k|v; log-sum-exp; heads; h after attention;
     * LN2 out, mean, rstd; feed-forward pre and post GELU; h after the block */
    size_t a, m1, r1, qkv, lse, y, hm, n2, m2, r2, f, g, ho;
    /* parameter offsets */
    size_t g1, be1, wqkv, bqkv, wo, bo, g2, be2, w1, b1, w2, b2;
} rs_block;

typedef struct {
    rs_block blk[FEAT_MAX_LAYERS];
    int S, N;
    /* forward cache: key mask (ints), embedded sequence, class rows, final LN, features, scores */
    size_t keep, h0, hc, z, mf, rf, feat, scores, fwd_total;
    /* parameters: token embedding, value map, class token, final LN, output map */
    size_t E, wv, bv, cls, gf, bef, wout, bout, n_params;
} rs_plan;

static void plan_block(const feat_layout *F, int B, rs_block *k, size_t *f, size_t *p) {
    const size_t D = F->d_model, Hf = F->ff_hidden, N = (size_t)B * (F->set_rows + 1);
    k->a = *f; *f += N * D;
    k->m1 = *f; *f += N;
    k->r1 = *f; *f += N;
    k->qkv = *f; *f += 3 * N * D;
    k->lse = *f; *f += N * F->heads;
    k->y = *f; *f += N * D;
    k->hm = *f; *f += N * D;
    k->n2 = *f; *f += N * D;
    k->m2 = *f; *f += N;
    k->r2 = *f; *f += N;
    k->f = *f; *f += N * Hf;
    k->g = *f; *f += N * Hf;
    k->ho = *f; *f += N * D;
    k->g1 = *p; *p += D;
    k->be1 = *p; *p += D;
    k->wqkv = *p; *p += 3 * D * D;
    k->bqkv = *p; *p += 3 * D;
    k->wo = *p; *p += D * D;
    k->bo = *p; *p += D;
    k->g2 = *p; *p += D;
    k->be2 = *p; *p += D;
    k->w1 = *p; *p += Hf * D;
    k->b1 = *p; *p += Hf;
    k->w2 = *p; *p += D * Hf;
    k->b2 = *p; *p += D;
}

static void make_plan(const feat_layout *F, int B, rs_plan *P) {
    const size_t D = F->d_model;
    size_t f = 0, p = 0;
    P->S = F->set_rows + 1;
    P->N = B * P->S;
    P->keep = f; f += (size_t)P->N;  /* N ints in N doubles */
    P->h0 = f; f += (size_t)P->N * D;
    P->E = p; p += (size_t)F->n_tokens * D;
    P->wv = p; p += D * F->set_values;
    P->bv = p; p += D;
    P->cls = p; p += D;
    for (int l = 0; l < F->tf_layers; l++) plan_block(F, B, &P->blk[l], &f, &p);
    P->hc = f; f += (size_t)B * D;
    P->z = f; f += (size_t)B * D;
    P->mf = f; f += B;
    P->rf = f; f += B;
    P->feat = f; f += (size_t)B * F->n_out;
    P->scores = f; f += (size_t)P->N;
    P->fwd_total = f;
    P->gf = p; p += D;
    P->bef = p; p += D;
    P->wout = p; p += (size_t)F->n_out * D;
    P->bout = p; p += F->n_out;
    P->n_params = p;
}

int feat_layout_init_set_transformer(feat_layout *F, int rows, int values, int n_tokens,
                                     int d_model, int heads, int layers, int hidden, int n_out) {
    memset(F, 0, sizeof(*F));
    if (rows < 1 || values < 1) return 1;
    if (n_tokens < 1 || d_model < 1 || heads < 1 || d_model % heads != 0 || hidden < 1 ||
        layers < 1 || layers > FEAT_MAX_LAYERS)
        return 3;
    if (n_out < 1) return 4;
    F->type = FEAT_SET_TRANSFORMER; F->n_in = rows * (1 + values); F->n_out = n_out;
    F->act = ACT_GELU;
    F->set_rows = rows; F->set_values = values; F->n_tokens = n_tokens; F->d_model = d_model;
    F->heads = heads; F->tf_layers = layers; F->ff_hidden = hidden;
    rs_plan P;
    make_plan(F, 1, &P);
    F->n_params = P.n_params;
    return 0;
}

static size_t rs_fwd_work(const feat_layout *F, int B) {
    rs_plan P;
    make_plan(F, B, &P);
    return P.fwd_total;
}

/* dh, dA, dT: N x D each; dqkv: N x 3D; dff: N x hidden */
static size_t rs_bwd_work(const feat_layout *F, int B) {
    const size_t N = (size_t)B * (F->set_rows + 1);
    return N * (6 * (size_t)F->d_model + F->ff_hidden);
}

static void fill(double *w, size_t n, double scale, rng_t *r) {
    for (size_t i = 0; i < n; i++) w[i] = scale * (2.0 * rng_unif(r) - 1.0);
}

static void ones(double *w, size_t n) {
    for (size_t i = 0; i < n; i++) w[i] = 1.0;
}

/* weights U(+-1/sqrt(fan_in)) (E: a linear map of the one-hot token), LN gains 1, biases 0 */
static void rs_init_params(const feat_layout *F, double *params, uint64_t seed) {
    rs_plan P;
    make_plan(F, 1, &P);
    rng_t r = rng_stream(seed, 3);
    const size_t D = F->d_model, Hf = F->ff_hidden;
    const double sd = 1.0 / sqrt((double)D);
    memset(params, 0, P.n_params * sizeof(double));
    fill(params + P.E, F->n_tokens * D, 1.0 / sqrt((double)F->n_tokens), &r);
    fill(params + P.wv, D * F->set_values, 1.0 / sqrt((double)F->set_values), &r);
    fill(params + P.cls, D, 0.1, &r);
    for (int l = 0; l < F->tf_layers; l++) {
        const rs_block *k = &P.blk[l];
        ones(params + k->g1, D);
        fill(params + k->wqkv, 3 * D * D, sd, &r);
        fill(params + k->wo, D * D, sd, &r);
        ones(params + k->g2, D);
        fill(params + k->w1, Hf * D, sd, &r);
        fill(params + k->w2, D * Hf, 1.0 / sqrt((double)Hf), &r);
    }
    ones(params + P.gf, D);
    fill(params + P.wout, F->n_out * D, sd, &r);
}

/* the 0-based token of a row, or -1 for padding and for anything not in 1..n_tokens */
static int token_index(double t, int n_tokens) {
    if (!(t >= 1.0 && t <= (double)n_tokens) || t != floor(t)) return -1;
    return (int)t - 1;
}

static void add_to(double *y, const double *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static double dot(const double *a, const double *b, int n) {
    double s = 0.0;
    for (int c = 0; c < n; c++) s += a[c] * b[c];
    return s;
}

/* h[b, 0] = cls;  h[b, 1 + r] = E[t] + Wv v + bv for a real row (t, v), else 0;  keep: real rows */
static void embed(const feat_layout *F, const rs_plan *P, const double *params, const double *x,
                  int B, double *h, int *keep) {
    const int D = F->d_model, V = F->set_values, S = P->S;
    const double *E = params + P->E, *wv = params + P->wv, *bv = params + P->bv;
    for (int b = 0; b < B; b++) {
        double *hb = h + (size_t)b * S * D;
        memcpy(hb, params + P->cls, D * sizeof(double));
        keep[(size_t)b * S] = 1;
        for (int r = 0; r < F->set_rows; r++) {
            const double *row = x + (size_t)b * F->n_in + (size_t)r * (1 + V);
            const int t = token_index(row[0], F->n_tokens);
            double *e = hb + (size_t)(1 + r) * D;
            keep[(size_t)b * S + 1 + r] = t >= 0;
            for (int d = 0; d < D; d++)  /* padding rows: zeros, their values never read */
                e[d] = t < 0 ? 0.0
                             : E[(size_t)t * D + d] + dot(wv + (size_t)d * V, row + 1, V) + bv[d];
        }
    }
}

/* dE[t] += dh;  dWv += dh v^T;  dbv += dh over the real rows;  dcls += dh of the class rows */
static void embed_backward(const feat_layout *F, const rs_plan *P, const double *x, int B,
                           const double *dh, double *dparams) {
    const int D = F->d_model, V = F->set_values, S = P->S;
    double *dE = dparams + P->E, *dwv = dparams + P->wv, *dbv = dparams + P->bv;
    for (int b = 0; b < B; b++) {
        const double *gb = dh + (size_t)b * S * D;
        add_to(dparams + P->cls, gb, D);
        for (int r = 0; r < F->set_rows; r++) {
            const double *row = x + (size_t)b * F->n_in + (size_t)r * (1 + V);
            const int t = token_index(row[0], F->n_tokens);
            if (t < 0) continue;
            const double *g = gb + (size_t)(1 + r) * D;
            add_to(dE + (size_t)t * D, g, D);
            add_to(dbv, g, D);
            for (int d = 0; d < D; d++)
                for (int c = 0; c < V; c++) dwv[(size_t)d * V + c] += g[d] * row[1 + c];
        }
    }
}

/* one pre-norm block: hm = h + Wo MHA(LN1 h) + bo;  ho = hm + W2 gelu(W1 LN2 hm + b1) + b2 */
static void block_forward(const feat_layout *F, const rs_block *k, const double *p,
                          const double *h, const int *keep, int B, int S, double *w,
                          double *scores, const nn_ctx *cx) {
    const int threads = cx->threads;
    const int D = F->d_model, Hf = F->ff_hidden, N = B * S;
    layernorm_forward(w + k->a, w + k->m1, w + k->r1, h, p + k->g1, p + k->be1, N, D);
    linear_forward(cx, w + k->qkv, w + k->a, p + k->wqkv, p + k->bqkv, N, D, 3 * D);
    attention_forward(w + k->y, w + k->lse, scores, w + k->qkv, keep, B, S, D, F->heads, cx);
    linear_forward(cx, w + k->hm, w + k->y, p + k->wo, p + k->bo, N, D, D);
    add_to(w + k->hm, h, (size_t)N * D);
    layernorm_forward(w + k->n2, w + k->m2, w + k->r2, w + k->hm, p + k->g2, p + k->be2, N, D);
    linear_forward(cx, w + k->f, w + k->n2, p + k->w1, p + k->b1, N, D, Hf);
    act_forward(w + k->g, w + k->f, (size_t)N * Hf, ACT_GELU, threads);
    linear_forward(cx, w + k->ho, w + k->g, p + k->w2, p + k->b2, N, Hf, D);
    add_to(w + k->ho, w + k->hm, (size_t)N * D);
}

static const double *rs_forward(const feat_layout *F, const double *params, const double *x, int B,
                         double *work, const nn_ctx *cx) {
    rs_plan P;
    make_plan(F, B, &P);
    const int D = F->d_model, S = P.S;
    int *keep = (int *)(work + P.keep);
    embed(F, &P, params, x, B, work + P.h0, keep);
    const double *h = work + P.h0;
    for (int l = 0; l < F->tf_layers; l++) {
        block_forward(F, &P.blk[l], params, h, keep, B, S, work, work + P.scores, cx);
        h = work + P.blk[l].ho;
    }
    for (int b = 0; b < B; b++)  /* the class token of every set */
        memcpy(work + P.hc + (size_t)b * D, h + (size_t)b * S * D, D * sizeof(double));
    layernorm_forward(work + P.z, work + P.mf, work + P.rf, work + P.hc, params + P.gf,
                      params + P.bef, B, D);
    linear_forward(cx, work + P.feat, work + P.z, params + P.wout, params + P.bout, B, D, F->n_out);
    return work + P.feat;
}

/* dh: gradient wrt the block's output in, wrt its input h out; dA, dT, dqkv, dff: scratch */
static void block_backward(const feat_layout *F, const rs_block *k, const double *p, double *dp,
                           const double *h, const int *keep, int B, int S, const double *w,
                           double *dh, double *dA, double *dT, double *dqkv, double *dff,
                           const nn_ctx *cx) {
    const int threads = cx->threads;
    const int D = F->d_model, Hf = F->ff_hidden, N = B * S;
    const size_t ND = (size_t)N * D;
    linear_backward(cx, dff, dp + k->w2, dp + k->b2, dh, w + k->g, p + k->w2, N, Hf, D);
    act_backward(dff, dff, w + k->f, w + k->g, (size_t)N * Hf, ACT_GELU, threads);
    linear_backward(cx, dA, dp + k->w1, dp + k->b1, dff, w + k->n2, p + k->w1, N, D, Hf);
    layernorm_backward(dT, dp + k->g2, dp + k->be2, dA, w + k->hm, w + k->m2, w + k->r2,
                       p + k->g2, N, D);
    add_to(dh, dT, ND);  /* dL/dhm = dL/dho (skip) + feed-forward path */
    linear_backward(cx, dA, dp + k->wo, dp + k->bo, dh, w + k->y, p + k->wo, N, D, D);
    attention_backward(dqkv, dA, w + k->qkv, w + k->y, w + k->lse, keep, B, S, D, F->heads,
                       cx);
    linear_backward(cx, dA, dp + k->wqkv, dp + k->bqkv, dqkv, w + k->a, p + k->wqkv, N, D, 3 * D);
    layernorm_backward(dT, dp + k->g1, dp + k->be1, dA, h, w + k->m1, w + k->r1, p + k->g1, N, D);
    add_to(dh, dT, ND);  /* dL/dh = dL/dhm (skip) + attention path */
}

static void rs_backward(const feat_layout *F, const double *params, const double *x, int B,
                 const double *dfeat, double *dparams, const double *fwd, double *work,
                 const nn_ctx *cx) {
    rs_plan P;
    make_plan(F, B, &P);
    const int D = F->d_model, S = P.S;
    const size_t ND = (size_t)P.N * D;
    const int *keep = (const int *)(fwd + P.keep);
    double *dh = work, *dA = dh + ND, *dT = dA + ND, *dqkv = dT + ND, *dff = dqkv + 3 * ND;
    /* output map and final layer norm of the class rows; other rows get no gradient here */
    linear_backward(cx, dA, dparams + P.wout, dparams + P.bout, dfeat, fwd + P.z, params + P.wout, B,
                    D, F->n_out);
    layernorm_backward(dT, dparams + P.gf, dparams + P.bef, dA, fwd + P.hc, fwd + P.mf,
                       fwd + P.rf, params + P.gf, B, D);
    memset(dh, 0, ND * sizeof(double));
    for (int b = 0; b < B; b++)
        memcpy(dh + (size_t)b * S * D, dT + (size_t)b * D, D * sizeof(double));
    for (int l = F->tf_layers - 1; l >= 0; l--) {
        const double *h = l == 0 ? fwd + P.h0 : fwd + P.blk[l - 1].ho;
        block_backward(F, &P.blk[l], params, dparams, h, keep, B, S, fwd, dh, dA, dT, dqkv, dff,
                       cx);
    }
    embed_backward(F, &P, x, B, dh, dparams);
}

const feat_ops feat_ops_set_transformer = {rs_init_params, rs_fwd_work, rs_bwd_work, rs_forward,
                                    rs_backward};
