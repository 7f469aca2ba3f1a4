/* Losses (MSE, lat-weighted MSE, MAE, Gaussian CRPS, NaN-masked variants) and ensemble CRPS.
 *
 * Parallelism and determinism: a sum over points is split into at most LOSS_BLOCKS blocks
 * whose boundaries depend only on the number of points; the blocks are summed (in double) by
 * the OpenMP team and the block sums are added in block order by one thread. Results are
 * therefore bit-identical for any thread count. Gradients are elementwise loops. */
#include "nn/loss.h"

#include <math.h>
#include <stdlib.h>

#define INV_SQRT_PI 0.56418958354775628695   /* 1/sqrt(pi) */
#define INV_SQRT_2PI 0.39894228040143267794  /* 1/sqrt(2 pi) */
#define INV_SQRT_2 0.70710678118654752440
#define PI_OVER_180 0.017453292519943295769

#define LOSS_BLOCKS 256
#define LOSS_MIN_BLOCK 4096
#define LOSS_PAR_MIN 32768   /* elementwise loops shorter than this stay serial */

void loss_lat_weights(float *w, const double *lat_deg, int h)
{
    double sum = 0.0;
    for (int i = 0; i < h; i++) sum += cos(lat_deg[i] * PI_OVER_180);
    double mean = h > 0 ? sum / h : 1.0;
    for (int i = 0; i < h; i++) w[i] = (float)(cos(lat_deg[i] * PI_OVER_180) / mean);
}

/* ---- deterministic blocked reduction ----------------------------------------------------- */

typedef struct {
    double sum;     /* sum of the loss terms */
    double weight;  /* number (or weight) of the points that entered `sum` */
} acc_t;

typedef void (*block_fn)(size_t lo, size_t hi, const void *ctx, acc_t *acc);

static acc_t block_reduce(size_t n, block_fn fn, const void *ctx)
{
    acc_t total = {0.0, 0.0};
    if (n == 0) return total;
    size_t len = (n + LOSS_BLOCKS - 1) / LOSS_BLOCKS;
    if (len < LOSS_MIN_BLOCK) len = LOSS_MIN_BLOCK;
    long nb = (long)((n + len - 1) / len);
    acc_t part[LOSS_BLOCKS];
#pragma omp parallel for schedule(static) if (nb > 1)
    for (long b = 0; b < nb; b++) {
        size_t lo = (size_t)b * len, hi = lo + len < n ? lo + len : n;
        part[b].sum = part[b].weight = 0.0;
        fn(lo, hi, ctx, &part[b]);
    }
    for (long b = 0; b < nb; b++) {
        total.sum += part[b].sum;
        total.weight += part[b].weight;
    }
    return total;
}

static double sign_of(double d)
{
    return (double)((d > 0) - (d < 0));
}

/* ---- MSE / MAE --------------------------------------------------------------------------- */

typedef struct {
    const float *pred, *target;
    int masked;
} pt_ctx;

static void mse_block(size_t lo, size_t hi, const void *vc, acc_t *a)
{
    const pt_ctx *c = vc;
    double s = 0.0;
    size_t v = 0;
    for (size_t k = lo; k < hi; k++) {
        if (c->masked && isnan(c->target[k])) continue;
        double d = (double)c->pred[k] - c->target[k];
        s += d * d;
        v++;
    }
    a->sum = s;
    a->weight = (double)v;
}

static void mae_block(size_t lo, size_t hi, const void *vc, acc_t *a)
{
    const pt_ctx *c = vc;
    double s = 0.0;
    size_t v = 0;
    for (size_t k = lo; k < hi; k++) {
        if (c->masked && isnan(c->target[k])) continue;
        s += fabs((double)c->pred[k] - c->target[k]);
        v++;
    }
    a->sum = s;
    a->weight = (double)v;
}

static void count_block(size_t lo, size_t hi, const void *vc, acc_t *a)
{
    const float *t = vc;
    size_t v = 0;
    for (size_t k = lo; k < hi; k++) v += !isnan(t[k]);
    a->weight = (double)v;
}

static double count_valid(const float *target, size_t n)
{
    return block_reduce(n, count_block, target).weight;
}

static double mean_of(acc_t a)
{
    return a.weight > 0 ? a.sum / a.weight : 0.0;
}

