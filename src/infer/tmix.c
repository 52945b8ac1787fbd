#include <math.h>
#include <string.h>
#include "infer/tmix.h"
#include "rng.h"

#define LOG_PI 1.14472988584940017414

double tmix_lconst(double df, int d) {
    return lgamma(0.5 * (df + d)) - lgamma(0.5 * df) - 0.5 * d * (log(df) + LOG_PI);
}

int chol_lower(double *a, int d) {
    for (int j = 0; j < d; j++) {
        double s = a[j * d + j];
        for (int k = 0; k < j; k++) s -= a[j * d + k] * a[j * d + k];
        if (!(s > 0.0) || !isfinite(s)) return 1;
        const double ljj = sqrt(s);
        a[j * d + j] = ljj;
        for (int i = j + 1; i < d; i++) {
            double t = a[i * d + j];
            for (int k = 0; k < j; k++) t -= a[i * d + k] * a[j * d + k];
            a[i * d + j] = t / ljj;
        }
        for (int k = j + 1; k < d; k++) a[j * d + k] = 0.0;
    }
    return 0;
}

void chol_solve(const double *L, int d, double *b) {
    for (int a = 0; a < d; a++) {      /* L y = b */
        double t = b[a];
        for (int c = 0; c < a; c++) t -= L[a * d + c] * b[c];
        b[a] = t / L[a * d + a];
    }
    for (int a = d - 1; a >= 0; a--) { /* L' x = y */
        double t = b[a];
        for (int c = a + 1; c < d; c++) t -= L[c * d + a] * b[c];
        b[a] = t / L[a * d + a];
    }
}

/* squared norm of u = L^-1 (z - mu) (forward substitution); u: d doubles */
static double mahalanobis2(const double *L, const double *mu, const double *z, int d, double *u) {
    double q = 0.0;
    for (int i = 0; i < d; i++) {
        double t = z[i] - mu[i];
        for (int k = 0; k < i; k++) t -= L[i * d + k] * u[k];
        u[i] = t / L[i * d + i];
        q += u[i] * u[i];
    }
    return q;
}

static double log_det_half(const double *L, int d) {  /* log |L| = log sqrt |S| */
    double s = 0.0;
    for (int i = 0; i < d; i++) s += log(L[i * d + i]);
    return s;
}

void tmix_log_density(const tmix *g, const double *z, int n, double *out, double *tmp) {
    const int d = g->d, K = g->K;
    double ld[64];  /* per component: log share - log |L| + lconst */
    for (int k = 0; k < K && k < 64; k++)
        ld[k] = g->share[k] > 0 ? log(g->share[k]) - log_det_half(g->chol + (size_t)k * d * d, d) +
                                      g->lconst
                                : -INFINITY;
    const double a = 0.5 * (g->df + d);
    for (int i = 0; i < n; i++) {
        const double *zi = z + (size_t)i * d;
        double m = -INFINITY, terms[64];
        for (int k = 0; k < K; k++) {
            if (ld[k] == -INFINITY) { terms[k] = -INFINITY; continue; }
            double q = mahalanobis2(g->chol + (size_t)k * d * d, g->mu + (size_t)k * d, zi, d, tmp);
            terms[k] = ld[k] - a * log1p(q / g->df);
            if (terms[k] > m) m = terms[k];
        }
        double s = 0.0;
        if (m > -INFINITY)
            for (int k = 0; k < K; k++) s += exp(terms[k] - m);
        out[i] = m > -INFINITY ? m + log(s) : -INFINITY;
    }
}

/* Gamma(shape, 1) by Marsaglia & Tsang (2000); shape < 1 through Gamma(shape + 1) U^(1/shape) */
static double rng_gamma(rng_t *r, double shape) {
    if (shape < 1.0) return rng_gamma(r, shape + 1.0) * pow(rng_unif(r), 1.0 / shape);
    const double dd = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * dd);
    for (;;) {
        double x = rng_norm(r), v = 1.0 + c * x;
        if (v <= 0.0) continue;
        v = v * v * v;
        double u = rng_unif(r);
        if (u < 1.0 - 0.0331 * x * x * x * x) return dd * v;
        if (log(u) < 0.5 * x * x + dd * (1.0 - v + log(v))) return dd * v;
    }
}

