/* GRIB reader: every scanning mode on synthetic messages (values encode their own position),
 * bitmaps, reduced Gaussian rows against ecCodes' iterator, and the shared sample files. */
#include "testutil.h"

#include "core/log.h"
#include "io/cf_time.h"
#include "io/grib_reader.h"

#include <eccodes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double f_of(double lat, double lon)
{
    double l = fmod(lon + 360.0, 360.0);
    return 1000.0 + 10.0 * lat + l;
}

/* Writes one regular_ll message, Ni=5 x Nj=4, 10 degree spacing, lat 60..30, lon 350..30 (crosses
 * the 0 meridian), with the given scanning flags. */
static void write_regular(const char *path, const char *sample, int ineg, int jpos, int jcons, int alt, int with_missing)
{
    int err = 0;
    codes_handle *h = codes_grib_handle_new_from_samples(NULL, sample);
    assert_non_null(h);
    const int ni = 5, nj = 4;
    const double north = 60, south = 30, west = 350, east = 30, d = 10;
    assert_int_equal(codes_set_long(h, "Ni", ni), 0);
    assert_int_equal(codes_set_long(h, "Nj", nj), 0);
    codes_set_long(h, "iScansNegatively", ineg);
    codes_set_long(h, "jScansPositively", jpos);
    codes_set_long(h, "jPointsAreConsecutive", jcons);
    codes_set_long(h, "alternativeRowScanning", alt);
    codes_set_double(h, "latitudeOfFirstGridPointInDegrees", jpos ? south : north);
    codes_set_double(h, "latitudeOfLastGridPointInDegrees", jpos ? north : south);
    codes_set_double(h, "longitudeOfFirstGridPointInDegrees", ineg ? east : west);
    codes_set_double(h, "longitudeOfLastGridPointInDegrees", ineg ? west : east);
    codes_set_double(h, "iDirectionIncrementInDegrees", d);
    codes_set_double(h, "jDirectionIncrementInDegrees", d);
    codes_set_long(h, "bitsPerValue", 24);
    double v[20];
    int n = 0;
    for (int outer = 0; outer < (jcons ? ni : nj); outer++)
        for (int inner = 0; inner < (jcons ? nj : ni); inner++) {
            int r = jcons ? inner : outer, c = jcons ? outer : inner;
            if (alt && (r & 1)) c = ni - 1 - c;
            double lat = jpos ? south + r * d : north - r * d;
            double lon = ineg ? east - c * d : west + c * d;
            v[n++] = f_of(lat, lon);
        }
    if (with_missing) {
        codes_set_double(h, "missingValue", 9999);
        codes_set_long(h, "bitmapPresent", 1);
        v[3] = 9999;
    }
    assert_int_equal(codes_set_double_array(h, "values", v, 20), 0);
    const void *msg;
    size_t len;
    codes_get_message(h, &msg, &len);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(msg, 1, len, f);
    fclose(f);
    codes_handle_delete(h);
    (void)err;
}

static void check_regular(const char *path, int with_missing, int *nmissing)
{
    grib_reader *r;
    assert_int_equal(grib_reader_open(path, &r), SM_OK);
    field_meta m;
    int done;
    assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
    assert_false(done);
    const double *v;
    const src_geometry *g;
    assert_int_equal(grib_reader_decode(r, &v, &g), SM_OK);
    assert_int_equal(g->nrows, 4);
    assert_true(g->is_regular);
    assert_int_equal(g->row_len[0], 5);
    assert_true(fabs(g->dlon[0] - 10) < 1e-9);
    assert_true(fabs(fmod(g->lon0[0] + 360, 360) - 350) < 1e-9);
    *nmissing = 0;
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 5; i++) {
            double x = v[k * 5 + i];
            if (isnan(x)) {
                (*nmissing)++;
                continue;
            }
            double want = f_of(g->lat[k], g->lon0[k] + i * g->dlon[k]);
            if (fabs(x - want) > 1e-2)
                fail_msg("%s: row %d (lat %g) point %d: %g, expected %g", path, k, g->lat[k], i, x, want);
        }
    assert_int_equal(*nmissing, with_missing ? 1 : 0);
    assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
    assert_true(done);
    grib_reader_close(r);
}

