/* ResNet-GRU featurizer for light curves and spectra (seed 002): residual blocks of two
 * 'same' convolutions with layer norm and GELU, channels doubling from dim_conv_min up to
 * dim_conv_max, max-pool by 2 between blocks; then GRU layers whose last hidden state goes
 * through a linear map to n_out. Sequences are B x L x C, channels contiguous. */
#include <math.h>
#include <string.h>
#include "nn/nn.h"
#include "feat/feat.h"
#include "rng.h"

typedef struct {
    int L, ci, co, Lp, pool, proj;
    /* forward-cache offsets */
    size_t col1, a1, n1, m1, r1, g1, col2, a2, n2, m2, r2, sk, s, out, po, idx;
    /* parameter offsets */
    size_t w1, b1, ga1, be1, w2, b2, ga2, be2, wp, bp;
} rg_block;

typedef struct {
    rg_block blk[FEAT_MAX_LAYERS];
    int T, C0, H;
    size_t g_out[FEAT_MAX_LAYERS], g_cache[FEAT_MAX_LAYERS], last, feat, scratch, fwd_total;
    size_t wih[FEAT_MAX_LAYERS], whh[FEAT_MAX_LAYERS], bih[FEAT_MAX_LAYERS], bhh[FEAT_MAX_LAYERS];
    size_t lw, lb, n_params;
    size_t mx, kx;  /* largest sequence tensor and im2col buffer (backward work) */
} rg_plan;

static void make_plan(const feat_layout *F, int B, rg_plan *P) {
    size_t f = 0, p = 0;
    const int k = F->kernel;
    int L = F->seq_len, ci = F->channels;
    P->mx = 0; P->kx = 0;
    for (int i = 0; i < F->depth; i++) {
        rg_block *b = &P->blk[i];
        const int co = F->conv[i];
        const size_t BL = (size_t)B * L;
        b->L = L; b->ci = ci; b->co = co; b->proj = ci != co;
        b->pool = i < F->depth - 1 && L >= 2;
        b->Lp = b->pool ? L / 2 : L;
        b->col1 = f; f += BL * k * ci;
        b->a1 = f; f += BL * co;
        b->n1 = f; f += BL * co;
        b->m1 = f; f += BL;
        b->r1 = f; f += BL;
        b->g1 = f; f += BL * co;
        b->col2 = f; f += BL * k * co;
        b->a2 = f; f += BL * co;
        b->n2 = f; f += BL * co;
        b->m2 = f; f += BL;
        b->r2 = f; f += BL;
        b->sk = f; f += b->proj ? BL * co : 0;
        b->s = f; f += BL * co;
        b->out = f; f += BL * co;
        b->po = f; f += b->pool ? (size_t)B * b->Lp * co : 0;
        b->idx = f; f += b->pool ? (size_t)B * b->Lp * co : 0;
        b->w1 = p; p += (size_t)co * k * ci;
        b->b1 = p; p += co;
        b->ga1 = p; p += co;
        b->be1 = p; p += co;
        b->w2 = p; p += (size_t)co * k * co;
        b->b2 = p; p += co;
        b->ga2 = p; p += co;
        b->be2 = p; p += co;
        b->wp = p; p += b->proj ? (size_t)co * ci : 0;
        b->bp = p; p += b->proj ? co : 0;
        size_t m = BL * (ci > co ? ci : co);
        if (m > P->mx) P->mx = m;
        if (m * k > P->kx) P->kx = m * k;
        L = b->Lp; ci = co;
    }
    P->T = L; P->C0 = ci; P->H = ci;
    const int H = P->H;
    for (int j = 0; j < F->n_rnn; j++) {
        const int Cin = j == 0 ? P->C0 : H;
        P->g_out[j] = f; f += (size_t)B * P->T * H;
        P->g_cache[j] = f; f += gru_cache_size(B, P->T, H);
        P->wih[j] = p; p += (size_t)3 * H * Cin;
        P->whh[j] = p; p += (size_t)3 * H * H;
        P->bih[j] = p; p += (size_t)3 * H;
        P->bhh[j] = p; p += (size_t)3 * H;
    }
    P->last = f; f += (size_t)B * H;
    P->feat = f; f += (size_t)B * F->n_out;
    P->scratch = f; f += gru_work_size(B, P->T, H, H);
    P->fwd_total = f;
    P->lw = p; p += (size_t)F->n_out * H;
    P->lb = p; p += F->n_out;
    P->n_params = p;
}

