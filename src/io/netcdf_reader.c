/* NetCDF reader: dimension classification, CF unpacking and masking, time decoding. */
#include "io/netcdf_reader.h"
#include "io/nc_attr.h"
#include "core/log.h"
#include "io/cf_time.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define NCV_MAXDIMS 8

struct nc_reader {
    char path[4096];
    int ncid;
    int nvars;
    char (*names)[NC_MAX_NAME + 1];
};

struct nc_var {
    nc_reader *r;
    char name[NC_MAX_NAME + 1];
    int varid;
    nc_type type;
    int ndims;
    int dimids[NCV_MAXDIMS];
    size_t dimlen[NCV_MAXDIMS];
    char kinds[NCV_MAXDIMS];  /* T Z Y X R */
    char dimnames[NCV_MAXDIMS][NC_MAX_NAME + 1];
    int dT, dZ, dY, dX, dR;   /* position of each classified dim in the variable, -1 if absent */
    int level_index;
    char level_name[NC_MAX_NAME + 1];
    double *level_values;
    int nlevels;
    /* unpacking and masking */
    double scale, offset;
    int has_fill, has_missing, has_vmin, has_vmax, mask_default_fill;
    double fill, vmin, vmax, default_fill;
    double *missing;
    int nmissing;
    int range_unpacked;       /* valid_range given in unpacked units */
    /* time */
    int ntimes;
    double *times;            /* hours since 1970 (or raw, time_is_index) */
    double *refs, *periods;   /* forecast_reference_time (hours since 1970) and forecast_period
                                 (hours) per time, NULL when the file has neither */
    int time_is_index;
    int has_time;
    cf_calendar cal;
    /* members */
    int nmembers;
    int *members;
    /* geometry */
    int ny, nx;
    int y_before_x;           /* storage order of the two spatial dims */
    int lon_flip;             /* longitudes descending in the file */
    src_geometry *geom;
    double *raw, *values;
    /* metadata */
    char units[64], long_name[128], standard_name[96], packing[48];
};

int nc_file_looks_like_netcdf(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char b[8] = {0};
    size_t n = fread(b, 1, 8, f);
    fclose(f);
    if (n >= 4 && b[0] == 'C' && b[1] == 'D' && b[2] == 'F' && (b[3] == 1 || b[3] == 2 || b[3] == 5)) return 1;
    if (n == 8 && memcmp(b, "\211HDF\r\n\032\n", 8) == 0) return 1;
    return 0;
}

static int nc_err(int st, const char *path, const char *what, int status)
{
    return sm_fail(st, "%s: %s: %s", path, what, nc_strerror(status));
}

static int is_latlon_var(int ncid, int varid);

int nc_reader_open(const char *path, nc_reader **out)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return sm_fail(SM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (sb.st_size == 0) return sm_fail(SM_ERR_IO, "%s: file is empty", path);
    int ncid, s = nc_open(path, NC_NOWRITE, &ncid);
    if (s != NC_NOERR) return nc_err(SM_ERR_IO, path, "not a readable NetCDF file", s);
    nc_reader *r = calloc(1, sizeof *r);
    if (!r) {
        nc_close(ncid);
        return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
    }
    snprintf(r->path, sizeof r->path, "%s", path);
    r->ncid = ncid;
    int nv = 0;
    nc_inq_nvars(ncid, &nv);
    r->names = calloc((size_t)(nv > 0 ? nv : 1), sizeof *r->names);
    if (!r->names) {
        nc_reader_close(r);
        return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
    }
    for (int v = 0; v < nv; v++) {
        if (!is_latlon_var(ncid, v)) continue;
        nc_inq_varname(ncid, v, r->names[r->nvars]);
        r->nvars++;
    }
    *out = r;
    return SM_OK;
}

void nc_reader_close(nc_reader *r)
{
    if (!r) return;
    nc_close(r->ncid);
    free(r->names);
    free(r);
}

const char *nc_reader_path(const nc_reader *r) { return r->path; }
int nc_reader_ncid(const nc_reader *r) { return r->ncid; }
int nc_reader_nvars(const nc_reader *r) { return r->nvars; }
const char *nc_reader_var_name(const nc_reader *r, int i) { return r->names[i]; }

