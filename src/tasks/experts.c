/* Expert-location maps and per-expert statistics (see experts.h). */
#include "tasks/experts.h"
#include "core/config.h"
#include "core/log.h"
#include "core/outfile.h"
#include "data/dataset.h"
#include "data/samples.h"
#include "grid/geometry.h"
#include "grid/grid.h"
#include "grid/regrid.h"
#include "io/cf_time.h"
#include "model/builder.h"
#include "model/checkpoint.h"
#include "moe/routing_metrics.h"
#include "tasks/train.h"

#include <math.h>
#include <netcdf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPERTS_MAX_LAYERS 16
#define DEG2RAD 0.017453292519943295

/* ------------------------------------------------------------------ maps of one layer */

typedef struct {
    char name[64];             /* layer name */
    int n, k, h, w, ntimes;    /* experts, ranks, layer grid, maps (1 for a static gate) */
    int is_static;
    double *lat, *lon;         /* the layer's own coordinates (h, w) */
    int32_t *argmax;           /* (T, h, w) */
    int32_t *rank;             /* (T, k, h, w) */
    float *weight;             /* (T, N, h, w) softmax of the raw gate values */
    float *entropy;            /* (T, h, w) bits */
    float *confidence;         /* (T, h, w) top-1 minus top-2 weight */
    float *freq;               /* (N, h, w) fraction of times each expert owns the point */
} layer_maps;

static void layer_maps_free(layer_maps *L)
{
    free(L->lat);
    free(L->argmax);
    free(L->rank);
    free(L->weight);
    free(L->entropy);
    free(L->confidence);
    free(L->freq);
    memset(L, 0, sizeof *L);
}

static int layer_maps_alloc(layer_maps *L, const char *name, int n, int k, int h, int w, int ntimes)
{
    memset(L, 0, sizeof *L);
    snprintf(L->name, sizeof L->name, "%s", name);
    L->n = n;
    L->k = k;
    L->h = h;
    L->w = w;
    L->ntimes = ntimes;
    size_t hw = (size_t)h * w, t = (size_t)ntimes;
    L->lat = malloc(sizeof(double) * (size_t)(h + w));
    L->argmax = malloc(sizeof(int32_t) * t * hw);
    L->rank = malloc(sizeof(int32_t) * t * k * hw);
    L->weight = malloc(sizeof(float) * t * n * hw);
    L->entropy = malloc(sizeof(float) * t * hw);
    L->confidence = malloc(sizeof(float) * t * hw);
    L->freq = calloc((size_t)n * hw, sizeof(float));
    if (!L->lat || !L->argmax || !L->rank || !L->weight || !L->entropy || !L->confidence || !L->freq)
        return sm_fail(SM_ERR_NUMERIC, "out of memory for the expert maps of %s", name);
    L->lon = L->lat + h;
    return SM_OK;
}

/* Maps of time slot t from raw gate values R (N, h, w). Ranks follow the raw values (the routing
 * order, ties to the lower expert index); weights are the softmax over all N. */
static void layer_maps_fill(layer_maps *L, int t, const float *R)
{
    size_t hw = (size_t)L->h * L->w;
    for (size_t p = 0; p < hw; p++) {
        double mx = -INFINITY;
        for (int e = 0; e < L->n; e++) mx = fmax(mx, R[(size_t)e * hw + p]);
        double z = 0;
        for (int e = 0; e < L->n; e++) z += exp(R[(size_t)e * hw + p] - mx);
        double h = 0, top1 = -1, top2 = 0;
        for (int e = 0; e < L->n; e++) {
            double q = exp(R[(size_t)e * hw + p] - mx) / z;
            L->weight[((size_t)t * L->n + e) * hw + p] = (float)q;
            if (q > 0) h -= q * log2(q);
            if (q > top1) {
                top2 = top1 < 0 ? 0 : top1;
                top1 = q;
            } else if (q > top2) {
                top2 = q;
            }
        }
        L->entropy[(size_t)t * hw + p] = (float)h;
        L->confidence[(size_t)t * hw + p] = (float)(L->n > 1 ? top1 - top2 : 1.0);
        /* Ranked experts by raw value: selection sort over k ranks. */
        int used[1024] = {0};
        for (int r = 0; r < L->k && r < 1024; r++) {
            int best = -1;
            for (int e = 0; e < L->n && e < 1024; e++) {
                if (used[e]) continue;
                if (best < 0 || R[(size_t)e * hw + p] > R[(size_t)best * hw + p]) best = e;
            }
            used[best] = 1;
            L->rank[((size_t)t * L->k + r) * hw + p] = best;
            if (r == 0) {
                L->argmax[(size_t)t * hw + p] = best;
                L->freq[(size_t)best * hw + p] += 1.0f;
            }
        }
    }
}

static void layer_maps_finish(layer_maps *L)
{
    size_t n = (size_t)L->n * L->h * L->w;
    for (size_t i = 0; i < n; i++) L->freq[i] /= (float)L->ntimes;
}

/* A layer on a grid coarser by a power of two: coordinates are the means of the fine cells. */
static void layer_coordinates(layer_maps *L, const grid *g)
{
    int fy = g->nlat / L->h, fx = g->nlon / L->w;
    for (int j = 0; j < L->h; j++) {
        double s = 0;
        for (int a = 0; a < fy; a++) s += g->lat[j * fy + a];
        L->lat[j] = s / fy;
    }
    for (int i = 0; i < L->w; i++) {
        double s = 0;
        for (int a = 0; a < fx; a++) s += g->lon[i * fx + a];
        L->lon[i] = s / fx;
    }
}

