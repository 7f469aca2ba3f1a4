/* Forecast file reader (see forecast_file.h): layout detection, per-record initialisation and
 * lead from either layout's time coordinates, field reads with fill values as NaN. */
#include "tasks/forecast_file.h"
#include "core/log.h"
#include "io/cf_time.h"
#include "io/nc_status.h"
#include "io/nc_attr.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void forecast_file_close(forecast_file *f)
{
    if (f->ncid >= 0) nc_close(f->ncid);
    f->ncid = -1;
    free(f->init);
    free(f->lead);
    free(f->lat);
    free(f->lon);
    f->init = f->lead = f->lat = f->lon = NULL;
}

static int find_dim(int ncid, const char *const *names, int *dim, size_t *len)
{
    for (int i = 0; names[i]; i++)
        if (nc_inq_dimid(ncid, names[i], dim) == NC_NOERR) {
            nc_inq_dimlen(ncid, *dim, len);
            return 1;
        }
    *dim = -1;
    *len = 0;
    return 0;
}

/* Reads a time-like variable (any "<unit> since <date>") as hours since 1970. */
static int read_time_var(const char *path, int ncid, int varid, const char *name, double *out, size_t n)
{
    char units[256], cal[64];
    nc_attr_text(ncid, varid, "units", units, sizeof units);
    nc_attr_text(ncid, varid, "calendar", cal, sizeof cal);
    cf_time_units u;
    if (cf_time_units_parse(units, cal, &u) != SM_OK)
        return sm_fail(SM_ERR_IO, "%s: variable %s: cannot read time units '%s'", path, name, units);
    int s = nc_get_var_double(ncid, varid, out);
    if (s != NC_NOERR) return nc_status_fail(path, name, s);
    for (size_t i = 0; i < n; i++) out[i] = cf_time_to_hours(&u, out[i]);
    return SM_OK;
}

/* Reads a period variable (hours, days, minutes or seconds) as hours. */
static int read_period_var(const char *path, int ncid, int varid, const char *name, double *out)
{
    char units[128];
    nc_attr_text(ncid, varid, "units", units, sizeof units);
    double f = 1.0;
    if (!strncmp(units, "hour", 4) || !strcmp(units, "h") || !units[0]) f = 1.0;
    else if (!strncmp(units, "day", 3) || !strcmp(units, "d")) f = 24.0;
    else if (!strncmp(units, "minute", 6) || !strcmp(units, "min")) f = 1.0 / 60.0;
    else if (!strncmp(units, "second", 6) || !strcmp(units, "s")) f = 1.0 / 3600.0;
    else return sm_fail(SM_ERR_IO, "%s: variable %s: unsupported units '%s' (use hours)", path, name, units);
    int nd = 0;
    nc_inq_varndims(ncid, varid, &nd);
    size_t n = 1;
    int dims[NC_MAX_VAR_DIMS];
    nc_inq_vardimid(ncid, varid, dims);
    for (int k = 0; k < nd; k++) {
        size_t l;
        nc_inq_dimlen(ncid, dims[k], &l);
        n *= l;
    }
    int s = nc_get_var_double(ncid, varid, out);
    if (s != NC_NOERR) return nc_status_fail(path, name, s);
    for (size_t i = 0; i < n; i++) out[i] *= f;
    return SM_OK;
}

/* Reads a 0-d or 1-d (dim) time coordinate into per-record values (nrec). */
static int read_per_record(const char *path, int ncid, const char *name, int dim, size_t nrec, int is_period,
                           double *vals, int *found)
{
    int varid, nd = 0, d0 = -1;
    *found = 0;
    if (nc_inq_varid(ncid, name, &varid) != NC_NOERR) return SM_OK;
    nc_inq_varndims(ncid, varid, &nd);
    if (nd == 1) nc_inq_vardimid(ncid, varid, &d0);
    if (nd > 1 || (nd == 1 && d0 != dim))
        return sm_fail(SM_ERR_IO, "%s: %s must be a scalar or have the dimension of the time axis", path, name);
    double *tmp = malloc(sizeof *tmp * (nd ? nrec : 1));
    if (!tmp) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    int st = is_period ? read_period_var(path, ncid, varid, name, tmp)
                       : read_time_var(path, ncid, varid, name, tmp, nd ? nrec : 1);
    if (st == SM_OK)
        for (size_t r = 0; r < nrec; r++) vals[r] = nd ? tmp[r] : tmp[0];
    free(tmp);
    *found = st == SM_OK;
    return st;
}

