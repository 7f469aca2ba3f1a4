/* Deterministic scores: RMSE (both forms), ACC, bias, MAE; see scores.h and docs/scores.md. */
#include "eval/scores.h"

#include <math.h>

static inline double row_w(const double *wlat, int i) { return wlat ? wlat[i] : 1.0; }

void eval_det_init(eval_det_acc *acc)
{
    acc->sw = acc->sw_se = acc->sw_ae = acc->sw_err = acc->n_points = 0.0;
    acc->sum_rmse_fc = 0.0;
    acc->n_fc = 0;
    acc->sum_acc = 0.0;
    acc->n_acc = 0;
}

double eval_acc_field(const float *f, const float *o, const float *clim, int h, int w,
                      const double *wlat, const uint8_t *mask)
{
    if (!clim) return NAN;
    double sw = 0.0, sfa = 0.0, soa = 0.0;
    for (int i = 0; i < h; i++) {
        double wi = row_w(wlat, i);
        for (int j = 0; j < w; j++) {
            size_t k = (size_t)i * w + j;
            if (mask && !mask[k]) continue;
            if (isnan(f[k]) || isnan(o[k]) || isnan(clim[k])) continue;
            sw += wi;
            sfa += wi * ((double)f[k] - clim[k]);
            soa += wi * ((double)o[k] - clim[k]);
        }
    }
    if (sw <= 0.0) return NAN;
    double mf = sfa / sw, mo = soa / sw;
    double sfo = 0.0, sff = 0.0, soo = 0.0;
    for (int i = 0; i < h; i++) {
        double wi = row_w(wlat, i);
        for (int j = 0; j < w; j++) {
            size_t k = (size_t)i * w + j;
            if (mask && !mask[k]) continue;
            if (isnan(f[k]) || isnan(o[k]) || isnan(clim[k])) continue;
            double fa = (double)f[k] - clim[k] - mf;
            double oa = (double)o[k] - clim[k] - mo;
            sfo += wi * fa * oa;
            sff += wi * fa * fa;
            soo += wi * oa * oa;
        }
    }
    if (!(sff > 0.0) || !(soo > 0.0)) return NAN;
    return sfo / sqrt(sff * soo);
}

void eval_det_add(eval_det_acc *acc, const float *f, const float *o, const float *clim, int h,
                  int w, const double *wlat, const uint8_t *mask)
{
    double sw = 0.0, sse = 0.0, sae = 0.0, serr = 0.0, np = 0.0;
    for (int i = 0; i < h; i++) {
        double wi = row_w(wlat, i);
        for (int j = 0; j < w; j++) {
            size_t k = (size_t)i * w + j;
            if (mask && !mask[k]) continue;
            if (isnan(f[k]) || isnan(o[k])) continue;
            double d = (double)f[k] - (double)o[k];
            sw += wi;
            sse += wi * d * d;
            sae += wi * fabs(d);
            serr += wi * d;
            np += 1.0;
        }
    }
    acc->sw += sw;
    acc->sw_se += sse;
    acc->sw_ae += sae;
    acc->sw_err += serr;
    acc->n_points += np;
    if (sw > 0.0) {
        acc->sum_rmse_fc += sqrt(sse / sw);
        acc->n_fc++;
    }
    if (clim) {
        double a = eval_acc_field(f, o, clim, h, w, wlat, mask);
        if (!isnan(a)) {
            acc->sum_acc += a;
            acc->n_acc++;
        }
    }
}

void eval_det_finish(const eval_det_acc *acc, eval_det_result *out)
{
    int ok = acc->sw > 0.0;
    out->rmse = ok ? sqrt(acc->sw_se / acc->sw) : NAN;
    out->bias = ok ? acc->sw_err / acc->sw : NAN;
    out->mae = ok ? acc->sw_ae / acc->sw : NAN;
    out->rmse_mean_fc = acc->n_fc ? acc->sum_rmse_fc / (double)acc->n_fc : NAN;
    out->acc = acc->n_acc ? acc->sum_acc / (double)acc->n_acc : NAN;
    out->n_points = acc->n_points;
    out->n_forecasts = acc->n_fc;
    out->n_acc = acc->n_acc;
}

void eval_det_scores(const float *f, const float *o, const float *clim, int n, int h, int w,
                     const double *wlat, const uint8_t *mask, eval_det_result *out)
{
    eval_det_acc acc;
    eval_det_init(&acc);
    size_t hw = (size_t)h * w;
    for (int t = 0; t < n; t++)
        eval_det_add(&acc, f + t * hw, o + t * hw, clim ? clim + t * hw : NULL, h, w, wlat, mask);
    eval_det_finish(&acc, out);
}

void eval_lat_weights(const double *lat_deg, int n, double *w)
{
    double s = 0.0;
    for (int j = 0; j < n; j++) {
        w[j] = cos(lat_deg[j] * (3.14159265358979323846 / 180.0));
        if (w[j] < 0.0) w[j] = 0.0; /* rounding at +-90 */
        s += w[j];
    }
    double m = n > 0 ? s / n : 0.0;
    for (int j = 0; j < n; j++) w[j] = m > 0.0 ? w[j] / m : 1.0;
}
