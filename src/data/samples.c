/* Forecast samples: channel layout, splits, normalisation statistics, field cache and batch
 * assembly (see samples.h for the layout). */
#include "data/samples.h"
#include "io/nc_attr.h"
#include "core/log.h"
#include "io/cf_time.h"

#include <ctype.h>
#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TWO_PI 6.283185307179586

/* ------------------------------------------------------------------ durations and times */

int samples_parse_duration(const char *text, const char *key, double *hours)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || !isfinite(v) || v < 0)
        return sm_fail(SM_ERR_USAGE, "%s: '%s' is not a duration (examples: 6h, 1d, 30m)", key, text);
    double scale = 1;
    if (!strcmp(end, "h") || !strcmp(end, "") || !strcmp(end, "H"))
        scale = 1;
    else if (!strcmp(end, "d") || !strcmp(end, "D"))
        scale = 24;
    else if (!strcmp(end, "m") || !strcmp(end, "min"))
        scale = 1.0 / 60;
    else
        return sm_fail(SM_ERR_USAGE, "%s: unknown unit in '%s' (use m, h or d)", key, text);
    *hours = v * scale;
    return SM_OK;
}

static int calendar_of(const dataset *ds, cf_calendar *cal)
{
    if (cf_calendar_parse(ds->calendar, cal) != SM_OK) *cal = CAL_PROLEPTIC;
    return SM_OK;
}

static int parse_time(const dataset *ds, const char *text, const char *key, double *hours)
{
    cf_date d;
    cf_calendar cal;
    calendar_of(ds, &cal);
    if (cf_date_parse(text, &d) != SM_OK || !cf_date_valid(&d, cal))
        return sm_fail(SM_ERR_USAGE, "%s: '%s' is not a date (use e.g. 2019-03-21T23 or 2019-03-21 23:00)", key, text);
    *hours = cf_date_to_hours(&d, cal);
    return SM_OK;
}

void samples_time_features(double hours, const char *calendar, double *hour_phase, double *doy_phase)
{
    cf_calendar cal;
    if (cf_calendar_parse(calendar, &cal) != SM_OK) cal = CAL_PROLEPTIC;
    cf_date d;
    cf_hours_to_date(hours, cal, &d);
    cf_date jan1 = {d.year, 1, 1, 0, 0, 0}, next = {d.year + 1, 1, 1, 0, 0, 0};
    double y0 = cf_date_to_hours(&jan1, cal), y1 = cf_date_to_hours(&next, cal);
    double day_hours = hours - 24.0 * floor(hours / 24.0);
    *hour_phase = TWO_PI * day_hours / 24.0;
    *doy_phase = TWO_PI * (hours - y0) / (y1 - y0);
}

/* Index of `hours` in the sorted time axis (within one second), -1 when absent. */
static int64_t find_time(const dataset *ds, double hours)
{
    int64_t lo = 0, hi = ds->ntimes - 1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        double d = ds->times[mid] - hours;
        if (fabs(d) < 1.0 / 3600.0) return mid;
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* ------------------------------------------------------------------ layout */

static int find_var(const dataset *ds, const char *name, const char *key)
{
    int v = dataset_find_var(ds, name);
    if (v >= 0) return v;
    char list[1024] = "";
    for (int i = 0; i < ds->nvars; i++) {
        if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, ds->vars[i].name, sizeof list - strlen(list) - 1);
    }
    return -1 - sm_fail(SM_ERR_USAGE, "%s: variable '%s' (from %s) is not in the dataset; it has: %s", ds->path, name, key,
                        list);
}

/* Input channels of the recent-day means: every prognostic at the hours of t and t + s. */
static int recent_channels(const sample_layout *L) { return L->recent_days > 0 ? 2 * L->n_prog : 0; }

static double median_step(const dataset *ds)
{
    if (ds->ntimes < 2) return 1;
    double best = INFINITY;
    for (int t = 1; t < ds->ntimes; t++) {
        double d = ds->times[t] - ds->times[t - 1];
        if (d > 0 && d < best) best = d;
    }
    return best;
}

