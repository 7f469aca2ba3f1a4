/* Seeded dropout with a stored keep mask. */
#include "nn/dropout.h"
#include "nn/nn_internal.h"

#include <string.h>

static float keep_scale(float p)
{
    return p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
}

void dropout_forward(float p, int training, size_t n, float *out, const float *in,
                     uint8_t *mask, rng_t *rng)
{
    if (!training || p <= 0.0f) {
        if (out != in) memcpy(out, in, n * sizeof *out);
        if (training) memset(mask, 1, n);
        return;
    }
    /* drop when u32 < p * 2^32 */
    double t = (double)p * 4294967296.0;
    uint64_t thr = t >= 4294967296.0 ? UINT64_C(4294967296) : (uint64_t)t;
    for (size_t i = 0; i < n; i++) mask[i] = (uint64_t)rng_u32(rng) >= thr;
    const float sc = keep_scale(p);
    const long long nn = (long long)n;
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
    for (long long i = 0; i < nn; i++) out[i] = mask[i] ? in[i] * sc : 0.0f;
}

void dropout_backward(float p, int training, size_t n, float *d_in, const float *d_out,
                      const uint8_t *mask)
{
    const long long nn = (long long)n;
    if (!training || p <= 0.0f) {
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) d_in[i] += d_out[i];
        return;
    }
    const float sc = keep_scale(p);
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
    for (long long i = 0; i < nn; i++) d_in[i] += mask[i] ? d_out[i] * sc : 0.0f;
}
