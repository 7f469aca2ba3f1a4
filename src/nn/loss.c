/* Losses (MSE, lat-weighted MSE, MAE, Gaussian CRPS, NaN-masked variants) and ensemble CRPS. */
#include "nn/loss.h"

#include <math.h>
#include <stdlib.h>

#define INV_SQRT_PI 0.56418958354775628695   /* 1/sqrt(pi) */
#define INV_SQRT_2PI 0.39894228040143267794  /* 1/sqrt(2 pi) */
#define INV_SQRT_2 0.70710678118654752440
#define PI_OVER_180 0.017453292519943295769

void loss_lat_weights(float *w, const double *lat_deg, int h)
{
    double sum = 0.0;
    for (int i = 0; i < h; i++) sum += cos(lat_deg[i] * PI_OVER_180);
    double mean = h > 0 ? sum / h : 1.0;
    for (int i = 0; i < h; i++) w[i] = (float)(cos(lat_deg[i] * PI_OVER_180) / mean);
}

/* ---- MSE / MAE ------------------------------------------------------------------------- */

double loss_mse_forward(const float *pred, const float *target, size_t n)
{
    if (n == 0) return 0.0;
    double s = 0.0;
    for (size_t k = 0; k < n; k++) {
        double d = (double)pred[k] - target[k];
        s += d * d;
    }
    return s / (double)n;
}

void loss_mse_backward(float *dpred, const float *pred, const float *target, size_t n,
                       double scale)
{
    if (n == 0) return;
    double c = 2.0 * scale / (double)n;
    for (size_t k = 0; k < n; k++) dpred[k] += (float)(c * ((double)pred[k] - target[k]));
}

static size_t count_valid(const float *target, size_t n)
{
    size_t v = 0;
    for (size_t k = 0; k < n; k++) v += !isnan(target[k]);
    return v;
}

double loss_mse_masked_forward(const float *pred, const float *target, size_t n)
{
    double s = 0.0;
    size_t v = 0;
    for (size_t k = 0; k < n; k++) {
        if (isnan(target[k])) continue;
        double d = (double)pred[k] - target[k];
        s += d * d;
        v++;
    }
    return v ? s / (double)v : 0.0;
}

void loss_mse_masked_backward(float *dpred, const float *pred, const float *target, size_t n,
                              double scale)
{
    size_t v = count_valid(target, n);
    if (v == 0) return;
    double c = 2.0 * scale / (double)v;
    for (size_t k = 0; k < n; k++)
        if (!isnan(target[k])) dpred[k] += (float)(c * ((double)pred[k] - target[k]));
}

static double sign_of(double d)
{
    return (double)((d > 0) - (d < 0));
}

double loss_mae_forward(const float *pred, const float *target, size_t n)
{
    if (n == 0) return 0.0;
    double s = 0.0;
    for (size_t k = 0; k < n; k++) s += fabs((double)pred[k] - target[k]);
    return s / (double)n;
}

void loss_mae_backward(float *dpred, const float *pred, const float *target, size_t n,
                       double scale)
{
    if (n == 0) return;
    double c = scale / (double)n;
    for (size_t k = 0; k < n; k++) {
        double d = (double)pred[k] - target[k];
        dpred[k] += (float)(c * (isnan(d) ? d : sign_of(d)));
    }
}

double loss_mae_masked_forward(const float *pred, const float *target, size_t n)
{
    double s = 0.0;
    size_t v = 0;
    for (size_t k = 0; k < n; k++) {
        if (isnan(target[k])) continue;
        s += fabs((double)pred[k] - target[k]);
        v++;
    }
    return v ? s / (double)v : 0.0;
}

void loss_mae_masked_backward(float *dpred, const float *pred, const float *target, size_t n,
                              double scale)
{
    size_t v = count_valid(target, n);
    if (v == 0) return;
    double c = scale / (double)v;
    for (size_t k = 0; k < n; k++) {
        if (isnan(target[k])) continue;
        double d = (double)pred[k] - target[k];
        dpred[k] += (float)(c * (isnan(d) ? d : sign_of(d)));
    }
}

/* ---- latitude-weighted MSE ------------------------------------------------------------- */

double loss_mse_lat_forward(const float *pred, const float *target, int nc, int h, int w,
                            const float *wlat)
{
    size_t n = (size_t)nc * h * w;
    if (n == 0) return 0.0;
    double s = 0.0;
    for (int c = 0; c < nc; c++)
        for (int i = 0; i < h; i++) {
            size_t base = ((size_t)c * h + i) * w;
            double row = 0.0;
            for (int j = 0; j < w; j++) {
                double d = (double)pred[base + j] - target[base + j];
                row += d * d;
            }
            s += wlat[i] * row;
        }
    return s / (double)n;
}

