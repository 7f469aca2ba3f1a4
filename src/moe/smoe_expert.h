/* Sparse evaluation of the SMoE experts: every expert is one KxK single-output-channel filter
 * (C_in -> 1, no bias); only the (sample, rank, pixel) triples chosen by the router are computed,
 * so the arithmetic is k/N of a dense C_in -> N convolution, forward and backward.
 *
 * Layout: the input is NCHW; each sample is streamed row by row through a small ring of padded
 * pixel-major (NHWC) rows, so that each filter row is one contiguous dot product of length
 * K*C_in; no padded copy of the batch is built (smoe_expert.c explains the kernels).
 * idx (B, k, H, W) holds the expert chosen for each output rank at each pixel (int32); the
 * routing may differ between samples. idx == NULL means dense: k must equal n_experts and rank
 * j is expert j. Backward accumulates (+=) into d_in (nullable) and d_weight.
 * Results do not depend on the thread count (per-sample weight-gradient buffers summed in
 * sample order). */
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

/* The same in pieces, for callers that run their own parallel region (smoe.c fuses the
 * routing and output loops into it). `workspace` as above, at least
 * smoe_expert_workspace_floats; tid < MOE_MAX_THREADS is the calling thread's index in the team
 * (it selects that thread's scratch block: two threads must not share a tid).
 * smoe_expert_threads: the team size the standalone calls use for this shape.
 * smoe_expert_bands: bands of rows per sample so that batch * bands >= 2 * nthreads. */
int smoe_expert_threads(const smoe_expert_shape *s);
int smoe_expert_bands(const smoe_expert_shape *s, int nthreads);
/* Filter-row copy of the weights: once per call, before any of the functions below. */
void smoe_expert_prepare(const smoe_expert_shape *s, const float *weight, float *workspace);
/* esel of rows [h0, h1) of sample b. */
void smoe_expert_forward_rows(const smoe_expert_shape *s, int b, int h0, int h1, float *esel,
                              const int32_t *idx, const float *in, float *workspace, int tid);
/* backward_begin zeroes the per-sample weight-gradient buffers; every sample is then passed to
 * backward_sample once, by any thread (weight gradient into sample b's buffer, d_in of sample
 * b += its input gradient); backward_end sums the buffers in sample order into d_weight (+=),
 * so the result does not depend on which thread did which sample. */
void smoe_expert_backward_begin(const smoe_expert_shape *s, float *workspace);
void smoe_expert_backward_sample(const smoe_expert_shape *s, int b, float *d_in,
                                 const float *d_esel, const int32_t *idx, const float *in,
                                 float *workspace, int tid);
void smoe_expert_backward_end(const smoe_expert_shape *s, float *d_weight, float *workspace);

/* Dense reference (all N experts at every pixel, direct loops, no workspace): e (B, N, H, W).
 * Used by tests and by callers that want the full expert field (expert maps). */
void smoe_expert_dense_forward(const smoe_expert_shape *s, float *e, const float *in,
                               const float *weight);

#endif
