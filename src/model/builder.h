/* Model builder: named architectures from the YAML config (model.*), with MoE layers inserted
 * by config (model.moe.*).
 *
 *   cnn       WeatherBench direct CNN: conv(K)+act for each model.channels entry, then a linear
 *             conv(K) to the output channels (default [64,64,64,64] + out, K 5, ELU).
 *   resnet    Rasp & Thuerey style: stem unit, model.blocks residual blocks x + U(U(x)), linear
 *             conv(K) head; unit U = conv(K) -> BatchNorm (model.batchnorm) -> act -> dropout;
 *             width = model.channels[0].
 *   unet      ENS-10 baseline: one level per model.channels entry (e.g. [32,64,128]); each level
 *             two units; 2x2 max-pool down; 2x2 stride-2 transposed conv up; concat skips
 *             [skip, up]; 1x1 linear head. H and W must be divisible by 2^(levels-1).
 *   smoe_net  the SMoE reference stack: per model.channels entry
 *             SMoE(k = channels) -> bias (model.bias) -> BatchNorm (model.batchnorm) -> act,
 *             then an SMoE to the output channels (+ bias). (The reference's optional
 *             residual 1x1 conv + BN has no config key yet.) Kaiming-uniform (ReLU gain) experts, zero biases, latent gate by smoe_init.
 *   mlp       per-grid-point MLP: 1x1 convs with model.channels, act, then a 1x1 linear head.
 * Every unit applies dropout when model.dropout > 0; conv/BN parameters use torch's defaults.
 *
 * Padding: model.padding auto = periodic_lon on a global grid (grid->periodic_lon), zero
 * otherwise.
 *
 * MoE insertion (model.moe.enabled; cnn, resnet, unet, mlp): the replaceable layers are the
 * ordinary convolutions in order (not transposed convs); placement `last` replaces the last
 * model.moe.layers of them, `decoder` the U-Net decoder convs (unet only), `all` every one.
 * A gate in {latent, conv, conv1x1} makes the replacement an SMoE layer: a conv with c_out
 * output channels becomes SMoE with k = c_out ranked outputs and
 * N = max(k, round(c_out * model.moe.experts / model.moe.k)) experts (so the configured
 * k : N ratio is kept; the heat recipe's 1-channel last layer gets N = experts, k = k), expert
 * kernel model.moe.expert_kernel, followed by a per-channel bias when model.bias; its
 * auxiliary losses are model.moe.aux.importance / load / spatial_agreement. With
 * model.moe.outputs = per_channel (needs model.moe.k = 1) a conv with c_out > 1 outputs becomes
 * instead c_out SMoE layers "<name>_ch<j>" (N = experts, k = 1, each with its own gate) whose
 * outputs are concatenated, so output channel j always comes from the top-1 expert of its own
 * gate (e.g. the (o0, o1) head of ensemble post-processing). model.moe.latent_init_scale
 * multiplies the initial values of every latent gate (default 1: smoe_init's range).
 * A gate in {softmax_topk, laplace, hmoe, attention} makes it a point-gated MoE layer
 * (moe/point_moe.h) with c_out outputs: model.moe.experts experts (hmoe: groups x
 * experts_per_group, k = k_outer x k_inner, levels SS/SL/LL), top model.moe.k, expert blocks
 * conv(expert_kernel) -> expert_hidden -> ReLU -> 1x1, attention dimension
 * model.moe.attention.hidden, learned gate noise when model.moe.noise, capacity
 * model.moe.capacity_factor (null: off), aux importance / load / switch / entropy /
 * similarity (beta_same, beta_diff, pairs), and with model.moe.attention.distill a student gate
 * trained with weight attention.distill_weight (gate attention only; error otherwise).
 * smoe_net takes SMoE gates only; its activation is ReLU while model.activation has its
 * default (elu), otherwise the one given. */
#ifndef SMOECAST_MODEL_BUILDER_H
#define SMOECAST_MODEL_BUILDER_H

#include "core/config.h"
#include "grid/grid.h"
#include "model/model.h"

/* Build, finalize (arena for `batch`, with gradients when with_grads) and initialise the
 * weights from `seed` (run.seed; rng stream "init"). SM_OK or SM_ERR_USAGE naming the config
 * key. c_in / c_out: input and output channels; the grid gives H x W and periodicity. */
int model_build(const model_config *mc, int c_in, int c_out, const grid *g, int batch,
                int with_grads, uint64_t seed, sm_model **out);
/* The same on a bare H x W size (periodic_lon: the grid wraps in longitude). */
int model_build_dims(const model_config *mc, int c_in, int c_out, int h, int w, int periodic_lon,
                     int batch, int with_grads, uint64_t seed, sm_model **out);

/* The rng stream used for weight initialisation (core/rng.h streams per purpose). */
#define MODEL_RNG_STREAM_INIT 11u

#endif
