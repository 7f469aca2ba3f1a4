/* The Spatial Mixture-of-Experts layer [SMoE] (METHODS.md section 2).
 *
 * x (B, C_in, H, W) -> y (B, k, H, W). N experts, each ONE KxK filter C_in -> 1 (no bias).
 * A gate produces raw routing weights R (B, N, H, W); at each pixel the top-k of the routed
 * values (R, plus gate noise when training, softmax over N when enabled) are taken in
 * descending order (ties to the lower expert index) and output channel j is the j-th ranked
 * expert at that pixel: y = R_sel * E_sel (weighted, default) or y = E_sel (unweighted).
 * Only the selected (expert, pixel) pairs are computed (k/N of the dense FLOPs, smoe_expert.h);
 * with a latent gate and no noise the routing is the same for every sample and is computed once
 * per step. Forward runs in one parallel region over (sample, band of rows) items, backward in
 * one region over samples.
 *
 * Backward is straight-through: dE_sel = g * (weighted ? R_sel : 1) and
 * dR_sel = g * (weighted ? E_sel : 1) (unselected get 0). With the routing-classification
 * loss on, the gate gets NO main-loss gradient, only that of the RC loss; expert error damping
 * multiplies the selected experts' gradients (and so the input gradient) by a factor where the
 * rescaled error exceeds the per-sample quantile. Backward accumulates (+=) into d_in and
 * d_params (the caller zeroes once per step).
 *
 * Parameter block (smoe_params): "expert_weight" (N, C_in, K, K) then the gate:
 *   latent : "gate_latent" (N, H, W)     conv : "gate_weight" (N, C_in, 3, 3)
 *   conv1x1: "gate_weight" (N, C_in, 1, 1)
 * Memory: callers pass `state` (smoe_state_floats: routing kept from forward to backward) and
 * `workspace` (smoe_workspace_floats: scratch, free to reuse between calls). No allocation. */
#ifndef SMOECAST_MOE_SMOE_H
#define SMOECAST_MOE_SMOE_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "moe/moe_param.h"
#include "nn/conv2d.h"

/* RC / damping thresholds (docs/moe.md, "RC and damping thresholds"). rc_absolute:
 * SMOE_RC_AUTO (default) = absolute when the layer's errors are pointwise prediction errors
 * (rc_error_scale != 1: the model's output layer under a mean loss, set by model.c), relative
 * otherwise. Default tolerances: the reference code's 1e-5 (correct) and 1e-3 (damped), in the
 * units of e_s, i.e. of the (normalised) target. */
#define SMOE_RC_RELATIVE 0
#define SMOE_RC_ABSOLUTE 1
#define SMOE_RC_AUTO (-1)
#define SMOE_RC_TOL_CORRECT_DEFAULT 1e-5f
#define SMOE_RC_TOL_DAMP_DEFAULT 1e-3f

#define SMOE_MAX_EXPERTS 256

typedef enum { SMOE_GATE_LATENT = 0, SMOE_GATE_CONV = 1, SMOE_GATE_CONV1X1 = 2 } smoe_gate_type;

typedef struct {
    int batch, c_in, h, w;
    int n_experts, k;        /* N experts, k <= N selected per pixel (= output channels) */
    int kernel;              /* expert filter size, odd (3) */
    pad_mode pad;            /* PAD_PERIODIC_LON for global grids, PAD_ZERO otherwise */
    smoe_gate_type gate;
    int weighted;            /* 1: y = R * E (reference default); 0: y = E */
    int softmax;             /* softmax over the N experts before top-k (not renormalised) */
    int noise;               /* add N(0, (1/N)^2) to R before top-k when training */
    int rc_loss;             /* routing-classification loss on: trains the gate alone */
    float rc_quantile;       /* q (reference 0.7, paper recipe 0.3) */
    float rc_error_scale;    /* e_s = |e| * scale: numel(y_final)/2 under a mean-MSE head, else 1 */
    int damping;             /* expert error damping on */
    float damping_factor;    /* multiplies damped expert gradients (default 0) */
    int rc_absolute;         /* RC / damping thresholds: SMOE_RC_ABSOLUTE q_b + tol (reference
                                code), SMOE_RC_RELATIVE q_b (1 + 1e-5) / q_b (1 + 1e-3)
                                (rc_loss.h), SMOE_RC_AUTO (default) see above */
    float rc_tol_correct;    /* absolute: correct when e_s <= q_b + rc_tol_correct */
    float rc_tol_damp;       /* absolute: damped when e_s > q_b + rc_tol_damp */
} smoe_shape;

