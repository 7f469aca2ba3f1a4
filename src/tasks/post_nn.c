/* Neural post-processing methods (see post_nn.h). */
#include "tasks/post_nn.h"
#include "core/dist.h"
#include "core/log.h"
#include "model/builder.h"
#include "model/checkpoint.h"
#include "nn/loss.h"
#include "tasks/train.h"
#include "tasks/train_engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct post_nn {
    sm_config cfg;            /* the resolved config with the method's model settings */
    sm_config *owned;         /* loaded from a checkpoint (apply) */
    char method[CFG_STR], target[CFG_STR], period[300];
    int P, latlon, C;
    char names[ENS_MAX_VARS][80];
    double floor;
    ens_norm N;
    grid *g;
    sm_model *m;
    int H, W, batch;
    size_t npts;
    const ens_data *E;        /* fit: the training data */
    const float *truth;
    float *y, *m_ens, *s_ens; /* (batch, npts) of the last assembled batch */
    float *mu, *sg;           /* (batch, npts) head outputs for validation */
    char input_vars[1024], output_vars[2 * CFG_STR + 16];
    ckpt_array arrays[2];
    double v_crps, v_se, v_var, v_n;   /* validation sums */
};

static void set_arrays(post_nn *nn)
{
    memset(nn->arrays, 0, sizeof nn->arrays);
    snprintf(nn->arrays[0].name, CKPT_NAME_MAX, "feat_mean");
    snprintf(nn->arrays[1].name, CKPT_NAME_MAX, "feat_std");
    for (int a = 0; a < 2; a++) {
        nn->arrays[a].ndim = 2;
        nn->arrays[a].shape[0] = (size_t)nn->N.C;
        nn->arrays[a].shape[1] = nn->N.npts;
    }
    nn->arrays[0].data = nn->N.mean;
    nn->arrays[1].data = nn->N.std;
}

/* The method's network: mlp -> architecture mlp, unet -> unet without MoE, smoe -> the
 * configured architecture with SMoE layers (model.moe.enabled), or smoe_net. */
static int method_model(sm_config *c)
{
    const char *m = c->postprocess.method;
    model_config *mc = &c->model;
    if (!strcmp(m, "mlp")) {
        snprintf(mc->architecture, sizeof mc->architecture, "mlp");
        mc->moe.enabled = 0;
    } else if (!strcmp(m, "unet")) {
        snprintf(mc->architecture, sizeof mc->architecture, "unet");
        mc->moe.enabled = 0;
    } else if (!strcmp(m, "smoe")) {
        if (strcmp(mc->architecture, "smoe_net")) mc->moe.enabled = 1;
    } else {
        return sm_fail(SM_ERR_USAGE, "postprocess.method '%s' is not a neural method (mlp, unet, smoe)", m);
    }
    return SM_OK;
}

static void var_lists(post_nn *nn)
{
    nn->input_vars[0] = '\0';
    for (int p = 0; p < nn->P; p++) {
        size_t l = strlen(nn->input_vars);
        snprintf(nn->input_vars + l, sizeof nn->input_vars - l, "%s%s_mean,%s_std", p ? "," : "", nn->names[p], nn->names[p]);
    }
    if (nn->latlon) {
        size_t l = strlen(nn->input_vars);
        snprintf(nn->input_vars + l, sizeof nn->input_vars - l, ",sin_lat,cos_lat_sin_lon,cos_lat_cos_lon");
    }
    snprintf(nn->output_vars, sizeof nn->output_vars, "%s_o0,%s_o1", nn->target, nn->target);
}

static void period_of(post_nn *nn)
{
    const data_config *d = &nn->cfg.data;
    if (d->train_end[0])
        snprintf(nn->period, sizeof nn->period, "%s/%s", d->train_start[0] ? d->train_start : "start", d->train_end);
    else
        snprintf(nn->period, sizeof nn->period, "the first 80 %% of the forecast times");
}

/* Features (C, npts) of time t with NaN replaced by 0 (those points have NaN moments and are
 * masked / returned as NaN). */
