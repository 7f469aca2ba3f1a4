/* Internal to src/nn: the work size below which OpenMP loops stay serial (a parallel region
 * costs microseconds, far more on a loaded machine, so tiny loops run on one thread), and
 * helpers shared by several layers. */
#ifndef SMOECAST_NN_INTERNAL_H
#define SMOECAST_NN_INTERNAL_H

#define NN_PAR_MIN 32768

#include <stddef.h>

/* Bias gradient of a convolution-like layer: d_bias[co] += sum over the batch and the `ohw`
 * output pixels of d_out (batch, c_out, ohw); per-sample float sums added up in double. */
void nn_bias_backward(int batch, int c_out, size_t ohw, const float *d_out, float *d_bias);

#endif
