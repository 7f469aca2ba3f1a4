/* The evaluate session: model and baselines scored on one sample per lead and region, checked
 * against the same scores assembled by hand from the primitives; skipping and errors. */
#include "testutil.h"

#include "core/log.h"
#include "core/rng.h"
#include "eval/evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { H = 4, W = 5, HW = H * W };

typedef struct {
    int T;
    double *times;
    float *data;
} series;

static series make_series(uint64_t seed)
{
    series s;
    double t0 = eval_time_make(2013, 1, 1, 0, 0), t1 = eval_time_make(2015, 1, 1, 0, 0);
    s.T = (int)((t1 - t0) / 6.0);
    s.times = malloc((size_t)s.T * sizeof *s.times);
    s.data = malloc((size_t)s.T * HW * sizeof *s.data);
    rng_t rng;
    rng_seed(&rng, seed, 0);
    double a[HW] = {0};
    for (int t = 0; t < s.T; t++) {
        s.times[t] = t0 + 6.0 * t;
        double doy = eval_clim_doy(s.times[t]), hod = eval_hour_of_day(s.times[t]);
        for (int p = 0; p < HW; p++) {
            a[p] = 0.8 * a[p] + rng_normal(&rng);
            s.data[(size_t)t * HW + p] = (float)(280.0 + 10.0 * cos(2 * 3.14159265 * (doy - 20) / 366.0)
                                                  + (1.0 + 0.2 * p) * cos(2 * 3.14159265 * hod / 24.0) + a[p]);
        }
    }
    return s;
}

static void test_session_matches_primitives(void **state)
{
    (void)state;
    series s = make_series(4);
    double lat[H] = {60.0, 30.0, 0.0, -30.0};
    double wlat[H];
    eval_lat_weights(lat, H, wlat);
    float lsm[HW];
    for (int p = 0; p < HW; p++) lsm[p] = (float)(p % 3 == 0);
    eval_truth tr = {.times = s.times, .data = s.data, .T = s.T, .h = H, .w = W, .lat = lat,
                     .wlat = wlat, .lsm = lsm,
                     .train_start = eval_time_make(2013, 1, 1, 0, 0),
                     .train_end = eval_time_make(2013, 12, 31, 18, 0),
                     .clim = {.by_doy = 1, .window_days = 10, .by_hour = 1},
                     .damped_per_point = 1};
    const double leads[2] = {24.0, 72.0};
    const eval_region regions[3] = {EVAL_REGION_GLOBAL, EVAL_REGION_TROPICS, EVAL_REGION_LAND};
    eval_session *ses;
    assert_int_equal(eval_session_create(&tr, leads, 2, regions, 3, &ses), SM_OK);
    /* reference pieces from the primitives */
    int ntrain = 365 * 4;
    eval_clim *c;
    assert_int_equal(eval_clim_fit(s.times, s.data, ntrain, H, W, &tr.clim, &c), SM_OK);
    uint8_t masks[3][HW];
    for (int r = 0; r < 3; r++) eval_region_mask(regions[r], lat, lsm, H, W, masks[r]);
    eval_det_acc ref[EVAL_SRC_COUNT][2][3];
    for (int k = 0; k < EVAL_SRC_COUNT; k++)
        for (int l = 0; l < 2; l++)
            for (int r = 0; r < 3; r++) eval_det_init(&ref[k][l][r]);
    rng_t rng;
    rng_seed(&rng, 8, 1);
    float model[HW], f[EVAL_SRC_COUNT][HW], cv[HW];
    for (int l = 0; l < 2; l++) {
        double alpha[HW];
        assert_int_equal(eval_damped_fit(c, s.times, s.data, ntrain, H, W, wlat, leads[l], 1, alpha, NULL), SM_OK);
        for (int p = 0; p < HW; p++) assert_true(fabs(alpha[p] - eval_session_alpha(ses, l)[p]) < 1e-12);
        for (int t = ntrain; t < s.T; t += 3) { /* inits every 18 h through 2014 */
            double init = s.times[t];
            int kv = eval_time_index(s.times, s.T, init + leads[l]);
            int skipped;
            const float *obs = kv >= 0 ? s.data + (size_t)kv * HW : NULL;
            for (int p = 0; p < HW; p++)
                model[p] = obs ? (float)(obs[p] + 0.8 * rng_normal(&rng)) : 0.0f;
            if (t % 7 == 0) model[t % HW] = NAN;
            assert_int_equal(eval_session_add(ses, init, l, model, &skipped), SM_OK);
            assert_int_equal(skipped, kv < 0);
            if (kv < 0) continue;
            assert_int_equal(eval_persistence(s.times, s.data, s.T, H, W, init, f[EVAL_SRC_PERSISTENCE]), SM_OK);
            eval_clim_at(c, init + leads[l], f[EVAL_SRC_CLIMATOLOGY]);
            memcpy(cv, f[EVAL_SRC_CLIMATOLOGY], sizeof cv);
            assert_int_equal(eval_damped_forecast(c, alpha, 1, s.data + (size_t)t * HW, init, leads[l],
                                                  f[EVAL_SRC_DAMPED]), SM_OK);
            memcpy(f[EVAL_SRC_MODEL], model, sizeof model);
            for (int p = 0; p < HW; p++)
                if (isnan(model[p]))
                    for (int k = 1; k < EVAL_SRC_COUNT; k++) f[k][p] = NAN;
            for (int k = 0; k < EVAL_SRC_COUNT; k++)
                for (int r = 0; r < 3; r++)
                    eval_det_add(&ref[k][l][r], f[k], obs, cv, H, W, wlat, masks[r]);
        }
    }
    double out[EVAL_SRC_COUNT * 2 * 3 * EVAL_M_COUNT];
    long nfc[2];
    eval_session_finish(ses, out, nfc);
    assert_true(nfc[0] > 400 && nfc[1] > 400 && nfc[0] > nfc[1]);
    for (int k = 0; k < EVAL_SRC_COUNT; k++)
        for (int l = 0; l < 2; l++)
            for (int r = 0; r < 3; r++) {
                eval_det_result e;
                eval_det_finish(&ref[k][l][r], &e);
                const double *o = out + (((size_t)k * 2 + l) * 3 + r) * EVAL_M_COUNT;
                const double want[EVAL_M_COUNT] = {e.rmse, e.rmse_mean_fc, e.acc, e.bias, e.mae};
                for (int m = 0; m < EVAL_M_COUNT; m++) {
                    if (isnan(want[m]) && isnan(o[m])) continue;
                    if (!(fabs(o[m] - want[m]) <= 1e-9 * fmax(1.0, fabs(want[m]))))
                        fail_msg("%s %s lead %d region %s: %g vs %g", eval_source_name((eval_source)k),
                                 eval_metric_name((eval_metric)m), l, eval_region_name(regions[r]), o[m], want[m]);
                }
            }
    /* sanity of the ordering: model (noise 0.8) beats the baselines, damped persistence beats
     * persistence (AR(1) anomalies, phi = 0.8 per 6 h) and, at 24 h, the climatology;
     * the climatology has no ACC (zero anomaly) */
    for (int l = 0; l < 2; l++) {
        const double *mo = out + ((size_t)(0 * 2 + l) * 3) * EVAL_M_COUNT;
        const double *pe = out + ((size_t)(1 * 2 + l) * 3) * EVAL_M_COUNT;
        const double *cl = out + ((size_t)(2 * 2 + l) * 3) * EVAL_M_COUNT;
        const double *dp = out + ((size_t)(3 * 2 + l) * 3) * EVAL_M_COUNT;
        print_message("lead %gh: rmse model %.3f persistence %.3f climatology %.3f damped %.3f\n",
                      leads[l], mo[0], pe[0], cl[0], dp[0]);
        assert_true(mo[EVAL_M_RMSE] < dp[EVAL_M_RMSE] && dp[EVAL_M_RMSE] < pe[EVAL_M_RMSE]);
        if (l == 0) assert_true(dp[EVAL_M_RMSE] < cl[EVAL_M_RMSE]);
        assert_true(isnan(cl[EVAL_M_ACC]));
        assert_true(mo[EVAL_M_ACC] > dp[EVAL_M_ACC]);
    }
    /* an init outside the truth is skipped */
    int skipped = 0;
    assert_int_equal(eval_session_add(ses, eval_time_make(2020, 1, 1, 0, 0), 0, model, &skipped), SM_OK);
    assert_int_equal(skipped, 1);
    assert_int_equal(eval_session_add(ses, s.times[0], 5, model, &skipped), SM_ERR_USAGE);
    eval_session_free(ses);
    eval_clim_free(c);
    free(s.times);
    free(s.data);
}

