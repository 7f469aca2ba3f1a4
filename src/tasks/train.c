/* The training engine behind `smoecast train` (see train.h). */
#include "tasks/train.h"
#include "tasks/train_engine.h"
#include "core/dist.h"
#include "core/log.h"
#include "core/outfile.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/samples.h"
#include "grid/grid.h"
#include "model/builder.h"
#include "model/checkpoint.h"
#include "moe/moe_balance.h"
#include "moe/routing_metrics.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "nn/threads.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>


typedef enum { TRAIN_LOSS_MSE, TRAIN_LOSS_LAT_MSE, TRAIN_LOSS_MAE } train_loss;

/* Everything one forecast training run owns; released by trainer_free. The epoch loop,
 * optimiser, checkpoints and metrics log are the shared engine's (tasks/train_engine.h). */
typedef struct {
    const sm_config *cfg;
    dataset *ds;
    grid *g;
    sample_layout L;
    sample_split train, val, test;
    sample_cache *cache;
    sm_model *m;
    train_loss loss;
    float *wlat;          /* H latitude weights (1 for x/y grids and plain losses) */
    float *target;        /* (batch, C_out, H, W) */
    float *state0;        /* (n_prog, H, W) raw fields at the init time, for validation RMSE */
    float *phys_out, *phys_true;
    int batch;
    char input_vars[1024], output_vars[1024];
    ckpt_array norm[4];   /* normalisation statistics saved with every checkpoint */
    int n_norm;
    int32_t *routing_labels;   /* (H, W) training.routing_labels, or NULL */
    double wsum[SAMPLES_MAX_VARS], esum[SAMPLES_MAX_VARS];   /* validation RMSE sums */
    /* training.rollout (pushforward): */
    int rollout;
    rng_t rollout_rng;    /* draws r per training batch (not restored by --resume) */
    uint8_t *is_train_init;  /* ntimes flags: a time index is a training initialisation time */
    float *pf_state;      /* (batch, history * n_prog, H, W) raw prognostic histories */
    const float **pf_hist;
} trainer;

static void trainer_free(trainer *T)
{
    model_free(T->m);
    sample_cache_free(T->cache);
    samples_split_free(&T->train);
    samples_split_free(&T->val);
    samples_split_free(&T->test);
    samples_layout_free(&T->L);
    grid_free(T->g);
    free(T->routing_labels);
    if (T->ds) dataset_close(T->ds);
    free(T->wlat);
    free(T->target);
    free(T->state0);
    free(T->phys_out);
    free(T->phys_true);
    free(T->is_train_init);
    free(T->pf_state);
    free(T->pf_hist);
}

int train_grid_from_dataset(const dataset *ds, grid **out)
{
    const char *name = ds->grid_name[0] ? ds->grid_name : "native";
    if (ds->is_latlon) return grid_create_latlon(name, ds->nlat, ds->lat, ds->nlon, ds->lon, out);
    return grid_create_xy(name, ds->nlat, ds->lat, ds->nlon, ds->lon, out);
}

/* Normalisation statistics <-> checkpoint arrays ("mean", "std", "tend_std", and with
 * data.lead_tendency_scale "tend_std_lead"). Returns the number of arrays. */
static int stats_to_arrays(const sample_layout *L, ckpt_array arrays[4])
{
    const norm_stats *S = &L->stats;
    memset(arrays, 0, 4 * sizeof *arrays);
    snprintf(arrays[0].name, CKPT_NAME_MAX, "mean");
    snprintf(arrays[1].name, CKPT_NAME_MAX, "std");
    for (int a = 0; a < 2; a++) {
        arrays[a].ndim = 2;
        arrays[a].shape[0] = (size_t)S->nvars;
        arrays[a].shape[1] = (size_t)S->npts;
    }
    arrays[0].data = S->mean;
    arrays[1].data = S->std;
    snprintf(arrays[2].name, CKPT_NAME_MAX, "tend_std");
    arrays[2].ndim = 1;
    arrays[2].shape[0] = L->n_prog > 0 ? (size_t)L->n_prog : 1;
    arrays[2].data = (float *)S->tend_std;
    if (!L->lead_tendency) return 3;
    snprintf(arrays[3].name, CKPT_NAME_MAX, "tend_std_lead");
    arrays[3].ndim = 2;
    arrays[3].shape[0] = (size_t)L->n_leads;
    arrays[3].shape[1] = (size_t)L->n_prog;
    arrays[3].data = (float *)S->tend_std_lead;
    return 4;
}

