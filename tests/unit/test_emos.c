/* EMOS: analytic gradient vs finite differences, recovery of known coefficients (global, in
 * two unit scales, and per grid point), sigma floor for zero spread, NaN and bad input. */
#include "testutil.h"

#include "core/log.h"
#include "core/rng.h"
#include "post/emos.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Samples drawn exactly from N(a + b m, c + d v). */
static void draw(rng_t *rng, const emos_coef *t, double mscale, double moff, size_t n,
                 size_t stride, float *m, float *v, float *y)
{
    for (size_t i = 0; i < n; i++) {
        size_t j = i * stride;
        m[j] = (float)(moff + mscale * rng_normal(rng));
        v[j] = (float)(mscale * mscale * (0.01 + rng_uniform(rng)));
        y[j] = (float)(t->a + t->b * m[j] + sqrt(t->c + t->d * v[j]) * rng_normal(rng));
    }
}

static void check_rel(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol * fabs(want)))
        fail_msg("%s: got %.6g, true %.6g (tolerance %.0f %%)", what, got, want, tol * 100);
}

static void test_gradient(void **state)
{
    (void)state;
    enum { N = 500 };
    float m[N], v[N], y[N];
    rng_t rng;
    rng_seed(&rng, 1, 0);
    emos_coef t = {0.5, 0.9, 0.4, 1.1};
    draw(&rng, &t, 1.0, 0.0, N, 1, m, v, y);
    emos_coef c = {0.3, 1.2, 0.7, 0.6};
    double g[4];
    emos_crps_grad(&c, m, v, y, N, 1, g);
    for (int k = 0; k < 4; k++) {
        emos_coef p = c, q = c;
        double *pp = &p.a + k, *qq = &q.a + k, e = 1e-6;
        *pp += e;
        *qq -= e;
        double fd = (emos_crps(&p, m, v, y, N, 1) - emos_crps(&q, m, v, y, N, 1)) / (2 * e);
        if (fabs(fd - g[k]) > 1e-6 * fmax(1.0, fabs(fd))) fail_msg("grad %d: %g vs fd %g", k, g[k], fd);
    }
}

static void fit_and_check(double mscale, double moff, const emos_coef *t, uint64_t seed)
{
    enum { N = 200000 };
    float *m = malloc(N * sizeof *m), *v = malloc(N * sizeof *v), *y = malloc(N * sizeof *y);
    rng_t rng;
    rng_seed(&rng, seed, 0);
    draw(&rng, t, mscale, moff, N, 1, m, v, y);
    emos_coef c;
    emos_info info;
    assert_int_equal(emos_fit(m, v, y, N, 1, NULL, &c, &info), SM_OK);
    assert_true(info.converged);
    assert_int_equal(info.n, N);
    if (moff == 0.0) {
        check_rel(c.a, t->a, 0.05, "a");
    } else {
        /* with a large offset a alone is statistically ill-determined (its error is that of b
         * times the offset); the predictive mean at the data centre is what matters */
        double got = c.a + c.b * moff, want = t->a + t->b * moff;
        if (fabs(got - want) > 0.05 * sqrt(t->c)) fail_msg("mu(centre): %g vs %g", got, want);
    }
    check_rel(c.b, t->b, 0.05, "b");
    check_rel(c.c, t->c, 0.05, "c");
    check_rel(c.d, t->d, 0.05, "d");
    /* the fit is the minimum of the sample CRPS: no worse than the true coefficients, and the
     * analytic gradient vanishes there */
    double fit = emos_crps(&c, m, v, y, N, 1);
    assert_true(fabs(fit - info.crps) < 1e-9 * fmax(1.0, fit));
    assert_true(fit <= emos_crps(t, m, v, y, N, 1) + 1e-12);
    double g[4];
    emos_crps_grad(&c, m, v, y, N, 1, g);
    /* CRPS change for a one-unit-of-scale move of each coefficient, relative to the CRPS (b
     * about the data centre: dCRPS/db - moff dCRPS/da = mean(dmu (m - moff))) */
    double rel[4] = {g[0] * sqrt(t->c), (g[1] - moff * g[0]) * mscale, g[2] * t->c, g[3] * t->d * mscale * mscale};
    for (int k = 0; k < 4; k++)
        if (!(fabs(rel[k]) < 1e-5 * fit)) fail_msg("gradient %d not ~0 at the fit: %g", k, g[k]);
    free(m); free(v); free(y);
}

static void test_recover_global(void **state)
{
    (void)state;
    emos_coef t = {1.5, 0.8, 0.5, 1.2};
    fit_and_check(1.0, 0.0, &t, 42);
    /* the same problem in geopotential-like units (values ~5e4, spread ~ 1e2) */
    emos_coef t2 = {300.0, 0.97, 0.5 * 1e4, 1.2};
    fit_and_check(100.0, 5.4e4, &t2, 43);
}

