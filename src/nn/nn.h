/* nn: plain layers over raw double arrays (llm.c style).
 * One sample is one contiguous row; sizes come last; nothing is allocated here. */
#ifndef NBI_NN_H
#define NBI_NN_H
#include <stddef.h>

enum { ACT_RELU = 0, ACT_TANH = 1, ACT_GELU = 2 };

/* The compute settings of one call, passed down to every product (the core keeps no such
 * state): the precision (0 float64, 1 float32, 2 float32 through nbi's kernel even where
 * sgemm exists: for tests), whether float32 products use nbi's kernel (nn_ctx_make decides
 * from the CPU and NBI_SGEMM) and whether float64 ones do (the CPU and NBI_DGEMM), the threads the products' tiles spread over (the BLAS runs on
 * one), and optionally a float copy `mirror` of the weights at mirror_of[0 .. mirror_n - 1]
 * that the caller keeps equal to them (training's Adam does): float32 products read operands
 * inside that array from it instead of converting them. */
typedef struct {
    int precision, own_kernel, own_dkernel, threads;
    const double *mirror_of;
    const float *mirror;
    size_t mirror_n;
} nn_ctx;
nn_ctx nn_ctx_make(int precision, int threads);
/* the same settings with another thread count (a training shard's), or a float copy */
static inline nn_ctx nn_ctx_threads(const nn_ctx *cx, int threads) {
    nn_ctx c = *cx;
    c.threads = threads >= 1 ? threads : 1;
    return c;
}
static inline nn_ctx nn_ctx_mirror(const nn_ctx *cx, const double *w, const float *wf, size_t n) {
    nn_ctx c = *cx;
    c.mirror_of = wf ? w : NULL;
    c.mirror = wf;
    c.mirror_n = wf ? n : 0;
    return c;
}

/* C = alpha op(A) op(B) + beta C with BLAS's column-major conventions; computed by dgemm, or in
 * float32 (sgemm or a C kernel, result added in double) when cx->precision says so */
void nn_gemm(const nn_ctx *cx, const char *ta, const char *tb, int M, int N, int K, double alpha,
             const double *A, int lda, const double *B, int ldb, double beta, double *C, int ldc);
int nn_have_sgemm(void);
int nn_sgemm_own(int mode);  /* whether float32 products (mode 1 or 2) use nbi's kernel */
int nn_dgemm_own(void);      /* whether float64 products use nbi's kernel */
void nn_free_scratch(void);
/* nbi's single-precision product (nn/sgemm.c), column-major, tA/tB 0 or 1: op(A) (M x K)
 * packed whole into ap (nn_sgemm_a_size floats; panels p0 .. p1 - 1 of nn_sgemm_mr rows per
 * call, so threads can share the work), then any tile of c = op(A) op(B): rows i0 .. i0 + M
 * - 1 of op(A)'s M_all (i0 a multiple of nn_sgemm_mr), c's tile at c (ldc); bp holds
 * nn_sgemm_b_size floats. nn_sgemm_isa: 0 base, 1 AVX2, 2 AVX-512. */
int nn_sgemm_isa(void);
int nn_sgemm_mr(void);
size_t nn_sgemm_a_size(int M, int K);
size_t nn_sgemm_b_size(void);
void nn_sgemm_pack_a(int tA, int M, int K, const float *A, int lda, float *ap, int p0, int p1);
void nn_sgemm_tile(const float *ap, int M_all, int i0, int tB, int M, int N, int K,
                   const float *B, int ldb, float *c, int ldc, float *bp, int acc);
/* the same in double (nn/dgemm.c); in both, the tile is added to what c holds when acc */
int nn_dgemm_mr(void);
size_t nn_dgemm_a_size(int M, int K);
size_t nn_dgemm_b_size(void);
void nn_dgemm_pack_a(int tA, int M, int K, const double *A, int lda, double *ap, int p0, int p1);
void nn_dgemm_tile(const double *ap, int M_all, int i0, int tB, int M, int N, int K,
                   const double *B, int ldb, double *c, int ldc, double *bp, int acc);

void linear_forward(const nn_ctx *cx, double *out, const double *in, const double *w, const double *bias,
                    int B, int C, int OC);
void linear_backward(const nn_ctx *cx, double *din, double *dw, double *dbias, const double *dout,
                     const double *in, const double *w, int B, int C, int OC);
/* din += dout * w (the input gradient, accumulated) */
void linear_backward_input_add(const nn_ctx *cx, double *din, const double *dout, const double *w, int B, int C, int OC);
/* adds in * w^T to out (no bias): for a second input entering the same units */
void linear_accumulate(const nn_ctx *cx, double *out, const double *in, const double *w, int B, int C, int OC);

