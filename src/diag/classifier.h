/* A binary classifier for the classifier two-sample test (C2ST): an MLP
 * d -> h1 -> h2 -> 1 with ReLU hidden units and one logit, logistic loss, Adam.
 * Parameters in one flat vector: W1 (h1 x d) | b1 | W2 (h2 x h1) | b2 | W3 (1 x h2) | b3,
 * each weight matrix out x in, row-major (as in nn/linear.c). Rows are samples (d contiguous). */
#ifndef NBI_CLASSIFIER_H
#define NBI_CLASSIFIER_H
#include <stddef.h>
#include <stdint.h>

typedef struct { int d, h1, h2; size_t n_params; } clf_layout;

/* 0, or 1 if a size is below 1 */
int clf_layout_init(clf_layout *L, int d, int h1, int h2);
/* doubles of workspace for forward and backward passes over up to B rows */
size_t clf_batch_work(const clf_layout *L, int B);
/* Glorot-uniform weights and biases, bound sqrt(6 / (fan_in + fan_out)) per layer */
void clf_init_params(const clf_layout *L, double *params, uint64_t seed);
/* logits z (B) of the rows x (B x d) */
void clf_forward(const clf_layout *L, const double *params, const double *x, int B, double *z,
                 double *work, const nn_ctx *cx);
/* mean over rows of softplus(z) - y z, plus 0.5 * l2 * |weights|^2 / B (biases unpenalised,
 * as sklearn's MLPClassifier); adds the gradient into grad */
double clf_loss_grad(const clf_layout *L, const double *params, const double *x, const double *y,
                     int B, double l2, double *grad, double *work, const nn_ctx *cx);
/* sigmoid of the logits of n rows, in chunks of `chunk` rows (work: clf_batch_work(L, chunk)) */
void clf_predict(const clf_layout *L, const double *params, const double *x, int n, int chunk,
                 double *prob, double *work, const nn_ctx *cx);

typedef struct {
    int epochs, batch, patience, threads;
    double lr, l2, tol;
    uint64_t seed;
    void (*check_interrupt)(void *cb);  /* called once per epoch, may not return */
    void *cb;
} clf_options;

/* workspace in doubles for clf_train */
size_t clf_train_work(const clf_layout *L, int n_train, int batch);
/* Adam over minibatches reshuffled every epoch (the last partial batch is kept); early
 * stopping: an epoch whose validation loss (training loss when n_valid is 0) is not below
 * the best by tol counts towards patience; the best parameters are restored at the end.
 * params: start values in, best values out. Returns 0, or 1 if a loss became non-finite. */
int clf_train(const clf_layout *L, double *params, int n_train, const double *x, const double *y,
              int n_valid, const double *xv, const double *yv, const clf_options *o,
              int *epochs_run, int *best_epoch, int *perm, double *work);
#endif
