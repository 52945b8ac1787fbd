/* The C2ST classifier: forward, backward and training of a two-hidden-layer ReLU MLP with a
 * logistic loss (see classifier.h). Plain C, no allocation: the caller hands in workspace. */
#include <math.h>
#include <string.h>
#include "nn/nn.h"
#include "nn/optim.h"
#include "diag/classifier.h"
#include "rng.h"

int clf_layout_init(clf_layout *L, int d, int h1, int h2) {
    if (d < 1 || h1 < 1 || h2 < 1) return 1;
    L->d = d; L->h1 = h1; L->h2 = h2;
    L->n_params = (size_t)h1 * d + h1 + (size_t)h2 * h1 + h2 + h2 + 1;
    return 0;
}

/* the tensors of the parameter vector (or of a gradient in the same layout) */
typedef struct { double *w1, *b1, *w2, *b2, *w3, *b3; } clf_tensors;

static clf_tensors clf_split(const clf_layout *L, const double *p) {
    clf_tensors t;
    t.w1 = (double *)p;
    t.b1 = t.w1 + (size_t)L->h1 * L->d;
    t.w2 = t.b1 + L->h1;
    t.b2 = t.w2 + (size_t)L->h2 * L->h1;
    t.w3 = t.b2 + L->h2;
    t.b3 = t.w3 + L->h2;
    return t;
}

/* batch workspace: a1, r1 (B x h1), a2, r2 (B x h2) pre- and post-activation, then the
 * backward buffers dz (B), dr2 (B x h2), dr1 (B x h1) */
size_t clf_batch_work(const clf_layout *L, int B) {
    return (size_t)B * (3 * (size_t)L->h1 + 3 * (size_t)L->h2 + 1);
}

void clf_init_params(const clf_layout *L, double *params, uint64_t seed) {
    const int fan_in[3] = {L->d, L->h1, L->h2}, fan_out[3] = {L->h1, L->h2, 1};
    clf_tensors t = clf_split(L, params);
    double *w[3] = {t.w1, t.w2, t.w3}, *b[3] = {t.b1, t.b2, t.b3};
    for (int l = 0; l < 3; l++) {
        const double bound = sqrt(6.0 / (fan_in[l] + fan_out[l]));
        rng_t r = rng_stream(seed, (uint64_t)l);
        const size_t nw = (size_t)fan_in[l] * fan_out[l];
        for (size_t i = 0; i < nw; i++) w[l][i] = bound * (2.0 * rng_unif(&r) - 1.0);
        for (int o = 0; o < fan_out[l]; o++) b[l][o] = bound * (2.0 * rng_unif(&r) - 1.0);
    }
}

void clf_forward(const clf_layout *L, const double *params, const double *x, int B, double *z,
                 double *work, const nn_ctx *cx) {
    const int threads = cx->threads;
    const int d = L->d, h1 = L->h1, h2 = L->h2;
    clf_tensors t = clf_split(L, params);
    double *a1 = work, *r1 = a1 + (size_t)B * h1, *a2 = r1 + (size_t)B * h1, *r2 = a2 + (size_t)B * h2;
    linear_forward(cx, a1, x, t.w1, t.b1, B, d, h1);
    act_forward(r1, a1, (size_t)B * h1, ACT_RELU, threads);
    linear_forward(cx, a2, r1, t.w2, t.b2, B, h1, h2);
    act_forward(r2, a2, (size_t)B * h2, ACT_RELU, threads);
    linear_forward(cx, z, r2, t.w3, t.b3, B, h2, 1);
}

/* softplus(z) - y z = log(1 + e^z) - y z without overflow */
static inline double bce(double z, double y) {
    return (z > 0 ? z : 0.0) + log1p(exp(-fabs(z))) - y * z;
}

static inline double sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    const double e = exp(z);
    return e / (1.0 + e);
}

double clf_loss_grad(const clf_layout *L, const double *params, const double *x, const double *y,
                     int B, double l2, double *grad, double *work, const nn_ctx *cx) {
    const int threads = cx->threads;
    const int d = L->d, h1 = L->h1, h2 = L->h2;
    clf_tensors t = clf_split(L, params), g = clf_split(L, grad);
    double *a1 = work, *r1 = a1 + (size_t)B * h1, *a2 = r1 + (size_t)B * h1, *r2 = a2 + (size_t)B * h2;
    double *dz = r2 + (size_t)B * h2, *dr2 = dz + B, *dr1 = dr2 + (size_t)B * h2;
    double *z = dz;  /* the logits share dz's buffer: row i's z is read before dz[i] is set */
    clf_forward(L, params, x, B, z, work, cx);
    double loss = 0.0;
    for (int i = 0; i < B; i++) {
        loss += bce(z[i], y[i]);
        dz[i] = (sigmoid(z[i]) - y[i]) / B;
    }
    loss /= B;
    /* L2 on the weights: 0.5 * l2 * |W|^2 / B, gradient l2 * W / B */
    if (l2 > 0) {
        const double *w[3] = {t.w1, t.w2, t.w3};
        double *gw[3] = {g.w1, g.w2, g.w3};
        const size_t nw[3] = {(size_t)h1 * d, (size_t)h2 * h1, (size_t)h2};
        double s = 0.0;
        for (int l = 0; l < 3; l++)
            for (size_t i = 0; i < nw[l]; i++) {
                s += w[l][i] * w[l][i];
                gw[l][i] += l2 * w[l][i] / B;
            }
        loss += 0.5 * l2 * s / B;
    }
    linear_backward(cx, dr2, g.w3, g.b3, dz, r2, t.w3, B, h2, 1);
    act_backward(dr2, dr2, a2, r2, (size_t)B * h2, ACT_RELU, threads);  /* elementwise: in place */
    linear_backward(cx, dr1, g.w2, g.b2, dr2, r1, t.w2, B, h1, h2);
    act_backward(dr1, dr1, a1, r1, (size_t)B * h1, ACT_RELU, threads);
    linear_backward(cx, NULL, g.w1, g.b1, dr1, x, t.w1, B, d, h1);
    return loss;
}