static void features_of(post_nn *nn, const ens_data *E, int t, float *out)
{
    ens_features(E, &nn->N, t, nn->latlon, E->ds->lat, E->ds->lon, out);
    size_t n = (size_t)nn->C * nn->npts;
    for (size_t i = 0; i < n; i++)
        if (isnan(out[i])) out[i] = 0;
}

/* ------------------------------------------------------------------ training task */

static int task_restore(void *ctx, const ckpt_state *st, const char *path)
{
    post_nn *nn = ctx;
    const ckpt_array *a = checkpoint_find_array(st->norm, st->n_norm, "feat_mean");
    const ckpt_array *b = checkpoint_find_array(st->norm, st->n_norm, "feat_std");
    if (!a || !b || a->ndim != 2 || a->shape[0] != (size_t)nn->N.C || a->shape[1] != nn->npts || b->shape[0] != a->shape[0] ||
        b->shape[1] != a->shape[1])
        return sm_fail(SM_ERR_IO, "%s: feature normalisation (feat_mean, feat_std) missing or for other predictors / grid", path);
    memcpy(nn->N.mean, a->data, sizeof(float) * nn->N.C * nn->npts);
    memcpy(nn->N.std, b->data, sizeof(float) * nn->N.C * nn->npts);
    return SM_OK;
}

static int task_assemble(void *ctx, const int64_t *idx, int n, float *input)
{
    post_nn *nn = ctx;
    const ens_data *E = nn->E;
    size_t np = nn->npts;
    for (int b = 0; b < n; b++) {
        int t = (int)idx[b];
        features_of(nn, E, t, input + (size_t)b * nn->C * np);
        const float *m = ens_mean(E, t, 0), *s = ens_sd(E, t, 0), *y = nn->truth + (size_t)t * np;
        float *ym = nn->y + (size_t)b * np, *mm = nn->m_ens + (size_t)b * np, *ss = nn->s_ens + (size_t)b * np;
        for (size_t p = 0; p < np; p++) {
            int bad = isnan(m[p]) || isnan(s[p]);
            mm[p] = bad ? 0 : m[p];
            ss[p] = bad ? 0 : s[p];
            ym[p] = bad ? NAN : y[p];
        }
    }
    return SM_OK;
}

static double task_loss(void *ctx, const float *out, int n)
{
    post_nn *nn = ctx;
    return loss_crps_head_masked_forward(out, nn->m_ens, nn->s_ens, nn->y, n, (int)nn->npts, nn->mu, nn->sg);
}

static void task_loss_grad(void *ctx, float *dout, const float *out, int n)
{
    post_nn *nn = ctx;
    loss_crps_head_masked_backward(dout, out, nn->m_ens, nn->s_ens, nn->y, n, (int)nn->npts, 1.0);
}

static void task_val_reset(void *ctx)
{
    post_nn *nn = ctx;
    nn->v_crps = nn->v_se = nn->v_var = nn->v_n = 0;
}

/* CRPS, RMSE of mu and spread (sqrt of mean sigma^2) over the validation points, unweighted;
 * mu / sigma of the batch were stored by task_loss. */
static int task_val_add(void *ctx, const int64_t *idx, int n, const float *out)
{
    post_nn *nn = ctx;
    (void)idx, (void)out;
    size_t cnt = (size_t)n * nn->npts;
    for (size_t i = 0; i < cnt; i++) {
        if (isnan(nn->y[i])) continue;
        double mu = nn->mu[i], s = nn->sg[i], d = mu - nn->y[i];
        nn->v_crps += loss_crps_gauss_point(mu, s, nn->y[i], NULL, NULL);
        nn->v_se += d * d;
        nn->v_var += s * s;
        nn->v_n += 1;
    }
    return SM_OK;
}

/* Data-parallel runs: the validation sums of all ranks (each added its share of the set). */
static int task_val_reduce(void *ctx)
{
    post_nn *nn = ctx;
    double v[4] = {nn->v_crps, nn->v_se, nn->v_var, nn->v_n};
    int st = dist_allreduce_sum_d(v, 4);
    if (st) return st;
    nn->v_crps = v[0];
    nn->v_se = v[1];
    nn->v_var = v[2];
    nn->v_n = v[3];
    return SM_OK;
}