void act_forward(double *out, const double *in, size_t n, int act, int threads);
void act_forward_row(double *out, const double *in, int n, int act);
/* din = dout * act'(pre); pre is the layer input, out its output (either may be used) */
void act_backward(double *din, const double *dout, const double *pre, const double *out,
                  size_t n, int act, int threads);

/* column sums: s[o] (+)= sum_b x[b,o] in a fixed order (deterministic for any thread count) */
void colsum_add(double *s, const double *x, int B, int OC);

/* sequences are position-major, channels contiguous: (b, t, c) of B x L x C is at ((size_t)b*L + t)*C + c */
/* 1-D convolution, stride 1, 'same' zero padding (k odd); w: OC x (k*C); col: B*L*k*C (im2col, kept for backward) */
void conv1d_forward(const nn_ctx *cx, double *out, double *col, const double *in, const double *w, const double *bias,
                    int B, int L, int C, int OC, int k);
/* din (may be NULL) overwritten; dw, dbias accumulated; dcol: workspace B*L*k*C */
void conv1d_backward(const nn_ctx *cx, double *din, double *dw, double *dbias, const double *dout, const double *col,
                     const double *w, double *dcol, int B, int L, int C, int OC, int k);

/* layer norm over rows of C values (eps 1e-5); mean, rstd: N each, saved for backward */
void layernorm_forward(double *out, double *mean, double *rstd, const double *in,
                       const double *gamma, const double *beta, int N, int C);
/* din overwritten; dgamma, dbeta accumulated */
void layernorm_backward(double *din, double *dgamma, double *dbeta, const double *dout,
                        const double *in, const double *mean, const double *rstd,
                        const double *gamma, int N, int C);

/* max-pool by 2 along positions: B x L x C -> B x (L/2) x C; idx: winning input position */
void maxpool2_forward(double *out, int *idx, const double *in, int B, int L, int C);
/* din (B x L x C) overwritten */
void maxpool2_backward(double *din, const double *dout, const int *idx, int B, int L, int C);

/* one GRU layer (PyTorch's equations), h_0 = 0; in: B x T x C, out: B x T x H (every state);
 * Wih: 3H x C, Whh: 3H x H (row blocks r, z, n), bih, bhh: 3H */
size_t gru_cache_size(int B, int T, int H);
size_t gru_work_size(int B, int T, int C, int H);
void gru_forward(const nn_ctx *cx, double *out, double *cache, const double *in, const double *Wih, const double *Whh,
                 const double *bih, const double *bhh, int B, int T, int C, int H, double *work);
/* BPTT; dout: gradient wrt every state; din (may be NULL) overwritten; weight gradients accumulated */
void gru_backward(const nn_ctx *cx, double *din, double *dWih, double *dWhh, double *dbih, double *dbhh,
                  const double *dout, const double *in, const double *out, const double *cache,
                  const double *Wih, const double *Whh, int B, int T, int C, int H, double *work);

/* multi-head self-attention core (heads H, dh = D/H): qkv is B x S x 3D, each row q | k | v;
 * out (B x S x D, heads concatenated) = softmax(q k^T / sqrt(dh)) v per head over the keys j
 * with keep[b*S + j] != 0 (other keys get exactly zero weight; a query with no kept key gets 0).
 * lse: B x H x S log-sum-exp of the scores, kept for backward; scratch: B*S */
void attention_forward(double *out, double *lse, double *scratch, const double *qkv,
                       const int *keep, int B, int S, int D, int H, const nn_ctx *cx);
/* dqkv (B x S x 3D) overwritten; out and lse from attention_forward */
void attention_backward(double *dqkv, const double *dout, const double *qkv, const double *out,
                        const double *lse, const int *keep, int B, int S, int D, int H,
                        const nn_ctx *cx);
/* pooling over segments of rows (nn/segpool.c): start holds B + 1 row offsets */
void segpool_forward(double *out, double *attn, const double *k, const double *v, int ld,
                     const double *q, const int *start, int B, int Q, int D, int H, int threads);
void segpool_backward(double *dk, double *dv, double *dq, const double *dout, const double *attn,
                      const double *k, const double *v, int ld, const double *q, const int *start,
                      int B, int Q, int D, int H, double *work, int threads);
void segmean_forward(double *out, const double *x, const int *start, int B, int D);
void segmean_backward(double *dx, const double *dout, const int *start, int B, int D);
#endif