int samples_layout_init(sample_layout *L, const data_config *dc, const dataset *ds)
{
    memset(L, 0, sizeof *L);
    if (ds->time_is_index)
        return sm_fail(SM_ERR_USAGE, "%s: the time axis has no units (e.g. a month index); forecasts need real times", ds->path);
    if (ds->nmembers > 0)
        return sm_fail(SM_ERR_USAGE, "%s: has ensemble members; use 'smoecast postprocess' for ensembles", ds->path);
    if (dc->prognostic.n == 0 && dc->diagnostic.n == 0)
        return sm_fail(SM_ERR_USAGE, "data.prognostic and data.diagnostic are both empty: name the variables to forecast");
    if (dc->prognostic.n + dc->diagnostic.n + dc->forcing.n > SAMPLES_MAX_VARS)
        return sm_fail(SM_ERR_USAGE, "too many variables (at most %d)", SAMPLES_MAX_VARS);

    for (int i = 0; i < dc->prognostic.n; i++) {
        int v = find_var(ds, dc->prognostic.items[i], "data.prognostic");
        if (v < 0) return -1 - v;
        if (ds->vars[v].is_static) return sm_fail(SM_ERR_USAGE, "data.prognostic: '%s' is static (no time axis); list it under data.forcing", ds->vars[v].name);
        L->prog_var[L->n_prog++] = v;
    }
    for (int i = 0; i < dc->diagnostic.n; i++) {
        int v = find_var(ds, dc->diagnostic.items[i], "data.diagnostic");
        if (v < 0) return -1 - v;
        L->diag_var[L->n_diag++] = v;
    }
    int n_computed = 0, n_coord_forc = 0;
    L->n_coord = 0;
    for (int i = 0; i < dc->forcing.n; i++) {
        const char *name = dc->forcing.items[i];
        int f = L->n_forc++;
        L->forc_var[f] = -1;
        if (!strcmp(name, "hour_of_day")) {
            L->forc_kind[f] = FORCING_HOUR_OF_DAY;
            n_computed++;
        } else if (!strcmp(name, "day_of_year")) {
            L->forc_kind[f] = FORCING_DAY_OF_YEAR;
            n_computed++;
        } else if (!strcmp(name, "latitude") || !strcmp(name, "longitude")) {
            if (!ds->is_latlon)
                return sm_fail(SM_ERR_USAGE, "data.forcing: '%s' needs a lat-lon grid; %s is on an x/y grid", name, ds->path);
            L->forc_kind[f] = name[1] == 'a' ? FORCING_LATITUDE : FORCING_LONGITUDE;
            L->n_coord += name[1] == 'a' ? 1 : 2;
            n_coord_forc++;
        } else {
            int v = find_var(ds, name, "data.forcing");
            if (v < 0) return -1 - v;
            L->forc_kind[f] = FORCING_FIELD;
            L->forc_var[f] = v;
        }
    }
    int st = samples_parse_duration(dc->lead_time, "data.lead_time", &L->lead_hours);
    if (st) return st;
    L->step_hours = L->lead_hours;
    if (dc->step[0] && (st = samples_parse_duration(dc->step, "data.step", &L->step_hours))) return st;
    if (L->step_hours <= 0) return sm_fail(SM_ERR_USAGE, "data.lead_time/data.step must be positive");
    double k = L->lead_hours / L->step_hours;
    if (fabs(k - round(k)) > 1e-9)
        return sm_fail(SM_ERR_USAGE, "data.lead_time %s is not a multiple of data.step %s", dc->lead_time, dc->step);
    /* Autoregressive models see their history at the model step, so that a rollout can feed
     * its own earlier steps back; direct models see the dataset's own time step. */
    L->dt_hours = dc->step[0] ? L->step_hours : median_step(ds);
    if (dc->history_step[0]) {
        if ((st = samples_parse_duration(dc->history_step, "data.history_step", &L->dt_hours))) return st;
        if (!(L->dt_hours > 0)) return sm_fail(SM_ERR_USAGE, "data.history_step must be positive");
        if (dc->step[0] && fabs(L->dt_hours - L->step_hours) > 1e-9)
            return sm_fail(SM_ERR_USAGE, "data.history_step %s must equal data.step %s for an autoregressive model (its rollout "
                           "feeds its own steps back)", dc->history_step, dc->step);
    }
    if (dc->leads.n > 0) {
        if (dc->step[0]) return sm_fail(SM_ERR_USAGE, "data.leads (a direct multi-lead model) needs an empty data.step");
        if (dc->leads.n > SAMPLES_MAX_LEADS) return sm_fail(SM_ERR_USAGE, "data.leads: at most %d leads", SAMPLES_MAX_LEADS);
        for (int j = 0; j < dc->leads.n; j++) {
            if ((st = samples_parse_duration(dc->leads.items[j], "data.leads", &L->leads[j]))) return st;
            if (L->leads[j] <= 0) return sm_fail(SM_ERR_USAGE, "data.leads: '%s' is not positive", dc->leads.items[j]);
            for (int i = 0; i < j; i++)
                if (fabs(L->leads[i] - L->leads[j]) < 1e-9) return sm_fail(SM_ERR_USAGE, "data.leads: '%s' is listed twice", dc->leads.items[j]);
        }
        L->n_leads = dc->leads.n;
        if (samples_lead_index(L, L->lead_hours) < 0)
            return sm_fail(SM_ERR_USAGE, "data.leads must include data.lead_time %s (the lead validated on)", dc->lead_time);
    }
    L->history = dc->history;
    L->tendency = dc->tendency;
    L->lead_tendency = dc->lead_tendency_scale && L->n_leads > 0;
    L->relative_inputs = dc->relative_inputs;
    L->recent_days = dc->recent_days;
    if (L->recent_days > SAMPLES_MAX_RECENT_DAYS)
        return sm_fail(SM_ERR_USAGE, "data.recent_days is at most %d", SAMPLES_MAX_RECENT_DAYS);
    L->h = ds->nlat;
    L->w = ds->nlon;
    L->c_in = L->history * L->n_prog + recent_channels(L) + (L->n_forc - n_computed - n_coord_forc) + 4 * n_computed + L->n_coord + (L->n_leads > 0);
    L->c_out = L->n_prog + L->n_diag;
    if (L->n_coord > 0) {
        /* sin(lat) spans the grid's latitudes; longitude as sin and cos stays continuous
         * across the date line and the 0/360 seam. */
        size_t np = (size_t)L->h * L->w;
        float *c = L->coords = malloc(sizeof(float) * (size_t)L->n_coord * np);
        if (!c) return sm_fail(SM_ERR_NUMERIC, "out of memory");
        static const double deg = TWO_PI / 360.0;
        for (int i = 0; i < L->n_forc; i++) {
            if (L->forc_kind[i] == FORCING_LATITUDE) {
                for (size_t p = 0; p < np; p++) *c++ = (float)sin(ds->lat[p / L->w] * deg);
            } else if (L->forc_kind[i] == FORCING_LONGITUDE) {
                for (size_t p = 0; p < np; p++) *c++ = (float)sin(ds->lon[p % L->w] * deg);
                for (size_t p = 0; p < np; p++) *c++ = (float)cos(ds->lon[p % L->w] * deg);
            }
        }
    }

    norm_stats *S = &L->stats;
    for (int i = 0; i < L->n_prog; i++) snprintf(S->names[S->nvars++], 80, "%s", ds->vars[L->prog_var[i]].name);
    for (int i = 0; i < L->n_diag; i++) snprintf(S->names[S->nvars++], 80, "%s", ds->vars[L->diag_var[i]].name);
    for (int i = 0; i < L->n_forc; i++)
        if (L->forc_kind[i] == FORCING_FIELD) snprintf(S->names[S->nvars++], 80, "%s", ds->vars[L->forc_var[i]].name);
    return SM_OK;
}