static int att_double(int ncid, int varid, const char *name, double *out)
{
    nc_type t;
    size_t n;
    if (nc_inq_att(ncid, varid, name, &t, &n) != NC_NOERR || n < 1 || t == NC_CHAR || t == NC_STRING) return 0;
    double buf[16];
    if (n > 16) n = 16;
    if (nc_get_att_double(ncid, varid, name, buf) != NC_NOERR) return 0;
    *out = buf[0];
    return (int)n;
}

static int in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcasecmp(s, *list)) return 1;
    return 0;
}

/* Classifies a dimension by its coordinate variable's attributes, then by its name. */
static char classify_dim(int ncid, const char *dimname)
{
    static const char *const lat_units[] = {"degrees_north", "degree_north", "degree_N", "degrees_N", "degreeN", "degreesN", NULL};
    static const char *const lon_units[] = {"degrees_east", "degree_east", "degree_E", "degrees_E", "degreeE", "degreesE", NULL};
    static const char *const z_units[] = {"hPa", "Pa", "millibars", "millibar", "mbar", "mb", "level", "sigma", "sigma_level", NULL};
    static const char *const z_std[] = {"air_pressure", "height", "altitude", "depth", "model_level_number",
                                        "atmosphere_sigma_coordinate", "atmosphere_hybrid_sigma_pressure_coordinate", NULL};
    static const char *const t_names[] = {"time", "t", "month", "valid_time", "times", NULL};
    static const char *const z_names[] = {"level", "lev", "plev", "pressure", "isobaricInhPa", "height", "depth", "sigma", "pressure_level", NULL};
    static const char *const y_names[] = {"lat", "latitude", "y", "rlat", "nav_lat", NULL};
    static const char *const x_names[] = {"lon", "longitude", "x", "rlon", "nav_lon", NULL};
    static const char *const r_names[] = {"number", "realization", "member", "ensemble", "ens", "ensemble_member", NULL};
    int vid;
    if (nc_inq_varid(ncid, dimname, &vid) == NC_NOERR) {
        char axis[16], stdn[96], units[96], positive[16];
        nc_attr_text(ncid, vid, "axis", axis, sizeof axis);
        nc_attr_text(ncid, vid, "standard_name", stdn, sizeof stdn);
        nc_attr_text(ncid, vid, "units", units, sizeof units);
        nc_attr_text(ncid, vid, "positive", positive, sizeof positive);
        if (!strcasecmp(stdn, "realization")) return 'R';
        if (!strcasecmp(stdn, "latitude") || in_list(units, lat_units) || !strcasecmp(axis, "Y")) return 'Y';
        if (!strcasecmp(stdn, "longitude") || in_list(units, lon_units) || !strcasecmp(axis, "X")) return 'X';
        if (!strcasecmp(stdn, "time") || !strcasecmp(axis, "T") || strstr(units, " since ")) return 'T';
        if (!strcasecmp(axis, "Z") || positive[0] || in_list(stdn, z_std) || in_list(units, z_units)) return 'Z';
    }
    if (in_list(dimname, r_names)) return 'R';
    if (in_list(dimname, y_names)) return 'Y';
    if (in_list(dimname, x_names)) return 'X';
    if (in_list(dimname, t_names)) return 'T';
    if (in_list(dimname, z_names)) return 'Z';
    return '?';
}

static int is_latlon_var(int ncid, int varid)
{
    int nd, dimids[NC_MAX_VAR_DIMS];
    if (nc_inq_varndims(ncid, varid, &nd) != NC_NOERR || nd < 2 || nd > NC_MAX_VAR_DIMS) return 0;
    nc_inq_vardimid(ncid, varid, dimids);
    char vname[NC_MAX_NAME + 1];
    nc_inq_varname(ncid, varid, vname);
    int y = 0, x = 0;
    for (int d = 0; d < nd; d++) {
        char dn[NC_MAX_NAME + 1];
        nc_inq_dimname(ncid, dimids[d], dn);
        if (!strcmp(dn, vname)) return 0;
        char k = classify_dim(ncid, dn);
        y += k == 'Y';
        x += k == 'X';
    }
    return y == 1 && x == 1;
}

