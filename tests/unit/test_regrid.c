/* Regridding on synthetic fields: identity, linear fields under bilinear, conservation of the
 * area-weighted mean, NaN handling, 0-meridian crossing, row order, reduced grids, nearest. */
#include "testutil.h"

#include "core/log.h"
#include "grid/geometry.h"
#include "grid/grid.h"
#include "grid/regrid.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846
#define D2R (PI / 180.0)

static grid *load(const char *name)
{
    grid *g = NULL;
    if (grid_load(name, &g)) fail_msg("grid_load(%s): %s", name, sm_last_error());
    return g;
}

/* A regular geometry on the points of grid g (latitude descending like the grid, or ascending). */
static src_geometry *geom_of_grid(const grid *g, int ascending)
{
    double *lat = malloc((size_t)g->nlat * sizeof *lat);
    for (int j = 0; j < g->nlat; j++) lat[j] = ascending ? g->lat[g->nlat - 1 - j] : g->lat[j];
    src_geometry *s = NULL;
    assert_int_equal(geometry_create_regular(g->nlat, lat, g->nlon, g->lon[0], g->lon[1] - g->lon[0], &s), SM_OK);
    free(lat);
    return s;
}

static regrid_weights *weights(const src_geometry *s, const grid *g, regrid_method m)
{
    regrid_weights *w = NULL;
    int st = regrid_weights_create(s, g, m, &w);
    if (st) fail_msg("regrid_weights_create(%s -> %s): %s", regrid_method_name(m), g->name, sm_last_error());
    return w;
}

/* Fill src with f(lat, lon) at every geometry point. */
static double *sample(const src_geometry *s, double (*f)(double, double))
{
    double *v = malloc((size_t)geometry_npoints(s) * sizeof *v);
    for (int j = 0; j < s->nrows; j++)
        for (int i = 0; i < s->row_len[j]; i++)
            v[s->row_start[j] + i] = f(s->lat[j], s->lon0[j] + i * s->dlon[j]);
    return v;
}

static double wrap180(double lon)
{
    double x = fmod(lon + 180.0, 360.0);
    if (x < 0) x += 360.0;
    return x - 180.0;
}

static double f_linear(double lat, double lon) { return 2.0 * lat - 0.75 * wrap180(lon) + 280.0; }
static double f_smooth(double lat, double lon) { return 250 + 30 * cos(lat * D2R) + 5 * sin(2 * lon * D2R) * cos(lat * D2R); }
static double f_rough(double lat, double lon) { return sin(0.7 * lat + 0.3) * cos(1.3 * lon) + 0.01 * lat; }

static void test_method_names(void **state)
{
    (void)state;
    regrid_method m;
    assert_int_equal(regrid_method_parse("bilinear", &m), SM_OK);
    assert_int_equal(m, REGRID_BILINEAR);
    assert_int_equal(regrid_method_parse("conservative", &m), SM_OK);
    assert_int_equal(m, REGRID_CONSERVATIVE);
    assert_int_equal(regrid_method_parse("nearest", &m), SM_OK);
    assert_int_equal(m, REGRID_NEAREST);
    assert_int_equal(regrid_method_parse("cubic", &m), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "cubic"));
    assert_string_equal(regrid_method_name(REGRID_CONSERVATIVE), "conservative");
}

/* Onto the source's own grid: bilinear and nearest copy the values bit for bit, conservative to
 * rounding; also for an ascending source, whose rows are flipped. */
static void test_identity(void **state)
{
    (void)state;
    const char *names[] = {"wb5625", "era5_uk"};
    for (int k = 0; k < 2; k++) {
        grid *g = load(names[k]);
        for (int asc = 0; asc < 2; asc++) {
            src_geometry *s = geom_of_grid(g, asc);
            double *v = sample(s, f_rough);
            float *out = malloc((size_t)g->nlat * g->nlon * sizeof *out);
            for (int m = 0; m < 3; m++) {
                regrid_weights *w = weights(s, g, (regrid_method)m);
                regrid_apply(w, v, out);
                for (int j = 0; j < g->nlat; j++)
                    for (int i = 0; i < g->nlon; i++) {
                        int js = asc ? g->nlat - 1 - j : j;
                        float want = (float)v[(int64_t)js * g->nlon + i], got = out[j * g->nlon + i];
                        if (m == REGRID_CONSERVATIVE) {
                            if (fabsf(got - want) > 1e-6f * (1 + fabsf(want)))
                                fail_msg("%s conservative asc=%d (%d,%d): %g vs %g", names[k], asc, j, i, got, want);
                        } else if (got != want) {
                            fail_msg("%s %s asc=%d (%d,%d): %.9g vs %.9g", names[k], regrid_method_name(m), asc,
                                     j, i, got, want);
                        }
                    }
                if (m != REGRID_CONSERVATIVE) assert_int_equal(regrid_weights_nnz(w), g->nlat * g->nlon);
                regrid_weights_free(w);
            }
            free(out);
            free(v);
            geometry_free(s);
        }
        grid_free(g);
    }
}

