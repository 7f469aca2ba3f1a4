/* The training engine behind `smoecast train` (see train.h). */
#include "tasks/train.h"
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
#include <sys/stat.h>

#define TRAIN_MAX_MOE 16

typedef enum { TRAIN_LOSS_MSE, TRAIN_LOSS_LAT_MSE, TRAIN_LOSS_MAE } train_loss;

/* Everything one training run owns; released by trainer_free. */
typedef struct {
    const sm_config *cfg;
    dataset *ds;
    grid *g;
    sample_layout L;
    sample_split train, val, test;
    sample_cache *cache;
    sm_model *m;
    optim *opt;
    lr_schedule sched;
    early_stop stop;
    int use_early_stop;
    rng_t rng_dropout;
    train_loss loss;
    float *wlat;          /* H latitude weights (1 for x/y grids and plain losses) */
    float *target;        /* (batch, C_out, H, W) */
    float *state0;        /* (n_prog, H, W) raw fields at the init time, for validation RMSE */
    float *phys_out, *phys_true;
    int64_t *order;       /* shuffled training init indices */
    int batch;
    char dir[CFG_PATH], last_path[CFG_PATH + 16], best_path[CFG_PATH + 16], metrics_path[CFG_PATH + 16];
    char input_vars[1024], output_vars[1024];
    /* routing metrics of the last validation, per MoE layer */
    int n_moe;
    moe_routing_metrics routing[TRAIN_MAX_MOE];
} trainer;

static void trainer_free(trainer *T)
{
    model_free(T->m);
    optim_free(T->opt);
    sample_cache_free(T->cache);
    samples_split_free(&T->train);
    samples_split_free(&T->val);
    samples_split_free(&T->test);
    samples_layout_free(&T->L);
    grid_free(T->g);
    if (T->ds) dataset_close(T->ds);
    free(T->wlat);
    free(T->target);
    free(T->state0);
    free(T->phys_out);
    free(T->phys_true);
    free(T->order);
}

