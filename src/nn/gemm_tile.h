/* One tile of a product in one precision, c (M x N, column-major, ldc) = op(A) op(B), by
 * packed panels and a register-blocked micro-kernel (Goto & van de Geijn 2008): op(A) in
 * panels of MR = 2 VW rows and op(B) in panels of NR columns, each k-major, for blocks of
 * KC steps of k; an MR x NR block of c lives in 2 NR vector registers while k runs. Edge
 * panels are padded with zeros, so every block runs the same loop. Included by sgemm.c
 * (float) and dgemm.c (double), through gemm_kernels.h, once per instruction set: SG_T the
 * element type, VW elements per vector, NR, SG(name) names this instance, SG_ATTR its target
 * attribute, SG_KC the k block. Each output is the same chain of multiply-adds over k in
 * any tile. */

typedef SG_T SG(vec) __attribute__((vector_size(VW * sizeof(SG_T))));
enum { SG(MR) = 2 * VW };

/* op(A) rows i0 .. i0 + MR - 1 (rows past M are zeros), steps k0 .. k0 + kc - 1 */
SG_ATTR static void SG(pack_a)(SG_T *restrict p, const SG_T *A, int lda, int tA, int M,
                               int i0, int k0, int kc) {
    const int MR = SG(MR), rows = M - i0 < MR ? M - i0 : MR;
    for (int k = 0; k < kc; k++) {
        SG_T *pk = p + (size_t)k * MR;
        if (tA)
            for (int r = 0; r < rows; r++) pk[r] = A[(size_t)(k0 + k) + (size_t)(i0 + r) * lda];
        else
            memcpy(pk, A + (size_t)(i0) + (size_t)(k0 + k) * lda, (size_t)rows * sizeof(SG_T));
        for (int r = rows; r < MR; r++) pk[r] = (SG_T)0;
    }
}

/* op(B) columns j0 .. j0 + NR - 1 (columns past N are zeros), steps k0 .. k0 + kc - 1 */
SG_ATTR static void SG(pack_b)(SG_T *restrict p, const SG_T *B, int ldb, int tB, int N,
                               int j0, int k0, int kc) {
    const int cols = N - j0 < NR ? N - j0 : NR;
    if (tB) {
        for (int k = 0; k < kc; k++) {
            SG_T *pk = p + (size_t)k * NR;
            memcpy(pk, B + (size_t)j0 + (size_t)(k0 + k) * ldb, (size_t)cols * sizeof(SG_T));
            for (int j = cols; j < NR; j++) pk[j] = (SG_T)0;
        }
    } else {  /* a transpose: reads along NR columns, writes each k's NR values together */
        const SG_T *bj[NR];
        for (int j = 0; j < NR; j++) bj[j] = B + (size_t)k0 + (size_t)(j0 + (j < cols ? j : 0)) * ldb;
        for (int k = 0; k < kc; k++) {
            SG_T *pk = p + (size_t)k * NR;
            #pragma GCC unroll 16
            for (int j = 0; j < NR; j++) pk[j] = j < cols ? bj[j][k] : (SG_T)0;
        }
    }
}

/* the MR x NR block at c (ldc) from packed panels a and b over kc steps; added to what c
 * holds when add, and only its first rows x cols written */
SG_ATTR static void SG(micro)(SG_T *c, int ldc, const SG_T *restrict a, const SG_T *restrict b,
                              int kc, int rows, int cols, int add) {
    const int MR = SG(MR);
    SG(vec) c0[NR], c1[NR], a0, a1;
    #pragma GCC unroll 16
    for (int j = 0; j < NR; j++) { c0[j] = (SG(vec)){0}; c1[j] = (SG(vec)){0}; }
    for (int k = 0; k < kc; k++) {
        memcpy(&a0, a + (size_t)k * MR, sizeof a0);
        memcpy(&a1, a + (size_t)k * MR + VW, sizeof a1);
        const SG_T *bk = b + (size_t)k * NR;
        #pragma GCC unroll 16
        for (int j = 0; j < NR; j++) {
            c0[j] += a0 * bk[j];
            c1[j] += a1 * bk[j];
        }
    }
    /* j runs over all NR (unrolled, constant indices) so that the accumulators stay in
     * registers; columns past cols are not written */
    if (rows == MR) {
        #pragma GCC unroll 16
        for (int j = 0; j < NR; j++) {
            if (j >= cols) continue;
            SG_T *cj = c + (size_t)j * ldc;
            if (add) {
                SG(vec) o0, o1;
                memcpy(&o0, cj, sizeof o0);
                memcpy(&o1, cj + VW, sizeof o1);
                c0[j] += o0;
                c1[j] += o1;
            }
            memcpy(cj, &c0[j], sizeof c0[j]);
            memcpy(cj + VW, &c1[j], sizeof c1[j]);
        }
    } else {
        SG_T t[2 * VW];
        #pragma GCC unroll 16
        for (int j = 0; j < NR; j++) {
            if (j >= cols) continue;
            SG_T *cj = c + (size_t)j * ldc;
            memcpy(t, &c0[j], sizeof c0[j]);
            memcpy(t + VW, &c1[j], sizeof c1[j]);
            for (int r = 0; r < rows; r++) cj[r] = add ? cj[r] + t[r] : t[r];
        }
    }
}

/* op(A) (M x K) packed whole: panel p of k-block kb at ap + (kb np + p) MR SG_KC, for
 * panels p0 .. p1 - 1 (np = panels of M) */
SG_ATTR static void SG(pack_a_all)(SG_T *ap, const SG_T *A, int lda, int tA, int M, int K,
                                   int p0, int p1) {
    const int MR = SG(MR), np = (M + MR - 1) / MR;
    for (int k0 = 0, kb = 0; k0 < K; k0 += SG_KC, kb++)
        for (int p = p0; p < p1; p++)
            SG(pack_a)(ap + ((size_t)kb * np + p) * MR * SG_KC, A, lda, tA, M, p * MR, k0,
                       K - k0 < SG_KC ? K - k0 : SG_KC);
}

/* the M x N tile of c whose rows start at panel pi0 of op(A), packed whole by pack_a_all
 * (np panels), added to what c holds when acc; bp holds NR SG_KC elements. Every panel is
 * packed, even where rows or columns
 * are contiguous: read in place at a power-of-two stride (layer widths), the k steps of a
 * panel fall into a few cache sets and the product ran 20% slower. */
SG_ATTR static void SG(tile)(const SG_T *ap, int np, int pi0, int tB, int M, int N, int K,
                             const SG_T *B, int ldb, SG_T *c, int ldc, SG_T *bp, int acc) {
    const int MR = SG(MR), nq = (M + MR - 1) / MR;
    for (int k0 = 0, kb = 0; k0 < K; k0 += SG_KC, kb++) {
        const int kc = K - k0 < SG_KC ? K - k0 : SG_KC;
        const SG_T *apk = ap + ((size_t)kb * np + pi0) * MR * SG_KC;
        for (int j0 = 0; j0 < N; j0 += NR) {  /* one panel of op(B) in L1, op(A)'s in L2 */
            const int cols = N - j0 < NR ? N - j0 : NR;
            SG(pack_b)(bp, B, ldb, tB, N, j0, k0, kc);
            for (int p = 0; p < nq; p++) {
                const int rows = M - p * MR < MR ? M - p * MR : MR;
                SG(micro)(c + (size_t)p * MR + (size_t)j0 * ldc, ldc, apk + (size_t)p * MR * SG_KC,
                          bp, kc, rows, cols, acc || k0 > 0);
            }
        }
    }
}
