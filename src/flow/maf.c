/* MAF log-density, its gradient, and sampling. See flow.h for the model. */
#include <math.h>
#include <string.h>
#include "nn/nn.h"
#include "nn/vmath.h"
#include "flow/made.h"

#define PAR_ROWS 256
#define ROW_CHUNK 32  /* rows per call of the affine maps */

typedef struct { double *zin, *pre, *post, *out; } block_cache;

static size_t cache_size(const flow_layout *L, int B, int b) {
    return (size_t)B * (L->d + 2 * (size_t)L->layers * L->hidden + flow_out_dim(L, b));
}

static block_cache cache_at(const flow_layout *L, double *work, int B, int b) {
    block_cache c;
    for (int i = 0; i < b; i++) work += cache_size(L, B, i);
    const size_t BH = (size_t)B * L->hidden;
    c.zin = work;
    c.pre = c.zin + (size_t)B * L->d;
    c.post = c.pre + L->layers * BH;
    c.out = c.post + L->layers * BH;
    return c;
}

size_t flow_fwd_work(const flow_layout *L, int B) {
    size_t n = (size_t)B * (L->hidden + 3 * L->K * L->d);  /* cbase, cout */
    for (int b = 0; b < L->blocks; b++) n += cache_size(L, B, b);
    return n;
}

size_t flow_bwd_work(const flow_layout *L, int B) {
    return (size_t)B * (3 * L->K * L->d + 2 * L->d + 2 * L->hidden);
}

/* soft clamp: c * tanh(raw / c) lies in (-c, c) and is the identity near 0 */
VM_INLINE double soft_clamp(double raw, double c) { return c * vm_tanh(raw / c); }

VM_INLINE double sum_of(const double *w, int K) {
    double s = 0.0;
    for (int k = 0; k < K; k++) s += w[k];
    return s;
}

/* One coordinate's mixture: o holds (mean, raw log-sd, logit) x K, lt = log temperature
 * (0: the flow itself). Fills a (log-sds), e (e^-a), u (standardised z) and c (log of
 * each weighted component density, logits not yet normalised, without log sqrt(2 pi));
 * returns log sum_k e^{logit_k}. Each loop over k vectorises (no library calls). */
VM_INLINE double mog_terms(const double *o, int K, double cm, double z, double lt, double *a,
                        double *e, double *u, double *c) {
    double rmax = o[2], w[K], m[K], r[K], lg[K];
    for (int k = 0; k < K; k++) { m[k] = o[3 * k]; r[k] = o[3 * k + 1]; lg[k] = o[3 * k + 2]; }
    for (int k = 1; k < K; k++) rmax = vm_max(lg[k], rmax);
    #pragma omp simd
    for (int k = 0; k < K; k++) {
        w[k] = vm_exp(lg[k] - rmax);
        a[k] = soft_clamp(r[k], cm) + lt;
        e[k] = vm_exp(-a[k]);
        u[k] = (z - m[k]) * e[k];
        c[k] = lg[k] - a[k] - 0.5 * u[k] * u[k];
    }
    return rmax + vm_log(sum_of(w, K));
}

/* log sum_k e^{c_k} */
VM_INLINE double log_sum_exp(const double *c, int K) {
    double cmax = c[0], w[K];
    for (int k = 1; k < K; k++) cmax = vm_max(c[k], cmax);
    #pragma omp simd
    for (int k = 0; k < K; k++) w[k] = vm_exp(c[k] - cmax);
    return cmax + vm_log(sum_of(w, K));
}

/* log of sum_k pi_k N(z; m_k, s_k e^lt) for one coordinate */
VM_INLINE double mog_logpdf_t(const double *o, int K, double cm, double z, double lt) {
    double a[K], e[K], u[K], c[K];
    const double lser = mog_terms(o, K, cm, z, lt, a, e, u, c);
    return log_sum_exp(c, K) - lser - LOG_SQRT_2PI;
}

/* gradient of g * mog_logpdf wrt the 3K outputs (into dout) and wrt z (returned) */
VM_INLINE double mog_backward(const double *o, int K, double cm, double z, double g, double *dout) {
    double a[K], e[K], u[K], c[K], dz = 0.0;
    const double lser = mog_terms(o, K, cm, z, 0.0, a, e, u, c);
    const double lp = log_sum_exp(c, K);  /* + lser: the log-density without log sqrt(2 pi) */
    #pragma omp simd
    for (int k = 0; k < K; k++) {
        const double gam = vm_exp(c[k] - lp);  /* responsibility of component k */
        const double q = a[k] / cm;
        dout[3 * k] = g * gam * u[k] * e[k];
        dout[3 * k + 1] = g * gam * (u[k] * u[k] - 1.0) * (1.0 - q * q);
        dout[3 * k + 2] = g * (gam - vm_exp(o[3 * k + 2] - lser));
        c[k] = gam * u[k] * e[k];  /* the term of -dz */
    }
    dz = -sum_of(c, K);
    return g * dz;
}

/* the per-row maps between the blocks' networks, compiled for the base CPU and, on x86-64,
 * for AVX2 + FMA (where the loops over mixture components vectorise), picked at run time */
