/* Branch-free elementary functions written so that loops over them vectorise (the C
 * library's are scalar calls that keep branches for errno and special cases): used by the
 * sampling tiles (flow/sample.c) and the training's mixture and activation layers. */
#ifndef NBI_VMATH_H
#define NBI_VMATH_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VM_INLINE static inline __attribute__((always_inline))

/* a if the mask (all ones or all zeros, from vm_mask) is set, else b. Written on the bits:
 * with trapping math (the default) the compiler keeps a branch for a floating-point select,
 * and a loop with a branch does not vectorise. All bit arithmetic here is unsigned, whose
 * shifts and wrap-around are defined (a signed left shift out of range is undefined). */
VM_INLINE uint64_t vm_mask(int cond) { return (uint64_t)0 - (uint64_t)(cond != 0); }
VM_INLINE double vm_select(uint64_t mask, double a, double b) {
    uint64_t ab, bb;
    memcpy(&ab, &a, sizeof ab);
    memcpy(&bb, &b, sizeof bb);
    ab = (ab & mask) | (bb & ~mask);
    memcpy(&a, &ab, sizeof a);
    return a;
}
VM_INLINE double vm_max(double a, double b) { return vm_select(vm_mask(a > b), a, b); }

/* c[0] + c[1] x + ... + c[n-1] x^(n-1) by Horner's rule, unrolled (n <= 16) so that the
 * loops around it vectorise (GCC keeps a loop nest with an inner loop scalar) */
VM_INLINE double vm_poly(double x, const double *c, int n) {
    double p = c[n - 1];
    #pragma GCC unroll 16
    for (int k = n - 2; k >= 0; k--) p = p * x + c[k];
    return p;
}
static const double EXP_TAYLOR[14] = {  /* 1 / k! */
    1.0, 1.0, 1.0 / 2.0, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0,
    1.0 / 40320.0, 1.0 / 362880.0, 1.0 / 3628800.0, 1.0 / 39916800.0, 1.0 / 479001600.0,
    1.0 / 6227020800.0};
static const double ATANH_SERIES[10] = {  /* 1 / (2k + 1) */
    1.0, 1.0 / 3.0, 1.0 / 5.0, 1.0 / 7.0, 1.0 / 9.0, 1.0 / 11.0, 1.0 / 13.0, 1.0 / 15.0,
    1.0 / 17.0, 1.0 / 19.0};
static const double COS_TAYLOR[11] = {  /* (-1)^k / (2k)! */
    1.0, -1.0 / 2.0, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40320.0, -1.0 / 3628800.0,
    1.0 / 479001600.0, -1.0 / 87178291200.0, 1.0 / 20922789888000.0,
    -1.0 / 6402373705728000.0, 1.0 / 2432902008176640000.0};

/* e^x within about 1 ulp, written so that loops over it vectorise: e^x = 2^k e^r with
 * k = round(x / ln 2), |r| <= ln(2) / 2, e^r by its Taylor polynomial to r^13 (remainder
 * below 4e-18), and 2^k added to the exponent bits. 0 below -700, e^700 above 700; NaN
 * stays NaN. */
