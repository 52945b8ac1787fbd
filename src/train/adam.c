#include <math.h>
#include "train/adam.h"

#define PAR_MIN 16384     /* elements below which one thread is faster */
#define NORM_CHUNK 4096

/* Kingma & Ba (2015), Algorithm 1, with bias-corrected moments; step t >= 1 */
void adam_update(double *w, const double *g, double gscale, double *m, double *v, size_t n,
                 double lr, int t, double beta1, double beta2, double eps, double *avg,
                 double avg_decay, int threads) {
    const double c1 = 1.0 - pow(beta1, t), c2 = 1.0 - pow(beta2, t);
    /* element-wise: the same result for any thread count */
    #pragma omp parallel for num_threads(threads) if (n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const double gi = gscale * g[i];
        m[i] = beta1 * m[i] + (1.0 - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0 - beta2) * gi * gi;
        w[i] -= lr * (m[i] / c1) / (sqrt(v[i] / c2) + eps);
        if (avg) avg[i] = avg_decay * avg[i] + (1.0 - avg_decay) * w[i];
    }
}

/* decay of the k-th update (k >= 1): min(cap, (1 + k) / (10 + k)), so early iterates, far
 * from the optimum, are forgotten fast and the window grows to about 1 / (1 - cap) steps */
double average_decay(long step, double cap) {
    double d = (1.0 + step) / (10.0 + step);
    return d < cap ? d : cap;
}

/* the Euclidean norm of g: squares summed in fixed chunks, then the chunks in order, so the
 * same for any thread count */
double grad_norm(const double *g, size_t n, int threads) {
    const size_t nc = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double part[nc > 0 ? nc : 1], s = 0.0;
    #pragma omp parallel for num_threads(threads) if (n > PAR_MIN) schedule(static)
    for (size_t c = 0; c < nc; c++) {
        const size_t i1 = (c + 1) * NORM_CHUNK < n ? (c + 1) * NORM_CHUNK : n;
        double sc = 0.0;
        for (size_t i = c * NORM_CHUNK; i < i1; i++) sc += g[i] * g[i];
        part[c] = sc;
    }
    for (size_t c = 0; c < nc; c++) s += part[c];
    return sqrt(s);
}

/* the factor that scales a gradient of norm gn to norm at most max_norm (0: no bound) */
double clip_factor(double gn, double max_norm) {
    return max_norm > 0 && gn > max_norm ? max_norm / gn : 1.0;
}

/* cosine decay from lr at epoch 0 towards lr * floor at the last epoch */
double cosine_lr(double lr, int epoch, int epochs, double floor) {
    if (epochs <= 1) return lr;
    double c = 0.5 * (1.0 + cos(M_PI * epoch / (double)(epochs - 1)));
    return lr * (floor + (1.0 - floor) * c);
}
