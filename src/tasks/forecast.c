/* Forecast runner and CF writer (see forecast.h). */
#include "tasks/forecast.h"
#include "core/config.h"
#include "core/log.h"
#include "core/outfile.h"
#include "core/progress.h"
#include "data/dataset.h"
#include "data/samples.h"
#include "io/cf_output.h"
#include "io/cf_time.h"
#include "io/nc_status.h"
#include "model/builder.h"
#include "model/checkpoint.h"
#include "nn/threads.h"
#include "tasks/experts.h"
#include "tasks/train.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORECAST_MAX_LEADS 64
#define FORECAST_BATCH 16
#define FORECAST_MAX_MEMBERS 16

int forecast_parse_leads(const char *text, double *hours, int max, int *n)
{
    *n = 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n >= max) return sm_fail(SM_ERR_USAGE, "--lead: at most %d lead times", max);
        int st = samples_parse_duration(tok, "--lead", &hours[*n]);
        if (st) return st;
        if (hours[*n] <= 0) return sm_fail(SM_ERR_USAGE, "--lead: lead times must be positive, got '%s'", tok);
        (*n)++;
    }
    if (*n == 0) return sm_fail(SM_ERR_USAGE, "--lead: give at least one lead time (e.g. 6h,24h)");
    return SM_OK;
}

static int parse_when(const dataset *ds, const char *text, double *hours)
{
    cf_calendar cal;
    if (cf_calendar_parse(ds->calendar, &cal) != SM_OK) cal = CAL_PROLEPTIC;
    cf_date d;
    if (cf_date_parse(text, &d) != SM_OK || !cf_date_valid(&d, cal))
        return sm_fail(SM_ERR_USAGE, "--init: '%s' is not a date (use e.g. 2019-03-25T00)", text);
    *hours = cf_date_to_hours(&d, cal);
    return SM_OK;
}

/* Initialisation time indices from "all", ISO times and "START/END" ranges. */
static int parse_inits(const dataset *ds, const sample_layout *L, const char *text, int64_t **out, int *n)
{
    int64_t *idx = malloc(sizeof *idx * (size_t)ds->ntimes * 2 + sizeof *idx);
    int count = 0;
    if (!idx) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    int st = SM_OK;
    double hist = (L->history - 1) * L->dt_hours;
    for (char *tok = strtok_r(buf, ",", &save); tok && st == SM_OK; tok = strtok_r(NULL, ",", &save)) {
        double start = 0, end = 0;
        char *slash = strchr(tok, '/');
        if (!strcmp(tok, "all")) {
            start = ds->times[0] + hist;
            end = ds->times[ds->ntimes - 1];
        } else if (slash) {
            *slash = '\0';
            if ((st = parse_when(ds, tok, &start)) || (st = parse_when(ds, slash + 1, &end))) break;
        } else {
            if ((st = parse_when(ds, tok, &start))) break;
            end = start;
            if (dataset_find_time(ds, start) < 0) {
                char a[64], b[64];
                cf_calendar cal;
                if (cf_calendar_parse(ds->calendar, &cal) != SM_OK) cal = CAL_PROLEPTIC;
                cf_format_hours(ds->times[0], cal, a, sizeof a);
                cf_format_hours(ds->times[ds->ntimes - 1], cal, b, sizeof b);
                st = sm_fail(SM_ERR_USAGE, "--init %s is not a time of %s (it holds %s .. %s)", tok, ds->path, a, b);
                break;
            }
        }
        int before = count;
        for (int t = 0; t < ds->ntimes && count < ds->ntimes * 2; t++)
            if (ds->times[t] >= start - 1e-6 && ds->times[t] <= end + 1e-6 && ds->times[t] - hist >= ds->times[0] - 1e-6)
                idx[count++] = t;
        if (count == before) st = sm_fail(SM_ERR_USAGE, "--init %s selects no time of %s with enough history", tok, ds->path);
    }
    if (st == SM_OK && count == 0) st = sm_fail(SM_ERR_USAGE, "--init: no initialisation time given");
    if (st) {
        free(idx);
        return st;
    }
    *out = idx;
    *n = count;
    return SM_OK;
}