static int read_coord(int ncid, const char *path, const char *dimname, size_t n, double **out)
{
    double *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
    int vid;
    if (nc_inq_varid(ncid, dimname, &vid) == NC_NOERR) {
        int nd;
        nc_inq_varndims(ncid, vid, &nd);
        if (nd != 1 || nc_get_var_double(ncid, vid, v) != NC_NOERR) {
            free(v);
            return sm_fail(SM_ERR_IO, "%s: coordinate variable '%s' is not a readable 1-D variable", path, dimname);
        }
        double sf = 1, ao = 0;
        att_double(ncid, vid, "scale_factor", &sf);
        att_double(ncid, vid, "add_offset", &ao);
        for (size_t i = 0; i < n; i++) v[i] = v[i] * sf + ao;
    } else {
        for (size_t i = 0; i < n; i++) v[i] = (double)i;
    }
    *out = v;
    return SM_OK;
}

void nc_var_close(nc_var *v)
{
    if (!v) return;
    free(v->level_values);
    free(v->missing);
    free(v->times);
    free(v->refs);
    free(v->periods);
    free(v->members);
    geometry_free(v->geom);
    free(v->raw);
    free(v->values);
    free(v);
}

/* Time coordinate of the variable: a T dimension, or a scalar time in `coordinates` / `time`. */
static int setup_time(nc_var *v)
{
    int ncid = v->r->ncid;
    const char *path = v->r->path;
    int tvid = -1;
    size_t nt = 1;
    char tname[NC_MAX_NAME + 1] = "";
    if (v->dT >= 0) {
        snprintf(tname, sizeof tname, "%s", v->dimnames[v->dT]);
        nt = v->dimlen[v->dT];
        if (nc_inq_varid(ncid, tname, &tvid) != NC_NOERR) tvid = -1;
    } else {
        char coords[1024];
        nc_attr_text(ncid, v->varid, "coordinates", coords, sizeof coords);
        char *save = NULL;
        for (char *tok = strtok_r(coords, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
            int cv, nd;
            if (nc_inq_varid(ncid, tok, &cv) != NC_NOERR || nc_inq_varndims(ncid, cv, &nd) != NC_NOERR || nd != 0) continue;
            char units[128], stdn[64];
            nc_attr_text(ncid, cv, "units", units, sizeof units);
            nc_attr_text(ncid, cv, "standard_name", stdn, sizeof stdn);
            if (strstr(units, " since ") || !strcmp(stdn, "time")) {
                tvid = cv;
                snprintf(tname, sizeof tname, "%s", tok);
                break;
            }
        }
        if (tvid < 0) {
            int cv, nd;
            if (nc_inq_varid(ncid, "time", &cv) == NC_NOERR && nc_inq_varndims(ncid, cv, &nd) == NC_NOERR && nd == 0) {
                tvid = cv;
                snprintf(tname, sizeof tname, "time");
            }
        }
        if (tvid < 0) {
            v->has_time = 0;
            v->ntimes = 1;
            v->times = calloc(1, sizeof *v->times);
            return v->times ? SM_OK : sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
        }
    }
    v->has_time = 1;
    v->ntimes = (int)nt;
    v->times = malloc(nt * sizeof *v->times);
    if (!v->times) return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
    if (tvid < 0) {
        for (size_t i = 0; i < nt; i++) v->times[i] = (double)i;
        v->time_is_index = 1;
        return SM_OK;
    }
    if (nc_get_var_double(ncid, tvid, v->times) != NC_NOERR)
        return sm_fail(SM_ERR_IO, "%s: cannot read the time coordinate '%s'", path, tname);
    char units[256], cal[64];
    nc_attr_text(ncid, tvid, "units", units, sizeof units);
    nc_attr_text(ncid, tvid, "calendar", cal, sizeof cal);
    double tfill = 0;
    int has_tfill = att_double(ncid, tvid, "_FillValue", &tfill);
    for (size_t i = 0; i < nt; i++)
        if (!isfinite(v->times[i]) || (has_tfill && v->times[i] == tfill))
            return sm_fail(SM_ERR_IO, "%s: variable %s: time coordinate '%s' is missing at index %zu", path, v->name, tname, i);
    if (!strstr(units, " since ")) {
        /* a unitless axis such as `month`: keep its values */
        v->time_is_index = 1;
        return SM_OK;
    }
    cf_time_units tu;
    int st = cf_time_units_parse(units, cal, &tu);
    if (st) return sm_fail(st, "%s: time coordinate '%s': %s", path, tname, sm_last_error());
    v->cal = tu.cal;
    for (size_t i = 0; i < nt; i++) v->times[i] = cf_time_to_hours(&tu, v->times[i]);
    return SM_OK;
}

/* A forecast-time variable for v: scalar or 1-D along v's time dimension; the candidates are
 * the names in v's `coordinates` attribute, then every variable. 1 when found (its id and
 * whether it is 1-D). */
static int find_forecast_var(const nc_var *v, const char *stdname, int *vid, int *along_time)
{
    int ncid = v->r->ncid, nvars = 0;
    char coords[1024];
    nc_attr_text(ncid, v->varid, "coordinates", coords, sizeof coords);
    nc_inq_nvars(ncid, &nvars);
    char *save = NULL, *tok = strtok_r(coords, " ", &save);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0;; i++) {
            int cv;
            if (pass == 0) {
                if (!tok) break;
                int found = nc_inq_varid(ncid, tok, &cv) == NC_NOERR;
                tok = strtok_r(NULL, " ", &save);
                if (!found) continue;
            } else {
                if (i >= nvars) break;
                cv = i;
            }
            char sn[96], name[NC_MAX_NAME + 1];
            int nd, dim;
            nc_attr_text(ncid, cv, "standard_name", sn, sizeof sn);
            if (nc_inq_varname(ncid, cv, name) != NC_NOERR) continue;
            if (strcmp(sn, stdname) && strcmp(name, stdname)) continue;
            if (nc_inq_varndims(ncid, cv, &nd) != NC_NOERR || nd > 1) continue;
            if (nd == 1 && (v->dT < 0 || nc_inq_vardimid(ncid, cv, &dim) != NC_NOERR || dim != v->dimids[v->dT])) continue;
            *vid = cv;
            *along_time = nd == 1;
            return 1;
        }
    }
    return 0;
}

