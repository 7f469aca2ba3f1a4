/* nn/loss: finite-difference gradients for every loss, Gaussian CRPS against numerical
 * integration, ensemble CRPS against a brute-force loop, torch golden values (loss_small.nc). */
#include "testutil.h"

#include "core/rng.h"
#include "nn/loss.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define PI_D 3.14159265358979323846

/* ||c - t||_2 <= 1e-4 ||t||_2 + 1e-6 */
static void assert_close_vec(const float *c, const float *t, size_t n, const char *what)
{
    double num = 0, den = 0;
    for (size_t k = 0; k < n; k++) {
        double d = (double)c[k] - t[k];
        num += d * d;
        den += (double)t[k] * t[k];
    }
    if (!(sqrt(num) <= 1e-4 * sqrt(den) + 1e-6))
        fail_msg("%s: ||c - ref|| = %g, ||ref|| = %g", what, sqrt(num), sqrt(den));
}

static void assert_close_scalar(double c, double t, double rel, const char *what)
{
    if (!(fabs(c - t) <= rel * fabs(t) + 1e-12)) fail_msg("%s: %.12g vs %.12g", what, c, t);
}

static void fill_normal(float *x, size_t n, rng_t *r, double scale, double shift)
{
    for (size_t k = 0; k < n; k++) x[k] = (float)(shift + scale * rng_normal(r));
}

/* ---- finite differences ---------------------------------------------------------------- */

/* A loss as a function of one float array `x` (the others are bound in ctx). */
typedef double (*loss_fn)(const float *x, void *ctx);
typedef void (*grad_fn)(float *dx, const float *x, void *ctx, double scale);

/* Central differences with the float-exact step; compares against the analytic gradient
 * (accumulated on top of a non-zero buffer, with scale 1). */
static void check_fd(loss_fn f, grad_fn g, float *x, size_t n, void *ctx, const char *what)
{
    float *dx = malloc(n * sizeof *dx), *base = malloc(n * sizeof *base);
    float *fd = malloc(n * sizeof *fd);
    for (size_t k = 0; k < n; k++) base[k] = dx[k] = 0.25f * (float)(k % 3);
    g(dx, x, ctx, 1.0);
    for (size_t k = 0; k < n; k++) dx[k] -= base[k];
    double maxerr = 0, maxg = 0;
    for (size_t k = 0; k < n; k++) {
        float x0 = x[k];
        double h = 1e-3 * fmax(1.0, fabs(x0));
        float xp = (float)(x0 + h), xm = (float)(x0 - h);
        x[k] = xp;
        double lp = f(x, ctx);
        x[k] = xm;
        double lm = f(x, ctx);
        x[k] = x0;
        fd[k] = (float)((lp - lm) / ((double)xp - (double)xm));
        maxerr = fmax(maxerr, fabs(fd[k] - dx[k]));
        maxg = fmax(maxg, fabs(fd[k]));
    }
    if (!(maxerr <= 1e-3 * maxg + 1e-7))
        fail_msg("%s: finite differences differ by %g (max |grad| %g)", what, maxerr, maxg);
    free(dx);
    free(base);
    free(fd);
}

typedef struct {
    const float *target, *wlat, *a, *b, *c;
    int nc, h, w;
    size_t n;
} ctx_t;

