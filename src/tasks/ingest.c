/* smoecast ingest: one streaming pass over the inputs (each message parsed once: select, decode,
 * put on the output grid, append to a scratch file; the inputs' sha256 computed alongside in a
 * second thread), then the dataset is written from the scratch file in (variable, time, member)
 * order, with duplicate checks. */
#include "tasks/ingest.h"
#include "core/log.h"
#include "core/outfile.h"
#include "data/dataset.h"
#include "grid/grid.h"
#include "grid/regrid.h"
#include "io/cf_time.h"
#include "io/field.h"
#include "io/grib_reader.h"
#include "io/netcdf_reader.h"
#include "io/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_WEIGHTS 16

typedef struct {
    int file;
    int msg;          /* GRIB field number, or NetCDF time index + 1 */
    int sel;
    int member;       /* member number (-1 none) */
    int64_t scratch;  /* field index in the scratch file */
    double valid, ref, period;
    int has_time;
    int t;            /* slot after sorting */
    int m;            /* member index */
} entry;

typedef struct {
    var_selector sel;
    field_meta meta;       /* first field's metadata */
    int n_entries;
    int has_members, any_no_member;
    int is_static;
    int categorical;
    src_geometry *geom;    /* geometry of the first field */
    char geom_file[512];
    int geom_msg;
    char absent[600];      /* why a NetCDF input did not have it */
} selvar;

typedef struct {
    const ingest_options *opt;
    int nsel;
    selvar *sv;
    entry *e;
    size_t ne, cap;
    /* format per file */
    int *fmt;        /* 1 GRIB, 2 NetCDF */
    char *inputs_text;
    size_t inputs_len;
    char (*hex)[65];  /* sha256 of each input */
    /* time axis */
    double *times, *refs, *periods;
    int ntimes;
    char calendar[32];
    int time_is_index;
    int *members;
    int nmembers;
    /* output grid */
    int nlat, nlon;
    double *lat, *lon;
    int flip_rows;   /* native: source rows south -> north */
    grid *target;    /* NULL for --grid native */
    regrid_method method;
    /* weights, computed once per (source geometry, method) */
    src_geometry *wgeom[MAX_WEIGHTS];
    regrid_method wmethod[MAX_WEIGHTS];
    regrid_weights *weights[MAX_WEIGHTS];
    int nweights;
    int have_grid;
    src_geometry *native_geom; /* --grid native: the source grid every field must be on */
    /* scratch file of output-grid fields in input order */
    outfile scratch;
    int scratch_fd;
    int64_t nscratch;
    char *wbuf;          /* scratch writes are gathered here and written in large blocks */
    size_t wcap, wlen;
    int64_t wfirst;      /* scratch index of the first field in wbuf */
    float *fbuf, *fcheck;
    dataset_writer *w;
    ingest_report *rep;
} ingest_ctx;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int add_entry(ingest_ctx *c, const entry *e)
{
    if (c->ne == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 256;
        entry *ne = realloc(c->e, nc * sizeof *ne);
        if (!ne) return sm_fail(SM_ERR_NUMERIC, "out of memory for the field index (%zu fields)", c->ne);
        c->e = ne;
        c->cap = nc;
    }
    c->e[c->ne++] = *e;
    return SM_OK;
}

static int copy_geometry(const src_geometry *g, src_geometry **out)
{
    return io_geometry_rows(g->nrows, g->lat, g->row_len, g->lon0, g->dlon, g->grid_type, out);
}

/* Registers the geometry of a field of selector k; different grids for one variable need a
 * target grid. */
static int note_geometry(ingest_ctx *c, int k, const src_geometry *g, const char *file, int msg)
{
    selvar *s = &c->sv[k];
    if (!s->geom) {
        snprintf(s->geom_file, sizeof s->geom_file, "%s", file);
        s->geom_msg = msg;
        return copy_geometry(g, &s->geom);
    }
    if (geometry_same(s->geom, g)) return SM_OK;
    if (!strcmp(c->opt->grid, "native"))
        return sm_fail(SM_ERR_IO, "%s: message %d: variable %s is on a different grid (%s, %d rows) than in %s message %d (%s, %d rows); "
                                  "choose a target grid with --grid NAME",
                       file, msg, s->sel.out_name, g->grid_type, g->nrows, s->geom_file, s->geom_msg, s->geom->grid_type, s->geom->nrows);
    return SM_OK;
}

static int note_meta(ingest_ctx *c, int k, const field_meta *m)
{
    selvar *s = &c->sv[k];
    if (s->n_entries == 0) s->meta = *m;
    s->n_entries++;
    if (m->member >= 0) s->has_members = 1;
    else s->any_no_member = 1;
    return SM_OK;
}