static int make_dir(const char *path)
{
    char buf[CFG_PATH];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return sm_fail(SM_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return sm_fail(SM_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    return SM_OK;
}

int train_grid_from_dataset(const dataset *ds, grid **out)
{
    const char *name = ds->grid_name[0] ? ds->grid_name : "native";
    if (ds->is_latlon) return grid_create_latlon(name, ds->nlat, ds->lat, ds->nlon, ds->lon, out);
    return grid_create_xy(name, ds->nlat, ds->lat, ds->nlon, ds->lon, out);
}

/* Normalisation statistics <-> checkpoint arrays ("mean", "std", "tend_std"). */
static void stats_to_arrays(const sample_layout *L, ckpt_array arrays[3])
{
    const norm_stats *S = &L->stats;
    memset(arrays, 0, 3 * sizeof *arrays);
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
    return SM_OK;
}

static void state_fill(trainer *T, ckpt_state *st, ckpt_array norm[3], int64_t epoch, int64_t step)
{
    checkpoint_state_init(st);
    st->epoch = epoch;
    st->step = step;
    st->opt = T->opt;
    st->sched = &T->sched;
    st->stop = T->use_early_stop ? &T->stop : NULL;
    st->n_rng = 1;
    st->rng_names[0] = "dropout";
    st->rng[0] = &T->rng_dropout;
    st->input_variables = T->input_vars;
    st->output_variables = T->output_vars;
    stats_to_arrays(&T->L, norm);
    st->n_norm = 3;
    st->norm = norm;
}

static int save_checkpoint(trainer *T, const char *path, int64_t epoch, int64_t step, double best, int64_t best_epoch)
{
    ckpt_state st;
    ckpt_array norm[3];
    state_fill(T, &st, norm, epoch, step);
    st.best_score = best;
    st.best_epoch = best_epoch;
    /* Routing metrics of the last validation, one row per MoE layer:
     * [cv_importance, H_s, H_u, load_frac_0 .. load_frac_{N-1}]. */
    ckpt_array metrics[TRAIN_MAX_MOE];
    float metric_data[TRAIN_MAX_MOE][3 + MOE_METRICS_MAX_EXPERTS];
    for (int i = 0; i < T->n_moe; i++) {
        const moe_routing_metrics *r = &T->routing[i];
        model_moe_info info;
        model_moe_get(T->m, i, &info);
        memset(&metrics[i], 0, sizeof metrics[i]);
        snprintf(metrics[i].name, CKPT_NAME_MAX, "routing_%s", info.name);
        metrics[i].ndim = 1;
        metrics[i].shape[0] = (size_t)(3 + r->n_experts);
        metric_data[i][0] = (float)r->cv_importance;
        metric_data[i][1] = (float)r->h_s;
        metric_data[i][2] = (float)r->h_u;
        for (int e = 0; e < r->n_experts; e++) metric_data[i][3 + e] = (float)r->load_frac[e];
        metrics[i].data = metric_data[i];
    }
    st.n_metrics = T->n_moe;
    st.metrics = metrics;
    return checkpoint_save(path, T->m, T->cfg, T->g, &st);
}

/* ------------------------------------------------------------------ set-up */

static int trainer_setup(trainer *T, const sm_config *cfg, int resume, ckpt_state *resumed, ckpt_array **resumed_norm)
{
    (void)resumed_norm;
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
    T->n_moe = model_moe_count(T->m);
    if (T->n_moe > TRAIN_MAX_MOE) T->n_moe = TRAIN_MAX_MOE;

    optim_config oc;
    lr_schedule_config sc;
    if ((st = optim_config_from_training(&cfg->training, &oc))) return st;
    if ((st = optim_create(&T->opt, model_params(T->m), &oc))) return st;
    if ((st = lr_schedule_config_from_training(&cfg->training, &sc))) return st;
    if ((st = lr_schedule_init(&T->sched, &sc))) return st;
    T->use_early_stop = cfg->training.early_stopping_patience > 0;
    if (T->use_early_stop && (st = early_stop_init(&T->stop, cfg->training.early_stopping_patience, 0.0))) return st;
    rng_seed(&T->rng_dropout, (uint64_t)cfg->run.seed, TRAIN_RNG_STREAM_DROPOUT);

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
    T->order = malloc(sizeof(int64_t) * (size_t)T->train.n);
    if (!T->wlat || !T->target || !T->state0 || !T->phys_out || !T->phys_true || !T->order)
        return sm_fail(SM_ERR_NUMERIC, "out of memory");
    if (T->ds->is_latlon && T->loss == TRAIN_LOSS_LAT_MSE)
        loss_lat_weights(T->wlat, T->ds->lat, T->L.h);
    else
        for (int j = 0; j < T->L.h; j++) T->wlat[j] = 1.0f;

    snprintf(T->dir, sizeof T->dir, "%s", cfg->output.dir);
    snprintf(T->last_path, sizeof T->last_path, "%s/last.nc", T->dir);
    snprintf(T->best_path, sizeof T->best_path, "%s/best.nc", T->dir);
    snprintf(T->metrics_path, sizeof T->metrics_path, "%s/metrics.jsonl", T->dir);
    if ((st = make_dir(T->dir))) return st;

    if (resume) {
        checkpoint_state_init(resumed);
        resumed->opt = T->opt;
        resumed->sched = &T->sched;
        resumed->stop = T->use_early_stop ? &T->stop : NULL;
        resumed->n_rng = 1;
        resumed->rng_names[0] = "dropout";
        resumed->rng[0] = &T->rng_dropout;
        resumed->input_variables = T->input_vars;
        resumed->output_variables = T->output_vars;
        if ((st = checkpoint_load(T->last_path, T->m, cfg, T->g, resumed))) return st;
        if ((st = train_stats_from_checkpoint(&T->L, resumed, T->last_path))) return st;
        log_info("resuming from %s at epoch %lld, step %lld", T->last_path, (long long)resumed->epoch, (long long)resumed->step);
    } else {
        if ((st = samples_compute_stats(&T->L, T->cache, &T->train, !strcmp(cfg->data.normalisation, "per_point")))) return st;
    }
    if (log_get_level() >= LOG_LEVEL_INFO) model_summary(T->m, stderr);
    return SM_OK;
}

/* ------------------------------------------------------------------ passes */

static double loss_value(const trainer *T, const float *out, const float *target, int n)
{
    size_t count = (size_t)n * T->L.c_out * T->L.h * T->L.w;
    switch (T->loss) {
    case TRAIN_LOSS_MSE: return loss_mse_masked_forward(out, target, count);
    case TRAIN_LOSS_MAE: return loss_mae_masked_forward(out, target, count);
    default: return loss_mse_lat_masked_forward(out, target, n * T->L.c_out, T->L.h, T->L.w, T->wlat);
    }
}

static void loss_grad(const trainer *T, float *dout, const float *out, const float *target, int n)
{
    size_t count = (size_t)n * T->L.c_out * T->L.h * T->L.w;
    memset(dout, 0, count * sizeof *dout);
    switch (T->loss) {
    case TRAIN_LOSS_MSE: loss_mse_masked_backward(dout, out, target, count, 1.0); break;
    case TRAIN_LOSS_MAE: loss_mae_masked_backward(dout, out, target, count, 1.0); break;
    default: loss_mse_lat_masked_backward(dout, out, target, n * T->L.c_out, T->L.h, T->L.w, T->wlat, 1.0); break;
    }
}

static int report_nonfinite(trainer *T, int64_t step, const char *what)
{
    int bad = -1;
    param_store *ps = model_params(T->m);
    const char *where = "";
    if (!param_store_all_finite(ps, 1, &bad) && bad >= 0) where = param_store_view(ps, bad)->name;
    return sm_fail(SM_ERR_NUMERIC, "training diverged at step %lld: %s is NaN/Inf%s%s; the last good checkpoint %s is kept "
                   "(try a lower training.lr or training.grad_clip)",
                   (long long)step, what, where[0] ? " in the gradient of " : "", where, T->last_path);
}

/* Validation loss (normalised units, same loss as training) and RMSE in physical units per
 * output variable (latitude-weighted on lat-lon grids). Also fills the routing metrics. */
static int validate(trainer *T, const sample_split *split, double *loss_out, double *rmse)
{
    size_t np = (size_t)T->L.h * T->L.w;
    double loss_sum = 0, wsum[SAMPLES_MAX_VARS] = {0}, esum[SAMPLES_MAX_VARS] = {0};
    int64_t batches = 0;
    int moe_done = 0;
    for (int64_t start = 0; start < split->n; start += T->batch) {
        int n = (int)(split->n - start < T->batch ? split->n - start : T->batch);
        model_set_batch(T->m, n);
        int st = samples_assemble(&T->L, T->cache, split->idx + start, n, model_input(T->m), T->target);
        if (st) return st;
        if ((st = model_forward(T->m, 0, NULL))) return st;
        const float *out = model_output(T->m);
        loss_sum += loss_value(T, out, T->target, n);
        batches++;
        for (int b = 0; b < n; b++) {
            int t0 = (int)split->idx[start + b];
            double t1 = T->ds->times[t0] + T->L.step_hours;
            int it1 = dataset_find_time(T->ds, t1);
            for (int i = 0; i < T->L.n_prog; i++) memcpy(T->state0 + i * np, sample_cache_get(T->cache, T->L.prog_var[i], t0), np * sizeof(float));
            samples_denormalise(&T->L, out + (size_t)b * T->L.c_out * np, T->state0, T->phys_out);
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
                        esum[c] += w * d * d;
                        wsum[c] += w;
                    }
                }
            }
        }
        /* Routing metrics from the first batch (latent gates are the same for every batch). */
        for (int i = 0; i < T->n_moe && !moe_done; i++) {
            model_moe_info info;
            model_moe_get(T->m, i, &info);
            moe_layout l = {n, info.shape.n_experts, np};
            size_t cnt = (size_t)n * info.shape.n_experts * np;
            float *p = malloc(cnt * sizeof *p);
            if (!p) return sm_fail(SM_ERR_NUMERIC, "out of memory");
            moe_softmax_experts(&l, info.gate_raw, p);
            moe_routing_metrics_compute(&l, p, NULL, 0, &T->routing[i]);
            free(p);
        }
        moe_done = 1;
    }
    model_set_batch(T->m, T->batch);
    *loss_out = batches ? loss_sum / batches : NAN;
    for (int c = 0; c < T->L.c_out; c++) rmse[c] = wsum[c] > 0 ? sqrt(esum[c] / wsum[c]) : NAN;
    return SM_OK;
}

