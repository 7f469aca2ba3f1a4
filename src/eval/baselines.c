/* Persistence, climatology and damped anomaly persistence baselines; calendar helpers.
 * See baselines.h and docs/scores.md. */
#include "eval/baselines.h"

#include "core/log.h"
#include "io/cf_time.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- calendar ---------------------------------------------------------------------------- */

/* Proleptic Gregorian dates through io/cf_time. */

int eval_is_leap(int y)
{
    const cf_date feb29 = {y, 2, 29, 0, 0, 0.0};
    return cf_date_valid(&feb29, CAL_PROLEPTIC);
}

void eval_time_split(double hours, eval_date *d)
{
    /* rounded to the minute first, so the date never carries seconds */
    double minutes = floor(hours * 60.0 + 0.5);
    cf_date c;
    cf_hours_to_date(minutes / 60.0, CAL_PROLEPTIC, &c);
    d->year = c.year;
    d->month = c.month;
    d->day = c.day;
    d->hour = c.hour;
    d->minute = c.minute;
    const cf_date jan1 = {c.year, 1, 1, 0, 0, 0.0};
    d->doy = (int)(floor(minutes / 1440.0) - cf_date_to_hours(&jan1, CAL_PROLEPTIC) / 24.0) + 1;
}

double eval_time_make(int year, int month, int day, int hour, int minute)
{
    const cf_date d = {year, month, day, hour, minute, 0.0};
    return cf_date_to_hours(&d, CAL_PROLEPTIC);
}

int eval_clim_doy(double hours)
{
    eval_date d;
    eval_time_split(hours, &d);
    if (!eval_is_leap(d.year) && d.doy >= 60) return d.doy + 1;
    return d.doy;
}

int eval_hour_of_day(double hours)
{
    eval_date d;
    eval_time_split(hours, &d);
    return d.hour;
}