typedef struct {
    int ncid;
    outfile out;
    int var_frt, var_fp, var_time;
    int var_field[SAMPLES_MAX_VARS];
    int open;
} fc_file;

/* Defines a forecast file: split == 0: (frt, fp, y, x); split == 1: (time, y, x). */
static int fc_file_create(fc_file *f, const char *path, const dataset *ds, const sample_layout *L, int n_inits,
                          int n_leads, int split, const char *checkpoint, const char *history, const sm_model *experts_of)
{
    memset(f, 0, sizeof *f);
    int st = outfile_begin(&f->out, path);
    if (st) return st;
    int s = nc_create(f->out.tmp_path, NC_NETCDF4 | NC_CLOBBER, &f->ncid);
    if (s != NC_NOERR) {
        outfile_abort(&f->out);
        return nc_status_fail(path, "cannot create", s);
    }
    f->open = 1;
    cf_grid g = {.is_latlon = ds->is_latlon, .nlat = ds->nlat, .nlon = ds->nlon, .lat = ds->lat, .lon = ds->lon};
    int dims[4], ndims;
    if ((s = cf_global_attributes(f->ncid, "smoecast forecast", history))) return nc_status_fail(path, "attributes", s);
    /* an ensemble (a comma list): its first member names the training run (evaluate reads the
     * training period from it), the list is kept beside it */
    char first[4096];
    snprintf(first, sizeof first, "%.*s", (int)strcspn(checkpoint, ","), checkpoint);
    cf_put_text(f->ncid, NC_GLOBAL, "smoecast_checkpoint", first);
    if (strchr(checkpoint, ',')) cf_put_text(f->ncid, NC_GLOBAL, "smoecast_ensemble_checkpoints", checkpoint);
    cf_put_text(f->ncid, NC_GLOBAL, "smoecast_dataset", ds->path);
    if (split) {
        int dim_t;
        if ((s = nc_def_dim(f->ncid, "time", (size_t)n_leads, &dim_t))) return nc_status_fail(path, "define time", s);
        if ((s = cf_define_time(f->ncid, "time", "time", "valid time", ds->calendar, 1, &dim_t, &f->var_time)))
            return nc_status_fail(path, "define time", s);
        cf_put_text(f->ncid, f->var_time, "axis", "T");
        if ((s = cf_define_time(f->ncid, "forecast_reference_time", "forecast_reference_time", "forecast reference time",
                                ds->calendar, 0, NULL, &f->var_frt)))
            return nc_status_fail(path, "define forecast_reference_time", s);
        if ((s = cf_define_period(f->ncid, "forecast_period", 1, &dim_t, &f->var_fp))) return nc_status_fail(path, "define forecast_period", s);
        dims[0] = dim_t;
        ndims = 3;
    } else {
        int dim_r, dim_p;
        if ((s = nc_def_dim(f->ncid, "forecast_reference_time", (size_t)n_inits, &dim_r)) ||
            (s = nc_def_dim(f->ncid, "forecast_period", (size_t)n_leads, &dim_p)))
            return nc_status_fail(path, "define dimensions", s);
        if ((s = cf_define_time(f->ncid, "forecast_reference_time", "forecast_reference_time", "forecast reference time",
                                ds->calendar, 1, &dim_r, &f->var_frt)) ||
            (s = cf_define_period(f->ncid, "forecast_period", 1, &dim_p, &f->var_fp)))
            return nc_status_fail(path, "define coordinates", s);
        int tdims[2] = {dim_r, dim_p};
        if ((s = cf_define_time(f->ncid, "time", "time", "valid time", ds->calendar, 2, tdims, &f->var_time)))
            return nc_status_fail(path, "define time", s);
        dims[0] = dim_r;
        dims[1] = dim_p;
        ndims = 4;
    }
    if ((s = cf_define_grid(f->ncid, &g))) return nc_status_fail(path, "define grid", s);
    dims[ndims - 2] = g.dim_y;
    dims[ndims - 1] = g.dim_x;
    const char *coords = split ? "forecast_reference_time forecast_period" : "time";
    for (int c = 0; c < L->c_out; c++) {
        int v = c < L->n_prog ? L->prog_var[c] : L->diag_var[c - L->n_prog];
        const dataset_var_info *vi = &ds->vars[v];
        if ((s = cf_define_field(f->ncid, &g, vi->name, ndims, dims, vi->units, vi->standard_name, vi->long_name, coords,
                                 &f->var_field[c])))
            return nc_status_fail(path, "define variable", s);
    }
    if (experts_of) {
        /* Adds the expert maps and leaves define mode. */
        int st = experts_append_static(f->ncid, path, experts_of, &g);
        if (st) return st;
    } else if ((s = nc_enddef(f->ncid))) {
        return nc_status_fail(path, "end define", s);
    }
    if ((s = cf_put_grid(f->ncid, &g))) return nc_status_fail(path, "write grid", s);
    return SM_OK;
}

