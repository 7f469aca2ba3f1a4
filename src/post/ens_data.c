/* Ensemble moments, truth matching, splits and features for post-processing (see ens_data.h). */
#include "post/ens_data.h"
#include "core/log.h"
#include "core/outfile.h"
#include "io/cf_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void format_time(const dataset *ds, double hours, char *buf, int len)
{
    cf_calendar cal;
    if (cf_calendar_parse(ds->calendar, &cal) != 0) cal = CAL_PROLEPTIC;
    cf_format_hours(hours, cal, buf, len);
}

static void list_vars(const dataset *ds, char *buf, size_t len)
{
    buf[0] = '\0';
    for (int i = 0; i < ds->nvars; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, len - l, "%s%s", i ? ", " : "", ds->vars[i].name);
    }
}

int ens_predictor_list(const char *target, const cfg_strlist *predictors, int *P, char names[][80])
{
    if (!target || !target[0]) return sm_fail(SM_ERR_USAGE, "postprocess.target is not set (the variable to calibrate, e.g. t850)");
    int n = 0;
    snprintf(names[n++], 80, "%s", target);
    for (int i = 0; predictors && i < predictors->n; i++) {
        int dup = 0;
        for (int k = 0; k < n; k++) dup |= !strcmp(names[k], predictors->items[i]);
        if (dup) continue;
        if (n >= ENS_MAX_VARS) return sm_fail(SM_ERR_USAGE, "postprocess.predictors: at most %d variables", ENS_MAX_VARS);
        snprintf(names[n++], 80, "%s", predictors->items[i]);
    }
    *P = n;
    return SM_OK;
}

int ens_read_members(const dataset *ds, int var, int t, float *ens)
{
    size_t npts = (size_t)ds->nlat * ds->nlon;
    for (int k = 0; k < ds->nmembers; k++) {
        float *f = ens + (size_t)k * npts;
        int st = dataset_read(ds, var, t, k, f);
        if (st) return st;
        size_t nan = 0;
        for (size_t p = 0; p < npts; p++) nan += isnan(f[p]) != 0;
        if (nan == npts) {
            char when[64];
            format_time(ds, ds->times[t], when, sizeof when);
            return sm_fail(SM_ERR_IO,
                           "%s: variable %s, time %s: member %d (realization %d) is missing (every point is NaN); "
                           "post-processing needs the same members at every time (re-ingest without that time or member)",
                           ds->path, ds->vars[var].name, when, ds->members ? ds->members[k] : k, k);
        }
    }
    return SM_OK;
}

int ens_data_load(const char *path, int P, const char names[][80], ens_data *E)
{
    memset(E, 0, sizeof *E);
    int st = dataset_open(path, &E->ds);
    if (st) return st;
    dataset *ds = E->ds;
    E->P = P;
    E->M = ds->nmembers;
    E->H = ds->nlat;
    E->W = ds->nlon;
    E->npts = (size_t)ds->nlat * ds->nlon;
    E->T = ds->ntimes;
    char vars[1024];
    for (int p = 0; p < P; p++) {
        snprintf(E->names[p], sizeof E->names[p], "%s", names[p]);
        E->var[p] = dataset_find_var(ds, names[p]);
        if (E->var[p] < 0) {
            list_vars(ds, vars, sizeof vars);
            return sm_fail(SM_ERR_IO, "%s: %s '%s' is not in the ensemble dataset (variables: %s)", path,
                           p == 0 ? "target variable" : "predictor", names[p], vars);
        }
        const dataset_var_info *vi = &ds->vars[E->var[p]];
        if (!vi->has_members || vi->is_static)
            return sm_fail(SM_ERR_IO, "%s: variable %s has no realization dimension: not an ensemble forecast "
                           "(ingest the members: GRIB `number` or a NetCDF realization dimension)", path, names[p]);
    }
    if (E->M < 2) return sm_fail(SM_ERR_IO, "%s: %d ensemble member(s); post-processing needs at least 2", path, E->M);
    size_t npts = E->npts;
    E->mom = malloc(sizeof(float) * (size_t)E->T * P * 2 * npts);
    float *ens = malloc(sizeof(float) * (size_t)E->M * npts);
    if (!E->mom || !ens) {
        free(ens);
        return sm_fail(SM_ERR_NUMERIC, "out of memory for the ensemble moments of %s", path);
    }
    for (int t = 0; t < E->T && st == SM_OK; t++) {
        for (int p = 0; p < P && st == SM_OK; p++) {
            if ((st = ens_read_members(ds, E->var[p], t, ens))) break;
            float *mean = (float *)ens_mean(E, t, p), *sd = (float *)ens_sd(E, t, p);
            for (size_t i = 0; i < npts; i++) {
                double s = 0;
                for (int k = 0; k < E->M; k++) s += ens[(size_t)k * npts + i];
                double m = s / E->M, ss = 0;
                for (int k = 0; k < E->M; k++) {
                    double d = ens[(size_t)k * npts + i] - m;
                    ss += d * d;
                }
                mean[i] = (float)m;
                sd[i] = (float)sqrt(ss / (E->M - 1));
            }
        }
        if (st == SM_OK && sm_interrupted()) st = sm_fail(SM_ERR_INTERRUPTED, "interrupted while reading %s", path);
    }
    free(ens);
    return st;
}

