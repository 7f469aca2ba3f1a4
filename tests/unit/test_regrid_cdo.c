/* Regridding against CDO (Debian's cdo, a test reference only) on the shared sample files:
 *  - ERA5 UK 2 m temperature (GRIB1 regular_ll, every 4th of its 744 fields) onto uk050:
 *    remapbil and remapcon, 1e-4 relative on interior points;
 *  - ERA-Interim z/u at 500 hPa (NetCDF, lon -180..179.25) onto wb5625: remapbil and remapcon;
 *  - the 1 deg land-sea mask (latitude ascending) onto wb5625: nearest against remapnn;
 *  - a 0.1 deg field crossing the 0 meridian (lon0 350 E) onto an offset grid: remapbil, remapcon;
 *  - reduced Gaussian N48 10 m u wind onto wb5625 against `cdo -remapbil -setgridtype,regular`
 *    within 1 % of the field's range; its regular version (`setgridtype,regular`) onto wb5625
 *    against remapcon.
 * Source values are read here with ecCodes / netCDF-C directly; CDO's output is read back with
 * netCDF-C and compared point by point by coordinates. Skips when cdo or the data is missing. */
#include "testutil.h"

#include "core/log.h"
#include "grid/geometry.h"
#include "grid/grid.h"
#include "grid/regrid.h"

#include <eccodes.h>
#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int have_cdo(void)
{
    static int known = -1;
    if (known < 0) known = system("cdo --version >/dev/null 2>&1") == 0;
    return known;
}

static const char *need_data(const char *name, char *buf, size_t len)
{
    const char *p = testutil_shared_data(name, buf, len);
    if (!p) testutil_skip_or_fail("../shared/data is absent");
    if (!have_cdo()) testutil_skip_or_fail("cdo is not installed (Debian package cdo)");
    return p;
}

static grid *load(const char *name)
{
    grid *g = NULL;
    if (grid_load(name, &g)) fail_msg("grid_load(%s): %s", name, sm_last_error());
    return g;
}

/* A CDO grid description of a regular lat-lon grid (latitude as stored: north -> south). */
static void write_cdo_grid(const grid *g, const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "gridtype = lonlat\nxsize = %d\nysize = %d\nxfirst = %.10g\nxinc = %.10g\nyfirst = %.10g\nyinc = %.10g\n",
            g->nlon, g->nlat, g->lon[0], g->lon[1] - g->lon[0], g->lat[0], g->lat[1] - g->lat[0]);
    fclose(f);
}

static void run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) fail_msg("command failed (%d): %s", rc, cmd);
}

/* CDO's NetCDF output: coordinates and every time step of its one data variable. */
typedef struct {
    int nlat, nlon, ntime;
    double *lat, *lon;
    float *val; /* ntime * nlat * nlon, NaN where CDO wrote its missing value */
} cdo_out;

static void read_coord(int nc, const char *name, int *n, double **v)
{
    int id, dim;
    size_t len;
    if (nc_inq_varid(nc, name, &id) != NC_NOERR) fail_msg("CDO output lacks '%s'", name);
    nc_inq_vardimid(nc, id, &dim);
    nc_inq_dimlen(nc, dim, &len);
    *n = (int)len;
    *v = malloc(len * sizeof **v);
    assert_int_equal(nc_get_var_double(nc, id, *v), NC_NOERR);
}

static cdo_out read_cdo(const char *path)
{
    cdo_out o = {0};
    int nc;
    if (nc_open(path, NC_NOWRITE, &nc) != NC_NOERR) fail_msg("cannot open CDO output %s", path);
    read_coord(nc, "lat", &o.nlat, &o.lat);
    read_coord(nc, "lon", &o.nlon, &o.lon);
    int nvars, vid = -1;
    nc_inq_nvars(nc, &nvars);
    for (int v = 0; v < nvars && vid < 0; v++) {
        char name[NC_MAX_NAME + 1];
        int nd;
        nc_inq_varname(nc, v, name);
        nc_inq_varndims(nc, v, &nd);
        if (nd >= 2 && strcmp(name, "lat") && strcmp(name, "lon") && !strstr(name, "bnds")) vid = v;
    }
    if (vid < 0) fail_msg("%s: no data variable", path);
    int nd, dims[4];
    nc_inq_varndims(nc, vid, &nd);
    nc_inq_vardimid(nc, vid, dims);
    size_t total = 1;
    for (int d = 0; d < nd; d++) {
        size_t len;
        nc_inq_dimlen(nc, dims[d], &len);
        total *= len;
    }
    o.ntime = (int)(total / ((size_t)o.nlat * o.nlon));
    o.val = malloc(total * sizeof *o.val);
    assert_int_equal(nc_get_var_float(nc, vid, o.val), NC_NOERR);
    float fill;
    if (nc_get_att_float(nc, vid, "_FillValue", &fill) == NC_NOERR ||
        nc_get_att_float(nc, vid, "missing_value", &fill) == NC_NOERR)
        for (size_t k = 0; k < total; k++)
            if (o.val[k] == fill) o.val[k] = NAN;
    nc_close(nc);
    return o;
}

