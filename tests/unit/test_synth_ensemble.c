/* synth ensemble: initialisation dates, under-dispersion and region-dependent bias, the EMOS
 * variant's known coefficients, determinism, and the NetCDF/GRIB2 layouts. */
#include "testutil.h"
#include "tasks/synth.h"
#include "tasks/synth_write.h"

#include <eccodes.h>
#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_inits(void **state)
{
    (void)state;
    int64_t h0 = synth_hours_from_civil(2000, 1, 1, 0), h1 = synth_hours_from_civil(2001, 1, 1, 0);
    int n = synth_ens_inits(h0, h1, 48, NULL);
    assert_true(n >= 100 && n <= 106);
    int64_t *t = malloc(sizeof(int64_t) * n);
    assert_int_equal(synth_ens_inits(h0, h1, 48, t), n);
    int64_t end = synth_hours_from_civil(2001, 1, 1, 0);
    for (int k = 0; k < n; k++) {
        int wd = synth_weekday(t[k]);
        assert_true(wd == 0 || wd == 3);
        assert_int_equal(t[k] % 24, 0);
        assert_true(t[k] + 48 < end);
        assert_true(t[k] >= synth_hours_from_civil(2000, 1, 1, 0));
        if (k) assert_true(t[k] - t[k - 1] == 72 || t[k] - t[k - 1] == 96);
    }
    free(t);
    /* the model climate: the same window in each earlier year, never after the forecasts start */
    synth_ens_opts o;
    synth_ens_defaults(&o);
    o.atmos.days = 40;
    o.clim_years = 3;
    int nc = synth_ens_climate_inits(&o, NULL);
    assert_true(nc >= 3 * 10 && nc <= 3 * 12);
    t = malloc(sizeof(int64_t) * nc);
    assert_int_equal(synth_ens_climate_inits(&o, t), nc);
    for (int k = 0; k < nc; k++) {
        int y, m, d, hh;
        synth_civil_from_hours(t[k], &y, &m, &d, &hh);
        assert_true(y >= 1997 && y <= 1999);
        assert_true(t[k] - synth_hours_from_civil(y, 1, 1, 0) + 48 < 40 * 24);
        if (k) assert_true(t[k] > t[k - 1]);
    }
    free(t);
    /* whole years: the clim_years years before, each init once */
    o.atmos.days = 0;
    o.atmos.years = 3;
    o.clim_years = 2;
    nc = synth_ens_climate_inits(&o, NULL);
    t = malloc(sizeof(int64_t) * nc);
    synth_ens_climate_inits(&o, t);
    assert_int_equal(nc, synth_ens_inits(synth_hours_from_civil(1998, 1, 1, 0), synth_hours_from_civil(2000, 1, 1, 0), 48, NULL));
    for (int k = 1; k < nc; k++) assert_true(t[k] > t[k - 1]);
    assert_true(t[nc - 1] + 48 < synth_hours_from_civil(2000, 1, 1, 0));
    free(t);
}

/* Members and truth for every init of 240 days, accumulated as the statistics each test needs:
 * [0] against the toy-atmosphere truth, [1] against the EMOS-variant truth of the same members. */
typedef struct {
    double sq_err[SYNTH_NVARS], var[SYNTH_NVARS];
    double bias[SYNTH_NVARS][6];
    long count[6];
    long n;
    double *mean, *vars, *truth; /* [var][sample] */
} ens_stats;

static ens_stats g_stats[2];

