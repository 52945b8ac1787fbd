/* The linked BLAS's thread count, so that nbi's OpenMP threads and a threaded BLAS never
 * run at once in larger numbers than asked (no oversubscription). OpenBLAS and FlexiBLAS
 * export setters; R links its BLAS into the global symbol scope, so dlsym finds them. */
#define _GNU_SOURCE
#define R_NO_REMAP
#include <R.h>
#include <Rinternals.h>
#include <string.h>
#include "nn/nn.h"
#ifndef _WIN32
#include <dlfcn.h>
#endif

typedef void (*set_threads_fn)(int);
typedef int (*get_threads_fn)(void);

static void *blas_symbol(const char *a, const char *b) {
#ifdef _WIN32
    (void)a; (void)b;
    return NULL;
#else
    void *f = dlsym(RTLD_DEFAULT, a);
    return f ? f : dlsym(RTLD_DEFAULT, b);
#endif
}

/* Sets the BLAS thread count to n (n >= 1) and returns the previous one; NA when the BLAS
 * has no known setter (reference BLAS is single-threaded anyway). n = NA only queries. */
SEXP r_blas_threads(SEXP n) {
    if (!Rf_isNumeric(n) || XLENGTH(n) != 1) Rf_error("'n' must be one number");
    get_threads_fn get;
    set_threads_fn set;
    /* POSIX's way to turn dlsym's object pointer into a function pointer */
    void *g = blas_symbol("openblas_get_num_threads", "flexiblas_get_num_threads");
    void *st = blas_symbol("openblas_set_num_threads", "flexiblas_set_num_threads");
    memcpy(&get, &g, sizeof get);
    memcpy(&set, &st, sizeof set);
    if (!get || !set) return Rf_ScalarInteger(NA_INTEGER);
    int old = get(), k = Rf_asInteger(n);
    if (k != NA_INTEGER && k >= 1 && k <= 1024 && k != old) set(k);
    return Rf_ScalarInteger(old);
}