/* Grid dimensions (latitude/lat/y, longitude/lon/x, optional realization/number/member), their
 * coordinates and the smoecast_checkpoint attribute. */
static int read_grid(const char *path, forecast_file *f)
{
    static const char *const ynames[] = {"latitude", "lat", "y", NULL}, *const xnames[] = {"longitude", "lon", "x", NULL};
    static const char *const mnames[] = {"realization", "number", "member", NULL};
    size_t ny, nx, nm;
    if (!find_dim(f->ncid, ynames, &f->dim_y, &ny) || !find_dim(f->ncid, xnames, &f->dim_x, &nx))
        return sm_fail(SM_ERR_IO, "%s: no latitude/longitude (or y/x) dimensions", path);
    find_dim(f->ncid, mnames, &f->dim_m, &nm);
    f->nlat = (int)ny;
    f->nlon = (int)nx;
    f->nmem = (int)nm;
    nc_attr_text(f->ncid, NC_GLOBAL, "smoecast_checkpoint", f->checkpoint, sizeof f->checkpoint);
    f->lat = malloc(sizeof(double) * ny);
    f->lon = malloc(sizeof(double) * nx);
    if (!f->lat || !f->lon) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    int vy, vx;
    char yn[NC_MAX_NAME + 1], xn[NC_MAX_NAME + 1];
    nc_inq_dimname(f->ncid, f->dim_y, yn);
    nc_inq_dimname(f->ncid, f->dim_x, xn);
    if (nc_inq_varid(f->ncid, yn, &vy) || nc_get_var_double(f->ncid, vy, f->lat) || nc_inq_varid(f->ncid, xn, &vx) ||
        nc_get_var_double(f->ncid, vx, f->lon))
        return sm_fail(SM_ERR_IO, "%s: cannot read the %s/%s coordinates", path, yn, xn);
    return SM_OK;
}

/* Layout 0: every (forecast_reference_time, forecast_period) pair is a record. */
static int read_times_frt_fp(const char *path, forecast_file *f, int dr, int dp)
{
    f->layout = 0;
    f->dim_t0 = dr;
    f->dim_t1 = dp;
    nc_inq_dimlen(f->ncid, dr, &f->n0);
    nc_inq_dimlen(f->ncid, dp, &f->n1);
    f->nrec = f->n0 * f->n1;
    double *frt = malloc(sizeof(double) * (f->n0 ? f->n0 : 1)), *fp = malloc(sizeof(double) * (f->n1 ? f->n1 : 1));
    f->init = malloc(sizeof(double) * (f->nrec ? f->nrec : 1));
    f->lead = malloc(sizeof(double) * (f->nrec ? f->nrec : 1));
    int st = SM_OK, vr, vp;
    if (!frt || !fp || !f->init || !f->lead) st = sm_fail(SM_ERR_NUMERIC, "out of memory");
    else if (nc_inq_varid(f->ncid, "forecast_reference_time", &vr) || nc_inq_varid(f->ncid, "forecast_period", &vp))
        st = sm_fail(SM_ERR_IO, "%s: forecast_reference_time/forecast_period coordinate variables missing", path);
    else if (!(st = read_time_var(path, f->ncid, vr, "forecast_reference_time", frt, f->n0)))
        st = read_period_var(path, f->ncid, vp, "forecast_period", fp);
    if (st == SM_OK)
        for (size_t i = 0; i < f->n0; i++)
            for (size_t j = 0; j < f->n1; j++) {
                f->init[i * f->n1 + j] = frt[i];
                f->lead[i * f->n1 + j] = fp[j];
            }
    free(frt);
    free(fp);
    return st;
}

static int any_value(const double *x, size_t n)
{
    int any = 0;
    for (size_t i = 0; i < n; i++) any |= !isnan(x[i]);
    return any;
}

/* Layout 1, after reading what the file has: the lead from forecast_period, lead_override or
 * valid - init; the init from forecast_reference_time or valid - lead. A forecast_period or
 * forecast_reference_time that is all NaN (e.g. not known to ingest) counts as absent. */
