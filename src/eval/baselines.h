/* Reference forecasts for `smoecast evaluate`, always computed from the data (never copied):
 * persistence, climatology per hour of day and day of year (training period only, smoothed
 * over a +-N day window) and damped anomaly persistence with its damping fitted per lead by
 * least squares on the training period. Also the proleptic Gregorian calendar helpers.
 *
 * Times are hours since 1970-01-01T00:00 UTC (double); `times` arrays are strictly ascending.
 * Data are (T, H, W) float arrays, NaN = missing. Formulas: docs/scores.md. */
#ifndef SMOECAST_EVAL_BASELINES_H
#define SMOECAST_EVAL_BASELINES_H

#include <stdint.h>

/* ---- calendar (proleptic Gregorian, UTC) ------------------------------------------------ */
typedef struct {
    int year, month, day;   /* month 1..12, day 1..31 */
    int hour, minute;       /* rounded to the nearest minute */
    int doy;                /* actual day of year, 1..365 or 1..366 */
} eval_date;

void eval_time_split(double hours_since_1970, eval_date *d);
/* Hours since 1970-01-01 of a date (inverse of eval_time_split). */
double eval_time_make(int year, int month, int day, int hour, int minute);
int eval_is_leap(int year);
/* Day of year on a leap-year calendar, 1..366: Jan 1 = 1, Feb 29 = 60, Mar 1 = 61 in EVERY
 * year (non-leap years skip 60), so the same date maps to the same bin in all years. */
int eval_clim_doy(double hours_since_1970);
int eval_hour_of_day(double hours_since_1970);   /* 0..23 */

/* Index of time t in times[0..T-1] (tolerance 1e-3 h) or -1. */
int eval_time_index(const double *times, int T, double t);

/* ---- persistence ------------------------------------------------------------------------ */
/* out (H x W) = data at init_time (the field at initialisation, whatever the lead).
 * SM_ERR_USAGE when init_time is not in times. */
int eval_persistence(const double *times, const float *data, int T, int h, int w,
                     double init_time, float *out);

/* ---- climatology ------------------------------------------------------------------------ */
typedef struct {
    int by_doy;        /* 1: a value per day of year (eval_clim_doy); 0: one for all days */
    int window_days;   /* with by_doy: mean over days within +-window_days (circular, 366) */
    int by_hour;       /* 1: a value per hour of day present in the data; 0: all hours pooled */
} eval_clim_opts;

typedef struct {
    int h, w;
    eval_clim_opts opts;
    int n_doy;         /* 366 when by_doy, else 1 */
    int n_hours;       /* number of hour slots (distinct hours of day of the training times) */
    int hours[24];     /* hour of day of each slot, ascending (hours[0] = -1 when !by_hour) */
    float *mean;       /* (n_doy, n_hours, H, W) */
} eval_clim;

/* Fits the climatology on the training arrays (pass the training period only). For each
 * (day bin d, hour slot s, point) the value is the mean of all non-NaN samples whose hour is s
 * and whose day bin lies within +-window_days of d. A bin with no sample in that window takes
 * the point's annual + semi-annual harmonic fit when the training days cover at least half the
 * year (so a climatology fitted on Jan-Oct bridges Nov-Dec), otherwise the nearest samples (the
 * window is widened one day at a time until it holds one); NaN only if the point has no
 * sample at all at that hour. SM_ERR_USAGE on bad shapes / no times, SM_ERR_NUMERIC if out of
 * memory. */
int eval_clim_fit(const double *times, const float *data, int T, int h, int w,
                  const eval_clim_opts *opts, eval_clim **out);
void eval_clim_free(eval_clim *c);
/* Climatology valid at `time` (H x W). An hour of day absent from the training data uses the
 * circularly nearest hour slot (the earlier one on a tie). */
void eval_clim_at(const eval_clim *c, double time, float *out);

/* ---- damped anomaly persistence --------------------------------------------------------- */
/* Anomaly a(t) = x(t) - C(t); forecast x^(t+L) = C(t+L) + alpha_L a(t). alpha_L minimises
 * sum (a(t+L) - alpha a(t))^2 over every pair of training times (t, t+L) present in `times`
 * and every valid point: alpha = sum w a(t) a(t+L) / sum w a(t)^2 with latitude weights wlat
 * (nullable). per_point = 0: one alpha (alpha[0]); per_point = 1: one per grid point
 * (alpha[H*W], each from its own time series; 0 where the point has no pair). *npairs
 * (nullable) receives the number of time pairs. SM_ERR_USAGE when there is no pair. */
int eval_damped_fit(const eval_clim *c, const double *times, const float *data, int T, int h,
                    int w, const double *wlat, double lead_hours, int per_point, double *alpha,
                    long *npairs);
/* out (H x W) = C(init+L) + alpha (x(init) - C(init)). SM_ERR_NUMERIC if out of memory. */
int eval_damped_forecast(const eval_clim *c, const double *alpha, int per_point,
                          const float *init_field, double init_time, double lead_hours,
                          float *out);

#endif
