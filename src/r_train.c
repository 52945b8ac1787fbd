/* .Call entry for training: the epoch loop runs in C (train/train.c); R is called back only
 * to redraw noise once per epoch when the user gave a noise closure. */
#include <string.h>
#include "r_util.h"
#include "nn/nn.h"

typedef struct { SEXP fn, env; int nx, n, verbose; } train_cb;

static void cb_interrupt(void *cb) { (void)cb; R_CheckUserInterrupt(); }

static int cb_prepare(void *cb, int epoch, double *x) {
    train_cb *c = (train_cb *)cb;
    SEXP call = PROTECT(Rf_lang2(c->fn, Rf_ScalarInteger(epoch + 1)));
    SEXP res = PROTECT(Rf_eval(call, c->env));
    if (TYPEOF(res) != REALSXP || XLENGTH(res) != (R_xlen_t)c->nx * c->n)
        Rf_error("the noise function must return %d x %d numbers", c->n, c->nx);
    const double *r = REAL(res);
    for (R_xlen_t i = 0; i < XLENGTH(res); i++)
        if (!R_FINITE(r[i])) Rf_error("the noise function returned non-finite values (epoch %d)", epoch + 1);
    memcpy(x, r, (size_t)c->nx * c->n * sizeof(double));
    UNPROTECT(2);
    return 0;
}

static void cb_report(void *cb, int epoch, double tl, double vl, double lr) {
    train_cb *c = (train_cb *)cb;
    if (c->verbose && (epoch == 0 || (epoch + 1) % 10 == 0))
        Rprintf("epoch %4d  train %.4f  valid %.4f  lr %.2e\n", epoch + 1, tl, vl, lr);
}

/* opts: c(epochs, batch, patience, threads, lr, clip, seed, verbose, average, average2) */
SEXP r_train(SEXP spec, SEXP params, SEXP adam, SEXP x_train, SEXP th_train, SEXP x_valid,
             SEXP th_valid, SEXP noise_sd, SEXP prepare, SEXP opts) {
    model_layout M;
    model_from_spec(&M, spec);
    const size_t np = M.n_params;
    const int d = M.L.d, nx = M.F.n_in;
    double *o = need_real(opts, 10, "opts");
    for (int i = 0; i < 10; i++) if (!R_FINITE(o[i])) Rf_error("'opts' must be finite");
    /* checked before the int casts, which are undefined out of range; threads as need_threads */
    for (int i = 0; i < 4; i++)
        if (!(o[i] >= 1 && o[i] <= (i == 3 ? 1024 : INT_MAX)))
            Rf_error("'opts': epochs, batch and patience must be in 1..2^31-1, threads in 1..1024");
    train_options to;
    to.epochs = (int)o[0]; to.batch = (int)o[1]; to.patience = (int)o[2]; to.threads = (int)o[3];
    nn_set_threads(to.threads);
    to.lr = o[4]; to.clip = o[5]; to.average = o[8]; to.average2 = o[9];
    if (!(to.average >= 0 && to.average < 1 && to.average2 >= 0 && to.average2 < 1))
        Rf_error("'opts': average must be in [0, 1)");
    if (to.epochs < 1 || to.batch < 1 || to.patience < 1 || to.threads < 1 || !(to.lr > 0))
        Rf_error("'opts': epochs, batch, patience, threads and lr must be positive");
    if (o[6] < 0 || o[6] > 9007199254740992.0) Rf_error("'opts': bad seed");
    to.seed = (uint64_t)o[6];
    int n = need_cols(th_train, d, "theta_train");
    if (n < 1) Rf_error("'theta_train' must have at least one column");
    if (need_cols(x_train, nx, "x_train") != n) Rf_error("'x_train' must have %d columns", n);
    int nv = Rf_isNull(th_valid) ? 0 : need_cols(th_valid, d, "theta_valid");
    if (nv > 0 && need_cols(x_valid, nx, "x_valid") != nv) Rf_error("'x_valid' must have %d columns", nv);
    to.noise_sd = Rf_isNull(noise_sd) ? NULL : need_real(noise_sd, nx, "noise_sd");
    /* state: params, Adam m, v and step, all plain R vectors */
    if (TYPEOF(adam) != VECSXP || XLENGTH(adam) != 3) Rf_error("'adam' must be list(m, v, step)");
    SEXP res_p = PROTECT(dup_real(params, "params"));
    SEXP res_m = PROTECT(dup_real(VECTOR_ELT(adam, 0), "adam$m"));
    SEXP res_v = PROTECT(dup_real(VECTOR_ELT(adam, 1), "adam$v"));
    need_real(res_p, (R_xlen_t)np, "params");
    need_real(res_m, (R_xlen_t)np, "adam$m");
    need_real(res_v, (R_xlen_t)np, "adam$v");
    int step = Rf_asInteger(VECTOR_ELT(adam, 2));
    if (step == NA_INTEGER || step < 0) Rf_error("'adam$step' must be a non-negative integer");
    if ((double)step + (double)to.epochs * (n / (to.batch < n ? to.batch : n)) > INT_MAX)
        Rf_error("'adam$step' leaves too few steps below 2^31 for this many epochs");
    for (size_t i = 0; i < np; i++)
        if (!R_FINITE(REAL(res_p)[i])) Rf_error("'params' has non-finite values");
    double *xt = (double *)R_alloc((size_t)n * nx, sizeof(double));
    memcpy(xt, REAL(x_train), (size_t)n * nx * sizeof(double));
    train_cb cb = {R_NilValue, R_GlobalEnv, nx, n, o[7] != 0};
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
    int status = train_model(&M, REAL(res_p), REAL(res_m), REAL(res_v), &step, n, xt,
                             REAL(th_train), nv, nv ? REAL(x_valid) : NULL,
                             nv ? REAL(th_valid) : NULL, &to, REAL(ht), REAL(hv), REAL(hl),
                             &run, &best, perm, work);
    SEXP out = PROTECT(Rf_allocVector(VECSXP, 9));
    SEXP nm = PROTECT(Rf_allocVector(STRSXP, 9));
    const char *names[] = {"params", "m", "v", "step", "train_loss", "valid_loss", "lr",
                           "best_epoch", "status"};
    for (int i = 0; i < 9; i++) SET_STRING_ELT(nm, i, Rf_mkChar(names[i]));
    SET_VECTOR_ELT(out, 0, res_p); SET_VECTOR_ELT(out, 1, res_m); SET_VECTOR_ELT(out, 2, res_v);
    SET_VECTOR_ELT(out, 3, Rf_ScalarInteger(step));
    SET_VECTOR_ELT(out, 4, Rf_xlengthgets(ht, run));
    SET_VECTOR_ELT(out, 5, Rf_xlengthgets(hv, run));
    SET_VECTOR_ELT(out, 6, Rf_xlengthgets(hl, run));
    SET_VECTOR_ELT(out, 7, Rf_ScalarInteger(best));
    SET_VECTOR_ELT(out, 8, Rf_ScalarInteger(status));
    Rf_setAttrib(out, R_NamesSymbol, nm);
    UNPROTECT(8);
    return out;
}
