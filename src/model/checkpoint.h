/* Checkpoints: one NetCDF-4 file (netCDF-C) holding everything needed to resume training
 * bit-exactly or to run the model later:
 *
 *   /              attributes format = "smoecast-checkpoint", format_version, smoecast_version,
 *                  architecture, config (the resolved YAML, config_to_yaml), input_variables /
 *                  output_variables (comma-separated), c_in, c_out, epoch, step, best_score,
 *                  best_epoch
 *   /grid          lat(lat), lon(lon) coordinates; attributes name, kind, periodic_lon
 *   /params        one float variable per named tensor of the param store with its shape
 *                  (trainable weights and the BatchNorm running statistics)
 *   /optim         attributes kind, lr, step, hyper-parameters; groups m/ and v/ with one
 *                  variable per trainable tensor (Adam moments / SGD momentum)
 *   /ema           only with an exponential moving average of the weights (training.ema_decay):
 *                  attribute decay; one variable per trainable tensor holding the raw (optimised)
 *                  weights, while /params holds the averaged ones, so that a reader of /params
 *                  (forecast) gets the averaged model and --resume gets both back
 *   /schedule      lr_schedule state (t, lr, best, num_bad, cooldown_counter) and kind
 *   /early_stop    early_stop state (best, best_epoch, epoch, wait, stopped, patience)
 *   /rng           one (state, inc) uint64 pair per named RNG stream
 *   /norm          normalisation statistics: named float arrays given by the caller
 *   /metrics       routing metrics (or any other named float arrays) given by the caller
 *
 * Written atomically through core/outfile.h (temporary name + rename). Loading first checks
 * the format version, the architecture, every tensor's name and shape, the grid and the variable
 * lists against the run, and fails with one precise message (SM_ERR_IO) before touching the model;
 * a truncated or unreadable file is SM_ERR_IO. */
#ifndef SMOECAST_MODEL_CHECKPOINT_H
#define SMOECAST_MODEL_CHECKPOINT_H

#include <stdint.h>

#include "core/config.h"
#include "core/rng.h"
#include "grid/grid.h"
#include "model/model.h"
#include "moe/routing_metrics.h"
#include "nn/optim.h"
#include "nn/schedule.h"

#define CKPT_FORMAT "smoecast-checkpoint"
#define CKPT_FORMAT_VERSION 1
#define CKPT_MAX_RNG 8
#define CKPT_NAME_MAX 64
#define CKPT_MAX_DIMS 4

/* A named float array (normalisation statistics, routing metrics). */
typedef struct {
    char name[CKPT_NAME_MAX];
    int ndim;                       /* 1 .. CKPT_MAX_DIMS */
    size_t shape[CKPT_MAX_DIMS];
    float *data;
} ckpt_array;

/* Training state around the model. For checkpoint_save every non-NULL member is written; for
 * checkpoint_load every non-NULL member is restored (opt, sched, stop and rng[] must already
 * exist: they are overwritten in place). Arrays: on save, norm/metrics are read; on load they
 * are replaced by arrays allocated by the loader (free with checkpoint_state_free_arrays). */
typedef struct {
    int64_t epoch, step;            /* completed epochs / optimiser steps */
    double best_score;              /* best validation score (NaN: none yet) */
    int64_t best_epoch;             /* -1: none */
    optim *opt;
    lr_schedule *sched;
    early_stop *stop;
    int n_rng;
    const char *rng_names[CKPT_MAX_RNG];
    rng_t *rng[CKPT_MAX_RNG];
    /* variable names (nullable); on load they are compared with the checkpoint when given */
    const char *input_variables;    /* comma-separated, e.g. "z500,t850" */
    const char *output_variables;
    int n_norm;
    ckpt_array *norm;
    int n_metrics;
    ckpt_array *metrics;
    /* weight averaging: on save, a non-NULL ema_raw (param_store_size floats at the store's
     * offsets) writes /ema with ema_decay and its trainable tensors; on load, a non-NULL ema_raw
     * receives /ema's tensors and has_ema is set when the checkpoint has /ema (left untouched
     * and 0 otherwise; ema_decay is then the stored decay) */
    float *ema_raw;
    double ema_decay;
    int has_ema;
    int owns_arrays;                /* set by checkpoint_load */
} ckpt_state;

/* A state with best_score NaN, best_epoch -1, everything else zero/NULL. */
void checkpoint_state_init(ckpt_state *st);
void checkpoint_state_free_arrays(ckpt_state *st);
/* Find an array by name in a loaded/filled state (NULL when absent). */
const ckpt_array *checkpoint_find_array(const ckpt_array *arrays, int n, const char *name);

/* Routing metrics of one MoE layer as two checkpoint arrays (no allocation: they point into
 * buf): "<layer>.load_fraction" (N) and "<layer>.routing" (5: CV(importance), H_s, H_u, MI,
 * ARI; MI and ARI are 0 without labels). Append them to ckpt_state.metrics. */
#define CKPT_ROUTING_FLOATS (MOE_METRICS_MAX_EXPERTS + 5)
void checkpoint_routing_arrays(const char *layer, const moe_routing_metrics *rm,
                               float buf[CKPT_ROUTING_FLOATS], ckpt_array out[2]);

/* Write `path` (temp + rename). cfg: the resolved config (its YAML and architecture are stored);
 * g: the grid (nullable for grid-free models); st nullable (parameters only). */
int checkpoint_save(const char *path, const sm_model *m, const sm_config *cfg, const grid *g,
                    const ckpt_state *st);

/* Check `path` against the run (cfg, g and st's variable lists; each nullable = not checked)
 * and the model built from the config, then load parameters, BatchNorm statistics and the
 * non-NULL parts of st. SM_OK, or SM_ERR_IO with a message naming the file and the first
 * difference. */
int checkpoint_load(const char *path, sm_model *m, const sm_config *cfg, const grid *g,
                    ckpt_state *st);

/* The resolved config YAML stored in a checkpoint (malloc'd; caller frees), e.g. to build the
 * model for forecasting. SM_OK or SM_ERR_IO. */
int checkpoint_read_config(const char *path, char **yaml);
/* The stored config parsed by config_load (with `overrides` applied on top), e.g. to build the
 * model of a checkpoint for forecasting. Free with config_free. SM_OK, SM_ERR_IO or the
 * config's SM_ERR_USAGE (message prefixed with the checkpoint's name). */
int checkpoint_load_config(const char *path, int n_overrides, char *const *overrides,
                           sm_config **out);

/* The grid stored in a checkpoint (*g: free with grid_free) and the model's input and output
 * channel counts, e.g. to rebuild its model without the training dataset. SM_OK or SM_ERR_IO
 * (not a complete checkpoint) / SM_ERR_NUMERIC (out of memory). */
int checkpoint_read_grid(const char *path, grid **g, int *c_in, int *c_out);

#endif
