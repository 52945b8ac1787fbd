/* One tile of draws through every block of the flow, inverting each block coordinate by
 * coordinate. The weight products, biases and activations of hidden units run in REAL
 * (double, or float in float32 mode; REAL_BITS: the integer of its size); the mixture and
 * affine arithmetic in double. Included by sample.c once per REAL; TS(name) names this
 * instance's functions. Arrays are unit-major over the tile: unit
 * s of a layer at s * TILE, draw i of the tile at offset i, so every inner loop runs over
 * TILE consecutive draws and vectorises. */

/* out (n x TILE) = the first K columns of w (n rows, row stride ldw) times in (K x TILE):
 * six (long products) or four output units by 2 vectors of draws held in 12 or 8 vector
 * registers, so each load of `in` feeds six or four multiply-adds (GCC vector extensions;
 * split into halves without AVX; TILE_VBYTES bytes a vector: 32, or 64 for AVX-512). Every
 * output is the same chain of multiply-adds over k whichever way the units are grouped and
 * whichever order the groups run in. */
typedef REAL TS(vec) __attribute__((vector_size(TILE_VBYTES)));

/* units j .. j + 5 of out at draws t0 .. t0 + 2 VL - 1 */
static inline __attribute__((always_inline))
void TS(dense6)(REAL *restrict out, const REAL *restrict w, int ldw, const REAL *restrict in,
                int j, int t0, int K) {
    enum { VL = TILE_VBYTES / sizeof(REAL) };  /* draws per vector */
    const REAL *w0 = w + (size_t)j * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw,
               *w4 = w3 + ldw, *w5 = w4 + ldw;
    TS(vec) a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0},
            a30 = {0}, a31 = {0}, a40 = {0}, a41 = {0}, a50 = {0}, a51 = {0}, x0, x1;
    for (int k = 0; k < K; k++) {
        memcpy(&x0, in + (size_t)k * TILE + t0, sizeof x0);
        memcpy(&x1, in + (size_t)k * TILE + t0 + VL, sizeof x1);
        a00 += w0[k] * x0; a01 += w0[k] * x1;
        a10 += w1[k] * x0; a11 += w1[k] * x1;
        a20 += w2[k] * x0; a21 += w2[k] * x1;
        a30 += w3[k] * x0; a31 += w3[k] * x1;
        a40 += w4[k] * x0; a41 += w4[k] * x1;
        a50 += w5[k] * x0; a51 += w5[k] * x1;
    }
    REAL *o = out + (size_t)j * TILE + t0;
    memcpy(o, &a00, sizeof a00); memcpy(o + VL, &a01, sizeof a01);
    memcpy(o + TILE, &a10, sizeof a10); memcpy(o + TILE + VL, &a11, sizeof a11);
    memcpy(o + 2 * TILE, &a20, sizeof a20); memcpy(o + 2 * TILE + VL, &a21, sizeof a21);
    memcpy(o + 3 * TILE, &a30, sizeof a30); memcpy(o + 3 * TILE + VL, &a31, sizeof a31);
    memcpy(o + 4 * TILE, &a40, sizeof a40); memcpy(o + 4 * TILE + VL, &a41, sizeof a41);
    memcpy(o + 5 * TILE, &a50, sizeof a50); memcpy(o + 5 * TILE + VL, &a51, sizeof a51);
}

/* units j .. j + 3 of out at draws t0 .. t0 + 2 VL - 1 */
static inline __attribute__((always_inline))
void TS(dense4)(REAL *restrict out, const REAL *restrict w, int ldw, const REAL *restrict in,
                int j, int t0, int K) {
    enum { VL = TILE_VBYTES / sizeof(REAL) };
    const REAL *w0 = w + (size_t)j * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
    TS(vec) a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0},
            a30 = {0}, a31 = {0}, x0, x1;
    for (int k = 0; k < K; k++) {
        memcpy(&x0, in + (size_t)k * TILE + t0, sizeof x0);
        memcpy(&x1, in + (size_t)k * TILE + t0 + VL, sizeof x1);
        a00 += w0[k] * x0; a01 += w0[k] * x1;
        a10 += w1[k] * x0; a11 += w1[k] * x1;
        a20 += w2[k] * x0; a21 += w2[k] * x1;
        a30 += w3[k] * x0; a31 += w3[k] * x1;
    }
    REAL *o = out + (size_t)j * TILE + t0;
    memcpy(o, &a00, sizeof a00); memcpy(o + VL, &a01, sizeof a01);
    memcpy(o + TILE, &a10, sizeof a10); memcpy(o + TILE + VL, &a11, sizeof a11);
    memcpy(o + 2 * TILE, &a20, sizeof a20); memcpy(o + 2 * TILE + VL, &a21, sizeof a21);
    memcpy(o + 3 * TILE, &a30, sizeof a30); memcpy(o + 3 * TILE + VL, &a31, sizeof a31);
}