static double f_mse(const float *x, void *c) { ctx_t *t = c; return loss_mse_forward(x, t->target, t->n); }
static void g_mse(float *d, const float *x, void *c, double s) { ctx_t *t = c; loss_mse_backward(d, x, t->target, t->n, s); }
static double f_msem(const float *x, void *c) { ctx_t *t = c; return loss_mse_masked_forward(x, t->target, t->n); }
static void g_msem(float *d, const float *x, void *c, double s) { ctx_t *t = c; loss_mse_masked_backward(d, x, t->target, t->n, s); }
static double f_mae(const float *x, void *c) { ctx_t *t = c; return loss_mae_forward(x, t->target, t->n); }
static void g_mae(float *d, const float *x, void *c, double s) { ctx_t *t = c; loss_mae_backward(d, x, t->target, t->n, s); }
static double f_maem(const float *x, void *c) { ctx_t *t = c; return loss_mae_masked_forward(x, t->target, t->n); }
static void g_maem(float *d, const float *x, void *c, double s) { ctx_t *t = c; loss_mae_masked_backward(d, x, t->target, t->n, s); }
static double f_lat(const float *x, void *c) { ctx_t *t = c; return loss_mse_lat_forward(x, t->target, t->nc, t->h, t->w, t->wlat); }
static void g_lat(float *d, const float *x, void *c, double s) { ctx_t *t = c; loss_mse_lat_backward(d, x, t->target, t->nc, t->h, t->w, t->wlat, s); }
static double f_latm(const float *x, void *c) { ctx_t *t = c; return loss_mse_lat_masked_forward(x, t->target, t->nc, t->h, t->w, t->wlat); }
static void g_latm(float *d, const float *x, void *c, double s) { ctx_t *t = c; loss_mse_lat_masked_backward(d, x, t->target, t->nc, t->h, t->w, t->wlat, s); }
/* CRPS wrt mu (a = sigma) and wrt sigma (a = mu) */
static double f_crps_mu(const float *x, void *c) { ctx_t *t = c; return loss_crps_gauss_forward(x, t->a, t->target, t->n); }
static void g_crps_mu(float *d, const float *x, void *c, double s) { ctx_t *t = c; loss_crps_gauss_backward(d, NULL, x, t->a, t->target, t->n, s); }
static double f_crps_sg(const float *x, void *c) { ctx_t *t = c; return loss_crps_gauss_forward(t->a, x, t->target, t->n); }
static void g_crps_sg(float *d, const float *x, void *c, double s) { ctx_t *t = c; loss_crps_gauss_backward(NULL, d, t->a, x, t->target, t->n, s); }
static double f_crpsm_mu(const float *x, void *c) { ctx_t *t = c; return loss_crps_gauss_masked_forward(x, t->a, t->target, t->n); }
static void g_crpsm_mu(float *d, const float *x, void *c, double s) { ctx_t *t = c; loss_crps_gauss_masked_backward(d, NULL, x, t->a, t->target, t->n, s); }
static double f_crpsm_sg(const float *x, void *c) { ctx_t *t = c; return loss_crps_gauss_masked_forward(t->a, x, t->target, t->n); }
static void g_crpsm_sg(float *d, const float *x, void *c, double s) { ctx_t *t = c; loss_crps_gauss_masked_backward(NULL, d, t->a, x, t->target, t->n, s); }
/* head: x = out (nb, 2, hw); a = m_ens, b = s_ens */
static double f_head(const float *x, void *c) { ctx_t *t = c; return loss_crps_head_forward(x, t->a, t->b, t->target, t->nc, t->h * t->w, NULL, NULL); }
static void g_head(float *d, const float *x, void *c, double s) { ctx_t *t = c; loss_crps_head_backward(d, x, t->a, t->b, t->target, t->nc, t->h * t->w, s); }
static double f_headm(const float *x, void *c) { ctx_t *t = c; return loss_crps_head_masked_forward(x, t->a, t->b, t->target, t->nc, t->h * t->w, NULL, NULL); }
static void g_headm(float *d, const float *x, void *c, double s) { ctx_t *t = c; loss_crps_head_masked_backward(d, x, t->a, t->b, t->target, t->nc, t->h * t->w, s); }