static int fc_file_close(fc_file *f, int commit, const char *path)
{
    if (!f->open) return SM_OK;
    int s = nc_close(f->ncid);
    f->open = 0;
    if (!commit || s != NC_NOERR) {
        outfile_abort(&f->out);
        return s != NC_NOERR ? nc_status_fail(path, "cannot close", s) : SM_OK;
    }
    return outfile_commit(&f->out);
}

/* "{init}" in the pattern is replaced by YYYYMMDDTHH; without it the stamp goes before ".nc". */
static void split_path(const char *pattern, const char *stamp, char *out, size_t len)
{
    const char *mark = strstr(pattern, "{init}");
    if (mark) {
        snprintf(out, len, "%.*s%s%s", (int)(mark - pattern), pattern, stamp, mark + 6);
        return;
    }
    const char *dot = strrchr(pattern, '.');
    if (dot && !strcmp(dot, ".nc"))
        snprintf(out, len, "%.*s_%s.nc", (int)(dot - pattern), pattern, stamp);
    else
        snprintf(out, len, "%s_%s.nc", pattern, stamp);
}

static void init_stamp(const dataset *ds, double hours, char *buf, size_t len)
{
    cf_calendar cal;
    if (cf_calendar_parse(ds->calendar, &cal) != SM_OK) cal = CAL_PROLEPTIC;
    cf_date d;
    cf_hours_to_date(hours, cal, &d);
    snprintf(buf, len, "%04d%02d%02dT%02d%02d", d.year, d.month, d.day, d.hour, d.minute);
}

/* Writes every lead of one initialisation: into the shared file at row i, or (split_by_init)
 * into a file of its own. fields: (n_leads, C_out, H, W). */
static int write_init(const forecast_opts *o, const dataset *ds, const sample_layout *L, fc_file *shared, int i, int64_t init,
                      const double *leads, int n_leads, const float *fields, const char *shared_path, const sm_model *experts_of)
{
    size_t np = (size_t)L->h * L->w;
    double frt = ds->times[init];
    fc_file own, *f = shared;
    char path[4096];
    snprintf(path, sizeof path, "%s", shared_path);
    int st = SM_OK, s = NC_NOERR;
    if (o->split_by_init) {
        char stamp[32];
        init_stamp(ds, frt, stamp, sizeof stamp);
        split_path(o->out, stamp, path, sizeof path);
        if ((st = fc_file_create(&own, path, ds, L, 1, n_leads, 1, o->checkpoint, o->history, experts_of))) return st;
        f = &own;
        s = nc_put_var_double(f->ncid, f->var_frt, &frt);
        for (int j = 0; j < n_leads && s == NC_NOERR; j++) {
            size_t sj = (size_t)j;
            double valid = frt + leads[j];
            s = nc_put_var1_double(f->ncid, f->var_time, &sj, &valid);
            if (s == NC_NOERR) s = nc_put_var1_double(f->ncid, f->var_fp, &sj, &leads[j]);
        }
    }
    for (int j = 0; j < n_leads && s == NC_NOERR; j++) {
        for (int c = 0; c < L->c_out && s == NC_NOERR; c++) {
            const float *y = fields + ((size_t)j * L->c_out + c) * np;
            if (o->split_by_init) {
                size_t start[3] = {(size_t)j, 0, 0}, count[3] = {1, (size_t)L->h, (size_t)L->w};
                s = nc_put_vara_float(f->ncid, f->var_field[c], start, count, y);
            } else {
                size_t start[4] = {(size_t)i, (size_t)j, 0, 0}, count[4] = {1, 1, (size_t)L->h, (size_t)L->w};
                s = nc_put_vara_float(f->ncid, f->var_field[c], start, count, y);
            }
        }
    }
    if (s != NC_NOERR) st = nc_status_fail(path, "write forecast", s);
    if (o->split_by_init) {
        int cst = fc_file_close(f, st == SM_OK, path);
        if (st == SM_OK) st = cst;
    }
    return st;
}