static void test_scanning_modes(void **state)
{
    (void)state;
    const char *samples[2] = {"regular_ll_sfc_grib1", "regular_ll_sfc_grib2"};
    int cases = 0;
    for (int s = 0; s < 2; s++)
        for (int ineg = 0; ineg < 2; ineg++)
            for (int jpos = 0; jpos < 2; jpos++)
                for (int jcons = 0; jcons < 2; jcons++)
                    for (int alt = 0; alt < 2; alt++) {
                        if (jcons && alt) continue;
                        if (s == 0 && alt) continue; /* GRIB1 has no alternative row scanning flag */
                        write_regular("scan.grib", samples[s], ineg, jpos, jcons, alt, 0);
                        int nm;
                        check_regular("scan.grib", 0, &nm);
                        cases++;
                    }
    assert_int_equal(cases, 20);
    remove("scan.grib");
}

static void test_bitmap(void **state)
{
    (void)state;
    write_regular("bitmap.grib", "regular_ll_sfc_grib2", 0, 0, 0, 0, 1);
    int nm;
    check_regular("bitmap.grib", 1, &nm);
    remove("bitmap.grib");
}

static void test_reduced_gg(void **state)
{
    (void)state;
    codes_handle *h = codes_grib_handle_new_from_samples(NULL, "reduced_gg_pl_32_grib2");
    assert_non_null(h);
    size_t n;
    codes_get_size(h, "values", &n);
    double *lat = malloc(n * sizeof *lat), *lon = malloc(n * sizeof *lon), *val = malloc(n * sizeof *val);
    int err;
    codes_iterator *it = codes_grib_iterator_new(h, 0, &err);
    assert_non_null(it);
    size_t k = 0;
    double la, lo, x;
    while (codes_grib_iterator_next(it, &la, &lo, &x) && k < n) {
        lat[k] = la;
        lon[k] = lo;
        val[k] = f_of(la, lo);
        k++;
    }
    codes_grib_iterator_delete(it);
    assert_int_equal(k, n);
    codes_set_long(h, "bitsPerValue", 24);
    assert_int_equal(codes_set_double_array(h, "values", val, n), 0);
    const void *msg;
    size_t len;
    codes_get_message(h, &msg, &len);
    FILE *f = fopen("rgg.grib", "wb");
    fwrite(msg, 1, len, f);
    fclose(f);
    codes_handle_delete(h);

    grib_reader *r;
    assert_int_equal(grib_reader_open("rgg.grib", &r), SM_OK);
    field_meta m;
    int done;
    assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
    const double *v;
    const src_geometry *g;
    assert_int_equal(grib_reader_decode(r, &v, &g), SM_OK);
    assert_string_equal(g->grid_type, "reduced_gg");
    assert_int_equal(g->nrows, 64);
    assert_false(g->is_regular);
    assert_int_equal(g->row_start[g->nrows], (int64_t)n);
    for (int row = 0; row < g->nrows; row++)
        for (int i = 0; i < g->row_len[row]; i++) {
            int64_t p = g->row_start[row] + i;
            if (fabs(g->lat[row] - lat[p]) >= 1e-4) fail_msg("row %d point %d: lat %g vs iterator %g", row, i, g->lat[row], lat[p]);
            assert_true(fabs(g->lon0[row] + i * g->dlon[row] - lon[p]) < 1e-4);
            assert_true(fabs(v[p] - val[p]) < 1e-2);
        }
    grib_reader_close(r);
    remove("rgg.grib");
    free(lat);
    free(lon);
    free(val);
}

static void test_not_grib(void **state)
{
    (void)state;
    FILE *f = fopen("text.grib", "w");
    fputs("plain text, no binary messages here\n", f);
    fclose(f);
    grib_reader *r;
    field_meta m;
    int done;
    assert_int_equal(grib_reader_open("text.grib", &r), SM_OK);
    assert_int_equal(grib_reader_next(r, &m, &done), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "text.grib: no GRIB message"));
    assert_false(grib_reader_recoverable(r));
    assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
    assert_true(done);
    grib_reader_close(r);
    f = fopen("empty.grib", "w");
    fclose(f);
    assert_int_equal(grib_reader_open("empty.grib", &r), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "empty.grib: file is empty"));
    assert_int_equal(grib_reader_open("no_such.grib", &r), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "no_such.grib"));
    remove("text.grib");
    remove("empty.grib");
}

