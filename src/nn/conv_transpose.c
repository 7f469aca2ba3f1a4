/* conv_transpose: the adjoint of conv2d's im2col mapping, with OpenBLAS sgemm.
 *
 * Threads follow conv2d: with T = min(nn threads, batch) > 1 the samples are split into T
 * contiguous blocks, one per OpenMP thread, and every sgemm runs single-threaded; each thread
 * has its own column buffer and (backward) its own weight-gradient buffer, summed in thread
 * order afterwards. Alternating multi-threaded OpenBLAS calls with OpenMP loops instead made
 * the two thread pools spin against each other: on 2 cores the U-Net's transposed
 * convolutions ran 10x slower with 2 threads than with 1. */
#include "nn/conv_transpose.h"
#include "nn/nn_internal.h"

#include "nn/conv2d.h"
#include "nn/threads.h"

#include <cblas.h>
#include <string.h>

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define CT_PAR_MIN_MACS (1L << 18)

int conv_transpose_out_h(const conv_transpose_shape *s)
{
    return (s->h - 1) * s->stride - 2 * s->padding + s->kernel + s->output_padding;
}

int conv_transpose_out_w(const conv_transpose_shape *s)
{
    return (s->w - 1) * s->stride - 2 * s->padding + s->kernel + s->output_padding;
}

int conv_transpose_shape_valid(const conv_transpose_shape *s)
{
    return s->batch > 0 && s->c_in > 0 && s->h > 0 && s->w > 0 && s->c_out > 0 &&
           s->kernel > 0 && s->stride > 0 && s->padding >= 0 && s->output_padding >= 0 &&
           s->output_padding < s->stride && conv_transpose_out_h(s) > 0 &&
           conv_transpose_out_w(s) > 0;
}

static int ct_threads(const conv_transpose_shape *s)
{
    long macs = (long)s->batch * s->c_in * s->c_out * s->kernel * s->kernel * s->h * s->w;
    if (macs < CT_PAR_MIN_MACS) return 1;
    int t = nn_get_threads();
    if (t > s->batch) t = s->batch;
    return t < 1 ? 1 : t;
}

static size_t ct_col_floats(const conv_transpose_shape *s)
{
    return (size_t)s->c_out * s->kernel * s->kernel * s->h * s->w;
}

static size_t ct_dw_floats(const conv_transpose_shape *s)
{
    return (size_t)s->c_in * s->c_out * s->kernel * s->kernel;
}

/* One thread block: the column buffer, then (T > 1) a private weight gradient. */
static size_t ct_block_floats(const conv_transpose_shape *s, int T)
{
    return ct_col_floats(s) + (T > 1 ? ct_dw_floats(s) : 0);
}

size_t conv_transpose_workspace_floats(const conv_transpose_shape *s)
{
    int T = ct_threads(s);
    return (size_t)T * ct_block_floats(s, T);
}

typedef struct {
    float *out, *d_in, *d_weight;
    const float *in, *weight, *bias, *d_out;
} ct_ctx;

typedef void (*ct_sample_fn)(const conv_transpose_shape *s, int b, float *col, float *dw,
                             const ct_ctx *c);

typedef struct {
    const conv_transpose_shape *s;
    float *ws;
    ct_sample_fn fn;
    const ct_ctx *c;
    int T, zero_dw;
} ct_run_state;

static void ct_block(int t, int lo, int hi, void *vr)
{
    const ct_run_state *r = vr;
    const conv_transpose_shape *s = r->s;
    float *col = r->ws + (size_t)t * ct_block_floats(s, r->T), *dw = r->c->d_weight;
    if (r->T > 1) {
        dw = col + ct_col_floats(s);
        if (r->zero_dw) memset(dw, 0, ct_dw_floats(s) * sizeof(float));
    }
    for (int b = lo; b < hi; b++) r->fn(s, b, col, dw, r->c);
}

