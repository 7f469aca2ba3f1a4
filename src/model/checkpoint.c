/* Checkpoint files: NetCDF-4 writer and checked loader (see checkpoint.h). */
#include "model/checkpoint.h"
#include "io/nc_attr.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/outfile.h"

#ifndef SMOECAST_VERSION
#define SMOECAST_VERSION "unknown"
#endif

/* ------------------------------------------------------------------ helpers ---- */

typedef struct {
    const char *path;     /* the user-visible file name (for messages) */
    int nc;
    int rc;               /* first error */
} ncf;

static int ck_err(ncf *f, int status, const char *what)
{
    if (status == NC_NOERR) return 0;
    if (!f->rc)
        f->rc = sm_fail(SM_ERR_IO, "%s: %s: %s (the file may be truncated or corrupt)", f->path,
                        what, nc_strerror(status));
    return 1;
}

static void put_text(ncf *f, int grp, const char *name, const char *text)
{
    if (f->rc) return;
    ck_err(f, nc_put_att_text(grp, NC_GLOBAL, name, strlen(text), text), name);
}

static void put_i64(ncf *f, int grp, const char *name, int64_t v)
{
    if (f->rc) return;
    long long x = (long long)v;
    ck_err(f, nc_put_att_longlong(grp, NC_GLOBAL, name, NC_INT64, 1, &x), name);
}

static void put_f64(ncf *f, int grp, const char *name, double v)
{
    if (f->rc) return;
    ck_err(f, nc_put_att_double(grp, NC_GLOBAL, name, NC_DOUBLE, 1, &v), name);
}

static void put_u64(ncf *f, int grp, const char *name, uint64_t v)
{
    if (f->rc) return;
    unsigned long long x = v;
    ck_err(f, nc_put_att_ulonglong(grp, NC_GLOBAL, name, NC_UINT64, 1, &x), name);
}

static int def_group(ncf *f, int parent, const char *name)
{
    int g = -1;
    if (f->rc) return -1;
    ck_err(f, nc_def_grp(parent, name, &g), name);
    return g;
}

/* Shared dimension "d<size>" in group grp. */
static int size_dim(ncf *f, int grp, size_t n, int *dimid)
{
    char dn[32];
    snprintf(dn, sizeof dn, "d%zu", n);
    if (nc_inq_dimid(grp, dn, dimid) == NC_NOERR) return 0;
    return ck_err(f, nc_def_dim(grp, dn, n, dimid), dn);
}

static void put_array(ncf *f, int grp, const char *name, int ndim, const size_t *shape,
                      const float *data)
{
    if (f->rc) return;
    int dims[CKPT_MAX_DIMS];
    size_t one = 1;
    if (ndim < 1) {
        ndim = 1;
        shape = &one;
    }
    for (int i = 0; i < ndim; i++)
        if (size_dim(f, grp, shape[i], &dims[i])) return;
    int var;
    if (ck_err(f, nc_def_var(grp, name, NC_FLOAT, ndim, dims, &var), name)) return;
    ck_err(f, nc_put_var_float(grp, var, data), name);
}

static void shape_str(char *buf, size_t len, int ndim, const size_t *shape)
{
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? "x%zu" : "%zu", shape[i]);
    if (ndim == 0) snprintf(buf, len, "scalar");
}

static int view_shape(const param_view *v, size_t *shape)
{
    int nd = v->ndim < 1 ? 1 : v->ndim;
    for (int i = 0; i < nd; i++) shape[i] = v->ndim < 1 ? 1 : (size_t)v->shape[i];
    return nd;
}

/* --------------------------------------------------------------------- state ---- */

void checkpoint_state_init(ckpt_state *st)
{
    memset(st, 0, sizeof *st);
    st->best_score = NAN;
    st->best_epoch = -1;
}

static void free_arrays(ckpt_array *a, int n)
{
    if (!a) return;
    for (int i = 0; i < n; i++) free(a[i].data);
    free(a);
}

void checkpoint_state_free_arrays(ckpt_state *st)
{
    if (!st->owns_arrays) return;
    free_arrays(st->norm, st->n_norm);
    free_arrays(st->metrics, st->n_metrics);
    st->norm = st->metrics = NULL;
    st->n_norm = st->n_metrics = 0;
    st->owns_arrays = 0;
}

const ckpt_array *checkpoint_find_array(const ckpt_array *arrays, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(arrays[i].name, name) == 0) return &arrays[i];
    return NULL;
}