double loss_mse_forward(const float *pred, const float *target, size_t n)
{
    pt_ctx c = {pred, target, 0};
    return mean_of(block_reduce(n, mse_block, &c));
}

double loss_mse_masked_forward(const float *pred, const float *target, size_t n)
{
    pt_ctx c = {pred, target, 1};
    return mean_of(block_reduce(n, mse_block, &c));
}

double loss_mae_forward(const float *pred, const float *target, size_t n)
{
    pt_ctx c = {pred, target, 0};
    return mean_of(block_reduce(n, mae_block, &c));
}

double loss_mae_masked_forward(const float *pred, const float *target, size_t n)
{
    pt_ctx c = {pred, target, 1};
    return mean_of(block_reduce(n, mae_block, &c));
}

static void mse_grad(float *dpred, const float *pred, const float *target, size_t n,
                     double scale, int masked)
{
    double v = masked ? count_valid(target, n) : (double)n;
    if (!(v > 0)) return;
    double c = 2.0 * scale / v;
#pragma omp parallel for schedule(static) if (n >= LOSS_PAR_MIN)
    for (size_t k = 0; k < n; k++) {
        if (masked && isnan(target[k])) continue;
        dpred[k] += (float)(c * ((double)pred[k] - target[k]));
    }
}

static void mae_grad(float *dpred, const float *pred, const float *target, size_t n,
                     double scale, int masked)
{
    double v = masked ? count_valid(target, n) : (double)n;
    if (!(v > 0)) return;
    double c = scale / v;
#pragma omp parallel for schedule(static) if (n >= LOSS_PAR_MIN)
    for (size_t k = 0; k < n; k++) {
        if (masked && isnan(target[k])) continue;
        double d = (double)pred[k] - target[k];
        dpred[k] += (float)(c * (isnan(d) ? d : sign_of(d)));
    }
}

void loss_mse_backward(float *dpred, const float *pred, const float *target, size_t n,
                       double scale)
{
    mse_grad(dpred, pred, target, n, scale, 0);
}

void loss_mse_masked_backward(float *dpred, const float *pred, const float *target, size_t n,
                              double scale)
{
    mse_grad(dpred, pred, target, n, scale, 1);
}

void loss_mae_backward(float *dpred, const float *pred, const float *target, size_t n,
                       double scale)
{
    mae_grad(dpred, pred, target, n, scale, 0);
}

void loss_mae_masked_backward(float *dpred, const float *pred, const float *target, size_t n,
                              double scale)
{
    mae_grad(dpred, pred, target, n, scale, 1);
}

/* ---- latitude-weighted MSE (blocks of rows) ---------------------------------------------- */

typedef struct {
    const float *pred, *target, *wlat;
    int h, w, masked;
} lat_ctx;

/* lo/hi index rows r = c * h + i of the (nc, h, w) tensors. weight = sum of point weights. */
static void lat_block(size_t lo, size_t hi, const void *vc, acc_t *a)
{
    const lat_ctx *c = vc;
    double s = 0.0, ws = 0.0;
    for (size_t r = lo; r < hi; r++) {
        size_t base = r * (size_t)c->w;
        double wi = c->wlat[r % (size_t)c->h], row = 0.0;
        size_t v = 0;
        for (int j = 0; j < c->w; j++) {
            if (c->masked && isnan(c->target[base + j])) continue;
            double d = (double)c->pred[base + j] - c->target[base + j];
            row += d * d;
            v++;
        }
        s += wi * row;
        ws += wi * (double)v;
    }
    a->sum = s;
    a->weight = ws;
}

double loss_mse_lat_forward(const float *pred, const float *target, int nc, int h, int w,
                            const float *wlat)
{
    lat_ctx c = {pred, target, wlat, h, w, 0};
    size_t n = (size_t)nc * h * w;
    if (n == 0) return 0.0;
    return block_reduce((size_t)nc * h, lat_block, &c).sum / (double)n;
}

double loss_mse_lat_masked_forward(const float *pred, const float *target, int nc, int h, int w,
                                   const float *wlat)
{
    lat_ctx c = {pred, target, wlat, h, w, 1};
    return mean_of(block_reduce((size_t)nc * h, lat_block, &c));
}

