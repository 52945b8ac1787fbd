#include <math.h>
#include "nn/nn.h"
#include "nn/vmath.h"

/* cache row (b,t) holds 4H values: r, z, n and hn = Whn h_{t-1} + bhn (the gates the backward pass needs).
 * Before the step runs, its first 3H slots hold the input projection Wih x + bih. */
size_t gru_cache_size(int B, int T, int H) { return (size_t)B * T * 4 * H; }

/* forward: the recurrent projection (B x 3H); backward: dxp (B*T x 3H), dhp (B x 3H), dh (B x H) */
size_t gru_work_size(int B, int T, int C, int H) {
    (void)C;
    return (size_t)B * T * 3 * H + (size_t)B * 4 * H;
}

/* One step's gates for one sample: cr holds the input projection (r, z, n parts), hb the
 * recurrent one (Whh h + bhh), hm h_{t-1} (may be h itself: element i is read before it is
 * written); writes h and keeps r, z, n, hn in cr. In the widest copy the CPU runs
 * (nn/vmath.h): the C library's exp and tanh are scalar calls, and were 13% of the
 * ResNet-GRU's training time. */
#define GRU_GATES(sfx, attr)                                                                  \
    attr static void gru_gates_##sfx(double *h, double *restrict cr, const double *restrict hb,\
                                     const double *hm, int H) {                               \
        _Pragma("omp simd")                                                                   \
        for (int i = 0; i < H; i++) {                                                         \
            const double r = 1.0 / (1.0 + vm_exp(-(cr[i] + hb[i])));                        \
            const double z = 1.0 / (1.0 + vm_exp(-(cr[H + i] + hb[H + i])));                \
            const double hn = hb[2 * H + i];                                                  \
            const double n = vm_tanh(cr[2 * H + i] + r * hn);                                \
            h[i] = (1.0 - z) * n + z * hm[i];                                                 \
            cr[i] = r; cr[H + i] = z; cr[2 * H + i] = n; cr[3 * H + i] = hn;                  \
        }                                                                                     \
    }
GRU_GATES(base, )
#ifdef VM_DISPATCH
GRU_GATES(avx2, VM_AVX2)
GRU_GATES(avx512, VM_AVX512)
#endif
static void gru_gates(double *h, double *cr, const double *hb, const double *hm, int H) {
#ifdef VM_DISPATCH
    const int isa = vm_isa();
    if (isa == 2) { gru_gates_avx512(h, cr, hb, hm, H); return; }
    if (isa == 1) { gru_gates_avx2(h, cr, hb, hm, H); return; }
#endif
    gru_gates_base(h, cr, hb, hm, H);
}

void gru_forward(const nn_ctx *cx, double *out, double *cache, const double *in, const double *Wih, const double *Whh,
                 const double *bih, const double *bhh, int B, int T, int C, int H, double *work) {
    const double one = 1.0, zero = 0.0;
    const int H3 = 3 * H, H4 = 4 * H, BT = B * T, TH = T * H;
    double *hp = work;   /* B x 3H: Whh h_{t-1} + bhh */
    /* input projection of all B*T rows at once, written into the first 3H slots of each cache row */
    nn_gemm(cx, "T", "N", H3, BT, C, one, Wih, C, in, C, zero, cache, H4);
    for (size_t r = 0; r < (size_t)BT; r++)
        for (int g = 0; g < H3; g++) cache[r * H4 + g] += bih[g];
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++)
            for (int g = 0; g < H3; g++) hp[(size_t)b * H3 + g] = bhh[g];
        /* h_{t-1} of sample b is row (b, t-1) of out: rows T*H apart, so no copy is needed */
        if (t > 0)
            nn_gemm(cx, "T", "N", H3, B, H, one, Whh, H, out + (size_t)(t - 1) * H, TH, one, hp, H3);
        for (int b = 0; b < B; b++) {
            double *cr = cache + ((size_t)b * T + t) * H4;
            const double *hb = hp + (size_t)b * H3;
            double *h = out + ((size_t)b * T + t) * H;
            if (t == 0) for (int i = 0; i < H; i++) h[i] = 0.0;  /* h_{-1} = 0, read in place */
            gru_gates(h, cr, hb, t > 0 ? out + ((size_t)b * T + t - 1) * H : h, H);
        }
    }
}

/* Per step, from the last: with dh = dout_t + (gradient flowing back from step t+1),
 *   dn = dh (1-z), dz = dh (h_{t-1} - n), dan = dn (1-n^2), daz = dz z (1-z), dar = dan hn r (1-r);
 * the input-side pre-activation gradient is (dar, daz, dan), the recurrent side's (dar, daz, dan r);
 * dh_{t-1} = dh z + dhp Whh and dWhh += dhp^T h_{t-1}. The input side is done in one GEMM at the end. */
void gru_backward(const nn_ctx *cx, double *din, double *dWih, double *dWhh, double *dbih, double *dbhh,
                  const double *dout, const double *in, const double *out, const double *cache,
                  const double *Wih, const double *Whh, int B, int T, int C, int H, double *work) {
    const double one = 1.0;
    const int H3 = 3 * H, H4 = 4 * H, TH = T * H;
    double *dxp = work;                            /* B*T x 3H, row (b,t) */
    double *dhp = dxp + (size_t)B * T * H3;        /* B x 3H */
    double *dh = dhp + (size_t)B * H3;             /* B x H: gradient reaching h_t from later steps */
    for (size_t e = 0; e < (size_t)B * H; e++) dh[e] = 0.0;
    for (int t = T - 1; t >= 0; t--) {
        for (int b = 0; b < B; b++) {
            const double *cr = cache + ((size_t)b * T + t) * H4;
            const double *dy = dout + ((size_t)b * T + t) * H;
            /* h_{t-1}, or at t = 0 the (bounded) row h_0 times keep = 0 */
            const double *hprev = out + ((size_t)b * T + (t > 0 ? t - 1 : 0)) * H;
            const double keep = t > 0 ? 1.0 : 0.0;
            double *dx = dxp + ((size_t)b * T + t) * H3, *dp = dhp + (size_t)b * H3;
            double *dhb = dh + (size_t)b * H;
            #pragma omp simd
            for (int i = 0; i < H; i++) {
                double r = cr[i], z = cr[H + i], n = cr[2 * H + i], hn = cr[3 * H + i];
                double g = dy[i] + dhb[i], hm = keep * hprev[i];
                double dan = g * (1.0 - z) * (1.0 - n * n);
                double daz = g * (hm - n) * z * (1.0 - z);
                double dar = dan * hn * r * (1.0 - r);
                dx[i] = dar; dx[H + i] = daz; dx[2 * H + i] = dan;
                dp[i] = dar; dp[H + i] = daz; dp[2 * H + i] = dan * r;
                dhb[i] = g * z;
            }
        }
        colsum_add(dbhh, dhp, B, H3);
        if (t > 0) {
            const double *hprev = out + (size_t)(t - 1) * H;
            nn_gemm(cx, "N", "T", H, H3, B, one, hprev, TH, dhp, H3, one, dWhh, H);
            nn_gemm(cx, "N", "N", H, B, H3, one, Whh, H, dhp, H3, one, dh, H);
        }
    }
    /* input side over all B*T rows: din = dxp Wih, dWih += dxp^T in, dbih += column sums */
    linear_backward(cx, din, dWih, dbih, dxp, in, Wih, B * T, C, H3);
}
