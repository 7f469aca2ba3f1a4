/* Grid definitions: every shipped grid loads with the right sizes, first/last coordinates and
 * periodicity; cos-lat weights; lookup through SMOECAST_GRID_PATH; error cases. */
#include "testutil.h"

#include "core/log.h"
#include "grid/geometry.h"
#include "grid/grid.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

typedef struct {
    const char *name;
    int kind, nlat, nlon, periodic;
    double lat0, lat1, lon0, lon1;
} expect;

static const expect EXPECTED[] = {
    {"wb5625", GRID_LATLON, 32, 64, 1, 87.1875, -87.1875, 0.0, 354.375},
    {"wb28125", GRID_LATLON, 64, 128, 1, 88.59375, -88.59375, 0.0, 357.1875},
    {"wb140625", GRID_LATLON, 128, 256, 1, 89.296875, -89.296875, 0.0, 358.59375},
    {"ens10", GRID_LATLON, 361, 720, 1, 90.0, -90.0, 0.0, 359.5},
    {"era5_uk", GRID_LATLON, 33, 49, 0, 58.0, 50.0, -10.0, 2.0},
    {"uk050", GRID_LATLON, 17, 25, 0, 58.0, 50.0, -10.0, 2.0},
    {"heat64", GRID_XY, 64, 64, 0, 0.9921875, 0.0078125, 0.0078125, 0.9921875},
};

static void test_every_shipped_grid(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof EXPECTED / sizeof *EXPECTED; k++) {
        const expect *e = &EXPECTED[k];
        grid *g = NULL;
        int st = grid_load(e->name, &g);
        if (st) fail_msg("grid_load(%s): %s", e->name, sm_last_error());
        assert_string_equal(g->name, e->name);
        assert_int_equal(g->kind, e->kind);
        assert_int_equal(g->nlat, e->nlat);
        assert_int_equal(g->nlon, e->nlon);
        assert_int_equal(g->periodic_lon, e->periodic);
        assert_true(fabs(g->lat[0] - e->lat0) < 1e-9);
        assert_true(fabs(g->lat[g->nlat - 1] - e->lat1) < 1e-9);
        assert_true(fabs(g->lon[0] - e->lon0) < 1e-9);
        assert_true(fabs(g->lon[g->nlon - 1] - e->lon1) < 1e-9);
        for (int j = 1; j < g->nlat; j++) assert_true(g->lat[j] < g->lat[j - 1]); /* north -> south */
        for (int i = 1; i < g->nlon; i++) assert_true(g->lon[i] > g->lon[i - 1]);
        /* equal spacing */
        double dy = g->lat[0] - g->lat[1], dx = g->lon[1] - g->lon[0];
        for (int j = 1; j < g->nlat; j++) assert_true(fabs(g->lat[j - 1] - g->lat[j] - dy) < 1e-9);
        for (int i = 1; i < g->nlon; i++) assert_true(fabs(g->lon[i] - g->lon[i - 1] - dx) < 1e-9);
        grid_free(g);
    }
}

static void test_load_by_path_equals_by_name(void **state)
{
    (void)state;
    char path[1024];
    testutil_source_path("grids/uk050.yaml", path, sizeof path);
    grid *a = NULL, *b = NULL;
    assert_int_equal(grid_load(path, &a), SM_OK);
    assert_int_equal(grid_load("uk050", &b), SM_OK);
    assert_true(grid_same(a, b));
    assert_string_equal(a->name, "uk050");
    grid *c = NULL;
    assert_int_equal(grid_load("era5_uk", &c), SM_OK);
    assert_false(grid_same(a, c));
    grid_free(a);
    grid_free(b);
    grid_free(c);
}