static int collect(void **state)
{
    (void)state;
    memset(g_stats, 0, sizeof g_stats);
    synth_ens_opts o;
    synth_ens_defaults(&o);
    o.atmos.days = 240; /* 68 forecasts x 2048 points */
    o.atmos.seed = 21;
    o.emos_truth = 1;
    int64_t h0, h1;
    synth_ens_period(&o, &h0, &h1);
    int M = o.members, ni = synth_ens_inits(h0, h1, 48, NULL);
    int64_t *inits = malloc(sizeof(int64_t) * ni);
    synth_ens_inits(h0, h1, 48, inits);
    synth_atmos *a;
    if (synth_atmos_create(&o.atmos, &a)) return -1;
    float *truth = malloc(sizeof(float) * SYNTH_NVARS * SYNTH_NPTS), *et = malloc(sizeof(float) * SYNTH_NVARS * SYNTH_NPTS);
    float *mem = malloc(sizeof(float) * SYNTH_NVARS * M * SYNTH_NPTS);
    size_t ns = (size_t)ni * SYNTH_NPTS;
    for (int e = 0; e < 2; e++) {
        g_stats[e].mean = malloc(sizeof(double) * SYNTH_NVARS * ns);
        g_stats[e].vars = malloc(sizeof(double) * SYNTH_NVARS * ns);
        g_stats[e].truth = malloc(sizeof(double) * SYNTH_NVARS * ns);
        g_stats[e].n = (long)ns;
    }
    const double *lat = synth_atmos_lat(a);
    const float *lsm = synth_atmos_lsm(a);
    for (int k = 0; k < ni; k++) {
        while (synth_atmos_hours(a) < inits[k] + 48) synth_atmos_advance(a);
        synth_atmos_fields(a, truth);
        if (synth_ens_members(&o, a, inits[k], truth, mem)) return -1;
        synth_ens_emos_truth(&o, inits[k], mem, et);
        for (int v = 0; v < SYNTH_NVARS; v++)
            for (int p = 0; p < SYNTH_NPTS; p++) {
                double m = 0, var = 0;
                for (int i = 0; i < M; i++) m += mem[((size_t)v * M + i) * SYNTH_NPTS + p];
                m /= M;
                for (int i = 0; i < M; i++) {
                    double d = mem[((size_t)v * M + i) * SYNTH_NPTS + p] - m;
                    var += d * d;
                }
                var /= M - 1;
                int r = synth_region(lat[p / SYNTH_NLON], lsm[p]);
                for (int e = 0; e < 2; e++) {
                    ens_stats *s = &g_stats[e];
                    double y = e ? et[v * SYNTH_NPTS + p] : truth[v * SYNTH_NPTS + p], err = m - y;
                    s->sq_err[v] += err * err;
                    s->var[v] += var;
                    s->bias[v][r] += err;
                    if (v == 0) s->count[r]++;
                    size_t idx = (size_t)v * ns + (size_t)k * SYNTH_NPTS + p;
                    s->mean[idx] = m;
                    s->vars[idx] = var;
                    s->truth[idx] = y;
                }
            }
    }
    free(inits);
    free(truth);
    free(et);
    free(mem);
    synth_atmos_free(a);
    return 0;
}

static int stats_free(void **state)
{
    (void)state;
    for (int e = 0; e < 2; e++) {
        free(g_stats[e].mean);
        free(g_stats[e].vars);
        free(g_stats[e].truth);
    }
    return 0;
}

static void test_underdispersion_and_regional_bias(void **state)
{
    (void)state;
    const ens_stats s = g_stats[0];
    for (int v = 0; v < SYNTH_NVARS; v++) {
        double ratio = sqrt(s.var[v] / s.n) / sqrt(s.sq_err[v] / s.n);
        print_message("var %d: spread/skill %.3f\n", v, ratio);
        assert_true(ratio > 0.2 && ratio < 0.9); /* under-dispersive */
        double b[6];
        for (int r = 0; r < 6; r++) b[r] = s.count[r] ? s.bias[v][r] / s.count[r] : 0.0;
        print_message("   bias by region: %.3g %.3g %.3g %.3g %.3g %.3g\n", b[0], b[1], b[2], b[3], b[4], b[5]);
        /* region-dependent bias: warm/high in the polar bands, cold/low in the mid-latitudes */
        assert_true(b[4] < 0.0 && b[5] > 0.0 && b[1] < 0.0 && b[2] > 0.0);
        assert_true(b[5] - b[4] > 0.3 * sqrt(s.sq_err[v] / s.n));
    }
}

/* a + b * mean by least squares, then c + d * var by iteratively reweighted least squares on the
 * squared residuals (weights 1 / (c + d var)^2: the Gaussian likelihood's variance score). */
