/* Dense (fully connected) layer, torch Linear semantics: in (batch, in_features),
 * weight (out_features, in_features), bias (out_features) or NULL; out = in W^T + b.
 * One cblas_sgemm per pass (forward, d_in, d_weight). Backward ACCUMULATES; d_in, d_bias
 * nullable. No workspace. Deterministic for a fixed thread count. */
#ifndef SMOECAST_NN_DENSE_H
#define SMOECAST_NN_DENSE_H

typedef struct {
    int batch, in_features, out_features, has_bias;
} dense_shape;

void dense_forward(const dense_shape *s, float *out, const float *in, const float *weight,
                   const float *bias);
void dense_backward(const dense_shape *s, float *d_in, float *d_weight, float *d_bias,
                    const float *d_out, const float *in, const float *weight);

#endif