static int complete_times(const char *path, forecast_file *f, const double *valid, int has_valid, int has_frt, int has_fp,
                          double lead_override)
{
    int st = SM_OK;
    has_fp = has_fp && any_value(f->lead, f->nrec);
    has_frt = has_frt && any_value(f->init, f->nrec);
    if (!has_fp && lead_override > 0)
        for (size_t r = 0; r < f->nrec; r++) f->lead[r] = lead_override;
    else if (!has_fp && has_frt && has_valid)
        for (size_t r = 0; r < f->nrec; r++) f->lead[r] = valid[r] - f->init[r];
    else if (!has_fp)
        st = sm_fail(SM_ERR_USAGE, "%s: no forecast_period (lead time) in the file; give it with --lead (e.g. --lead 48h)", path);
    if (!st && !has_frt) {
        if (!has_valid) st = sm_fail(SM_ERR_IO, "%s: neither forecast_reference_time nor time values", path);
        else
            for (size_t r = 0; r < f->nrec; r++) f->init[r] = valid[r] - f->lead[r];
    }
    for (size_t r = 0; !st && r < f->nrec; r++)
        if (isnan(f->init[r]) || isnan(f->lead[r]))
            st = sm_fail(SM_ERR_IO, "%s: time index %zu has no forecast_reference_time/forecast_period", path, r);
    return st;
}

/* Layout 1: one time axis `dt`, forecast_reference_time and forecast_period scalar or along it. */
static int read_times_one_axis(const char *path, forecast_file *f, int dt, double lead_override)
{
    f->layout = 1;
    f->dim_t0 = dt;
    f->dim_t1 = -1;
    nc_inq_dimlen(f->ncid, dt, &f->n0);
    f->n1 = 1;
    f->nrec = f->n0;
    f->init = malloc(sizeof(double) * (f->nrec ? f->nrec : 1));
    f->lead = malloc(sizeof(double) * (f->nrec ? f->nrec : 1));
    double *valid = malloc(sizeof(double) * (f->nrec ? f->nrec : 1));
    int st = SM_OK, has_frt = 0, has_fp = 0, has_valid = 0;
    if (!f->init || !f->lead || !valid) st = sm_fail(SM_ERR_NUMERIC, "out of memory");
    if (!st) st = read_per_record(path, f->ncid, "time", dt, f->nrec, 0, valid, &has_valid);
    if (!st) st = read_per_record(path, f->ncid, "forecast_reference_time", dt, f->nrec, 0, f->init, &has_frt);
    if (!st) st = read_per_record(path, f->ncid, "forecast_period", dt, f->nrec, 1, f->lead, &has_fp);
    if (!st) st = complete_times(path, f, valid, has_valid, has_frt, has_fp, lead_override);
    free(valid);
    return st;
}

int forecast_file_open(const char *path, double lead_override, forecast_file *f)
{
    memset(f, 0, sizeof *f);
    f->ncid = -1;
    snprintf(f->path, sizeof f->path, "%s", path);
    int s = nc_open(path, NC_NOWRITE, &f->ncid);
    if (s != NC_NOERR) {
        f->ncid = -1;
        return nc_status_fail(path, "cannot open forecast file", s);
    }
    int st = read_grid(path, f);
    if (st) return st;
    int dr, dp, dt;
    if (nc_inq_dimid(f->ncid, "forecast_reference_time", &dr) == NC_NOERR &&
        nc_inq_dimid(f->ncid, "forecast_period", &dp) == NC_NOERR)
        return read_times_frt_fp(path, f, dr, dp);
    /* One time axis: `time` (valid time), or forecast_reference_time with a single lead. */
    if (nc_inq_dimid(f->ncid, "time", &dt) != NC_NOERR && nc_inq_dimid(f->ncid, "forecast_reference_time", &dt) != NC_NOERR)
        return sm_fail(SM_ERR_IO, "%s: no time axis: expected dimensions (forecast_reference_time, forecast_period) or time", path);
    return read_times_one_axis(path, f, dt, lead_override);
}

/* Field variables of a file: last two dims (y, x), first dim the time axis (layout 0: the
 * forecast_reference_time and forecast_period dims), the member dimension between or none. */
