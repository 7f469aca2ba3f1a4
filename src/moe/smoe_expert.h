/* Sparse evaluation of the SMoE experts: every expert is one KxK single-output-channel filter
 * (C_in -> 1, no bias); only the (sample, rank, pixel) triples chosen by the router are computed,
 * so the cost is k/N of a dense C_in -> N convolution, forward and backward.
 *
 * Layout: the input is NCHW; internally it is copied once per call into a padded pixel-major
 * (NHWC) buffer so that each filter row is one contiguous dot product of length K*C_in.
 * idx (B, k, H, W) holds the expert chosen for each output rank at each pixel (int32).
 * idx == NULL means dense: k must equal n_experts and rank j is expert j (used for conv gates).
 * Backward accumulates (+=) into d_in (nullable) and d_weight. */
#ifndef SMOECAST_MOE_SMOE_EXPERT_H
#define SMOECAST_MOE_SMOE_EXPERT_H

#include <stddef.h>
#include <stdint.h>

#include "nn/conv2d.h"

typedef struct {
    int batch, c_in, h, w;
    int n_experts, k;   /* experts, selected per pixel */
    int kernel;         /* odd filter size (3 in the paper) */
    pad_mode pad;
} smoe_expert_shape;

size_t smoe_expert_workspace_floats(const smoe_expert_shape *s);

/* esel (B, k, H, W): esel[b, j, p] = expert idx[b, j, p] applied to in[b] at pixel p.
 * weight (N, C_in, K, K). */
void smoe_expert_forward(const smoe_expert_shape *s, float *esel, const int32_t *idx,
                         const float *in, const float *weight, float *workspace);

/* d_esel (B, k, H, W): gradient w.r.t. esel. Entries equal to 0 are skipped. */
void smoe_expert_backward(const smoe_expert_shape *s, float *d_in, float *d_weight,
                          const float *d_esel, const int32_t *idx, const float *in,
                          const float *weight, float *workspace);

/* Dense reference (all N experts at every pixel, direct loops, no workspace): e (B, N, H, W).
 * Used by tests and by callers that want the full expert field (expert maps). */
void smoe_expert_dense_forward(const smoe_expert_shape *s, float *e, const float *in,
                               const float *weight);

#endif
