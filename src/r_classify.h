/* The classifier glue's argument checks, shared with its test entry (r_test_model.c). */
#ifndef NBI_R_CLASSIFY_H
#define NBI_R_CLASSIFY_H
#include "r_util.h"
#include "diag/classifier.h"
/* a double matrix with `rows` rows (any when rows < 0) of finite values; returns its columns */
int c2st_need_matrix(SEXP x, int rows, const char *arg);
/* a double vector of n labels, each 0 or 1 */
const double *c2st_need_labels(SEXP y, int n, const char *arg);
int c2st_opt_int(SEXP opts, const char *name, int lo, int hi);
double c2st_opt_real(SEXP opts, const char *name, double lo, int lo_open);
/* the layout from opts$h1, opts$h2 and d, with its size checked in double precision */
void c2st_layout(clf_layout *L, SEXP opts, int d);
#endif