void tmix_sample(const tmix *g, int n, uint64_t seed, uint64_t index0, double *z) {
    const int d = g->d, K = g->K;
    double total = 0.0;
    for (int k = 0; k < K; k++) total += g->share[k];
    for (int i = 0; i < n; i++) {
        rng_t r = rng_stream(seed, index0 + (uint64_t)i);
        double u = rng_unif(&r) * total, c = 0.0;
        int k = 0, last = 0;
        for (int j = 0; j < K; j++) if (g->share[j] > 0) last = j;
        for (k = 0; k < K; k++) {
            if (g->share[k] <= 0) continue;
            c += g->share[k];
            if (u < c) break;
        }
        if (k >= K) k = last;  /* rounding at the top end */
        const double *L = g->chol + (size_t)k * d * d, *mu = g->mu + (size_t)k * d;
        const double scale = sqrt(g->df / (2.0 * rng_gamma(&r, 0.5 * g->df)));  /* df / chi2(df) */
        double *zi = z + (size_t)i * d, e[64];
        for (int j = 0; j < d && j < 64; j++) e[j] = rng_norm(&r);
        for (int a = 0; a < d; a++) {
            double t = 0.0;
            for (int b = 0; b <= a; b++) t += L[a * d + b] * e[b];
            zi[a] = mu[a] + scale * t;
        }
    }
}

int tmix_fit_components(const tmix_settings *s) { return s->components + (s->laplace_share > 0); }

size_t tmix_fit_work(int n, int d, const tmix_settings *s) {
    const size_t m = (size_t)(n < s->em_rows ? n : s->em_rows);
    const size_t K = (size_t)s->components;
    /* rows, weights, responsibilities, distances, covariance, scratch (then Laplace's) */
    return m * d + m + m * K + m + (size_t)n + (size_t)d * d * 3 + (size_t)d + 8 +
           (s->laplace_share > 0 ? laplace_work(n, d) : 0);
}

/* The rows with positive weight as a compact m x d set with weights summing to 1; with more
 * than em_rows of them, a systematic resample of em_rows rows with equal weights. Returns m
 * and the effective count of the original weights in *n_eff. */
static int compact_rows(const double *z, const double *log_w, int n, int d, int em_rows,
                        rng_t *r, double *zz, double *ww, double *wfull, double *n_eff) {
    double mx = -INFINITY;
    for (int i = 0; i < n; i++) if (log_w[i] > mx && !isnan(log_w[i])) mx = log_w[i];
    if (!(mx > -INFINITY) || mx == INFINITY) return 0;
    double sum = 0.0, sum2 = 0.0;
    int pos = 0;
    for (int i = 0; i < n; i++) {
        double w = isnan(log_w[i]) ? 0.0 : exp(log_w[i] - mx);
        if (w < 1e-12) w = 0.0;
        wfull[i] = w;
        sum += w;
        pos += w > 0;
    }
    for (int i = 0; i < n; i++) { wfull[i] /= sum; sum2 += wfull[i] * wfull[i]; }
    *n_eff = 1.0 / sum2;
    int m = 0;
    if (pos <= em_rows) {
        for (int i = 0; i < n; i++)
            if (wfull[i] > 0) {
                memcpy(zz + (size_t)m * d, z + (size_t)i * d, d * sizeof(double));
                ww[m++] = wfull[i];
            }
        return m;
    }
    /* systematic resampling: one uniform, em_rows evenly spaced pointers into the cdf */
    const double step = 1.0 / em_rows;
    double u = rng_unif(r) * step, c = 0.0;
    for (int i = 0; i < n && m < em_rows; i++) {
        c += wfull[i];
        while (m < em_rows && u < c) {
            memcpy(zz + (size_t)m * d, z + (size_t)i * d, d * sizeof(double));
            ww[m++] = step;
            u += step;
        }
    }
    for (int i = n - 1; m < em_rows; m++) {  /* rounding at the top end */
        while (i > 0 && wfull[i] == 0) i--;
        memcpy(zz + (size_t)m * d, z + (size_t)i * d, d * sizeof(double));
        ww[m] = step;
    }
    return m;
}