static void free_cdo(cdo_out *o)
{
    free(o->lat);
    free(o->lon);
    free(o->val);
}

/* Index of coordinate x in v (within 1e-6, longitudes modulo 360), or -1. */
static int find_coord(const double *v, int n, double x, int is_lon)
{
    for (int k = 0; k < n; k++) {
        double d = fabs(v[k] - x);
        if (is_lon) d = fmin(d, fabs(360.0 - d));
        if (d < 1e-6) return k;
    }
    return -1;
}

/* Compare our field (target grid order) with CDO's time step t on interior points.
 * tol_abs: allowed |ours - cdo|; returns the largest difference, counts compared points. */
static double compare(const grid *g, const float *ours, const cdo_out *c, int t, int interior, int *ncmp)
{
    double maxd = 0;
    for (int j = interior; j < g->nlat - interior; j++) {
        int jc = find_coord(c->lat, c->nlat, g->lat[j], 0);
        if (jc < 0) fail_msg("CDO output has no latitude %g", g->lat[j]);
        for (int i = interior; i < g->nlon - interior; i++) {
            int ic = find_coord(c->lon, c->nlon, g->lon[i], 1);
            if (ic < 0) fail_msg("CDO output has no longitude %g", g->lon[i]);
            float a = ours[j * g->nlon + i], b = c->val[((size_t)t * c->nlat + jc) * c->nlon + ic];
            if (isnan(a) != isnan(b)) fail_msg("(%g, %g) step %d: ours %g, cdo %g", g->lat[j], g->lon[i], t, a, b);
            if (isnan(a)) continue;
            maxd = fmax(maxd, fabs((double)a - b));
            (*ncmp)++;
        }
    }
    return maxd;
}

/* ---- GRIB reading with ecCodes ------------------------------------------------------------ */

typedef struct {
    src_geometry *geom;
    int nfields;
    double *values; /* nfields * npoints in geometry order */
} grib_fields;

static double get_d(codes_handle *h, const char *key)
{
    double v;
    if (codes_get_double(h, key, &v)) fail_msg("ecCodes: no key %s", key);
    return v;
}

static long get_l(codes_handle *h, const char *key)
{
    long v;
    if (codes_get_long(h, key, &v)) fail_msg("ecCodes: no key %s", key);
    return v;
}

