/* Baselines: calendar, climatology (numpy golden scores_baselines.nc, window widening,
 * hour-of-day only), persistence, damped anomaly persistence (golden alpha, AR(1) recovery). */
#include "testutil.h"

#include "core/log.h"
#include "core/rng.h"
#include "eval/baselines.h"
#include "eval/scores.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void assert_close(double a, double b, double tol, const char *what)
{
    if (!(fabs(a - b) <= tol * fmax(1.0, fabs(b))))
        fail_msg("%s: got %.10g, expected %.10g", what, a, b);
}

static void test_calendar(void **state)
{
    (void)state;
    assert_true(eval_time_make(1970, 1, 1, 0, 0) == 0.0);
    assert_true(eval_time_make(2000, 3, 1, 6, 0) == 264414.0);
    assert_true(eval_time_make(1900, 3, 1, 0, 0) == -612192.0);
    assert_true(eval_time_make(2019, 3, 25, 0, 0) == 431520.0);
    eval_date d;
    eval_time_split(-0.5, &d);
    assert_true(d.year == 1969 && d.month == 12 && d.day == 31 && d.hour == 23 && d.minute == 30);
    assert_int_equal(d.doy, 365);
    eval_time_split(264414.0 - 1e-7, &d); /* rounding to the minute */
    assert_true(d.year == 2000 && d.month == 3 && d.day == 1 && d.hour == 6 && d.minute == 0);
    assert_int_equal(d.doy, 61);
    assert_true(eval_is_leap(2000) && !eval_is_leap(1900) && eval_is_leap(2016) && !eval_is_leap(2015));
    /* leap-aligned day of year */
    assert_int_equal(eval_clim_doy(eval_time_make(2015, 3, 1, 0, 0)), 61);
    assert_int_equal(eval_clim_doy(eval_time_make(2016, 3, 1, 0, 0)), 61);
    assert_int_equal(eval_clim_doy(eval_time_make(2016, 2, 29, 12, 0)), 60);
    assert_int_equal(eval_clim_doy(eval_time_make(2015, 2, 28, 12, 0)), 59);
    assert_int_equal(eval_clim_doy(eval_time_make(2015, 12, 31, 18, 0)), 366);
    assert_int_equal(eval_clim_doy(eval_time_make(2016, 12, 31, 18, 0)), 366);
    assert_int_equal(eval_clim_doy(eval_time_make(2017, 1, 1, 0, 0)), 1);
    assert_int_equal(eval_hour_of_day(eval_time_make(2017, 1, 1, 23, 0)), 23);
    /* round trip over every day from 1899 to 2101 */
    for (long day = -25567 - 365; day < 48000; day += 1) {
        eval_time_split(day * 24.0 + 7.0, &d);
        assert_true(eval_time_make(d.year, d.month, d.day, d.hour, d.minute) == day * 24.0 + 7.0);
        assert_true(d.doy >= 1 && d.doy <= 365 + eval_is_leap(d.year));
    }
    double times[4] = {0.0, 6.0, 12.0, 18.0};
    assert_int_equal(eval_time_index(times, 4, 12.0), 2);
    assert_int_equal(eval_time_index(times, 4, 12.0005), 2);
    assert_int_equal(eval_time_index(times, 4, 13.0), -1);
    assert_int_equal(eval_time_index(times, 4, 24.0), -1);
}