void loss_mse_lat_backward(float *dpred, const float *pred, const float *target, int nc, int h,
                           int w, const float *wlat, double scale)
{
    size_t n = (size_t)nc * h * w;
    if (n == 0) return;
    for (int c = 0; c < nc; c++)
        for (int i = 0; i < h; i++) {
            size_t base = ((size_t)c * h + i) * w;
            double coef = 2.0 * scale * wlat[i] / (double)n;
            for (int j = 0; j < w; j++)
                dpred[base + j] += (float)(coef * ((double)pred[base + j] - target[base + j]));
        }
}

static double valid_weight_sum(const float *target, int nc, int h, int w, const float *wlat)
{
    double ws = 0.0;
    for (int c = 0; c < nc; c++)
        for (int i = 0; i < h; i++) {
            size_t base = ((size_t)c * h + i) * w;
            size_t v = 0;
            for (int j = 0; j < w; j++) v += !isnan(target[base + j]);
            ws += (double)wlat[i] * (double)v;
        }
    return ws;
}

double loss_mse_lat_masked_forward(const float *pred, const float *target, int nc, int h, int w,
                                   const float *wlat)
{
    double s = 0.0;
    for (int c = 0; c < nc; c++)
        for (int i = 0; i < h; i++) {
            size_t base = ((size_t)c * h + i) * w;
            double row = 0.0;
            for (int j = 0; j < w; j++) {
                if (isnan(target[base + j])) continue;
                double d = (double)pred[base + j] - target[base + j];
                row += d * d;
            }
            s += wlat[i] * row;
        }
    double ws = valid_weight_sum(target, nc, h, w, wlat);
    return ws > 0 ? s / ws : 0.0;
}

void loss_mse_lat_masked_backward(float *dpred, const float *pred, const float *target, int nc,
                                  int h, int w, const float *wlat, double scale)
{
    double ws = valid_weight_sum(target, nc, h, w, wlat);
    if (!(ws > 0)) return;
    for (int c = 0; c < nc; c++)
        for (int i = 0; i < h; i++) {
            size_t base = ((size_t)c * h + i) * w;
            double coef = 2.0 * scale * wlat[i] / ws;
            for (int j = 0; j < w; j++) {
                if (isnan(target[base + j])) continue;
                dpred[base + j] += (float)(coef * ((double)pred[base + j] - target[base + j]));
            }
        }
}

/* ---- Gaussian CRPS ---------------------------------------------------------------------- */

double loss_crps_gauss_point(double mu, double sigma, double y, double *dmu, double *dsigma)
{
    if (isnan(mu) || isnan(sigma) || isnan(y) || sigma < 0) {
        if (dmu) *dmu = NAN;
        if (dsigma) *dsigma = NAN;
        return NAN;
    }
    if (sigma == 0.0) {
        double d = y - mu;
        if (dmu) *dmu = -sign_of(d);
        if (dsigma) *dsigma = -INV_SQRT_PI;
        return fabs(d);
    }
    double z = (y - mu) / sigma;
    double Phi = 0.5 * erfc(-z * INV_SQRT_2);
    double phi = INV_SQRT_2PI * exp(-0.5 * z * z);
    if (dmu) *dmu = 1.0 - 2.0 * Phi;
    if (dsigma) *dsigma = 2.0 * phi - INV_SQRT_PI;
    return sigma * (z * (2.0 * Phi - 1.0) + 2.0 * phi - INV_SQRT_PI);
}

static double crps_gauss_sum(const float *mu, const float *sigma, const float *y, size_t n,
                             int masked, size_t *nvalid)
{
    double s = 0.0;
    size_t v = 0;
    for (size_t k = 0; k < n; k++) {
        if (masked && isnan(y[k])) continue;
        s += loss_crps_gauss_point(mu[k], sigma[k], y[k], NULL, NULL);
        v++;
    }
    *nvalid = v;
    return s;
}

static void crps_gauss_grad(float *dmu, float *dsigma, const float *mu, const float *sigma,
                            const float *y, size_t n, double scale, int masked)
{
    size_t v = masked ? count_valid(y, n) : n;
    if (v == 0) return;
    double c = scale / (double)v;
    for (size_t k = 0; k < n; k++) {
        if (masked && isnan(y[k])) continue;
        double gm, gs;
        loss_crps_gauss_point(mu[k], sigma[k], y[k], &gm, &gs);
        if (dmu) dmu[k] += (float)(c * gm);
        if (dsigma) dsigma[k] += (float)(c * gs);
    }
}

double loss_crps_gauss_forward(const float *mu, const float *sigma, const float *y, size_t n)
{
    size_t v;
    double s = crps_gauss_sum(mu, sigma, y, n, 0, &v);
    return v ? s / (double)v : 0.0;
}

void loss_crps_gauss_backward(float *dmu, float *dsigma, const float *mu, const float *sigma,
                              const float *y, size_t n, double scale)
{
    crps_gauss_grad(dmu, dsigma, mu, sigma, y, n, scale, 0);
}

double loss_crps_gauss_masked_forward(const float *mu, const float *sigma, const float *y,
                                      size_t n)
{
    size_t v;
    double s = crps_gauss_sum(mu, sigma, y, n, 1, &v);
    return v ? s / (double)v : 0.0;
}