/* Geometry of a regular_ll or reduced_gg message from its own keys (scanning mode 0 or 64). */
static src_geometry *grib_geometry(codes_handle *h)
{
    char type[64];
    size_t tl = sizeof type;
    assert_int_equal(codes_get_string(h, "gridType", type, &tl), 0);
    assert_int_equal(get_l(h, "iScansNegatively"), 0);
    src_geometry *g = NULL;
    if (strcmp(type, "regular_ll") == 0) {
        long ni = get_l(h, "Ni"), nj = get_l(h, "Nj");
        double la0 = get_d(h, "latitudeOfFirstGridPointInDegrees"), dj = get_d(h, "jDirectionIncrementInDegrees");
        double sign = get_l(h, "jScansPositively") ? 1.0 : -1.0;
        double *lat = malloc((size_t)nj * sizeof *lat);
        for (long j = 0; j < nj; j++) lat[j] = la0 + sign * dj * j;
        assert_int_equal(geometry_create_regular((int)nj, lat, (int)ni, get_d(h, "longitudeOfFirstGridPointInDegrees"),
                                                 get_d(h, "iDirectionIncrementInDegrees"), &g), SM_OK);
        free(lat);
    } else if (strcmp(type, "reduced_gg") == 0) {
        size_t npl, n;
        assert_int_equal(codes_get_size(h, "pl", &npl), 0);
        long *pl = malloc(npl * sizeof *pl);
        assert_int_equal(codes_get_long_array(h, "pl", pl, &npl), 0);
        assert_int_equal(codes_get_size(h, "latitudes", &n), 0);
        double *plat = malloc(n * sizeof *plat), *plon = malloc(n * sizeof *plon);
        assert_int_equal(codes_get_double_array(h, "latitudes", plat, &n), 0);
        assert_int_equal(codes_get_double_array(h, "longitudes", plon, &n), 0);
        double *lat = malloc(npl * sizeof *lat), *l0 = malloc(npl * sizeof *l0), *dl = malloc(npl * sizeof *dl);
        int *len = malloc(npl * sizeof *len);
        size_t off = 0;
        for (size_t j = 0; j < npl; j++) {
            lat[j] = plat[off];
            l0[j] = plon[off];
            len[j] = (int)pl[j];
            dl[j] = 360.0 / (double)pl[j]; /* the shared file is global: every row spans 360 deg */
            off += (size_t)pl[j];
        }
        assert_int_equal(off, n);
        assert_int_equal(geometry_create_rows((int)npl, lat, len, l0, dl, &g), SM_OK);
        free(pl);
        free(plat);
        free(plon);
        free(lat);
        free(l0);
        free(dl);
        free(len);
    } else {
        fail_msg("unexpected gridType %s", type);
    }
    return g;
}

/* Messages 0, stride, 2 * stride, ... of a GRIB file (all of them with stride 1). */
static grib_fields read_grib(const char *path, int stride)
{
    grib_fields r = {0};
    int msg = 0;
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    int err = 0;
    codes_handle *h;
    size_t cap = 0;
    while ((h = codes_handle_new_from_file(NULL, f, PRODUCT_GRIB, &err))) {
        if (msg++ % stride != 0) {
            codes_handle_delete(h);
            continue;
        }
        if (!r.geom) r.geom = grib_geometry(h);
        size_t n = (size_t)geometry_npoints(r.geom), got = n;
        if ((size_t)r.nfields + 1 > cap) {
            cap = cap ? 2 * cap : 64;
            r.values = realloc(r.values, cap * n * sizeof *r.values);
        }
        assert_int_equal(codes_get_double_array(h, "values", r.values + (size_t)r.nfields * n, &got), 0);
        assert_int_equal(got, n);
        r.nfields++;
        codes_handle_delete(h);
    }
    assert_int_equal(err, 0);
    fclose(f);
    return r;
}

/* ---- the comparisons ---------------------------------------------------------------------- */

static void era5_uk(regrid_method method, const char *cdo_op)
{
    char buf[1024], dir[512], cmd[4096], gridtxt[600], out[600];
    const char *path = need_data("xarray-data__era5-2mt-2019-03-uk.grib", buf, sizeof buf);
    testutil_tmpdir(cdo_op, dir, sizeof dir);
    grid *g = load("uk050");
    snprintf(gridtxt, sizeof gridtxt, "%s/uk050.txt", dir);
    snprintf(out, sizeof out, "%s/cdo.nc", dir);
    write_cdo_grid(g, gridtxt);
    /* every 4th of the 744 hourly fields (keeps the test fast under the sanitizers) */
    snprintf(cmd, sizeof cmd, "cdo -s -f nc %s,%s -seltimestep,1/744/4 '%s' '%s'", cdo_op, gridtxt, path, out);
    run(cmd);
    cdo_out c = read_cdo(out);
    grib_fields src = read_grib(path, 4);
    assert_int_equal(src.nfields, 186);
    assert_int_equal(c.ntime, src.nfields);
    regrid_weights *w = NULL;
    assert_int_equal(regrid_weights_create(src.geom, g, method, &w), SM_OK);
    float *o = malloc((size_t)g->nlat * g->nlon * sizeof *o);
    int64_t np = geometry_npoints(src.geom);
    double maxrel = 0;
    int ncmp = 0;
    for (int t = 0; t < src.nfields; t++) {
        regrid_apply(w, src.values + (size_t)t * np, o);
        /* relative to the field's magnitude (2 m temperature in K) */
        double scale = 0;
        for (int k = 0; k < g->nlat * g->nlon; k++)
            if (!isnan(o[k])) scale = fmax(scale, fabs(o[k]));
        maxrel = fmax(maxrel, compare(g, o, &c, t, 1, &ncmp) / scale);
    }
    print_message("ERA5 UK -> uk050 %s vs cdo %s: %d interior points, max relative difference %.3g\n",
                  regrid_method_name(method), cdo_op, ncmp, maxrel);
    assert_int_equal(ncmp, 186 * 15 * 23);
    assert_true(maxrel < 1e-4);
    free(o);
    regrid_weights_free(w);
    free(src.values);
    geometry_free(src.geom);
    free_cdo(&c);
    grid_free(g);
}

