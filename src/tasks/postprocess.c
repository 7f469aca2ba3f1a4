/* smoecast postprocess fit / apply (see postprocess.h and docs/postprocess.md). */
#include "tasks/postprocess.h"
#include "core/log.h"
#include "core/outfile.h"
#include "data/samples.h"
#include "eval/prob_scores.h"
#include "eval/scores.h"
#include "io/cf_time.h"
#include "io/sha256.h"
#include "nn/threads.h"
#include "post/emos.h"
#include "post/emos_file.h"
#include "post/ens_data.h"
#include "post/post_output.h"
#include "tasks/post_nn.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PP_TWO_PI 6.283185307179586

/* "<sha256>  <path>" of an input (malloc'd; NULL on error) */
static char *provenance_of(const char *path)
{
    char hex[65];
    if (sha256_file(path, hex) != SM_OK) snprintf(hex, sizeof hex, "unknown");
    size_t n = strlen(path) + 80;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s  %s", hex, path);
    return s;
}

static void period_text(const dataset *ds, const ens_split *sp, char *buf, size_t len)
{
    if (sp->n == 0) {
        snprintf(buf, len, "none");
        return;
    }
    cf_calendar cal;
    if (cf_calendar_parse(ds->calendar, &cal) != SM_OK) cal = CAL_PROLEPTIC;
    char a[40], b[40];
    cf_format_hours(ds->times[sp->idx[0]], cal, a, sizeof a);
    cf_format_hours(ds->times[sp->idx[sp->n - 1]], cal, b, sizeof b);
    snprintf(buf, len, "%s/%s (%lld valid times)", a, b, (long long)sp->n);
}

/* ------------------------------------------------------------------ model climate (EFI) */

typedef struct {
    dataset *ds;
    int var, M, T;
    size_t npts;
    float *members;   /* (T, M, npts) */
    double *doy;      /* phase of each climate time */
} climate;

static void climate_free(climate *c)
{
    if (c->ds) dataset_close(c->ds);
    free(c->members);
    free(c->doy);
    memset(c, 0, sizeof *c);
}

static int climate_load(const char *path, const char *target, const ens_data *E, climate *c)
{
    memset(c, 0, sizeof *c);
    int st = dataset_open(path, &c->ds);
    if (st) return st;
    c->var = dataset_find_var(c->ds, target);
    if (c->var < 0) return sm_fail(SM_ERR_IO, "%s: target variable '%s' is absent from the model climate file", path, target);
    if (c->ds->nlat != E->H || c->ds->nlon != E->W)
        return sm_fail(SM_ERR_IO, "%s: model climate grid %d x %d differs from the ensemble grid %d x %d", path, c->ds->nlat, c->ds->nlon, E->H, E->W);
    if (!c->ds->vars[c->var].has_members || c->ds->nmembers < 1)
        return sm_fail(SM_ERR_IO, "%s: model climate variable %s has no realization dimension", path, target);
    c->M = c->ds->nmembers;
    c->T = c->ds->ntimes;
    c->npts = E->npts;
    c->members = malloc(sizeof(float) * (size_t)c->T * c->M * c->npts);
    c->doy = malloc(sizeof(double) * (size_t)c->T);
    if (!c->members || !c->doy) return sm_fail(SM_ERR_NUMERIC, "out of memory for the model climate %s", path);
    for (int t = 0; t < c->T; t++) {
        if ((st = ens_read_members(c->ds, c->var, t, c->members + (size_t)t * c->M * c->npts))) return st;
        double hp;
        samples_time_features(c->ds->times[t], c->ds->calendar, &hp, &c->doy[t]);
    }
    return SM_OK;
}

/* EFI of the raw ensemble ens (M, npts) valid at `hours` against the climate forecasts valid
 * within +-15 days of its day of year (METHODS.md 5). NaN everywhere when none. */
