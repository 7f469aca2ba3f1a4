/* nn_set_threads: one knob for OpenMP and OpenBLAS. */
#include "nn/threads.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

int nn_set_threads(int n)
{
    if (n <= 0) {
        const char *env = getenv("OMP_NUM_THREADS");
        n = env ? atoi(env) : 0;
        if (n <= 0) {
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            n = cores > 0 ? (int)cores : 1;
        }
    }
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return n;
}

int nn_get_threads(void)
{
    return omp_get_max_threads();
}
