/* Network graph: an ordered list of layers over activation slots, with forward/backward over
 * one planned memory arena.
 *
 * Slots: slot 0 is the model input (batch, c_in, H, W); every layer writes one new slot and
 * reads one (two for add/concat: residuals and U-Net skips). The model output is the slot of
 * the last layer added (or model_set_output).
 *
 * Memory (issue 5):
 *   - parameters and gradients: one param_store (nn/params.h), two flat allocations; running
 *     BatchNorm statistics live there too as non-trainable buffers (saved by checkpoints);
 *   - activations, their gradients, per-layer saved state (BatchNorm statistics, dropout masks,
 *     SMoE routing) and packed MoE parameter blocks: ONE arena planned by model_plan() for a
 *     maximum batch size. Activation-gradient buffers are shared between slots whose gradients
 *     are never live at the same time in backward (interval allocation);
 *   - layer workspaces: one scratch buffer sized by the maximum over layers.
 *   model_forward/model_backward never allocate.
 *
 * Conventions (CONTRIBUTING.md): backward ACCUMULATES parameter gradients into the store; the
 * caller zeroes them once per step (model_zero_grad). Activation gradients are zeroed by
 * model_backward itself. Deterministic for a fixed thread count.
 *
 * Building: model_create(), then model_add_* in order (a failing add records the first error
 * with sm_fail and later adds are no-ops returning -1), then model_finalize(), which checks
 * the graph, allocates the parameter store and plans the arena. Architectures from the config
 * are assembled by model_build() (model/builder.c). */
#ifndef SMOECAST_MODEL_MODEL_H
#define SMOECAST_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/rng.h"
#include "moe/point_moe.h"
#include "moe/routing_metrics.h"
#include "moe/smoe.h"
#include "nn/activation.h"
#include "nn/conv2d.h"
#include "nn/norm.h"
#include "nn/params.h"

typedef enum {
    LAYER_CONV = 0,        /* nn/conv2d (any odd kernel, stride 1/2, pad mode, optional bias) */
    LAYER_CONV_T,          /* nn/conv_transpose (e.g. 2x2 stride 2 up-sampling in the U-Net) */
    LAYER_BATCHNORM,       /* BatchNorm2d, torch defaults (momentum 0.1, eps 1e-5, affine) */
    LAYER_ACT,             /* activation */
    LAYER_DROPOUT,         /* dropout (training only) */
    LAYER_MAXPOOL,         /* 2x2 stride 2 */
    LAYER_AVGPOOL,         /* 2x2 stride 2 */
    LAYER_UPSAMPLE,        /* x2 nearest or bilinear */
    LAYER_ADD,             /* residual add of two slots */
    LAYER_CONCAT,          /* channel concat of two slots (a then b) */
    LAYER_BIAS,            /* per-channel bias (after an SMoE layer) */
    LAYER_SMOE,            /* Spatial Mixture-of-Experts (moe/smoe.h) */
    LAYER_PMOE,            /* point-gated MoE (moe/point_moe.h) */
    LAYER_KIND_COUNT
} layer_kind;

/* How model_init_params() initialises a layer's weights. */
typedef enum {
    INIT_TORCH_DEFAULT = 0,   /* torch's nn.Conv2d defaults: kaiming_uniform_(a = sqrt(5)),
                                 bias U(+-1/sqrt(fan_in)) */
    INIT_KAIMING_RELU = 1     /* SMoE reference builder: Kaiming-uniform with ReLU gain, bias 0 */
} init_mode;

typedef struct sm_model sm_model;

/* An empty graph whose input is (batch, c_in, h, w). NULL when out of memory. */
sm_model *model_create(int c_in, int h, int w);
void model_free(sm_model *m);

/* ---- graph construction (each returns the new output slot, or -1 after sm_fail) ---- */
int model_add_conv(sm_model *m, const char *name, int in, int c_out, int kernel, int stride,
                   pad_mode pad, int bias, init_mode init);
