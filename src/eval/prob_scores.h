/* Probabilistic scores (METHODS.md section 5): Gaussian CRPS, ensemble CRPS (standard and
 * fair), spread-skill ratio, PIT / rank histograms, coverage of the central 80 % interval,
 * the extreme forecast index (EFI) and EECRPS. All in double precision.
 *
 * Field layout as in eval/scores.h: fields are (H, W) row-major, wlat holds H row weights
 * (NULL = 1), mask H*W bytes (NULL = all points); a point whose observation, mu/sigma or any
 * member is NaN is skipped and the weights renormalised. Ensembles are MEMBER-MAJOR:
 * ens[k * H*W + p] is member k at point p (as (members, lat, lon) in the files).
 * Formulas: docs/scores.md. */
#ifndef SMOECAST_EVAL_PROB_SCORES_H
#define SMOECAST_EVAL_PROB_SCORES_H

#include "core/rng.h"

#include <stddef.h>
#include <stdint.h>

/* z of the central 80 % interval: Phi(EVAL_Z90) = 0.9. */
#define EVAL_Z90 1.2815515655446004

double eval_norm_cdf(double z);
/* Gaussian CRPS, z = (y - mu) / sigma:  sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)];
 * dmu = 1 - 2 Phi(z), dsigma = 2 phi(z) - 1/sqrt(pi) (nullable). sigma == 0 gives the limit
 * |y - mu| (dmu = sign(mu - y), dsigma = -1/sqrt(pi)); sigma < 0 or NaN input gives NaN.
 * Same conventions as loss_crps_gauss_point in nn/loss.h (the training loss). */
double eval_crps_gauss(double mu, double sigma, double y, double *dmu, double *dsigma);
/* Ensemble CRPS of m members x[k * stride] against y:
 *   standard: mean_i |x_i - y| - 1/(2 m^2)      sum_{i,l} |x_i - x_l|
 *   fair:     mean_i |x_i - y| - 1/(2 m (m-1))  sum_{i,l} |x_i - x_l|
 * O(m log m) through the sorted members. NaN if y or a member is NaN, m < 1, or fair with m < 2. */
double eval_crps_ens(const float *x, size_t stride, int m, double y, int fair);
/* PIT of a Gaussian forecast: Phi((y - mu) / sigma) (sigma 0: 0, 0.5 or 1). */
double eval_pit_gauss(double mu, double sigma, double y);
/* Rank of y among m members, 0..m: #members < y, plus a uniform draw in 0..#members == y
 * (ties broken at random with `rng`). -1 if anything is NaN. */
int eval_rank(const float *x, size_t stride, int m, double y, rng_t *rng);
/* Quantile p of n values sorted ascending (no NaN), linear interpolation (numpy default). */
double eval_quantile_sorted(const double *sorted, int n, double p);

/* Per-point CRPS of n points (for EECRPS and maps): mu, sigma, y, crps (n); ens (m, n). */
void eval_crps_gauss_field(const float *mu, const float *sigma, const float *y, size_t n,
                           float *crps);
void eval_crps_ens_field(const float *ens, int m, const float *y, size_t n, int fair, float *crps);

/* ---- accumulated scores over fields ------------------------------------------------------ */
typedef struct {
    int ensemble;          /* 0: Gaussian (mu, sigma), 1: m-member ensemble */
    int m;                 /* members (ensemble) */
    int nbins;             /* histogram bins: PIT bins (Gaussian) or m + 1 ranks (ensemble) */
    double *hist;          /* nbins counts (unweighted) */
    double sw, sw_crps, sw_crps_fair, sw_se, sw_var, sw_cover, n_points;
    double sw_efi, sw_eecrps, sw_eecrps_fair;   /* over points with a finite EFI */
} eval_prob_acc;

typedef struct {
    double crps;           /* mean CRPS (Gaussian, or standard ensemble form) */
    double crps_fair;      /* fair ensemble CRPS (NaN for Gaussian forecasts) */
    double rmse;           /* RMSE of mu / of the ensemble mean (time mean before the root) */
    double spread;         /* sqrt(weighted mean of sigma^2 / of the unbiased member variance) */
    double ssr;            /* spread-skill ratio; ensembles: sqrt((m+1)/m) spread / rmse */
    double ssr_uncorrected;/* spread / rmse */
    double coverage80;     /* fraction of obs inside the central 80 % interval */
    double eecrps;         /* weighted mean |EFI| * CRPS over points with an EFI (NaN if none) */
    double eecrps_fair;    /* the same with the fair ensemble CRPS (NaN for Gaussian) */
    double n_points;
} eval_prob_result;