/* Values of a forecast-time variable per time of v, in hours (since 1970 for the reference
 * time, in v's calendar when the variable names none). Fill values become NaN. */
static int read_forecast_var(const nc_var *v, int vid, int along_time, int is_period, double *out)
{
    int ncid = v->r->ncid;
    const char *path = v->r->path;
    char name[NC_MAX_NAME + 1] = "", units[256], cal[64], tu_text[300];
    nc_inq_varname(ncid, vid, name);
    if (nc_get_var_double(ncid, vid, out) != NC_NOERR)
        return sm_fail(SM_ERR_IO, "%s: variable %s: cannot read its %s coordinate '%s'", path, v->name,
                       is_period ? "forecast_period" : "forecast_reference_time", name);
    for (int t = 1; t < v->ntimes; t++) out[t] = along_time ? out[t] : out[0];
    nc_attr_text(ncid, vid, "units", units, sizeof units);
    nc_attr_text(ncid, vid, "calendar", cal, sizeof cal);
    if (!cal[0]) snprintf(cal, sizeof cal, "%s", cf_calendar_name(v->cal));
    if (is_period) {
        snprintf(tu_text, sizeof tu_text, "%s since 1970-01-01", units[0] ? units : "hours");
    } else {
        snprintf(tu_text, sizeof tu_text, "%s", units);
    }
    cf_time_units tu;
    if (cf_time_units_parse(tu_text, cal, &tu))
        return sm_fail(SM_ERR_IO, "%s: variable %s: coordinate '%s' has units '%s'; expected %s", path, v->name, name,
                       units, is_period ? "a duration unit such as hours" : "'<unit> since <date>'");
    double fill = 0;
    int has_fill = att_double(ncid, vid, "_FillValue", &fill);
    for (int t = 0; t < v->ntimes; t++) {
        if (!isfinite(out[t]) || (has_fill && out[t] == fill)) out[t] = NAN;
        else out[t] = is_period ? out[t] * tu.unit_hours : cf_time_to_hours(&tu, out[t]);
    }
    return SM_OK;
}

