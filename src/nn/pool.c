/* 2x2 average and max pooling. */
#include "nn/pool.h"
#include "nn/nn_internal.h"

#include <math.h>
#include <stddef.h>

int pool_out_h(const pool_shape *s) { return s->h / 2; }
int pool_out_w(const pool_shape *s) { return s->w / 2; }

void avgpool2x2_forward(const pool_shape *s, float *out, const float *in)
{
    const int oh = s->h / 2, ow = s->w / 2, planes = s->batch * s->c;
#pragma omp parallel for schedule(static) if((long long)planes * s->h * s->w >= NN_PAR_MIN)
    for (int pl = 0; pl < planes; pl++) {
        const float *x = in + (size_t)pl * s->h * s->w;
        float *o = out + (size_t)pl * oh * ow;
        for (int y = 0; y < oh; y++) {
            const float *r0 = x + (size_t)(2 * y) * s->w, *r1 = r0 + s->w;
            for (int xx = 0; xx < ow; xx++)
                o[y * ow + xx] = 0.25f * ((r0[2 * xx] + r0[2 * xx + 1]) + (r1[2 * xx] + r1[2 * xx + 1]));
        }
    }
}

void avgpool2x2_backward(const pool_shape *s, float *d_in, const float *d_out)
{
    const int oh = s->h / 2, ow = s->w / 2, planes = s->batch * s->c;
#pragma omp parallel for schedule(static) if((long long)planes * s->h * s->w >= NN_PAR_MIN)
    for (int pl = 0; pl < planes; pl++) {
        float *dx = d_in + (size_t)pl * s->h * s->w;
        const float *g = d_out + (size_t)pl * oh * ow;
        for (int y = 0; y < oh; y++) {
            float *r0 = dx + (size_t)(2 * y) * s->w, *r1 = r0 + s->w;
            for (int xx = 0; xx < ow; xx++) {
                float v = 0.25f * g[y * ow + xx];
                r0[2 * xx] += v;
                r0[2 * xx + 1] += v;
                r1[2 * xx] += v;
                r1[2 * xx + 1] += v;
            }
        }
    }
}

/* Offset (0..3 -> (dy, dx)) of the window maximum: first max in scan order, NaN wins. */
static inline int argmax4(const float *r0, const float *r1, int j)
{
    float v[4] = {r0[j], r0[j + 1], r1[j], r1[j + 1]};
    int best = 0;
    for (int i = 1; i < 4; i++) {
        if (isnan(v[best])) break;
        if (v[i] > v[best] || isnan(v[i])) best = i;
    }
    return best;
}

void maxpool2x2_forward(const pool_shape *s, float *out, const float *in)
{
    const int oh = s->h / 2, ow = s->w / 2, planes = s->batch * s->c;
#pragma omp parallel for schedule(static) if((long long)planes * s->h * s->w >= NN_PAR_MIN)
    for (int pl = 0; pl < planes; pl++) {
        const float *x = in + (size_t)pl * s->h * s->w;
        float *o = out + (size_t)pl * oh * ow;
        for (int y = 0; y < oh; y++) {
            const float *r0 = x + (size_t)(2 * y) * s->w, *r1 = r0 + s->w;
            for (int xx = 0; xx < ow; xx++) {
                int a = argmax4(r0, r1, 2 * xx);
                o[y * ow + xx] = (a < 2 ? r0 : r1)[2 * xx + (a & 1)];
            }
        }
    }
}

void maxpool2x2_backward(const pool_shape *s, float *d_in, const float *d_out, const float *in)
{
    const int oh = s->h / 2, ow = s->w / 2, planes = s->batch * s->c;
#pragma omp parallel for schedule(static) if((long long)planes * s->h * s->w >= NN_PAR_MIN)
    for (int pl = 0; pl < planes; pl++) {
        const float *x = in + (size_t)pl * s->h * s->w;
        float *dx = d_in + (size_t)pl * s->h * s->w;
        const float *g = d_out + (size_t)pl * oh * ow;
        for (int y = 0; y < oh; y++) {
            const float *r0 = x + (size_t)(2 * y) * s->w, *r1 = r0 + s->w;
            for (int xx = 0; xx < ow; xx++) {
                int a = argmax4(r0, r1, 2 * xx);
                dx[(size_t)(2 * y + (a >> 1)) * s->w + 2 * xx + (a & 1)] += g[y * ow + xx];
            }
        }
    }
}
