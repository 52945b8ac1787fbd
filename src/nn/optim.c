#include <math.h>
#include <string.h>
#include "nn/vmath.h"
#ifdef VM_DISPATCH
#include <immintrin.h>
#endif
#include "nn/optim.h"

#define PAR_MIN 16384     /* elements below which one thread is faster */
#define NORM_CHUNK 4096  /* elements per chunk of a parallel pass */

typedef struct {  /* one step's constants */
    double gscale, lr, c1, c2, b1, b2, eps, decay, decay2;
} adam_step;

/* elements i0 .. i1 - 1 of the update */
static void adam_range_base(double *w, float *wf, const double *g, double *m, double *v,
                            double *avg, double *avg2, size_t i0, size_t i1,
                            const adam_step *s) {
    for (size_t i = i0; i < i1; i++) {
        const double gi = s->gscale * g[i];
        m[i] = s->b1 * m[i] + (1.0 - s->b1) * gi;
        v[i] = s->b2 * v[i] + (1.0 - s->b2) * gi * gi;
        w[i] -= s->lr * (m[i] / s->c1) / (sqrt(v[i] / s->c2) + s->eps);
        if (wf) wf[i] = (float)w[i];
        if (avg) avg[i] = s->decay * avg[i] + (1.0 - s->decay) * w[i];
        if (avg2) avg2[i] = s->decay2 * avg2[i] + (1.0 - s->decay2) * w[i];
    }
}

#ifdef VM_DISPATCH
/* AVX2 without FMA, so that the compiler cannot fuse a multiply and an add */
#define AVX2_NO_FMA __attribute__((target("avx2")))

/* the same operations in the same order on 4 elements at a time (separate multiplies and
 * adds, IEEE division and square root), so the results are identical to adam_range_base's;
 * the scalar code runs at half the memory's speed */
AVX2_NO_FMA static void adam_range_avx2(double *w, float *wf, const double *g, double *m,
                                    double *v, double *avg, double *avg2, size_t i0, size_t i1,
                                    const adam_step *s) {
    const __m256d gs = _mm256_set1_pd(s->gscale), b1 = _mm256_set1_pd(s->b1),
                  a1 = _mm256_set1_pd(1.0 - s->b1), b2 = _mm256_set1_pd(s->b2),
                  a2 = _mm256_set1_pd(1.0 - s->b2), lr = _mm256_set1_pd(s->lr),
                  c1 = _mm256_set1_pd(s->c1), c2 = _mm256_set1_pd(s->c2),
                  eps = _mm256_set1_pd(s->eps), dk = _mm256_set1_pd(s->decay),
                  da = _mm256_set1_pd(1.0 - s->decay), dk2 = _mm256_set1_pd(s->decay2),
                  da2 = _mm256_set1_pd(1.0 - s->decay2);
    size_t i = i0;
    for (; i + 4 <= i1; i += 4) {
        const __m256d gi = _mm256_mul_pd(gs, _mm256_loadu_pd(g + i));
        const __m256d mi = _mm256_add_pd(_mm256_mul_pd(b1, _mm256_loadu_pd(m + i)),
                                         _mm256_mul_pd(a1, gi));
        const __m256d vi = _mm256_add_pd(_mm256_mul_pd(b2, _mm256_loadu_pd(v + i)),
                                         _mm256_mul_pd(_mm256_mul_pd(a2, gi), gi));
        const __m256d den = _mm256_add_pd(_mm256_sqrt_pd(_mm256_div_pd(vi, c2)), eps);
        const __m256d step = _mm256_div_pd(_mm256_mul_pd(lr, _mm256_div_pd(mi, c1)), den);
        const __m256d wi = _mm256_sub_pd(_mm256_loadu_pd(w + i), step);
        _mm256_storeu_pd(m + i, mi);
        _mm256_storeu_pd(v + i, vi);
        _mm256_storeu_pd(w + i, wi);
        if (wf) _mm_storeu_ps(wf + i, _mm256_cvtpd_ps(wi));
        if (avg)
            _mm256_storeu_pd(avg + i, _mm256_add_pd(_mm256_mul_pd(dk, _mm256_loadu_pd(avg + i)),
                                                    _mm256_mul_pd(da, wi)));
        if (avg2)
            _mm256_storeu_pd(avg2 + i, _mm256_add_pd(_mm256_mul_pd(dk2, _mm256_loadu_pd(avg2 + i)),
                                                     _mm256_mul_pd(da2, wi)));
    }
    adam_range_base(w, wf, g, m, v, avg, avg2, i, i1, s);
}
#endif

