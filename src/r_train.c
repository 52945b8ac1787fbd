/* .Call entry for training: the epoch loop runs in C (train/train.c); R is called back only
 * to redraw noise once per epoch when the user gave a noise closure, and to report progress
 * once per epoch when opts$progress is a function (on the main thread, between epochs). */
#include <string.h>
#include "r_util.h"
#include "nn/nn.h"

typedef struct {
    SEXP fn, env;
    int nx, n, d, verbose;
    SEXP progress;
    const model_layout *M;
} train_cb;

static void cb_interrupt(void *cb) { (void)cb; R_CheckUserInterrupt(); }

/* numbers of an epoch's fresh training data, checked: len values, all finite */
static const double *cb_numbers(SEXP v, R_xlen_t len, const char *what, int rows, int cols,
                                int epoch) {
    if (TYPEOF(v) != REALSXP || XLENGTH(v) != len)
        Rf_error("the noise function must return %s as %d x %d numbers", what, rows, cols);
    const double *r = REAL(v);
    for (R_xlen_t i = 0; i < len; i++)
        if (!R_FINITE(r[i]))
            Rf_error("the noise function returned non-finite %s (epoch %d)", what, epoch + 1);
    return r;
}

/* The epoch's training data from R: x, or list(x, theta) when the augmentation changes the
 * parameters too (standardised, one sample per column). */
static int cb_prepare(void *cb, int epoch, double *x, double *theta) {
    train_cb *c = (train_cb *)cb;
    SEXP call = PROTECT(Rf_lang2(c->fn, Rf_ScalarInteger(epoch + 1)));
    SEXP res = PROTECT(Rf_eval(call, c->env));
    SEXP rx = res, rt = R_NilValue;
    if (TYPEOF(res) == VECSXP) {
        if (XLENGTH(res) != 2) Rf_error("the noise function must return x or list(x, theta)");
        rx = VECTOR_ELT(res, 0);
        rt = VECTOR_ELT(res, 1);
    }
    const double *r = cb_numbers(rx, (R_xlen_t)c->nx * c->n, "x", c->n, c->nx, epoch);
    if (!model_rows_fit(c->M, r, c->n, "x"))
        Rf_error("the noise function returned longer light curves than the simulations (epoch %d): "
                 "an augmentation may drop epochs, not add them", epoch + 1);
    memcpy(x, r, (size_t)c->nx * c->n * sizeof(double));
    if (rt != R_NilValue) {
        const double *t = cb_numbers(rt, (R_xlen_t)c->d * c->n, "theta", c->n, c->d, epoch);
        memcpy(theta, t, (size_t)c->d * c->n * sizeof(double));
    }
    UNPROTECT(2);
    return 0;
}

static void cb_report(void *cb, int epoch, double tl, double vl, double lr) {
    train_cb *c = (train_cb *)cb;
    if (c->verbose && (epoch == 0 || (epoch + 1) % 10 == 0))
        Rprintf("epoch %4d  train %.4f  valid %.4f  lr %.2e\n", epoch + 1, tl, vl, lr);
    if (c->progress != R_NilValue) {
        SEXP e = PROTECT(Rf_ScalarInteger(epoch + 1)), t = PROTECT(Rf_ScalarReal(tl));
        SEXP v = PROTECT(Rf_ScalarReal(vl));
        SEXP call = PROTECT(Rf_lang4(c->progress, e, t, v));
        Rf_eval(call, c->env);
        UNPROTECT(4);
    }
}

/* opts$progress: absent, NULL or a function(epoch, train_loss, valid_loss) */
static SEXP progress_from_r(SEXP opts) {
    SEXP nm = Rf_getAttrib(opts, R_NamesSymbol);
    for (R_xlen_t i = 0; i < XLENGTH(opts); i++)
        if (strcmp(CHAR(STRING_ELT(nm, i)), "progress") == 0) {
            SEXP f = VECTOR_ELT(opts, i);
            if (f != R_NilValue && !Rf_isFunction(f))
                Rf_error("'opts$progress' must be NULL or a function");
            return f;
        }
    return R_NilValue;
}

/* The training options, a named list checked in one place: epochs, batch, patience,
 * threads (whole numbers), lr, clip, average, average2 (numbers), seed (a whole number in
 * [0, 2^53]) and verbose (0 or 1). */
static train_options train_options_from_r(SEXP opts, int *verbose) {
    const char *a = "opts";
    train_options to;
    memset(&to, 0, sizeof to);
    to.epochs = list_int(opts, "epochs", a);
    to.batch = list_int(opts, "batch", a);
    to.patience = list_int(opts, "patience", a);
    to.threads = list_int(opts, "threads", a);
    to.lr = list_real(opts, "lr", a);
    to.clip = list_real(opts, "clip", a);
    to.average = list_real(opts, "average", a);
    to.average2 = list_real(opts, "average2", a);
    *verbose = list_int(opts, "verbose", a);
    if (to.epochs < 1 || to.batch < 1 || to.patience < 1)
        Rf_error("'opts': epochs, batch and patience must be positive whole numbers");
    if (to.threads < 1 || to.threads > 1024) Rf_error("'opts$threads' must be in 1..1024");
    if (!(to.lr > 0) || !R_FINITE(to.lr)) Rf_error("'opts$lr' must be a positive number");
    if (!(to.clip >= 0) || !R_FINITE(to.clip)) Rf_error("'opts$clip' must be a number >= 0");
    if (!(to.average >= 0 && to.average < 1 && to.average2 >= 0 && to.average2 < 1))
        Rf_error("'opts$average' and 'opts$average2' must be in [0, 1)");
    if (*verbose != 0 && *verbose != 1) Rf_error("'opts$verbose' must be 0 or 1");
    to.seed = need_seed(list_get(opts, "seed", a));
    return to;
}