int samples_lead_index(const sample_layout *L, double hours)
{
    for (int j = 0; j < L->n_leads; j++)
        if (fabs(L->leads[j] - hours) < 1e-6) return j;
    return -1;
}

void samples_decode(const sample_layout *L, const dataset *ds, int64_t idx, int64_t *t, double *lead_hours)
{
    int64_t code = ds->ntimes > 0 ? idx / ds->ntimes : 0;
    *t = ds->ntimes > 0 ? idx % ds->ntimes : idx;
    *lead_hours = code > 0 && code <= L->n_leads ? L->leads[code - 1] : L->step_hours;
}

static double max_lead(const sample_layout *L)
{
    double m = L->step_hours;
    for (int j = 0; j < L->n_leads; j++) m = fmax(m, L->leads[j]);
    return m;
}

/* Dataset indices of the data.recent_days most recent times at the hour of day of `hour`, a day
 * or more before it and not after t_info (newest first); returns how many exist. */
static int recent_times(const sample_layout *L, const dataset *ds, double hour, double t_info, int64_t *idx)
{
    int n = 0;
    if (ds->ntimes == 0) return 0;
    for (double t = hour - 24; n < L->recent_days && t >= ds->times[0] - 1e-6; t -= 24) {
        if (t > t_info + 1e-6) continue;
        int64_t i = find_time(ds, t);
        if (i >= 0) idx[n++] = i;
    }
    return n;
}

void samples_layout_free(sample_layout *L)
{
    free(L->coords);
    L->coords = NULL;
    free(L->stats.mean);
    free(L->stats.std);
    L->stats.mean = L->stats.std = NULL;
}

/* Statistic row of prognostic i / diagnostic i / forcing field i. */
static int stat_prog(const sample_layout *L, int i) { (void)L; return i; }
static int stat_diag(const sample_layout *L, int i) { return L->n_prog + i; }
static int stat_forc(const sample_layout *L, int f)
{
    int row = L->n_prog + L->n_diag;
    for (int i = 0; i < f; i++)
        if (L->forc_kind[i] == FORCING_FIELD) row++;
    return row;
}

/* ------------------------------------------------------------------ splits */

static int inside(double t, double start, double end) { return t >= start - 1e-6 && t <= end + 1e-6; }

/* Appends to `out` the inits valid for lead `lead` inside [start, end], encoded with `code`. */
static void valid_inits_lead(const sample_layout *L, const dataset *ds, double start, double end, double lead, int64_t code,
                             sample_split *out)
{
    for (int64_t i = 0; i < ds->ntimes; i++) {
        double t = ds->times[i];
        if (!inside(t, start, end) || !inside(t + lead, start, end)) continue;
        if (find_time(ds, t + lead) < 0) continue;
        int64_t days[SAMPLES_MAX_RECENT_DAYS];
        if (L->recent_days > 0 && (!recent_times(L, ds, t, t, days) || !recent_times(L, ds, t + lead, t, days))) continue;
        int ok = 1;
        for (int h = 1; h < L->history && ok; h++) {
            double th = t - h * L->dt_hours;
            ok = inside(th, start, end) && find_time(ds, th) >= 0;
        }
        if (ok) out->idx[out->n++] = i + code * ds->ntimes;
    }
}

/* Every (init, lead) pair of a multi-lead model inside [start, end], encoded (see samples.h). */
static int valid_inits_all_leads(const sample_layout *L, const dataset *ds, double start, double end, sample_split *out)
{
    memset(out, 0, sizeof *out);
    out->start = start;
    out->end = end;
    out->idx = malloc(sizeof(int64_t) * (size_t)(ds->ntimes > 0 ? ds->ntimes : 1) * (size_t)L->n_leads);
    if (!out->idx) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    for (int j = 0; j < L->n_leads; j++) valid_inits_lead(L, ds, start, end, L->leads[j], j + 1, out);
    return SM_OK;
}

int samples_valid_inits(const sample_layout *L, const dataset *ds, double start, double end, sample_split *out)
{
    memset(out, 0, sizeof *out);
    out->start = start;
    out->end = end;
    out->idx = malloc(sizeof(int64_t) * (size_t)(ds->ntimes > 0 ? ds->ntimes : 1));
    if (!out->idx) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    valid_inits_lead(L, ds, start, end, L->step_hours, 0, out);
    return SM_OK;
}

static int period_attribute(const dataset *ds, const char *name, double *start, double *end)
{
    char text[256];
    int len = nc_attr_text(ds->ncid, NC_GLOBAL, name, text, sizeof text);
    if (len <= 0 || len >= (int)sizeof text) return 0;
    char *slash = strchr(text, '/');
    if (!slash) return 0;
    *slash = '\0';
    return parse_time(ds, text, name, start) == SM_OK && parse_time(ds, slash + 1, name, end) == SM_OK;
}

static int config_period(const dataset *ds, const char *start_text, const char *end_text, const char *what, double *start,
                         double *end, int *given)
{
    *given = start_text[0] || end_text[0];
    char key[64];
    snprintf(key, sizeof key, "data.%s_start", what);
    if (start_text[0] && parse_time(ds, start_text, key, start)) return SM_ERR_USAGE;
    snprintf(key, sizeof key, "data.%s_end", what);
    if (end_text[0] && parse_time(ds, end_text, key, end)) return SM_ERR_USAGE;
    return SM_OK;
}