void clf_predict(const clf_layout *L, const double *params, const double *x, int n, int chunk,
                 double *prob, double *work, const nn_ctx *cx) {
    for (int i0 = 0; i0 < n; i0 += chunk) {
        const int b = n - i0 < chunk ? n - i0 : chunk;
        double *z = prob + i0;
        clf_forward(L, params, x + (size_t)i0 * L->d, b, z, work, cx);
        for (int i = 0; i < b; i++) z[i] = sigmoid(z[i]);
    }
}

/* mean logistic loss over n rows (no penalty), in chunks; z: chunk doubles */
static double mean_bce(const clf_layout *L, const double *params, const double *x,
                       const double *y, int n, int chunk, double *z, double *work, const nn_ctx *cx) {
    double s = 0.0;
    for (int i0 = 0; i0 < n; i0 += chunk) {
        const int b = n - i0 < chunk ? n - i0 : chunk;
        clf_forward(L, params, x + (size_t)i0 * L->d, b, z, work, cx);
        for (int i = 0; i < b; i++) s += bce(z[i], y[i0 + i]);
    }
    return s / n;
}

static void shuffle(int *perm, int n, uint64_t seed, int epoch) {
    rng_t r = rng_stream(seed ^ 0xD1B54A32D192ED03ULL, (uint64_t)epoch);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {  /* Fisher-Yates */
        const int j = (int)(rng_unif(&r) * (i + 1));
        const int s = perm[i]; perm[i] = perm[j]; perm[j] = s;
    }
}

size_t clf_train_work(const clf_layout *L, int n_train, int batch) {
    const int B = batch < n_train ? batch : n_train;
    return 4 * L->n_params + (size_t)B * (L->d + 2) + clf_batch_work(L, B);
}

int clf_train(const clf_layout *L, double *params, int n_train, const double *x, const double *y,
              int n_valid, const double *xv, const double *yv, const clf_options *o,
              int *epochs_run, int *best_epoch, int *perm, double *work) {
    const size_t np = L->n_params;
    const int d = L->d, B = o->batch < n_train ? o->batch : n_train;
    double *grad = work, *best = grad + np, *m = best + np, *v = m + np;
    double *xb = v + np, *yb = xb + (size_t)B * d, *zb = yb + B, *bw = zb + B;
    double best_loss = INFINITY;
    int since = 0, step = 0, status = 0;
    const nn_ctx cx = nn_ctx_make(0, o->threads);  /* the classifier computes in float64 */
    memset(m, 0, 2 * np * sizeof(double));
    memcpy(best, params, np * sizeof(double));
    *epochs_run = 0; *best_epoch = 0;
    for (int e = 0; e < o->epochs; e++) {
        if (o->check_interrupt) o->check_interrupt(o->cb);
        shuffle(perm, n_train, o->seed, e);
        double tl = 0.0;
        for (int i0 = 0; i0 < n_train; i0 += B) {  /* the last partial batch is kept */
            const int b = n_train - i0 < B ? n_train - i0 : B;
            for (int i = 0; i < b; i++) {
                const int r = perm[i0 + i];
                memcpy(xb + (size_t)i * d, x + (size_t)r * d, d * sizeof(double));
                yb[i] = y[r];
            }
            memset(grad, 0, np * sizeof(double));
            const double loss = clf_loss_grad(L, params, xb, yb, b, o->l2, grad, bw, &cx);
            if (!isfinite(loss)) { status = 1; break; }
            adam_update(params, NULL, grad, 1.0, m, v, np, o->lr, ++step, 0.9, 0.999, 1e-8, NULL, 0.0, NULL, 0.0, 1);
            tl += loss * b;
        }
        if (status) break;
        const double crit = n_valid > 0
            ? mean_bce(L, params, xv, yv, n_valid, B, zb, bw, &cx) : tl / n_train;
        *epochs_run = e + 1;
        if (!isfinite(crit)) { status = 1; break; }
        if (crit < best_loss - o->tol) since = 0; else since++;
        if (crit < best_loss) {
            best_loss = crit; *best_epoch = e + 1;
            memcpy(best, params, np * sizeof(double));
        }
        if (since >= o->patience) break;
    }
    memcpy(params, best, np * sizeof(double));
    return status;
}
