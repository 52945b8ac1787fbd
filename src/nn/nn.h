/* nn: plain layers over raw double arrays (llm.c style).
 * One sample is one contiguous row; sizes come last; nothing is allocated here. */
#ifndef NBI_NN_H
#define NBI_NN_H
#include <stddef.h>

enum { ACT_RELU = 0, ACT_TANH = 1, ACT_GELU = 2 };

void linear_forward(double *out, const double *in, const double *w, const double *bias,
                    int B, int C, int OC);
void linear_backward(double *din, double *dw, double *dbias, const double *dout,
                     const double *in, const double *w, int B, int C, int OC);
/* din += dout * w (the input gradient, accumulated) */
void linear_backward_input_add(double *din, const double *dout, const double *w, int B, int C, int OC);
/* adds in * w^T to out (no bias): for a second input entering the same units */
void linear_accumulate(double *out, const double *in, const double *w, int B, int C, int OC);

void act_forward(double *out, const double *in, size_t n, int act, int threads);
/* din = dout * act'(pre); pre is the layer input, out its output (either may be used) */
void act_backward(double *din, const double *dout, const double *pre, const double *out,
                  size_t n, int act, int threads);

/* column sums: s[o] (+)= sum_b x[b,o] in a fixed order (deterministic for any thread count) */
void colsum_add(double *s, const double *x, int B, int OC);
#endif