void ens_data_free(ens_data *E)
{
    if (!E) return;
    if (E->ds) dataset_close(E->ds);
    free(E->mom);
    memset(E, 0, sizeof *E);
}

int ens_truth_load(const char *path, const char *target, const ens_data *E, float **truth, int *n_matched)
{
    *truth = NULL;
    *n_matched = 0;
    if (!path || !path[0]) return sm_fail(SM_ERR_USAGE, "postprocess.truth is not set (the verifying truth dataset)");
    dataset *ts;
    int st = dataset_open(path, &ts);
    if (st) return st;
    char vars[1024];
    int v = dataset_find_var(ts, target);
    if (v < 0) {
        list_vars(ts, vars, sizeof vars);
        st = sm_fail(SM_ERR_IO, "%s: target variable '%s' is absent from the truth file (variables: %s)", path, target, vars);
    } else if (ts->nlat != E->H || ts->nlon != E->W) {
        st = sm_fail(SM_ERR_IO, "%s: truth grid %d x %d differs from the ensemble grid %d x %d (%s)", path, ts->nlat, ts->nlon,
                     E->H, E->W, E->ds->path);
    } else if (ts->vars[v].is_static) {
        st = sm_fail(SM_ERR_IO, "%s: truth variable %s is static (no time dimension)", path, target);
    }
    for (int j = 0; st == SM_OK && j < E->H; j++)
        if (fabs(ts->lat[j] - E->ds->lat[j]) > 1e-6) st = sm_fail(SM_ERR_IO, "%s: truth latitude %d (%g) differs from the ensemble's (%g)", path, j, ts->lat[j], E->ds->lat[j]);
    for (int i = 0; st == SM_OK && i < E->W; i++)
        if (fabs(ts->lon[i] - E->ds->lon[i]) > 1e-6) st = sm_fail(SM_ERR_IO, "%s: truth longitude %d (%g) differs from the ensemble's (%g)", path, i, ts->lon[i], E->ds->lon[i]);
    float *y = NULL;
    if (st == SM_OK) {
        y = malloc(sizeof(float) * (size_t)E->T * E->npts);
        if (!y) st = sm_fail(SM_ERR_NUMERIC, "out of memory for the truth of %s", path);
    }
    if (st == SM_OK && ts->vars[v].has_members)
        log_warn("%s: truth variable %s has members; using the first (realization %d)", path, target, ts->members ? ts->members[0] : 0);
    for (int t = 0; st == SM_OK && t < E->T; t++) {
        float *row = y + (size_t)t * E->npts;
        int it = dataset_find_time(ts, E->ds->times[t]);
        if (it < 0) {
            for (size_t p = 0; p < E->npts; p++) row[p] = NAN;
            continue;
        }
        if ((st = dataset_read(ts, v, it, 0, row))) break;
        (*n_matched)++;
    }
    if (st == SM_OK && *n_matched == 0)
        st = sm_fail(SM_ERR_IO, "%s: no valid time of the ensemble %s is in the truth file", path, E->ds->path);
    dataset_close(ts);
    if (st) {
        free(y);
        return st;
    }
    *truth = y;
    return SM_OK;
}