static void write_metrics(trainer *T, int64_t epoch, int64_t step, double train_loss, double aux, double val_loss,
                          const double *rmse, double lr, double seconds, int improved)
{
    FILE *f = fopen(T->metrics_path, "a");
    if (!f) {
        log_warn("%s: cannot append metrics: %s", T->metrics_path, strerror(errno));
        return;
    }
    fprintf(f, "{\"epoch\": %lld, \"step\": %lld, \"train_loss\": %.8g, \"aux_loss\": %.8g, \"val_loss\": %.8g, \"lr\": %.8g, "
               "\"seconds\": %.3f, \"improved\": %s, \"val_rmse\": {",
            (long long)epoch, (long long)step, train_loss, aux, isnan(val_loss) ? -1.0 : val_loss, lr, seconds,
            improved ? "true" : "false");
    for (int c = 0; c < T->L.c_out; c++) {
        int var = c < T->L.n_prog ? T->L.prog_var[c] : T->L.diag_var[c - T->L.n_prog];
        fprintf(f, "%s\"%s\": %.8g", c ? ", " : "", T->ds->vars[var].name, isnan(rmse[c]) ? -1.0 : rmse[c]);
    }
    fprintf(f, "}, \"routing\": [");
    for (int i = 0; i < T->n_moe; i++) {
        model_moe_info info;
        model_moe_get(T->m, i, &info);
        const moe_routing_metrics *r = &T->routing[i];
        fprintf(f, "%s{\"layer\": \"%s\", \"cv_importance\": %.6g, \"H_s\": %.6g, \"H_u\": %.6g, \"load\": [", i ? ", " : "",
                info.name, r->cv_importance, r->h_s, r->h_u);
        for (int e = 0; e < r->n_experts; e++) fprintf(f, "%s%.6g", e ? ", " : "", r->load_frac[e]);
        fprintf(f, "]}");
    }
    fprintf(f, "]}\n");
    fclose(f);
}

