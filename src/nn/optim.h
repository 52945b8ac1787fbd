#ifndef NBI_OPTIM_H
#define NBI_OPTIM_H
#include <stddef.h>
/* one Adam step on the gradient gscale * g (gscale: gradient clipping, folded into the
 * pass); wf (or NULL) <- (float)w, the float copy products read (nn_ctx_mirror); avg (or
 * NULL) <- avg_decay * avg + (1 - avg_decay) * w after the step: the averaged iterate
 * (Polyak & Juditsky 1992); avg2 likewise with avg2_decay (a second window). All in one
 * pass over memory. */
void adam_update(double *w, float *wf, const double *g, double gscale, double *m, double *v,
                 size_t n, double lr, int t, double beta1, double beta2, double eps,
                 double *avg, double avg_decay, double *avg2, double avg2_decay, int threads);
double average_decay(long step, double cap);
double grad_norm(const double *g, size_t n, int threads);
void copy_fill(double *dst, const double *src, size_t n, int threads);  /* src NULL: zeros */
double clip_factor(double gn, double max_norm);
double cosine_lr(double lr, int epoch, int epochs, double floor);
#endif
