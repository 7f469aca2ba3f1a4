/* Helpers shared by the layers of src/nn (see nn_internal.h). */
#include "nn/nn_internal.h"

#include <cblas.h>
#include <omp.h>

int nn_run_blocks(int T, int items, int group, nn_block_fn fn, void *ctx)
{
    if (T <= 1) {
        fn(0, 0, items, ctx);
        return 1;
    }
    int used = 1, blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
#pragma omp parallel num_threads(T)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num(), groups = items / group;
#pragma omp single
        used = nt;
        fn(t, (int)((long)groups * t / nt) * group, (int)((long)groups * (t + 1) / nt) * group, ctx);
    }
    openblas_set_num_threads(blas_threads);
    return used;
}

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