/* Output grid for --grid native: the first selected field's regular lat-lon grid. */
static int native_grid_from(ingest_ctx *c, const src_geometry *g, int k, const char *path, int msg)
{
    if (!g->is_regular)
        return sm_fail(SM_ERR_IO, "%s: message %d: variable %s is on a %s grid, which --grid native cannot keep; choose a regular "
                                  "target grid with --grid NAME",
                       path, msg, c->sv[k].sel.out_name, g->grid_type);
    c->nlat = g->nrows;
    c->nlon = g->row_len[0];
    c->lat = malloc((size_t)c->nlat * sizeof *c->lat);
    c->lon = malloc((size_t)c->nlon * sizeof *c->lon);
    if (!c->lat || !c->lon) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    int st = copy_geometry(g, &c->native_geom);
    if (st) return st;
    c->flip_rows = c->nlat > 1 && g->lat[1] > g->lat[0];
    for (int j = 0; j < c->nlat; j++) c->lat[j] = g->lat[c->flip_rows ? c->nlat - 1 - j : j];
    double lon0 = io_lon0_canonical(g->lon0[0], c->nlon, g->dlon[0]);
    for (int i = 0; i < c->nlon; i++) c->lon[i] = lon0 + i * g->dlon[0];
    return SM_OK;
}

