/* .Call entries for the Student-t mixtures of adaptive importance sampling, batched over
 * observations: one mixture per observation, each fitted, drawn from and evaluated on its
 * own rows, in parallel over observations with results independent of the thread count
 * (each observation has its own random stream). */
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "r_util.h"
#include "infer/tmix.h"

#define TMIX_MAX 64  /* components and dimensions (fixed-size scratch in infer/tmix.c) */

/* A batch of mixtures as R holds it: list(share = K x n_obs, mu = d x K x n_obs,
 * chol = d x d x K x n_obs (chol[, , k, o] is the upper factor R of the scale matrix,
 * S = R'R, as base::chol gives), df = one number). */
typedef struct { int K, d, n_obs; double df, lconst; double *share, *mu, *chol; } tmix_batch;

static int dim_of(SEXP x, int i) {
    SEXP dim = Rf_getAttrib(x, R_DimSymbol);
    return Rf_isNull(dim) || XLENGTH(dim) <= i ? -1 : INTEGER(dim)[i];
}

static tmix_batch batch_from_r(SEXP mix) {
    tmix_batch b;
    SEXP share = list_get(mix, "share", "mix"), mu = list_get(mix, "mu", "mix");
    SEXP chol = list_get(mix, "chol", "mix");
    b.df = list_real(mix, "df", "mix");
    if (!(b.df > 0) || !R_FINITE(b.df)) Rf_error("'mix$df' must be a positive number");
    if (TYPEOF(share) != REALSXP || dim_of(share, 0) < 1 || dim_of(share, 1) < 1)
        Rf_error("'mix$share' must be a K x n_obs double matrix");
    b.K = dim_of(share, 0);
    b.n_obs = dim_of(share, 1);
    if (TYPEOF(mu) != REALSXP || dim_of(mu, 0) < 1) Rf_error("'mix$mu' must be a d x K x n_obs array");
    b.d = dim_of(mu, 0);
    if (b.K > TMIX_MAX || b.d > TMIX_MAX)
        Rf_error("mixtures are limited to %d components and %d dimensions", TMIX_MAX, TMIX_MAX);
    need_real(mu, (R_xlen_t)b.d * b.K * b.n_obs, "mix$mu");
    need_real(chol, (R_xlen_t)b.d * b.d * b.K * b.n_obs, "mix$chol");
    b.share = REAL(share); b.mu = REAL(mu); b.chol = REAL(chol);
    for (R_xlen_t i = 0; i < XLENGTH(share); i++)
        if (!(b.share[i] >= 0) || !R_FINITE(b.share[i])) Rf_error("'mix$share' must be finite and >= 0");
    for (R_xlen_t i = 0; i < XLENGTH(mu); i++)
        if (!R_FINITE(b.mu[i])) Rf_error("'mix$mu' has non-finite values");
    /* the factors: finite, positive diagonal (R's upper factor is C's lower one, row-major) */
    const int d = b.d;
    for (R_xlen_t c = 0; c < (R_xlen_t)b.K * b.n_obs; c++) {
        const double *L = b.chol + c * d * d;
        for (int i = 0; i < d * d; i++) if (!R_FINITE(L[i])) Rf_error("'mix$chol' has non-finite values");
        for (int i = 0; i < d; i++)
            if (!(L[i * d + i] > 0)) Rf_error("'mix$chol' must have a positive diagonal");
    }
    b.lconst = tmix_lconst(b.df, d);
    return b;
}

static tmix batch_get(const tmix_batch *b, int o) {
    tmix g = {b->K, b->d, b->df, b->lconst, b->share + (size_t)o * b->K,
              b->mu + (size_t)o * b->K * b->d, b->chol + (size_t)o * b->K * b->d * b->d};
    return g;
}

