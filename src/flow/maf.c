/* MAF log-density and its gradient for training: every block's MADE network (made.c) over
 * the whole batch, then its kind's row map (flow/block_*.c). See flow.h for the model. */
#include <math.h>
#include <string.h>
#include "nn/nn.h"
#include "nn/vmath.h"
#include "flow/made.h"
#include "flow/block.h"

#define PAR_ROWS 256
#define ROW_CHUNK 32  /* rows per call of a kind's row map */

typedef struct { double *zin, *pre, *post, *out; } block_cache;

static size_t cache_size(const flow_layout *L, int B, int b) {
    return (size_t)B * (L->d + 2 * (size_t)L->layers * L->hidden + flow_out_dim(L, b));
}

static block_cache cache_at(const flow_layout *L, double *work, int B, int b) {
    block_cache c;
    for (int i = 0; i < b; i++) work += cache_size(L, B, i);
    const size_t BH = (size_t)B * L->hidden;
    c.zin = work;
    c.pre = c.zin + (size_t)B * L->d;
    c.post = c.pre + L->layers * BH;
    c.out = c.post + L->layers * BH;
    return c;
}

size_t flow_fwd_work(const flow_layout *L, int B) {
    size_t n = (size_t)B * (L->hidden + L->max_out);  /* cbase, cout */
    for (int b = 0; b < L->blocks; b++) n += cache_size(L, B, b);
    return n;
}

size_t flow_bwd_work(const flow_layout *L, int B) {
    return (size_t)B * (L->max_out + 2 * L->d + 2 * L->hidden);
}

void flow_forward(const flow_layout *L, const double *params, const double *x, const double *ctx,
                  int ctx_rows, int B, double tau, double *logq, double *work, const nn_ctx *cx) {
    const int threads = cx->threads;
    const int d = L->d, nb = L->blocks, isa = vm_isa();
    const double lt = log(tau);
    double *cbase = work, *cout = work + (size_t)B * L->hidden;
    double *caches = cout + (size_t)B * L->max_out;
    memcpy(cache_at(L, caches, B, 0).zin, x, (size_t)B * d * sizeof(double));
    for (int i = 0; i < B; i++) logq[i] = 0.0;
    for (int b = 0; b < nb; b++) {
        made_params p = flow_block_params(L, (double *)params, b);
        block_cache c = cache_at(L, caches, B, b);
        const int OD = flow_out_dim(L, b);
        const flow_rows_fwd fwd = flow_kind(L, b)->fwd[isa];  /* its kind's map, this CPU's copy */
        double *zn = b < nb - 1 ? cache_at(L, caches, B, b + 1).zin : NULL;
        made_context(L, p, OD, ctx, ctx_rows, cbase, cout, cx);
        made_forward(L, p, OD, c.zin, cbase, cout, ctx_rows, B, c.pre, c.post, c.out, cx);
        #pragma omp parallel for num_threads(threads) if (B > PAR_ROWS) schedule(static)
        for (int i = 0; i < B; i += ROW_CHUNK)
            fwd(L, c.out + (size_t)i * OD, c.zin + (size_t)i * d, zn ? zn + (size_t)i * d : NULL,
                lt, logq + i, B - i < ROW_CHUNK ? B - i : ROW_CHUNK);
    }
}

void flow_backward(const flow_layout *L, const double *params, const double *ctx, int B,
                   const double *g, double *dparams, double *dctx, double *dx,
                   const double *fwd, double *work, const nn_ctx *cx) {
    const int threads = cx->threads;
    const int d = L->d, nb = L->blocks, isa = vm_isa();
    double *caches = (double *)fwd + (size_t)B * (L->hidden + L->max_out);
    double *dout = work, *G = dout + (size_t)B * L->max_out, *dzn = G + (size_t)B * d;
    double *mwork = dzn + (size_t)B * d;
    if (dctx) memset(dctx, 0, (size_t)B * L->nc * sizeof(double));
    for (int b = nb - 1; b >= 0; b--) {
        made_params p = flow_block_params(L, (double *)params, b);
        made_params gp = flow_block_params(L, dparams, b);
        block_cache c = cache_at(L, caches, B, b);
        const int OD = flow_out_dim(L, b);
        const flow_rows_bwd bwd = flow_kind(L, b)->bwd[isa];
        const double *zn = b < nb - 1 ? cache_at(L, caches, B, b + 1).zin : NULL;
        #pragma omp parallel for num_threads(threads) if (B > PAR_ROWS) schedule(static)
        for (int i = 0; i < B; i += ROW_CHUNK)
            bwd(L, c.out + (size_t)i * OD, c.zin + (size_t)i * d, zn ? zn + (size_t)i * d : NULL,
                g + i, dout + (size_t)i * OD, G + (size_t)i * d,
                B - i < ROW_CHUNK ? B - i : ROW_CHUNK);
        made_backward(L, p, gp, OD, c.zin, ctx, B, c.pre, c.post, dout, dzn, dctx, mwork, cx);
        for (size_t i = 0; i < (size_t)B * d; i++) G[i] += dzn[i];
    }
    if (dx) memcpy(dx, G, (size_t)B * d * sizeof(double));
    flow_mask(L, dparams, threads);
}
