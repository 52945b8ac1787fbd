/* Mixtures of multivariate Student-t components: the proposals of adaptive importance
 * sampling (population Monte Carlo, Cappe et al. 2004). A mixture is fitted by weighted EM
 * to importance-weighted draws, then drawn from and evaluated exactly, so importance
 * weights against it stay exact whatever the fit. */
#ifndef NBI_TMIX_H
#define NBI_TMIX_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int K, d;        /* components (dead ones have share 0), dimension */
    double df;       /* degrees of freedom of every component (> 0) */
    double lconst;   /* lgamma((df + d) / 2) - lgamma(df / 2) - d / 2 log(df pi) */
    double *share;   /* K mixture weights */
    double *mu;      /* K x d means */
    double *chol;    /* K x d x d lower Cholesky factors of the scale matrices, row-major */
} tmix;

typedef struct {
    int components;  /* K at most */
    int em_iters, kmeans_iters;
    int em_rows;     /* more (positive-weight) rows than this: EM on a systematic resample */
    double df;
    double shrink;   /* pseudo-draws pulling each covariance towards S0 */
    double inflate;  /* the fitted scales widened by this factor */
    double floor;    /* every covariance gets floor * S0 added */
    double laplace_share;  /* > 0: a last component from laplace_fit() with this share ... */
    double laplace_below;  /* ... when the weights' n_eff is below this */
    double laplace_step;   /* laplace_fit()'s max_step */
} tmix_settings;

/* the constant of the t density (computed once, outside threads: lgamma is not reentrant) */
double tmix_lconst(double df, int d);

size_t tmix_fit_work(int n, int d, const tmix_settings *s);
/* components of the fitted mixture: s->components, plus the Laplace one if enabled */
int tmix_fit_components(const tmix_settings *s);
/* Fits g (K = s->components, d, arrays allocated by the caller) to the n rows of z (n x d)
 * with log weights log_w (any scale; -Inf: weight 0). Weighted k-means++ start, then EM with
 * Gaussian responsibilities in which each covariance is pulled by s->shrink pseudo-draws,
 * against the component's effective count (n_eff x its share), towards the pooled
 * within-component covariance, itself pulled towards S0 (d x d) against the total n_eff:
 * few effective draws give a component as wide as the others (or as S0) rather than a
 * collapsed one. The scales are then widened by s->inflate. With s->laplace_share > 0,
 * log_p (the target's log density at the rows, or NULL) and an n_eff below
 * s->laplace_below, the last component (g->K = s->components + 1) is laplace_fit()'s
 * Gaussian approximation, widened likewise, with that share; otherwise it is dead. Randomness from the stream keyed by seed. Returns 0, or 1 when no
 * weight is positive, 2 when S0 is not positive definite. */
int tmix_fit(tmix *g, const double *z, const double *log_w, const double *log_p, int n,
             const double *S0, const tmix_settings *s, uint64_t seed, double *work);
/* log g(z_i) of n rows z (n x d); tmp: d doubles */
void tmix_log_density(const tmix *g, const double *z, int n, double *out, double *tmp);
/* n draws into z (n x d); draw i uses the random stream (seed, index0 + i) */
void tmix_sample(const tmix *g, int n, uint64_t seed, uint64_t index0, double *z);
/* lower Cholesky factor of the d x d matrix a (row-major) in place; 1 if not positive definite */
int chol_lower(double *a, int d);
/* b <- (L L')^-1 b for a lower factor L from chol_lower */
void chol_solve(const double *L, int d, double *b);

/* infer/laplace.c: the maximum and curvature of the least-squares quadratic through log_p at
 * the max(4 P, 50) finite points nearest (metric S0) to the highest one (P = the quadratic's
 * coefficients): mean (d) and cov (d x d, row-major) in z's units. The step from the best
 * point is capped at max_step times the neighbourhood's radius. Returns 0, or 1 with too few
 * finite points, 2 when the quadratic has no maximum, 3 when S0 is not positive definite. */
size_t laplace_work(int n, int d);
int laplace_fit(const double *z, const double *log_p, int n, int d, const double *S0,
                double max_step, double *mean, double *cov, double *work);
#endif
