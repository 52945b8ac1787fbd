#include <string.h>
#include <math.h>
#include <stdint.h>
#ifndef _WIN32
#include <sys/mman.h>
#endif
#include "r_util.h"
#include "nn/nn.h"

/* the index of element `name` of a named list, -1 when it has none (or is not one) */
static R_xlen_t list_index(SEXP list, const char *name) {
    SEXP nm = Rf_getAttrib(list, R_NamesSymbol);
    if (TYPEOF(list) != VECSXP || TYPEOF(nm) != STRSXP) return -1;
    for (R_xlen_t i = 0; i < XLENGTH(list); i++)
        if (strcmp(CHAR(STRING_ELT(nm, i)), name) == 0) return i;
    return -1;
}

SEXP list_get(SEXP list, const char *name, const char *arg) {
    if (TYPEOF(list) != VECSXP) Rf_error("'%s' must be a list", arg);
    if (TYPEOF(Rf_getAttrib(list, R_NamesSymbol)) != STRSXP)
        Rf_error("'%s' must be a named list", arg);
    R_xlen_t i = list_index(list, name);
    if (i < 0) Rf_error("'%s' has no element '%s'", arg, name);
    return VECTOR_ELT(list, i);
}

int list_has(SEXP list, const char *name) { return list_index(list, name) >= 0; }

int list_int(SEXP list, const char *name, const char *arg) {
    SEXP v = list_get(list, name, arg);
    if (XLENGTH(v) != 1 || (TYPEOF(v) != INTSXP && TYPEOF(v) != REALSXP))
        Rf_error("'%s$%s' must be a single number", arg, name);
    double x = Rf_asReal(v);
    if (!R_FINITE(x) || x != floor(x) || fabs(x) > 1e9)
        Rf_error("'%s$%s' must be a whole number", arg, name);
    return (int)x;
}

double list_real(SEXP list, const char *name, const char *arg) {
    SEXP v = list_get(list, name, arg);
    if (XLENGTH(v) != 1 || (TYPEOF(v) != INTSXP && TYPEOF(v) != REALSXP))
        Rf_error("'%s$%s' must be a single number", arg, name);
    return Rf_asReal(v);
}

double *need_real(SEXP x, R_xlen_t len, const char *arg) {
    if (TYPEOF(x) != REALSXP) Rf_error("'%s' must be a double vector", arg);
    if (len >= 0 && XLENGTH(x) != len)
        Rf_error("'%s' has length %lld, expected %lld", arg, (long long)XLENGTH(x), (long long)len);
    return REAL(x);
}

int need_cols(SEXP x, int rows, const char *arg) {
    if (TYPEOF(x) != REALSXP) Rf_error("'%s' must be a double matrix", arg);
    if (rows <= 0) Rf_error("'%s': expected a positive number of rows", arg);
    R_xlen_t n = XLENGTH(x);
    if (n % rows != 0 || n / rows > INT_MAX)
        Rf_error("'%s' must have %d values per column, got %lld values", arg, rows, (long long)n);
    SEXP dim = Rf_getAttrib(x, R_DimSymbol);
    if (!Rf_isNull(dim) && (XLENGTH(dim) != 2 || INTEGER(dim)[0] != rows))
        Rf_error("'%s' must have %d rows", arg, rows);
    return (int)(n / rows);
}

int need_threads(SEXP threads) {
    if (XLENGTH(threads) != 1) Rf_error("'threads' must be a single number");
    int t = Rf_asInteger(threads);
    if (t == NA_INTEGER || t < 1 || t > 1024) Rf_error("'threads' must be a positive integer");
    return t;
}

int need_count(SEXP x, const char *arg) {
    if (XLENGTH(x) != 1) Rf_error("'%s' must be a single number", arg);
    double v = Rf_asReal(x);
    if (!R_FINITE(v) || v < 0 || v != floor(v) || v > INT_MAX)
        Rf_error("'%s' must be a non-negative whole number", arg);
    return (int)v;
}

uint64_t need_seed(SEXP seed) {
    if (XLENGTH(seed) != 1) Rf_error("'seed' must be a single number");
    double s = Rf_asReal(seed);
    if (!R_FINITE(s) || s < 0 || s != floor(s) || s > 9007199254740992.0)
        Rf_error("'seed' must be a whole number in [0, 2^53]");
    return (uint64_t)s;
}

