/* conv_transpose: the adjoint of conv2d's im2col mapping, with OpenBLAS sgemm. */
#include "nn/conv_transpose.h"
#include "nn/nn_internal.h"

#include "nn/conv2d.h"

#include <cblas.h>
#include <string.h>

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

size_t conv_transpose_workspace_floats(const conv_transpose_shape *s)
{
    return (size_t)s->c_out * s->kernel * s->kernel * s->h * s->w;
}

void conv_transpose_forward(const conv_transpose_shape *s, float *out, const float *in,
                            const float *weight, const float *bias, float *workspace)
{
    const int oh = conv_transpose_out_h(s), ow = conv_transpose_out_w(s), k = s->kernel;
    const int hw = s->h * s->w, okk = s->c_out * k * k;
    const size_t ohw = (size_t)oh * ow;
    for (int b = 0; b < s->batch; b++) {
        const float *x = in + (size_t)b * s->c_in * hw;
        float *o = out + (size_t)b * s->c_out * ohw;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, okk, hw, s->c_in, 1.0f, weight, okk,
                    x, hw, 0.0f, workspace, hw);
#pragma omp parallel for schedule(static) if((long long)s->c_out * ohw >= NN_PAR_MIN)
        for (int co = 0; co < s->c_out; co++) {
            float bv = bias ? bias[co] : 0.0f;
            float *oc = o + (size_t)co * ohw;
            for (size_t i = 0; i < ohw; i++) oc[i] = bv;
        }
        nn_col2im(workspace, (size_t)hw, s->c_out, oh, ow, k, s->stride, s->padding, PAD_ZERO,
                  s->h, s->w, o);
    }
}

void conv_transpose_backward(const conv_transpose_shape *s, float *d_in, float *d_weight,
                             float *d_bias, const float *d_out, const float *in,
                             const float *weight, float *workspace)
{
    const int oh = conv_transpose_out_h(s), ow = conv_transpose_out_w(s), k = s->kernel;
    const int hw = s->h * s->w, okk = s->c_out * k * k;
    const size_t ohw = (size_t)oh * ow;
    if (d_bias) nn_bias_backward(s->batch, s->c_out, ohw, d_out, d_bias);
    for (int b = 0; b < s->batch; b++) {
        const float *x = in + (size_t)b * s->c_in * hw;
        const float *g = d_out + (size_t)b * s->c_out * ohw;
        nn_im2col(g, s->c_out, oh, ow, k, s->stride, s->padding, PAD_ZERO, s->h, s->w, workspace,
                  (size_t)hw);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->c_in, okk, hw, 1.0f, x, hw,
                    workspace, hw, 1.0f, d_weight, okk);
        if (d_in)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->c_in, hw, okk, 1.0f, weight,
                        okk, workspace, hw, 1.0f, d_in + (size_t)b * s->c_in * hw, hw);
    }
}
