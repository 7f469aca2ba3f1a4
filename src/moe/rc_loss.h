/* Routing-classification (RC) loss and expert-error damping of the SMoE layer (METHODS.md
 * section 2): per-sample error quantile, correctness, labels for all N experts, binary
 * cross-entropy with logits, and the damping mask. Thresholds per sample b from the quantile q_b:
 *   absolute (the reference code): correct when e_s <= q_b + tol_c, damped when e_s > q_b + tol_d;
 *   relative (METHODS.md's decision): correct when e_s <= q_b * (1 + RC_CORRECT_REL), damped when
 *   e_s > q_b * (1 + RC_DAMP_REL).
 * rc_labels / rc_damp use the relative thresholds; rc_labels_thr / rc_damp_thr take any
 * per-sample thresholds (rc_thresholds builds either kind). docs/moe.md says which the layer uses. */
#ifndef SMOECAST_MOE_RC_LOSS_H
#define SMOECAST_MOE_RC_LOSS_H

#include <stddef.h>
#include <stdint.h>

#define RC_CORRECT_REL 1e-5f
#define RC_DAMP_REL 1e-3f

/* q-quantile (q in [0, 1]) of n values with linear interpolation (numpy/torch "linear").
 * Reorders buf in place (selection, no allocation). n must be >= 1. */
float rc_quantile(float *buf, size_t n, float q);

/* qb[b] = q-quantile of e_s[b, 0 .. per_sample-1] for each of `batch` samples.
 * scratch: per_sample floats. */
void rc_sample_quantiles(int batch, size_t per_sample, const float *e_s, float q, float *qb,
                         float *scratch);

/* thr[b] = absolute ? qb[b] + tol : qb[b] * (1 + tol), for `batch` samples. */
void rc_thresholds(int batch, const float *qb, int absolute, float tol, float *thr);

/* Labels (B, N, HW) as rc_labels below, with a selected expert correct when
 * e_s <= thr_correct[b]. */
void rc_labels_thr(int batch, int n_experts, int k, size_t hw, const float *e_s, const int32_t *idx,
                   const float *thr_correct, float *labels);

/* Labels (B, N, HW) from e_s and idx (both (B, k, HW)) and the per-sample thresholds:
 * a selected expert gets 1 when correct (e_s <= qb*(1+RC_CORRECT_REL)) else 0; every unselected
 * expert gets (number of incorrect selected experts at that pixel) / (N - k). */
void rc_labels(int batch, int n_experts, int k, size_t hw, const float *e_s, const int32_t *idx,
               const float *qb, float *labels);

/* Mean binary cross-entropy with logits over batch * per_sample entries. Sample b's logits start
 * at logits + b * logits_stride (stride 0: the same logits for every sample, as for a latent
 * gate). If d_logits is non-NULL, accumulates (sigmoid(z) - label) / (batch * per_sample) into
 * d_logits + b * logits_stride (so a stride of 0 sums over the batch). Returns the loss. */
double rc_bce_with_logits(int batch, size_t per_sample, const float *logits, size_t logits_stride,
                          const float *labels, float *d_logits);

/* Damping: multiply d_esel[i] by `factor` where e_s[i] > thr_damp[b]. Returns the count. */
size_t rc_damp_thr(int batch, size_t per_sample, const float *e_s, const float *thr_damp, float factor,
                   float *d_esel);

/* Damping: multiply d_esel[i] by `factor` where e_s[i] > qb[b] * (1 + RC_DAMP_REL).
 * Arrays (B, per_sample). Returns the number of damped entries. */
size_t rc_damp(int batch, size_t per_sample, const float *e_s, const float *qb, float factor,
               float *d_esel);

#endif