/* Runs fn for every sample (nn_run_blocks). dw is d_weight itself (one thread) or the thread's
 * private buffer, zeroed first when zero_dw is set; returns the number of threads that ran
 * (at most ct_threads, which sets the workspace layout). */
static int ct_run(const conv_transpose_shape *s, float *ws, ct_sample_fn fn, const ct_ctx *c,
                  int zero_dw)
{
    ct_run_state r = {s, ws, fn, c, ct_threads(s), zero_dw};
    return nn_run_blocks(r.T, s->batch, 1, ct_block, &r);
}

static void forward_sample(const conv_transpose_shape *s, int b, float *col, float *dw,
                           const ct_ctx *c)
{
    (void)dw;
    const int oh = conv_transpose_out_h(s), ow = conv_transpose_out_w(s), k = s->kernel;
    const int hw = s->h * s->w, okk = s->c_out * k * k;
    const size_t ohw = (size_t)oh * ow;
    float *o = c->out + (size_t)b * s->c_out * ohw;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, okk, hw, s->c_in, 1.0f, c->weight, okk,
                c->in + (size_t)b * s->c_in * hw, hw, 0.0f, col, hw);
    for (int co = 0; co < s->c_out; co++) {
        float bv = c->bias ? c->bias[co] : 0.0f;
        float *oc = o + (size_t)co * ohw;
        for (size_t i = 0; i < ohw; i++) oc[i] = bv;
    }
    nn_col2im(col, (size_t)hw, s->c_out, oh, ow, k, s->stride, s->padding, PAD_ZERO, s->h, s->w,
              o);
}

void conv_transpose_forward(const conv_transpose_shape *s, float *out, const float *in,
                            const float *weight, const float *bias, float *workspace)
{
    ct_ctx c = {.out = out, .in = in, .weight = weight, .bias = bias};
    ct_run(s, workspace, forward_sample, &c, 0);
}

static void backward_sample(const conv_transpose_shape *s, int b, float *col, float *dw,
                            const ct_ctx *c)
{
    const int oh = conv_transpose_out_h(s), ow = conv_transpose_out_w(s), k = s->kernel;
    const int hw = s->h * s->w, okk = s->c_out * k * k;
    const size_t ohw = (size_t)oh * ow;
    const float *x = c->in + (size_t)b * s->c_in * hw;
    nn_im2col(c->d_out + (size_t)b * s->c_out * ohw, s->c_out, oh, ow, k, s->stride, s->padding,
              PAD_ZERO, s->h, s->w, col, (size_t)hw);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->c_in, okk, hw, 1.0f, x, hw, col, hw,
                1.0f, dw, okk);
    if (c->d_in)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->c_in, hw, okk, 1.0f, c->weight,
                    okk, col, hw, 1.0f, c->d_in + (size_t)b * s->c_in * hw, hw);
}

void conv_transpose_backward(const conv_transpose_shape *s, float *d_in, float *d_weight,
                             float *d_bias, const float *d_out, const float *in,
                             const float *weight, float *workspace)
{
    if (d_bias) nn_bias_backward(s->batch, s->c_out, (size_t)conv_transpose_out_h(s) *
                                 conv_transpose_out_w(s), d_out, d_bias);
    ct_ctx c = {.d_in = d_in, .d_weight = d_weight, .in = in, .weight = weight, .d_out = d_out};
    const int T = ct_threads(s), used = ct_run(s, workspace, backward_sample, &c, 1);
    if (T == 1) return; /* accumulated into d_weight directly */
    const size_t nw = ct_dw_floats(s), block = ct_block_floats(s, T), ncol = ct_col_floats(s);
#pragma omp parallel for schedule(static) if((long long)nw * used >= NN_PAR_MIN)
    for (size_t i = 0; i < nw; i++) {
        float acc = d_weight[i];
        for (int t = 0; t < used; t++) acc += workspace[(size_t)t * block + ncol + i];
        d_weight[i] = acc;
    }
}