static tmix_settings settings_from_r(SEXP s) {
    const char *a = "settings";
    tmix_settings t = {list_int(s, "components", a), list_int(s, "em_iters", a),
                       list_int(s, "kmeans_iters", a), list_int(s, "em_rows", a),
                       list_real(s, "df", a), list_real(s, "shrink", a), list_real(s, "inflate", a),
                       list_real(s, "floor", a), list_real(s, "laplace_share", a),
                       list_real(s, "laplace_below", a), list_real(s, "laplace_step", a)};
    if (t.components < 1 || t.components > TMIX_MAX)
        Rf_error("'settings$components' must be in 1..%d", TMIX_MAX);
    if (t.em_iters < 0 || t.em_iters > 10000 || t.kmeans_iters < 0 || t.kmeans_iters > 10000)
        Rf_error("'settings$em_iters' and 'settings$kmeans_iters' must be in 0..10000");
    if (t.em_rows < 10) Rf_error("'settings$em_rows' must be >= 10");
    if (!(t.df > 0) || !R_FINITE(t.df)) Rf_error("'settings$df' must be a positive number");
    if (!(t.shrink >= 0) || !R_FINITE(t.shrink)) Rf_error("'settings$shrink' must be >= 0");
    if (!(t.inflate > 0) || !R_FINITE(t.inflate)) Rf_error("'settings$inflate' must be positive");
    if (!(t.floor >= 0) || !R_FINITE(t.floor)) Rf_error("'settings$floor' must be >= 0");
    if (!(t.laplace_share >= 0 && t.laplace_share < 1))
        Rf_error("'settings$laplace_share' must be in [0, 1)");
    if (ISNAN(t.laplace_below) || !(t.laplace_step > 0) || !R_FINITE(t.laplace_step))
        Rf_error("'settings$laplace_below' must be a number and 'settings$laplace_step' positive");
    if (t.laplace_share > 0 && t.components >= TMIX_MAX)
        Rf_error("'settings$components' must be below %d with a Laplace component", TMIX_MAX);
    return t;
}

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* z: d x N standardised draws, log_w: N log weights, log_p: the target's N log densities
 * (or NULL: no Laplace component), counts: rows per observation (in order), S0: d x d x n_obs
 * shrinkage targets, seeds: one per observation. */
SEXP r_tmix_fit(SEXP z, SEXP log_w, SEXP log_p, SEXP counts, SEXP S0, SEXP settings, SEXP seeds,
                SEXP threads) {
    const int nt = need_threads(threads);
    const tmix_settings s = settings_from_r(settings);
    if (TYPEOF(counts) != INTSXP && TYPEOF(counts) != REALSXP)
        Rf_error("'counts' must be a numeric vector of counts");
    const int n_obs = LENGTH(counts);
    if (n_obs < 1) Rf_error("'counts' must hold at least one count");
    const int d = dim_of(S0, 0);
    if (d < 1 || d > TMIX_MAX) Rf_error("'S0' must be a d x d x n_obs array with 1 <= d <= %d", TMIX_MAX);
    need_real(S0, (R_xlen_t)d * d * n_obs, "S0");
    const int N = need_cols(z, d, "z");
    need_real(log_w, N, "log_w");
    const double *lp = Rf_isNull(log_p) ? NULL : need_real(log_p, N, "log_p");
    const R_xlen_t *off = need_counts(counts, n_obs, N, "counts");
    const uint64_t *sd = need_seeds(seeds, n_obs, "seeds");
    int max_n = 1;
    for (int o = 0; o < n_obs; o++) if (off[o + 1] - off[o] > max_n) max_n = (int)(off[o + 1] - off[o]);
    const int K = tmix_fit_components(&s);
    SEXP share = PROTECT(Rf_allocMatrix(REALSXP, K, n_obs));
    SEXP dmu = PROTECT(Rf_allocVector(INTSXP, 3)), dch = PROTECT(Rf_allocVector(INTSXP, 4));
    INTEGER(dmu)[0] = d; INTEGER(dmu)[1] = K; INTEGER(dmu)[2] = n_obs;
    INTEGER(dch)[0] = d; INTEGER(dch)[1] = d; INTEGER(dch)[2] = K; INTEGER(dch)[3] = n_obs;
    SEXP mu = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t)d * K * n_obs));
    SEXP chol = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t)d * d * K * n_obs));
    Rf_setAttrib(mu, R_DimSymbol, dmu);
    Rf_setAttrib(chol, R_DimSymbol, dch);
    SEXP status = PROTECT(Rf_allocVector(INTSXP, n_obs));
    memset(REAL(mu), 0, (size_t)d * K * n_obs * sizeof(double));
    memset(REAL(chol), 0, (size_t)d * d * K * n_obs * sizeof(double));
    const size_t per = tmix_fit_work(max_n, d, &s);
    double *work = (double *)R_alloc(per * nt, sizeof(double));
    const double *zz = REAL(z), *lw = REAL(log_w), *s0 = REAL(S0);
    const double lconst = tmix_lconst(s.df, d);
    double *psh = REAL(share), *pmu = REAL(mu), *pch = REAL(chol);
    int *st = INTEGER(status);
    #pragma omp parallel for num_threads(nt) schedule(dynamic)
    for (int o = 0; o < n_obs; o++) {
        tmix g = {K, d, s.df, lconst, psh + (size_t)o * K, pmu + (size_t)o * K * d,
                  pch + (size_t)o * K * d * d};
        st[o] = tmix_fit(&g, zz + (size_t)off[o] * d, lw + off[o], lp ? lp + off[o] : NULL,
                         (int)(off[o + 1] - off[o]), s0 + (size_t)o * d * d, &s, sd[o],
                         work + per * thread_id());
        if (st[o] != 0)  /* no fit: a dead mixture, flagged by status */
            for (int k = 0; k < K; k++) g.share[k] = 0.0;
    }
    const char *fields[] = {"share", "mu", "chol", "df", "status", ""};
    SEXP out = PROTECT(Rf_mkNamed(VECSXP, fields));
    SET_VECTOR_ELT(out, 0, share); SET_VECTOR_ELT(out, 1, mu); SET_VECTOR_ELT(out, 2, chol);
    SET_VECTOR_ELT(out, 3, Rf_ScalarReal(s.df)); SET_VECTOR_ELT(out, 4, status);
    UNPROTECT(7);
    return out;
}