/* ------------------------------------------------------------------ NetCDF output */

typedef struct {
    int dim_y, dim_x, dim_e, dim_r, dim_t;
    int var_y, var_x, var_e;
    int v_map, v_rank, v_weight, v_entropy, v_conf, v_freq, v_time;
} layer_vars;

static int nc_bad(const char *path, const char *what, int s) { return sm_fail(SM_ERR_IO, "%s: %s: %s", path, what, nc_strerror(s)); }

static void var_name(char *buf, size_t len, const char *base, const layer_maps *L, int suffix)
{
    if (suffix)
        snprintf(buf, len, "%s_%s", base, L->name);
    else
        snprintf(buf, len, "%s", base);
}

static int define_layer(int ncid, const char *path, const layer_maps *L, const cf_grid *g, int suffix, int time_dim,
                        layer_vars *V)
{
    char name[160];
    int s;
    memset(V, -1, sizeof *V);
    int own_grid = L->h != g->nlat || L->w != g->nlon;
    V->dim_y = g->dim_y;
    V->dim_x = g->dim_x;
    if (own_grid) {
        cf_grid lg = {.is_latlon = g->is_latlon, .nlat = L->h, .nlon = L->w};
        const char *yn = g->is_latlon ? "latitude" : "y", *xn = g->is_latlon ? "longitude" : "x";
        char yname[128], xname[128];
        snprintf(yname, sizeof yname, "%s_%s", yn, L->name);
        snprintf(xname, sizeof xname, "%s_%s", xn, L->name);
        if ((s = nc_def_dim(ncid, yname, (size_t)L->h, &V->dim_y)) || (s = nc_def_dim(ncid, xname, (size_t)L->w, &V->dim_x)) ||
            (s = nc_def_var(ncid, yname, NC_DOUBLE, 1, &V->dim_y, &V->var_y)) ||
            (s = nc_def_var(ncid, xname, NC_DOUBLE, 1, &V->dim_x, &V->var_x)))
            return nc_bad(path, "define layer grid", s);
        cf_put_text(ncid, V->var_y, "units", lg.is_latlon ? "degrees_north" : "1");
        cf_put_text(ncid, V->var_x, "units", lg.is_latlon ? "degrees_east" : "1");
        if (lg.is_latlon) {
            cf_put_text(ncid, V->var_y, "standard_name", "latitude");
            cf_put_text(ncid, V->var_x, "standard_name", "longitude");
        }
        cf_put_text(ncid, V->var_y, "long_name", "cell-centre latitude of the coarser layer grid");
        cf_put_text(ncid, V->var_x, "long_name", "cell-centre longitude of the coarser layer grid");
    }
    var_name(name, sizeof name, "expert", L, suffix);
    if ((s = nc_def_dim(ncid, name, (size_t)L->n, &V->dim_e)) || (s = nc_def_var(ncid, name, NC_INT, 1, &V->dim_e, &V->var_e)))
        return nc_bad(path, "define expert", s);
    cf_put_text(ncid, V->var_e, "long_name", "expert index");
    if (L->k > 1) {
        var_name(name, sizeof name, "rank", L, suffix);
        if ((s = nc_def_dim(ncid, name, (size_t)L->k, &V->dim_r))) return nc_bad(path, "define rank", s);
    }
    int dims[4], nd = 0;
    if (time_dim >= 0) dims[nd++] = time_dim;
    int base = nd;
    char flags_meanings[4096] = "";
    int flag_values[1024];
    for (int e = 0; e < L->n && e < 1024; e++) {
        char item[32];
        snprintf(item, sizeof item, "%sexpert_%d", e ? " " : "", e);
        strncat(flags_meanings, item, sizeof flags_meanings - strlen(flags_meanings) - 1);
        flag_values[e] = e;
    }
    const char *gm = g->var_crs >= 0 ? "crs" : NULL;
    int fill = -1;
    /* argmax map */
    dims[base] = V->dim_y;
    dims[base + 1] = V->dim_x;
    var_name(name, sizeof name, "expert_map", L, suffix);
    if ((s = nc_def_var(ncid, name, NC_INT, base + 2, dims, &V->v_map))) return nc_bad(path, "define expert_map", s);
    nc_put_att_int(ncid, V->v_map, "_FillValue", NC_INT, 1, &fill);
    nc_put_att_int(ncid, V->v_map, "flag_values", NC_INT, (size_t)L->n, flag_values);
    cf_put_text(ncid, V->v_map, "flag_meanings", flags_meanings);
    char ln[256];
    snprintf(ln, sizeof ln, "expert in charge (argmax of the gate) of MoE layer %s", L->name);
    cf_put_text(ncid, V->v_map, "long_name", ln);
    if (gm) cf_put_text(ncid, V->v_map, "grid_mapping", gm);
    if (L->k > 1) {
        int rd[5], rn = 0;
        if (time_dim >= 0) rd[rn++] = time_dim;
        rd[rn++] = V->dim_r;
        rd[rn++] = V->dim_y;
        rd[rn++] = V->dim_x;
        var_name(name, sizeof name, "expert_rank", L, suffix);
        if ((s = nc_def_var(ncid, name, NC_INT, rn, rd, &V->v_rank))) return nc_bad(path, "define expert_rank", s);
        nc_put_att_int(ncid, V->v_rank, "_FillValue", NC_INT, 1, &fill);
        nc_put_att_int(ncid, V->v_rank, "flag_values", NC_INT, (size_t)L->n, flag_values);
        cf_put_text(ncid, V->v_rank, "flag_meanings", flags_meanings);
        cf_put_text(ncid, V->v_rank, "long_name", "expert selected at each rank (routing order)");
        if (gm) cf_put_text(ncid, V->v_rank, "grid_mapping", gm);
    }
    int wd[5], wn = 0;
    if (time_dim >= 0) wd[wn++] = time_dim;
    wd[wn++] = V->dim_e;
    wd[wn++] = V->dim_y;
    wd[wn++] = V->dim_x;
    var_name(name, sizeof name, "expert_weight", L, suffix);
    if ((s = nc_def_var(ncid, name, NC_FLOAT, wn, wd, &V->v_weight))) return nc_bad(path, "define expert_weight", s);
    cf_put_text(ncid, V->v_weight, "long_name", "softmax over the experts of the raw gate values");
    cf_put_text(ncid, V->v_weight, "units", "1");
    if (gm) cf_put_text(ncid, V->v_weight, "grid_mapping", gm);
    var_name(name, sizeof name, "gate_entropy", L, suffix);
    if ((s = nc_def_var(ncid, name, NC_FLOAT, base + 2, dims, &V->v_entropy))) return nc_bad(path, "define gate_entropy", s);
    cf_put_text(ncid, V->v_entropy, "long_name", "entropy of the expert weights");
    cf_put_text(ncid, V->v_entropy, "units", "bit");
    if (gm) cf_put_text(ncid, V->v_entropy, "grid_mapping", gm);
    var_name(name, sizeof name, "gate_confidence", L, suffix);
    if ((s = nc_def_var(ncid, name, NC_FLOAT, base + 2, dims, &V->v_conf))) return nc_bad(path, "define gate_confidence", s);
    cf_put_text(ncid, V->v_conf, "long_name", "top-1 minus top-2 expert weight");
    cf_put_text(ncid, V->v_conf, "units", "1");
    if (gm) cf_put_text(ncid, V->v_conf, "grid_mapping", gm);
    if (time_dim >= 0) {
        int fd[3] = {V->dim_e, V->dim_y, V->dim_x};
        var_name(name, sizeof name, "expert_frequency", L, suffix);
        if ((s = nc_def_var(ncid, name, NC_FLOAT, 3, fd, &V->v_freq))) return nc_bad(path, "define expert_frequency", s);
        cf_put_text(ncid, V->v_freq, "long_name", "fraction of times each expert is in charge of the point");
        cf_put_text(ncid, V->v_freq, "units", "1");
        if (gm) cf_put_text(ncid, V->v_freq, "grid_mapping", gm);
    }
    return SM_OK;
}

