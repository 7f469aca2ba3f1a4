/* x2 upsampling, NCHW: nearest (torch Upsample(scale_factor=2, mode='nearest')) and bilinear
 * (mode='bilinear', align_corners=False, the torch default). Output (batch, c, 2h, 2w).
 * Backward ACCUMULATES into d_in. No workspace. Deterministic (each thread owns planes). */
#ifndef SMOECAST_NN_UPSAMPLE_H
#define SMOECAST_NN_UPSAMPLE_H

typedef struct {
    int batch, c, h, w; /* input dims */
} upsample_shape;

void upsample_nearest2x_forward(const upsample_shape *s, float *out, const float *in);
void upsample_nearest2x_backward(const upsample_shape *s, float *d_in, const float *d_out);
void upsample_bilinear2x_forward(const upsample_shape *s, float *out, const float *in);
void upsample_bilinear2x_backward(const upsample_shape *s, float *d_in, const float *d_out);

#endif
