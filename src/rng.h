/* Counter-based randomness: a stream is keyed by (seed, index), so a sample's draws do not
 * depend on which thread computes it. SplitMix64 (Steele et al. 2014) as the mixer. */
#ifndef NBI_RNG_H
#define NBI_RNG_H
#include <stdint.h>
#include <math.h>

typedef struct { uint64_t s; } rng_t;

static inline uint64_t rng_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static inline rng_t rng_stream(uint64_t seed, uint64_t index) {
    rng_t r; r.s = rng_mix(seed + 0x9E3779B97F4A7C15ULL * (index + 1)); return r;
}
static inline uint64_t rng_next(rng_t *r) { return rng_mix(r->s += 0x9E3779B97F4A7C15ULL); }
/* uniform on (0, 1), never exactly 0 or 1 */
static inline double rng_unif(rng_t *r) { return ((rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }
static inline double rng_norm(rng_t *r) {
    double u1 = rng_unif(r), u2 = rng_unif(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
#endif
