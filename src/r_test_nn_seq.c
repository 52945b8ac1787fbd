/* Test entries for the sequence layers (conv1d, layer norm, max-pool, GRU, segment pooling): forward and backward,
 * so that R tests can check them against direct R loops and finite differences.
 * Arrays arrive as plain double vectors; an R array with dims c(C, L, B) is exactly the C layout. */
#include <string.h>
#include <limits.h>
#include "r_util.h"
#include "nn/nn.h"

/* dims: n positive whole numbers whose product (the largest tensor) stays addressable by int GEMM sizes */
static void need_dims(SEXP dims, int n, int *d) {
    if ((TYPEOF(dims) != INTSXP && TYPEOF(dims) != REALSXP) || XLENGTH(dims) != n)
        Rf_error("'dims' must be a numeric vector of length %d", n);
    double prod = 1.0;
    for (int i = 0; i < n; i++) {
        double v = TYPEOF(dims) == INTSXP ? (INTEGER(dims)[i] == NA_INTEGER ? -1.0 : INTEGER(dims)[i])
                                          : REAL(dims)[i];
        if (!R_FINITE(v) || v < 1 || v > INT_MAX || v != (int)v) Rf_error("'dims' must hold positive whole numbers");
        d[i] = (int)v;
        prod *= v;
    }
    if (prod > (double)INT_MAX / 8) Rf_error("'dims' describes tensors too large for this entry");
}

static SEXP alloc_array3(int d1, int d2, int d3) {
    SEXP x = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t)d1 * d2 * d3));
    SEXP dim = PROTECT(Rf_allocVector(INTSXP, 3));
    INTEGER(dim)[0] = d1; INTEGER(dim)[1] = d2; INTEGER(dim)[2] = d3;
    Rf_setAttrib(x, R_DimSymbol, dim);
    UNPROTECT(2);
    return x;
}

static SEXP zeros(SEXP x) {
    memset(REAL(x), 0, sizeof(double) * XLENGTH(x));
    return x;
}

/* dims = c(B, L, C, OC, k); x: C x L x B; w: C x k x OC (w[o, j*C + c]); b: OC; dout: OC x L x B */
SEXP r_nn_conv1d(SEXP x, SEXP w, SEXP b, SEXP dout, SEXP dims) {
    const nn_ctx cx = nn_ctx_make(0, 1);  /* layers compute in float64, products on the BLAS */
    int d[5];
    need_dims(dims, 5, d);
    int B = d[0], L = d[1], C = d[2], OC = d[3], k = d[4];
    if (k % 2 == 0) Rf_error("kernel size k (dims[5]) must be odd, got %d", k);
    if ((double)B * L * k * C > (double)INT_MAX / 8 || (double)OC * k * C > (double)INT_MAX / 8)
        Rf_error("'dims' describes tensors too large for this entry");
    need_real(x, (R_xlen_t)B * L * C, "x");
    need_real(w, (R_xlen_t)OC * k * C, "w");
    need_real(b, OC, "b");
    need_real(dout, (R_xlen_t)B * L * OC, "dout");
    SEXP out = PROTECT(alloc_array3(OC, L, B));
    SEXP din = PROTECT(alloc_array3(C, L, B));
    SEXP dw = PROTECT(zeros(alloc_array3(C, k, OC)));
    SEXP db = PROTECT(zeros(Rf_allocVector(REALSXP, OC)));
    size_t ncol = (size_t)B * L * k * C;
    double *col = (double *)R_alloc(ncol, sizeof(double));
    double *dcol = (double *)R_alloc(ncol, sizeof(double));
    conv1d_forward(&cx, REAL(out), col, REAL(x), REAL(w), REAL(b), B, L, C, OC, k);
    conv1d_backward(&cx, REAL(din), REAL(dw), REAL(db), REAL(dout), col, REAL(w), dcol, B, L, C, OC, k);
    SEXP res = PROTECT(Rf_allocVector(VECSXP, 4));
    SET_VECTOR_ELT(res, 0, out); SET_VECTOR_ELT(res, 1, din);
    SET_VECTOR_ELT(res, 2, dw); SET_VECTOR_ELT(res, 3, db);
    UNPROTECT(5);
    return res;
}

