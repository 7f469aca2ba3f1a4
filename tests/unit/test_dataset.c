/* Dataset file: layout (dims, chunking, compression, CF attributes), writer/reader round trip
 * with members and a static field, atomic output, and errors. */
#include "testutil.h"

#include "core/log.h"
#include "data/dataset.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NLAT 3
#define NLON 4

static float value(int v, int t, int m, int p) { return (float)(1000 * v + 100 * t + 10 * m + p); }

static void make_layout(dataset_layout *L, dataset_var_info *vars, double *lat, double *lon, double *times, double *refs, int *members)
{
    memset(L, 0, sizeof *L);
    memset(vars, 0, 3 * sizeof *vars);
    for (int j = 0; j < NLAT; j++) lat[j] = 50.0 - j;
    for (int i = 0; i < NLON; i++) lon[i] = -2.0 + i;
    for (int t = 0; t < 5; t++) {
        times[t] = 429528.0 + 6.0 * t;
        refs[t] = 429528.0;
    }
    members[0] = 0;
    members[1] = 5;
    snprintf(vars[0].name, sizeof vars[0].name, "2t");
    snprintf(vars[0].units, sizeof vars[0].units, "K");
    snprintf(vars[0].standard_name, sizeof vars[0].standard_name, "air_temperature");
    vars[0].param_id = 167;
    vars[0].level = NAN;
    snprintf(vars[1].name, sizeof vars[1].name, "z500");
    vars[1].has_members = 1;
    vars[1].level = 500;
    snprintf(vars[2].name, sizeof vars[2].name, "lsm");
    vars[2].is_static = 1;
    vars[2].categorical = 1;
    vars[2].level = NAN;
    L->is_latlon = 1;
    snprintf(L->grid_name, sizeof L->grid_name, "native");
    L->nlat = NLAT;
    L->nlon = NLON;
    L->lat = lat;
    L->lon = lon;
    L->ntimes = 5;
    L->times = times;
    L->reference_times = refs;
    snprintf(L->calendar, sizeof L->calendar, "standard");
    L->nmembers = 2;
    L->members = members;
    L->nvars = 3;
    L->vars = vars;
    L->config_text = "ingest:\n  grid: native\n";
    L->inputs_text = "abc  in.grib\n";
}

