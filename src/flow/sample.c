/* Sampling the flow (flow.h) in tiles of TILE draws. Each tile goes through every block,
 * unit-major (see sample_tile.h), so its activations stay in cache and every loop runs over
 * the tile's draws; each step computes only the hidden units its coordinate may see (one
 * forward pass per block instead of d). Tiles are spread over OpenMP threads; a draw's
 * random numbers come from its own stream (rng.h), so results do not depend on the thread
 * count. On x86-64 CPUs with AVX2 and FMA the tile code runs in a copy compiled for them. */
#include <math.h>
#include <string.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "nn/nn.h"
#include "nn/vmath.h"
#include "flow/made.h"
#include "flow/block.h"
#include "rng.h"

#define TILE_VBYTES 32
#define REAL double
#define REAL_BITS uint64_t
#define TS(name) name##_f64
#include "flow/sample_tile.h"
#undef REAL
#undef REAL_BITS
#undef TS
#define REAL float
#define REAL_BITS uint32_t
#define TS(name) name##_f32
#include "flow/sample_tile.h"
#undef REAL
#undef REAL_BITS
#undef TS
#undef TILE_VBYTES
#ifdef VM_DISPATCH  /* 512-bit vectors, for the AVX-512 copy */
#define TILE_VBYTES 64
#define REAL double
#define REAL_BITS uint64_t
#define TS(name) name##_f64z
#include "flow/sample_tile.h"
#undef REAL
#undef REAL_BITS
#undef TS
#define REAL float
#define REAL_BITS uint32_t
#define TS(name) name##_f32z
#include "flow/sample_tile.h"
#undef REAL
#undef REAL_BITS
#undef TS
#undef TILE_VBYTES
#endif

typedef void (*tile_fn)(const tile_block *, int, const tile_draws *, tile_scratch *);
typedef void (*parts_fn)(const tile_block *, int, int, int, tile_scratch *);
#define TILE_ENTRY(NAME, BODY, ATTR)                                                        \
    ATTR static void NAME(const tile_block *b, int nb, const tile_draws *td, tile_scratch *s) { \
        BODY(b, nb, td, s);                                                                 \
    }
TILE_ENTRY(tile_flow_f64_base, tile_flow_f64, )
TILE_ENTRY(tile_flow_f32_base, tile_flow_f32, )
TILE_ENTRY(tile_density_f64_base, tile_density_f64, )
TILE_ENTRY(tile_density_f32_base, tile_density_f32, )
typedef void (*block_fn)(const tile_block *, const tile_draws *, double *, double *, double *,
                         tile_scratch *);
#define BLOCK_ENTRY(NAME, BODY, ATTR)                                                       \
    ATTR static void NAME(const tile_block *w, const tile_draws *td, double *z, double *y,  \
                          double *lq, tile_scratch *s) {                                    \
        BODY(w, td, z, y, lq, s);                                                           \
    }
BLOCK_ENTRY(block_density_f64_base, tile_density_block_f64, )
BLOCK_ENTRY(block_density_f32_base, tile_density_block_f32, )
#define PARTS_ENTRY(NAME, BODY, ATTR)                                                       \
    ATTR static void NAME(const tile_block *b, int nb, int r0, int n, tile_scratch *s) {    \
        BODY(b, nb, r0, n, s);                                                              \
    }
PARTS_ENTRY(call_parts_f64_base, call_parts_f64, )
PARTS_ENTRY(call_parts_f32_base, call_parts_f32, )
#ifdef VM_DISPATCH
PARTS_ENTRY(call_parts_f64_avx2, call_parts_f64, VM_AVX2)
PARTS_ENTRY(call_parts_f32_avx2, call_parts_f32, VM_AVX2)
TILE_ENTRY(tile_flow_f64_avx2, tile_flow_f64, VM_AVX2)
TILE_ENTRY(tile_flow_f32_avx2, tile_flow_f32, VM_AVX2)
TILE_ENTRY(tile_density_f64_avx2, tile_density_f64, VM_AVX2)
TILE_ENTRY(tile_density_f32_avx2, tile_density_f32, VM_AVX2)
PARTS_ENTRY(call_parts_f64_avx512, call_parts_f64z, VM_AVX512)
PARTS_ENTRY(call_parts_f32_avx512, call_parts_f32z, VM_AVX512)
TILE_ENTRY(tile_flow_f64_avx512, tile_flow_f64z, VM_AVX512)
TILE_ENTRY(tile_flow_f32_avx512, tile_flow_f32z, VM_AVX512)
TILE_ENTRY(tile_density_f64_avx512, tile_density_f64z, VM_AVX512)
TILE_ENTRY(tile_density_f32_avx512, tile_density_f32z, VM_AVX512)
BLOCK_ENTRY(block_density_f64_avx2, tile_density_block_f64, VM_AVX2)
BLOCK_ENTRY(block_density_f32_avx2, tile_density_block_f32, VM_AVX2)
BLOCK_ENTRY(block_density_f64_avx512, tile_density_block_f64z, VM_AVX512)
BLOCK_ENTRY(block_density_f32_avx512, tile_density_block_f32z, VM_AVX512)
#endif