/* dims = c(N, C); x, dout: C x N; gamma, beta: C */
SEXP r_nn_layernorm(SEXP x, SEXP gamma, SEXP beta, SEXP dout, SEXP dims) {
    int d[2];
    need_dims(dims, 2, d);
    int N = d[0], C = d[1];
    need_real(x, (R_xlen_t)N * C, "x");
    need_real(gamma, C, "gamma");
    need_real(beta, C, "beta");
    need_real(dout, (R_xlen_t)N * C, "dout");
    SEXP out = PROTECT(Rf_allocMatrix(REALSXP, C, N));
    SEXP din = PROTECT(Rf_allocMatrix(REALSXP, C, N));
    SEXP dgamma = PROTECT(zeros(Rf_allocVector(REALSXP, C)));
    SEXP dbeta = PROTECT(zeros(Rf_allocVector(REALSXP, C)));
    double *mean = (double *)R_alloc(N, sizeof(double));
    double *rstd = (double *)R_alloc(N, sizeof(double));
    layernorm_forward(REAL(out), mean, rstd, REAL(x), REAL(gamma), REAL(beta), N, C);
    layernorm_backward(REAL(din), REAL(dgamma), REAL(dbeta), REAL(dout), REAL(x), mean, rstd,
                       REAL(gamma), N, C);
    SEXP res = PROTECT(Rf_allocVector(VECSXP, 4));
    SET_VECTOR_ELT(res, 0, out); SET_VECTOR_ELT(res, 1, din);
    SET_VECTOR_ELT(res, 2, dgamma); SET_VECTOR_ELT(res, 3, dbeta);
    UNPROTECT(5);
    return res;
}

/* dims = c(B, L, C); x: C x L x B; dout: C x floor(L/2) x B */
SEXP r_nn_maxpool2(SEXP x, SEXP dout, SEXP dims) {
    int d[3];
    need_dims(dims, 3, d);
    int B = d[0], L = d[1], C = d[2], L2 = L / 2;
    need_real(x, (R_xlen_t)B * L * C, "x");
    need_real(dout, (R_xlen_t)B * L2 * C, "dout");
    SEXP out = PROTECT(alloc_array3(C, L2, B));
    SEXP din = PROTECT(alloc_array3(C, L, B));
    int *idx = (int *)R_alloc((size_t)B * L2 * C + 1, sizeof(int));
    maxpool2_forward(REAL(out), idx, REAL(x), B, L, C);
    maxpool2_backward(REAL(din), REAL(dout), idx, B, L, C);
    SEXP res = PROTECT(Rf_allocVector(VECSXP, 2));
    SET_VECTOR_ELT(res, 0, out); SET_VECTOR_ELT(res, 1, din);
    UNPROTECT(3);
    return res;
}

/* dims = c(B, T, C, H); x: C x T x B; Wih: C x 3H (column g = row g of the C layout); Whh: H x 3H;
 * bih, bhh: 3H; dout: H x T x B */
SEXP r_nn_gru(SEXP x, SEXP Wih, SEXP Whh, SEXP bih, SEXP bhh, SEXP dout, SEXP dims) {
    const nn_ctx cx = nn_ctx_make(0, 1);  /* layers compute in float64, products on the BLAS */
    int d[4];
    need_dims(dims, 4, d);
    int B = d[0], T = d[1], C = d[2], H = d[3];
    if ((double)B * T * 4 * H > (double)INT_MAX / 8 || (double)3 * H * (C > H ? C : H) > (double)INT_MAX / 8)
        Rf_error("'dims' describes tensors too large for this entry");
    need_real(x, (R_xlen_t)B * T * C, "x");
    need_real(Wih, (R_xlen_t)3 * H * C, "Wih");
    need_real(Whh, (R_xlen_t)3 * H * H, "Whh");
    need_real(bih, (R_xlen_t)3 * H, "bih");
    need_real(bhh, (R_xlen_t)3 * H, "bhh");
    need_real(dout, (R_xlen_t)B * T * H, "dout");
    SEXP out = PROTECT(alloc_array3(H, T, B));
    SEXP din = PROTECT(alloc_array3(C, T, B));
    SEXP dWih = PROTECT(zeros(Rf_allocMatrix(REALSXP, C, 3 * H)));
    SEXP dWhh = PROTECT(zeros(Rf_allocMatrix(REALSXP, H, 3 * H)));
    SEXP dbih = PROTECT(zeros(Rf_allocVector(REALSXP, 3 * H)));
    SEXP dbhh = PROTECT(zeros(Rf_allocVector(REALSXP, 3 * H)));
    double *cache = (double *)R_alloc(gru_cache_size(B, T, H), sizeof(double));
    double *work = (double *)R_alloc(gru_work_size(B, T, C, H), sizeof(double));
    gru_forward(&cx, REAL(out), cache, REAL(x), REAL(Wih), REAL(Whh), REAL(bih), REAL(bhh), B, T, C, H, work);
    gru_backward(&cx, REAL(din), REAL(dWih), REAL(dWhh), REAL(dbih), REAL(dbhh), REAL(dout), REAL(x),
                 REAL(out), cache, REAL(Wih), REAL(Whh), B, T, C, H, work);
    SEXP res = PROTECT(Rf_allocVector(VECSXP, 6));
    SET_VECTOR_ELT(res, 0, out); SET_VECTOR_ELT(res, 1, din);
    SET_VECTOR_ELT(res, 2, dWih); SET_VECTOR_ELT(res, 3, dWhh);
    SET_VECTOR_ELT(res, 4, dbih); SET_VECTOR_ELT(res, 5, dbhh);
    UNPROTECT(7);
    return res;
}

