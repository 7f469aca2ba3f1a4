/* Elementwise activation functions and their derivatives. */
#include "nn/activation.h"
#include "nn/nn_internal.h"

#include <math.h>
#include <string.h>

static const char *const names[] = {"identity", "relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid"};

int activation_parse(const char *name, act_kind *kind)
{
    if (!name) return -1;
    if (strcmp(name, "none") == 0) {
        *kind = ACT_IDENTITY;
        return 0;
    }
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++) {
        if (strcmp(name, names[i]) == 0) {
            *kind = (act_kind)i;
            return 0;
        }
    }
    return -1;
}

const char *activation_name(act_kind kind)
{
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

float activation_default_alpha(act_kind kind)
{
    return kind == ACT_LEAKY_RELU ? 0.01f : kind == ACT_ELU ? 1.0f : 0.0f;
}

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT2PI 0.39894228040143267794

void activation_forward(act_kind kind, float alpha, size_t n, float *out, const float *in)
{
    const long long nn = (long long)n;
    switch (kind) {
    case ACT_IDENTITY:
        if (out != in) memcpy(out, in, n * sizeof *out);
        break;
    case ACT_RELU:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
        break;
    case ACT_LEAKY_RELU:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) out[i] = in[i] > 0.0f ? in[i] : alpha * in[i];
        break;
    case ACT_ELU:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) out[i] = in[i] > 0.0f ? in[i] : alpha * expm1f(in[i]);
        break;
    case ACT_GELU:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++)
            out[i] = 0.5f * in[i] * (1.0f + erff(in[i] * (float)INV_SQRT2));
        break;
    case ACT_TANH:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) out[i] = tanhf(in[i]);
        break;
    case ACT_SIGMOID:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) out[i] = 1.0f / (1.0f + expf(-in[i]));
        break;
    }
}

void activation_backward(act_kind kind, float alpha, size_t n, float *d_in, const float *d_out,
                         const float *in, const float *out)
{
    const long long nn = (long long)n;
    switch (kind) {
    case ACT_IDENTITY:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) d_in[i] += d_out[i];
        break;
    case ACT_RELU:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) d_in[i] += in[i] > 0.0f ? d_out[i] : 0.0f;
        break;
    case ACT_LEAKY_RELU:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) d_in[i] += in[i] > 0.0f ? d_out[i] : alpha * d_out[i];
        break;
    case ACT_ELU:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++)
            d_in[i] += in[i] > 0.0f ? d_out[i] : d_out[i] * alpha * expf(in[i]);
        break;
    case ACT_GELU:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) {
            float x = in[i];
            float cdf = 0.5f * (1.0f + erff(x * (float)INV_SQRT2));
            float pdf = (float)INV_SQRT2PI * expf(-0.5f * x * x);
            d_in[i] += d_out[i] * (cdf + x * pdf);
        }
        break;
    case ACT_TANH:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) d_in[i] += d_out[i] * (1.0f - out[i] * out[i]);
        break;
    case ACT_SIGMOID:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) d_in[i] += d_out[i] * out[i] * (1.0f - out[i]);
        break;
    }
}