static void test_era5_uk_bilinear(void **state)
{
    (void)state;
    era5_uk(REGRID_BILINEAR, "remapbil");
}

static void test_era5_uk_conservative(void **state)
{
    (void)state;
    era5_uk(REGRID_CONSERVATIVE, "remapcon");
}

/* Reads (month 0, level `level`) of `var` from eraint_uvz.nc: int16 with a negative
 * scale_factor; the geometry's rows are the file's latitudes (90 -> -90), lon from -180. */
static double *read_eraint(const char *path, const char *var, int level, src_geometry **geom)
{
    int nc, vid, lid, latid, lonid;
    if (nc_open(path, NC_NOWRITE, &nc) != NC_NOERR) fail_msg("cannot open %s", path);
    assert_int_equal(nc_inq_varid(nc, var, &vid), NC_NOERR);
    assert_int_equal(nc_inq_varid(nc, "level", &lid), NC_NOERR);
    assert_int_equal(nc_inq_varid(nc, "latitude", &latid), NC_NOERR);
    assert_int_equal(nc_inq_varid(nc, "longitude", &lonid), NC_NOERR);
    int dims[4], nd;
    nc_inq_varndims(nc, vid, &nd);
    assert_int_equal(nd, 4);
    nc_inq_vardimid(nc, vid, dims);
    size_t nlev, nlat, nlon;
    nc_inq_dimlen(nc, dims[1], &nlev);
    nc_inq_dimlen(nc, dims[2], &nlat);
    nc_inq_dimlen(nc, dims[3], &nlon);
    int levels[16];
    assert_true(nlev <= 16);
    nc_get_var_int(nc, lid, levels);
    size_t il = nlev;
    for (size_t k = 0; k < nlev; k++)
        if (levels[k] == level) il = k;
    assert_true(il < nlev);
    double *lat = malloc(nlat * sizeof *lat), *lon = malloc(nlon * sizeof *lon);
    nc_get_var_double(nc, latid, lat);
    nc_get_var_double(nc, lonid, lon);
    double sf = 1, off = 0;
    nc_get_att_double(nc, vid, "scale_factor", &sf);
    nc_get_att_double(nc, vid, "add_offset", &off);
    assert_true(sf < 0); /* the quirk this file carries */
    short *raw = malloc(nlat * nlon * sizeof *raw);
    size_t start[4] = {0, il, 0, 0}, count[4] = {1, 1, nlat, nlon};
    assert_int_equal(nc_get_vara_short(nc, vid, start, count, raw), NC_NOERR);
    double *v = malloc(nlat * nlon * sizeof *v);
    for (size_t k = 0; k < nlat * nlon; k++) v[k] = raw[k] * sf + off;
    assert_int_equal(geometry_create_regular((int)nlat, lat, (int)nlon, lon[0], lon[1] - lon[0], geom), SM_OK);
    assert_true(geometry_row_is_global(*geom, 0));
    free(raw);
    free(lat);
    free(lon);
    nc_close(nc);
    return v;
}

/* CDO cannot open eraint_uvz.nc (4-D variables without a time dimension), so the decoded slice
 * is written as a plain CF (lat, lon) file for CDO, with the file's own coordinates. */