void checkpoint_routing_arrays(const char *layer, const moe_routing_metrics *rm,
                               float buf[CKPT_ROUTING_FLOATS], ckpt_array out[2])
{
    int n = rm->n_experts;
    if (n > MOE_METRICS_MAX_EXPERTS) n = MOE_METRICS_MAX_EXPERTS;
    if (n < 1) n = 1;
    memset(out, 0, 2 * sizeof *out);
    for (int e = 0; e < n; e++) buf[e] = (float)rm->load_frac[e];
    float *sc = buf + MOE_METRICS_MAX_EXPERTS;
    sc[0] = (float)rm->cv_importance;
    sc[1] = (float)rm->h_s;
    sc[2] = (float)rm->h_u;
    sc[3] = (float)rm->mi;
    sc[4] = (float)rm->ari;
    snprintf(out[0].name, sizeof out[0].name, "%.40s.load_fraction", layer);
    out[0].ndim = 1;
    out[0].shape[0] = (size_t)n;
    out[0].data = buf;
    snprintf(out[1].name, sizeof out[1].name, "%.40s.routing", layer);
    out[1].ndim = 1;
    out[1].shape[0] = 5;
    out[1].data = sc;
}

/* ---------------------------------------------------------------------- save ---- */

static void write_arrays(ncf *f, const char *group, const ckpt_array *a, int n)
{
    int g = def_group(f, f->nc, group);
    for (int i = 0; i < n && !f->rc; i++) {
        if (a[i].ndim < 1 || a[i].ndim > CKPT_MAX_DIMS || !a[i].data) {
            f->rc = sm_fail(SM_ERR_USAGE, "%s: %s array '%s' has %d dimensions (1..%d) or no data",
                            f->path, group, a[i].name, a[i].ndim, CKPT_MAX_DIMS);
            return;
        }
        put_array(f, g, a[i].name, a[i].ndim, a[i].shape, a[i].data);
    }
}

