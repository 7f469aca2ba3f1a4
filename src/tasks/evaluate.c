/* `smoecast evaluate` (see evaluate.h): truth and baselines, the deterministic and
 * probabilistic scoring loops, the printed table and the scores NetCDF; the forecast files are
 * read by tasks/forecast_file.h. */
#include "tasks/evaluate.h"
#include "core/config.h"
#include "core/log.h"
#include "core/outfile.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "eval/evaluate.h"
#include "eval/prob_scores.h"
#include "eval/regions.h"
#include "eval/scores.h"
#include "io/cf_output.h"
#include "io/cf_time.h"
#include "io/nc_status.h"
#include "model/checkpoint.h"
#include "tasks/forecast_file.h"

#include <limits.h>
#include <math.h>
#include <netcdf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EV_MAX_VARS 64
#define EV_MAX_LEADS 256
#define EV_PIT_BINS 10
#define EV_CLIM_WINDOW_DAYS 15
#define EV_RNG_STREAM 0x5E7A1

enum { MODE_DET = 0, MODE_GAUSS = 1, MODE_ENS = 2 };

/* ------------------------------------------------------------------ helpers */

static int parse_when(const char *text, const char *calendar, const char *what, double *hours)
{
    cf_calendar cal;
    if (cf_calendar_parse(calendar, &cal) != SM_OK) cal = CAL_PROLEPTIC;
    cf_date d;
    if (cf_date_parse(text, &d) != SM_OK || !cf_date_valid(&d, cal))
        return sm_fail(SM_ERR_USAGE, "%s: '%s' is not a date (use e.g. 2019-03-21T23)", what, text);
    *hours = cf_date_to_hours(&d, cal);
    return SM_OK;
}

static void fmt_time(double h, const char *calendar, char *buf, int len)
{
    cf_calendar cal;
    if (cf_calendar_parse(calendar, &cal) != SM_OK) cal = CAL_PROLEPTIC;
    cf_format_hours(h, cal, buf, len);
}

/* Training period: --train-period, else the checkpoint named by the first forecast file. */
static int resolve_train_period(const evaluate_opts *o, const forecast_file *f0, const dataset *truth, double *start, double *end,
                                char *source, size_t slen)
{
    if (o->train_period) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", o->train_period);
        char *slash = strchr(buf, '/');
        if (!slash) return sm_fail(SM_ERR_USAGE, "--train-period expects START/END (e.g. 2019-03-01T00/2019-03-21T23), got '%s'", o->train_period);
        *slash = '\0';
        int st = parse_when(buf, truth->calendar, "--train-period", start);
        if (!st) st = parse_when(slash + 1, truth->calendar, "--train-period", end);
        if (st) return st;
        if (*end < *start) return sm_fail(SM_ERR_USAGE, "--train-period: end %s is before start %s", slash + 1, buf);
        snprintf(source, slen, "--train-period");
        return SM_OK;
    }
    if (!f0->checkpoint[0])
        return sm_fail(SM_ERR_USAGE, "%s has no smoecast_checkpoint attribute, so the training period of the climatology and "
                       "damped-persistence baselines is unknown; pass --train-period START/END", f0->path);
    char ck[2 * PATH_MAX + 2];
    snprintf(ck, sizeof ck, "%s", f0->checkpoint);
    if (access(ck, R_OK) != 0 && ck[0] != '/') {
        /* relative to the forecast file's directory */
        const char *slash = strrchr(f0->path, '/');
        if (slash) snprintf(ck, sizeof ck, "%.*s/%s", (int)(slash - f0->path), f0->path, f0->checkpoint);
    }
    if (access(ck, R_OK) != 0)
        return sm_fail(SM_ERR_USAGE, "%s: its checkpoint %s is not readable, so the training period is unknown; pass "
                       "--train-period START/END", f0->path, f0->checkpoint);
    char *yaml = NULL;
    sm_config *cfg = NULL;
    int st = checkpoint_read_config(ck, &yaml);
    if (!st) st = config_load_text(yaml, ck, 0, NULL, &cfg);
    free(yaml);
    if (st) return st;
    if (!cfg->data.train_end[0]) {
        config_free(cfg);
        return sm_fail(SM_ERR_USAGE, "checkpoint %s does not set data.train_end (it used the default split), so the training "
                       "period is unknown; pass --train-period START/END", ck);
    }
    st = parse_when(cfg->data.train_end, truth->calendar, "data.train_end", end);
    if (!st) {
        if (cfg->data.train_start[0]) st = parse_when(cfg->data.train_start, truth->calendar, "data.train_start", start);
        else *start = -1e300; /* empty = start of data */
    }
    config_free(cfg);
    snprintf(source, slen, "checkpoint %.1000s", ck);
    return st;
}

static int parse_list(const char *text, char items[][96], int max, int *n, const char *what)
{
    *n = 0;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        if (!*tok) continue;
        if (*n >= max) return sm_fail(SM_ERR_USAGE, "%s: at most %d entries", what, max);
        snprintf(items[(*n)++], 96, "%s", tok);
    }
    if (*n == 0) return sm_fail(SM_ERR_USAGE, "%s: empty list", what);
    return SM_OK;
}

/* Land-sea mask: "FILE:VAR" (smoecast dataset or any NetCDF with a (..., lat, lon) variable), or
 * the truth's static land_binary_mask / land_area_fraction / lsm variable. */
static int load_lsm(const evaluate_opts *o, const dataset *truth, float *lsm, int *found)
{
    size_t np = (size_t)truth->nlat * truth->nlon;
    *found = 0;
    if (!o->lsm) {
        for (int v = 0; v < truth->nvars; v++) {
            const dataset_var_info *vi = &truth->vars[v];
            if (!vi->is_static || vi->has_members) continue;
            if (!strcmp(vi->standard_name, "land_binary_mask") || !strcmp(vi->standard_name, "land_area_fraction") ||
                !strcmp(vi->name, "lsm") || !strcmp(vi->short_name, "lsm")) {
                int st = dataset_read(truth, v, 0, 0, lsm);
                if (st) return st;
                *found = 1;
                return SM_OK;
            }
        }
        return SM_OK;
    }
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", o->lsm);
    char *colon = strrchr(buf, ':');
    if (!colon || !colon[1]) return sm_fail(SM_ERR_USAGE, "--lsm expects FILE:VARIABLE, got '%s'", o->lsm);
    *colon = '\0';
    const char *path = buf, *var = colon + 1;
    int ncid, s = nc_open(path, NC_NOWRITE, &ncid);
    if (s != NC_NOERR) return nc_status_fail(path, "cannot open --lsm file", s);
    int varid, nd = 0, dims[NC_MAX_VAR_DIMS];
    int st = SM_OK;
    if (nc_inq_varid(ncid, var, &varid) != NC_NOERR) {
        st = sm_fail(SM_ERR_IO, "%s: no variable %s (--lsm)", path, var);
    } else {
        nc_inq_varndims(ncid, varid, &nd);
        nc_inq_vardimid(ncid, varid, dims);
        size_t ly = 0, lx = 0;
        if (nd >= 2) {
            nc_inq_dimlen(ncid, dims[nd - 2], &ly);
            nc_inq_dimlen(ncid, dims[nd - 1], &lx);
        }
        if (nd < 2 || (int)ly != truth->nlat || (int)lx != truth->nlon) {
            st = sm_fail(SM_ERR_IO, "%s: variable %s is not a %d x %d field on the truth grid", path, var, truth->nlat, truth->nlon);
        } else {
            size_t start[NC_MAX_VAR_DIMS] = {0}, count[NC_MAX_VAR_DIMS];
            for (int k = 0; k < nd; k++) count[k] = 1;
            count[nd - 2] = ly;
            count[nd - 1] = lx;
            s = nc_get_vara_float(ncid, varid, start, count, lsm);
            if (s != NC_NOERR) st = nc_status_fail(path, var, s);
            float fill;
            if (!st && nc_get_att_float(ncid, varid, "_FillValue", &fill) == NC_NOERR && !isnan(fill))
                for (size_t p = 0; p < np; p++)
                    if (lsm[p] == fill) lsm[p] = NAN;
            if (!st) *found = 1;
        }
    }
    nc_close(ncid);
    return st;
}