static void test_coslat_weights(void **state)
{
    (void)state;
    const char *names[] = {"wb5625", "wb28125", "wb140625", "ens10", "era5_uk", "uk050"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        grid *g = NULL;
        assert_int_equal(grid_load(names[k], &g), SM_OK);
        double mean = 0;
        for (int j = 0; j < g->nlat; j++) mean += g->area_weight[j];
        mean /= g->nlat;
        assert_true(fabs(mean - 1.0) < 1e-12);
        /* proportional to cos(lat) */
        for (int j = 0; j < g->nlat; j++) {
            double r = g->area_weight[j] / g->area_weight[g->nlat / 2];
            double c = cos(g->lat[j] * PI / 180) / cos(g->lat[g->nlat / 2] * PI / 180);
            assert_true(fabs(r - c) < 1e-12);
        }
        if (g->periodic_lon) /* global grids are symmetric about the equator */
            for (int j = 0; j < g->nlat; j++)
                assert_true(fabs(g->area_weight[j] - g->area_weight[g->nlat - 1 - j]) < 1e-12);
        grid_free(g);
    }
    grid *g = NULL;
    assert_int_equal(grid_load("ens10", &g), SM_OK);
    assert_true(fabs(g->area_weight[0]) < 1e-12); /* the pole row has zero area */
    grid_free(g);
    assert_int_equal(grid_load("heat64", &g), SM_OK);
    for (int j = 0; j < g->nlat; j++) assert_true(g->area_weight[j] == 1.0);
    grid_free(g);
}

