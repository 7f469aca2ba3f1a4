/* PCG-XSH-RR 64/32. Normal deviates use Box-Muller with libm's log/cos/sin: results are
 * identical on every IEEE platform with a correctly rounded libm (glibc is). */
#include "core/rng.h"

#include <math.h>

void rng_seed(rng_t *rng, uint64_t seed, uint64_t stream)
{
    rng->state = 0u;
    rng->inc = (stream << 1u) | 1u;
    rng_u32(rng);
    rng->state += seed;
    rng_u32(rng);
}

uint32_t rng_u32(rng_t *rng)
{
    uint64_t old = rng->state;
    rng->state = old * 6364136223846793005ULL + rng->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

uint32_t rng_below(rng_t *rng, uint32_t bound)
{
    if (bound == 0) return 0;
    uint32_t threshold = (uint32_t)(-bound) % bound;
    for (;;) {
        uint32_t r = rng_u32(rng);
        if (r >= threshold) return r % bound;
    }
}

double rng_uniform(rng_t *rng)
{
    uint64_t hi = rng_u32(rng) >> 5, lo = rng_u32(rng) >> 6; /* 27 + 26 = 53 bits */
    return (double)(hi * 67108864u + lo) * (1.0 / 9007199254740992.0);
}

double rng_normal(rng_t *rng)
{
    double u1 = 1.0 - rng_uniform(rng); /* (0, 1]: log never sees 0 */
    double u2 = rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void rng_shuffle(rng_t *rng, int64_t *items, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(rng, (uint32_t)(i + 1));
        int64_t t = items[i];
        items[i] = items[j];
        items[j] = t;
    }
}
