/* Parameter initialisation, PyTorch-compatible in distribution (not in the random stream:
 * smoecast draws from core/rng.h PCG32, so the same seed gives the same weights on every
 * IEEE platform, but not the same numbers as torch).
 *
 * Fans follow torch.nn.init._calculate_fan_in_and_fan_out for a weight of shape
 * (d0, d1, d2, ...): fan_in = d1 * prod(d2..), fan_out = d0 * prod(d2..). That is right for
 * conv (c_out, c_in, kh, kw) and dense (out, in) weights; for a transposed conv stored as
 * (c_in, c_out, kh, kw) torch uses the same formula, so fan_in = c_out * kh * kw there too.
 *
 * torch's default for nn.Conv2d / nn.Linear / nn.ConvTranspose2d weights is
 * kaiming_uniform_(a = sqrt(5)):  gain = sqrt(2 / (1 + a^2)) = sqrt(1/3),
 *   bound = sqrt(3) * gain / sqrt(fan_in) = 1 / sqrt(fan_in)   (exactly, in real arithmetic),
 * and their biases are U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the weight's fan_in.
 * The bounds here are evaluated with torch's own expression order in double precision.
 *
 * A uniform draw is lo + (hi - lo) * u with u = rng_uniform() (53-bit), rounded to float. */
#ifndef SMOECAST_NN_INIT_H
#define SMOECAST_NN_INIT_H

#include "core/rng.h"

#include <stddef.h>

/* Fans of a weight with `ndim` dims (ndim >= 2; for ndim < 2 both are the element count). */
double init_fan_in(int ndim, const int *shape);
double init_fan_out(int ndim, const int *shape);

/* torch.nn.init.calculate_gain('relu') = sqrt(2) and ('leaky_relu', a) = sqrt(2/(1+a^2)). */
double init_gain_relu(void);
double init_gain_leaky_relu(double negative_slope);

/* Bound of kaiming_uniform_ (mode fan_in): gain * sqrt(3 / fan_in), torch's order:
 * sqrt(3) * (gain / sqrt(fan_in)). 0 when fan_in <= 0. */
double init_kaiming_bound(double gain, double fan_in);

void init_zeros(float *w, size_t n);
void init_constant(float *w, size_t n, float value);
/* U(lo, hi). init_uniform_sym(w, n, a) is U(-a, a). */
void init_uniform(float *w, size_t n, double lo, double hi, rng_t *rng);
void init_uniform_sym(float *w, size_t n, double a, rng_t *rng);

/* kaiming_uniform_ with the given gain (fan_in mode) on a weight of the given shape. */
void init_kaiming_uniform(float *w, int ndim, const int *shape, double gain, rng_t *rng);
/* torch's default conv/linear weight init (kaiming_uniform_, a = sqrt(5)). */
void init_weight_default(float *w, int ndim, const int *shape, rng_t *rng);
/* Kaiming-uniform with the ReLU gain: bound = sqrt(6 / fan_in) (used by the SMoE builder). */
void init_weight_kaiming_relu(float *w, int ndim, const int *shape, rng_t *rng);
/* torch's default bias init for a layer whose weight has fan_in `fan_in`:
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)); zeros when fan_in <= 0. */
void init_bias_default(float *b, size_t n, double fan_in, rng_t *rng);
/* BatchNorm / GroupNorm affine parameters: weight = 1, bias = 0 (either may be NULL). */
void init_norm_affine(float *weight, float *bias, size_t n);

#endif
