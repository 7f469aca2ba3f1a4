/* tasks/plot_read: CF time decoding, coordinate detection, selection, unpacking, categories and
 * the error messages, on small NetCDF files written here. */
#include "testutil.h"
#include "core/log.h"
#include "tasks/plot_read.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <string.h>

#define NCX(call) assert_int_equal((call), NC_NOERR)

static char g_dir[256];

static const char *tmp_path(const char *name, char *buf, size_t len)
{
    if (!g_dir[0]) testutil_tmpdir("plot_read", g_dir, sizeof g_dir);
    snprintf(buf, len, "%s/%s", g_dir, name);
    return buf;
}

static void put_text(int nc, int var, const char *name, const char *text)
{
    NCX(nc_put_att_text(nc, var, name, strlen(text), text));
}

/* A forecast-like file: t(time=2, level=2, lat=3 north->south, lon=4 crossing 0 E), int16 packed
 * with a negative scale factor and a fill value; a transposed copy u(lon, lat); an integer expert
 * map with non-contiguous flag values; a land/sea code with labels in long_name; a 1-D profile. */
static void write_geo(const char *path)
{
    int nc, dt, dl, dy, dx, vt, vl, vy, vx, vv, vu, ve, vm, vp;
    NCX(nc_create(path, NC_CLOBBER, &nc));
    NCX(nc_def_dim(nc, "time", 2, &dt));
    NCX(nc_def_dim(nc, "level", 2, &dl));
    NCX(nc_def_dim(nc, "lat", 3, &dy));
    NCX(nc_def_dim(nc, "lon", 4, &dx));
    NCX(nc_def_var(nc, "time", NC_DOUBLE, 1, &dt, &vt));
    put_text(nc, vt, "units", "days since 2000-01-01");
    put_text(nc, vt, "calendar", "noleap");
    NCX(nc_def_var(nc, "level", NC_INT, 1, &dl, &vl));
    put_text(nc, vl, "units", "hPa");
    NCX(nc_def_var(nc, "lat", NC_FLOAT, 1, &dy, &vy));
    put_text(nc, vy, "units", "degrees_north");
    NCX(nc_def_var(nc, "lon", NC_FLOAT, 1, &dx, &vx));
    put_text(nc, vx, "units", "degrees_east");
    int d4[4] = {dt, dl, dy, dx};
    NCX(nc_def_var(nc, "t", NC_SHORT, 4, d4, &vv));
    double scale = -0.5, offset = 10.0;
    short fill = -999;
    NCX(nc_put_att_double(nc, vv, "scale_factor", NC_DOUBLE, 1, &scale));
    NCX(nc_put_att_double(nc, vv, "add_offset", NC_DOUBLE, 1, &offset));
    NCX(nc_put_att_short(nc, vv, "_FillValue", NC_SHORT, 1, &fill));
    put_text(nc, vv, "units", "K");
    put_text(nc, vv, "long_name", "temperature");
    int dxy[2] = {dx, dy};
    NCX(nc_def_var(nc, "u", NC_FLOAT, 2, dxy, &vu));
    int dyx[2] = {dy, dx};
    NCX(nc_def_var(nc, "expert", NC_INT, 2, dyx, &ve));
    int flags[3] = {1, 5, 9};
    NCX(nc_put_att_int(nc, ve, "flag_values", NC_INT, 3, flags));
    put_text(nc, ve, "flag_meanings", "expert_a expert_b expert_c");
    NCX(nc_def_var(nc, "mask", NC_BYTE, 2, dyx, &vm));
    put_text(nc, vm, "long_name", "land sea mask: 0=Sea, 1=Land, 2=Lake");
    NCX(nc_def_var(nc, "profile", NC_FLOAT, 1, &dy, &vp));
    int vs;
    NCX(nc_def_var(nc, "lsm", NC_FLOAT, 2, dyx, &vs));
    int one = 1;
    NCX(nc_put_att_int(nc, vs, "smoecast_categorical", NC_INT, 1, &one));
    NCX(nc_enddef(nc));
    double tv[2] = {0, 365 + 59}; /* 2000-01-01, 2001-03-01 (noleap) */
    int lv[2] = {500, 850};
    float yv[3] = {10, 0, -10}, xv[4] = {350, 355, 0, 5};
    NCX(nc_put_var_double(nc, vt, tv));
    NCX(nc_put_var_int(nc, vl, lv));
    NCX(nc_put_var_float(nc, vy, yv));
    NCX(nc_put_var_float(nc, vx, xv));
    short raw[2 * 2 * 3 * 4];
    for (int t = 0; t < 2; t++)
        for (int l = 0; l < 2; l++)
            for (int j = 0; j < 3; j++)
                for (int i = 0; i < 4; i++) raw[((t * 2 + l) * 3 + j) * 4 + i] = (short)(1000 * t + 100 * l + 10 * j + i);
    raw[((1 * 2 + 1) * 3 + 2) * 4 + 3] = fill;
    NCX(nc_put_var_short(nc, vv, raw));
    float u[4 * 3];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) u[i * 3 + j] = (float)(10 * j + i);
    NCX(nc_put_var_float(nc, vu, u));
    int e[12] = {1, 5, 9, 1, 5, 9, 1, 5, 9, 7, 1, 1};
    NCX(nc_put_var_int(nc, ve, e));
    signed char m[12] = {0, 1, 2, 0, 0, 1, 2, 0, 1, 1, 1, 1};
    NCX(nc_put_var_schar(nc, vm, m));
    float p[3] = {1, 2, 3};
    NCX(nc_put_var_float(nc, vp, p));
    float lsm[12] = {0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1};
    NCX(nc_put_var_float(nc, vs, lsm));
    NCX(nc_close(nc));
}

