/* The affine block: per coordinate j, outputs shift_j (row j) and a raw log-scale (row
 * d + j), a_j = c tanh(raw / c) with c = clamp; forward (density direction)
 * y_j = (z_j - shift_j) e^{-a_j}, so the log-density gains -a_j; inverse
 * z_j = y_j e^{a_j} + shift_j. */
#include "flow/block.h"

/* the map and its inverse, written once for training and sampling */
VM_INLINE double affine_forward(double z, double shift, double a) { return (z - shift) * vm_exp(-a); }
VM_INLINE double affine_inverse(double y, double shift, double a) { return y * vm_exp(a) + shift; }

static double affine_outputs(const flow_layout *L) { return 2.0 * L->d; }
static int affine_out_coord(const flow_layout *L, int o) { return o % L->d; }
static double affine_clamp(const flow_layout *L) { return L->clamp; }
static void affine_tile_rows(const tile_block *w, int j, int *r0, int *n, int *step) {
    *r0 = j; *n = 2; *step = w->d;
}

/* rows 0..n-1, vectorised over the rows */
AI void affine_fwd_body(const flow_layout *L, const double *o, const double *z, double *zo,
                        double lt, double *logq, int n) {
    const int d = L->d;
    (void)lt;
    for (int j = 0; j < d; j++) {
        #pragma omp simd
        for (int i = 0; i < n; i++) {
            const double a = flow_soft_clamp(o[(size_t)i * 2 * d + d + j], L->clamp);
            zo[(size_t)i * d + j] = affine_forward(z[(size_t)i * d + j], o[(size_t)i * 2 * d + j], a);
            logq[i] -= a;
        }
    }
}

/* G: dloss/dzo in, dloss/dz through the direct path out; dout: dloss/d(shift, raw) */
AI void affine_bwd_body(const flow_layout *L, const double *o, const double *z, const double *zo,
                        const double *g, double *dout, double *G, int n) {
    const int d = L->d;
    (void)z;
    for (int j = 0; j < d; j++) {
        #pragma omp simd
        for (int i = 0; i < n; i++) {
            const size_t r = (size_t)i * 2 * d, k = (size_t)i * d + j;
            const double a = flow_soft_clamp(o[r + d + j], L->clamp), e = vm_exp(-a);
            const double q = a / L->clamp;
            dout[r + j] = -G[k] * e;
            dout[r + d + j] = (-G[k] * zo[k] - g[i]) * (1.0 - q * q);
            G[k] *= e;
        }
    }
}

/* s->o: the shift, then the raw log-scale, of coordinate j for every lane */
AI void affine_tile_body(const tile_block *w, const tile_draws *td, int t, double *zj,
                         double *yj, double *lq, tile_scratch *s, int density) {
    const double c = w->clamp;
    const double *shift = s->o, *raw = s->o + TILE;
    (void)td; (void)t;
    if (density) {
        #pragma omp simd
        for (int i = 0; i < TILE; i++) {
            const double a = flow_soft_clamp(raw[i], c);
            yj[i] = affine_forward(zj[i], shift[i], a);
            lq[i] -= a;
        }
    } else {
        #pragma omp simd
        for (int i = 0; i < TILE; i++) {
            const double a = flow_soft_clamp(raw[i], c);
            zj[i] = affine_inverse(yj[i], shift[i], a);
            lq[i] -= a;
        }
    }
}

FLOW_KIND_ENTRIES(affine)

const flow_block_kind flow_block_affine = {
    "affine", 0, affine_outputs, affine_out_coord, affine_clamp, NULL, affine_tile_rows,
    FLOW_KIND_FUNCTIONS(affine)};