int forecast_file_is_field(const forecast_file *f, int varid, int *has_members)
{
    int nd = 0, dims[NC_MAX_VAR_DIMS];
    nc_type t;
    nc_inq_varndims(f->ncid, varid, &nd);
    nc_inq_vartype(f->ncid, varid, &t);
    if (nd < 3 || nd > 5 || (t != NC_FLOAT && t != NC_DOUBLE)) return 0;
    nc_inq_vardimid(f->ncid, varid, dims);
    if (dims[nd - 2] != f->dim_y || dims[nd - 1] != f->dim_x || dims[0] != f->dim_t0) return 0;
    int k = 1;
    if (f->layout == 0) {
        if (nd < 4 || dims[1] != f->dim_t1) return 0;
        k = 2;
    }
    *has_members = 0;
    if (nd - 2 == k + 1) {
        if (dims[k] != f->dim_m || f->dim_m < 0) return 0;
        *has_members = 1;
    } else if (nd - 2 != k) {
        return 0;
    }
    return 1;
}

int forecast_file_has_field(const forecast_file *f, const char *name, int *has_members)
{
    int varid;
    return nc_inq_varid(f->ncid, name, &varid) == NC_NOERR && forecast_file_is_field(f, varid, has_members);
}

int forecast_file_read(const forecast_file *f, const char *name, size_t rec, float *out)
{
    int varid, hm;
    if (nc_inq_varid(f->ncid, name, &varid) != NC_NOERR || !forecast_file_is_field(f, varid, &hm))
        return sm_fail(SM_ERR_IO, "%s: variable %s is missing or not a forecast field", f->path, name);
    size_t start[5] = {0}, count[5];
    int k = 0;
    if (f->layout == 0) {
        start[0] = rec / f->n1;
        start[1] = rec % f->n1;
        count[0] = count[1] = 1;
        k = 2;
    } else {
        start[0] = rec;
        count[0] = 1;
        k = 1;
    }
    if (hm) count[k++] = (size_t)f->nmem;
    count[k++] = (size_t)f->nlat;
    count[k++] = (size_t)f->nlon;
    int s = nc_get_vara_float(f->ncid, varid, start, count, out);
    if (s != NC_NOERR) return nc_status_fail(f->path, name, s);
    float fill;
    size_t n = (size_t)(hm ? f->nmem : 1) * f->nlat * f->nlon;
    if (nc_get_att_float(f->ncid, varid, "_FillValue", &fill) == NC_NOERR && !isnan(fill))
        for (size_t p = 0; p < n; p++)
            if (out[p] == fill) out[p] = NAN;
    if (nc_get_att_float(f->ncid, varid, "missing_value", &fill) == NC_NOERR && !isnan(fill))
        for (size_t p = 0; p < n; p++)
            if (out[p] == fill) out[p] = NAN;
    return SM_OK;
}

typedef struct {
    double init, lead;
    int file;
} fc_key;

static int cmp_key(const void *a, const void *b)
{
    const fc_key *x = a, *y = b;
    if (x->init != y->init) return x->init < y->init ? -1 : 1;
    if (x->lead != y->lead) return x->lead < y->lead ? -1 : 1;
    return (x->file > y->file) - (x->file < y->file);
}

int forecast_file_check_duplicates(const forecast_file *files, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) total += files[i].nrec;
    fc_key *k = malloc(sizeof *k * (total ? total : 1));
    if (!k) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    size_t c = 0;
    for (int i = 0; i < n; i++)
        for (size_t r = 0; r < files[i].nrec; r++) k[c++] = (fc_key){files[i].init[r], files[i].lead[r], i};
    qsort(k, total, sizeof *k, cmp_key);
    int st = SM_OK;
    for (size_t j = 1; j < total && !st; j++)
        if (fabs(k[j].init - k[j - 1].init) < 1e-6 && fabs(k[j].lead - k[j - 1].lead) < 1e-6) {
            char when[64];
            cf_format_hours(k[j].init, CAL_PROLEPTIC, when, sizeof when);
            st = sm_fail(SM_ERR_USAGE, "forecast initialised %s with lead %gh appears twice (%s and %s); give each forecast once",
                         when, k[j].lead, files[k[j - 1].file].path, files[k[j].file].path);
        }
    free(k);
    return st;
}
