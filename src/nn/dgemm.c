/* nbi's own double-precision product for the float64 path (nn_gemm's tiles): the packed
 * panels and register-blocked micro-kernel of gemm_tile.h in double, compiled for the base
 * CPU, for AVX2 + FMA and for AVX-512, the widest the CPU has chosen at run time. Used on
 * AVX-512 CPUs instead of the BLAS's dgemm, which may be held to 256-bit kernels (OpenBLAS
 * 0.3.21 runs its Haswell kernels on Zen 5); bench/gemm.R measures both. */
#include <stdlib.h>
#include <string.h>
#include "nn/nn.h"
#include "nn/vmath.h"

#define DGEMM_KC 256  /* steps of k per packed block */
#define SG_T double
#define SG_KC DGEMM_KC

#define VW 2
#define NR 6
#define SG(name) name##_dbase
#define SG_ATTR
#include "nn/gemm_tile.h"
#undef VW
#undef NR
#undef SG
#undef SG_ATTR

#ifdef VM_DISPATCH
#define VW 4
#define NR 6
#define SG(name) name##_davx2
#define SG_ATTR VM_AVX2
#include "nn/gemm_tile.h"
#undef VW
#undef NR
#undef SG
#undef SG_ATTR

#define VW 8
#define NR 12
#define SG(name) name##_davx512
#define SG_ATTR VM_AVX512
#include "nn/gemm_tile.h"
#undef VW
#undef NR
#undef SG
#undef SG_ATTR
#endif

typedef void (*pack_fn)(double *, const double *, int, int, int, int, int, int);
typedef void (*tile_fn)(const double *, int, int, int, int, int, int, const double *, int,
                        double *, int, double *, int);
#ifdef VM_DISPATCH
static const pack_fn pack_fns[3] = {pack_a_all_dbase, pack_a_all_davx2, pack_a_all_davx512};
static const tile_fn tile_fns[3] = {tile_dbase, tile_davx2, tile_davx512};
static const int mr_of[3] = {MR_dbase, MR_davx2, MR_davx512};
#else
static const pack_fn pack_fns[1] = {pack_a_all_dbase};
static const tile_fn tile_fns[1] = {tile_dbase};
static const int mr_of[1] = {MR_dbase};
#endif

int nn_dgemm_mr(void) { return mr_of[vm_isa()]; }

/* x rounded up to a cache line (the packed panels' alignment) */
static double *line_up(double *x) { return (double *)(((size_t)x + 63) & ~(size_t)63); }

size_t nn_dgemm_a_size(int M, int K) {
    const size_t mr = (size_t)nn_dgemm_mr(), kb = ((size_t)K + DGEMM_KC - 1) / DGEMM_KC;
    return ((size_t)M + mr - 1) / mr * mr * DGEMM_KC * (kb > 0 ? kb : 1) + 8;
}

size_t nn_dgemm_b_size(void) { return 12 * DGEMM_KC + 8; }  /* NR <= 12 in every instance */

void nn_dgemm_pack_a(int tA, int M, int K, const double *A, int lda, double *ap, int p0, int p1) {
    if (M > 0 && K > 0) pack_fns[vm_isa()](line_up(ap), A, lda, tA, M, K, p0, p1);
}

void nn_dgemm_tile(const double *ap, int M_all, int i0, int tB, int M, int N, int K,
                   const double *B, int ldb, double *c, int ldc, double *bp, int acc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!acc) for (int j = 0; j < N; j++) memset(c + (size_t)j * ldc, 0, (size_t)M * sizeof(double));
        return;
    }
    const int isa = vm_isa(), mr = mr_of[isa];
    tile_fns[isa](line_up((double *)ap), (M_all + mr - 1) / mr, i0 / mr, tB, M, N, K, B, ldb, c,
                  ldc, line_up(bp), acc);
}