/* torch ConvTranspose2d(c_in, c_out, kernel, stride, padding = 0), zero padding. */
int model_add_conv_transpose(sm_model *m, const char *name, int in, int c_out, int kernel,
                             int stride, int bias, init_mode init);
int model_add_batchnorm(sm_model *m, const char *name, int in);
int model_add_act(sm_model *m, int in, act_kind kind, float alpha);
int model_add_dropout(sm_model *m, int in, float p);
int model_add_pool(sm_model *m, int in, int max_pool);
int model_add_upsample(sm_model *m, int in, int bilinear);
int model_add_add(sm_model *m, int a, int b);
int model_add_concat(sm_model *m, int a, int b);
int model_add_bias(sm_model *m, const char *name, int in);
/* SMoE layer: `tmpl` gives n_experts, k (= output channels), kernel, pad, gate and the
 * routing/RC/damping options (smoe_shape_defaults + edits); batch/c_in/h/w are filled in
 * from the graph. Initialised by smoe_init (experts Kaiming-ReLU, latent gate U(-a, a)).
 * aux (nullable): weights of the reference's auxiliary losses (importance, load, spatial
 * agreement), added to the gate gradient in backward and to model_aux_loss(). */
int model_add_smoe(sm_model *m, const char *name, int in, const smoe_shape *tmpl,
                   const smoe_aux_weights *aux);
/* Point-gated MoE layer (gate-weighted sum of conv-block experts): `tmpl` gives c_out, experts,
 * k, hidden, kernel, pad, gate and its options; batch/c_in/h/w come from the graph. aux
 * (nullable): the balancing-loss weights (importance, load, switch, entropy, similarity). */
int model_add_pmoe(sm_model *m, const char *name, int in, const pmoe_shape *tmpl,
                   const pmoe_aux_weights *aux);
/* Which slot is the model output (default: the last layer's). */
int model_set_output(sm_model *m, int slot);

/* Check the graph, finalize the parameter store and plan the arena for batches up to
 * max_batch. with_grads == 0 plans an inference-only arena (no activation gradients;
 * model_backward then fails). SM_OK, or the first construction error / SM_ERR_NUMERIC (out of
 * memory). */
int model_finalize(sm_model *m, int max_batch, int with_grads);
/* Re-plan the arena for another maximum batch (allocation: call between epochs, not steps).
 * The layer workspace is sized for the current nn thread count (nn/threads.h): call
 * nn_set_threads before model_finalize / model_plan; the passes refuse to run with more
 * threads than planned for (SM_ERR_USAGE). */
int model_plan(sm_model *m, int max_batch, int with_grads);
/* Batch size of the next passes (1 .. planned max_batch). SM_OK or SM_ERR_USAGE. */
int model_set_batch(sm_model *m, int batch);
int model_batch(const sm_model *m);
int model_max_batch(const sm_model *m);
/* Data-parallel training: with first >= 0, training forwards draw ONE key from their rng and
 * give sample b of the batch its own dropout stream (key, first + b), where first is the
 * position of the batch's first sample in the global batch; so masks do not depend on the
 * number of ranks. first = -1 (default): draws in element order from the rng. */
void model_set_sample_offset(sm_model *m, int64_t first);
/* Data-parallel MoE layers: with dist on (max_global_batch > 0), training passes draw every
 * random number of the MoE layers per global sample or per step (point-gated gate noise from
 * the stream (step key, global sample), similarity pairs over the global batch's tokens, SMoE
 * gate noise as sample b's block of a per-step stream), run the capacity selection over the
 * global batch and sum the importance / load / switch / entropy / similarity statistics over
 * processes with `reduce` (moe/point_moe.h pmoe_dist; NULL: one process). So `size`
 * processes holding consecutive shards of a global batch (process `rank` the rank-th shard)
 * compute what one process computes on the whole batch.
 * Needs model_set_shard (or model_set_sample_offset) before each training forward.
 * max_global_batch: the largest global batch; 0 switches dist off. Allocates a scratch
 * buffer for the planned (local) batch: call after model_plan.
 * SM_OK or SM_ERR_NUMERIC (out of memory). */