int samples_splits(const sample_layout *L, const data_config *dc, const dataset *ds, sample_split *train,
                   sample_split *val, sample_split *test)
{
    if (ds->ntimes < 2) return sm_fail(SM_ERR_USAGE, "%s: needs at least two times to train a forecast", ds->path);
    double first = ds->times[0], last = ds->times[ds->ntimes - 1];
    int n = ds->ntimes;
    /* Default 80/10/10 by time index. */
    double b[4] = {first, ds->times[(int)(0.8 * n)], ds->times[(int)(0.9 * n)], last};
    double s[3] = {b[0], b[1] + 1e-3, b[2] + 1e-3}, e[3] = {b[1], b[2], b[3]};
    static const char *attr[3][2] = {{"smoecast_train_period"}, {"smoecast_val_period"}, {"smoecast_test_period"}};
    for (int k = 0; k < 3; k++) period_attribute(ds, attr[k][0], &s[k], &e[k]);
    const char *cs[3] = {dc->train_start, dc->val_start, dc->test_start}, *ce[3] = {dc->train_end, dc->val_end, dc->test_end};
    static const char *what[3] = {"train", "val", "test"};
    for (int k = 0; k < 3; k++) {
        int given;
        double ks = k == 0 && !cs[k][0] ? first : s[k], ke = e[k];
        if (cs[k][0] || ce[k][0]) {
            ks = cs[k][0] ? ks : (k == 0 ? first : e[k - 1] + 1e-3);
            ke = ce[k][0] ? ke : last;
        }
        if (config_period(ds, cs[k], ce[k], what[k], &ks, &ke, &given)) return SM_ERR_USAGE;
        s[k] = ks;
        e[k] = ke;
    }
    sample_split *out[3] = {train, val, test};
    for (int k = 0; k < 3; k++) {
        /* a multi-lead model is trained and validated on every lead: early stopping and the
         * best checkpoint then weigh all of them, not only the primary lead */
        int st = L->n_leads > 0 ? valid_inits_all_leads(L, ds, s[k], e[k], out[k])
                                : samples_valid_inits(L, ds, s[k], e[k], out[k]);
        if (st) return st;
    }
    if (train->n == 0)
        return sm_fail(SM_ERR_USAGE, "%s: no training sample: no time in the training period has its target %gh later inside it",
                       ds->path, L->step_hours);
    return SM_OK;
}

void samples_split_free(sample_split *s)
{
    free(s->idx);
    s->idx = NULL;
    s->n = 0;
}

/* ------------------------------------------------------------------ cache */

struct sample_cache {
    const dataset *ds;
    size_t npts;
    float **fields; /* (nvars * ntimes), static variables at t = 0 */
};

int sample_cache_create(const dataset *ds, sample_cache **out)
{
    sample_cache *c = calloc(1, sizeof *c);
    if (!c) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    c->ds = ds;
    c->npts = (size_t)ds->nlat * ds->nlon;
    c->fields = calloc((size_t)ds->nvars * (size_t)ds->ntimes, sizeof *c->fields);
    if (!c->fields) {
        free(c);
        return sm_fail(SM_ERR_NUMERIC, "out of memory");
    }
    *out = c;
    return SM_OK;
}

void sample_cache_free(sample_cache *c)
{
    if (!c) return;
    for (size_t i = 0; i < (size_t)c->ds->nvars * (size_t)c->ds->ntimes; i++) free(c->fields[i]);
    free(c->fields);
    free(c);
}

const float *sample_cache_get(sample_cache *c, int var, int t)
{
    if (c->ds->vars[var].is_static) t = 0;
    float **slot = &c->fields[(size_t)var * (size_t)c->ds->ntimes + (size_t)t];
    if (*slot) return *slot;
    float *f = malloc(c->npts * sizeof *f);
    if (!f) {
        sm_fail(SM_ERR_NUMERIC, "out of memory caching %s", c->ds->vars[var].name);
        return NULL;
    }
    if (dataset_read(c->ds, var, t, 0, f) != SM_OK) {
        free(f);
        return NULL;
    }
    *slot = f;
    return f;
}

/* ------------------------------------------------------------------ statistics */

/* Mean and std of one variable over the given times, globally or per point. The global std is
 * the time standard deviation averaged over space (WeatherBench); a field constant in time (a
 * static mask) uses its spatial standard deviation instead. */
