/* .Call entries for the model: initialise, log-density, sampling, gradients. */
#include <math.h>
#include <string.h>
#include "r_util.h"
#include "flow/made.h"

#define CHUNK 1024

SEXP r_model_init(SEXP spec, SEXP seed) {
    model_layout M;
    model_from_spec(&M, spec);
    uint64_t s = need_seed(seed);
    SEXP out = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t)M.n_params));
    feat_init_params(&M.F, REAL(out), s);
    flow_init_params(&M.L, REAL(out) + M.F.n_params, s);
    UNPROTECT(1);
    return out;
}



/* the featurizer's output (nc x nobs) for the columns of x (n_in x nobs), in chunks */
static double *features_of(const model_layout *M, const double *p, const double *x, int nobs,
                           const nn_ctx *cx) {
    const int nc = M->L.nc;
    double *feat = (double *)R_alloc((size_t)nobs * nc + 1, sizeof(double));
    int B = nobs < CHUNK ? (nobs > 0 ? nobs : 1) : CHUNK;
    double *fw = (double *)R_alloc(feat_fwd_work(&M->F, B) + 1, sizeof(double));
    for (int i0 = 0; i0 < nobs; i0 += B) {
        int b = nobs - i0 < B ? nobs - i0 : B;
        const double *f = feat_forward(&M->F, p, x + (size_t)i0 * M->F.n_in, b, fw, cx);
        memcpy(feat + (size_t)i0 * nc, f, (size_t)b * nc * sizeof(double));
    }
    return feat;
}

/* The featurizer's output (the flow's conditioning vector) for each column of x: an
 * nc x n matrix. The out-of-distribution check measures distances there. */
SEXP r_model_features(SEXP spec, SEXP params, SEXP x, SEXP threads) {
    model_layout M;
    model_from_spec(&M, spec);
    int nt = need_threads(threads);
    const double *p = masked_params(&M, params, nt);
    const nn_ctx cx = nn_ctx_make(M.precision, nt);
    int n = need_cols(x, M.F.n_in, "x");
    model_bind_rows(&M, REAL(x), n, NULL, 0, "x");
    SEXP out = PROTECT(Rf_allocMatrix(REALSXP, M.L.nc, n));
    if (n > 0) memcpy(REAL(out), features_of(&M, p, REAL(x), n, &cx), (size_t)n * M.L.nc * sizeof(double));
    UNPROTECT(1);
    return out;
}

/* the temperature argument: one number in [1, 100] */
static double need_temper(SEXP temper) {
    double tau = *need_real(temper, 1, "temper");
    if (!(tau >= 1.0 && tau <= 100.0)) Rf_error("'temper' must be a number in [1, 100]");
    return tau;
}

/* x: n_in x (1 or n) standardised observations; theta: d x n */

SEXP r_model_log_prob(SEXP spec, SEXP params, SEXP x, SEXP theta, SEXP temper, SEXP threads) {
    model_layout M;
    model_from_spec(&M, spec);
    int nt = need_threads(threads);
    const double *p = masked_params(&M, params, nt);
    const nn_ctx cx = nn_ctx_make(M.precision, nt);
    double tau = need_temper(temper);
    int n = need_cols(theta, M.L.d, "theta"), nx = need_cols(x, M.F.n_in, "x");
    if (nx != 1 && nx != n) Rf_error("'x' must have 1 column or as many as 'theta' (%d)", n);
    model_bind_rows(&M, REAL(x), nx, NULL, 0, "x");
    int B = n < CHUNK ? (n > 0 ? n : 1) : CHUNK;
    double *work = alloc_work(model_eval_work(&M, B, nt));
    const model_eval E = model_eval_prepare(&M, p, B, work, &cx);
    SEXP out = PROTECT(Rf_allocVector(REALSXP, n));
    for (int i0 = 0; i0 < n; i0 += B) {
        int b = n - i0 < B ? n - i0 : B;
        model_log_prob(&M, p, &E, REAL(x) + (nx == 1 ? 0 : (size_t)i0 * M.F.n_in), nx == 1 ? 1 : b,
                       REAL(theta) + (size_t)i0 * M.L.d, b, tau, REAL(out) + i0, &cx);
        R_CheckUserInterrupt();
    }
    UNPROTECT(1);
    return out;
}

/* log q(theta_i | x_o) where the columns of theta (d x N) come in groups, counts[o] of them
 * for observation o (column o of x, n_in x n_obs): each observation's features are computed
 * once, not once per point. */