/* forecast_reference_time / forecast_period of a forecast file (CF standard names, scalar or
 * along time): when only one of the two is given the other follows from the valid time. */
static int setup_forecast_times(nc_var *v)
{
    if (!v->has_time || v->time_is_index) return SM_OK;
    int vr = -1, vp = -1, tr = 0, tp = 0;
    int has_r = find_forecast_var(v, "forecast_reference_time", &vr, &tr);
    int has_p = find_forecast_var(v, "forecast_period", &vp, &tp);
    if (!has_r && !has_p) return SM_OK;
    size_t n = (size_t)v->ntimes;
    v->refs = malloc(n * sizeof *v->refs);
    v->periods = malloc(n * sizeof *v->periods);
    if (!v->refs || !v->periods) return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", v->r->path);
    int st;
    if (has_r && (st = read_forecast_var(v, vr, tr, 0, v->refs))) return st;
    if (has_p && (st = read_forecast_var(v, vp, tp, 1, v->periods))) return st;
    for (size_t t = 0; t < n; t++) {
        if (!has_r) v->refs[t] = v->times[t] - v->periods[t];
        if (!has_p) v->periods[t] = v->times[t] - v->refs[t];
    }
    return SM_OK;
}

static int setup_geometry(nc_var *v)
{
    int ncid = v->r->ncid;
    const char *path = v->r->path;
    double *lat = NULL, *lon = NULL;
    int st = read_coord(ncid, path, v->dimnames[v->dY], v->dimlen[v->dY], &lat);
    if (!st) st = read_coord(ncid, path, v->dimnames[v->dX], v->dimlen[v->dX], &lon);
    if (st) goto done;
    v->ny = (int)v->dimlen[v->dY];
    v->nx = (int)v->dimlen[v->dX];
    for (int j = 0; j < v->ny; j++)
        if (!isfinite(lat[j]) || lat[j] < -90.0 - 1e-6 || lat[j] > 90.0 + 1e-6) {
            st = sm_fail(SM_ERR_IO, "%s: variable %s: latitude %d is %g, outside -90..90", path, v->name, j, lat[j]);
            goto done;
        }
    for (int j = 1; j < v->ny; j++)
        if ((lat[j] - lat[j - 1]) * (lat[1] - lat[0]) <= 0) {
            st = sm_fail(SM_ERR_IO, "%s: variable %s: latitudes are not strictly monotonic", path, v->name);
            goto done;
        }
    double dlon = 360.0;
    v->lon_flip = 0;
    if (v->nx > 1) {
        double d0 = lon[1] - lon[0];
        if (d0 < 0 && d0 > -180) v->lon_flip = 1;
        double step = fmod(fmod(v->lon_flip ? -d0 : d0, 360.0) + 360.0, 360.0);
        for (int i = 1; i < v->nx; i++) {
            double d = v->lon_flip ? lon[i - 1] - lon[i] : lon[i] - lon[i - 1];
            d = fmod(fmod(d, 360.0) + 360.0, 360.0);
            if (!(step > 0) || fabs(d - step) > 1e-4 * step + 1e-6) {
                st = sm_fail(SM_ERR_IO, "%s: variable %s: longitudes are not equally spaced (%g then %g at index %d)",
                             path, v->name, step, d, i);
                goto done;
            }
        }
        dlon = step;
        if (fabs(dlon * v->nx - 360.0) < 1e-3 * dlon) dlon = 360.0 / v->nx;
    }
    double lon0 = v->lon_flip ? lon[v->nx - 1] : lon[0];
    st = io_geometry_regular(v->ny, lat, v->nx, lon0, dlon, "netcdf", &v->geom);
done:
    free(lat);
    free(lon);
    return st;
}

