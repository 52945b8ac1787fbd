/* nbi's own single-precision product for the float32 path (nn_gemm's tiles): packed panels
 * and a register-blocked micro-kernel (sgemm_tile.h), compiled for the base CPU, for AVX2 +
 * FMA and for AVX-512, the widest the CPU has chosen at run time. On AVX-512 CPUs it is used
 * instead of the BLAS's sgemm, which may be held to 256-bit kernels (OpenBLAS picks its
 * kernels by CPU model, or by OPENBLAS_CORETYPE): on one Zen 5 core at the flow's shapes,
 * OpenBLAS 0.3.21's Haswell sgemm ran at 93-97 GF/s and this kernel at 148-173. */
#include <stdlib.h>
#include <string.h>
#include "nn/nn.h"
#include "nn/vmath.h"

#define SGEMM_KC 256  /* steps of k per packed block: op(A)'s panels stay in L2 */
#define SG_T float
#define SG_KC SGEMM_KC

#define VW 4
#define NR 6
#define SG(name) name##_base
#define SG_ATTR
#include "nn/gemm_tile.h"
#undef VW
#undef NR
#undef SG
#undef SG_ATTR

#ifdef VM_DISPATCH
#define VW 8
#define NR 6
#define SG(name) name##_avx2
#define SG_ATTR VM_AVX2
#include "nn/gemm_tile.h"
#undef VW
#undef NR
#undef SG
#undef SG_ATTR

#define VW 16
#define NR 12
#define SG(name) name##_avx512
#define SG_ATTR VM_AVX512
#include "nn/gemm_tile.h"
#undef VW
#undef NR
#undef SG
#undef SG_ATTR
#endif

typedef void (*pack_fn)(float *, const float *, int, int, int, int, int, int);
typedef void (*tile_fn)(const float *, int, int, int, int, int, int, const float *, int,
                        float *, int, float *, int);
#ifdef VM_DISPATCH
static const pack_fn pack_fns[3] = {pack_a_all_base, pack_a_all_avx2, pack_a_all_avx512};
static const tile_fn tile_fns[3] = {tile_base, tile_avx2, tile_avx512};
static const int mr_of[3] = {MR_base, MR_avx2, MR_avx512};
#else
static const pack_fn pack_fns[1] = {pack_a_all_base};
static const tile_fn tile_fns[1] = {tile_base};
static const int mr_of[1] = {MR_base};
#endif

/* the instruction set of the kernel: 0 base, 1 AVX2 + FMA, 2 AVX-512 */
int nn_sgemm_isa(void) { return vm_isa(); }

int nn_sgemm_mr(void) { return mr_of[nn_sgemm_isa()]; }

/* x rounded up to a cache line (the packed panels' alignment) */
static float *line_up(float *x) { return (float *)(((size_t)x + 63) & ~(size_t)63); }

size_t nn_sgemm_a_size(int M, int K) {
    const size_t mr = (size_t)nn_sgemm_mr(), kb = ((size_t)K + SGEMM_KC - 1) / SGEMM_KC;
    return ((size_t)M + mr - 1) / mr * mr * SGEMM_KC * (kb > 0 ? kb : 1) + 16;
}

size_t nn_sgemm_b_size(void) { return 12 * SGEMM_KC + 16; }  /* NR <= 12 in every instance */

void nn_sgemm_pack_a(int tA, int M, int K, const float *A, int lda, float *ap, int p0, int p1) {
    if (M > 0 && K > 0) pack_fns[nn_sgemm_isa()](line_up(ap), A, lda, tA, M, K, p0, p1);
}

void nn_sgemm_tile(const float *ap, int M_all, int i0, int tB, int M, int N, int K,
                   const float *B, int ldb, float *c, int ldc, float *bp) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int j = 0; j < N; j++) memset(c + (size_t)j * ldc, 0, (size_t)M * sizeof(float));
        return;
    }
    const int isa = nn_sgemm_isa(), mr = mr_of[isa];
    tile_fns[isa](line_up((float *)ap), (M_all + mr - 1) / mr, i0 / mr, tB, M, N, K, B, ldb, c,
                  ldc, line_up(bp), 0);
}