/* Kingma & Ba (2015), Algorithm 1, with bias-corrected moments; step t >= 1. Element-wise,
 * in chunks spread over the threads: the same result for any thread count. */
void adam_update(double *w, float *wf, const double *g, double gscale, double *m, double *v,
                 size_t n, double lr, int t, double beta1, double beta2, double eps,
                 double *avg, double avg_decay, double *avg2, double avg2_decay, int threads) {
    const adam_step s = {gscale, lr, 1.0 - pow(beta1, t), 1.0 - pow(beta2, t), beta1, beta2,
                         eps, avg_decay, avg2_decay};
    void (*range)(double *, float *, const double *, double *, double *, double *, double *,
                  size_t, size_t, const adam_step *) = adam_range_base;
#ifdef VM_DISPATCH
    if (vm_have_avx2()) range = adam_range_avx2;
#endif
    const size_t nc = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    #pragma omp parallel for num_threads(threads) if (n > PAR_MIN) schedule(static)
    for (size_t c = 0; c < nc; c++) {
        const size_t i1 = (c + 1) * NORM_CHUNK < n ? (c + 1) * NORM_CHUNK : n;
        range(w, wf, g, m, v, avg, avg2, c * NORM_CHUNK, i1, &s);
    }
}

/* decay of the k-th update (k >= 1): min(cap, (1 + k) / (10 + k)), so early iterates, far
 * from the optimum, are forgotten fast and the window grows to about 1 / (1 - cap) steps */
double average_decay(long step, double cap) {
    double d = (1.0 + step) / (10.0 + step);
    return d < cap ? d : cap;
}

/* sum of g[i]^2 over i0 .. i1 - 1 in four interleaved partial sums (i mod 4), added
 * pairwise at the end: four independent chains, and the same order as the AVX2 copy */
static double sumsq_base(const double *g, size_t i0, size_t i1) {
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    size_t i = i0;
    for (; i + 4 <= i1; i += 4)
        for (int k = 0; k < 4; k++) s[k] += g[i + k] * g[i + k];
    for (int k = 0; i < i1; i++, k++) s[k] += g[i] * g[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

#ifdef VM_DISPATCH
AVX2_NO_FMA static double sumsq_avx2(const double *g, size_t i0, size_t i1) {
    __m256d acc = _mm256_setzero_pd();
    size_t i = i0;
    for (; i + 4 <= i1; i += 4) {
        const __m256d x = _mm256_loadu_pd(g + i);
        acc = _mm256_add_pd(acc, _mm256_mul_pd(x, x));
    }
    double s[4];
    _mm256_storeu_pd(s, acc);
    for (int k = 0; i < i1; i++, k++) s[k] += g[i] * g[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}
#endif

/* the Euclidean norm of g: squares summed in fixed chunks, then the chunks in order, so the
 * same for any thread count */
double grad_norm(const double *g, size_t n, int threads) {
    const size_t nc = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double part[nc > 0 ? nc : 1], s = 0.0;
    double (*sumsq)(const double *, size_t, size_t) = sumsq_base;
#ifdef VM_DISPATCH
    if (vm_have_avx2()) sumsq = sumsq_avx2;
#endif
    #pragma omp parallel for num_threads(threads) if (n > PAR_MIN) schedule(static)
    for (size_t c = 0; c < nc; c++)
        part[c] = sumsq(g, c * NORM_CHUNK, (c + 1) * NORM_CHUNK < n ? (c + 1) * NORM_CHUNK : n);
    for (size_t c = 0; c < nc; c++) s += part[c];
    return sqrt(s);
}

/* dst = src (or 0 when src is NULL), in chunks over the threads: a serial memset or memcpy
 * of the parameters leaves the other threads waiting */
void copy_fill(double *dst, const double *src, size_t n, int threads) {
    const size_t nc = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    #pragma omp parallel for num_threads(threads) if (n > PAR_MIN) schedule(static)
    for (size_t c = 0; c < nc; c++) {
        const size_t i0 = c * NORM_CHUNK, m = ((c + 1) * NORM_CHUNK < n ? (c + 1) * NORM_CHUNK : n) - i0;
        if (src) memcpy(dst + i0, src + i0, m * sizeof(double));
        else memset(dst + i0, 0, m * sizeof(double));
    }
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
