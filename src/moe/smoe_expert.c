/* Sparse SMoE expert evaluation (see smoe_expert.h): padded NHWC copy of the input, then one
 * dot product of length K*C_in per filter row for each selected (sample, rank, pixel). */
#include "moe/smoe_expert.h"

#include <string.h>

#include "moe/moe_param.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define MOE_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define MOE_CLONES
#endif

/* Threads for a kernel call: 1 below ~1 MFLOP, where a parallel region costs more than it saves. */
static int threads_for(const smoe_expert_shape *s)
{
    double work = 2.0 * s->batch * s->h * s->w * s->k * s->c_in * s->kernel * s->kernel;
    return work < 1e6 ? 1 : moe_threads();
}

static inline int hp_of(const smoe_expert_shape *s) { return s->h + 2 * (s->kernel / 2); }
static inline int wp_of(const smoe_expert_shape *s) { return s->w + 2 * (s->kernel / 2); }

size_t smoe_expert_workspace_floats(const smoe_expert_shape *s)
{
    size_t padded = (size_t)s->batch * hp_of(s) * wp_of(s) * s->c_in;
    size_t wsize = (size_t)s->n_experts * s->kernel * s->kernel * s->c_in;
    /* xp, dxp, wt, per-thread dwt */
    return 2 * padded + wsize + (size_t)MOE_MAX_THREADS * wsize + 64;
}

/* Source coordinate of padded position (hp, wp) under the pad mode, or -1 (zero). */
static int pad_src(const smoe_expert_shape *s, int hp, int wp, int *sh, int *sw)
{
    int P = s->kernel / 2;
    int h = hp - P, w = wp - P;
    if (s->pad == PAD_REPLICATE) {
        if (h < 0) h = 0;
        if (h >= s->h) h = s->h - 1;
        if (w < 0) w = 0;
        if (w >= s->w) w = s->w - 1;
    } else {
        if (h < 0 || h >= s->h) return -1;
        if (s->pad == PAD_PERIODIC_LON) {
            w = ((w % s->w) + s->w) % s->w;
        } else if (w < 0 || w >= s->w) {
            return -1;
        }
    }
    *sh = h;
    *sw = w;
    return 0;
}

static void fill_padded(const smoe_expert_shape *s, float *xp, const float *in)
{
    const int C = s->c_in, H = s->h, W = s->w, P = s->kernel / 2;
    const int Hp = hp_of(s), Wp = wp_of(s);
    const int nt = threads_for(s);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < s->batch; b++) {
        float *xb = xp + (size_t)b * Hp * Wp * C;
        const float *ib = in + (size_t)b * C * H * W;
        for (int h = 0; h < H; h++) {
            for (int c = 0; c < C; c++) {
                const float *src = ib + ((size_t)c * H + h) * W;
                float *dst = xb + ((size_t)(h + P) * Wp + P) * C + c;
                for (int w = 0; w < W; w++) dst[(size_t)w * C] = src[w];
            }
        }
        for (int hp = 0; hp < Hp; hp++) {
            for (int wp = 0; wp < Wp; wp++) {
                if (hp >= P && hp < H + P && wp >= P && wp < W + P) continue;
                float *dst = xb + ((size_t)hp * Wp + wp) * C;
                int sh, sw;
                if (pad_src(s, hp, wp, &sh, &sw) < 0) {
                    memset(dst, 0, (size_t)C * sizeof *dst);
                } else {
                    memcpy(dst, xb + ((size_t)(sh + P) * Wp + sw + P) * C, (size_t)C * sizeof *dst);
                }
            }
        }
    }
}

/* wt[e][ky][kx][c] = weight[e][c][ky][kx] */
static void transpose_weight(const smoe_expert_shape *s, float *wt, const float *weight)
{
    const int C = s->c_in, K = s->kernel;
    for (int e = 0; e < s->n_experts; e++)
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < K; ky++)
                for (int kx = 0; kx < K; kx++)
                    wt[(((size_t)e * K + ky) * K + kx) * C + c] =
                        weight[(((size_t)e * C + c) * K + ky) * K + kx];
}