static void write_contents(ncf *f, const sm_model *mc, const sm_config *cfg, const grid *g,
                           const ckpt_state *st)
{
    sm_model *m = (sm_model *)mc; /* read-only use of the store accessors */
    param_store *ps = model_params(m);
    const int nc = f->nc;
    put_text(f, nc, "format", CKPT_FORMAT);
    put_i64(f, nc, "format_version", CKPT_FORMAT_VERSION);
    put_text(f, nc, "smoecast_version", SMOECAST_VERSION);
    if (cfg) {
        put_text(f, nc, "architecture", cfg->model.architecture);
        char *yaml = config_to_yaml(cfg);
        if (!yaml) {
            f->rc = sm_fail(SM_ERR_NUMERIC, "%s: out of memory writing the config", f->path);
            return;
        }
        put_text(f, nc, "config", yaml);
        free(yaml);
    }
    put_i64(f, nc, "c_in", model_c_in(m));
    put_i64(f, nc, "c_out", model_c_out(m));
    if (st) {
        if (st->input_variables) put_text(f, nc, "input_variables", st->input_variables);
        if (st->output_variables) put_text(f, nc, "output_variables", st->output_variables);
        put_i64(f, nc, "epoch", st->epoch);
        put_i64(f, nc, "step", st->step);
        put_f64(f, nc, "best_score", st->best_score);
        put_i64(f, nc, "best_epoch", st->best_epoch);
    }
    if (g) {
        int gg = def_group(f, nc, "grid");
        put_text(f, gg, "name", g->name);
        put_text(f, gg, "kind", g->kind == GRID_XY ? "xy" : "latlon");
        put_i64(f, gg, "periodic_lon", g->periodic_lon);
        int dl, dn, vl, vn;
        if (!f->rc && !ck_err(f, nc_def_dim(gg, "lat", (size_t)g->nlat, &dl), "grid/lat") &&
            !ck_err(f, nc_def_dim(gg, "lon", (size_t)g->nlon, &dn), "grid/lon") &&
            !ck_err(f, nc_def_var(gg, "lat", NC_DOUBLE, 1, &dl, &vl), "grid/lat") &&
            !ck_err(f, nc_def_var(gg, "lon", NC_DOUBLE, 1, &dn, &vn), "grid/lon") &&
            !ck_err(f, nc_put_var_double(gg, vl, g->lat), "grid/lat"))
            ck_err(f, nc_put_var_double(gg, vn, g->lon), "grid/lon");
    }
    int pg = def_group(f, nc, "params");
    for (int id = 0; id < param_store_count(ps) && !f->rc; id++) {
        const param_view *v = param_store_view(ps, id);
        size_t shape[CKPT_MAX_DIMS];
        int nd = view_shape(v, shape);
        put_array(f, pg, v->name, nd, shape, param_data(ps, id));
    }
    if (!st) return;
    if (st->opt) {
        const optim *o = st->opt;
        int og = def_group(f, nc, "optim");
        put_text(f, og, "kind", optim_kind_name(o->cfg.kind));
        put_f64(f, og, "lr", o->cfg.lr);
        put_i64(f, og, "step", o->step);
        put_f64(f, og, "weight_decay", o->cfg.weight_decay);
        put_f64(f, og, "momentum", o->cfg.momentum);
        put_f64(f, og, "beta1", o->cfg.beta1);
        put_f64(f, og, "beta2", o->cfg.beta2);
        put_f64(f, og, "eps", o->cfg.eps);
        put_f64(f, og, "gate_lr_scale", o->cfg.gate_lr_scale);
        const float *bufs[2] = {o->m, o->v};
        const char *names[2] = {"m", "v"};
        for (int b = 0; b < 2; b++) {
            if (!bufs[b]) continue;
            int bg = def_group(f, og, names[b]);
            for (int id = 0; id < param_store_count(ps) && !f->rc; id++) {
                const param_view *v = param_store_view(ps, id);
                if (!(v->flags & PARAM_TRAINABLE)) continue;
                size_t shape[CKPT_MAX_DIMS];
                int nd = view_shape(v, shape);
                put_array(f, bg, v->name, nd, shape, bufs[b] + v->offset);
            }
        }
    }
    if (st->ema_raw) {
        int eg = def_group(f, nc, "ema");
        put_f64(f, eg, "decay", st->ema_decay);
        for (int id = 0; id < param_store_count(ps) && !f->rc; id++) {
            const param_view *v = param_store_view(ps, id);
            if (!(v->flags & PARAM_TRAINABLE)) continue;
            size_t shape[CKPT_MAX_DIMS];
            int nd = view_shape(v, shape);
            put_array(f, eg, v->name, nd, shape, st->ema_raw + v->offset);
        }
    }
    if (st->sched) {
        const lr_schedule *s = st->sched;
        int sg = def_group(f, nc, "schedule");
        put_text(f, sg, "kind", lr_kind_name(s->cfg.kind));
        put_i64(f, sg, "t", s->t);
        put_f64(f, sg, "lr", s->lr);
        put_f64(f, sg, "best", s->best);
        put_i64(f, sg, "num_bad", s->num_bad);
        put_i64(f, sg, "cooldown_counter", s->cooldown_counter);
    }
    if (st->stop) {
        const early_stop *e = st->stop;
        int eg = def_group(f, nc, "early_stop");
        put_i64(f, eg, "patience", e->patience);
        put_f64(f, eg, "best", e->best);
        put_i64(f, eg, "best_epoch", e->best_epoch);
        put_i64(f, eg, "epoch", e->epoch);
        put_i64(f, eg, "wait", e->wait);
        put_i64(f, eg, "stopped", e->stopped);
    }
    if (st->n_rng > 0) {
        int rg = def_group(f, nc, "rng");
        for (int i = 0; i < st->n_rng && i < CKPT_MAX_RNG; i++) {
            char an[CKPT_NAME_MAX + 16];
            snprintf(an, sizeof an, "%s.state", st->rng_names[i]);
            put_u64(f, rg, an, st->rng[i]->state);
            snprintf(an, sizeof an, "%s.inc", st->rng_names[i]);
            put_u64(f, rg, an, st->rng[i]->inc);
        }
    }
    if (st->n_norm > 0) write_arrays(f, "norm", st->norm, st->n_norm);
    if (st->n_metrics > 0) write_arrays(f, "metrics", st->metrics, st->n_metrics);
}

int checkpoint_save(const char *path, const sm_model *m, const sm_config *cfg, const grid *g,
                    const ckpt_state *st)
{
    outfile of;
    int rc = outfile_begin(&of, path);
    if (rc) return rc;
    ncf f = {path, -1, 0};
    int status = nc_create(of.tmp_path, NC_NETCDF4 | NC_CLOBBER, &f.nc);
    if (status != NC_NOERR) {
        outfile_abort(&of);
        return sm_fail(SM_ERR_IO, "%s: cannot create the checkpoint: %s", path, nc_strerror(status));
    }
    write_contents(&f, m, cfg, g, st);
    status = nc_close(f.nc);
    if (!f.rc && status != NC_NOERR)
        f.rc = sm_fail(SM_ERR_IO, "%s: cannot finish the checkpoint: %s", path, nc_strerror(status));
    if (f.rc) {
        outfile_abort(&of);
        return f.rc;
    }
    return outfile_commit(&of);
}

/* ---------------------------------------------------------------------- load ---- */

static int get_i64(ncf *f, int grp, const char *name, int64_t *v)
{
    long long x;
    if (ck_err(f, nc_get_att_longlong(grp, NC_GLOBAL, name, &x), name)) return 1;
    *v = (int64_t)x;
    return 0;
}

static int get_f64(ncf *f, int grp, const char *name, double *v)
{
    return ck_err(f, nc_get_att_double(grp, NC_GLOBAL, name, v), name);
}