/* A field linear in latitude and longitude is reproduced exactly by bilinear interpolation, from
 * a descending and from an ascending source, with identical results. */
static void test_bilinear_linear_field(void **state)
{
    (void)state;
    grid *g = load("uk050");
    int nlat = 41, nlon = 61; /* lat 40..80 step 1, lon -20..40 step 1 */
    double latd[41], lata[41];
    for (int j = 0; j < nlat; j++) {
        latd[j] = 80.0 - j;
        lata[j] = 40.0 + j;
    }
    src_geometry *sd = NULL, *sa = NULL;
    assert_int_equal(geometry_create_regular(nlat, latd, nlon, -20.0, 1.0, &sd), SM_OK);
    assert_int_equal(geometry_create_regular(nlat, lata, nlon, -20.0, 1.0, &sa), SM_OK);
    double *vd = sample(sd, f_linear), *va = sample(sa, f_linear);
    float od[17 * 25], oa[17 * 25];
    regrid_weights *wd = weights(sd, g, REGRID_BILINEAR), *wa = weights(sa, g, REGRID_BILINEAR);
    regrid_apply(wd, vd, od);
    regrid_apply(wa, va, oa);
    for (int j = 0; j < g->nlat; j++)
        for (int i = 0; i < g->nlon; i++) {
            double want = f_linear(g->lat[j], g->lon[i]);
            assert_true(fabs(od[j * g->nlon + i] - want) < 1e-4);
            assert_true(od[j * g->nlon + i] == oa[j * g->nlon + i]);
        }
    /* off-node points: a grid with 0.3 deg spacing, inside the source */
    double tlat[10], tlon[20];
    for (int j = 0; j < 10; j++) tlat[j] = 41.15 + 3.3 * j;
    for (int i = 0; i < 20; i++) tlon[i] = -19.85 + 2.9 * i;
    grid *t = NULL;
    assert_int_equal(grid_create_latlon("t", 10, tlat, 20, tlon, &t), SM_OK);
    regrid_weights *w = weights(sd, t, REGRID_BILINEAR);
    float o[200];
    regrid_apply(w, vd, o);
    for (int j = 0; j < 10; j++)
        for (int i = 0; i < 20; i++) {
            double want = f_linear(t->lat[j], t->lon[i]);
            if (fabs(o[j * 20 + i] - want) > 1e-4 * fabs(want))
                fail_msg("(%g, %g): %g vs %g", t->lat[j], t->lon[i], o[j * 20 + i], want);
        }
    regrid_weights_free(w);
    grid_free(t);
    regrid_weights_free(wd);
    regrid_weights_free(wa);
    free(vd);
    free(va);
    geometry_free(sd);
    geometry_free(sa);
    grid_free(g);
}

/* Source rows from 350 E eastwards across the 0 meridian to 20 E, targets given as -5..15 and
 * as 355..375; a source in -180..180 and one in 0..360 give the same answer. */