static int grids_match(const forecast_file *f, const dataset *ds)
{
    if (f->nlat != ds->nlat || f->nlon != ds->nlon) return 0;
    for (int j = 0; j < f->nlat; j++)
        if (fabs(f->lat[j] - ds->lat[j]) > 1e-4) return 0;
    for (int i = 0; i < f->nlon; i++)
        if (fabs(f->lon[i] - ds->lon[i]) > 1e-4) return 0;
    return 1;
}

static void fmt_lead(double h, char *buf, size_t len)
{
    snprintf(buf, len, "%gh", h);
}

/* ------------------------------------------------------------------ probabilistic helpers */

/* Model-climate quantiles for a valid time: every climate field (all members) whose valid day of
 * year is within +-15 days of the target's (circular, leap-aligned); cached per day bin. */
typedef struct {
    dataset *ds;
    int var;
    int doy;          /* cached day bin, -1 none */
    float *q;         /* (EVAL_EFI_NQ, npts) */
    float *sample;
    size_t npts;
} clim_cache;

static int clim_quantiles(clim_cache *c, double valid, const float **q)
{
    int doy = eval_clim_doy(valid);
    *q = c->q;
    if (doy == c->doy) return SM_OK;
    int nsel = 0, m = c->ds->nmembers > 0 ? c->ds->nmembers : 1;
    for (int t = 0; t < c->ds->ntimes; t++) {
        int d = abs(eval_clim_doy(c->ds->times[t]) - doy);
        if (d > 183) d = 366 - d;
        if (d <= EV_CLIM_WINDOW_DAYS) nsel++;
    }
    if (nsel == 0) {
        for (size_t p = 0; p < EVAL_EFI_NQ * c->npts; p++) c->q[p] = NAN;
        c->doy = doy;
        return SM_OK;
    }
    float *s = realloc(c->sample, sizeof(float) * (size_t)nsel * m * c->npts);
    if (!s) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    c->sample = s;
    int k = 0;
    for (int t = 0; t < c->ds->ntimes; t++) {
        int d = abs(eval_clim_doy(c->ds->times[t]) - doy);
        if (d > 183) d = 366 - d;
        if (d > EV_CLIM_WINDOW_DAYS) continue;
        for (int mm = 0; mm < m; mm++, k++) {
            int st = dataset_read(c->ds, c->var, t, mm, s + (size_t)k * c->npts);
            if (st) return st;
        }
    }
    int st = eval_efi_clim_quantiles(s, k, c->npts, c->q);
    if (st) return st;
    c->doy = doy;
    return SM_OK;
}

/* ------------------------------------------------------------------ output */

typedef struct {
    int mode;
    int n_src, n_met, n_var, n_lead, n_reg, reg_dim, n_bins;
    const char *src_names[EVAL_SRC_COUNT];
    const char *met_names[EVAL_PM_COUNT + EVAL_M_COUNT];
    char var_names[EV_MAX_VARS][96];
    char var_units[EV_MAX_VARS][64];
    double leads[EV_MAX_LEADS];
    eval_region regions[EVAL_REGION_COUNT];
    double *score;   /* (src, met, var, lead, reg) */
    long *n_fc;      /* (var, lead) */
    double *alpha;   /* (var, lead), deterministic */
    double *hist;    /* (var, lead, reg, bins), probabilistic */
} ev_table;

#define SCORE(T, s, m, v, l, r) \
    (T)->score[((((size_t)(s) * (T)->n_met + (m)) * (T)->n_var + (v)) * (T)->n_lead + (l)) * (T)->n_reg + (r)]

