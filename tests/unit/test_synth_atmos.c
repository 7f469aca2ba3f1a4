/* synth toy-atmosphere: calendar, land-sea mask, value ranges, land/sea contrast, persistence
 * versus climatology, determinism, and the NetCDF/GRIB2 files (keys, values within packing). */
#include "testutil.h"
#include "tasks/synth.h"
#include "tasks/synth_write.h"

#include <eccodes.h>
#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_calendar(void **state)
{
    (void)state;
    assert_int_equal(synth_hours_from_civil(1970, 1, 1, 0), 0);
    assert_int_equal(synth_hours_from_civil(2000, 1, 1, 0), 10957 * 24);
    assert_int_equal(synth_hours_from_civil(2000, 3, 1, 6) - synth_hours_from_civil(2000, 2, 28, 6), 48); /* leap */
    assert_int_equal(synth_hours_from_civil(1900, 3, 1, 0) - synth_hours_from_civil(1900, 2, 28, 0), 24);
    assert_int_equal(synth_weekday(synth_hours_from_civil(2000, 1, 3, 0)), 0);  /* Monday */
    assert_int_equal(synth_weekday(synth_hours_from_civil(1969, 12, 31, 0)), 2); /* Wednesday */
    for (int64_t h = synth_hours_from_civil(1899, 12, 25, 0); h < synth_hours_from_civil(2101, 1, 5, 0); h += 6 * 37) {
        int y, m, d, hh;
        synth_civil_from_hours(h, &y, &m, &d, &hh);
        assert_int_equal(synth_hours_from_civil(y, m, d, hh), h);
        assert_true(m >= 1 && m <= 12 && d >= 1 && d <= 31 && hh >= 0 && hh < 24);
    }
}

static void test_mask_and_regions(void **state)
{
    (void)state;
    synth_atmos_opts o;
    synth_atmos_defaults(&o);
    o.years = 1;
    o.spinup_steps = 0;
    synth_atmos *a;
    assert_int_equal(synth_atmos_create(&o, &a), 0);
    const float *lsm = synth_atmos_lsm(a);
    const double *lat = synth_atmos_lat(a), *lon = synth_atmos_lon(a);
    assert_float_equal(lat[0], 87.1875, 1e-12);
    assert_float_equal(lat[SYNTH_NLAT - 1], -87.1875, 1e-12);
    assert_float_equal(lon[0], 0.0, 1e-12);
    assert_float_equal(lon[SYNTH_NLON - 1], 354.375, 1e-12);
    int land = 0, land_mid = 0;
    for (int p = 0; p < SYNTH_NPTS; p++) {
        assert_true(lsm[p] == 0.0f || lsm[p] == 1.0f);
        land += lsm[p] > 0.5f;
        if (fabs(lat[p / SYNTH_NLON]) < 60) land_mid += lsm[p] > 0.5f;
        if (lat[p / SYNTH_NLON] < -62.0) assert_true(lsm[p] == 1.0f); /* Antarctica */
        int r = synth_region(lat[p / SYNTH_NLON], lsm[p]);
        assert_int_equal(r / 3, lsm[p] > 0.5f);
    }
    assert_true(land > 0.2 * SYNTH_NPTS && land < 0.6 * SYNTH_NPTS);
    assert_true(land_mid > 0);
    assert_int_equal(synth_region(10.0, 0.0f), 0);
    assert_int_equal(synth_region(-45.0, 0.0f), 1);
    assert_int_equal(synth_region(70.0, 1.0f), 5);
    assert_int_equal(synth_atmos_nsteps(a), 366 * 4);
    assert_int_equal(synth_atmos_hours(a), synth_hours_from_civil(2000, 1, 1, 0));
    synth_atmos_free(a);
}