int feat_layout_init_resnet_gru(feat_layout *F, int seq_len, int channels, int depth, int kernel,
                                int dim_conv_min, int dim_conv_max, int n_rnn, int n_out) {
    memset(F, 0, sizeof(*F));
    if (seq_len < 1 || channels < 1) return 1;
    if (depth < 1 || depth > FEAT_MAX_LAYERS || kernel < 1 || kernel % 2 == 0) return 3;
    if (n_out < 1) return 4;
    if (dim_conv_min < 1 || dim_conv_max < dim_conv_min || n_rnn < 1 || n_rnn > FEAT_MAX_LAYERS)
        return 3;
    F->type = FEAT_RESNET_GRU; F->n_in = seq_len * channels; F->n_out = n_out; F->act = ACT_GELU;
    F->seq_len = seq_len; F->channels = channels; F->depth = depth; F->kernel = kernel;
    F->n_rnn = n_rnn;
    long c = dim_conv_min;
    for (int i = 0; i < depth; i++) {
        F->conv[i] = (int)(c < dim_conv_max ? c : dim_conv_max);
        c *= 2;
    }
    rg_plan P;
    make_plan(F, 1, &P);
    F->n_params = P.n_params;
    return 0;
}


static size_t rg_fwd_work(const feat_layout *F, int B) {
    rg_plan P;
    make_plan(F, B, &P);
    return P.fwd_total;
}

static size_t rg_bwd_work(const feat_layout *F, int B) {
    rg_plan P;
    make_plan(F, B, &P);
    size_t g = (size_t)B * P.T * (P.C0 > P.H ? P.C0 : P.H);
    return 6 * P.mx + P.kx + 2 * g + gru_work_size(B, P.T, P.C0 > P.H ? P.C0 : P.H, P.H) +
           (size_t)B * P.H;
}

static void fill(double *w, size_t n, double scale, rng_t *r) {
    for (size_t i = 0; i < n; i++) w[i] = scale * (2.0 * rng_unif(r) - 1.0);
}

static void rg_init_params(const feat_layout *F, double *params, uint64_t seed) {
    rg_plan P;
    make_plan(F, 1, &P);
    rng_t r = rng_stream(seed, 2);
    memset(params, 0, P.n_params * sizeof(double));
    const int k = F->kernel;
    for (int i = 0; i < F->depth; i++) {
        const rg_block *b = &P.blk[i];
        fill(params + b->w1, (size_t)b->co * k * b->ci, 1.0 / sqrt((double)k * b->ci), &r);
        fill(params + b->w2, (size_t)b->co * k * b->co, 1.0 / sqrt((double)k * b->co), &r);
        if (b->proj) fill(params + b->wp, (size_t)b->co * b->ci, 1.0 / sqrt((double)b->ci), &r);
        for (int c = 0; c < b->co; c++) params[b->ga1 + c] = params[b->ga2 + c] = 1.0;
    }
    const int H = P.H;
    for (int j = 0; j < F->n_rnn; j++) {
        const int Cin = j == 0 ? P.C0 : H;
        fill(params + P.wih[j], (size_t)3 * H * Cin, 1.0 / sqrt((double)H), &r);
        fill(params + P.whh[j], (size_t)3 * H * H, 1.0 / sqrt((double)H), &r);
        fill(params + P.bih[j], (size_t)3 * H, 1.0 / sqrt((double)H), &r);
        fill(params + P.bhh[j], (size_t)3 * H, 1.0 / sqrt((double)H), &r);
    }
    fill(params + P.lw, (size_t)F->n_out * H, 1.0 / sqrt((double)H), &r);
}

static const double *rg_forward(const feat_layout *F, const double *params, const double *x, int B,
                         double *work, const nn_ctx *cx) {
    const int threads = cx->threads;
    rg_plan P;
    make_plan(F, B, &P);
    const double *in = x;
    const int k = F->kernel;
    for (int i = 0; i < F->depth; i++) {
        const rg_block *b = &P.blk[i];
        const size_t BL = (size_t)B * b->L, n = BL * b->co;
        double *sk = work + b->sk, *s = work + b->s, *out = work + b->out;
        conv1d_forward(cx, work + b->a1, work + b->col1, in, params + b->w1, params + b->b1, B, b->L,
                       b->ci, b->co, k);
        layernorm_forward(work + b->n1, work + b->m1, work + b->r1, work + b->a1,
                          params + b->ga1, params + b->be1, (int)BL, b->co);
        act_forward(work + b->g1, work + b->n1, n, ACT_GELU, threads);
        conv1d_forward(cx, work + b->a2, work + b->col2, work + b->g1, params + b->w2, params + b->b2,
                       B, b->L, b->co, b->co, k);
        layernorm_forward(work + b->n2, work + b->m2, work + b->r2, work + b->a2,
                          params + b->ga2, params + b->be2, (int)BL, b->co);
        const double *skip = in;  /* residual: identity, or a 1x1 convolution on a width change */
        if (b->proj) {
            linear_forward(cx, sk, in, params + b->wp, params + b->bp, (int)BL, b->ci, b->co);
            skip = sk;
        }
        for (size_t q = 0; q < n; q++) s[q] = work[b->n2 + q] + skip[q];
        act_forward(out, s, n, ACT_GELU, threads);
        if (b->pool) {
            maxpool2_forward(work + b->po, (int *)(work + b->idx), out, B, b->L, b->co);
            in = work + b->po;
        } else {
            in = out;
        }
    }
    const int T = P.T, H = P.H;
    for (int j = 0; j < F->n_rnn; j++) {
        const int Cin = j == 0 ? P.C0 : H;
        gru_forward(cx, work + P.g_out[j], work + P.g_cache[j], in, params + P.wih[j],
                    params + P.whh[j], params + P.bih[j], params + P.bhh[j], B, T, Cin, H,
                    work + P.scratch);
        in = work + P.g_out[j];
    }
    double *last = work + P.last;
    for (int b = 0; b < B; b++)  /* the last hidden state of every sequence */
        memcpy(last + (size_t)b * H, in + ((size_t)b * T + T - 1) * H, H * sizeof(double));
    linear_forward(cx, work + P.feat, last, params + P.lw, params + P.lb, B, H, F->n_out);
    return work + P.feat;
}