uint64_t *need_seeds(SEXP seeds, int n, const char *arg) {
    if ((TYPEOF(seeds) != REALSXP && TYPEOF(seeds) != INTSXP) || XLENGTH(seeds) != n)
        Rf_error("'%s' must hold %d number(s)", arg, n);
    uint64_t *s = (uint64_t *)R_alloc(n > 0 ? (size_t)n : 1, sizeof(uint64_t));
    for (int i = 0; i < n; i++) {
        double v = TYPEOF(seeds) == REALSXP ? REAL(seeds)[i]
                   : (INTEGER(seeds)[i] == NA_INTEGER ? -1.0 : INTEGER(seeds)[i]);
        if (!R_FINITE(v) || v < 0 || v != floor(v) || v > 9007199254740992.0)
            Rf_error("'%s' must hold whole numbers in [0, 2^53]", arg);
        s[i] = (uint64_t)v;
    }
    return s;
}

/* counts: rows per observation (whole numbers summing to total); returns their offsets */
R_xlen_t *need_counts(SEXP counts, int n_obs, R_xlen_t total, const char *arg) {
    if (TYPEOF(counts) != INTSXP && TYPEOF(counts) != REALSXP)
        Rf_error("'%s' must be a numeric vector of counts", arg);
    if (n_obs < 0) n_obs = LENGTH(counts);
    if (LENGTH(counts) != n_obs) Rf_error("'%s' must hold %d counts", arg, n_obs);
    R_xlen_t *off = (R_xlen_t *)R_alloc((size_t)n_obs + 1, sizeof(R_xlen_t));
    off[0] = 0;
    for (int o = 0; o < n_obs; o++) {
        double c = TYPEOF(counts) == INTSXP ? (INTEGER(counts)[o] == NA_INTEGER ? -1 : INTEGER(counts)[o])
                                            : REAL(counts)[o];
        if (!(c >= 0) || c != floor(c) || c > INT_MAX) Rf_error("'%s' must hold whole numbers >= 0", arg);
        off[o + 1] = off[o] + (R_xlen_t)c;
    }
    if (total >= 0 && off[n_obs] != total)
        Rf_error("'%s' must sum to %lld, got %lld", arg, (long long)total, (long long)off[n_obs]);
    return off;
}

static const char *feat_err[] = {"", "n_in must be >= 1", "unknown featurizer type",
                                 "bad hidden sizes", "n_out must be >= 1", "unknown activation"};
static const char *flow_err[] = {"", "d must be >= 1", "nc must be >= 0", "hidden must be >= 1",
                                 "layers must be in 1..16", "blocks must be >= 1",
                                 "mixture must be >= 1", "unknown activation",
                                 "clamp must be positive and finite",
                                 "order must hold a permutation of 0..d-1 per block",
                                 "blocks must be at most 256",
                                 "a block or the flow has more than 2^31 - 1 outputs or parameters",
                                 "kinds must name registered kinds, the terminal one last and only there"};

static void resnet_gru_from_spec(feat_layout *F, SEXP fs) {
    int seq_len = list_int(fs, "seq_len", "spec$feat"), ch = list_int(fs, "channels", "spec$feat");
    int cmax = list_int(fs, "dim_conv_max", "spec$feat"), k = list_int(fs, "kernel", "spec$feat");
    if (seq_len < 1 || ch < 1 || (double)seq_len * ch > 1e8 || cmax > 100000 || k > 1001)
        Rf_error("malformed featurizer spec: sizes out of range");
    if (list_int(fs, "n_in", "spec$feat") != seq_len * ch)
        Rf_error("malformed featurizer spec: n_in must equal seq_len * channels");
    int rc = feat_layout_init_resnet_gru(F, seq_len, ch, list_int(fs, "depth", "spec$feat"), k,
                                         list_int(fs, "dim_conv_min", "spec$feat"), cmax,
                                         list_int(fs, "n_rnn", "spec$feat"),
                                         list_int(fs, "n_out", "spec$feat"));
    if (rc) Rf_error("malformed featurizer spec: bad ResNet-GRU sizes (code %d)", rc);
}

