/* The kinds of block of the conditional MAF (flow.h). Every block is a MADE network
 * (made.c) with outputs per coordinate; its kind says what they mean: a bijection of each
 * coordinate onto the next block's input (an affine block), or the density that ends the
 * flow (a terminal block: the mixture of Gaussians). Everything that depends on a kind is in
 * its file, flow/block_<name>.c, written once for training (rows) and sampling (tiles).
 *
 * A new kind is one file that defines `const flow_block_kind flow_block_<name>` (its bodies
 * written once as always-inline functions, FLOW_KIND_ENTRIES compiling them for each CPU
 * copy) and one entry X(<name>) in FLOW_BLOCK_KINDS below. A block's kind comes from the
 * spec (`spec$flow$kinds`, the kinds' numbers) or, by default, from flow_layout_init: the
 * first kind for every block but the last, the mixture for the last. */
#ifndef NBI_FLOW_BLOCK_H
#define NBI_FLOW_BLOCK_H
#include "flow/flow.h"
#include "flow/tile.h"
#include "nn/vmath.h"

/* the registered kinds, in the order of their numbers */
#define FLOW_BLOCK_KINDS X(affine) X(mog)

#define X(name) FLOW_KIND_##name,
enum { FLOW_BLOCK_KINDS FLOW_N_KINDS };
#undef X

#define FLOW_ISAS 3  /* base, AVX2 + FMA, AVX-512: indexed by vm_isa() */

/* training over n rows, outputs o (n x OD) at the block's inputs z (n x d): a bijective
 * kind writes the next block's inputs zo (n x d) and adds its log-determinant to logq; a
 * terminal one adds the log-density of z, its base tempered by lt = log tau (zo unused) */
typedef void (*flow_rows_fwd)(const flow_layout *L, const double *o, const double *z,
                              double *zo, double lt, double *logq, int n);
/* its backward: g (n) = dloss/dlogq; G (n x d): dloss/dzo in (bijective), dloss/dz through
 * the direct path out; dout (n x OD): dloss/do out */
typedef void (*flow_rows_bwd)(const flow_layout *L, const double *o, const double *z,
                              const double *zo, const double *g, double *dout, double *G, int n);
/* one step of a tile, coordinate j = w->order[t], with its outputs (tile_rows) in s->o:
 * density 1: zj is the input; a bijective kind writes the output yj, a terminal one adds
 * nothing but its log-density; density 0 (sampling): a bijective kind solves zj from yj,
 * a terminal one draws zj (streams from td). lq (TILE) accumulates the log-density. */
typedef void (*flow_tile_step)(const tile_block *w, const tile_draws *td, int t, double *zj,
                               double *yj, double *lq, tile_scratch *s, int density);

typedef struct flow_block_kind {
    const char *name;
    int terminal;
    /* MADE outputs of a block (in double: the layout checks the size), and the coordinate
     * output o belongs to (the masks: it may see hidden units of degree <= its rank) */
    double (*outputs)(const flow_layout *L);
    int (*out_coord)(const flow_layout *L, int o);
    double (*clamp)(const flow_layout *L);   /* the soft bound it uses */
    void (*init_bias)(const flow_layout *L, double *bout);  /* NULL: zero biases */
    /* the outputs coordinate j's tile step reads: rows r0, r0 + step, ... (n of them, at
     * most outputs / d: the tiles' scratch holds that many) */
    void (*tile_rows)(const tile_block *w, int j, int *r0, int *n, int *step);
    flow_rows_fwd fwd[FLOW_ISAS];
    flow_rows_bwd bwd[FLOW_ISAS];
    flow_tile_step tile[FLOW_ISAS];
} flow_block_kind;

#define X(name) extern const flow_block_kind flow_block_##name;
FLOW_BLOCK_KINDS
#undef X
extern const flow_block_kind *const flow_block_kinds[FLOW_N_KINDS];

static inline const flow_block_kind *flow_kind(const flow_layout *L, int b) {
    return flow_block_kinds[L->kind[b]];
}

/* soft clamp: c tanh(raw / c) lies in (-c, c) and is the identity near 0 (both kinds bound
 * their log-scales so) */
VM_INLINE double flow_soft_clamp(double raw, double c) { return c * vm_tanh(raw / c); }

/* The per-CPU copies of a kind's row and tile functions, from its always-inline bodies
 * P##_fwd_body, P##_bwd_body and P##_tile_body (no target attribute: inlined into each
 * copy, they are compiled for its CPU). The rows run the AVX2 copy on AVX-512 CPUs too, as
 * the training maps always have; the tiles have a 512-bit copy. */
#define FLOW_KIND_ROWS(P, ISA, ATTR)                                                         \
    ATTR static void P##_fwd_##ISA(const flow_layout *L, const double *o, const double *z,   \
                                   double *zo, double lt, double *logq, int n) {              \
        P##_fwd_body(L, o, z, zo, lt, logq, n);                                              \
    }                                                                                        \
    ATTR static void P##_bwd_##ISA(const flow_layout *L, const double *o, const double *z,   \
                                   const double *zo, const double *g, double *dout,          \
                                   double *G, int n) {                                       \
        P##_bwd_body(L, o, z, zo, g, dout, G, n);                                            \
    }
#define FLOW_KIND_TILE(P, ISA, ATTR)                                                         \
    ATTR static void P##_tile_##ISA(const tile_block *w, const tile_draws *td, int t,        \
                                    double *zj, double *yj, double *lq, tile_scratch *s,     \
                                    int density) {                                           \
        P##_tile_body(w, td, t, zj, yj, lq, s, density);                                     \
    }
#ifdef VM_DISPATCH
#define FLOW_KIND_ENTRIES(P)                                                                 \
    FLOW_KIND_ROWS(P, base, ) FLOW_KIND_ROWS(P, avx2, VM_AVX2)                               \
    FLOW_KIND_TILE(P, base, ) FLOW_KIND_TILE(P, avx2, VM_AVX2) FLOW_KIND_TILE(P, avx512, VM_AVX512)
#define FLOW_KIND_FUNCTIONS(P)                                                               \
    {P##_fwd_base, P##_fwd_avx2, P##_fwd_avx2}, {P##_bwd_base, P##_bwd_avx2, P##_bwd_avx2},  \
    {P##_tile_base, P##_tile_avx2, P##_tile_avx512}
#else
#define FLOW_KIND_ENTRIES(P) FLOW_KIND_ROWS(P, base, ) FLOW_KIND_TILE(P, base, )
#define FLOW_KIND_FUNCTIONS(P)                                                               \
    {P##_fwd_base, P##_fwd_base, P##_fwd_base}, {P##_bwd_base, P##_bwd_base, P##_bwd_base},  \
    {P##_tile_base, P##_tile_base, P##_tile_base}
#endif
#endif
