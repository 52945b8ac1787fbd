#include <math.h>
#include <string.h>
#include "nn/nn.h"
#include "model/model.h"
#include "nn/optim.h"
#include "rng.h"

#define LR_FLOOR 0.02

static int eval_batch(const model_layout *M, int n) { (void)M; return n < 1024 ? n : 1024; }

size_t train_work(const model_layout *M, int n_train, int n_valid, int batch, int threads) {
    const int B = batch < n_train ? batch : n_train;
    const int V = eval_batch(M, n_valid > 0 ? n_valid : 1);
    size_t w = model_grad_work(M, B), wv = model_eval_work(M, V, threads) + V;
    return 4 * M->n_params + M->n_params / 2 + 1 + (size_t)B * (M->F.n_in + M->L.d) + (w > wv ? w : wv);
}

/* mean negative log-density over n rows, in chunks */
static double mean_nll(const model_layout *M, const double *params, const double *x,
                       const double *th, int n, double *work, const nn_ctx *cx) {
    const int V = eval_batch(M, n);
    double *lq = work, s = 0.0;
    const model_eval E = model_eval_prepare(M, params, V, work + V, cx);
    for (int i0 = 0; i0 < n; i0 += V) {
        const int b = n - i0 < V ? n - i0 : V;
        model_log_prob(M, params, &E, x + (size_t)i0 * M->F.n_in, b, th + (size_t)i0 * M->L.d, b,
                       1.0, lq, cx);
        for (int i = 0; i < b; i++) s -= lq[i];
    }
    return s / n;
}

static void shuffle(int *perm, int n, uint64_t seed, int epoch) {
    rng_t r = rng_stream(seed ^ 0x5851F42D4C957F2DULL, (uint64_t)epoch);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {  /* Fisher-Yates */
        int j = (int)(rng_unif(&r) * (i + 1));
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

/* copy the batch rows; add Gaussian noise keyed by (epoch, row) when noise_sd is given */
static void gather(const model_layout *M, const train_options *o, int epoch, const int *idx,
                   int B, const double *x, const double *th, double *xb, double *thb) {
    const int nx = M->F.n_in, d = M->L.d;
    for (int i = 0; i < B; i++) {
        memcpy(xb + (size_t)i * nx, x + (size_t)idx[i] * nx, nx * sizeof(double));
        memcpy(thb + (size_t)i * d, th + (size_t)idx[i] * d, d * sizeof(double));
        if (o->noise_sd) {
            rng_t r = rng_stream(o->seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(epoch + 2), idx[i]);
            for (int j = 0; j < nx; j++) xb[(size_t)i * nx + j] += o->noise_sd[j] * rng_norm(&r);
        }
    }
}

int train_model(const model_layout *M, double *params, double *m, double *v, int *adam_step,
                int n_train, double *x_train, double *th_train, int n_valid,
                const double *x_valid, const double *th_valid, const train_options *o,
                double *hist_train, double *hist_valid, double *hist_lr, int *epochs_run,
                int *best_epoch, int *perm, double *work) {
    const size_t np = M->n_params;
    const int B = o->batch < n_train ? o->batch : n_train;
    double *grad = work, *best = grad + np, *xb = best + np;
    double *thb = xb + (size_t)B * M->F.n_in, *avg_buf = thb + (size_t)B * M->L.d;
    double *avg2_buf = avg_buf + np;
    float *wf = (float *)(avg2_buf + np);  /* float copy of params, float32 mode */
    double *mw = avg2_buf + np + np / 2 + 1;
    double *avg = o->average > 0 ? avg_buf : NULL;  /* the iterate average, when kept */
    double *avg2 = avg && o->average2 > 0 ? avg2_buf : NULL;  /* a second window */
    const double *kept = avg ? avg : params;        /* what is validated and kept */
    long n_avg = 0;
    double best_loss = INFINITY;
    int since = 0, status = 0;
    model_mask(M, params);
    nn_ctx cx = nn_ctx_make(o->precision, o->threads);
    if (cx.precision) {  /* Adam keeps the float copy current; products read it */
        for (size_t i = 0; i < np; i++) wf[i] = (float)params[i];
        cx = nn_ctx_mirror(&cx, params, wf, np);
    } else {
        wf = NULL;
    }
    memcpy(best, params, np * sizeof(double));
    if (avg) memcpy(avg, params, np * sizeof(double));
    if (avg2) memcpy(avg2, params, np * sizeof(double));
    *best_epoch = 0; *epochs_run = 0;
    for (int e = 0; e < o->epochs; e++) {
        if (o->prepare_epoch && o->prepare_epoch(o->cb, e, x_train, th_train) != 0) { status = 2; break; }
        const double lr = cosine_lr(o->lr, e, o->epochs, LR_FLOOR);
        shuffle(perm, n_train, o->seed, e);
        double tl = 0.0;
        int nb = 0;
        for (int i0 = 0; i0 + B <= n_train; i0 += B) {  /* the last partial batch is dropped */
            if (o->check_interrupt) o->check_interrupt(o->cb);
            gather(M, o, e, perm + i0, B, x_train, th_train, xb, thb);
            copy_fill(grad, NULL, np, o->threads);
            double loss = model_nll_grad(M, params, xb, thb, B, grad, mw, &cx);
            const double gn = grad_norm(grad, np, o->threads);
            if (!isfinite(loss) || !isfinite(gn)) continue;  /* skip a bad batch */
            (*adam_step)++;
            if (avg) n_avg++;
            adam_update(params, wf, grad, clip_factor(gn, o->clip), m, v, np, lr, *adam_step, 0.9,
                        0.999, 1e-8, avg, avg ? average_decay(n_avg, o->average) : 0.0, avg2,
                        avg2 ? average_decay(n_avg, o->average2) : 0.0, o->threads);
            tl += loss; nb++;
        }
        if (nb == 0) { status = 1; break; }
        kept = avg ? avg : params;
        double vl = n_valid > 0 ? mean_nll(M, kept, x_valid, th_valid, n_valid, mw, &cx)
                                : tl / nb;
        if (avg2 && n_valid > 0) {  /* the window with the lower validation loss competes */
            const double vl2 = mean_nll(M, avg2, x_valid, th_valid, n_valid, mw, &cx);
            if (vl2 < vl) { vl = vl2; kept = avg2; }
        }
        hist_train[e] = tl / nb; hist_valid[e] = vl; hist_lr[e] = lr;
        *epochs_run = e + 1;
        if (o->report) o->report(o->cb, e, tl / nb, vl, lr);
        if (vl < best_loss) {
            best_loss = vl; since = 0; *best_epoch = e + 1;
            copy_fill(best, kept, np, o->threads);
        } else if (++since >= o->patience) {
            break;
        }
    }
    memcpy(params, best, np * sizeof(double));
    return status;
}