static double dist2(const double *a, const double *b, int d) {
    double s = 0.0;
    for (int j = 0; j < d; j++) s += (a[j] - b[j]) * (a[j] - b[j]);
    return s;
}

/* weighted k-means++ seeding then Lloyd iterations; returns the number of centres */
static int kmeans_init(const double *zz, const double *ww, int m, int d, int K, int iters,
                       rng_t *r, double *mu, double *dmin, int *assign_buf) {
    /* first centre: a row drawn by weight */
    double u = rng_unif(r), c = 0.0;
    int i0 = m - 1;
    for (int i = 0; i < m; i++) { c += ww[i]; if (u < c) { i0 = i; break; } }
    memcpy(mu, zz + (size_t)i0 * d, d * sizeof(double));
    int k = 1;
    for (int i = 0; i < m; i++) dmin[i] = dist2(zz + (size_t)i * d, mu, d);
    while (k < K) {
        double tot = 0.0;
        for (int i = 0; i < m; i++) tot += ww[i] * dmin[i];
        if (!(tot > 0)) break;  /* every row sits on a centre */
        u = rng_unif(r) * tot;
        c = 0.0;
        int pick = -1;
        for (int i = 0; i < m; i++) { c += ww[i] * dmin[i]; if (u < c) { pick = i; break; } }
        if (pick < 0) for (int i = m - 1; i >= 0; i--) if (ww[i] * dmin[i] > 0) { pick = i; break; }
        memcpy(mu + (size_t)k * d, zz + (size_t)pick * d, d * sizeof(double));
        for (int i = 0; i < m; i++) {
            double dd = dist2(zz + (size_t)i * d, mu + (size_t)k * d, d);
            if (dd < dmin[i]) dmin[i] = dd;
        }
        k++;
    }
    for (int it = 0; it < iters; it++) {
        int changed = 0;
        for (int i = 0; i < m; i++) {
            int best = 0;
            double bd = INFINITY;
            for (int j = 0; j < k; j++) {
                double dd = dist2(zz + (size_t)i * d, mu + (size_t)j * d, d);
                if (dd < bd) { bd = dd; best = j; }
            }
            if (it == 0 || assign_buf[i] != best) changed = 1;
            assign_buf[i] = best;
        }
        if (!changed) break;
        /* weighted means; a centre that lost every row is dropped */
        double mass[64];
        for (int j = 0; j < k; j++) { mass[j] = 0.0; memset(mu + (size_t)j * d, 0, d * sizeof(double)); }
        for (int i = 0; i < m; i++) {
            const int j = assign_buf[i];
            mass[j] += ww[i];
            for (int a = 0; a < d; a++) mu[(size_t)j * d + a] += ww[i] * zz[(size_t)i * d + a];
        }
        int kk = 0;
        for (int j = 0; j < k; j++) {
            if (!(mass[j] > 0)) continue;
            for (int a = 0; a < d; a++) mu[(size_t)kk * d + a] = mu[(size_t)j * d + a] / mass[j];
            kk++;
        }
        if (kk < k) { k = kk; it = -1; }  /* reassign against the surviving centres */
        if (k == 0) return 0;
    }
    return k;
}

/* S = widen2 (n_k S + shrink T) / (n_k + shrink) + floor S0, then its lower Cholesky factor;
 * more of S0 is added until it factorises */