/* Segment pooling (nn/segpool.c): kv is N x 2D (row i: key, then value), q is Q x D, counts
 * the rows of each of the B segments; dout is B x Q x D (attention) and B x D (mean).
 * Returns list(out, dk, dv, dq, mean, dmean_x) for finite-difference tests. */
SEXP r_nn_segpool(SEXP kv, SEXP q, SEXP counts, SEXP heads, SEXP dout, SEXP dmean, SEXP threads) {
    const int H = Rf_asInteger(heads), nt = need_threads(threads);
    const int B = (int)XLENGTH(counts), Q = Rf_ncols(q), D = Rf_nrows(q);
    if (H == NA_INTEGER || H < 1 || D < 1 || D % H) Rf_error("'heads' must divide the rows of 'q'");
    if (TYPEOF(counts) != INTSXP || B < 1) Rf_error("'counts' must be a non-empty integer vector");
    int *start = (int *)R_alloc((size_t)B + 1, sizeof(int));
    start[0] = 0;
    for (int b = 0; b < B; b++) {
        if (INTEGER(counts)[b] < 1) Rf_error("'counts' must be >= 1");
        start[b + 1] = start[b] + INTEGER(counts)[b];
    }
    const int N = start[B];
    need_real(kv, (R_xlen_t)N * 2 * D, "kv");
    need_real(q, (R_xlen_t)Q * D, "q");
    need_real(dout, (R_xlen_t)B * Q * D, "dout");
    need_real(dmean, (R_xlen_t)B * D, "dmean");
    SEXP out = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t)B * Q * D));
    SEXP dkv = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t)N * 2 * D));
    SEXP dq = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t)Q * D));
    SEXP mean = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t)B * D));
    SEXP dx = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t)N * D));
    double *attn = (double *)R_alloc((size_t)N * Q * H, sizeof(double));
    double *work = (double *)R_alloc((size_t)B * Q * D, sizeof(double));
    const double *k = REAL(kv);
    segpool_forward(REAL(out), attn, k, k + D, 2 * D, REAL(q), start, B, Q, D, H, nt);
    memset(REAL(dq), 0, (size_t)Q * D * sizeof(double));
    segpool_backward(REAL(dkv), REAL(dkv) + D, REAL(dq), REAL(dout), attn, k, k + D, 2 * D,
                     REAL(q), start, B, Q, D, H, work, nt);
    /* the mean of the keys' rows as x (N x D with stride D): a plain N x D copy */
    double *x = (double *)R_alloc((size_t)N * D + 1, sizeof(double));
    for (int i = 0; i < N; i++) memcpy(x + (size_t)i * D, k + (size_t)i * 2 * D, (size_t)D * sizeof(double));
    segmean_forward(REAL(mean), x, start, B, D);
    memset(REAL(dx), 0, (size_t)N * D * sizeof(double));
    segmean_backward(REAL(dx), REAL(dmean), start, B, D);
    SEXP res = PROTECT(Rf_allocVector(VECSXP, 5));
    SET_VECTOR_ELT(res, 0, out); SET_VECTOR_ELT(res, 1, dkv); SET_VECTOR_ELT(res, 2, dq);
    SET_VECTOR_ELT(res, 3, mean); SET_VECTOR_ELT(res, 4, dx);
    UNPROTECT(6);
    return res;
}