static void test_zero_meridian(void **state)
{
    (void)state;
    double lat[21];
    for (int j = 0; j < 21; j++) lat[j] = 60.0 - 0.5 * j;
    src_geometry *s360 = NULL, *s180 = NULL;
    assert_int_equal(geometry_create_regular(21, lat, 61, 350.0, 0.5, &s360), SM_OK);
    assert_int_equal(geometry_create_regular(21, lat, 61, -10.0, 0.5, &s180), SM_OK);
    double *v360 = sample(s360, f_linear), *v180 = sample(s180, f_linear);
    double tlat[4] = {58.3, 55.0, 52.25, 50.0};
    double tlon_a[6] = {-10.0, -4.9, -0.1, 0.0, 0.2, 19.9};
    double tlon_b[6] = {350.0, 355.1, 359.9, 360.0, 360.2, 379.9};
    grid *ga = NULL, *gb = NULL;
    assert_int_equal(grid_create_latlon("a", 4, tlat, 6, tlon_a, &ga), SM_OK);
    assert_int_equal(grid_create_latlon("b", 4, tlat, 6, tlon_b, &gb), SM_OK);
    float out[4][24];
    const src_geometry *srcs[2] = {s360, s180};
    const double *vals[2] = {v360, v180};
    const grid *grids[2] = {ga, gb};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            regrid_weights *w = weights(srcs[a], grids[b], REGRID_BILINEAR);
            regrid_apply(w, vals[a], out[2 * a + b]);
            regrid_weights_free(w);
        }
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 6; i++) {
            double want = f_linear(tlat[j], tlon_a[i]);
            for (int c = 0; c < 4; c++)
                if (!(fabs(out[c][j * 6 + i] - want) < 1e-4))
                    fail_msg("case %d (%g, %g): %g vs %g", c, tlat[j], tlon_a[i], out[c][j * 6 + i], want);
        }
    /* outside the limited-area source: NaN; entirely outside: an error */
    double olat[2] = {55.0, 70.0}, olon[2] = {0.0, 60.0};
    grid *go = NULL;
    assert_int_equal(grid_create_latlon("o", 2, olat, 2, olon, &go), SM_OK);
    float o[4];
    for (int m = 0; m < 3; m++) {
        regrid_weights *w = weights(s360, go, (regrid_method)m);
        regrid_apply(w, v360, o);
        assert_false(isnan(o[2]));  /* (55, 0) inside */
        assert_true(isnan(o[0]));   /* (70, 0) north of the domain */
        assert_true(isnan(o[1]) && isnan(o[3])); /* 60 E: east of the domain */
        regrid_weights_free(w);
    }
    double flat[1] = {-30.0}, flon[2] = {100.0, 110.0};
    grid *gf = NULL;
    assert_int_equal(grid_create_latlon("far", 1, flat, 2, flon, &gf), SM_OK);
    for (int m = 0; m < 3; m++) {
        regrid_weights *w = (regrid_weights *)1;
        assert_int_equal(regrid_weights_create(s360, gf, (regrid_method)m, &w), SM_ERR_IO);
        assert_null(w);
        assert_non_null(strstr(sm_last_error(), "far"));
    }
    grid_free(gf);
    grid_free(go);
    grid_free(ga);
    grid_free(gb);
    free(v360);
    free(v180);
    geometry_free(s360);
    geometry_free(s180);
}

/* A global source whose first point is at 0.5 E: targets at 0 E interpolate across the seam. */
static void test_periodic_wrap(void **state)
{
    (void)state;
    int nlat = 180, nlon = 360;
    double lat[180];
    for (int j = 0; j < nlat; j++) lat[j] = 89.5 - j;
    src_geometry *s = NULL;
    assert_int_equal(geometry_create_regular(nlat, lat, nlon, 0.5, 1.0, &s), SM_OK);
    assert_true(geometry_row_is_global(s, 0));
    double *v = sample(s, f_smooth);
    grid *g = load("wb5625");
    regrid_weights *w = weights(s, g, REGRID_BILINEAR);
    float *o = malloc((size_t)g->nlat * g->nlon * sizeof *o);
    regrid_apply(w, v, o);
    double maxerr = 0;
    for (int j = 0; j < g->nlat; j++)
        for (int i = 0; i < g->nlon; i++) {
            double e = fabs(o[j * g->nlon + i] - f_smooth(g->lat[j], g->lon[i]));
            if (e > maxerr) maxerr = e;
        }
    assert_true(maxerr < 0.01); /* second-order error of a smooth field at 1 deg */
    /* the seam point itself uses the last and the first column, half each */
    int64_t seam = 15 * g->nlon; /* row 15, lon 0 */
    double row_lat = g->lat[15];
    int jl = 0;
    while (lat[jl] > row_lat) jl++; /* lat[jl-1] > row_lat > lat[jl] */
    double t = (lat[jl - 1] - row_lat) / (lat[jl - 1] - lat[jl]);
    double a = 0.5 * (v[(jl - 1) * nlon + 359] + v[(jl - 1) * nlon + 0]);
    double b = 0.5 * (v[jl * nlon + 359] + v[jl * nlon + 0]);
    assert_true(fabs(o[seam] - ((1 - t) * a + t * b)) < 1e-4);
    free(o);
    regrid_weights_free(w);

    /* onto ens10, whose pole rows lie poleward of the source's outermost rows: pole-ward
     * interpolation towards the row mean keeps a constant field constant and leaves no NaN */
    for (int64_t k = 0; k < (int64_t)nlat * nlon; k++) v[k] = 7.25;
    grid *e = load("ens10");
    o = malloc((size_t)e->nlat * e->nlon * sizeof *o);
    for (int m = 0; m < 3; m++) {
        w = weights(s, e, (regrid_method)m);
        regrid_apply(w, v, o);
        for (int64_t k = 0; k < (int64_t)e->nlat * e->nlon; k++)
            if (!(fabsf(o[k] - 7.25f) < 1e-5f)) fail_msg("%s: point %lld is %g", regrid_method_name(m), (long long)k, o[k]);
        regrid_weights_free(w);
    }
    free(o);
    grid_free(e);
    grid_free(g);
    free(v);
    geometry_free(s);
}