/* One member of a forecast ensemble (--checkpoint a.nc,b.nc): its own model, configuration and
 * normalisation statistics. */
typedef struct {
    char path[4096];
    sm_config *cfg;
    sample_layout L;
    sm_model *m;
    ckpt_state cs;
} fc_member;

/* The leads of every initialisation of one batch for one member, in physical units, into
 * out (n, n_leads, C_out, H, W). */
static int member_run(fc_member *M, const dataset *ds, sample_cache *cache, const int64_t *inits, int n, const double *leads,
                      int n_leads, int max_steps, float *state, float *phys, const float **hist_ptr, float *out)
{
    const sample_layout *L = &M->L;
    sm_model *m = M->m;
    size_t np = (size_t)L->h * L->w;
    size_t hist_n = (size_t)L->history * L->n_prog;
    int st = SM_OK;
    model_set_batch(m, n);
    /* Start from the analysed history (copied: the rollout overwrites it). */
    for (int b = 0; b < n && st == SM_OK; b++) {
        const float *src[SAMPLES_MAX_VARS * 8];
        if ((st = samples_prognostic_history(L, cache, inits[b], src))) return st;
        for (size_t k = 0; k < hist_n; k++) memcpy(state + ((size_t)b * hist_n + k) * np, src[k], np * sizeof(float));
    }
    for (int j = 0; j < n_leads && L->n_leads > 0 && st == SM_OK; j++) {
        /* Direct multi-lead model: every lead straight from the analysed history. */
        for (int b = 0; b < n && st == SM_OK; b++) {
            for (size_t k = 0; k < hist_n; k++) hist_ptr[b * hist_n + k] = state + ((size_t)b * hist_n + k) * np;
            st = samples_assemble_state_lead(L, cache, ds->times[inits[b]], leads[j], hist_ptr + b * hist_n,
                                             model_input(m) + (size_t)b * L->c_in * np);
        }
        if (st || (st = model_forward(m, 0, NULL))) break;
        for (int b = 0; b < n; b++)
            samples_denormalise_lead(L, model_output(m) + (size_t)b * L->c_out * np, state + (size_t)b * hist_n * np,
                                     leads[j], out + ((size_t)b * n_leads + j) * L->c_out * np);
    }
    for (int step = 1; step <= max_steps && L->n_leads == 0 && st == SM_OK; step++) {
        for (int b = 0; b < n && st == SM_OK; b++) {
            double t0 = ds->times[inits[b]] + (step - 1) * L->step_hours;
            for (size_t k = 0; k < hist_n; k++) hist_ptr[b * hist_n + k] = state + ((size_t)b * hist_n + k) * np;
            st = samples_assemble_state(L, cache, t0, hist_ptr + b * hist_n, model_input(m) + (size_t)b * L->c_in * np);
        }
        if (st || (st = model_forward(m, 0, NULL))) break;
        for (int b = 0; b < n; b++) {
            float *y = phys + (size_t)b * L->c_out * np;
            samples_denormalise(L, model_output(m) + (size_t)b * L->c_out * np, state + (size_t)b * hist_n * np, y);
            samples_push_state(L, state + (size_t)b * hist_n * np, y);
        }
        for (int j = 0; j < n_leads; j++) {
            if ((int)round(leads[j] / L->step_hours) != step) continue;
            for (int b = 0; b < n; b++)
                memcpy(out + ((size_t)b * n_leads + j) * L->c_out * np, phys + (size_t)b * L->c_out * np,
                       sizeof(float) * (size_t)L->c_out * np);
        }
    }
    return st;
}

/* Reads a member's configuration and sample layout; every member must forecast the same way as
 * the first. */