static int get_u64(ncf *f, int grp, const char *name, uint64_t *v)
{
    unsigned long long x;
    if (ck_err(f, nc_get_att_ulonglong(grp, NC_GLOBAL, name, &x), name)) return 1;
    *v = (uint64_t)x;
    return 0;
}

static int find_group(int parent, const char *name)
{
    int g;
    return nc_inq_ncid(parent, name, &g) == NC_NOERR ? g : -1;
}

/* Shape of variable `name` in grp; -1 when absent. */
static int var_shape(int grp, const char *name, int *var, size_t *shape)
{
    int nd, dims[NC_MAX_VAR_DIMS];
    if (nc_inq_varid(grp, name, var) != NC_NOERR) return -1;
    if (nc_inq_varndims(grp, *var, &nd) != NC_NOERR || nd > CKPT_MAX_DIMS) return -1;
    if (nc_inq_vardimid(grp, *var, dims) != NC_NOERR) return -1;
    for (int i = 0; i < nd; i++)
        if (nc_inq_dimlen(grp, dims[i], &shape[i]) != NC_NOERR) return -1;
    return nd;
}

/* Every tensor of the model in group grp with the right shape (only_trainable: optimiser
 * moments), and nothing else. */
static int check_tensors(ncf *f, int grp, const char *where, param_store *ps, int only_trainable)
{
    for (int id = 0; id < param_store_count(ps); id++) {
        const param_view *v = param_store_view(ps, id);
        if (only_trainable && !(v->flags & PARAM_TRAINABLE)) continue;
        size_t want[CKPT_MAX_DIMS], got[CKPT_MAX_DIMS];
        int nw = view_shape(v, want), var;
        int ng = var_shape(grp, v->name, &var, got);
        if (ng < 0)
            return f->rc = sm_fail(SM_ERR_IO, "%s: tensor %s of the model built from the config is "
                                   "not in the checkpoint's %s", f->path, v->name, where);
        int same = ng == nw;
        for (int i = 0; same && i < nw; i++) same = got[i] == want[i];
        if (!same) {
            char a[96], b[96];
            shape_str(a, sizeof a, ng, got);
            shape_str(b, sizeof b, nw, want);
            return f->rc = sm_fail(SM_ERR_IO, "%s: tensor %s has shape %s in the checkpoint%s%s but %s "
                                   "in the model built from the config", f->path, v->name, a,
                                   *where ? " " : "", where, b);
        }
    }
    int nvars;
    if (ck_err(f, nc_inq_varids(grp, &nvars, NULL), where)) return f->rc;
    int *ids = malloc((size_t)(nvars ? nvars : 1) * sizeof *ids);
    if (!ids) return f->rc = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", f->path);
    nc_inq_varids(grp, &nvars, ids);
    for (int i = 0; i < nvars; i++) {
        char name[NC_MAX_NAME + 1];
        nc_inq_varname(grp, ids[i], name);
        int id = param_store_find(ps, name);
        if (id < 0 || (only_trainable && !(param_store_view(ps, id)->flags & PARAM_TRAINABLE))) {
            free(ids);
            return f->rc = sm_fail(SM_ERR_IO, "%s: the checkpoint has tensor %s that the model built "
                                   "from the config does not have", f->path, name);
        }
    }
    free(ids);
    return 0;
}

static int read_tensors(ncf *f, int grp, param_store *ps, float *base, int only_trainable)
{
    for (int id = 0; id < param_store_count(ps); id++) {
        const param_view *v = param_store_view(ps, id);
        if (only_trainable && !(v->flags & PARAM_TRAINABLE)) continue;
        int var;
        if (ck_err(f, nc_inq_varid(grp, v->name, &var), v->name)) return f->rc;
        if (ck_err(f, nc_get_var_float(grp, var, base + v->offset), v->name)) return f->rc;
    }
    return 0;
}