/* A latitude band that is global in longitude (30 S .. 30 N) does not cover the polar caps. */
static void test_global_band(void **state)
{
    (void)state;
    double lat[61];
    for (int j = 0; j < 61; j++) lat[j] = 30.0 - j;
    src_geometry *s = NULL;
    assert_int_equal(geometry_create_regular(61, lat, 360, 0.0, 1.0, &s), SM_OK);
    assert_true(geometry_row_is_global(s, 0));
    double *v = sample(s, f_smooth);
    grid *g = load("wb5625");
    float *o = malloc((size_t)g->nlat * g->nlon * sizeof *o);
    for (int m = 0; m < 3; m++) {
        regrid_weights *w = weights(s, g, (regrid_method)m);
        regrid_apply(w, v, o);
        /* conservative: cells overlapping the band (edges at +-30.5) average over the covered part */
        double lim = m == REGRID_CONSERVATIVE ? 30.5 + 2.8125 : m == REGRID_NEAREST ? 30.5 : 30.0;
        for (int j = 0; j < g->nlat; j++)
            for (int i = 0; i < g->nlon; i++) {
                int inside = fabs(g->lat[j]) < lim;
                if (inside == isnan(o[j * g->nlon + i]))
                    fail_msg("%s (%g, %g): %g", regrid_method_name(m), g->lat[j], g->lon[i], o[j * g->nlon + i]);
            }
        regrid_weights_free(w);
    }
    free(o);
    grid_free(g);
    free(v);
    geometry_free(s);
}

static double cos_mean(const float *f, const grid *g)
{
    double s = 0, ws = 0;
    for (int j = 0; j < g->nlat; j++)
        for (int i = 0; i < g->nlon; i++) {
            s += g->area_weight[j] * f[j * g->nlon + i];
            ws += g->area_weight[j];
        }
    return s / ws;
}

/* Conservative coarsening keeps the area-weighted global mean (cell areas of equally spaced
 * cell-centred grids are exactly proportional to cos(lat)). */
