/* .Call entry for importance weights. */
#include "r_util.h"
#include "infer/infer.h"

SEXP r_importance(SEXP log_lik, SEXP log_prior, SEXP log_q) {
    R_xlen_t n = XLENGTH(log_q);
    if (n < 1 || n > INT_MAX) Rf_error("'log_q' must have between 1 and 2^31-1 values");
    need_real(log_lik, n, "log_lik");
    need_real(log_prior, n, "log_prior");
    need_real(log_q, n, "log_q");
    SEXP lw = PROTECT(Rf_allocVector(REALSXP, n)), w = PROTECT(Rf_allocVector(REALSXP, n));
    is_stats s;
    int rc = importance_weights(REAL(log_lik), REAL(log_prior), REAL(log_q), (int)n, REAL(lw),
                                REAL(w), &s);
    SEXP out = PROTECT(Rf_allocVector(VECSXP, 7)), nm = PROTECT(Rf_allocVector(STRSXP, 7));
    const char *names[] = {"log_weights", "weights", "n_eff", "log_evidence", "log_evidence_se",
                           "n_zero", "all_zero"};
    for (int i = 0; i < 7; i++) SET_STRING_ELT(nm, i, Rf_mkChar(names[i]));
    SET_VECTOR_ELT(out, 0, lw); SET_VECTOR_ELT(out, 1, w);
    SET_VECTOR_ELT(out, 2, Rf_ScalarReal(s.n_eff));
    SET_VECTOR_ELT(out, 3, Rf_ScalarReal(s.log_evidence));
    SET_VECTOR_ELT(out, 4, Rf_ScalarReal(s.log_evidence_se));
    SET_VECTOR_ELT(out, 5, Rf_ScalarInteger(s.n_zero));
    SET_VECTOR_ELT(out, 6, Rf_ScalarLogical(rc == 1));
    Rf_setAttrib(out, R_NamesSymbol, nm);
    UNPROTECT(4);
    return out;
}

/* Standardised draws z (d x n, one column per draw) to parameters: theta (n x d) =
 * z * sd + mean per coordinate, and whether each row lies inside [lower, upper] (NaN does
 * not). One pass in C: predict() handles millions of draws. */
SEXP r_draws_theta(SEXP z, SEXP mean, SEXP sd, SEXP lower, SEXP upper) {
    if (!Rf_isReal(mean)) Rf_error("'mean' must be a double vector");
    const int d = LENGTH(mean);
    const int n = need_cols(z, d, "z");
    const double *m = need_real(mean, d, "mean"), *s = need_real(sd, d, "sd");
    const double *lo = need_real(lower, d, "lower"), *hi = need_real(upper, d, "upper");
    const double *zz = REAL(z);
    SEXP theta = PROTECT(Rf_allocMatrix(REALSXP, n, d)), inside = PROTECT(Rf_allocVector(LGLSXP, n));
    double *th = REAL(theta);
    int *in = LOGICAL(inside);
    for (int i = 0; i < n; i++) in[i] = 1;
    for (int j = 0; j < d; j++) {
        double *col = th + (size_t)j * n;
        for (int i = 0; i < n; i++) {
            double v = zz[(size_t)i * d + j] * s[j] + m[j];
            col[i] = v;
            if (!(v >= lo[j] && v <= hi[j])) in[i] = 0;
        }
    }
    const char *names[] = {"theta", "inside", ""};
    SEXP out = PROTECT(Rf_mkNamed(VECSXP, names));
    SET_VECTOR_ELT(out, 0, theta);
    SET_VECTOR_ELT(out, 1, inside);
    UNPROTECT(3);
    return out;
}