int train_stats_from_checkpoint(sample_layout *L, const ckpt_state *st, const char *path)
{
    norm_stats *S = &L->stats;
    const ckpt_array *mean = checkpoint_find_array(st->norm, st->n_norm, "mean");
    const ckpt_array *sd = checkpoint_find_array(st->norm, st->n_norm, "std");
    const ckpt_array *tend = checkpoint_find_array(st->norm, st->n_norm, "tend_std");
    if (!mean || !sd || !tend || mean->ndim != 2 || mean->shape[0] != (size_t)S->nvars)
        return sm_fail(SM_ERR_IO, "%s: normalisation statistics missing or for other variables", path);
    size_t npts = mean->shape[1];
    if (npts != 1 && npts != (size_t)L->h * L->w)
        return sm_fail(SM_ERR_IO, "%s: normalisation statistics are for another grid size", path);
    S->npts = (int)npts;
    free(S->mean);
    free(S->std);
    S->mean = malloc(sizeof(float) * S->nvars * npts);
    S->std = malloc(sizeof(float) * S->nvars * npts);
    if (!S->mean || !S->std) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    memcpy(S->mean, mean->data, sizeof(float) * S->nvars * npts);
    memcpy(S->std, sd->data, sizeof(float) * S->nvars * npts);
    for (int i = 0; i < L->n_prog && (size_t)i < tend->shape[0]; i++) S->tend_std[i] = tend->data[i];
    if (L->lead_tendency) {
        const ckpt_array *tl = checkpoint_find_array(st->norm, st->n_norm, "tend_std_lead");
        if (!tl || tl->ndim != 2 || tl->shape[0] != (size_t)L->n_leads || tl->shape[1] != (size_t)L->n_prog)
            return sm_fail(SM_ERR_IO, "%s: per-lead tendency scales (data.lead_tendency_scale) missing or for other leads", path);
        memcpy(S->tend_std_lead, tl->data, sizeof(float) * (size_t)L->n_leads * L->n_prog);
    }
    return SM_OK;
}

/* ------------------------------------------------------------------ set-up */

/* training.routing_labels: a static categorical dataset variable, or latitude_bands. */
static int load_routing_labels(trainer *T, const char *name)
{
    const dataset *ds = T->ds;
    size_t np = (size_t)ds->nlat * ds->nlon;
    T->routing_labels = malloc(sizeof(int32_t) * np);
    if (!T->routing_labels) return sm_fail(SM_ERR_NUMERIC, "out of memory for training.routing_labels");
    if (!strcmp(name, "latitude_bands")) {
        moe_latitude_band_labels(ds->is_latlon ? ds->lat : NULL, ds->nlat, ds->nlon, T->routing_labels);
        return SM_OK;
    }
    int v = dataset_find_var(ds, name);
    if (v < 0)
        return sm_fail(SM_ERR_USAGE, "training.routing_labels: %s has no variable '%s' (give a static categorical "
                       "variable such as lsm or region, or latitude_bands)", T->cfg->data.dataset, name);
    if (!ds->vars[v].is_static)
        return sm_fail(SM_ERR_USAGE, "training.routing_labels: %s: '%s' varies in time; give a static map",
                       T->cfg->data.dataset, name);
    float *values = malloc(sizeof(float) * np);
    if (!values) return sm_fail(SM_ERR_NUMERIC, "out of memory for training.routing_labels");
    int st = dataset_read(ds, v, 0, 0, values);
    if (!st && moe_labels_from_values(values, np, MOE_LABEL_MAX_CATEGORIES, T->routing_labels) < 0)
        st = sm_fail(SM_ERR_USAGE, "training.routing_labels: %s: '%s' has more than %d distinct values; give a "
                     "categorical map", T->cfg->data.dataset, name, MOE_LABEL_MAX_CATEGORIES);
    free(values);
    return st;
}