static void write_slice(const char *path, const src_geometry *g, const double *v)
{
    int nc, dlat, dlon, vlat, vlon, vv;
    assert_int_equal(nc_create(path, NC_CLOBBER, &nc), NC_NOERR);
    nc_def_dim(nc, "lat", (size_t)g->nrows, &dlat);
    nc_def_dim(nc, "lon", (size_t)g->row_len[0], &dlon);
    nc_def_var(nc, "lat", NC_DOUBLE, 1, &dlat, &vlat);
    nc_def_var(nc, "lon", NC_DOUBLE, 1, &dlon, &vlon);
    nc_put_att_text(nc, vlat, "units", 13, "degrees_north");
    nc_put_att_text(nc, vlon, "units", 12, "degrees_east");
    int dd[2] = {dlat, dlon};
    nc_def_var(nc, "field", NC_DOUBLE, 2, dd, &vv);
    assert_int_equal(nc_enddef(nc), NC_NOERR);
    double *lon = malloc((size_t)g->row_len[0] * sizeof *lon);
    for (int i = 0; i < g->row_len[0]; i++) lon[i] = g->lon0[0] + i * g->dlon[0];
    nc_put_var_double(nc, vlat, g->lat);
    nc_put_var_double(nc, vlon, lon);
    nc_put_var_double(nc, vv, v);
    free(lon);
    assert_int_equal(nc_close(nc), NC_NOERR);
}

static void eraint_wb5625(regrid_method method, const char *cdo_op, double tol)
{
    char buf[1024], dir[512], cmd[4096], gridtxt[600], in[600], out[600];
    const char *path = need_data("xarray-data__eraint_uvz.nc", buf, sizeof buf);
    testutil_tmpdir(cdo_op, dir, sizeof dir);
    grid *g = load("wb5625");
    snprintf(gridtxt, sizeof gridtxt, "%s/wb5625.txt", dir);
    write_cdo_grid(g, gridtxt);
    const char *vars[2] = {"z", "u"};
    for (int k = 0; k < 2; k++) {
        src_geometry *s = NULL;
        double *v = read_eraint(path, vars[k], 500, &s);
        snprintf(in, sizeof in, "%s/%s.nc", dir, vars[k]);
        snprintf(out, sizeof out, "%s/%s_cdo.nc", dir, vars[k]);
        write_slice(in, s, v);
        snprintf(cmd, sizeof cmd, "cdo -s -f nc %s,%s '%s' '%s'", cdo_op, gridtxt, in, out);
        run(cmd);
        cdo_out c = read_cdo(out);
        regrid_weights *w = NULL;
        assert_int_equal(regrid_weights_create(s, g, method, &w), SM_OK);
        float *o = malloc((size_t)g->nlat * g->nlon * sizeof *o);
        regrid_apply(w, v, o);
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t p = 0; p < geometry_npoints(s); p++) {
            lo = fmin(lo, v[p]);
            hi = fmax(hi, v[p]);
        }
        int ncmp = 0;
        double maxd = compare(g, o, &c, 0, 0, &ncmp);
        print_message("eraint %s500 -> wb5625 %s vs cdo %s: %d points, max difference %.3g (%.3g of the range)\n",
                      vars[k], regrid_method_name(method), cdo_op, ncmp, maxd, maxd / (hi - lo));
        assert_int_equal(ncmp, 32 * 64);
        assert_true(maxd < tol * (hi - lo));
        free(o);
        regrid_weights_free(w);
        free_cdo(&c);
        free(v);
        geometry_free(s);
    }
    grid_free(g);
}

static void test_eraint_wb5625_bilinear(void **state)
{
    (void)state;
    eraint_wb5625(REGRID_BILINEAR, "remapbil", 1e-4);
}

/* Global conservative remapping, including the pole rows (90, -90) and the seam at -180. */
static void test_eraint_wb5625_conservative(void **state)
{
    (void)state;
    eraint_wb5625(REGRID_CONSERVATIVE, "remapcon", 1e-4);
}

/* Land-sea categories (int8, latitude ascending -89.5 .. 89.5, lon 0.5 .. 359.5) onto wb5625
 * with nearest neighbour against `cdo remapnn`: no target is equidistant from two sources, so
 * the categories must agree everywhere. */
