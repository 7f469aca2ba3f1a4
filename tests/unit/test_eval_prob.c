/* Probabilistic scores: numpy golden cases (scores_prob.nc), Gaussian CRPS against numerical
 * integration and finite-difference gradients, ensemble CRPS against a brute-force double loop,
 * spread-skill / coverage / PIT of a reliable forecast, rank ties, EFI, EECRPS, NaN handling. */
#include "testutil.h"

#include "core/log.h"
#include "core/rng.h"
#include "eval/prob_scores.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/loss.h"

static void assert_close(double a, double b, double tol, const char *what)
{
    if (!(fabs(a - b) <= tol * fmax(1.0, fabs(b))))
        fail_msg("%s: got %.10g, expected %.10g", what, a, b);
}

static void test_golden_gauss(void **state)
{
    (void)state;
    size_t n, shape[8];
    int nd;
    float *y = testutil_golden_load("scores_prob.nc", "y", &n, &nd, shape);
    float *mu = testutil_golden_load("scores_prob.nc", "mu", NULL, NULL, NULL);
    float *sg = testutil_golden_load("scores_prob.nc", "sigma", NULL, NULL, NULL);
    float *wf = testutil_golden_load("scores_prob.nc", "wlat", NULL, NULL, NULL);
    float *cp = testutil_golden_load("scores_prob.nc", "crps_gauss_point", NULL, NULL, NULL);
    float *pit = testutil_golden_load("scores_prob.nc", "pit", NULL, NULL, NULL);
    size_t nb;
    float *ph = testutil_golden_load("scores_prob.nc", "pit_hist", &nb, NULL, NULL);
    float *ge = testutil_golden_load("scores_prob.nc", "gauss_expected", NULL, NULL, NULL);
    int nf = (int)shape[0], h = (int)shape[1], w = (int)shape[2];
    size_t hw = (size_t)h * w;
    double wl[64];
    for (int i = 0; i < h; i++) wl[i] = wf[i];
    float *cfield = malloc(n * sizeof *cfield);
    eval_crps_gauss_field(mu, sg, y, n, cfield);
    for (size_t k = 0; k < n; k++) {
        assert_close(cfield[k], cp[k], 1e-5, "crps field");
        assert_close(eval_crps_gauss(mu[k], sg[k], y[k], NULL, NULL), cp[k], 1e-5, "crps point");
        assert_close(eval_pit_gauss(mu[k], sg[k], y[k]), pit[k], 1e-5, "pit");
    }
    eval_prob_acc acc;
    assert_int_equal(eval_prob_init_gauss(&acc, (int)nb), SM_OK);
    for (int t = 0; t < nf; t++)
        eval_prob_add_gauss(&acc, mu + t * hw, sg + t * hw, y + t * hw, h, w, wl, NULL, NULL);
    eval_prob_result r;
    eval_prob_finish(&acc, &r);
    assert_close(r.crps, ge[0], 1e-5, "mean crps");
    assert_close(r.rmse, ge[1], 1e-5, "rmse");
    assert_close(r.spread, ge[2], 1e-5, "spread");
    assert_close(r.ssr, ge[2] / ge[1], 1e-5, "ssr");
    assert_close(r.coverage80, ge[3], 1e-6, "coverage");
    assert_true(isnan(r.crps_fair));
    for (size_t b = 0; b < nb; b++) assert_close(acc.hist[b], ph[b], 0, "pit histogram");
    eval_prob_free(&acc);
    free(cfield);
    free(y); free(mu); free(sg); free(wf); free(cp); free(pit); free(ph); free(ge);
}

