/* Probabilistic scores: CRPS (Gaussian, ensemble), spread-skill, PIT / ranks, coverage, EFI,
 * EECRPS; see prob_scores.h and docs/scores.md. */
#include "eval/prob_scores.h"
#include "nn/loss.h"

#include "core/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define INV_SQRT_PI 0.56418958354775628695
#define INV_SQRT_2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794
#define PI_D 3.14159265358979323846
#define SORT_MAX 256

double eval_norm_cdf(double z) { return 0.5 * erfc(-z * INV_SQRT_2); }

/* The scores and the training loss share one implementation (nn/loss.h). */
double eval_crps_gauss(double mu, double sigma, double y, double *dmu, double *dsigma)
{
    return loss_crps_gauss_point(mu, sigma, y, dmu, dsigma);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* sum_{i,l} |x_i - x_l| of sorted values */
static double pair_sum_sorted(const double *s, int m)
{
    double r = 0.0;
    for (int i = 0; i < m; i++) r += (2.0 * i - (m - 1)) * s[i];
    return 2.0 * r;
}

double eval_crps_ens(const float *x, size_t stride, int m, double y, int fair)
{
    return loss_crps_ensemble_point(x, stride, m, y, fair);
}

double eval_pit_gauss(double mu, double sigma, double y)
{
    if (isnan(mu) || isnan(sigma) || isnan(y) || sigma < 0) return NAN;
    if (sigma == 0.0) return y > mu ? 1.0 : (y < mu ? 0.0 : 0.5);
    return eval_norm_cdf((y - mu) / sigma);
}

int eval_rank(const float *x, size_t stride, int m, double y, rng_t *rng)
{
    if (isnan(y)) return -1;
    int lo = 0, eq = 0;
    for (int i = 0; i < m; i++) {
        double xi = x[(size_t)i * stride];
        if (isnan(xi)) return -1;
        lo += xi < y;
        eq += xi == y;
    }
    return eq ? lo + (int)rng_below(rng, (uint32_t)eq + 1u) : lo;
}

double eval_quantile_sorted(const double *s, int n, double p)
{
    if (n < 1) return NAN;
    double pos = p * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return s[n - 1];
    if (i < 0) return s[0];
    double f = pos - i;
    return s[i] + f * (s[i + 1] - s[i]);
}

/* ---- accumulators ------------------------------------------------------------------------ */

static int prob_init(eval_prob_acc *acc, int ensemble, int m, int nbins)
{
    memset(acc, 0, sizeof *acc);
    acc->ensemble = ensemble;
    acc->m = m;
    acc->nbins = nbins;
    acc->hist = calloc((size_t)nbins, sizeof *acc->hist);
    if (!acc->hist) return sm_fail(SM_ERR_NUMERIC, "probabilistic scores: out of memory");
    return SM_OK;
}

int eval_prob_init_gauss(eval_prob_acc *acc, int n_pit_bins)
{
    if (n_pit_bins < 1)
        return sm_fail(SM_ERR_USAGE, "PIT histogram: need at least 1 bin (got %d)", n_pit_bins);
    return prob_init(acc, 0, 0, n_pit_bins);
}

int eval_prob_init_ens(eval_prob_acc *acc, int m)
{
    if (m < 2)
        return sm_fail(SM_ERR_USAGE, "ensemble scores: need at least 2 members (got %d)", m);
    return prob_init(acc, 1, m, m + 1);
}

void eval_prob_free(eval_prob_acc *acc)
{
    free(acc->hist);
    acc->hist = NULL;
}

static void add_eecrps(eval_prob_acc *acc, const float *efi, size_t k, double wi, double c, double cf)
{
    if (!efi || !isfinite(efi[k])) return;
    double a = fabs((double)efi[k]);
    acc->sw_efi += wi;
    acc->sw_eecrps += wi * a * c;
    acc->sw_eecrps_fair += wi * a * cf;
}

void eval_prob_add_gauss(eval_prob_acc *acc, const float *mu, const float *sigma, const float *y,
                         int h, int w, const double *wlat, const uint8_t *mask, const float *efi)
{
    for (int i = 0; i < h; i++) {
        double wi = wlat ? wlat[i] : 1.0;
        for (int j = 0; j < w; j++) {
            size_t k = (size_t)i * w + j;
            if (mask && !mask[k]) continue;
            double c = eval_crps_gauss(mu[k], sigma[k], y[k], NULL, NULL);
            if (isnan(c)) continue;
            double d = (double)mu[k] - y[k], s = sigma[k];
            acc->sw += wi;
            acc->sw_crps += wi * c;
            acc->sw_se += wi * d * d;
            acc->sw_var += wi * s * s;
            acc->sw_cover += fabs(d) <= EVAL_Z90 * s ? wi : 0.0;
            acc->n_points += 1.0;
            int b = (int)floor(eval_pit_gauss(mu[k], s, y[k]) * acc->nbins);
            if (b >= acc->nbins) b = acc->nbins - 1;
            if (b < 0) b = 0;
            acc->hist[b] += 1.0;
            add_eecrps(acc, efi, k, wi, c, NAN);
        }
    }
}

int eval_prob_add_ens(eval_prob_acc *acc, const float *ens, const float *y, int h, int w,
                      const double *wlat, const uint8_t *mask, rng_t *rng, const float *efi)
{
    size_t hw = (size_t)h * w;
    int m = acc->m;
    double *buf = malloc((size_t)m * sizeof *buf);
    if (!buf) return sm_fail(SM_ERR_NUMERIC, "ensemble scores: out of memory");
    const double md = (double)m;
    for (int i = 0; i < h; i++) {
        double wi = wlat ? wlat[i] : 1.0;
        for (int j = 0; j < w; j++) {
            size_t k = (size_t)i * w + j;
            if (mask && !mask[k]) continue;
            if (isnan(y[k])) continue;
            double yk = y[k], mean = 0.0, skill = 0.0;
            int bad = 0;
            for (int e = 0; e < m; e++) {
                buf[e] = ens[(size_t)e * hw + k];
                bad |= isnan(buf[e]);
                mean += buf[e];
                skill += fabs(buf[e] - yk);
            }
            if (bad) continue;
            mean /= md;
            double var = 0.0;
            for (int e = 0; e < m; e++) var += (buf[e] - mean) * (buf[e] - mean);
            var /= (md - 1.0);
            qsort(buf, (size_t)m, sizeof *buf, cmp_double);
            double pairs = pair_sum_sorted(buf, m);
            double c = skill / md - pairs / (2.0 * md * md);
            double cf = skill / md - pairs / (2.0 * md * (md - 1.0));
            double q10 = eval_quantile_sorted(buf, m, 0.1), q90 = eval_quantile_sorted(buf, m, 0.9);
            double d = mean - yk;
            acc->sw += wi;
            acc->sw_crps += wi * c;
            acc->sw_crps_fair += wi * cf;
            acc->sw_se += wi * d * d;
            acc->sw_var += wi * var;
            acc->sw_cover += (yk >= q10 && yk <= q90) ? wi : 0.0;
            acc->n_points += 1.0;
            acc->hist[eval_rank(ens + k, hw, m, yk, rng)] += 1.0;
            add_eecrps(acc, efi, k, wi, c, cf);
        }
    }
    free(buf);
    return SM_OK;
}

void eval_crps_gauss_field(const float *mu, const float *sigma, const float *y, size_t n,
                           float *crps)
{
    for (size_t k = 0; k < n; k++) crps[k] = (float)eval_crps_gauss(mu[k], sigma[k], y[k], NULL, NULL);
}

void eval_crps_ens_field(const float *ens, int m, const float *y, size_t n, int fair, float *crps)
{
    for (size_t k = 0; k < n; k++) crps[k] = (float)eval_crps_ens(ens + k, n, m, y[k], fair);
}

void eval_prob_finish(const eval_prob_acc *acc, eval_prob_result *out)
{
    int ok = acc->sw > 0.0;
    out->crps = ok ? acc->sw_crps / acc->sw : NAN;
    out->crps_fair = ok && acc->ensemble ? acc->sw_crps_fair / acc->sw : NAN;
    out->rmse = ok ? sqrt(acc->sw_se / acc->sw) : NAN;
    out->spread = ok ? sqrt(acc->sw_var / acc->sw) : NAN;
    out->ssr_uncorrected = ok && out->rmse > 0 ? out->spread / out->rmse : NAN;
    double corr = acc->ensemble ? sqrt((acc->m + 1.0) / acc->m) : 1.0;
    out->ssr = out->ssr_uncorrected * corr;
    out->coverage80 = ok ? acc->sw_cover / acc->sw : NAN;
    int oke = acc->sw_efi > 0.0;
    out->eecrps = oke ? acc->sw_eecrps / acc->sw_efi : NAN;
    out->eecrps_fair = oke && acc->ensemble ? acc->sw_eecrps_fair / acc->sw_efi : NAN;
    out->n_points = acc->n_points;
}

static const char *const k_pm[EVAL_PM_COUNT] = {"crps", "crps_fair", "rmse", "spread", "ssr",
                                                 "ssr_uncorrected", "coverage80", "eecrps",
                                                 "eecrps_fair"};

const char *eval_prob_metric_name(eval_prob_metric m)
{
    return (m >= 0 && m < EVAL_PM_COUNT) ? k_pm[m] : "unknown";
}

void eval_prob_result_values(const eval_prob_result *r, double *out)
{
    out[EVAL_PM_CRPS] = r->crps;
    out[EVAL_PM_CRPS_FAIR] = r->crps_fair;
    out[EVAL_PM_RMSE] = r->rmse;
    out[EVAL_PM_SPREAD] = r->spread;
    out[EVAL_PM_SSR] = r->ssr;
    out[EVAL_PM_SSR_UNCORRECTED] = r->ssr_uncorrected;
    out[EVAL_PM_COVERAGE80] = r->coverage80;
    out[EVAL_PM_EECRPS] = r->eecrps;
    out[EVAL_PM_EECRPS_FAIR] = r->eecrps_fair;
}

/* ---- EFI --------------------------------------------------------------------------------- */

int eval_efi_clim_quantiles(const float *clim, int nc, size_t npts, float *q)
{
    double *buf = malloc((size_t)(nc > 0 ? nc : 1) * sizeof *buf);
    if (!buf) return sm_fail(SM_ERR_NUMERIC, "EFI: out of memory for %d climate samples", nc);
    for (size_t p = 0; p < npts; p++) {
        int n = 0;
        for (int t = 0; t < nc; t++) {
            float v = clim[(size_t)t * npts + p];
            if (!isnan(v)) buf[n++] = v;
        }
        qsort(buf, (size_t)n, sizeof *buf, cmp_double);
        for (int k = 0; k < EVAL_EFI_NQ; k++)
            q[(size_t)k * npts + p] = n ? (float)eval_quantile_sorted(buf, n, (k + 1) / 20.0) : NAN;
    }
    free(buf);
    return SM_OK;
}

double eval_efi_point(const float *x, size_t stride, int m, const float *q, size_t qstride)
{
    if (m < 1) return NAN;
    for (int i = 0; i < m; i++)
        if (isnan(x[(size_t)i * stride])) return NAN;
    double s = 0.0;
    for (int k = 0; k < EVAL_EFI_NQ; k++) {
        double qk = q[(size_t)k * qstride];
        if (isnan(qk)) return NAN;
        double below = 0.0;
        for (int i = 0; i < m; i++) {
            double xi = x[(size_t)i * stride];
            below += xi < qk ? 1.0 : (xi == qk ? 0.5 : 0.0);
        }
        double p = (k + 1) / 20.0;
        s += (p - below / m) / sqrt(p * (1.0 - p));
    }
    return (2.0 / PI_D) * s * 0.05;
}

double eval_efi_gauss_point(double mu, double sigma, const float *q, size_t qstride)
{
    if (isnan(mu) || isnan(sigma) || sigma < 0) return NAN;
    double s = 0.0;
    for (int k = 0; k < EVAL_EFI_NQ; k++) {
        double qk = q[(size_t)k * qstride];
        if (isnan(qk)) return NAN;
        double F = sigma > 0 ? eval_norm_cdf((qk - mu) / sigma) : (qk > mu ? 1.0 : (qk < mu ? 0.0 : 0.5));
        double p = (k + 1) / 20.0;
        s += (p - F) / sqrt(p * (1.0 - p));
    }
    return (2.0 / PI_D) * s * 0.05;
}

void eval_efi_field(const float *ens, int m, const float *q, size_t npts, float *efi)
{
    for (size_t p = 0; p < npts; p++)
        efi[p] = (float)eval_efi_point(ens + p, npts, m, q + p, npts);
}

double eval_efi_max(void)
{
    double s = 0.0;
    for (int k = 1; k <= EVAL_EFI_NQ; k++) {
        double p = k / 20.0;
        s += p / sqrt(p * (1.0 - p));
    }
    return (2.0 / PI_D) * s * 0.05;
}

double eval_eecrps(const float *efi, const float *crps, size_t n, size_t *nvalid)
{
    double s = 0.0;
    size_t v = 0;
    for (size_t k = 0; k < n; k++) {
        if (!isfinite(efi[k]) || !isfinite(crps[k])) continue;
        s += fabs((double)efi[k]) * crps[k];
        v++;
    }
    if (nvalid) *nvalid = v;
    return v ? s / (double)v : NAN;
}