VM_INLINE double vm_exp(double x) {
    const double shift = 0x1.8p52;  /* adding it rounds to an integer kept in the low bits */
    const uint64_t under = vm_mask(x < -700.0);
    double xc = vm_select(vm_mask(x > 700.0), 700.0, vm_select(under, -700.0, x));
    double kd = xc * 1.4426950408889634 + shift, k = kd - shift;
    double r = (xc - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    double p = vm_poly(r, EXP_TAYLOR, 14);
    uint64_t kb, pb;
    memcpy(&kb, &kd, sizeof kb);
    memcpy(&pb, &p, sizeof pb);
    pb = (pb + (kb << 52)) & ~under;  /* k in the exponent (k < 0 wraps modulo 2^64: right) */
    memcpy(&p, &pb, sizeof p);
    return p + (xc - xc);  /* NaN in, NaN out */
}

/* log x for x > 0 (finite, normal; NaN stays NaN), vectorisable: x = m 2^e with m in [sqrt(1/2), sqrt(2)),
 * log m = 2 atanh(f), f = (m - 1) / (m + 1), by its series to f^19 (|f| < 0.172: remainder
 * below 1e-17) */
VM_INLINE double vm_log(double x) {
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    uint64_t eb = (b >> 52) & 0x7ff, mb = (b & 0xfffffffffffffULL) | 0x3ff0000000000000ULL;
    double m, e;
    memcpy(&m, &mb, sizeof m);
    const uint64_t big = vm_mask(m > 1.4142135623730951);
    m = vm_select(big, 0.5 * m, m);
    eb += big & 1;
    uint64_t ebits = eb | 0x4330000000000000ULL;  /* the double 2^52 + eb */
    memcpy(&e, &ebits, sizeof e);
    e -= 4503599627370496.0 + 1023.0;
    const double f = (m - 1.0) / (m + 1.0), f2 = f * f;
    const double p = vm_poly(f2, ATANH_SERIES, 10);
    return e * 0.6931471805599453 + 2.0 * f * p + (x - x);  /* NaN and inf give NaN */
}

/* cos(2 pi u) for u in [0, 1], vectorisable: folded to cos(x), x = 2 pi w in [0, pi / 2],
 * by its Taylor series to x^20 (remainder below 2e-17) */
VM_INLINE double vm_cos_2pi(double u) {
    double w = fabs(u - 0.5);                 /* cos(2 pi u) = -cos(2 pi w) */
    const uint64_t far = vm_mask(w > 0.25);  /* cos(2 pi w) = -cos(2 pi (1/2 - w)) */
    w = vm_select(far, 0.5 - w, w);
    const double x = 6.283185307179586 * w;
    const double p = vm_poly(x * x, COS_TAYLOR, 11);
    return vm_select(far, p, -p);
}

/* sqrt y for normal y > 0, vectorisable (the library's sqrt keeps a branch for errno):
 * the exponent halved on the bits (within 4%), then 4 Newton steps (below 1 ulp) */
VM_INLINE double vm_sqrt(double y) {
    uint64_t b;
    memcpy(&b, &y, sizeof b);
    b = 0x1FF7A3BEA91D9B1BULL + (b >> 1);
    double r;
    memcpy(&r, &b, sizeof r);
    for (int k = 0; k < 4; k++) r = 0.5 * (r + y / r);
    return r;
}

/* tanh through vm_exp: sign(x) (1 - e^-2|x|) / (1 + e^-2|x|) */
VM_INLINE double vm_tanh(double x) {
    double e = vm_exp(-2.0 * fabs(x));
    return copysign((1.0 - e) / (1.0 + e), x);
}

/* Chebyshev coefficients of the Mills ratio's series (vm_pnorm), fitted by least squares
 * to R's pnorm / dnorm at 40,000 Chebyshev nodes of [0, 20] (relative error below 5e-14) */
static const double MILLS_CHEB[23] = {
    0.89084287083195823, 0.35940355492247161, 0.010135974239661678, -0.0072968338845497633,
    2.2955967790457961e-05, 0.00023850413082037204, -2.9373393014176519e-05,
    -5.592960586898904e-06, 2.3162868865598903e-06, -1.8435154734724312e-07,
    -8.0101172553587183e-08, 2.8965808004219274e-08, -2.7138306323927734e-09,
    -1.0043928661946592e-09, 4.5029160259970567e-10, -6.7881679420793817e-11,
    -9.0152557254250905e-12, 7.4698967515012388e-12, -1.8143221181381262e-12,
    7.7181511846178521e-14, 1.0604152185651495e-13, -4.354429948867543e-14,
    7.903285548710998e-15};

/* The standard normal cdf Phi(x), vectorisable (the C library's erf is a scalar call with
 * branches): with z = |x|, 1 - Phi(z) = phi(z) M(z), M the Mills ratio. For z <= 20,
 * M(z) = t S(u) with t = 1 / (1 + z / 2) and S a Chebyshev series in u, the map of t from
 * [t(20), 1] to [-1, 1]; beyond, M's asymptotic series 1/z (1 - 1/z^2 + 3/z^4 - ...) to
 * the 13!! term (its error there is below 1e-14). Both are computed and one selected, so
 * there is no branch. Relative error of the smaller tail about 1e-13 until it underflows. */
VM_INLINE double vm_pnorm(double x) {
    const double z = fabs(x), t20 = 1.0 / 11.0;
    const double zc = vm_select(vm_mask(z > 20.0), 20.0, z);
    const double t = 1.0 / (1.0 + 0.5 * zc), u = (2.0 * t - (1.0 + t20)) / (1.0 - t20);
    double b1 = 0.0, b2 = 0.0;  /* Clenshaw's recurrence */
    #pragma GCC unroll 24
    for (int k = 22; k >= 1; k--) {
        const double b0 = 2.0 * u * b1 - b2 + MILLS_CHEB[k];
        b2 = b1;
        b1 = b0;
    }
    const double m_series = t * (u * b1 - b2 + MILLS_CHEB[0]);
    const double za = vm_select(vm_mask(z > 20.0), z, 20.0), s = 1.0 / (za * za);
    const double m_asym =
        (1.0 - s * (1.0 - 3.0 * s * (1.0 - 5.0 * s * (1.0 - 7.0 * s * (1.0 - 9.0 * s *
        (1.0 - 11.0 * s * (1.0 - 13.0 * s))))))) / za;
    const double m = vm_select(vm_mask(z > 20.0), m_asym, m_series);
    const double q = 0.3989422804014327 * vm_exp(-0.5 * z * z) * m;
    return vm_select(vm_mask(x > 0.0), 1.0 - q, q);
}
/* GELU, x Phi(x), and its derivative Phi(x) + x phi(x) */
VM_INLINE double vm_gelu(double x) { return x * vm_pnorm(x); }
VM_INLINE double vm_gelu_grad(double x) {
    return vm_pnorm(x) + x * 0.3989422804014327 * vm_exp(-0.5 * x * x);
}

/* x86-64 with GCC: the same code compiled for AVX2 + FMA, used when the CPU has them, and
 * for AVX-512 (512-bit vectors), used when the CPU (and OS) have avx512f */
#if defined(__GNUC__) && defined(__x86_64__)
#define VM_DISPATCH 1
#define VM_AVX2 __attribute__((target("avx2,fma")))
#define VM_AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif

/* the widest copy this CPU runs: 0 base, 1 AVX2 + FMA, 2 AVX-512, capped by the environment
 * variable NBI_ISA ("base", "avx2"; read once) so that every copy can be tested and
 * sanitised on one machine; found once per file (an idempotent store, so a race between
 * threads is harmless) */
static inline int vm_isa(void) {
#ifdef VM_DISPATCH
    static int isa = -1;
    if (isa < 0) {
        __builtin_cpu_init();
        int have = !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 0
                   : __builtin_cpu_supports("avx512f") ? 2 : 1;
        const char *cap = getenv("NBI_ISA");
        if (cap && strcmp(cap, "base") == 0) have = 0;
        else if (cap && strcmp(cap, "avx2") == 0 && have > 1) have = 1;
        isa = have;
    }
    return isa;
#else
    return 0;
#endif
}
static inline int vm_have_avx2(void) { return vm_isa() >= 1; }

#endif