static void test_unknown_grid(void **state)
{
    (void)state;
    grid *g = (grid *)1;
    assert_int_equal(grid_load("no_such_grid", &g), SM_ERR_IO);
    assert_null(g);
    const char *msg = sm_last_error();
    assert_non_null(strstr(msg, "no_such_grid"));
    assert_non_null(strstr(msg, "wb5625"));
    assert_non_null(strstr(msg, "uk050"));
    assert_int_equal(grid_load("/nonexistent/dir/g.yaml", &g), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "/nonexistent/dir/g.yaml"));
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_grid_path_and_bad_definitions(void **state)
{
    (void)state;
    char dir[512], path[1024];
    testutil_tmpdir("grid", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/tiny.yaml", dir);
    write_file(path, "name: tiny\ntype: latlon\nlat: {first: -10, last: 10, increment: 5}\n"
                     "lon: {first: 350, last: 370, increment: 10}\n");
    char gp[1100];
    snprintf(gp, sizeof gp, "/nonexistent/grids:%s", dir); /* a colon-separated list, searched in order */
    setenv("SMOECAST_GRID_PATH", gp, 1);
    grid *g = NULL;
    int st = grid_load("tiny", &g);
    if (st) fail_msg("%s", sm_last_error());
    assert_int_equal(g->nlat, 5);
    assert_int_equal(g->nlon, 3);
    assert_true(g->lat[0] == 10.0 && g->lat[4] == -10.0); /* ascending input stored descending */
    assert_int_equal(g->periodic_lon, 0);
    grid_free(g);
    /* the environment directory wins over the source tree */
    snprintf(path, sizeof path, "%s/uk050.yaml", dir);
    write_file(path, "type: global_cell_centred\nresolution: 90\n");
    assert_int_equal(grid_load("uk050", &g), SM_OK);
    assert_int_equal(g->nlat, 2);
    assert_int_equal(g->nlon, 4);
    assert_int_equal(g->periodic_lon, 1);
    grid_free(g);
    unsetenv("SMOECAST_GRID_PATH");

    struct {
        const char *text, *needle;
    } bad[] = {
        {"type: latlon\nlat: {first: 0, last: 10, increment: 3}\nlon: {first: 0, last: 1, increment: 1}\n",
         "whole number"},
        {"type: latlon\nlat: {first: 0, last: 10, increment: 5}\nlon: {first: 0, last: 1, increment: 1}\nfoo: 1\n",
         "unknown key 'foo'"},
        {"type: latlon\nlat: {first: 0, last: 10, increment: 5}\n", "'lon'"},
        {"type: hexagons\n", "unknown grid type"},
        {"type: global_cell_centred\nresolution: 7\n", "divide 180"},
        {"type: latlon\nlat: {first: 0, last: 100, increment: 5}\nlon: {first: 0, last: 1, increment: 1}\n",
         "-90..90"},
        {"type: latlon\nlat: {first: 0, last: 10, increment: -5}\nlon: {first: 0, last: 1, increment: 1}\n",
         "> 0"},
        {"type: latlon\nlat: {first: 0, last: x, increment: 5}\nlon: {first: 0, last: 1, increment: 1}\n",
         "must be a number"},
        {"type: latlon\nlat: [unclosed\n", ".yaml:"}, /* not YAML: file and line */
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        snprintf(path, sizeof path, "%s/bad%zu.yaml", dir, k);
        write_file(path, bad[k].text);
        g = (grid *)1;
        st = grid_load(path, &g);
        assert_int_not_equal(st, SM_OK);
        assert_null(g);
        if (!strstr(sm_last_error(), bad[k].needle) || !strstr(sm_last_error(), path))
            fail_msg("case %zu: message '%s' lacks '%s' or the path", k, sm_last_error(), bad[k].needle);
    }
}

static void test_create_latlon(void **state)
{
    (void)state;
    double lat[3] = {-1, 0, 1}, lon[4] = {0, 90, 180, 270};
    grid *g = NULL;
    assert_int_equal(grid_create_latlon("t", 3, lat, 4, lon, &g), SM_OK);
    assert_true(g->lat[0] == 1 && g->lat[2] == -1);
    assert_int_equal(g->periodic_lon, 1);
    grid_free(g);
    double badlat[3] = {0, 1, 0.5};
    assert_int_equal(grid_create_latlon("t", 3, badlat, 4, lon, &g), SM_ERR_USAGE);
    double badlon[4] = {0, 90, 80, 270};
    assert_int_equal(grid_create_latlon("t", 3, lat, 4, badlon, &g), SM_ERR_USAGE);
}

static void test_geometry(void **state)
{
    (void)state;
    double lat[3] = {10, 0, -10};
    src_geometry *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(geometry_create_regular(3, lat, 36, -10.0, 10.0, &a), SM_OK);
    assert_int_equal(geometry_npoints(a), 108);
    assert_true(a->is_regular);
    assert_true(geometry_row_is_global(a, 1));
    assert_int_equal(geometry_create_regular(3, lat, 36, 350.0, 10.0, &b), SM_OK);
    assert_true(geometry_same(a, b));
    int len[3] = {4, 8, 4};
    double l0[3] = {0, 0, 0}, dl[3] = {90, 45, 90};
    assert_int_equal(geometry_create_rows(3, lat, len, l0, dl, &c), SM_OK);
    assert_false(c->is_regular);
    assert_int_equal(c->row_start[2], 12);
    assert_int_equal(geometry_npoints(c), 16);
    assert_false(geometry_same(a, c));
    geometry_free(a);
    geometry_free(b);
    geometry_free(c);
    assert_int_equal(geometry_create_regular(3, lat, 10, 0.0, 1.0, &a), SM_OK);
    assert_false(geometry_row_is_global(a, 0));
    geometry_free(a);
    /* GRIB1 millidegree rounding: 2560 points from 0 to 359.859 are a global row, snapped to 360/n */
    assert_int_equal(geometry_create_regular(3, lat, 2560, 0.0, 359.859 / 2559, &a), SM_OK);
    assert_true(geometry_row_is_global(a, 0));
    assert_true(a->dlon[0] == 360.0 / 2560);
    geometry_free(a);
    /* one column short of the circle stays a limited-area row */
    assert_int_equal(geometry_create_regular(3, lat, 359, 0.0, 1.0, &a), SM_OK);
    assert_false(geometry_row_is_global(a, 0));
    assert_true(a->dlon[0] == 1.0);
    geometry_free(a);
    double badlat[3] = {10, 20, 0};
    assert_int_not_equal(geometry_create_regular(3, badlat, 10, 0.0, 1.0, &a), SM_OK);
    assert_null(a);
    assert_int_not_equal(geometry_create_regular(3, lat, 10, 0.0, 0.0, &a), SM_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_shipped_grid),
        cmocka_unit_test(test_load_by_path_equals_by_name),
        cmocka_unit_test(test_coslat_weights),
        cmocka_unit_test(test_unknown_grid),
        cmocka_unit_test(test_grid_path_and_bad_definitions),
        cmocka_unit_test(test_create_latlon),
        cmocka_unit_test(test_geometry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