static void test_golden_ensemble(void **state)
{
    (void)state;
    size_t n, shape[8];
    int nd;
    float *ens = testutil_golden_load("scores_prob.nc", "ens", &n, &nd, shape);
    float *y = testutil_golden_load("scores_prob.nc", "y", NULL, NULL, NULL);
    float *wf = testutil_golden_load("scores_prob.nc", "wlat", NULL, NULL, NULL);
    float *ce = testutil_golden_load("scores_prob.nc", "crps_ens_point", NULL, NULL, NULL);
    float *cf = testutil_golden_load("scores_prob.nc", "crps_fair_point", NULL, NULL, NULL);
    float *rh = testutil_golden_load("scores_prob.nc", "rank_hist", NULL, NULL, NULL);
    float *ee = testutil_golden_load("scores_prob.nc", "ens_expected", NULL, NULL, NULL);
    float *clim = testutil_golden_load("scores_prob.nc", "clim_sample", NULL, NULL, NULL);
    size_t cshape[8];
    float *cq = testutil_golden_load("scores_prob.nc", "clim_q", NULL, NULL, cshape);
    float *efi_ref = testutil_golden_load("scores_prob.nc", "efi", NULL, NULL, NULL);
    float *eec = testutil_golden_load("scores_prob.nc", "eecrps", NULL, NULL, NULL);
    free(testutil_golden_load("scores_prob.nc", "clim_sample", NULL, &nd, cshape));
    assert_int_equal(nd, 3);
    int nf = (int)shape[0], m = (int)shape[1], h = (int)shape[2], w = (int)shape[3];
    size_t hw = (size_t)h * w;
    double wl[64];
    for (int i = 0; i < h; i++) wl[i] = wf[i];
    for (int t = 0; t < nf; t++)
        for (size_t p = 0; p < hw; p++) {
            const float *x = ens + (size_t)t * m * hw + p;
            assert_close(eval_crps_ens(x, hw, m, y[t * hw + p], 0), ce[t * hw + p], 1e-5, "crps ens");
            assert_close(eval_crps_ens(x, hw, m, y[t * hw + p], 1), cf[t * hw + p], 1e-5, "crps fair");
        }
    float *cfield = malloc(hw * sizeof *cfield);
    for (int t = 0; t < nf; t++)
        for (int fair = 0; fair < 2; fair++) {
            eval_crps_ens_field(ens + (size_t)t * m * hw, m, y + t * hw, hw, fair, cfield);
            for (size_t p = 0; p < hw; p++)
                assert_close(cfield[p], (fair ? cf : ce)[t * hw + p], 1e-5, "crps ens field");
        }
    free(cfield);
    eval_prob_acc acc;
    rng_t rng;
    rng_seed(&rng, 7, 3);
    assert_int_equal(eval_prob_init_ens(&acc, m), SM_OK);
    assert_int_equal(acc.nbins, m + 1);
    for (int t = 0; t < nf; t++)
        assert_int_equal(eval_prob_add_ens(&acc, ens + (size_t)t * m * hw, y + t * hw, h, w, wl,
                                           NULL, &rng, NULL), SM_OK);
    eval_prob_result r;
    eval_prob_finish(&acc, &r);
    assert_close(r.crps, ee[0], 1e-5, "mean crps");
    assert_close(r.crps_fair, ee[1], 1e-5, "mean fair crps");
    assert_close(r.rmse, ee[2], 1e-5, "rmse of ensemble mean");
    assert_close(r.spread, ee[3], 1e-5, "spread");
    assert_close(r.ssr, ee[4], 1e-5, "ssr");
    assert_close(r.coverage80, ee[5], 1e-6, "coverage");
    double vals[EVAL_PM_COUNT];
    eval_prob_result_values(&r, vals);
    assert_true(vals[EVAL_PM_CRPS] == r.crps && vals[EVAL_PM_SSR] == r.ssr && isnan(vals[EVAL_PM_EECRPS]));
    assert_string_equal(eval_prob_metric_name(EVAL_PM_COVERAGE80), "coverage80");
    assert_string_equal(eval_prob_metric_name(EVAL_PM_EECRPS_FAIR), "eecrps_fair");
    for (int b = 0; b <= m; b++) assert_close(acc.hist[b], rh[b], 0, "rank histogram");
    eval_prob_free(&acc);
    /* EFI: climate quantiles, EFI of the first forecast's ensemble, EECRPS */
    int nc = (int)cshape[0];
    float *q = malloc(EVAL_EFI_NQ * hw * sizeof *q);
    assert_int_equal(eval_efi_clim_quantiles(clim, nc, hw, q), SM_OK);
    for (size_t k = 0; k < EVAL_EFI_NQ * hw; k++) assert_close(q[k], cq[k], 1e-5, "clim quantile");
    float *efi = malloc(hw * sizeof *efi), *crps = malloc(hw * sizeof *crps);
    eval_efi_field(ens, m, q, hw, efi);
    for (size_t p = 0; p < hw; p++) {
        assert_close(efi[p], efi_ref[p], 1e-5, "efi");
        crps[p] = (float)eval_crps_ens(ens + p, hw, m, y[p], 0);
    }
    size_t nv;
    assert_close(eval_eecrps(efi, crps, hw, &nv), eec[0], 1e-5, "eecrps");
    assert_int_equal(nv, hw);
    /* the accumulators give the same EECRPS (unweighted) and skip points without an EFI */
    eval_prob_acc ea;
    assert_int_equal(eval_prob_init_ens(&ea, m), SM_OK);
    assert_int_equal(eval_prob_add_ens(&ea, ens, y, h, w, NULL, NULL, &rng, efi), SM_OK);
    eval_prob_finish(&ea, &r);
    assert_close(r.eecrps, eec[0], 1e-5, "accumulated eecrps");
    assert_true(r.eecrps_fair < r.eecrps);
    eval_prob_free(&ea);
    efi[0] = NAN;
    assert_int_equal(eval_prob_init_gauss(&ea, 10), SM_OK);
    float *mu_ = malloc(hw * sizeof *mu_), *sg_ = malloc(hw * sizeof *sg_);
    double want = 0.0;
    for (size_t p = 0; p < hw; p++) {
        mu_[p] = y[p] + 0.5f;
        sg_[p] = 1.0f;
        if (p > 0) want += fabs(efi[p]) * eval_crps_gauss(mu_[p], 1.0, y[p], NULL, NULL) / (double)(hw - 1);
    }
    eval_prob_add_gauss(&ea, mu_, sg_, y, h, w, NULL, NULL, efi);
    eval_prob_finish(&ea, &r);
    assert_close(r.eecrps, want, 1e-9, "Gaussian eecrps");
    assert_true(isnan(r.eecrps_fair) && r.n_points == (double)hw);
    eval_prob_add_gauss(&ea, mu_, sg_, y, h, w, NULL, NULL, NULL); /* no EFI: EECRPS unchanged */
    eval_prob_finish(&ea, &r);
    assert_close(r.eecrps, want, 1e-9, "Gaussian eecrps without efi");
    eval_prob_free(&ea);
    free(mu_); free(sg_);
    free(q); free(efi); free(crps);
    free(ens); free(y); free(wf); free(ce); free(cf); free(rh); free(ee); free(clim); free(cq);
    free(efi_ref); free(eec);
}