/* Normalisation statistics: a pass over every training time. Under MPI rank 0 computes them and
 * broadcasts the result (the other ranks would repeat the same pass over the whole training
 * set); the status goes first so that a failure on rank 0 does not leave the others waiting. */
static int train_compute_stats(trainer *T, const sm_config *cfg)
{
    int mode = !strcmp(cfg->data.normalisation, "per_point") ? 1 : !strcmp(cfg->data.normalisation, "none") ? -1 : 0;
    double t0 = progress_now_seconds();
    int st = SM_OK;
    if (dist_rank() == 0) st = samples_compute_stats(&T->L, T->cache, &T->train, mode);
    if (dist_size() == 1) {
        if (st == SM_OK) log_debug("normalisation statistics: %.3f s", progress_now_seconds() - t0);
        return st;
    }
    int bst = st, rc;
    if ((rc = dist_broadcast(&bst, sizeof bst, 0))) return rc;
    if (bst) return st ? st : sm_fail(bst, "rank 0 failed to compute the normalisation statistics (see its message)");
    norm_stats *S = &T->L.stats;
    int npts = S->npts;
    if ((rc = dist_broadcast(&npts, sizeof npts, 0))) return rc;
    if (dist_rank() != 0) {
        free(S->mean);
        free(S->std);
        S->npts = npts;
        S->mean = malloc(sizeof(float) * (size_t)S->nvars * (size_t)npts);
        S->std = malloc(sizeof(float) * (size_t)S->nvars * (size_t)npts);
        if (!S->mean || !S->std) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    }
    size_t n = (size_t)S->nvars * (size_t)npts * sizeof(float);
    if ((rc = dist_broadcast(S->mean, n, 0)) || (rc = dist_broadcast(S->std, n, 0)) ||
        (rc = dist_broadcast(S->tend_std, sizeof S->tend_std, 0)) ||
        (rc = dist_broadcast(S->tend_std_lead, sizeof S->tend_std_lead, 0)))
        return rc;
    log_debug("normalisation statistics: %.3f s on rank 0, broadcast to %d ranks", progress_now_seconds() - t0, dist_size());
    return SM_OK;
}

