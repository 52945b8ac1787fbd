/* nbi's own single-precision product for the float32 path (nn_gemm's tiles): packed panels
 * and a register-blocked micro-kernel (gemm_kernels.h, gemm_tile.h), compiled for the base
 * CPU, for AVX2 + FMA and for AVX-512, the widest the CPU has chosen at run time. On AVX-512
 * CPUs it is used instead of the BLAS's sgemm, which may be held to 256-bit kernels
 * (OpenBLAS picks its kernels by CPU model, or by OPENBLAS_CORETYPE): on one Zen 5 core at
 * the flow's shapes, OpenBLAS 0.3.21's Haswell sgemm ran at 93-97 GF/s and this kernel at
 * 148-173. */
#include <stdlib.h>
#include <string.h>
#include "nn/nn.h"
#include "nn/vmath.h"

#define SG_T float
#define GK(name) nn_sgemm_##name
#include "nn/gemm_kernels.h"

/* the instruction set of the kernels: 0 base, 1 AVX2 + FMA, 2 AVX-512 */
int nn_sgemm_isa(void) { return vm_isa(); }
