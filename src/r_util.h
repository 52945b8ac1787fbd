/* Glue helpers: argument checks that raise R errors naming the argument. */
#ifndef NBI_R_UTIL_H
#define NBI_R_UTIL_H
#define R_NO_REMAP
#include <R.h>
#include <Rinternals.h>
#include <stdint.h>
#include "model/model.h"

SEXP list_get(SEXP list, const char *name, const char *arg);
int list_has(SEXP list, const char *name);
int list_int(SEXP list, const char *name, const char *arg);
double list_real(SEXP list, const char *name, const char *arg);
double *need_real(SEXP x, R_xlen_t len, const char *arg);          /* len < 0: any length */
int need_cols(SEXP x, int rows, const char *arg);                  /* a rows x n real matrix: n */
int need_threads(SEXP threads);
int need_count(SEXP x, const char *arg);
uint64_t need_seed(SEXP seed);
uint64_t *need_seeds(SEXP seeds, int n, const char *arg);        /* n whole numbers in [0, 2^53] */
/* n_obs counts (n_obs < 0: any number) of rows per observation summing to total (< 0: any):
 * their offsets, n_obs + 1 of them */
R_xlen_t *need_counts(SEXP counts, int n_obs, R_xlen_t total, const char *arg);
void model_from_spec(model_layout *M, SEXP spec);
/* Time-series featurizers: checks the row counts of the n1 + n2 samples (x1, x2: n_in x n)
 * and sizes the featurizer's memory by the rows their batches can hold, not by n x rows
 * (every later call must use distinct samples of these); nothing for other featurizers */
void model_bind_rows(model_layout *M, const double *x1, int n1, const double *x2, int n2,
                     const char *arg);
/* whether any batch of the n samples of x fits the memory sized by model_bind_rows (1: yes) */
int model_rows_fit(const model_layout *M, const double *x, int n, const char *arg);
/* the model's parameters, checked finite, with the MADE masks applied: params itself when
 * already masked (as fitted models are), else a masked copy (R_alloc) */
const double *masked_params(const model_layout *M, SEXP params, int threads);
/* R_alloc of n doubles whose 2 MiB-aligned interior is asked to be backed by huge pages
 * (one page fault per 2 MiB instead of per 4 KiB on first touch) */
double *alloc_work(size_t n);
/* a copy of a numeric vector (attributes dropped) in memory advised as alloc_work's */
SEXP dup_real(SEXP x, const char *arg);
#endif