static void test_conservative_mean(void **state)
{
    (void)state;
    const char *srcs[] = {"wb140625", "wb28125"};
    grid *dst = load("wb5625");
    float *o = malloc((size_t)dst->nlat * dst->nlon * sizeof *o);
    for (int k = 0; k < 2; k++) {
        grid *sg = load(srcs[k]);
        src_geometry *s = geom_of_grid(sg, k == 1);
        double *v = sample(s, f_rough);
        float *vf = malloc((size_t)geometry_npoints(s) * sizeof *vf);
        for (int64_t p = 0; p < geometry_npoints(s); p++) vf[p] = (float)v[p];
        for (int64_t p = 0; p < geometry_npoints(s); p++) v[p] = vf[p];
        /* the source's own cos-lat mean (rows in the order of the geometry) */
        double sm = 0, sw = 0;
        for (int j = 0; j < s->nrows; j++)
            for (int i = 0; i < s->row_len[j]; i++) {
                sm += cos(s->lat[j] * D2R) * v[s->row_start[j] + i];
                sw += cos(s->lat[j] * D2R);
            }
        regrid_weights *w = weights(s, dst, REGRID_CONSERVATIVE);
        regrid_apply(w, v, o);
        double m = cos_mean(o, dst);
        if (fabs(m - sm / sw) > 1e-6 * (1 + fabs(sm / sw))) fail_msg("%s: mean %.9g vs %.9g", srcs[k], m, sm / sw);
        regrid_weights_free(w);
        free(vf);
        free(v);
        geometry_free(s);
        grid_free(sg);
    }
    /* a non-nested source (1 deg cell centres offset by 0.5 deg in longitude) */
    double lat[180];
    for (int j = 0; j < 180; j++) lat[j] = -89.5 + j;
    src_geometry *s = NULL;
    assert_int_equal(geometry_create_regular(180, lat, 360, -179.5, 1.0, &s), SM_OK);
    double *v = sample(s, f_smooth);
    double sm = 0, sw = 0;
    for (int j = 0; j < 180; j++)
        for (int i = 0; i < 360; i++) {
            sm += cos(lat[j] * D2R) * v[j * 360 + i];
            sw += cos(lat[j] * D2R);
        }
    regrid_weights *w = weights(s, dst, REGRID_CONSERVATIVE);
    regrid_apply(w, v, o);
    assert_true(fabs(cos_mean(o, dst) - sm / sw) < 1e-6 * fabs(sm / sw));
    /* a constant stays constant */
    for (int k = 0; k < 180 * 360; k++) v[k] = 3.0;
    regrid_apply(w, v, o);
    for (int k = 0; k < dst->nlat * dst->nlon; k++) assert_true(fabsf(o[k] - 3.0f) < 1e-6f);
    regrid_weights_free(w);
    free(v);
    geometry_free(s);
    free(o);
    grid_free(dst);
}

/* Missing source values: dropped, the remaining weights renormalised, NaN where none is valid. */
static void test_nan_handling(void **state)
{
    (void)state;
    double lat[3] = {2, 1, 0};
    src_geometry *s = NULL;
    assert_int_equal(geometry_create_regular(3, lat, 3, 10.0, 1.0, &s), SM_OK);
    /* values row-major: lat 2: 0 1 2 / lat 1: 3 4 5 / lat 0: 6 7 8 */
    double v[9] = {0, 1, 2, 3, NAN, 5, 6, 7, 8};
    double tlat[2] = {1.5, 1.0}, tlon[3] = {10.5, 11.0, 11.25};
    grid *g = NULL;
    assert_int_equal(grid_create_latlon("t", 2, tlat, 3, tlon, &g), SM_OK);
    regrid_weights *w = weights(s, g, REGRID_BILINEAR);
    float o[6];
    regrid_apply(w, v, o);
    /* (1.5, 10.5): neighbours 0, 1, 3, NaN with weight 1/4 each -> mean of 0, 1, 3 */
    assert_true(fabsf(o[0] - 4.0f / 3.0f) < 1e-6f);
    /* (1.5, 11.0): neighbours 1 and NaN, half each -> 1 */
    assert_true(fabsf(o[1] - 1.0f) < 1e-6f);
    /* (1.0, 11.0): exactly the NaN point -> NaN */
    assert_true(isnan(o[4]));
    /* (1.0, 11.25): NaN (0.75) and 5 (0.25) -> 5 */
    assert_true(fabsf(o[5] - 5.0f) < 1e-6f);
    /* (1.0, 10.5): 3 and NaN -> 3 */
    assert_true(fabsf(o[3] - 3.0f) < 1e-6f);
    /* all NaN -> NaN everywhere, for every method */
    double allnan[9];
    for (int k = 0; k < 9; k++) allnan[k] = NAN;
    for (int m = 0; m < 3; m++) {
        regrid_weights *wm = weights(s, g, (regrid_method)m);
        regrid_apply(wm, allnan, o);
        for (int k = 0; k < 6; k++) assert_true(isnan(o[k]));
        regrid_weights_free(wm);
    }
    /* conservative: the NaN cell is dropped and the area weights renormalised; the target cells
     * around (1, 11) and (1, 11.25) lie inside the NaN cell and stay NaN */
    regrid_weights *wc = weights(s, g, REGRID_CONSERVATIVE);
    regrid_apply(wc, v, o);
    for (int k = 0; k < 6; k++) assert_true(k >= 4 ? isnan(o[k]) : !isnan(o[k]));
    /* (1.5, 10.5): cell [1.25, 1.75] x [10.25, 10.75] overlaps 0, 1, 3 and the NaN cell */
    assert_true(o[0] > 0.0f && o[0] < 3.0f);
    regrid_weights_free(wc);
    regrid_weights_free(w);
    grid_free(g);
    geometry_free(s);
}