static void test_landsea_nearest(void **state)
{
    (void)state;
    char buf[1024], dir[512], cmd[4096], gridtxt[600], out[600];
    const char *path = need_data("geocat-datafiles__landsea.nc", buf, sizeof buf);
    testutil_tmpdir("remapnn", dir, sizeof dir);
    grid *g = load("wb5625");
    snprintf(gridtxt, sizeof gridtxt, "%s/wb5625.txt", dir);
    snprintf(out, sizeof out, "%s/cdo.nc", dir);
    write_cdo_grid(g, gridtxt);
    snprintf(cmd, sizeof cmd, "cdo -s -f nc remapnn,%s '%s' '%s'", gridtxt, path, out);
    run(cmd);
    cdo_out c = read_cdo(out);
    int nc, vid, latid, lonid, dims[2];
    assert_int_equal(nc_open(path, NC_NOWRITE, &nc), NC_NOERR);
    assert_int_equal(nc_inq_varid(nc, "LSMASK", &vid), NC_NOERR);
    assert_int_equal(nc_inq_varid(nc, "lat", &latid), NC_NOERR);
    assert_int_equal(nc_inq_varid(nc, "lon", &lonid), NC_NOERR);
    nc_inq_vardimid(nc, vid, dims);
    size_t nlat, nlon;
    nc_inq_dimlen(nc, dims[0], &nlat);
    nc_inq_dimlen(nc, dims[1], &nlon);
    double *lat = malloc(nlat * sizeof *lat), *lon = malloc(nlon * sizeof *lon), *v = malloc(nlat * nlon * sizeof *v);
    nc_get_var_double(nc, latid, lat);
    nc_get_var_double(nc, lonid, lon);
    assert_int_equal(nc_get_var_double(nc, vid, v), NC_NOERR);
    nc_close(nc);
    assert_true(lat[1] > lat[0]); /* ascending: the quirk this file carries */
    src_geometry *s = NULL;
    assert_int_equal(geometry_create_regular((int)nlat, lat, (int)nlon, lon[0], lon[1] - lon[0], &s), SM_OK);
    regrid_weights *w = NULL;
    assert_int_equal(regrid_weights_create(s, g, REGRID_NEAREST, &w), SM_OK);
    float *o = malloc((size_t)g->nlat * g->nlon * sizeof *o);
    regrid_apply(w, v, o);
    /* targets at multiples of 45 E lie exactly halfway between two source columns (ties): there
     * ours must be one of the two candidates; everywhere else it must equal CDO's choice */
    int ncmp = 0, nties = 0, ndiff = 0, cats[5] = {0};
    for (int j = 0; j < g->nlat; j++) {
        int jc = find_coord(c.lat, c.nlat, g->lat[j], 0);
        assert_true(jc >= 0);
        int js = (int)floor(g->lat[j] - lat[0] + 0.5); /* nearest source row (1 deg, no ties) */
        for (int i = 0; i < g->nlon; i++) {
            int ic = find_coord(c.lon, c.nlon, g->lon[i], 1);
            assert_true(ic >= 0);
            float a = o[j * g->nlon + i], b = c.val[(size_t)jc * c.nlon + ic];
            assert_true(a == floorf(a) && a >= 0 && a <= 4);
            cats[(int)a]++;
            double u = (g->lon[i] - lon[0]) / (lon[1] - lon[0]);
            u -= 360.0 * floor(u / 360.0);
            if (fabs(u - floor(u) - 0.5) < 1e-9) {
                int i0 = (int)floor(u) % (int)nlon, i1 = (i0 + 1) % (int)nlon;
                assert_true(a == (float)v[(size_t)js * nlon + i0] || a == (float)v[(size_t)js * nlon + i1]);
                nties++;
                ndiff += a != b;
                continue;
            }
            if (a != b) fail_msg("(%g, %g): ours %g, cdo %g", g->lat[j], g->lon[i], a, b);
            ncmp++;
        }
    }
    print_message("landsea -> wb5625 nearest vs cdo remapnn: %d points identical, %d ties (%d resolved to the other "
                  "candidate); categories %d %d %d %d %d\n", ncmp, nties, ndiff, cats[0], cats[1], cats[2], cats[3],
                  cats[4]);
    assert_int_equal(ncmp + nties, 32 * 64);
    assert_true(cats[0] > 0 && cats[1] > 0);
    free(o);
    regrid_weights_free(w);
    geometry_free(s);
    free(lat);
    free(lon);
    free(v);
    free_cdo(&c);
    grid_free(g);
}