static void test_time(void **state)
{
    (void)state;
    double uh, ref;
    int cal, ymdhm[5];
    double s;
    assert_int_equal(plot_time_units_parse("hours since 1970-01-01 00:00:00", NULL, &uh, &ref, &cal), 0);
    assert_true(uh == 1.0 && ref == 0.0);
    assert_int_equal(plot_time_units_parse("days since 2000-01-01", "gregorian", &uh, &ref, &cal), 0);
    assert_true(uh == 24.0);
    assert_true(ref == 10957.0 * 24.0); /* 30 years incl. 7 leap days */
    assert_int_equal(plot_time_units_parse("seconds since 1970-01-02T00:00Z", "standard", &uh, &ref, &cal), 0);
    assert_true(fabs(uh * 3600.0 - 1.0) < 1e-12 && ref == 24.0);
    assert_int_equal(plot_time_units_parse("hours since 1970-01-01", "julian", &uh, &ref, &cal), 0);
    assert_true(ref == 13.0 * 24.0); /* Julian 1970-01-01 is Gregorian 1970-01-14 */
    assert_int_not_equal(plot_time_units_parse("months since 2000-01-01", NULL, &uh, &ref, &cal), 0);
    assert_int_not_equal(plot_time_units_parse("hours since 2000-01-01", "martian", &uh, &ref, &cal), 0);
    assert_int_not_equal(plot_time_units_parse("1", NULL, &uh, &ref, &cal), 0);

    assert_int_equal(plot_date_parse("2019-03-26 06:30:00", ymdhm, &s), 0);
    assert_true(ymdhm[0] == 2019 && ymdhm[1] == 3 && ymdhm[2] == 26 && ymdhm[3] == 6 && ymdhm[4] == 30 && s == 0);
    assert_int_equal(plot_date_parse("2019-03-26T06:00Z", ymdhm, &s), 0);
    assert_int_equal(plot_date_parse("2019-03-26", ymdhm, &s), 0);
    assert_int_not_equal(plot_date_parse("2019-13-01", ymdhm, &s), 0);
    assert_int_not_equal(plot_date_parse("tomorrow", ymdhm, &s), 0);

    /* round trips in every calendar, including 29 February where it exists, and day 30 in 360_day */
    const char *cals[] = {"standard", "julian", "noleap", "all_leap", "360_day"};
    const char *dates[] = {"1850-02-28T23:00", "2000-02-29T12:00", "2001-03-01T00:00", "1969-12-31T18:45", "2024-02-30T00:00"};
    for (int c = 0; c < 5; c++) {
        plot_time_units_parse("hours since 1970-01-01", cals[c], &uh, &ref, &cal);
        for (int d = 0; d < 5; d++) {
            assert_int_equal(plot_date_parse(dates[d], ymdhm, &s), 0);
            /* no 29 February in noleap, no 31st in 360_day, 30 February only there */
            int valid = !(c == 2 && d == 1) && !(c == 4 && d == 3) && (c == 4 || d != 4);
            assert_int_equal(plot_date_valid(ymdhm, cal), valid);
            if (!valid) continue;
            char buf[64];
            plot_format_hours(plot_date_to_hours(ymdhm, s, cal), cal, buf, sizeof buf);
            assert_string_equal(buf, dates[d]);
        }
    }
    /* consecutive days stay consecutive across month ends */
    plot_time_units_parse("days since 2000-01-01", "noleap", &uh, &ref, &cal);
    char a[64];
    plot_format_hours(ref + 59 * 24.0, cal, a, sizeof a);
    assert_string_equal(a, "2000-03-01T00:00");
}