/* A reduced (octahedral-like) Gaussian-style geometry: rows of 20 + 4k points. */
static src_geometry *reduced_geometry(int nhalf)
{
    int n = 2 * nhalf;
    double *lat = malloc((size_t)n * sizeof *lat), *l0 = calloc((size_t)n, sizeof *l0),
           *dl = malloc((size_t)n * sizeof *dl);
    int *len = malloc((size_t)n * sizeof *len);
    for (int j = 0; j < n; j++) {
        lat[j] = 90.0 - 180.0 * (j + 0.5) / n + 0.2 * sin(j); /* unequally spaced */
        int k = j < nhalf ? j : n - 1 - j;
        len[j] = 20 + 4 * k;
        dl[j] = 360.0 / len[j];
    }
    src_geometry *s = NULL;
    assert_int_equal(geometry_create_rows(n, lat, len, l0, dl, &s), SM_OK);
    free(lat);
    free(l0);
    free(dl);
    free(len);
    return s;
}

static double f_lat(double lat, double lon)
{
    (void)lon;
    return 3.0 * lat + 1.0;
}

static void test_reduced_grid(void **state)
{
    (void)state;
    src_geometry *s = reduced_geometry(48);
    assert_false(s->is_regular);
    grid *g = load("wb5625");
    float *o = malloc((size_t)g->nlat * g->nlon * sizeof *o);
    /* a field linear in latitude only is exact (the rows' own interpolation is exact) */
    double *v = sample(s, f_lat);
    regrid_weights *w = weights(s, g, REGRID_BILINEAR);
    regrid_apply(w, v, o);
    for (int j = 0; j < g->nlat; j++)
        for (int i = 0; i < g->nlon; i++)
            if (!(fabs(o[j * g->nlon + i] - f_lat(g->lat[j], 0)) < 1e-3))
                fail_msg("(%g, %g): %g vs %g", g->lat[j], g->lon[i], o[j * g->nlon + i], f_lat(g->lat[j], 0));
    free(v);
    /* a smooth field: close to the analytic values */
    v = sample(s, f_smooth);
    regrid_apply(w, v, o);
    double maxerr = 0;
    for (int j = 0; j < g->nlat; j++)
        for (int i = 0; i < g->nlon; i++) maxerr = fmax(maxerr, fabs(o[j * g->nlon + i] - f_smooth(g->lat[j], g->lon[i])));
    assert_true(maxerr < 0.5); /* field range 30 K, grid spacing about 1.9 deg and coarser near the poles */
    regrid_weights_free(w);
    /* conservative from a reduced grid keeps a constant ... */
    w = weights(s, g, REGRID_CONSERVATIVE);
    for (int64_t k = 0; k < geometry_npoints(s); k++) v[k] = -2.5;
    regrid_apply(w, v, o);
    for (int k = 0; k < g->nlat * g->nlon; k++) assert_true(fabsf(o[k] + 2.5f) < 1e-6f);
    /* ... and the area integral: source cells are the rows' latitude bands (edges halfway between
     * rows, the outer ones at the poles) split into row_len equal sectors */
    free(v);
    v = sample(s, f_rough);
    regrid_apply(w, v, o);
    double src_int = 0, dst_int = 0;
    for (int j = 0; j < s->nrows; j++) {
        double n_edge = j == 0 ? 90.0 : 0.5 * (s->lat[j - 1] + s->lat[j]);
        double s_edge = j == s->nrows - 1 ? -90.0 : 0.5 * (s->lat[j] + s->lat[j + 1]);
        double area = (sin(n_edge * D2R) - sin(s_edge * D2R)) * 2 * PI / s->row_len[j];
        for (int i = 0; i < s->row_len[j]; i++) src_int += area * v[s->row_start[j] + i];
    }
    for (int j = 0; j < g->nlat; j++) {
        double area = (sin((g->lat[j] + 2.8125) * D2R) - sin((g->lat[j] - 2.8125) * D2R)) * 2 * PI / g->nlon;
        for (int i = 0; i < g->nlon; i++) dst_int += area * o[j * g->nlon + i];
    }
    if (fabs(dst_int - src_int) > 1e-6 * 4 * PI) fail_msg("integral %.9g vs %.9g", dst_int, src_int);
    regrid_weights_free(w);
    free(v);
    free(o);
    grid_free(g);
    geometry_free(s);
}

