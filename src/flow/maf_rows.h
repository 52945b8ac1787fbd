/* One row's maps between the blocks of flow/maf.c, included there once per target CPU:
 * ROWS(name) gives the suffixed name, ROWS_ATTR the target attribute. */

/* affine block, rows 0..n-1 (o: n x 2d, z, zo: n x d): z_out = (z - shift) e^{-a}; the
 * log-density loses the a's. Vectorised over the rows. */
ROWS_ATTR static void ROWS(affine_fwd_rows)(const flow_layout *L, const double *o,
                                            const double *z, double *zo, double *logq, int n) {
    const int d = L->d;
    for (int j = 0; j < d; j++) {
        #pragma omp simd
        for (int i = 0; i < n; i++) {
            const double a = soft_clamp(o[(size_t)i * 2 * d + d + j], L->clamp);
            zo[(size_t)i * d + j] = (z[(size_t)i * d + j] - o[(size_t)i * 2 * d + j]) * vm_exp(-a);
            logq[i] -= a;
        }
    }
}

/* mixture block: adds the log-density of the row's d coordinates */
ROWS_ATTR static void ROWS(mog_fwd_row)(const flow_layout *L, const double *o, const double *z,
                                        double lt, double *logq) {
    const int d = L->d, K = L->K;
    double s = 0.0;
    for (int j = 0; j < d; j++) s += mog_logpdf_t(o + (size_t)j * 3 * K, K, L->clamp_mix, z[j], lt);
    *logq += s;
}

/* affine block backward, rows 0..n-1: G (dloss/dz_out in, dloss/dz_in through the direct
 * path out), the outputs' gradients into dout; zo = the block's output, g = dloss/dlogq */
ROWS_ATTR static void ROWS(affine_bwd_rows)(const flow_layout *L, const double *o,
                                            const double *zo, const double *g, double *dout,
                                            double *G, int n) {
    const int d = L->d;
    for (int j = 0; j < d; j++) {
        #pragma omp simd
        for (int i = 0; i < n; i++) {
            const size_t r = (size_t)i * 2 * d, k = (size_t)i * d + j;
            const double a = soft_clamp(o[r + d + j], L->clamp), e = vm_exp(-a), q = a / L->clamp;
            dout[r + j] = -G[k] * e;
            dout[r + d + j] = (-G[k] * zo[k] - g[i]) * (1.0 - q * q);
            G[k] *= e;
        }
    }
}

/* mixture block backward: G = dloss/dz, the outputs' gradients into dout */
ROWS_ATTR static void ROWS(mog_bwd_row)(const flow_layout *L, const double *o, const double *z,
                                        double g, double *dout, double *G) {
    const int d = L->d, K = L->K;
    for (int j = 0; j < d; j++)
        G[j] = mog_backward(o + (size_t)j * 3 * K, K, L->clamp_mix, z[j], g, dout + (size_t)j * 3 * K);
}
