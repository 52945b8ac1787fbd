/* Every matrix product of the C core goes through nn_gemm: dgemm in float64 mode; in float32
 * mode the operands are converted once per product to single precision (or read from a
 * float copy, nn_ctx_mirror), multiplied by nbi's kernel (nn/sgemm.c) or by the BLAS's
 * sgemm (when it has one: NBI_HAVE_SGEMM, set by ./configure), and the product is added to
 * C in double precision, so accumulators (beta = 1, e.g. weight gradients over a batch)
 * never round to float. */
#define USE_FC_LEN_T
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <R_ext/BLAS.h>
#ifndef FCONE
#define FCONE
#endif
#include "nn/nn.h"

#ifdef NBI_HAVE_SGEMM
extern void F77_NAME(sgemm)(const char *ta, const char *tb, const int *m, const int *n,
                            const int *k, const float *alpha, const float *a, const int *lda,
                            const float *b, const int *ldb, const float *beta, float *c,
                            const int *ldc FCLEN FCLEN);
#endif

#define SINGLE_MIN 262144.0  /* 64^3 */
#define PANEL 128            /* columns of C per float32 product call */
#define DOUBLE_MIN 32768.0   /* 32^3: smaller float64 products go to dgemm */

/* the float copy of the rows x cols matrix at x (leading dimension ld), or NULL */
static const float *mirrored(const nn_ctx *cx, const double *x, int rows, int cols, int ld) {
    if (!cx->mirror || rows <= 0 || cols <= 0 || x < cx->mirror_of || x >= cx->mirror_of + cx->mirror_n)
        return NULL;
    const size_t at = (size_t)(x - cx->mirror_of);
    return at + (size_t)(cols - 1) * ld + rows <= cx->mirror_n ? cx->mirror + at : NULL;
}

int nn_sgemm_own(int mode) {
    const char *env = getenv("NBI_SGEMM");
    if (env && strcmp(env, "own") == 0) return 1;
    return mode == 2 || !nn_have_sgemm() ||
           (nn_sgemm_isa() == 2 && !(env && strcmp(env, "blas") == 0));
}

/* float64 products by nbi's kernel rather than dgemm: on AVX-512 CPUs (NBI_DGEMM=blas keeps
 * the BLAS there, NBI_DGEMM=own takes nbi's kernel on any CPU) */
int nn_dgemm_own(void) {
    const char *env = getenv("NBI_DGEMM");
    if (env && strcmp(env, "own") == 0) return 1;
    if (env && strcmp(env, "blas") == 0) return 0;
    return nn_sgemm_isa() == 2;
}

/* float32 products by nbi's kernel rather than sgemm: where there is no sgemm, and on
 * AVX-512 CPUs (its 512-bit code beats a BLAS held to 256-bit kernels; NBI_SGEMM=blas in the
 * environment keeps the BLAS; NBI_SGEMM=own takes nbi's kernel on any CPU) */
nn_ctx nn_ctx_make(int precision, int threads) {
    nn_ctx c;
    c.precision = precision >= 0 && precision <= 2 ? precision : 0;
    c.own_kernel = nn_sgemm_own(c.precision);
    c.own_dkernel = nn_dgemm_own();
    c.threads = threads >= 1 ? threads : 1;
    c.mirror_of = NULL;
    c.mirror = NULL;
    c.mirror_n = 0;
    return c;
}

int nn_have_sgemm(void) {
#ifdef NBI_HAVE_SGEMM
    return 1;
#else
    return 0;
#endif
}

/* per-thread scratch, grown on demand and kept between products: a cache (its contents
 * never carry from one product to the next), freed when nbi unloads. One for the float
 * copies and the float kernel's panels, one for the double kernel's panels. */
typedef struct {
    void *p;
    size_t bytes;
} scratch_t;
static __thread scratch_t fscratch = {NULL, 0}, dscratch = {NULL, 0};

static void *grow(scratch_t *s, size_t bytes) {
    if (bytes > s->bytes) {
        free(s->p);
        s->bytes = bytes + bytes / 4;
        s->p = malloc(s->bytes);
        if (!s->p) s->bytes = 0;
    }
    return s->p;
}

static float *gemm_scratch(size_t n) { return (float *)grow(&fscratch, n * sizeof(float)); }
static double *dgemm_scratch(size_t n) { return (double *)grow(&dscratch, n * sizeof(double)); }

void nn_free_scratch(void) {
    free(fscratch.p);
    fscratch = (scratch_t){NULL, 0};
    free(dscratch.p);
    dscratch = (scratch_t){NULL, 0};
}