static void test_finite_differences(void **state)
{
    (void)state;
    enum { NC = 3, H = 4, W = 6, N = NC * H * W };
    rng_t r;
    rng_seed(&r, 11, 3);
    float pred[N], target[N], tnan[N], wl[H], sigma[N], mu[N];
    fill_normal(pred, N, &r, 1.0, 0.0);
    fill_normal(target, N, &r, 1.0, 0.0);
    memcpy(tnan, target, sizeof tnan);
    for (int k = 0; k < N; k += 4) tnan[k] = NAN;
    double lat[H] = {-60, -20, 20, 60};
    loss_lat_weights(wl, lat, H);
    for (int k = 0; k < N; k++) sigma[k] = (float)exp(0.5 * rng_normal(&r));
    memcpy(mu, pred, sizeof mu);

    ctx_t c = {.target = target, .wlat = wl, .nc = NC, .h = H, .w = W, .n = N};
    ctx_t cm = c;
    cm.target = tnan;
    check_fd(f_mse, g_mse, pred, N, &c, "mse");
    check_fd(f_msem, g_msem, pred, N, &cm, "mse_masked");
    check_fd(f_mae, g_mae, pred, N, &c, "mae");
    check_fd(f_maem, g_maem, pred, N, &cm, "mae_masked");
    check_fd(f_lat, g_lat, pred, N, &c, "mse_lat");
    check_fd(f_latm, g_latm, pred, N, &cm, "mse_lat_masked");

    ctx_t cs = c, csm = cm;
    cs.a = csm.a = sigma;
    check_fd(f_crps_mu, g_crps_mu, mu, N, &cs, "crps d/dmu");
    check_fd(f_crpsm_mu, g_crpsm_mu, mu, N, &csm, "crps_masked d/dmu");
    cs.a = csm.a = mu;
    check_fd(f_crps_sg, g_crps_sg, sigma, N, &cs, "crps d/dsigma");
    check_fd(f_crpsm_sg, g_crpsm_sg, sigma, N, &csm, "crps_masked d/dsigma");

    /* head: nb = 3 samples of (2, 4 x 6) */
    enum { NB = 3, HW = H * W };
    float out[NB * 2 * HW], me[NB * HW], se[NB * HW], y[NB * HW], yn[NB * HW];
    fill_normal(out, NB * 2 * HW, &r, 0.5, 0.0);
    fill_normal(me, NB * HW, &r, 1.0, 0.0);
    for (int k = 0; k < NB * HW; k++) {
        se[k] = (float)exp(0.3 * rng_normal(&r));
        y[k] = yn[k] = (float)(me[k] + se[k] * rng_normal(&r));
        if (k % 5 == 1) yn[k] = NAN;
    }
    ctx_t ch = {.target = y, .a = me, .b = se, .nc = NB, .h = H, .w = W};
    check_fd(f_head, g_head, out, NB * 2 * HW, &ch, "crps_head");
    ch.target = yn;
    check_fd(f_headm, g_headm, out, NB * 2 * HW, &ch, "crps_head_masked");
}

/* ---- masking, accumulation and scale ---------------------------------------------------- */

static void test_masked_semantics(void **state)
{
    (void)state;
    enum { NC = 2, H = 3, W = 4, N = NC * H * W };
    rng_t r;
    rng_seed(&r, 5, 1);
    float p[N], t[N], tn[N], wl[H], d[N], d2[N];
    fill_normal(p, N, &r, 1.0, 0.0);
    fill_normal(t, N, &r, 1.0, 0.0);
    double lat[H] = {-45, 0, 45};
    loss_lat_weights(wl, lat, H);
    double wsum = 0;
    for (int i = 0; i < H; i++) wsum += wl[i];
    assert_close_scalar(wsum / H, 1.0, 1e-6, "lat weights mean");
    assert_close_scalar(wl[1] / wl[0], 1.0 / cos(PI_D / 4), 1e-6, "lat weight ratio");

    /* no NaN: masked == unmasked (values and gradients) */
    assert_close_scalar(loss_mse_masked_forward(p, t, N), loss_mse_forward(p, t, N), 1e-12, "mse");
    assert_close_scalar(loss_mae_masked_forward(p, t, N), loss_mae_forward(p, t, N), 1e-12, "mae");
    assert_close_scalar(loss_mse_lat_masked_forward(p, t, NC, H, W, wl),
                        loss_mse_lat_forward(p, t, NC, H, W, wl), 1e-6, "lat");
    memset(d, 0, sizeof d);
    memset(d2, 0, sizeof d2);
    loss_mse_backward(d, p, t, N, 1.0);
    loss_mse_masked_backward(d2, p, t, N, 1.0);
    assert_memory_equal(d, d2, sizeof d);

    /* NaN targets: equal to the loss over the valid points only (not zero-filled) */
    memcpy(tn, t, sizeof tn);
    float pv[N], tv[N];
    int nv = 0;
    for (int k = 0; k < N; k++) {
        if (k % 3 == 0) tn[k] = NAN;
        else {
            pv[nv] = p[k];
            tv[nv++] = t[k];
        }
    }
    assert_close_scalar(loss_mse_masked_forward(p, tn, N), loss_mse_forward(pv, tv, nv), 1e-12,
                        "mse masked = mse over valid");
    assert_close_scalar(loss_mae_masked_forward(p, tn, N), loss_mae_forward(pv, tv, nv), 1e-12,
                        "mae masked = mae over valid");
    assert_true(isnan(loss_mse_forward(p, tn, N)));
    memset(d, 0, sizeof d);
    loss_mse_masked_backward(d, p, tn, N, 1.0);
    loss_mae_masked_backward(d, p, tn, N, 1.0);
    loss_mse_lat_masked_backward(d, p, tn, NC, H, W, wl, 1.0);
    for (int k = 0; k < N; k += 3) assert_true(d[k] == 0.0f);

    /* all NaN: loss 0, nothing accumulated */
    float allnan[N];
    for (int k = 0; k < N; k++) allnan[k] = NAN;
    assert_true(loss_mse_masked_forward(p, allnan, N) == 0.0);
    assert_true(loss_mse_lat_masked_forward(p, allnan, NC, H, W, wl) == 0.0);
    assert_true(loss_crps_gauss_masked_forward(p, wl, allnan, 1) == 0.0);
    for (int k = 0; k < N; k++) d[k] = 1.0f;
    loss_mse_masked_backward(d, p, allnan, N, 1.0);
    loss_mae_masked_backward(d, p, allnan, N, 1.0);
    loss_mse_lat_masked_backward(d, p, allnan, NC, H, W, wl, 1.0);
    for (int k = 0; k < N; k++) assert_true(d[k] == 1.0f);

    /* backward accumulates: twice with scale 0.5 == once with scale 1 */
    memset(d, 0, sizeof d);
    memset(d2, 0, sizeof d2);
    loss_mse_lat_backward(d, p, t, NC, H, W, wl, 0.5);
    loss_mse_lat_backward(d, p, t, NC, H, W, wl, 0.5);
    loss_mse_lat_backward(d2, p, t, NC, H, W, wl, 1.0);
    assert_close_vec(d, d2, N, "accumulate");

    /* MAE gradient is 0 where pred == target (torch sign semantics) */
    float same[1] = {0.5f}, g1[1] = {0};
    loss_mae_backward(g1, same, same, 1, 1.0);
    assert_true(g1[0] == 0.0f);
}

