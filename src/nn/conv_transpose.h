/* Transposed 2-D convolution (torch ConvTranspose2d semantics, zero padding), NCHW, torch
 * weight layout (c_in, c_out, k, k). Any kernel (even kernels such as 2x2 stride 2 included),
 * any stride, `padding` and `output_padding` as in torch:
 *   out_h = (h - 1) * stride - 2 * padding + kernel + output_padding.
 * Forward: col = W^T x (one sgemm per sample), then col2im; backward: im2col(d_out), then
 * d_in += W col, d_weight += x col^T. Gradients ACCUMULATE; d_in, d_bias nullable.
 * No allocation: callers pass conv_transpose_workspace_floats() floats.
 * Deterministic for a fixed thread count (see nn/threads.h). */
#ifndef SMOECAST_NN_CONV_TRANSPOSE_H
#define SMOECAST_NN_CONV_TRANSPOSE_H

#include <stddef.h>

typedef struct {
    int batch, c_in, h, w, c_out, kernel, stride, padding, output_padding;
    int has_bias;
} conv_transpose_shape;

int conv_transpose_out_h(const conv_transpose_shape *s);
int conv_transpose_out_w(const conv_transpose_shape *s);
int conv_transpose_shape_valid(const conv_transpose_shape *s);
size_t conv_transpose_workspace_floats(const conv_transpose_shape *s);

void conv_transpose_forward(const conv_transpose_shape *s, float *out, const float *in,
                            const float *weight, const float *bias, float *workspace);
void conv_transpose_backward(const conv_transpose_shape *s, float *d_in, float *d_weight,
                             float *d_bias, const float *d_out, const float *in,
                             const float *weight, float *workspace);

#endif
