#include <string.h>
/* .Call entry for importance weights. */
#include "r_util.h"
#include "infer/infer.h"
#include "rng.h"

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

/* Standardised draws z (d x n, one column per draw; k consecutive draws per observation)
 * and their log-densities as each observation's parameters: a list of k x d matrices
 * theta = z * sd + mean per coordinate (column names `names`), a list of log-densities
 * log_q - sum(log sd), and whether each draw lies inside [lower, upper] (NaN does not),
 * with the count per observation. One pass in C: predict() handles millions of draws. */
SEXP r_draws_theta(SEXP z, SEXP log_q, SEXP per, SEXP mean, SEXP sd, SEXP lower, SEXP upper,
                   SEXP names) {
    if (!Rf_isReal(mean)) Rf_error("'mean' must be a double vector");
    const int d = LENGTH(mean);
    const int n = need_cols(z, d, "z"), k = Rf_asInteger(per);
    if (k == NA_INTEGER || k < 1 || n % k != 0) Rf_error("'per' must divide the number of draws");
    const double *m = need_real(mean, d, "mean"), *s = need_real(sd, d, "sd");
    const double *lo = need_real(lower, d, "lower"), *hi = need_real(upper, d, "upper");
    const double *lq = need_real(log_q, n, "log_q"), *zz = REAL(z);
    if (!Rf_isString(names) || LENGTH(names) != d) Rf_error("'names' must have %d strings", d);
    double shift = 0.0;
    for (int j = 0; j < d; j++) shift += log(s[j]);
    const int n_obs = n / k;
    const char *fields[] = {"theta", "log_q", "inside", "n_inside", ""};
    SEXP out = PROTECT(Rf_mkNamed(VECSXP, fields));
    SEXP th = Rf_allocVector(VECSXP, n_obs);
    SET_VECTOR_ELT(out, 0, th);
    SEXP lql = Rf_allocVector(VECSXP, n_obs);
    SET_VECTOR_ELT(out, 1, lql);
    SEXP inside = Rf_allocVector(LGLSXP, n);
    SET_VECTOR_ELT(out, 2, inside);
    SEXP count = Rf_allocVector(INTSXP, n_obs);
    SET_VECTOR_ELT(out, 3, count);
    SEXP dn = PROTECT(Rf_allocVector(VECSXP, 2));
    SET_VECTOR_ELT(dn, 1, names);
    int *in = LOGICAL(inside), *cnt = INTEGER(count);
    for (int o = 0; o < n_obs; o++) {
        SEXP mo = Rf_allocMatrix(REALSXP, k, d);
        SET_VECTOR_ELT(th, o, mo);
        Rf_setAttrib(mo, R_DimNamesSymbol, dn);
        SEXP lo_ = Rf_allocVector(REALSXP, k);
        SET_VECTOR_ELT(lql, o, lo_);
        double *t = REAL(mo), *l = REAL(lo_);
        const size_t i0 = (size_t)o * k;
        for (int i = 0; i < k; i++) {
            in[i0 + i] = 1;
            l[i] = lq[i0 + i] - shift;
        }
        for (int j = 0; j < d; j++)
            for (int i = 0; i < k; i++) {
                double v = zz[(i0 + i) * d + j] * s[j] + m[j];
                t[(size_t)j * k + i] = v;
                if (!(v >= lo[j] && v <= hi[j])) in[i0 + i] = 0;
            }
        int c = 0;
        for (int i = 0; i < k; i++) c += in[i0 + i];
        cnt[o] = c;
    }
    UNPROTECT(2);
    return out;
}

/* One 52-bit key per column of x (a double matrix): the bits of the column's values mixed
 * with base. Random streams keyed by an observation's own values make its draws independent
 * of the other observations in a call (and of their order). */
SEXP r_obs_keys(SEXP x, SEXP rows, SEXP base) {
    const int p = Rf_asInteger(rows);
    if (p == NA_INTEGER || p < 1) Rf_error("'rows' must be a positive whole number");
    const int n = need_cols(x, p, "x");
    const uint64_t b = need_seed(base);
    SEXP out = PROTECT(Rf_allocVector(REALSXP, n));
    for (int o = 0; o < n; o++) {
        uint64_t h = rng_mix(b ^ 0x6A09E667F3BCC909ULL);
        const double *v = REAL(x) + (size_t)o * p;
        for (int j = 0; j < p; j++) {
            uint64_t bits;
            double t = v[j] == 0.0 ? 0.0 : v[j];  /* -0 and +0 alike */
            memcpy(&bits, &t, sizeof bits);
            h = rng_mix(h ^ (bits + 0x9E3779B97F4A7C15ULL));
        }
        REAL(out)[o] = (double)(h >> 12);  /* 52 bits: small offsets stay exact in a double */
    }
    UNPROTECT(1);
    return out;
}
