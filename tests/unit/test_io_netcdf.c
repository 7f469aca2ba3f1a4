/* NetCDF reader on synthetic files: packing with a negative scale_factor, NaN _FillValue on int16,
 * _FillValue, missing_value, valid_range, dimension order (x before y), descending longitude, ascending
 * latitude, realization, 360_day calendar, scalar and unitless time axes, NetCDF-4 string
 * attributes, error cases. */
#include "testutil.h"

#include "core/log.h"
#include "io/cf_time.h"
#include "io/nc_attr.h"
#include "io/netcdf_reader.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NX 4
#define NY 3

static void put_text(int nc, int v, const char *name, const char *text) { nc_put_att_text(nc, v, name, strlen(text), text); }

static double truth(double lat, double lon, int t, int m) { return 100.0 + lat + 0.1 * lon + 10.0 * t + 50.0 * m; }

/* var(time=2, number=2, lon=4, lat=3): int16 packed with a negative scale, x before y, lon
 * descending, lat ascending, 360_day calendar, _FillValue, missing_value -999, valid_range */
static void make_packed(const char *path)
{
    int nc, dt, dm, dx, dy, vt, vm, vx, vy, vv, vz;
    assert_int_equal(nc_create(path, NC_CLOBBER | NC_64BIT_OFFSET, &nc), NC_NOERR);
    nc_def_dim(nc, "time", 2, &dt);
    nc_def_dim(nc, "number", 2, &dm);
    nc_def_dim(nc, "x", NX, &dx);
    nc_def_dim(nc, "y", NY, &dy);
    nc_def_var(nc, "time", NC_DOUBLE, 1, &dt, &vt);
    put_text(nc, vt, "units", "days since 2000-02-29 12:00");
    put_text(nc, vt, "calendar", "360_day");
    nc_def_var(nc, "number", NC_INT, 1, &dm, &vm);
    nc_def_var(nc, "x", NC_FLOAT, 1, &dx, &vx);
    put_text(nc, vx, "standard_name", "longitude");
    nc_def_var(nc, "y", NC_FLOAT, 1, &dy, &vy);
    put_text(nc, vy, "units", "degrees_north");
    int dims[4] = {dt, dm, dx, dy};
    nc_def_var(nc, "pk", NC_SHORT, 4, dims, &vv);
    double sf = -0.01, ao = 200.0;
    short miss = -999, fill = -32767;
    nc_put_att_double(nc, vv, "scale_factor", NC_DOUBLE, 1, &sf);
    nc_put_att_double(nc, vv, "add_offset", NC_DOUBLE, 1, &ao);
    /* (netCDF-C refuses a NaN _FillValue on int16; the real eraint_uvz.nc file below carries one) */
    assert_int_equal(nc_put_att_short(nc, vv, "_FillValue", NC_SHORT, 1, &fill), NC_NOERR);
    nc_put_att_short(nc, vv, "missing_value", NC_SHORT, 1, &miss);
    short vr[2] = {-20000, 20000};
    nc_put_att_short(nc, vv, "valid_range", NC_SHORT, 2, vr);
    put_text(nc, vv, "units", "K");
    int d2[2] = {dy, dx};
    nc_def_var(nc, "flat", NC_FLOAT, 2, d2, &vz); /* static, no time */
    int dbad[3] = {dt, dm, dy};
    int vbad;
    nc_def_var(nc, "nogrid", NC_FLOAT, 3, dbad, &vbad);
    assert_int_equal(nc_enddef(nc), NC_NOERR);
    double tv[2] = {0, 1.5};
    int mv[2] = {3, 7};
    float xv[NX] = {30, 20, 10, 0}, yv[NY] = {-10, 0, 10};
    nc_put_var_double(nc, vt, tv);
    nc_put_var_int(nc, vm, mv);
    nc_put_var_float(nc, vx, xv);
    nc_put_var_float(nc, vy, yv);
    short data[2][2][NX][NY];
    for (int t = 0; t < 2; t++)
        for (int m = 0; m < 2; m++)
            for (int i = 0; i < NX; i++)
                for (int j = 0; j < NY; j++)
                    data[t][m][i][j] = (short)lround((truth(yv[j], xv[i], t, m) - ao) / sf);
    data[0][0][0][0] = -999;   /* missing_value */
    data[1][1][3][2] = -30000; /* outside valid_range */
    data[1][0][2][1] = -32767; /* _FillValue */
    nc_put_var_short(nc, vv, &data[0][0][0][0]);
    float flat[NY][NX];
    for (int j = 0; j < NY; j++)
        for (int i = 0; i < NX; i++) flat[j][i] = (float)(j * NX + i);
    nc_put_var_float(nc, vz, &flat[0][0]);
    assert_int_equal(nc_close(nc), NC_NOERR);
}

