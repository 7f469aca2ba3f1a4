/* 2x2 pooling with stride 2 (torch AvgPool2d(2) / MaxPool2d(2)), NCHW. Output is
 * (batch, c, h/2, w/2) (floor, like torch: an odd last row/column is ignored).
 * Max pooling backward recomputes the argmax from the input (first maximum in row-major order
 * wins a tie, NaN propagates, as in torch), so no index buffer is needed.
 * Backward ACCUMULATES into d_in. No workspace. Deterministic (each thread owns planes). */
#ifndef SMOECAST_NN_POOL_H
#define SMOECAST_NN_POOL_H

typedef struct {
    int batch, c, h, w; /* input dims */
} pool_shape;

int pool_out_h(const pool_shape *s);
int pool_out_w(const pool_shape *s);

void avgpool2x2_forward(const pool_shape *s, float *out, const float *in);
void avgpool2x2_backward(const pool_shape *s, float *d_in, const float *d_out);
void maxpool2x2_forward(const pool_shape *s, float *out, const float *in);
void maxpool2x2_backward(const pool_shape *s, float *d_in, const float *d_out, const float *in);

#endif