static void test_reduced_gg_wb5625(void **state)
{
    (void)state;
    char buf[1024], dir[512], cmd[4096], gridtxt[600], out[600];
    const char *path = need_data("cfgrib__reduced_gg.grib", buf, sizeof buf);
    testutil_tmpdir("reduced_gg", dir, sizeof dir);
    grid *g = load("wb5625");
    snprintf(gridtxt, sizeof gridtxt, "%s/wb5625.txt", dir);
    snprintf(out, sizeof out, "%s/cdo.nc", dir);
    write_cdo_grid(g, gridtxt);
    snprintf(cmd, sizeof cmd, "cdo -s -f nc remapbil,%s -setgridtype,regular '%s' '%s'", gridtxt, path, out);
    run(cmd);
    cdo_out c = read_cdo(out);
    grib_fields src = read_grib(path, 1);
    assert_int_equal(src.nfields, 1);
    assert_false(src.geom->is_regular);
    assert_int_equal(geometry_npoints(src.geom), 13280);
    regrid_weights *w = NULL;
    assert_int_equal(regrid_weights_create(src.geom, g, REGRID_BILINEAR, &w), SM_OK);
    float *o = malloc((size_t)g->nlat * g->nlon * sizeof *o);
    regrid_apply(w, src.values, o);
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t p = 0; p < 13280; p++) {
        lo = fmin(lo, src.values[p]);
        hi = fmax(hi, src.values[p]);
    }
    int ncmp = 0;
    double maxd = compare(g, o, &c, 0, 0, &ncmp);
    print_message("reduced_gg N48 -> wb5625 bilinear vs cdo -remapbil -setgridtype,regular: %d points, max "
                  "difference %.3g m/s (%.3g of the range %.3g)\n", ncmp, maxd, maxd / (hi - lo), hi - lo);
    assert_int_equal(ncmp, 32 * 64);
    assert_true(maxd < 0.01 * (hi - lo));
    free(o);
    regrid_weights_free(w);
    free(src.values);
    geometry_free(src.geom);
    free_cdo(&c);
    grid_free(g);
}

/* A field crossing the 0 meridian (alternate-scanning 2t, lon 350 -> 19 at 0.1 deg, decoded by
 * `cdo copy`), given to us with lon0 = 350 E, onto a grid in -180..180 convention whose points
 * fall between the source's: remapbil and remapcon, interior points. */
static void test_zero_meridian_cdo(void **state)
{
    (void)state;
    char buf[1024], dir[512], cmd[4096], gridtxt[600], nc_in[600], out[600];
    const char *path = need_data("cfgrib__alternate-scanning.grib", buf, sizeof buf);
    testutil_tmpdir("meridian", dir, sizeof dir);
    snprintf(nc_in, sizeof nc_in, "%s/src.nc", dir);
    snprintf(cmd, sizeof cmd, "cdo -s -f nc copy '%s' '%s'", path, nc_in);
    run(cmd);
    cdo_out src = read_cdo(nc_in);
    assert_int_equal(src.ntime, 1);
    assert_true(src.lon[0] < 0 && src.lon[src.nlon - 1] > 0); /* crosses the 0 meridian */
    double v_lon0 = src.lon[0] + 360.0;                       /* 350 E */
    src_geometry *s = NULL;
    assert_int_equal(geometry_create_regular(src.nlat, src.lat, src.nlon, v_lon0, src.lon[1] - src.lon[0], &s), SM_OK);
    double *v = malloc((size_t)src.nlat * src.nlon * sizeof *v);
    for (int k = 0; k < src.nlat * src.nlon; k++) v[k] = src.val[k];
    double lat[31], lon[45];
    for (int j = 0; j < 31; j++) lat[j] = 50.8 - 0.55 * j;
    for (int i = 0; i < 45; i++) lon[i] = -9.9 + 0.65 * i;
    grid *g = NULL;
    assert_int_equal(grid_create_latlon("meridian", 31, lat, 45, lon, &g), SM_OK);
    snprintf(gridtxt, sizeof gridtxt, "%s/grid.txt", dir);
    write_cdo_grid(g, gridtxt);
    const char *ops[2] = {"remapbil", "remapcon"};
    const regrid_method methods[2] = {REGRID_BILINEAR, REGRID_CONSERVATIVE};
    float *o = malloc((size_t)g->nlat * g->nlon * sizeof *o);
    for (int m = 0; m < 2; m++) {
        snprintf(out, sizeof out, "%s/%s.nc", dir, ops[m]);
        snprintf(cmd, sizeof cmd, "cdo -s -f nc %s,%s '%s' '%s'", ops[m], gridtxt, nc_in, out);
        run(cmd);
        cdo_out c = read_cdo(out);
        regrid_weights *w = NULL;
        assert_int_equal(regrid_weights_create(s, g, methods[m], &w), SM_OK);
        regrid_apply(w, v, o);
        int ncmp = 0;
        double maxd = compare(g, o, &c, 0, 1, &ncmp), scale = 0;
        for (int k = 0; k < g->nlat * g->nlon; k++)
            if (!isnan(o[k])) scale = fmax(scale, fabs(o[k]));
        print_message("alternate-scanning 2t (lon0 350 E) -> 0.55 x 0.65 deg grid from -9.9 E, %s vs cdo %s: %d "
                      "interior points, max relative difference %.3g\n", regrid_method_name(methods[m]), ops[m], ncmp,
                      maxd / scale);
        assert_int_equal(ncmp, 29 * 43);
        assert_true(maxd < 1e-4 * scale);
        regrid_weights_free(w);
        free_cdo(&c);
    }
    free(o);
    free(v);
    grid_free(g);
    geometry_free(s);
    free_cdo(&src);
}