static void test_read_geo(void **state)
{
    (void)state;
    char path[512];
    tmp_path("geo.nc", path, sizeof path);
    write_geo(path);
    plot_field f;
    plot_select sel = {0};
    sel.time = "2001-03-01";
    sel.level = "850";
    assert_int_equal(plot_read_slice(path, "t", &sel, &f), 0);
    assert_int_equal(f.kind, PLOT_GRID_GEO);
    assert_int_equal(f.nx, 4);
    assert_int_equal(f.ny, 3);
    /* latitudes ascending, longitudes unwrapped */
    assert_true(f.y[0] == -10 && f.y[2] == 10);
    assert_true(f.x[0] == 350 && f.x[1] == 355 && f.x[2] == 360 && f.x[3] == 365);
    assert_false(f.periodic_x);
    assert_false(f.categorical);
    /* row 0 = south = file row j=2; value = 10 - 0.5 * raw */
    for (int jj = 0; jj < 3; jj++)
        for (int i = 0; i < 4; i++) {
            int j = 2 - jj;
            float v = f.data[jj * 4 + i];
            if (j == 2 && i == 3) {
                assert_true(isnan(v));
                continue;
            }
            assert_float_equal(v, 10.0 - 0.5 * (1000 + 100 + 10 * j + i), 1e-4);
        }
    assert_string_equal(f.time_label, "2001-03-01T00:00");
    assert_string_equal(f.selection, "level 850 hPa");
    char title[512];
    plot_default_title(&f, title, sizeof title);
    assert_string_equal(title, "temperature [K], 2001-03-01T00:00, level 850 hPa");

    /* the same slice by index; the transposed variable lands in the same layout */
    plot_field g;
    plot_select sel2 = {0};
    sel2.time = "1";
    sel2.n_index = 1;
    sel2.index[0] = "level=1";
    assert_int_equal(plot_read_slice(path, "t", &sel2, &g), 0);
    assert_memory_equal(f.data, g.data, 11 * sizeof(float));
    plot_field_free(&g);
    assert_int_equal(plot_read_slice(path, "u", NULL, &g), 0);
    for (int jj = 0; jj < 3; jj++)
        for (int i = 0; i < 4; i++) assert_float_equal(g.data[jj * 4 + i], 10 * (2 - jj) + i, 0);

    /* differences: same grid required, values subtract */
    plot_field h;
    assert_int_equal(plot_read_slice(path, "u", NULL, &h), 0);
    assert_int_equal(plot_field_subtract(&g, &h), 0);
    assert_true(g.is_difference);
    for (int k = 0; k < 12; k++) assert_float_equal(g.data[k], 0, 0);
    plot_default_title(&g, title, sizeof title);
    assert_string_equal(title, "Error (forecast - truth): u");
    plot_field_free(&g);
    plot_field_free(&h);
    plot_field_free(&f);
}

static void test_categories(void **state)
{
    (void)state;
    char path[512];
    tmp_path("geo.nc", path, sizeof path);
    write_geo(path);
    plot_field f;
    assert_int_equal(plot_read_slice(path, "expert", NULL, &f), 0);
    assert_true(f.categorical);
    assert_int_equal(f.n_categories, 3);
    assert_string_equal(f.cat_labels[1], "expert_b");
    assert_true(f.cat_values[2] == 9);
    /* file row 0 (north) = {1,5,9,1} -> indices {0,1,2,0} in the top row; 7 is not a flag */
    assert_float_equal(f.data[2 * 4 + 0], 0, 0);
    assert_float_equal(f.data[2 * 4 + 2], 2, 0);
    assert_true(isnan(f.data[0 * 4 + 1]));
    plot_field_free(&f);
    assert_int_equal(plot_read_slice(path, "mask", NULL, &f), 0);
    assert_true(f.categorical);
    assert_int_equal(f.n_categories, 3);
    assert_string_equal(f.cat_labels[0], "Sea");
    assert_string_equal(f.cat_labels[1], "Land");
    assert_string_equal(f.cat_labels[2], "Lake");
    plot_field_free(&f);
    /* smoecast datasets: float32 with smoecast_categorical = 1; a float field is not categorical */
    assert_int_equal(plot_read_slice(path, "lsm", NULL, &f), 0);
    assert_true(f.categorical);
    assert_int_equal(f.n_categories, 2);
    assert_string_equal(f.cat_labels[1], "1");
    plot_field_free(&f);
    assert_int_equal(plot_read_slice(path, "u", NULL, &f), 0);
    assert_false(f.categorical);
    plot_field_free(&f);
}