int model_set_dist(sm_model *m, norm_reduce_fn reduce, void *arg, int rank, int size, int max_global_batch);
/* The next batch is samples first .. first + batch - 1 of a global batch of global_batch
 * samples (model_set_sample_offset plus the global size, for model_set_dist). */
void model_set_shard(sm_model *m, int64_t first, int global_batch);
/* Synchronised BatchNorm (nn/norm.h batchnorm2d_*_sync): training forwards/backwards reduce
 * the BatchNorm sums with `reduce` (e.g. an MPI allreduce), so the statistics are those of the
 * global batch. NULL switches back to per-process statistics. SM_OK or SM_ERR_NUMERIC (OOM). */
int model_set_batchnorm_sync(sm_model *m, norm_reduce_fn reduce, void *arg);
/* For a process with no sample in this step: takes part in every BatchNorm and MoE reduction
 * of one training forward + backward with zero contributions (so the others do not wait
 * forever). */
int model_sync_idle(sm_model *m);

/* Gradient-ready hook (data-parallel overlap, core/dist.h dist_grad_sync_ready): called by
 * model_backward (and model_sync_idle) after each layer, in reverse layer order, with the
 * store offset from which every parameter gradient to the end of the store is final. NULL
 * switches it off. After model_finalize. SM_OK, SM_ERR_USAGE or SM_ERR_NUMERIC (OOM). A
 * non-zero return of fn ends the backward with that status. */
typedef int (*model_grad_ready_fn)(size_t first, void *arg);
int model_set_grad_ready(sm_model *m, model_grad_ready_fn fn, void *arg);

/* Point-gated layers with model.moe.attention.distill (moe/point_moe.h): model_distills is 1
 * when the model has one. Their evaluation forwards route with the student gate and compute
 * only the selected experts; with model_set_distill_check(m, 1) they also run every expert and
 * the attention teacher, so that the layer stats hold the distillation loss and the
 * student/teacher top-1 agreement (routing metrics), at the cost of a dense pass. The outputs
 * agree with the sparse pass to rounding. Off by default. */
int model_distills(const sm_model *m);
void model_set_distill_check(sm_model *m, int on);

/* ---- passes ---- */
/* Weights: torch-compatible defaults or the layer's init_mode; BatchNorm weight 1, bias 0,
 * running mean 0, running var 1; SMoE layers by smoe_init. Draws from `rng` in layer order. */
void model_init_params(sm_model *m, rng_t *rng);
/* The input buffer (batch, c_in, H, W) to fill before model_forward. */
float *model_input(sm_model *m);
/* Output (batch, c_out, H', W') after model_forward, and its gradient buffer to fill with
 * dL/d(output) before model_backward (the caller writes every element). */
float *model_output(sm_model *m);
float *model_output_grad(sm_model *m);
/* training: BatchNorm batch statistics + running-stat update, dropout, gate noise; a
 * distilled point-gated layer routes with its attention teacher in training and with its
 * student otherwise. `rng`: the dropout / gate-noise stream (may be NULL when not training). */
int model_forward(sm_model *m, int training, rng_t *rng);
/* Backward of the last (training) forward from model_output_grad(): accumulates parameter
 * gradients; MoE layers add their auxiliary-loss gradients (RC loss -> gate, distillation ->
 * student gate). SM_ERR_USAGE after an evaluation forward of a model that distils. */
int model_backward(sm_model *m);
void model_zero_grad(sm_model *m);
/* Sum of the MoE auxiliary losses of the last backward (RC losses plus the weighted
 * importance / load / spatial-agreement losses), 0 without MoE layers. These losses train the
 * gates only; add the value to the main loss for logging. */
double model_aux_loss(const sm_model *m);