static int check_grid(ncf *f, const grid *g)
{
    int gg = find_group(f->nc, "grid");
    if (gg < 0)
        return f->rc = sm_fail(SM_ERR_IO, "%s: the checkpoint has no grid but the run uses grid %s",
                               f->path, g->name);
    int dl, dn;
    size_t nlat = 0, nlon = 0;
    if (ck_err(f, nc_inq_dimid(gg, "lat", &dl), "grid/lat") || ck_err(f, nc_inq_dimlen(gg, dl, &nlat), "grid/lat") ||
        ck_err(f, nc_inq_dimid(gg, "lon", &dn), "grid/lon") || ck_err(f, nc_inq_dimlen(gg, dn, &nlon), "grid/lon"))
        return f->rc;
    char *name = nc_attr_text_dup(gg, NC_GLOBAL, "name");
    if (nlat != (size_t)g->nlat || nlon != (size_t)g->nlon) {
        f->rc = sm_fail(SM_ERR_IO, "%s: grid is %zu x %zu (%s) in the checkpoint but %d x %d (%s) for this run",
                        f->path, nlat, nlon, name ? name : "?", g->nlat, g->nlon, g->name);
        free(name);
        return f->rc;
    }
    double *lat = malloc((nlat + nlon) * sizeof *lat);
    if (!lat) {
        free(name);
        return f->rc = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", f->path);
    }
    double *lon = lat + nlat;
    int vl, vn;
    if (!ck_err(f, nc_inq_varid(gg, "lat", &vl), "grid/lat") && !ck_err(f, nc_get_var_double(gg, vl, lat), "grid/lat") &&
        !ck_err(f, nc_inq_varid(gg, "lon", &vn), "grid/lon") && !ck_err(f, nc_get_var_double(gg, vn, lon), "grid/lon")) {
        for (size_t i = 0; i < nlat && !f->rc; i++)
            if (fabs(lat[i] - g->lat[i]) > 1e-6)
                f->rc = sm_fail(SM_ERR_IO, "%s: grid latitude %zu is %g in the checkpoint (%s) but %g for this run (%s)",
                                f->path, i, lat[i], name ? name : "?", g->lat[i], g->name);
        for (size_t i = 0; i < nlon && !f->rc; i++)
            if (fabs(lon[i] - g->lon[i]) > 1e-6)
                f->rc = sm_fail(SM_ERR_IO, "%s: grid longitude %zu is %g in the checkpoint (%s) but %g for this run (%s)",
                                f->path, i, lon[i], name ? name : "?", g->lon[i], g->name);
    }
    free(lat);
    free(name);
    return f->rc;
}

static int check_text(ncf *f, const char *att, const char *what, const char *want, const char *where)
{
    char *got = nc_attr_text_dup(f->nc, NC_GLOBAL, att);
    if (!got) return f->rc = sm_fail(SM_ERR_IO, "%s: the checkpoint does not record %s", f->path, what);
    if (strcmp(got, want) != 0) {
        f->rc = sm_fail(SM_ERR_IO, "%s: %s is %s in the checkpoint but %s %s", f->path, what, got, want, where);
    }
    free(got);
    return f->rc;
}

static int read_arrays(ncf *f, const char *group, ckpt_array **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    int grp = find_group(f->nc, group);
    if (grp < 0) return 0;
    int nvars;
    if (ck_err(f, nc_inq_varids(grp, &nvars, NULL), group)) return f->rc;
    if (nvars == 0) return 0;
    int *ids = malloc((size_t)nvars * sizeof *ids);
    ckpt_array *a = calloc((size_t)nvars, sizeof *a);
    if (!ids || !a) {
        free(ids);
        free(a);
        return f->rc = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", f->path);
    }
    nc_inq_varids(grp, &nvars, ids);
    int n = 0;
    for (int i = 0; i < nvars && !f->rc; i++, n++) {
        char name[NC_MAX_NAME + 1];
        nc_inq_varname(grp, ids[i], name);
        size_t len = strlen(name);
        if (len >= sizeof a[n].name) len = sizeof a[n].name - 1;
        memcpy(a[n].name, name, len);
        a[n].name[len] = 0;
        int var;
        a[n].ndim = var_shape(grp, name, &var, a[n].shape);
        if (a[n].ndim < 1) {
            f->rc = sm_fail(SM_ERR_IO, "%s: %s/%s is not a 1-%d dimensional array", f->path, group, name,
                            CKPT_MAX_DIMS);
            break;
        }
        size_t cnt = 1;
        for (int d = 0; d < a[n].ndim; d++) cnt *= a[n].shape[d];
        a[n].data = malloc((cnt ? cnt : 1) * sizeof(float));
        if (!a[n].data) {
            f->rc = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", f->path);
            break;
        }
        ck_err(f, nc_get_var_float(grp, var, a[n].data), name);
    }
    free(ids);
    if (f->rc) {
        free_arrays(a, n + 1 > nvars ? nvars : n + 1);
        return f->rc;
    }
    *out = a;
    *n_out = n;
    return 0;
}

/* The optimiser kind must match the run's (its moments mean nothing to another optimiser). */
static int check_text_grp(ncf *f, int og, const optim *o)
{
    char *kind = nc_attr_text_dup(og, NC_GLOBAL, "kind");
    if (!kind) return f->rc = sm_fail(SM_ERR_IO, "%s: the checkpoint's optimiser state has no kind", f->path);
    if (strcmp(kind, optim_kind_name(o->cfg.kind)) != 0)
        f->rc = sm_fail(SM_ERR_IO, "%s: the optimiser is %s in the checkpoint but %s in the config",
                        f->path, kind, optim_kind_name(o->cfg.kind));
    free(kind);
    return f->rc;
}