static void set_transformer_from_spec(feat_layout *F, SEXP fs) {
    const char *a = "spec$feat";
    int rows = list_int(fs, "rows", a), values = list_int(fs, "values", a);
    int n_tokens = list_int(fs, "n_tokens", a), d_model = list_int(fs, "d_model", a);
    int heads = list_int(fs, "heads", a), layers = list_int(fs, "layers", a);
    int hidden = list_int(fs, "hidden", a), n_out = list_int(fs, "n_out", a);
    if (rows < 1 || values < 1 || rows > 1000000 || (double)rows * (1 + values) > 1e8)
        Rf_error("malformed featurizer spec: need 1 <= rows <= 1e6, values >= 1 and "
                 "rows * (1 + values) <= 1e8");
    if (list_int(fs, "n_in", a) != rows * (1 + values))
        Rf_error("malformed featurizer spec: n_in must equal rows * (1 + values)");
    if (n_tokens < 1 || n_tokens > 10000000 || d_model < 1 || d_model > 100000 || hidden < 1 ||
        hidden > 1000000 || n_out < 1 || layers < 1 || layers > FEAT_MAX_LAYERS)
        Rf_error("malformed featurizer spec: set transformer sizes out of range");
    if (heads < 1 || d_model % heads != 0)
        Rf_error("malformed featurizer spec: d_model must be a multiple of heads");
    int rc = feat_layout_init_set_transformer(F, rows, values, n_tokens, d_model, heads, layers,
                                              hidden, n_out);
    if (rc) Rf_error("malformed featurizer spec: bad set transformer sizes (code %d)", rc);
}

static void timeseries_from_spec(feat_layout *F, SEXP fs) {
    const char *a = "spec$feat";
    int rows = list_int(fs, "rows", a), width = list_int(fs, "width", a);
    int has_error = list_int(fs, "has_error", a), bands = list_int(fs, "bands", a);
    int d_model = list_int(fs, "d_model", a), heads = list_int(fs, "heads", a);
    int layers = list_int(fs, "layers", a), hidden = list_int(fs, "hidden", a);
    int seeds = list_int(fs, "queries", a), pool = list_int(fs, "pool", a);
    int n_out = list_int(fs, "n_out", a);
    int extra = list_has(fs, "extra") ? list_int(fs, "extra", a) : 0;  /* absent before 0.3.0 */
    SEXP fr = list_get(fs, "freqs", a);
    if (TYPEOF(fr) != REALSXP || XLENGTH(fr) > 1024)
        Rf_error("malformed featurizer spec: 'freqs' must be a double vector of at most 1024");
    for (R_xlen_t i = 0; i < XLENGTH(fr); i++)
        if (!R_FINITE(REAL(fr)[i])) Rf_error("malformed featurizer spec: 'freqs' must be finite");
    if (rows < 1 || rows > 1000000 || width < 2 || width > 4 || (double)rows * width > 1e8 ||
        bands < 1 || bands > 1000 || extra < 0 || extra > 16)
        Rf_error("malformed featurizer spec: need 1 <= rows <= 1e6, width in 2..4, bands in "
                 "1..1000, extra in 0..16");
    if (list_int(fs, "n_in", a) != 1 + extra + rows * width)
        Rf_error("malformed featurizer spec: n_in must equal 1 + extra + rows * width");
    if (d_model < 1 || d_model > 100000 || hidden < 1 || hidden > 1000000 || layers < 0 ||
        seeds < 1 || seeds > 1024 || n_out < 1 || heads < 1 || heads > d_model)
        Rf_error("malformed featurizer spec: time-series sizes out of range");
    int rc = feat_layout_init_timeseries(F, rows, width, has_error, bands, d_model, heads, layers,
                                         hidden, seeds, (int)XLENGTH(fr), REAL(fr), pool, extra,
                                         n_out);
    if (rc) Rf_error("malformed featurizer spec: bad time-series sizes (code %d)", rc);
}

static void feat_from_spec(feat_layout *F, SEXP fs) {
    int type = list_int(fs, "type", "spec$feat");
    if (type == FEAT_TIMESERIES) {
        timeseries_from_spec(F, fs);
        return;
    }
    if (type == FEAT_RESNET_GRU) {
        resnet_gru_from_spec(F, fs);
        return;
    }
    if (type == FEAT_SET_TRANSFORMER) {
        set_transformer_from_spec(F, fs);
        return;
    }
    SEXP hid = list_get(fs, "hidden", "spec$feat");
    if (TYPEOF(hid) != INTSXP) Rf_error("'spec$feat$hidden' must be an integer vector");
    int nh = (int)XLENGTH(hid);
    if (nh > FEAT_MAX_LAYERS) Rf_error("'spec$feat$hidden': at most %d layers", FEAT_MAX_LAYERS);
    int rc = feat_layout_init(F, list_int(fs, "type", "spec$feat"),
                              list_int(fs, "n_in", "spec$feat"), nh, INTEGER(hid),
                              list_int(fs, "n_out", "spec$feat"), list_int(fs, "act", "spec$feat"));
    if (rc) Rf_error("malformed featurizer spec: %s", feat_err[rc]);
}

