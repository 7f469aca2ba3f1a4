/* GRIB reader: every scanning mode on synthetic messages (values encode their own position),
 * bitmaps, reduced Gaussian rows against ecCodes' iterator, the shared sample files, and the
 * reader's caches against ecCodes without them. */
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

/* Checks the current field of `r` (one written by write_regular) point by point. */
static void check_field(grib_reader *r, const char *path, int with_missing, int *nmissing)
{
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
}

static void check_regular(const char *path, int with_missing, int *nmissing)
{
    grib_reader *r;
    assert_int_equal(grib_reader_open(path, &r), SM_OK);
    field_meta m;
    int done;
    assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
    assert_false(done);
    check_field(r, path, with_missing, nmissing);
    assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
    assert_true(done);
    grib_reader_close(r);
}

static void append_file(const char *from, FILE *to)
{
    FILE *f = fopen(from, "rb");
    assert_non_null(f);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) assert_int_equal(fwrite(buf, 1, n, to), n);
    fclose(f);
}

static void test_scanning_modes(void **state)
{
    (void)state;
    const char *samples[2] = {"regular_ll_sfc_grib1", "regular_ll_sfc_grib2"};
    int cases = 0;
    FILE *all = fopen("scan_all.grib", "wb");
    assert_non_null(all);
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
                        append_file("scan.grib", all);
                        cases++;
                    }
    assert_int_equal(cases, 20);
    remove("scan.grib");
    /* all twenty in one file, read by one reader: same-sized grid sections that differ only in the
     * scanning flags must not share a cached geometry */
    fclose(all);
    for (int cache = 0; cache < 2; cache++) {
        grib_reader *r;
        assert_int_equal(grib_reader_open("scan_all.grib", &r), SM_OK);
        grib_reader_set_cache(r, cache);
        field_meta m;
        int done, n = 0, nm;
        for (;;) {
            assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
            if (done) break;
            check_field(r, "scan_all.grib", 0, &nm);
            n++;
        }
        assert_int_equal(n, 20);
        grib_reader_close(r);
    }
    remove("scan_all.grib");
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

static int same_double(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* The reader's caches (concepts, packing, forecast period, key presence per layout, geometry per
 * grid section) must give exactly what ecCodes gives without them, field by field: metadata,
 * geometry and values, on every shared GRIB file (GRIB1 and GRIB2, multi-field messages, bitmaps,
 * scanning modes, reduced Gaussian, ensembles, forecasts). */