static void test_shared_files(void **state)
{
    (void)state;
    char path[1024];
    if (!testutil_shared_data("cfgrib__era5-levels-corrupted.grib", path, sizeof path)) {
        testutil_skip_or_fail("shared data absent");
        return;
    }
    grib_reader *r;
    field_meta m;
    int done;
    assert_int_equal(grib_reader_open(path, &r), SM_OK);
    assert_int_equal(grib_reader_next(r, &m, &done), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "message 1: broken GRIB message"));
    assert_true(grib_reader_recoverable(r));
    assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
    assert_false(done);
    assert_int_equal(m.msg, 2);
    assert_string_equal(m.short_name, "t");
    assert_int_equal(m.param_id, 130);
    assert_true(m.level == 850);
    grib_reader_close(r);

    /* GFS: 308 messages holding 344 fields */
    assert_non_null(testutil_shared_data("pygrib__gfs.grb", path, sizeof path));
    assert_int_equal(grib_reader_open(path, &r), SM_OK);
    int nf = 0, n_const = 0;
    for (;;) {
        assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
        if (done) break;
        nf++;
        if (m.bits_per_value == 0) {
            const double *v;
            const src_geometry *g;
            assert_int_equal(grib_reader_decode(r, &v, &g), SM_OK);
            n_const++;
        }
    }
    assert_int_equal(nf, 344);
    assert_true(n_const > 0);
    grib_reader_close(r);

    /* ERA5: valid time, member and time decoding */
    assert_non_null(testutil_shared_data("xarray-data__era5-2mt-2019-03-uk.grib", path, sizeof path));
    assert_int_equal(grib_reader_open(path, &r), SM_OK);
    assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
    assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
    cf_date d = {2019, 3, 1, 1, 0, 0};
    assert_true(fabs(m.valid_time - cf_date_to_hours(&d, CAL_PROLEPTIC)) < 1e-9);
    assert_true(m.forecast_period == 0);
    assert_int_equal(m.member, -1);
    assert_string_equal(m.units, "K");
    grib_reader_close(r);

    /* ensemble member from `number` in the local section; TIGGE control 0 + perturbed */
    assert_non_null(testutil_shared_data("cfgrib__regular_ll_msl.grib", path, sizeof path));
    assert_int_equal(grib_reader_open(path, &r), SM_OK);
    assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
    assert_int_equal(m.member, 5);
    assert_true(m.forecast_period == 72);
    grib_reader_close(r);

    /* a file cut in half: the last message is reported as truncated */
    assert_non_null(testutil_shared_data("xarray-data__era5-2mt-2019-03-uk.grib", path, sizeof path));
    FILE *in = fopen(path, "rb"), *out = fopen("half.grib", "wb");
    char *buf = malloc(1000000);
    size_t got = fread(buf, 1, 1000000, in);
    fwrite(buf, 1, got, out);
    fclose(in);
    fclose(out);
    free(buf);
    assert_int_equal(grib_reader_open("half.grib", &r), SM_OK);
    int st = SM_OK;
    nf = 0;
    for (;;) {
        st = grib_reader_next(r, &m, &done);
        if (st || done) break;
        nf++;
    }
    assert_int_equal(st, SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "truncated"));
    assert_non_null(strstr(sm_last_error(), "message 298"));
    assert_int_equal(nf, 297);
    grib_reader_close(r);
    remove("half.grib");
}

/* the concept cache must give exactly what ecCodes' concepts give, field by field */
static void test_concept_cache(void **state)
{
    (void)state;
    const char *files[] = {"pygrib__gfs.grb", "cfgrib__era5-levels-members.grib",
                           "geocat-datafiles__z_tigge_c_egrr_20061028120000_0000_pt_glob_prod.grib2", "cfgrib__regular_ll_msl.grib",
                           "cfgrib__fields_with_missing_values.grib", "earthkit-data__ens_none.grib"};
    char path[1024];
    int total = 0;
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        if (!testutil_shared_data(files[k], path, sizeof path)) {
            testutil_skip_or_fail("shared data absent");
            return;
        }
        grib_reader *a, *b;
        assert_int_equal(grib_reader_open(path, &a), SM_OK);
        assert_int_equal(grib_reader_open(path, &b), SM_OK);
        grib_reader_set_concept_cache(b, 0);
        for (;;) {
            field_meta ma, mb;
            int da, db;
            assert_int_equal(grib_reader_next(a, &ma, &da), SM_OK);
            assert_int_equal(grib_reader_next(b, &mb, &db), SM_OK);
            assert_int_equal(da, db);
            if (da) break;
            assert_int_equal(ma.param_id, mb.param_id);
            assert_string_equal(ma.short_name, mb.short_name);
            assert_string_equal(ma.name, mb.name);
            assert_string_equal(ma.units, mb.units);
            assert_string_equal(ma.type_of_level, mb.type_of_level);
            total++;
        }
        grib_reader_close(a);
        grib_reader_close(b);
    }
    assert_int_equal(total, 344 + 160 + 24 + 1 + 2 + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scanning_modes), cmocka_unit_test(test_bitmap), cmocka_unit_test(test_reduced_gg),
        cmocka_unit_test(test_not_grib),        cmocka_unit_test(test_shared_files), cmocka_unit_test(test_concept_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
