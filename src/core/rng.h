/* Seeded, platform-independent random numbers (PCG32, O'Neill 2014) for initialisation,
 * dropout, shuffling, gate noise and the synthetic data. State is always explicit. */
#ifndef SMOECAST_CORE_RNG_H
#define SMOECAST_CORE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
    uint64_t inc;
} rng_t;

/* Different `stream`s with the same seed are independent sequences (e.g. one per rank-free
 * purpose: init, dropout, shuffle), so draws never depend on how work is split. */
void rng_seed(rng_t *rng, uint64_t seed, uint64_t stream);
uint32_t rng_u32(rng_t *rng);
uint32_t rng_below(rng_t *rng, uint32_t bound);   /* uniform integer in [0, bound), unbiased */
double rng_uniform(rng_t *rng);                   /* [0, 1) with 53 random bits */
double rng_normal(rng_t *rng);                    /* N(0, 1), Box-Muller without caching */
void rng_shuffle(rng_t *rng, int64_t *items, int64_t n);

#endif
