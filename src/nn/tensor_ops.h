/* Tensor plumbing for residual and U-Net models, NCHW:
 *   residual add      out = a + b                (backward: d_a += d_out, d_b += d_out)
 *   channel concat    out (B, ca+cb, HW) = [a (B, ca, HW); b (B, cb, HW)]
 *   channel split     the inverse of concat
 * Backward functions ACCUMULATE; a NULL gradient pointer is skipped. Deterministic. */
#ifndef SMOECAST_NN_TENSOR_OPS_H
#define SMOECAST_NN_TENSOR_OPS_H

#include <stddef.h>

void tensor_add_forward(size_t n, float *out, const float *a, const float *b);
void tensor_add_backward(size_t n, float *d_a, float *d_b, const float *d_out);

void channel_concat_forward(int batch, int ca, int cb, size_t hw, float *out, const float *a,
                            const float *b);
void channel_concat_backward(int batch, int ca, int cb, size_t hw, float *d_a, float *d_b,
                             const float *d_out);
void channel_split_forward(int batch, int ca, int cb, size_t hw, float *a, float *b,
                           const float *in);
void channel_split_backward(int batch, int ca, int cb, size_t hw, float *d_in,
                            const float *d_a, const float *d_b);

#endif