static int trainer_setup(trainer *T, const sm_config *cfg, int resume)
{
    T->cfg = cfg;
    int st = config_require(cfg, "data");
    if (st) return st;
    if (cfg->run.threads > 0 || getenv("OMP_NUM_THREADS") == NULL) nn_set_threads(cfg->run.threads);
    if ((st = dataset_open(cfg->data.dataset, &T->ds))) return st;
    if (cfg->data.grid[0] && strcmp(cfg->data.grid, T->ds->grid_name) != 0)
        return sm_fail(SM_ERR_IO, "%s: dataset is on grid '%s' but data.grid is '%s'", cfg->data.dataset, T->ds->grid_name,
                       cfg->data.grid);
    if ((st = samples_layout_init(&T->L, &cfg->data, T->ds))) return st;
    if ((st = samples_splits(&T->L, &cfg->data, T->ds, &T->train, &T->val, &T->test))) return st;
    if ((st = train_grid_from_dataset(T->ds, &T->g))) return st;
    if ((st = sample_cache_create(T->ds, &T->cache))) return st;
    if (cfg->training.routing_labels[0] && (st = load_routing_labels(T, cfg->training.routing_labels))) return st;
    log_info("dataset %s: %d x %d grid, %d times; samples train %lld, validation %lld, test %lld; step %gh",
             cfg->data.dataset, T->ds->nlat, T->ds->nlon, T->ds->ntimes, (long long)T->train.n, (long long)T->val.n,
             (long long)T->test.n, T->L.step_hours);

    samples_variable_lists(&T->L, T->ds, T->input_vars, sizeof T->input_vars, T->output_vars, sizeof T->output_vars);

    T->batch = cfg->training.batch_size;
    if (T->batch > T->train.n) T->batch = (int)T->train.n;
    if ((st = model_build(&cfg->model, T->L.c_in, T->L.c_out, T->g, T->batch, 1, (uint64_t)cfg->run.seed, &T->m))) return st;
    if (model_out_h(T->m) != T->L.h || model_out_w(T->m) != T->L.w)
        return sm_fail(SM_ERR_USAGE, "model.architecture %s changes the grid size (%dx%d -> %dx%d); pick one that keeps it",
                       cfg->model.architecture, T->L.h, T->L.w, model_out_h(T->m), model_out_w(T->m));

    if (!strcmp(cfg->training.loss, "mse"))
        T->loss = TRAIN_LOSS_MSE;
    else if (!strcmp(cfg->training.loss, "lat_mse"))
        T->loss = TRAIN_LOSS_LAT_MSE;
    else if (!strcmp(cfg->training.loss, "mae"))
        T->loss = TRAIN_LOSS_MAE;
    else
        return sm_fail(SM_ERR_USAGE, "training.loss '%s' is for ensemble post-processing; forecasts use mse, lat_mse or mae",
                       cfg->training.loss);

    size_t np = (size_t)T->L.h * T->L.w;
    T->wlat = malloc(sizeof(float) * (size_t)T->L.h);
    T->target = malloc(sizeof(float) * (size_t)T->batch * T->L.c_out * np);
    T->state0 = malloc(sizeof(float) * (size_t)(T->L.n_prog > 0 ? T->L.n_prog : 1) * np);
    T->phys_out = malloc(sizeof(float) * (size_t)T->L.c_out * np);
    T->phys_true = malloc(sizeof(float) * (size_t)T->L.c_out * np);
    if (!T->wlat || !T->target || !T->state0 || !T->phys_out || !T->phys_true)
        return sm_fail(SM_ERR_NUMERIC, "out of memory");
    if (T->ds->is_latlon && T->loss == TRAIN_LOSS_LAT_MSE)
        loss_lat_weights(T->wlat, T->ds->lat, T->L.h);
    else
        for (int j = 0; j < T->L.h; j++) T->wlat[j] = 1.0f;
    T->rollout = cfg->training.rollout;
    if (T->rollout > 1) {
        if (!cfg->data.step[0] || T->L.n_leads > 0)
            return sm_fail(SM_ERR_USAGE, "training.rollout %d needs an autoregressive model (data.step); use 1 for direct models",
                           T->rollout);
        size_t hist_n = (size_t)T->L.history * T->L.n_prog;
        rng_seed(&T->rollout_rng, (uint64_t)cfg->run.seed, TRAIN_RNG_STREAM_ROLLOUT);
        T->is_train_init = calloc((size_t)T->ds->ntimes, 1);
        T->pf_state = malloc(sizeof(float) * (size_t)T->batch * hist_n * np);
        T->pf_hist = malloc(sizeof *T->pf_hist * (size_t)T->batch * hist_n);
        if (!T->is_train_init || !T->pf_state || !T->pf_hist) return sm_fail(SM_ERR_NUMERIC, "out of memory");
        for (int64_t i = 0; i < T->train.n; i++) T->is_train_init[T->train.idx[i]] = 1;
    }
    if (!resume && (st = train_compute_stats(T, cfg))) return st;
    T->n_norm = stats_to_arrays(&T->L, T->norm);
    return SM_OK;
}

/* ------------------------------------------------------------------ the task */

static double loss_value(const trainer *T, const float *out, const float *target, int n)
{
    size_t count = (size_t)n * T->L.c_out * T->L.h * T->L.w;
    switch (T->loss) {
    case TRAIN_LOSS_MSE: return loss_mse_masked_forward(out, target, count);
    case TRAIN_LOSS_MAE: return loss_mae_masked_forward(out, target, count);
    default: return loss_mse_lat_masked_forward(out, target, n * T->L.c_out, T->L.h, T->L.w, T->wlat);
    }
}

static int task_restore(void *ctx, const ckpt_state *st, const char *path)
{
    trainer *T = ctx;
    int s = train_stats_from_checkpoint(&T->L, st, path);
    if (s == SM_OK) T->n_norm = stats_to_arrays(&T->L, T->norm); /* the statistics were reallocated */
    return s;
}