static void test_cache_matches_uncached(void **state)
{
    (void)state;
    const char *files[] = {"pygrib__gfs.grb",
                           "cfgrib__era5-levels-members.grib",
                           "geocat-datafiles__z_tigge_c_egrr_20061028120000_0000_pt_glob_prod.grib2",
                           "cfgrib__regular_ll_msl.grib",
                           "cfgrib__fields_with_missing_values.grib",
                           "earthkit-data__ens_none.grib",
                           "cfgrib__alternate-scanning.grib",
                           "cfgrib__scanning_mode_64.grib",
                           "cfgrib__reduced_gg.grib",
                           "xarray-data__era5-2mt-2019-03-uk.grib",
                           "cfgrib__era5-levels-corrupted.grib"};
    const int expect[] = {344, 160, 24, 1, 2, 1, 1, 1, 1, 744, -1};
    char path[1024];
    int total = 0, decoded = 0;
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        if (!testutil_shared_data(files[k], path, sizeof path)) {
            testutil_skip_or_fail("shared data absent");
            return;
        }
        grib_reader *a, *b, *lz;
        assert_int_equal(grib_reader_open(path, &a), SM_OK);
        assert_int_equal(grib_reader_open(path, &b), SM_OK);
        assert_int_equal(grib_reader_open(path, &lz), SM_OK);
        grib_reader_set_cache(b, 0);
        const int mode = 1 + (int)(k % 3); /* GRIB_DESCRIBE_IDS, _PARAM_ID, _SHORT_NAME by turns */
        grib_reader_set_lazy(lz, mode);
        int nf = 0;
        for (;;) {
            field_meta ma, mb, ml;
            int da = 0, db = 0, dl = 0;
            int sa = grib_reader_next(a, &ma, &da), sb = grib_reader_next(b, &mb, &db), sl = grib_reader_next(lz, &ml, &dl);
            assert_int_equal(sa, sb);
            assert_int_equal(sa, sl);
            if (!sa && !da) {
                /* lazy: the selection keys of its mode at once, the description of every third field
                 * only (a caller keeps some fields), which must then match in full */
                /* (the other id may be known already from an earlier field with the same concepts) */
                if (mode != GRIB_DESCRIBE_SHORT_NAME || ml.param_id != 0) assert_int_equal(ml.param_id, mb.param_id);
                if (mode != GRIB_DESCRIBE_PARAM_ID || ml.short_name[0]) assert_string_equal(ml.short_name, mb.short_name);
                assert_true(same_double(ml.level, mb.level) && ml.member == mb.member && ml.valid_time == mb.valid_time);
                if (nf % 3 == 2) {
                    assert_int_equal(grib_reader_describe(lz, &ml), SM_OK);
                    assert_int_equal(ml.param_id, mb.param_id);
                    assert_string_equal(ml.short_name, mb.short_name);
                    assert_string_equal(ml.standard_name, mb.standard_name);
                    assert_string_equal(ml.name, mb.name);
                    assert_string_equal(ml.units, mb.units);
                    assert_string_equal(ml.type_of_level, mb.type_of_level);
                }
            }
            if (sa) {
                assert_true(grib_reader_recoverable(a)); /* the corrupted file: skip its broken message */
                continue;
            }
            assert_int_equal(da, db);
            if (da) break;
            nf++;
            assert_int_equal(ma.msg, mb.msg);
            assert_int_equal(ma.param_id, mb.param_id);
            assert_string_equal(ma.short_name, mb.short_name);
            assert_string_equal(ma.name, mb.name);
            assert_string_equal(ma.units, mb.units);
            assert_string_equal(ma.standard_name, mb.standard_name);
            assert_string_equal(ma.type_of_level, mb.type_of_level);
            assert_true(same_double(ma.level, mb.level));
            assert_int_equal(ma.member, mb.member);
            assert_int_equal(ma.has_time, mb.has_time);
            assert_true(same_double(ma.valid_time, mb.valid_time));
            assert_true(same_double(ma.reference_time, mb.reference_time));
            assert_true(same_double(ma.forecast_period, mb.forecast_period));
            assert_string_equal(ma.calendar, mb.calendar);
            assert_string_equal(ma.packing, mb.packing);
            assert_int_equal(ma.bits_per_value, mb.bits_per_value);
            assert_int_equal(ma.edition, mb.edition);
            assert_int_equal(ma.npoints, mb.npoints);
            const double *va, *vb;
            const src_geometry *ga, *gb;
            int ra = grib_reader_decode(a, &va, &ga), rb = grib_reader_decode(b, &vb, &gb);
            assert_int_equal(ra, rb);
            if (ra) continue;
            decoded++;
            assert_true(geometry_same(ga, gb));
            assert_string_equal(ga->grid_type, gb->grid_type);
            for (int64_t p = 0; p < ma.npoints; p++)
                if (!same_double(va[p], vb[p])) fail_msg("%s field %d point %lld: %g cached, %g uncached", files[k], nf, (long long)p, va[p], vb[p]);
        }
        if (expect[k] >= 0) assert_int_equal(nf, expect[k]);
        total += nf;
        grib_reader_close(a);
        grib_reader_close(b);
        grib_reader_close(lz);
    }
    assert_int_equal(total, 1280);
    assert_int_equal(decoded, total);
}

/* Checks every field of `path`: valid time, forecast period and member from the reader (caches on)
 * against ecCodes' validityDate/validityTime/number on the same message, and against the reader
 * with its caches off. Returns the number of fields. */