static int write_layer(int ncid, const char *path, const layer_maps *L, const layer_vars *V)
{
    int s = NC_NOERR;
    if (V->var_y >= 0) {
        s = nc_put_var_double(ncid, V->var_y, L->lat);
        if (s == NC_NOERR) s = nc_put_var_double(ncid, V->var_x, L->lon);
    }
    int *idx = malloc(sizeof(int) * (size_t)L->n);
    for (int e = 0; e < L->n; e++) idx[e] = e;
    if (s == NC_NOERR) s = nc_put_var_int(ncid, V->var_e, idx);
    free(idx);
    if (s == NC_NOERR) s = nc_put_var_int(ncid, V->v_map, L->argmax);
    if (s == NC_NOERR && V->v_rank >= 0) s = nc_put_var_int(ncid, V->v_rank, L->rank);
    if (s == NC_NOERR) s = nc_put_var_float(ncid, V->v_weight, L->weight);
    if (s == NC_NOERR) s = nc_put_var_float(ncid, V->v_entropy, L->entropy);
    if (s == NC_NOERR) s = nc_put_var_float(ncid, V->v_conf, L->confidence);
    if (s == NC_NOERR && V->v_freq >= 0) s = nc_put_var_float(ncid, V->v_freq, L->freq);
    return s == NC_NOERR ? SM_OK : nc_bad(path, "write expert maps", s);
}

/* ------------------------------------------------------------------ static maps */

/* Static maps of every latent-gate layer straight from the parameters. */
static int static_maps(const sm_model *m, const grid *g, layer_maps *maps, int *n_maps, int *n_dynamic)
{
    *n_maps = 0;
    *n_dynamic = 0;
    const param_store *ps = model_params_const(m);
    for (int i = 0; i < model_moe_count(m) && *n_maps < EXPERTS_MAX_LAYERS; i++) {
        model_moe_info info;
        model_moe_get(m, i, &info);
        if (info.shape.gate != SMOE_GATE_LATENT) {
            (*n_dynamic)++;
            continue;
        }
        layer_maps *L = &maps[(*n_maps)++];
        int st = layer_maps_alloc(L, info.name, info.shape.n_experts, info.shape.k, info.shape.h, info.shape.w, 1);
        if (st) return st;
        L->is_static = 1;
        layer_coordinates(L, g);
        const float *gate = param_data((param_store *)ps, info.param_gate);
        layer_maps_fill(L, 0, gate);
        layer_maps_finish(L);
    }
    return SM_OK;
}