static void val_scores(const post_nn *nn, double *crps, double *rmse, double *ssr)
{
    *crps = nn->v_n > 0 ? nn->v_crps / nn->v_n : NAN;
    *rmse = nn->v_n > 0 ? sqrt(nn->v_se / nn->v_n) : NAN;
    *ssr = nn->v_n > 0 && nn->v_se > 0 ? sqrt(nn->v_var / nn->v_se) : NAN;
}

static void task_val_text(void *ctx, char *buf, size_t len)
{
    post_nn *nn = ctx;
    double c, r, s;
    val_scores(nn, &c, &r, &s);
    snprintf(buf, len, "%s crps %.5g rmse %.5g spread/skill %.3f", nn->target, c, r, s);
}

static void task_val_json(void *ctx, FILE *f)
{
    post_nn *nn = ctx;
    double c, r, s;
    val_scores(nn, &c, &r, &s);
    fprintf(f, "\"val_crps\": {\"%s\": %.8g}, \"val_rmse\": {\"%s\": %.8g}, \"val_ssr\": {\"%s\": %.8g}", nn->target,
            isnan(c) ? -1.0 : c, nn->target, isnan(r) ? -1.0 : r, nn->target, isnan(s) ? -1.0 : s);
}

/* ------------------------------------------------------------------ fit / apply */

void post_nn_free(post_nn *nn)
{
    if (!nn) return;
    model_free(nn->m);
    grid_free(nn->g);
    ens_norm_free(&nn->N);
    free(nn->y), free(nn->m_ens), free(nn->s_ens), free(nn->mu), free(nn->sg);
    if (nn->owned) config_free(nn->owned);
    free(nn);
}

static int alloc_buffers(post_nn *nn, int batch)
{
    size_t n = (size_t)batch * nn->npts;
    nn->y = malloc(sizeof(float) * n);
    nn->m_ens = malloc(sizeof(float) * n);
    nn->s_ens = malloc(sizeof(float) * n);
    nn->mu = malloc(sizeof(float) * n);
    nn->sg = malloc(sizeof(float) * n);
    return nn->y && nn->m_ens && nn->s_ens && nn->mu && nn->sg ? SM_OK : sm_fail(SM_ERR_NUMERIC, "out of memory");
}

static int check_shape(const post_nn *nn, const char *arch)
{
    if (model_out_h(nn->m) != nn->H || model_out_w(nn->m) != nn->W)
        return sm_fail(SM_ERR_USAGE, "model.architecture %s changes the grid size (%dx%d -> %dx%d); pick one that keeps it", arch,
                       nn->H, nn->W, model_out_h(nn->m), model_out_w(nn->m));
    return SM_OK;
}