/* CRPS = int (F(x) - 1{x >= y})^2 dx by composite Simpson on [lo, y] and [y, hi]. */
static double crps_numeric(double mu, double s, double y)
{
    double lo = fmin(mu - 14 * s, y - 1), hi = fmax(mu + 14 * s, y + 1), total = 0.0;
    for (int part = 0; part < 2; part++) {
        double a = part ? y : lo, b = part ? hi : y;
        int n = 20000;
        double hstep = (b - a) / n, acc = 0.0;
        for (int k = 0; k <= n; k++) {
            double x = a + k * hstep;
            double F = eval_norm_cdf((x - mu) / s) - (part ? 1.0 : 0.0);
            double wgt = (k == 0 || k == n) ? 1 : (k % 2 ? 4 : 2);
            acc += wgt * F * F;
        }
        total += acc * hstep / 3.0;
    }
    return total;
}

static void test_gauss_crps_integral_and_grad(void **state)
{
    (void)state;
    const double cases[][3] = {{0.0, 1.0, 0.3}, {2.0, 0.5, -1.0}, {-3.0, 4.0, 5.0},
                               {10.0, 0.01, 10.02}, {1.0, 2.0, 1.0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double mu = cases[c][0], s = cases[c][1], y = cases[c][2], dm, ds;
        double v = eval_crps_gauss(mu, s, y, &dm, &ds);
        assert_close(v, crps_numeric(mu, s, y), 1e-7, "CRPS vs integral");
        double e = 1e-6 * fmax(1.0, s);
        double fdm = (eval_crps_gauss(mu + e, s, y, NULL, NULL) - eval_crps_gauss(mu - e, s, y, NULL, NULL)) / (2 * e);
        double fds = (eval_crps_gauss(mu, s + e, y, NULL, NULL) - eval_crps_gauss(mu, s - e, y, NULL, NULL)) / (2 * e);
        assert_close(dm, fdm, 1e-6, "dCRPS/dmu");
        assert_close(ds, fds, 1e-6, "dCRPS/dsigma");
    }
    /* limits and bad input */
    assert_close(eval_crps_gauss(1.0, 0.0, 3.5, NULL, NULL), 2.5, 1e-15, "sigma 0");
    assert_close(eval_crps_gauss(1.0, 1e-9, 3.5, NULL, NULL), 2.5, 1e-8, "sigma -> 0");
    assert_true(isnan(eval_crps_gauss(1.0, -1.0, 0.0, NULL, NULL)));
    assert_true(isnan(eval_crps_gauss(NAN, 1.0, 0.0, NULL, NULL)));
    /* CRPS of N(0,1) at its mean: (sqrt(2) - 1) / sqrt(pi) */
    assert_close(eval_crps_gauss(0, 1, 0, NULL, NULL), (sqrt(2.0) - 1.0) / sqrt(3.141592653589793), 1e-14, "at mean");
    /* the training loss (nn/loss.h) and this scoring version agree, gradients included */
    rng_t r;
    rng_seed(&r, 77, 0);
    float ens[64];
    for (int k = 0; k < 2000; k++) {
        double mu = 5 * rng_normal(&r), s = k % 50 == 0 ? 0.0 : 3 * rng_uniform(&r), y = 5 * rng_normal(&r);
        double da, dsa, db, dsb;
        double a = eval_crps_gauss(mu, s, y, &da, &dsa);
        double b = loss_crps_gauss_point(mu, s, y, &db, &dsb);
        assert_true(a == b && da == db && dsa == dsb);
        int m = 2 + k % 60;
        for (int i = 0; i < m; i++) ens[i] = (float)rng_normal(&r);
        for (int fair = 0; fair < 2; fair++)
            assert_close(eval_crps_ens(ens, 1, m, y, fair), loss_crps_ensemble_point(ens, 1, m, y, fair),
                         1e-14, "eval vs loss ensemble CRPS");
    }
}

static double crps_brute(const float *x, int m, double y, int fair)
{
    double s = 0.0, p = 0.0;
    for (int i = 0; i < m; i++) {
        s += fabs(x[i] - y);
        for (int l = 0; l < m; l++) p += fabs((double)x[i] - x[l]);
    }
    return s / m - p / (fair ? 2.0 * m * (m - 1) : 2.0 * m * m);
}

static void test_ensemble_crps_brute(void **state)
{
    (void)state;
    rng_t rng;
    rng_seed(&rng, 11, 0);
    const int ms[] = {1, 2, 5, 10, 51, 300};
    float *x = malloc(300 * sizeof *x);
    for (size_t c = 0; c < sizeof ms / sizeof ms[0]; c++) {
        int m = ms[c];
        for (int rep = 0; rep < 5; rep++) {
            for (int i = 0; i < m; i++) x[i] = (float)(3.0 * rng_normal(&rng));
            if (m > 3) x[1] = x[2]; /* a tie */
            double y = 2.0 * rng_normal(&rng);
            assert_close(eval_crps_ens(x, 1, m, y, 0), crps_brute(x, m, y, 0), 1e-10, "standard");
            if (m >= 2) assert_close(eval_crps_ens(x, 1, m, y, 1), crps_brute(x, m, y, 1), 1e-10, "fair");
        }
    }
    assert_true(isnan(eval_crps_ens(x, 1, 1, 0.0, 1)));
    x[0] = 1.0f;
    assert_close(eval_crps_ens(x, 1, 1, 3.0, 0), 2.0, 1e-15, "one member = absolute error");
    x[1] = NAN;
    assert_true(isnan(eval_crps_ens(x, 1, 2, 0.0, 0)));
    /* a large ensemble from N(1, 2^2) approaches the Gaussian CRPS */
    float *big = malloc(20000 * sizeof *big);
    for (int i = 0; i < 20000; i++) big[i] = (float)(1.0 + 2.0 * rng_normal(&rng));
    assert_close(eval_crps_ens(big, 1, 20000, 0.5, 1), eval_crps_gauss(1.0, 2.0, 0.5, NULL, NULL),
                 0.02, "large ensemble vs Gaussian");
    free(big);
    free(x);
}

static void test_reliable_forecast(void **state)
{
    (void)state;
    /* obs and members drawn from the same N(mu_p, s_p): SSR ~ 1 with the (m+1)/m correction,
     * coverage ~ 0.8, PIT and ranks ~ uniform, fair CRPS ~ Gaussian CRPS expectation. */
    enum { H = 50, W = 40, M = 5, NF = 10 };
    size_t hw = (size_t)H * W;
    float *ens = malloc((size_t)M * hw * sizeof *ens), *y = malloc(hw * sizeof *y);
    float *mu = malloc(hw * sizeof *mu), *sg = malloc(hw * sizeof *sg);
    rng_t rng, tie;
    rng_seed(&rng, 5, 0);
    rng_seed(&tie, 5, 1);
    eval_prob_acc ea, ga;
    assert_int_equal(eval_prob_init_ens(&ea, M), SM_OK);
    assert_int_equal(eval_prob_init_gauss(&ga, 10), SM_OK);
    for (int t = 0; t < NF; t++) {
        for (size_t p = 0; p < hw; p++) {
            mu[p] = (float)(5.0 * rng_normal(&rng));
            sg[p] = (float)(0.5 + 2.0 * rng_uniform(&rng));
            y[p] = (float)(mu[p] + sg[p] * rng_normal(&rng));
            for (int k = 0; k < M; k++) ens[k * hw + p] = (float)(mu[p] + sg[p] * rng_normal(&rng));
        }
        eval_prob_add_ens(&ea, ens, y, H, W, NULL, NULL, &tie, NULL);
        eval_prob_add_gauss(&ga, mu, sg, y, H, W, NULL, NULL, NULL);
    }
    eval_prob_result re, rg;
    eval_prob_finish(&ea, &re);
    eval_prob_finish(&ga, &rg);
    double npts = (double)NF * hw;
    assert_true(fabs(re.ssr - 1.0) < 0.03);
    assert_true(fabs(re.ssr_uncorrected - sqrt((double)M / (M + 1))) < 0.03);
    assert_true(fabs(rg.ssr - 1.0) < 0.03);
    assert_true(fabs(rg.coverage80 - 0.8) < 0.015);
    for (int b = 0; b < 10; b++) assert_true(fabs(ga.hist[b] / npts - 0.1) < 0.01);
    for (int b = 0; b <= M; b++) assert_true(fabs(ea.hist[b] / npts - 1.0 / (M + 1)) < 0.01);
    /* the fair CRPS of a 5-member ensemble estimates the CRPS of its distribution: it is
     * close to the Gaussian CRPS, while the standard form is larger by the finite-m term */
    assert_true(fabs(re.crps_fair - rg.crps) < 0.03 * rg.crps);
    assert_true(re.crps > re.crps_fair);
    eval_prob_free(&ea);
    eval_prob_free(&ga);
    free(ens); free(y); free(mu); free(sg);
}

static void test_rank_ties_and_nan(void **state)
{
    (void)state;
    rng_t rng;
    rng_seed(&rng, 99, 2);
    float x[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    int count[5] = {0};
    for (int r = 0; r < 5000; r++) {
        int k = eval_rank(x, 1, 4, 1.0, &rng);
        assert_true(k >= 0 && k <= 4);
        count[k]++;
    }
    for (int k = 0; k < 5; k++) assert_true(abs(count[k] - 1000) < 120);
    float x2[4] = {0.0f, 1.0f, 1.0f, 2.0f};
    for (int r = 0; r < 100; r++) {
        int k = eval_rank(x2, 1, 4, 1.0, &rng);
        assert_true(k >= 1 && k <= 3);
    }
    assert_int_equal(eval_rank(x2, 1, 4, 5.0, &rng), 4);
    assert_int_equal(eval_rank(x2, 1, 4, NAN, &rng), -1);
    /* a NaN member or observation drops the point from every score */
    float ens[2 * 2] = {0.0f, NAN, 1.0f, 2.0f}; /* members x points (2 x 2) */
    float y[2] = {0.5f, 1.0f};
    eval_prob_acc acc;
    assert_int_equal(eval_prob_init_ens(&acc, 2), SM_OK);
    assert_int_equal(eval_prob_add_ens(&acc, ens, y, 1, 2, NULL, NULL, &rng, NULL), SM_OK);
    eval_prob_result r;
    eval_prob_finish(&acc, &r);
    assert_true(r.n_points == 1.0);
    assert_close(r.crps, crps_brute((float[]){0.0f, 1.0f}, 2, 0.5, 0), 1e-12, "crps with NaN point");
    eval_prob_free(&acc);
    sm_clear_error();
    assert_int_equal(eval_prob_init_ens(&acc, 1), SM_ERR_USAGE);
    assert_int_equal(eval_prob_init_gauss(&acc, 0), SM_ERR_USAGE);
    float mu[2] = {0.0f, 0.0f}, sg[2] = {1.0f, NAN}, yy[2] = {0.0f, 0.0f};
    assert_int_equal(eval_prob_init_gauss(&acc, 4), SM_OK);
    eval_prob_add_gauss(&acc, mu, sg, yy, 1, 2, NULL, NULL, NULL);
    eval_prob_finish(&acc, &r);
    assert_true(r.n_points == 1.0);
    eval_prob_free(&acc);
    eval_prob_result empty;
    assert_int_equal(eval_prob_init_gauss(&acc, 4), SM_OK);
    eval_prob_finish(&acc, &empty);
    assert_true(isnan(empty.crps) && isnan(empty.ssr) && isnan(empty.eecrps));
    eval_prob_free(&acc);
}

static void test_efi(void **state)
{
    (void)state;
    double emax = eval_efi_max();
    assert_true(emax > 0.79 && emax < 0.8);
    rng_t rng;
    rng_seed(&rng, 21, 0);
    enum { NC = 999, NP = 200, M = 51 };
    float *clim = malloc((size_t)NC * NP * sizeof *clim);
    float *q = malloc((size_t)EVAL_EFI_NQ * NP * sizeof *q);
    float *ens = malloc((size_t)NC * NP * sizeof *ens);
    for (size_t k = 0; k < (size_t)NC * NP; k++) clim[k] = (float)(280.0 + 3.0 * rng_normal(&rng));
    assert_int_equal(eval_efi_clim_quantiles(clim, NC, NP, q), SM_OK);
    /* ensemble = the climate sample itself: EFI ~ 0 at every point */
    for (int p = 0; p < NP; p++) {
        double e = eval_efi_point(clim + p, NP, NC, q + p, NP);
        if (fabs(e) > 0.01) fail_msg("EFI of the climate itself = %g at point %d", e, p);
    }
    /* ensemble drawn from the climate distribution: mean EFI ~ 0 */
    double mean = 0.0;
    for (size_t k = 0; k < (size_t)M * NP; k++) ens[k] = (float)(280.0 + 3.0 * rng_normal(&rng));
    float efi[NP];
    eval_efi_field(ens, M, q, NP, efi);
    for (int p = 0; p < NP; p++) mean += efi[p] / NP;
    assert_true(fabs(mean) < 0.03);
    /* every member beyond the climate: +-EFI max; shifted by 1 sigma: in between */
    for (size_t k = 0; k < (size_t)M * NP; k++) ens[k] = 300.0f + (float)k * 1e-4f;
    eval_efi_field(ens, M, q, NP, efi);
    for (int p = 0; p < NP; p++) assert_close(efi[p], emax, 1e-6, "warm extreme");
    for (size_t k = 0; k < (size_t)M * NP; k++) ens[k] = 260.0f;
    eval_efi_field(ens, M, q, NP, efi);
    for (int p = 0; p < NP; p++) assert_close(efi[p], -emax, 1e-6, "cold extreme");
    for (size_t k = 0; k < (size_t)M * NP; k++) ens[k] = (float)(283.0 + 3.0 * rng_normal(&rng));
    eval_efi_field(ens, M, q, NP, efi);
    mean = 0.0;
    for (int p = 0; p < NP; p++) mean += efi[p] / NP;
    assert_true(mean > 0.25 && mean < emax);
    /* Gaussian EFI: N(280, 9) follows the climate (~0), agrees with a large ensemble drawn
     * from the same Gaussian, and reaches +-EFI max far in the tails */
    for (int p = 0; p < 5; p++) {
        double g0 = eval_efi_gauss_point(280.0, 3.0, q + p, NP);
        if (fabs(g0) > 0.02) fail_msg("Gaussian EFI of the climate = %g", g0);
        double g1 = eval_efi_gauss_point(283.0, 2.0, q + p, NP);
        enum { MB = 20000 };
        float *big = malloc(MB * sizeof *big);
        for (int i = 0; i < MB; i++) big[i] = (float)(283.0 + 2.0 * rng_normal(&rng));
        assert_close(g1, eval_efi_point(big, 1, MB, q + p, NP), 0.01, "Gaussian vs ensemble EFI");
        free(big);
        assert_close(eval_efi_gauss_point(330.0, 1.0, q + p, NP), emax, 1e-9, "Gaussian warm extreme");
        assert_close(eval_efi_gauss_point(230.0, 0.0, q + p, NP), -emax, 1e-12, "sigma 0 cold extreme");
    }
    assert_true(isnan(eval_efi_gauss_point(NAN, 1.0, q, NP)));
    /* a NaN quantile or member gives no EFI; EECRPS skips those points */
    q[3 * NP + 0] = NAN;
    ens[1 * NP + 1] = NAN;
    eval_efi_field(ens, M, q, NP, efi);
    assert_true(isnan(efi[0]) && isnan(efi[1]) && !isnan(efi[2]));
    float e3[3] = {NAN, 0.5f, -0.25f}, c3[3] = {10.0f, 2.0f, 4.0f};
    size_t nv;
    assert_close(eval_eecrps(e3, c3, 3, &nv), (0.5 * 2.0 + 0.25 * 4.0) / 2.0, 1e-12, "eecrps");
    assert_int_equal(nv, 2);
    assert_true(isnan(eval_eecrps(e3, c3, 1, &nv)) && nv == 0);
    free(clim); free(q); free(ens);
}

static void test_quantile(void **state)
{
    (void)state;
    double s[5] = {1, 2, 3, 4, 10};
    assert_close(eval_quantile_sorted(s, 5, 0.0), 1, 0, "q0");
    assert_close(eval_quantile_sorted(s, 5, 1.0), 10, 0, "q1");
    assert_close(eval_quantile_sorted(s, 5, 0.9), 4 + 0.6 * 6, 1e-12, "q0.9");
    assert_close(eval_quantile_sorted(s, 1, 0.3), 1, 0, "single");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_gauss),
        cmocka_unit_test(test_golden_ensemble),
        cmocka_unit_test(test_gauss_crps_integral_and_grad),
        cmocka_unit_test(test_ensemble_crps_brute),
        cmocka_unit_test(test_reliable_forecast),
        cmocka_unit_test(test_rank_ties_and_nan),
        cmocka_unit_test(test_efi),
        cmocka_unit_test(test_quantile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
