/* The mixture block that ends the flow: per coordinate j, K components with outputs (mean,
 * raw log-sd, logit) each (rows 3K j .. 3K j + 3K - 1); log-sd a_k = c tanh(raw_k / c) + log
 * tau (c = clamp_mix; tau >= 1 tempers the base); the density of z_j is
 * sum_k softmax(logit)_k N(z_j; mean_k, e^{2 a_k}). Autoregressive through the MADE: the
 * outputs of coordinate j see only the coordinates before it. */
#include <math.h>
#include <string.h>
#include "flow/block.h"
#include "rng.h"

/* the two formulas both directions share: the tempered log-sd of a component, and its
 * log-weighted density at standardised distance u without log sqrt(2 pi) */
VM_INLINE double mog_log_sd(double raw, double cm, double lt) { return flow_soft_clamp(raw, cm) + lt; }
VM_INLINE double mog_term(double logit, double a, double u) { return logit - a - 0.5 * u * u; }

static double mog_outputs(const flow_layout *L) { return 3.0 * L->K * L->d; }
static int mog_out_coord(const flow_layout *L, int o) { return o / (3 * L->K); }
static double mog_clamp(const flow_layout *L) { return L->clamp_mix; }
static void mog_tile_rows(const tile_block *w, int j, int *r0, int *n, int *step) {
    *r0 = j * 3 * w->K; *n = 3 * w->K; *step = 1;
}

/* components spread over (-1, 1), log-sds giving a total variance about 1, equal weights */
static void mog_init_bias(const flow_layout *L, double *bout) {
    const int K = L->K;
    double m2 = 0.0;
    for (int k = 0; k < K; k++) { double m = -1.0 + 2.0 * (k + 0.5) / K; m2 += m * m / K; }
    if (K == 1) m2 = 0.0;
    const double logsd = 0.5 * log(fmax(0.1, 1.0 - m2));
    const double raw = L->clamp_mix * atanh(logsd / L->clamp_mix);
    for (int j = 0; j < L->d; j++)
        for (int k = 0; k < K; k++) {
            double *bo = bout + ((size_t)j * K + k) * 3;
            bo[0] = K == 1 ? 0.0 : -1.0 + 2.0 * (k + 0.5) / K;
            bo[1] = raw;
            bo[2] = 0.0;
        }
}

VM_INLINE double sum_of(const double *w, int K) {
    double s = 0.0;
    for (int k = 0; k < K; k++) s += w[k];
    return s;
}

/* One coordinate's mixture: o holds (mean, raw log-sd, logit) x K, lt = log temperature
 * (0: the flow itself). Fills a (log-sds), e (e^-a), u (standardised z) and c (each
 * component's term, logits not yet normalised); returns log sum_k e^{logit_k}. Each loop
 * over k vectorises (no library calls). */