static int check_times(const char *path)
{
    grib_reader *r, *u;
    assert_int_equal(grib_reader_open(path, &r), SM_OK);
    assert_int_equal(grib_reader_open(path, &u), SM_OK);
    grib_reader_set_cache(u, 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    codes_grib_multi_support_on(NULL);
    int err = 0, n = 0;
    codes_handle *h;
    while ((h = codes_handle_new_from_file(NULL, f, PRODUCT_GRIB, &err)) != NULL) {
        field_meta m, mu;
        int done;
        assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
        assert_false(done);
        assert_int_equal(grib_reader_next(u, &mu, &done), SM_OK);
        long dd, dt, vd, vt, num = -1, nfc = 0;
        assert_int_equal(codes_get_long(h, "dataDate", &dd), 0);
        assert_int_equal(codes_get_long(h, "dataTime", &dt), 0);
        assert_int_equal(codes_get_long(h, "validityDate", &vd), 0);
        assert_int_equal(codes_get_long(h, "validityTime", &vt), 0);
        cf_date d = {(int)(vd / 10000), (int)(vd / 100 % 100), (int)(vd % 100), (int)(vt / 100), (int)(vt % 100), 0};
        cf_date d0 = {(int)(dd / 10000), (int)(dd / 100 % 100), (int)(dd % 100), (int)(dt / 100), (int)(dt % 100), 0};
        double valid = cf_date_to_hours(&d, CAL_PROLEPTIC), ref = cf_date_to_hours(&d0, CAL_PROLEPTIC);
        if (fabs(m.valid_time - valid) > 1e-9 || fabs(m.reference_time - ref) > 1e-9)
            fail_msg("%s field %d: valid %g ref %g, ecCodes %g %g", path, n + 1, m.valid_time, m.reference_time, valid, ref);
        assert_true(fabs(m.forecast_period - (valid - ref)) < 1e-9);
        assert_true(m.valid_time == mu.valid_time && m.forecast_period == mu.forecast_period && m.reference_time == mu.reference_time);
        if (codes_get_long(h, "numberOfForecastsInEnsemble", &nfc) == 0 && nfc > 0) codes_get_long(h, "number", &num);
        assert_int_equal(m.member, (int)num);
        assert_int_equal(mu.member, (int)num);
        assert_int_equal(m.param_id, mu.param_id);
        assert_string_equal(m.packing, mu.packing);
        codes_handle_delete(h);
        n++;
    }
    codes_grib_multi_support_reset_file(NULL, f);
    fclose(f);
    field_meta m;
    int done;
    assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
    assert_true(done);
    grib_reader_close(r);
    grib_reader_close(u);
    return n;
}

/* GRIB1 forecasts: the period is cached on the step keys (P1, P2, unitOfTimeRange,
 * timeRangeIndicator, parameter); instantaneous, accumulated, averaged, max, long (two-octet P1)
 * and day-unit steps at several reference times, repeated so that the cache is hit. */
static void test_grib1_steps(void **state)
{
    (void)state;
    struct {
        long tri, unit, p1, p2, param;
        const char *step_range; /* set through ecCodes instead of P1/P2 when given */
    } cases[] = {
        {0, 1, 0, 0, 167, NULL},   {0, 1, 6, 0, 167, NULL},  {0, 1, 12, 0, 167, NULL}, {4, 1, 0, 6, 228, NULL},
        {4, 1, 6, 12, 228, NULL},  {3, 1, 0, 24, 167, NULL}, {2, 1, 0, 6, 201, NULL},  {0, 2, 2, 0, 167, NULL},
        {0, 1, 0, 0, 167, "300"},  {4, 1, 0, 0, 228, "12-36"},
    };
    const long dates[3][2] = {{20190301, 0}, {20190302, 1200}, {20200228, 1800}};
    FILE *out = fopen("steps.grib", "wb");
    assert_non_null(out);
    for (int rep = 0; rep < 2; rep++)
        for (int di = 0; di < 3; di++)
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                codes_handle *h = codes_grib_handle_new_from_samples(NULL, "regular_ll_sfc_grib1");
                assert_non_null(h);
                assert_int_equal(codes_set_long(h, "dataDate", dates[di][0]), 0);
                assert_int_equal(codes_set_long(h, "dataTime", dates[di][1]), 0);
                assert_int_equal(codes_set_long(h, "indicatorOfParameter", cases[c].param), 0);
                assert_int_equal(codes_set_long(h, "timeRangeIndicator", cases[c].tri), 0);
                if (cases[c].step_range) {
                    size_t len = strlen(cases[c].step_range);
                    assert_int_equal(codes_set_string(h, "stepRange", cases[c].step_range, &len), 0);
                } else {
                    assert_int_equal(codes_set_long(h, "unitOfTimeRange", cases[c].unit), 0);
                    assert_int_equal(codes_set_long(h, "P1", cases[c].p1), 0);
                    assert_int_equal(codes_set_long(h, "P2", cases[c].p2), 0);
                }
                const void *msg;
                size_t len;
                assert_int_equal(codes_get_message(h, &msg, &len), 0);
                assert_int_equal(fwrite(msg, 1, len, out), len);
                codes_handle_delete(h);
            }
    fclose(out);
    assert_int_equal(check_times("steps.grib"), 60);
    remove("steps.grib");
}

