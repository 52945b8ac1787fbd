/* One row's maps between the blocks of flow/maf.c, included there once per target CPU:
 * ROWS(name) gives the suffixed name, ROWS_ATTR the target attribute. */

/* affine block: z_out = (z - shift) e^{-a}; the log-density loses the a's */
ROWS_ATTR static void ROWS(affine_fwd_row)(const flow_layout *L, const double *o,
                                           const double *z, double *zo, double *logq) {
    const int d = L->d;
    double ld = 0.0;
    for (int j = 0; j < d; j++) {
        const double a = soft_clamp(o[d + j], L->clamp);
        zo[j] = (z[j] - o[j]) * vm_exp(-a);
        ld -= a;
    }
    *logq += ld;
}

/* mixture block: adds the log-density of the row's d coordinates */
ROWS_ATTR static void ROWS(mog_fwd_row)(const flow_layout *L, const double *o, const double *z,
                                        double lt, double *logq) {
    const int d = L->d, K = L->K;
    double s = 0.0;
    for (int j = 0; j < d; j++) s += mog_logpdf_t(o + (size_t)j * 3 * K, K, L->clamp_mix, z[j], lt);
    *logq += s;
}

/* affine block backward: G (dloss/dz_out in, dloss/dz_in through the direct path out),
 * the outputs' gradients into dout; zo = the block's output, g = dloss/dlogq */
ROWS_ATTR static void ROWS(affine_bwd_row)(const flow_layout *L, const double *o,
                                           const double *zo, double g, double *dout, double *G) {
    const int d = L->d;
    for (int j = 0; j < d; j++) {
        const double a = soft_clamp(o[d + j], L->clamp), e = vm_exp(-a), q = a / L->clamp;
        dout[j] = -G[j] * e;
        dout[d + j] = (-G[j] * zo[j] - g) * (1.0 - q * q);
        G[j] *= e;
    }
}

/* mixture block backward: G = dloss/dz, the outputs' gradients into dout */
ROWS_ATTR static void ROWS(mog_bwd_row)(const flow_layout *L, const double *o, const double *z,
                                        double g, double *dout, double *G) {
    const int d = L->d, K = L->K;
    for (int j = 0; j < d; j++)
        G[j] = mog_backward(o + (size_t)j * 3 * K, K, L->clamp_mix, z[j], g, dout + (size_t)j * 3 * K);
}