int eval_time_index(const double *times, int T, double t)
{
    int lo = 0, hi = T - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (fabs(times[mid] - t) <= 1e-3) return mid;
        if (times[mid] < t) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* ---- persistence ------------------------------------------------------------------------- */

int eval_persistence(const double *times, const float *data, int T, int h, int w,
                     double init_time, float *out)
{
    int k = eval_time_index(times, T, init_time);
    if (k < 0)
        return sm_fail(SM_ERR_USAGE, "persistence: init time %.3f h since 1970 is not in the "
                       "truth data; choose an init inside the dataset", init_time);
    size_t hw = (size_t)h * w;
    memcpy(out, data + (size_t)k * hw, hw * sizeof *out);
    return SM_OK;
}

/* ---- climatology ------------------------------------------------------------------------- */

#define NDOY 366
#define CLIM_BLOCK ((size_t)4096) /* points per block in eval_clim_fit */

/* Window sum of prefix array P (NDOY + 1 entries) centred on day d with radius r. */
static double window_sum(const double *P, int d, int r)
{
    if (2 * r + 1 >= NDOY) return P[NDOY];
    int lo = d - r, hi = d + r;
    if (lo < 0) return (P[NDOY] - P[lo + NDOY]) + P[hi + 1];
    if (hi >= NDOY) return (P[NDOY] - P[lo]) + P[hi - NDOY + 1];
    return P[hi + 1] - P[lo];
}

/* Least-squares fit of mean + annual + semi-annual harmonics to per-day sums S and counts C
 * (NDOY days, each day weighted by its count): coef[0..4] for 1, cos w, sin w, cos 2w, sin 2w
 * with w = 2 pi d / NDOY. Returns 0 when the normal equations are singular. */
static int harmonic_fit(const double *S, const double *C, double coef[5])
{
    double A[5][6] = {{0}};
    for (int d = 0; d < NDOY; d++) {
        if (C[d] <= 0) continue;
        double w = 2.0 * 3.14159265358979323846 * d / NDOY, f[5] = {1.0, cos(w), sin(w), cos(2 * w), sin(2 * w)};
        for (int i = 0; i < 5; i++) {
            for (int j = 0; j < 5; j++) A[i][j] += C[d] * f[i] * f[j];
            A[i][5] += f[i] * S[d];
        }
    }
    for (int col = 0; col < 5; col++) {
        int piv = col;
        for (int r = col + 1; r < 5; r++)
            if (fabs(A[r][col]) > fabs(A[piv][col])) piv = r;
        if (fabs(A[piv][col]) < 1e-9 * (A[0][0] > 0 ? A[0][0] : 1.0)) return 0;
        for (int j = 0; j < 6; j++) {
            double t = A[col][j];
            A[col][j] = A[piv][j];
            A[piv][j] = t;
        }
        for (int r = 0; r < 5; r++) {
            if (r == col) continue;
            double m = A[r][col] / A[col][col];
            for (int j = col; j < 6; j++) A[r][j] -= m * A[col][j];
        }
    }
    for (int i = 0; i < 5; i++) coef[i] = A[i][5] / A[i][i];
    return 1;
}

static double harmonic_at(const double coef[5], int d)
{
    double w = 2.0 * 3.14159265358979323846 * d / NDOY;
    return coef[0] + coef[1] * cos(w) + coef[2] * sin(w) + coef[3] * cos(2 * w) + coef[4] * sin(2 * w);
}

static int slot_of(const eval_clim *c, int hour)
{
    if (!c->opts.by_hour) return 0;
    int best = 0, bestd = 99;
    for (int s = 0; s < c->n_hours; s++) {
        int dd = abs(c->hours[s] - hour);
        if (24 - dd < dd) dd = 24 - dd;
        if (dd < bestd) {
            bestd = dd;
            best = s;
        }
    }
    return best;
}

int eval_clim_fit(const double *times, const float *data, int T, int h, int w,
                  const eval_clim_opts *opts, eval_clim **out)
{
    *out = NULL;
    if (T < 1 || h < 1 || w < 1)
        return sm_fail(SM_ERR_USAGE, "climatology: empty training data (T=%d, H=%d, W=%d)", T, h, w);
    if (opts->by_doy && opts->window_days < 0)
        return sm_fail(SM_ERR_USAGE, "climatology: window_days must be >= 0 (got %d)",
                       opts->window_days);
    eval_clim *c = calloc(1, sizeof *c);
    if (!c) return sm_fail(SM_ERR_NUMERIC, "climatology: out of memory");
    c->h = h;
    c->w = w;
    c->opts = *opts;
    c->n_doy = opts->by_doy ? NDOY : 1;
    if (opts->by_hour) {
        int present[24] = {0};
        for (int t = 0; t < T; t++) present[eval_hour_of_day(times[t])] = 1;
        for (int hr = 0; hr < 24; hr++)
            if (present[hr]) c->hours[c->n_hours++] = hr;
    } else {
        c->n_hours = 1;
        c->hours[0] = -1;
    }
    size_t hw = (size_t)h * w;
    c->mean = malloc((size_t)c->n_doy * c->n_hours * hw * sizeof *c->mean);
    /* per-day sums and counts for a block of points (bounded memory on large grids) */
    size_t pb = hw < CLIM_BLOCK ? hw : CLIM_BLOCK;
    double *S = malloc(pb * (NDOY + 1) * sizeof *S);
    double *C = malloc(pb * (NDOY + 1) * sizeof *C);
    int *tdoy = malloc((size_t)T * sizeof *tdoy), *thour = malloc((size_t)T * sizeof *thour);
    if (!c->mean || !S || !C || !tdoy || !thour) {
        int nh = c->n_hours;
        free(S); free(C); free(tdoy); free(thour);
        eval_clim_free(c);
        return sm_fail(SM_ERR_NUMERIC, "climatology: out of memory for %d x %d x %d x %d",
                       NDOY, nh, h, w);
    }
    int day_seen[NDOY] = {0}, days_covered = 0;
    for (int t = 0; t < T; t++) {
        tdoy[t] = opts->by_doy ? eval_clim_doy(times[t]) - 1 : 0;
        thour[t] = eval_hour_of_day(times[t]);
        if (!day_seen[tdoy[t]]++) days_covered++;
    }
    /* A seasonal gap (e.g. Nov-Dec for a model trained on Jan-Oct) is bridged by the annual and
     * semi-annual harmonics when the data cover at least half the year; the nearest days alone
     * would carry October's or January's temperatures into the gap. Shorter periods keep the
     * nearest days: five harmonic coefficients are not determined by a few weeks. */
    const int harmonic_gaps = opts->by_doy && days_covered >= NDOY / 2;
    for (size_t p0 = 0; p0 < hw; p0 += pb) {
        size_t np = hw - p0 < pb ? hw - p0 : pb;
        for (int s = 0; s < c->n_hours; s++) {
            memset(S, 0, np * (NDOY + 1) * sizeof *S);
            memset(C, 0, np * (NDOY + 1) * sizeof *C);
            for (int t = 0; t < T; t++) {
                if (opts->by_hour && thour[t] != c->hours[s]) continue;
                const float *x = data + (size_t)t * hw + p0;
                for (size_t q = 0; q < np; q++) {
                    if (isnan(x[q])) continue;
                    S[q * (NDOY + 1) + tdoy[t] + 1] += x[q];
                    C[q * (NDOY + 1) + tdoy[t] + 1] += 1.0;
                }
            }
            for (size_t q = 0; q < np; q++) {
                double *Sp = S + q * (NDOY + 1), *Cp = C + q * (NDOY + 1);
                double coef[5];
                const int have_harmonic = harmonic_gaps && harmonic_fit(Sp + 1, Cp + 1, coef);
                for (int d = 0; d < NDOY; d++) {
                    Sp[d + 1] += Sp[d];
                    Cp[d + 1] += Cp[d];
                }
                for (int d = 0; d < c->n_doy; d++) {
                    float *dst = c->mean + ((size_t)d * c->n_hours + s) * hw + p0 + q;
                    if (!opts->by_doy) {
                        *dst = Cp[NDOY] > 0 ? (float)(Sp[NDOY] / Cp[NDOY]) : NAN;
                        continue;
                    }
                    if (Cp[NDOY] <= 0) {
                        *dst = NAN;
                        continue;
                    }
                    int r = opts->window_days;
                    double cnt;
                    if (have_harmonic && window_sum(Cp, d, r) <= 0) {
                        *dst = (float)harmonic_at(coef, d);
                        continue;
                    }
                    while ((cnt = window_sum(Cp, d, r)) <= 0) r++;
                    *dst = (float)(window_sum(Sp, d, r) / cnt);
                }
            }
        }
    }
    free(S); free(C); free(tdoy); free(thour);
    *out = c;
    return SM_OK;
}

void eval_clim_free(eval_clim *c)
{
    if (!c) return;
    free(c->mean);
    free(c);
}

void eval_clim_at(const eval_clim *c, double time, float *out)
{
    size_t hw = (size_t)c->h * c->w;
    int d = c->opts.by_doy ? eval_clim_doy(time) - 1 : 0;
    int s = slot_of(c, eval_hour_of_day(time));
    memcpy(out, c->mean + ((size_t)d * c->n_hours + s) * hw, hw * sizeof *out);
}

/* ---- damped anomaly persistence ---------------------------------------------------------- */

int eval_damped_fit(const eval_clim *c, const double *times, const float *data, int T, int h,
                    int w, const double *wlat, double lead_hours, int per_point, double *alpha,
                    long *npairs)
{
    if (h != c->h || w != c->w)
        return sm_fail(SM_ERR_USAGE, "damped persistence: data grid %dx%d differs from the "
                       "climatology's %dx%d", h, w, c->h, c->w);
    size_t hw = (size_t)h * w;
    double *num = calloc(per_point ? hw : 1, sizeof *num);
    double *den = calloc(per_point ? hw : 1, sizeof *den);
    float *c0 = malloc(hw * sizeof *c0), *c1 = malloc(hw * sizeof *c1);
    if (!num || !den || !c0 || !c1) {
        free(num); free(den); free(c0); free(c1);
        return sm_fail(SM_ERR_NUMERIC, "damped persistence: out of memory");
    }
    long np = 0;
    for (int t = 0; t < T; t++) {
        int k = eval_time_index(times, T, times[t] + lead_hours);
        if (k < 0) continue;
        np++;
        eval_clim_at(c, times[t], c0);
        eval_clim_at(c, times[k], c1);
        const float *x0 = data + (size_t)t * hw, *x1 = data + (size_t)k * hw;
        for (int i = 0; i < h; i++) {
            double wi = wlat ? wlat[i] : 1.0;
            for (int j = 0; j < w; j++) {
                size_t p = (size_t)i * w + j;
                double a0 = (double)x0[p] - c0[p], a1 = (double)x1[p] - c1[p];
                if (isnan(a0) || isnan(a1)) continue;
                size_t q = per_point ? p : 0;
                double ww = per_point ? 1.0 : wi;
                num[q] += ww * a0 * a1;
                den[q] += ww * a0 * a0;
            }
        }
    }
    if (np == 0) {
        free(num); free(den); free(c0); free(c1);
        return sm_fail(SM_ERR_USAGE, "damped persistence: no pair of training times %.1f h "
                       "apart; the training period is shorter than the lead", lead_hours);
    }
    size_t nq = per_point ? hw : 1;
    for (size_t q = 0; q < nq; q++) alpha[q] = den[q] > 0 ? num[q] / den[q] : 0.0;
    if (npairs) *npairs = np;
    free(num); free(den); free(c0); free(c1);
    return SM_OK;
}

int eval_damped_forecast(const eval_clim *c, const double *alpha, int per_point,
                          const float *init_field, double init_time, double lead_hours,
                          float *out)
{
    size_t hw = (size_t)c->h * c->w;
    float *c0 = malloc(hw * sizeof *c0);
    if (!c0) return sm_fail(SM_ERR_NUMERIC, "damped persistence: out of memory");
    eval_clim_at(c, init_time, c0);
    eval_clim_at(c, init_time + lead_hours, out);
    for (size_t p = 0; p < hw; p++) {
        double a = per_point ? alpha[p] : alpha[0];
        out[p] = (float)((double)out[p] + a * ((double)init_field[p] - c0[p]));
    }
    free(c0);
    return SM_OK;
}