static inline __attribute__((always_inline))
void TS(dense)(REAL *restrict out, const REAL *restrict w, int ldw, const REAL *restrict in,
               int n, int K) {
    enum { VL = TILE_VBYTES / sizeof(REAL) };
    /* twelve accumulators hide the multiply-adds' latency better once K is long enough to
     * pay for the extra loads of the weights (about 10% faster at K = 256, slower at 64);
     * one group of six fewer when that leaves groups of four, not single units, after them
     * (32 units: 4 x 6 + 2 x 4, not 5 x 6 + 2 x 1) */
    int n6 = K >= 128 ? n / 6 : 0;
    if (n6 > 0 && (n - 6 * n6) % 4 >= 2) n6--;
    const int n4 = (n - 6 * n6) / 4, j1 = 6 * n6 + 4 * n4;
    if ((size_t)K * TILE * sizeof(REAL) > 32768)
        /* `in` larger than the level-1 cache: a strip of 2 VL draws (K x 2 VL) at a time
         * stays there while every unit's weights pass */
        for (int t0 = 0; t0 < TILE; t0 += 2 * VL) {
            for (int j = 0; j < 6 * n6; j += 6) TS(dense6)(out, w, ldw, in, j, t0, K);
            for (int j = 6 * n6; j < j1; j += 4) TS(dense4)(out, w, ldw, in, j, t0, K);
        }
    else {
        for (int j = 0; j < 6 * n6; j += 6)
            for (int t0 = 0; t0 < TILE; t0 += 2 * VL) TS(dense6)(out, w, ldw, in, j, t0, K);
        for (int j = 6 * n6; j < j1; j += 4)
            for (int t0 = 0; t0 < TILE; t0 += 2 * VL) TS(dense4)(out, w, ldw, in, j, t0, K);
    }
    for (int j = j1; j < n; j++) {  /* the last units one at a time, 4 vectors of draws */
        const REAL *wj = w + (size_t)j * ldw;
        for (int t0 = 0; t0 < TILE; t0 += 4 * VL) {
            TS(vec) a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, x0, x1, x2, x3;
            for (int k = 0; k < K; k++) {
                const REAL *x = in + (size_t)k * TILE + t0;
                memcpy(&x0, x, sizeof x0); memcpy(&x1, x + VL, sizeof x1);
                memcpy(&x2, x + 2 * VL, sizeof x2); memcpy(&x3, x + 3 * VL, sizeof x3);
                a0 += wj[k] * x0; a1 += wj[k] * x1; a2 += wj[k] * x2; a3 += wj[k] * x3;
            }
            REAL *o = out + (size_t)j * TILE + t0;
            memcpy(o, &a0, sizeof a0); memcpy(o + VL, &a1, sizeof a1);
            memcpy(o + 2 * VL, &a2, sizeof a2); memcpy(o + 3 * VL, &a3, sizeof a3);
        }
    }
}

/* out = the activation of in + add, one row of TILE: on a product's output (REAL), so in
 * float32 mode the bias is added in float (the result is rounded to float for the next
 * product anyway). */
static inline __attribute__((always_inline))
void TS(activate)(REAL *restrict out, const REAL *restrict in, double add, int act) {
    const REAL b = (REAL)add;
    switch (act) {
    case ACT_RELU:
        #pragma omp simd
        for (int t = 0; t < TILE; t++) {
            REAL v = in[t] + b;
            REAL_BITS vb;  /* v, or +0 unless v > 0: on the bits, see vm_select */
            memcpy(&vb, &v, sizeof vb);
            vb &= -(REAL_BITS)(v > 0);
            memcpy(&out[t], &vb, sizeof vb);
        }
        break;
    case ACT_TANH:
        #pragma omp simd
        for (int t = 0; t < TILE; t++) out[t] = (REAL)vm_tanh((double)in[t] + add);
        break;
    default:
        #pragma omp simd
        for (int t = 0; t < TILE; t++) out[t] = (REAL)vm_gelu((double)in[t] + add);
    }
}

/* c (TILE) = row u of a unit-major context part (u x rows: the block's cbase or cout) at
 * each lane's context row; the rows of a tile ascend: all one row, or consecutive rows
 * (one context per draw), or a general gather */