int experts_append_static(int ncid, const char *path, const sm_model *m, const cf_grid *g)
{
    grid gg = {.kind = g->is_latlon ? GRID_LATLON : GRID_XY, .nlat = g->nlat, .nlon = g->nlon, .lat = (double *)g->lat,
               .lon = (double *)g->lon};
    layer_maps maps[EXPERTS_MAX_LAYERS];
    int n = 0, n_dyn = 0;
    int st = static_maps(m, &gg, maps, &n, &n_dyn);
    layer_vars V[EXPERTS_MAX_LAYERS];
    for (int i = 0; st == SM_OK && i < n; i++) st = define_layer(ncid, path, &maps[i], g, n > 1, -1, &V[i]);
    int s = st == SM_OK ? nc_enddef(ncid) : NC_NOERR;
    if (s != NC_NOERR) st = nc_bad(path, "end define", s);
    for (int i = 0; st == SM_OK && i < n; i++) st = write_layer(ncid, path, &maps[i], &V[i]);
    if (st == SM_OK && n_dyn > 0)
        log_warn("%d MoE layer(s) have input-dependent gates; use 'smoecast experts --dataset' for their maps", n_dyn);
    if (st == SM_OK && n == 0 && n_dyn == 0) st = sm_fail(SM_ERR_USAGE, "%s: the model has no MoE layer, so there are no expert maps", path);
    for (int i = 0; i < n; i++) layer_maps_free(&maps[i]);
    return st;
}

/* ------------------------------------------------------------------ checkpoint -> model */

/* Builds the model stored in a checkpoint (its config, channel counts and grid) and loads it. */
static int open_checkpoint_model(const char *path, int batch, sm_config **cfg, grid **g, sm_model **m)
{
    int st = checkpoint_load_config(path, 0, NULL, cfg);
    if (st) return st;
    int c_in, c_out;
    if ((st = checkpoint_read_grid(path, g, &c_in, &c_out))) return st;
    if ((st = model_build(&(*cfg)->model, c_in, c_out, *g, batch, 0, (uint64_t)(*cfg)->run.seed, m))) return st;
    return checkpoint_load(path, *m, *cfg, *g, NULL);
}

/* ------------------------------------------------------------------ dynamic maps */

/* Runs the model on the dataset's inputs at the selected times and records every
 * input-dependent gate's maps (one per time). */
static int dynamic_maps(const experts_opts *o, sm_config *cfg, const grid *g, sm_model *m, layer_maps *maps, int *n_maps,
                        double **times_out, int *nt_out, char *calendar, size_t cal_len)
{
    dataset *ds = NULL;
    sample_layout L;
    memset(&L, 0, sizeof L);
    sample_cache *cache = NULL;
    sample_split all;
    memset(&all, 0, sizeof all);
    ckpt_state cs;
    checkpoint_state_init(&cs);
    int st = dataset_open(o->dataset, &ds);
    if (!st) st = samples_layout_init(&L, &cfg->data, ds);
    if (!st && (ds->nlat != g->nlat || ds->nlon != g->nlon))
        st = sm_fail(SM_ERR_IO, "%s: grid %dx%d differs from the checkpoint's %dx%d", o->dataset, ds->nlat, ds->nlon, g->nlat, g->nlon);
    if (!st) st = checkpoint_load(o->checkpoint, m, cfg, g, &cs);
    if (!st) st = train_stats_from_checkpoint(&L, &cs, o->checkpoint);
    if (!st) st = sample_cache_create(ds, &cache);
    /* Times: all usable ones, or those selected. */
    double start = -INFINITY, end = INFINITY;
    if (!st && o->times && strcmp(o->times, "all") != 0) {
        cf_calendar cal;
        if (cf_calendar_parse(ds->calendar, &cal) != SM_OK) cal = CAL_PROLEPTIC;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", o->times);
        char *slash = strchr(buf, '/');
        if (slash) *slash = '\0';
        cf_date d0, d1;
        if (cf_date_parse(buf, &d0) || (slash && cf_date_parse(slash + 1, &d1)))
            st = sm_fail(SM_ERR_USAGE, "--times '%s': use 'all', a time or START/END", o->times);
        else {
            start = cf_date_to_hours(&d0, cal);
            end = slash ? cf_date_to_hours(&d1, cal) : start;
        }
    }
    if (!st) st = samples_valid_inits(&L, ds, start, end, &all);
    if (!st && all.n == 0) st = sm_fail(SM_ERR_USAGE, "--times %s: no time of %s has complete inputs", o->times ? o->times : "all", o->dataset);
    int batch = model_max_batch(m);
    float *input = NULL;
    if (!st) {
        input = model_input(m);
        int k = 0;
        for (int i = 0; i < model_moe_count(m); i++) {
            model_moe_info info;
            model_moe_get(m, i, &info);
            if (info.shape.gate == SMOE_GATE_LATENT || *n_maps + k >= EXPERTS_MAX_LAYERS) continue;
            layer_maps *lm = &maps[*n_maps + k++];
            if ((st = layer_maps_alloc(lm, info.name, info.shape.n_experts, info.shape.k, info.shape.h, info.shape.w, (int)all.n)))
                break;
            layer_coordinates(lm, g);
        }
        for (int64_t first = 0; !st && first < all.n; first += batch) {
            int n = (int)(all.n - first < batch ? all.n - first : batch);
            model_set_batch(m, n);
            if ((st = samples_assemble(&L, cache, all.idx + first, n, input, NULL))) break;
            if ((st = model_forward(m, 0, NULL))) break;
            int kk = 0;
            for (int i = 0; i < model_moe_count(m); i++) {
                model_moe_info info;
                model_moe_get(m, i, &info);
                if (info.shape.gate == SMOE_GATE_LATENT) continue;
                layer_maps *lm = &maps[*n_maps + kk++];
                size_t per = (size_t)lm->n * lm->h * lm->w;
                for (int b = 0; b < n; b++) layer_maps_fill(lm, (int)(first + b), info.gate_raw + (size_t)b * per);
            }
        }
        if (!st) {
            for (int i = 0; i < k; i++) layer_maps_finish(&maps[*n_maps + i]);
            *n_maps += k;
            *times_out = malloc(sizeof(double) * (size_t)all.n);
            for (int64_t i = 0; i < all.n; i++) (*times_out)[i] = ds->times[all.idx[i]];
            *nt_out = (int)all.n;
            snprintf(calendar, cal_len, "%s", ds->calendar);
        }
    }
    checkpoint_state_free_arrays(&cs);
    samples_split_free(&all);
    sample_cache_free(cache);
    samples_layout_free(&L);
    if (ds) dataset_close(ds);
    return st;
}