/* ---- inspection ---- */
param_store *model_params(sm_model *m);
const param_store *model_params_const(const sm_model *m);
int model_c_in(const sm_model *m);
int model_c_out(const sm_model *m);
int model_h(const sm_model *m);
int model_w(const sm_model *m);
int model_out_h(const sm_model *m);
int model_out_w(const sm_model *m);
int model_layer_count(const sm_model *m);
layer_kind model_layer_kind(const sm_model *m, int layer);
const char *model_layer_name(const sm_model *m, int layer);
const char *layer_kind_name(layer_kind kind);
/* Trainable parameters of one layer / of the model. */
size_t model_layer_param_count(const sm_model *m, int layer);
size_t model_param_count(const sm_model *m);
/* Arena and workspace sizes in bytes (after model_finalize). */
size_t model_arena_bytes(const sm_model *m);
size_t model_workspace_bytes(const sm_model *m);
/* One line per layer: index, name, kind, input -> output shape, trainable parameters; then the
 * totals and memory plan. */
void model_summary(const sm_model *m, FILE *f);

/* After model_forward: index of the first layer whose output holds a NaN/Inf, or -1 (to stop
 * training and say where it went wrong; scans the activations, so call it when the loss is not
 * finite). For gradients use param_store_all_finite() and model_param_layer() on the tensor. */
int model_first_nonfinite_layer(const sm_model *m);
/* The layer owning param_store tensor `param_id`, or -1. */
int model_param_layer(const sm_model *m, int param_id);

/* Per-layer profile of the passes in process CPU time (all threads; off by default; turning it
 * on resets it; the first call allocates, so call it before training). model_profile_print:
 * mean CPU ms per pass and layer. */
int model_set_profile(sm_model *m, int on);
void model_profile_print(const sm_model *m, FILE *f);

/* ---- MoE layers (expert maps, routing metrics) ---- */
typedef struct {
    int layer;                 /* index in the graph */
    const char *name;          /* layer name, e.g. "conv4" */
    layer_kind kind;           /* LAYER_SMOE or LAYER_PMOE */
    int n_experts, k;
    int h, w;                  /* the layer's grid (coarser than the model's inside a U-Net) */
    int param_first, n_params; /* the layer's param_store ids are param_first .. + n_params - 1 */
    int param_expert;          /* id of the first expert tensor ("<name>.expert_weight" / _w1) */
    int param_gate;            /* id of the (first) gate tensor ("<name>.gate_latent", ...) */
    /* LAYER_SMOE: shape with the current batch, and after model_forward (arena views):
     * gate_raw / gate_route (B, N, H, W), idx (B, k, H, W), stats SMOE_STAT_* */
    smoe_shape shape;
    const float *gate_raw;     /* raw gate values R */
    const float *gate_route;   /* values ranked and used as weights */
    const int32_t *idx;        /* expert chosen for each output rank at each pixel */
    /* LAYER_PMOE: shape, and after model_forward: gate weights G (B, N, H, W) (0 off the kept
     * set) and the routing distribution for metrics (B, N, H, W); stats PMOE_STAT_* */
    pmoe_shape pshape;
    const float *gate_weights;
    const float *routing_probs;
    const float *stats;
} model_moe_info;

int model_moe_count(const sm_model *m);
/* Routing metrics of MoE layer i from the last model_forward (moe/routing_metrics.h) over all
 * (sample, pixel) tokens: SMoE layers use the softmax over the N raw gate values R, point-gated
 * layers their routing distribution (a distilled layer in evaluation: its student's). labels
 * (nullable): a class per pixel shared by all samples (labels_per_sample 0, e.g. true regions,
 * land/sea) or per (sample, pixel) (1), for MI and ARI. A distilled layer whose last forward
 * ran both gates (training, or evaluation with model_set_distill_check) also gets
 * has_distill, distill_loss and agreement. Allocates a scratch buffer: call once per epoch, not inside a training step.
 * SM_OK, SM_ERR_USAGE (no forward yet, bad layer/labels) or SM_ERR_NUMERIC (out of memory). */
int model_moe_routing_metrics(const sm_model *m, int i, const int32_t *labels,
                              int labels_per_sample, moe_routing_metrics *out);
/* SM_OK or SM_ERR_USAGE (i out of range). */
int model_moe_get(const sm_model *m, int i, model_moe_info *out);

#endif