static void test_packed(void **state)
{
    (void)state;
    make_packed("packed.nc");
    nc_reader *r;
    if (nc_reader_open("packed.nc", &r) != SM_OK) fail_msg("%s", sm_last_error());
    assert_int_equal(nc_reader_nvars(r), 2); /* pk, flat; nogrid has no longitude */
    var_selector sel;
    var_selector_parse("pk", &sel);
    nc_var *v;
    assert_int_equal(nc_var_open(r, &sel, &v), SM_OK);
    assert_int_equal(nc_var_ntimes(v), 2);
    assert_int_equal(nc_var_nmembers(v), 2);
    char kinds[8];
    const char *names[8];
    assert_int_equal(nc_var_dims(v, kinds, names), 4);
    assert_memory_equal(kinds, "TRXY", 4);
    const src_geometry *g = nc_var_geometry(v);
    assert_int_equal(g->nrows, NY);
    assert_true(g->lat[0] == -10 && g->lat[2] == 10); /* file order kept: ascending */
    assert_true(g->lon0[0] == 0 && g->dlon[0] == 10); /* descending longitudes flipped */
    field_meta m;
    nc_var_field_meta(v, 1, 1, &m);
    assert_int_equal(m.member, 7);
    assert_string_equal(m.calendar, "360_day");
    /* 2000-02-29 12:00 + 1.5 days = 2000-03-01 00:00 in the 360_day calendar */
    char buf[40];
    cf_format_hours(m.valid_time, CAL_360_DAY, buf, sizeof buf);
    assert_string_equal(buf, "2000-03-01T00:00");
    int nmiss = 0;
    for (int t = 0; t < 2; t++)
        for (int mm = 0; mm < 2; mm++) {
            const double *x;
            assert_int_equal(nc_var_read(v, t, mm, &x), SM_OK);
            for (int j = 0; j < NY; j++)
                for (int i = 0; i < NX; i++) {
                    double val = x[j * NX + i];
                    if (isnan(val)) {
                        nmiss++;
                        continue;
                    }
                    double want = truth(g->lat[j], g->lon0[j] + i * g->dlon[j], t, mm);
                    if (fabs(val - want) > 0.006) fail_msg("t %d m %d j %d i %d: %g vs %g", t, mm, j, i, val, want);
                }
        }
    assert_int_equal(nmiss, 3);
    nc_var_close(v);

    /* static variable, y before x */
    var_selector_parse("flat", &sel);
    assert_int_equal(nc_var_open(r, &sel, &v), SM_OK);
    nc_var_field_meta(v, 0, 0, &m);
    assert_false(m.has_time);
    const double *x;
    assert_int_equal(nc_var_read(v, 0, 0, &x), SM_OK);
    /* file lon 30,20,10,0 -> canonical 0,10,20,30: canonical i is file index NX-1-i */
    assert_true(x[0 * NX + 0] == 3 && x[1 * NX + 3] == 4);
    nc_var_close(v);

    /* errors: missing variable, level on a variable without levels, unexpected dimensions */
    var_selector_parse("nope", &sel);
    assert_int_equal(nc_var_open(r, &sel, &v), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "packed.nc: variable nope: not in the file"));
    var_selector_parse("pk:500", &sel);
    assert_int_equal(nc_var_open(r, &sel, &v), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "no level dimension"));
    var_selector_parse("nogrid", &sel);
    assert_int_equal(nc_var_open(r, &sel, &v), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "variable nogrid"));
    nc_reader_close(r);
    remove("packed.nc");
}