MOE_CLONES
static float dot_rows(const float *a, const float *b, int n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
    float s = 0;
    for (; i < n; i++) s += a[i] * b[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

MOE_CLONES
static void axpy2(float d, const float *x, float *dw, const float *w, float *dx, int n)
{
    for (int i = 0; i < n; i++) {
        dw[i] += d * x[i];
        dx[i] += d * w[i];
    }
}

MOE_CLONES
static void axpy1(float d, const float *x, float *y, int n)
{
    for (int i = 0; i < n; i++) y[i] += d * x[i];
}

void smoe_expert_forward(const smoe_expert_shape *s, float *esel, const int32_t *idx,
                         const float *in, const float *weight, float *workspace)
{
    const int C = s->c_in, H = s->h, W = s->w, K = s->kernel, k = s->k;
    const int Hp = hp_of(s), Wp = wp_of(s);
    const size_t HW = (size_t)H * W;
    const int row = K * C;
    float *xp = workspace;
    float *wt = xp + 2 * (size_t)s->batch * Hp * Wp * C;
    fill_padded(s, xp, in);
    transpose_weight(s, wt, weight);
    const int nt = threads_for(s);
    const int rows = s->batch * H;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int bh = 0; bh < rows; bh++) {
        const int b = bh / H, h = bh % H;
        const float *xb = xp + (size_t)b * Hp * Wp * C;
        for (int w = 0; w < W; w++) {
            const size_t p = (size_t)h * W + w;
            for (int j = 0; j < k; j++) {
                const size_t o = ((size_t)b * k + j) * HW + p;
                const int e = idx ? idx[o] : j;
                const float *we = wt + (size_t)e * K * row;
                float acc = 0;
                for (int ky = 0; ky < K; ky++)
                    acc += dot_rows(xb + ((size_t)(h + ky) * Wp + w) * C, we + (size_t)ky * row, row);
                esel[o] = acc;
            }
        }
    }
}

void smoe_expert_backward(const smoe_expert_shape *s, float *d_in, float *d_weight,
                          const float *d_esel, const int32_t *idx, const float *in,
                          const float *weight, float *workspace)
{
    const int C = s->c_in, H = s->h, W = s->w, K = s->kernel, k = s->k, P = K / 2;
    const int Hp = hp_of(s), Wp = wp_of(s);
    const size_t HW = (size_t)H * W;
    const int row = K * C;
    const size_t padded = (size_t)s->batch * Hp * Wp * C;
    const size_t wsize = (size_t)s->n_experts * K * row;
    float *xp = workspace;
    float *dxp = xp + padded;
    float *wt = dxp + padded;
    float *dwt = wt + wsize;
    fill_padded(s, xp, in);
    transpose_weight(s, wt, weight);
    const int nt = threads_for(s);
    memset(dwt, 0, (size_t)nt * wsize * sizeof *dwt);
    if (d_in) memset(dxp, 0, padded * sizeof *dxp);
    /* Samples are split across threads so that each thread owns its part of dxp; the weight
     * gradient goes to per-thread copies reduced below. */
#pragma omp parallel num_threads(nt)
    {
#ifdef _OPENMP
        int tid = omp_get_thread_num();
#else
        int tid = 0;
#endif
        float *mydw = dwt + (size_t)tid * wsize;
#pragma omp for schedule(static)
        for (int b = 0; b < s->batch; b++) {
            const float *xb = xp + (size_t)b * Hp * Wp * C;
            float *dxb = dxp + (size_t)b * Hp * Wp * C;
            for (int h = 0; h < H; h++) {
                for (int w = 0; w < W; w++) {
                    const size_t p = (size_t)h * W + w;
                    for (int j = 0; j < k; j++) {
                        const size_t o = ((size_t)b * k + j) * HW + p;
                        const float d = d_esel[o];
                        if (d == 0.0f) continue;
                        const int e = idx ? idx[o] : j;
                        for (int ky = 0; ky < K; ky++) {
                            const size_t xo = ((size_t)(h + ky) * Wp + w) * C;
                            float *dw = mydw + ((size_t)e * K + ky) * row;
                            if (d_in)
                                axpy2(d, xb + xo, dw, wt + ((size_t)e * K + ky) * row, dxb + xo, row);
                            else
                                axpy1(d, xb + xo, dw, row);
                        }
                    }
                }
            }
        }
    }
    for (int t = 1; t < nt; t++) axpy1(1.0f, dwt + (size_t)t * wsize, dwt, (int)wsize);
    for (int e = 0; e < s->n_experts; e++)
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < K; ky++)
                for (int kx = 0; kx < K; kx++)
                    d_weight[(((size_t)e * C + c) * K + ky) * K + kx] +=
                        dwt[(((size_t)e * K + ky) * K + kx) * C + c];
    if (!d_in) return;
    /* Fold the padded NHWC gradient back onto the NCHW input under the pad mode. */
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < s->batch; b++) {
        float *dxb = dxp + (size_t)b * Hp * Wp * C;
        float *db = d_in + (size_t)b * C * HW;
        for (int hp = 0; hp < Hp; hp++) {
            for (int wp = 0; wp < Wp; wp++) {
                if (hp >= P && hp < H + P && wp >= P && wp < W + P) continue;
                int sh, sw;
                if (pad_src(s, hp, wp, &sh, &sw) < 0) continue;
                axpy1(1.0f, dxb + ((size_t)hp * Wp + wp) * C,
                      dxb + ((size_t)(sh + P) * Wp + sw + P) * C, C);
            }
        }
        for (int h = 0; h < H; h++) {
            for (int c = 0; c < C; c++) {
                const float *src = dxb + ((size_t)(h + P) * Wp + P) * C + c;
                float *dst = db + ((size_t)c * H + h) * W;
                for (int w = 0; w < W; w++) dst[w] += src[(size_t)w * C];
            }
        }
    }
}

void smoe_expert_dense_forward(const smoe_expert_shape *s, float *e, const float *in,
                               const float *weight)
{
    const int C = s->c_in, H = s->h, W = s->w, K = s->kernel, N = s->n_experts;
    const smoe_expert_shape *sp = s;
    for (int b = 0; b < s->batch; b++)
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++) {
                    double acc = 0;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < K; ky++)
                            for (int kx = 0; kx < K; kx++) {
                                int sh, sw;
                                if (pad_src(sp, h + ky, w + kx, &sh, &sw) < 0) continue;
                                acc += (double)weight[(((size_t)n * C + c) * K + ky) * K + kx] *
                                       in[(((size_t)b * C + c) * H + sh) * W + sw];
                            }
                    e[(((size_t)b * N + n) * H + h) * W + w] = (float)acc;
                }
}
