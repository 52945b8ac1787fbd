/* The tiles of flow/sample.c: TILE draws go through every block together, unit-major (unit
 * s of a layer at s * TILE, draw i at offset i), so every inner loop runs over the tile's
 * draws and vectorises. The block kinds' tile steps (flow/block_*.c) work on these. */
#ifndef NBI_FLOW_TILE_H
#define NBI_FLOW_TILE_H
#include <stdint.h>
#include "flow/flow.h"

#define TILE 64
#define AI static inline __attribute__((always_inline))

struct flow_block_kind;

/* one block, ready for the tiles: sorted hidden units (prepare_block), the context's
 * contributions per context row, and the products' weights in the compute type */
typedef struct {
    int d, H, layers, act, K, OD;
    const struct flow_block_kind *kind;
    int rows;                     /* context rows of this call */
    int nc;                       /* context size */
    double clamp;                 /* the kind's soft bound (flow_block_kind.clamp) */
    const int *order, *start;     /* coordinate at each step; first sorted unit of each degree */
    const double *cbase, *cout;   /* context parts, unit-major: hidden (H x rows), outputs */
    const double *bh[FLOW_MAX_LAYERS];
    const void *Win, *Wh[FLOW_MAX_LAYERS], *Wout;
    const void *Wc, *Wco;         /* context weights (sorted hidden units), for parts per tile */
    const double *b1, *bout;
} tile_block;

typedef struct {
    const int *crow;  /* context row of each lane */
    uint64_t seed, first;  /* random streams (seed, first + lane) */
    int nt;           /* lanes holding draws; the others are padding */
    double lt;        /* log temperature */
    int isa;          /* the copy of the kinds' tile steps to run (vm_isa()) */
} tile_draws;

/* One thread's scratch. o holds the outputs the current step reads (the kind's tile_rows,
 * at most max_out_rows of them, TILE each); a kind's step may use as and cum (K x TILE) and
 * rmax, sr, u, nrm, zsel, asel (TILE each) as it likes. */
typedef struct {
    double *zt, *yt, *lq, *o, *as, *cum, *rmax, *sr, *u, *nrm, *zsel, *asel;
    void *act, *tmp, *zr, *ctx;
    int *crow;
    /* one context per draw: the tile's contexts (nc x TILE) and the current block's context
     * parts of its hidden (H x TILE) and output (OD x TILE) units, computed in the tile;
     * NULL when the parts come from the call's (a few contexts shared by many draws) */
    void *ctxt, *cloc, *oloc;
} tile_scratch;
#endif