/* scalar time through `coordinates`, levels in Pa, an unexpected dimension, unitless month axis */
static void test_time_axes(void **state)
{
    (void)state;
    int nc, dl, dy, dx, db, dmo, vt, vl, vy, vx, va, vb, vmo, vc;
    assert_int_equal(nc_create("axes.nc", NC_CLOBBER | NC_NETCDF4, &nc), NC_NOERR);
    nc_def_dim(nc, "plev", 2, &dl);
    nc_def_dim(nc, "lat", 2, &dy);
    nc_def_dim(nc, "lon", 3, &dx);
    nc_def_dim(nc, "band", 2, &db);
    nc_def_dim(nc, "month", 2, &dmo);
    nc_def_var(nc, "valid", NC_INT, 0, NULL, &vt);
    put_text(nc, vt, "units", "hours since 1995-07-14");
    nc_def_var(nc, "plev", NC_DOUBLE, 1, &dl, &vl);
    put_text(nc, vl, "units", "Pa");
    nc_def_var(nc, "lat", NC_DOUBLE, 1, &dy, &vy);
    nc_def_var(nc, "lon", NC_DOUBLE, 1, &dx, &vx);
    int d3[3] = {dl, dy, dx};
    nc_def_var(nc, "a", NC_FLOAT, 3, d3, &va);
    put_text(nc, va, "coordinates", "valid");
    int d4[3] = {db, dy, dx};
    nc_def_var(nc, "b", NC_FLOAT, 3, d4, &vb);
    nc_def_var(nc, "month", NC_INT, 1, &dmo, &vmo);
    int d5[3] = {dmo, dy, dx};
    nc_def_var(nc, "c", NC_FLOAT, 3, d5, &vc);
    nc_enddef(nc);
    int t12 = 12;
    nc_put_var_int(nc, vt, &t12);
    double pl[2] = {50000, 85000}, la[2] = {10, 0}, lo[3] = {-5, 0, 5};
    nc_put_var_double(nc, vl, pl);
    nc_put_var_double(nc, vy, la);
    nc_put_var_double(nc, vx, lo);
    float a[12];
    for (int i = 0; i < 12; i++) a[i] = (float)i;
    nc_put_var_float(nc, va, a);
    nc_put_var_float(nc, vb, a);
    int mo[2] = {1, 7};
    nc_put_var_int(nc, vmo, mo);
    nc_put_var_float(nc, vc, a);
    nc_close(nc);

    nc_reader *r;
    assert_int_equal(nc_reader_open("axes.nc", &r), SM_OK);
    var_selector sel;
    nc_var *v;
    field_meta m;
    var_selector_parse("a:850", &sel); /* 850 hPa found as 85000 Pa */
    assert_int_equal(nc_var_open(r, &sel, &v), SM_OK);
    assert_int_equal(nc_var_ntimes(v), 1);
    nc_var_field_meta(v, 0, 0, &m);
    assert_true(m.has_time);
    cf_date d = {1995, 7, 14, 12, 0, 0};
    assert_true(fabs(m.valid_time - cf_date_to_hours(&d, CAL_STANDARD)) < 1e-9);
    const double *x;
    assert_int_equal(nc_var_read(v, 0, 0, &x), SM_OK);
    assert_true(x[0] == 6 && x[5] == 11);
    nc_var_close(v);
    var_selector_parse("a", &sel);
    assert_int_equal(nc_var_open(r, &sel, &v), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "select one as a:LEVEL"));
    var_selector_parse("b", &sel);
    assert_int_equal(nc_var_open(r, &sel, &v), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "variable b: unexpected dimension 'band'"));
    var_selector_parse("c", &sel);
    assert_int_equal(nc_var_open(r, &sel, &v), SM_OK);
    nc_var_field_meta(v, 1, 0, &m);
    assert_true(m.time_is_index);
    assert_true(m.valid_time == 7);
    nc_var_close(v);
    nc_reader_close(r);
    remove("axes.nc");
}

static void test_shared_eraint(void **state)
{
    (void)state;
    char path[1024];
    if (!testutil_shared_data("xarray-data__eraint_uvz.nc", path, sizeof path)) {
        testutil_skip_or_fail("shared data absent");
        return;
    }
    nc_reader *r;
    assert_int_equal(nc_reader_open(path, &r), SM_OK);
    var_selector sel;
    var_selector_parse("z:500", &sel);
    nc_var *v;
    assert_int_equal(nc_var_open(r, &sel, &v), SM_OK);
    const double *x;
    assert_int_equal(nc_var_read(v, 0, 0, &x), SM_OK);
    /* z500 is geopotential (m2 s-2): around 5e4 everywhere, no missing despite the NaN _FillValue */
    const src_geometry *g = nc_var_geometry(v);
    for (int64_t i = 0; i < g->row_start[g->nrows]; i++) assert_true(x[i] > 4.0e4 && x[i] < 6.0e4);
    nc_var_close(v);
    nc_reader_close(r);
}

static void put_string(int nc, int v, const char *name, const char *text)
{
    const char *values[1] = {text};
    assert_int_equal(nc_put_att_string(nc, v, name, 1, values), NC_NOERR);
}

/* nc_attr_text / nc_attr_text_dup: NC_CHAR, NC_STRING, a counted trailing NUL, truncation,
 * absent and numeric attributes. */
