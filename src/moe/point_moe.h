/* The point-gated MoE layer (METHODS.md section 3): a different layer from the SMoE layer.
 * x (B, C_in, H, W) -> y (B, C_out, H, W). A token is the feature vector x[b, :, h, w]; each of
 * the N experts is a small conv block  KxK conv C_in -> hidden (+bias) -> ReLU -> 1x1 conv
 * hidden -> C_out (+bias), evaluated densely; the output is the gate-weighted SUM of the
 * experts:  y[b, :, p] = sum_e G[b, e, p] E_e(x)[b, :, p]  with G exactly 0 off the kept set.
 *
 * Gates (pmoe_gate_type):
 *   SOFTMAX_TOPK  noisy top-k softmax (moe_gate.h), optional capacity (hard constraints)
 *   LAPLACE       Laplace gate [HMOE], logits -||x - w_i|| (+ b_i), top-k, softmax over kept
 *   HMOE          two levels [HMOE]: outer gate over `groups` (top k_outer), per group an inner
 *                 gate with its own parameters over `experts_per_group` (top k_inner);
 *                 G[b, g*M + m] = g1_g * g2_{m|g}; each level softmax or Laplace (SS, SL, LL)
 *   ATTENTION     [SPEC]: h_g = ReLU(W_t x + b_t) (attn_hidden A), h_i = expert i's hidden
 *                 features, Q = W_q h_g, K_i = W_k h_i (A x A and A x hidden, no bias),
 *                 a_i = Q . K_i / sqrt(A); G = softmax over the top-k of a (k = N: plain
 *                 softmax). Every expert runs before routing.
 *                 With `distill` the layer also owns a STUDENT gate: an ordinary softmax
 *                 top-k gate (moe_gate.h, no noise, no capacity) over the same input x.
 *                 Training routes with the attention teacher exactly as without it; the
 *                 student learns to imitate it through moe_distill_loss (cross-entropy to the
 *                 teacher's softmax(a), teacher detached, weight pmoe_aux_weights.distill),
 *                 whose gradient reaches the student's parameters only (not the experts, the
 *                 teacher or x: "freeze the experts, train an ordinary gate to imitate it").
 *                 Evaluation (training == 0) routes with the student's top-k and computes
 *                 only the selected experts at each token (sparse), unless `distill_check`.
 * Auxiliary losses (pmoe_aux_weights, each with its own weight; computed in backward, values
 * in the state's stats): importance CV^2 and load CV^2 (HMOE: at both levels), switch and
 * entropy (on the softmax over all experts: the gate's clean logits, HMOE's outer level, the
 * attention logits), sample-similarity L_s on G with `sim_pairs` random pixel pairs drawn in
 * forward. Backward accumulates (+=) into d_in (nullable) and d_params. */
#ifndef SMOECAST_MOE_POINT_MOE_H
#define SMOECAST_MOE_POINT_MOE_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "moe/moe_balance.h"
#include "moe/moe_gate.h"
#include "moe/moe_param.h"
#include "nn/conv2d.h"

typedef enum {
    PMOE_SOFTMAX_TOPK = 0,
    PMOE_LAPLACE = 1,
    PMOE_HMOE = 2,
    PMOE_ATTENTION = 3
} pmoe_gate_type;

#define PMOE_MAX_GROUPS 64

typedef struct {
    int batch, c_in, h, w, c_out;
    int n_experts, k;          /* HMOE: n_experts must equal groups * experts_per_group */
    int hidden;                /* expert hidden channels */
    int kernel;                /* expert first-conv kernel (odd) */
    pad_mode pad;
    pmoe_gate_type gate;
    int noisy;                 /* noisy gates (SOFTMAX_TOPK, LAPLACE, both HMOE levels) */
    float capacity_factor;     /* <= 0: off; SOFTMAX_TOPK and LAPLACE only */
    int laplace_bias;
    int groups, experts_per_group, k_outer, k_inner;
    moe_gate_kind outer_kind, inner_kind;   /* HMOE levels: SS, SL, LL */
    int sim_pairs;             /* pixel pairs for L_s (0: off) */
    int attn_hidden;           /* ATTENTION: dimension A of h_g, Q, K (0: = hidden) */
    int distill;               /* ATTENTION: student gate (see above) */
    int distill_check;         /* distill, evaluation: also run every expert and the teacher so
                                  that the stats hold the distillation loss and the agreement;
                                  the routing and output stay the student's (dense, slower) */
} pmoe_shape;

typedef struct {
    float importance, load, switch_loss, entropy, sim_same, sim_diff;
    float distill;             /* weight of the student's distillation loss (distill only) */
} pmoe_aux_weights;

/* Stats (pmoe_stats): the aux losses (unweighted) and their weighted total (distillation
 * included) from the last backward; DISTILL (unweighted cross-entropy, mean over tokens) and
 * AGREE (fraction of tokens whose student top-1 expert is the teacher's) from the last forward
 * that ran both gates (distill: training, or evaluation with distill_check), NAN otherwise. */
enum {
    PMOE_STAT_IMPORTANCE = 0, PMOE_STAT_LOAD, PMOE_STAT_SWITCH, PMOE_STAT_ENTROPY,
    PMOE_STAT_SIM_SAME, PMOE_STAT_SIM_DIFF, PMOE_STAT_AUX_TOTAL, PMOE_STAT_DISTILL,
    PMOE_STAT_AGREE, PMOE_NSTAT = 10
};

