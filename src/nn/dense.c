/* Dense layer on OpenBLAS sgemm. */
#include "nn/dense.h"
#include "nn/nn_internal.h"

#include <cblas.h>
#include <stddef.h>

void dense_forward(const dense_shape *s, float *out, const float *in, const float *weight,
                   const float *bias)
{
    const int B = s->batch, n_in = s->in_features, n_out = s->out_features;
    if (bias) {
#pragma omp parallel for schedule(static) if((long long)B * n_out >= NN_PAR_MIN)
        for (int b = 0; b < B; b++)
            for (int o = 0; o < n_out; o++) out[(size_t)b * n_out + o] = bias[o];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, n_out, n_in, 1.0f, in, n_in, weight, n_in,
                bias ? 1.0f : 0.0f, out, n_out);
}

void dense_backward(const dense_shape *s, float *d_in, float *d_weight, float *d_bias,
                    const float *d_out, const float *in, const float *weight)
{
    const int B = s->batch, n_in = s->in_features, n_out = s->out_features;
    if (d_in)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, n_in, n_out, 1.0f, d_out, n_out, weight, n_in,
                    1.0f, d_in, n_in);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_out, n_in, B, 1.0f, d_out, n_out, in, n_in, 1.0f,
                d_weight, n_in);
    if (d_bias) {
#pragma omp parallel for schedule(static) if((long long)B * n_out >= NN_PAR_MIN)
        for (int o = 0; o < n_out; o++) {
            double acc = 0.0;
            for (int b = 0; b < B; b++) acc += d_out[(size_t)b * n_out + o];
            d_bias[o] += (float)acc;
        }
    }
}
