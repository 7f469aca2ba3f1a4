/* Helpers shared by the layers of src/nn (see nn_internal.h). */
#include "nn/nn_internal.h"

void nn_bias_backward(int batch, int c_out, size_t ohw, const float *d_out, float *d_bias)
{
#pragma omp parallel for schedule(static) if((long long)batch * c_out * ohw >= NN_PAR_MIN)
    for (int co = 0; co < c_out; co++) {
        double acc = 0.0;
        for (int b = 0; b < batch; b++) {
            const float *g = d_out + ((size_t)b * c_out + co) * ohw;
            float part = 0.0f;
            for (size_t i = 0; i < ohw; i++) part += g[i];
            acc += part;
        }
        d_bias[co] += (float)acc;
    }
}