static void test_recover_per_point(void **state)
{
    (void)state;
    enum { T = 150000, H = 2, W = 3, NPT = H * W };
    float *m = malloc((size_t)T * NPT * sizeof *m), *v = malloc((size_t)T * NPT * sizeof *v);
    float *y = malloc((size_t)T * NPT * sizeof *y);
    emos_coef truth[NPT];
    rng_t rng;
    rng_seed(&rng, 7, 0);
    for (int p = 0; p < NPT; p++) {
        truth[p] = (emos_coef){1.0 + 0.3 * p, 0.6 + 0.05 * p, 0.5 + 0.06 * p, 1.6 - 0.1 * p};
        draw(&rng, &truth[p], 1.0 + 0.1 * p, 0.0, T, NPT, m + p, v + p, y + p);
    }
    /* one point entirely missing */
    for (int t = 0; t < T; t++) y[(size_t)t * NPT + NPT - 1] = NAN;
    emos_coef fit[NPT];
    long failed, unconv;
    assert_int_equal(emos_fit_points(m, v, y, T, NPT, NULL, fit, &failed, &unconv), SM_OK);
    assert_int_equal(failed, 1);
    assert_int_equal(unconv, 0);
    assert_true(isnan(fit[NPT - 1].a) && isnan(fit[NPT - 1].d));
    for (int p = 0; p < NPT - 1; p++) {
        check_rel(fit[p].a, truth[p].a, 0.05, "a (point)");
        check_rel(fit[p].b, truth[p].b, 0.05, "b (point)");
        /* 150000 samples per point: the rms relative error of c and d over 20 seeds is
         * 1.0-1.5 % for these coefficients, so 5 % is 3.5-5 standard errors */
        check_rel(fit[p].c, truth[p].c, 0.05, "c (point)");
        check_rel(fit[p].d, truth[p].d, 0.05, "d (point)");
    }
    /* the result does not depend on the number of threads */
    {
        enum { TS = 3000 };
        emos_coef one[NPT], two[NPT];
        int saved = omp_get_max_threads();
        omp_set_num_threads(1);
        assert_int_equal(emos_fit_points(m, v, y, TS, NPT, NULL, one, NULL, NULL), SM_OK);
        omp_set_num_threads(2);
        assert_int_equal(emos_fit_points(m, v, y, TS, NPT, NULL, two, NULL, NULL), SM_OK);
        omp_set_num_threads(saved);
        for (int p = 0; p < NPT - 1; p++) assert_true(memcmp(&one[p], &two[p], sizeof one[p]) == 0);
    }
    /* the global fit over (T, npts) arrays is emos_fit on all T * npts samples */
    {
        emos_coef g;
        assert_int_equal(emos_fit(m, v, y, (size_t)T * NPT, 1, NULL, &g, NULL), SM_OK);
        assert_true(isfinite(g.a) && g.c > 0 && g.d > 0);
    }
    /* per-point apply uses each point's coefficients */
    float mu[NPT], sg[NPT];
    emos_apply(fit, 1, m, v, 1, NPT, EMOS_DEFAULT_SIGMA_FLOOR, mu, sg);
    for (int p = 0; p < NPT - 1; p++) {
        assert_true(fabs(mu[p] - (fit[p].a + fit[p].b * m[p])) < 1e-3);
        assert_true(fabs(sg[p] - sqrt(fit[p].c + fit[p].d * v[p])) < 1e-5);
    }
    assert_true(isnan(mu[NPT - 1]) && isnan(sg[NPT - 1]));
    free(m); free(v); free(y);
}

static void test_apply_floor_and_bad_input(void **state)
{
    (void)state;
    emos_coef c = {1.0, 2.0, 0.0, 1.0};
    float m[3] = {1.0f, 2.0f, NAN}, v[3] = {0.0f, 4.0f, 1.0f}, mu[3], sg[3];
    emos_apply(&c, 0, m, v, 1, 3, 0.05, mu, sg);
    assert_true(mu[0] == 3.0f && sg[0] == 0.05f);   /* zero spread: sigma floor */
    assert_true(mu[1] == 5.0f && sg[1] == 2.0f);
    assert_true(isnan(mu[2]) && isnan(sg[2]));
    /* negative c + d v (only possible with hand-made coefficients) is floored too */
    emos_coef neg = {0.0, 1.0, -1.0, 0.0};
    emos_apply(&neg, 0, m, v, 1, 1, 0.05, mu, sg);
    assert_true(sg[0] == 0.05f);
    /* too few valid samples */
    float mm[20], vv[20], yy[20];
    for (int i = 0; i < 20; i++) {
        mm[i] = (float)i;
        vv[i] = 1.0f;
        yy[i] = i < 5 ? (float)i : NAN;
    }
    emos_coef out;
    sm_clear_error();
    assert_int_equal(emos_fit(mm, vv, yy, 20, 1, NULL, &out, NULL), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "valid samples"));
    assert_true(isnan(out.a));
    /* zero ensemble spread everywhere: d is not identifiable, the fit still converges and
     * c carries the whole variance */
    enum { N = 5000 };
    float *m2 = malloc(N * sizeof *m2), *v2 = calloc(N, sizeof *v2), *y2 = malloc(N * sizeof *y2);
    rng_t rng;
    rng_seed(&rng, 9, 0);
    for (int i = 0; i < N; i++) {
        m2[i] = (float)rng_normal(&rng);
        y2[i] = (float)(0.5 + m2[i] + 0.7 * rng_normal(&rng));
    }
    emos_info info;
    assert_int_equal(emos_fit(m2, v2, y2, N, 1, NULL, &out, &info), SM_OK);
    assert_true(info.converged);
    check_rel(out.c, 0.49, 0.06, "c with zero spread");
    check_rel(out.b, 1.0, 0.05, "b with zero spread");
    free(m2); free(v2); free(y2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_recover_global),
        cmocka_unit_test(test_recover_per_point),
        cmocka_unit_test(test_apply_floor_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