static int field_stats(const sample_layout *L, sample_cache *cache, int var, const int64_t *times, int64_t nt, int per_point,
                       float *mean, float *std)
{
    const dataset *ds = cache->ds;
    size_t np = (size_t)L->h * L->w;
    if (ds->vars[var].is_static) nt = nt > 0 ? 1 : 0;
    double *sum = calloc(np, sizeof *sum), *sq = calloc(np, sizeof *sq), *cnt = calloc(np, sizeof *cnt);
    int st = SM_OK;
    if (!sum || !sq || !cnt) st = sm_fail(SM_ERR_NUMERIC, "out of memory");
    for (int64_t i = 0; i < nt && st == SM_OK; i++) {
        const float *f = sample_cache_get(cache, var, (int)times[i]);
        if (!f) {
            st = SM_ERR_IO;
            break;
        }
        for (size_t p = 0; p < np; p++) {
            if (isnan(f[p])) continue;
            sum[p] += f[p];
            sq[p] += (double)f[p] * f[p];
            cnt[p] += 1;
        }
    }
    double gsum = 0, gsq = 0, gcnt = 0, std_acc = 0, std_n = 0;
    for (size_t p = 0; st == SM_OK && p < np; p++) {
        gsum += sum[p];
        gsq += sq[p];
        gcnt += cnt[p];
        if (cnt[p] > 0) {
            double m = sum[p] / cnt[p];
            std_acc += sqrt(fmax(sq[p] / cnt[p] - m * m, 0));
            std_n += 1;
        }
    }
    if (st == SM_OK && gcnt == 0)
        st = sm_fail(SM_ERR_IO, "%s: variable %s has no valid value in the training period", ds->path, ds->vars[var].name);
    if (st == SM_OK) {
        double gmean = gsum / gcnt;
        double gstd = std_n > 0 ? std_acc / std_n : 0;
        if (!(gstd > 1e-12 * fmax(fabs(gmean), 1))) gstd = sqrt(fmax(gsq / gcnt - gmean * gmean, 0));
        if (!(gstd > 0)) gstd = 1;
        if (!per_point) {
            mean[0] = (float)gmean;
            std[0] = (float)gstd;
        } else {
            /* Points whose own std is tiny (or that never vary) get a floor of 1e-3 of the
             * variable's typical std, so normalisation never divides by ~0. */
            for (size_t p = 0; p < np; p++) {
                double m = cnt[p] > 0 ? sum[p] / cnt[p] : gmean;
                double sd = cnt[p] > 0 ? sqrt(fmax(sq[p] / cnt[p] - m * m, 0)) : gstd;
                mean[p] = (float)m;
                std[p] = (float)fmax(sd, 1e-3 * gstd);
            }
        }
    }
    free(sum);
    free(sq);
    free(cnt);
    return st;
}

/* Standard deviation of x(t + lead) - x(t) over the training samples at that lead. */
static int tendency_std_at(const sample_layout *L, sample_cache *cache, int var, const sample_split *train, double step,
                           float *out)
{
    const dataset *ds = cache->ds;
    size_t np = (size_t)L->h * L->w;
    double sum = 0, sq = 0, cnt = 0;
    for (int64_t i = 0; i < train->n; i++) {
        int64_t t0;
        double lead;
        samples_decode(L, ds, train->idx[i], &t0, &lead);
        if (fabs(lead - step) > 1e-6) continue;
        int64_t t1 = find_time(ds, ds->times[t0] + step);
        const float *a = sample_cache_get(cache, var, (int)t0);
        const float *b = a ? sample_cache_get(cache, var, (int)t1) : NULL;
        if (!b) return SM_ERR_IO;
        for (size_t p = 0; p < np; p++) {
            double d = (double)b[p] - a[p];
            if (isnan(d)) continue;
            sum += d;
            sq += d * d;
            cnt += 1;
        }
    }
    double sd = cnt > 0 ? sqrt(fmax(sq / cnt - (sum / cnt) * (sum / cnt), 0)) : 0;
    *out = (float)(sd > 0 ? sd : 1);
    return SM_OK;
}

/* The model step's tendency std, and with data.lead_tendency_scale every lead's own. */
static int tendency_std(sample_layout *L, sample_cache *cache, int var, const sample_split *train, float *out)
{
    int st = tendency_std_at(L, cache, var, train, L->step_hours, out);
    int i = 0;
    while (i < L->n_prog && L->prog_var[i] != var) i++;
    for (int j = 0; st == SM_OK && L->lead_tendency && j < L->n_leads; j++)
        st = tendency_std_at(L, cache, var, train, L->leads[j], &L->stats.tend_std_lead[j * L->n_prog + i]);
    return st;
}

float samples_tendency_scale(const sample_layout *L, int i, double lead_hours)
{
    int j = L->lead_tendency ? samples_lead_index(L, lead_hours) : -1;
    return j >= 0 ? L->stats.tend_std_lead[j * L->n_prog + i] : L->stats.tend_std[i];
}

int samples_compute_stats(sample_layout *L, sample_cache *cache, const sample_split *train, int per_point)
{
    if (per_point < 0) {
        /* No normalisation: mean 0, std 1 (a field's zero boundary stays zero, which the
         * SMoE heat recipe needs); tendencies are still scaled by their own std. */
        norm_stats *S = &L->stats;
        S->npts = 1;
        free(S->mean);
        free(S->std);
        S->mean = calloc((size_t)S->nvars, sizeof *S->mean);
        S->std = malloc(sizeof *S->std * (size_t)S->nvars);
        if (!S->mean || !S->std) return sm_fail(SM_ERR_NUMERIC, "out of memory");
        for (int i = 0; i < S->nvars; i++) S->std[i] = 1.0f;
        for (int i = 0; i < L->n_prog; i++) {
            int st = tendency_std(L, cache, L->prog_var[i], train, &S->tend_std[i]);
            if (st) return st;
        }
        return SM_OK;
    }
    const dataset *ds = cache->ds;
    norm_stats *S = &L->stats;
    S->npts = per_point ? L->h * L->w : 1;
    free(S->mean);
    free(S->std);
    S->mean = calloc((size_t)S->nvars * S->npts, sizeof *S->mean);
    S->std = calloc((size_t)S->nvars * S->npts, sizeof *S->std);
    if (!S->mean || !S->std) return sm_fail(SM_ERR_NUMERIC, "out of memory");

    /* Every dataset time inside the training period (inputs and targets alike). */
    int64_t *times = malloc(sizeof *times * (size_t)ds->ntimes), nt = 0;
    if (!times) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    for (int64_t t = 0; t < ds->ntimes; t++)
        if (inside(ds->times[t], train->start, train->end)) times[nt++] = t;

    int st = SM_OK;
    for (int row = 0; st == SM_OK && row < S->nvars; row++) {
        int var = dataset_find_var(ds, S->names[row]);
        st = field_stats(L, cache, var, times, nt, per_point, S->mean + (size_t)row * S->npts, S->std + (size_t)row * S->npts);
    }
    for (int i = 0; st == SM_OK && i < L->n_prog; i++) st = tendency_std(L, cache, L->prog_var[i], train, &S->tend_std[i]);
    free(times);
    return st;
}

