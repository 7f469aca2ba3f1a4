/* The dataset file: NetCDF-4 writer (through core/outfile.h) and reader. */
#include "data/dataset.h"
#include "io/nc_attr.h"
#include "core/log.h"
#include "core/outfile.h"
#include "io/cf_output.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dataset_writer {
    outfile out;
    int ncid;
    int open;
    int nlat, nlon, ntimes, nmembers, nvars;
    int *varids;
    dataset_var_info *vars;
};

#define NCCHK(call, what)                                                                      \
    do {                                                                                       \
        int s_ = (call);                                                                       \
        if (s_ != NC_NOERR) {                                                                  \
            st = sm_fail(SM_ERR_IO, "%s: %s: %s", path, what, nc_strerror(s_));                \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

static int put_text(int ncid, int varid, const char *name, const char *text)
{
    return nc_put_att_text(ncid, varid, name, strlen(text), text);
}

int dataset_writer_create(const char *path, const dataset_layout *L, dataset_writer **out)
{
    int st = SM_OK;
    if (L->nlat < 1 || L->nlon < 1 || L->ntimes < 1 || L->nvars < 1)
        return sm_fail(SM_ERR_IO, "%s: empty dataset (%d x %d grid, %d times, %d variables)", path, L->nlon, L->nlat, L->ntimes, L->nvars);
    dataset_writer *w = calloc(1, sizeof *w);
    if (!w) return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
    w->nlat = L->nlat;
    w->nlon = L->nlon;
    w->ntimes = L->ntimes;
    w->nmembers = L->nmembers;
    w->nvars = L->nvars;
    w->varids = calloc((size_t)L->nvars, sizeof *w->varids);
    w->vars = calloc((size_t)L->nvars, sizeof *w->vars);
    if (!w->varids || !w->vars) {
        free(w->varids);
        free(w->vars);
        free(w);
        return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
    }
    memcpy(w->vars, L->vars, (size_t)L->nvars * sizeof *w->vars);
    if ((st = outfile_begin(&w->out, path))) {
        free(w->varids);
        free(w->vars);
        free(w);
        return st;
    }
    int ncid;
    NCCHK(nc_create(w->out.tmp_path, NC_NETCDF4 | NC_CLOBBER, &ncid), "cannot create the dataset");
    w->ncid = ncid;
    w->open = 1;
    nc_set_fill(ncid, NC_FILL, NULL);

    int dim_t, dim_r = -1;
    NCCHK(nc_def_dim(ncid, "time", (size_t)L->ntimes, &dim_t), "define time");
    if (L->nmembers > 0) NCCHK(nc_def_dim(ncid, "realization", (size_t)L->nmembers, &dim_r), "define realization");
    cf_grid cg = {L->is_latlon, L->nlat, L->nlon, L->lat, L->lon, 0, 0, 0, 0, -1};
    NCCHK(cf_define_grid(ncid, &cg), "define the latitude/longitude (or y/x) coordinates");
    const int dim_y = cg.dim_y, dim_x = cg.dim_x, v_crs = cg.var_crs;

    int v_time, v_frt = -1, v_fp = -1, v_real = -1;
    NCCHK(nc_def_var(ncid, "time", NC_DOUBLE, 1, &dim_t, &v_time), "define time");
    put_text(ncid, v_time, "standard_name", "time");
    put_text(ncid, v_time, "long_name", L->time_is_index ? "time axis value (the source axis had no units)" : "valid time");
    put_text(ncid, v_time, "units", L->time_is_index ? "1" : DATASET_TIME_UNITS);
    if (!L->time_is_index) put_text(ncid, v_time, "calendar", L->calendar[0] ? L->calendar : "standard");
    put_text(ncid, v_time, "axis", "T");
    int have_ref = 0;
    for (int t = 0; L->reference_times && t < L->ntimes; t++)
        if (isfinite(L->reference_times[t])) have_ref = 1;
    double nan = NAN;
    if (have_ref && !L->time_is_index) {
        NCCHK(nc_def_var(ncid, "forecast_reference_time", NC_DOUBLE, 1, &dim_t, &v_frt), "define forecast_reference_time");
        put_text(ncid, v_frt, "standard_name", "forecast_reference_time");
        put_text(ncid, v_frt, "long_name", "forecast reference time");
        put_text(ncid, v_frt, "units", DATASET_TIME_UNITS);
        put_text(ncid, v_frt, "calendar", L->calendar[0] ? L->calendar : "standard");
        nc_put_att_double(ncid, v_frt, "_FillValue", NC_DOUBLE, 1, &nan);
        NCCHK(nc_def_var(ncid, "forecast_period", NC_DOUBLE, 1, &dim_t, &v_fp), "define forecast_period");
        put_text(ncid, v_fp, "standard_name", "forecast_period");
        put_text(ncid, v_fp, "long_name", "forecast period");
        put_text(ncid, v_fp, "units", "hours");
        nc_put_att_double(ncid, v_fp, "_FillValue", NC_DOUBLE, 1, &nan);
    }
    if (dim_r >= 0) {
        NCCHK(nc_def_var(ncid, "realization", NC_INT, 1, &dim_r, &v_real), "define realization");
        put_text(ncid, v_real, "standard_name", "realization");
        put_text(ncid, v_real, "long_name", "ensemble member number");
        put_text(ncid, v_real, "units", "1");
        put_text(ncid, v_real, "axis", "E");
    }

    float fnan = NAN;
    for (int k = 0; k < L->nvars; k++) {
        const dataset_var_info *vi = &L->vars[k];
        int dims[4], nd = 0;
        size_t chunk[4];
        if (!vi->is_static) {
            dims[nd] = dim_t;
            chunk[nd++] = 1;
        }
        if (vi->has_members) {
            if (dim_r < 0) {
                st = sm_fail(SM_ERR_IO, "%s: variable %s has members but the dataset has no realization dimension", path, vi->name);
                goto fail;
            }
            dims[nd] = dim_r;
            chunk[nd++] = 1;
        }
        dims[nd] = dim_y;
        chunk[nd++] = (size_t)L->nlat;
        dims[nd] = dim_x;
        chunk[nd++] = (size_t)L->nlon;
        int vid;
        char what[160];
        snprintf(what, sizeof what, "define variable %s", vi->name);
        NCCHK(nc_def_var(ncid, vi->name, NC_FLOAT, nd, dims, &vid), what);
        NCCHK(nc_def_var_chunking(ncid, vid, NC_CHUNKED, chunk), what);
        NCCHK(nc_def_var_deflate(ncid, vid, 1, 1, 4), what);
        NCCHK(nc_def_var_fill(ncid, vid, NC_FILL, &fnan), what);
        size_t chunk_bytes = (size_t)L->nlat * (size_t)L->nlon * sizeof(float);
        nc_set_var_chunk_cache(ncid, vid, 2 * chunk_bytes + 4096, 11, 1.0f);
        if (vi->units[0]) put_text(ncid, vid, "units", vi->units);
        put_text(ncid, vid, "long_name", vi->long_name[0] ? vi->long_name : vi->name);
        if (vi->standard_name[0]) put_text(ncid, vid, "standard_name", vi->standard_name);
        if (v_frt >= 0 && !vi->is_static) put_text(ncid, vid, "coordinates", "forecast_reference_time forecast_period");
        if (v_crs >= 0) put_text(ncid, vid, "grid_mapping", "crs");
        nc_put_att_long(ncid, vid, "smoecast_param_id", NC_INT64, 1, &vi->param_id);
        put_text(ncid, vid, "smoecast_short_name", vi->short_name);
        if (vi->type_of_level[0]) put_text(ncid, vid, "smoecast_type_of_level", vi->type_of_level);
        if (isfinite(vi->level)) nc_put_att_double(ncid, vid, "smoecast_level", NC_DOUBLE, 1, &vi->level);
        nc_put_att_int(ncid, vid, "smoecast_categorical", NC_INT, 1, &vi->categorical);
        w->varids[k] = vid;
    }

    put_text(ncid, NC_GLOBAL, "Conventions", "CF-1.8");
    put_text(ncid, NC_GLOBAL, "title", "smoecast dataset");
    put_text(ncid, NC_GLOBAL, "institution", "smoecast");
    put_text(ncid, NC_GLOBAL, "source", "smoecast " SMOECAST_VERSION);
    put_text(ncid, NC_GLOBAL, "history", L->history ? L->history : "smoecast ingest");
    int fv = DATASET_FORMAT_VERSION;
    nc_put_att_int(ncid, NC_GLOBAL, "smoecast_format_version", NC_INT, 1, &fv);
    put_text(ncid, NC_GLOBAL, "smoecast_version", SMOECAST_VERSION);
    put_text(ncid, NC_GLOBAL, "smoecast_grid", L->grid_name[0] ? L->grid_name : "native");
    put_text(ncid, NC_GLOBAL, "smoecast_config", L->config_text ? L->config_text : "");
    put_text(ncid, NC_GLOBAL, "smoecast_inputs", L->inputs_text ? L->inputs_text : "");
    int tix = L->time_is_index;
    nc_put_att_int(ncid, NC_GLOBAL, "smoecast_time_is_index", NC_INT, 1, &tix);
    NCCHK(nc_enddef(ncid), "cannot finish the dataset header");

    NCCHK(nc_put_var_double(ncid, v_time, L->times), "write time");
    if (v_frt >= 0) {
        NCCHK(nc_put_var_double(ncid, v_frt, L->reference_times), "write forecast_reference_time");
        if (L->forecast_periods) NCCHK(nc_put_var_double(ncid, v_fp, L->forecast_periods), "write forecast_period");
    }
    if (v_real >= 0) NCCHK(nc_put_var_int(ncid, v_real, L->members), "write realization");
    NCCHK(cf_put_grid(ncid, &cg), "write latitude/longitude");
    if (v_crs >= 0) {
        int zero = 0;
        nc_put_var_int(ncid, v_crs, &zero);
    }
    *out = w;
    return SM_OK;
fail:
    dataset_writer_abort(w);
    return st;
}

static void field_start(const dataset_var_info *vi, int t, int member, int nlat, int nlon, size_t *start, size_t *count)
{
    int nd = 0;
    if (!vi->is_static) {
        start[nd] = (size_t)t;
        count[nd++] = 1;
    }
    if (vi->has_members) {
        start[nd] = (size_t)member;
        count[nd++] = 1;
    }
    start[nd] = 0;
    count[nd++] = (size_t)nlat;
    start[nd] = 0;
    count[nd] = (size_t)nlon;
}

static int check_index(const char *path, const dataset_var_info *vi, int nvars, int var, int t, int ntimes, int member, int nmembers)
{
    if (var < 0 || var >= nvars) return sm_fail(SM_ERR_IO, "%s: variable index %d out of range (%d variables)", path, var, nvars);
    if (!vi->is_static && (t < 0 || t >= ntimes))
        return sm_fail(SM_ERR_IO, "%s: variable %s: time index %d out of range (%d times)", path, vi->name, t, ntimes);
    if (vi->has_members && (member < 0 || member >= nmembers))
        return sm_fail(SM_ERR_IO, "%s: variable %s: member index %d out of range (%d members)", path, vi->name, member, nmembers);
    return SM_OK;
}

int dataset_writer_put(dataset_writer *w, int var, int t, int member, const float *data)
{
    const char *path = w->out.final_path;
    int st = check_index(path, &w->vars[var < 0 || var >= w->nvars ? 0 : var], w->nvars, var, t, w->ntimes, member, w->nmembers);
    if (st) return st;
    size_t start[4], count[4];
    field_start(&w->vars[var], t, member, w->nlat, w->nlon, start, count);
    int s = nc_put_vara_float(w->ncid, w->varids[var], start, count, data);
    if (s != NC_NOERR)
        return sm_fail(SM_ERR_IO, "%s: variable %s: cannot write time index %d: %s", path, w->vars[var].name, t, nc_strerror(s));
    return SM_OK;
}

int dataset_writer_get(dataset_writer *w, int var, int t, int member, float *out)
{
    const char *path = w->out.final_path;
    int st = check_index(path, &w->vars[var < 0 || var >= w->nvars ? 0 : var], w->nvars, var, t, w->ntimes, member, w->nmembers);
    if (st) return st;
    size_t start[4], count[4];
    field_start(&w->vars[var], t, member, w->nlat, w->nlon, start, count);
    int s = nc_get_vara_float(w->ncid, w->varids[var], start, count, out);
    if (s != NC_NOERR)
        return sm_fail(SM_ERR_IO, "%s: variable %s: cannot read back time index %d: %s", path, w->vars[var].name, t, nc_strerror(s));
    return SM_OK;
}

static void writer_free(dataset_writer *w)
{
    free(w->varids);
    free(w->vars);
    free(w);
}

int dataset_writer_commit(dataset_writer *w)
{
    int st = SM_OK;
    if (w->open) {
        int s = nc_close(w->ncid);
        w->open = 0;
        if (s != NC_NOERR) st = sm_fail(SM_ERR_IO, "%s: cannot finish the dataset: %s", w->out.final_path, nc_strerror(s));
    }
    if (st == SM_OK) st = outfile_commit(&w->out);
    else outfile_abort(&w->out);
    writer_free(w);
    return st;
}

void dataset_writer_abort(dataset_writer *w)
{
    if (!w) return;
    if (w->open) nc_close(w->ncid);
    w->open = 0;
    outfile_abort(&w->out);
    writer_free(w);
}

/* ---------------- reader ---------------- */

/* The attribute's text, "" when it is absent (NULL only when out of memory). */
static char *att_text_or_empty(int ncid, int varid, const char *name)
{
    char *s = nc_attr_text_dup(ncid, varid, name);
    return s ? s : calloc(1, 1);
}

void dataset_close(dataset *ds)
{
    if (!ds) return;
    if (ds->ncid >= 0) nc_close(ds->ncid);
    free(ds->lat);
    free(ds->lon);
    free(ds->times);
    free(ds->reference_times);
    free(ds->forecast_periods);
    free(ds->members);
    free(ds->vars);
    free(ds->varids);
    free(ds->config_text);
    free(ds->inputs_text);
    free(ds);
}

int dataset_open(const char *path, dataset **out)
{
    int st = SM_OK;
    dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
    ds->ncid = -1;
    snprintf(ds->path, sizeof ds->path, "%s", path);
    int ncid;
    NCCHK(nc_open(path, NC_NOWRITE, &ncid), "cannot open the dataset");
    ds->ncid = ncid;
    if (nc_get_att_int(ncid, NC_GLOBAL, "smoecast_format_version", &ds->format_version) != NC_NOERR) {
        st = sm_fail(SM_ERR_IO, "%s: not a smoecast dataset (no smoecast_format_version attribute; create it with 'smoecast ingest')", path);
        goto fail;
    }
    if (ds->format_version > DATASET_FORMAT_VERSION) {
        st = sm_fail(SM_ERR_IO, "%s: dataset format version %d is newer than this smoecast (%d)", path, ds->format_version, DATASET_FORMAT_VERSION);
        goto fail;
    }
    nc_attr_text(ncid, NC_GLOBAL, "smoecast_grid", ds->grid_name, sizeof ds->grid_name);
    nc_attr_text(ncid, NC_GLOBAL, "smoecast_version", ds->version, sizeof ds->version);
    ds->config_text = att_text_or_empty(ncid, NC_GLOBAL, "smoecast_config");
    ds->inputs_text = att_text_or_empty(ncid, NC_GLOBAL, "smoecast_inputs");
    nc_get_att_int(ncid, NC_GLOBAL, "smoecast_time_is_index", &ds->time_is_index);
    int dim, vid;
    size_t len;
    const char *yname = "latitude", *xname = "longitude";
    ds->is_latlon = 1;
    if (nc_inq_dimid(ncid, "latitude", &dim) != NC_NOERR) {
        ds->is_latlon = 0;
        yname = "y";
        xname = "x";
    }
    NCCHK(nc_inq_dimid(ncid, yname, &dim), "no latitude/y dimension");
    nc_inq_dimlen(ncid, dim, &len);
    ds->nlat = (int)len;
    NCCHK(nc_inq_dimid(ncid, xname, &dim), "no longitude/x dimension");
    nc_inq_dimlen(ncid, dim, &len);
    ds->nlon = (int)len;
    NCCHK(nc_inq_dimid(ncid, "time", &dim), "no time dimension");
    nc_inq_dimlen(ncid, dim, &len);
    ds->ntimes = (int)len;
    ds->lat = malloc((size_t)ds->nlat * sizeof *ds->lat);
    ds->lon = malloc((size_t)ds->nlon * sizeof *ds->lon);
    ds->times = malloc((size_t)(ds->ntimes ? ds->ntimes : 1) * sizeof *ds->times);
    ds->reference_times = malloc((size_t)(ds->ntimes ? ds->ntimes : 1) * sizeof *ds->reference_times);
    ds->forecast_periods = malloc((size_t)(ds->ntimes ? ds->ntimes : 1) * sizeof *ds->forecast_periods);
    if (!ds->lat || !ds->lon || !ds->times || !ds->reference_times || !ds->forecast_periods || !ds->config_text || !ds->inputs_text) {
        st = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
        goto fail;
    }
    NCCHK(nc_inq_varid(ncid, yname, &vid), "no latitude variable");
    NCCHK(nc_get_var_double(ncid, vid, ds->lat), "read latitude");
    NCCHK(nc_inq_varid(ncid, xname, &vid), "no longitude variable");
    NCCHK(nc_get_var_double(ncid, vid, ds->lon), "read longitude");
    NCCHK(nc_inq_varid(ncid, "time", &vid), "no time variable");
    NCCHK(nc_get_var_double(ncid, vid, ds->times), "read time");
    nc_attr_text(ncid, vid, "calendar", ds->calendar, sizeof ds->calendar);
    if (!ds->calendar[0]) snprintf(ds->calendar, sizeof ds->calendar, "standard");
    for (int t = 0; t < ds->ntimes; t++) ds->reference_times[t] = ds->forecast_periods[t] = NAN;
    if (nc_inq_varid(ncid, "forecast_reference_time", &vid) == NC_NOERR)
        NCCHK(nc_get_var_double(ncid, vid, ds->reference_times), "read forecast_reference_time");
    if (nc_inq_varid(ncid, "forecast_period", &vid) == NC_NOERR)
        NCCHK(nc_get_var_double(ncid, vid, ds->forecast_periods), "read forecast_period");
    if (nc_inq_dimid(ncid, "realization", &dim) == NC_NOERR) {
        nc_inq_dimlen(ncid, dim, &len);
        ds->nmembers = (int)len;
        ds->members = malloc(len * sizeof *ds->members);
        if (!ds->members) {
            st = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
            goto fail;
        }
        NCCHK(nc_inq_varid(ncid, "realization", &vid), "no realization variable");
        NCCHK(nc_get_var_int(ncid, vid, ds->members), "read realization");
    }
    /* data variables: float variables whose last two dims are the grid */
    int nv;
    nc_inq_nvars(ncid, &nv);
    ds->vars = calloc((size_t)(nv ? nv : 1), sizeof *ds->vars);
    ds->varids = calloc((size_t)(nv ? nv : 1), sizeof *ds->varids);
    if (!ds->vars || !ds->varids) {
        st = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
        goto fail;
    }
    int ydim, xdim, tdim, rdim = -1;
    nc_inq_dimid(ncid, yname, &ydim);
    nc_inq_dimid(ncid, xname, &xdim);
    nc_inq_dimid(ncid, "time", &tdim);
    nc_inq_dimid(ncid, "realization", &rdim);
    for (int v = 0; v < nv; v++) {
        int nd, dims[NC_MAX_VAR_DIMS];
        nc_type type;
        nc_inq_varndims(ncid, v, &nd);
        nc_inq_vartype(ncid, v, &type);
        if (nd < 2 || nd > 4 || type != NC_FLOAT) continue;
        nc_inq_vardimid(ncid, v, dims);
        if (dims[nd - 2] != ydim || dims[nd - 1] != xdim) continue;
        dataset_var_info *vi = &ds->vars[ds->nvars];
        int k = 0;
        vi->is_static = 1;
        if (k < nd - 2 && dims[k] == tdim) {
            vi->is_static = 0;
            k++;
        }
        if (k < nd - 2 && dims[k] == rdim) {
            vi->has_members = 1;
            k++;
        }
        if (k != nd - 2) continue;
        nc_inq_varname(ncid, v, vi->name);
        nc_attr_text(ncid, v, "units", vi->units, sizeof vi->units);
        nc_attr_text(ncid, v, "long_name", vi->long_name, sizeof vi->long_name);
        nc_attr_text(ncid, v, "standard_name", vi->standard_name, sizeof vi->standard_name);
        nc_attr_text(ncid, v, "smoecast_short_name", vi->short_name, sizeof vi->short_name);
        nc_attr_text(ncid, v, "smoecast_type_of_level", vi->type_of_level, sizeof vi->type_of_level);
        long long pid = 0;
        nc_get_att_longlong(ncid, v, "smoecast_param_id", &pid);
        vi->param_id = (long)pid;
        vi->level = NAN;
        nc_get_att_double(ncid, v, "smoecast_level", &vi->level);
        nc_get_att_int(ncid, v, "smoecast_categorical", &vi->categorical);
        size_t chunk_bytes = (size_t)ds->nlat * (size_t)ds->nlon * sizeof(float);
        nc_set_var_chunk_cache(ncid, v, 2 * chunk_bytes + 4096, 11, 1.0f);
        ds->varids[ds->nvars] = v;
        ds->nvars++;
    }
    *out = ds;
    return SM_OK;
fail:
    dataset_close(ds);
    return st;
}

int dataset_find_var(const dataset *ds, const char *name)
{
    for (int k = 0; k < ds->nvars; k++)
        if (!strcmp(ds->vars[k].name, name)) return k;
    return -1;
}

int dataset_find_time(const dataset *ds, double hours)
{
    for (int t = 0; t < ds->ntimes; t++)
        if (fabs(ds->times[t] - hours) < 1.0 / 3600.0) return t;
    return -1;
}

int dataset_read(const dataset *ds, int var, int t, int member, float *out)
{
    int st = check_index(ds->path, &ds->vars[var < 0 || var >= ds->nvars ? 0 : var], ds->nvars, var, t, ds->ntimes, member, ds->nmembers);
    if (st) return st;
    size_t start[4], count[4];
    field_start(&ds->vars[var], t, member, ds->nlat, ds->nlon, start, count);
    int s = nc_get_vara_float(ds->ncid, ds->varids[var], start, count, out);
    if (s != NC_NOERR)
        return sm_fail(SM_ERR_IO, "%s: variable %s: cannot read time index %d: %s", ds->path, ds->vars[var].name, t, nc_strerror(s));
    return SM_OK;
}