static int climate_efi(const climate *c, double hours, const char *calendar, const float *ens, int M, float *efi,
                       float *work, float *q)
{
    double hp, ph;
    samples_time_features(hours, calendar, &hp, &ph);
    int nc = 0;
    for (int t = 0; t < c->T; t++) {
        double d = fabs(c->doy[t] - ph);
        d = fmin(d, PP_TWO_PI - d) / PP_TWO_PI * 365.2425;
        if (d > 15.0 + 1e-6) continue;
        memcpy(work + (size_t)nc * c->M * c->npts, c->members + (size_t)t * c->M * c->npts, sizeof(float) * c->M * c->npts);
        nc++;
    }
    if (nc == 0) {
        for (size_t p = 0; p < c->npts; p++) efi[p] = NAN;
        return SM_OK;
    }
    int st = eval_efi_clim_quantiles(work, nc * c->M, c->npts, q);
    if (st) return st;
    eval_efi_field(ens, M, q, c->npts, efi);
    return SM_OK;
}

/* ------------------------------------------------------------------ scoring */

/* Gaussian forecasts: predict(ctx, t, mu, sigma) fills (npts) for time t. */
typedef int (*predict_fn)(void *ctx, int t, float *mu, float *sigma);

static int score_split(const ens_data *E, const float *truth, const ens_split *sp, const climate *clim, predict_fn predict,
                       void *ctx, eval_prob_result *res)
{
    size_t npts = E->npts;
    int raw = predict == NULL;
    eval_prob_acc acc;
    int st = raw ? eval_prob_init_ens(&acc, E->M) : eval_prob_init_gauss(&acc, 10);
    if (st) return st;
    double *wlat = malloc(sizeof(double) * (size_t)E->H);
    float *ens = malloc(sizeof(float) * (size_t)E->M * npts), *mu = malloc(sizeof(float) * npts),
          *sg = malloc(sizeof(float) * npts), *efi = malloc(sizeof(float) * npts), *q = malloc(sizeof(float) * EVAL_EFI_NQ * npts);
    float *work = clim ? malloc(sizeof(float) * (size_t)clim->T * clim->M * npts) : NULL;
    if (!wlat || !ens || !mu || !sg || !efi || !q || (clim && !work)) st = sm_fail(SM_ERR_NUMERIC, "out of memory");
    if (st == SM_OK) {
        if (E->ds->is_latlon)
            eval_lat_weights(E->ds->lat, E->H, wlat);
        else
            for (int j = 0; j < E->H; j++) wlat[j] = 1;
    }
    rng_t rng;
    rng_seed(&rng, 12345u, 0x50u);
    for (int64_t k = 0; st == SM_OK && k < sp->n; k++) {
        int t = (int)sp->idx[k];
        const float *y = truth + (size_t)t * npts;
        if ((raw || clim) && (st = ens_read_members(E->ds, E->var[0], t, ens))) break;
        if (clim && (st = climate_efi(clim, E->ds->times[t], E->ds->calendar, ens, E->M, efi, work, q))) break;
        if (raw) {
            if ((st = eval_prob_add_ens(&acc, ens, y, E->H, E->W, wlat, NULL, &rng, clim ? efi : NULL))) break;
        } else {
            if ((st = predict(ctx, t, mu, sg))) break;
            eval_prob_add_gauss(&acc, mu, sg, y, E->H, E->W, wlat, NULL, clim ? efi : NULL);
        }
    }
    if (st == SM_OK) eval_prob_finish(&acc, res);
    eval_prob_free(&acc);
    free(wlat), free(ens), free(mu), free(sg), free(efi), free(q), free(work);
    return st;
}

