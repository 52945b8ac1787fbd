/* Time-series featurizer for irregularly sampled light curves: each object has its own
 * epochs, any number of them. A sample is 1 + E + R W doubles: the number of rows n (1..R),
 * E scalars of the object (its "extras"), then R rows of W values (t, value, [error],
 * [band]), rows beyond n ignored (padding: never read, never given a gradient). Only the n
 * real rows are computed on, packed one object after the other, so the cost is linear in
 * the epochs actually observed.
 *
 * Row i becomes u_i = (t, sin 2 pi f_k t, cos 2 pi f_k t for the F frequencies f_k of the
 * spec, value, [error], [one-hot band]); an MLP (layers x hidden, GELU) maps it to e_i
 * (d_model); e_i is split by a linear map into a key and a value; Q learned queries attend
 * over the object's rows (segpool, multi-head: Lee et al. 2019's pooling by multi-head
 * attention), and with the mean of its e_i and (log n - 4) / 2 (the number of rows sets how
 * narrow a posterior is, and means and attention do not keep it) and the E extras the pooled
 * vectors go through a linear map to n_out. With pool = 1 (mean only) the attention is
 * skipped. Nothing depends on the order of the rows: permuting them permutes the packed rows
 * and leaves every pooled sum the same (up to the order of floating-point additions). */
#include <math.h>
#include <string.h>
#include "nn/nn.h"
#include "feat/feat.h"
#include "rng.h"

typedef struct {
    int U, P;  /* row input width, pooled width */
    /* forward cache offsets (for B samples of up to R rows each) */
    size_t start, u, h, e, kv, attn, mean, pooled, out, fwd_total;
    /* parameters: MLP layers (w, b), kv map, queries, output map */
    size_t w[FEAT_MAX_LAYERS + 1], b[FEAT_MAX_LAYERS + 1], wkv, bkv, seeds, wout, bout, n_params;
} ts_plan;

static int ts_U(const feat_layout *F) {
    return 1 + 2 * F->ts_nfreq + 1 + F->ts_has_error + (F->ts_bands > 1 ? F->ts_bands : 0);
}
static int width_out(const feat_layout *F, int l) { return l < F->tf_layers ? F->ff_hidden : F->d_model; }
static int width_in(const feat_layout *F, int l, int U) { return l == 0 ? U : F->ff_hidden; }

/* the most rows B samples of the data hold (every call's samples are distinct samples of it) */
static size_t ts_rows(const feat_layout *F, int B) {
    if (!F->ts_cum) return (size_t)B * F->set_rows;
    return F->ts_cum[B < F->ts_cum_n ? B : F->ts_cum_n];
}

static void make_plan(const feat_layout *F, int B, ts_plan *P) {
    const size_t D = F->d_model, Hd = F->ff_hidden, N = ts_rows(F, B);
    const int L = F->tf_layers, Q = F->ts_pool ? 0 : F->ts_seeds;
    size_t f = 0, p = 0;
    P->U = ts_U(F);
    P->P = (Q + 1) * F->d_model + 1 + F->ts_extra;  /* + log row count and the extras */
    P->start = f; f += (size_t)B + 1;           /* B + 1 ints */
    P->u = f; f += N * P->U;
    P->h = f; f += (size_t)L * 2 * N * Hd;      /* pre and post of each hidden layer */
    P->e = f; f += N * D;
    P->kv = f; f += N * 2 * D;
    P->attn = f; f += N * (size_t)(Q > 0 ? Q : 1) * F->heads;
    P->mean = f; f += (size_t)B * D;
    P->pooled = f; f += (size_t)B * P->P;
    P->out = f; f += (size_t)B * F->n_out;
    P->fwd_total = f;
    for (int l = 0; l <= L; l++) {
        P->w[l] = p; p += (size_t)width_out(F, l) * width_in(F, l, P->U);
        P->b[l] = p; p += width_out(F, l);
    }
    P->wkv = p; p += 2 * D * D;
    P->bkv = p; p += 2 * D;
    P->seeds = p; p += (size_t)Q * D;
    P->wout = p; p += (size_t)F->n_out * P->P;
    P->bout = p; p += F->n_out;
    P->n_params = p;
}

int feat_layout_init_timeseries(feat_layout *F, int rows, int width, int has_error, int bands,
                                int d_model, int heads, int layers, int hidden, int seeds,
                                int n_freq, const double *freqs, int pool, int extra, int n_out) {
    memset(F, 0, sizeof(*F));
    if (rows < 1 || width != 2 + has_error + (bands > 1) || (has_error != 0 && has_error != 1) ||
        bands < 1)
        return 1;
    if (d_model < 1 || heads < 1 || d_model % heads != 0 || hidden < 1 || layers < 0 ||
        layers > FEAT_MAX_LAYERS || seeds < 1 || n_freq < 0 || (n_freq > 0 && !freqs) ||
        (pool != 0 && pool != 1) || extra < 0 || extra > 16)
        return 3;
    if (n_out < 1) return 4;
    F->type = FEAT_TIMESERIES;
    F->n_in = 1 + extra + rows * width;
    F->n_out = n_out;
    F->act = ACT_GELU;
    F->set_rows = rows;
    F->d_model = d_model; F->heads = heads; F->tf_layers = layers; F->ff_hidden = hidden;
    F->ts_width = width; F->ts_has_error = has_error; F->ts_bands = bands;
    F->ts_seeds = seeds; F->ts_nfreq = n_freq; F->ts_freqs = freqs; F->ts_pool = pool;
    F->ts_extra = extra;
    ts_plan P;
    make_plan(F, 1, &P);
    F->n_params = P.n_params;
    return 0;
}

