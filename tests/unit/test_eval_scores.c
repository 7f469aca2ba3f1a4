/* Deterministic scores and region masks: numpy golden cases (scores_det.nc), perfect
 * forecasts, NaN handling, both RMSE forms, masks. */
#include "testutil.h"

#include "core/log.h"
#include "core/rng.h"
#include "eval/regions.h"
#include "eval/scores.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void assert_close(double a, double b, double rtol, const char *what)
{
    if (!(fabs(a - b) <= rtol * fmax(1.0, fabs(b))))
        fail_msg("%s: got %.10g, expected %.10g", what, a, b);
}

static void test_golden(void **state)
{
    (void)state;
    size_t n, shape[8];
    int nd;
    float *f = testutil_golden_load("scores_det.nc", "f", &n, &nd, shape);
    float *o = testutil_golden_load("scores_det.nc", "o", NULL, NULL, NULL);
    float *c = testutil_golden_load("scores_det.nc", "clim", NULL, NULL, NULL);
    float *latf = testutil_golden_load("scores_det.nc", "lat", NULL, NULL, NULL);
    float *lsm = testutil_golden_load("scores_det.nc", "lsm", NULL, NULL, NULL);
    float *exp_ = testutil_golden_load("scores_det.nc", "expected", NULL, NULL, NULL);
    assert_int_equal(nd, 3);
    int nf = (int)shape[0], h = (int)shape[1], w = (int)shape[2];
    double lat[64], wlat[64];
    for (int i = 0; i < h; i++) lat[i] = latf[i];
    eval_lat_weights(lat, h, wlat);
    uint8_t *mask = malloc((size_t)h * w);
    const eval_region regions[3] = {EVAL_REGION_GLOBAL, EVAL_REGION_TROPICS, EVAL_REGION_LAND};
    for (int r = 0; r < 3; r++) {
        assert_int_equal(eval_region_mask(regions[r], lat, lsm, h, w, mask), SM_OK);
        eval_det_result res;
        eval_det_scores(f, o, c, nf, h, w, wlat, r == 0 ? NULL : mask, &res);
        const float *e = exp_ + r * 5;
        assert_close(res.rmse, e[0], 1e-5, "rmse");
        assert_close(res.rmse_mean_fc, e[1], 1e-5, "rmse_mean_fc");
        assert_close(res.bias, e[2], 1e-5, "bias");
        assert_close(res.mae, e[3], 1e-5, "mae");
        assert_close(res.acc, e[4], 1e-5, "acc");
        assert_true(res.rmse_mean_fc <= res.rmse + 1e-12); /* Jensen: mean of roots <= root of mean */
    }
    free(mask); free(f); free(o); free(c); free(latf); free(lsm); free(exp_);
}

static void test_perfect_and_constant(void **state)
{
    (void)state;
    enum { N = 3, H = 4, W = 5 };
    float o[N * H * W], c[N * H * W], f[N * H * W];
    rng_t rng;
    rng_seed(&rng, 1, 0);
    for (int k = 0; k < N * H * W; k++) {
        o[k] = (float)(250.0 + 10.0 * rng_normal(&rng));
        c[k] = (float)(250.0 + 5.0 * rng_normal(&rng));
    }
    double wl[H] = {0.5, 1.2, 1.3, 1.0};
    eval_det_result r;
    eval_det_scores(o, o, c, N, H, W, wl, NULL, &r);
    assert_true(r.rmse == 0.0 && r.rmse_mean_fc == 0.0 && r.bias == 0.0 && r.mae == 0.0);
    assert_close(r.acc, 1.0, 1e-12, "ACC of a perfect forecast");
    assert_int_equal(r.n_forecasts, N);
    assert_int_equal(r.n_acc, N);
    /* forecast = obs + constant: ACC still 1 (anomalies are centred), bias = constant */
    for (int k = 0; k < N * H * W; k++) f[k] = o[k] + 2.0f;
    eval_det_scores(f, o, c, N, H, W, wl, NULL, &r);
    assert_close(r.acc, 1.0, 1e-9, "ACC invariant to a constant shift");
    assert_close(r.bias, 2.0, 1e-5, "bias");
    assert_close(r.rmse, 2.0, 1e-5, "rmse");
    /* anti-correlated anomaly: ACC = -1 */
    for (int k = 0; k < N * H * W; k++) f[k] = 2.0f * c[k] - o[k];
    eval_det_scores(f, o, c, N, H, W, NULL, NULL, &r);
    assert_close(r.acc, -1.0, 1e-5, "ACC of a reversed anomaly");
    /* no climatology: ACC is NaN, the rest defined */
    eval_det_scores(f, o, NULL, N, H, W, NULL, NULL, &r);
    assert_true(isnan(r.acc) && r.n_acc == 0 && !isnan(r.rmse));
}

static void test_rmse_forms_differ(void **state)
{
    (void)state;
    /* two forecasts of 1 point, errors 1 and 3: headline sqrt((1+9)/2), per-forecast mean 2 */
    float f[2] = {1.0f, 3.0f}, o[2] = {0.0f, 0.0f};
    eval_det_result r;
    eval_det_scores(f, o, NULL, 2, 1, 1, NULL, NULL, &r);
    assert_close(r.rmse, sqrt(5.0), 1e-12, "headline");
    assert_close(r.rmse_mean_fc, 2.0, 1e-12, "mean of per-forecast");
    assert_close(r.mae, 2.0, 1e-12, "mae");
}

