#include <limits.h>
#include <math.h>
#include <string.h>
#include "flow/block.h"
#include "rng.h"

int flow_out_dim(const flow_layout *L, int b) { return L->out[b]; }

static size_t block_size(int d, int nc, int H, int layers, int OD) {
    return (size_t)H * d + (size_t)H * nc + H + (size_t)(layers - 1) * ((size_t)H * H + H) +
           (size_t)OD * H + OD + (size_t)OD * nc;
}

/* Returns 0 on success, a positive code naming the first bad field otherwise (flow.h). */
int flow_layout_init(flow_layout *L, int d, int nc, int hidden, int layers, int blocks, int K,
                     int act, double clamp, double clamp_mix, const int *order, int *rank_buf,
                     const int *kinds) {
    if (d < 1) return 1;
    if (nc < 0) return 2;
    if (hidden < 1) return 3;
    if (layers < 1 || layers > FLOW_MAX_LAYERS) return 4;
    if (blocks < 1) return 5;
    if (K < 1) return 6;
    if (act < 0 || act > 2) return 7;
    if (!(clamp > 0) || !isfinite(clamp) || !(clamp_mix > 0) || !isfinite(clamp_mix)) return 8;
    if (blocks > FLOW_MAX_BLOCKS) return 10;
    L->d = d; L->nc = nc; L->hidden = hidden; L->layers = layers; L->blocks = blocks;
    L->K = K; L->act = act; L->clamp = clamp; L->clamp_mix = clamp_mix;
    L->order = order; L->rank = rank_buf;
    for (int b = 0; b < blocks; b++) {  /* each block's order must be a permutation */
        int *rk = rank_buf + (size_t)b * d;
        for (int j = 0; j < d; j++) rk[j] = -1;
        for (int t = 0; t < d; t++) {
            int j = order[(size_t)b * d + t];
            if (j < 0 || j >= d || rk[j] != -1) return 9;
            rk[j] = t;
        }
    }
    /* each block's kind: the last ends the flow (terminal), the others map onto the next */
    for (int b = 0; b < blocks; b++) {
        const int k = kinds ? kinds[b] : (b == blocks - 1 ? FLOW_KIND_mog : 0);
        if (k < 0 || k >= FLOW_N_KINDS) return 12;
        if (flow_block_kinds[k]->terminal != (b == blocks - 1)) return 12;
        L->kind[b] = (unsigned char)k;
    }
    /* sizes, in double first: nothing wraps round */
    const double H = hidden, body = H * d + H * nc + H + (layers - 1) * (H * H + H);
    double total = 0.0;
    L->max_out = 0;
    for (int b = 0; b < blocks; b++) {
        const double od = flow_block_kinds[L->kind[b]]->outputs(L);
        if (!(od >= 1) || od > INT_MAX) return 11;
        total += body + od * (H + 1 + nc);
        if (total > 9.0e15) return 11;
        L->out[b] = (int)od;
        if (L->out[b] > L->max_out) L->max_out = L->out[b];
    }
    L->offset[0] = 0;
    for (int b = 0; b < blocks; b++)
        L->offset[b + 1] = L->offset[b] + block_size(d, nc, hidden, layers, L->out[b]);
    L->n_params = L->offset[blocks];
    return 0;
}

size_t flow_block_offset(const flow_layout *L, int b) { return L->offset[b]; }

made_params flow_block_params(const flow_layout *L, double *params, int b) {
    made_params p;
    const int d = L->d, H = L->hidden;
    double *q = params + flow_block_offset(L, b);
    p.Win = q;  q += (size_t)H * d;
    p.Wc = q;   q += (size_t)H * L->nc;
    p.b1 = q;   q += H;
    for (int l = 1; l < L->layers; l++) {
        p.Wh[l] = q; q += (size_t)H * H;
        p.bh[l] = q; q += H;
    }
    p.Wout = q; q += (size_t)flow_out_dim(L, b) * H;
    p.bout = q; q += flow_out_dim(L, b);
    p.Wco = q;
    return p;
}

/* MADE degrees: input j has degree rank_j + 1; hidden unit h has degree h mod d;
 * an output of coordinate j may see hidden units of degree <= rank_j. */
static inline int hdeg(int h, int d) { return h % d; }
static inline int out_coord(const flow_layout *L, int b, int o) {
    return flow_kind(L, b)->out_coord(L, o);
}

/* 1 when every entry of block b the MADE masks forbid is zero, else 0: every entry is
 * visited (no early exit, so the loops over a row vectorise; a masked block, the usual
 * case, is read whole either way) */