/* Trains from params (a fresh Adam state: each call is one fit, or one SNPE-IS round that
 * warm-starts from the previous round's parameters only). Returns list(params, train_loss,
 * valid_loss, lr, best_epoch, status). */
SEXP r_train(SEXP spec, SEXP params, SEXP x_train, SEXP th_train, SEXP x_valid, SEXP th_valid,
             SEXP noise_sd, SEXP prepare, SEXP opts) {
    model_layout M;
    model_from_spec(&M, spec);
    const size_t np = M.n_params;
    const int d = M.L.d, nx = M.F.n_in;
    int verbose = 0;
    train_options to = train_options_from_r(opts, &verbose);
    to.precision = M.precision;
    int n = need_cols(th_train, d, "theta_train");
    if (n < 1) Rf_error("'theta_train' must have at least one column");
    if (need_cols(x_train, nx, "x_train") != n) Rf_error("'x_train' must have %d columns", n);
    int nv = Rf_isNull(th_valid) ? 0 : need_cols(th_valid, d, "theta_valid");
    if (nv > 0 && need_cols(x_valid, nx, "x_valid") != nv) Rf_error("'x_valid' must have %d columns", nv);
    to.noise_sd = Rf_isNull(noise_sd) ? NULL : need_real(noise_sd, nx, "noise_sd");
    SEXP res_p = PROTECT(dup_real(params, "params"));
    need_real(res_p, (R_xlen_t)np, "params");
    for (size_t i = 0; i < np; i++)
        if (!R_FINITE(REAL(res_p)[i])) Rf_error("'params' has non-finite values");
    if ((double)to.epochs * (n / (to.batch < n ? to.batch : n)) > INT_MAX)
        Rf_error("'opts': epochs x batches per epoch must stay below 2^31");
    double *m = alloc_work(np), *v = alloc_work(np);   /* Adam's moments, from zero */
    memset(m, 0, np * sizeof(double));
    memset(v, 0, np * sizeof(double));
    int step = 0;
    model_bind_rows(&M, REAL(x_train), n, nv ? REAL(x_valid) : NULL, nv, "x_train");
    double *xt = (double *)R_alloc((size_t)n * nx, sizeof(double));
    memcpy(xt, REAL(x_train), (size_t)n * nx * sizeof(double));
    double *tht = (double *)R_alloc((size_t)n * d, sizeof(double));
    memcpy(tht, REAL(th_train), (size_t)n * d * sizeof(double));
    train_cb cb = {R_NilValue, R_GlobalEnv, nx, n, d, verbose, progress_from_r(opts), &M};
    to.prepare_epoch = NULL;
    if (!Rf_isNull(prepare)) {
        if (!Rf_isFunction(prepare)) Rf_error("'prepare' must be a function or NULL");
        cb.fn = prepare;
        to.prepare_epoch = cb_prepare;
    }
    to.check_interrupt = cb_interrupt;
    to.report = cb_report;
    to.cb = &cb;
    SEXP ht = PROTECT(Rf_allocVector(REALSXP, to.epochs));
    SEXP hv = PROTECT(Rf_allocVector(REALSXP, to.epochs));
    SEXP hl = PROTECT(Rf_allocVector(REALSXP, to.epochs));
    int *perm = (int *)R_alloc(n, sizeof(int));
    double *work = alloc_work(train_work(&M, n, nv, to.batch, to.threads));
    int run = 0, best = 0;
    int status = train_model(&M, REAL(res_p), m, v, &step, n, xt, tht, nv,
                             nv ? REAL(x_valid) : NULL, nv ? REAL(th_valid) : NULL, &to, REAL(ht),
                             REAL(hv), REAL(hl), &run, &best, perm, work);
    const char *names[] = {"params", "train_loss", "valid_loss", "lr", "best_epoch", "status", ""};
    SEXP out = PROTECT(Rf_mkNamed(VECSXP, names));
    SET_VECTOR_ELT(out, 0, res_p);
    SET_VECTOR_ELT(out, 1, Rf_xlengthgets(ht, run));
    SET_VECTOR_ELT(out, 2, Rf_xlengthgets(hv, run));
    SET_VECTOR_ELT(out, 3, Rf_xlengthgets(hl, run));
    SET_VECTOR_ELT(out, 4, Rf_ScalarInteger(best));
    SET_VECTOR_ELT(out, 5, Rf_ScalarInteger(status));
    UNPROTECT(5);
    return out;
}