static int same_calendar(const char *a, const char *b)
{
    cf_calendar ca, cb;
    if (cf_calendar_parse(a, &ca) || cf_calendar_parse(b, &cb)) return 0;
    if ((ca == CAL_STANDARD || ca == CAL_PROLEPTIC) && (cb == CAL_STANDARD || cb == CAL_PROLEPTIC)) return 1;
    return ca == cb;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int find_time(const ingest_ctx *c, double v)
{
    int lo = 0, hi = c->ntimes - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (fabs(c->times[mid] - v) < 0.5 / 3600.0) return mid;
        if (c->times[mid] < v) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* A variable given at one single time while others have several (a land-sea mask or orography
 * retrieved once) is an invariant: its entries lose their time, it is stored as a static field. */
static int mark_invariants(ingest_ctx *c)
{
    double *t_first = malloc((size_t)c->nsel * sizeof *t_first);
    int *multi = calloc((size_t)c->nsel, sizeof *multi), *timed = calloc((size_t)c->nsel, sizeof *timed);
    if (!t_first || !multi || !timed) {
        free(t_first);
        free(multi);
        free(timed);
        return sm_fail(SM_ERR_NUMERIC, "out of memory");
    }
    int any_multi = 0;
    for (size_t i = 0; i < c->ne; i++) {
        const entry *e = &c->e[i];
        if (!e->has_time) continue;
        if (!timed[e->sel]) {
            timed[e->sel] = 1;
            t_first[e->sel] = e->valid;
        } else if (fabs(e->valid - t_first[e->sel]) >= 0.5 / 3600.0) {
            multi[e->sel] = 1;
            any_multi = 1;
        }
    }
    for (int k = 0; k < c->nsel && any_multi; k++) {
        if (!timed[k] || multi[k]) continue;
        log_info("variable %s: given at a single time while other variables have several; stored as a static field",
                 c->sv[k].sel.out_name);
        for (size_t i = 0; i < c->ne; i++)
            if (c->e[i].sel == k) c->e[i].has_time = 0;
    }
    free(t_first);
    free(multi);
    free(timed);
    return SM_OK;
}

/* times: sorted unique valid times of the time-dependent entries (one placeholder when every
 * field is static); their reference times and periods start unknown. */
static int build_times(ingest_ctx *c)
{
    size_t nt = 0;
    for (size_t i = 0; i < c->ne; i++) nt += c->e[i].has_time;
    c->times = malloc((nt ? nt : 1) * sizeof *c->times);
    if (!c->times) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    nt = 0;
    for (size_t i = 0; i < c->ne; i++)
        if (c->e[i].has_time) c->times[nt++] = c->e[i].valid;
    qsort(c->times, nt, sizeof *c->times, cmp_double);
    int u = 0;
    for (size_t i = 0; i < nt; i++)
        if (u == 0 || fabs(c->times[i] - c->times[u - 1]) >= 0.5 / 3600.0) c->times[u++] = c->times[i];
    if (u == 0) c->times[u++] = 0.0; /* only static fields: one placeholder time */
    c->ntimes = u;
    c->refs = malloc((size_t)u * sizeof *c->refs);
    c->periods = malloc((size_t)u * sizeof *c->periods);
    if (!c->refs || !c->periods) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    for (int t = 0; t < u; t++) c->refs[t] = c->periods[t] = NAN;
    return SM_OK;
}

/* members: sorted unique member numbers; a variable has one on every field or on none. */
static int build_members(ingest_ctx *c)
{
    int *mem = malloc((c->ne ? c->ne : 1) * sizeof *mem);
    if (!mem) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    int nm = 0;
    for (size_t i = 0; i < c->ne; i++)
        if (c->e[i].member >= 0) mem[nm++] = c->e[i].member;
    qsort(mem, (size_t)nm, sizeof *mem, cmp_int);
    int um = 0;
    for (int i = 0; i < nm; i++)
        if (um == 0 || mem[i] != mem[um - 1]) mem[um++] = mem[i];
    c->members = mem;
    c->nmembers = um;
    for (int k = 0; k < c->nsel; k++) {
        selvar *s = &c->sv[k];
        if (s->has_members && s->any_no_member)
            return sm_fail(SM_ERR_IO, "variable %s: some fields have an ensemble member number and others do not", s->sel.out_name);
    }
    return SM_OK;
}

/* Static variables (no entry with a time), each entry's time and member slot, and the
 * reference time and period of each valid time (from its first forecast field). */
static void place_entries(ingest_ctx *c)
{
    for (int k = 0; k < c->nsel; k++) c->sv[k].is_static = 1;
    for (size_t i = 0; i < c->ne; i++)
        if (c->e[i].has_time) c->sv[c->e[i].sel].is_static = 0;
    for (size_t i = 0; i < c->ne; i++) {
        entry *e = &c->e[i];
        e->t = e->has_time ? find_time(c, e->valid) : 0;
        e->m = 0;
        if (e->member >= 0) {
            int *p = bsearch(&e->member, c->members, (size_t)c->nmembers, sizeof *c->members, cmp_int);
            e->m = (int)(p - c->members);
        }
        if (e->has_time && isfinite(e->ref)) {
            if (!isfinite(c->refs[e->t])) {
                c->refs[e->t] = e->ref;
                c->periods[e->t] = e->period;
            } else if (fabs(c->refs[e->t] - e->ref) > 1e-6) {
                log_debug("%s: message %d: forecast_reference_time differs from another field at the same valid time; keeping the first",
                          c->opt->inputs[e->file], e->msg);
            }
        }
    }
}

/* The dataset's time and member axes and every entry's place on them. */
static int build_axes(ingest_ctx *c)
{
    int st = mark_invariants(c);
    if (!st) st = build_times(c);
    if (!st) st = build_members(c);
    if (!st) place_entries(c);
    return st;
}

static int build_target_grid(ingest_ctx *c)
{
    grid *g = c->target;
    c->nlat = g->nlat;
    c->nlon = g->nlon;
    c->lat = malloc((size_t)c->nlat * sizeof *c->lat);
    c->lon = malloc((size_t)c->nlon * sizeof *c->lon);
    if (!c->lat || !c->lon) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    memcpy(c->lat, g->lat, (size_t)c->nlat * sizeof *c->lat);
    memcpy(c->lon, g->lon, (size_t)c->nlon * sizeof *c->lon);
    return SM_OK;
}

/* The weights for fields on geometry `g` with `method`, computed on first use. */
static int get_weights(ingest_ctx *c, const src_geometry *g, regrid_method method, const char *path, int msg, const regrid_weights **out)
{
    for (int k = 0; k < c->nweights; k++)
        if (c->wmethod[k] == method && geometry_same(c->wgeom[k], g)) {
            *out = c->weights[k];
            return SM_OK;
        }
    if (c->nweights == MAX_WEIGHTS) {
        /* many different source grids: recycle the oldest slot */
        geometry_free(c->wgeom[0]);
        regrid_weights_free(c->weights[0]);
        memmove(c->wgeom, c->wgeom + 1, (MAX_WEIGHTS - 1) * sizeof *c->wgeom);
        memmove(c->wmethod, c->wmethod + 1, (MAX_WEIGHTS - 1) * sizeof *c->wmethod);
        memmove(c->weights, c->weights + 1, (MAX_WEIGHTS - 1) * sizeof *c->weights);
        c->nweights--;
    }
    int k = c->nweights;
    int st = copy_geometry(g, &c->wgeom[k]);
    if (st) return st;
    st = regrid_weights_create(g, c->target, method, &c->weights[k]);
    if (st) {
        geometry_free(c->wgeom[k]);
        return sm_fail(st, "%s: message %d: %s", path, msg, sm_last_error());
    }
    c->wmethod[k] = method;
    c->nweights++;
    *out = c->weights[k];
    return SM_OK;
}

/* Source values (canonical rows) -> output field (native: row order only). */
static void to_output(const ingest_ctx *c, const double *v, float *out)
{
    int nlat = c->nlat, nlon = c->nlon;
    for (int j = 0; j < nlat; j++) {
        const double *row = v + (size_t)(c->flip_rows ? nlat - 1 - j : j) * nlon;
        float *dst = out + (size_t)j * nlon;
        for (int i = 0; i < nlon; i++) dst[i] = (float)row[i];
    }
}

static int all_nan(const double *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isnan(v[i])) return 0;
    return 1;
}

static int yaml_list(char **buf, size_t *len, size_t *cap, const char *key, const char *const *items, int n)
{
    size_t need = strlen(key) + 16;
    for (int i = 0; i < n; i++) need += strlen(items[i]) * 2 + 8;
    if (*len + need + 1 > *cap) {
        size_t nc = (*cap + need) * 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return -1;
        *buf = nb;
        *cap = nc;
    }
    *len += (size_t)sprintf(*buf + *len, "  %s: [", key);
    for (int i = 0; i < n; i++) {
        *len += (size_t)sprintf(*buf + *len, "%s\"", i ? ", " : "");
        for (const char *p = items[i]; *p; p++) {
            if (*p == '"' || *p == '\\') (*buf)[(*len)++] = '\\';
            (*buf)[(*len)++] = *p;
        }
        (*buf)[(*len)++] = '"';
    }
    *len += (size_t)sprintf(*buf + *len, "]\n");
    return 0;
}

char *ingest_options_yaml(const ingest_options *o)
{
    size_t cap = 1024, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    len += (size_t)sprintf(buf, "ingest:\n");
    if (yaml_list(&buf, &len, &cap, "inputs", o->inputs, o->n_inputs) ||
        yaml_list(&buf, &len, &cap, "variables", o->variables, o->n_variables) ||
        yaml_list(&buf, &len, &cap, "categorical", o->categorical, o->n_categorical)) {
        free(buf);
        return NULL;
    }
    const char *scalars[3] = {o->grid, o->method ? o->method : "bilinear", o->output};
    if (yaml_list(&buf, &len, &cap, "grid", scalars, 1) || yaml_list(&buf, &len, &cap, "method", scalars + 1, 1) ||
        yaml_list(&buf, &len, &cap, "output", scalars + 2, 1)) {
        free(buf);
        return NULL;
    }
    /* scalars were written as one-element lists by the helper; rewrite them as plain values */
    char *out = malloc(cap + 64);
    if (!out) {
        free(buf);
        return NULL;
    }
    size_t ol = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "  grid: [", 9) || !strncmp(line, "  method: [", 11) || !strncmp(line, "  output: [", 11)) {
            char *open = strchr(line, '['), *close = strrchr(line, ']');
            *open = '\0';
            *close = '\0';
            ol += (size_t)sprintf(out + ol, "%s%s\n", line, open + 1);
        } else {
            ol += (size_t)sprintf(out + ol, "%s\n", line);
        }
    }
    ol += (size_t)sprintf(out + ol, "  skip_bad: %s\n", o->skip_bad ? "true" : "false");
    free(buf);
    return out;
}