static int member_open(fc_member *M, const char *path, const dataset *ds, const fc_member *first)
{
    snprintf(M->path, sizeof M->path, "%s", path);
    checkpoint_state_init(&M->cs);
    int st;
    if ((st = checkpoint_load_config(path, 0, NULL, &M->cfg))) return st;
    if ((st = samples_layout_init(&M->L, &M->cfg->data, ds))) {
        char why[1024];
        snprintf(why, sizeof why, "%s", sm_last_error());
        return sm_fail(st, "dataset does not fit checkpoint %s: %s", path, why);
    }
    if (first) {
        const sample_layout *a = &first->L, *b = &M->L;
        int same = a->c_in == b->c_in && a->c_out == b->c_out && a->history == b->history && a->n_leads == b->n_leads &&
                   fabs(a->step_hours - b->step_hours) < 1e-9 && fabs(a->dt_hours - b->dt_hours) < 1e-9 &&
                   a->tendency == b->tendency;
        for (int j = 0; same && j < a->n_leads; j++) same = fabs(a->leads[j] - b->leads[j]) < 1e-9;
        for (int c = 0; same && c < a->n_prog; c++) same = a->prog_var[c] == b->prog_var[c];
        for (int c = 0; same && c < a->n_diag; c++) same = a->diag_var[c] == b->diag_var[c];
        if (!same)
            return sm_fail(SM_ERR_USAGE, "--checkpoint: ensemble member %s forecasts other variables, steps, leads or history "
                           "than %s; an ensemble averages members of one configuration", path, first->path);
    }
    return SM_OK;
}

/* Builds an opened member's model for `batch` initialisations and loads its weights and
 * normalisation statistics. */
static int member_build(fc_member *M, const dataset *ds, const grid *g, int batch)
{
    const char *path = M->path;
    int st;
    if ((st = model_build(&M->cfg->model, M->L.c_in, M->L.c_out, g, batch, 0, (uint64_t)M->cfg->run.seed, &M->m))) return st;
    char in_vars[1024], out_vars[1024];
    samples_variable_lists(&M->L, ds, in_vars, sizeof in_vars, out_vars, sizeof out_vars);
    M->cs.input_variables = in_vars;
    M->cs.output_variables = out_vars;
    if ((st = checkpoint_load(path, M->m, M->cfg, g, &M->cs))) return st;
    M->cs.input_variables = M->cs.output_variables = NULL;
    return train_stats_from_checkpoint(&M->L, &M->cs, path);
}

static void member_free(fc_member *M)
{
    checkpoint_state_free_arrays(&M->cs);
    model_free(M->m);
    samples_layout_free(&M->L);
    config_free(M->cfg);
}

/* --checkpoint entries that are run directories of `smoecast train`: a seed ensemble's
 * (training.members) stands for its members' best.nc, a single run's for its best.nc. */
static int expand_checkpoints(const char *list, char *out, size_t cap)
{
    char buf[4096], *save = NULL;
    snprintf(buf, sizeof buf, "%s", list);
    out[0] = '\0';
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        struct stat sb;
        char item[8192];
        if (stat(tok, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            snprintf(item, sizeof item, "%s", tok);
        } else {
            char member[4096 + 32];
            item[0] = '\0';
            for (int i = 0;; i++) {
                if (train_member_dir(tok, i, member, sizeof member - 8)) return SM_ERR_USAGE;
                strcat(member, "/best.nc");
                if (access(member, F_OK) != 0) break;
                size_t len = strlen(item);
                snprintf(item + len, sizeof item - len, "%s%s", len ? "," : "", member);
            }
            if (!item[0]) {
                snprintf(member, sizeof member, "%s/best.nc", tok);
                if (access(member, F_OK) != 0)
                    return sm_fail(SM_ERR_IO, "--checkpoint %s: a directory without best.nc or member0/best.nc (give a "
                                   "checkpoint file or the output.dir of 'smoecast train')", tok);
                snprintf(item, sizeof item, "%s", member);
            }
        }
        size_t len = strlen(out);
        if (len + strlen(item) + 2 > cap) return sm_fail(SM_ERR_USAGE, "--checkpoint: the list of checkpoints is too long");
        if (len) out[len++] = ',';
        memcpy(out + len, item, strlen(item) + 1);
    }
    return SM_OK;
}