static void test_emos_coefficients(void **state)
{
    (void)state;
    const ens_stats s = g_stats[1];
    for (int v = 0; v < SYNTH_NVARS; v++) {
        const double *m = s.mean + (size_t)v * s.n, *var = s.vars + (size_t)v * s.n, *y = s.truth + (size_t)v * s.n;
        double sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (long i = 0; i < s.n; i++) {
            sx += m[i];
            sy += y[i];
            sxx += m[i] * m[i];
            sxy += m[i] * y[i];
        }
        double mx = sx / s.n, my = sy / s.n;
        double b = (sxy / s.n - mx * my) / (sxx / s.n - mx * mx), a = my - b * mx;
        double c = 1.0, d = 0.0;
        for (int it = 0; it < 6; it++) {
            double w0 = 0, wx = 0, wxx = 0, wy = 0, wxy = 0;
            for (long i = 0; i < s.n; i++) {
                double r = y[i] - a - b * m[i], r2 = r * r;
                double pred = it == 0 ? 1.0 : c + d * var[i];
                if (pred < 1e-12) pred = 1e-12;
                double w = 1.0 / (pred * pred);
                w0 += w;
                wx += w * var[i];
                wxx += w * var[i] * var[i];
                wy += w * r2;
                wxy += w * var[i] * r2;
            }
            double det = w0 * wxx - wx * wx;
            c = (wxx * wy - wx * wxy) / det;
            d = (w0 * wxy - wx * wy) / det;
        }
        double coef[4];
        synth_ens_emos_coefficients(v, coef);
        print_message("var %d: a %.5g (%.5g) b %.5g (%.5g) c %.5g (%.5g) d %.5g (%.5g)\n", v, a, coef[0], b, coef[1], c,
                      coef[2], d, coef[3]);
        assert_float_equal(a, coef[0], 0.05 * fabs(coef[0]));
        assert_float_equal(b, coef[1], 0.05 * fabs(coef[1]));
        assert_float_equal(c, coef[2], 0.05 * fabs(coef[2]));
        assert_float_equal(d, coef[3], 0.05 * fabs(coef[3]));
    }
}

static float *nc_read_float(const char *path, const char *var, size_t *n)
{
    int nc, vid, nd, dims[8];
    assert_int_equal(nc_open(path, NC_NOWRITE, &nc), NC_NOERR);
    assert_int_equal(nc_inq_varid(nc, var, &vid), NC_NOERR);
    nc_inq_varndims(nc, vid, &nd);
    nc_inq_vardimid(nc, vid, dims);
    size_t total = 1;
    for (int d = 0; d < nd; d++) {
        size_t len;
        nc_inq_dimlen(nc, dims[d], &len);
        total *= len;
    }
    float *buf = malloc(total * sizeof(float));
    assert_int_equal(nc_get_var_float(nc, vid, buf), NC_NOERR);
    nc_close(nc);
    *n = total;
    return buf;
}