static void test_roundtrip(void **state)
{
    (void)state;
    dataset_layout L;
    dataset_var_info vars[3];
    double lat[NLAT], lon[NLON], times[5], refs[5];
    int members[2];
    make_layout(&L, vars, lat, lon, times, refs, members);
    remove("ds.nc");
    dataset_writer *w;
    assert_int_equal(dataset_writer_create("ds.nc", &L, &w), SM_OK);
    assert_int_not_equal(access("ds.nc", F_OK), 0); /* nothing at the final path before commit */
    float f[NLAT * NLON], back[NLAT * NLON];
    for (int t = 4; t >= 0; t--) { /* out of order on purpose */
        for (int p = 0; p < NLAT * NLON; p++) f[p] = value(0, t, 0, p);
        assert_int_equal(dataset_writer_put(w, 0, t, 0, f), SM_OK);
        for (int m = 0; m < 2; m++) {
            for (int p = 0; p < NLAT * NLON; p++) f[p] = value(1, t, m, p);
            if (!(t == 2 && m == 1)) assert_int_equal(dataset_writer_put(w, 1, t, m, f), SM_OK);
        }
    }
    for (int p = 0; p < NLAT * NLON; p++) f[p] = (float)(p % 2);
    assert_int_equal(dataset_writer_put(w, 2, 0, 0, f), SM_OK);
    assert_int_equal(dataset_writer_get(w, 1, 3, 1, back), SM_OK);
    assert_true(back[7] == value(1, 3, 1, 7));
    assert_int_equal(dataset_writer_put(w, 1, 5, 0, f), SM_ERR_IO);
    assert_int_equal(dataset_writer_commit(w), SM_OK);

    /* the file layout */
    int nc, vid, storage, shuffle, deflate, level, ndims;
    size_t chunks[4];
    assert_int_equal(nc_open("ds.nc", NC_NOWRITE, &nc), NC_NOERR);
    assert_int_equal(nc_inq_varid(nc, "z500", &vid), NC_NOERR);
    nc_inq_varndims(nc, vid, &ndims);
    assert_int_equal(ndims, 4);
    nc_inq_var_chunking(nc, vid, &storage, chunks);
    assert_int_equal(storage, NC_CHUNKED);
    assert_true(chunks[0] == 1 && chunks[1] == 1 && chunks[2] == NLAT && chunks[3] == NLON);
    nc_inq_var_deflate(nc, vid, &shuffle, &deflate, &level);
    assert_true(shuffle && deflate && level > 0);
    char text[128];
    size_t len;
    nc_inq_attlen(nc, NC_GLOBAL, "Conventions", &len);
    nc_get_att_text(nc, NC_GLOBAL, "Conventions", text);
    text[len] = 0;
    assert_string_equal(text, "CF-1.8");
    assert_int_equal(nc_inq_varid(nc, "time", &vid), NC_NOERR);
    nc_inq_attlen(nc, vid, "units", &len);
    nc_get_att_text(nc, vid, "units", text);
    text[len] = 0;
    assert_string_equal(text, DATASET_TIME_UNITS);
    assert_int_equal(nc_inq_varid(nc, "lsm", &vid), NC_NOERR);
    nc_inq_varndims(nc, vid, &ndims);
    assert_int_equal(ndims, 2);
    assert_int_equal(nc_inq_varid(nc, "forecast_reference_time", &vid), NC_NOERR);
    assert_int_equal(nc_inq_varid(nc, "crs", &vid), NC_NOERR);
    nc_close(nc);

    /* the reader */
    dataset *ds;
    assert_int_equal(dataset_open("ds.nc", &ds), SM_OK);
    assert_int_equal(ds->nvars, 3);
    assert_int_equal(ds->ntimes, 5);
    assert_int_equal(ds->nmembers, 2);
    assert_int_equal(ds->members[1], 5);
    assert_true(ds->times[3] == times[3]);
    assert_true(ds->reference_times[4] == refs[4]);
    assert_string_equal(ds->calendar, "standard");
    assert_string_equal(ds->grid_name, "native");
    assert_string_equal(ds->config_text, "ingest:\n  grid: native\n");
    assert_string_equal(ds->inputs_text, "abc  in.grib\n");
    assert_true(ds->lat[0] > ds->lat[NLAT - 1]);
    int z = dataset_find_var(ds, "z500"), t2 = dataset_find_var(ds, "2t"), lsm = dataset_find_var(ds, "lsm");
    assert_true(z >= 0 && t2 >= 0 && lsm >= 0);
    assert_int_equal(dataset_find_var(ds, "nope"), -1);
    assert_true(ds->vars[z].has_members && !ds->vars[z].is_static && ds->vars[z].level == 500);
    assert_true(!ds->vars[t2].has_members && ds->vars[t2].param_id == 167);
    assert_string_equal(ds->vars[t2].units, "K");
    assert_true(ds->vars[lsm].is_static && ds->vars[lsm].categorical);
    assert_int_equal(dataset_find_time(ds, times[2]), 2);
    assert_int_equal(dataset_find_time(ds, times[2] + 1), -1);
    for (int t = 0; t < 5; t++)
        for (int m = 0; m < 2; m++) {
            assert_int_equal(dataset_read(ds, z, t, m, back), SM_OK);
            for (int p = 0; p < NLAT * NLON; p++) {
                if (t == 2 && m == 1) assert_true(isnan(back[p])); /* never written: NaN fill */
                else assert_true(back[p] == value(1, t, m, p));
            }
        }
    assert_int_equal(dataset_read(ds, t2, 1, 0, back), SM_OK);
    assert_true(back[5] == value(0, 1, 0, 5));
    assert_int_equal(dataset_read(ds, lsm, 99, 0, back), SM_OK); /* time ignored for static */
    assert_true(back[3] == 1);
    assert_int_equal(dataset_read(ds, z, 5, 0, back), SM_ERR_IO);
    assert_int_equal(dataset_read(ds, z, 0, 2, back), SM_ERR_IO);
    dataset_close(ds);
    remove("ds.nc");
}

static void test_abort_and_errors(void **state)
{
    (void)state;
    dataset_layout L;
    dataset_var_info vars[3];
    double lat[NLAT], lon[NLON], times[5], refs[5];
    int members[2];
    make_layout(&L, vars, lat, lon, times, refs, members);
    remove("gone.nc");
    dataset_writer *w;
    assert_int_equal(dataset_writer_create("gone.nc", &L, &w), SM_OK);
    dataset_writer_abort(w);
    assert_int_not_equal(access("gone.nc", F_OK), 0);
    /* no temporary file left behind */
    FILE *p = popen("ls -a | grep -c '^\\.gone\\.nc\\.tmp' || true", "r");
    char buf[16] = "";
    assert_non_null(fgets(buf, sizeof buf, p));
    pclose(p);
    assert_int_equal(atoi(buf), 0);

    assert_int_equal(dataset_writer_create("no_such_dir/x.nc", &L, &w), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "no_such_dir"));

    /* a NetCDF file that is not a dataset */
    int nc;
    nc_create("plain.nc", NC_CLOBBER, &nc);
    nc_close(nc);
    dataset *ds;
    assert_int_equal(dataset_open("plain.nc", &ds), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "plain.nc: not a smoecast dataset"));
    remove("plain.nc");
    assert_int_equal(dataset_open("missing.nc", &ds), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "missing.nc"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_abort_and_errors)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
