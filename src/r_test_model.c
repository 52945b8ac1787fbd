/* Test-only .Call entries of the model, the classifier and the float32 products: gradients
 * and losses that the tests compare with finite differences, parameter counts, and which
 * code computes float32 products. Nothing in R/ calls them; tests/ and bench/ do. */
#include <math.h>
#include <string.h>
#include "r_util.h"
#include "r_classify.h"
#include "flow/made.h"
#include "flow/block.h"
#include "nn/nn.h"

SEXP r_model_n_params(SEXP spec) {
    model_layout M;
    model_from_spec(&M, spec);
    return Rf_ScalarReal((double)M.n_params);
}

/* Flow alone: logq and the gradient of sum_i g_i logq_i wrt flow params, context, theta. */
SEXP r_flow_grad(SEXP spec, SEXP params, SEXP theta, SEXP context, SEXP g, SEXP threads) {
    model_layout M;
    model_from_spec(&M, spec);
    const flow_layout *L = &M.L;
    int nt = need_threads(threads);
    int n = need_cols(theta, L->d, "theta");
    if (need_cols(context, L->nc, "context") != n) Rf_error("'context' must have %d columns", n);
    double *gg = need_real(g, n, "g");
    double *p = (double *)R_alloc(L->n_params, sizeof(double));
    memcpy(p, need_real(params, (R_xlen_t)L->n_params, "params"), L->n_params * sizeof(double));
    flow_mask(L, p, 1);
    double *fw = (double *)R_alloc(flow_fwd_work(L, n), sizeof(double));
    double *bw = (double *)R_alloc(flow_bwd_work(L, n), sizeof(double));
    SEXP lq = PROTECT(Rf_allocVector(REALSXP, n));
    SEXP dp = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t)L->n_params));
    SEXP dc = PROTECT(Rf_allocMatrix(REALSXP, L->nc, n));
    SEXP dt = PROTECT(Rf_allocMatrix(REALSXP, L->d, n));
    memset(REAL(dp), 0, L->n_params * sizeof(double));
    const nn_ctx cx = nn_ctx_make(M.precision, nt);
    flow_forward(L, p, REAL(theta), REAL(context), n, n, 1.0, REAL(lq), fw, &cx);
    flow_backward(L, p, REAL(context), n, gg, REAL(dp), REAL(dc), REAL(dt), fw, bw, &cx);
    SEXP out = PROTECT(Rf_allocVector(VECSXP, 4));
    SET_VECTOR_ELT(out, 0, lq); SET_VECTOR_ELT(out, 1, dp);
    SET_VECTOR_ELT(out, 2, dc); SET_VECTOR_ELT(out, 3, dt);
    UNPROTECT(5);
    return out;
}

/* Featurizer + flow: mean negative log-density of the batch and its parameter gradient. */
SEXP r_model_nll_grad(SEXP spec, SEXP params, SEXP x, SEXP theta, SEXP threads) {
    model_layout M;
    model_from_spec(&M, spec);
    int nt = need_threads(threads);
    int n = need_cols(theta, M.L.d, "theta");
    if (n < 1) Rf_error("'theta' must have at least one column");
    if (need_cols(x, M.F.n_in, "x") != n) Rf_error("'x' must have %d columns", n);
    model_bind_rows(&M, REAL(x), n, NULL, 0, "x");
    const double *p = masked_params(&M, params, nt);
    double *work = (double *)R_alloc(model_grad_work(&M, n), sizeof(double));
    SEXP out = PROTECT(Rf_allocVector(VECSXP, 2));
    SEXP gr = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t)M.n_params));
    memset(REAL(gr), 0, M.n_params * sizeof(double));
    const nn_ctx cx = nn_ctx_make(M.precision, nt);
    double loss = model_nll_grad(&M, p, REAL(x), REAL(theta), n, REAL(gr), work, &cx);
    SET_VECTOR_ELT(out, 0, Rf_ScalarReal(loss));
    SET_VECTOR_ELT(out, 1, gr);
    UNPROTECT(2);
    return out;
}

/* Test entry: the penalised mean logistic loss of the rows of x (d x B) and its gradient
 * with respect to params. opts: list(h1, h2, l2, threads). */
