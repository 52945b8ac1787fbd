#include <string.h>
#include "nn/nn.h"

/* out[b,o] = sum_c in[b,c] * w[o,c] + bias[o]        (B rows, C in, OC out) */
void linear_forward(const nn_ctx *cx, double *out, const double *in, const double *w, const double *bias,
                    int B, int C, int OC) {
    const double one = 1.0, zero = 0.0;
    if (B <= 0 || OC <= 0) return;
    /* the bias first, then the product accumulated onto it (beta = 1): one pass over out
     * fewer than zeroing (beta = 0) and adding the bias afterwards */
    if (bias)
        for (int b = 0; b < B; b++) memcpy(out + (size_t)b * OC, bias, (size_t)OC * sizeof(double));
    else if (C <= 0)
        memset(out, 0, (size_t)B * OC * sizeof(double));
    /* column-major view: out(OC x B) = w(C x OC)^T * in(C x B) */
    if (C > 0)
        nn_gemm(cx, "T", "N", OC, B, C, one, w, C, in, C, (bias ? one : zero), out, OC);
}

void linear_accumulate(const nn_ctx *cx, double *out, const double *in, const double *w, int B, int C, int OC) {
    const double one = 1.0;
    if (B <= 0 || OC <= 0 || C <= 0) return;
    nn_gemm(cx, "T", "N", OC, B, C, one, w, C, in, C, one, out, OC);
}

/* din = dout * w;  dw += dout^T * in;  dbias += column sums of dout.  din, dw may be NULL. */
void linear_backward(const nn_ctx *cx, double *din, double *dw, double *dbias, const double *dout,
                     const double *in, const double *w, int B, int C, int OC) {
    const double one = 1.0, zero = 0.0;
    if (B <= 0 || C <= 0 || OC <= 0) {
        if (dbias && B > 0 && OC > 0) colsum_add(dbias, dout, B, OC);
        return;
    }
    if (din) nn_gemm(cx, "N", "N", C, B, OC, one, w, C, dout, OC, zero, din, C);
    if (dw) nn_gemm(cx, "N", "T", C, OC, B, one, in, C, dout, OC, one, dw, C);
    if (dbias) colsum_add(dbias, dout, B, OC);
}

void colsum_add(double *s, const double *x, int B, int OC) {
    for (int b = 0; b < B; b++) {
        const double *xb = x + (size_t)b * OC;
        for (int o = 0; o < OC; o++) s[o] += xb[o];
    }
}

void linear_backward_input_add(const nn_ctx *cx, double *din, const double *dout, const double *w, int B, int C, int OC) {
    const double one = 1.0;
    if (B <= 0 || C <= 0 || OC <= 0) return;
    nn_gemm(cx, "N", "N", C, B, OC, one, w, C, dout, OC, one, din, C);
}
