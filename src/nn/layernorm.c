#include <math.h>
#include "nn/nn.h"

#define LN_EPS 1e-5

/* per row: mean, biased variance (two passes, for accuracy), then out = xhat * gamma + beta */
void layernorm_forward(double *out, double *mean, double *rstd, const double *in,
                       const double *gamma, const double *beta, int N, int C) {
    for (int n = 0; n < N; n++) {
        const double *x = in + (size_t)n * C;
        double *y = out + (size_t)n * C;
        double m = 0.0, v = 0.0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        double s = 1.0 / sqrt(v + LN_EPS);
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * s * gamma[c] + beta[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

/* with g = dout * gamma and xhat = (x - mean) * rstd:
 * din = rstd * (g - mean(g) - xhat * mean(g * xhat));  dgamma += sum_n dout * xhat;  dbeta += sum_n dout */
void layernorm_backward(double *din, double *dgamma, double *dbeta, const double *dout,
                        const double *in, const double *mean, const double *rstd,
                        const double *gamma, int N, int C) {
    for (int n = 0; n < N; n++) {
        const double *x = in + (size_t)n * C, *dy = dout + (size_t)n * C;
        double *dx = din + (size_t)n * C;
        const double m = mean[n], s = rstd[n];
        double gm = 0.0, gxm = 0.0;
        for (int c = 0; c < C; c++) {
            double xh = (x[c] - m) * s, g = dy[c] * gamma[c];
            gm += g;
            gxm += g * xh;
            dgamma[c] += dy[c] * xh;
            dbeta[c] += dy[c];
        }
        gm /= C;
        gxm /= C;
        for (int c = 0; c < C; c++) {
            double xh = (x[c] - m) * s;
            dx[c] = s * (dy[c] * gamma[c] - gm - xh * gxm);
        }
    }
}
