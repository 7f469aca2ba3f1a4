/* Learning-rate schedules and early stopping. All state lives in small plain structs
 * (lr_schedule, early_stop) that a checkpoint saves and restores field by field.
 *
 * A schedule has a counter t (0 at the start) and a current lr. The trainer reads
 * lr_schedule_lr() before each optimiser step and calls lr_schedule_step() to advance:
 *   unit LR_UNIT_STEP   after every optimiser step            (t counts optimiser steps)
 *   unit LR_UNIT_EPOCH  after every epoch's validation        (t counts epochs)
 * ReduceLROnPlateau is always per epoch and takes the validation metric; the others ignore
 * the metric argument. Like torch, the lr used for step/epoch t is the value before the t-th
 * call of lr_schedule_step().
 *
 *   LR_CONSTANT  lr(t) = base_lr
 *   LR_STEP      lr(t) = base_lr * gamma^floor(t / step_size)                      (StepLR)
 *   LR_COSINE    linear warm-up then cosine decay to min_lr (W = warmup, T = total):
 *                  t < W:      base_lr * (f0 + (1 - f0) * t / W)        (f0 = warmup_start_factor)
 *                  W <= t < T: min_lr + (base_lr - min_lr) (1 + cos(pi (t - W) / (T - W))) / 2
 *                  t >= T:     min_lr (torch's CosineAnnealingLR would rise again; we hold)
 *                equals torch SequentialLR([LinearLR(f0, total_iters=W),
 *                CosineAnnealingLR(T_max=T-W, eta_min=min_lr)], milestones=[W]) for t <= T.
 *   LR_ONECYCLE  torch OneCycleLR(max_lr = base_lr, total_steps = T, pct_start = p,
 *                anneal_strategy='cos', div_factor = d, final_div_factor = D, three_phase=False):
 *                cosine rise from base_lr / d to base_lr over the first p T steps, then cosine
 *                fall to base_lr / (d D) at step T - 1; held there afterwards (torch raises).
 *                With cos_anneal(a, b, x) = b + (a - b) (1 + cos(pi x)) / 2 and E = p T - 1:
 *                  t <= E:  cos_anneal(base_lr / d, base_lr, t / E)
 *                  t >  E:  cos_anneal(base_lr, base_lr / (d D), (t - E) / (T - 1 - E))
 *   LR_PLATEAU   torch ReduceLROnPlateau(mode='min'): a metric is better when
 *                metric < best * (1 - threshold) (threshold_mode rel; abs: best - threshold);
 *                after more than `patience` bad epochs lr = max(lr * factor, min_lr) (only if
 *                that lowers it by more than 1e-8), then `cooldown` epochs in which bad epochs
 *                are not counted. A NaN metric counts as a bad epoch. */
#ifndef SMOECAST_NN_SCHEDULE_H
#define SMOECAST_NN_SCHEDULE_H

#include "core/config.h"

#include <stdint.h>

typedef enum { LR_CONSTANT = 0, LR_STEP = 1, LR_COSINE = 2, LR_PLATEAU = 3, LR_ONECYCLE = 4 } lr_kind;
typedef enum { LR_UNIT_STEP = 0, LR_UNIT_EPOCH = 1 } lr_unit;

typedef struct {
    lr_kind kind;
    lr_unit unit;                   /* when lr_schedule_step() is called (LR_PLATEAU: epoch) */
    double base_lr;
    /* LR_STEP */
    int64_t step_size;
    double gamma;
    /* LR_COSINE (and LR_ONECYCLE: total) */
    int64_t warmup, total;
    double warmup_start_factor;     /* f0 in [0, 1] */
    double min_lr;                  /* LR_COSINE floor and LR_PLATEAU min_lr */
    /* LR_ONECYCLE */
    double pct_start;               /* fraction of total spent rising, (0, 1) */
    double div_factor;              /* start lr = base_lr / div_factor */
    double final_div_factor;        /* end lr = start lr / final_div_factor */
    /* LR_PLATEAU */
    double factor;                  /* in [0, 1) */
    int patience, cooldown;
    double threshold;
    int threshold_abs;              /* 0: relative (torch default), 1: absolute */
} lr_schedule_config;

typedef struct {
    lr_schedule_config cfg;
    int64_t t;                      /* calls of lr_schedule_step() so far */
    double lr;                      /* current learning rate */
    /* LR_PLATEAU state */
    double best;                    /* +inf initially */
    int num_bad;
    int cooldown_counter;
} lr_schedule;

/* Defaults (torch's): unit per step (LR_PLATEAU: per epoch), gamma 0.1, factor 0.1,
 * patience 10, threshold 1e-4 relative, pct_start 0.3, div_factor 25, final_div_factor 1e4;
 * warmup_start_factor 0, everything else 0 (LR_STEP needs step_size, LR_COSINE and
 * LR_ONECYCLE total set by the caller). */
lr_schedule_config lr_schedule_default_config(lr_kind kind, double base_lr);
/* Name "constant" / "step" / "cosine" / "plateau" / "onecycle" -> kind; SM_OK or SM_ERR_USAGE. */
int lr_kind_from_name(const char *name, lr_kind *kind);
const char *lr_kind_name(lr_kind kind);

/* From the `training` config section (per epoch except onecycle): lr_scheduler, lr, step_size,
 * gamma; cosine: warmup = warmup_epochs, total = epochs, warmup_start_factor = 1/(warmup + 1)
 * (so the warm-up lrs are base * (t + 1)/(warmup + 1), never 0), min_lr 0; plateau:
 * plateau_factor, plateau_patience, threshold 1e-4 (rel), cooldown 0, min_lr 0; onecycle: per
 * optimiser step, total = epochs * steps_per_epoch, onecycle_pct_start, onecycle_div_factor,
 * onecycle_final_div_factor. SM_OK or SM_ERR_USAGE. */
int lr_schedule_config_from_training(const training_config *t, int64_t steps_per_epoch,
                                     lr_schedule_config *out);

/* Validate the config and start at t = 0. SM_OK or SM_ERR_USAGE (with the field named). */
int lr_schedule_init(lr_schedule *s, const lr_schedule_config *cfg);
double lr_schedule_lr(const lr_schedule *s);
/* Closed-form lr(t) of a time-based schedule (LR_PLATEAU: the current lr). */
double lr_schedule_at(const lr_schedule *s, int64_t t);
/* Advance one unit; `metric` is the validation score for LR_PLATEAU (ignored otherwise).
 * Returns the new lr. */
double lr_schedule_step(lr_schedule *s, double metric);

/* Early stopping on a validation score to be minimised (Keras EarlyStopping semantics):
 * improvement when metric < best - min_delta; then best = metric and wait = 0, else wait += 1;
 * stop once wait >= patience. A NaN metric is never an improvement. */
typedef struct {
    int patience;
    double min_delta;
    double best;                    /* +inf initially */
    int64_t best_epoch;             /* -1 initially */
    int64_t epoch;                  /* updates so far */
    int wait;
    int stopped;
} early_stop;

/* SM_OK or SM_ERR_USAGE (patience < 1 or min_delta < 0). */
int early_stop_init(early_stop *es, int patience, double min_delta);
/* Record one epoch's metric. Returns 1 when training should stop (stays 1 afterwards);
 * *improved (nullable) is 1 when this metric is the new best (save the best checkpoint). */
int early_stop_update(early_stop *es, double metric, int *improved);

#endif