static int block_masked(const flow_layout *L, const double *v, int b) {
    const int d = L->d, H = L->hidden;
    made_params p = flow_block_params(L, (double *)v, b);
    const int *rk = L->rank + (size_t)b * d;
    int deg[H], bad = 0;
    for (int h = 0; h < H; h++) deg[h] = hdeg(h, d);
    for (int h = 0; h < H; h++)
        for (int j = 0; j < d; j++)
            bad |= (deg[h] < rk[j] + 1) & (p.Win[(size_t)h * d + j] != 0.0);
    for (int l = 1; l < L->layers; l++)
        for (int h2 = 0; h2 < H; h2++) {
            const double *row = p.Wh[l] + (size_t)h2 * H;
            const int d2 = deg[h2];
            #pragma omp simd reduction(|:bad)
            for (int h1 = 0; h1 < H; h1++) bad |= (d2 < deg[h1]) & (row[h1] != 0.0);
        }
    const int OD = flow_out_dim(L, b);
    for (int o = 0; o < OD; o++) {
        const double *row = p.Wout + (size_t)o * H;
        const int r = rk[out_coord(L, b, o)];
        #pragma omp simd reduction(|:bad)
        for (int h = 0; h < H; h++) bad |= (deg[h] > r) & (row[h] != 0.0);
    }
    return !bad;
}

/* zeroes every entry block_masked checks: each row is multiplied by 0 or 1
 * from a comparison of degrees, in loops that vectorise (finite entries become +-0, NaN
 * stays NaN: a gradient with NaN is rejected whole anyway); rows spread over the threads */
void flow_mask(const flow_layout *L, double *v, int threads) {
    const int d = L->d, H = L->hidden;
    int deg[H];
    for (int h = 0; h < H; h++) deg[h] = hdeg(h, d);
    #pragma omp parallel num_threads(threads) if (threads > 1 && (double)H * H * L->blocks > 65536)
    for (int b = 0; b < L->blocks; b++) {
        made_params p = flow_block_params(L, v, b);
        const int *rk = L->rank + (size_t)b * d;
        #pragma omp for schedule(static)
        for (int h2 = 0; h2 < H; h2++) {
            const int d2 = deg[h2];
            for (int j = 0; j < d; j++) p.Win[(size_t)h2 * d + j] *= (double)(d2 >= rk[j] + 1);
            for (int l = 1; l < L->layers; l++) {
                double *row = p.Wh[l] + (size_t)h2 * H;
                #pragma omp simd
                for (int h1 = 0; h1 < H; h1++) row[h1] *= (double)(d2 >= deg[h1]);
            }
        }
        const int OD = flow_out_dim(L, b);
        #pragma omp for schedule(static)
        for (int o = 0; o < OD; o++) {
            double *row = p.Wout + (size_t)o * H;
            const int r = rk[out_coord(L, b, o)];
            #pragma omp simd
            for (int h = 0; h < H; h++) row[h] *= (double)(deg[h] <= r);
        }
    }
}

/* 1 when every entry flow_mask would zero is already zero (then no masked copy is needed) */
int flow_is_masked(const flow_layout *L, const double *v, int threads) {
    int ok = 1;
    #pragma omp parallel for num_threads(threads) if (L->blocks > 1 && L->n_params > 65536) reduction(&&:ok) schedule(dynamic)
    for (int b = 0; b < L->blocks; b++) ok = ok && block_masked(L, v, b);
    return ok;
}

static void fill_unif(double *w, size_t n, double scale, rng_t *r) {
    for (size_t i = 0; i < n; i++) w[i] = scale * (2.0 * rng_unif(r) - 1.0);
}

/* Uniform(+-1/sqrt(fan_in)) weights, small output layers (each block starts near the
 * identity), and the biases each kind starts from (the mixture's: components spread over
 * (-1, 1) with total variance about 1). */
void flow_init_params(const flow_layout *L, double *params, uint64_t seed) {
    const int d = L->d, H = L->hidden;
    rng_t r = rng_stream(seed, 0);
    memset(params, 0, L->n_params * sizeof(double));
    for (int b = 0; b < L->blocks; b++) {
        made_params p = flow_block_params(L, params, b);
        const int OD = flow_out_dim(L, b);
        double s1 = 1.0 / sqrt((double)(d + L->nc));
        fill_unif(p.Win, (size_t)H * d, s1, &r);
        fill_unif(p.Wc, (size_t)H * L->nc, s1, &r);
        for (int l = 1; l < L->layers; l++) fill_unif(p.Wh[l], (size_t)H * H, 1.0 / sqrt((double)H), &r);
        fill_unif(p.Wout, (size_t)OD * H, 0.1 / sqrt((double)H), &r);
        if (L->nc > 0) fill_unif(p.Wco, (size_t)OD * L->nc, 0.1 / sqrt((double)L->nc), &r);
        if (flow_kind(L, b)->init_bias) flow_kind(L, b)->init_bias(L, p.bout);
    }
    flow_mask(L, params, 1);
}
