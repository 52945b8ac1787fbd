#include "nn/nn.h"

/* out[b,i,c] = max(in[b,2i,c], in[b,2i+1,c]); ties go to the first position */
void maxpool2_forward(double *out, int *idx, const double *in, int B, int L, int C) {
    const int L2 = L / 2;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < L2; i++) {
            const double *x0 = in + ((size_t)b * L + 2 * i) * C, *x1 = x0 + C;
            double *y = out + ((size_t)b * L2 + i) * C;
            int *ix = idx + ((size_t)b * L2 + i) * C;
            for (int c = 0; c < C; c++) {
                int second = x1[c] > x0[c];
                y[c] = second ? x1[c] : x0[c];
                ix[c] = 2 * i + second;
            }
        }
}

void maxpool2_backward(double *din, const double *dout, const int *idx, int B, int L, int C) {
    const int L2 = L / 2;
    for (size_t e = 0; e < (size_t)B * L * C; e++) din[e] = 0.0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < L2; i++) {
            const double *dy = dout + ((size_t)b * L2 + i) * C;
            const int *ix = idx + ((size_t)b * L2 + i) * C;
            for (int c = 0; c < C; c++) din[((size_t)b * L + ix[c]) * C + c] += dy[c];
        }
}