static int parse_iso(const dataset *ds, const char *text, const char *key, double *hours)
{
    cf_calendar cal;
    if (cf_calendar_parse(ds->calendar, &cal) != 0) cal = CAL_PROLEPTIC;
    cf_date d;
    if (cf_date_parse(text, &d) != 0 || !cf_date_valid(&d, cal))
        return sm_fail(SM_ERR_USAGE, "%s: '%s' is not a date (use e.g. 2001-12-31T00 or 2001-12-31)", key, text);
    *hours = cf_date_to_hours(&d, cal);
    return SM_OK;
}

static int split_alloc(ens_split *s, int T)
{
    s->n = 0;
    s->idx = malloc(sizeof(int64_t) * (size_t)(T > 0 ? T : 1));
    return s->idx ? SM_OK : sm_fail(SM_ERR_NUMERIC, "out of memory");
}

int ens_splits(const ens_data *E, const data_config *dc, const uint8_t *has_truth, ens_split *train, ens_split *val,
               ens_split *test)
{
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    memset(test, 0, sizeof *test);
    const dataset *ds = E->ds;
    int st;
    if ((st = split_alloc(train, E->T)) || (st = split_alloc(val, E->T)) || (st = split_alloc(test, E->T))) return st;
    double lim[3][2];
    if (dc->train_end[0]) {
        const char *txt[3][2] = {{dc->train_start, dc->train_end}, {dc->val_start, dc->val_end}, {dc->test_start, dc->test_end}};
        const char *keys[3][2] = {{"data.train_start", "data.train_end"}, {"data.val_start", "data.val_end"},
                                  {"data.test_start", "data.test_end"}};
        for (int s = 0; s < 3; s++)
            for (int e = 0; e < 2; e++) {
                if (!txt[s][e][0]) {
                    lim[s][e] = e == 0 ? (s == 0 ? -INFINITY : NAN) : NAN;
                    continue;
                }
                if ((st = parse_iso(ds, txt[s][e], keys[s][e], &lim[s][e]))) return st;
            }
        /* unset validation/test bounds: empty split */
        for (int s = 1; s < 3; s++)
            if (isnan(lim[s][0]) || isnan(lim[s][1])) lim[s][0] = INFINITY, lim[s][1] = -INFINITY;
        if (isnan(lim[0][1])) lim[0][1] = INFINITY;
    } else {
        int a = (int)(0.8 * E->T), b = (int)(0.9 * E->T);
        if (a < 1) a = 1;
        if (b < a) b = a;
        double tm = E->T ? ds->times[E->T - 1] : 0;
        lim[0][0] = -INFINITY, lim[0][1] = ds->times[a - 1];
        lim[1][0] = b > a ? ds->times[a] : INFINITY, lim[1][1] = b > a ? ds->times[b - 1] : -INFINITY;
        lim[2][0] = b < E->T ? ds->times[b] : INFINITY, lim[2][1] = b < E->T ? tm : -INFINITY;
    }
    ens_split *out[3] = {train, val, test};
    for (int t = 0; t < E->T; t++) {
        if (has_truth && !has_truth[t]) continue;
        double h = ds->times[t];
        for (int s = 0; s < 3; s++)
            if (h >= lim[s][0] - 1e-6 && h <= lim[s][1] + 1e-6) {
                out[s]->idx[out[s]->n++] = t;
                break;
            }
    }
    if (train->n == 0) return sm_fail(SM_ERR_USAGE, "%s: no training time with a verifying truth (check data.train_start/train_end)", ds->path);
    return SM_OK;
}

