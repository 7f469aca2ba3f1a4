/* Elementwise activation functions and their derivatives. */
#pragma GCC optimize("no-trapping-math")
#include "nn/activation.h"
#include "nn/nn_internal.h"

#include <math.h>
#include <stdint.h>
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

/* exp(x) - 1 and exp(x) for the negative branch of ELU, in a form GCC vectorises (with
 * -fno-trapping-math, set for this file only: the code never inspects FP exception flags):
 * x = n ln2 + r, |r| <= ln2/2, expm1(r) by its Taylor polynomial to r^7 (truncation < 3e-9),
 * 2^n from the exponent bits. Relative error ~1e-7. x > 0 gives (0, 1) and x < -87 gives
 * (-1, 0): ELU only uses the pair where x <= 0. */
static inline void exp_parts(float x, float *em1, float *e)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float xc = x > 0.0f ? 0.0f : x;
    xc = xc >= -87.0f ? xc : -87.0f; /* also maps NaN to -87: the conversion below stays defined */
    float nf = (xc * 1.44269504088896341f + magic) - magic;
    float r = xc - nf * 0.693145751953125f - nf * 1.42860682030941723212e-6f;
    float p = r + r * r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
                            r * (1.0f / 720 + r * (1.0f / 5040))))));
    union { int32_t i; float f; } sc;
    sc.i = ((int32_t)nf + 127) << 23;
    float m1 = sc.f * p + (sc.f - 1.0f), ee = sc.f * p + sc.f;
    m1 = x < -87.0f ? -1.0f : m1;
    ee = x < -87.0f ? 0.0f : ee;
    m1 = x != x ? x : m1; /* NaN propagates */
    ee = x != x ? x : ee;
    *em1 = x > 0.0f ? 0.0f : m1;
    *e = x > 0.0f ? 1.0f : ee;
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
        for (long long i = 0; i < nn; i++) {
            float x = in[i], pos = x > 0.0f ? x : 0.0f, neg = x > 0.0f ? 0.0f : x;
            out[i] = pos + alpha * neg;
        }
        break;
    case ACT_ELU:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) {
            float em1, e;
            exp_parts(in[i], &em1, &e);
            float x = in[i], pos = x > 0.0f ? x : 0.0f;
            out[i] = pos + alpha * em1; /* em1 == 0 for x > 0 */
        }
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
        for (long long i = 0; i < nn; i++) {
            /* both operands loaded unconditionally so the select vectorises (a load under the
             * condition kept this loop scalar, with a branch per element) */
            const float g = d_out[i];
            d_in[i] += in[i] > 0.0f ? g : 0.0f;
        }
        break;
    case ACT_LEAKY_RELU:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) {
            float m = in[i] > 0.0f ? 1.0f : 0.0f;
            d_in[i] += d_out[i] * (m + (1.0f - m) * alpha);
        }
        break;
    case ACT_ELU:
#pragma omp parallel for schedule(static) if(nn >= NN_PAR_MIN)
        for (long long i = 0; i < nn; i++) {
            float em1, e;
            exp_parts(in[i], &em1, &e);
            float m = in[i] > 0.0f ? 1.0f : 0.0f;
            d_in[i] += d_out[i] * (m + (1.0f - m) * (alpha * e));
        }
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