/* ------------------------------------------------------------------ statistics */

/* Mutual information (bits) of an expert map with integer labels, cos-lat weighted. */
static double weighted_mi(const int32_t *a, int na, const int32_t *b, int nb, int h, int w, const double *wrow)
{
    double *joint = calloc((size_t)na * nb, sizeof *joint), total = 0;
    if (!joint) return NAN;
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++) {
            size_t p = (size_t)j * w + i;
            if (a[p] < 0 || b[p] < 0) continue;
            joint[(size_t)a[p] * nb + b[p]] += wrow[j];
            total += wrow[j];
        }
    double mi = 0;
    for (int x = 0; x < na; x++) {
        double px = 0;
        for (int y = 0; y < nb; y++) px += joint[(size_t)x * nb + y];
        for (int y = 0; y < nb; y++) {
            double pxy = joint[(size_t)x * nb + y];
            if (pxy <= 0) continue;
            double py = 0;
            for (int xx = 0; xx < na; xx++) py += joint[(size_t)xx * nb + y];
            mi += pxy / total * log2(pxy * total / (px * py));
        }
    }
    free(joint);
    return mi;
}

/* A reference map "FILE:VAR" (2-D, or the first field of a higher-rank variable) on the layer
 * grid as integer labels, -1 where missing. A map of the layer's shape is taken as it is (rows
 * flipped when its latitude runs the other way); on a lat-lon layer any other regular lat-lon map
 * is regridded by nearest neighbour. `binary`: values >= 0.5 are 1, others 0 (land-sea masks may
 * be fractions or categories 0 ocean, 1 land, 2 lake); otherwise each distinct value is one
 * category (integer codes, or class values such as the heat task's diffusivities), numbered in
 * increasing order. `option` names the command-line option in errors. */