/* training.rollout, the pushforward trick: an autoregressive model trained on one step from
 * the analysis never sees the smoothed, biased states its rollout feeds back, and its error
 * grows over the rollout. Here a training batch starts r steps earlier (sample b: r_b <= r, the
 * most steps whose start is still a training initialisation time), the model forecasts those
 * steps without gradient, and the last step is trained from that forecast state towards the
 * true state one step after the initialisation time. The gradient flows through the last step
 * only (cheap: r extra forward passes). */
/* Time of the analysed state a rollout of `steps` steps towards initialisation `init` starts
 * from: its information time (samples_assemble_state reads no field after it). */
static double rollout_start(const dataset *ds, const sample_layout *L, int64_t init, int steps)
{
    return ds->times[init] - steps * L->step_hours;
}

static int assemble_pushforward(trainer *T, const int64_t *idx, int n, float *input)
{
    const sample_layout *L = &T->L;
    const dataset *ds = T->ds;
    size_t np = (size_t)L->h * L->w, hist_n = (size_t)L->history * L->n_prog, in_n = (size_t)L->c_in * np;
    /* the true targets (and inputs, overwritten below) */
    int st = samples_assemble(L, T->cache, idx, n, input, T->target);
    int r = (int)rng_below(&T->rollout_rng, (uint32_t)T->rollout);
    if (st || r == 0) return st;
    int rb[SAMPLES_MAX_VARS * 64];
    if (n > (int)(sizeof rb / sizeof rb[0])) return sm_fail(SM_ERR_USAGE, "training.rollout: batch size at most %d", (int)(sizeof rb / sizeof rb[0]));
    for (int b = 0; b < n; b++) {
        double t0 = ds->times[idx[b]];
        int k = r, s = (int)idx[b];
        for (; k > 0; k--) {
            int sk = dataset_find_time(ds, t0 - k * L->step_hours);
            if (sk >= 0 && T->is_train_init[sk]) {
                s = sk;
                break;
            }
        }
        rb[b] = k;
        const float *src[SAMPLES_MAX_VARS * 8];
        if ((st = samples_prognostic_history(L, T->cache, s, src))) return st;
        for (size_t j = 0; j < hist_n; j++) {
            memcpy(T->pf_state + ((size_t)b * hist_n + j) * np, src[j], np * sizeof(float));
            T->pf_hist[(size_t)b * hist_n + j] = T->pf_state + ((size_t)b * hist_n + j) * np;
        }
    }
    for (int step = 0; step < r; step++) {
        /* sample b runs its steps at step >= r - rb[b]; the others wait (their input is their
         * start state, the output is discarded) */
        for (int b = 0; b < n && st == SM_OK; b++) {
            int done = step - (r - rb[b]); /* steps sample b has already taken */
            double t = ds->times[idx[b]] - (rb[b] - (done > 0 ? done : 0)) * L->step_hours;
            st = samples_assemble_state(L, T->cache, t, rollout_start(ds, L, idx[b], rb[b]), T->pf_hist + (size_t)b * hist_n,
                                        input + (size_t)b * in_n);
        }
        if (st || (st = model_forward(T->m, 0, NULL))) return st;
        for (int b = 0; b < n; b++) {
            if (step < r - rb[b]) continue;
            float *sb = T->pf_state + (size_t)b * hist_n * np;
            samples_denormalise(L, model_output(T->m) + (size_t)b * L->c_out * np, sb, T->phys_out);
            samples_push_state(L, sb, T->phys_out);
        }
    }
    for (int b = 0; b < n && st == SM_OK; b++) {
        st = samples_assemble_state(L, T->cache, ds->times[idx[b]], rollout_start(ds, L, idx[b], rb[b]),
                                    T->pf_hist + (size_t)b * hist_n, input + (size_t)b * in_n);
        if (st || !L->tendency || rb[b] == 0) continue;
        /* a tendency target is the change from the state the model starts from */
        for (int i = 0; i < L->n_prog; i++) {
            const float *x0 = sample_cache_get(T->cache, L->prog_var[i], (int)idx[b]);
            const float *x0f = T->pf_state + ((size_t)b * hist_n + i) * np;
            float *y = T->target + ((size_t)b * L->c_out + i) * np, inv = 1.0f / L->stats.tend_std[i];
            for (size_t p = 0; p < np; p++) y[p] += (x0[p] - x0f[p]) * inv;
        }
    }
    return st;
}