static int check_all(ncf *f, sm_model *m, const sm_config *cfg, const grid *g, const ckpt_state *st)
{
    param_store *ps = model_params(m);
    char *fmt = nc_attr_text_dup(f->nc, NC_GLOBAL, "format");
    int is_ck = fmt && strcmp(fmt, CKPT_FORMAT) == 0;
    free(fmt);
    if (!is_ck)
        return f->rc = sm_fail(SM_ERR_IO, "%s: not a smoecast checkpoint (no format = \"%s\" attribute)",
                               f->path, CKPT_FORMAT);
    int64_t ver;
    if (get_i64(f, f->nc, "format_version", &ver)) return f->rc;
    if (ver != CKPT_FORMAT_VERSION)
        return f->rc = sm_fail(SM_ERR_IO, "%s: checkpoint format version %lld is not supported (this "
                               "smoecast reads version %d)", f->path, (long long)ver, CKPT_FORMAT_VERSION);
    if (cfg && check_text(f, "architecture", "the architecture", cfg->model.architecture, "in the config"))
        return f->rc;
    int64_t cin, cout;
    if (get_i64(f, f->nc, "c_in", &cin) || get_i64(f, f->nc, "c_out", &cout)) return f->rc;
    if (cin != model_c_in(m) || cout != model_c_out(m))
        return f->rc = sm_fail(SM_ERR_IO, "%s: the model has %lld input and %lld output channels in the "
                               "checkpoint but %d and %d for this run", f->path, (long long)cin,
                               (long long)cout, model_c_in(m), model_c_out(m));
    if (st && st->input_variables &&
        check_text(f, "input_variables", "the input variable list", st->input_variables, "for this run"))
        return f->rc;
    if (st && st->output_variables &&
        check_text(f, "output_variables", "the output variable list", st->output_variables, "for this run"))
        return f->rc;
    if (g && check_grid(f, g)) return f->rc;
    int pg = find_group(f->nc, "params");
    if (pg < 0) return f->rc = sm_fail(SM_ERR_IO, "%s: the checkpoint has no params group", f->path);
    if (check_tensors(f, pg, "", ps, 0)) return f->rc;
    if (!st) return 0;
    if (st->opt) {
        int og = find_group(f->nc, "optim");
        if (og < 0) return f->rc = sm_fail(SM_ERR_IO, "%s: the checkpoint has no optimiser state", f->path);
        if (check_text_grp(f, og, st->opt)) return f->rc;
        if (st->opt->m) {
            int mg = find_group(og, "m");
            if (mg < 0)
                return f->rc = sm_fail(SM_ERR_IO, "%s: the checkpoint has no optimiser moments", f->path);
            if (check_tensors(f, mg, "optimiser state", ps, 1)) return f->rc;
        }
        if (st->opt->v) {
            int vg = find_group(og, "v");
            if (vg < 0) return f->rc = sm_fail(SM_ERR_IO, "%s: the checkpoint has no Adam second moments", f->path);
            if (check_tensors(f, vg, "optimiser state", ps, 1)) return f->rc;
        }
    }
    if (st->ema_raw) {
        int eg = find_group(f->nc, "ema");
        if (eg >= 0 && check_tensors(f, eg, "weight average", ps, 1)) return f->rc;
    }
    if (st->sched && find_group(f->nc, "schedule") < 0)
        return f->rc = sm_fail(SM_ERR_IO, "%s: the checkpoint has no learning-rate schedule state", f->path);
    if (st->stop && find_group(f->nc, "early_stop") < 0)
        return f->rc = sm_fail(SM_ERR_IO, "%s: the checkpoint has no early-stopping state", f->path);
    if (st->n_rng > 0) {
        int rg = find_group(f->nc, "rng");
        for (int i = 0; i < st->n_rng && i < CKPT_MAX_RNG; i++) {
            char an[CKPT_NAME_MAX + 16];
            snprintf(an, sizeof an, "%s.state", st->rng_names[i]);
            if (rg < 0 || nc_inq_att(rg, NC_GLOBAL, an, NULL, NULL) != NC_NOERR)
                return f->rc = sm_fail(SM_ERR_IO, "%s: the checkpoint has no state for RNG stream '%s'",
                                       f->path, st->rng_names[i]);
        }
    }
    return 0;
}