/* the tile function for sampling or density, in the product precision, for this CPU */
static tile_fn tile_function(int density, int single) {
#ifdef VM_DISPATCH
    static const tile_fn fns[3][2][2] = {
        {{tile_flow_f64_base, tile_flow_f32_base}, {tile_density_f64_base, tile_density_f32_base}},
        {{tile_flow_f64_avx2, tile_flow_f32_avx2}, {tile_density_f64_avx2, tile_density_f32_avx2}},
        {{tile_flow_f64_avx512, tile_flow_f32_avx512},
         {tile_density_f64_avx512, tile_density_f32_avx512}}};
#else
    static const tile_fn fns[1][2][2] = {
        {{tile_flow_f64_base, tile_flow_f32_base}, {tile_density_f64_base, tile_density_f32_base}}};
#endif
    return fns[vm_isa()][density][single];
}

/* the one-block density function in the product precision, for this CPU */
static block_fn block_function(int single) {
#ifdef VM_DISPATCH
    static const block_fn fns[3][2] = {{block_density_f64_base, block_density_f32_base},
                                       {block_density_f64_avx2, block_density_f32_avx2},
                                       {block_density_f64_avx512, block_density_f32_avx512}};
#else
    static const block_fn fns[1][2] = {{block_density_f64_base, block_density_f32_base}};
#endif
    return fns[vm_isa()][single];
}

/* the context parts' function in the product precision, for this CPU */
static parts_fn parts_function(int single) {
#ifdef VM_DISPATCH
    static const parts_fn fns[3][2] = {{call_parts_f64_base, call_parts_f32_base},
                                       {call_parts_f64_avx2, call_parts_f32_avx2},
                                       {call_parts_f64_avx512, call_parts_f32_avx512}};
#else
    static const parts_fn fns[1][2] = {{call_parts_f64_base, call_parts_f32_base}};
#endif
    return fns[vm_isa()][single];
}

/* doubles of one thread's scratch, each array rounded up to whole cache lines */
#define LINE(n) ((((size_t)(n)) + 7) / 8 * 8)
/* the outputs one step of a tile reads, at most (flow_block_kind.tile_rows) */
static int step_rows(const flow_layout *L) { return (L->max_out + L->d - 1) / L->d; }

/* The density runs GROUP tiles of a thread block by block (each block's weights then stay
 * in cache while they serve GROUP tiles); each tile of a group keeps its inputs z, outputs
 * y (d x TILE), log-density (TILE), context rows (TILE ints) and contexts (nc x TILE) */
#define GROUP 4
static size_t group_doubles(const flow_layout *L) {
    return 2 * LINE((size_t)L->d * TILE) + 2 * LINE(TILE) + LINE((size_t)L->nc * TILE);
}

static size_t scratch_doubles(const flow_layout *L) {
    const int H = L->hidden, R = step_rows(L), wide = H > R ? H : R;
    return 3 * LINE((size_t)L->d * TILE) + 9 * LINE(TILE) + LINE((size_t)R * TILE) +
           2 * LINE((size_t)L->K * TILE) + LINE((size_t)L->layers * H * TILE) +
           LINE((size_t)L->nc * TILE) + LINE((size_t)H * TILE) +
           LINE((size_t)L->max_out * TILE) + LINE((size_t)wide * TILE) +
           GROUP * group_doubles(L);
}

typedef struct {
    double *z, *y, *lq;
    int *crow;
    void *ctxt;
} tile_state;

/* tile g of the group state after a thread's scratch s (scratch_at) */
static tile_state group_at(const flow_layout *L, double *scratch, int g) {
    double *p = scratch + scratch_doubles(L) - (size_t)(GROUP - g) * group_doubles(L);
    tile_state t;
    t.z = p;   p += LINE((size_t)L->d * TILE);
    t.y = p;   p += LINE((size_t)L->d * TILE);
    t.lq = p;  p += LINE(TILE);
    t.crow = (int *)p;  p += LINE(TILE);
    t.ctxt = p;
    return t;
}

