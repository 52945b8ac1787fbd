/* Conditional masked autoregressive flow (Papamakarios et al. 2017) with a final
 * autoregressive mixture-of-Gaussians block (MADE-MoG), as used by nbi (seed 000).
 *
 * Density direction: x -> block 0 -> ... -> block blocks-2 (affine) -> z, then
 * log q(x|c) = sum_b logdet_b + sum_j log MoG_j(z_j | z_<j, c).
 * Every block's first layer sees the conditioning vector c through an unmasked weight, and
 * hidden unit h has MADE degree h mod d in 0..d-1: units of degree 0 see only c, so the
 * first coordinate of every block depends on c, and d = 1 works. A linear skip from c to
 * every block's outputs makes shifts and scales that are affine in c easy to learn. */
#ifndef NBI_FLOW_H
#define NBI_FLOW_H
#include <stddef.h>
#include <stdint.h>
#include "nn/nn.h"

#define FLOW_MAX_LAYERS 16
#define FLOW_MAX_BLOCKS 256
#define LOG_SQRT_2PI 0.91893853320467274178  /* log sqrt(2 pi): the normal density's constant */

typedef struct {
    int d, nc, hidden, layers, blocks, K, act;
    double clamp, clamp_mix;  /* soft bounds of affine log-scales and of mixture log-sds */
    const int *order;         /* blocks x d: order[b*d + t] = coordinate at step t (0-based) */
    int *rank;                /* blocks x d: rank[b*d + j] = step of coordinate j */
    unsigned char kind[FLOW_MAX_BLOCKS];   /* each block's kind (flow/block.h) */
    int out[FLOW_MAX_BLOCKS];              /* each block's MADE outputs */
    size_t offset[FLOW_MAX_BLOCKS + 1];    /* where each block's parameters start */
    int max_out;                           /* the largest block's outputs */
    size_t n_params;
} flow_layout;

/* pointers into one block's parameters */
typedef struct {
    double *Win, *Wc, *b1, *Wh[FLOW_MAX_LAYERS], *bh[FLOW_MAX_LAYERS], *Wout, *bout;
    double *Wco;  /* context -> outputs: a linear skip past the hidden layers */
} made_params;

/* kinds: one per block (their numbers in flow/block.h), or NULL for the default: the first
 * kind for every block but the last, the mixture for the last. Returns 0, or a code naming
 * the first bad field (10: too many blocks, 11: a block or the flow too large for an int,
 * 12: unknown kinds, or a terminal kind anywhere but last). */
int flow_layout_init(flow_layout *L, int d, int nc, int hidden, int layers, int blocks, int K,
                     int act, double clamp, double clamp_mix, const int *order, int *rank_buf,
                     const int *kinds);
int flow_out_dim(const flow_layout *L, int b);
size_t flow_block_offset(const flow_layout *L, int b);
made_params flow_block_params(const flow_layout *L, double *params, int b);
void flow_mask(const flow_layout *L, double *v, int threads);
int flow_is_masked(const flow_layout *L, const double *v, int threads);
void flow_init_params(const flow_layout *L, double *params, uint64_t seed);

size_t flow_fwd_work(const flow_layout *L, int B);   /* forward keeping every block's cache */
size_t flow_bwd_work(const flow_layout *L, int B);
size_t flow_sample_work(const flow_layout *L, int B, int threads);  /* see flow_sample */

/* params must be masked (flow_mask). ctx has ctx_rows = B or 1 (broadcast) rows. work
 * (flow_fwd_work) keeps the activations that flow_backward needs (for log-densities alone,
 * flow_log_prob is faster). tau: the temperature of the base (see flow_sample); 1 for the
 * flow itself, and always 1 before flow_backward. */
void flow_forward(const flow_layout *L, const double *params, const double *x, const double *ctx,
                  int ctx_rows, int B, double tau, double *logq, double *work, const nn_ctx *cx);
/* g[b] = dLoss/dlogq[b]. Accumulates dparams (then masked); writes dctx (B x nc) and dx
 * (B x d) when not NULL. ctx must have B rows. */
void flow_backward(const flow_layout *L, const double *params, const double *ctx, int B,
                   const double *g, double *dparams, double *dctx, double *dx,
                   const double *fwd, double *work, const nn_ctx *cx);
/* Sampling (flow/sample.c): flow_sample_prepare sorts and converts params (masked) into
 * work (flow_sample_work(L, B, threads) doubles) once; then each flow_sample call with that
 * work and at most B draws:
 * B draws; row i uses the random stream (seed, index0 + i). logq may be NULL. ctx_rows
 * must divide B: each context row serves B / ctx_rows consecutive draws (1: all share one;
 * B: one each), so the context enters each block once per row, not once per draw.
 * tau >= 1 tempers the draws: every mixture component's sd in the base is multiplied by
 * tau (tau = 1: the flow itself), and logq is the tempered density. */
void flow_sample_prepare(const flow_layout *L, const double *params, double *work, const nn_ctx *cx);
/* log q(x | ctx) of B points x (B x d) with the prepared work (as flow_sample; ctx_rows 1
 * or B): the tiles of flow_sample run in the density direction. tau as in flow_forward. */
void flow_log_prob(const flow_layout *L, const double *x, const double *ctx, int ctx_rows, int B,
                   double tau, double *logq, double *work, const nn_ctx *cx);
void flow_sample(const flow_layout *L, const double *ctx, int ctx_rows, int B, uint64_t seed,
                 uint64_t index0, double tau, double *x, double *logq, double *work,
                 const nn_ctx *cx);
#endif