SEXP r_c2st_loss_grad(SEXP params, SEXP x, SEXP y, SEXP opts) {
    const nn_ctx cx = nn_ctx_make(0, 1);  /* the classifier computes in float64 */
    if (TYPEOF(x) != REALSXP || Rf_isNull(Rf_getAttrib(x, R_DimSymbol)))
        Rf_error("'x' must be a double matrix");
    const int d = Rf_nrows(x);
    const int B = c2st_need_matrix(x, d, "x");
    if (B < 1) Rf_error("'x' must have at least one column");
    const double *yy = c2st_need_labels(y, B, "y");
    clf_layout L;
    c2st_layout(&L, opts, d);
    const double l2 = c2st_opt_real(opts, "l2", 0.0, 0);
    const int threads = c2st_opt_int(opts, "threads", 1, 1024);
    const double *p = need_real(params, (R_xlen_t)L.n_params, "params");
    for (size_t i = 0; i < L.n_params; i++)
        if (!R_FINITE(p[i])) Rf_error("'params' has NA or non-finite values");
    double *work = (double *)R_alloc(clf_batch_work(&L, B), sizeof(double));
    SEXP grad = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t)L.n_params));
    memset(REAL(grad), 0, L.n_params * sizeof(double));
    const nn_ctx tcx = nn_ctx_threads(&cx, threads);
    const double loss = clf_loss_grad(&L, p, REAL(x), yy, B, l2, REAL(grad), work, &tcx);
    SEXP out = PROTECT(Rf_allocVector(VECSXP, 2));
    SEXP nm = PROTECT(Rf_allocVector(STRSXP, 2));
    SET_VECTOR_ELT(out, 0, Rf_ScalarReal(loss));
    SET_VECTOR_ELT(out, 1, grad);
    SET_STRING_ELT(nm, 0, Rf_mkChar("loss"));
    SET_STRING_ELT(nm, 1, Rf_mkChar("grad"));
    Rf_setAttrib(out, R_NamesSymbol, nm);
    UNPROTECT(3);
    return out;
}

/* whether float32 products use the BLAS's sgemm (found by ./configure) or nbi's C kernel */
SEXP r_have_sgemm(void) { return Rf_ScalarLogical(nn_have_sgemm()); }

/* what computes float32 products on this CPU: "nbi avx512", "nbi avx2", "nbi base" (nbi's
 * kernel, nn/sgemm.c) or "blas sgemm" (products of fewer rows than the kernel's panels go to
 * sgemm whenever it exists) */
SEXP r_sgemm_kernel(void) {
    static const char *isa[3] = {"nbi base", "nbi avx2", "nbi avx512"};
    return Rf_mkString(nn_sgemm_own(1) ? isa[nn_sgemm_isa()] : "blas sgemm");
}

/* what computes float64 products on this CPU: "nbi avx512", "nbi avx2", "nbi base" (nbi's
 * kernel, nn/dgemm.c; products below 32^3 or of fewer rows than its panels go to dgemm) or
 * "blas dgemm" */
SEXP r_dgemm_kernel(void) {
    static const char *isa[3] = {"nbi base", "nbi avx2", "nbi avx512"};
    return Rf_mkString(nn_dgemm_own() ? isa[nn_sgemm_isa()] : "blas dgemm");
}

/* the registered flow block kinds: list(name, terminal), in the order of their numbers */
SEXP r_flow_block_kinds(void) {
    SEXP name = PROTECT(Rf_allocVector(STRSXP, FLOW_N_KINDS));
    SEXP term = PROTECT(Rf_allocVector(LGLSXP, FLOW_N_KINDS));
    for (int k = 0; k < FLOW_N_KINDS; k++) {
        SET_STRING_ELT(name, k, Rf_mkChar(flow_block_kinds[k]->name));
        LOGICAL(term)[k] = flow_block_kinds[k]->terminal;
    }
    const char *fields[] = {"name", "terminal", ""};
    SEXP out = PROTECT(Rf_mkNamed(VECSXP, fields));
    SET_VECTOR_ELT(out, 0, name);
    SET_VECTOR_ELT(out, 1, term);
    UNPROTECT(3);
    return out;
}

/* The doubles of scratch memory r_train takes for a batch of `batch` samples of x (n_in x n),
 * the featurizer's share sized by the rows these samples hold: for benches of memory. */
SEXP r_model_train_work(SEXP spec, SEXP x, SEXP batch, SEXP threads) {
    model_layout M;
    model_from_spec(&M, spec);
    int nt = need_threads(threads), B = need_count(batch, "batch");
    int n = need_cols(x, M.F.n_in, "x");
    if (n < 1 || B < 1) Rf_error("'x' and 'batch' must not be empty");
    model_bind_rows(&M, REAL(x), n, NULL, 0, "x");
    return Rf_ScalarReal((double)train_work(&M, n, 0, B, nt));
}