/* Nearest neighbour returns source values only (categorical fields), the closest one. */
static void test_nearest(void **state)
{
    (void)state;
    double lat[4] = {60, 59, 58, 57};
    src_geometry *s = NULL;
    assert_int_equal(geometry_create_regular(4, lat, 5, -2.0, 1.0, &s), SM_OK);
    double v[20];
    for (int k = 0; k < 20; k++) v[k] = 10 * (k / 5) + k % 5; /* category 10 * row + column */
    double tlat[3] = {59.4, 58.4, 56.6}, tlon[5] = {-2.4, -0.4, 0.3, 2.45, 2.6};
    grid *g = NULL;
    assert_int_equal(grid_create_latlon("t", 3, tlat, 5, tlon, &g), SM_OK);
    regrid_weights *w = weights(s, g, REGRID_NEAREST);
    float o[15];
    regrid_apply(w, v, o);
    const int rows[3] = {1, 2, 3}, cols[4] = {0, 2, 2, 4};
    for (int j = 0; j < 3; j++) {
        for (int i = 0; i < 4; i++)
            if (o[j * 5 + i] != (float)(10 * rows[j] + cols[i]))
                fail_msg("(%g, %g): %g, want %d", tlat[j], tlon[i], o[j * 5 + i], 10 * rows[j] + cols[i]);
        assert_true(isnan(o[j * 5 + 4])); /* 2.6 E is more than half a cell east of the last column */
    }
    regrid_weights_free(w);
    grid_free(g);
    geometry_free(s);
}

/* grid_from_geometry: the native grid of a regular ascending source, regridded onto exactly. */
static void test_native_grid(void **state)
{
    (void)state;
    double lat[3] = {-1, 0, 1};
    src_geometry *s = NULL;
    assert_int_equal(geometry_create_regular(3, lat, 4, 350.0, 5.0, &s), SM_OK);
    grid *g = NULL;
    assert_int_equal(grid_from_geometry(s, "native", &g), SM_OK);
    assert_int_equal(g->nlat, 3);
    assert_true(g->lat[0] == 1.0 && g->lon[0] == 350.0 && g->lon[3] == 365.0);
    double v[12];
    for (int k = 0; k < 12; k++) v[k] = k;
    regrid_weights *w = weights(s, g, REGRID_BILINEAR);
    float o[12];
    regrid_apply(w, v, o);
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 4; i++) assert_true(o[j * 4 + i] == (float)v[(2 - j) * 4 + i]);
    regrid_weights_free(w);
    grid_free(g);
    geometry_free(s);
    s = reduced_geometry(4);
    assert_int_equal(grid_from_geometry(s, "native", &g), SM_ERR_IO);
    geometry_free(s);
    /* x/y grids are not regridding targets */
    grid *h = load("heat64");
    assert_int_equal(geometry_create_regular(3, lat, 4, 0.0, 5.0, &s), SM_OK);
    regrid_weights *wx = NULL;
    assert_int_equal(regrid_weights_create(s, h, REGRID_BILINEAR, &wx), SM_ERR_USAGE);
    geometry_free(s);
    grid_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_names),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_bilinear_linear_field),
        cmocka_unit_test(test_zero_meridian),
        cmocka_unit_test(test_periodic_wrap),
        cmocka_unit_test(test_global_band),
        cmocka_unit_test(test_conservative_mean),
        cmocka_unit_test(test_nan_handling),
        cmocka_unit_test(test_reduced_grid),
        cmocka_unit_test(test_nearest),
        cmocka_unit_test(test_native_grid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