/* counts[o] draws of mixture o (seeds: one per observation; draw i of observation o uses
 * the stream (seeds[o], i)): a d x N matrix with attribute "log_density" (log g). A mixture
 * with no live component must not be asked for draws. */
SEXP r_tmix_sample(SEXP mix, SEXP counts, SEXP seeds, SEXP threads) {
    const int nt = need_threads(threads);
    const tmix_batch b = batch_from_r(mix);
    const R_xlen_t *off = need_counts(counts, b.n_obs, -1, "counts");
    const uint64_t *sd = need_seeds(seeds, b.n_obs, "seeds");
    const R_xlen_t N = off[b.n_obs];
    if (N > INT_MAX) Rf_error("'counts' asks for too many draws");
    for (int o = 0; o < b.n_obs; o++) {
        double tot = 0.0;
        for (int k = 0; k < b.K; k++) tot += b.share[(size_t)o * b.K + k];
        if (off[o + 1] > off[o] && !(tot > 0)) Rf_error("mixture %d has no live component", o + 1);
    }
    SEXP out = PROTECT(Rf_allocMatrix(REALSXP, b.d, (int)N));
    SEXP ld = PROTECT(Rf_allocVector(REALSXP, N));
    double *tmp = (double *)R_alloc((size_t)b.d * nt, sizeof(double));
    double *pz = REAL(out), *pl = REAL(ld);
    #pragma omp parallel for num_threads(nt) schedule(dynamic)
    for (int o = 0; o < b.n_obs; o++) {
        const tmix g = batch_get(&b, o);
        const int n = (int)(off[o + 1] - off[o]);
        tmix_sample(&g, n, sd[o], 0, pz + (size_t)off[o] * b.d);
        tmix_log_density(&g, pz + (size_t)off[o] * b.d, n, pl + off[o], tmp + (size_t)b.d * thread_id());
    }
    Rf_setAttrib(out, Rf_install("log_density"), ld);
    UNPROTECT(2);
    return out;
}

/* log g_o(z_i) for the rows of each observation: z d x N, counts per observation. */
SEXP r_tmix_log_density(SEXP mix, SEXP z, SEXP counts, SEXP threads) {
    const int nt = need_threads(threads);
    const tmix_batch b = batch_from_r(mix);
    const int N = need_cols(z, b.d, "z");
    const R_xlen_t *off = need_counts(counts, b.n_obs, N, "counts");
    for (R_xlen_t i = 0; i < (R_xlen_t)N * b.d; i++)
        if (ISNAN(REAL(z)[i])) Rf_error("'z' has NA values");
    SEXP out = PROTECT(Rf_allocVector(REALSXP, N));
    double *tmp = (double *)R_alloc((size_t)b.d * nt, sizeof(double));
    const double *pz = REAL(z);
    double *po = REAL(out);
    #pragma omp parallel for num_threads(nt) schedule(dynamic)
    for (int o = 0; o < b.n_obs; o++) {
        const tmix g = batch_get(&b, o);
        tmix_log_density(&g, pz + (size_t)off[o] * b.d, (int)(off[o + 1] - off[o]), po + off[o],
                         tmp + (size_t)b.d * thread_id());
    }
    UNPROTECT(1);
    return out;
}