static inline __attribute__((always_inline))
void TS(context_row)(REAL *restrict c, const double *part, int rows, int u, const int *crow) {
    const double *base = part + (size_t)u * rows;
    if (crow[0] == crow[TILE - 1]) {
        const REAL c0 = (REAL)base[crow[0]];
        #pragma omp simd
        for (int t = 0; t < TILE; t++) c[t] = c0;
    } else if (crow[TILE - 1] - crow[0] == TILE - 1) {
        const double *b0 = base + crow[0];
        #pragma omp simd
        for (int t = 0; t < TILE; t++) c[t] = (REAL)b0[t];
    } else {
        for (int t = 0; t < TILE; t++) c[t] = (REAL)base[crow[t]];
    }
}

/* the context parts of block w for the tile's own contexts (s->ctxt, nc x TILE), biases
 * included: hidden units into s->cloc (H x TILE), outputs into s->oloc (OD x TILE) */
static inline __attribute__((always_inline))
void TS(tile_context)(const tile_block *w, tile_scratch *s) {
    REAL *cl = (REAL *)s->cloc, *ol = (REAL *)s->oloc;
    const REAL *ct = (const REAL *)s->ctxt;
    if (w->nc > 0) {
        TS(dense)(cl, (const REAL *)w->Wc, w->nc, ct, w->H, w->nc);
        TS(dense)(ol, (const REAL *)w->Wco, w->nc, ct, w->OD, w->nc);
    } else {
        memset(cl, 0, (size_t)w->H * TILE * sizeof(REAL));
        memset(ol, 0, (size_t)w->OD * TILE * sizeof(REAL));
    }
    for (int u = 0; u < w->H; u++) {
        const REAL b = (REAL)w->b1[u];
        #pragma omp simd
        for (int t = 0; t < TILE; t++) cl[(size_t)u * TILE + t] += b;
    }
    for (int o = 0; o < w->OD; o++) {
        const REAL b = (REAL)w->bout[o];
        #pragma omp simd
        for (int t = 0; t < TILE; t++) ol[(size_t)o * TILE + t] += b;
    }
}

/* the context parts of contexts r0 .. r0 + n - 1 (the first n lanes of s->ctxt) for every
 * block, into the blocks' call parts (cbase, cout: unit-major, w->rows per unit) */
static inline __attribute__((always_inline))
void TS(call_parts)(const tile_block *blocks, int nb, int r0, int n, tile_scratch *s) {
    for (int b = 0; b < nb; b++) {
        const tile_block *w = blocks + b;
        TS(tile_context)(w, s);
        const REAL *cl = (const REAL *)s->cloc, *ol = (const REAL *)s->oloc;
        double *cb = (double *)w->cbase, *co = (double *)w->cout;
        for (int u = 0; u < w->H; u++)
            for (int i = 0; i < n; i++)
                cb[(size_t)u * w->rows + r0 + i] = (double)cl[(size_t)u * TILE + i];
        for (int o = 0; o < w->OD; o++)
            for (int i = 0; i < n; i++)
                co[(size_t)o * w->rows + r0 + i] = (double)ol[(size_t)o * TILE + i];
    }
}

/* the hidden units of degree m in every layer of block w, from the tile's inputs zt (d x
 * TILE) whose coordinates of rank < m are final: exactly the units step m can compute */
static inline __attribute__((always_inline))
void TS(hidden_degree)(const tile_block *w, int m, const double *zt, const int *crow,
                       tile_scratch *s) {
    const int H = w->H, d = w->d;
    const int s0 = w->start[m], n = w->start[m + 1] - s0;
    REAL *act = (REAL *)s->act, *tmp = (REAL *)s->tmp;
    /* layer 0: the masked inputs' product, plus the context part of the lane's row */
    REAL *zr = (REAL *)s->zr;
    #pragma omp simd
    for (int i = 0; i < d * TILE; i++) zr[i] = (REAL)zt[i];
    TS(dense)(tmp, (const REAL *)w->Win + (size_t)s0 * d, d, zr, n, d);
    for (int u = 0; u < n; u++) {
        REAL *out = act + (size_t)(s0 + u) * TILE, *in = tmp + (size_t)u * TILE;
        if (s->cloc) {  /* the tile's own context parts */
            const REAL *c = (const REAL *)s->cloc + (size_t)(s0 + u) * TILE;
            #pragma omp simd
            for (int t = 0; t < TILE; t++) in[t] += c[t];
            TS(activate)(out, in, 0.0, w->act);
        } else if (crow[0] == crow[TILE - 1]) {  /* one context row for the whole tile */
            TS(activate)(out, in, w->cbase[(size_t)(s0 + u) * w->rows + crow[0]], w->act);
        } else {
            REAL *c = (REAL *)s->ctx;
            TS(context_row)(c, w->cbase, w->rows, s0 + u, crow);
            #pragma omp simd
            for (int t = 0; t < TILE; t++) in[t] += c[t];
            TS(activate)(out, in, 0.0, w->act);
        }
    }
    for (int l = 1; l < w->layers; l++) {
        const REAL *in = act + (size_t)(l - 1) * H * TILE;
        REAL *out = act + (size_t)l * H * TILE;
        TS(dense)(tmp, (const REAL *)w->Wh[l] + (size_t)s0 * H, H, in, n, s0 + n);
        for (int u = 0; u < n; u++)
            TS(activate)(out + (size_t)(s0 + u) * TILE, tmp + (size_t)u * TILE, w->bh[l][s0 + u],
                         w->act);
    }
}