static void test_golden_climatology_and_damped(void **state)
{
    (void)state;
    size_t T, shape[8], nq;
    int nd;
    float *tf = testutil_golden_load("scores_baselines.nc", "times", &T, NULL, NULL);
    float *data = testutil_golden_load("scores_baselines.nc", "data", NULL, &nd, shape);
    float *qf = testutil_golden_load("scores_baselines.nc", "query_times", &nq, NULL, NULL);
    float *cq = testutil_golden_load("scores_baselines.nc", "clim_at_query", NULL, NULL, NULL);
    float *ag = testutil_golden_load("scores_baselines.nc", "alpha_global", NULL, NULL, NULL);
    float *ap = testutil_golden_load("scores_baselines.nc", "alpha_point", NULL, NULL, NULL);
    int h = (int)shape[1], w = (int)shape[2];
    size_t hw = (size_t)h * w;
    /* hours since 1970 are integers < 2^24 for these dates: exact in float */
    double *times = malloc(T * sizeof *times);
    for (size_t t = 0; t < T; t++) times[t] = tf[t];
    eval_clim_opts o = {.by_doy = 1, .window_days = 5, .by_hour = 1};
    eval_clim *c;
    assert_int_equal(eval_clim_fit(times, data, (int)T, h, w, &o, &c), SM_OK);
    assert_int_equal(c->n_hours, 4);
    float out[64];
    for (size_t q = 0; q < nq; q++) {
        eval_clim_at(c, qf[q], out);
        for (size_t p = 0; p < hw; p++) assert_close(out[p], cq[q * hw + p], 1e-5, "climatology");
    }
    double alpha[64];
    long np;
    assert_int_equal(eval_damped_fit(c, times, data, (int)T, h, w, NULL, 24.0, 0, alpha, &np), SM_OK);
    assert_int_equal(np, (long)T - 4);
    assert_close(alpha[0], ag[0], 1e-5, "global alpha");
    assert_int_equal(eval_damped_fit(c, times, data, (int)T, h, w, NULL, 24.0, 1, alpha, NULL), SM_OK);
    for (size_t p = 0; p < hw; p++) assert_close(alpha[p], ap[p], 1e-5, "per-point alpha");
    /* damped forecast = C(t+L) + alpha (x(t) - C(t)) */
    float fc[64], c0[64], c1[64];
    double t0 = times[100];
    assert_int_equal(eval_damped_forecast(c, alpha, 1, data + 100 * hw, t0, 24.0, fc), SM_OK);
    eval_clim_at(c, t0, c0);
    eval_clim_at(c, t0 + 24.0, c1);
    for (size_t p = 0; p < hw; p++)
        assert_close(fc[p], c1[p] + alpha[p] * (data[100 * hw + p] - c0[p]), 1e-5, "damped forecast");
    /* a lead longer than the training period has no pair */
    sm_clear_error();
    assert_int_equal(eval_damped_fit(c, times, data, 3, h, w, NULL, 24.0, 0, alpha, NULL), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "no pair"));
    eval_clim_free(c);
    free(times); free(tf); free(data); free(qf); free(cq); free(ag); free(ap);
}

/* January-October (more than half the year): days beyond the window of any sample come from the
 * annual + semi-annual harmonic fit, which reproduces a signal made of those harmonics exactly;
 * days within the window of the data keep the window mean. */
static void test_clim_harmonic_gap(void **state)
{
    (void)state;
    int T = 0;
    double times[400];
    float x[400];
    const double two_pi = 2.0 * 3.14159265358979323846;
    for (double t = eval_time_make(2013, 1, 1, 12, 0); t < eval_time_make(2013, 11, 1, 0, 0); t += 24.0) {
        double w = two_pi * (eval_clim_doy(t) - 1) / 366.0;
        times[T] = t;
        x[T] = (float)(280.0 + 10.0 * cos(w) + 3.0 * sin(2.0 * w));
        T++;
    }
    eval_clim_opts o = {.by_doy = 1, .window_days = 15, .by_hour = 1};
    eval_clim *c;
    assert_int_equal(eval_clim_fit(times, x, T, 1, 1, &o, &c), SM_OK);
    float v;
    for (int day = 1; day <= 11; day += 5) { /* beyond 15 days of Oct 31 and of Jan 1 */
        double t = eval_time_make(2014, 12, day, 12, 0), w = two_pi * (eval_clim_doy(t) - 1) / 366.0;
        eval_clim_at(c, t, &v);
        assert_close(v, 280.0 + 10.0 * cos(w) + 3.0 * sin(2.0 * w), 2e-3, "harmonic in the gap");
    }
    /* Nov 10 (leap-aligned doy 315) lies within 15 days of Oct 26-31 (doy 300-305): their mean */
    eval_clim_at(c, eval_time_make(2014, 11, 10, 12, 0), &v);
    double m = 0;
    for (int k = T - 6; k < T; k++) m += x[k];
    assert_close(v, m / 6, 1e-4, "window mean next to the gap");
    eval_clim_free(c);
}