static int write_scores(const evaluate_opts *o, const ev_table *T, const char *train_text, const char *clim_text, long skipped)
{
    outfile of;
    int st = outfile_begin(&of, o->out);
    if (st) return st;
    int ncid, s = nc_create(of.tmp_path, NC_NETCDF4 | NC_CLOBBER, &ncid);
    if (s != NC_NOERR) {
        outfile_abort(&of);
        return nc_status_fail(o->out, "cannot create", s);
    }
#define NCX(call)                                   \
    do {                                            \
        if ((s = (call)) != NC_NOERR) goto nc_fail; \
    } while (0)
    int d_src, d_met, d_var, d_lead, d_reg = -1, d_bin = -1;
    int v_src, v_met, v_var, v_lead, v_reg = -1, v_score, v_nfc, v_units, v_alpha = -1, v_hist = -1;
    NCX(cf_global_attributes(ncid, "smoecast evaluate scores", o->history));
    NCX(cf_put_text(ncid, NC_GLOBAL, "smoecast_truth", o->truth));
    {
        size_t len = 1;
        for (int i = 0; i < o->n_forecasts; i++) len += strlen(o->forecasts[i]) + 1;
        char *list = calloc(len, 1);
        if (!list) {
            s = NC_ENOMEM;
            goto nc_fail;
        }
        for (int i = 0; i < o->n_forecasts; i++) {
            strcat(list, o->forecasts[i]);
            if (i + 1 < o->n_forecasts) strcat(list, "\n");
        }
        s = cf_put_text(ncid, NC_GLOBAL, "smoecast_forecasts", list);
        free(list);
        if (s) goto nc_fail;
    }
    NCX(cf_put_text(ncid, NC_GLOBAL, "smoecast_forecast_kind", T->mode == MODE_DET ? "deterministic" : T->mode == MODE_GAUSS ? "gaussian" : "ensemble"));
    if (train_text[0]) NCX(cf_put_text(ncid, NC_GLOBAL, "smoecast_train_period", train_text));
    if (clim_text[0]) NCX(cf_put_text(ncid, NC_GLOBAL, "smoecast_climatology", clim_text));
    NCX(cf_put_text(ncid, NC_GLOBAL, "smoecast_rmse",
                    "rmse = sqrt(sum_{t,i,j} w (f-o)^2 / sum w): time mean before the root (headline, WeatherBench score "
                    "code); rmse_mean_fc = mean over forecasts of per-forecast RMSE"));
    NCX(nc_put_att_long(ncid, NC_GLOBAL, "smoecast_skipped_forecasts", NC_INT64, 1, &skipped));
    NCX(nc_def_dim(ncid, "source", (size_t)T->n_src, &d_src));
    NCX(nc_def_dim(ncid, "metric", (size_t)T->n_met, &d_met));
    NCX(nc_def_dim(ncid, "variable", (size_t)T->n_var, &d_var));
    NCX(nc_def_dim(ncid, "lead_time", (size_t)T->n_lead, &d_lead));
    if (T->reg_dim) NCX(nc_def_dim(ncid, "region", (size_t)T->n_reg, &d_reg));
    NCX(nc_def_var(ncid, "source", NC_STRING, 1, &d_src, &v_src));
    NCX(cf_put_text(ncid, v_src, "long_name", "forecast source (model or baseline)"));
    NCX(nc_def_var(ncid, "metric", NC_STRING, 1, &d_met, &v_met));
    NCX(cf_put_text(ncid, v_met, "long_name", "score"));
    NCX(nc_def_var(ncid, "variable", NC_STRING, 1, &d_var, &v_var));
    NCX(cf_put_text(ncid, v_var, "long_name", "forecast variable"));
    NCX(nc_def_var(ncid, "lead_time", NC_DOUBLE, 1, &d_lead, &v_lead));
    NCX(cf_put_text(ncid, v_lead, "standard_name", "forecast_period"));
    NCX(cf_put_text(ncid, v_lead, "long_name", "lead time"));
    NCX(cf_put_text(ncid, v_lead, "units", "hours"));
    if (T->reg_dim) {
        NCX(nc_def_var(ncid, "region", NC_STRING, 1, &d_reg, &v_reg));
        NCX(cf_put_text(ncid, v_reg, "long_name", "verification region (docs/scores.md)"));
    }
    NCX(nc_def_var(ncid, "variable_units", NC_STRING, 1, &d_var, &v_units));
    NCX(cf_put_text(ncid, v_units, "long_name", "units of each variable (rmse, bias, mae, crps, spread carry them)"));
    int dims[5] = {d_src, d_met, d_var, d_lead, d_reg};
    NCX(nc_def_var(ncid, "score", NC_DOUBLE, T->reg_dim ? 5 : 4, dims, &v_score));
    double nan = NAN;
    NCX(nc_put_att_double(ncid, v_score, "_FillValue", NC_DOUBLE, 1, &nan));
    NCX(cf_put_text(ncid, v_score, "long_name", "score of each source, metric, variable and lead time"));
    NCX(cf_put_text(ncid, v_score, "coordinates", "variable_units"));
    int dvl[2] = {d_var, d_lead};
    NCX(nc_def_var(ncid, "n_forecasts", NC_INT64, 2, dvl, &v_nfc));
    NCX(cf_put_text(ncid, v_nfc, "long_name", "number of forecasts scored"));
    if (T->mode == MODE_DET) {
        NCX(nc_def_var(ncid, "damped_persistence_alpha", NC_DOUBLE, 2, dvl, &v_alpha));
        NCX(cf_put_text(ncid, v_alpha, "long_name", "damping factor of the damped anomaly persistence fitted on the training period"));
    } else {
        NCX(nc_def_dim(ncid, T->mode == MODE_ENS ? "rank" : "pit_bin", (size_t)T->n_bins, &d_bin));
        int hd[4] = {d_var, d_lead, T->reg_dim ? d_reg : d_bin, d_bin};
        NCX(nc_def_var(ncid, T->mode == MODE_ENS ? "rank_histogram" : "pit_histogram", NC_DOUBLE, T->reg_dim ? 4 : 3, hd, &v_hist));
        NCX(cf_put_text(ncid, v_hist, "long_name",
                        T->mode == MODE_ENS ? "rank histogram of the observation among the members (counts)"
                                            : "PIT histogram, equal bins on [0, 1] (counts)"));
        NCX(cf_put_text(ncid, v_hist, "units", "1"));
    }
    NCX(nc_enddef(ncid));
    NCX(nc_put_var_string(ncid, v_src, (const char **)T->src_names));
    NCX(nc_put_var_string(ncid, v_met, (const char **)T->met_names));
    {
        const char *vn[EV_MAX_VARS], *vu[EV_MAX_VARS], *rn[EVAL_REGION_COUNT];
        for (int v = 0; v < T->n_var; v++) {
            vn[v] = T->var_names[v];
            vu[v] = T->var_units[v];
        }
        NCX(nc_put_var_string(ncid, v_var, vn));
        NCX(nc_put_var_string(ncid, v_units, vu));
        if (T->reg_dim) {
            for (int r = 0; r < T->n_reg; r++) rn[r] = eval_region_name(T->regions[r]);
            NCX(nc_put_var_string(ncid, v_reg, rn));
        }
    }
    NCX(nc_put_var_double(ncid, v_lead, T->leads));
    NCX(nc_put_var_double(ncid, v_score, T->score));
    NCX(nc_put_var_longlong(ncid, v_nfc, (const long long *)T->n_fc));
    if (v_alpha >= 0) NCX(nc_put_var_double(ncid, v_alpha, T->alpha));
    if (v_hist >= 0) NCX(nc_put_var_double(ncid, v_hist, T->hist));
#undef NCX
    s = nc_close(ncid);
    if (s != NC_NOERR) {
        outfile_abort(&of);
        return nc_status_fail(o->out, "cannot close", s);
    }
    return outfile_commit(&of);
nc_fail:
    nc_close(ncid);
    outfile_abort(&of);
    return nc_status_fail(o->out, "cannot write scores", s);
}

static void print_table(const ev_table *T, const int *src_ids)
{
    for (int v = 0; v < T->n_var; v++)
        for (int r = 0; r < T->n_reg; r++) {
            printf("\n%s [%s]  region %s\n", T->var_names[v], T->var_units[v], eval_region_name(T->regions[r]));
            char lb[32];
            if (T->mode == MODE_DET) {
                printf("RMSE (headline: time mean before the root)\n%6s %5s %11s", "lead", "n", "model");
                for (int k = 1; k < T->n_src; k++) printf(" %18s", T->src_names[k]);
                int kp = -1; /* ratios to persistence only when it is scored */
                for (int k = 0; k < T->n_src; k++)
                    if (src_ids[k] == EVAL_SRC_PERSISTENCE) kp = k;
                if (kp >= 0) printf(" %11s", "model/pers");
                for (int k = 1; k < T->n_src && kp >= 0; k++)
                    if (src_ids[k] != EVAL_SRC_PERSISTENCE) printf(" %11s", src_ids[k] == EVAL_SRC_CLIMATOLOGY ? "clim/pers" : "damped/pers");
                printf("\n");
                for (int l = 0; l < T->n_lead; l++) {
                    fmt_lead(T->leads[l], lb, sizeof lb);
                    printf("%6s %5ld %11.5g", lb, T->n_fc[(size_t)v * T->n_lead + l], SCORE(T, 0, EVAL_M_RMSE, v, l, r));
                    for (int k = 1; k < T->n_src; k++) printf(" %18.5g", SCORE(T, k, EVAL_M_RMSE, v, l, r));
                    double p = kp >= 0 ? SCORE(T, kp, EVAL_M_RMSE, v, l, r) : NAN;
                    if (kp >= 0) printf(" %11.3f", SCORE(T, 0, EVAL_M_RMSE, v, l, r) / p);
                    for (int k = 1; k < T->n_src && kp >= 0; k++)
                        if (src_ids[k] != EVAL_SRC_PERSISTENCE) printf(" %11.3f", SCORE(T, k, EVAL_M_RMSE, v, l, r) / p);
                    printf("\n");
                }
                printf("model: %6s %13s %11s %11s %9s", "lead", "rmse_mean_fc", "bias", "mae", "acc");
                for (int k = 1; k < T->n_src; k++)
                    if (src_ids[k] != EVAL_SRC_CLIMATOLOGY)
                        printf(" %9s", src_ids[k] == EVAL_SRC_PERSISTENCE ? "acc_pers" : "acc_damp");
                printf("\n");
                for (int l = 0; l < T->n_lead; l++) {
                    fmt_lead(T->leads[l], lb, sizeof lb);
                    printf("       %6s %13.5g %11.4g %11.5g %9.4f", lb, SCORE(T, 0, EVAL_M_RMSE_MEAN_FC, v, l, r),
                           SCORE(T, 0, EVAL_M_BIAS, v, l, r), SCORE(T, 0, EVAL_M_MAE, v, l, r), SCORE(T, 0, EVAL_M_ACC, v, l, r));
                    for (int k = 1; k < T->n_src; k++)
                        if (src_ids[k] != EVAL_SRC_CLIMATOLOGY) printf(" %9.4f", SCORE(T, k, EVAL_M_ACC, v, l, r));
                    printf("\n");
                }
            } else {
                printf("%6s %5s", "lead", "n");
                for (int m = 0; m < T->n_met; m++) printf(" %12s", T->met_names[m]);
                printf("\n");
                for (int l = 0; l < T->n_lead; l++) {
                    fmt_lead(T->leads[l], lb, sizeof lb);
                    printf("%6s %5ld", lb, T->n_fc[(size_t)v * T->n_lead + l]);
                    for (int m = 0; m < T->n_met; m++) printf(" %12.5g", SCORE(T, 0, m, v, l, r));
                    printf("\n");
                }
            }
        }
    fflush(stdout);
}

