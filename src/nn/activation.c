#include <math.h>
#include <stdint.h>
#include <string.h>
#include "nn/nn.h"
#include "nn/vmath.h"

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

/* GELU over a range of elements, in the widest copy the CPU runs (nn/vmath.h): forward, and
 * the backward din = dout * gelu'(pre) */
#define GELU_LOOPS(sfx, attr)                                                                 \
    attr static void gelu_fwd_##sfx(double *out, const double *in, size_t i0, size_t i1) {   \
        _Pragma("omp simd")                                                                   \
        for (size_t i = i0; i < i1; i++) out[i] = vm_gelu(in[i]);                             \
    }                                                                                         \
    attr static void gelu_bwd_##sfx(double *din, const double *dout, const double *pre,      \
                                    size_t i0, size_t i1) {                                   \
        _Pragma("omp simd")                                                                   \
        for (size_t i = i0; i < i1; i++) din[i] = dout[i] * vm_gelu_grad(pre[i]);             \
    }
GELU_LOOPS(base, )
#ifdef VM_DISPATCH
GELU_LOOPS(avx2, VM_AVX2)
GELU_LOOPS(avx512, VM_AVX512)
#endif
static void gelu_fwd(double *out, const double *in, size_t i0, size_t i1) {
#ifdef VM_DISPATCH
    const int isa = vm_isa();
    if (isa == 2) { gelu_fwd_avx512(out, in, i0, i1); return; }
    if (isa == 1) { gelu_fwd_avx2(out, in, i0, i1); return; }
#endif
    gelu_fwd_base(out, in, i0, i1);
}
static void gelu_bwd(double *din, const double *dout, const double *pre, size_t i0, size_t i1) {
#ifdef VM_DISPATCH
    const int isa = vm_isa();
    if (isa == 2) { gelu_bwd_avx512(din, dout, pre, i0, i1); return; }
    if (isa == 1) { gelu_bwd_avx2(din, dout, pre, i0, i1); return; }
#endif
    gelu_bwd_base(din, dout, pre, i0, i1);
}
#define GELU_CHUNK 4096  /* elements per parallel task */
/* the end of task c of nc over n elements */
static inline size_t gelu_chunk_end(size_t c, size_t nc, size_t n) {
    return c + 1 < nc ? (c + 1) * GELU_CHUNK : n;
}

/* the same map on one short row, outside any parallel region (no OpenMP call per row) */
void act_forward_row(double *out, const double *in, int n, int act) {
    switch (act) {
    case ACT_RELU:
        #pragma omp simd
        for (int i = 0; i < n; i++) out[i] = relu(in[i]);
        break;
    case ACT_TANH: for (int i = 0; i < n; i++) out[i] = tanh(in[i]); break;
    default: gelu_fwd(out, in, 0, (size_t)n);
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
    default: {
        const size_t nc = (n + GELU_CHUNK - 1) / GELU_CHUNK;
        #pragma omp parallel for num_threads(threads) if (n > PAR_MIN) schedule(static)
        for (size_t c = 0; c < nc; c++)
            gelu_fwd(out, in, c * GELU_CHUNK, gelu_chunk_end(c, nc, n));
    }
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
    default: {
        const size_t nc = (n + GELU_CHUNK - 1) / GELU_CHUNK;
        #pragma omp parallel for num_threads(threads) if (n > PAR_MIN) schedule(static)
        for (size_t c = 0; c < nc; c++)
            gelu_bwd(din, dout, pre, c * GELU_CHUNK, gelu_chunk_end(c, nc, n));
    }
    }
}
