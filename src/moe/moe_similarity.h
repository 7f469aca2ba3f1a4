/* Sample-similarity regulariser L_s [SPEC] with random token-pair subsampling, and gate
 * distillation (an ordinary gate imitating the attention gate) (METHODS.md section 3).
 *
 * Similarity: for sampled token pairs (t, t'), d = ||x_t - x_t'||_2 / max over the sampled pairs
 * (treated as a constant: no gradient flows into x through d);
 *   S_same = 1/(M P) sum_pairs sum_e p_e(t) p_e(t') d
 *   S_diff = 1/(M (M-1) P) sum_pairs sum_{e != e'} p_e(t) p_e'(t') d
 *   L_s = beta_same * S_same - beta_diff * S_diff
 * with M experts and P pairs (the sampled estimate of the paper's division by B^2). */
#ifndef SMOECAST_MOE_MOE_SIMILARITY_H
#define SMOECAST_MOE_MOE_SIMILARITY_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "moe/moe_balance.h"

/* pairs[2 i], pairs[2 i + 1]: token indices t = o * inner + i, uniform with replacement,
 * t != t' when n_tokens > 1. */
void moe_similarity_sample_pairs(size_t n_tokens, int n_pairs, rng_t *rng, int32_t *pairs);

/* p: routing weights in the (outer, M, inner) layout; x: token features (outer, C, inner).
 * Returns L_s; s_out (nullable) receives {S_same, S_diff}; d_p (nullable) receives (+=) dL_s/dp. */
double moe_similarity_loss(const moe_layout *l, const float *p, int c, const float *x,
                           int n_pairs, const int32_t *pairs, float beta_same, float beta_diff,
                           float *d_p, double s_out[2]);

/* Data-parallel L_s (see moe_reduce in moe_balance.h): `pairs` index the tokens of the GLOBAL
 * batch (drawn identically on every process, e.g. from a per-step key), this process holds the
 * tokens token_first .. token_first + outer * inner - 1 of it. The features and routing weights
 * of both tokens of every pair are gathered through r (a sum over processes of buffers that are
 * zero except for the local tokens), so dmax, S_same, S_diff and L_s are those of the global
 * batch on every process; d_p receives (+=) r->grad_scale times the gradient for the local
 * tokens. scratch: moe_similarity_scratch_doubles(c, M, n_pairs) doubles. r == NULL with
 * token_first 0 gives moe_similarity_loss. */
size_t moe_similarity_scratch_doubles(int c, int n_experts, int n_pairs);
double moe_similarity_loss_r(const moe_layout *l, const float *p, int c, const float *x,
                             int n_pairs, const int32_t *pairs, int64_t token_first,
                             float beta_same, float beta_diff, float *d_p, double s_out[2],
                             moe_reduce *r, double *scratch);

/* Distillation: mean over tokens of the cross-entropy H(p_teacher, softmax(student_logits)),
 * both (outer, M, inner). d_logits (nullable) receives (+=) weight * (softmax - p_teacher) / T. */
double moe_distill_loss(const moe_layout *l, const float *p_teacher, const float *student_logits,
                        float *d_logits, float weight);

#endif