/* Reference defaults: kernel 3, zero pad, latent gate, weighted, no softmax/noise, RC off with
 * q = 0.7, error scale 1, damping off with factor 0; thresholds SMOE_RC_AUTO with the default
 * tolerances. Shape fields (batch..k) are left as given. */
void smoe_shape_defaults(smoe_shape *s);
/* 1 when the RC / damping thresholds are absolute for this shape (resolves SMOE_RC_AUTO). */
int smoe_rc_is_absolute(const smoe_shape *s);
/* SM_OK or SM_ERR_USAGE (with sm_fail naming the offending field). */
int smoe_check(const smoe_shape *s);

size_t smoe_param_floats(const smoe_shape *s);
/* Describes each parameter tensor (info may be NULL); returns how many (2). */
int smoe_params(const smoe_shape *s, moe_param_info info[2]);
/* Experts and conv gates: Kaiming-uniform with ReLU gain, U(-sqrt(6/fan_in), +); latent gate
 * U(-a, a), a = sqrt(3 N / k). */
void smoe_init(const smoe_shape *s, float *params, rng_t *rng);

size_t smoe_state_floats(const smoe_shape *s);
size_t smoe_workspace_floats(const smoe_shape *s);

/* Views into the state buffer (valid after smoe_forward). */
typedef struct {
    float *gate_raw;    /* (B, N, H, W) raw gate output R (the RC loss's logits) */
    float *gate_noisy;  /* (B, N, H, W) R + noise (== R without noise) */
    float *gate_route;  /* (B, N, H, W) values ranked and used as weights (softmax if on) */
    int32_t *idx;       /* (B, k, H, W) expert of each output rank */
    float *esel;        /* (B, k, H, W) selected expert outputs */
    float *stats;       /* SMOE_STAT_* of the last backward */
} smoe_state_view;
enum { SMOE_STAT_RC_LOSS = 0, SMOE_STAT_DAMPED_FRAC = 1, SMOE_STAT_CORRECT_FRAC = 2, SMOE_NSTAT = 4 };
smoe_state_view smoe_state(const smoe_shape *s, float *state);

/* Top-k routing of npix pixels: r[n * stride + p] routed value of expert n at pixel p;
 * idx[j * stride + p] receives the expert of rank j (k largest values in descending order,
 * ties to the lower expert index). */
void smoe_topk(int n_experts, int k, size_t npix, size_t stride, const float *r, int32_t *idx);

/* out (B, k, H, W). noise_rng: the gate-noise stream when training with s->noise, else NULL. */
void smoe_forward(const smoe_shape *s, float *out, const float *in, const float *params,
                  float *state, float *workspace, rng_t *noise_rng);

/* d_in nullable. d_gate_extra (B, N, H, W), nullable: an additional gradient w.r.t. the raw gate
 * output R (e.g. from smoe_aux_losses below), passed to the gate parameters unchanged.
 * Writes the RC loss value to stats[SMOE_STAT_RC_LOSS] (0 when off). */
void smoe_backward(const smoe_shape *s, float *d_in, float *d_params, const float *d_out,
                   const float *d_gate_extra, const float *in, const float *params, float *state,
                   float *workspace);

/* Auxiliary losses of the reference (all off by default), from the state after smoe_forward:
 * importance CV^2 of each expert's summed R, load CV^2 (noisy top-k with noise sd 1/N, on R and
 * R + noise), spatial agreement (sum over experts of the mean over pixels of the std over the
 * batch of R). values[3] (nullable) receives the unweighted losses; d_gate (B, N, H, W) receives
 * (+=) the weighted gradient w.r.t. R: pass it to smoe_backward as d_gate_extra.
 * Returns the weighted sum. */
typedef struct {
    float importance, load, agreement;
} smoe_aux_weights;
double smoe_aux_losses(const smoe_shape *s, float *state, const smoe_aux_weights *w,
                       float *d_gate, double values[3]);

#endif