int post_nn_fit(const sm_config *cfg, int resume, const ens_data *E, const float *truth, const ens_split *train,
                const ens_split *val, post_nn **out)
{
    *out = NULL;
    post_nn *nn = calloc(1, sizeof *nn);
    if (!nn) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    nn->cfg = *cfg;
    int st = method_model(&nn->cfg);
    const postprocess_config *pc = &cfg->postprocess;
    snprintf(nn->method, sizeof nn->method, "%s", pc->method);
    snprintf(nn->target, sizeof nn->target, "%s", E->names[0]);
    nn->P = E->P;
    for (int p = 0; p < E->P; p++) snprintf(nn->names[p], sizeof nn->names[p], "%s", E->names[p]);
    nn->latlon = pc->latlon_features;
    nn->floor = pc->sigma_floor;
    nn->C = ens_feature_channels(nn->P, nn->latlon);
    nn->H = E->H, nn->W = E->W, nn->npts = E->npts;
    nn->E = E;
    nn->truth = truth;
    period_of(nn);
    var_lists(nn);
    if (st == SM_OK && nn->latlon && !E->ds->is_latlon)
        st = sm_fail(SM_ERR_USAGE, "postprocess.latlon_features needs a latitude-longitude grid (%s is x/y)", E->ds->path);
    if (st == SM_OK) st = ens_norm_compute(E, train->idx, train->n, &nn->N);
    if (st == SM_OK) st = train_grid_from_dataset(E->ds, &nn->g);
    int batch = cfg->training.batch_size;
    if (batch > train->n) batch = (int)train->n;
    nn->batch = batch;
    if (st == SM_OK) st = alloc_buffers(nn, batch);
    if (st == SM_OK) st = model_build(&nn->cfg.model, nn->C, 2, nn->g, batch, 1, (uint64_t)cfg->run.seed, &nn->m);
    if (st == SM_OK) st = check_shape(nn, nn->cfg.model.architecture);
    set_arrays(nn);
    log_info("%s: %s network on %d features (%d predictors%s), CRPS head for %s; %lld training, %lld validation times", pc->method,
             nn->cfg.model.architecture, nn->C, nn->P, nn->latlon ? " + lat/lon" : "", nn->target, (long long)train->n,
             (long long)val->n);
    if (st == SM_OK) {
        train_task task = {.ctx = nn,
                           .train_idx = train->idx,
                           .n_train = train->n,
                           .val_idx = val->idx,
                           .n_val = val->n,
                           .input_vars = nn->input_vars,
                           .output_vars = nn->output_vars,
                           .n_arrays = 2,
                           .arrays = nn->arrays,
                           .resume_command = "smoecast postprocess fit --resume",
                           .restore = task_restore,
                           .assemble = task_assemble,
                           .loss = task_loss,
                           .loss_grad = task_loss_grad,
                           .val_reset = task_val_reset,
                           .val_add = task_val_add,
                           .val_text = task_val_text,
                           .val_json = task_val_json,
                           .val_reduce = task_val_reduce};
        train_result res;
        st = train_engine_run(&nn->cfg, nn->m, nn->g, batch, &task, resume, &res);
        if (st == SM_OK)
            log_info("%s: trained %lld epochs (%lld steps); best validation CRPS %.5g at epoch %lld", pc->method,
                     (long long)res.epochs_done, (long long)res.steps_done, res.best_val, (long long)res.best_epoch + 1);
    }
    if (st == SM_OK) {
        /* score with the best checkpoint */
        char best[CFG_PATH + 16];
        snprintf(best, sizeof best, "%s/best.nc", cfg->output.dir);
        ckpt_state cs;
        checkpoint_state_init(&cs);
        st = checkpoint_load(best, nn->m, &nn->cfg, nn->g, &cs);
        if (st == SM_OK) st = task_restore(nn, &cs, best);
        checkpoint_state_free_arrays(&cs);
        if (st == SM_OK) st = model_set_batch(nn->m, 1);
    }
    if (st) {
        post_nn_free(nn);
        return st;
    }
    *out = nn;
    return SM_OK;
}

/* mu, sigma of time t of E from the network (batch 1). */
static int predict(post_nn *nn, const ens_data *E, int t, double floor, float *mu, float *sigma)
{
    features_of(nn, E, t, model_input(nn->m));
    int st = model_forward(nn->m, 0, NULL);
    if (st) return st;
    const float *o = model_output(nn->m);
    const float *m = ens_mean(E, t, 0), *s = ens_sd(E, t, 0);
    for (size_t p = 0; p < nn->npts; p++) {
        double sg = exp((double)o[nn->npts + p]) * s[p];
        mu[p] = (float)((double)o[p] * s[p] + m[p]);
        sigma[p] = (float)(sg > floor ? sg : floor);
        if (isnan(m[p]) || isnan(s[p])) mu[p] = sigma[p] = NAN;
    }
    return SM_OK;
}

int post_nn_predict(void *ctx, int t, float *mu, float *sigma)
{
    post_nn *nn = ctx;
    return predict(nn, nn->E, t, nn->floor, mu, sigma);
}