static int regularise(double *S, const double *T, const double *S0, int d, double n_k,
                      const tmix_settings *s, double widen2, double *tmp) {
    for (int a = 0; a < d * d; a++)
        S[a] = widen2 * (n_k * S[a] + s->shrink * T[a]) / (n_k + s->shrink) + s->floor * S0[a];
    for (double extra = 0.0; extra < 1e6; extra = extra > 0 ? extra * 10 : 1e-6) {
        for (int a = 0; a < d * d; a++) tmp[a] = S[a] + extra * S0[a];
        if (chol_lower(tmp, d) == 0) { memcpy(S, tmp, (size_t)d * d * sizeof(double)); return 0; }
    }
    return 1;
}

int tmix_fit(tmix *g, const double *z, const double *log_w, const double *log_p, int n,
             const double *S0, const tmix_settings *s, uint64_t seed, double *work) {
    const int d = g->d, K = s->components;
    rng_t r = rng_stream(seed, 0);
    const int cap = n < s->em_rows ? n : s->em_rows;
    double *zz = work, *ww = zz + (size_t)cap * d, *resp = ww + cap, *dmin = resp + (size_t)cap * K;
    double *wfull = dmin + cap, *S = wfull + n, *tmp = S + (size_t)d * d, *W = tmp + (size_t)d * d;
    double *u = W + (size_t)d * d, *lwork = u + d + 8;
    {   /* S0 must factorise */
        memcpy(tmp, S0, (size_t)d * d * sizeof(double));
        if (chol_lower(tmp, d)) return 2;
    }
    /* every component starts dead with a valid factor (the identity), live ones get theirs */
    for (int k = 0; k < g->K; k++) {
        g->share[k] = 0.0;
        double *L = g->chol + (size_t)k * d * d;
        memset(L, 0, (size_t)d * d * sizeof(double));
        memset(g->mu + (size_t)k * d, 0, (size_t)d * sizeof(double));
        for (int a = 0; a < d; a++) L[a * d + a] = 1.0;
    }
    double n_eff = 0.0;
    const int m = compact_rows(z, log_w, n, d, cap, &r, zz, ww, wfull, &n_eff);
    if (m == 0) return 1;
    /* k-means assignments reuse resp's memory (as ints: m ints fit in m * K doubles) */
    int k_used = kmeans_init(zz, ww, m, d, K, s->kmeans_iters, &r, g->mu, dmin, (int *)resp);
    if (k_used < 1) return 1;
    /* start: every component with the covariance of all rows, equal shares */
    double mean[64];
    memset(S, 0, (size_t)d * d * sizeof(double));
    for (int a = 0; a < d; a++) { mean[a] = 0.0; for (int i = 0; i < m; i++) mean[a] += ww[i] * zz[(size_t)i * d + a]; }
    for (int i = 0; i < m; i++)
        for (int a = 0; a < d; a++)
            for (int b = 0; b <= a; b++)
                S[a * d + b] += ww[i] * (zz[(size_t)i * d + a] - mean[a]) * (zz[(size_t)i * d + b] - mean[b]);
    for (int a = 0; a < d; a++) for (int b = 0; b < a; b++) S[b * d + a] = S[a * d + b];
    if (regularise(S, S0, S0, d, n_eff, s, 1.0, tmp)) return 2;
    for (int k = 0; k < k_used; k++) {
        memcpy(g->chol + (size_t)k * d * d, S, (size_t)d * d * sizeof(double));
        g->share[k] = 1.0 / k_used;
    }
    const double half_log_2pi = 0.91893853320467274178;
    for (int it = 0; it < s->em_iters; it++) {
        /* E step: Gaussian responsibilities times the row weights */
        double ld[64];
        for (int k = 0; k < k_used; k++)
            ld[k] = g->share[k] > 0 ? log(g->share[k]) - log_det_half(g->chol + (size_t)k * d * d, d) -
                                          d * half_log_2pi
                                    : -INFINITY;
        for (int i = 0; i < m; i++) {
            double *ri = resp + (size_t)i * K, mx = -INFINITY;
            for (int k = 0; k < k_used; k++) {
                ri[k] = ld[k] == -INFINITY ? -INFINITY
                        : ld[k] - 0.5 * mahalanobis2(g->chol + (size_t)k * d * d, g->mu + (size_t)k * d,
                                                     zz + (size_t)i * d, d, u);
                if (ri[k] > mx) mx = ri[k];
            }
            double sum = 0.0;
            for (int k = 0; k < k_used; k++) { ri[k] = exp(ri[k] - mx); sum += ri[k]; }
            for (int k = 0; k < k_used; k++) ri[k] *= ww[i] / sum;
        }
        /* M step */
        double mass[64], total = 0.0;
        for (int k = 0; k < k_used; k++) {
            mass[k] = 0.0;
            for (int i = 0; i < m; i++) mass[k] += resp[(size_t)i * K + k];
            if (!(mass[k] > 1e-6)) mass[k] = 0.0;
            total += mass[k];
        }
        /* means and raw covariances (held in the components' factor slots until regularised) */
        memset(W, 0, (size_t)d * d * sizeof(double));
        for (int k = 0; k < k_used; k++) {
            g->share[k] = mass[k] / total;
            if (mass[k] == 0.0) continue;
            double *mu = g->mu + (size_t)k * d, *Sk = g->chol + (size_t)k * d * d;
            for (int a = 0; a < d; a++) {
                double t = 0.0;
                for (int i = 0; i < m; i++) t += resp[(size_t)i * K + k] * zz[(size_t)i * d + a];
                mu[a] = t / mass[k];
            }
            memset(Sk, 0, (size_t)d * d * sizeof(double));
            for (int i = 0; i < m; i++) {
                const double rk = resp[(size_t)i * K + k];
                if (rk == 0.0) continue;
                const double *zi = zz + (size_t)i * d;
                for (int a = 0; a < d; a++)
                    for (int b = 0; b <= a; b++) Sk[a * d + b] += rk * (zi[a] - mu[a]) * (zi[b] - mu[b]);
            }
            for (int a = 0; a < d; a++)
                for (int b = 0; b <= a; b++) { Sk[a * d + b] /= mass[k]; Sk[b * d + a] = Sk[a * d + b]; }
            for (int a = 0; a < d * d; a++) W[a] += g->share[k] * Sk[a];
        }
        /* hierarchical shrinkage: the pooled within-component covariance W, itself pulled
         * towards S0 by the total effective count, is the target of each component's, so a
         * component seen in few draws (a newly found mode) gets the width of the others */
        for (int a = 0; a < d * d; a++) S[a] = (n_eff * W[a] + s->shrink * S0[a]) / (n_eff + s->shrink);
        const double widen2 = it == s->em_iters - 1 ? s->inflate * s->inflate : 1.0;
        for (int k = 0; k < k_used; k++) {
            if (mass[k] == 0.0) continue;
            double *Sk = g->chol + (size_t)k * d * d;
            if (regularise(Sk, S, S0, d, n_eff * g->share[k], s, widen2, tmp)) return 2;
        }
    }
    if (s->em_iters == 0 && s->inflate != 1.0)  /* no EM: widen the start */
        for (int k = 0; k < k_used; k++)
            for (int a = 0; a < d * d; a++) g->chol[(size_t)k * d * d + a] *= s->inflate;
    const int kL = s->components;
    if (s->laplace_share > 0 && log_p && n_eff < s->laplace_below && g->K > kL &&
        laplace_fit(z, log_p, n, d, S0, s->laplace_step, g->mu + (size_t)kL * d, S, lwork) == 0 &&
        regularise(S, S0, S0, d, 1e300, s, s->inflate * s->inflate, tmp) == 0) {
        memcpy(g->chol + (size_t)kL * d * d, S, (size_t)d * d * sizeof(double));
        for (int k = 0; k < kL; k++) g->share[k] *= 1.0 - s->laplace_share;
        g->share[kL] = s->laplace_share;
    }
    return 0;
}