/* The parameter count in double precision: the size_t count of the layouts wraps around for
 * absurd sizes (e.g. MLP widths near 2^31), so it cannot check itself. Mirrors the MLP layout
 * (feat/mlp.c) and block_size() in flow/layout.c; ResNet-GRU and set-transformer sizes are
 * bounded above, so their size_t count is exact. */
static double model_params_dbl(const model_layout *M) {
    const feat_layout *F = &M->F;
    double n = (double)F->n_params;
    if (F->type == FEAT_MLP) {
        n = 0.0;
        for (int l = 0; l <= F->n_hidden; l++) {
            double w = l < F->n_hidden ? F->hidden[l] : F->n_out;
            n += w * (l == 0 ? F->n_in : F->hidden[l - 1]) + w;
        }
    }
    return n + (double)M->L.n_params;  /* the flow's count was checked by flow_layout_init */
}

/* spec$precision: "float64" (also when absent, as in models saved before it existed),
 * "float32", or "float32-kernel" (float32 through the C kernel, for tests) */
static int spec_precision(SEXP spec) {
    SEXP names = Rf_getAttrib(spec, R_NamesSymbol);
    for (R_xlen_t i = 0; i < XLENGTH(spec) && names != R_NilValue; i++) {
        if (strcmp(CHAR(STRING_ELT(names, i)), "precision")) continue;
        SEXP v = VECTOR_ELT(spec, i);
        if (TYPEOF(v) != STRSXP || XLENGTH(v) != 1 || STRING_ELT(v, 0) == NA_STRING)
            Rf_error("'spec$precision' must be \"float64\" or \"float32\"");
        const char *p = CHAR(STRING_ELT(v, 0));
        if (!strcmp(p, "float64")) return 0;
        if (!strcmp(p, "float32")) return 1;
        if (!strcmp(p, "float32-kernel")) return 2;
        Rf_error("'spec$precision' must be \"float64\" or \"float32\", not \"%s\"", p);
    }
    return 0;
}

/* the layout, and in M->precision the spec's compute precision (for nn_ctx_make) */
void model_from_spec(model_layout *M, SEXP spec) {
    if (TYPEOF(spec) != VECSXP) Rf_error("'spec' must be a list");
    M->precision = spec_precision(spec);
    SEXP fs = list_get(spec, "feat", "spec"), ls = list_get(spec, "flow", "spec");
    feat_from_spec(&M->F, fs);
    int d = list_int(ls, "d", "spec$flow"), blocks = list_int(ls, "blocks", "spec$flow");
    SEXP ord = list_get(ls, "order", "spec$flow");
    if (TYPEOF(ord) != INTSXP || d < 1 || blocks < 1 || (double)d * blocks > 1e8 ||
        XLENGTH(ord) != (R_xlen_t)d * blocks)
        Rf_error("'spec$flow$order' must be an integer vector of length d * blocks");
    int K = list_int(ls, "K", "spec$flow");
    int *rank = (int *)R_alloc((size_t)d * blocks, sizeof(int));
    /* spec$flow$kinds: the block kinds' numbers (flow/block.h), optional */
    const int *kinds = NULL;
    SEXP nm = Rf_getAttrib(ls, R_NamesSymbol);
    for (R_xlen_t i = 0; i < XLENGTH(ls) && TYPEOF(nm) == STRSXP; i++)
        if (strcmp(CHAR(STRING_ELT(nm, i)), "kinds") == 0) {
            SEXP k = VECTOR_ELT(ls, i);
            if (TYPEOF(k) != INTSXP || XLENGTH(k) != blocks)
                Rf_error("'spec$flow$kinds' must be an integer vector of length blocks");
            kinds = INTEGER(k);
        }
    int rc = flow_layout_init(&M->L, d, list_int(ls, "nc", "spec$flow"),
                              list_int(ls, "hidden", "spec$flow"), list_int(ls, "layers", "spec$flow"),
                              blocks, K, list_int(ls, "act", "spec$flow"),
                              list_real(ls, "clamp", "spec$flow"), list_real(ls, "clamp_mix", "spec$flow"),
                              INTEGER(ord), rank, kinds);
    if (rc) Rf_error("malformed flow spec: %s", flow_err[rc]);
    if (model_layout_link(M))
        Rf_error("malformed spec: the flow's context size (%d) differs from the featurizer's output (%d)",
                 M->L.nc, M->F.n_out);
    double np = model_params_dbl(M);
    if (np > INT_MAX || M->n_params > INT_MAX)
        Rf_error("'spec' describes a model of %.3g parameters, more than 2^31 - 1", np);
}

