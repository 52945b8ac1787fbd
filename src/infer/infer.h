/* Importance sampling of the surrogate posterior (seed 000, Eq. 1-2). */
#ifndef NBI_INFER_H
#define NBI_INFER_H
typedef struct { double n_eff, log_evidence, log_evidence_se; int n_zero; } is_stats;
/* log w_i = log_lik_i + log_prior_i - log_q_i (non-finite terms give weight 0);
 * w: normalised weights. Returns 1 if every weight is zero, else 0. */
int importance_weights(const double *log_lik, const double *log_prior, const double *log_q,
                       int n, double *log_w, double *w, is_stats *s);
#endif