/* ---- Gaussian CRPS against numerical integration ---------------------------------------- */

static double normal_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

/* CRPS = integral (F(x) - 1{x >= y})^2 dx by composite Simpson on [lo, y] and [y, hi]. */
static double crps_integral(double mu, double sigma, double y)
{
    double lo = fmin(mu, y) - 12 * sigma, hi = fmax(mu, y) + 12 * sigma;
    double total = 0;
    for (int part = 0; part < 2; part++) {
        double a = part ? y : lo, b = part ? hi : y, step = 0.5 * (b - a) / 20000;
        double s = 0;
        for (int i = 0; i <= 40000; i++) {
            double x = a + i * step, F = normal_cdf((x - mu) / sigma) - part;
            double wt = (i == 0 || i == 40000) ? 1 : (i % 2 ? 4 : 2);
            s += wt * F * F;
        }
        total += s * step / 3;
    }
    return total;
}

static void test_crps_gauss_against_integral(void **state)
{
    (void)state;
    const double cases[][3] = {{0, 1, 0}, {0, 1, 0.7}, {1.5, 0.3, -0.2}, {-2, 4, 3},
                               {10, 0.05, 10.02}, {0, 2, -6}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double mu = cases[i][0], sg = cases[i][1], y = cases[i][2];
        double c = loss_crps_gauss_point(mu, sg, y, NULL, NULL);
        assert_close_scalar(c, crps_integral(mu, sg, y), 1e-8, "crps vs integral");
        /* analytic derivatives against central differences of the closed form */
        double dm, ds, h = 1e-5 * sg;
        loss_crps_gauss_point(mu, sg, y, &dm, &ds);
        double fdm = (loss_crps_gauss_point(mu + h, sg, y, NULL, NULL) -
                      loss_crps_gauss_point(mu - h, sg, y, NULL, NULL)) / (2 * h);
        double fds = (loss_crps_gauss_point(mu, sg + h, y, NULL, NULL) -
                      loss_crps_gauss_point(mu, sg - h, y, NULL, NULL)) / (2 * h);
        assert_true(fabs(dm - fdm) < 1e-6);
        assert_true(fabs(ds - fds) < 1e-6);
    }
    /* known value: CRPS(N(0,1), 0) = 2 phi(0) - 1/sqrt(pi) = (sqrt(2) - 1)/sqrt(pi) */
    assert_close_scalar(loss_crps_gauss_point(0, 1, 0, NULL, NULL), (sqrt(2.0) - 1) / sqrt(PI_D),
                        1e-14, "crps at 0");
    /* sigma -> 0 limit */
    double dm, ds;
    assert_close_scalar(loss_crps_gauss_point(1.0, 0.0, 3.0, &dm, &ds), 2.0, 1e-15, "sigma 0");
    assert_true(dm == -1.0);
    assert_close_scalar(ds, -1 / sqrt(PI_D), 1e-15, "sigma 0 dsigma");
    assert_close_scalar(loss_crps_gauss_point(1.0, 1e-9, 3.0, NULL, NULL), 2.0, 1e-8, "tiny sigma");
    assert_true(isnan(loss_crps_gauss_point(0, -1, 0, &dm, &ds)));
    assert_true(isnan(dm));
}