static void advise_huge(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)1 << 21, a = (uintptr_t)p, e = a + bytes;
    const uintptr_t a2 = (a + huge - 1) & ~(huge - 1), e2 = e & ~(huge - 1);
    if (e2 > a2) madvise((void *)a2, e2 - a2, MADV_HUGEPAGE);  /* a hint: failure is harmless */
#else
    (void)p; (void)bytes;
#endif
}

double *alloc_work(size_t n) {
    double *w = (double *)R_alloc(n > 0 ? n : 1, sizeof(double));
    advise_huge(w, n * sizeof(double));
    return w;
}

SEXP dup_real(SEXP x, const char *arg) {
    if (TYPEOF(x) != REALSXP) Rf_error("'%s' must be a numeric vector", arg);
    const R_xlen_t n = XLENGTH(x);
    SEXP y = Rf_allocVector(REALSXP, n);
    advise_huge(REAL(y), (size_t)n * sizeof(double));
    if (n > 0) memcpy(REAL(y), REAL(x), (size_t)n * sizeof(double));
    return y;
}

/* params with the MADE masks applied: params itself when already masked (as fitted models
 * are), else a masked copy */
const double *masked_params(const model_layout *M, SEXP params, int threads) {
    const double *src = need_real(params, (R_xlen_t)M->n_params, "params");
    int bad = 0;  /* isfinite is inlined and the loop vectorises (R_FINITE is a call) */
    const size_t n = M->n_params;
    #pragma omp parallel for simd num_threads(threads) if (threads > 1 && n > 1000000) reduction(|:bad)
    for (size_t i = 0; i < n; i++) bad |= !isfinite(src[i]);
    if (bad) Rf_error("'params' has non-finite values");
    if (flow_is_masked(&M->L, src + M->F.n_params, threads)) return src;
    double *p = (double *)R_alloc(M->n_params > 0 ? M->n_params : 1, sizeof(double));
    memcpy(p, src, M->n_params * sizeof(double));
    model_mask(M, p);
    return p;
}

/* Time series: each sample's row count (its first value) must be a whole number in 1..rows;
 * the counts of the n1 + n2 samples, sorted, largest first. */
static int *sorted_counts(const feat_layout *F, const double *x1, int n1, const double *x2,
                          int n2, const char *arg) {
    const int R = F->set_rows, n = n1 + n2;
    int *hist = (int *)R_alloc((size_t)R + 1, sizeof(int)), *out = (int *)R_alloc((size_t)n + 1, sizeof(int));
    memset(hist, 0, ((size_t)R + 1) * sizeof(int));
    for (int i = 0; i < n; i++) {
        const double c = i < n1 ? x1[(size_t)i * F->n_in] : x2[(size_t)(i - n1) * F->n_in];
        if (!(c >= 1 && c <= R) || c != floor(c))
            Rf_error("'%s': sample %d's row count (its first value) must be a whole number in 1..%d",
                     arg, i < n1 ? i + 1 : i - n1 + 1, R);
        hist[(int)c]++;
    }
    for (int c = R, k = 0; c >= 1; c--)
        for (int j = 0; j < hist[c]; j++) out[k++] = c;
    return out;
}

void model_bind_rows(model_layout *M, const double *x1, int n1, const double *x2, int n2,
                     const char *arg) {
    feat_layout *F = &M->F;
    if (F->type != FEAT_TIMESERIES) return;
    const int n = n1 + n2;
    int *sorted = sorted_counts(F, x1, n1, x2, n2, arg);
    size_t *cum = (size_t *)R_alloc((size_t)n + 1, sizeof(size_t));
    cum[0] = 0;
    for (int k = 0; k < n; k++) cum[k + 1] = cum[k] + (size_t)sorted[k];
    F->ts_cum = cum;
    F->ts_cum_n = n;
}

int model_rows_fit(const model_layout *M, const double *x, int n, const char *arg) {
    const feat_layout *F = &M->F;
    if (F->type != FEAT_TIMESERIES || !F->ts_cum) return 1;
    const int *sorted = sorted_counts(F, x, n, NULL, 0, arg);
    size_t s = 0;
    for (int k = 0; k < n && k < F->ts_cum_n; k++) {
        s += (size_t)sorted[k];
        if (s > F->ts_cum[k + 1]) return 0;
    }
    return 1;
}
