/* Deterministic forecast scores (METHODS.md section 4): latitude-weighted RMSE in both forms,
 * ACC against a climatology, bias and MAE, NaN-aware and optionally restricted to a region mask.
 *
 * Layout: a forecast field and its verifying observation are (H, W) float arrays, row-major
 * (latitude rows). `wlat` holds H row weights w_j = cos(lat_j) / mean_j cos(lat_j) (grid.h
 * area_weight; NULL means 1 for every row, as for x/y grids). `mask` (H*W bytes, nonzero = use
 * the point; NULL = every point) restricts a score to a region (eval/regions.h). A point where
 * f, o (or the climatology, for ACC) is NaN is skipped and the weights of the remaining points
 * are renormalised: every weighted mean is sum(w x) / sum(w) over the valid points.
 *
 * Scores are accumulated one forecast field at a time (eval_det_add), so the caller can stream
 * forecasts from files; eval_det_scores() wraps that for an (n, H, W) stack. All sums are in
 * double precision. See docs/scores.md for the formulas and which RMSE form a table shows. */
#ifndef SMOECAST_EVAL_SCORES_H
#define SMOECAST_EVAL_SCORES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    /* sums over every valid (t, i, j) */
    double sw;            /* sum w */
    double sw_se;         /* sum w (f - o)^2 */
    double sw_ae;         /* sum w |f - o| */
    double sw_err;        /* sum w (f - o) */
    double n_points;      /* number of valid (t, i, j) */
    /* per-forecast quantities */
    double sum_rmse_fc;   /* sum over forecasts of per-forecast RMSE */
    long n_fc;            /* forecasts with at least one valid point */
    double sum_acc;       /* sum over forecasts of per-forecast ACC */
    long n_acc;           /* forecasts with a defined ACC (a climatology and nonzero variance) */
} eval_det_acc;

typedef struct {
    double rmse;          /* HEADLINE: sqrt(sum_{t,i,j} w (f-o)^2 / sum w) (time mean before root) */
    double rmse_mean_fc;  /* mean over forecasts of per-forecast RMSE sqrt(sum_ij w (f-o)^2 / sum_ij w) */
    double bias;          /* sum w (f - o) / sum w */
    double mae;           /* sum w |f - o| / sum w */
    double acc;           /* mean over forecasts of per-forecast ACC; NaN without a climatology */
    double n_points;      /* valid (t, i, j) used */
    long n_forecasts;     /* forecasts with at least one valid point */
    long n_acc;           /* forecasts that contributed to acc */
} eval_det_result;

void eval_det_init(eval_det_acc *acc);
/* Adds one forecast field f with observation o (both H x W). clim (H x W, nullable) is the
 * climatology valid at the same time, used for ACC only. */
void eval_det_add(eval_det_acc *acc, const float *f, const float *o, const float *clim, int h,
                  int w, const double *wlat, const uint8_t *mask);
/* Fills `out`; scores with no valid point are NaN. */
void eval_det_finish(const eval_det_acc *acc, eval_det_result *out);
/* Convenience: n forecasts f, o (n, H, W), clim (n, H, W) or NULL. */
void eval_det_scores(const float *f, const float *o, const float *clim, int n, int h, int w,
                     const double *wlat, const uint8_t *mask, eval_det_result *out);

/* ACC of one forecast field (H x W): f' = (f - C) - mean_w(f - C), o' likewise,
 * ACC = sum w f' o' / sqrt(sum w f'^2 sum w o'^2) over the valid points, the means being
 * w-weighted. NaN when no point is valid or either anomaly has zero variance. */
double eval_acc_field(const float *f, const float *o, const float *clim, int h, int w,
                      const double *wlat, const uint8_t *mask);

/* Latitude weights w_j = cos(lat_j) / mean_j cos(lat_j) for n latitudes in degrees. */
void eval_lat_weights(const double *lat_deg, int n, double *w);

#endif
