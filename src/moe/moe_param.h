/* Parameter-tensor descriptors shared by the MoE layers: each layer lists its tensors (name,
 * shape, offset into the layer's single parameter block) so that a model builder can carve one
 * allocation for parameters and one for gradients, and checkpoint them by name. */
#ifndef SMOECAST_MOE_MOE_PARAM_H
#define SMOECAST_MOE_MOE_PARAM_H

#include <stddef.h>

#define MOE_PARAM_MAXDIM 4

typedef struct {
    char name[32];              /* e.g. "expert_weight", "gate_latent" */
    int ndim;
    int shape[MOE_PARAM_MAXDIM];
    size_t offset;              /* in floats, from the start of the layer's parameter block */
    size_t count;               /* product of shape */
} moe_param_info;

/* Fill info (if non-NULL) and return the offset just past it. */
size_t moe_param_set(moe_param_info *info, const char *name, size_t offset, int ndim,
                     int d0, int d1, int d2, int d3);

/* Threads used by the MoE kernels' parallel loops (capped: per-thread gradient copies live in
 * the workspace, sized for this many). */
#define MOE_MAX_THREADS 16
int moe_threads(void);

#endif