/* 240 days of fields (January to August): ranges, land/sea contrast, persistence < climatology. */
static void test_statistics(void **state)
{
    (void)state;
    synth_atmos_opts o;
    synth_atmos_defaults(&o);
    o.days = 240;
    o.seed = 2;
    synth_atmos *a;
    assert_int_equal(synth_atmos_create(&o, &a), 0);
    int nt = (int)synth_atmos_nsteps(a);
    float *cur = malloc(sizeof(float) * SYNTH_NVARS * SYNTH_NPTS), *prev = malloc(sizeof(float) * SYNTH_NVARS * SYNTH_NPTS);
    double *sum = calloc(SYNTH_NVARS * SYNTH_NPTS, sizeof(double)), *sum2 = calloc(SYNTH_NVARS * SYNTH_NPTS, sizeof(double));
    double pers[SYNTH_NVARS] = {0}, lo[SYNTH_NVARS], hi[SYNTH_NVARS];
    double dland = 0, dsea = 0;
    int nland = 0;
    const float *lsm = synth_atmos_lsm(a);
    for (int p = 0; p < SYNTH_NPTS; p++) nland += lsm[p] > 0.5f;
    for (int v = 0; v < SYNTH_NVARS; v++) lo[v] = 1e30, hi[v] = -1e30;
    for (int k = 0; k < nt; k++) {
        if (k) synth_atmos_advance(a);
        synth_atmos_fields(a, cur);
        for (int v = 0; v < SYNTH_NVARS; v++)
            for (int p = 0; p < SYNTH_NPTS; p++) {
                double x = cur[v * SYNTH_NPTS + p];
                assert_true(isfinite(x));
                if (x < lo[v]) lo[v] = x;
                if (x > hi[v]) hi[v] = x;
                sum[v * SYNTH_NPTS + p] += x;
                sum2[v * SYNTH_NPTS + p] += x * x;
                if (k) {
                    double d = x - prev[v * SYNTH_NPTS + p];
                    pers[v] += d * d;
                    if (v == 2) {
                        if (lsm[p] > 0.5f) dland += d * d;
                        else dsea += d * d;
                    }
                }
            }
        float *t = prev;
        prev = cur;
        cur = t;
    }
    assert_true(lo[0] > 44000 && hi[0] < 62000); /* z500, m2 s-2 */
    assert_true(lo[1] > 215 && hi[1] < 310);     /* t850, K */
    assert_true(lo[2] > 200 && hi[2] < 330);     /* t2m, K */
    for (int v = 0; v < SYNTH_NVARS; v++) {
        double clim = 0;
        for (int p = 0; p < SYNTH_NPTS; p++) {
            double m = sum[v * SYNTH_NPTS + p] / nt;
            clim += sum2[v * SYNTH_NPTS + p] / nt - m * m;
        }
        double rmse_clim = sqrt(clim / SYNTH_NPTS), rmse_pers = sqrt(pers[v] / ((double)(nt - 1) * SYNTH_NPTS));
        print_message("var %d: persistence +6h RMSE %.4g, climatology RMSE %.4g\n", v, rmse_pers, rmse_clim);
        assert_true(rmse_pers > 0.0);
        assert_true(rmse_pers < 0.8 * rmse_clim);
    }
    /* t2m: the strong diurnal cycle over land makes 6-hourly changes much larger there */
    double rl = sqrt(dland / ((double)nland * (nt - 1))), rs = sqrt(dsea / ((double)(SYNTH_NPTS - nland) * (nt - 1)));
    print_message("t2m 6-hourly change RMS: land %.3g, sea %.3g\n", rl, rs);
    assert_true(rl > 3.0 * rs);
    free(cur);
    free(prev);
    free(sum);
    free(sum2);
    synth_atmos_free(a);
}

static void fields_after(const synth_atmos_opts *o, int steps, float *out)
{
    synth_atmos *a;
    assert_int_equal(synth_atmos_create(o, &a), 0);
    for (int k = 0; k < steps; k++) synth_atmos_advance(a);
    synth_atmos_fields(a, out);
    synth_atmos_free(a);
}

static void test_determinism(void **state)
{
    (void)state;
    size_t n = SYNTH_NVARS * SYNTH_NPTS;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    synth_atmos_opts o;
    synth_atmos_defaults(&o);
    o.seed = 9;
    o.years = 1;
    fields_after(&o, 20, x);
    o.years = 2; /* the length does not change the first steps */
    fields_after(&o, 20, y);
    assert_memory_equal(x, y, n * sizeof(float));
    o.seed = 10;
    fields_after(&o, 20, y);
    assert_memory_not_equal(x, y, n * sizeof(float));
    free(x);
    free(y);
}

