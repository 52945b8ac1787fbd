#include <math.h>
#include "infer/infer.h"

int importance_weights(const double *log_lik, const double *log_prior, const double *log_q,
                       int n, double *log_w, double *w, is_stats *s) {
    double m = -INFINITY;
    s->n_zero = 0;
    for (int i = 0; i < n; i++) {
        double lw = log_lik[i] + log_prior[i] - log_q[i];
        if (isnan(lw) || lw == INFINITY || !isfinite(log_q[i])) lw = -INFINITY;
        log_w[i] = lw;
        if (lw == -INFINITY) s->n_zero++;
        if (lw > m) m = lw;
    }
    if (m == -INFINITY) {  /* no support at all: n_eff = 0, evidence 0 */
        for (int i = 0; i < n; i++) w[i] = 0.0;
        s->n_eff = 0.0; s->log_evidence = -INFINITY; s->log_evidence_se = NAN;
        return 1;
    }
    double sum = 0.0, sum2 = 0.0;
    for (int i = 0; i < n; i++) { w[i] = exp(log_w[i] - m); sum += w[i]; sum2 += w[i] * w[i]; }
    /* Z = mean of unnormalised weights; se(log Z) by the delta method */
    double mean = sum / n, var = n > 1 ? (sum2 - n * mean * mean) / (n - 1) : NAN;
    s->log_evidence = m + log(mean);
    s->log_evidence_se = sqrt(fmax(var, 0.0) / n) / mean;
    double ss = 0.0;
    for (int i = 0; i < n; i++) { w[i] /= sum; ss += w[i] * w[i]; }
    s->n_eff = 1.0 / ss - 1.0;  /* seed 000, Eq. 2 */
    return 0;
}