static tile_scratch scratch_at(const flow_layout *L, double *p) {
    tile_scratch s;
    const int H = L->hidden, R = step_rows(L);
    s.zt = p;   p += LINE((size_t)L->d * TILE);
    s.yt = p;   p += LINE((size_t)L->d * TILE);
    s.zr = p;   p += LINE((size_t)L->d * TILE);
    s.lq = p;   p += LINE(TILE);
    s.rmax = p; p += LINE(TILE);
    s.sr = p;   p += LINE(TILE);
    s.u = p;    p += LINE(TILE);
    s.nrm = p;  p += LINE(TILE);
    s.zsel = p; p += LINE(TILE);
    s.asel = p; p += LINE(TILE);
    s.ctx = p;  p += LINE(TILE);
    s.crow = (int *)p;  p += LINE(TILE);  /* TILE ints fit in TILE double slots */
    s.o = p;    p += LINE((size_t)R * TILE);
    s.as = p;   p += LINE((size_t)L->K * TILE);
    s.cum = p;  p += LINE((size_t)L->K * TILE);
    s.act = p;  p += LINE((size_t)L->layers * H * TILE);
    s.ctxt = p; p += LINE((size_t)L->nc * TILE);
    s.cloc = p; p += LINE((size_t)H * TILE);
    s.oloc = p; p += LINE((size_t)L->max_out * TILE);  /* the widest block's outputs */
    s.tmp = p;
    return s;
}

/* work: a header (the prepared blocks and where the per-call part starts), pos and start,
 * every block's sorted weights in the compute type and sorted biases, the context parts of
 * up to CTX_CHUNK rows, per-thread scratch */
static size_t header_doubles(const flow_layout *L) {
    const size_t bytes = (size_t)L->blocks * sizeof(tile_block) + sizeof(double *);
    return LINE((bytes + 7) / 8);
}

/* weights of block b's products (input, context, hidden, output, output's context) */
static size_t block_weights(const flow_layout *L, int b) {
    const size_t H = L->hidden, OD = flow_out_dim(L, b);
    return H * L->d + H * L->nc + (L->layers - 1) * H * H + OD * H + OD * L->nc;
}

/* doubles of block b once prepared: its sorted biases, then its weights (floats in float32
 * mode, two per double) */
static size_t prepared_doubles(const flow_layout *L, int b, int single) {
    const size_t nw = block_weights(L, b);
    return LINE((size_t)L->layers * L->hidden) + LINE(single ? nw / 2 + 1 : nw);
}

/* contexts whose parts are computed together: the parts of one chunk (a few MB) stay in
 * cache while its tiles read them, and the scratch does not grow with the call */
#define CTX_CHUNK 256

size_t flow_sample_work(const flow_layout *L, int B, int threads) {
    const size_t H = L->hidden, blocks = L->blocks;
    if (B > CTX_CHUNK) B = CTX_CHUNK;  /* context rows of one chunk */
    size_t prepared = 0;
    for (int b = 0; b < L->blocks; b++) prepared += prepared_doubles(L, b, 0);
    return header_doubles(L) + LINE(H + L->d + 2) + prepared +
           blocks * ((size_t)B * (H + L->max_out) + 8) + 8 +
           (size_t)(threads > 1 ? threads : 1) * scratch_doubles(L);
}

/* the rows x cols row-major matrix src to dst as type T, its rows (rpos) and/or columns
 * (cpos) in sorted unit order (NULL: as they are); returns the end of dst */
#define SORTED_COPY(T)                                                                      \
    static T *sorted_##T(T *dst, const double *src, int rows, int cols, const int *rpos,   \
                         const int *cpos) {                                                 \
        for (int r = 0; r < rows; r++) {                                                   \
            const double *sr = src + (size_t)(rpos ? rpos[r] : r) * cols;                  \
            T *dr = dst + (size_t)r * cols;                                                \
            if (cpos) for (int c = 0; c < cols; c++) dr[c] = (T)sr[cpos[c]];               \
            else for (int c = 0; c < cols; c++) dr[c] = (T)sr[c];                          \
        }                                                                                  \
        return dst + (size_t)rows * cols;                                                  \
    }
SORTED_COPY(double)
SORTED_COPY(float)
#undef SORTED_COPY