static double *nc_read(int nc, const char *var, size_t n)
{
    int vid;
    assert_int_equal(nc_inq_varid(nc, var, &vid), NC_NOERR);
    double *buf = malloc(n * sizeof(double));
    assert_int_equal(nc_get_var_double(nc, vid, buf), NC_NOERR);
    return buf;
}

static long get_long(codes_handle *h, const char *key)
{
    long v = -999;
    assert_int_equal(codes_get_long(h, key, &v), 0);
    return v;
}

static void test_files(void **state)
{
    (void)state;
    char dir[256], pnc[512], pgrib[512];
    testutil_tmpdir("synth_atmos", dir, sizeof dir);
    synth_atmos_opts o;
    synth_atmos_defaults(&o);
    o.days = 60;
    o.seed = 4;
    assert_int_equal(synth_atmos_write(&o, dir), 0);
    snprintf(pnc, sizeof pnc, "%s/toy-atmosphere.nc", dir);
    snprintf(pgrib, sizeof pgrib, "%s/toy-atmosphere.grib2", dir);
    const int nt = 60 * 4;

    int nc, vid, nd, dims[4];
    assert_int_equal(nc_open(pnc, NC_NOWRITE, &nc), NC_NOERR);
    char text[256];
    size_t len;
    assert_int_equal(nc_get_att_text(nc, NC_GLOBAL, "Conventions", text), NC_NOERR);
    assert_memory_equal(text, "CF-1.8", 6);
    int ival = 0;
    assert_int_equal(nc_get_att_int(nc, NC_GLOBAL, "days", &ival), NC_NOERR);
    assert_int_equal(ival, 60);
    assert_int_equal(nc_inq_varid(nc, "time", &vid), NC_NOERR);
    memset(text, 0, sizeof text);
    assert_int_equal(nc_get_att_text(nc, vid, "units", text), NC_NOERR);
    assert_string_equal(text, "hours since 1970-01-01 00:00:00");
    memset(text, 0, sizeof text);
    assert_int_equal(nc_get_att_text(nc, vid, "calendar", text), NC_NOERR);
    assert_string_equal(text, "proleptic_gregorian");
    double *time = nc_read(nc, "time", nt);
    assert_float_equal(time[0], (double)synth_hours_from_civil(2000, 1, 1, 0), 0.0);
    for (int k = 1; k < nt; k++) assert_float_equal(time[k] - time[k - 1], 6.0, 0.0);
    assert_int_equal(nc_inq_varid(nc, "lsm", &vid), NC_NOERR);
    nc_inq_varndims(nc, vid, &nd);
    assert_int_equal(nd, 2);
    assert_int_equal(nc_inq_varid(nc, "z500", &vid), NC_NOERR);
    nc_inq_varndims(nc, vid, &nd);
    nc_inq_vardimid(nc, vid, dims);
    assert_int_equal(nd, 3);
    const char *want_dims[3] = {"time", "latitude", "longitude"};
    for (int d = 0; d < 3; d++) {
        char name[NC_MAX_NAME + 1];
        nc_inq_dim(nc, dims[d], name, &len);
        assert_string_equal(name, want_dims[d]);
    }
    memset(text, 0, sizeof text);
    assert_int_equal(nc_get_att_text(nc, vid, "standard_name", text), NC_NOERR);
    assert_string_equal(text, "geopotential");
    double *lat = nc_read(nc, "latitude", SYNTH_NLAT), *lsm = nc_read(nc, "lsm", SYNTH_NPTS);
    assert_float_equal(lat[0], 87.1875, 1e-12);

    /* GRIB2: lsm first, then z, t, 2t per time; keys and values against the NetCDF */
    FILE *f = fopen(pgrib, "rb");
    assert_non_null(f);
    static const long param[3] = {129, 130, 167}, level[3] = {500, 850, 2}, bits[3] = {24, 16, 16};
    static const char *const names[3] = {"z500", "t850", "t2m"}, *const levtype[3] = {"isobaricInhPa", "isobaricInhPa",
                                                                                         "heightAboveGround"};
    static const char *const shortname[3] = {"z", "t", "2t"};
    double *nc_field = malloc(sizeof(double) * SYNTH_NPTS), *values = malloc(sizeof(double) * SYNTH_NPTS);
    int err = 0, msg = 0;
    codes_handle *h;
    while ((h = codes_handle_new_from_file(NULL, f, PRODUCT_GRIB, &err)) != NULL) {
        size_t n = 0;
        assert_int_equal(codes_get_size(h, "values", &n), 0);
        assert_int_equal(n, SYNTH_NPTS);
        assert_int_equal(codes_get_double_array(h, "values", values, &n), 0);
        char s[64];
        len = sizeof s;
        assert_int_equal(codes_get_string(h, "gridType", s, &len), 0);
        assert_string_equal(s, "regular_ll");
        assert_int_equal(get_long(h, "editionNumber"), 2);
        assert_int_equal(get_long(h, "Ni"), SYNTH_NLON);
        assert_int_equal(get_long(h, "Nj"), SYNTH_NLAT);
        assert_int_equal(get_long(h, "jScansPositively"), 0);
        double la, lo;
        codes_get_double(h, "latitudeOfFirstGridPointInDegrees", &la);
        codes_get_double(h, "longitudeOfFirstGridPointInDegrees", &lo);
        assert_float_equal(la, 87.1875, 1e-6);
        assert_float_equal(lo, 0.0, 1e-6);
        len = sizeof s;
        assert_int_equal(codes_get_string(h, "packingType", s, &len), 0);
        assert_string_equal(s, "grid_simple");
        if (msg == 0) {
            assert_int_equal(get_long(h, "paramId"), 172);
            for (int p = 0; p < SYNTH_NPTS; p++) assert_float_equal(values[p], lsm[p], 1e-6);
        } else {
            int k = (msg - 1) / 3, v = (msg - 1) % 3;
            assert_int_equal(get_long(h, "paramId"), param[v]);
            assert_int_equal(get_long(h, "level"), level[v]);
            assert_int_equal(get_long(h, "bitsPerValue"), bits[v]);
            len = sizeof s;
            assert_int_equal(codes_get_string(h, "typeOfLevel", s, &len), 0);
            assert_string_equal(s, levtype[v]);
            len = sizeof s;
            assert_int_equal(codes_get_string(h, "shortName", s, &len), 0);
            assert_string_equal(s, shortname[v]);
            int y, m, d, hh;
            synth_civil_from_hours((int64_t)time[k], &y, &m, &d, &hh);
            assert_int_equal(get_long(h, "dataDate"), y * 10000 + m * 100 + d);
            assert_int_equal(get_long(h, "dataTime"), hh * 100);
            assert_int_equal(get_long(h, "step"), 0);
            if (k % 97 == 0 || k == nt - 1) {
                size_t start[3] = {(size_t)k, 0, 0}, count[3] = {1, SYNTH_NLAT, SYNTH_NLON};
                assert_int_equal(nc_inq_varid(nc, names[v], &vid), NC_NOERR);
                assert_int_equal(nc_get_vara_double(nc, vid, start, count, nc_field), NC_NOERR);
                double mn = 1e30, mx = -1e30;
                for (int p = 0; p < SYNTH_NPTS; p++) {
                    if (nc_field[p] < mn) mn = nc_field[p];
                    if (nc_field[p] > mx) mx = nc_field[p];
                }
                double tol = (mx - mn) / ldexp(1.0, (int)bits[v] - 1) + 1e-6 * fabs(mx);
                for (int p = 0; p < SYNTH_NPTS; p++) assert_float_equal(values[p], nc_field[p], tol);
            }
        }
        codes_handle_delete(h);
        msg++;
    }
    assert_int_equal(err, 0);
    assert_int_equal(msg, 1 + 3 * nt);
    fclose(f);
    nc_close(nc);
    free(time);
    free(lat);
    free(lsm);
    free(nc_field);
    free(values);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_bad_options(void **state)
{
    (void)state;
    synth_atmos_opts o;
    synth_atmos_defaults(&o);
    o.years = 0;
    assert_int_equal(synth_atmos_write(&o, "."), 1);
    synth_atmos_defaults(&o);
    o.days = -1;
    assert_int_equal(synth_atmos_write(&o, "."), 1);
    synth_atmos_defaults(&o);
    o.years = 1;
    o.spinup_steps = 0;
    assert_int_equal(synth_atmos_write(&o, "/proc/no/such/dir"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calendar),   cmocka_unit_test(test_mask_and_regions),
        cmocka_unit_test(test_statistics), cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_files),      cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
