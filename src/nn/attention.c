/* Multi-head scaled dot-product self-attention with a key mask (Vaswani et al. 2017).
 * Masked keys are skipped, never weighted by exp(-inf): they contribute exactly nothing, even
 * when their rows hold non-finite values. Sequences are independent, so the batch is split
 * over threads by sequence and the result does not depend on the thread count. */
#include <math.h>
#include <string.h>
#include "nn/nn.h"

#define PAR_MIN 16384 /* multiply-adds below which a parallel region costs more than it saves */

static double dot(const double *a, const double *b, int n) {
    double s = 0.0;
    for (int c = 0; c < n; c++) s += a[c] * b[c];
    return s;
}

/* one query of one head: o = sum_j softmax_j(s_j) v_j with s_j = scale q.k_j over kept j;
 * k, v: first key / value of the head (row stride D3); s: S scores; returns log sum_j exp(s_j) */
static double attend(double *o, double *s, const double *q, const double *k, const double *v,
                     const int *keep, int S, int D3, int dh, double scale) {
    double mx = -INFINITY, sum = 0.0;
    int any = 0;
    for (int c = 0; c < dh; c++) o[c] = 0.0;
    for (int j = 0; j < S; j++) {
        if (!keep[j]) continue;
        s[j] = scale * dot(q, k + (size_t)j * D3, dh);
        if (!any || s[j] > mx) mx = s[j];
        any = 1;
    }
    if (!any) return 0.0;
    for (int j = 0; j < S; j++)  /* stable softmax: exp(s_j - max) */
        if (keep[j]) { s[j] = exp(s[j] - mx); sum += s[j]; }
    for (int j = 0; j < S; j++) {
        if (!keep[j]) continue;
        const double w = s[j] / sum, *vj = v + (size_t)j * D3;
        for (int c = 0; c < dh; c++) o[c] += w * vj[c];
    }
    return mx + log(sum);
}

void attention_forward(double *out, double *lse, double *scratch, const double *qkv,
                       const int *keep, int B, int S, int D, int H, const nn_ctx *cx) {
    const int threads = cx->threads;
    const int dh = D / H, D3 = 3 * D;
    const double scale = 1.0 / sqrt((double)dh);
    const double cost = (double)B * S * S * D;
    #pragma omp parallel for num_threads(threads) if (cost > PAR_MIN && B > 1) schedule(static)
    for (int b = 0; b < B; b++) {
        const double *x = qkv + (size_t)b * S * D3;
        for (int h = 0; h < H; h++)
            for (int i = 0; i < S; i++)
                lse[((size_t)b * H + h) * S + i] =
                    attend(out + ((size_t)b * S + i) * D + h * dh, scratch + (size_t)b * S,
                           x + (size_t)i * D3 + h * dh, x + D + h * dh, x + 2 * D + h * dh,
                           keep + (size_t)b * S, S, D3, dh, scale);
    }
}

/* one query of one head, with a_j = exp(s_j - lse) and rho = sum_j a_j (do . v_j) = do . o:
 * dv_j += a_j do;  ds_j = a_j (do . v_j - rho);  dq += scale ds_j k_j;  dk_j += scale ds_j q */
static void attend_backward(double *dq, double *dk, double *dv, const double *dout,
                            const double *o, const double *q, const double *k, const double *v,
                            const int *keep, double lse, int S, int D3, int dh, double scale) {
    const double rho = dot(dout, o, dh);
    for (int j = 0; j < S; j++) {
        if (!keep[j]) continue;
        const double *kj = k + (size_t)j * D3, *vj = v + (size_t)j * D3;
        double *dkj = dk + (size_t)j * D3, *dvj = dv + (size_t)j * D3;
        const double a = exp(scale * dot(q, kj, dh) - lse);
        const double ds = a * (dot(dout, vj, dh) - rho);
        for (int c = 0; c < dh; c++) {
            dvj[c] += a * dout[c];
            dq[c] += scale * ds * kj[c];
            dkj[c] += scale * ds * q[c];
        }
    }
}

void attention_backward(double *dqkv, const double *dout, const double *qkv, const double *out,
                        const double *lse, const int *keep, int B, int S, int D, int H,
                        const nn_ctx *cx) {
    const int threads = cx->threads;
    const int dh = D / H, D3 = 3 * D;
    const double scale = 1.0 / sqrt((double)dh);
    const double cost = (double)B * S * S * D;
    #pragma omp parallel for num_threads(threads) if (cost > PAR_MIN && B > 1) schedule(static)
    for (int b = 0; b < B; b++) {
        const double *x = qkv + (size_t)b * S * D3;
        double *dx = dqkv + (size_t)b * S * D3;
        memset(dx, 0, (size_t)S * D3 * sizeof(double));
        for (int h = 0; h < H; h++)
            for (int i = 0; i < S; i++) {
                const size_t r = (size_t)b * S + i;
                attend_backward(dx + (size_t)i * D3 + h * dh, dx + D + h * dh,
                                dx + 2 * D + h * dh, dout + r * D + h * dh, out + r * D + h * dh,
                                x + (size_t)i * D3 + h * dh, x + D + h * dh, x + 2 * D + h * dh,
                                keep + (size_t)b * S, lse[((size_t)b * H + h) * S + i], S, D3,
                                dh, scale);
            }
    }
}