/* ------------------------------------------------------------------ assembly */

static void normalise_into(const norm_stats *S, int row, const float *x, float *out, size_t np)
{
    const float *m = S->mean + (size_t)row * S->npts, *s = S->std + (size_t)row * S->npts;
    if (S->npts == 1) {
        float mu = m[0], inv = 1.0f / s[0];
        for (size_t p = 0; p < np; p++) out[p] = (x[p] - mu) * inv;
    } else {
        for (size_t p = 0; p < np; p++) out[p] = (x[p] - m[p]) / s[p];
    }
}

/* The prognostic history channels of one input from raw fields prog_hist[h * n_prog + i]. */
static void fill_prognostic(const sample_layout *L, const float *const *prog_hist, float *in)
{
    size_t np = (size_t)L->h * L->w;
    for (int h = 0; h < L->history; h++)
        for (int i = 0; i < L->n_prog; i++, in += np) {
            const float *x = prog_hist[h * L->n_prog + i];
            if (!L->relative_inputs) {
                normalise_into(&L->stats, stat_prog(L, i), x, in, np);
                continue;
            }
            const float *x0 = prog_hist[i];
            if (h > 0) {
                float inv = 1.0f / L->stats.tend_std[i];
                for (size_t p = 0; p < np; p++) in[p] = (x[p] - x0[p]) * inv;
                continue;
            }
            double sum = 0;
            for (size_t p = 0; p < np; p++) sum += x0[p];
            const norm_stats *S = &L->stats;
            const float *s = S->std + (size_t)stat_prog(L, i) * S->npts;
            float mu = (float)(sum / (double)np);
            for (size_t p = 0; p < np; p++) in[p] = (x0[p] - mu) / s[S->npts == 1 ? 0 : p];
        }
}

static int check_finite(const dataset *ds, int var, int t, const float *x, size_t np)
{
    for (size_t p = 0; p < np; p++) {
        if (isnan(x[p]) || isinf(x[p])) {
            char when[64];
            cf_calendar cal;
            calendar_of(ds, &cal);
            cf_format_hours(ds->times[t], cal, when, sizeof when);
            return sm_fail(SM_ERR_IO, "%s: variable %s at %s has NaN/Inf values (point %zu); inputs must be complete", ds->path,
                           ds->vars[var].name, when, p);
        }
    }
    return SM_OK;
}

typedef struct {
    const float *prog_hist[SAMPLES_MAX_VARS * 8]; /* [h * n_prog + i] */
    const float *forc[SAMPLES_MAX_VARS];
    const float *target_prog[SAMPLES_MAX_VARS], *target_diag[SAMPLES_MAX_VARS];
    /* data.recent_days: fields of prognostic i at the hour of t0 (side 0) and of t1 (side 1) */
    const float *recent[2][SAMPLES_MAX_VARS][SAMPLES_MAX_RECENT_DAYS];
    int n_recent[2];
    double t0, t1, lead;
} sample_fields;

/* The recent-day fields of F (F->t0 and F->t1 set) seen from information time t_info. */
static int gather_recent(const sample_layout *L, sample_cache *cache, double t_info, sample_fields *F)
{
    const dataset *ds = cache->ds;
    size_t np = (size_t)L->h * L->w;
    double hours[2] = {F->t0, F->t1};
    for (int side = 0; side < 2 && L->recent_days > 0; side++) {
        int64_t days[SAMPLES_MAX_RECENT_DAYS];
        int n = F->n_recent[side] = recent_times(L, ds, hours[side], t_info, days);
        if (n == 0) {
            char when[64];
            cf_calendar cal;
            calendar_of(ds, &cal);
            cf_format_hours(hours[side], cal, when, sizeof when);
            return sm_fail(SM_ERR_IO, "%s: data.recent_days needs a field at the hour of %s a day or more earlier; the dataset starts too late",
                           ds->path, when);
        }
        for (int k = 0; k < n; k++)
            for (int i = 0; i < L->n_prog; i++) {
                const float *f = sample_cache_get(cache, L->prog_var[i], (int)days[k]);
                if (!f || check_finite(ds, L->prog_var[i], (int)days[k], f, np)) return SM_ERR_IO;
                F->recent[side][i][k] = f;
            }
    }
    return SM_OK;
}

/* The recent-day mean channels (layout in samples.h) at `out`. */
static void fill_recent(const sample_layout *L, const sample_fields *F, float *out)
{
    size_t np = (size_t)L->h * L->w;
    for (int side = 0; side < 2 && L->recent_days > 0; side++)
        for (int i = 0; i < L->n_prog; i++, out += np) {
            int n = F->n_recent[side];
            for (size_t p = 0; p < np; p++) {
                float sum = 0;
                for (int k = 0; k < n; k++) sum += F->recent[side][i][k][p];
                out[p] = sum / (float)n;
            }
            if (!L->relative_inputs) {
                normalise_into(&L->stats, stat_prog(L, i), out, out, np);
                continue;
            }
            const float *x0 = F->prog_hist[i];
            float inv = 1.0f / L->stats.tend_std[i];
            for (size_t p = 0; p < np; p++) out[p] = (out[p] - x0[p]) * inv;
        }
}