static int read_label_map(const char *spec, const char *option, const layer_maps *L, int is_latlon, int binary,
                          int32_t *labels, int *n_categories)
{
    char file[1024], var[256];
    const char *colon = strrchr(spec, ':');
    if (!colon) return sm_fail(SM_ERR_USAGE, "%s '%s': use FILE:VARIABLE", option, spec);
    snprintf(file, sizeof file, "%.*s", (int)(colon - spec), spec);
    snprintf(var, sizeof var, "%s", colon + 1);
    int ncid, vid, nd, dims[NC_MAX_VAR_DIMS], s = nc_open(file, NC_NOWRITE, &ncid);
    if (s != NC_NOERR) return nc_bad(file, "cannot open the reference map", s);
    if ((s = nc_inq_varid(ncid, var, &vid)) != NC_NOERR) {
        nc_close(ncid);
        return sm_fail(SM_ERR_IO, "%s: no variable '%s' for %s", file, var, option);
    }
    nc_inq_varndims(ncid, vid, &nd);
    nc_inq_vardimid(ncid, vid, dims);
    if (nd < 2) {
        nc_close(ncid);
        return sm_fail(SM_ERR_IO, "%s: variable %s is not a 2-D field", file, var);
    }
    size_t ny, nx;
    char yname[NC_MAX_NAME + 1], xname[NC_MAX_NAME + 1];
    nc_inq_dim(ncid, dims[nd - 2], yname, &ny);
    nc_inq_dim(ncid, dims[nd - 1], xname, &nx);
    const int same_shape = ny == (size_t)L->h && nx == (size_t)L->w;
    if (!same_shape && !is_latlon) {
        nc_close(ncid);
        return sm_fail(SM_ERR_IO, "%s: %s is %zux%zu but layer %s is %dx%d and not on a latitude-longitude grid "
                       "(only lat-lon maps are regridded)", file, var, ny, nx, L->name, L->h, L->w);
    }
    double *coord = malloc(sizeof(double) * (ny + nx)), *vals = malloc(sizeof(double) * ny * nx);
    float *out = malloc(sizeof(float) * (size_t)L->h * L->w);
    size_t start[NC_MAX_VAR_DIMS] = {0}, count[NC_MAX_VAR_DIMS];
    for (int d = 0; d < nd; d++) count[d] = 1;
    count[nd - 2] = ny;
    count[nd - 1] = nx;
    int st = SM_OK;
    if (!coord || !vals || !out) st = sm_fail(SM_ERR_NUMERIC, "out of memory for %s", spec);
    if (!st && (s = nc_get_vara_double(ncid, vid, start, count, vals)) != NC_NOERR)
        st = nc_bad(file, "cannot read the reference map", s);
    int vy, vx, have_coords = 0;
    if (!st && is_latlon && nc_inq_varid(ncid, yname, &vy) == NC_NOERR && nc_inq_varid(ncid, xname, &vx) == NC_NOERR &&
        nc_get_var_double(ncid, vy, coord) == NC_NOERR && nc_get_var_double(ncid, vx, coord + ny) == NC_NOERR)
        have_coords = 1;
    nc_close(ncid);
    if (!st && !same_shape && !have_coords)
        st = sm_fail(SM_ERR_IO, "%s: %s has no latitude/longitude coordinate variables to regrid it", file, var);
    if (!st && same_shape) {
        const int flip = have_coords && ny > 1 && L->h > 1 && (coord[1] - coord[0]) * (L->lat[1] - L->lat[0]) < 0;
        for (int j = 0; j < L->h; j++)
            for (int i = 0; i < L->w; i++)
                out[(size_t)j * L->w + i] = (float)vals[(size_t)(flip ? L->h - 1 - j : j) * nx + i];
    } else if (!st) {
        src_geometry *geo = NULL;
        grid *dst = NULL;
        regrid_weights *rw = NULL;
        float *tmp = malloc(sizeof(float) * (size_t)L->h * L->w);
        if (!tmp) st = sm_fail(SM_ERR_NUMERIC, "out of memory for %s", spec);
        if (!st && nx > 1)
            st = geometry_create_regular((int)ny, coord, (int)nx, coord[ny], coord[ny + 1] - coord[ny], &geo);
        if (!st) st = grid_create_latlon("layer", L->h, L->lat, L->w, L->lon, &dst);
        if (!st) st = regrid_weights_create(geo, dst, REGRID_NEAREST, &rw);
        if (!st) {
            regrid_apply(rw, vals, tmp);
            /* grid_create_latlon stores latitude descending; L->lat may be either way. */
            for (int j = 0; j < L->h; j++) {
                int jj = dst->lat[0] == L->lat[0] ? j : L->h - 1 - j;
                memcpy(out + (size_t)j * L->w, tmp + (size_t)jj * L->w, sizeof(float) * L->w);
            }
        }
        regrid_weights_free(rw);
        grid_free(dst);
        geometry_free(geo);
        free(tmp);
    }
    int n = 2;
    if (!st && binary) {
        for (size_t p = 0; p < (size_t)L->h * L->w; p++) labels[p] = isnan(out[p]) ? -1 : out[p] >= 0.5f ? 1 : 0;
    } else if (!st && (n = moe_labels_from_values(out, (size_t)L->h * L->w, MOE_LABEL_MAX_CATEGORIES, labels)) < 0) {
        st = sm_fail(SM_ERR_IO, "%s: %s has more than %d distinct values; %s needs a categorical map", file, var,
                     MOE_LABEL_MAX_CATEGORIES, option);
    }
    *n_categories = n;
    free(coord);
    free(vals);
    free(out);
    return st;
}

/* Adjusted Rand index of the expert map against labels over the points where both exist. */
static double map_ari(const int32_t *argmax, int n_experts, const int32_t *labels, int n_labels, size_t np)
{
    int32_t *a = malloc(sizeof(int32_t) * np), *b = malloc(sizeof(int32_t) * np);
    size_t n = 0;
    for (size_t p = 0; a && b && p < np; p++)
        if (argmax[p] >= 0 && labels[p] >= 0) {
            a[n] = argmax[p];
            b[n++] = labels[p];
        }
    double ari = a && b ? moe_adjusted_rand_index(n, a, n_experts, b, n_labels) : NAN;
    free(a);
    free(b);
    return ari;
}

/* Mean absolute error of a forecast file inside each expert's region (first output variable
 * that the truth dataset has; all inits and leads of the default forecast layout). */