/* ---- ensemble CRPS ---------------------------------------------------------------------- */

static double crps_ens_brute(const float *x, int m, double y, int fair)
{
    double a = 0, b = 0;
    for (int i = 0; i < m; i++) {
        a += fabs(x[i] - y);
        for (int l = 0; l < m; l++) b += fabs((double)x[i] - x[l]);
    }
    return a / m - b / (fair ? 2.0 * m * (m - 1) : 2.0 * m * m);
}

static void test_crps_ensemble(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 21, 4);
    const int sizes[] = {1, 2, 3, 10, 51, 256, 300};
    float *x = malloc(300 * sizeof *x);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int m = sizes[s];
        for (int trial = 0; trial < 5; trial++) {
            fill_normal(x, m, &r, 2.0, 1.0);
            if (trial == 4 && m > 2) x[1] = x[0]; /* ties */
            double y = 3.0 * rng_normal(&r);
            for (int fair = 0; fair <= 1; fair++) {
                if (fair && m < 2) {
                    assert_true(isnan(loss_crps_ensemble_point(x, 1, m, y, 1)));
                    continue;
                }
                assert_close_scalar(loss_crps_ensemble_point(x, 1, m, y, fair),
                                    crps_ens_brute(x, m, y, fair), 1e-10, "ensemble crps");
            }
        }
    }
    /* one member: |x - y| */
    float one = 2.5f;
    assert_close_scalar(loss_crps_ensemble_point(&one, 1, 1, -1.0, 0), 3.5, 1e-15, "m=1");

    /* field version: (m, n) layout, NaN targets skipped */
    enum { M = 10, NP = 7 };
    float ens[M * NP], y[NP], col[M];
    fill_normal(ens, M * NP, &r, 1.0, 0.0);
    fill_normal(y, NP, &r, 1.0, 0.0);
    y[3] = NAN;
    for (int fair = 0; fair <= 1; fair++) {
        double ref = 0;
        for (int k = 0; k < NP; k++) {
            if (k == 3) continue;
            for (int i = 0; i < M; i++) col[i] = ens[i * NP + k];
            ref += crps_ens_brute(col, M, y[k], fair);
        }
        size_t nv = 0;
        assert_close_scalar(loss_crps_ensemble_mean(ens, M, NP, y, fair, &nv), ref / (NP - 1),
                            1e-10, "ensemble mean");
        assert_int_equal(nv, NP - 1);
    }

    /* a large ensemble drawn from N(mu, sigma) approaches the Gaussian CRPS (fair form) */
    enum { BIG = 4000 };
    float *big = malloc(BIG * sizeof *big);
    fill_normal(big, BIG, &r, 1.5, 0.5);
    double ens_crps = loss_crps_ensemble_point(big, 1, BIG, 1.2, 1);
    double gauss = loss_crps_gauss_point(0.5, 1.5, 1.2, NULL, NULL);
    assert_true(fabs(ens_crps - gauss) < 0.03 * gauss);
    free(big);
    free(x);
}

/* ---- golden values from torch ----------------------------------------------------------- */

static float *gl(const char *var, size_t *n)
{
    return testutil_golden_load("loss_small.nc", var, n, NULL, NULL);
}

static void check_golden_value(double c, const char *var)
{
    float *v = gl(var, NULL);
    assert_close_scalar(c, v[0], 1e-6, var);
    free(v);
}

static void check_golden_grad(const float *c, size_t n, const char *var)
{
    size_t m;
    float *v = gl(var, &m);
    assert_int_equal(m, n);
    assert_close_vec(c, v, n, var);
    free(v);
}