/* Defaults: kernel 3, hidden 16, attn_hidden 16, zero pad, softmax_topk, noisy, no capacity,
 * HMOE 2 x 4 with k 1 / 2 and LL, no similarity pairs, no distillation. Shape fields are left
 * as given. */
void pmoe_shape_defaults(pmoe_shape *s);
int pmoe_check(const pmoe_shape *s);

/* Describes the parameter tensors (info nullable, room for pmoe_param_count); returns count.
 * Names: expert_w1 (N*hidden, C_in, K, K), expert_b1 (N*hidden), expert_w2 (N, C_out, hidden),
 * expert_b2 (N, C_out), then gate_w_gate / gate_w_noise / gate_b_gate (N, C_in | N), or
 * outer_* and inner<g>_* for HMOE, or attn_trunk_w (A, C_in), attn_trunk_b (A),
 * attn_wq (A, A), attn_wk (A, hidden), then with distill student_w_gate (N, C_in). */
int pmoe_param_count(const pmoe_shape *s);
int pmoe_params(const pmoe_shape *s, moe_param_info *info);
size_t pmoe_param_floats(const pmoe_shape *s);
void pmoe_init(const pmoe_shape *s, float *params, rng_t *rng);

size_t pmoe_state_floats(const pmoe_shape *s);
size_t pmoe_workspace_floats(const pmoe_shape *s);

/* training: noise, capacity and similarity pairs; rng: their stream (may be NULL when not
 * training). With distill and training == 0 (and no distill_check) only the student's selected
 * experts are computed: the expert views (pmoe_expert_outputs / _hidden) are not filled, and
 * pmoe_backward needs a training forward. */
void pmoe_forward(const pmoe_shape *s, float *out, const float *in, const float *params,
                  float *state, float *workspace, int training, rng_t *rng);
void pmoe_backward(const pmoe_shape *s, float *d_in, float *d_params, const float *d_out,
                   const pmoe_aux_weights *aux, const float *in, const float *params,
                   float *state, float *workspace);

/* Data-parallel mode (model.h model_set_dist): this process holds samples first .. first +
 * batch - 1 of a global batch of global_batch samples; the random draws and batch statistics
 * are those of the global batch, so they do not depend on how it is split:
 *  - gate noise: sample b draws its (N, H, W) normals from the stream (key + level, first + b)
 *    (level 0: the single / outer gate, 1 + g: HMOE inner gate g);
 *  - capacity (training): moe_gate.h's selection over the global batch (tokens in global
 *    (b, p) order, capacity from the global token count): for each of the k passes the ranks
 *    (holding consecutive shards, rank order = sample order) take turns, each starting from
 *    the expert counts of all earlier tokens (k * size reductions of N + 2 doubles);
 *  - similarity pairs: drawn over the global batch's tokens from the stream (key, 0x51);
 *    moe_similarity_loss_r gathers the paired tokens;
 *  - importance / load / switch / entropy statistics are summed over processes (moe_reduce;
 *    red.grad_scale = global_batch / batch).
 * Training forward/backward may call red.sum (collective: every process must make the same
 * calls; a process without samples calls pmoe_dist_idle instead). red.sum NULL: one process.
 * With training == 0 the passes equal pmoe_forward (no draws, no reductions). */
typedef struct {
    moe_reduce red;
    int rank, size;          /* this process's place among the processes (shards in rank order) */
    int64_t first;
    int global_batch;
    uint64_t key;            /* this step's key for this layer */
    double *scratch;         /* pmoe_dist_scratch_doubles(s) doubles */
} pmoe_dist;

/* Scratch of the sample-similarity regulariser's reductions (any local batch). */
size_t pmoe_dist_scratch_doubles(const pmoe_shape *s);
void pmoe_forward_dist(const pmoe_shape *s, float *out, const float *in, const float *params,
                       float *state, float *workspace, int training, pmoe_dist *d);
void pmoe_backward_dist(const pmoe_shape *s, float *d_in, float *d_params, const float *d_out,
                        const pmoe_aux_weights *aux, const float *in, const float *params,
                        float *state, float *workspace, pmoe_dist *d);
/* The collective calls of one training forward (backward == 0) or backward (1) with no local
 * sample, in the same order as pmoe_forward_dist / pmoe_backward_dist. */
void pmoe_dist_idle(const pmoe_shape *s, const pmoe_aux_weights *aux, int backward, pmoe_dist *d);

/* Views into the state (valid after forward). */
const float *pmoe_gate_weights(const pmoe_shape *s, const float *state);  /* G (B, N, H, W) */
/* Routing distribution over all experts for metrics (B, N, H, W): the softmax of the clean
 * logits (single gates), G (HMOE, whose per-level softmaxes do not compose), softmax(a)
 * (attention; with distill in evaluation the student's softmax, since the student routes). */
const float *pmoe_routing_probs(const pmoe_shape *s, const float *state);
const float *pmoe_expert_outputs(const pmoe_shape *s, const float *state); /* (B, N, C_out, H, W) */
float *pmoe_stats(const pmoe_shape *s, float *state);                     /* PMOE_STAT_* */
/* Experts' hidden features after ReLU (B, N * hidden, H, W). */
const float *pmoe_expert_hidden(const pmoe_shape *s, const float *state);

#endif