static void test_clim_widening_and_hour_only(void **state)
{
    (void)state;
    /* daily 12Z values on 2013-01-01 .. 2013-04-30 (less than half a year: gaps take the
     * nearest days), value = day index; one point */
    int T = 0;
    double times[400];
    float x[400];
    for (double t = eval_time_make(2013, 1, 1, 12, 0); t < eval_time_make(2013, 5, 1, 0, 0); t += 24.0) {
        times[T] = t;
        x[T] = (float)eval_clim_doy(t);
        T++;
    }
    eval_clim_opts o = {.by_doy = 1, .window_days = 2, .by_hour = 1};
    eval_clim *c;
    assert_int_equal(eval_clim_fit(times, x, T, 1, 1, &o, &c), SM_OK);
    float v;
    eval_clim_at(c, eval_time_make(2014, 2, 10, 12, 0), &v); /* doy 41 */
    assert_close(v, 41.0, 1e-6, "window mean");
    /* May 3 (doy 124): nearest data is Apr 30 (doy 121 on the leap-aligned calendar) at distance 3 > window 2 */
    eval_clim_at(c, eval_time_make(2014, 5, 3, 12, 0), &v);
    assert_close(v, 121.0, 1e-6, "widened window");
    /* Nov 3 (doy 308): the nearest data wrap to Jan 1 (59 days ahead; Apr 30 is 187 behind) */
    eval_clim_at(c, eval_time_make(2014, 11, 3, 12, 0), &v);
    assert_close(v, 1.0, 1e-6, "widened circular window");
    /* late December: nearest data wraps to early January (doy 1, distance 1 from 366) */
    eval_clim_at(c, eval_time_make(2014, 12, 31, 12, 0), &v);
    assert_close(v, 1.5, 1e-6, "circular window"); /* days 366-2..366+2 -> {1, 2} present */
    /* an hour absent from the training data uses the nearest slot */
    eval_clim_at(c, eval_time_make(2014, 2, 10, 3, 0), &v);
    assert_close(v, 41.0, 1e-6, "single hour slot");
    eval_clim_free(c);
    /* hour-of-day only: mean of all samples at that hour */
    double t2[8];
    float x2[8];
    for (int k = 0; k < 8; k++) {
        t2[k] = 1000.0 * 24.0 + 6.0 * k;
        x2[k] = (float)(k % 4 == 1 ? 10 + k : k);
    }
    eval_clim_opts oh = {.by_doy = 0, .window_days = 0, .by_hour = 1};
    assert_int_equal(eval_clim_fit(t2, x2, 8, 1, 1, &oh, &c), SM_OK);
    assert_int_equal(c->n_doy, 1);
    eval_clim_at(c, 5000.0 * 24.0 + 6.0, &v);
    assert_close(v, (11.0 + 15.0) / 2.0, 1e-6, "hour-of-day mean");
    eval_clim_free(c);
    sm_clear_error();
    o.window_days = -1;
    assert_int_equal(eval_clim_fit(times, x, T, 1, 1, &o, &c), SM_ERR_USAGE);
    assert_null(c);
}

static void test_clim_large_grid_blocks(void **state)
{
    (void)state;
    /* more points than one processing block (4096): every point equals its own 1-point fit */
    enum { T = 40, H = 50, W = 100, NPT = H * W };
    double times[T];
    float *x = malloc((size_t)T * NPT * sizeof *x);
    rng_t rng;
    rng_seed(&rng, 17, 0);
    for (int t = 0; t < T; t++) {
        times[t] = eval_time_make(2014, 12, 20, 0, 0) + 12.0 * t;
        for (int p = 0; p < NPT; p++) x[(size_t)t * NPT + p] = (float)(p * 0.01 + rng_normal(&rng));
    }
    x[(size_t)3 * NPT + 4500] = NAN;
    eval_clim_opts o = {.by_doy = 1, .window_days = 3, .by_hour = 1};
    eval_clim *big, *one;
    assert_int_equal(eval_clim_fit(times, x, T, H, W, &o, &big), SM_OK);
    float *fb = malloc(NPT * sizeof *fb), series[T], v;
    const int pts[5] = {0, 4095, 4096, 4500, NPT - 1};
    for (int k = 0; k < 5; k++) {
        for (int t = 0; t < T; t++) series[t] = x[(size_t)t * NPT + pts[k]];
        assert_int_equal(eval_clim_fit(times, series, T, 1, 1, &o, &one), SM_OK);
        for (double q = times[0] - 48.0; q < times[T - 1] + 48.0; q += 12.0) {
            eval_clim_at(big, q, fb);
            eval_clim_at(one, q, &v);
            assert_true(fb[pts[k]] == v);
        }
        eval_clim_free(one);
    }
    eval_clim_free(big);
    free(fb);
    free(x);
}

