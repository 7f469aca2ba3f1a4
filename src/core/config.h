/* Experiment configuration: YAML (libyaml) -> typed struct with documented defaults.
 *
 * Every key is declared once in the schema (config_schema.c) with its type, default, range and
 * meaning; docs/config.md is generated from that table (`smoecast config --doc`). Unknown keys,
 * wrong types, out-of-range values and missing required keys ("???") fail with file:line.
 * Overrides "key.sub=value" (anemoi/Hydra style) are parsed as YAML and applied on top. */
#ifndef SMOECAST_CORE_CONFIG_H
#define SMOECAST_CORE_CONFIG_H

#include <stddef.h>

#define CFG_STR 128
#define CFG_PATH 1024
#define CFG_LIST_MAX 64

typedef struct {
    int n;
    char items[CFG_LIST_MAX][CFG_PATH];
} cfg_strlist;

typedef struct {
    int n;
    double items[CFG_LIST_MAX];
} cfg_numlist;

typedef struct {
    char name[CFG_STR];
    long seed;
    int threads;
} run_config;

typedef struct {
    char dataset[CFG_PATH];
    char grid[CFG_STR];
    cfg_strlist prognostic;
    cfg_strlist forcing;
    cfg_strlist diagnostic;
    char train_start[CFG_STR], train_end[CFG_STR];
    char val_start[CFG_STR], val_end[CFG_STR];
    char test_start[CFG_STR], test_end[CFG_STR];
    char lead_time[CFG_STR];
    char step[CFG_STR];
    cfg_strlist leads;
    int history;
    char history_step[CFG_STR];
    char normalisation[CFG_STR];
    int tendency;
    int lead_tendency_scale;
    int relative_inputs;
    int recent_days;
} data_config;

typedef struct {
    int enabled;
    double quantile;
} rc_loss_config;

typedef struct {
    int enabled;
    double factor;
} damping_config;

typedef struct {
    double beta_same, beta_diff;
    int pairs;
} similarity_config;

typedef struct {
    double importance, load, switch_loss, entropy, spatial_agreement;
    similarity_config similarity;
} aux_config;

typedef struct {
    int groups, experts_per_group, k_outer, k_inner;
    char levels[CFG_STR];
} hmoe_config;

typedef struct {
    int hidden;
    int distill;
    double distill_weight;
} attention_config;

typedef struct {
    int enabled;
    char placement[CFG_STR];
    int layers;
    char gate[CFG_STR];
    char outputs[CFG_STR];  /* SMoE gates: "ranked" or "per_channel" */
    double latent_init_scale; /* latent gate init U(-a s, a s), a = sqrt(3N/k) */
    int experts;
    int k;
    int weighted;
    int softmax;
    int noise;
    rc_loss_config rc_loss;
    damping_config damping;
    aux_config aux;
    double capacity_factor; /* NaN when null (no capacity limit) */
    int expert_kernel;
    int expert_hidden;
    hmoe_config hmoe;
    attention_config attention;
} moe_config;

typedef struct {
    char architecture[CFG_STR];
    cfg_numlist channels;
    int kernel;
    char activation[CFG_STR];
    char padding[CFG_STR];
    double dropout;
    int batchnorm;
    int residual;
    int blocks;
    int bias;
    moe_config moe;
} model_config;

typedef struct {
    int epochs;
    int batch_size;
    double lr;
    char optimizer[CFG_STR];
    double momentum;
    double weight_decay;
    double beta1, beta2, eps;
    double grad_clip;
    char lr_scheduler[CFG_STR];
    int step_size;
    double gamma;
    int warmup_epochs;
    double onecycle_pct_start, onecycle_div_factor, onecycle_final_div_factor;
    double plateau_factor;
    int plateau_patience;
    int early_stopping_patience;
    char loss[CFG_STR];
    int steps_per_epoch;
    int rollout;
    int sync_batchnorm;
    char routing_labels[CFG_STR];
    double gate_lr_scale;   /* MoE gate tensors train at lr * gate_lr_scale */
    double ema_decay;       /* exponential moving average of the weights; 0 = off */
    int members;            /* seed ensemble size; > 1: runs in output.dir/member<i> */
} training_config;

typedef struct {
    char dir[CFG_PATH];
    int checkpoint_every;
} output_config;

typedef struct {
    cfg_strlist inputs;
    char output[CFG_PATH];
    char grid[CFG_STR];
    cfg_strlist variables;
    char method[CFG_STR];
    cfg_strlist categorical;
    int skip_bad;
} ingest_config;

typedef struct {
    char method[CFG_STR];
    char target[CFG_STR];
    cfg_strlist predictors;
    char emos_scope[CFG_STR];
    int latlon_features;
    double sigma_floor;
    char forecast[CFG_PATH];
    char truth[CFG_PATH];
    char climate[CFG_PATH];
} postprocess_config;

typedef struct {
    char source_path[CFG_PATH]; /* the file it was loaded from ("" for defaults + overrides) */
    run_config run;
    data_config data;
    model_config model;
    training_config training;
    output_config output;
    ingest_config ingest;
    postprocess_config postprocess;
    unsigned char *is_set;      /* per schema key: given explicitly (file or override) */
} sm_config;

/* Load `path` (NULL: defaults only) and apply overrides "a.b=value". Returns SM_OK or
 * SM_ERR_USAGE / SM_ERR_IO with a file:line message. Free with config_free. */
int config_load(const char *path, int n_overrides, char *const *overrides, sm_config **out);
/* The same from YAML text (e.g. the config stored in a checkpoint); `name` labels messages.
 * Relative paths resolve from the working directory. */
int config_load_text(const char *text, const char *name, int n_overrides, char *const *overrides, sm_config **out);
void config_free(sm_config *cfg);

/* Fails naming the first key below `prefix` ("" = all) that is required ("???") and unset. */
int config_require(const sm_config *cfg, const char *prefix);
int config_is_set(const sm_config *cfg, const char *key);

/* The fully resolved config as YAML that config_load accepts back unchanged (malloc'd). */
char *config_to_yaml(const sm_config *cfg);
/* docs/config.md as Markdown, generated from the schema (malloc'd). */
char *config_doc_markdown(void);

/* Whether an argument looks like an override ("key.sub=value", key made of [A-Za-z0-9_.]). */
int config_is_override(const char *arg);

#endif