static void rg_backward(const feat_layout *F, const double *params, const double *x, int B,
                 const double *dfeat, double *dparams, const double *fwd, double *work,
                 const nn_ctx *cx) {
    const int threads = cx->threads;
    rg_plan P;
    make_plan(F, B, &P);
    const int T = P.T, H = P.H, k = F->kernel, Cm = P.C0 > H ? P.C0 : H;
    const size_t g = (size_t)B * T * Cm;
    double *X = work, *X2 = X + P.mx, *Y = X2 + P.mx, *Z = Y + P.mx, *W = Z + P.mx;
    double *Tb = W + P.mx, *dcol = Tb + P.mx, *G1 = dcol + P.kx, *G2 = G1 + g;
    double *gw = G2 + g, *dlast = gw + gru_work_size(B, T, Cm, H);
    /* final linear map, then the last GRU state's gradient into a full sequence gradient */
    linear_backward(cx, dlast, dparams + P.lw, dparams + P.lb, dfeat, fwd + P.last, params + P.lw, B,
                    H, F->n_out);
    memset(G1, 0, (size_t)B * T * H * sizeof(double));
    for (int b = 0; b < B; b++)
        memcpy(G1 + ((size_t)b * T + T - 1) * H, dlast + (size_t)b * H, H * sizeof(double));
    const rg_block *lb = &P.blk[F->depth - 1];
    const double *seq_in = fwd + (lb->pool ? lb->po : lb->out);
    for (int j = F->n_rnn - 1; j >= 0; j--) {
        const int Cin = j == 0 ? P.C0 : H;
        const double *inj = j == 0 ? seq_in : fwd + P.g_out[j - 1];
        gru_backward(cx, G2, dparams + P.wih[j], dparams + P.whh[j], dparams + P.bih[j],
                     dparams + P.bhh[j], G1, inj, fwd + P.g_out[j], fwd + P.g_cache[j],
                     params + P.wih[j], params + P.whh[j], B, T, Cin, H, gw);
        double *t = G1; G1 = G2; G2 = t;  /* G1: gradient wrt this layer's input */
    }
    memcpy(X, G1, (size_t)B * T * P.C0 * sizeof(double));
    for (int i = F->depth - 1; i >= 0; i--) {
        const rg_block *b = &P.blk[i];
        const size_t BL = (size_t)B * b->L, n = BL * b->co;
        const double *in = i == 0 ? x : fwd + (P.blk[i - 1].pool ? P.blk[i - 1].po : P.blk[i - 1].out);
        double *dout = X;
        if (b->pool) { maxpool2_backward(Y, X, (const int *)(fwd + b->idx), B, b->L, b->co); dout = Y; }
        act_backward(Z, dout, fwd + b->s, fwd + b->out, n, ACT_GELU, threads);  /* Z = ds */
        layernorm_backward(W, dparams + b->ga2, dparams + b->be2, Z, fwd + b->a2, fwd + b->m2,
                           fwd + b->r2, params + b->ga2, (int)BL, b->co);
        conv1d_backward(cx, Y, dparams + b->w2, dparams + b->b2, W, fwd + b->col2, params + b->w2,
                        dcol, B, b->L, b->co, b->co, k);
        act_backward(W, Y, fwd + b->n1, fwd + b->g1, n, ACT_GELU, threads);
        layernorm_backward(Y, dparams + b->ga1, dparams + b->be1, W, fwd + b->a1, fwd + b->m1,
                           fwd + b->r1, params + b->ga1, (int)BL, b->co);
        double *din = i == 0 ? NULL : X2;
        conv1d_backward(cx, din, dparams + b->w1, dparams + b->b1, Y, fwd + b->col1, params + b->w1,
                        dcol, B, b->L, b->ci, b->co, k);
        if (b->proj) {
            linear_backward(cx, din ? Tb : NULL, dparams + b->wp, dparams + b->bp, Z, in,
                            params + b->wp, (int)BL, b->ci, b->co);
            if (din) for (size_t q = 0; q < BL * b->ci; q++) din[q] += Tb[q];
        } else if (din) {
            for (size_t q = 0; q < n; q++) din[q] += Z[q];
        }
        if (din) { double *t = X; X = X2; X2 = t; }
    }
}

const feat_ops feat_ops_resnet_gru = {rg_init_params, rg_fwd_work, rg_bwd_work, rg_forward,
                                    rg_backward};