static void test_persistence(void **state)
{
    (void)state;
    enum { T = 12, H = 3, W = 4 };
    double times[T];
    float data[T * H * W], fc[H * W];
    for (int t = 0; t < T; t++) times[t] = 6.0 * t;
    for (int k = 0; k < T * H * W; k++) data[k] = 273.15f;
    data[5] = NAN; /* a missing point stays missing and is skipped by the scores */
    double wl[H] = {0.5, 1.0, 1.5};
    for (int t = 0; t + 4 < T; t++) {
        assert_int_equal(eval_persistence(times, data, T, H, W, times[t], fc), SM_OK);
        eval_det_result r;
        eval_det_scores(fc, data + (t + 4) * H * W, NULL, 1, H, W, wl, NULL, &r);
        assert_true(r.rmse == 0.0 && r.bias == 0.0 && r.mae == 0.0);
    }
    assert_int_equal(eval_persistence(times, data, T, H, W, 6.0 * 3, fc), SM_OK);
    assert_true(memcmp(fc, data + 3 * H * W, sizeof fc) == 0);
    sm_clear_error();
    assert_int_equal(eval_persistence(times, data, T, H, W, 7.0, fc), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "not in the truth data"));
}

static void test_damped_ar1(void **state)
{
    (void)state;
    /* x(t) = 280 + a(t), a(t) = phi a(t-1) + e: alpha_L = phi^L */
    enum { T = 20000, H = 2, W = 2 };
    const double phi[H * W] = {0.9, 0.5, 0.8, 0.0};
    double *times = malloc(T * sizeof *times);
    float *x = malloc((size_t)T * H * W * sizeof *x);
    rng_t rng;
    rng_seed(&rng, 3, 0);
    double a[H * W] = {0};
    for (int t = 0; t < T; t++) {
        times[t] = 6.0 * t;
        for (int p = 0; p < H * W; p++) {
            a[p] = phi[p] * a[p] + rng_normal(&rng);
            x[(size_t)t * H * W + p] = (float)(280.0 + a[p]);
        }
    }
    eval_clim_opts o = {.by_doy = 0, .window_days = 0, .by_hour = 0};
    eval_clim *c;
    assert_int_equal(eval_clim_fit(times, x, T, H, W, &o, &c), SM_OK);
    double alpha[H * W];
    for (int L = 1; L <= 3; L++) {
        assert_int_equal(eval_damped_fit(c, times, x, T, H, W, NULL, 6.0 * L, 1, alpha, NULL), SM_OK);
        for (int p = 0; p < H * W; p++)
            if (fabs(alpha[p] - pow(phi[p], L)) > 0.03)
                fail_msg("lead %d point %d: alpha %g, expected %g", L, p, alpha[p], pow(phi[p], L));
    }
    /* global alpha: weighted by the anomaly variance of each point */
    assert_int_equal(eval_damped_fit(c, times, x, T, H, W, NULL, 6.0, 0, alpha, NULL), SM_OK);
    double num = 0, den = 0;
    for (int p = 0; p < H * W; p++) {
        double var = 1.0 / (1.0 - phi[p] * phi[p]);
        num += phi[p] * var;
        den += var;
    }
    assert_true(fabs(alpha[0] - num / den) < 0.03);
    eval_clim_free(c);
    free(times);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calendar),
        cmocka_unit_test(test_golden_climatology_and_damped),
        cmocka_unit_test(test_clim_widening_and_hour_only),
        cmocka_unit_test(test_clim_harmonic_gap),
        cmocka_unit_test(test_clim_large_grid_blocks),
        cmocka_unit_test(test_persistence),
        cmocka_unit_test(test_damped_ar1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