int post_nn_load(const char *path, post_nn **out)
{
    *out = NULL;
    char *yaml = NULL;
    int st = checkpoint_read_config(path, &yaml);
    if (st) return sm_fail(SM_ERR_IO, "%s: neither an EMOS model file nor a smoecast checkpoint", path);
    post_nn *nn = calloc(1, sizeof *nn);
    if (!nn) {
        free(yaml);
        return sm_fail(SM_ERR_NUMERIC, "out of memory");
    }
    st = config_load_text(yaml, path, 0, NULL, &nn->owned);
    free(yaml);
    if (st == SM_OK) {
        nn->cfg = *nn->owned;
        const postprocess_config *pc = &nn->cfg.postprocess;
        if (strcmp(pc->method, "mlp") && strcmp(pc->method, "unet") && strcmp(pc->method, "smoe"))
            st = sm_fail(SM_ERR_IO, "%s: a checkpoint of a forecast model, not of a post-processing network (postprocess.method %s)", path,
                         pc->method);
        if (st == SM_OK) st = ens_predictor_list(pc->target, &pc->predictors, &nn->P, nn->names);
        snprintf(nn->method, sizeof nn->method, "%s", pc->method);
        snprintf(nn->target, sizeof nn->target, "%s", pc->target);
        nn->latlon = pc->latlon_features;
        nn->floor = pc->sigma_floor;
        nn->C = ens_feature_channels(nn->P, nn->latlon);
        period_of(nn);
        var_lists(nn);
    }
    if (st) {
        post_nn_free(nn);
        return st;
    }
    *out = nn;
    return SM_OK;
}

const char *post_nn_target(const post_nn *nn) { return nn->target; }
const char *post_nn_method(const post_nn *nn) { return nn->method; }
const char *post_nn_period(const post_nn *nn) { return nn->period; }
double post_nn_sigma_floor(const post_nn *nn) { return nn->floor; }

int post_nn_predictors(const post_nn *nn, char names[][80])
{
    for (int p = 0; p < nn->P; p++) snprintf(names[p], 80, "%s", nn->names[p]);
    return nn->P;
}

/* Builds the network for E's grid and loads the checkpoint (the loader checks the grid and
 * the variable lists and names the first difference). */
int post_nn_check_grid(post_nn *nn, const ens_data *E, const char *path)
{
    nn->H = E->H, nn->W = E->W, nn->npts = E->npts;
    int st = train_grid_from_dataset(E->ds, &nn->g);
    if (st == SM_OK) st = model_build(&nn->cfg.model, nn->C, 2, nn->g, 1, 0, (uint64_t)nn->cfg.run.seed, &nn->m);
    if (st == SM_OK) st = check_shape(nn, nn->cfg.model.architecture);
    ckpt_state cs;
    checkpoint_state_init(&cs);
    cs.input_variables = nn->input_vars;
    cs.output_variables = nn->output_vars;
    if (st == SM_OK) st = checkpoint_load(path, nn->m, &nn->cfg, nn->g, &cs);
    if (st == SM_OK) {
        const ckpt_array *a = checkpoint_find_array(cs.norm, cs.n_norm, "feat_mean");
        const ckpt_array *b = checkpoint_find_array(cs.norm, cs.n_norm, "feat_std");
        if (!a || !b || a->ndim != 2 || a->shape[0] != (size_t)nn->C - (nn->latlon ? 3 : 0) || a->shape[1] != nn->npts)
            st = sm_fail(SM_ERR_IO, "%s: feature normalisation (feat_mean, feat_std) missing or for another grid", path);
        else {
            nn->N.C = (int)a->shape[0];
            nn->N.npts = nn->npts;
            nn->N.mean = malloc(sizeof(float) * a->shape[0] * a->shape[1]);
            nn->N.std = malloc(sizeof(float) * a->shape[0] * a->shape[1]);
            if (!nn->N.mean || !nn->N.std) st = sm_fail(SM_ERR_NUMERIC, "out of memory");
            else {
                memcpy(nn->N.mean, a->data, sizeof(float) * a->shape[0] * a->shape[1]);
                memcpy(nn->N.std, b->data, sizeof(float) * a->shape[0] * a->shape[1]);
            }
        }
    }
    checkpoint_state_free_arrays(&cs);
    return st;
}

int post_nn_apply(post_nn *nn, const ens_data *E, int t, double floor, float *mu, float *sigma)
{
    return predict(nn, E, t, floor, mu, sigma);
}
