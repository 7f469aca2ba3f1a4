/* Calibrated forecast output of `smoecast postprocess apply`: CF-1.8 NetCDF with the predictive
 * location and scale of a Gaussian forecast N(mu, sigma^2) (docs/postprocess.md).
 *
 *   <var>_mu, <var>_sigma   (forecast_reference_time, latitude, longitude) when every forecast
 *                           has the same lead (forecast_period is then a scalar coordinate),
 *                           else (forecast_reference_time, forecast_period, latitude, longitude);
 *                           units and standard_name of the target, long_name "predictive
 *                           mean / standard deviation of <target long name>", cell_methods
 *                           "realization: mean" / "realization: standard_deviation";
 *                           `time` (valid time) is an auxiliary coordinate.
 *   <var>_percentile        optional quantiles mu + sigma Phi^-1(p / 100) on a `percentile`
 *                           coordinate (units "%"), dims (frt, [fp], percentile, lat, lon)
 *   <var>                   optional calibrated members mu + sigma Phi^-1((k + 0.5) / N),
 *                           k = 0 .. N-1 (equidistant quantiles) on a `realization`
 *                           coordinate, dims (frt, [fp], realization, lat, lon)
 * Missing (reference time, lead) combinations and NaN points are NaN (_FillValue). */
#ifndef SMOECAST_POST_POST_OUTPUT_H
#define SMOECAST_POST_POST_OUTPUT_H

#include <stddef.h>

#define POST_MAX_QUANTILES 99

typedef struct {
    const char *var;                      /* base name of the output variables */
    const char *units, *standard_name, *long_name;  /* of the target (long_name nullable) */
    const char *calendar;
    int is_latlon, H, W;
    const double *lat, *lon;
    int T;                                /* forecasts */
    const double *ref, *period;           /* reference time (hours since 1970) and lead (hours) of each */
    const float *mu, *sigma;              /* (T, H * W) */
    int nq;
    const double *percentiles;            /* nq values in (0, 100) */
    int n_members;                        /* 0: none */
    /* provenance */
    const char *history, *model_path, *method, *model_target, *forecast_path, *extra_text;
    double sigma_floor;
} post_output;

int post_output_write(const char *path, const post_output *o);

/* Inverse of the standard normal CDF for 0 < p < 1 (Acklam's rational approximation with one
 * Halley refinement step, |error| < 1e-14 in z). NaN outside (0, 1). */
double post_norm_ppf(double p);

/* Parses "10,50,90" (values strictly between 0 and 100) into out (at most max). */
int post_parse_percentiles(const char *text, double *out, int max, int *n);

#endif