static void test_attr_text(void **state)
{
    (void)state;
    int nc, v;
    assert_int_equal(nc_create("attrs.nc", NC_CLOBBER | NC_NETCDF4, &nc), NC_NOERR);
    nc_def_var(nc, "v", NC_FLOAT, 0, NULL, &v);
    put_text(nc, v, "units", "K");
    put_string(nc, v, "long_name", "air temperature");
    nc_put_att_text(nc, NC_GLOBAL, "title", 6, "title\0"); /* the terminator counted */
    double one = 1.0;
    nc_put_att_double(nc, v, "scale_factor", NC_DOUBLE, 1, &one);
    nc_enddef(nc);
    char buf[8];
    assert_int_equal(nc_attr_text(nc, v, "units", buf, sizeof buf), 1);
    assert_string_equal(buf, "K");
    assert_int_equal(nc_attr_text(nc, v, "long_name", buf, sizeof buf), 15); /* truncated */
    assert_string_equal(buf, "air tem");
    assert_int_equal(nc_attr_text(nc, NC_GLOBAL, "title", buf, sizeof buf), 5);
    assert_string_equal(buf, "title");
    assert_int_equal(nc_attr_text(nc, v, "scale_factor", buf, sizeof buf), -1);
    assert_string_equal(buf, "");
    assert_int_equal(nc_attr_text(nc, v, "absent", buf, sizeof buf), -1);
    char *dup = nc_attr_text_dup(nc, v, "long_name");
    assert_string_equal(dup, "air temperature");
    free(dup);
    assert_null(nc_attr_text_dup(nc, v, "scale_factor"));
    nc_close(nc);
    remove("attrs.nc");
}

/* Coordinates known only by their attributes, all written as NetCDF-4 strings (h5netcdf does
 * this): time units and a noleap calendar, longitude by standard_name, latitude by units. */
static void test_string_attributes(void **state)
{
    (void)state;
    int nc, dt, dy, dx, vt, vy, vx, vv;
    assert_int_equal(nc_create("strattrs.nc", NC_CLOBBER | NC_NETCDF4, &nc), NC_NOERR);
    nc_def_dim(nc, "t", 2, &dt);
    nc_def_dim(nc, "yc", NY, &dy);
    nc_def_dim(nc, "xc", NX, &dx);
    nc_def_var(nc, "t", NC_DOUBLE, 1, &dt, &vt);
    put_string(nc, vt, "units", "days since 2001-02-28");
    put_string(nc, vt, "calendar", "noleap");
    nc_def_var(nc, "yc", NC_DOUBLE, 1, &dy, &vy);
    put_string(nc, vy, "units", "degrees_north");
    nc_def_var(nc, "xc", NC_DOUBLE, 1, &dx, &vx);
    put_string(nc, vx, "standard_name", "longitude");
    int dims[3] = {dt, dy, dx};
    nc_def_var(nc, "tas", NC_FLOAT, 3, dims, &vv);
    put_string(nc, vv, "units", "K");
    nc_enddef(nc);
    double tv[2] = {0, 1}, yv[NY] = {10, 0, -10}, xv[NX] = {0, 10, 20, 30};
    float data[2 * NY * NX];
    for (int i = 0; i < 2 * NY * NX; i++) data[i] = 250.0f + (float)i;
    nc_put_var_double(nc, vt, tv);
    nc_put_var_double(nc, vy, yv);
    nc_put_var_double(nc, vx, xv);
    nc_put_var_float(nc, vv, data);
    nc_close(nc);

    nc_reader *r;
    assert_int_equal(nc_reader_open("strattrs.nc", &r), SM_OK);
    var_selector sel;
    nc_var *v;
    field_meta m;
    var_selector_parse("tas", &sel);
    assert_int_equal(nc_var_open(r, &sel, &v), SM_OK);
    assert_int_equal(nc_var_ntimes(v), 2);
    nc_var_field_meta(v, 1, 0, &m);
    assert_true(m.has_time);
    assert_string_equal(m.units, "K");
    assert_string_equal(m.calendar, "noleap");
    char buf[40]; /* 2001-02-28 + 1 day */
    cf_format_hours(m.valid_time, CAL_NOLEAP, buf, sizeof buf);
    assert_string_equal(buf, "2001-03-01T00:00");
    const double *x;
    assert_int_equal(nc_var_read(v, 1, 0, &x), SM_OK);
    assert_true(x[0] == 250.0 + NY * NX);
    nc_var_close(v);
    nc_reader_close(r);
    remove("strattrs.nc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_packed), cmocka_unit_test(test_time_axes), cmocka_unit_test(test_shared_eraint),
                                       cmocka_unit_test(test_attr_text), cmocka_unit_test(test_string_attributes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