static void test_nan_and_weights(void **state)
{
    (void)state;
    /* 2 rows x 2 cols, row weights 3 and 1 */
    double wl[2] = {3.0, 1.0};
    float f[4] = {1.0f, NAN, 2.0f, 4.0f};
    float o[4] = {0.0f, 0.0f, 0.0f, NAN};
    /* valid: (0,0) err 1 w 3; (1,0) err 2 w 1 -> mse = (3*1 + 1*4) / 4 */
    eval_det_result r;
    eval_det_scores(f, o, NULL, 1, 2, 2, wl, NULL, &r);
    assert_close(r.rmse, sqrt(7.0 / 4.0), 1e-12, "weighted NaN-skipping rmse");
    assert_close(r.bias, 5.0 / 4.0, 1e-12, "bias");
    assert_true(r.n_points == 2.0);
    /* everything NaN: scores NaN, no forecast counted */
    float nn[4] = {NAN, NAN, NAN, NAN};
    eval_det_scores(nn, o, NULL, 1, 2, 2, wl, NULL, &r);
    assert_true(isnan(r.rmse) && isnan(r.rmse_mean_fc) && r.n_forecasts == 0);
    /* mask excluding the row with weight 3 */
    uint8_t m[4] = {0, 0, 1, 1};
    eval_det_scores(f, o, NULL, 1, 2, 2, wl, m, &r);
    assert_close(r.rmse, 2.0, 1e-12, "masked rmse");
    /* streaming accumulator == batch */
    eval_det_acc acc;
    eval_det_init(&acc);
    eval_det_add(&acc, f, o, NULL, 2, 2, wl, NULL);
    eval_det_add(&acc, nn, o, NULL, 2, 2, wl, NULL);
    eval_det_result r2;
    eval_det_finish(&acc, &r2);
    assert_close(r2.rmse, sqrt(7.0 / 4.0), 1e-12, "accumulated");
    assert_int_equal(r2.n_forecasts, 1);
}

static void test_regions(void **state)
{
    (void)state;
    double lat[7] = {80.0, 60.0, 30.0, 0.0, -23.5, -66.5, -85.0};
    uint8_t m[7 * 2];
    int expect[EVAL_REGION_LAND][7] = {
        {1, 1, 1, 1, 1, 1, 1}, /* global */
        {0, 0, 0, 1, 0, 0, 0}, /* tropics |lat| < 23.5 */
        {0, 1, 1, 0, 0, 0, 0}, /* nh extratropics */
        {0, 0, 0, 0, 1, 0, 0}, /* sh extratropics */
        {0, 1, 1, 0, 1, 0, 0}, /* extratropics */
        {1, 0, 0, 0, 0, 0, 0}, /* nh polar */
        {0, 0, 0, 0, 0, 1, 1}, /* sh polar */
        {1, 0, 0, 0, 0, 1, 1}, /* polar */
    };
    for (int r = 0; r < EVAL_REGION_LAND; r++) {
        assert_int_equal(eval_region_mask((eval_region)r, lat, NULL, 7, 2, m), SM_OK);
        for (int i = 0; i < 7; i++)
            if (m[i * 2] != expect[r][i] || m[i * 2 + 1] != expect[r][i])
                fail_msg("region %s row %d (lat %g): got %d", eval_region_name((eval_region)r), i,
                         lat[i], m[i * 2]);
        assert_int_equal(eval_region_from_name(eval_region_name((eval_region)r)), r);
    }
    /* every latitude lies in exactly one of tropics / extratropics / polar */
    uint8_t a[14], b[14], c[14];
    eval_region_mask(EVAL_REGION_TROPICS, lat, NULL, 7, 2, a);
    eval_region_mask(EVAL_REGION_EXTRATROPICS, lat, NULL, 7, 2, b);
    eval_region_mask(EVAL_REGION_POLAR, lat, NULL, 7, 2, c);
    for (int k = 0; k < 14; k++) assert_int_equal(a[k] + b[k] + c[k], 1);
    float lsm[4] = {0.0f, 0.7f, NAN, 0.5f};
    uint8_t l4[4];
    assert_int_equal(eval_region_mask(EVAL_REGION_LAND, lat, lsm, 2, 2, l4), SM_OK);
    assert_true(l4[0] == 0 && l4[1] == 1 && l4[2] == 0 && l4[3] == 1);
    assert_int_equal(eval_region_mask(EVAL_REGION_SEA, lat, lsm, 2, 2, l4), SM_OK);
    assert_true(l4[0] == 1 && l4[1] == 0 && l4[2] == 0 && l4[3] == 0);
    assert_int_equal(eval_mask_count(l4, 2, 2), 1);
    sm_clear_error();
    assert_int_equal(eval_region_mask(EVAL_REGION_LAND, lat, NULL, 2, 2, l4), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "land-sea mask"));
    assert_int_equal(eval_region_from_name("atlantis"), -1);
}

static void test_lat_weights(void **state)
{
    (void)state;
    double lat[4] = {67.5, 22.5, -22.5, -67.5}, w[4];
    eval_lat_weights(lat, 4, w);
    double s = 0;
    for (int i = 0; i < 4; i++) s += w[i];
    assert_close(s / 4.0, 1.0, 1e-12, "mean weight");
    assert_close(w[0] / w[1], cos(67.5 / 180.0 * 3.141592653589793) / cos(22.5 / 180.0 * 3.141592653589793), 1e-12, "ratio");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_perfect_and_constant),
        cmocka_unit_test(test_rmse_forms_differ),
        cmocka_unit_test(test_nan_and_weights),
        cmocka_unit_test(test_regions),
        cmocka_unit_test(test_lat_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