void loss_crps_gauss_masked_backward(float *dmu, float *dsigma, const float *mu,
                                     const float *sigma, const float *y, size_t n, double scale)
{
    crps_gauss_grad(dmu, dsigma, mu, sigma, y, n, scale, 1);
}

/* ---- ENS-10 head + CRPS ---------------------------------------------------------------- */

static double crps_head(float *dout, const float *out, const float *m_ens, const float *s_ens,
                        const float *y, int nb, int hw, float *mu_out, float *sigma_out,
                        double scale, int masked)
{
    size_t n = (size_t)nb * hw;
    size_t v = masked ? count_valid(y, n) : n;
    double c = v ? scale / (double)v : 0.0;
    double s = 0.0;
    for (int b = 0; b < nb; b++) {
        const float *o0 = out + (size_t)b * 2 * hw, *o1 = o0 + hw;
        for (int p = 0; p < hw; p++) {
            size_t k = (size_t)b * hw + p;
            double se = s_ens[k];
            double mu = (double)o0[p] * se + m_ens[k];
            double sigma = exp((double)o1[p]) * se;
            if (mu_out) mu_out[k] = (float)mu;
            if (sigma_out) sigma_out[k] = (float)sigma;
            if (masked && isnan(y[k])) continue;
            double gm, gs;
            s += loss_crps_gauss_point(mu, sigma, y[k], &gm, &gs);
            if (dout) {
                float *d0 = dout + (size_t)b * 2 * hw, *d1 = d0 + hw;
                d0[p] += (float)(c * gm * se);
                d1[p] += (float)(c * gs * sigma);
            }
        }
    }
    return v ? s / (double)v : 0.0;
}

double loss_crps_head_forward(const float *out, const float *m_ens, const float *s_ens,
                              const float *y, int nb, int hw, float *mu_out, float *sigma_out)
{
    return crps_head(NULL, out, m_ens, s_ens, y, nb, hw, mu_out, sigma_out, 0.0, 0);
}

void loss_crps_head_backward(float *dout, const float *out, const float *m_ens,
                             const float *s_ens, const float *y, int nb, int hw, double scale)
{
    crps_head(dout, out, m_ens, s_ens, y, nb, hw, NULL, NULL, scale, 0);
}

double loss_crps_head_masked_forward(const float *out, const float *m_ens, const float *s_ens,
                                     const float *y, int nb, int hw, float *mu_out,
                                     float *sigma_out)
{
    return crps_head(NULL, out, m_ens, s_ens, y, nb, hw, mu_out, sigma_out, 0.0, 1);
}

void loss_crps_head_masked_backward(float *dout, const float *out, const float *m_ens,
                                    const float *s_ens, const float *y, int nb, int hw,
                                    double scale)
{
    crps_head(dout, out, m_ens, s_ens, y, nb, hw, NULL, NULL, scale, 1);
}

/* ---- ensemble CRPS ---------------------------------------------------------------------- */

#define CRPS_SORT_MAX 256

static void sort_doubles(double *a, int m)
{
    for (int i = 1; i < m; i++) { /* insertion sort: m is an ensemble size */
        double t = a[i];
        int j = i - 1;
        while (j >= 0 && a[j] > t) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = t;
    }
}

double loss_crps_ensemble_point(const float *x, size_t stride, int m, double y, int fair)
{
    if (m < 1 || isnan(y) || (fair && m < 2)) return NAN;
    double skill = 0.0, spread = 0.0; /* spread = sum_{i,l} |x_i - x_l| */
    if (m <= CRPS_SORT_MAX) {
        double buf[CRPS_SORT_MAX];
        for (int i = 0; i < m; i++) {
            buf[i] = x[(size_t)i * stride];
            if (isnan(buf[i])) return NAN;
            skill += fabs(buf[i] - y);
        }
        sort_doubles(buf, m);
        for (int i = 0; i < m; i++) spread += (2.0 * i - (m - 1)) * buf[i];
        spread *= 2.0;
    } else {
        for (int i = 0; i < m; i++) {
            double xi = x[(size_t)i * stride];
            if (isnan(xi)) return NAN;
            skill += fabs(xi - y);
            for (int l = i + 1; l < m; l++) spread += 2.0 * fabs(xi - x[(size_t)l * stride]);
        }
    }
    double md = (double)m;
    double denom = fair ? 2.0 * md * (md - 1.0) : 2.0 * md * md;
    return skill / md - spread / denom;
}

double loss_crps_ensemble_mean(const float *ens, int m, size_t n, const float *y, int fair,
                               size_t *nvalid)
{
    double s = 0.0;
    size_t v = 0;
    for (size_t k = 0; k < n; k++) {
        if (isnan(y[k])) continue;
        s += loss_crps_ensemble_point(ens + k, n, m, y[k], fair);
        v++;
    }
    if (nvalid) *nvalid = v;
    return v ? s / (double)v : 0.0;
}