/* Start of the forcing channels in one input. */
static size_t forcing_offset(const sample_layout *L)
{
    return ((size_t)L->history * L->n_prog + (size_t)recent_channels(L)) * L->h * L->w;
}

static int gather(const sample_layout *L, sample_cache *cache, int64_t sample, int want_target, sample_fields *F)
{
    const dataset *ds = cache->ds;
    size_t np = (size_t)L->h * L->w;
    int64_t init;
    samples_decode(L, ds, sample, &init, &F->lead);
    F->t0 = ds->times[init];
    F->t1 = F->t0 + F->lead;
    int64_t t1 = find_time(ds, F->t1);
    if (L->history > 8) return sm_fail(SM_ERR_USAGE, "data.history is at most 8");
    for (int h = 0; h < L->history; h++) {
        int64_t th = h == 0 ? init : find_time(ds, F->t0 - h * L->dt_hours);
        if (th < 0) return sm_fail(SM_ERR_IO, "%s: history time missing for init index %lld", ds->path, (long long)init);
        for (int i = 0; i < L->n_prog; i++) {
            const float *f = sample_cache_get(cache, L->prog_var[i], (int)th);
            if (!f || check_finite(ds, L->prog_var[i], (int)th, f, np)) return SM_ERR_IO;
            F->prog_hist[h * L->n_prog + i] = f;
        }
    }
    int st = gather_recent(L, cache, F->t0, F);
    if (st) return st;
    for (int i = 0; i < L->n_forc; i++) {
        if (L->forc_kind[i] != FORCING_FIELD) continue;
        int v = L->forc_var[i];
        int64_t tf = ds->vars[v].is_static ? 0 : t1;
        if (tf < 0) return sm_fail(SM_ERR_IO, "%s: forcing %s missing at the target time", ds->path, ds->vars[v].name);
        const float *f = sample_cache_get(cache, v, (int)tf);
        if (!f || check_finite(ds, v, (int)tf, f, np)) return SM_ERR_IO;
        F->forc[i] = f;
    }
    if (!want_target) return SM_OK;
    if (t1 < 0) return sm_fail(SM_ERR_IO, "%s: no target time %gh after init index %lld", ds->path, F->lead, (long long)init);
    for (int i = 0; i < L->n_prog; i++)
        if (!(F->target_prog[i] = sample_cache_get(cache, L->prog_var[i], (int)t1))) return SM_ERR_IO;
    for (int i = 0; i < L->n_diag; i++)
        if (!(F->target_diag[i] = sample_cache_get(cache, L->diag_var[i], (int)t1))) return SM_ERR_IO;
    return SM_OK;
}

/* Writes the forcing channels (fields, then computed phases) starting at `out`. */
static void fill_forcings(const sample_layout *L, const char *calendar, const sample_fields *F, float *out)
{
    size_t np = (size_t)L->h * L->w;
    for (int i = 0; i < L->n_forc; i++) {
        if (L->forc_kind[i] != FORCING_FIELD) continue;
        normalise_into(&L->stats, stat_forc(L, i), F->forc[i], out, np);
        out += np;
    }
    double hp0, dp0, hp1, dp1;
    samples_time_features(F->t0, calendar, &hp0, &dp0);
    samples_time_features(F->t1, calendar, &hp1, &dp1);
    for (int i = 0; i < L->n_forc; i++) {
        if (L->forc_kind[i] != FORCING_HOUR_OF_DAY && L->forc_kind[i] != FORCING_DAY_OF_YEAR) continue;
        double a0 = L->forc_kind[i] == FORCING_HOUR_OF_DAY ? hp0 : dp0;
        double a1 = L->forc_kind[i] == FORCING_HOUR_OF_DAY ? hp1 : dp1;
        float v[4] = {(float)sin(a0), (float)cos(a0), (float)sin(a1), (float)cos(a1)};
        for (int c = 0; c < 4; c++, out += np)
            for (size_t p = 0; p < np; p++) out[p] = v[c];
    }
    if (L->n_coord > 0) {
        memcpy(out, L->coords, sizeof(float) * (size_t)L->n_coord * np);
        out += (size_t)L->n_coord * np;
    }
    if (L->n_leads > 0) {
        float v = (float)(F->lead / max_lead(L));
        for (size_t p = 0; p < np; p++) out[p] = v;
    }
}

int samples_assemble(const sample_layout *L, sample_cache *cache, const int64_t *inits, int n, float *input, float *target)
{
    const dataset *ds = cache->ds;
    size_t np = (size_t)L->h * L->w;
    sample_fields *F = malloc(sizeof *F * (size_t)(n > 0 ? n : 1));
    if (!F) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    /* Reading is serial (netCDF is not thread-safe); normalising runs in parallel. */
    for (int b = 0; b < n; b++) {
        int st = gather(L, cache, inits[b], target != NULL, &F[b]);
        if (st) {
            free(F);
            return st;
        }
    }
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n; b++) {
        float *in = input + (size_t)b * L->c_in * np;
        fill_prognostic(L, F[b].prog_hist, in);
        fill_recent(L, &F[b], in + (size_t)L->history * L->n_prog * np);
        fill_forcings(L, ds->calendar, &F[b], in + forcing_offset(L));
        if (!target) continue;
        float *out = target + (size_t)b * L->c_out * np;
        for (int i = 0; i < L->n_prog; i++, out += np) {
            const float *x1 = F[b].target_prog[i];
            if (L->tendency) {
                const float *x0 = F[b].prog_hist[i];
                float inv = 1.0f / samples_tendency_scale(L, i, F[b].lead);
                for (size_t p = 0; p < np; p++) out[p] = (x1[p] - x0[p]) * inv;
            } else {
                normalise_into(&L->stats, stat_prog(L, i), x1, out, np);
            }
        }
        for (int i = 0; i < L->n_diag; i++, out += np) normalise_into(&L->stats, stat_diag(L, i), F[b].target_diag[i], out, np);
    }
    free(F);
    return SM_OK;
}