static double *nc_read_double(const char *path, const char *var, size_t *n)
{
    int nc, vid, nd, dims[8];
    assert_int_equal(nc_open(path, NC_NOWRITE, &nc), NC_NOERR);
    assert_int_equal(nc_inq_varid(nc, var, &vid), NC_NOERR);
    nc_inq_varndims(nc, vid, &nd);
    nc_inq_vardimid(nc, vid, dims);
    size_t total = 1;
    for (int d = 0; d < nd; d++) {
        size_t len;
        nc_inq_dimlen(nc, dims[d], &len);
        total *= len;
    }
    double *buf = malloc(total * sizeof(double));
    assert_int_equal(nc_get_var_double(nc, vid, buf), NC_NOERR);
    nc_close(nc);
    *n = total;
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
    char d1[256], d2[256], d3[256], path[512], p2[512];
    testutil_tmpdir("synth_ens1", d1, sizeof d1);
    testutil_tmpdir("synth_ens2", d2, sizeof d2);
    testutil_tmpdir("synth_ens3", d3, sizeof d3);
    synth_ens_opts o;
    synth_ens_defaults(&o);
    o.atmos.days = 60;
    o.clim_years = 1;
    o.members = 4;
    o.atmos.seed = 8;
    assert_int_equal(synth_ens_write(&o, d1), 0);
    assert_int_equal(synth_ens_write(&o, d2), 0);
    o.atmos.seed = 9;
    o.clim_years = 0; /* cheaper; its forecast and truth files still have the same shape */
    assert_int_equal(synth_ens_write(&o, d3), 0);
    o.clim_years = 1;
    int64_t h0, h1;
    synth_ens_period(&o, &h0, &h1);
    assert_int_equal(h1 - h0, 60 * 24);
    int M = 4, ni = synth_ens_inits(h0, h1, 48, NULL), nc_clim = synth_ens_climate_inits(&o, NULL);

    /* determinism of the data variables */
    static const char *const files[3] = {"ensemble", "ensemble_truth", "ensemble_climate"};
    static const char *const vars[3] = {"z500", "t850", "t2m"};
    for (int f = 0; f < 3; f++)
        for (int v = 0; v < 3; v++) {
            size_t n1, n2, n3;
            snprintf(path, sizeof path, "%s/%s.nc", d1, files[f]);
            float *x1 = nc_read_float(path, vars[v], &n1);
            snprintf(path, sizeof path, "%s/%s.nc", d2, files[f]);
            float *x2 = nc_read_float(path, vars[v], &n2);
            float *x3 = NULL;
            if (f < 2) {
                snprintf(path, sizeof path, "%s/%s.nc", d3, files[f]);
                x3 = nc_read_float(path, vars[v], &n3);
            }
            size_t want = (size_t)(f == 2 ? nc_clim : ni) * (f == 1 ? 1 : M) * SYNTH_NPTS;
            assert_int_equal(n1, want);
            assert_int_equal(n2, want);
            assert_memory_equal(x1, x2, n1 * sizeof(float));
            if (x3) {
                assert_int_equal(n3, want);
                assert_memory_not_equal(x1, x3, n1 * sizeof(float));
            }
            free(x1);
            free(x2);
            free(x3);
        }

    /* layout of ensemble.nc */
    snprintf(path, sizeof path, "%s/ensemble.nc", d1);
    int nc, vid, nd, dims[4];
    assert_int_equal(nc_open(path, NC_NOWRITE, &nc), NC_NOERR);
    assert_int_equal(nc_inq_varid(nc, "t2m", &vid), NC_NOERR);
    nc_inq_varndims(nc, vid, &nd);
    nc_inq_vardimid(nc, vid, dims);
    assert_int_equal(nd, 4);
    const char *want_dims[4] = {"time", "realization", "latitude", "longitude"};
    for (int d = 0; d < 4; d++) {
        char name[NC_MAX_NAME + 1];
        size_t len;
        nc_inq_dim(nc, dims[d], name, &len);
        assert_string_equal(name, want_dims[d]);
    }
    char text[256] = {0};
    assert_int_equal(nc_get_att_text(nc, vid, "coordinates", text), NC_NOERR);
    assert_string_equal(text, "forecast_reference_time forecast_period");
    assert_int_equal(nc_inq_varid(nc, "realization", &vid), NC_NOERR);
    memset(text, 0, sizeof text);
    assert_int_equal(nc_get_att_text(nc, vid, "standard_name", text), NC_NOERR);
    assert_string_equal(text, "realization");
    memset(text, 0, sizeof text);
    assert_int_equal(nc_get_att_text(nc, vid, "units", text), NC_NOERR);
    assert_string_equal(text, "1");
    double fp = 0;
    assert_int_equal(nc_inq_varid(nc, "forecast_period", &vid), NC_NOERR);
    assert_int_equal(nc_get_var_double(nc, vid, &fp), NC_NOERR);
    assert_float_equal(fp, 48.0, 0.0);
    nc_close(nc);
    size_t n;
    double *time = nc_read_double(path, "time", &n), *frt = nc_read_double(path, "forecast_reference_time", &n);
    assert_int_equal(n, (size_t)ni);
    int64_t *inits = malloc(sizeof(int64_t) * ni);
    synth_ens_inits(h0, h1, 48, inits);
    for (int k = 0; k < ni; k++) {
        assert_float_equal(frt[k], (double)inits[k], 0.0);
        assert_float_equal(time[k], (double)inits[k] + 48.0, 0.0);
    }
    /* the default truth is the toy atmosphere started clim_years earlier with the same seed */
    snprintf(p2, sizeof p2, "%s/ensemble_truth.nc", d1);
    float *tr = nc_read_float(p2, "t850", &n);
    synth_atmos_opts ao = o.atmos;
    ao.seed = 8;
    ao.start_year = 1999;
    ao.days = 0;
    ao.years = 2;
    synth_atmos *a;
    assert_int_equal(synth_atmos_create(&ao, &a), 0);
    while (synth_atmos_hours(a) < inits[0] + 48) synth_atmos_advance(a);
    float *fields = malloc(sizeof(float) * SYNTH_NVARS * SYNTH_NPTS);
    synth_atmos_fields(a, fields);
    assert_memory_equal(tr, fields + SYNTH_NPTS, sizeof(float) * SYNTH_NPTS);
    synth_atmos_free(a);
    free(fields);
    free(tr);
    snprintf(p2, sizeof p2, "%s/ensemble_climate.nc", d1);
    double *ctime = nc_read_double(p2, "forecast_reference_time", &n);
    assert_int_equal(n, (size_t)nc_clim);
    assert_true(ctime[0] >= (double)synth_hours_from_civil(1999, 1, 1, 0));
    assert_true(ctime[n - 1] + 48 < (double)synth_hours_from_civil(1999, 1, 1, 0) + 60 * 24);
    free(ctime);

    /* ensemble.grib2: template 4.1, members, step 48, values equal to the NetCDF within packing */
    snprintf(p2, sizeof p2, "%s/ensemble.grib2", d1);
    FILE *f = fopen(p2, "rb");
    assert_non_null(f);
    float *t2m = nc_read_float(path, "t2m", &n);
    double *values = malloc(sizeof(double) * SYNTH_NPTS);
    codes_handle *h;
    int err = 0, msg = 0;
    static const long param[3] = {129, 130, 167};
    while ((h = codes_handle_new_from_file(NULL, f, PRODUCT_GRIB, &err)) != NULL) {
        int k = msg / (3 * M), v = (msg / M) % 3, m = msg % M;
        assert_int_equal(get_long(h, "productDefinitionTemplateNumber"), 1);
        assert_int_equal(get_long(h, "paramId"), param[v]);
        assert_int_equal(get_long(h, "number"), m);
        assert_int_equal(get_long(h, "typeOfEnsembleForecast"), m == 0 ? 1 : 3);
        assert_int_equal(get_long(h, "numberOfForecastsInEnsemble"), M);
        assert_int_equal(get_long(h, "step"), 48);
        int y, mo, d, hh;
        synth_civil_from_hours(inits[k], &y, &mo, &d, &hh);
        assert_int_equal(get_long(h, "dataDate"), y * 10000 + mo * 100 + d);
        assert_int_equal(get_long(h, "dataTime"), 0);
        if (v == 2) {
            size_t nv = SYNTH_NPTS;
            assert_int_equal(codes_get_double_array(h, "values", values, &nv), 0);
            const float *ref = t2m + ((size_t)k * M + m) * SYNTH_NPTS;
            double mn = 1e30, mx = -1e30;
            for (int p = 0; p < SYNTH_NPTS; p++) {
                if (ref[p] < mn) mn = ref[p];
                if (ref[p] > mx) mx = ref[p];
            }
            double tol = (mx - mn) / ldexp(1.0, 15) + 1e-6 * mx;
            for (int p = 0; p < SYNTH_NPTS; p++) assert_float_equal(values[p], ref[p], tol);
        }
        codes_handle_delete(h);
        msg++;
    }
    assert_int_equal(err, 0);
    assert_int_equal(msg, ni * 3 * M);
    fclose(f);
    free(t2m);
    free(values);
    free(time);
    free(frt);
    free(inits);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", d1, d2, d3);
    assert_int_equal(system(cmd), 0);
}