/* o (nr x TILE, double) = rows r0, r0 + step, ... of Wout over the first P sorted units of
 * the last layer, plus the context's part cout */
static inline __attribute__((always_inline))
void TS(output_rows)(const tile_block *w, int P, int r0, int nr, int step, const int *crow,
                     tile_scratch *s) {
    const int H = w->H;
    REAL *tmp = (REAL *)s->tmp;
    const REAL *h = (const REAL *)s->act + (size_t)(w->layers - 1) * H * TILE;
    TS(dense)(tmp, (const REAL *)w->Wout + (size_t)r0 * H, step * H, h, nr, P);
    for (int r = 0; r < nr; r++) {
        const REAL *in = tmp + (size_t)r * TILE;
        double *o = s->o + (size_t)r * TILE;
        REAL *c = (REAL *)s->ctx;
        if (s->oloc) c = (REAL *)s->oloc + (size_t)(r0 + r * step) * TILE;
        else TS(context_row)(c, w->cout, w->rows, r0 + r * step, crow);
        #pragma omp simd
        for (int t = 0; t < TILE; t++) o[t] = (double)in[t] + (double)c[t];
    }
}

/* the d steps of block w on one tile. Sampling (density = 0): zt (d x TILE) becomes the
 * block's input, solved coordinate by coordinate from its output yt (affine blocks) or
 * drawn (the mixture block). Density: zt is the input, yt receives the output. lq (TILE)
 * accumulates the log-density either way. */
static inline __attribute__((always_inline))
void TS(block_steps)(const tile_block *w, const tile_draws *td, double *zt, double *yt,
                     double *lq, tile_scratch *s, int density) {
    const int d = w->d;
    const flow_tile_step step = w->kind->tile[td->isa];  /* its kind's step, this CPU's copy */
    if (!density) memset(zt, 0, (size_t)d * TILE * sizeof(double));
    if (s->cloc) TS(tile_context)(w, s);
    for (int t = 0; t < d; t++) {
        const int j = w->order[t];
        double *zj = zt + (size_t)j * TILE, *yj = yt + (size_t)j * TILE;
        int r0, nr, stride;
        w->kind->tile_rows(w, j, &r0, &nr, &stride);
        TS(hidden_degree)(w, t, zt, td->crow, s);
        TS(output_rows)(w, w->start[t + 1], r0, nr, stride, td->crow, s);
        step(w, td, t, zj, yj, lq, s, density);
    }
}

/* the whole flow on one tile: the mixture block first, then the affine blocks in reverse */
static inline __attribute__((always_inline))
void TS(tile_flow)(const tile_block *blocks, int nb, const tile_draws *td, tile_scratch *s) {
    double *z = s->zt, *y = s->yt;
    #pragma omp simd
    for (int t = 0; t < TILE; t++) s->lq[t] = 0.0;
    for (int b = nb - 1; b >= 0; b--) {
        double *tmp = y; y = z; z = tmp;  /* y: block b's output; z: its input, solved for */
        TS(block_steps)(blocks + b, td, z, y, s->lq, s, 0);
    }
    if (z != s->zt) memcpy(s->zt, z, (size_t)blocks[0].d * TILE * sizeof(double));
}

/* block w of the density on one tile: its input z (d x TILE) to its output y; lq (TILE)
 * accumulates the log-density */
static inline __attribute__((always_inline))
void TS(tile_density_block)(const tile_block *w, const tile_draws *td, double *z, double *y,
                            double *lq, tile_scratch *s) {
    TS(block_steps)(w, td, z, y, lq, s, 1);
}

/* log q of the tile's points (s->zt on entry) into s->lq: blocks 0, 1, ... in order */
static inline __attribute__((always_inline))
void TS(tile_density)(const tile_block *blocks, int nb, const tile_draws *td, tile_scratch *s) {
    double *z = s->zt, *y = s->yt;
    #pragma omp simd
    for (int t = 0; t < TILE; t++) s->lq[t] = 0.0;
    for (int b = 0; b < nb; b++) {
        TS(block_steps)(blocks + b, td, z, y, s->lq, s, 1);
        double *tmp = z; z = y; y = tmp;  /* the output is the next block's input */
    }
}