/* ------------------------------------------------------------------ main loop */

int train_run(const sm_config *cfg, int resume, train_result *result)
{
    trainer T;
    memset(&T, 0, sizeof T);
    memset(result, 0, sizeof *result);
    ckpt_state resumed;
    checkpoint_state_init(&resumed);
    int st = trainer_setup(&T, cfg, resume, &resumed, NULL);
    int64_t epoch = resume && st == SM_OK ? resumed.epoch : 0;
    int64_t step = resume && st == SM_OK ? resumed.step : 0;
    double best = resume && st == SM_OK ? resumed.best_score : NAN;
    int64_t best_epoch = resume && st == SM_OK ? resumed.best_epoch : -1;
    checkpoint_state_free_arrays(&resumed);

    int64_t nb = (T.train.n + T.batch - 1) / (T.batch > 0 ? T.batch : 1);
    if (cfg->training.steps_per_epoch > 0 && cfg->training.steps_per_epoch < nb) nb = cfg->training.steps_per_epoch;
    int64_t skip = step - epoch * nb; /* batches already done inside an interrupted epoch */
    if (skip < 0) skip = 0;
    double rmse[SAMPLES_MAX_VARS];
    double t_start = progress_now_seconds();

    for (; st == SM_OK && epoch < cfg->training.epochs; epoch++) {
        if (T.use_early_stop && T.stop.stopped) break;
        /* The data order of an epoch depends only on (seed, epoch): resuming reproduces it. */
        rng_t shuffle;
        rng_seed(&shuffle, (uint64_t)cfg->run.seed * 1000003u + (uint64_t)epoch, TRAIN_RNG_STREAM_SHUFFLE);
        memcpy(T.order, T.train.idx, sizeof(int64_t) * (size_t)T.train.n);
        rng_shuffle(&shuffle, T.order, T.train.n);

        char label[64];
        snprintf(label, sizeof label, "epoch %lld/%d", (long long)epoch + 1, cfg->training.epochs);
        progress bar;
        progress_begin(&bar, label, nb);
        double loss_sum = 0, aux_sum = 0;
        int64_t loss_n = 0;
        optim_set_lr(T.opt, lr_schedule_lr(&T.sched));
        for (int64_t b = skip; b < nb && st == SM_OK; b++) {
            int64_t first = b * T.batch;
            int n = (int)(T.train.n - first < T.batch ? T.train.n - first : T.batch);
            model_set_batch(T.m, n);
            if ((st = samples_assemble(&T.L, T.cache, T.order + first, n, model_input(T.m), T.target))) break;
            model_zero_grad(T.m);
            if ((st = model_forward(T.m, 1, &T.rng_dropout))) break;
            double loss = loss_value(&T, model_output(T.m), T.target, n);
            if (!isfinite(loss)) {
                st = report_nonfinite(&T, step, "the loss");
                break;
            }
            loss_grad(&T, model_output_grad(T.m), model_output(T.m), T.target, n);
            if ((st = model_backward(T.m))) break;
            double gnorm = cfg->training.grad_clip > 0 ? optim_clip_grad_norm(model_params(T.m), cfg->training.grad_clip)
                                                      : optim_grad_norm(model_params(T.m));
            if (!isfinite(gnorm)) {
                st = report_nonfinite(&T, step, "a gradient");
                break;
            }
            optim_step(T.opt);
            step++;
            loss_sum += loss;
            aux_sum += model_aux_loss(T.m);
            loss_n++;
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.5g", loss_sum / loss_n);
            progress_update(&bar, b + 1, extra);
            if (sm_interrupted()) {
                save_checkpoint(&T, T.last_path, epoch, step, best, best_epoch);
                st = sm_fail(SM_ERR_INTERRUPTED, "interrupted at epoch %lld step %lld; resume with 'smoecast train --resume' "
                             "(state saved in %s)", (long long)epoch + 1, (long long)step, T.last_path);
            }
        }
        skip = 0;
        if (st) break;
        progress_end(&bar);

        double val_loss = NAN;
        const sample_split *monitor = T.val.n > 0 ? &T.val : &T.train;
        if (T.val.n == 0 && epoch == 0) log_warn("no validation samples: monitoring the training loss instead");
        if ((st = validate(&T, monitor, &val_loss, rmse))) break;
        if (!isfinite(val_loss)) {
            st = report_nonfinite(&T, step, "the validation loss");
            break;
        }
        int improved = 0;
        if (T.use_early_stop)
            early_stop_update(&T.stop, val_loss, &improved);
        else
            improved = isnan(best) || val_loss < best;
        if (improved) {
            best = val_loss;
            best_epoch = epoch;
        }
        double lr_used = optim_get_lr(T.opt);
        lr_schedule_step(&T.sched, val_loss);
        double train_loss = loss_n ? loss_sum / loss_n : NAN;
        write_metrics(&T, epoch + 1, step, train_loss, loss_n ? aux_sum / loss_n : 0, val_loss, rmse, lr_used,
                      progress_now_seconds() - t_start, improved);
        char rmse_text[512] = "";
        for (int c = 0; c < T.L.c_out; c++) {
            int var = c < T.L.n_prog ? T.L.prog_var[c] : T.L.diag_var[c - T.L.n_prog];
            size_t len = strlen(rmse_text);
            snprintf(rmse_text + len, sizeof rmse_text - len, " %s %.4g", T.ds->vars[var].name, rmse[c]);
        }
        log_info("epoch %lld: train %.5g val %.5g (rmse%s) lr %.3g%s", (long long)epoch + 1, train_loss, val_loss, rmse_text,
                 lr_used, improved ? " *best*" : "");
        if (improved && (st = save_checkpoint(&T, T.best_path, epoch + 1, step, best, best_epoch))) break;
        if (((epoch + 1) % cfg->output.checkpoint_every == 0 || epoch + 1 == cfg->training.epochs || (T.use_early_stop && T.stop.stopped)) &&
            (st = save_checkpoint(&T, T.last_path, epoch + 1, step, best, best_epoch)))
            break;
        if (T.use_early_stop && T.stop.stopped) {
            log_info("early stopping: no improvement for %d epochs (best epoch %lld)", cfg->training.early_stopping_patience,
                     (long long)best_epoch + 1);
            result->stopped_early = 1;
            epoch++;
            break;
        }
    }
    result->epochs_done = epoch;
    result->steps_done = step;
    result->best_val = best;
    result->best_epoch = best_epoch;
    trainer_free(&T);
    return st;
}