static void lat_wcount_block(size_t lo, size_t hi, const void *vc, acc_t *a)
{
    const lat_ctx *c = vc;
    double ws = 0.0;
    for (size_t r = lo; r < hi; r++) {
        size_t base = r * (size_t)c->w, v = 0;
        for (int j = 0; j < c->w; j++) v += !isnan(c->target[base + j]);
        ws += (double)c->wlat[r % (size_t)c->h] * (double)v;
    }
    a->weight = ws;
}

static void lat_grad(float *dpred, const float *pred, const float *target, int nc, int h,
                     int w, const float *wlat, double scale, int masked)
{
    size_t rows = (size_t)nc * h;
    double denom;
    if (masked) {
        lat_ctx c = {pred, target, wlat, h, w, 1};
        denom = block_reduce(rows, lat_wcount_block, &c).weight;
    } else {
        denom = (double)rows * w;
    }
    if (!(denom > 0)) return;
#pragma omp parallel for schedule(static) if (rows * (size_t)w >= LOSS_PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
        size_t base = r * (size_t)w;
        double coef = 2.0 * scale * wlat[r % (size_t)h] / denom;
        for (int j = 0; j < w; j++) {
            if (masked && isnan(target[base + j])) continue;
            dpred[base + j] += (float)(coef * ((double)pred[base + j] - target[base + j]));
        }
    }
}

void loss_mse_lat_backward(float *dpred, const float *pred, const float *target, int nc, int h,
                           int w, const float *wlat, double scale)
{
    lat_grad(dpred, pred, target, nc, h, w, wlat, scale, 0);
}

void loss_mse_lat_masked_backward(float *dpred, const float *pred, const float *target, int nc,
                                  int h, int w, const float *wlat, double scale)
{
    lat_grad(dpred, pred, target, nc, h, w, wlat, scale, 1);
}

/* ---- Gaussian CRPS ------------------------------------------------------------------------ */

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

typedef struct {
    const float *mu, *sigma, *y;
    int masked;
} crps_ctx;

static void crps_block(size_t lo, size_t hi, const void *vc, acc_t *a)
{
    const crps_ctx *c = vc;
    double s = 0.0;
    size_t v = 0;
    for (size_t k = lo; k < hi; k++) {
        if (c->masked && isnan(c->y[k])) continue;
        s += loss_crps_gauss_point(c->mu[k], c->sigma[k], c->y[k], NULL, NULL);
        v++;
    }
    a->sum = s;
    a->weight = (double)v;
}

static void crps_gauss_grad(float *dmu, float *dsigma, const float *mu, const float *sigma,
                            const float *y, size_t n, double scale, int masked)
{
    double v = masked ? count_valid(y, n) : (double)n;
    if (!(v > 0)) return;
    double c = scale / v;
#pragma omp parallel for schedule(static) if (n >= LOSS_PAR_MIN / 8)
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
    crps_ctx c = {mu, sigma, y, 0};
    return mean_of(block_reduce(n, crps_block, &c));
}

void loss_crps_gauss_backward(float *dmu, float *dsigma, const float *mu, const float *sigma,
                              const float *y, size_t n, double scale)
{
    crps_gauss_grad(dmu, dsigma, mu, sigma, y, n, scale, 0);
}

double loss_crps_gauss_masked_forward(const float *mu, const float *sigma, const float *y,
                                      size_t n)
{
    crps_ctx c = {mu, sigma, y, 1};
    return mean_of(block_reduce(n, crps_block, &c));
}

void loss_crps_gauss_masked_backward(float *dmu, float *dsigma, const float *mu,
                                     const float *sigma, const float *y, size_t n, double scale)
{
    crps_gauss_grad(dmu, dsigma, mu, sigma, y, n, scale, 1);
}

/* ---- ENS-10 head + CRPS ------------------------------------------------------------------ */

typedef struct {
    const float *out, *m_ens, *s_ens, *y;
    float *mu_out, *sigma_out;
    size_t hw;
    int masked;
} head_ctx;

static void head_point(const head_ctx *c, size_t k, double *mu, double *sigma)
{
    size_t b = k / c->hw, p = k % c->hw;
    const float *o0 = c->out + b * 2 * c->hw;
    double se = c->s_ens[k];
    *mu = (double)o0[p] * se + c->m_ens[k];
    *sigma = exp((double)o0[c->hw + p]) * se;
}