SEXP r_model_log_prob_obs(SEXP spec, SEXP params, SEXP x, SEXP theta, SEXP counts, SEXP temper,
                          SEXP threads) {
    model_layout M;
    model_from_spec(&M, spec);
    int nt = need_threads(threads);
    const double *p = masked_params(&M, params, nt);
    const nn_ctx cx = nn_ctx_make(M.precision, nt);
    double tau = need_temper(temper);
    int n = need_cols(theta, M.L.d, "theta"), nobs = need_cols(x, M.F.n_in, "x");
    model_bind_rows(&M, REAL(x), nobs, NULL, 0, "x");
    const R_xlen_t *off = need_counts(counts, nobs, n, "counts");
    const double *feat = features_of(&M, p, REAL(x), nobs, &cx);
    int B = n < CHUNK ? (n > 0 ? n : 1) : CHUNK;
    double *work = alloc_work(flow_sample_work(&M.L, B, nt));
    flow_sample_prepare(&M.L, p + M.F.n_params, work, &cx);
    SEXP out = PROTECT(Rf_allocVector(REALSXP, n));
    for (int o = 0; o < nobs; o++) {
        const R_xlen_t i0 = off[o];
        const int c = (int)(off[o + 1] - i0);
        for (int s0 = 0; s0 < c; s0 += B) {
            int b = c - s0 < B ? c - s0 : B;
            flow_log_prob(&M.L, REAL(theta) + (size_t)(i0 + s0) * M.L.d, feat + (size_t)o * M.L.nc, 1,
                          b, tau, REAL(out) + i0 + s0, work, &cx);
            R_CheckUserInterrupt();
        }
    }
    UNPROTECT(1);
    return out;
}

/* n draws for each column of x (n_in x n_obs): a d x (n * n_obs) matrix, observation-major,
 * with attribute "log_prob". With one seed, row k of the output uses the random stream
 * (seed, k); with one seed per observation, draw i of observation o uses (seed[o], i), so an
 * observation's draws do not depend on the others in the call. */
SEXP r_model_sample(SEXP spec, SEXP params, SEXP x, SEXP n_samples, SEXP seed, SEXP temper,
                    SEXP threads) {
    model_layout M;
    model_from_spec(&M, spec);
    int nt = need_threads(threads), n = need_count(n_samples, "n_samples");
    const double *p = masked_params(&M, params, nt);
    const nn_ctx cx = nn_ctx_make(M.precision, nt);
    double tau = need_temper(temper);
    int nobs = need_cols(x, M.F.n_in, "x");
    model_bind_rows(&M, REAL(x), nobs, NULL, 0, "x");
    const int per_obs = XLENGTH(seed) > 1;
    if (per_obs && XLENGTH(seed) != nobs) Rf_error("'seed' must hold 1 or %d numbers", nobs);
    const uint64_t *seeds = need_seeds(seed, per_obs ? nobs : 1, "seed");
    const int d = M.L.d, nc = M.L.nc;
    double total = (double)n * nobs;
    if (total * d > 4e9) Rf_error("'n_samples' x observations is too large");
    double *feat = features_of(&M, p, REAL(x), nobs, &cx);
    const R_xlen_t N = (R_xlen_t)n * nobs;
    SEXP out = PROTECT(Rf_allocMatrix(REALSXP, d, (int)N));
    SEXP lq = PROTECT(Rf_allocVector(REALSXP, N));
    int B = N < CHUNK ? (N > 0 ? (int)N : 1) : CHUNK;
    double *work = alloc_work(flow_sample_work(&M.L, B, nt));
    flow_sample_prepare(&M.L, p + M.F.n_params, work, &cx);
    /* chunks of whole observations (or of one observation's draws when n > CHUNK): each
     * observation's context then enters the flow once per chunk, not once per draw */
    const int per_chunk = n <= CHUNK && !per_obs ? CHUNK / (n > 0 ? n : 1) : 1;
    for (int o0 = 0; o0 < nobs && n > 0; o0 += per_chunk) {
        int mo = nobs - o0 < per_chunk ? nobs - o0 : per_chunk;
        for (int s0 = 0; s0 < n; s0 += CHUNK) {
            int b = n <= CHUNK ? mo * n : (n - s0 < CHUNK ? n - s0 : CHUNK);
            R_xlen_t k0 = (R_xlen_t)o0 * n + s0;
            flow_sample(&M.L, feat + (size_t)o0 * nc, n <= CHUNK ? mo : 1, b,
                        per_obs ? seeds[o0] : seeds[0], per_obs ? (uint64_t)s0 : (uint64_t)k0,
                        tau, REAL(out) + (size_t)k0 * d, REAL(lq) + k0, work, &cx);
            R_CheckUserInterrupt();
        }
    }
    Rf_setAttrib(out, Rf_install("log_prob"), lq);
    UNPROTECT(2);
    return out;
}