void ens_split_free(ens_split *s)
{
    if (!s) return;
    free(s->idx);
    s->idx = NULL;
    s->n = 0;
}

int ens_norm_compute(const ens_data *E, const int64_t *times, int64_t n, ens_norm *N)
{
    memset(N, 0, sizeof *N);
    N->C = 2 * E->P;
    N->npts = E->npts;
    N->mean = malloc(sizeof(float) * N->C * N->npts);
    N->std = malloc(sizeof(float) * N->C * N->npts);
    double *s1 = calloc(N->npts, sizeof(double)), *s2 = calloc(N->npts, sizeof(double));
    long *cnt = calloc(N->npts, sizeof(long));
    int st = SM_OK;
    if (!N->mean || !N->std || !s1 || !s2 || !cnt) st = sm_fail(SM_ERR_NUMERIC, "out of memory");
    for (int c = 0; st == SM_OK && c < N->C; c++) {
        memset(s1, 0, N->npts * sizeof *s1);
        memset(s2, 0, N->npts * sizeof *s2);
        memset(cnt, 0, N->npts * sizeof *cnt);
        for (int64_t k = 0; k < n; k++) {
            const float *x = (c & 1) ? ens_sd(E, (int)times[k], c / 2) : ens_mean(E, (int)times[k], c / 2);
            for (size_t p = 0; p < N->npts; p++)
                if (!isnan(x[p])) s1[p] += x[p], cnt[p]++;
        }
        for (size_t p = 0; p < N->npts; p++) s1[p] = cnt[p] ? s1[p] / cnt[p] : 0;
        for (int64_t k = 0; k < n; k++) {
            const float *x = (c & 1) ? ens_sd(E, (int)times[k], c / 2) : ens_mean(E, (int)times[k], c / 2);
            for (size_t p = 0; p < N->npts; p++)
                if (!isnan(x[p])) s2[p] += (x[p] - s1[p]) * (x[p] - s1[p]);
        }
        for (size_t p = 0; p < N->npts; p++) {
            N->mean[(size_t)c * N->npts + p] = (float)s1[p];
            N->std[(size_t)c * N->npts + p] = (float)(cnt[p] ? sqrt(s2[p] / cnt[p]) : 0);
        }
    }
    free(s1);
    free(s2);
    free(cnt);
    if (st) ens_norm_free(N);
    return st;
}

void ens_norm_free(ens_norm *N)
{
    if (!N) return;
    free(N->mean);
    free(N->std);
    N->mean = N->std = NULL;
}

void ens_features(const ens_data *E, const ens_norm *N, int t, int latlon, const double *lat, const double *lon,
                  float *out)
{
    size_t npts = E->npts;
    for (int c = 0; c < 2 * E->P; c++) {
        const float *x = (c & 1) ? ens_sd(E, t, c / 2) : ens_mean(E, t, c / 2);
        const float *m = N->mean + (size_t)c * npts, *s = N->std + (size_t)c * npts;
        float *o = out + (size_t)c * npts;
        for (size_t p = 0; p < npts; p++) o[p] = (float)(((double)x[p] - m[p]) / ((double)s[p] + ENS_FEATURE_EPS));
    }
    if (!latlon) return;
    static const double deg = 0.017453292519943295;
    float *o = out + (size_t)2 * E->P * npts;
    for (int j = 0; j < E->H; j++)
        for (int i = 0; i < E->W; i++) {
            size_t p = (size_t)j * E->W + i;
            double la = lat[j] * deg, lo = lon[i] * deg;
            o[p] = (float)sin(la);
            o[npts + p] = (float)(cos(la) * sin(lo));
            o[2 * npts + p] = (float)(cos(la) * cos(lo));
        }
}