static int assemble_state(const sample_layout *L, sample_cache *cache, double t0, double lead_hours, double t_info,
                          const float *const *prog_hist, float *input)
{
    const dataset *ds = cache->ds;
    size_t np = (size_t)L->h * L->w;
    sample_fields F;
    memset(&F, 0, sizeof F);
    F.t0 = t0;
    F.lead = lead_hours;
    F.t1 = t0 + lead_hours;
    for (int k = 0; k < L->history * L->n_prog; k++) F.prog_hist[k] = prog_hist[k];
    int64_t t1 = find_time(ds, F.t1);
    for (int i = 0; i < L->n_forc; i++) {
        if (L->forc_kind[i] != FORCING_FIELD) continue;
        int v = L->forc_var[i];
        if (!ds->vars[v].is_static && t1 < 0) {
            char when[64];
            cf_calendar cal;
            calendar_of(ds, &cal);
            cf_format_hours(F.t1, cal, when, sizeof when);
            return sm_fail(SM_ERR_IO, "%s: forcing %s is needed at %s, which is not in the dataset", ds->path, ds->vars[v].name, when);
        }
        const float *f = sample_cache_get(cache, v, ds->vars[v].is_static ? 0 : (int)t1);
        if (!f || check_finite(ds, v, ds->vars[v].is_static ? 0 : (int)t1, f, np)) return SM_ERR_IO;
        F.forc[i] = f;
    }
    int st = gather_recent(L, cache, t_info, &F);
    if (st) return st;
    fill_prognostic(L, F.prog_hist, input);
    fill_recent(L, &F, input + (size_t)L->history * L->n_prog * np);
    fill_forcings(L, ds->calendar, &F, input + forcing_offset(L));
    return SM_OK;
}

int samples_assemble_state(const sample_layout *L, sample_cache *cache, double t0, double t_info, const float *const *prog_hist,
                           float *input)
{
    return assemble_state(L, cache, t0, L->step_hours, t_info, prog_hist, input);
}

int samples_assemble_state_lead(const sample_layout *L, sample_cache *cache, double t0, double lead_hours,
                                const float *const *prog_hist, float *input)
{
    return assemble_state(L, cache, t0, lead_hours, t0, prog_hist, input);
}

int samples_prognostic_history(const sample_layout *L, sample_cache *cache, int64_t init, const float **prog_hist)
{
    sample_fields F;
    int st = gather(L, cache, init, 0, &F);
    if (st) return st;
    for (int k = 0; k < L->history * L->n_prog; k++) prog_hist[k] = F.prog_hist[k];
    return SM_OK;
}

void samples_variable_lists(const sample_layout *L, const dataset *ds, char *inputs, size_t in_len, char *outputs, size_t out_len)
{
    inputs[0] = outputs[0] = '\0';
    for (int i = 0; i < L->n_prog + L->n_diag; i++) {
        int v = i < L->n_prog ? L->prog_var[i] : L->diag_var[i - L->n_prog];
        if (i) strncat(outputs, ",", out_len - strlen(outputs) - 1);
        strncat(outputs, ds->vars[v].name, out_len - strlen(outputs) - 1);
        if (i >= L->n_prog) continue;
        if (i) strncat(inputs, ",", in_len - strlen(inputs) - 1);
        strncat(inputs, ds->vars[v].name, in_len - strlen(inputs) - 1);
    }
    for (int i = 0; i < L->n_forc; i++) {
        forcing_kind k = L->forc_kind[i];
        const char *name = k == FORCING_FIELD ? ds->vars[L->forc_var[i]].name
                           : k == FORCING_HOUR_OF_DAY ? "hour_of_day"
                           : k == FORCING_DAY_OF_YEAR ? "day_of_year"
                           : k == FORCING_LATITUDE ? "latitude" : "longitude";
        if (inputs[0]) strncat(inputs, ",", in_len - strlen(inputs) - 1);
        strncat(inputs, name, in_len - strlen(inputs) - 1);
    }
}

void samples_push_state(const sample_layout *L, float *history, const float *state)
{
    size_t np = (size_t)L->h * L->w, n_new = (size_t)L->n_prog * np;
    memmove(history + n_new, history, sizeof(float) * ((size_t)L->history - 1) * n_new);
    memcpy(history, state, sizeof(float) * n_new);
}

void samples_denormalise(const sample_layout *L, const float *output, const float *state0, float *physical)
{
    samples_denormalise_lead(L, output, state0, L->step_hours, physical);
}

void samples_denormalise_lead(const sample_layout *L, const float *output, const float *state0, double lead_hours,
                              float *physical)
{
    size_t np = (size_t)L->h * L->w;
    const norm_stats *S = &L->stats;
    for (int c = 0; c < L->c_out; c++) {
        const float *o = output + (size_t)c * np;
        float *y = physical + (size_t)c * np;
        if (c < L->n_prog && L->tendency) {
            const float *x0 = state0 + (size_t)c * np;
            float scale = samples_tendency_scale(L, c, lead_hours);
            for (size_t p = 0; p < np; p++) y[p] = x0[p] + o[p] * scale;
            continue;
        }
        int row = c < L->n_prog ? stat_prog(L, c) : stat_diag(L, c - L->n_prog);
        const float *m = S->mean + (size_t)row * S->npts, *s = S->std + (size_t)row * S->npts;
        for (size_t p = 0; p < np; p++) y[p] = S->npts == 1 ? o[p] * s[0] + m[0] : o[p] * s[p] + m[p];
    }
}