static void head_block(size_t lo, size_t hi, const void *vc, acc_t *a)
{
    const head_ctx *c = vc;
    double s = 0.0;
    size_t v = 0;
    for (size_t k = lo; k < hi; k++) {
        double mu, sigma;
        head_point(c, k, &mu, &sigma);
        if (c->mu_out) c->mu_out[k] = (float)mu;
        if (c->sigma_out) c->sigma_out[k] = (float)sigma;
        if (c->masked && isnan(c->y[k])) continue;
        s += loss_crps_gauss_point(mu, sigma, c->y[k], NULL, NULL);
        v++;
    }
    a->sum = s;
    a->weight = (double)v;
}

static double head_forward(const float *out, const float *m_ens, const float *s_ens,
                           const float *y, int nb, int hw, float *mu_out, float *sigma_out,
                           int masked)
{
    if (nb <= 0 || hw <= 0) return 0.0;
    head_ctx c = {out, m_ens, s_ens, y, mu_out, sigma_out, (size_t)hw, masked};
    return mean_of(block_reduce((size_t)nb * hw, head_block, &c));
}

static void head_backward(float *dout, const float *out, const float *m_ens, const float *s_ens,
                          const float *y, int nb, int hw, double scale, int masked)
{
    if (nb <= 0 || hw <= 0) return;
    size_t n = (size_t)nb * hw;
    double v = masked ? count_valid(y, n) : (double)n;
    if (!(v > 0)) return;
    double c = scale / v;
    head_ctx hc = {out, m_ens, s_ens, y, NULL, NULL, (size_t)hw, masked};
#pragma omp parallel for schedule(static) if (n >= LOSS_PAR_MIN / 8)
    for (size_t k = 0; k < n; k++) {
        if (masked && isnan(y[k])) continue;
        double mu, sigma, gm, gs;
        head_point(&hc, k, &mu, &sigma);
        loss_crps_gauss_point(mu, sigma, y[k], &gm, &gs);
        size_t b = k / (size_t)hw, p = k % (size_t)hw;
        float *d0 = dout + b * 2 * (size_t)hw;
        d0[p] += (float)(c * gm * s_ens[k]);
        d0[hw + p] += (float)(c * gs * sigma);
    }
}

double loss_crps_head_forward(const float *out, const float *m_ens, const float *s_ens,
                              const float *y, int nb, int hw, float *mu_out, float *sigma_out)
{
    return head_forward(out, m_ens, s_ens, y, nb, hw, mu_out, sigma_out, 0);
}

void loss_crps_head_backward(float *dout, const float *out, const float *m_ens,
                             const float *s_ens, const float *y, int nb, int hw, double scale)
{
    head_backward(dout, out, m_ens, s_ens, y, nb, hw, scale, 0);
}

double loss_crps_head_masked_forward(const float *out, const float *m_ens, const float *s_ens,
                                     const float *y, int nb, int hw, float *mu_out,
                                     float *sigma_out)
{
    return head_forward(out, m_ens, s_ens, y, nb, hw, mu_out, sigma_out, 1);
}

void loss_crps_head_masked_backward(float *dout, const float *out, const float *m_ens,
                                    const float *s_ens, const float *y, int nb, int hw,
                                    double scale)
{
    head_backward(dout, out, m_ens, s_ens, y, nb, hw, scale, 1);
}

/* ---- ensemble CRPS ------------------------------------------------------------------------ */

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

typedef struct {
    const float *ens, *y;
    size_t n;
    int m, fair;
} ens_ctx;

static void ens_block(size_t lo, size_t hi, const void *vc, acc_t *a)
{
    const ens_ctx *c = vc;
    double s = 0.0;
    size_t v = 0;
    for (size_t k = lo; k < hi; k++) {
        if (isnan(c->y[k])) continue;
        s += loss_crps_ensemble_point(c->ens + k, c->n, c->m, c->y[k], c->fair);
        v++;
    }
    a->sum = s;
    a->weight = (double)v;
}

double loss_crps_ensemble_mean(const float *ens, int m, size_t n, const float *y, int fair,
                               size_t *nvalid)
{
    ens_ctx c = {ens, y, n, m, fair};
    acc_t a = block_reduce(n, ens_block, &c);
    if (nvalid) *nvalid = (size_t)a.weight;
    return mean_of(a);
}
