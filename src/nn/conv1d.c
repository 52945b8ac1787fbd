#include "nn/nn.h"

/* 1-D convolution, stride 1, 'same' zero padding, as im2col + one GEMM.
 * col row (b,t) holds the k*C inputs the window at t sees: col[(b,t), j*C + c] = in[b, t+j-k/2, c] (0 outside). */
void conv1d_forward(const nn_ctx *cx, double *out, double *col, const double *in, const double *w, const double *bias,
                    int B, int L, int C, int OC, int k) {
    const int p = k / 2, kC = k * C;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            double *cr = col + ((size_t)b * L + t) * kC;
            for (int j = 0; j < k; j++) {
                int s = t + j - p;
                double *cj = cr + (size_t)j * C;
                if (s < 0 || s >= L) {
                    for (int c = 0; c < C; c++) cj[c] = 0.0;
                } else {
                    const double *is = in + ((size_t)b * L + s) * C;
                    for (int c = 0; c < C; c++) cj[c] = is[c];
                }
            }
        }
    /* out (B*L x OC) = col (B*L x kC) * w^T: a linear layer over the window rows */
    linear_forward(cx, out, col, w, bias, B * L, kC, OC);
}

/* dcol = dout * w and dw += dout^T * col (GEMMs), then col2im: each input position gathers
 * the k window slots it was copied into, so din is written once per element (no zeroing pass). */
void conv1d_backward(const nn_ctx *cx, double *din, double *dw, double *dbias, const double *dout, const double *col,
                     const double *w, double *dcol, int B, int L, int C, int OC, int k) {
    const int p = k / 2, kC = k * C;
    linear_backward(cx, din ? dcol : NULL, dw, dbias, dout, col, w, B * L, kC, OC);
    if (!din) return;
    for (int b = 0; b < B; b++)
        for (int s = 0; s < L; s++) {
            double *ds = din + ((size_t)b * L + s) * C;
            for (int c = 0; c < C; c++) ds[c] = 0.0;
            for (int j = 0; j < k; j++) {
                int t = s - j + p;   /* the window at t has input s in slot j */
                if (t < 0 || t >= L) continue;
                const double *dc = dcol + ((size_t)b * L + t) * kC + (size_t)j * C;
                for (int c = 0; c < C; c++) ds[c] += dc[c];
            }
        }
}