/* A local definition that defines `number` only for some values (centre 214, local definition 1:
 * only when perturbationNumber != 0): the control first, then a perturbed member of the same
 * layout must still get its member number. */
static void test_value_dependent_number(void **state)
{
    (void)state;
    FILE *out = fopen("c214.grib", "wb");
    assert_non_null(out);
    const long pert[3] = {0, 5, 7};
    for (int k = 0; k < 3; k++) {
        codes_handle *h = codes_grib_handle_new_from_samples(NULL, "regular_ll_sfc_grib1");
        assert_non_null(h);
        assert_int_equal(codes_set_long(h, "centre", 214), 0);
        assert_int_equal(codes_set_long(h, "setLocalDefinition", 1), 0);
        assert_int_equal(codes_set_long(h, "localDefinitionNumber", 1), 0);
        assert_int_equal(codes_set_long(h, "perturbationNumber", pert[k]), 0);
        assert_int_equal(codes_set_long(h, "numberOfForecastsInEnsemble", 10), 0);
        const void *msg;
        size_t len;
        assert_int_equal(codes_get_message(h, &msg, &len), 0);
        assert_int_equal(fwrite(msg, 1, len, out), len);
        codes_handle_delete(h);
    }
    fclose(out);
    assert_int_equal(check_times("c214.grib"), 3);
    grib_reader *r;
    assert_int_equal(grib_reader_open("c214.grib", &r), SM_OK);
    const int want[3] = {-1, 5, 7};
    for (int k = 0; k < 3; k++) {
        field_meta m;
        int done;
        assert_int_equal(grib_reader_next(r, &m, &done), SM_OK);
        assert_int_equal(m.member, want[k]);
    }
    grib_reader_close(r);
    remove("c214.grib");
}

/* The same on the shared forecast and ensemble files. */
static void test_valid_time_against_eccodes(void **state)
{
    (void)state;
    const char *files[] = {"pygrib__gfs.grb", "cfgrib__era5-levels-members.grib", "cfgrib__regular_ll_msl.grib"};
    const int expect[] = {344, 160, 1};
    char path[1024];
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        if (!testutil_shared_data(files[k], path, sizeof path)) {
            testutil_skip_or_fail("shared data absent");
            return;
        }
        assert_int_equal(check_times(path), expect[k]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scanning_modes), cmocka_unit_test(test_bitmap), cmocka_unit_test(test_reduced_gg),
        cmocka_unit_test(test_not_grib),        cmocka_unit_test(test_shared_files), cmocka_unit_test(test_cache_matches_uncached),
        cmocka_unit_test(test_grib1_steps), cmocka_unit_test(test_value_dependent_number),
        cmocka_unit_test(test_valid_time_against_eccodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