static size_t ts_fwd_work(const feat_layout *F, int B) {
    ts_plan P;
    make_plan(F, B, &P);
    return P.fwd_total;
}

/* dpooled (B x P), dkv (N x 2D), de (N x D), two N x hidden buffers, segpool's (B x Q x D) */
static size_t ts_bwd_work(const feat_layout *F, int B) {
    ts_plan P;
    make_plan(F, B, &P);
    const size_t N = ts_rows(F, B), D = F->d_model;
    const size_t pw = (size_t)B * (F->ts_seeds > 1 ? F->ts_seeds : 1) * D;
    return (size_t)B * P.P + N * 3 * D + 2 * N * F->ff_hidden + pw;
}

static void fill(double *w, size_t n, double scale, rng_t *r) {
    for (size_t i = 0; i < n; i++) w[i] = scale * (2.0 * rng_unif(r) - 1.0);
}

static void ts_init_params(const feat_layout *F, double *params, uint64_t seed) {
    ts_plan P;
    make_plan(F, 1, &P);
    rng_t r = rng_stream(seed, 5);
    memset(params, 0, P.n_params * sizeof(double));
    const int D = F->d_model;
    for (int l = 0; l <= F->tf_layers; l++) {
        const int C = width_in(F, l, P.U);
        fill(params + P.w[l], (size_t)width_out(F, l) * C, 1.0 / sqrt((double)C), &r);
    }
    fill(params + P.wkv, 2 * (size_t)D * D, 1.0 / sqrt((double)D), &r);
    fill(params + P.seeds, (size_t)(F->ts_pool ? 0 : F->ts_seeds) * D, 1.0, &r);
    fill(params + P.wout, (size_t)F->n_out * P.P, 1.0 / sqrt((double)P.P), &r);
}

/* log n, centred and scaled to about [-2, 1.5] for 1..1000 rows */
static double ts_log_count(int n) { return 0.5 * log((double)n) - 2.0; }

/* the batch's real rows, packed: start (B + 1 offsets) and u (rows x U); returns the rows */
static int pack_rows(const feat_layout *F, const ts_plan *P, const double *x, int B, int *start,
                     double *u) {
    const int W = F->ts_width, R = F->set_rows, U = P->U, nf = F->ts_nfreq;
    const int vcol = 1, ecol = 2, bcol = 2 + F->ts_has_error;
    int N = 0;
    start[0] = 0;
    for (int b = 0; b < B; b++) {
        const double *xb = x + (size_t)b * F->n_in;
        /* the glue refuses counts outside 1..R; clamped here all the same */
        const int n = xb[0] >= 1.0 ? (xb[0] <= R ? (int)xb[0] : R) : 1;
        for (int i = 0; i < n; i++) {
            const double *row = xb + 1 + F->ts_extra + (size_t)i * W;
            double *ui = u + (size_t)(N + i) * U;
            const double t = row[0];
            int c = 0;
            ui[c++] = t;
            for (int k = 0; k < nf; k++) {
                const double a = 6.283185307179586 * F->ts_freqs[k] * t;
                ui[c++] = sin(a);
                ui[c++] = cos(a);
            }
            ui[c++] = row[vcol];
            if (F->ts_has_error) ui[c++] = row[ecol];
            if (F->ts_bands > 1) {
                const int band = (int)row[bcol];
                for (int k = 0; k < F->ts_bands; k++) ui[c + k] = k + 1 == band ? 1.0 : 0.0;
            }
        }
        N += n;
        start[b + 1] = N;
    }
    return N;
}