static void test_session_errors(void **state)
{
    (void)state;
    series s = make_series(5);
    eval_truth tr = {.times = s.times, .data = s.data, .T = s.T, .h = H, .w = W,
                     .train_start = eval_time_make(1990, 1, 1, 0, 0),
                     .train_end = eval_time_make(1990, 12, 31, 0, 0),
                     .clim = {.by_doy = 0, .window_days = 0, .by_hour = 1}};
    const double lead = 24.0;
    eval_region g = EVAL_REGION_GLOBAL, trop = EVAL_REGION_TROPICS, land = EVAL_REGION_LAND;
    eval_session *ses;
    sm_clear_error();
    assert_int_equal(eval_session_create(&tr, &lead, 1, &g, 1, &ses), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "training period"));
    assert_null(ses);
    tr.train_start = s.times[0];
    tr.train_end = s.times[100];
    assert_int_equal(eval_session_create(&tr, &lead, 1, &trop, 1, &ses), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "latitudes"));
    assert_int_equal(eval_session_create(&tr, &lead, 1, &land, 1, &ses), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "land-sea mask"));
    const double long_lead = 24.0 * 400;
    assert_int_equal(eval_session_create(&tr, &long_lead, 1, &g, 1, &ses), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "no pair"));
    assert_int_equal(eval_session_create(&tr, &lead, 1, &g, 1, &ses), SM_OK);
    assert_string_equal(eval_source_name(EVAL_SRC_DAMPED), "damped_persistence");
    assert_string_equal(eval_metric_name(EVAL_M_RMSE_MEAN_FC), "rmse_mean_fc");
    eval_session_free(ses);
    free(s.times);
    free(s.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_matches_primitives),
        cmocka_unit_test(test_session_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