/* Metric order and names for the scores NetCDF `metric` axis (probabilistic output). */
typedef enum {
    EVAL_PM_CRPS = 0, EVAL_PM_CRPS_FAIR, EVAL_PM_RMSE, EVAL_PM_SPREAD, EVAL_PM_SSR,
    EVAL_PM_SSR_UNCORRECTED, EVAL_PM_COVERAGE80, EVAL_PM_EECRPS, EVAL_PM_EECRPS_FAIR,
    EVAL_PM_COUNT
} eval_prob_metric;
/* "crps", "crps_fair", "rmse", "spread", "ssr", "ssr_uncorrected", "coverage80", "eecrps",
 * "eecrps_fair" */
const char *eval_prob_metric_name(eval_prob_metric m);
/* The result's values in eval_prob_metric order (out[EVAL_PM_COUNT]). */
void eval_prob_result_values(const eval_prob_result *r, double *out);

/* Gaussian accumulator with n_pit_bins PIT bins, or ensemble accumulator for m members
 * (m + 1 rank bins). SM_ERR_USAGE for bad sizes, SM_ERR_NUMERIC when out of memory. */
int eval_prob_init_gauss(eval_prob_acc *acc, int n_pit_bins);
int eval_prob_init_ens(eval_prob_acc *acc, int m);
void eval_prob_free(eval_prob_acc *acc);
/* One field: mu, sigma, y (H x W). efi (H x W, nullable): the EFI of the raw ensemble at the
 * same points and date, for EECRPS (points with a NaN EFI are left out of EECRPS only). */
void eval_prob_add_gauss(eval_prob_acc *acc, const float *mu, const float *sigma, const float *y,
                         int h, int w, const double *wlat, const uint8_t *mask, const float *efi);
/* One field: ens (m, H, W) member-major, y (H x W); rng breaks rank ties; efi as above.
 * SM_ERR_NUMERIC when out of memory. */
int eval_prob_add_ens(eval_prob_acc *acc, const float *ens, const float *y, int h, int w,
                      const double *wlat, const uint8_t *mask, rng_t *rng, const float *efi);
void eval_prob_finish(const eval_prob_acc *acc, eval_prob_result *out);

/* ---- extreme forecast index -------------------------------------------------------------- */
#define EVAL_EFI_NQ 19     /* p_k = k / 20, k = 1..19 */

/* Model-climate quantiles q_clim(p_k) per point from a climate sample clim (nc, npts)
 * (e.g. past forecasts of the same season), linear interpolation, NaNs ignored;
 * q is (EVAL_EFI_NQ, npts); NaN where a point has no valid sample. SM_ERR_NUMERIC on OOM. */
int eval_efi_clim_quantiles(const float *clim, int nc, size_t npts, float *q);
/* EFI = (2/pi) sum_{k=1..19} (p_k - F_ens(q_k)) / sqrt(p_k (1 - p_k)) * 0.05, with
 * F_ens(q) = (#members < q + 0.5 #members == q) / m. q[k * qstride], members x[i * stride].
 * NaN if a quantile or member is NaN. */
double eval_efi_point(const float *x, size_t stride, int m, const float *q, size_t qstride);
/* EFI of a Gaussian forecast N(mu, sigma^2): F_ens replaced by Phi((q - mu) / sigma). */
double eval_efi_gauss_point(double mu, double sigma, const float *q, size_t qstride);
/* EFI of every point: ens (m, npts), q (EVAL_EFI_NQ, npts) -> efi (npts). */
void eval_efi_field(const float *ens, int m, const float *q, size_t npts, float *efi);
/* |EFI| of an ensemble entirely beyond the climate (all F = 0 or all 1): with the 19-point
 * sum this is (2/pi) 0.05 sum_k sqrt(p_k / (1 - p_k)) = 0.7915..., not 1 (the continuous
 * integral's limit). */
double eval_efi_max(void);
/* EECRPS = mean of |EFI| * CRPS over the points where both are finite; *nvalid nullable.
 * ENS-10 convention: the EFI is that of the raw ensemble against the model climate, the same
 * weights for every method, so the EECRPS of different methods are comparable. */
double eval_eecrps(const float *efi, const float *crps, size_t n, size_t *nvalid);

#endif
