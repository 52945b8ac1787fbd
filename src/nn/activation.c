#include <math.h>
#include <stdint.h>
#include <string.h>
#include "nn/nn.h"

#define PAR_MIN 16384 /* below this many elements a parallel region costs more than it saves */

/* ReLU and its gradient gate on the bits, branch-free: with random signs a compiled
 * branch is mispredicted half the time. Same results as x > 0 ? x : 0 (NaN gives 0 too). */
static inline uint64_t dbits(double x) { uint64_t u; memcpy(&u, &x, sizeof u); return u; }
static inline double bitsd(uint64_t u) { double x; memcpy(&x, &u, sizeof x); return x; }
/* all ones when the double with bits u is > 0 (positive sign, nonzero, not NaN) */
static inline uint64_t pos_mask(uint64_t u) {
    return (uint64_t)0 - (uint64_t)((int64_t)u > 0 && u < 0x7FF0000000000001ULL);
}
static inline double relu(double x) { uint64_t u = dbits(x); return bitsd(u & pos_mask(u)); }
static inline double relu_gate(double pre, double g) { return bitsd(dbits(g) & pos_mask(dbits(pre))); }
static inline double gelu(double x) { return 0.5 * x * (1.0 + erf(x * M_SQRT1_2)); }
/* d/dx [x Phi(x)] = Phi(x) + x phi(x) */
static inline double gelu_grad(double x) {
    return 0.5 * (1.0 + erf(x * M_SQRT1_2)) + x * exp(-0.5 * x * x) * 0.3989422804014327;
}

/* the same map on one short row, outside any parallel region (no OpenMP call per row) */
void act_forward_row(double *out, const double *in, int n, int act) {
    switch (act) {
    case ACT_RELU:
        #pragma omp simd
        for (int i = 0; i < n; i++) out[i] = relu(in[i]);
        break;
    case ACT_TANH: for (int i = 0; i < n; i++) out[i] = tanh(in[i]); break;
    default: for (int i = 0; i < n; i++) out[i] = gelu(in[i]);
    }
}

void act_forward(double *out, const double *in, size_t n, int act, int threads) {
    switch (act) {
    case ACT_RELU:
        #pragma omp parallel for simd num_threads(threads) if (n > PAR_MIN) schedule(static)
        for (size_t i = 0; i < n; i++) out[i] = relu(in[i]);
        break;
    case ACT_TANH:
        #pragma omp parallel for num_threads(threads) if (n > PAR_MIN) schedule(static)
        for (size_t i = 0; i < n; i++) out[i] = tanh(in[i]);
        break;
    default:
        #pragma omp parallel for num_threads(threads) if (n > PAR_MIN) schedule(static)
        for (size_t i = 0; i < n; i++) out[i] = gelu(in[i]);
    }
}

void act_backward(double *din, const double *dout, const double *pre, const double *out,
                  size_t n, int act, int threads) {
    switch (act) {
    case ACT_RELU:
        #pragma omp parallel for simd num_threads(threads) if (n > PAR_MIN) schedule(static)
        for (size_t i = 0; i < n; i++) din[i] = relu_gate(pre[i], dout[i]);
        break;
    case ACT_TANH:
        #pragma omp parallel for num_threads(threads) if (n > PAR_MIN) schedule(static)
        for (size_t i = 0; i < n; i++) din[i] = dout[i] * (1.0 - out[i] * out[i]);
        break;
    default:
        #pragma omp parallel for num_threads(threads) if (n > PAR_MIN) schedule(static)
        for (size_t i = 0; i < n; i++) din[i] = dout[i] * gelu_grad(pre[i]);
    }
}