/* C = op(A) op(B) + beta C (beta 0 or 1) by nbi's double kernel, on the same tiles as dgemm
 * (nt of them: nn column panels, nm row tiles), op(A) packed once; 0 when there is no memory
 * for the packed panels */
static int own_dgemm(int threads, int tA, int tB, int M, int N, int K, const double *A, int lda,
                     const double *B, int ldb, double beta, double *C, int ldc, int nm, int nt) {
    const size_t a_size = nn_dgemm_a_size(M, K), per_thread = nn_dgemm_b_size();
    double *buf = dgemm_scratch(a_size + (size_t)threads * per_thread);
    if (!buf) return 0;
    const int mr = nn_dgemm_mr(), np = (M + mr - 1) / mr, par = nt > 1 && threads > 1;
    #pragma omp parallel num_threads(threads) if (par)
    {
        #pragma omp for schedule(static)
        for (int p = 0; p < np; p++) nn_dgemm_pack_a(tA, M, K, A, lda, buf, p, p + 1);
#ifdef _OPENMP
        double *pack = buf + a_size + (size_t)omp_get_thread_num() * per_thread;
#else
        double *pack = buf + a_size;
#endif
        #pragma omp for schedule(static)
        for (int t = 0; t < nt; t++) {
            const int j0 = (t / nm) * PANEL, nb = N - j0 < PANEL ? N - j0 : PANEL;
            const int i0 = (t % nm) * PANEL, mb = nm == 1 ? M : (M - i0 < PANEL ? M - i0 : PANEL);
            nn_dgemm_tile(buf, M, i0, tB, mb, nb, K, tB ? B + j0 : B + (size_t)j0 * ldb, ldb,
                          C + (size_t)j0 * ldc + i0, ldc, pack, beta == 1.0);
        }
    }
    return 1;
}

/* rows x cols block of a column-major double matrix (leading dimension ld) to packed floats */
static void to_float(float *dst, const double *src, int rows, int cols, int ld) {
    for (int j = 0; j < cols; j++) {
        const double *s = src + (size_t)j * ld;
        float *d = dst + (size_t)j * rows;
        #pragma omp simd
        for (int i = 0; i < rows; i++) d[i] = (float)s[i];
    }
}

/* rows 0..mb-1 of columns j0.. (nb of them) of float c (ld M) added into C (ld ldc):
 * C = beta C + alpha c */
static void add_back(double *C, int ldc, const float *c, int M, int mb, int j0, int nb,
                     double alpha, double beta) {
    for (int j = j0; j < j0 + nb; j++) {
        double *cj = C + (size_t)j * ldc;
        const float *pj = c + (size_t)j * M;
        if (beta == 0.0) {
            #pragma omp simd
            for (int i = 0; i < mb; i++) cj[i] = alpha * (double)pj[i];
        } else {
            #pragma omp simd
            for (int i = 0; i < mb; i++) cj[i] = beta * cj[i] + alpha * (double)pj[i];
        }
    }
}

/* C = alpha op(A) op(B) + beta C, BLAS conventions (column-major, ta/tb "N" or "T").
 * C is computed in tiles of PANEL columns (and, when that gives a single panel, PANEL rows),
 * spread over the .Call's threads on a single-threaded BLAS: the tiles depend on the shape
 * alone, not on the thread count, so neither do the results (OpenBLAS's own threaded sgemm
 * rounds differently for different thread counts), and OpenMP and BLAS threads never wait
 * on each other for the same cores (with a threaded dgemm between OpenMP loops, 2 threads
 * ran at half the speed of 1). */
