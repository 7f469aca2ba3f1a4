/* Parameter-tensor descriptors and the thread count shared by the MoE layers. */
#include "moe/moe_param.h"

#include <stdio.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

size_t moe_param_set(moe_param_info *info, const char *name, size_t offset, int ndim,
                     int d0, int d1, int d2, int d3)
{
    int d[MOE_PARAM_MAXDIM] = {d0, d1, d2, d3};
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)d[i];
    if (info) {
        memset(info, 0, sizeof *info);
        snprintf(info->name, sizeof info->name, "%s", name);
        info->ndim = ndim;
        for (int i = 0; i < ndim; i++) info->shape[i] = d[i];
        info->offset = offset;
        info->count = count;
    }
    return offset + count;
}

int moe_threads(void)
{
#ifdef _OPENMP
    int n = omp_get_max_threads();
#else
    int n = 1;
#endif
    if (n < 1) n = 1;
    if (n > MOE_MAX_THREADS) n = MOE_MAX_THREADS;
    return n;
}