/* ------------------------------------------------------------------ run state */

static int lead_index(const ev_table *T, double lead)
{
    for (int l = 0; l < T->n_lead; l++)
        if (fabs(T->leads[l] - lead) < 1e-6) return l;
    return -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Appends item k of a comma-separated list (for the "it has: ..." of error messages). */
static void list_append(char *list, size_t len, int k, const char *item)
{
    strncat(list, k ? ", " : "", len - strlen(list) - 1);
    strncat(list, item, len - strlen(list) - 1);
}

/* Everything one run opens or allocates, filled phase by phase; ev_run_free releases it
 * whichever phase failed. */
typedef struct {
    const evaluate_opts *o;
    evaluate_result *result;
    forecast_file *files;
    int n_open;                /* files to close: every one tried, the one that failed included */
    const forecast_file *f0;   /* the first file decides the variables and the mode */
    dataset *truth;
    size_t np;                 /* truth grid points */
    int tvar[EV_MAX_VARS];     /* truth variable of each scored variable */
    double *wlat;              /* latitude weights, NULL on x/y grids */
    float *lsm;
    int need_lsm, have_lsm;
    float *field;              /* one forecast record, all members */
    ev_table T;
    int src_ids[EVAL_SRC_COUNT];
    char train_text[512], clim_text[256];
    /* deterministic */
    eval_session *sess;
    int *sel, n_sel;           /* the truth times read: training period, inits and valid times */
    double *sel_times, *det_out;
    float *series;             /* (n_sel, np) truth of one variable */
    /* probabilistic */
    dataset *cds, *rds;        /* --climate, --ensemble */
    clim_cache cc;
    uint8_t *masks;            /* (region, np) */
    float *obs, *mean, *sigma, *efi, *rawens;
    eval_prob_acc *pacc;       /* (lead, region) */
    eval_det_acc *dacc;
    int n_pacc;
} ev_run;

static void ev_run_free(ev_run *R)
{
    for (int i = 0; i < R->n_open; i++) forecast_file_close(&R->files[i]);
    free(R->files);
    eval_session_free(R->sess);
    for (int k = 0; k < R->n_pacc && R->pacc; k++) eval_prob_free(&R->pacc[k]);
    free(R->pacc);
    free(R->dacc);
    free(R->cc.q);
    free(R->cc.sample);
    if (R->truth) dataset_close(R->truth);
    if (R->cds) dataset_close(R->cds);
    if (R->rds) dataset_close(R->rds);
    free(R->series);
    free(R->sel);
    free(R->sel_times);
    free(R->field);
    free(R->lsm);
    free(R->obs);
    free(R->mean);
    free(R->sigma);
    free(R->efi);
    free(R->rawens);
    free(R->wlat);
    free(R->det_out);
    free(R->masks);
    free(R->T.score);
    free(R->T.n_fc);
    free(R->T.alpha);
    free(R->T.hist);
}

/* ------------------------------------------------------------------ phases: forecasts */

static int ev_open_forecasts(ev_run *R)
{
    const evaluate_opts *o = R->o;
    R->files = calloc((size_t)(o->n_forecasts > 0 ? o->n_forecasts : 1), sizeof *R->files);
    if (!R->files) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    if (o->n_forecasts < 1) return sm_fail(SM_ERR_USAGE, "evaluate: --forecast is required");
    for (int i = 0; i < o->n_forecasts; i++) R->files[i].ncid = -1;
    R->f0 = &R->files[0];
    int st = SM_OK;
    for (int i = 0; i < o->n_forecasts && !st; i++) {
        st = forecast_file_open(o->forecasts[i], o->lead_hours, &R->files[i]);
        R->n_open = i + 1;
    }
    return st;
}

/* The forecast fields of a file by kind: with members (ensemble), <var>_mu beside a <var>_sigma
 * (Gaussian, listed as <var>), anything else deterministic (a _sigma without its _mu too). */
typedef struct {
    char det[EV_MAX_VARS][96], gauss[EV_MAX_VARS][96], ens[EV_MAX_VARS][96];
    int n_det, n_gauss, n_ens;
} ev_fields;

static void ev_classify_fields(const forecast_file *f0, ev_fields *F)
{
    int nv = 0;
    nc_inq_nvars(f0->ncid, &nv);
    F->n_det = F->n_gauss = F->n_ens = 0;
    for (int v = 0; v < nv; v++) {
        int hm;
        char name[NC_MAX_NAME + 1];
        if (!forecast_file_is_field(f0, v, &hm)) continue;
        nc_inq_varname(f0->ncid, v, name);
        size_t len = strlen(name);
        if (hm) {
            if (F->n_ens < EV_MAX_VARS) snprintf(F->ens[F->n_ens++], 96, "%.95s", name);
        } else if (len > 3 && !strcmp(name + len - 3, "_mu")) {
            char sg[NC_MAX_NAME + 8];
            int hm2;
            snprintf(sg, sizeof sg, "%.*s_sigma", (int)(len - 3), name);
            if (forecast_file_has_field(f0, sg, &hm2) && !hm2 && F->n_gauss < EV_MAX_VARS)
                snprintf(F->gauss[F->n_gauss++], 96, "%.*s", (int)(len - 3), name);
            else if (F->n_det < EV_MAX_VARS)
                snprintf(F->det[F->n_det++], 96, "%.95s", name);
        } else if (len > 6 && !strcmp(name + len - 6, "_sigma")) {
            char mu[NC_MAX_NAME + 8];
            int vm;
            snprintf(mu, sizeof mu, "%.*s_mu", (int)(len - 6), name);
            if (nc_inq_varid(f0->ncid, mu, &vm) != NC_NOERR && F->n_det < EV_MAX_VARS)
                snprintf(F->det[F->n_det++], 96, "%.95s", name);
        } else if (F->n_det < EV_MAX_VARS) {
            snprintf(F->det[F->n_det++], 96, "%.95s", name);
        }
    }
}

/* Mode from the first file (any ensemble field makes it an ensemble, else any Gaussian pair),
 * variables from --vars or every field of that kind. */
static int ev_choose_vars(ev_run *R)
{
    ev_table *T = &R->T;
    ev_fields F;
    ev_classify_fields(R->f0, &F);
    char (*avail)[96] = F.det;
    int n_avail = F.n_det;
    if (F.n_ens) {
        T->mode = MODE_ENS;
        avail = F.ens;
        n_avail = F.n_ens;
    } else if (F.n_gauss) {
        T->mode = MODE_GAUSS;
        avail = F.gauss;
        n_avail = F.n_gauss;
    }
    if (n_avail == 0)
        return sm_fail(SM_ERR_IO, "%s: no forecast field (a variable with dims (forecast_reference_time, forecast_period, "
                       "latitude, longitude) or (time, [realization,] latitude, longitude))", R->f0->path);
    if (!R->o->vars) {
        for (int a = 0; a < n_avail; a++) snprintf(T->var_names[T->n_var++], 96, "%.95s", avail[a]);
        return SM_OK;
    }
    char want[EV_MAX_VARS][96];
    int nw, st = parse_list(R->o->vars, want, EV_MAX_VARS, &nw, "--vars");
    if (st) return st;
    for (int k = 0; k < nw; k++) {
        int found = 0;
        for (int a = 0; a < n_avail; a++) found |= !strcmp(want[k], avail[a]);
        if (!found) {
            char list[2048] = "";
            for (int a = 0; a < n_avail; a++) list_append(list, sizeof list, a, avail[a]);
            return sm_fail(SM_ERR_USAGE, "--vars: %s is not a forecast field of %s (it has: %s)", want[k], R->f0->path, list);
        }
        snprintf(T->var_names[T->n_var++], 96, "%.95s", want[k]);
    }
    return SM_OK;
}

/* Leads: the sorted union over every file; no (init, lead) twice. */
static int ev_collect_leads(ev_run *R)
{
    ev_table *T = &R->T;
    for (int i = 0; i < R->o->n_forecasts; i++)
        for (size_t r = 0; r < R->files[i].nrec; r++) {
            double L = R->files[i].lead[r];
            if (lead_index(T, L) >= 0) continue;
            if (T->n_lead >= EV_MAX_LEADS) return sm_fail(SM_ERR_USAGE, "evaluate: more than %d distinct lead times", EV_MAX_LEADS);
            T->leads[T->n_lead++] = L;
        }
    if (T->n_lead == 0) return sm_fail(SM_ERR_IO, "%s: the forecast files hold no forecast", R->f0->path);
    qsort(T->leads, (size_t)T->n_lead, sizeof(double), cmp_double);
    return forecast_file_check_duplicates(R->files, R->o->n_forecasts);
}

/* ------------------------------------------------------------------ phases: truth, regions, sources */

/* Every file on the truth grid, with the first file's members and variables. */
static int ev_check_files(const ev_run *R)
{
    const ev_table *T = &R->T;
    const forecast_file *f0 = R->f0;
    for (int i = 0; i < R->o->n_forecasts; i++) {
        const forecast_file *f = &R->files[i];
        if (!grids_match(f, R->truth))
            return sm_fail(SM_ERR_IO, "%s: grid (%d x %d) differs from the truth %s (%d x %d, latitude north to south); "
                           "regrid the forecast or ingest the truth on the forecast grid", f->path, f->nlat, f->nlon,
                           R->o->truth, R->truth->nlat, R->truth->nlon);
        if (T->mode == MODE_ENS && f->nmem != f0->nmem)
            return sm_fail(SM_ERR_IO, "%s: %d members, but %s has %d", f->path, f->nmem, f0->path, f0->nmem);
        for (int v = 0; v < T->n_var; v++) {
            char nm[128];
            int hm;
            snprintf(nm, sizeof nm, T->mode == MODE_GAUSS ? "%s_mu" : "%s", T->var_names[v]);
            if (!forecast_file_has_field(f, nm, &hm))
                return sm_fail(SM_ERR_IO, "%s: variable %s missing (present in %s)", f->path, nm, f0->path);
        }
    }
    return SM_OK;
}

/* The truth variable (time-dependent, without members) and units of every scored variable. */
static int ev_find_truth_vars(ev_run *R)
{
    const dataset *truth = R->truth;
    for (int v = 0; v < R->T.n_var; v++) {
        int tv = R->tvar[v] = dataset_find_var(truth, R->T.var_names[v]);
        if (tv < 0 || truth->vars[tv].is_static || truth->vars[tv].has_members) {
            char list[2048] = "";
            for (int k = 0; k < truth->nvars; k++) list_append(list, sizeof list, k, truth->vars[k].name);
            return sm_fail(SM_ERR_IO, "variable %s of forecast %s is not a time-dependent field of the truth %s (it has: %s)",
                           R->T.var_names[v], R->f0->path, R->o->truth, list);
        }
        snprintf(R->T.var_units[v], sizeof R->T.var_units[v], "%s", truth->vars[tv].units);
    }
    return SM_OK;
}

static int ev_open_truth(ev_run *R)
{
    int st = dataset_open(R->o->truth, &R->truth);
    if (st) return st;
    R->np = (size_t)R->truth->nlat * R->truth->nlon;
    if ((st = ev_check_files(R)) || (st = ev_find_truth_vars(R))) return st;
    if (R->truth->is_latlon) {
        R->wlat = malloc(sizeof(double) * (size_t)R->truth->nlat);
        if (!R->wlat) return sm_fail(SM_ERR_NUMERIC, "out of memory");
        eval_lat_weights(R->truth->lat, R->truth->nlat, R->wlat);
    }
    return SM_OK;
}

/* --regions (each once, in the given order; global only without it) and the land-sea mask the
 * land/sea regions need or --lsm gives. */
static int ev_choose_regions(ev_run *R)
{
    ev_table *T = &R->T;
    const evaluate_opts *o = R->o;
    int st;
    if (o->regions) {
        char names[EVAL_REGION_COUNT * 2][96];
        int nr;
        if ((st = parse_list(o->regions, names, EVAL_REGION_COUNT * 2, &nr, "--regions"))) return st;
        for (int k = 0; k < nr; k++) {
            int id = eval_region_from_name(names[k]);
            if (id < 0)
                return sm_fail(SM_ERR_USAGE, "--regions: unknown region '%s' (known: global, tropics, nh_extratropics, "
                               "sh_extratropics, extratropics, nh_polar, sh_polar, polar, land, sea)", names[k]);
            int dup = 0;
            for (int j = 0; j < T->n_reg; j++) dup |= T->regions[j] == (eval_region)id;
            if (dup) continue;
            if (T->n_reg >= EVAL_REGION_COUNT) break;
            T->regions[T->n_reg++] = (eval_region)id;
            R->need_lsm |= id == EVAL_REGION_LAND || id == EVAL_REGION_SEA;
        }
        T->reg_dim = 1;
    } else {
        T->regions[0] = EVAL_REGION_GLOBAL;
        T->n_reg = 1;
    }
    R->lsm = malloc(sizeof(float) * R->np);
    if (!R->lsm) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    if (!R->need_lsm && !o->lsm) return SM_OK;
    if ((st = load_lsm(o, R->truth, R->lsm, &R->have_lsm))) return st;
    if (R->need_lsm && !R->have_lsm)
        return sm_fail(SM_ERR_USAGE, "--regions land/sea need a land-sea mask: the truth %s has no static lsm variable; "
                       "pass --lsm FILE:VARIABLE", o->truth);
    return SM_OK;
}

/* --baselines: sets want[source] for each name. "none" is a name only where accept_none; for a
 * probabilistic forecast any list but "none" itself is an error anyway. */
static int parse_baselines(const char *text, int accept_none, int want[EVAL_SRC_COUNT])
{
    char names[16][96];
    int nb, st = parse_list(text, names, 16, &nb, "--baselines");
    if (st) return st;
    for (int k = 0; k < nb; k++) {
        if (!strcmp(names[k], "persistence")) want[EVAL_SRC_PERSISTENCE] = 1;
        else if (!strcmp(names[k], "climatology")) want[EVAL_SRC_CLIMATOLOGY] = 1;
        else if (!strcmp(names[k], "damped-persistence") || !strcmp(names[k], "damped_persistence")) want[EVAL_SRC_DAMPED] = 1;
        else if (!accept_none || strcmp(names[k], "none") != 0)
            return sm_fail(SM_ERR_USAGE, "--baselines: unknown baseline '%s' (known: persistence, climatology, "
                           "damped-persistence, none)", names[k]);
    }
    return SM_OK;
}

/* Sources (the model, then the baselines of a deterministic forecast in canonical order) and
 * metrics; the probabilistic scores have bias and mae of the mean after the EVAL_PM ones. */
static int ev_choose_sources(ev_run *R)
{
    ev_table *T = &R->T;
    const evaluate_opts *o = R->o;
    T->src_names[0] = eval_source_name(EVAL_SRC_MODEL);
    R->src_ids[0] = EVAL_SRC_MODEL;
    T->n_src = 1;
    int want[EVAL_SRC_COUNT] = {1, 1, 1, 1}, st;
    if (T->mode != MODE_DET) {
        if (o->baselines && strcmp(o->baselines, "none") != 0) {
            if ((st = parse_baselines(o->baselines, 0, want))) return st;
            return sm_fail(SM_ERR_USAGE, "--baselines: the baselines are deterministic forecasts; %s is a probabilistic (%s) "
                           "forecast, scored without baselines (use --baselines none)", R->f0->path,
                           T->mode == MODE_ENS ? "ensemble" : "gaussian");
        }
        T->n_met = EVAL_PM_COUNT + 2;
        for (int m = 0; m < EVAL_PM_COUNT; m++) T->met_names[m] = eval_prob_metric_name((eval_prob_metric)m);
        T->met_names[EVAL_PM_COUNT] = "bias";
        T->met_names[EVAL_PM_COUNT + 1] = "mae";
        T->n_bins = T->mode == MODE_ENS ? R->f0->nmem + 1 : EV_PIT_BINS;
        return SM_OK;
    }
    if (o->baselines) {
        want[1] = want[2] = want[3] = 0;
        if ((st = parse_baselines(o->baselines, 1, want))) return st;
    }
    for (int k = 1; k < EVAL_SRC_COUNT; k++)
        if (want[k]) {
            R->src_ids[T->n_src] = k;
            T->src_names[T->n_src++] = eval_source_name((eval_source)k);
        }
    T->n_met = EVAL_M_COUNT;
    for (int m = 0; m < EVAL_M_COUNT; m++) T->met_names[m] = eval_metric_name((eval_metric)m);
    return SM_OK;
}

/* The score table (NaN until scored) and the forecast record buffer. */
static int ev_alloc_table(ev_run *R)
{
    ev_table *T = &R->T;
    size_t n_score = (size_t)T->n_src * T->n_met * T->n_var * T->n_lead * T->n_reg;
    T->score = malloc(sizeof(double) * n_score);
    T->n_fc = calloc((size_t)T->n_var * T->n_lead, sizeof(long));
    T->alpha = malloc(sizeof(double) * (size_t)T->n_var * T->n_lead);
    if (T->mode != MODE_DET) T->hist = calloc((size_t)T->n_var * T->n_lead * T->n_reg * T->n_bins, sizeof(double));
    R->field = malloc(sizeof(float) * R->np * (size_t)(R->f0->nmem > 0 ? R->f0->nmem : 1));
    if (!T->score || !T->n_fc || !T->alpha || !R->field || (T->mode != MODE_DET && !T->hist))
        return sm_fail(SM_ERR_NUMERIC, "out of memory");
    for (size_t k = 0; k < n_score; k++) T->score[k] = NAN;
    for (size_t k = 0; k < (size_t)T->n_var * T->n_lead; k++) T->alpha[k] = NAN;
    return SM_OK;
}

/* ------------------------------------------------------------------ phases: deterministic scores */

/* Training period of the baselines (--train-period or the checkpoint's) and the climatology kind
 * it allows; the truth fields of `tr` common to every variable. */
static int det_train_period(ev_run *R, eval_truth *tr)
{
    const dataset *truth = R->truth;
    double t0 = 0, t1 = 0;
    char srcdesc[PATH_MAX + 32];
    int st = resolve_train_period(R->o, R->f0, truth, &t0, &t1, srcdesc, sizeof srcdesc);
    if (st) return st;
    /* clamp to the truth for the climatology option choice */
    double a = t0 > truth->times[0] ? t0 : truth->times[0];
    double b = t1 < truth->times[truth->ntimes - 1] ? t1 : truth->times[truth->ntimes - 1];
    memset(tr, 0, sizeof *tr);
    tr->clim.by_hour = 1;
    tr->clim.by_doy = (b - a) >= 90 * 24.0;
    tr->clim.window_days = tr->clim.by_doy ? EV_CLIM_WINDOW_DAYS : 0;
    tr->h = truth->nlat;
    tr->w = truth->nlon;
    tr->lat = truth->is_latlon ? truth->lat : NULL;
    tr->wlat = R->wlat;
    tr->lsm = R->have_lsm ? R->lsm : NULL;
    tr->train_start = t0;
    tr->train_end = t1;
    tr->damped_per_point = 0;
    char s0[64], s1[64];
    fmt_time(t0 < -1e299 ? truth->times[0] : t0, truth->calendar, s0, sizeof s0);
    fmt_time(t1, truth->calendar, s1, sizeof s1);
    snprintf(R->train_text, sizeof R->train_text, "%s/%s (from %.150s)", s0, s1, srcdesc);
    snprintf(R->clim_text, sizeof R->clim_text, "%s",
             tr->clim.by_doy ? "per day of year (+-15 day window) and hour of day, training period only"
                             : "per hour of day, training period only (training period shorter than 90 days)");
    log_info("training period for the baselines: %s; climatology %s", R->train_text, R->clim_text);
    return SM_OK;
}

/* Only the truth times the scores need: the training period and every initialisation and valid
 * time of the forecasts (a 40-year truth is not read in full). */
static int det_select_times(ev_run *R, eval_truth *tr)
{
    const dataset *truth = R->truth;
    R->sel = malloc(sizeof(int) * (size_t)truth->ntimes);
    R->sel_times = malloc(sizeof(double) * (size_t)truth->ntimes);
    uint8_t *need = calloc((size_t)truth->ntimes, 1);
    if (!R->sel || !R->sel_times || !need) {
        free(need);
        return sm_fail(SM_ERR_NUMERIC, "out of memory");
    }
    int n_train = 0;
    for (int t = 0; t < truth->ntimes; t++) {
        need[t] = truth->times[t] >= tr->train_start - 1e-3 && truth->times[t] <= tr->train_end + 1e-3;
        n_train += need[t];
    }
    if (n_train == 0) {
        free(need);
        return sm_fail(SM_ERR_USAGE, "the truth %s has no time in the training period %s; the climatology and damped "
                       "persistence need it (pass --train-period, or a truth that covers the training period)", R->o->truth,
                       R->train_text);
    }
    for (int i = 0; i < R->o->n_forecasts; i++)
        for (size_t r = 0; r < R->files[i].nrec; r++) {
            const forecast_file *f = &R->files[i];
            int ki = dataset_find_time(truth, f->init[r]), kv = dataset_find_time(truth, f->init[r] + f->lead[r]);
            if (ki >= 0) need[ki] = 1;
            if (kv >= 0) need[kv] = 1;
        }
    for (int t = 0; t < truth->ntimes; t++)
        if (need[t]) {
            R->sel_times[R->n_sel] = truth->times[t];
            R->sel[R->n_sel++] = t;
        }
    free(need);
    R->series = malloc(sizeof(float) * R->np * (size_t)(R->n_sel ? R->n_sel : 1));
    R->det_out = malloc(sizeof(double) * (size_t)EVAL_SRC_COUNT * R->T.n_lead * R->T.n_reg * EVAL_M_COUNT);
    if (!R->series || !R->det_out) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    tr->times = R->sel_times;
    tr->data = R->series;
    tr->T = R->n_sel;
    return SM_OK;
}

/* One record of variable v into the session; forecasts whose init or valid time the truth lacks
 * are counted as skipped (once, for the first variable). */
static int det_add_record(ev_run *R, int v, const forecast_file *f, size_t r)
{
    int l = lead_index(&R->T, f->lead[r]), skipped = 0;
    int st = forecast_file_read(f, R->T.var_names[v], r, R->field);
    if (st) return st;
    st = eval_session_add(R->sess, f->init[r], l, R->field, &skipped);
    if (skipped && v == 0) R->result->n_skipped++;
    if (!skipped) R->result->n_scored++;
    if (sm_interrupted()) st = sm_fail(SM_ERR_INTERRUPTED, "interrupted; no scores written");
    return st;
}

/* Variable v: its truth series, an eval_session (climatology and damped persistence fitted on
 * the training period), every record, the scores of the selected sources. */
static int det_score_var(ev_run *R, int v, const eval_truth *tr)
{
    ev_table *T = &R->T;
    int st = SM_OK;
    for (int t = 0; t < R->n_sel && !st; t++) st = dataset_read(R->truth, R->tvar[v], R->sel[t], 0, R->series + (size_t)t * R->np);
    if (st) return st;
    if ((st = eval_session_create(tr, T->leads, T->n_lead, T->regions, T->n_reg, &R->sess))) {
        char why[1024];
        snprintf(why, sizeof why, "%s", sm_last_error());
        return sm_fail(st, "%s (variable %s, truth %s)", why, T->var_names[v], R->o->truth);
    }
    for (int i = 0; i < R->o->n_forecasts && !st; i++)
        for (size_t r = 0; r < R->files[i].nrec && !st; r++) st = det_add_record(R, v, &R->files[i], r);
    if (st) return st;
    long nfc[EV_MAX_LEADS];
    eval_session_finish(R->sess, R->det_out, nfc);
    for (int l = 0; l < T->n_lead; l++) {
        T->n_fc[(size_t)v * T->n_lead + l] = nfc[l];
        T->alpha[(size_t)v * T->n_lead + l] = eval_session_alpha(R->sess, l)[0];
        for (int k = 0; k < T->n_src; k++)
            for (int r = 0; r < T->n_reg; r++)
                for (int m = 0; m < EVAL_M_COUNT; m++)
                    SCORE(T, k, m, v, l, r) = R->det_out[(((size_t)R->src_ids[k] * T->n_lead + l) * T->n_reg + r) * EVAL_M_COUNT + m];
    }
    eval_session_free(R->sess);
    R->sess = NULL;
    return SM_OK;
}

static int score_deterministic(ev_run *R)
{
    eval_truth tr;
    int st = det_train_period(R, &tr);
    if (!st) st = det_select_times(R, &tr);
    for (int v = 0; v < R->T.n_var && !st; v++) st = det_score_var(R, v, &tr);
    return st;
}

/* ------------------------------------------------------------------ phases: probabilistic scores */

/* Buffers, accumulators and the region masks. */
static int prob_alloc(ev_run *R)
{
    const ev_table *T = &R->T;
    const dataset *truth = R->truth;
    size_t np = R->np;
    R->masks = malloc(np * (size_t)T->n_reg);
    R->obs = malloc(sizeof(float) * np);
    R->mean = malloc(sizeof(float) * np);
    R->sigma = malloc(sizeof(float) * np);
    R->efi = malloc(sizeof(float) * np);
    R->n_pacc = T->n_lead * T->n_reg;
    R->pacc = calloc((size_t)R->n_pacc, sizeof *R->pacc);
    R->dacc = calloc((size_t)R->n_pacc, sizeof *R->dacc);
    if (!R->masks || !R->obs || !R->mean || !R->sigma || !R->efi || !R->pacc || !R->dacc)
        return sm_fail(SM_ERR_NUMERIC, "out of memory");
    int st = SM_OK;
    for (int r = 0; r < T->n_reg && !st; r++) {
        eval_region g = T->regions[r];
        if (!truth->is_latlon && g != EVAL_REGION_GLOBAL && g != EVAL_REGION_LAND && g != EVAL_REGION_SEA)
            st = sm_fail(SM_ERR_USAGE, "--regions: region '%s' needs latitudes (x/y grid)", eval_region_name(g));
        else
            st = eval_region_mask(g, truth->lat, R->have_lsm ? R->lsm : NULL, truth->nlat, truth->nlon, R->masks + (size_t)r * np);
    }
    return st;
}

/* --climate (model climate of the EFI weights of EECRPS) and, for a Gaussian forecast, the raw
 * ensemble (--ensemble) the EFI comes from. */
static int prob_open_climate(ev_run *R)
{
    const evaluate_opts *o = R->o;
    const dataset *truth = R->truth;
    int st;
    if (!o->climate) return SM_OK;
    if ((st = dataset_open(o->climate, &R->cds))) return st;
    if (R->cds->nlat != truth->nlat || R->cds->nlon != truth->nlon)
        return sm_fail(SM_ERR_IO, "%s: model-climate grid differs from the truth %s", o->climate, o->truth);
    R->cc.ds = R->cds;
    R->cc.npts = R->np;
    R->cc.q = malloc(sizeof(float) * EVAL_EFI_NQ * R->np);
    if (!R->cc.q) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    if (R->T.mode != MODE_GAUSS) return SM_OK;
    if (!o->ensemble)
        return sm_fail(SM_ERR_USAGE, "--climate: the EFI weights of EECRPS come from the raw ensemble; for the "
                       "Gaussian forecast %s pass the raw ensemble with --ensemble RAW.nc", R->f0->path);
    if ((st = dataset_open(o->ensemble, &R->rds))) return st;
    if (R->rds->nmembers < 1 || R->rds->nlat != truth->nlat || R->rds->nlon != truth->nlon)
        return sm_fail(SM_ERR_IO, "%s: not an ensemble dataset on the truth grid (--ensemble)", o->ensemble);
    R->rawens = malloc(sizeof(float) * R->np * (size_t)R->rds->nmembers);
    if (!R->rawens) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    return SM_OK;
}

/* Variable v: its model-climate and raw-ensemble variables (*rv) and fresh accumulators. */
static int prob_var_begin(ev_run *R, int v, int *rv)
{
    const char *name = R->T.var_names[v];
    *rv = -1;
    if (R->cds) {
        R->cc.var = dataset_find_var(R->cds, name);
        R->cc.doy = -1;
        if (R->cc.var < 0 || R->cds->vars[R->cc.var].is_static)
            return sm_fail(SM_ERR_IO, "%s: no time-dependent variable %s (--climate)", R->o->climate, name);
        if (R->rds && ((*rv = dataset_find_var(R->rds, name)) < 0 || !R->rds->vars[*rv].has_members))
            return sm_fail(SM_ERR_IO, "%s: no ensemble variable %s (--ensemble)", R->o->ensemble, name);
    }
    int st = SM_OK;
    for (int k = 0; k < R->n_pacc && !st; k++) {
        eval_prob_free(&R->pacc[k]);
        st = R->T.mode == MODE_ENS ? eval_prob_init_ens(&R->pacc[k], R->f0->nmem) : eval_prob_init_gauss(&R->pacc[k], EV_PIT_BINS);
        eval_det_init(&R->dacc[k]);
    }
    return st;
}

/* The forecast of record r as R->field (members) and R->mean, or R->mean and R->sigma, and its
 * EFI where a model climate is given (*efi_p, else NULL). */
static int prob_read_forecast(ev_run *R, int v, int rv, const forecast_file *f, size_t r, double valid, const float **efi_p)
{
    size_t np = R->np;
    const float *q;
    int st;
    *efi_p = NULL;
    if (R->T.mode == MODE_ENS) {
        int m = R->f0->nmem;
        if ((st = forecast_file_read(f, R->T.var_names[v], r, R->field))) return st;
        for (size_t p = 0; p < np; p++) {
            double s = 0;
            for (int k = 0; k < m; k++) s += R->field[(size_t)k * np + p];
            R->mean[p] = (float)(s / m);
        }
        if (!R->cds) return SM_OK;
        if ((st = clim_quantiles(&R->cc, valid, &q))) return st;
        eval_efi_field(R->field, m, q, np, R->efi);
        *efi_p = R->efi;
        return SM_OK;
    }
    char nm[128];
    snprintf(nm, sizeof nm, "%s_mu", R->T.var_names[v]);
    if ((st = forecast_file_read(f, nm, r, R->mean))) return st;
    snprintf(nm, sizeof nm, "%s_sigma", R->T.var_names[v]);
    if ((st = forecast_file_read(f, nm, r, R->sigma))) return st;
    int kr = R->rds ? dataset_find_time(R->rds, valid) : -1;
    if (kr < 0) return SM_OK;
    for (int k = 0; k < R->rds->nmembers && !st; k++) st = dataset_read(R->rds, rv, kr, k, R->rawens + (size_t)k * np);
    if (st) return st;
    if ((st = clim_quantiles(&R->cc, valid, &q))) return st;
    eval_efi_field(R->rawens, R->rds->nmembers, q, np, R->efi);
    *efi_p = R->efi;
    return SM_OK;
}

/* One record of variable v into the accumulators of its lead and every region; forecasts whose
 * valid time the truth lacks are counted as skipped (once, for the first variable). */
static int prob_add_record(ev_run *R, int v, int rv, const forecast_file *f, size_t r, rng_t *rng)
{
    const ev_table *T = &R->T;
    const dataset *truth = R->truth;
    int l = lead_index(T, f->lead[r]);
    double valid = f->init[r] + f->lead[r];
    int kv = dataset_find_time(truth, valid);
    if (kv < 0) {
        if (v == 0) R->result->n_skipped++;
        return SM_OK;
    }
    int st = dataset_read(truth, R->tvar[v], kv, 0, R->obs);
    const float *efi_p = NULL;
    if (!st) st = prob_read_forecast(R, v, rv, f, r, valid, &efi_p);
    if (st) return st;
    for (int g = 0; g < T->n_reg && !st; g++) {
        eval_prob_acc *pa = &R->pacc[l * T->n_reg + g];
        const uint8_t *mk = R->masks + (size_t)g * R->np;
        if (T->mode == MODE_ENS)
            st = eval_prob_add_ens(pa, R->field, R->obs, truth->nlat, truth->nlon, R->wlat, mk, rng, efi_p);
        else
            eval_prob_add_gauss(pa, R->mean, R->sigma, R->obs, truth->nlat, truth->nlon, R->wlat, mk, efi_p);
        eval_det_add(&R->dacc[l * T->n_reg + g], R->mean, R->obs, NULL, truth->nlat, truth->nlon, R->wlat, mk);
    }
    T->n_fc[(size_t)v * T->n_lead + l]++;
    R->result->n_scored++;
    if (sm_interrupted()) st = sm_fail(SM_ERR_INTERRUPTED, "interrupted; no scores written");
    return st;
}

/* Scores and histograms of variable v from its accumulators. */
static void prob_var_finish(ev_run *R, int v)
{
    ev_table *T = &R->T;
    for (int l = 0; l < T->n_lead; l++)
        for (int g = 0; g < T->n_reg; g++) {
            const eval_prob_acc *pa = &R->pacc[l * T->n_reg + g];
            eval_prob_result pr;
            eval_det_result dr;
            eval_prob_finish(pa, &pr);
            eval_det_finish(&R->dacc[l * T->n_reg + g], &dr);
            double vals[EVAL_PM_COUNT];
            eval_prob_result_values(&pr, vals);
            for (int k = 0; k < EVAL_PM_COUNT; k++) SCORE(T, 0, k, v, l, g) = vals[k];
            SCORE(T, 0, EVAL_PM_COUNT, v, l, g) = dr.bias;
            SCORE(T, 0, EVAL_PM_COUNT + 1, v, l, g) = dr.mae;
            double *h = T->hist + (((size_t)v * T->n_lead + l) * T->n_reg + g) * T->n_bins;
            for (int k = 0; k < T->n_bins; k++) h[k] = pa->hist[k];
        }
}

static int score_probabilistic(ev_run *R)
{
    int st = prob_alloc(R);
    if (!st) st = prob_open_climate(R);
    for (int v = 0; v < R->T.n_var && !st; v++) {
        int rv;
        if ((st = prob_var_begin(R, v, &rv))) break;
        rng_t rng;
        rng_seed(&rng, 20240601u, EV_RNG_STREAM + (uint64_t)v);
        for (int i = 0; i < R->o->n_forecasts && !st; i++)
            for (size_t r = 0; r < R->files[i].nrec && !st; r++) st = prob_add_record(R, v, rv, &R->files[i], r, &rng);
        if (!st) prob_var_finish(R, v);
    }
    return st;
}

/* ------------------------------------------------------------------ run */

static int ev_report(ev_run *R)
{
    const evaluate_opts *o = R->o;
    evaluate_result *result = R->result;
    result->n_vars = R->T.n_var;
    result->n_leads = R->T.n_lead;
    result->n_regions = R->T.n_reg;
    print_table(&R->T, R->src_ids);
    if (result->n_skipped)
        printf("\nskipped %ld forecast%s whose initialisation or valid time is not in the truth %s\n", result->n_skipped,
               result->n_skipped == 1 ? "" : "s", o->truth);
    return o->out ? write_scores(o, &R->T, R->train_text, R->clim_text, result->n_skipped) : SM_OK;
}

int evaluate_run(const evaluate_opts *o, evaluate_result *result)
{
    memset(result, 0, sizeof *result);
    ev_run R;
    memset(&R, 0, sizeof R);
    R.o = o;
    R.result = result;
    R.cc.doy = -1;
    int st = ev_open_forecasts(&R);
    if (!st) st = ev_choose_vars(&R);
    if (!st) {
        result->probabilistic = R.T.mode;
        if (R.T.mode == MODE_ENS && R.f0->nmem < 1) st = sm_fail(SM_ERR_IO, "%s: empty realization dimension", R.f0->path);
    }
    if (!st) st = ev_collect_leads(&R);
    if (!st) st = ev_open_truth(&R);
    if (!st) st = ev_choose_regions(&R);
    if (!st) st = ev_choose_sources(&R);
    if (!st) st = ev_alloc_table(&R);
    if (!st) st = R.T.mode == MODE_DET ? score_deterministic(&R) : score_probabilistic(&R);
    if (!st) st = ev_report(&R);
    ev_run_free(&R);
    return st;
}