void nn_gemm(const nn_ctx *cx, const char *ta, const char *tb, int M, int N, int K, double alpha,
             const double *A, int lda, const double *B, int ldb, double beta, double *C, int ldc) {
    const int mode = cx->precision, threads = cx->threads;
    if (M <= 0 || N <= 0) return;
    const int tA = ta[0] == 'T', tB = tb[0] == 'T';
    const int ar = tA ? K : M, ac = tA ? M : K;
    /* nbi's kernel, except for products of fewer rows than its panels (then sgemm, if any) */
    const int kernel = mode && cx->own_kernel &&
                       (M >= nn_sgemm_mr() || !nn_have_sgemm() || mode == 2);
    const size_t MK = (size_t)M * K, NK = (size_t)N * K;
    const int nn = (N + PANEL - 1) / PANEL;
    const int nm = nn == 1 ? (M + PANEL - 1) / PANEL : 1;  /* row tiles for a single panel */
    const int nt = nn * nm, par = nt > 1 && threads > 1;
    const size_t a_size = kernel ? nn_sgemm_a_size(M, K) : 0;  /* op(A) packed */
    const size_t per_thread = kernel ? nn_sgemm_b_size() : 0;  /* a panel of op(B) */
    float *buf = NULL;
    /* products below SINGLE_MIN multiply-adds gain nothing from float32 (the copies cost as
     * much as the product), so they stay in double precision */
    if (mode && K > 0 && (mode == 2 || (double)M * N * K >= SINGLE_MIN))
        buf = gemm_scratch(MK + NK + (size_t)M * N + a_size + (size_t)threads * per_thread);
    if (!buf) {  /* float64, or no memory for the float copies: dgemm on the same tiles */
        if (cx->own_dkernel && alpha == 1.0 && (beta == 0.0 || beta == 1.0) && K > 0 &&
            M >= nn_dgemm_mr() && (double)M * N * K >= DOUBLE_MIN &&
            own_dgemm(threads, tA, tB, M, N, K, A, lda, B, ldb, beta, C, ldc, nm, nt))
            return;
        #pragma omp parallel for num_threads(threads) if (par) schedule(static)
        for (int t = 0; t < nt; t++) {
            const int j0 = (t / nm) * PANEL, nb = N - j0 < PANEL ? N - j0 : PANEL;
            const int i0 = (t % nm) * PANEL, mb = nm == 1 ? M : (M - i0 < PANEL ? M - i0 : PANEL);
            const double *Ap = tA ? A + (size_t)i0 * lda : A + i0;
            const double *Bp = tB ? B + j0 : B + (size_t)j0 * ldb;
            F77_CALL(dgemm)(ta, tb, &mb, &nb, &K, &alpha, Ap, &lda, Bp, &ldb, &beta,
                            C + (size_t)j0 * ldc + i0, &ldc FCONE FCONE);
        }
        return;
    }
    float *a = buf, *b = a + MK, *c = b + NK, *apk = c + (size_t)M * N, *packs = apk + a_size;
    const int bc = tB ? K : N, br = tB ? N : K;
    const float *Af = mirrored(cx, A, ar, ac, lda), *Bf = mirrored(cx, B, br, bc, ldb);
    const float *ax = Af ? Af : a, *bx = Bf ? Bf : b;  /* float copies, kept or made below */
    const int lda_x = Af ? lda : ar, ldx = Bf ? ldb : br;
    #pragma omp parallel num_threads(threads) if (par)
    {
        /* the float copies of A and B, by columns, then the tiles */
        if (!Af) {
            #pragma omp for schedule(static)
            for (int j = 0; j < ac; j++) to_float(a + (size_t)j * ar, A + (size_t)j * lda, ar, 1, lda);
        }
        if (!Bf) {
            #pragma omp for schedule(static)
            for (int j = 0; j < bc; j++) to_float(b + (size_t)j * br, B + (size_t)j * ldb, br, 1, ldb);
        }
        if (kernel) {  /* op(A) packed once for all tiles, panel by panel */
            const int np = (M + nn_sgemm_mr() - 1) / nn_sgemm_mr();
            #pragma omp for schedule(static)
            for (int p = 0; p < np; p++) nn_sgemm_pack_a(tA, M, K, ax, lda_x, apk, p, p + 1);
        }
#ifdef _OPENMP
        float *pack = packs + (size_t)omp_get_thread_num() * per_thread;
#else
        float *pack = packs;
#endif
        #pragma omp for schedule(static)
        for (int t = 0; t < nt; t++) {
            const int j0 = (t / nm) * PANEL, nb = N - j0 < PANEL ? N - j0 : PANEL;
            const int i0 = (t % nm) * PANEL, mb = nm == 1 ? M : (M - i0 < PANEL ? M - i0 : PANEL);
            float *cj = c + (size_t)j0 * M + i0;
            const float *bpn = tB ? bx + j0 : bx + (size_t)j0 * ldx;
            if (kernel) {
                nn_sgemm_tile(apk, M, i0, tB, mb, nb, K, bpn, ldx, cj, M, pack, 0);
            } else {
#ifdef NBI_HAVE_SGEMM
                const float one = 1.0f, zero = 0.0f;
                const float *apn = tA ? ax + (size_t)i0 * lda_x : ax + i0;
                F77_CALL(sgemm)(ta, tb, &mb, &nb, &K, &one, apn, &lda_x, bpn, &ldx, &zero, cj, &M
                                FCONE FCONE);
#endif
            }
            add_back(C + i0, ldc, c + i0, M, mb, j0, nb, alpha, beta);
        }
    }
}