#define ROWS(name) name##_base
#define ROWS_ATTR
#include "flow/maf_rows.h"
#undef ROWS
#undef ROWS_ATTR
#ifdef VM_DISPATCH
#define ROWS(name) name##_avx2
#define ROWS_ATTR VM_AVX2
#include "flow/maf_rows.h"
#undef ROWS
#undef ROWS_ATTR
#endif

typedef struct {
    void (*affine_fwd)(const flow_layout *, const double *, const double *, double *, double *,
                       int);
    void (*mog_fwd)(const flow_layout *, const double *, const double *, double, double *);
    void (*affine_bwd)(const flow_layout *, const double *, const double *, const double *,
                       double *, double *, int);
    void (*mog_bwd)(const flow_layout *, const double *, const double *, double, double *,
                    double *);
} row_kernels;

static row_kernels row_kernels_for_cpu(void) {
#ifdef VM_DISPATCH
    if (vm_have_avx2())
        return (row_kernels){affine_fwd_rows_avx2, mog_fwd_row_avx2, affine_bwd_rows_avx2,
                             mog_bwd_row_avx2};
#endif
    return (row_kernels){affine_fwd_rows_base, mog_fwd_row_base, affine_bwd_rows_base,
                         mog_bwd_row_base};
}

void flow_forward(const flow_layout *L, const double *params, const double *x, const double *ctx,
                  int ctx_rows, int B, double tau, double *logq, double *work, int threads) {
    const int d = L->d, K = L->K, nb = L->blocks;
    const double lt = log(tau);
    const row_kernels rk = row_kernels_for_cpu();
    double *cbase = work, *cout = work + (size_t)B * L->hidden;
    double *caches = cout + (size_t)B * 3 * K * d;
    memcpy(cache_at(L, caches, B, 0).zin, x, (size_t)B * d * sizeof(double));
    for (int i = 0; i < B; i++) logq[i] = 0.0;
    for (int b = 0; b < nb; b++) {
        made_params p = flow_block_params(L, (double *)params, b);
        block_cache c = cache_at(L, caches, B, b);
        const int OD = flow_out_dim(L, b);
        made_context(L, p, OD, ctx, ctx_rows, cbase, cout);
        made_forward(L, p, OD, c.zin, cbase, cout, ctx_rows, B, c.pre, c.post, c.out, threads);
        if (b < nb - 1) {
            double *zn = cache_at(L, caches, B, b + 1).zin;
            #pragma omp parallel for num_threads(threads) if (B > PAR_ROWS) schedule(static)
            for (int i = 0; i < B; i += ROW_CHUNK)
                rk.affine_fwd(L, c.out + (size_t)i * OD, c.zin + (size_t)i * d,
                              zn + (size_t)i * d, logq + i, B - i < ROW_CHUNK ? B - i : ROW_CHUNK);
        } else {
            #pragma omp parallel for num_threads(threads) if (B > PAR_ROWS) schedule(static)
            for (int i = 0; i < B; i++)
                rk.mog_fwd(L, c.out + (size_t)i * OD, c.zin + (size_t)i * d, lt, logq + i);
        }
    }
}

void flow_backward(const flow_layout *L, const double *params, const double *ctx, int B,
                   const double *g, double *dparams, double *dctx, double *dx,
                   const double *fwd, double *work, int threads) {
    const int d = L->d, K = L->K, nb = L->blocks;
    const row_kernels rk = row_kernels_for_cpu();
    double *caches = (double *)fwd + (size_t)B * (L->hidden + 3 * K * d);
    double *dout = work, *G = dout + (size_t)B * 3 * K * d, *dzn = G + (size_t)B * d;
    double *mwork = dzn + (size_t)B * d;
    if (dctx) memset(dctx, 0, (size_t)B * L->nc * sizeof(double));
    for (int b = nb - 1; b >= 0; b--) {
        made_params p = flow_block_params(L, (double *)params, b);
        made_params gp = flow_block_params(L, dparams, b);
        block_cache c = cache_at(L, caches, B, b);
        const int OD = flow_out_dim(L, b);
        if (b == nb - 1) {
            #pragma omp parallel for num_threads(threads) if (B > PAR_ROWS) schedule(static)
            for (int i = 0; i < B; i++)
                rk.mog_bwd(L, c.out + (size_t)i * OD, c.zin + (size_t)i * d, g[i],
                           dout + (size_t)i * OD, G + (size_t)i * d);
        } else {
            const double *zn = cache_at(L, caches, B, b + 1).zin;
            #pragma omp parallel for num_threads(threads) if (B > PAR_ROWS) schedule(static)
            for (int i = 0; i < B; i += ROW_CHUNK)
                rk.affine_bwd(L, c.out + (size_t)i * OD, zn + (size_t)i * d, g + i,
                              dout + (size_t)i * OD, G + (size_t)i * d,
                              B - i < ROW_CHUNK ? B - i : ROW_CHUNK);
        }
        made_backward(L, p, gp, OD, c.zin, ctx, B, c.pre, c.post, dout, dzn, dctx, mwork, threads);
        for (size_t i = 0; i < (size_t)B * d; i++) G[i] += dzn[i];
    }
    if (dx) memcpy(dx, G, (size_t)B * d * sizeof(double));
    flow_mask(L, dparams, threads);
}
