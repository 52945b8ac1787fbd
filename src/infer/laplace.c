#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "infer/tmix.h"

/* A Laplace (Gaussian) approximation of a log density known at scattered points: the
 * least-squares quadratic through log_p at the M points nearest (in the metric of S0) to the
 * highest one. When every draw so far lies in the far tail of a posterior (a surrogate many
 * sds off), the weights single out the nearest draw and a mixture fitted to them creeps
 * towards the posterior a few sds per round; the quadratic's maximum jumps there, exactly so
 * for a Gaussian posterior. Fitted in coordinates whitened by S0 = L0 L0', centred on the
 * best point. */

static int cmp_pair(const void *a, const void *b) {
    const double x = ((const double *)a)[0], y = ((const double *)b)[0];
    return (x > y) - (x < y);
}

size_t laplace_work(int n, int d) {
    const size_t P = 1 + (size_t)d + (size_t)d * (d + 1) / 2;
    return 3 * (size_t)n + (size_t)n * d + P * P + 2 * P + 4 * (size_t)d * d + 2 * (size_t)d + 8;
}

int laplace_fit(const double *z, const double *log_p, int n, int d, const double *S0,
                double max_step, double *mean, double *cov, double *work) {
    const int P = 1 + d + d * (d + 1) / 2;
    double *pairs = work, *orig = pairs + 2 * (size_t)n, *v = orig + n, *A = v + (size_t)n * d;
    double *r = A + (size_t)P * P;
    double *x = r + P, *L0 = x + P, *H = L0 + (size_t)d * d, *Sv = H + (size_t)d * d;
    double *T = Sv + (size_t)d * d, *b = T + (size_t)d * d, *m = b + d;
    memcpy(L0, S0, (size_t)d * d * sizeof(double));
    if (chol_lower(L0, d)) return 3;
    int best = -1;
    for (int i = 0; i < n; i++)
        if (isfinite(log_p[i]) && (best < 0 || log_p[i] > log_p[best])) best = i;
    if (best < 0) return 1;
    /* whitened offsets from the best point, and the finite points by distance */
    int nf = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(log_p[i])) continue;
        double *vi = v + (size_t)nf * d, q = 0.0;
        for (int a = 0; a < d; a++) {
            double t = z[(size_t)i * d + a] - z[(size_t)best * d + a];
            for (int c = 0; c < a; c++) t -= L0[a * d + c] * vi[c];
            vi[a] = t / L0[a * d + a];
            q += vi[a] * vi[a];
        }
        pairs[2 * nf] = q;
        pairs[2 * nf + 1] = (double)nf;
        orig[nf] = (double)i;
        nf++;
    }
    const int M = 4 * P > 50 ? 4 * P : 50;
    if (nf < M) return 1;
    qsort(pairs, (size_t)nf, 2 * sizeof(double), cmp_pair);
    /* normal equations of log_p = c + b'v + sum_{a <= c} h_ac v_a v_c over the M nearest;
     * the values are taken relative to the best one (a constant, absorbed in c) */
    memset(A, 0, (size_t)P * P * sizeof(double));
    memset(r, 0, (size_t)P * sizeof(double));
    double radius = 0.0;
    for (int j = 0; j < M; j++) {
        const int i = (int)pairs[2 * j + 1];
        const double *vi = v + (size_t)i * d;
        if (pairs[2 * j] > radius) radius = pairs[2 * j];
        int p = 0;
        x[p++] = 1.0;
        for (int a = 0; a < d; a++) x[p++] = vi[a];
        for (int a = 0; a < d; a++)
            for (int c = a; c < d; c++) x[p++] = vi[a] * vi[c];
        const double y = log_p[(int)orig[i]] - log_p[best];
        for (int a = 0; a < P; a++) {
            r[a] += x[a] * y;
            for (int c = 0; c <= a; c++) A[a * P + c] += x[a] * x[c];
        }
    }
    radius = sqrt(radius);
    double tr = 0.0;
    for (int a = 0; a < P; a++) tr += A[a * P + a];
    for (int a = 0; a < P; a++) {
        for (int c = 0; c < a; c++) A[c * P + a] = A[a * P + c];
        A[a * P + a] += 1e-10 * tr / P;
    }
    if (chol_lower(A, P)) return 2;
    chol_solve(A, P, r);   /* the coefficients, in r */
    /* gradient b and the negated Hessian -H (h_aa multiplies v_a^2: H_aa = 2 h_aa) */
    for (int a = 0; a < d; a++) b[a] = r[1 + a];
    int p = 1 + d;
    for (int a = 0; a < d; a++)
        for (int c = a; c < d; c++, p++) {
            const double h = a == c ? 2.0 * r[p] : r[p];
            H[a * d + c] = -h;
            H[c * d + a] = -h;
        }
    memcpy(T, H, (size_t)d * d * sizeof(double));
    if (chol_lower(T, d)) return 2;   /* not a maximum: no Laplace approximation */
    /* Sv = (-H)^-1 from its factor T (T T' = -H): columns by two triangular solves */
    for (int col = 0; col < d; col++) {
        for (int a = 0; a < d; a++) m[a] = a == col;
        chol_solve(T, d, m);
        for (int a = 0; a < d; a++) Sv[a * d + col] = m[a];
    }
    /* the maximum v* = Sv b, no further than max_step times the neighbourhood's radius */
    double len = 0.0;
    for (int a = 0; a < d; a++) {
        m[a] = 0.0;
        for (int c = 0; c < d; c++) m[a] += Sv[a * d + c] * b[c];
        len += m[a] * m[a];
    }
    len = sqrt(len);
    const double cap = max_step * (radius > 0 ? radius : 1.0);
    const double shrink = len > cap ? cap / len : 1.0;
    /* back to z: mean = z_best + L0 v*, cov = L0 Sv L0' */
    for (int a = 0; a < d; a++) {
        double t = 0.0;
        for (int c = 0; c <= a; c++) t += L0[a * d + c] * m[c] * shrink;
        mean[a] = z[(size_t)best * d + a] + t;
    }
    for (int a = 0; a < d; a++)
        for (int c = 0; c < d; c++) {
            double t = 0.0;
            for (int e = 0; e <= a; e++) t += L0[a * d + e] * Sv[e * d + c];
            T[a * d + c] = t;   /* L0 Sv */
        }
    for (int a = 0; a < d; a++)
        for (int c = 0; c < d; c++) {
            double t = 0.0;
            for (int e = 0; e <= c; e++) t += T[a * d + e] * L0[c * d + e];
            cov[a * d + c] = t;
        }
    for (int a = 0; a < d * d; a++) if (!isfinite(cov[a])) return 2;
    for (int a = 0; a < d; a++) if (!isfinite(mean[a])) return 2;
    return 0;
}
