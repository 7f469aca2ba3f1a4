/* Nearest and bilinear (align_corners=False) x2 upsampling. */
#include "nn/upsample.h"
#include "nn/nn_internal.h"

#include <stddef.h>

void upsample_nearest2x_forward(const upsample_shape *s, float *out, const float *in)
{
    const int planes = s->batch * s->c, w = s->w, ow = 2 * s->w;
#pragma omp parallel for schedule(static) if((long long)planes * s->h * s->w >= NN_PAR_MIN)
    for (int pl = 0; pl < planes; pl++) {
        const float *x = in + (size_t)pl * s->h * w;
        float *o = out + (size_t)pl * 4 * s->h * w;
        for (int y = 0; y < s->h; y++) {
            float *o0 = o + (size_t)(2 * y) * ow, *o1 = o0 + ow;
            for (int xx = 0; xx < w; xx++) {
                float v = x[(size_t)y * w + xx];
                o0[2 * xx] = o0[2 * xx + 1] = o1[2 * xx] = o1[2 * xx + 1] = v;
            }
        }
    }
}

void upsample_nearest2x_backward(const upsample_shape *s, float *d_in, const float *d_out)
{
    const int planes = s->batch * s->c, w = s->w, ow = 2 * s->w;
#pragma omp parallel for schedule(static) if((long long)planes * s->h * s->w >= NN_PAR_MIN)
    for (int pl = 0; pl < planes; pl++) {
        float *dx = d_in + (size_t)pl * s->h * w;
        const float *g = d_out + (size_t)pl * 4 * s->h * w;
        for (int y = 0; y < s->h; y++) {
            const float *g0 = g + (size_t)(2 * y) * ow, *g1 = g0 + ow;
            for (int xx = 0; xx < w; xx++)
                dx[(size_t)y * w + xx] += (g0[2 * xx] + g0[2 * xx + 1]) + (g1[2 * xx] + g1[2 * xx + 1]);
        }
    }
}

/* Source index pair and weight of output index o for a x2 upsample of length n
 * (torch: src = max(0, (o + 0.5) / 2 - 0.5)). */
static inline void lin_src(int o, int n, int *i0, int *i1, float *l1)
{
    float src = ((float)o + 0.5f) * 0.5f - 0.5f;
    if (src < 0.0f) src = 0.0f;
    int i = (int)src;
    if (i > n - 1) i = n - 1;
    *i0 = i;
    *i1 = i + 1 < n ? i + 1 : n - 1;
    *l1 = src - (float)i;
}

void upsample_bilinear2x_forward(const upsample_shape *s, float *out, const float *in)
{
    const int planes = s->batch * s->c, h = s->h, w = s->w, oh = 2 * h, ow = 2 * w;
#pragma omp parallel for schedule(static) if((long long)planes * s->h * s->w >= NN_PAR_MIN)
    for (int pl = 0; pl < planes; pl++) {
        const float *x = in + (size_t)pl * h * w;
        float *o = out + (size_t)pl * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            int y0, y1;
            float ly;
            lin_src(oy, h, &y0, &y1, &ly);
            const float *r0 = x + (size_t)y0 * w, *r1 = x + (size_t)y1 * w;
            for (int ox = 0; ox < ow; ox++) {
                int x0, x1;
                float lx;
                lin_src(ox, w, &x0, &x1, &lx);
                o[(size_t)oy * ow + ox] = (1.0f - ly) * ((1.0f - lx) * r0[x0] + lx * r0[x1]) +
                                          ly * ((1.0f - lx) * r1[x0] + lx * r1[x1]);
            }
        }
    }
}

void upsample_bilinear2x_backward(const upsample_shape *s, float *d_in, const float *d_out)
{
    const int planes = s->batch * s->c, h = s->h, w = s->w, oh = 2 * h, ow = 2 * w;
#pragma omp parallel for schedule(static) if((long long)planes * s->h * s->w >= NN_PAR_MIN)
    for (int pl = 0; pl < planes; pl++) {
        float *dx = d_in + (size_t)pl * h * w;
        const float *g = d_out + (size_t)pl * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            int y0, y1;
            float ly;
            lin_src(oy, h, &y0, &y1, &ly);
            float *r0 = dx + (size_t)y0 * w, *r1 = dx + (size_t)y1 * w;
            for (int ox = 0; ox < ow; ox++) {
                int x0, x1;
                float lx;
                lin_src(ox, w, &x0, &x1, &lx);
                float v = g[(size_t)oy * ow + ox];
                r0[x0] += (1.0f - ly) * (1.0f - lx) * v;
                r0[x1] += (1.0f - ly) * lx * v;
                r1[x0] += ly * (1.0f - lx) * v;
                r1[x1] += ly * lx * v;
            }
        }
    }
}
