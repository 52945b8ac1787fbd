#ifndef NBI_MADE_H
#define NBI_MADE_H
#include "flow/flow.h"
void made_context(const flow_layout *L, made_params p, int OD, const double *ctx, int rows,
                  double *cbase, double *cout, const nn_ctx *cx);
/* hidden layers at inputs z; returns the last activation (inside post) */
double *made_hidden(const flow_layout *L, made_params p, const double *z, const double *cbase,
                    int cb_rows, int B, double *pre, double *post, const nn_ctx *cx);
void made_forward(const flow_layout *L, made_params p, int OD, const double *z,
                  const double *cbase, const double *cout, int cb_rows, int B, double *pre,
                  double *post, double *out, const nn_ctx *cx);
void made_backward(const flow_layout *L, made_params p, made_params g, int OD, const double *z,
                   const double *ctx, int B, const double *pre, const double *post,
                   const double *dout, double *dz, double *dctx, double *work, const nn_ctx *cx);
/* sampling in degree order (one forward pass per block instead of d; flow/sample.c) */
int made_degree_start(const flow_layout *L, int m);
void made_sorted_units(const flow_layout *L, int *pos);
#endif