static void test_raster_and_errors(void **state)
{
    (void)state;
    char path[512], geo[512];
    tmp_path("raster.nc", path, sizeof path);
    tmp_path("geo.nc", geo, sizeof geo);
    write_geo(geo);
    int nc, dy, dx, v;
    NCX(nc_create(path, NC_CLOBBER, &nc));
    NCX(nc_def_dim(nc, "y", 2, &dy));
    NCX(nc_def_dim(nc, "x", 3, &dx));
    int d[2] = {dy, dx};
    NCX(nc_def_var(nc, "heat", NC_DOUBLE, 2, d, &v));
    int dr, ve, de[3];
    NCX(nc_def_dim(nc, "record", NC_UNLIMITED, &dr));
    de[0] = dr, de[1] = dy, de[2] = dx;
    NCX(nc_def_var(nc, "empty", NC_FLOAT, 3, de, &ve));
    NCX(nc_enddef(nc));
    double hv[6] = {1, 2, 3, 4, 5, 6};
    NCX(nc_put_var_double(nc, v, hv));
    NCX(nc_close(nc));
    plot_field f;
    assert_int_equal(plot_read_slice(path, "heat", NULL, &f), 0);
    assert_int_equal(f.kind, PLOT_GRID_XY);
    assert_true(f.x[2] == 2 && f.y[1] == 1);
    assert_float_equal(f.data[5], 6, 0);
    plot_field_free(&f);
    assert_int_equal(plot_read_slice(path, "empty", NULL, &f), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "dimension 'record' is empty"));

    plot_field g;
    assert_int_equal(plot_read_slice(geo, "u", NULL, &g), 0);
    assert_int_equal(plot_read_slice(path, "heat", NULL, &f), 0);
    assert_int_equal(plot_field_subtract(&f, &g), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "regrid first"));
    plot_field_free(&f);
    plot_field_free(&g);

    plot_select sel = {0};
    assert_int_equal(plot_read_slice(geo, "nope", NULL, &f), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "no variable 'nope'; available: t, u, expert, mask, profile, lsm"));
    assert_int_equal(plot_read_slice(geo, "profile", NULL, &f), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "variable 'profile' (dimensions: lat(3)) is not on a latitude/longitude or y/x grid"));
    sel.time = "2000-06-01T00:00";
    assert_int_equal(plot_read_slice(geo, "t", &sel, &f), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "time 2000-06-01T00:00 is not in the file; it has 2 times: 2000-01-01T00:00 .. 2001-03-01T00:00"));
    sel.time = NULL;
    sel.level = "700";
    assert_int_equal(plot_read_slice(geo, "t", &sel, &f), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "level 700 is not in the file ('level'); it has 2 values: 500 .. 850"));
    sel.level = NULL;
    sel.member = "3";
    assert_int_equal(plot_read_slice(geo, "t", &sel, &f), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "has no member dimension"));
    sel.lenient = 1; /* truth files ignore selectors for dimensions they lack */
    assert_int_equal(plot_read_slice(geo, "u", &sel, &f), 0);
    plot_field_free(&f);
    assert_int_equal(plot_read_slice("no_such_file.nc", "t", NULL, &f), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "no_such_file.nc: cannot open"));
}

/* A global grid with the 0 E column repeated at 360 E becomes periodic without the duplicate;
 * NetCDF-4 string attributes are read like text attributes. */
