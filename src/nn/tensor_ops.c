/* Residual add and channel concat/split. */
#include "nn/tensor_ops.h"
#include "nn/nn_internal.h"

#include <string.h>

void tensor_add_forward(size_t n, float *out, const float *a, const float *b)
{
    const long long nn = (long long)n;
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
    for (long long i = 0; i < nn; i++) out[i] = a[i] + b[i];
}

static void acc(size_t n, float *dst, const float *src)
{
    const long long nn = (long long)n;
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
    for (long long i = 0; i < nn; i++) dst[i] += src[i];
}

void tensor_add_backward(size_t n, float *d_a, float *d_b, const float *d_out)
{
    if (d_a) acc(n, d_a, d_out);
    if (d_b) acc(n, d_b, d_out);
}

void channel_concat_forward(int batch, int ca, int cb, size_t hw, float *out, const float *a,
                            const float *b)
{
    const size_t na = (size_t)ca * hw, nb = (size_t)cb * hw;
    for (int i = 0; i < batch; i++) {
        memcpy(out + i * (na + nb), a + i * na, na * sizeof *out);
        memcpy(out + i * (na + nb) + na, b + i * nb, nb * sizeof *out);
    }
}

void channel_concat_backward(int batch, int ca, int cb, size_t hw, float *d_a, float *d_b,
                             const float *d_out)
{
    const size_t na = (size_t)ca * hw, nb = (size_t)cb * hw;
    for (int i = 0; i < batch; i++) {
        if (d_a) acc(na, d_a + i * na, d_out + i * (na + nb));
        if (d_b) acc(nb, d_b + i * nb, d_out + i * (na + nb) + na);
    }
}

void channel_split_forward(int batch, int ca, int cb, size_t hw, float *a, float *b,
                           const float *in)
{
    const size_t na = (size_t)ca * hw, nb = (size_t)cb * hw;
    for (int i = 0; i < batch; i++) {
        memcpy(a + i * na, in + i * (na + nb), na * sizeof *a);
        memcpy(b + i * nb, in + i * (na + nb) + na, nb * sizeof *b);
    }
}

void channel_split_backward(int batch, int ca, int cb, size_t hw, float *d_in,
                            const float *d_a, const float *d_b)
{
    const size_t na = (size_t)ca * hw, nb = (size_t)cb * hw;
    for (int i = 0; i < batch; i++) {
        if (d_a) acc(na, d_in + i * (na + nb), d_a + i * na);
        if (d_b) acc(nb, d_in + i * (na + nb) + na, d_b + i * nb);
    }
}
