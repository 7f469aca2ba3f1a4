/* Ensemble CRPS on the real ERA5 EDA members (../shared/data/cfgrib__era5-levels-members.grib):
 * the 9 perturbed members (number 1-9) against the control (number 0) as a stand-in
 * verification, for t and z at 850/500 hPa and 4 times, unweighted and latitude-weighted
 * means, standard and fair forms, against the numpy golden file scores_eda.nc (the file is read
 * here directly with ecCodes; in Python with cfgrib). Skipped without the shared data. */
#include "testutil.h"

#include "core/log.h"
#include "core/rng.h"
#include "eval/prob_scores.h"
#include "eval/scores.h"

#include <eccodes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NV = 2, NL = 2, NT = 4, NM = 10, NLAT = 61, NLON = 120, HW = NLAT * NLON };

static void test_eda_crps(void **state)
{
    (void)state;
    char buf[1024];
    const char *path = testutil_shared_data("cfgrib__era5-levels-members.grib", buf, sizeof buf);
    if (!path) {
        testutil_skip_or_fail("../shared/data/cfgrib__era5-levels-members.grib is absent");
        return;
    }
    float *f = calloc((size_t)NV * NL * NT * NM * HW, sizeof *f);
    long stamps[NT];
    int nstamps = 0, nmsg = 0, err = 0;
    double lat0 = NAN, lat1 = NAN;
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    codes_handle *h;
    double *vals = malloc(HW * sizeof *vals);
    while ((h = codes_handle_new_from_file(NULL, fp, PRODUCT_GRIB, &err)) != NULL) {
        char sn[32];
        size_t len = sizeof sn, n = HW;
        long level, number, date, time, ni, nj;
        assert_int_equal(codes_get_string(h, "shortName", sn, &len), 0);
        assert_int_equal(codes_get_long(h, "level", &level), 0);
        assert_int_equal(codes_get_long(h, "number", &number), 0);
        assert_int_equal(codes_get_long(h, "dataDate", &date), 0);
        assert_int_equal(codes_get_long(h, "dataTime", &time), 0);
        codes_get_long(h, "Ni", &ni);
        codes_get_long(h, "Nj", &nj);
        assert_true(ni == NLON && nj == NLAT);
        codes_get_double(h, "latitudeOfFirstGridPointInDegrees", &lat0);
        codes_get_double(h, "latitudeOfLastGridPointInDegrees", &lat1);
        int iv = strcmp(sn, "t") == 0 ? 0 : (strcmp(sn, "z") == 0 ? 1 : -1);
        int il = level == 850 ? 0 : (level == 500 ? 1 : -1);
        assert_true(iv >= 0 && il >= 0 && number >= 0 && number < NM);
        long stamp = date * 10000 + time;
        int it = -1;
        for (int k = 0; k < nstamps; k++)
            if (stamps[k] == stamp) it = k;
        if (it < 0) {
            assert_true(nstamps < NT);
            stamps[nstamps] = stamp;
            it = nstamps++;
        }
        assert_int_equal(codes_get_double_array(h, "values", vals, &n), 0);
        float *dst = f + ((((size_t)iv * NL + il) * NT + it) * NM + number) * HW;
        for (int k = 0; k < HW; k++) dst[k] = (float)vals[k];
        codes_handle_delete(h);
        nmsg++;
    }
    fclose(fp);
    free(vals);
    assert_int_equal(nmsg, NV * NL * NT * NM);
    /* times in ascending order (the file is; check) */
    for (int k = 1; k < NT; k++) assert_true(stamps[k] > stamps[k - 1]);
    double lat[NLAT], wlat[NLAT];
    for (int j = 0; j < NLAT; j++) lat[j] = lat0 + (lat1 - lat0) * j / (NLAT - 1);
    eval_lat_weights(lat, NLAT, wlat);
    float *g_crps = testutil_golden_load("scores_eda.nc", "crps", NULL, NULL, NULL);
    float *g_fair = testutil_golden_load("scores_eda.nc", "crps_fair", NULL, NULL, NULL);
    float *g_w = testutil_golden_load("scores_eda.nc", "crps_w", NULL, NULL, NULL);
    float *g_fw = testutil_golden_load("scores_eda.nc", "crps_fair_w", NULL, NULL, NULL);
    float *g_pt = testutil_golden_load("scores_eda.nc", "crps_point_t850_t0", NULL, NULL, NULL);
    float *crps = malloc(HW * sizeof *crps);
    rng_t rng;
    rng_seed(&rng, 1, 0);
    for (int iv = 0; iv < NV; iv++)
        for (int il = 0; il < NL; il++)
            for (int it = 0; it < NT; it++) {
                const float *e = f + (((size_t)iv * NL + il) * NT + it) * NM * HW;
                const float *y = e, *members = e + HW; /* control, perturbed 1..9 */
                size_t k = ((size_t)iv * NL + il) * NT + it;
                double m_std = 0.0, m_fair = 0.0;
                eval_crps_ens_field(members, NM - 1, y, HW, 0, crps);
                for (int p = 0; p < HW; p++) m_std += crps[p] / HW;
                if (iv == 0 && il == 0 && it == 0)
                    for (int p = 0; p < HW; p++)
                        if (fabs(crps[p] - g_pt[p]) > 1e-5 * fmax(1.0, fabs(g_pt[p])))
                            fail_msg("point %d: %g vs %g", p, crps[p], g_pt[p]);
                eval_crps_ens_field(members, NM - 1, y, HW, 1, crps);
                for (int p = 0; p < HW; p++) m_fair += crps[p] / HW;
                eval_prob_acc acc;
                assert_int_equal(eval_prob_init_ens(&acc, NM - 1), SM_OK);
                assert_int_equal(eval_prob_add_ens(&acc, members, y, NLAT, NLON, wlat, NULL, &rng, NULL), SM_OK);
                eval_prob_result r;
                eval_prob_finish(&acc, &r);
                eval_prob_free(&acc);
                const double tol = 1e-5;
                if (fabs(m_std - g_crps[k]) > tol * fabs(g_crps[k]) || fabs(m_fair - g_fair[k]) > tol * fabs(g_fair[k]) ||
                    fabs(r.crps - g_w[k]) > tol * fabs(g_w[k]) || fabs(r.crps_fair - g_fw[k]) > tol * fabs(g_fw[k]))
                    fail_msg("%s %d hPa time %d: CRPS %g/%g fair %g/%g weighted %g/%g fair weighted %g/%g",
                             iv ? "z" : "t", il ? 500 : 850, it, m_std, g_crps[k], m_fair, g_fair[k],
                             r.crps, g_w[k], r.crps_fair, g_fw[k]);
                if (it == 0)
                    print_message("%s %d hPa %ld: CRPS %.5g, fair %.5g, lat-weighted %.5g / %.5g\n",
                                  iv ? "z" : "t", il ? 500 : 850, stamps[it], m_std, m_fair, r.crps, r.crps_fair);
            }
    free(crps); free(f); free(g_crps); free(g_fair); free(g_w); free(g_fw); free(g_pt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eda_crps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