static void test_golden_torch(void **state)
{
    (void)state;
    size_t n, nd, nh;
    int ndim;
    size_t shape[8];
    float *pred = testutil_golden_load("loss_small.nc", "pred", &n, &ndim, shape);
    assert_int_equal(ndim, 4);
    int nc = (int)(shape[0] * shape[1]), h = (int)shape[2], w = (int)shape[3];
    float *target = gl("target", NULL), *tnan = gl("target_nan", NULL);
    float *wlat_ref = gl("wlat", &nh), *latf = gl("lat", NULL);
    assert_int_equal(nh, (size_t)h);
    double lat[16];
    for (int i = 0; i < h; i++) lat[i] = latf[i];
    float wl[16];
    loss_lat_weights(wl, lat, h);
    assert_close_vec(wl, wlat_ref, h, "lat weights");
    float *d = calloc(n, sizeof *d), *d2 = calloc(n, sizeof *d2);

#define GOLD(name, fwd, bwd)                                                                  \
    do {                                                                                      \
        check_golden_value(fwd, name);                                                        \
        memset(d, 0, n * sizeof *d);                                                          \
        bwd;                                                                                  \
        check_golden_grad(d, n, name "_grad0");                                               \
    } while (0)
    GOLD("mse", loss_mse_forward(pred, target, n), loss_mse_backward(d, pred, target, n, 1));
    GOLD("mae", loss_mae_forward(pred, target, n), loss_mae_backward(d, pred, target, n, 1));
    GOLD("mse_lat", loss_mse_lat_forward(pred, target, nc, h, w, wl),
         loss_mse_lat_backward(d, pred, target, nc, h, w, wl, 1));
    GOLD("mse_masked", loss_mse_masked_forward(pred, tnan, n),
         loss_mse_masked_backward(d, pred, tnan, n, 1));
    GOLD("mae_masked", loss_mae_masked_forward(pred, tnan, n),
         loss_mae_masked_backward(d, pred, tnan, n, 1));
    GOLD("mse_lat_masked", loss_mse_lat_masked_forward(pred, tnan, nc, h, w, wl),
         loss_mse_lat_masked_backward(d, pred, tnan, nc, h, w, wl, 1));
#undef GOLD

    float *mu = gl("mu", &nd), *sg = gl("sigma", NULL);
    assert_int_equal(nd, n);
    check_golden_value(loss_crps_gauss_forward(mu, sg, target, n), "crps");
    memset(d, 0, n * sizeof *d);
    memset(d2, 0, n * sizeof *d2);
    loss_crps_gauss_backward(d, d2, mu, sg, target, n, 1);
    check_golden_grad(d, n, "crps_grad0");
    check_golden_grad(d2, n, "crps_grad1");
    check_golden_value(loss_crps_gauss_masked_forward(mu, sg, tnan, n), "crps_masked");
    memset(d, 0, n * sizeof *d);
    memset(d2, 0, n * sizeof *d2);
    loss_crps_gauss_masked_backward(d, d2, mu, sg, tnan, n, 1);
    check_golden_grad(d, n, "crps_masked_grad0");
    check_golden_grad(d2, n, "crps_masked_grad1");

    size_t no, nm;
    float *out = testutil_golden_load("loss_small.nc", "head_out", &no, &ndim, shape);
    float *me = gl("head_m_ens", &nm), *se = gl("head_s_ens", NULL);
    float *yh = gl("head_y", NULL), *yhn = gl("head_y_nan", NULL);
    int nb = (int)shape[0], hw = (int)(shape[2] * shape[3]);
    assert_int_equal(nm, (size_t)nb * hw);
    float *dout = calloc(no, sizeof *dout), *mo = malloc(nm * sizeof *mo), *so = malloc(nm * sizeof *so);
    check_golden_value(loss_crps_head_forward(out, me, se, yh, nb, hw, mo, so), "crps_head");
    for (size_t k = 0; k < nm; k++) {
        int b = (int)(k / hw), p = (int)(k % hw);
        assert_close_scalar(mo[k], out[(size_t)b * 2 * hw + p] * se[k] + me[k], 1e-6, "head mu");
        assert_close_scalar(so[k], exp(out[(size_t)b * 2 * hw + hw + p]) * se[k], 1e-6, "head sigma");
    }
    loss_crps_head_backward(dout, out, me, se, yh, nb, hw, 1);
    check_golden_grad(dout, no, "crps_head_grad0");
    check_golden_value(loss_crps_head_masked_forward(out, me, se, yhn, nb, hw, NULL, NULL),
                       "crps_head_masked");
    memset(dout, 0, no * sizeof *dout);
    loss_crps_head_masked_backward(dout, out, me, se, yhn, nb, hw, 1);
    check_golden_grad(dout, no, "crps_head_masked_grad0");

    free(out); free(me); free(se); free(yh); free(yhn); free(dout); free(mo); free(so);
    free(mu); free(sg);
    free(pred); free(target); free(tnan); free(wlat_ref); free(latf); free(d); free(d2);
}

