/* Test entries for single layers: forward and backward of linear and activation layers,
 * so that R tests can check them against matrix algebra and finite differences. */
#include <string.h>
#include "r_util.h"
#include "nn/nn.h"

/* x: C x B, w: C x OC (column-major = OC x C row-major), b: OC, dout: OC x B */
SEXP r_nn_linear(SEXP x, SEXP w, SEXP b, SEXP dout) {
    const nn_ctx cx = nn_ctx_make(0, 1);  /* layers compute in float64, products on the BLAS */
    int C = Rf_nrows(x), B = Rf_ncols(x), OC = (int)XLENGTH(b);
    need_real(x, -1, "x");
    need_real(w, (R_xlen_t)C * OC, "w");
    need_real(b, OC, "b");
    need_real(dout, (R_xlen_t)OC * B, "dout");
    SEXP out = PROTECT(Rf_allocMatrix(REALSXP, OC, B));
    SEXP din = PROTECT(Rf_allocMatrix(REALSXP, C, B));
    SEXP dw = PROTECT(Rf_allocMatrix(REALSXP, C, OC));
    SEXP db = PROTECT(Rf_allocVector(REALSXP, OC));
    memset(REAL(dw), 0, sizeof(double) * C * OC);
    memset(REAL(db), 0, sizeof(double) * OC);
    linear_forward(&cx, REAL(out), REAL(x), REAL(w), REAL(b), B, C, OC);
    linear_backward(&cx, REAL(din), REAL(dw), REAL(db), REAL(dout), REAL(x), REAL(w), B, C, OC);
    SEXP res = PROTECT(Rf_allocVector(VECSXP, 4));
    SET_VECTOR_ELT(res, 0, out); SET_VECTOR_ELT(res, 1, din);
    SET_VECTOR_ELT(res, 2, dw); SET_VECTOR_ELT(res, 3, db);
    UNPROTECT(5);
    return res;
}

SEXP r_nn_act(SEXP x, SEXP dout, SEXP act, SEXP threads) {
    R_xlen_t n = XLENGTH(x);
    need_real(x, -1, "x");
    need_real(dout, n, "dout");
    int a = Rf_asInteger(act), nt = need_threads(threads);
    if (a == NA_INTEGER || a < 0 || a > 2) Rf_error("'act' must be 0 (relu), 1 (tanh) or 2 (gelu)");
    SEXP out = PROTECT(Rf_allocVector(REALSXP, n));
    SEXP din = PROTECT(Rf_allocVector(REALSXP, n));
    act_forward(REAL(out), REAL(x), n, a, nt);
    act_backward(REAL(din), REAL(dout), REAL(x), REAL(out), n, a, nt);
    SEXP res = PROTECT(Rf_allocVector(VECSXP, 2));
    SET_VECTOR_ELT(res, 0, out); SET_VECTOR_ELT(res, 1, din);
    UNPROTECT(3);
    return res;
}

/* C = alpha op(A) op(B) + beta C0 through nn_gemm: trans = c(ta, tb) (0/1), mode = 0 float64,
 * 1 float32, 2 float32 through the C kernel, 3 float64 through the C kernel, 4 float64 through
 * dgemm (0: as the CPU and NBI_DGEMM choose); mirror = 0, or A and B read from a registered
 * float copy (nn_ctx_mirror) that is exact (1) or holds twice their values (2: shows that the
 * copy, not A and B, is read); for tests of the tiles, threads and copies */
SEXP r_nn_gemm(SEXP a, SEXP b, SEXP c0, SEXP trans, SEXP coef, SEXP mode, SEXP threads,
               SEXP mirror) {
    if (!Rf_isMatrix(a) || !Rf_isMatrix(b) || !Rf_isMatrix(c0)) Rf_error("'a', 'b', 'c0' must be matrices");
    need_real(a, -1, "a"); need_real(b, -1, "b"); need_real(c0, -1, "c0");
    const double *co = need_real(coef, 2, "coef");
    if (TYPEOF(trans) != INTSXP || XLENGTH(trans) != 2) Rf_error("'trans' must be 2 integers");
    const int tA = INTEGER(trans)[0] == 1, tB = INTEGER(trans)[1] == 1;
    const int M = tA ? Rf_ncols(a) : Rf_nrows(a), K = tA ? Rf_nrows(a) : Rf_ncols(a);
    const int N = tB ? Rf_nrows(b) : Rf_ncols(b), Kb = tB ? Rf_ncols(b) : Rf_nrows(b);
    if (Kb != K || Rf_nrows(c0) != M || Rf_ncols(c0) != N) Rf_error("non-conformable matrices");
    const int md = Rf_asInteger(mode), nt = need_threads(threads);
    if (md == NA_INTEGER || md < 0 || md > 4) Rf_error("'mode' must be 0 to 4");
    const int mi = Rf_asInteger(mirror);
    if (mi == NA_INTEGER || mi < 0 || mi > 2) Rf_error("'mirror' must be 0, 1 or 2");
    nn_ctx cx = nn_ctx_make(md > 2 ? 0 : md, nt);
    if (md > 2) cx.own_dkernel = md == 3;
    SEXP out = PROTECT(Rf_duplicate(c0));
    const double *A = REAL(a), *B = REAL(b);
    if (mi) {  /* A and B side by side in one array with its float copy */
        const size_t na = XLENGTH(a), n = na + XLENGTH(b);
        double *w = (double *)R_alloc(n, sizeof(double));
        float *wf = (float *)R_alloc(n, sizeof(float));
        memcpy(w, A, na * sizeof(double));
        memcpy(w + na, B, XLENGTH(b) * sizeof(double));
        for (size_t i = 0; i < n; i++) wf[i] = (float)(mi == 2 ? 2.0 * w[i] : w[i]);
        cx = nn_ctx_mirror(&cx, w, wf, n);
        A = w;
        B = w + na;
    }
    nn_gemm(&cx, tA ? "T" : "N", tB ? "T" : "N", M, N, K, co[0], A, Rf_nrows(a), B, Rf_nrows(b),
            co[1], REAL(out), M);
    UNPROTECT(1);
    return out;
}
