/* Dropout (torch semantics): in training, each element is zeroed with probability p and the
 * survivors scaled by 1/(1-p); in eval (or p == 0) it is the identity. The keep mask
 * (1 byte per element) is stored by forward for backward. Draws come from the caller's
 * rng_t (core/rng.h) in element order on one thread, so the mask depends only on the RNG
 * state, never on the thread count. Backward ACCUMULATES into d_in. */
#ifndef SMOECAST_NN_DROPOUT_H
#define SMOECAST_NN_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

/* mask: n bytes (unused when !training). out may equal in. */
void dropout_forward(float p, int training, size_t n, float *out, const float *in,
                     uint8_t *mask, rng_t *rng);
void dropout_backward(float p, int training, size_t n, float *d_in, const float *d_out,
                      const uint8_t *mask);

#endif
