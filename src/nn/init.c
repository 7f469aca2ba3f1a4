/* Parameter initialisation (PyTorch-compatible distributions, PCG32 stream). */
#include "nn/init.h"

#include <math.h>
#include <string.h>

static double receptive_field(int ndim, const int *shape)
{
    double r = 1.0;
    for (int d = 2; d < ndim; d++) r *= shape[d];
    return r;
}

double init_fan_in(int ndim, const int *shape)
{
    if (ndim < 2) {
        double n = 1.0;
        for (int d = 0; d < ndim; d++) n *= shape[d];
        return n;
    }
    return shape[1] * receptive_field(ndim, shape);
}

double init_fan_out(int ndim, const int *shape)
{
    if (ndim < 2) return init_fan_in(ndim, shape);
    return shape[0] * receptive_field(ndim, shape);
}

double init_gain_relu(void)
{
    return sqrt(2.0);
}

double init_gain_leaky_relu(double negative_slope)
{
    return sqrt(2.0 / (1.0 + negative_slope * negative_slope));
}

double init_kaiming_bound(double gain, double fan_in)
{
    if (!(fan_in > 0)) return 0.0;
    double std = gain / sqrt(fan_in);
    return sqrt(3.0) * std;
}

void init_zeros(float *w, size_t n)
{
    if (n) memset(w, 0, n * sizeof *w);
}

void init_constant(float *w, size_t n, float value)
{
    for (size_t i = 0; i < n; i++) w[i] = value;
}

void init_uniform(float *w, size_t n, double lo, double hi, rng_t *rng)
{
    double span = hi - lo;
    for (size_t i = 0; i < n; i++) w[i] = (float)(lo + span * rng_uniform(rng));
}

void init_uniform_sym(float *w, size_t n, double a, rng_t *rng)
{
    init_uniform(w, n, -a, a, rng);
}

static size_t numel_of(int ndim, const int *shape)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    return n;
}

void init_kaiming_uniform(float *w, int ndim, const int *shape, double gain, rng_t *rng)
{
    double bound = init_kaiming_bound(gain, init_fan_in(ndim, shape));
    init_uniform_sym(w, numel_of(ndim, shape), bound, rng);
}

void init_weight_default(float *w, int ndim, const int *shape, rng_t *rng)
{
    init_kaiming_uniform(w, ndim, shape, init_gain_leaky_relu(sqrt(5.0)), rng);
}

void init_weight_kaiming_relu(float *w, int ndim, const int *shape, rng_t *rng)
{
    init_kaiming_uniform(w, ndim, shape, init_gain_relu(), rng);
}

void init_bias_default(float *b, size_t n, double fan_in, rng_t *rng)
{
    if (!(fan_in > 0)) {
        init_zeros(b, n);
        return;
    }
    double bound = 1.0 / sqrt(fan_in);
    init_uniform_sym(b, n, bound, rng);
}

void init_norm_affine(float *weight, float *bias, size_t n)
{
    if (weight) init_constant(weight, n, 1.0f);
    if (bias) init_zeros(bias, n);
}