/* block b with its hidden units in degree order (pos: the unit at each sorted position, so
 * the network computes the same map), written to p (prepared_doubles): sorted biases, then
 * the product weights in the compute type. The context parts are filled in per call. */
static tile_block prepare_block(const flow_layout *L, const double *params, int b, int single,
                                const int *pos, const int *start, double *p) {
    tile_block w;
    const int H = L->hidden, d = L->d, nc = L->nc, OD = flow_out_dim(L, b);
    const made_params q = flow_block_params(L, (double *)params, b);
    w.d = d; w.H = H; w.layers = L->layers; w.act = L->act; w.K = L->K; w.OD = OD;
    w.kind = flow_kind(L, b);
    w.clamp = w.kind->clamp(L);
    w.order = L->order + (size_t)b * d;
    w.start = start;
    w.cbase = NULL; w.cout = NULL; w.nc = nc; w.bout = q.bout;
    double *bias = p;  /* b1, then bh[1..] */
    for (int l = 0; l < L->layers; l++)
        for (int s = 0; s < H; s++) bias[(size_t)l * H + s] = (l ? q.bh[l] : q.b1)[pos[s]];
    w.b1 = bias;
    for (int l = 1; l < L->layers; l++) w.bh[l] = bias + (size_t)l * H;
    p += LINE((size_t)L->layers * H);
#define COPY_WEIGHTS(T)                                                                     \
    do {                                                                                    \
        T *t = (T *)p;                                                                      \
        w.Win = t;  t = sorted_##T(t, q.Win, H, d, pos, NULL);                              \
        w.Wc = t;   t = sorted_##T(t, q.Wc, H, nc, pos, NULL);                              \
        for (int l = 1; l < L->layers; l++) { w.Wh[l] = t; t = sorted_##T(t, q.Wh[l], H, H, pos, pos); } \
        w.Wout = t; t = sorted_##T(t, q.Wout, OD, H, NULL, pos);                            \
        w.Wco = t;  sorted_##T(t, q.Wco, OD, nc, NULL, NULL);                               \
    } while (0)
    if (single) COPY_WEIGHTS(float);
    else COPY_WEIGHTS(double);
#undef COPY_WEIGHTS
    return w;
}

void flow_sample_prepare(const flow_layout *L, const double *params, double *work, const nn_ctx *cx) {
    const int threads = cx->threads;
    const int nb = L->blocks, single = cx->precision != 0;
    tile_block *blocks = (tile_block *)work;
    int *pos = (int *)(work + header_doubles(L)), *start = pos + L->hidden;
    double *p = work + header_doubles(L) + LINE(L->hidden + L->d + 2), *at[nb];
    for (int m = 0; m <= L->d; m++) start[m] = made_degree_start(L, m);
    made_sorted_units(L, pos);
    for (int b = 0; b < nb; b++) {  /* where each block goes, then the blocks in parallel */
        at[b] = p;
        p += prepared_doubles(L, b, single);
    }
    #pragma omp parallel for num_threads(threads) if (nb > 1 && L->n_params > 65536) schedule(dynamic)
    for (int b = 0; b < nb; b++) blocks[b] = prepare_block(L, params, b, single, pos, start, at[b]);
    *(double **)(blocks + nb) = p;  /* where the per-call part starts */
}

/* the prepared blocks, with room for the context parts of ctx_rows contexts when parts */
static void blocks_for_call(const flow_layout *L, int ctx_rows, int parts, double *work,
                            tile_block *blocks, double **scratch) {
    const int nb = L->blocks, H = L->hidden;
    double *part = *(double *const *)((tile_block *)work + nb);
    for (int b = 0; b < nb; b++) {
        blocks[b] = ((tile_block *)work)[b];
        blocks[b].cbase = parts ? part : NULL;
        blocks[b].cout = parts ? part + (size_t)H * ctx_rows : NULL;
        blocks[b].rows = ctx_rows;
        if (parts) part += (size_t)(H + flow_out_dim(L, b)) * ctx_rows;
    }
    *scratch = part + 8;
}

/* the tile's contexts, coordinate-major (nc x TILE), in the products' precision */
static void tile_contexts(void *dst, int single, const double *ctx, int nc, const int *crow) {
    for (int j = 0; j < nc; j++)
        for (int i = 0; i < TILE; i++) {
            const double v = ctx[(size_t)crow[i] * nc + j];
            if (single) ((float *)dst)[(size_t)j * TILE + i] = (float)v;
            else ((double *)dst)[(size_t)j * TILE + i] = v;
        }
}

/* the context parts of n contexts ctx into the blocks' call parts, TILE contexts at a time
 * through the tiles' own arithmetic (so a draw's numbers do not depend on whether its
 * tile or the call computed them) */
static void call_parts(const flow_layout *L, const tile_block *blocks, double *scratch,
                       const double *ctx, int n, const nn_ctx *cx) {
    const int threads = cx->threads;
    const int single = cx->precision != 0, ng = (n + TILE - 1) / TILE;
    const parts_fn run = parts_function(single);
    #pragma omp parallel num_threads(threads) if (ng > 1)
    {
        int me = 0;
#ifdef _OPENMP
        me = omp_get_thread_num();
#endif
        tile_scratch s = scratch_at(L, scratch + (size_t)me * scratch_doubles(L));
        #pragma omp for schedule(static)
        for (int g = 0; g < ng; g++) {
            const int r0 = g * TILE, nr = n - r0 < TILE ? n - r0 : TILE;
            for (int i = 0; i < TILE; i++) s.crow[i] = i < nr ? i : nr - 1;
            tile_contexts(s.ctxt, single, ctx + (size_t)r0 * L->nc, L->nc, s.crow);
            run(blocks, L->blocks, r0, nr, &s);
        }
    }
}

/* the log-densities of points i0 .. i0 + n - 1 of x (B x d, row-major), as run_chunk: each
 * thread takes groups of GROUP consecutive tiles and runs every block over the group's tiles
 * before the next block. A tile's numbers are those of tile_density: the same steps on the
 * same lanes, only interleaved with other tiles'. */
static void run_density(const flow_layout *L, const tile_block *blocks, double *scratch,
                        const double *ctx, int i0, int n, int c0, int per, double lt,
                        const double *x, double *logq, const nn_ctx *cx) {
    const int threads = cx->threads;
    const int d = L->d, nb = L->blocks, ntile = (n + TILE - 1) / TILE;
    const int ngroup = (ntile + GROUP - 1) / GROUP;
    const int single = cx->precision != 0, local = blocks[0].cbase == NULL;
    const block_fn run = block_function(single);
    #pragma omp parallel num_threads(threads) if (ngroup > 1)
    {
        int me = 0;
#ifdef _OPENMP
        me = omp_get_thread_num();
#endif
        double *mine = scratch + (size_t)me * scratch_doubles(L);
        tile_scratch s = scratch_at(L, mine);
        if (!local) s.cloc = s.oloc = NULL;
        /* dynamic: a group's numbers do not depend on its thread, and a thread slowed by
         * another process on its core then takes fewer groups */
        #pragma omp for schedule(dynamic)
        for (int g = 0; g < ngroup; g++) {
            const int k0 = g * GROUP, nk = ntile - k0 < GROUP ? ntile - k0 : GROUP;
            tile_state ts[GROUP];
            for (int k = 0; k < nk; k++) {
                tile_state *t = &ts[k];
                *t = group_at(L, mine, k);
                const int a = i0 + (k0 + k) * TILE, nt = i0 + n - a < TILE ? i0 + n - a : TILE;
                for (int i = 0; i < TILE; i++) t->crow[i] = (a + (i < nt ? i : nt - 1)) / per - c0;
                if (local) tile_contexts(t->ctxt, single, ctx, L->nc, t->crow);
                for (int j = 0; j < d; j++)
                    for (int i = 0; i < TILE; i++)
                        t->z[(size_t)j * TILE + i] = i < nt ? x[(size_t)(a + i) * d + j] : 0.0;
                for (int i = 0; i < TILE; i++) t->lq[i] = 0.0;
            }
            for (int b = 0; b < nb; b++)
                for (int k = 0; k < nk; k++) {
                    tile_state *t = &ts[k];
                    const int a = i0 + (k0 + k) * TILE, nt = i0 + n - a < TILE ? i0 + n - a : TILE;
                    tile_draws td = {t->crow, 0, (uint64_t)a, nt, lt, vm_isa()};
                    s.ctxt = t->ctxt;
                    run(blocks + b, &td, t->z, t->y, t->lq, &s);
                    double *tmp = t->z; t->z = t->y; t->y = tmp;  /* the next block's input */
                }
            for (int k = 0; k < nk; k++) {
                const int a = i0 + (k0 + k) * TILE, nt = i0 + n - a < TILE ? i0 + n - a : TILE;
                for (int i = 0; i < nt; i++) logq[a + i] = ts[k].lq[i];
            }
        }
    }
}

/* B points through the tiles: x (B x d, row-major) in for the density, out for sampling;
 * draws i0 .. i0 + n - 1 of the call, whose contexts are rows c0 .. of ctx (per draws each) */
static void run_chunk(const flow_layout *L, const tile_block *blocks, double *scratch,
                      const double *ctx, int i0, int n, int c0, int per, int density,
                      uint64_t seed, uint64_t index0, double lt, double *x, double *logq,
                      const nn_ctx *cx) {
    const int threads = cx->threads;
    const int d = L->d, nb = L->blocks, ntile = (n + TILE - 1) / TILE;
    const int single = cx->precision != 0, local = blocks[0].cbase == NULL;
    const tile_fn run = tile_function(density, single);
    if (density) {
        run_density(L, blocks, scratch, ctx, i0, n, c0, per, lt, x, logq, cx);
        return;
    }
    #pragma omp parallel num_threads(threads)
    {
        int me = 0;
#ifdef _OPENMP
        me = omp_get_thread_num();
#endif
        tile_scratch s = scratch_at(L, scratch + (size_t)me * scratch_doubles(L));
        if (!local) s.cloc = s.oloc = NULL;
        #pragma omp for schedule(static)
        for (int k = 0; k < ntile; k++) {
            const int a = i0 + k * TILE, nt = i0 + n - a < TILE ? i0 + n - a : TILE;
            for (int i = 0; i < TILE; i++) s.crow[i] = (a + (i < nt ? i : nt - 1)) / per - c0;
            tile_draws td = {s.crow, seed, index0 + (uint64_t)a, nt, lt, vm_isa()};
            if (local) tile_contexts(s.ctxt, single, ctx, L->nc, s.crow);
            if (density)
                for (int j = 0; j < d; j++)
                    for (int i = 0; i < TILE; i++)
                        s.zt[(size_t)j * TILE + i] = i < nt ? x[(size_t)(a + i) * d + j] : 0.0;
            run(blocks, nb, &td, &s);
            for (int i = 0; i < nt; i++) {
                if (!density)
                    for (int j = 0; j < d; j++) x[(size_t)(a + i) * d + j] = s.zt[(size_t)j * TILE + i];
                if (logq) logq[a + i] = s.lq[i];
            }
        }
    }
}

/* the draws in chunks of up to CTX_CHUNK contexts: each chunk's context parts, then its
 * tiles (a draw's result does not depend on the chunks: its lanes, random stream and
 * context part are its own) */
static void run_tiles(const flow_layout *L, const double *ctx, int ctx_rows, int B, int density,
                      uint64_t seed, uint64_t index0, double tau, double *x, double *logq,
                      double *work, const nn_ctx *cx) {
    const int nb = L->blocks, per = B / ctx_rows;
    const double lt = log(tau);
    tile_block blocks[nb];
    double *scratch;
    /* one context per draw: each tile computes its contexts' parts block by block, in cache
     * (the call's parts would be read once each from memory) */
    const int parts = !(per == 1 && ctx_rows > 1);
    const int chunk = parts ? CTX_CHUNK : ctx_rows;  /* no call parts: no memory per context */
    for (int c0 = 0; c0 < ctx_rows; c0 += chunk) {
        const int n_ctx = ctx_rows - c0 < chunk ? ctx_rows - c0 : chunk;
        const double *cc = ctx + (size_t)c0 * L->nc;
        blocks_for_call(L, n_ctx, parts, work, blocks, &scratch);
        if (parts) call_parts(L, blocks, scratch, cc, n_ctx, cx);
        run_chunk(L, blocks, scratch, cc, c0 * per, n_ctx * per, c0, per, density, seed, index0,
                  lt, x, logq, cx);
    }
}

void flow_sample(const flow_layout *L, const double *ctx, int ctx_rows, int B, uint64_t seed,
                 uint64_t index0, double tau, double *x, double *logq, double *work,
                 const nn_ctx *cx) {
    run_tiles(L, ctx, ctx_rows, B, 0, seed, index0, tau, x, logq, work, cx);
}

void flow_log_prob(const flow_layout *L, const double *x, const double *ctx, int ctx_rows, int B,
                   double tau, double *logq, double *work, const nn_ctx *cx) {
    run_tiles(L, ctx, ctx_rows, B, 1, 0, 0, tau, (double *)x, logq, work, cx);
}