VM_INLINE double mog_terms(const double *o, int K, double cm, double z, double lt, double *a,
                           double *e, double *u, double *c) {
    double rmax = o[2], w[K], m[K], r[K], lg[K];
    for (int k = 0; k < K; k++) { m[k] = o[3 * k]; r[k] = o[3 * k + 1]; lg[k] = o[3 * k + 2]; }
    for (int k = 1; k < K; k++) rmax = vm_max(lg[k], rmax);
    #pragma omp simd
    for (int k = 0; k < K; k++) {
        w[k] = vm_exp(lg[k] - rmax);
        a[k] = mog_log_sd(r[k], cm, lt);
        e[k] = vm_exp(-a[k]);
        u[k] = (z - m[k]) * e[k];
        c[k] = mog_term(lg[k], a[k], u[k]);
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

/* training: each row adds the log-density of its d coordinates */
AI void mog_fwd_body(const flow_layout *L, const double *o, const double *z, double *zo,
                     double lt, double *logq, int n) {
    const int d = L->d, K = L->K;
    (void)zo;
    for (int i = 0; i < n; i++) {
        const double *oi = o + (size_t)i * 3 * K * d, *zi = z + (size_t)i * d;
        double s = 0.0;
        for (int j = 0; j < d; j++) {
            double a[K], e[K], u[K], c[K];
            const double lser = mog_terms(oi + (size_t)j * 3 * K, K, L->clamp_mix, zi[j], lt, a, e, u, c);
            s += log_sum_exp(c, K) - lser - LOG_SQRT_2PI;
        }
        logq[i] += s;
    }
}

/* training backward: G = dloss/dz (overwritten), dout = dloss/d(outputs) */
AI void mog_bwd_body(const flow_layout *L, const double *o, const double *z, const double *zo,
                     const double *g, double *dout, double *G, int n) {
    const int d = L->d, K = L->K;
    (void)zo;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            const size_t at = (size_t)i * 3 * K * d + (size_t)j * 3 * K;
            const double *oj = o + at;
            double *dj = dout + at;
            double a[K], e[K], u[K], c[K];
            const double lser = mog_terms(oj, K, L->clamp_mix, z[(size_t)i * d + j], 0.0, a, e, u, c);
            const double lp = log_sum_exp(c, K);  /* + lser: the log-density without log sqrt(2 pi) */
            #pragma omp simd
            for (int k = 0; k < K; k++) {
                const double gam = vm_exp(c[k] - lp);  /* responsibility of component k */
                const double q = (a[k]) / L->clamp_mix;
                dj[3 * k] = g[i] * gam * u[k] * e[k];
                dj[3 * k + 1] = g[i] * gam * (u[k] * u[k] - 1.0) * (1.0 - q * q);
                dj[3 * k + 2] = g[i] * (gam - vm_exp(oj[3 * k + 2] - lser));
                c[k] = gam * u[k] * e[k];  /* the term of -dz */
            }
            G[(size_t)i * d + j] = g[i] * -sum_of(c, K);
        }
}

/* The tiles: the mixture of coordinate j for every lane (s->o: mean, raw log-sd, logit per
 * component): rmax = the largest logit, cum = the cumulative weights e^(logit - rmax), sr =
 * their sum, as = the tempered log-sds */
AI void tile_mog_weights(const tile_block *w, double lt, tile_scratch *s) {
    const int K = w->K;
    const double cm = w->clamp, *o = s->o;
    double *rmax = s->rmax, *sr = s->sr;
    #pragma omp simd
    for (int i = 0; i < TILE; i++) { rmax[i] = o[2 * TILE + i]; sr[i] = 0.0; }
    for (int k = 1; k < K; k++) {
        const double *lg = o + (size_t)(3 * k + 2) * TILE;
        #pragma omp simd
        for (int i = 0; i < TILE; i++) rmax[i] = vm_max(lg[i], rmax[i]);
    }
    for (int k = 0; k < K; k++) {
        const double *raw = o + (size_t)(3 * k + 1) * TILE, *lg = raw + TILE;
        double *cum = s->cum + (size_t)k * TILE, *as = s->as + (size_t)k * TILE;
        #pragma omp simd
        for (int i = 0; i < TILE; i++) {
            sr[i] += vm_exp(lg[i] - rmax[i]);
            cum[i] = sr[i];
            as[i] = mog_log_sd(raw[i], cm, lt);
        }
    }
}

/* lq[i] += log of the tempered mixture at z[i], after tile_mog_weights; overwrites cum,
 * rmax and asel */
AI void tile_mog_density(const tile_block *w, const double *z, int nt, double *lq,
                         tile_scratch *s) {
    const int K = w->K;
    const double *o = s->o;
    double *big = s->asel, *sum = s->rmax, *sr = s->sr;
    /* log sum_k pi_k N(z; m_k, e^{2 a_k}) with logits shifted by rmax, the largest term
     * (big) factored out; the terms overwrite cum */
    #pragma omp simd
    for (int i = 0; i < TILE; i++) big[i] = -INFINITY;
    for (int k = 0; k < K; k++) {
        const double *mean = o + (size_t)(3 * k) * TILE, *lg = mean + 2 * TILE;
        const double *as = s->as + (size_t)k * TILE;
        double *term = s->cum + (size_t)k * TILE;
        #pragma omp simd
        for (int i = 0; i < TILE; i++) {
            double v = (z[i] - mean[i]) * vm_exp(-as[i]);
            term[i] = mog_term(lg[i] - s->rmax[i], as[i], v);
            big[i] = vm_max(term[i], big[i]);
        }
    }
    #pragma omp simd
    for (int i = 0; i < TILE; i++) sum[i] = 0.0;  /* rmax is no longer needed */
    for (int k = 0; k < K; k++) {
        const double *term = s->cum + (size_t)k * TILE;
        #pragma omp simd
        for (int i = 0; i < TILE; i++) sum[i] += vm_exp(term[i] - big[i]);
    }
    for (int i = 0; i < nt; i++) lq[i] += big[i] + log(sum[i] / sr[i]) - LOG_SQRT_2PI;
}

/* coordinate j of the mixture block for every lane at step t: a component by its weight,
 * z = mean + e^{a} n, and the log-density of the tempered mixture at z */
AI void tile_mog_draw(const tile_block *w, const tile_draws *td, int t, double *zj,
                      double *lq, tile_scratch *s) {
    const int K = w->K;
    const double *o = s->o;
    double *sr = s->sr, *zsel = s->zsel, *asel = s->asel;
    tile_mog_weights(w, td->lt, s);
    const uint64_t key = td->seed + 0xD1B54A32D192ED03ULL * (uint64_t)(t + 1);
    double *u1 = s->nrm, *u2 = s->cum + (size_t)(K - 1) * TILE;  /* cum's last row: free */
    for (int i = 0; i < TILE; i++) {
        rng_t r = rng_stream(key, td->first + i);  /* padding lanes draw too: harmless */
        s->u[i] = rng_unif(&r);
        u1[i] = rng_unif(&r);
        u2[i] = rng_unif(&r);
    }
    #pragma omp simd
    for (int i = 0; i < TILE; i++)  /* Box-Muller, as rng_norm */
        s->nrm[i] = vm_sqrt(-2.0 * vm_log(u1[i])) * vm_cos_2pi(u2[i]);
    /* the first component whose cumulative weight exceeds u * sum */
    #pragma omp simd
    for (int i = 0; i < TILE; i++) {
        zsel[i] = o[(size_t)(3 * (K - 1)) * TILE + i];
        asel[i] = s->as[(size_t)(K - 1) * TILE + i];
    }
    for (int k = K - 2; k >= 0; k--) {
        const double *cum = s->cum + (size_t)k * TILE, *as = s->as + (size_t)k * TILE;
        const double *mean = o + (size_t)(3 * k) * TILE;
        #pragma omp simd
        for (int i = 0; i < TILE; i++) {
            const uint64_t take = vm_mask(s->u[i] * sr[i] < cum[i]);
            zsel[i] = vm_select(take, mean[i], zsel[i]);
            asel[i] = vm_select(take, as[i], asel[i]);
        }
    }
    #pragma omp simd
    for (int i = 0; i < TILE; i++) zsel[i] += vm_exp(asel[i]) * s->nrm[i];
    tile_mog_density(w, zsel, td->nt, lq, s);
    for (int i = 0; i < td->nt; i++) zj[i] = zsel[i];
}

AI void mog_tile_body(const tile_block *w, const tile_draws *td, int t, double *zj, double *yj,
                      double *lq, tile_scratch *s, int density) {
    (void)yj;
    if (density) {
        tile_mog_weights(w, td->lt, s);
        tile_mog_density(w, zj, td->nt, lq, s);
    } else {
        tile_mog_draw(w, td, t, zj, lq, s);
    }
}

FLOW_KIND_ENTRIES(mog)

const flow_block_kind flow_block_mog = {
    "mog", 1, mog_outputs, mog_out_coord, mog_clamp, mog_init_bias, mog_tile_rows,
    FLOW_KIND_FUNCTIONS(mog)};
