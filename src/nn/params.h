/* Parameter store: every parameter tensor of a model lives in ONE float allocation, and its
 * gradient in a second one with the same layout, so an optimiser step, a gradient-norm, a
 * zero_grad or an MPI allreduce is one flat loop / one call over param_store_data_all() /
 * param_store_grad_all() (param_store_size() floats).
 *
 * Two phases:
 *   1. declare: param_store_declare(store, "enc0.conv.weight", ndim, shape, flags) -> id
 *   2. finalize: param_store_finalize(store) allocates data and grad (both zero-filled).
 * After finalize, tensors are found by id (0 .. count-1, declaration order) or by name, and
 * param_data()/param_grad() return the tensor's slice of the flat buffers.
 *
 * Layout: tensors are stored in declaration order; every tensor starts at a multiple of
 * PARAM_ALIGN floats (64 bytes) and the padding between tensors is zero in data and grad, so
 * flat loops over the whole buffer are harmless. The buffers themselves are 64-byte aligned.
 *
 * Flags: PARAM_DECAY     weight decay applies (conv/dense weights; not biases or norm params)
 *        PARAM_TRAINABLE the optimiser updates it (running BatchNorm statistics are declared
 *                        without it: they are saved in checkpoints but never stepped).
 *        PARAM_GATE      an MoE gate tensor (SMoE latent map or gate conv, point-gated gate
 *                        weights): its own learning rate, nn/optim.h gate_lr_scale.
 * Optimiser state (Adam m and v, SGD momentum) lives in nn/optim.h in flat buffers of
 * param_store_size() floats with the same offsets. */
#ifndef SMOECAST_NN_PARAMS_H
#define SMOECAST_NN_PARAMS_H

#include <stddef.h>

#define PARAM_MAX_DIMS 4
#define PARAM_NAME_MAX 128
#define PARAM_ALIGN 16 /* floats */

enum {
    PARAM_DECAY = 1u,
    PARAM_TRAINABLE = 2u,
    PARAM_GATE = 4u       /* an MoE gate tensor: the optimiser steps it at lr * gate_lr_scale */
};
#define PARAM_DEFAULT (PARAM_DECAY | PARAM_TRAINABLE)   /* weights */
#define PARAM_NO_DECAY (PARAM_TRAINABLE)                /* biases, norm affine params */
#define PARAM_BUFFER (0u)                               /* non-trainable state */

/* One tensor's place in the store. `name` is owned by the store. */
typedef struct {
    const char *name;
    int ndim;                      /* 0 (scalar) .. PARAM_MAX_DIMS */
    int shape[PARAM_MAX_DIMS];     /* unused dims are 1 */
    size_t numel;
    size_t offset;                 /* in floats, from the start of the flat buffers */
    unsigned flags;
} param_view;

typedef struct param_store param_store;

/* NULL only when out of memory. */
param_store *param_store_create(void);
void param_store_free(param_store *store);

/* Declare a tensor (before finalize). Returns its id (>= 0), or -1 after recording the reason
 * with sm_fail(SM_ERR_USAGE, ...): duplicate or empty name, ndim out of range, non-positive
 * dimension, or declaring after finalize. */
int param_store_declare(param_store *store, const char *name, int ndim, const int *shape,
                        unsigned flags);
/* Allocate the zero-filled data and grad buffers. SM_OK, SM_ERR_USAGE (already finalized)
 * or SM_ERR_NUMERIC (out of memory). */
int param_store_finalize(param_store *store);
int param_store_is_finalized(const param_store *store);

int param_store_count(const param_store *store);
/* Id of a tensor, or -1 when no tensor has that name. */
int param_store_find(const param_store *store, const char *name);
/* View of tensor `id` (valid before and after finalize); NULL when id is out of range. */
const param_view *param_store_view(const param_store *store, int id);

/* Length of the flat buffers in floats (including alignment padding). */
size_t param_store_size(const param_store *store);
/* Sum of numel over tensors; with only_trainable, over PARAM_TRAINABLE tensors only. */
size_t param_store_numel(const param_store *store, int only_trainable);

/* Slices of the flat buffers (after finalize; NULL before or for a bad id). */
float *param_data(param_store *store, int id);
float *param_grad(param_store *store, int id);
float *param_store_data_all(param_store *store);
float *param_store_grad_all(param_store *store);

/* grad = 0 over the whole flat buffer (once per training step; backward passes accumulate). */
void param_store_zero_grad(param_store *store);

/* 1 if every float of data (which = 0) or grad (which = 1) is finite; otherwise 0 and, when
 * first_bad is not NULL, the id of the first tensor holding a NaN/Inf. */
int param_store_all_finite(const param_store *store, int which, int *first_bad);

#endif
