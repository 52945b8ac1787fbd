/* nbi's own product kernels in one element type, for one translation unit: the tile code
 * of gemm_tile.h instantiated for the base CPU (16-byte vectors), AVX2 + FMA (32 bytes) and
 * AVX-512 (64 bytes), the widest the CPU has chosen at run time (vm_isa), and the public
 * entry points. The includer defines SG_T (float or double) and GK(name), the public names
 * (nn_sgemm_##name, nn_dgemm_##name). Entry points: GK(mr) rows per panel; GK(a_size) and
 * GK(b_size) elements of packed op(A) and of one thread's op(B) panel; GK(pack_a) packs
 * panels p0 .. p1 - 1 of op(A) (M x K); GK(tile) computes a tile of c = op(A) op(B), added
 * to what c holds when acc. */
#define SG_KC 256  /* steps of k per packed block: op(A)'s panels stay in L2 */
#define SG_ALIGN (64 / sizeof(SG_T))  /* elements of slack to align to a cache line */

#define VW (16 / (int)sizeof(SG_T))
#define NR 6
#define SG(name) name##_base
#define SG_ATTR
#include "nn/gemm_tile.h"
#undef VW
#undef NR
#undef SG
#undef SG_ATTR

#ifdef VM_DISPATCH
#define VW (32 / (int)sizeof(SG_T))
#define NR 6
#define SG(name) name##_avx2
#define SG_ATTR VM_AVX2
#include "nn/gemm_tile.h"
#undef VW
#undef NR
#undef SG
#undef SG_ATTR

#define VW (64 / (int)sizeof(SG_T))
#define NR 12
#define SG(name) name##_avx512
#define SG_ATTR VM_AVX512
#include "nn/gemm_tile.h"
#undef VW
#undef NR
#undef SG
#undef SG_ATTR
#endif

typedef void (*pack_fn)(SG_T *, const SG_T *, int, int, int, int, int, int);
typedef void (*tile_fn)(const SG_T *, int, int, int, int, int, int, const SG_T *, int, SG_T *,
                        int, SG_T *, int);
#ifdef VM_DISPATCH
static const pack_fn pack_fns[3] = {pack_a_all_base, pack_a_all_avx2, pack_a_all_avx512};
static const tile_fn tile_fns[3] = {tile_base, tile_avx2, tile_avx512};
static const int mr_of[3] = {MR_base, MR_avx2, MR_avx512};
#else
static const pack_fn pack_fns[1] = {pack_a_all_base};
static const tile_fn tile_fns[1] = {tile_base};
static const int mr_of[1] = {MR_base};
#endif

int GK(mr)(void) { return mr_of[vm_isa()]; }

/* x rounded up to a cache line (the packed panels' alignment) */
static SG_T *line_up(SG_T *x) { return (SG_T *)(((size_t)x + 63) & ~(size_t)63); }

size_t GK(a_size)(int M, int K) {
    const size_t mr = (size_t)GK(mr)(), kb = ((size_t)K + SG_KC - 1) / SG_KC;
    return ((size_t)M + mr - 1) / mr * mr * SG_KC * (kb > 0 ? kb : 1) + SG_ALIGN;
}

size_t GK(b_size)(void) { return 12 * SG_KC + SG_ALIGN; }  /* NR <= 12 in every instance */

void GK(pack_a)(int tA, int M, int K, const SG_T *A, int lda, SG_T *ap, int p0, int p1) {
    if (M > 0 && K > 0) pack_fns[vm_isa()](line_up(ap), A, lda, tA, M, K, p0, p1);
}

void GK(tile)(const SG_T *ap, int M_all, int i0, int tB, int M, int N, int K, const SG_T *B,
              int ldb, SG_T *c, int ldc, SG_T *bp, int acc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!acc) for (int j = 0; j < N; j++) memset(c + (size_t)j * ldc, 0, (size_t)M * sizeof(SG_T));
        return;
    }
    const int isa = vm_isa(), mr = mr_of[isa];
    tile_fns[isa](line_up((SG_T *)ap), (M_all + mr - 1) / mr, i0 / mr, tB, M, N, K, B, ldb, c,
                  ldc, line_up(bp), acc);
}