/* Large inputs take the blocked OpenMP path: identical bits for 1 and 2 threads, and the same
 * values as a plain serial double loop. */
typedef struct {
    double v[8];
    float *g;
} big_result;

static void big_losses(int threads, const float *p, const float *t, const float *sg,
                       const float *out, int nb, int hw, const float *wl, int h, int w,
                       size_t n, big_result *r)
{
    omp_set_num_threads(threads);
    r->g = calloc(6 * n, sizeof *r->g);
    int nc = (int)(n / ((size_t)h * w));
    r->v[0] = loss_mse_forward(p, t, n);
    r->v[1] = loss_mae_masked_forward(p, t, n);
    r->v[2] = loss_mse_lat_masked_forward(p, t, nc, h, w, wl);
    r->v[3] = loss_crps_gauss_masked_forward(p, sg, t, n);
    r->v[4] = loss_crps_head_masked_forward(out, p, sg, t, nb, hw, NULL, NULL);
    r->v[5] = loss_mse_lat_forward(p, t, nc, h, w, wl);
    loss_mse_backward(r->g, p, t, n, 1.0);
    loss_mae_masked_backward(r->g + n, p, t, n, 1.0);
    loss_mse_lat_masked_backward(r->g + 2 * n, p, t, nc, h, w, wl, 1.0);
    loss_crps_gauss_masked_backward(r->g + 3 * n, r->g + 4 * n, p, sg, t, n, 1.0);
    loss_crps_head_masked_backward(r->g + 4 * n, out, p, sg, t, nb, hw, 1.0);
    omp_set_num_threads(2);
}

static void test_large_threads(void **state)
{
    (void)state;
    enum { H = 60, W = 120, NC = 12 };
    size_t n = (size_t)NC * H * W;
    rng_t r;
    rng_seed(&r, 99, 2);
    float *p = malloc(n * sizeof *p), *t = malloc(n * sizeof *t), *sg = malloc(n * sizeof *sg);
    float *out = malloc(2 * n * sizeof *out), wl[H];
    double lat[H];
    fill_normal(p, n, &r, 1.0, 0.0);
    fill_normal(t, n, &r, 1.0, 0.0);
    fill_normal(out, 2 * n, &r, 0.5, 0.0);
    for (size_t k = 0; k < n; k++) {
        sg[k] = (float)exp(0.3 * rng_normal(&r));
        if (k % 7 == 3) t[k] = NAN;
    }
    for (int i = 0; i < H; i++) lat[i] = -88.5 + 3.0 * i;
    loss_lat_weights(wl, lat, H);
    big_result a, b;
    big_losses(1, p, t, sg, out, NC, H * W, wl, H, W, n, &a);
    big_losses(2, p, t, sg, out, NC, H * W, wl, H, W, n, &b);
    assert_memory_equal(a.v, b.v, 6 * sizeof(double));
    assert_memory_equal(a.g, b.g, 6 * n * sizeof(float));
    /* serial reference */
    double s = 0, sw = 0, sm = 0, vm = 0, sc = 0;
    for (size_t k = 0; k < n; k++) {
        double d = (double)p[k] - t[k];
        if (isnan(t[k])) continue;
        double wi = wl[(k / W) % H];
        s += wi * d * d;
        sw += wi;
        sm += fabs(d);
        sc += loss_crps_gauss_point(p[k], sg[k], t[k], NULL, NULL);
        vm++;
    }
    assert_close_scalar(a.v[1], sm / vm, 1e-12, "mae masked big");
    assert_close_scalar(a.v[2], s / sw, 1e-12, "lat masked big");
    assert_close_scalar(a.v[3], sc / vm, 1e-12, "crps masked big");
    assert_true(isnan(a.v[0]) && isnan(a.v[5])); /* unmasked losses see the NaN targets */
    free(a.g);
    free(b.g);
    free(p);
    free(t);
    free(sg);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_masked_semantics),
        cmocka_unit_test(test_crps_gauss_against_integral),
        cmocka_unit_test(test_crps_ensemble),
        cmocka_unit_test(test_golden_torch),
        cmocka_unit_test(test_large_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