static int task_assemble(void *ctx, const int64_t *idx, int n, float *input)
{
    trainer *T = ctx;
    /* validation batches (times outside the training period) stay one step from the analysis */
    if (T->rollout > 1 && n > 0 && T->is_train_init[idx[0]]) return assemble_pushforward(T, idx, n, input);
    return samples_assemble(&T->L, T->cache, idx, n, input, T->target);
}

static double task_loss(void *ctx, const float *out, int n)
{
    trainer *T = ctx;
    return loss_value(T, out, T->target, n);
}

static void task_loss_grad(void *ctx, float *dout, const float *out, int n)
{
    trainer *T = ctx;
    switch (T->loss) {
    case TRAIN_LOSS_MSE: loss_mse_masked_backward(dout, out, T->target, (size_t)n * T->L.c_out * T->L.h * T->L.w, 1.0); break;
    case TRAIN_LOSS_MAE: loss_mae_masked_backward(dout, out, T->target, (size_t)n * T->L.c_out * T->L.h * T->L.w, 1.0); break;
    default: loss_mse_lat_masked_backward(dout, out, T->target, n * T->L.c_out, T->L.h, T->L.w, T->wlat, 1.0); break;
    }
}

static void task_val_reset(void *ctx)
{
    trainer *T = ctx;
    memset(T->wsum, 0, sizeof T->wsum);
    memset(T->esum, 0, sizeof T->esum);
}

/* RMSE in physical units per output variable (latitude-weighted on lat-lon grids). */
static int task_val_add(void *ctx, const int64_t *idx, int n, const float *out)
{
    trainer *T = ctx;
    size_t np = (size_t)T->L.h * T->L.w;
    for (int b = 0; b < n; b++) {
        /* A sample of a multi-lead model carries its lead in the index (samples_decode). */
        int64_t t0;
        double lead;
        samples_decode(&T->L, T->ds, idx[b], &t0, &lead);
        int it1 = dataset_find_time(T->ds, T->ds->times[t0] + lead);
        if (it1 < 0) return sm_fail(SM_ERR_IO, "%s: no verifying time %gh after index %lld", T->ds->path, lead, (long long)t0);
        for (int i = 0; i < T->L.n_prog; i++) memcpy(T->state0 + i * np, sample_cache_get(T->cache, T->L.prog_var[i], t0), np * sizeof(float));
        samples_denormalise_lead(&T->L, out + (size_t)b * T->L.c_out * np, T->state0, lead, T->phys_out);
        for (int c = 0; c < T->L.c_out; c++) {
            int var = c < T->L.n_prog ? T->L.prog_var[c] : T->L.diag_var[c - T->L.n_prog];
            const float *truth = sample_cache_get(T->cache, var, it1);
            const float *f = T->phys_out + (size_t)c * np;
            for (int j = 0; j < T->L.h; j++) {
                double w = T->ds->is_latlon ? 0 : 1;
                if (T->ds->is_latlon) {
                    static const double deg = 0.017453292519943295;
                    w = cos(T->ds->lat[j] * deg);
                }
                for (int i = 0; i < T->L.w; i++) {
                    size_t p = (size_t)j * T->L.w + i;
                    if (isnan(truth[p])) continue;
                    double d = (double)f[p] - truth[p];
                    T->esum[c] += w * d * d;
                    T->wsum[c] += w;
                }
            }
        }
    }
    return SM_OK;
}

static int task_val_reduce(void *ctx)
{
    trainer *T = ctx;
    int st = dist_allreduce_sum_d(T->wsum, SAMPLES_MAX_VARS);
    return st ? st : dist_allreduce_sum_d(T->esum, SAMPLES_MAX_VARS);
}

