/* `smoecast train`: the training engine for forecast models. Reads samples from a dataset
 * (data/samples.h), builds the network from the config (model/builder.h), trains with the
 * configured loss, optimiser and schedule, validates every epoch, and writes best.nc / last.nc
 * checkpoints and a JSON-lines metrics log into output.dir. */
#ifndef SMOECAST_TASKS_TRAIN_H
#define SMOECAST_TASKS_TRAIN_H

#include "core/config.h"

#include <stdint.h>

typedef struct {
    int64_t epochs_done;
    int64_t steps_done;
    double best_val;        /* best validation loss (normalised units) */
    int64_t best_epoch;
    int stopped_early;
    int members;            /* seed ensemble: members trained; the fields above are the last one's */
} train_result;

/* resume: continue from output.dir/last.nc (exact: same weights, optimiser, schedule and data
 * order as an uninterrupted run). With training.members = N > 1, N runs one after another, each
 * with run.seed + i into output.dir/member<i> (a member without a last.nc starts afresh under
 * --resume). Returns SM_OK, SM_ERR_USAGE/IO for bad config or data,
 * SM_ERR_NUMERIC when the loss or a gradient becomes NaN/Inf (the last good checkpoint is
 * kept), SM_ERR_INTERRUPTED after SIGINT (last.nc then holds the interrupted state). */
int train_run(const sm_config *cfg, int resume, train_result *result);

/* Helpers shared with forecasting: the grid of a dataset, and normalisation statistics restored
 * from a loaded checkpoint state (arrays "mean", "std", "tend_std"). */
#include "data/samples.h"
#include "grid/grid.h"
#include "model/checkpoint.h"
int train_grid_from_dataset(const dataset *ds, grid **out);
/* The member directories of a seed-ensemble run: "<dir>/member<i>" (SM_ERR_USAGE if too long). */
int train_member_dir(const char *run_dir, int member, char *out, size_t cap);
int train_stats_from_checkpoint(sample_layout *L, const ckpt_state *st, const char *path);

/* RNG streams of the training engine (core/rng.h: one stream per purpose). */
#define TRAIN_RNG_STREAM_SHUFFLE 21u
#define TRAIN_RNG_STREAM_DROPOUT 22u
#define TRAIN_RNG_STREAM_ROLLOUT 23u

#endif
