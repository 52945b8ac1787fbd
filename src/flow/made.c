/* One MADE network (Germain et al. 2015) with a conditioning input: the shared body of the
 * affine and mixture blocks. Weights must already be masked. */
#include <string.h>
#include "nn/nn.h"
#include "flow/made.h"

/* cbase = ctx Wc^T + b1 (rows x H) and cout = ctx Wco^T + bout (rows x OD) */
void made_context(const flow_layout *L, made_params p, int OD, const double *ctx, int rows,
                  double *cbase, double *cout, const nn_ctx *cx) {
    linear_forward(cx, cbase, ctx, p.Wc, p.b1, rows, L->nc, L->hidden);
    linear_forward(cx, cout, ctx, p.Wco, p.bout, rows, L->nc, OD);
}

/* out[b, :] += c[b or 0, :] */
static void add_rows(double *out, const double *c, int c_rows, int B, int n) {
    for (int b = 0; b < B; b++) {
        const double *cb = c + (c_rows == 1 ? 0 : (size_t)b * n);
        double *ob = out + (size_t)b * n;
        for (int i = 0; i < n; i++) ob[i] += cb[i];
    }
}

/* pre[l], post[l] (B x H each, layer l at l*B*H) and out (B x OD) */
double *made_hidden(const flow_layout *L, made_params p, const double *z, const double *cbase,
                    int cb_rows, int B, double *pre, double *post, const nn_ctx *cx) {
    const int threads = cx->threads;
    const int H = L->hidden;
    const size_t BH = (size_t)B * H;
    linear_forward(cx, pre, z, p.Win, NULL, B, L->d, H);
    add_rows(pre, cbase, cb_rows, B, H);
    act_forward(post, pre, BH, L->act, threads);
    for (int l = 1; l < L->layers; l++) {
        linear_forward(cx, pre + l * BH, post + (l - 1) * BH, p.Wh[l], p.bh[l], B, H, H);
        act_forward(post + l * BH, pre + l * BH, BH, L->act, threads);
    }
    return post + (L->layers - 1) * BH;
}

void made_forward(const flow_layout *L, made_params p, int OD, const double *z,
                  const double *cbase, const double *cout, int cb_rows, int B, double *pre,
                  double *post, double *out, const nn_ctx *cx) {
    double *h = made_hidden(L, p, z, cbase, cb_rows, B, pre, post, cx);
    linear_forward(cx, out, h, p.Wout, NULL, B, L->hidden, OD);
    add_rows(out, cout, cb_rows, B, OD);
}

/* From dout (B x OD): accumulates parameter gradients into g, writes dz (B x d) and adds
 * to dctx (B x nc) when not NULL. work: 2 * B * H doubles. */
void made_backward(const flow_layout *L, made_params p, made_params g, int OD, const double *z,
                   const double *ctx, int B, const double *pre, const double *post,
                   const double *dout, double *dz, double *dctx, double *work, const nn_ctx *cx) {
    const int threads = cx->threads;
    const int H = L->hidden;
    const size_t BH = (size_t)B * H;
    double *dh = work, *da = work + BH;
    linear_backward(cx, dh, g.Wout, g.bout, dout, post + (L->layers - 1) * BH, p.Wout, B, H, OD);
    linear_backward(cx, NULL, g.Wco, NULL, dout, ctx, p.Wco, B, L->nc, OD);
    if (dctx) linear_backward_input_add(cx, dctx, dout, p.Wco, B, L->nc, OD);
    for (int l = L->layers - 1; l >= 1; l--) {
        act_backward(da, dh, pre + l * BH, post + l * BH, BH, L->act, threads);
        linear_backward(cx, dh, g.Wh[l], g.bh[l], da, post + (l - 1) * BH, p.Wh[l], B, H, H);
    }
    act_backward(da, dh, pre, post, BH, L->act, threads);
    linear_backward(cx, dz, g.Win, g.b1, da, z, p.Win, B, L->d, H);
    linear_backward(cx, NULL, g.Wc, NULL, da, ctx, p.Wc, B, L->nc, H);
    if (dctx) linear_backward_input_add(cx, dctx, da, p.Wc, B, L->nc, H);
}

/* Hidden units sorted by MADE degree (unit h has degree h mod d, see layout.c): degree m
 * holds units m, m + d, m + 2d, ... and occupies sorted positions made_degree_start(m) on. */
int made_degree_start(const flow_layout *L, int m) {
    const int H = L->hidden, d = L->d;
    int s = 0;
    for (int k = 0; k < m && k < H; k++) s += (H - 1 - k) / d + 1;
    return s;
}

static int sorted_unit(const flow_layout *L, int s) {  /* unit at sorted position s */
    const int H = L->hidden, d = L->d;
    for (int m = 0; m < d && m < H; m++) {
        int n = (H - 1 - m) / d + 1;
        if (s < n) return m + s * d;
        s -= n;
    }
    return -1;
}

/* pos[s]: the hidden unit at sorted position s (s = 0 .. H - 1) */
void made_sorted_units(const flow_layout *L, int *pos) {
    for (int s = 0; s < L->hidden; s++) pos[s] = sorted_unit(L, s);
}
