/* Token gates of the point-gated MoE family (METHODS.md section 3): a token is the feature
 * vector x[b, :, p] at one grid point of an NCHW tensor (b, C_in, H*W).
 *
 *   softmax (noisy top-k, Shazeer et al. 2017):  clean_i = (W_g x)_i
 *   laplace [HMOE]:                              clean_i = -|| x - w_i ||_2 (+ b_i)
 * Training with `noisy`: H_i = clean_i + eps * std_i, std_i = softplus((W_noise x)_i),
 * eps ~ N(0, 1); otherwise H = clean. G = softmax over the top-k of H (others exactly 0).
 * Hard constraint (capacity_factor > 0, training only; OUR INTERPRETATION, the paper's exact
 * mechanism could not be checked): each expert takes at most ceil(k * T / N * factor) tokens
 * per batch (T tokens). Rank by rank (all first choices before any second choice), tokens in
 * (b, p) order take their best expert that is neither already theirs nor full; a token whose
 * preferred expert is full is re-routed to its next-best one and gets exactly zero weight for
 * the full expert (it may end with fewer than k experts when all are full). G is then the
 * softmax over the kept experts. Evaluation uses plain top-k.
 *
 * Parameters: "w_gate" (N, C_in) [weights or Laplace centres], then "w_noise" (N, C_in) when
 * noisy, then "b_gate" (N) for a Laplace gate with bias. Softmax gates start at 0 (Shazeer);
 * Laplace centres U(-1, 1) (they must differ), biases 0.
 * Backward accumulates (+=) into d_x (nullable) and d_params. */
#ifndef SMOECAST_MOE_MOE_GATE_H
#define SMOECAST_MOE_MOE_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "moe/moe_param.h"

typedef enum { MOE_GATE_SOFTMAX = 0, MOE_GATE_LAPLACE = 1 } moe_gate_kind;

typedef struct {
    int batch, c_in, hw;     /* tokens are (b, p), p < hw; features x[b, c, p] */
    int n, k;                /* experts, kept per token */
    moe_gate_kind kind;
    int noisy;               /* learned noise (needed by the load loss) */
    int laplace_bias;        /* Laplace: + b_i */
    float capacity_factor;   /* <= 0: no capacity (soft routing); e.g. 1.5 */
} moe_gate_shape;

int moe_gate_check(const moe_gate_shape *s);
/* Describes the parameter tensors (info may be NULL; up to 3); returns how many. */
int moe_gate_params(const moe_gate_shape *s, moe_param_info info[3]);
size_t moe_gate_param_floats(const moe_gate_shape *s);
void moe_gate_init(const moe_gate_shape *s, float *params, rng_t *rng);
/* Capacity per expert for T tokens (0 when capacity is off). */
int moe_gate_capacity(const moe_gate_shape *s);

size_t moe_gate_state_floats(const moe_gate_shape *s);
typedef struct {
    float *clean;   /* (B, N, HW) clean logits */
    float *noisy;   /* (B, N, HW) H (== clean without noise) */
    float *std;     /* (B, N, HW) softplus(W_noise x) (1 when not noisy) */
    float *pfull;   /* (B, N, HW) softmax of the clean logits over all N (switch/entropy) */
    float *g;       /* (B, N, HW) gate weights G (0 for experts not kept) */
    float *kept;    /* (B, N, HW) 1 for kept experts, else 0 */
    float *dist;    /* (B, N, HW) Laplace distances */
    float *stats;   /* [0] tokens that lost a slot to capacity (training), [1] re-routed */
} moe_gate_view;
moe_gate_view moe_gate_state(const moe_gate_shape *s, float *state);

/* training: noise and capacity apply; rng: the noise stream (needed when training && noisy). */
void moe_gate_forward(const moe_gate_shape *s, const float *x, const float *params, float *state,
                      int training, rng_t *rng);

/* The pieces of the forward's selection, for callers that choose the tokens' experts over a
 * batch split across processes (point_moe.c's data-parallel gate).
 * moe_gate_select_pass: the j-th choice of every token of the (batch, n, hw) layout, in (b, p)
 * order: each token keeps its highest-logit expert among those it has not kept yet and, with
 * cap > 0, that hold fewer than cap tokens (ties to the lower index); count[n] is the number of
 * tokens of expert n so far (updated; MOE_GATE_MAX_EXPERTS entries at most). A token left with
 * no expert adds 1 to *dropped, one sent elsewhere than its uncapped choice 1 to *rerouted.
 * moe_gate_kept_softmax: g = softmax of the logits over each token's kept experts, 0 elsewhere. */
#define MOE_GATE_MAX_EXPERTS 256
void moe_gate_select_pass(const moe_gate_shape *s, int cap, const float *logits, float *kept, int *count,
                          double *dropped, double *rerouted);
void moe_gate_kept_softmax(const moe_gate_shape *s, const float *logits, const float *kept, float *g);

/* d_g: gradient w.r.t. G (nullable); d_pfull w.r.t. pfull (nullable); d_clean / d_std: extra
 * gradients w.r.t. the clean logits / noise std (nullable, e.g. from the load loss). Only kept
 * experts pass the gradient of G on. workspace: moe_gate_workspace_floats. */
size_t moe_gate_workspace_floats(const moe_gate_shape *s);
void moe_gate_backward(const moe_gate_shape *s, float *d_x, float *d_params, const float *d_g,
                       const float *d_pfull, const float *d_clean, const float *d_std,
                       const float *x, const float *params, float *state, float *workspace);

#endif