static int region_errors(const experts_opts *o, const layer_maps *L, double *mae, double *npts)
{
    dataset *truth = NULL;
    int st = dataset_open(o->truth, &truth);
    if (st) return st;
    int ncid, s = nc_open(o->forecast, NC_NOWRITE, &ncid);
    if (s != NC_NOERR) {
        dataset_close(truth);
        return nc_bad(o->forecast, "cannot open the forecast", s);
    }
    int nvars;
    nc_inq_nvars(ncid, &nvars);
    int fvar = -1, tvar = -1;
    for (int v = 0; v < nvars && fvar < 0; v++) {
        char name[NC_MAX_NAME + 1];
        int nd;
        nc_inq_varname(ncid, v, name);
        nc_inq_varndims(ncid, v, &nd);
        if (nd != 4) continue;
        int t = dataset_find_var(truth, name);
        if (t >= 0) {
            fvar = v;
            tvar = t;
        }
    }
    size_t nfrt = 0, nfp = 0;
    int vfrt, vfp, dfrt, dfp;
    if (fvar < 0 || nc_inq_dimid(ncid, "forecast_reference_time", &dfrt) || nc_inq_dimid(ncid, "forecast_period", &dfp)) {
        nc_close(ncid);
        dataset_close(truth);
        return sm_fail(SM_ERR_IO, "%s: no (forecast_reference_time, forecast_period, lat, lon) variable that %s also has", o->forecast, o->truth);
    }
    nc_inq_dimlen(ncid, dfrt, &nfrt);
    nc_inq_dimlen(ncid, dfp, &nfp);
    double *frt = malloc(sizeof(double) * nfrt), *fp = malloc(sizeof(double) * nfp);
    nc_inq_varid(ncid, "forecast_reference_time", &vfrt);
    nc_inq_varid(ncid, "forecast_period", &vfp);
    nc_get_var_double(ncid, vfrt, frt);
    nc_get_var_double(ncid, vfp, fp);
    size_t np = (size_t)truth->nlat * truth->nlon;
    float *f = malloc(sizeof(float) * np), *y = malloc(sizeof(float) * np);
    if (truth->nlat != L->h || truth->nlon != L->w)
        st = sm_fail(SM_ERR_USAGE, "per-expert errors need a layer on the full grid (layer %s is %dx%d)", L->name, L->h, L->w);
    for (int e = 0; e < L->n; e++) mae[e] = npts[e] = 0;
    for (size_t i = 0; !st && i < nfrt; i++)
        for (size_t j = 0; !st && j < nfp; j++) {
            int t = dataset_find_time(truth, frt[i] + fp[j]);
            if (t < 0) continue;
            size_t start[4] = {i, j, 0, 0}, count[4] = {1, 1, (size_t)truth->nlat, (size_t)truth->nlon};
            if ((s = nc_get_vara_float(ncid, fvar, start, count, f)) != NC_NOERR) {
                st = nc_bad(o->forecast, "read", s);
                break;
            }
            if ((st = dataset_read(truth, tvar, t, 0, y))) break;
            for (size_t p = 0; p < np; p++) {
                if (isnan(f[p]) || isnan(y[p])) continue;
                int e = L->argmax[p];
                mae[e] += fabs((double)f[p] - y[p]);
                npts[e] += 1;
            }
        }
    for (int e = 0; e < L->n; e++) mae[e] = npts[e] > 0 ? mae[e] / npts[e] : NAN;
    free(frt);
    free(fp);
    free(f);
    free(y);
    nc_close(ncid);
    dataset_close(truth);
    return st;
}

static int write_stats(const experts_opts *o, const layer_maps *maps, int n_maps, int is_latlon)
{
    outfile out;
    FILE *csv = NULL;
    int st = SM_OK;
    if (o->stats_csv) {
        if ((st = outfile_begin(&out, o->stats_csv))) return st;
        csv = fopen(out.tmp_path, "w");
        if (!csv) {
            outfile_abort(&out);
            return sm_fail(SM_ERR_IO, "%s: cannot write", o->stats_csv);
        }
        fprintf(csv, "layer,expert,area_share,mae,mi_landsea_bits,mi_latband_bits,ari_labels,mi_labels_bits\n");
    }
    for (int l = 0; l < n_maps && !st; l++) {
        const layer_maps *L = &maps[l];
        size_t hw = (size_t)L->h * L->w;
        double *wrow = malloc(sizeof(double) * (size_t)L->h), area[1024] = {0}, total = 0;
        int32_t *bands = malloc(sizeof(int32_t) * hw), *lsm = malloc(sizeof(int32_t) * hw);
        int32_t *ref = malloc(sizeof(int32_t) * hw);
        for (int j = 0; j < L->h; j++) wrow[j] = is_latlon ? cos(L->lat[j] * DEG2RAD) : 1.0;
        for (int j = 0; j < L->h; j++)
            for (int i = 0; i < L->w; i++) {
                size_t p = (size_t)j * L->w + i;
                area[L->argmax[p]] += wrow[j];
                total += wrow[j];
            }
        moe_latitude_band_labels(is_latlon ? L->lat : NULL, L->h, L->w, bands);
        double mi_band = weighted_mi(L->argmax, L->n, bands, 6, L->h, L->w, wrow);
        double mi_lsm = NAN;
        int n_cat = 0;
        if (o->lsm && (st = read_label_map(o->lsm, "--lsm", L, is_latlon, 1, lsm, &n_cat)) == SM_OK)
            mi_lsm = weighted_mi(L->argmax, L->n, lsm, 2, L->h, L->w, wrow);
        double ari_ref = NAN, mi_ref = NAN;
        if (!st && o->labels && (st = read_label_map(o->labels, "--labels", L, is_latlon, 0, ref, &n_cat)) == SM_OK) {
            ari_ref = map_ari(L->argmax, L->n, ref, n_cat, hw);
            mi_ref = weighted_mi(L->argmax, L->n, ref, n_cat, L->h, L->w, wrow);
        }
        double mae[1024], npts[1024];
        int have_err = 0;
        if (!st && o->forecast && o->truth) {
            if ((st = region_errors(o, L, mae, npts)) == SM_OK) have_err = 1;
        }
        if (!st) {
            printf("layer %s: %d experts on %dx%d; MI with latitude bands %.3f bits", L->name, L->n, L->h, L->w, mi_band);
            if (!isnan(mi_lsm)) printf(", with land/sea %.3f bits", mi_lsm);
            if (o->labels) printf("; against %s: ARI %.4f, MI %.3f bits", o->labels, ari_ref, mi_ref);
            printf("\n  expert  area share%s\n", have_err ? "   MAE in region" : "");
            for (int e = 0; e < L->n; e++) {
                printf("  %6d  %10.4f", e, area[e] / total);
                if (have_err) printf("   %14.5g", mae[e]);
                printf("\n");
                if (csv)
                    fprintf(csv, "%s,%d,%.6f,%.6g,%.6g,%.6g,%.6g,%.6g\n", L->name, e, area[e] / total,
                            have_err ? mae[e] : NAN, mi_lsm, mi_band, ari_ref, mi_ref);
            }
        }
        free(wrow);
        free(bands);
        free(lsm);
        free(ref);
    }
    if (csv) {
        if (fclose(csv) != 0 && !st) st = sm_fail(SM_ERR_IO, "%s: write failed", o->stats_csv);
        if (st)
            outfile_abort(&out);
        else
            st = outfile_commit(&out);
    }
    return st;
}

