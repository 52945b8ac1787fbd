/* Pooling over segments of rows: one segment per object, any number of rows (the epochs of
 * a light curve), rows of all segments stored one after the other (start: B + 1 offsets).
 * Cost is linear in the rows; there is no padding. Work is split by segments over the
 * threads and every sum runs in a fixed order, so results do not depend on the thread count.
 *
 * Attention pooling (multi-head, with Q learned queries; Lee et al. 2019's PMA): for segment
 * b, query q and head h (width dh = D / H), over the segment's rows i
 *   s_i = k_ih . q_qh / sqrt(dh),  a = softmax(s),  out_bqh = sum_i a_i v_ih.
 * Row i of k and of v starts at i * ld (k and v may share one array, ld = 2 D). */
#include <math.h>
#include <string.h>
#include "nn/nn.h"

#define PAR_ROWS 4096  /* rows below which one thread does it */

/* out: B x Q x D; attn: N x Q x H (the weights, for the backward pass) */
void segpool_forward(double *out, double *attn, const double *k, const double *v, int ld,
                     const double *q, const int *start, int B, int Q, int D, int H, int threads) {
    const int dh = D / H;
    const double scale = 1.0 / sqrt((double)dh);
    const int N = start[B];
    #pragma omp parallel for num_threads(threads) if (N > PAR_ROWS) schedule(dynamic)
    for (int b = 0; b < B; b++) {
        const int i0 = start[b], i1 = start[b + 1];
        for (int qq = 0; qq < Q; qq++)
            for (int h = 0; h < H; h++) {
                const double *qv = q + (size_t)qq * D + (size_t)h * dh;
                double *o = out + ((size_t)b * Q + qq) * D + (size_t)h * dh;
                double mx = -INFINITY;
                for (int i = i0; i < i1; i++) {
                    const double *ki = k + (size_t)i * ld + (size_t)h * dh;
                    double s = 0.0;
                    for (int c = 0; c < dh; c++) s += ki[c] * qv[c];
                    s *= scale;
                    attn[((size_t)i * Q + qq) * H + h] = s;
                    if (s > mx) mx = s;
                }
                double sum = 0.0;
                for (int i = i0; i < i1; i++) {
                    double *a = attn + ((size_t)i * Q + qq) * H + h;
                    *a = exp(*a - mx);
                    sum += *a;
                }
                for (int c = 0; c < dh; c++) o[c] = 0.0;
                for (int i = i0; i < i1; i++) {
                    double *a = attn + ((size_t)i * Q + qq) * H + h;
                    *a /= sum;
                    const double *vi = v + (size_t)i * ld + (size_t)h * dh;
                    for (int c = 0; c < dh; c++) o[c] += *a * vi[c];
                }
            }
    }
}

/* dk, dv (rows at i * ld, D each): written; dq (Q x D): accumulated; dout (B x Q x D); work:
 * B x Q x D (each segment's share of dq, summed in segment order) */
void segpool_backward(double *dk, double *dv, double *dq, const double *dout, const double *attn,
                      const double *k, const double *v, int ld, const double *q, const int *start,
                      int B, int Q, int D, int H, double *work, int threads) {
    const int dh = D / H;
    const double scale = 1.0 / sqrt((double)dh);
    const int N = start[B];
    for (int i = 0; i < N; i++) {
        memset(dk + (size_t)i * ld, 0, (size_t)D * sizeof(double));
        memset(dv + (size_t)i * ld, 0, (size_t)D * sizeof(double));
    }
    #pragma omp parallel for num_threads(threads) if (N > PAR_ROWS) schedule(dynamic)
    for (int b = 0; b < B; b++) {
        const int i0 = start[b], i1 = start[b + 1];
        double *dqb = work + (size_t)b * Q * D;
        memset(dqb, 0, (size_t)Q * D * sizeof(double));
        for (int qq = 0; qq < Q; qq++)
            for (int h = 0; h < H; h++) {
                const double *go = dout + ((size_t)b * Q + qq) * D + (size_t)h * dh;
                const double *qv = q + (size_t)qq * D + (size_t)h * dh;
                double *dqv = dqb + (size_t)qq * D + (size_t)h * dh;
                /* da_i = go . v_i;  ds_i = a_i (da_i - sum_j a_j da_j) */
                double mean_da = 0.0;
                for (int i = i0; i < i1; i++) {
                    const double a = attn[((size_t)i * Q + qq) * H + h];
                    const double *vi = v + (size_t)i * ld + (size_t)h * dh;
                    double da = 0.0;
                    for (int c = 0; c < dh; c++) da += go[c] * vi[c];
                    mean_da += a * da;
                }
                for (int i = i0; i < i1; i++) {
                    const double a = attn[((size_t)i * Q + qq) * H + h];
                    const double *vi = v + (size_t)i * ld + (size_t)h * dh;
                    const double *ki = k + (size_t)i * ld + (size_t)h * dh;
                    double *dvi = dv + (size_t)i * ld + (size_t)h * dh;
                    double *dki = dk + (size_t)i * ld + (size_t)h * dh;
                    double da = 0.0;
                    for (int c = 0; c < dh; c++) da += go[c] * vi[c];
                    const double ds = a * (da - mean_da) * scale;
                    for (int c = 0; c < dh; c++) {
                        dvi[c] += a * go[c];
                        dki[c] += ds * qv[c];
                        dqv[c] += ds * ki[c];
                    }
                }
            }
    }
    for (int b = 0; b < B; b++)
        for (size_t c = 0; c < (size_t)Q * D; c++) dq[c] += work[(size_t)b * Q * D + c];
}

/* out (B x D): the mean of each segment's rows */
void segmean_forward(double *out, const double *x, const int *start, int B, int D) {
    for (int b = 0; b < B; b++) {
        double *o = out + (size_t)b * D;
        const int i0 = start[b], n = start[b + 1] - i0;
        for (int c = 0; c < D; c++) o[c] = 0.0;
        for (int i = i0; i < i0 + n; i++)
            for (int c = 0; c < D; c++) o[c] += x[(size_t)i * D + c];
        for (int c = 0; c < D; c++) o[c] /= n;
    }
}

/* dx (N x D) += dout_b / n_b for each row of segment b */
void segmean_backward(double *dx, const double *dout, const int *start, int B, int D) {
    for (int b = 0; b < B; b++) {
        const int i0 = start[b], n = start[b + 1] - i0;
        const double *g = dout + (size_t)b * D;
        for (int i = i0; i < i0 + n; i++)
            for (int c = 0; c < D; c++) dx[(size_t)i * D + c] += g[c] / n;
    }
}