static void test_emos_attributes(void **state)
{
    (void)state;
    char dir[256], path[512];
    testutil_tmpdir("synth_ens_emos", dir, sizeof dir);
    synth_ens_opts o;
    synth_ens_defaults(&o);
    o.atmos.days = 30;
    o.clim_years = 0;
    o.members = 3;
    o.emos_truth = 1;
    assert_int_equal(synth_ens_write(&o, dir), 0);
    snprintf(path, sizeof path, "%s/ensemble_climate.nc", dir);
    assert_int_not_equal(access(path, F_OK), 0); /* no climate without --clim-years */
    snprintf(path, sizeof path, "%s/ensemble_truth.nc", dir);
    int nc;
    assert_int_equal(nc_open(path, NC_NOWRITE, &nc), NC_NOERR);
    static const char *const vars[3] = {"z500", "t850", "t2m"};
    for (int v = 0; v < 3; v++) {
        double coef[4];
        synth_ens_emos_coefficients(v, coef);
        for (int i = 0; i < 4; i++) {
            char att[64];
            double val = 0;
            snprintf(att, sizeof att, "emos_%s_%c", vars[v], "abcd"[i]);
            assert_int_equal(nc_get_att_double(nc, NC_GLOBAL, att, &val), NC_NOERR);
            assert_float_equal(val, coef[i], 0.0);
        }
    }
    nc_close(nc);
    o.members = 1;
    assert_int_equal(synth_ens_write(&o, dir), 1);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inits),
        cmocka_unit_test(test_underdispersion_and_regional_bias),
        cmocka_unit_test(test_emos_coefficients),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_emos_attributes),
    };
    return cmocka_run_group_tests(tests, collect, stats_free);
}
