/* 2-D convolution (NCHW, torch weight layout (c_out, c_in, k, k)) with any odd kernel,
 * stride 1 or 2 and padding kernel/2 in one of three modes:
 *   PAD_ZERO          zeros on all sides (torch padding=k/2)
 *   PAD_PERIODIC_LON  wrap in W (longitude), zeros in H (latitude): the WeatherBench padding
 *   PAD_REPLICATE     edge values repeated on all sides (torch padding_mode='replicate')
 * Output size: 'same' at stride 1; (h + 2p - k)/2 + 1 at stride 2 (p = k/2).
 *
 * Computation (all GEMMs are cblas_sgemm; the strategy is chosen from the shape):
 *   - 3x3 and 5x5, stride 1, c_in and c_out >= 8: Winograd F(4x4, r x r) (nn/winograd.h), 36 GEMMs
 *     over transformed tiles;
 *   - other stride-1 kernels, c_in >= 8: "shifted GEMMs" on a padded copy of the input, one
 *     GEMM per kernel tap, no im2col buffer;
 *   - 1x1 stride 1: one GEMM on the input itself;
 *   - otherwise (stride 2, few input channels): im2col + one GEMM per chunk of samples
 *     (small images fold several samples into the GEMM's N dimension).
 * Samples are split across the nn threads (single-threaded GEMMs, private weight-gradient
 * buffers summed in thread order), so results are bit-identical for a fixed thread count
 * (see nn/threads.h); different thread counts agree to rounding.
 * All gradient buffers ACCUMULATE (+=); d_in and d_bias may be NULL when not needed.
 * No allocation: callers pass conv2d_workspace_floats() floats, which depends on the nn
 * thread count: size workspaces after nn_set_threads(). */
#ifndef SMOECAST_NN_CONV2D_H
#define SMOECAST_NN_CONV2D_H

#include <stddef.h>

typedef enum { PAD_ZERO = 0, PAD_PERIODIC_LON = 1, PAD_REPLICATE = 2 } pad_mode;

typedef struct {
    int batch, c_in, h, w, c_out, kernel, stride;
    pad_mode pad;
    int has_bias;
} conv2d_shape;

int conv2d_out_h(const conv2d_shape *s);
int conv2d_out_w(const conv2d_shape *s);
/* 1 if the shape is supported (positive sizes, odd kernel, stride 1 or 2, valid pad mode). */
int conv2d_shape_valid(const conv2d_shape *s);
size_t conv2d_workspace_floats(const conv2d_shape *s);

/* out (batch, c_out, oh, ow) = conv(in (batch, c_in, h, w)); bias (c_out) or NULL. */
void conv2d_forward(const conv2d_shape *s, float *out, const float *in, const float *weight,
                    const float *bias, float *workspace);
/* Accumulates d_in (nullable), d_weight, d_bias (nullable) from d_out. */
void conv2d_backward(const conv2d_shape *s, float *d_in, float *d_weight, float *d_bias,
                     const float *d_out, const float *in, const float *weight, float *workspace);

/* Shared by conv2d and conv_transpose: im2col / col2im of one sample for a kernel k, stride
 * st, padding p, mode `pad`. col has (c*k*k) rows with leading dimension ld (>= oh*ow); the
 * sample's oh*ow columns start at col[0]. col2im ACCUMULATES into img. */
void nn_im2col(const float *img, int c, int h, int w, int k, int st, int p, pad_mode pad,
               int oh, int ow, float *col, size_t ld);
void nn_col2im(const float *col, size_t ld, int c, int h, int w, int k, int st, int p,
               pad_mode pad, int oh, int ow, float *img);

#endif