int nc_var_open(nc_reader *r, const var_selector *sel, nc_var **out)
{
    int ncid = r->ncid;
    const char *path = r->path;
    int varid;
    if (nc_inq_varid(ncid, sel->select, &varid) != NC_NOERR) {
        char list[512] = "";
        size_t used = 0;
        for (int i = 0; i < r->nvars && used + NC_MAX_NAME + 2 < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", r->names[i]);
        return sm_fail(SM_ERR_IO, "%s: variable %s: not in the file (data variables: %s)", path, sel->select, list[0] ? list : "none");
    }
    nc_var *v = calloc(1, sizeof *v);
    if (!v) return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
    v->r = r;
    v->varid = varid;
    v->dT = v->dZ = v->dY = v->dX = v->dR = -1;
    v->level_index = -1;
    snprintf(v->name, sizeof v->name, "%s", sel->select);
    int st = SM_OK;
    nc_inq_vartype(ncid, varid, &v->type);
    nc_inq_varndims(ncid, varid, &v->ndims);
    if (v->ndims > NCV_MAXDIMS) {
        st = sm_fail(SM_ERR_IO, "%s: variable %s: %d dimensions, at most %d supported", path, v->name, v->ndims, NCV_MAXDIMS);
        goto fail;
    }
    if (v->type == NC_CHAR || v->type == NC_STRING || v->type > NC_STRING) {
        st = sm_fail(SM_ERR_IO, "%s: variable %s: not a numeric variable", path, v->name);
        goto fail;
    }
    nc_inq_vardimid(ncid, varid, v->dimids);
    for (int d = 0; d < v->ndims; d++) {
        nc_inq_dim(ncid, v->dimids[d], v->dimnames[d], &v->dimlen[d]);
        char k = classify_dim(ncid, v->dimnames[d]);
        int *slot = k == 'T' ? &v->dT : k == 'Z' ? &v->dZ : k == 'Y' ? &v->dY : k == 'X' ? &v->dX : k == 'R' ? &v->dR : NULL;
        if (!slot || *slot >= 0) {
            st = sm_fail(SM_ERR_IO, "%s: variable %s: unexpected dimension '%s' (expected time, level, realization, latitude, longitude)",
                         path, v->name, v->dimnames[d]);
            goto fail;
        }
        *slot = d;
        v->kinds[d] = k;
    }
    if (v->dY < 0 || v->dX < 0) {
        st = sm_fail(SM_ERR_IO, "%s: variable %s: needs a latitude and a longitude dimension (has %d dimensions)", path, v->name, v->ndims);
        goto fail;
    }
    v->y_before_x = v->dY < v->dX;
    /* level */
    if (v->dZ >= 0) {
        snprintf(v->level_name, sizeof v->level_name, "%s", v->dimnames[v->dZ]);
        v->nlevels = (int)v->dimlen[v->dZ];
        if ((st = read_coord(ncid, path, v->level_name, (size_t)v->nlevels, &v->level_values))) goto fail;
        if (sel->has_level) {
            char lu[64] = "";
            int lvid;
            if (nc_inq_varid(ncid, v->level_name, &lvid) == NC_NOERR) nc_attr_text(ncid, lvid, "units", lu, sizeof lu);
            for (int k = 0; k < v->nlevels && v->level_index < 0; k++)
                if (fabs(v->level_values[k] - sel->level) < 1e-6 * (1 + fabs(sel->level))) v->level_index = k;
            if (v->level_index < 0 && !strcmp(lu, "Pa"))
                for (int k = 0; k < v->nlevels && v->level_index < 0; k++)
                    if (fabs(v->level_values[k] - 100 * sel->level) < 1e-6 * (1 + 100 * fabs(sel->level))) v->level_index = k;
            if (v->level_index < 0) {
                st = sm_fail(SM_ERR_IO, "%s: variable %s: no level %g on '%s' (%d levels, first %g)", path, v->name, sel->level,
                             v->level_name, v->nlevels, v->level_values[0]);
                goto fail;
            }
        } else if (v->nlevels == 1) {
            v->level_index = 0;
        } else {
            st = sm_fail(SM_ERR_IO, "%s: variable %s: has %d levels on '%s'; select one as %s:LEVEL", path, v->name, v->nlevels,
                         v->level_name, v->name);
            goto fail;
        }
    } else if (sel->has_level) {
        st = sm_fail(SM_ERR_IO, "%s: variable %s: has no level dimension, but level %g was requested", path, v->name, sel->level);
        goto fail;
    }
    /* members */
    v->nmembers = v->dR >= 0 ? (int)v->dimlen[v->dR] : 1;
    v->members = malloc((size_t)v->nmembers * sizeof *v->members);
    if (!v->members) {
        st = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
        goto fail;
    }
    if (v->dR >= 0) {
        double *mv;
        if ((st = read_coord(ncid, path, v->dimnames[v->dR], (size_t)v->nmembers, &mv))) goto fail;
        for (int k = 0; k < v->nmembers; k++) v->members[k] = (int)lround(mv[k]);
        free(mv);
    } else {
        v->members[0] = -1;
    }
    if ((st = setup_time(v))) goto fail;
    if ((st = setup_forecast_times(v))) goto fail;
    if ((st = setup_geometry(v))) goto fail;
    /* packing and masking */
    v->scale = 1.0;
    v->offset = 0.0;
    int has_sf = att_double(ncid, varid, "scale_factor", &v->scale);
    int has_ao = att_double(ncid, varid, "add_offset", &v->offset);
    v->has_fill = att_double(ncid, varid, "_FillValue", &v->fill) && isfinite(v->fill);
    {
        nc_type t;
        size_t n;
        if (nc_inq_att(ncid, varid, "missing_value", &t, &n) == NC_NOERR && n > 0 && t != NC_CHAR && t != NC_STRING) {
            v->missing = malloc(n * sizeof *v->missing);
            if (v->missing && nc_get_att_double(ncid, varid, "missing_value", v->missing) == NC_NOERR) v->nmissing = (int)n;
        }
    }
    {
        nc_type t;
        size_t n;
        double range[2];
        if (nc_inq_att(ncid, varid, "valid_range", &t, &n) == NC_NOERR && n == 2 &&
            nc_get_att_double(ncid, varid, "valid_range", range) == NC_NOERR) {
            v->has_vmin = v->has_vmax = 1;
            v->vmin = range[0];
            v->vmax = range[1];
            v->range_unpacked = t != v->type;
        } else {
            v->has_vmin = att_double(ncid, varid, "valid_min", &v->vmin);
            v->has_vmax = att_double(ncid, varid, "valid_max", &v->vmax);
            if (nc_inq_att(ncid, varid, "valid_min", &t, &n) == NC_NOERR || nc_inq_att(ncid, varid, "valid_max", &t, &n) == NC_NOERR)
                v->range_unpacked = t != v->type;
        }
    }
    {
        nc_type t;
        size_t n;
        if (nc_inq_att(ncid, varid, "_FillValue", &t, &n) != NC_NOERR && (v->type == NC_FLOAT || v->type == NC_DOUBLE)) {
            v->mask_default_fill = 1;
            v->default_fill = v->type == NC_FLOAT ? (double)NC_FILL_FLOAT : NC_FILL_DOUBLE;
        }
    }
    nc_attr_text(ncid, varid, "units", v->units, sizeof v->units);
    nc_attr_text(ncid, varid, "long_name", v->long_name, sizeof v->long_name);
    nc_attr_text(ncid, varid, "standard_name", v->standard_name, sizeof v->standard_name);
    {
        static const char *const tn[] = {"", "int8", "char", "int16", "int32", "float32", "float64", "uint8", "uint16", "uint32", "int64", "uint64", "string"};
        const char *tname = v->type < 13 ? tn[v->type] : "?";
        snprintf(v->packing, sizeof v->packing, "%s%s", tname, (has_sf || has_ao) ? " packed" : "");
    }
    size_t npts = (size_t)v->ny * (size_t)v->nx;
    v->raw = malloc(npts * sizeof *v->raw);
    v->values = malloc(npts * sizeof *v->values);
    if (!v->raw || !v->values) {
        st = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
        goto fail;
    }
    *out = v;
    return SM_OK;
fail:
    nc_var_close(v);
    return st;
}

int nc_var_ntimes(const nc_var *v) { return v->ntimes; }
int nc_var_nmembers(const nc_var *v) { return v->nmembers; }
int nc_var_nlevels(const nc_var *v) { return v->nlevels; }
double nc_var_level_value(const nc_var *v, int k) { return v->level_values[k]; }
const char *nc_var_level_name(const nc_var *v) { return v->level_name; }
const src_geometry *nc_var_geometry(const nc_var *v) { return v->geom; }

int nc_var_dims(const nc_var *v, char kinds[8], const char *names[8])
{
    for (int d = 0; d < v->ndims; d++) {
        kinds[d] = v->kinds[d];
        names[d] = v->dimnames[d];
    }
    return v->ndims;
}

int nc_var_field_meta(const nc_var *v, int t, int m, field_meta *out)
{
    memset(out, 0, sizeof *out);
    out->msg = t + 1;
    snprintf(out->short_name, sizeof out->short_name, "%.63s", v->name);
    snprintf(out->name, sizeof out->name, "%.127s", v->long_name[0] ? v->long_name : v->name);
    snprintf(out->units, sizeof out->units, "%s", v->units);
    snprintf(out->standard_name, sizeof out->standard_name, "%s", v->standard_name);
    snprintf(out->type_of_level, sizeof out->type_of_level, "%.47s", v->level_name);
    out->level = v->level_index >= 0 ? v->level_values[v->level_index] : NAN;
    out->member = v->members[m];
    out->has_time = v->has_time;
    out->valid_time = v->times[t];
    out->reference_time = v->refs ? v->refs[t] : NAN;
    out->forecast_period = v->periods ? v->periods[t] : NAN;
    out->time_is_index = v->time_is_index;
    snprintf(out->calendar, sizeof out->calendar, "%s", cf_calendar_name(v->cal));
    snprintf(out->packing, sizeof out->packing, "%s", v->packing);
    out->npoints = (int64_t)v->ny * v->nx;
    return SM_OK;
}

int nc_var_read(nc_var *v, int t, int m, const double **values)
{
    size_t start[NCV_MAXDIMS], count[NCV_MAXDIMS];
    for (int d = 0; d < v->ndims; d++) {
        start[d] = 0;
        count[d] = 1;
        if (d == v->dT) start[d] = (size_t)t;
        else if (d == v->dR) start[d] = (size_t)m;
        else if (d == v->dZ) start[d] = (size_t)v->level_index;
        else if (d == v->dY) count[d] = (size_t)v->ny;
        else if (d == v->dX) count[d] = (size_t)v->nx;
    }
    int s = nc_get_vara_double(v->r->ncid, v->varid, start, count, v->raw);
    if (s != NC_NOERR && s != NC_ERANGE)
        return sm_fail(SM_ERR_IO, "%s: variable %s: cannot read time index %d: %s", v->r->path, v->name, t, nc_strerror(s));
    int ny = v->ny, nx = v->nx;
    for (int j = 0; j < ny; j++) {
        for (int i = 0; i < nx; i++) {
            int ii = v->lon_flip ? nx - 1 - i : i;
            double x = v->y_before_x ? v->raw[(size_t)j * nx + ii] : v->raw[(size_t)ii * ny + j];
            int bad = !isfinite(x);
            if (v->has_fill && x == v->fill) bad = 1;
            for (int k = 0; k < v->nmissing; k++)
                if (x == v->missing[k]) bad = 1;
            if (v->mask_default_fill && x == v->default_fill) bad = 1;
            double y = x * v->scale + v->offset;
            double cmp = v->range_unpacked ? y : x;
            if (v->has_vmin && cmp < v->vmin) bad = 1;
            if (v->has_vmax && cmp > v->vmax) bad = 1;
            v->values[(size_t)j * nx + i] = bad ? NAN : y;
        }
    }
    *values = v->values;
    return SM_OK;
}