static double val_rmse(const trainer *T, int c)
{
    return T->wsum[c] > 0 ? sqrt(T->esum[c] / T->wsum[c]) : NAN;
}

static int out_var(const trainer *T, int c)
{
    return c < T->L.n_prog ? T->L.prog_var[c] : T->L.diag_var[c - T->L.n_prog];
}

static void task_val_text(void *ctx, char *buf, size_t len)
{
    trainer *T = ctx;
    snprintf(buf, len, "rmse");
    for (int c = 0; c < T->L.c_out; c++) {
        size_t l = strlen(buf);
        snprintf(buf + l, len - l, " %s %.4g", T->ds->vars[out_var(T, c)].name, val_rmse(T, c));
    }
}

static void task_val_json(void *ctx, FILE *f)
{
    trainer *T = ctx;
    fprintf(f, "\"val_rmse\": {");
    for (int c = 0; c < T->L.c_out; c++) {
        double r = val_rmse(T, c);
        fprintf(f, "%s\"%s\": %.8g", c ? ", " : "", T->ds->vars[out_var(T, c)].name, isnan(r) ? -1.0 : r);
    }
    fprintf(f, "}");
}

/* ------------------------------------------------------------------ main */

static int train_one(const sm_config *cfg, int resume, train_result *result)
{
    trainer T;
    memset(&T, 0, sizeof T);
    memset(result, 0, sizeof *result);
    int st = trainer_setup(&T, cfg, resume);
    if (st == SM_OK) {
        train_task task = {.ctx = &T,
                           .train_idx = T.train.idx,
                           .n_train = T.train.n,
                           .val_idx = T.val.idx,
                           .n_val = T.val.n,
                           .input_vars = T.input_vars,
                           .output_vars = T.output_vars,
                           .n_arrays = T.n_norm,
                           .arrays = T.norm,
                           .resume_command = "smoecast train --resume",
                           .restore = task_restore,
                           .assemble = task_assemble,
                           .loss = task_loss,
                           .loss_grad = task_loss_grad,
                           .val_reset = task_val_reset,
                           .val_add = task_val_add,
                           .val_text = task_val_text,
                           .val_json = task_val_json,
                           .val_reduce = task_val_reduce,
                           .routing_labels = T.routing_labels,
                           .routing_labels_h = T.L.h,
                           .routing_labels_w = T.L.w};
        st = train_engine_run(cfg, T.m, T.g, T.batch, &task, resume, result);
    }
    trainer_free(&T);
    return st;
}

int train_member_dir(const char *run_dir, int member, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/member%d", run_dir, member);
    if (n < 0 || (size_t)n >= cap) return sm_fail(SM_ERR_USAGE, "output.dir '%s': too long for its member directories", run_dir);
    return SM_OK;
}

int train_run(const sm_config *cfg, int resume, train_result *result)
{
    int n = cfg->training.members;
    if (n <= 1) {
        int st = train_one(cfg, resume, result);
        result->members = 1;
        return st;
    }
    /* Each member is an ordinary run whose stored config names its own seed and directory, so
     * a member checkpoint is self-contained (forecast, experts and --resume read it alone). The
     * copy lives on the heap: a config is about half a megabyte. */
    sm_config *member = malloc(sizeof *member);
    if (!member) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    int st = SM_OK;
    for (int i = 0; i < n && st == SM_OK; i++) {
        *member = *cfg;
        member->run.seed = cfg->run.seed + i;
        member->training.members = 1;
        if ((st = train_member_dir(cfg->output.dir, i, member->output.dir, sizeof member->output.dir))) break;
        char last[sizeof member->output.dir + 16];
        snprintf(last, sizeof last, "%s/last.nc", member->output.dir);
        int member_resume = resume && access(last, F_OK) == 0;
        log_info("ensemble member %d of %d: run.seed %ld, %s%s", i + 1, n, member->run.seed, member->output.dir,
                 member_resume ? " (resumed)" : "");
        if ((st = train_one(member, member_resume, result)) == SM_OK) result->members = i + 1;
    }
    free(member);
    return st;
}
