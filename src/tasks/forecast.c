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
} fc_writer; /* an output file being written (temp file until committed) */

/* Defines a forecast file: split == 0: (frt, fp, y, x); split == 1: (time, y, x). */
static int fc_writer_create(fc_writer *f, const char *path, const dataset *ds, const sample_layout *L, int n_inits,
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

static int fc_writer_close(fc_writer *f, int commit, const char *path)
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
static int write_init(const forecast_opts *o, const dataset *ds, const sample_layout *L, fc_writer *shared, int i, int64_t init,
                      const double *leads, int n_leads, const float *fields, const char *shared_path, const sm_model *experts_of)
{
    size_t np = (size_t)L->h * L->w;
    double frt = ds->times[init];
    fc_writer own, *f = shared;
    char path[4096];
    snprintf(path, sizeof path, "%s", shared_path);
    int st = SM_OK, s = NC_NOERR;
    if (o->split_by_init) {
        char stamp[32];
        init_stamp(ds, frt, stamp, sizeof stamp);
        split_path(o->out, stamp, path, sizeof path);
        if ((st = fc_writer_create(&own, path, ds, L, 1, n_leads, 1, o->checkpoint, o->history, experts_of))) return st;
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
        int cst = fc_writer_close(f, st == SM_OK, path);
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
            st = samples_assemble_state(L, cache, t0, ds->times[inits[b]], hist_ptr + b * hist_n,
                                        model_input(m) + (size_t)b * L->c_in * np);
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

/* Everything one forecast run opens or allocates, filled phase by phase; fc_run_free releases it
 * whichever phase failed. The first member decides the leads and initialisation times (the
 * others forecast alike). */
typedef struct {
    forecast_opts o;                 /* the options, with --checkpoint expanded */
    forecast_result *result;
    char checkpoints[4096];          /* --checkpoint, run directories replaced by their best.nc */
    char ck_list[4096], *ck[FORECAST_MAX_MEMBERS];
    int n_ck;
    char path[4096];                 /* the shared output file */
    dataset *ds;
    grid *g;
    sample_cache *cache;
    fc_member members[FORECAST_MAX_MEMBERS];
    int n_members;                   /* members to free: every one tried, the one that failed included */
    double leads[FORECAST_MAX_LEADS];
    int n_leads, max_steps;          /* max_steps: model steps of the longest lead */
    int64_t *inits;
    int n_inits, batch;
    float *state, *phys, *lead_buf, *member_buf; /* member_buf is lead_buf for a single member */
    const float **hist_ptr;
    const sm_model *experts_of;      /* --write-experts: the first member's model */
    fc_writer file;
} fc_run;

static void fc_run_free(fc_run *R)
{
    if (R->file.open) fc_writer_close(&R->file, 0, R->path);
    for (int i = 0; i < R->n_members; i++) member_free(&R->members[i]);
    free(R->hist_ptr);
    free(R->phys);
    if (R->member_buf != R->lead_buf) free(R->member_buf);
    free(R->lead_buf);
    free(R->state);
    free(R->inits);
    sample_cache_free(R->cache);
    grid_free(R->g);
    if (R->ds) dataset_close(R->ds);
}

/* --checkpoint a.nc[,b.nc...]: several checkpoints are an ensemble whose mean is written
 * (members of one configuration, e.g. trained with different run.seed: averaging them shrinks
 * the seed-to-seed noise of a model trained on little data). */
static int fc_split_checkpoints(fc_run *R)
{
    int rc = expand_checkpoints(R->o.checkpoint, R->checkpoints, sizeof R->checkpoints);
    if (rc) return rc;
    R->o.checkpoint = R->checkpoints;
    snprintf(R->ck_list, sizeof R->ck_list, "%s", R->o.checkpoint);
    char *save = NULL;
    for (char *tok = strtok_r(R->ck_list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (R->n_ck == FORECAST_MAX_MEMBERS) return sm_fail(SM_ERR_USAGE, "--checkpoint: at most %d checkpoints", FORECAST_MAX_MEMBERS);
        R->ck[R->n_ck++] = tok;
    }
    if (R->n_ck == 0) return sm_fail(SM_ERR_USAGE, "--checkpoint: give a checkpoint file");
    return SM_OK;
}

/* The dataset, its grid and every member's configuration. */
static int fc_open_members(fc_run *R)
{
    int st;
    if (R->o.threads > 0 || getenv("OMP_NUM_THREADS") == NULL) nn_set_threads(R->o.threads);
    if ((st = dataset_open(R->o.dataset, &R->ds)) || (st = train_grid_from_dataset(R->ds, &R->g))) return st;
    for (int i = 0; i < R->n_ck; i++) {
        R->n_members++;
        if ((st = member_open(&R->members[i], R->ck[i], R->ds, i ? &R->members[0] : NULL))) return st;
    }
    return SM_OK;
}

/* --lead: multiples of the model step, or trained leads of a direct multi-lead model (each
 * predicted in one step). */
static int fc_parse_leads(fc_run *R)
{
    const sample_layout *L0 = &R->members[0].L;
    int st = forecast_parse_leads(R->o.leads, R->leads, FORECAST_MAX_LEADS, &R->n_leads);
    if (st) return st;
    for (int j = 0; j < R->n_leads; j++) {
        double k = R->leads[j] / L0->step_hours;
        if (L0->n_leads > 0) {
            if (samples_lead_index(L0, R->leads[j]) < 0) {
                char list[256] = "";
                for (int i = 0; i < L0->n_leads; i++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%gh", i ? ", " : "", L0->leads[i]);
                return sm_fail(SM_ERR_USAGE, "--lead %gh: %s is a direct multi-lead model trained for the leads %s only", R->leads[j],
                               R->ck[0], list);
            }
            k = 1;
        }
        if (fabs(k - round(k)) > 1e-9)
            return sm_fail(SM_ERR_USAGE, "--lead %gh is not a multiple of the model step %gh of %s", R->leads[j], L0->step_hours, R->ck[0]);
        if ((int)round(k) > R->max_steps) R->max_steps = (int)round(k);
    }
    return SM_OK;
}

/* Per batch element: the history of raw prognostic states (ring of `history` slots), one step's
 * physical output, and the forecasts of every lead (of one member and of the mean). */
static int fc_alloc(fc_run *R)
{
    const sample_layout *L0 = &R->members[0].L;
    size_t np = (size_t)L0->h * L0->w;
    size_t hist_n = (size_t)L0->history * L0->n_prog;
    size_t lead_n = (size_t)R->batch * R->n_leads * L0->c_out * np;
    R->state = malloc(sizeof(float) * (size_t)R->batch * (hist_n > 0 ? hist_n : 1) * np);
    R->phys = malloc(sizeof(float) * (size_t)R->batch * L0->c_out * np);
    R->lead_buf = malloc(sizeof(float) * lead_n);
    R->member_buf = R->n_members > 1 ? malloc(sizeof(float) * lead_n) : R->lead_buf;
    R->hist_ptr = malloc(sizeof *R->hist_ptr * (size_t)R->batch * (hist_n > 0 ? hist_n : 1));
    if (!R->state || !R->phys || !R->hist_ptr || !R->lead_buf || !R->member_buf) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    return SM_OK;
}

/* Initialisation times, the members' models and weights for one batch, the sample cache and
 * the buffers. */
static int fc_prepare(fc_run *R)
{
    int st = parse_inits(R->ds, &R->members[0].L, R->o.inits, &R->inits, &R->n_inits);
    if (st) return st;
    R->batch = R->n_inits < FORECAST_BATCH ? R->n_inits : FORECAST_BATCH;
    for (int i = 0; i < R->n_members; i++)
        if ((st = member_build(&R->members[i], R->ds, R->g, R->batch))) return st;
    if ((st = sample_cache_create(R->ds, &R->cache))) return st;
    return fc_alloc(R);
}

/* The shared file with its time coordinates (--split-by init: write_init makes one file per
 * initialisation); the expert maps are those of the first member. */
static int fc_open_output(fc_run *R)
{
    const forecast_opts *o = &R->o;
    R->experts_of = o->write_experts ? R->members[0].m : NULL;
    if (o->write_experts && model_moe_count(R->members[0].m) == 0)
        return sm_fail(SM_ERR_USAGE, "--write-experts: %s has no MoE layer", R->ck[0]);
    if (o->split_by_init) return SM_OK;
    fc_writer *file = &R->file;
    int st = fc_writer_create(file, R->path, R->ds, &R->members[0].L, R->n_inits, R->n_leads, 0, o->checkpoint, o->history, R->experts_of);
    if (st) return st;
    for (int i = 0; i < R->n_inits; i++) {
        size_t s0 = (size_t)i;
        double frt = R->ds->times[R->inits[i]];
        nc_put_var1_double(file->ncid, file->var_frt, &s0, &frt);
        for (int j = 0; j < R->n_leads; j++) {
            size_t idx2[2] = {(size_t)i, (size_t)j};
            double valid = frt + R->leads[j];
            nc_put_var1_double(file->ncid, file->var_time, idx2, &valid);
        }
    }
    nc_put_var_double(file->ncid, file->var_fp, R->leads);
    return SM_OK;
}

/* The n initialisations from `first`: every member's forecast, their mean into lead_buf. */
static int fc_forecast_batch(fc_run *R, int first, int n)
{
    const sample_layout *L0 = &R->members[0].L;
    size_t np = (size_t)L0->h * L0->w;
    size_t used = (size_t)n * R->n_leads * L0->c_out * np;
    int st = SM_OK;
    for (int i = 0; i < R->n_members && st == SM_OK; i++) {
        st = member_run(&R->members[i], R->ds, R->cache, R->inits + first, n, R->leads, R->n_leads, R->max_steps, R->state, R->phys,
                        R->hist_ptr, R->member_buf);
        if (st || R->n_members == 1) continue;
        if (i == 0) memcpy(R->lead_buf, R->member_buf, used * sizeof(float));
        else
            for (size_t k = 0; k < used; k++) R->lead_buf[k] += R->member_buf[k];
    }
    if (st) return st;
    if (R->n_members > 1)
        for (size_t k = 0; k < used; k++) R->lead_buf[k] /= (float)R->n_members;
    return SM_OK;
}

/* Every initialisation, batch by batch, forecast and written. */
static int fc_forecast_all(fc_run *R)
{
    const sample_layout *L0 = &R->members[0].L;
    size_t np = (size_t)L0->h * L0->w;
    int st = SM_OK;
    progress bar;
    progress_begin(&bar, "forecast", R->n_inits);
    for (int first = 0; first < R->n_inits && st == SM_OK; first += R->batch) {
        int n = R->n_inits - first < R->batch ? R->n_inits - first : R->batch;
        if ((st = fc_forecast_batch(R, first, n))) break;
        for (int b = 0; b < n && st == SM_OK; b++)
            st = write_init(&R->o, R->ds, L0, &R->file, first + b, R->inits[first + b], R->leads, R->n_leads,
                            R->lead_buf + (size_t)b * R->n_leads * L0->c_out * np, R->path, R->experts_of);
        progress_update(&bar, first + n, NULL);
        if (sm_interrupted()) st = sm_fail(SM_ERR_INTERRUPTED, "interrupted; no forecast file was written");
    }
    if (st == SM_OK) progress_end(&bar);
    return st;
}

/* Commits the shared file (aborts it after a failure, status st) and reports what was written. */
static int fc_finish(fc_run *R, int st)
{
    if (!R->o.split_by_init) {
        int cst = fc_writer_close(&R->file, st == SM_OK, R->path);
        if (st == SM_OK) st = cst;
        R->result->n_files = st == SM_OK ? 1 : 0;
    } else {
        R->result->n_files = st == SM_OK ? R->n_inits : 0;
    }
    R->result->n_inits = R->n_inits;
    R->result->n_leads = R->n_leads;
    return st;
}

int forecast_run(const forecast_opts *opts, forecast_result *result)
{
    memset(result, 0, sizeof *result);
    fc_run R;
    memset(&R, 0, sizeof R);
    R.o = *opts;
    R.result = result;
    snprintf(R.path, sizeof R.path, "%s", opts->out);
    int st = fc_split_checkpoints(&R);
    if (!st) st = fc_open_members(&R);
    if (!st) st = fc_parse_leads(&R);
    if (!st) st = fc_prepare(&R);
    if (!st) st = fc_open_output(&R);
    if (!st) {
        st = fc_forecast_all(&R);
        st = fc_finish(&R, st);
    }
    fc_run_free(&R);
    return st;
}
