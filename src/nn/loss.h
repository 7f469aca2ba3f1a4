/* Training losses with exact gradients, and the ensemble CRPS score.
 *
 * Every loss is a pair:
 *   double loss_X_forward(...)            the loss (mean over points), accumulated in double
 *   void   loss_X_backward(d..., ..., scale)
 *                                          ACCUMULATES scale * d(loss)/d(input) into the
 *                                          gradient buffers (+=); scale is the upstream
 *                                          gradient (1 for a plain loss, a weight when several
 *                                          losses are summed).
 * Reductions (torch "mean" semantics):
 *   MSE      mean_k (p_k - y_k)^2                 (torch.nn.MSELoss)
 *   MAE      mean_k |p_k - y_k|; d/dp = sign(p - y), 0 where p == y (torch.nn.L1Loss)
 *   lat-MSE  tensors (nc, h, w) (nc = batch * channels), row weights wlat[h]:
 *            mean over (n, i, j) of wlat_i (p - y)^2  (METHODS.md 1 / WeatherBench; pass
 *            w_i = cos(lat_i) / mean cos(lat), see loss_lat_weights())
 *   CRPS     mean over points of the Gaussian CRPS(mu, sigma; y) (METHODS.md 5).
 * NaN-masked versions (`_masked`) skip every point whose TARGET is NaN: the mean is over the
 * valid points only (the lat-weighted one divides by the sum of the valid points' weights, so
 * with normalised weights and no NaN it equals the unmasked loss); skipped points receive no
 * gradient. With no valid point the loss is 0 and nothing is accumulated. NaN in predictions
 * is not masked: it propagates so the trainer's NaN guard sees it.
 *
 * Threads: sums use fixed blocks (boundaries depend only on the size) reduced by the OpenMP
 * team and combined in block order, gradients are elementwise: every result is bit-identical
 * for any thread count. No allocation. */
#ifndef SMOECAST_NN_LOSS_H
#define SMOECAST_NN_LOSS_H

#include <stddef.h>

/* Row weights w_j = cos(lat_j) / mean_j cos(lat_j) for latitudes in degrees (h rows). */
void loss_lat_weights(float *w, const double *lat_deg, int h);

double loss_mse_forward(const float *pred, const float *target, size_t n);
void loss_mse_backward(float *dpred, const float *pred, const float *target, size_t n,
                       double scale);
double loss_mse_masked_forward(const float *pred, const float *target, size_t n);
void loss_mse_masked_backward(float *dpred, const float *pred, const float *target, size_t n,
                              double scale);

double loss_mae_forward(const float *pred, const float *target, size_t n);
void loss_mae_backward(float *dpred, const float *pred, const float *target, size_t n,
                       double scale);
double loss_mae_masked_forward(const float *pred, const float *target, size_t n);
void loss_mae_masked_backward(float *dpred, const float *pred, const float *target, size_t n,
                              double scale);

double loss_mse_lat_forward(const float *pred, const float *target, int nc, int h, int w,
                            const float *wlat);
void loss_mse_lat_backward(float *dpred, const float *pred, const float *target, int nc, int h,
                           int w, const float *wlat, double scale);
double loss_mse_lat_masked_forward(const float *pred, const float *target, int nc, int h, int w,
                                   const float *wlat);
void loss_mse_lat_masked_backward(float *dpred, const float *pred, const float *target, int nc,
                                  int h, int w, const float *wlat, double scale);

/* Gaussian CRPS of one point, z = (y - mu) / sigma:
 *   CRPS = sigma [ z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi) ],
 *   dCRPS/dmu = 1 - 2 Phi(z),  dCRPS/dsigma = 2 phi(z) - 1/sqrt(pi).
 * sigma == 0 gives the limit |y - mu| (dmu = sign(mu - y), dsigma = -1/sqrt(pi)); sigma < 0 or
 * NaN gives NaN. dmu / dsigma may be NULL. */
double loss_crps_gauss_point(double mu, double sigma, double y, double *dmu, double *dsigma);

/* Mean Gaussian CRPS over n points (mu, sigma, y each of n). */
double loss_crps_gauss_forward(const float *mu, const float *sigma, const float *y, size_t n);
void loss_crps_gauss_backward(float *dmu, float *dsigma, const float *mu, const float *sigma,
                              const float *y, size_t n, double scale);
double loss_crps_gauss_masked_forward(const float *mu, const float *sigma, const float *y,
                                      size_t n);
void loss_crps_gauss_masked_backward(float *dmu, float *dsigma, const float *mu,
                                     const float *sigma, const float *y, size_t n, double scale);

/* ENS-10 output head + CRPS. out is (nb, 2, hw): channel 0 = o0, channel 1 = o1;
 * m_ens, s_ens, y are (nb, hw):  mu = o0 * s_ens + m_ens,  sigma = exp(o1) * s_ens.
 * For several target variables in one output (N, 2T, H, W) with channels ordered
 * (mu_0, sigma_0, mu_1, sigma_1, ...), pass nb = N * T and (N, T, H, W) ensemble statistics.
 * Loss = mean CRPS over nb * hw points; dout (nb, 2, hw) accumulates
 *   dL/do0 = dCRPS/dmu * s_ens,  dL/do1 = dCRPS/dsigma * sigma.
 * mu_out / sigma_out (nb, hw) receive the head's outputs when not NULL. */
double loss_crps_head_forward(const float *out, const float *m_ens, const float *s_ens,
                              const float *y, int nb, int hw, float *mu_out, float *sigma_out);
void loss_crps_head_backward(float *dout, const float *out, const float *m_ens,
                             const float *s_ens, const float *y, int nb, int hw, double scale);
double loss_crps_head_masked_forward(const float *out, const float *m_ens, const float *s_ens,
                                     const float *y, int nb, int hw, float *mu_out,
                                     float *sigma_out);
void loss_crps_head_masked_backward(float *dout, const float *out, const float *m_ens,
                                    const float *s_ens, const float *y, int nb, int hw,
                                    double scale);

/* Ensemble CRPS (a score, not a training loss) of m members x[k * stride] against y:
 *   standard: mean_i |x_i - y| - 1/(2 m^2)      sum_{i,l} |x_i - x_l|   (METHODS.md 5)
 *   fair:     mean_i |x_i - y| - 1/(2 m (m-1))  sum_{i,l} |x_i - x_l|
 * (the fair form is unbiased for the CRPS of the distribution the members are drawn from).
 * Computed in O(m log m) via the sorted members for m <= 256, pairwise above. NaN when y or a
 * member is NaN, or fair with m < 2. */
double loss_crps_ensemble_point(const float *x, size_t stride, int m, double y, int fair);
/* Mean over the n points with a non-NaN target of the ensemble CRPS; ens is (m, n) (member
 * major, e.g. (members, lat, lon)). *nvalid (nullable) receives the number of points used;
 * returns 0 when there are none. */
double loss_crps_ensemble_mean(const float *ens, int m, size_t n, const float *y, int fair,
                               size_t *nvalid);

#endif
