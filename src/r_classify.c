/* .Call entries of the classifier two-sample test: fit the C2ST classifier on one fold and
 * predict the held-out rows (diag/classifier.c); its test entry is in r_test_model.c.
 * Matrices come with one sample per column (features in rows), as the core wants them. */
#include <math.h>
#include <string.h>
#include "r_util.h"
#include "nn/nn.h"
#include "r_classify.h"

/* a double matrix with `rows` rows (any when rows < 0) of finite values; returns its columns */
int c2st_need_matrix(SEXP x, int rows, const char *arg) {
    if (TYPEOF(x) != REALSXP) Rf_error("'%s' must be a double matrix", arg);
    SEXP dim = Rf_getAttrib(x, R_DimSymbol);
    if (TYPEOF(dim) != INTSXP || XLENGTH(dim) != 2) Rf_error("'%s' must be a matrix", arg);
    const int r = INTEGER(dim)[0], c = INTEGER(dim)[1];
    if (r < 1) Rf_error("'%s' must have at least one row", arg);
    if (rows >= 0 && r != rows) Rf_error("'%s' must have %d rows (one per feature), got %d", arg, rows, r);
    const double *v = REAL(x);
    for (R_xlen_t i = 0; i < XLENGTH(x); i++)
        if (!R_FINITE(v[i])) Rf_error("'%s' has NA or non-finite values", arg);
    return c;
}

/* a double vector of n labels, each 0 or 1 */
const double *c2st_need_labels(SEXP y, int n, const char *arg) {
    const double *v = need_real(y, n, arg);
    for (int i = 0; i < n; i++)
        if (!(v[i] == 0.0 || v[i] == 1.0)) Rf_error("'%s' must hold only 0 and 1", arg);
    return v;
}

int c2st_opt_int(SEXP opts, const char *name, int lo, int hi) {
    const int v = list_int(opts, name, "opts");
    if (v < lo || v > hi) Rf_error("'opts$%s' must be in %d..%d", name, lo, hi);
    return v;
}

double c2st_opt_real(SEXP opts, const char *name, double lo, int lo_open) {
    const double v = list_real(opts, name, "opts");
    if (!R_FINITE(v) || v < lo || (lo_open && v == lo))
        Rf_error("'opts$%s' must be a finite number %s %g", name, lo_open ? ">" : ">=", lo);
    return v;
}

/* the layout from opts$h1, opts$h2 and d, with its size checked in double precision */
void c2st_layout(clf_layout *L, SEXP opts, int d) {
    const int h1 = c2st_opt_int(opts, "h1", 1, 1000000), h2 = c2st_opt_int(opts, "h2", 1, 1000000);
    if ((double)h1 * d + (double)h2 * h1 + 2.0 * h2 + h1 + 1 > INT_MAX)
        Rf_error("'opts': a classifier with %d and %d hidden units on %d features has more "
                 "than 2^31 - 1 parameters", h1, h2, d);
    if (clf_layout_init(L, d, h1, h2)) Rf_error("'opts': hidden sizes must be positive");
}

static void cb_interrupt(void *cb) { (void)cb; R_CheckUserInterrupt(); }

/* Trains on (x_train, y_train) with early stopping on (x_valid, y_valid) (both NULL: on the
 * training loss) and returns P(y = 1) for each column of x_test, with attributes "epochs"
 * (run) and "best_epoch" (restored).
 * opts: list(h1, h2, epochs, batch, patience, threads, lr, l2, tol, seed) */
SEXP r_c2st_fit_predict(SEXP x_train, SEXP y_train, SEXP x_valid, SEXP y_valid, SEXP x_test,
                        SEXP opts) {
    if (TYPEOF(x_train) != REALSXP || Rf_isNull(Rf_getAttrib(x_train, R_DimSymbol)))
        Rf_error("'x_train' must be a double matrix");
    const int d = Rf_nrows(x_train);
    const int n = c2st_need_matrix(x_train, d, "x_train");
    if (n < 1) Rf_error("'x_train' must have at least one column");
    const double *y = c2st_need_labels(y_train, n, "y_train");
    int nv = 0;
    const double *yv = NULL;
    if (Rf_isNull(x_valid) != Rf_isNull(y_valid))
        Rf_error("'x_valid' and 'y_valid' must both be NULL or both be given");
    if (!Rf_isNull(x_valid)) {
        nv = c2st_need_matrix(x_valid, d, "x_valid");
        yv = c2st_need_labels(y_valid, nv, "y_valid");
    }
    const int nt = c2st_need_matrix(x_test, d, "x_test");
    clf_layout L;
    c2st_layout(&L, opts, d);
    clf_options o;
    o.epochs = c2st_opt_int(opts, "epochs", 1, INT_MAX);
    o.batch = c2st_opt_int(opts, "batch", 1, INT_MAX);
    o.patience = c2st_opt_int(opts, "patience", 1, INT_MAX);
    o.threads = c2st_opt_int(opts, "threads", 1, 1024);
    o.lr = c2st_opt_real(opts, "lr", 0.0, 1);
    o.l2 = c2st_opt_real(opts, "l2", 0.0, 0);
    o.tol = c2st_opt_real(opts, "tol", 0.0, 0);
    const double seed = c2st_opt_real(opts, "seed", 0.0, 0);
    if (seed != floor(seed) || seed > 9007199254740992.0)
        Rf_error("'opts$seed' must be a whole number in [0, 2^53]");
    o.seed = (uint64_t)seed;
    o.check_interrupt = cb_interrupt;
    o.cb = NULL;
    const int B = o.batch < n ? o.batch : n;
    if ((double)B * (3.0 * L.h1 + 3.0 * L.h2 + d + 3) + 4.0 * L.n_params > 1e11)
        Rf_error("'opts': the batch workspace would exceed 1e11 numbers; use a smaller batch");

    double *params = (double *)R_alloc(L.n_params, sizeof(double));
    double *work = (double *)R_alloc(clf_train_work(&L, n, o.batch), sizeof(double));
    int *perm = (int *)R_alloc(n, sizeof(int));
    clf_init_params(&L, params, o.seed);
    int run = 0, best = 0;
    const int status = clf_train(&L, params, n, REAL(x_train), y, nv, nv ? REAL(x_valid) : NULL,
                                 yv, &o, &run, &best, perm, work);
    if (status) Rf_error("classifier training failed: the loss became non-finite");
    SEXP prob = PROTECT(Rf_allocVector(REALSXP, nt));
    const nn_ctx cx = nn_ctx_make(0, o.threads);  /* the classifier computes in float64 */
    clf_predict(&L, params, REAL(x_test), nt, B, REAL(prob), work + 4 * L.n_params, &cx);
    SEXP s_epochs = Rf_install("epochs"), s_best = Rf_install("best_epoch");  /* symbols stay */
    Rf_setAttrib(prob, s_epochs, PROTECT(Rf_ScalarInteger(run)));
    Rf_setAttrib(prob, s_best, PROTECT(Rf_ScalarInteger(best)));
    UNPROTECT(3);
    return prob;
}

