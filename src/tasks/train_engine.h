/* The shared training engine: the epoch loop behind `smoecast train` (forecast models) and
 * `smoecast postprocess fit` (CRPS-trained post-processing networks). A task supplies the
 * samples, the loss and the validation metrics through train_task; the engine owns the
 * optimiser, LR schedule, early stopping, dropout RNG, the per-epoch shuffling (a function of
 * (seed, epoch) only), validation, best.nc / last.nc checkpoints (with the task's named
 * arrays, e.g. normalisation statistics), exact --resume, progress bars, metrics.jsonl,
 * the NaN guard and SIGINT handling.
 *
 * training.ema_decay > 0 keeps an exponential moving average of the trainable weights, updated
 * after every optimiser step: validation, best-checkpoint selection and the /params of best.nc
 * and last.nc use the average (so forecast loads it without knowing), the raw weights go to the
 * checkpoints' /ema group for an exact --resume, and on return the model holds the average.
 *
 * Data-parallel (under mpirun/srun, core/dist.h): every global batch of training.batch_size
 * samples (which must be a multiple of the number of ranks) is split into contiguous shards,
 * one per rank; each rank assembles only its shard, the gradients are weighted by
 * shard / batch size and summed with one allreduce over the flat gradient buffer, so every
 * rank takes the same optimiser step. Validation losses and the task's accumulators
 * (val_reduce) are summed over ranks; rank 0 alone writes metrics.jsonl and checkpoints. */
#ifndef SMOECAST_TASKS_TRAIN_ENGINE_H
#define SMOECAST_TASKS_TRAIN_ENGINE_H

#include "core/config.h"
#include "grid/grid.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "tasks/train.h"

#include <stdint.h>
#include <stdio.h>

typedef struct {
    void *ctx;
    const int64_t *train_idx;      /* sample ids passed back to assemble */
    int64_t n_train;
    const int64_t *val_idx;
    int64_t n_val;
    const char *input_vars, *output_vars;   /* stored in / checked against checkpoints */
    int n_arrays;                  /* named arrays saved with every checkpoint (ckpt "norm") */
    ckpt_array *arrays;
    const char *resume_command;    /* e.g. "smoecast train --resume" (for messages) */
    /* resume: restore the task's arrays from a loaded checkpoint state */
    int (*restore)(void *ctx, const ckpt_state *st, const char *path);
    /* fill the model input (n, C_in, H, W) and the task's own target for samples idx[0..n) */
    int (*assemble)(void *ctx, const int64_t *idx, int n, float *input);
    /* loss of the last assembled batch for output out, and its gradient (dout is zeroed by
     * the engine; the task accumulates into it) */
    double (*loss)(void *ctx, const float *out, int n);
    void (*loss_grad)(void *ctx, float *dout, const float *out, int n);
    /* validation: reset, then once per batch after the forward pass, then a log fragment
     * (e.g. "rmse z500 0.5") and the JSON members for metrics.jsonl (e.g. "\"val_rmse\": {...}") */
    void (*val_reset)(void *ctx);
    int (*val_add)(void *ctx, const int64_t *idx, int n, const float *out);
    void (*val_text)(void *ctx, char *buf, size_t len);
    void (*val_json)(void *ctx, FILE *f);
    /* data-parallel runs (core/dist.h, more than one rank): sum the validation accumulators
     * over ranks after every rank has added its share of the validation set (may be NULL) */
    int (*val_reduce)(void *ctx);
    /* categorical labels (h x w, -1 missing; nullable) for the routing metrics: MI and ARI of
     * every MoE layer on this grid are computed against them each epoch */
    const int32_t *routing_labels;
    int routing_labels_h, routing_labels_w;
} train_task;

/* Trains model m (built with gradients for `batch` samples) on the task. output.dir is
 * created; resume continues from output.dir/last.nc. Statuses as train_run. */
int train_engine_run(const sm_config *cfg, sm_model *m, const grid *g, int batch, train_task *task, int resume,
                     train_result *result);

#endif