int forecast_run(const forecast_opts *opts, forecast_result *result)
{
    memset(result, 0, sizeof *result);
    char checkpoints[4096];
    int rc = expand_checkpoints(opts->checkpoint, checkpoints, sizeof checkpoints);
    if (rc) return rc;
    forecast_opts expanded = *opts;
    expanded.checkpoint = checkpoints;
    const forecast_opts *o = &expanded;
    dataset *ds = NULL;
    grid *g = NULL;
    sample_cache *cache = NULL;
    fc_member members[FORECAST_MAX_MEMBERS];
    int n_members = 0;
    int64_t *inits = NULL;
    float *state = NULL, *phys = NULL, *lead_buf = NULL, *member_buf = NULL;
    const float **hist_ptr = NULL;
    fc_file file;
    memset(&file, 0, sizeof file);
    char path[4096];
    snprintf(path, sizeof path, "%s", o->out);
    double leads[FORECAST_MAX_LEADS];
    int n_leads = 0, n_inits = 0, st;
    /* --checkpoint a.nc[,b.nc...]: several checkpoints are an ensemble whose mean is written
     * (members of one configuration, e.g. trained with different run.seed: averaging them
     * shrinks the seed-to-seed noise of a model trained on little data). */
    char ck_list[4096], *ck[FORECAST_MAX_MEMBERS], *save = NULL;
    snprintf(ck_list, sizeof ck_list, "%s", o->checkpoint);
    int n_ck = 0;
    for (char *tok = strtok_r(ck_list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n_ck == FORECAST_MAX_MEMBERS) return sm_fail(SM_ERR_USAGE, "--checkpoint: at most %d checkpoints", FORECAST_MAX_MEMBERS);
        ck[n_ck++] = tok;
    }
    if (n_ck == 0) return sm_fail(SM_ERR_USAGE, "--checkpoint: give a checkpoint file");

    if (o->threads > 0 || getenv("OMP_NUM_THREADS") == NULL) nn_set_threads(o->threads);
    if ((st = dataset_open(o->dataset, &ds))) goto done;
    if ((st = train_grid_from_dataset(ds, &g))) goto done;
    memset(members, 0, sizeof members);
    for (int i = 0; i < n_ck; i++) {
        n_members++;
        if ((st = member_open(&members[i], ck[i], ds, i ? &members[0] : NULL))) goto done;
    }
    /* the first member decides the leads and initialisation times (the others forecast alike) */
    const sample_layout *L0 = &members[0].L;
    if ((st = forecast_parse_leads(o->leads, leads, FORECAST_MAX_LEADS, &n_leads))) goto done;
    int max_steps = 0;
    for (int j = 0; j < n_leads; j++) {
        double k = leads[j] / L0->step_hours;
        if (L0->n_leads > 0) {
            /* A direct multi-lead model predicts each of its trained leads in one step. */
            if (samples_lead_index(L0, leads[j]) < 0) {
                char list[256] = "";
                for (int i = 0; i < L0->n_leads; i++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%gh", i ? ", " : "", L0->leads[i]);
                st = sm_fail(SM_ERR_USAGE, "--lead %gh: %s is a direct multi-lead model trained for the leads %s only", leads[j],
                             ck[0], list);
                goto done;
            }
            k = 1;
        }
        if (fabs(k - round(k)) > 1e-9) {
            st = sm_fail(SM_ERR_USAGE, "--lead %gh is not a multiple of the model step %gh of %s", leads[j], L0->step_hours, ck[0]);
            goto done;
        }
        if ((int)round(k) > max_steps) max_steps = (int)round(k);
    }
    if ((st = parse_inits(ds, L0, o->inits, &inits, &n_inits))) goto done;
    int batch = n_inits < FORECAST_BATCH ? n_inits : FORECAST_BATCH;
    for (int i = 0; i < n_members; i++)
        if ((st = member_build(&members[i], ds, g, batch))) goto done;
    if ((st = sample_cache_create(ds, &cache))) goto done;

    size_t np = (size_t)L0->h * L0->w;
    size_t hist_n = (size_t)L0->history * L0->n_prog;
    size_t lead_n = (size_t)batch * n_leads * L0->c_out * np;
    /* Per batch element: the history of raw prognostic states (ring of `history` slots). */
    state = malloc(sizeof(float) * (size_t)batch * (hist_n > 0 ? hist_n : 1) * np);
    phys = malloc(sizeof(float) * (size_t)batch * L0->c_out * np);
    lead_buf = malloc(sizeof(float) * lead_n);
    member_buf = n_members > 1 ? malloc(sizeof(float) * lead_n) : lead_buf;
    hist_ptr = malloc(sizeof *hist_ptr * (size_t)batch * (hist_n > 0 ? hist_n : 1));
    if (!state || !phys || !hist_ptr || !lead_buf || !member_buf) {
        st = sm_fail(SM_ERR_NUMERIC, "out of memory");
        goto done;
    }
    /* expert maps are those of the first member */
    const sm_model *experts_of = o->write_experts ? members[0].m : NULL;
    if (o->write_experts && model_moe_count(members[0].m) == 0) {
        st = sm_fail(SM_ERR_USAGE, "--write-experts: %s has no MoE layer", ck[0]);
        goto done;
    }
    if (!o->split_by_init && (st = fc_file_create(&file, path, ds, L0, n_inits, n_leads, 0, o->checkpoint, o->history, experts_of)))
        goto done;
    if (!o->split_by_init) {
        for (int i = 0; i < n_inits; i++) {
            size_t s0 = (size_t)i;
            double frt = ds->times[inits[i]];
            nc_put_var1_double(file.ncid, file.var_frt, &s0, &frt);
            for (int j = 0; j < n_leads; j++) {
                size_t idx2[2] = {(size_t)i, (size_t)j};
                double valid = frt + leads[j];
                nc_put_var1_double(file.ncid, file.var_time, idx2, &valid);
            }
        }
        nc_put_var_double(file.ncid, file.var_fp, leads);
    }

    progress bar;
    progress_begin(&bar, "forecast", n_inits);
    for (int first = 0; first < n_inits && st == SM_OK; first += batch) {
        int n = n_inits - first < batch ? n_inits - first : batch;
        size_t used = (size_t)n * n_leads * L0->c_out * np;
        for (int i = 0; i < n_members && st == SM_OK; i++) {
            st = member_run(&members[i], ds, cache, inits + first, n, leads, n_leads, max_steps, state, phys, hist_ptr, member_buf);
            if (st || n_members == 1) continue;
            if (i == 0) memcpy(lead_buf, member_buf, used * sizeof(float));
            else
                for (size_t k = 0; k < used; k++) lead_buf[k] += member_buf[k];
        }
        if (st) break;
        if (n_members > 1)
            for (size_t k = 0; k < used; k++) lead_buf[k] /= (float)n_members;
        for (int b = 0; b < n && st == SM_OK; b++) st = write_init(o, ds, L0, &file, first + b, inits[first + b], leads, n_leads,
                                                                  lead_buf + (size_t)b * n_leads * L0->c_out * np, path, experts_of);
        progress_update(&bar, first + n, NULL);
        if (sm_interrupted()) st = sm_fail(SM_ERR_INTERRUPTED, "interrupted; no forecast file was written");
    }
    if (st == SM_OK) progress_end(&bar);
    if (!o->split_by_init) {
        int cst = fc_file_close(&file, st == SM_OK, path);
        if (st == SM_OK) st = cst;
        result->n_files = st == SM_OK ? 1 : 0;
    } else {
        result->n_files = st == SM_OK ? n_inits : 0;
    }
    result->n_inits = n_inits;
    result->n_leads = n_leads;

done:
    if (file.open) fc_file_close(&file, 0, path);
    for (int i = 0; i < n_members; i++) member_free(&members[i]);
    free(hist_ptr);
    free(phys);
    if (member_buf != lead_buf) free(member_buf);
    free(lead_buf);
    free(state);
    free(inits);
    sample_cache_free(cache);
    grid_free(g);
    if (ds) dataset_close(ds);
    return st;
}
