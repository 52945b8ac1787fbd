/* nbi's own double-precision product for the float64 path (nn_gemm's tiles): the kernels of
 * gemm_kernels.h in double. Used on AVX-512 CPUs instead of the BLAS's dgemm, which may be
 * held to 256-bit kernels (OpenBLAS 0.3.21 runs its Haswell kernels on Zen 5); bench/gemm.R
 * measures both. */
#include <stdlib.h>
#include <string.h>
#include "nn/nn.h"
#include "nn/vmath.h"

#define SG_T double
#define GK(name) nn_dgemm_##name
#include "nn/gemm_kernels.h"