static int write_scores(const char *dir, const char *method, const char *split_name, long n_times, const eval_prob_result *r)
{
    char path[CFG_PATH + 256];
    snprintf(path, sizeof path, "%s/scores_%s.json", dir, method);
    outfile out;
    int st = outfile_begin(&out, path);
    if (st) return st;
    FILE *f = fopen(out.tmp_path, "w");
    if (!f) {
        outfile_abort(&out);
        return sm_fail(SM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    double v[EVAL_PM_COUNT];
    eval_prob_result_values(r, v);
    fprintf(f, "{\"method\": \"%s\", \"split\": \"%s\", \"n_times\": %ld", method, split_name, n_times);
    for (int m = 0; m < EVAL_PM_COUNT; m++) {
        if (isfinite(v[m]))
            fprintf(f, ", \"%s\": %.9g", eval_prob_metric_name((eval_prob_metric)m), v[m]);
        else
            fprintf(f, ", \"%s\": null", eval_prob_metric_name((eval_prob_metric)m));
    }
    fprintf(f, "}\n");
    if (fclose(f) != 0) {
        outfile_abort(&out);
        return sm_fail(SM_ERR_IO, "%s: write failed", path);
    }
    return outfile_commit(&out);
}

/* ------------------------------------------------------------------ EMOS */

typedef struct {
    const ens_data *E;
    const emos_coef *coef;
    int per_point;
    double floor;
    float *var;
} emos_ctx;

static int emos_predict(void *vctx, int t, float *mu, float *sigma)
{
    emos_ctx *c = vctx;
    const float *m = ens_mean(c->E, t, 0), *s = ens_sd(c->E, t, 0);
    for (size_t p = 0; p < c->E->npts; p++) c->var[p] = s[p] * s[p];
    emos_apply(c->coef, c->per_point, m, c->var, 1, c->E->npts, c->floor, mu, sigma);
    return SM_OK;
}

static int fit_emos(const sm_config *cfg, const ens_data *E, const float *truth, const ens_split *train, const char *history,
                    emos_coef **coef_out, int *per_point_out)
{
    const postprocess_config *pc = &cfg->postprocess;
    int per_point = !strcmp(pc->emos_scope, "per_point");
    size_t npts = E->npts, n = (size_t)train->n * npts;
    float *m = malloc(sizeof(float) * n), *v = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    emos_coef *coef = malloc(sizeof(emos_coef) * (per_point ? npts : 1));
    int st = SM_OK;
    if (!m || !v || !y || !coef) st = sm_fail(SM_ERR_NUMERIC, "out of memory for the EMOS training arrays");
    for (int64_t k = 0; st == SM_OK && k < train->n; k++) {
        int t = (int)train->idx[k];
        const float *mm = ens_mean(E, t, 0), *ss = ens_sd(E, t, 0), *yy = truth + (size_t)t * npts;
        for (size_t p = 0; p < npts; p++) {
            m[(size_t)k * npts + p] = mm[p];
            v[(size_t)k * npts + p] = ss[p] * ss[p];
            y[(size_t)k * npts + p] = yy[p];
        }
    }
    emos_opts opts;
    emos_default_opts(&opts);
    emos_info info = {0};
    long failed = 0, unconv = 0;
    double t0 = 0;
    (void)t0;
    if (st == SM_OK) {
        if (per_point) {
            st = emos_fit_points(m, v, y, (int)train->n, npts, &opts, coef, &failed, &unconv);
            if (st == SM_OK) {
                emos_ctx c = {E, coef, 1, 0, NULL};
                (void)c;
                info.crps = NAN;
                info.n = n;
                log_info("EMOS per grid point: %zu points, %ld failed (too few samples: NaN coefficients), %ld hit max_iter", npts,
                         failed, unconv);
            }
        } else {
            st = emos_fit(m, v, y, n, 1, &opts, coef, &info);
            if (st == SM_OK)
                log_info("EMOS global: a %.6g b %.6g c %.6g d %.6g; training CRPS %.6g over %zu samples (%d iterations%s)", coef->a,
                         coef->b, coef->c, coef->d, info.crps, info.n, info.iters, info.converged ? "" : ", not converged");
        }
    }
    if (st == SM_OK && per_point) {
        /* training CRPS of the per-point fit */
        double s = 0;
        size_t cnt = 0;
        for (size_t p = 0; p < npts; p++) {
            double c = emos_crps(&coef[p], m + p, v + p, y + p, (size_t)train->n, npts);
            if (isfinite(c)) s += c, cnt++;
        }
        info.crps = cnt ? s / cnt : NAN;
    }
    free(m), free(v), free(y);
    if (st == SM_OK) {
        const dataset_var_info *vi = &E->ds->vars[E->var[0]];
        emos_model em = {0};
        em.per_point = per_point;
        snprintf(em.target, sizeof em.target, "%s", E->names[0]);
        snprintf(em.units, sizeof em.units, "%s", vi->units);
        snprintf(em.standard_name, sizeof em.standard_name, "%s", vi->standard_name);
        snprintf(em.long_name, sizeof em.long_name, "%s", vi->long_name);
        em.is_latlon = E->ds->is_latlon;
        em.H = E->H, em.W = E->W, em.lat = E->ds->lat, em.lon = E->ds->lon;
        em.coef = coef;
        em.sigma_floor = pc->sigma_floor;
        em.members = E->M;
        period_text(E->ds, train, em.training_period, sizeof em.training_period);
        em.training_crps = info.crps;
        em.training_samples = (long)info.n;
        em.points_failed = failed;
        em.config_yaml = config_to_yaml(cfg);
        em.forecast_src = provenance_of(pc->forecast);
        em.truth_src = provenance_of(pc->truth);
        em.history = (char *)history;
        char path[CFG_PATH + 16];
        snprintf(path, sizeof path, "%s/emos.nc", cfg->output.dir);
        st = emos_model_write(path, &em);
        if (st == SM_OK) log_info("wrote %s", path);
        free(em.config_yaml), free(em.forecast_src), free(em.truth_src);
    }
    if (st) {
        free(coef);
        return st;
    }
    *coef_out = coef;
    *per_point_out = per_point;
    return SM_OK;
}

/* ------------------------------------------------------------------ fit */

int postprocess_fit(const sm_config *cfg, int resume, const char *history, postprocess_scores *scores)
{
    const postprocess_config *pc = &cfg->postprocess;
    const char *method = pc->method;
    if (cfg->run.threads > 0 || getenv("OMP_NUM_THREADS") == NULL) nn_set_threads(cfg->run.threads);
    if (!pc->forecast[0]) return sm_fail(SM_ERR_USAGE, "postprocess.forecast is not set (the ensemble forecast dataset from 'smoecast ingest')");
    if (!pc->truth[0]) return sm_fail(SM_ERR_USAGE, "postprocess.truth is not set (the verifying truth dataset)");
    int neural = !strcmp(method, "mlp") || !strcmp(method, "unet") || !strcmp(method, "smoe");
    if (resume && !neural) return sm_fail(SM_ERR_USAGE, "--resume applies to the neural methods (mlp, unet, smoe), not '%s'", method);
    char names[ENS_MAX_VARS][80];
    int P;
    int st = ens_predictor_list(pc->target, &pc->predictors, &P, names);
    if (st) return st;
    if (!neural) P = 1; /* raw and EMOS use the target's own ensemble only */
    ens_data E;
    float *truth = NULL;
    uint8_t *has = NULL;
    ens_split train = {0}, val = {0}, test = {0};
    climate clim = {0};
    int have_clim = 0;
    emos_coef *coef = NULL;
    int per_point = 0;
    if ((st = ens_data_load(pc->forecast, P, names, &E))) goto done;
    int matched;
    if ((st = ens_truth_load(pc->truth, names[0], &E, &truth, &matched))) goto done;
    has = calloc((size_t)E.T, 1);
    if (!has) {
        st = sm_fail(SM_ERR_NUMERIC, "out of memory");
        goto done;
    }
    for (int t = 0; t < E.T; t++)
        for (size_t p = 0; p < E.npts && !has[t]; p++) has[t] = !isnan(truth[(size_t)t * E.npts + p]);
    if ((st = ens_splits(&E, &cfg->data, has, &train, &val, &test))) goto done;
    {
        char a[160], b[160], c[160];
        period_text(E.ds, &train, a, sizeof a);
        period_text(E.ds, &val, b, sizeof b);
        period_text(E.ds, &test, c, sizeof c);
        log_info("%s: %d members, %d x %d grid, %d times (%d with truth); train %s, validation %s, test %s", pc->forecast, E.M, E.H,
                 E.W, E.T, matched, a, b, c);
    }
    if ((st = outfile_make_dirs(cfg->output.dir))) goto done;
    if (pc->climate[0]) {
        if ((st = climate_load(pc->climate, names[0], &E, &clim))) goto done;
        have_clim = 1;
    }

    emos_ctx ectx = {0};
    post_nn *nn = NULL;
    predict_fn predict = NULL;
    void *pctx = NULL;
    if (!strcmp(method, "raw")) {
        log_info("raw: nothing to fit; scoring the raw ensemble");
    } else if (!strcmp(method, "emos")) {
        if ((st = fit_emos(cfg, &E, truth, &train, history, &coef, &per_point))) goto done;
        ectx = (emos_ctx){&E, coef, per_point, pc->sigma_floor, malloc(sizeof(float) * E.npts)};
        if (!ectx.var) {
            st = sm_fail(SM_ERR_NUMERIC, "out of memory");
            goto done;
        }
        predict = emos_predict;
        pctx = &ectx;
    } else {
        if ((st = post_nn_fit(cfg, resume, &E, truth, &train, &val, &nn))) goto done;
        predict = post_nn_predict;
        pctx = nn;
    }
    const ens_split *score = test.n > 0 ? &test : &val;
    const char *split_name = test.n > 0 ? "test" : "validation";
    if (score->n == 0) {
        log_warn("no test or validation time: scores are on the training times");
        score = &train;
        split_name = "train";
    }
    eval_prob_result res;
    if (st == SM_OK) st = score_split(&E, truth, score, have_clim ? &clim : NULL, predict, pctx, &res);
    if (st == SM_OK) st = write_scores(cfg->output.dir, method, split_name, (long)score->n, &res);
    if (st == SM_OK) {
        log_info("%s on %s (%lld times): CRPS %.6g%s, RMSE %.6g, spread %.6g, SSR %.4f, coverage80 %.4f, EECRPS %.6g", method,
                 split_name, (long long)score->n, res.crps, predict ? "" : " (standard ensemble form)", res.rmse, res.spread, res.ssr,
                 res.coverage80, res.eecrps);
        if (scores) {
            scores->crps = res.crps, scores->crps_fair = res.crps_fair, scores->rmse = res.rmse, scores->spread = res.spread;
            scores->ssr = res.ssr, scores->coverage80 = res.coverage80, scores->eecrps = res.eecrps, scores->n_times = (long)score->n;
        }
    }
    free(ectx.var);
    post_nn_free(nn);
done:
    free(coef);
    free(truth);
    free(has);
    ens_split_free(&train), ens_split_free(&val), ens_split_free(&test);
    climate_free(&clim);
    ens_data_free(&E);
    return st;
}

/* ------------------------------------------------------------------ apply */

int postprocess_apply(const postprocess_apply_opts *o)
{
    if (o->threads > 0 || getenv("OMP_NUM_THREADS") == NULL) nn_set_threads(o->threads);
    int is_emos = emos_model_is(o->model);
    emos_model em = {0};
    post_nn *nn = NULL;
    char target[80], names[ENS_MAX_VARS][80], method[32];
    int st, P = 1;
    ens_data E = {0};
    float *mu = NULL, *sg = NULL;
    double *ref = NULL, *per = NULL;
    if (is_emos) {
        if ((st = emos_model_read(o->model, &em))) return st;
        snprintf(target, sizeof target, "%s", em.target);
        snprintf(method, sizeof method, "emos (%s)", em.per_point ? "per_point" : "global");
    } else {
        if ((st = post_nn_load(o->model, &nn))) return st;
        snprintf(target, sizeof target, "%s", post_nn_target(nn));
        snprintf(method, sizeof method, "%s", post_nn_method(nn));
        P = post_nn_predictors(nn, names);
    }
    snprintf(names[0], sizeof names[0], "%s", o->var ? o->var : target);
    if (!is_emos && o->var && strcmp(o->var, target))
        log_warn("calibrating variable %s with a %s model trained for %s", o->var, method, target);
    if ((st = ens_data_load(o->forecast, P, names, &E))) goto done;
    double floor = isnan(o->sigma_floor) ? (is_emos ? em.sigma_floor : post_nn_sigma_floor(nn)) : o->sigma_floor;
    if (is_emos && em.per_point && (em.H != E.H || em.W != E.W)) {
        st = sm_fail(SM_ERR_IO, "%s: per-point EMOS coefficients are for a %d x %d grid but %s is %d x %d (use a global EMOS or the same grid)",
                       o->model, em.H, em.W, o->forecast, E.H, E.W);
        goto done;
    }
    if (!is_emos && (st = post_nn_check_grid(nn, &E, o->model))) goto done;
    size_t npts = E.npts;
    mu = malloc(sizeof(float) * (size_t)E.T * npts);
    sg = malloc(sizeof(float) * (size_t)E.T * npts);
    ref = malloc(sizeof(double) * (size_t)E.T);
    per = malloc(sizeof(double) * (size_t)E.T);
    float *var = malloc(sizeof(float) * npts);
    if (!mu || !sg || !ref || !per || !var) {
        free(var);
        st = sm_fail(SM_ERR_NUMERIC, "out of memory");
        goto done;
    }
    for (int t = 0; t < E.T && st == SM_OK; t++) {
        double r = E.ds->reference_times[t], p = E.ds->forecast_periods[t];
        if (isnan(p) && !isnan(r)) p = E.ds->times[t] - r;
        if (isnan(r) || isnan(p)) {
            if (isnan(o->lead_hours)) {
                st = sm_fail(SM_ERR_USAGE, "%s: the dataset does not record forecast reference times (NetCDF input); "
                             "pass --lead DURATION (e.g. --lead 48h) so that reference time = valid time - lead", o->forecast);
                break;
            }
            p = o->lead_hours;
            r = E.ds->times[t] - p;
        }
        ref[t] = r, per[t] = p;
        if (is_emos) {
            const float *m = ens_mean(&E, t, 0), *s = ens_sd(&E, t, 0);
            for (size_t i = 0; i < npts; i++) var[i] = s[i] * s[i];
            emos_apply(em.coef, em.per_point, m, var, 1, npts, floor, mu + (size_t)t * npts, sg + (size_t)t * npts);
        } else {
            st = post_nn_apply(nn, &E, t, floor, mu + (size_t)t * npts, sg + (size_t)t * npts);
        }
        if (st == SM_OK && sm_interrupted()) st = sm_fail(SM_ERR_INTERRUPTED, "interrupted; nothing written");
    }
    free(var);
    if (st) goto done;
    double pct[POST_MAX_QUANTILES];
    int nq = 0;
    if (o->quantiles && (st = post_parse_percentiles(o->quantiles, pct, POST_MAX_QUANTILES, &nq))) goto done;
    const dataset_var_info *vi = &E.ds->vars[E.var[0]];
    if (is_emos && strcmp(em.units, vi->units))
        log_warn("%s: the model was fitted on %s in '%s' but %s of %s is in '%s': the coefficients are applied as they are", o->model,
                 target, em.units, names[0], o->forecast, vi->units);
    char prov[512];
    snprintf(prov, sizeof prov, "model target %s; trained on %s", target, is_emos ? em.training_period : post_nn_period(nn));
    post_output out = {.var = names[0], .units = vi->units, .standard_name = vi->standard_name, .long_name = vi->long_name,
                       .calendar = E.ds->calendar, .is_latlon = E.ds->is_latlon, .H = E.H, .W = E.W, .lat = E.ds->lat,
                       .lon = E.ds->lon, .T = E.T, .ref = ref, .period = per, .mu = mu, .sigma = sg, .nq = nq,
                       .percentiles = pct, .n_members = o->members, .history = o->history, .model_path = o->model,
                       .method = method, .model_target = target, .forecast_path = o->forecast, .extra_text = prov,
                       .sigma_floor = floor};
    if ((st = post_output_write(o->out, &out))) goto done;
    log_info("%s: %s-calibrated %s for %d forecasts (%d members in, sigma floor %g %s)%s%s", o->out, method, names[0], E.T, E.M,
             floor, vi->units, nq ? ", quantiles" : "", o->members ? ", calibrated members" : "");
done:
    free(mu), free(sg), free(ref), free(per);
    ens_data_free(&E);
    emos_model_free(&em);
    post_nn_free(nn);
    return st;
}