/* A regular Gaussian grid (the N48 field made regular by `cdo setgridtype,regular`: unequally
 * spaced latitudes, outermost rows 88.57 deg, polar) onto wb5625 with remapcon, all points. */
static void test_regular_gg_conservative(void **state)
{
    (void)state;
    char buf[1024], dir[512], cmd[4096], gridtxt[600], nc_in[600], out[600];
    const char *path = need_data("cfgrib__reduced_gg.grib", buf, sizeof buf);
    testutil_tmpdir("regular_gg", dir, sizeof dir);
    snprintf(nc_in, sizeof nc_in, "%s/src.nc", dir);
    snprintf(cmd, sizeof cmd, "cdo -s -f nc setgridtype,regular '%s' '%s'", path, nc_in);
    run(cmd);
    cdo_out src = read_cdo(nc_in);
    assert_int_equal(src.nlat, 96);
    assert_int_equal(src.nlon, 192);
    src_geometry *s = NULL;
    assert_int_equal(geometry_create_regular(src.nlat, src.lat, src.nlon, src.lon[0], src.lon[1] - src.lon[0], &s), SM_OK);
    double *v = malloc((size_t)src.nlat * src.nlon * sizeof *v), lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < src.nlat * src.nlon; k++) {
        v[k] = src.val[k];
        lo = fmin(lo, v[k]);
        hi = fmax(hi, v[k]);
    }
    grid *g = load("wb5625");
    snprintf(gridtxt, sizeof gridtxt, "%s/wb5625.txt", dir);
    write_cdo_grid(g, gridtxt);
    snprintf(out, sizeof out, "%s/con.nc", dir);
    snprintf(cmd, sizeof cmd, "cdo -s -f nc remapcon,%s '%s' '%s'", gridtxt, nc_in, out);
    run(cmd);
    cdo_out c = read_cdo(out);
    regrid_weights *w = NULL;
    assert_int_equal(regrid_weights_create(s, g, REGRID_CONSERVATIVE, &w), SM_OK);
    float *o = malloc((size_t)g->nlat * g->nlon * sizeof *o);
    regrid_apply(w, v, o);
    int ncmp = 0;
    double maxd = compare(g, o, &c, 0, 0, &ncmp);
    print_message("regular_gg N48 -> wb5625 conservative vs cdo remapcon: %d points, max difference %.3g (%.3g of "
                  "the range)\n", ncmp, maxd, maxd / (hi - lo));
    assert_int_equal(ncmp, 32 * 64);
    assert_true(maxd < 1e-4 * (hi - lo));
    free(o);
    regrid_weights_free(w);
    free_cdo(&c);
    grid_free(g);
    free(v);
    geometry_free(s);
    free_cdo(&src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_era5_uk_bilinear),
        cmocka_unit_test(test_era5_uk_conservative),
        cmocka_unit_test(test_eraint_wb5625_bilinear),
        cmocka_unit_test(test_eraint_wb5625_conservative),
        cmocka_unit_test(test_landsea_nearest),
        cmocka_unit_test(test_zero_meridian_cdo),
        cmocka_unit_test(test_reduced_gg_wb5625),
        cmocka_unit_test(test_regular_gg_conservative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