static const double *ts_forward(const feat_layout *F, const double *params, const double *x,
                                int B, double *work, const nn_ctx *cx) {
    const int threads = cx->threads;
    ts_plan P;
    make_plan(F, B, &P);
    const int D = F->d_model, Hd = F->ff_hidden, L = F->tf_layers, Q = F->ts_seeds;
    int *start = (int *)(work + P.start);
    const int N = pack_rows(F, &P, x, B, start, work + P.u);
    const double *in = work + P.u;
    for (int l = 0; l <= L; l++) {
        const int C = width_in(F, l, P.U), OC = width_out(F, l);
        double *pre = l < L ? work + P.h + (size_t)l * 2 * N * Hd : work + P.e;
        linear_forward(cx, pre, in, params + P.w[l], params + P.b[l], N, C, OC);
        if (l < L) {
            double *post = pre + (size_t)N * Hd;
            act_forward(post, pre, (size_t)N * Hd, ACT_GELU, threads);
            in = post;
        }
    }
    const double *e = work + P.e;
    double *pooled = work + P.pooled;
    /* pooled row b: Q attention outputs (D each), then the mean of e */
    double *mean = work + P.mean;
    segmean_forward(mean, e, start, B, D);
    if (!F->ts_pool) {
        double *kv = work + P.kv;
        linear_forward(cx, kv, e, params + P.wkv, params + P.bkv, N, D, 2 * D);
        /* the attention outputs, B x Q x D contiguous, then moved to stride P per sample */
        double *outq = pooled;
        segpool_forward(outq, work + P.attn, kv, kv + D, 2 * D, params + P.seeds, start, B, Q, D,
                        F->heads, threads);
        for (int b = B - 1; b >= 0; b--)  /* spread to stride P (backwards: no overlap) */
            memmove(pooled + (size_t)b * P.P, outq + (size_t)b * Q * D, (size_t)Q * D * sizeof(double));
    }
    const int Qp = F->ts_pool ? 0 : Q;
    for (int b = 0; b < B; b++)
        memcpy(pooled + (size_t)b * P.P + (size_t)Qp * D, mean + (size_t)b * D, (size_t)D * sizeof(double));
    /* means and attention forget how many rows there were, which sets a posterior's width */
    for (int b = 0; b < B; b++) {
        double *pb = pooled + (size_t)b * P.P + (size_t)(Qp + 1) * D;
        pb[0] = ts_log_count(start[b + 1] - start[b]);
        memcpy(pb + 1, x + (size_t)b * F->n_in + 1, (size_t)F->ts_extra * sizeof(double));
    }
    double *out = work + P.out;
    linear_forward(cx, out, pooled, params + P.wout, params + P.bout, B, P.P, F->n_out);
    return out;
}

static void ts_backward(const feat_layout *F, const double *params, const double *x, int B,
                        const double *dfeat, double *dparams, const double *fwd, double *work,
                        const nn_ctx *cx) {
    const int threads = cx->threads;
    (void)x;
    ts_plan P;
    make_plan(F, B, &P);
    const int D = F->d_model, Hd = F->ff_hidden, L = F->tf_layers, Q = F->ts_seeds;
    const int Qp = F->ts_pool ? 0 : Q;
    const int *start = (const int *)(fwd + P.start);
    const int N = start[B];
    const size_t NN = ts_rows(F, B);
    double *dpooled = work, *dkv = dpooled + (size_t)B * P.P, *de = dkv + NN * 2 * D;
    double *g = de + NN * D, *gin = g + NN * Hd, *pw = gin + NN * Hd;
    /* output map */
    linear_backward(cx, dpooled, dparams + P.wout, dparams + P.bout, dfeat, fwd + P.pooled,
                    params + P.wout, B, P.P, F->n_out);
    /* the mean's part, then the attention's */
    memset(de, 0, (size_t)N * D * sizeof(double));
    {
        double *dmean = pw;  /* B x D, before segpool uses pw */
        for (int b = 0; b < B; b++)
            memcpy(dmean + (size_t)b * D, dpooled + (size_t)b * P.P + (size_t)Qp * D, (size_t)D * sizeof(double));
        segmean_backward(de, dmean, start, B, D);
    }
    if (!F->ts_pool) {
        /* dpooled's attention parts to B x Q x D contiguous (forwards: no overlap) */
        for (int b = 0; b < B; b++)
            memmove(dpooled + (size_t)b * Q * D, dpooled + (size_t)b * P.P, (size_t)Q * D * sizeof(double));
        const double *kv = fwd + P.kv;
        segpool_backward(dkv, dkv + D, dparams + P.seeds, dpooled, fwd + P.attn, kv, kv + D, 2 * D,
                         params + P.seeds, start, B, Q, D, F->heads, pw, threads);
        /* through the kv map: de += dkv W, dW, db */
        linear_backward(cx, NULL, dparams + P.wkv, dparams + P.bkv, dkv, fwd + P.e, params + P.wkv,
                        N, D, 2 * D);
        linear_backward_input_add(cx, de, dkv, params + P.wkv, N, D, 2 * D);
    }
    /* the MLP, last layer first */
    const double *gout = de;
    for (int l = L; l >= 0; l--) {
        const int C = width_in(F, l, P.U), OC = width_out(F, l);
        const double *in = l == 0 ? fwd + P.u : fwd + P.h + (size_t)(l - 1) * 2 * N * Hd + (size_t)N * Hd;
        double *din = l > 0 ? gin : NULL;
        linear_backward(cx, din, dparams + P.w[l], dparams + P.b[l], gout, in, params + P.w[l], N, C, OC);
        if (l > 0) {  /* through layer l - 1's GELU */
            const double *pre = fwd + P.h + (size_t)(l - 1) * 2 * N * Hd, *post = pre + (size_t)N * Hd;
            act_backward(g, gin, pre, post, (size_t)N * Hd, ACT_GELU, threads);
            gout = g;
        }
    }
}

const feat_ops feat_ops_timeseries = {ts_init_params, ts_fwd_work, ts_bwd_work, ts_forward,
                                      ts_backward};