/* ------------------------------------------------------------------ command */

int experts_run(const experts_opts *o)
{
    sm_config *cfg = NULL;
    grid *g = NULL;
    sm_model *m = NULL;
    layer_maps maps[EXPERTS_MAX_LAYERS];
    int n_maps = 0, n_dynamic = 0, nt = 0;
    double *times = NULL;
    char calendar[32] = "proleptic_gregorian";
    int st = open_checkpoint_model(o->checkpoint, 8, &cfg, &g, &m);
    if (!st && model_moe_count(m) == 0)
        st = sm_fail(SM_ERR_USAGE, "%s: the model (%s) has no MoE layer, so there are no expert maps; train one with model.moe.enabled=true",
                     o->checkpoint, cfg->model.architecture);
    if (!st) st = static_maps(m, g, maps, &n_maps, &n_dynamic);
    if (!st && n_dynamic > 0) {
        if (!o->dataset)
            st = sm_fail(SM_ERR_USAGE, "%s: %d MoE layer(s) have input-dependent gates; give --dataset (and --times) to map them",
                         o->checkpoint, n_dynamic);
        else
            st = dynamic_maps(o, cfg, g, m, maps, &n_maps, &times, &nt, calendar, sizeof calendar);
    }
    if (!st && o->out) {
        outfile out;
        int ncid, s;
        if ((st = outfile_begin(&out, o->out)) == SM_OK) {
            if ((s = nc_create(out.tmp_path, NC_NETCDF4 | NC_CLOBBER, &ncid)) != NC_NOERR) {
                outfile_abort(&out);
                st = nc_bad(o->out, "cannot create", s);
            }
        }
        if (!st) {
            cf_grid cg = {.is_latlon = g->kind == GRID_LATLON, .nlat = g->nlat, .nlon = g->nlon, .lat = g->lat, .lon = g->lon};
            cf_global_attributes(ncid, "smoecast expert-location maps", o->history);
            cf_put_text(ncid, NC_GLOBAL, "smoecast_checkpoint", o->checkpoint);
            s = cf_define_grid(ncid, &cg);
            int dim_t = -1, var_t = -1;
            if (s == NC_NOERR && nt > 0) {
                s = nc_def_dim(ncid, "time", (size_t)nt, &dim_t);
                if (s == NC_NOERR) s = cf_define_time(ncid, "time", "time", "time of the gate input", calendar, 1, &dim_t, &var_t);
            }
            if (s != NC_NOERR) st = nc_bad(o->out, "define", s);
            layer_vars V[EXPERTS_MAX_LAYERS];
            for (int i = 0; !st && i < n_maps; i++) st = define_layer(ncid, o->out, &maps[i], &cg, n_maps > 1, maps[i].is_static ? -1 : dim_t, &V[i]);
            if (!st && (s = nc_enddef(ncid)) != NC_NOERR) st = nc_bad(o->out, "end define", s);
            if (!st && (s = cf_put_grid(ncid, &cg)) != NC_NOERR) st = nc_bad(o->out, "write grid", s);
            if (!st && var_t >= 0 && (s = nc_put_var_double(ncid, var_t, times)) != NC_NOERR) st = nc_bad(o->out, "write time", s);
            for (int i = 0; !st && i < n_maps; i++) st = write_layer(ncid, o->out, &maps[i], &V[i]);
            s = nc_close(ncid);
            if (!st && s != NC_NOERR) st = nc_bad(o->out, "close", s);
            if (st)
                outfile_abort(&out);
            else
                st = outfile_commit(&out);
        }
    }
    if (!st) st = write_stats(o, maps, n_maps, g->kind == GRID_LATLON);
    for (int i = 0; i < n_maps; i++) layer_maps_free(&maps[i]);
    free(times);
    model_free(m);
    grid_free(g);
    config_free(cfg);
    return st;
}