static void test_duplicate_column(void **state)
{
    (void)state;
    char path[512];
    tmp_path("dup.nc", path, sizeof path);
    int nc, dy, dx, vy, vx, v;
    NCX(nc_create(path, NC_CLOBBER | NC_NETCDF4, &nc));
    NCX(nc_def_dim(nc, "latitude", 2, &dy));
    NCX(nc_def_dim(nc, "longitude", 5, &dx));
    NCX(nc_def_var(nc, "latitude", NC_DOUBLE, 1, &dy, &vy));
    const char *units[1] = {"degrees_north"}; /* a NetCDF-4 string attribute */
    NCX(nc_put_att_string(nc, vy, "units", 1, units));
    NCX(nc_def_var(nc, "longitude", NC_DOUBLE, 1, &dx, &vx));
    put_text(nc, vx, "standard_name", "longitude");
    int d[2] = {dy, dx};
    NCX(nc_def_var(nc, "f", NC_FLOAT, 2, d, &v));
    NCX(nc_enddef(nc));
    double la[2] = {-45, 45}, lo[5] = {0, 90, 180, 270, 360};
    float fv[10] = {0, 1, 2, 3, 0, 10, 11, 12, 13, 10};
    NCX(nc_put_var_double(nc, vy, la));
    NCX(nc_put_var_double(nc, vx, lo));
    NCX(nc_put_var_float(nc, v, fv));
    NCX(nc_close(nc));
    plot_field f;
    assert_int_equal(plot_read_slice(path, "f", NULL, &f), 0);
    assert_int_equal(f.nx, 4);
    assert_true(f.periodic_x);
    float want[8] = {0, 1, 2, 3, 10, 11, 12, 13};
    assert_memory_equal(f.data, want, sizeof want);
    plot_field_free(&f);
}

/* Forecasts with (forecast_reference_time, forecast_period) dimensions: --time picks the
 * initialisation, --lead the lead; the title shows the valid time init + lead. */
static void test_forecast_layout(void **state)
{
    (void)state;
    char path[512];
    tmp_path("fc.nc", path, sizeof path);
    int nc, dr, dp, dy, dx, vr, vp, vy, vx, v;
    NCX(nc_create(path, NC_CLOBBER, &nc));
    NCX(nc_def_dim(nc, "forecast_reference_time", 2, &dr));
    NCX(nc_def_dim(nc, "forecast_period", 3, &dp));
    NCX(nc_def_dim(nc, "latitude", 2, &dy));
    NCX(nc_def_dim(nc, "longitude", 3, &dx));
    NCX(nc_def_var(nc, "forecast_reference_time", NC_DOUBLE, 1, &dr, &vr));
    put_text(nc, vr, "units", "hours since 2019-03-01 00:00:00");
    put_text(nc, vr, "standard_name", "forecast_reference_time");
    NCX(nc_def_var(nc, "forecast_period", NC_DOUBLE, 1, &dp, &vp));
    put_text(nc, vp, "units", "hours");
    put_text(nc, vp, "standard_name", "forecast_period");
    NCX(nc_def_var(nc, "latitude", NC_DOUBLE, 1, &dy, &vy));
    put_text(nc, vy, "units", "degrees_north");
    NCX(nc_def_var(nc, "longitude", NC_DOUBLE, 1, &dx, &vx));
    put_text(nc, vx, "units", "degrees_east");
    int d[4] = {dr, dp, dy, dx};
    NCX(nc_def_var(nc, "t2m", NC_FLOAT, 4, d, &v));
    NCX(nc_enddef(nc));
    double rv[2] = {0, 24}, pv[3] = {0, 6, 12}, yv[2] = {50, 51}, xv[3] = {0, 1, 2};
    float fv[2 * 3 * 2 * 3];
    for (int k = 0; k < 36; k++) fv[k] = (float)k;
    NCX(nc_put_var_double(nc, vr, rv));
    NCX(nc_put_var_double(nc, vp, pv));
    NCX(nc_put_var_double(nc, vy, yv));
    NCX(nc_put_var_double(nc, vx, xv));
    NCX(nc_put_var_float(nc, v, fv));
    NCX(nc_close(nc));
    plot_field f;
    plot_select sel = {0};
    sel.time = "2019-03-02T00:00";
    sel.lead = "12";
    assert_int_equal(plot_read_slice(path, "t2m", &sel, &f), 0);
    assert_string_equal(f.time_label, "2019-03-02T12:00");
    assert_string_equal(f.selection, "init 2019-03-02T00:00, forecast_period 12 hours");
    assert_float_equal(f.data[0], (float)((1 * 3 + 2) * 6), 0);
    plot_field_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_read_geo),
        cmocka_unit_test(test_categories),
        cmocka_unit_test(test_raster_and_errors),
        cmocka_unit_test(test_duplicate_column),
        cmocka_unit_test(test_forecast_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