static void ctx_free(ingest_ctx *c)
{
    for (int k = 0; c->sv && k < c->nsel; k++) geometry_free(c->sv[k].geom);
    free(c->sv);
    free(c->e);
    free(c->fmt);
    free(c->inputs_text);
    free(c->hex);
    free(c->times);
    free(c->refs);
    free(c->periods);
    free(c->members);
    free(c->lat);
    free(c->lon);
    if (c->scratch_fd >= 0) close(c->scratch_fd);
    geometry_free(c->native_geom);
    outfile_abort(&c->scratch);
    free(c->fbuf);
    free(c->fcheck);
    free(c->wbuf);
    for (int k = 0; k < c->nweights; k++) {
        geometry_free(c->wgeom[k]);
        regrid_weights_free(c->weights[k]);
    }
    grid_free(c->target);
    if (c->w) dataset_writer_abort(c->w);
}


static int scratch_open(ingest_ctx *c)
{
    char name[PATH_MAX];
    if (snprintf(name, sizeof name, "%s.scratch", c->opt->output) >= (int)sizeof name)
        return sm_fail(SM_ERR_IO, "%s: output path too long", c->opt->output);
    int st = outfile_begin(&c->scratch, name);
    if (st) return st;
    c->scratch_fd = open(c->scratch.tmp_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (c->scratch_fd < 0)
        return sm_fail(SM_ERR_IO, "%s: cannot create the scratch file %s: %s", c->opt->output, c->scratch.tmp_path, strerror(errno));
    unlink(c->scratch.tmp_path); /* space is freed when the descriptor closes, whatever happens */
    return SM_OK;
}

static int scratch_io(ingest_ctx *c, int64_t idx, float *buf, int write_it)
{
    size_t bytes = (size_t)c->nlat * (size_t)c->nlon * sizeof(float);
    off_t off = (off_t)idx * (off_t)bytes;
    size_t done = 0;
    while (done < bytes) {
        ssize_t n = write_it ? pwrite(c->scratch_fd, (char *)buf + done, bytes - done, off + (off_t)done)
                             : pread(c->scratch_fd, (char *)buf + done, bytes - done, off + (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return sm_fail(SM_ERR_IO, "%s: scratch file %s failed (%s); is the disk full?", c->opt->output, write_it ? "write" : "read",
                           n < 0 ? strerror(errno) : "short read");
        done += (size_t)n;
    }
    return SM_OK;
}

#define SCRATCH_BLOCK ((size_t)1 << 20)

/* Writes the gathered fields to the scratch file (one pwrite per block instead of one per field). */
static int scratch_flush(ingest_ctx *c)
{
    size_t done = 0;
    off_t off = (off_t)c->wfirst * (off_t)((size_t)c->nlat * (size_t)c->nlon * sizeof(float));
    while (done < c->wlen) {
        ssize_t n = pwrite(c->scratch_fd, c->wbuf + done, c->wlen - done, off + (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return sm_fail(SM_ERR_IO, "%s: scratch file write failed (%s); is the disk full?", c->opt->output,
                           n < 0 ? strerror(errno) : "short write");
        done += (size_t)n;
    }
    c->wlen = 0;
    return SM_OK;
}

/* Appends field `idx` (always the next one) to the scratch file through the block buffer. */
static int scratch_put(ingest_ctx *c, int64_t idx, const float *field)
{
    size_t bytes = (size_t)c->nlat * (size_t)c->nlon * sizeof(float);
    if (!c->wbuf && bytes <= SCRATCH_BLOCK / 2) {
        c->wbuf = malloc(SCRATCH_BLOCK);
        if (c->wbuf) c->wcap = SCRATCH_BLOCK;
    }
    if (!c->wbuf || bytes > c->wcap) return scratch_io(c, idx, (float *)field, 1);
    int st;
    if (c->wlen && (c->wlen + bytes > c->wcap || idx != c->wfirst + (int64_t)(c->wlen / bytes)))
        if ((st = scratch_flush(c))) return st;
    if (c->wlen == 0) c->wfirst = idx;
    memcpy(c->wbuf + c->wlen, field, bytes);
    c->wlen += bytes;
    return SM_OK;
}

/* One selected field: checks, output grid, scratch. */
static int take_field(ingest_ctx *c, int f, int k, const field_meta *m, const src_geometry *g, const double *v)
{
    const char *path = c->opt->inputs[f];
    selvar *s = &c->sv[k];
    int st;
    if ((st = note_geometry(c, k, g, path, m->msg))) return st;
    if (!c->have_grid) {
        if ((st = native_grid_from(c, g, k, path, m->msg))) return st;
        c->have_grid = 1;
    }
    if (!c->fbuf) {
        c->fbuf = malloc((size_t)c->nlat * (size_t)c->nlon * sizeof *c->fbuf);
        c->fcheck = malloc((size_t)c->nlat * (size_t)c->nlon * sizeof *c->fcheck);
        if (!c->fbuf || !c->fcheck) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    }
    if (all_nan(v, g->row_start[g->nrows])) {
        if (c->opt->skip_bad) {
            log_warn("%s: message %d: variable %s: every point is missing (skipped)", path, m->msg, s->sel.out_name);
            c->rep->n_skipped++;
            return SM_OK;
        }
        return sm_fail(SM_ERR_IO, "%s: message %d: variable %s: every point is missing (all NaN); use --skip-bad to leave it out", path,
                       m->msg, s->sel.out_name);
    }
    if (c->target) {
        const regrid_weights *w = NULL;
        if ((st = get_weights(c, g, s->categorical ? REGRID_NEAREST : c->method, path, m->msg, &w))) return st;
        regrid_apply(w, v, c->fbuf);
    } else {
        if (g->nrows != c->nlat || g->row_len[0] != c->nlon || !c->native_geom || !geometry_same(g, c->native_geom))
            return sm_fail(SM_ERR_IO, "%s: message %d: variable %s is on a different grid than the first field; choose a target grid "
                                      "with --grid NAME",
                           path, m->msg, s->sel.out_name);
        to_output(c, v, c->fbuf);
    }
    if ((st = scratch_put(c, c->nscratch, c->fbuf))) return st;
    note_meta(c, k, m);
    entry e = {.file = f, .msg = m->msg, .sel = k, .member = m->member, .scratch = c->nscratch, .valid = m->valid_time,
               .ref = m->reference_time, .period = m->forecast_period, .has_time = m->has_time};
    c->nscratch++;
    if (c->calendar[0] == '\0' && m->has_time) {
        snprintf(c->calendar, sizeof c->calendar, "%s", m->calendar);
        c->time_is_index = m->time_is_index;
    } else if (m->has_time && (!same_calendar(c->calendar, m->calendar) || c->time_is_index != m->time_is_index)) {
        return sm_fail(SM_ERR_IO, "%s: variable %s: time axis (%s%s) is incompatible with the other inputs (%s%s)", path, s->sel.out_name,
                       m->time_is_index ? "unitless " : "", m->calendar, c->time_is_index ? "unitless " : "", c->calendar);
    }
    return add_entry(c, &e);
}

static int pass_grib(ingest_ctx *c, int f)
{
    const char *path = c->opt->inputs[f];
    grib_reader *r;
    int st = grib_reader_open(path, &r);
    if (st) return st;
    /* only the concept the selectors compare (paramId or shortName) for every field; the rest for
     * the fields we keep */
    int by_id = 0, by_name = 0;
    for (int k = 0; k < c->nsel; k++) {
        if (c->sv[k].sel.param_id > 0) by_id = 1;
        else by_name = 1;
    }
    grib_reader_set_lazy(r, by_id && by_name ? GRIB_DESCRIBE_IDS : by_id ? GRIB_DESCRIBE_PARAM_ID : GRIB_DESCRIBE_SHORT_NAME);
    for (;;) {
        if (sm_interrupted()) {
            st = sm_fail(SM_ERR_INTERRUPTED, "%s: interrupted", path);
            break;
        }
        field_meta m;
        int done;
        st = grib_reader_next(r, &m, &done);
        if (st) {
            if (!c->opt->skip_bad || !grib_reader_recoverable(r)) break;
            log_warn("%s (skipped)", sm_last_error());
            c->rep->n_skipped++;
            sm_clear_error();
            st = SM_OK;
            continue;
        }
        if (done) break;
        const double *v = NULL;
        const src_geometry *g = NULL;
        for (int k = 0; k < c->nsel && !st; k++) {
            if (!var_selector_match(&c->sv[k].sel, &m)) continue;
            if (!v) st = grib_reader_describe(r, &m);
            if (!v && !st) st = grib_reader_decode(r, &v, &g);
            if (!st) st = take_field(c, f, k, &m, g, v);
        }
        if (st) break;
    }
    grib_reader_close(r);
    return st;
}

static int pass_netcdf(ingest_ctx *c, int f)
{
    const char *path = c->opt->inputs[f];
    nc_reader *r;
    int st = nc_reader_open(path, &r);
    if (st) return st;
    for (int k = 0; k < c->nsel && !st; k++) {
        nc_var *v;
        st = nc_var_open(r, &c->sv[k].sel, &v);
        if (st) {
            /* a variable absent from this file may come from another input */
            if (strstr(sm_last_error(), ": not in the file")) {
                snprintf(c->sv[k].absent, sizeof c->sv[k].absent, "%s", sm_last_error());
                sm_clear_error();
                st = SM_OK;
            }
            continue;
        }
        for (int t = 0; t < nc_var_ntimes(v) && !st; t++)
            for (int mm = 0; mm < nc_var_nmembers(v) && !st; mm++) {
                if (sm_interrupted()) {
                    st = sm_fail(SM_ERR_INTERRUPTED, "%s: interrupted", path);
                    break;
                }
                field_meta m;
                const double *vals;
                nc_var_field_meta(v, t, mm, &m);
                if ((st = nc_var_read(v, t, mm, &vals))) break;
                st = take_field(c, f, k, &m, nc_var_geometry(v), vals);
            }
        nc_var_close(v);
    }
    nc_reader_close(r);
    return st;
}

static int cmp_entry_slot(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->sel != y->sel) return (x->sel > y->sel) - (x->sel < y->sel);
    if (x->t != y->t) return (x->t > y->t) - (x->t < y->t);
    if (x->m != y->m) return (x->m > y->m) - (x->m < y->m);
    return (x->scratch > y->scratch) - (x->scratch < y->scratch);
}

/* Writes every field from the scratch file in (variable, time, member) order. */
static int write_dataset(ingest_ctx *c)
{
    int st;
    if (c->wlen && (st = scratch_flush(c))) return st;
    qsort(c->e, c->ne, sizeof *c->e, cmp_entry_slot);
    size_t n = (size_t)c->nlat * (size_t)c->nlon;
    cf_calendar cal = CAL_STANDARD;
    cf_calendar_parse(c->calendar, &cal);
    for (size_t i = 0; i < c->ne; i++) {
        if (sm_interrupted()) return sm_fail(SM_ERR_INTERRUPTED, "%s: interrupted", c->opt->output);
        const entry *e = &c->e[i];
        const selvar *s = &c->sv[e->sel];
        int tt = s->is_static ? 0 : e->t;
        int dup = i > 0 && c->e[i - 1].sel == e->sel && c->e[i - 1].t == e->t && c->e[i - 1].m == e->m;
        if ((st = scratch_io(c, e->scratch, dup ? c->fcheck : c->fbuf, 0))) return st;
        if (dup) {
            int same = 1;
            for (size_t p = 0; p < n && same; p++) {
                float a = c->fbuf[p], b = c->fcheck[p];
                if (!(a == b || (isnan(a) && isnan(b)))) same = 0;
            }
            char when[64];
            if (c->time_is_index || s->is_static) snprintf(when, sizeof when, "%g", c->times[tt]);
            else cf_format_hours(c->times[tt], cal, when, sizeof when);
            char mem[32] = "";
            if (e->member >= 0) snprintf(mem, sizeof mem, " member %d", e->member);
            const entry *first = &c->e[i - 1];
            while (first > c->e && first[-1].sel == e->sel && first[-1].t == e->t && first[-1].m == e->m) first--;
            if (!same)
                return sm_fail(SM_ERR_IO, "%s: message %d: variable %s at %s%s: conflicting duplicate of %s message %d (same time and "
                                          "member, different values)",
                               c->opt->inputs[e->file], e->msg, s->sel.out_name, when, mem, c->opt->inputs[first->file], first->msg);
            if (c->rep->n_duplicates < 3)
                log_warn("%s: message %d: variable %s at %s%s: exact duplicate of %s message %d dropped", c->opt->inputs[e->file],
                         e->msg, s->sel.out_name, when, mem, c->opt->inputs[first->file], first->msg);
            c->rep->n_duplicates++;
            continue;
        }
        if ((st = dataset_writer_put(c->w, e->sel, tt, e->m, c->fbuf))) return st;
        c->rep->n_fields++;
    }
    if (c->rep->n_duplicates > 3)
        log_warn("%d exact duplicate fields dropped in total (only the first 3 are listed)", c->rep->n_duplicates);
    return SM_OK;
}

/* The sha256 of every input (provenance) is computed in a second thread while the main thread
 * decodes; both read the same files, the second read comes from the page cache. The thread never
 * touches the error state: it leaves its message in `err` for the main thread. */
typedef struct {
    const ingest_options *opt;
    char (*hex)[65];
    atomic_int cancel;
    int st;
    char err[1200];
} input_hasher;

static int hash_one(input_hasher *hs, const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(hs->err, sizeof hs->err, "%s: cannot open: %s", path, strerror(errno));
        return SM_ERR_IO;
    }
    enum { CHUNK = 1 << 18 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        snprintf(hs->err, sizeof hs->err, "%s: out of memory while hashing", path);
        return SM_ERR_NUMERIC;
    }
    sha256_ctx ctx;
    sha256_init(&ctx);
    size_t n;
    int st = SM_OK;
    while ((n = fread(buf, 1, CHUNK, f)) > 0) {
        if (atomic_load(&hs->cancel) || sm_interrupted()) {
            snprintf(hs->err, sizeof hs->err, "%s: hashing interrupted", path);
            st = SM_ERR_INTERRUPTED;
            break;
        }
        sha256_update(&ctx, buf, n);
    }
    if (!st && ferror(f)) {
        snprintf(hs->err, sizeof hs->err, "%s: read error while hashing", path);
        st = SM_ERR_IO;
    }
    fclose(f);
    free(buf);
    if (st) return st;
    unsigned char d[32];
    sha256_final(&ctx, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return SM_OK;
}

static void *hash_inputs(void *arg)
{
    input_hasher *hs = arg;
    for (int f = 0; f < hs->opt->n_inputs && !hs->st; f++) hs->st = hash_one(hs, hs->opt->inputs[f], hs->hex[f]);
    return NULL;
}

/* ------------------------------------------------------------------ the run: phases on one
 * ingest_ctx, released by ctx_free whichever phase failed */

static int check_options(const ingest_options *opt, regrid_method *method)
{
    if (opt->n_inputs < 1) return sm_fail(SM_ERR_USAGE, "ingest: no input files given");
    if (opt->n_variables < 1) return sm_fail(SM_ERR_USAGE, "ingest: no variables selected (use --var NAME[:LEVEL])");
    if (!opt->output || !*opt->output) return sm_fail(SM_ERR_USAGE, "ingest: no output file (use --out FILE)");
    if (!opt->grid || !*opt->grid) return sm_fail(SM_ERR_USAGE, "ingest: no target grid (use --grid NAME or --grid native)");
    *method = REGRID_BILINEAR;
    if (opt->method && regrid_method_parse(opt->method, method) != SM_OK)
        return sm_fail(SM_ERR_USAGE, "ingest: unknown method '%s' (bilinear, conservative, nearest)", opt->method);
    return SM_OK;
}

/* The selected variables: each output name once; categorical ones marked. */
static int parse_selectors(ingest_ctx *c)
{
    const ingest_options *opt = c->opt;
    for (int k = 0; k < c->nsel; k++) {
        selvar *s = &c->sv[k];
        int st = var_selector_parse(opt->variables[k], &s->sel);
        if (st) return st;
        for (int j = 0; j < k; j++)
            if (!strcmp(c->sv[j].sel.out_name, s->sel.out_name))
                return sm_fail(SM_ERR_USAGE, "variable %s is selected twice", s->sel.out_name);
        for (int j = 0; j < opt->n_categorical; j++)
            if (!strcmp(opt->categorical[j], s->sel.out_name)) s->categorical = 1;
    }
    return SM_OK;
}

/* Target grid, a check of the output directory, the selectors and the scratch file. */
static int ingest_setup(ingest_ctx *c)
{
    const ingest_options *opt = c->opt;
    int st;
    if (strcmp(opt->grid, "native") != 0 && (st = grid_load(opt->grid, &c->target))) return st;
    /* fail early on an unwritable output directory */
    outfile probe;
    if ((st = outfile_begin(&probe, opt->output))) return st;
    outfile_abort(&probe);
    c->nsel = opt->n_variables;
    c->sv = calloc((size_t)c->nsel, sizeof *c->sv);
    c->fmt = calloc((size_t)opt->n_inputs, sizeof *c->fmt);
    size_t icap = (size_t)opt->n_inputs * 80 + 64;
    for (int f = 0; f < opt->n_inputs; f++) icap += strlen(opt->inputs[f]);
    c->inputs_text = malloc(icap);
    if (!c->sv || !c->fmt || !c->inputs_text) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    c->inputs_text[0] = '\0';
    if ((st = parse_selectors(c))) return st;
    if (c->target) {
        if ((st = build_target_grid(c))) return st;
        c->have_grid = 1;
    }
    return scratch_open(c);
}

/* The pass over the inputs, their sha256 computed alongside (listed in inputs_text). */
static int ingest_pass(ingest_ctx *c)
{
    const ingest_options *opt = c->opt;
    double t0 = now_seconds();
    input_hasher hs;
    memset(&hs, 0, sizeof hs);
    hs.opt = opt;
    hs.hex = c->hex = calloc((size_t)opt->n_inputs, sizeof *c->hex);
    if (!c->hex) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    pthread_t hasher;
    int threaded = pthread_create(&hasher, NULL, hash_inputs, &hs) == 0;
    int st = SM_OK;
    for (int f = 0; f < opt->n_inputs && !st; f++) {
        c->fmt[f] = nc_file_looks_like_netcdf(opt->inputs[f]) ? 2 : 1;
        st = c->fmt[f] == 2 ? pass_netcdf(c, f) : pass_grib(c, f);
    }
    if (threaded) {
        if (st) atomic_store(&hs.cancel, 1);
        pthread_join(hasher, NULL);
    } else if (!st) {
        hash_inputs(&hs);
    }
    if (st) return st;
    if (hs.st) return sm_fail(hs.st, "%s", hs.err);
    for (int f = 0; f < opt->n_inputs; f++)
        c->inputs_len += (size_t)sprintf(c->inputs_text + c->inputs_len, "%s  %s\n", c->hex[f], opt->inputs[f]);
    c->rep->seconds_decode = now_seconds() - t0;
    return SM_OK;
}

/* Every selected variable has a field (a single NetCDF input says why it has none). */
static int check_found(const ingest_ctx *c)
{
    const ingest_options *opt = c->opt;
    for (int k = 0; k < c->nsel; k++) {
        const selvar *s = &c->sv[k];
        if (s->n_entries > 0) continue;
        if (s->absent[0] && opt->n_inputs == 1) return sm_fail(SM_ERR_IO, "%s", s->absent);
        return sm_fail(SM_ERR_IO, "variable %s: no field matches %s%s%s in %s%s", s->sel.out_name,
                       s->sel.param_id ? "paramId " : "shortName/variable ", s->sel.select, s->sel.has_level ? " at the requested level" : "",
                       opt->inputs[0], opt->n_inputs > 1 ? " (or the other inputs)" : "");
    }
    return SM_OK;
}

/* The dataset variable of each selection, described by its first field. */
static void fill_var_info(const ingest_ctx *c, dataset_var_info *vi)
{
    for (int k = 0; k < c->nsel; k++) {
        const selvar *s = &c->sv[k];
        snprintf(vi[k].name, sizeof vi[k].name, "%s", s->sel.out_name);
        snprintf(vi[k].units, sizeof vi[k].units, "%s", s->meta.units);
        snprintf(vi[k].long_name, sizeof vi[k].long_name, "%s", s->meta.name);
        snprintf(vi[k].standard_name, sizeof vi[k].standard_name, "%s", s->meta.standard_name);
        vi[k].param_id = s->meta.param_id;
        snprintf(vi[k].short_name, sizeof vi[k].short_name, "%s", s->meta.short_name);
        snprintf(vi[k].type_of_level, sizeof vi[k].type_of_level, "%s", s->meta.type_of_level);
        vi[k].level = s->meta.level;
        vi[k].is_static = s->is_static;
        vi[k].has_members = s->has_members;
        vi[k].categorical = s->categorical;
    }
}

static void fill_layout(const ingest_ctx *c, dataset_var_info *vi, const char *yaml, dataset_layout *L)
{
    memset(L, 0, sizeof *L);
    L->is_latlon = c->target ? c->target->kind == GRID_LATLON : 1;
    snprintf(L->grid_name, sizeof L->grid_name, "%s", c->target ? c->target->name : "native");
    L->nlat = c->nlat;
    L->nlon = c->nlon;
    L->lat = c->lat;
    L->lon = c->lon;
    L->ntimes = c->ntimes;
    L->times = c->times;
    L->reference_times = c->refs;
    L->forecast_periods = c->periods;
    snprintf(L->calendar, sizeof L->calendar, "%.31s", c->calendar[0] ? c->calendar : "standard");
    L->time_is_index = c->time_is_index;
    L->nmembers = c->nmembers;
    L->members = c->members;
    L->nvars = c->nsel;
    L->vars = vi;
    L->config_text = yaml;
    L->inputs_text = c->inputs_text;
    L->history = c->opt->history;
}

/* Defines the dataset (variables, axes, the configuration and the inputs' hashes). */
static int create_writer(ingest_ctx *c)
{
    const ingest_options *opt = c->opt;
    dataset_var_info *vi = calloc((size_t)c->nsel, sizeof *vi);
    char *yaml = opt->config_text ? strdup(opt->config_text) : ingest_options_yaml(opt);
    int st;
    if (!vi || !yaml) {
        st = sm_fail(SM_ERR_NUMERIC, "out of memory");
    } else {
        dataset_layout L;
        fill_var_info(c, vi);
        fill_layout(c, vi, yaml, &L);
        st = dataset_writer_create(opt->output, &L, &c->w);
    }
    free(vi);
    free(yaml);
    return st;
}

/* Warns about the (time, member) slots no input filled (left NaN) and counts them. */
static void count_empty_slots(ingest_ctx *c)
{
    for (int k = 0; k < c->nsel; k++) {
        int nt = c->sv[k].is_static ? 1 : c->ntimes, nm = c->sv[k].has_members ? c->nmembers : 1;
        int slots = nt * nm, filled = 0;
        for (size_t i = 0; i < c->ne; i++)
            if (c->e[i].sel == k && (i == 0 || c->e[i - 1].sel != k || c->e[i - 1].t != c->e[i].t || c->e[i - 1].m != c->e[i].m)) filled++;
        if (filled < slots)
            log_warn("variable %s: %d of %d (time, member) fields are absent from the inputs and left missing (NaN)", c->sv[k].sel.out_name,
                     slots - filled, slots);
        c->rep->n_empty_slots += slots - filled;
    }
}

/* The dataset: defined, filled in time order from the scratch file, committed. */
static int ingest_write(ingest_ctx *c)
{
    double tw = now_seconds();
    int st = create_writer(c);
    if (!st) st = write_dataset(c);
    if (st) return st;
    count_empty_slots(c);
    c->rep->n_times = c->ntimes;
    c->rep->n_members = c->nmembers;
    st = dataset_writer_commit(c->w);
    c->w = NULL;
    c->rep->seconds_write = now_seconds() - tw;
    return st;
}

int ingest_run(const ingest_options *opt, ingest_report *rep)
{
    memset(rep, 0, sizeof *rep);
    regrid_method method;
    int st = check_options(opt, &method);
    if (st) return st;
    ingest_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.opt = opt;
    ctx.rep = rep;
    ctx.method = method;
    ctx.scratch_fd = -1;
    st = ingest_setup(&ctx);
    if (!st) st = ingest_pass(&ctx);
    if (!st) st = check_found(&ctx);
    if (!st) st = build_axes(&ctx);
    if (!st) st = ingest_write(&ctx);
    ctx_free(&ctx);
    return st;
}