static int load_contents(ncf *f, sm_model *m, ckpt_state *st)
{
    param_store *ps = model_params(m);
    int pg = find_group(f->nc, "params");
    /* read into a copy first so that a read error leaves the model unchanged */
    size_t n = param_store_size(ps);
    float *tmp = malloc((n ? n : 1) * sizeof(float));
    if (!tmp) return f->rc = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", f->path);
    memcpy(tmp, param_store_data_all(ps), n * sizeof(float));
    if (read_tensors(f, pg, ps, tmp, 0)) {
        free(tmp);
        return f->rc;
    }
    if (!st) {
        memcpy(param_store_data_all(ps), tmp, n * sizeof(float));
        free(tmp);
        return 0;
    }
    int64_t i64;
    double d;
    ckpt_state loaded = *st;
    if (get_i64(f, f->nc, "epoch", &loaded.epoch) || get_i64(f, f->nc, "step", &loaded.step) ||
        get_f64(f, f->nc, "best_score", &loaded.best_score) ||
        get_i64(f, f->nc, "best_epoch", &loaded.best_epoch)) {
        free(tmp);
        return f->rc;
    }
    if (st->opt) {
        optim *o = st->opt;
        int og = find_group(f->nc, "optim");
        float *mm = malloc(o->size * sizeof(float) * 2 + sizeof(float));
        if (!mm) {
            free(tmp);
            return f->rc = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", f->path);
        }
        float *vv = o->v ? mm + o->size : NULL;
        memset(mm, 0, o->size * sizeof(float) * 2);
        if ((o->m && read_tensors(f, find_group(og, "m"), ps, mm, 1)) ||
            (vv && read_tensors(f, find_group(og, "v"), ps, vv, 1)) ||
            get_i64(f, og, "step", &i64) || get_f64(f, og, "lr", &d)) {
            free(mm);
            free(tmp);
            return f->rc;
        }
        if (o->m) memcpy(o->m, mm, o->size * sizeof(float));
        if (vv) memcpy(o->v, vv, o->size * sizeof(float));
        o->step = i64;
        optim_set_lr(o, d);
        free(mm);
    }
    int ema_grp = st->ema_raw ? find_group(f->nc, "ema") : -1;
    double ema_decay = 0;
    if (ema_grp >= 0) {
        /* into a copy: a read error leaves the caller's buffer unchanged */
        size_t n_all = param_store_size(ps);
        float *raw = malloc((n_all ? n_all : 1) * sizeof(float));
        if (!raw) {
            free(tmp);
            return f->rc = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", f->path);
        }
        memcpy(raw, st->ema_raw, n_all * sizeof(float));
        if (read_tensors(f, ema_grp, ps, raw, 1) || get_f64(f, ema_grp, "decay", &ema_decay)) {
            free(raw);
            free(tmp);
            return f->rc;
        }
        memcpy(st->ema_raw, raw, n_all * sizeof(float));
        free(raw);
    }
    if (st->sched) {
        lr_schedule s = *st->sched;
        int sg = find_group(f->nc, "schedule");
        int64_t nb, cc;
        if (get_i64(f, sg, "t", &s.t) || get_f64(f, sg, "lr", &s.lr) || get_f64(f, sg, "best", &s.best) ||
            get_i64(f, sg, "num_bad", &nb) || get_i64(f, sg, "cooldown_counter", &cc)) {
            free(tmp);
            return f->rc;
        }
        s.num_bad = (int)nb;
        s.cooldown_counter = (int)cc;
        *st->sched = s;
    }
    if (st->stop) {
        early_stop e = *st->stop;
        int eg = find_group(f->nc, "early_stop");
        int64_t w, sp;
        if (get_f64(f, eg, "best", &e.best) || get_i64(f, eg, "best_epoch", &e.best_epoch) ||
            get_i64(f, eg, "epoch", &e.epoch) || get_i64(f, eg, "wait", &w) ||
            get_i64(f, eg, "stopped", &sp)) {
            free(tmp);
            return f->rc;
        }
        e.wait = (int)w;
        e.stopped = (int)sp;
        *st->stop = e;
    }
    if (st->n_rng > 0) {
        int rg = find_group(f->nc, "rng");
        for (int i = 0; i < st->n_rng && i < CKPT_MAX_RNG; i++) {
            char an[CKPT_NAME_MAX + 16];
            rng_t r;
            snprintf(an, sizeof an, "%s.state", st->rng_names[i]);
            if (get_u64(f, rg, an, &r.state)) break;
            snprintf(an, sizeof an, "%s.inc", st->rng_names[i]);
            if (get_u64(f, rg, an, &r.inc)) break;
            *st->rng[i] = r;
        }
        if (f->rc) {
            free(tmp);
            return f->rc;
        }
    }
    ckpt_array *norm = NULL, *metrics = NULL;
    int n_norm = 0, n_metrics = 0;
    if (read_arrays(f, "norm", &norm, &n_norm) || read_arrays(f, "metrics", &metrics, &n_metrics)) {
        free_arrays(norm, n_norm);
        free(tmp);
        return f->rc;
    }
    checkpoint_state_free_arrays(st);
    st->epoch = loaded.epoch;
    st->step = loaded.step;
    st->best_score = loaded.best_score;
    st->best_epoch = loaded.best_epoch;
    st->norm = norm;
    st->n_norm = n_norm;
    st->metrics = metrics;
    st->n_metrics = n_metrics;
    st->owns_arrays = 1;
    st->has_ema = ema_grp >= 0;
    if (ema_grp >= 0) st->ema_decay = ema_decay;
    memcpy(param_store_data_all(ps), tmp, n * sizeof(float));
    free(tmp);
    return 0;
}

