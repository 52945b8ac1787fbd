/* MAF log-density, its gradient, and sampling. See flow.h for the model. */
#include <math.h>
#include <string.h>
#include "nn/nn.h"
#include "flow/made.h"

#define PAR_ROWS 256

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
static inline double soft_clamp(double raw, double c) { return c * tanh(raw / c); }

/* log of sum_k pi_k N(z; m_k, s_k e^lt) for one coordinate; o holds (mean, raw log-sd,
 * logit) x K; lt = log temperature (0: the flow itself) */
static double mog_logpdf_t(const double *o, int K, double cm, double z, double lt) {
    double rmax = -INFINITY, cmax = -INFINITY;
    for (int k = 0; k < K; k++) rmax = fmax(rmax, o[3 * k + 2]);
    double sr = 0.0;
    for (int k = 0; k < K; k++) sr += exp(o[3 * k + 2] - rmax);
    const double lser = rmax + log(sr);
    for (int k = 0; k < K; k++) {
        double a = soft_clamp(o[3 * k + 1], cm) + lt, u = (z - o[3 * k]) * exp(-a);
        cmax = fmax(cmax, o[3 * k + 2] - lser - a - 0.5 * u * u);
    }
    double s = 0.0;
    for (int k = 0; k < K; k++) {
        double a = soft_clamp(o[3 * k + 1], cm) + lt, u = (z - o[3 * k]) * exp(-a);
        s += exp(o[3 * k + 2] - lser - a - 0.5 * u * u - cmax);
    }
    return cmax + log(s) - LOG_SQRT_2PI;
}

static double mog_logpdf(const double *o, int K, double cm, double z) {
    return mog_logpdf_t(o, K, cm, z, 0.0);
}

/* gradient of g * mog_logpdf wrt the 3K outputs (into dout) and wrt z (returned) */
static double mog_backward(const double *o, int K, double cm, double z, double g, double *dout) {
    const double lp = mog_logpdf(o, K, cm, z) + LOG_SQRT_2PI;
    double rmax = -INFINITY, sr = 0.0, dz = 0.0;
    for (int k = 0; k < K; k++) rmax = fmax(rmax, o[3 * k + 2]);
    for (int k = 0; k < K; k++) sr += exp(o[3 * k + 2] - rmax);
    const double lser = rmax + log(sr);
    for (int k = 0; k < K; k++) {
        double a = soft_clamp(o[3 * k + 1], cm), s = exp(a), u = (z - o[3 * k]) / s;
        double lpi = o[3 * k + 2] - lser;
        double gam = exp(lpi - a - 0.5 * u * u - lp);  /* responsibility of component k */
        dout[3 * k] = g * gam * u / s;
        dout[3 * k + 1] = g * gam * (u * u - 1.0) * (1.0 - (a / cm) * (a / cm));
        dout[3 * k + 2] = g * (gam - exp(lpi));
        dz -= gam * u / s;
    }
    return g * dz;
}

void flow_forward(const flow_layout *L, const double *params, const double *x, const double *ctx,
                  int ctx_rows, int B, double tau, double *logq, double *work, int threads) {
    const int d = L->d, K = L->K, nb = L->blocks;
    const double lt = log(tau);
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
            for (int i = 0; i < B; i++) {
                const double *o = c.out + (size_t)i * OD, *zi = c.zin + (size_t)i * d;
                double *zo = zn + (size_t)i * d, ld = 0.0;
                for (int j = 0; j < d; j++) {  /* u = (z - mu) exp(-alpha) */
                    double a = soft_clamp(o[d + j], L->clamp);
                    zo[j] = (zi[j] - o[j]) * exp(-a);
                    ld -= a;
                }
                logq[i] += ld;
            }
        } else {
            #pragma omp parallel for num_threads(threads) if (B > PAR_ROWS) schedule(static)
            for (int i = 0; i < B; i++) {
                double s = 0.0;
                for (int j = 0; j < d; j++)
                    s += mog_logpdf_t(c.out + (size_t)i * OD + (size_t)j * 3 * K, K, L->clamp_mix,
                                      c.zin[(size_t)i * d + j], lt);
                logq[i] += s;
            }
        }
    }
}

void flow_backward(const flow_layout *L, const double *params, const double *ctx, int B,
                   const double *g, double *dparams, double *dctx, double *dx,
                   const double *fwd, double *work, int threads) {
    const int d = L->d, K = L->K, nb = L->blocks;
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
                for (int j = 0; j < d; j++) {
                    size_t oj = (size_t)i * OD + (size_t)j * 3 * K;
                    G[(size_t)i * d + j] = mog_backward(c.out + oj, K, L->clamp_mix,
                                                        c.zin[(size_t)i * d + j], g[i], dout + oj);
                }
        } else {
            const double *zn = cache_at(L, caches, B, b + 1).zin;
            #pragma omp parallel for num_threads(threads) if (B > PAR_ROWS) schedule(static)
            for (int i = 0; i < B; i++) {
                const double *o = c.out + (size_t)i * OD;
                double *Gi = G + (size_t)i * d, *di = dout + (size_t)i * OD;
                for (int j = 0; j < d; j++) {
                    double a = soft_clamp(o[d + j], L->clamp), e = exp(-a);
                    double dalpha = -Gi[j] * zn[(size_t)i * d + j] - g[i];
                    di[j] = -Gi[j] * e;
                    di[d + j] = dalpha * (1.0 - (a / L->clamp) * (a / L->clamp));
                    Gi[j] *= e;  /* direct path dz_out/dz_in */
                }
            }
        }
        made_backward(L, p, gp, OD, c.zin, ctx, B, c.pre, c.post, dout, dzn, dctx, mwork, threads);
        for (size_t i = 0; i < (size_t)B * d; i++) G[i] += dzn[i];
    }
    if (dx) memcpy(dx, G, (size_t)B * d * sizeof(double));
    flow_mask(L, dparams);
}
