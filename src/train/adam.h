#ifndef NBI_ADAM_H
#define NBI_ADAM_H
#include <stddef.h>
void adam_update(double *w, const double *g, double *m, double *v, size_t n, double lr, int t,
                 double beta1, double beta2, double eps, int threads);
/* avg <- decay * avg + (1 - decay) * w: the averaged iterate (Polyak & Juditsky 1992) */
void average_update(double *avg, const double *w, size_t n, double decay, int threads);
double average_decay(long step, double cap);
double clip_grad_norm(double *g, size_t n, double max_norm);
double cosine_lr(double lr, int epoch, int epochs, double floor);
#endif
