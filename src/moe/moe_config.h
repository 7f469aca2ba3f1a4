/* The `model.moe` YAML section (docs/moe.md): parsed into moe_config, then turned into the
 * layer shapes (smoe_shape for gates latent/conv/conv1x1, pmoe_shape for softmax_topk/laplace/
 * hmoe/attention) once the caller knows the layer's tensor sizes. Unknown keys and bad values
 * fail with "file:line: model.moe.<key>: ..." (SM_ERR_USAGE). */
#ifndef SMOECAST_MOE_MOE_CONFIG_H
#define SMOECAST_MOE_MOE_CONFIG_H

#include "core/yaml_tree.h"
#include "moe/point_moe.h"
#include "moe/smoe.h"

typedef enum { MOE_FAMILY_SMOE = 0, MOE_FAMILY_POINT = 1 } moe_family;

typedef struct {
    char gate[16];            /* latent | conv | conv1x1 | softmax_topk | laplace | hmoe | attention */
    moe_family family;
    int experts, k;           /* default 3, 1 */
    int weighted;             /* SMoE: default 1 */
    int softmax_before_topk;  /* SMoE: default 0 */
    int rc_enabled;           /* SMoE: rc_loss.enabled, default 0 */
    float rc_quantile;        /* rc_loss.quantile, default 0.7 */
    float rc_error_scale;     /* rc_loss.error_scale, default 1 */
    int damping_enabled;      /* damping.enabled, default 0 */
    float damping_factor;     /* damping.factor, default 0 */
    int noise;                /* default 0 for SMoE gates, 1 for the point gates */
    int noise_given;
    float aux_importance, aux_load, aux_switch, aux_entropy, aux_agreement;
    float sim_beta_same, sim_beta_diff;
    int sim_pairs;            /* aux.similarity.pairs, default 4096 */
    float capacity_factor;    /* null / absent: 0 (off) */
    int hmoe_groups, hmoe_experts_per_group, hmoe_k_outer, hmoe_k_inner;  /* 2, 4, 1, 2 */
    char hmoe_levels[3];      /* "LL" (default), "SL", "SS" */
    int kernel;               /* SMoE expert filter size, default 3 */
    int expert_hidden;        /* point experts' hidden width, default 8 */
    int expert_kernel;        /* point experts' first kernel, default 3 */
    int laplace_bias;         /* default 0 */
} moe_config;

void moe_config_defaults(moe_config *c);
/* moe: the `model.moe` map node; file: for messages. */
int moe_config_parse(const ynode *moe, const char *file, moe_config *c);

/* Shapes for one layer (SM_ERR_USAGE when the combination is invalid, e.g. k > experts). */
int moe_config_smoe_shape(const moe_config *c, int batch, int c_in, int h, int w, pad_mode pad,
                          smoe_shape *s);
int moe_config_pmoe_shape(const moe_config *c, int batch, int c_in, int h, int w, int c_out,
                          pad_mode pad, pmoe_shape *s);
smoe_aux_weights moe_config_smoe_aux(const moe_config *c);
pmoe_aux_weights moe_config_pmoe_aux(const moe_config *c);

#endif
