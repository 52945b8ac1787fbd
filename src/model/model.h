/* A model = featurizer + flow with one parameter vector [featurizer | flow]. */
#ifndef NBI_MODEL_H
#define NBI_MODEL_H
#include "feat/feat.h"
#include "flow/flow.h"

typedef struct {
    feat_layout F;
    flow_layout L;
    size_t n_params;
    int precision;  /* the spec's compute precision (nn_ctx_make's), 0 float64 */
} model_layout;

int model_layout_link(model_layout *M);  /* checks F and L fit together, sets n_params */
size_t model_fwd_work(const model_layout *M, int B);
size_t model_eval_work(const model_layout *M, int B, int threads);  /* model_eval_prepare's */
size_t model_grad_work(const model_layout *M, int B);
/* work of log-densities for batches of up to B rows with fixed params: the flow's weights
 * prepared once (flow_sample_prepare), then any number of model_log_prob calls */
typedef struct { double *feat, *flow; } model_eval;
model_eval model_eval_prepare(const model_layout *M, const double *params, int B, double *work,
                              const nn_ctx *cx);
/* log q(theta_i | x_i) for B rows (at most the prepared B); x has x_rows = B or 1 rows
 * (one observation for every theta); tau > 1: the density of the tempered flow */
void model_log_prob(const model_layout *M, const double *params, const model_eval *E,
                    const double *x, int x_rows, const double *theta, int B, double tau,
                    double *logq, const nn_ctx *cx);
/* mean negative log-density of the batch; adds its gradient into grad */
double model_nll_grad(const model_layout *M, const double *params, const double *x,
                      const double *theta, int B, double *grad, double *work, const nn_ctx *cx);
void model_mask(const model_layout *M, double *v);

typedef struct {
    int epochs, batch, patience, threads;
    int precision;   /* of the products: 0 float64, 1 float32, 2 float32 through nbi's kernel */
    double lr, clip;
    double average;  /* cap of the iterate average's decay (0: no averaging) */
    double average2; /* cap of a second average's decay (0: none); the better one is kept */
    uint64_t seed;
    const double *noise_sd;  /* per observation feature (standardised units), or NULL */
    /* optional: called before each epoch to refill x_train (e.g. a fresh noise draw) and,
     * for augmentations that change the parameters, th_train */
    int (*prepare_epoch)(void *cb, int epoch, double *x_train, double *th_train);
    void (*check_interrupt)(void *cb);
    void (*report)(void *cb, int epoch, double train, double valid, double lr);
    void *cb;
} train_options;

size_t train_work(const model_layout *M, int n_train, int n_valid, int batch, int threads);
/* Adam with cosine decay, reshuffled minibatches, early stopping on the validation loss.
 * With o->average > 0 an exponential average of the iterates is validated and kept; with
 * o->average2 > 0 too, a second one (another window) is validated as well, and each epoch
 * the one with the lower validation loss competes for the best parameters.
 * params: start values in, best values out. m, v: Adam moments (in/out). hist_*: epochs long.
 * Returns 0, or 1 if an epoch had no finite loss, 2 if prepare_epoch failed. */
int train_model(const model_layout *M, double *params, double *m, double *v, int *adam_step,
                int n_train, double *x_train, double *th_train, int n_valid,
                const double *x_valid, const double *th_valid, const train_options *o,
                double *hist_train, double *hist_valid, double *hist_lr, int *epochs_run,
                int *best_epoch, int *perm, double *work);
#endif