int checkpoint_load(const char *path, sm_model *m, const sm_config *cfg, const grid *g,
                    ckpt_state *st)
{
    ncf f = {path, -1, 0};
    int status = nc_open(path, NC_NOWRITE, &f.nc);
    if (status != NC_NOERR)
        return sm_fail(SM_ERR_IO, "%s: cannot open the checkpoint (missing, truncated or not NetCDF-4): %s",
                       path, nc_strerror(status));
    if (!check_all(&f, m, cfg, g, st)) load_contents(&f, m, st);
    nc_close(f.nc);
    return f.rc;
}

int checkpoint_read_config(const char *path, char **yaml)
{
    *yaml = NULL;
    int nc;
    int status = nc_open(path, NC_NOWRITE, &nc);
    if (status != NC_NOERR)
        return sm_fail(SM_ERR_IO, "%s: cannot open the checkpoint (missing, truncated or not NetCDF-4): %s",
                       path, nc_strerror(status));
    *yaml = nc_attr_text_dup(nc, NC_GLOBAL, "config");
    nc_close(nc);
    if (!*yaml) return sm_fail(SM_ERR_IO, "%s: the checkpoint has no config attribute", path);
    return SM_OK;
}

int checkpoint_load_config(const char *path, int n_overrides, char *const *overrides,
                           sm_config **out)
{
    *out = NULL;
    char *yaml = NULL;
    int rc = checkpoint_read_config(path, &yaml);
    if (rc) return rc;
    rc = config_load_text(yaml, path, n_overrides, overrides, out);
    free(yaml);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sm_last_error());
        return sm_fail(rc, "%s: stored config: %s", path, msg);
    }
    return SM_OK;
}

int checkpoint_read_grid(const char *path, grid **g, int *c_in, int *c_out)
{
    *g = NULL;
    int ncid, s = nc_open(path, NC_NOWRITE, &ncid);
    if (s != NC_NOERR) return sm_fail(SM_ERR_IO, "%s: cannot open the checkpoint: %s", path, nc_strerror(s));
    long long cin = 0, cout = 0;
    int gg, dl, dn, vl, vn;
    size_t nlat = 0, nlon = 0;
    char kind[16] = "latlon";
    if ((s = nc_get_att_longlong(ncid, NC_GLOBAL, "c_in", &cin)) || (s = nc_get_att_longlong(ncid, NC_GLOBAL, "c_out", &cout)) ||
        (s = nc_inq_ncid(ncid, "grid", &gg)) || (s = nc_inq_dimid(gg, "lat", &dl)) || (s = nc_inq_dimlen(gg, dl, &nlat)) ||
        (s = nc_inq_dimid(gg, "lon", &dn)) || (s = nc_inq_dimlen(gg, dn, &nlon))) {
        nc_close(ncid);
        return sm_fail(SM_ERR_IO, "%s: not a complete smoecast checkpoint (channels or grid missing): %s", path,
                       nc_strerror(s));
    }
    if (nc_attr_text(gg, NC_GLOBAL, "kind", kind, sizeof kind) < 0) strcpy(kind, "latlon");
    double *coord = malloc(sizeof(double) * (nlat + nlon));
    if (!coord) {
        nc_close(ncid);
        return sm_fail(SM_ERR_NUMERIC, "%s: out of memory for the grid", path);
    }
    s = nc_inq_varid(gg, "lat", &vl);
    if (s == NC_NOERR) s = nc_get_var_double(gg, vl, coord);
    if (s == NC_NOERR) s = nc_inq_varid(gg, "lon", &vn);
    if (s == NC_NOERR) s = nc_get_var_double(gg, vn, coord + nlat);
    nc_close(ncid);
    if (s != NC_NOERR) {
        free(coord);
        return sm_fail(SM_ERR_IO, "%s: cannot read the grid: %s", path, nc_strerror(s));
    }
    int st = !strcmp(kind, "xy") ? grid_create_xy("checkpoint", (int)nlat, coord, (int)nlon, coord + nlat, g)
                                 : grid_create_latlon("checkpoint", (int)nlat, coord, (int)nlon, coord + nlat, g);
    free(coord);
    *c_in = (int)cin;
    *c_out = (int)cout;
    return st;
}
