/* EMOS (Gneiting et al. 2005, non-homogeneous Gaussian regression): predictive distribution
 * N(mu, sigma^2) with mu = a + b * m and sigma^2 = c + d * v, where m, v are the ensemble mean
 * and variance; a, b, c, d minimise the mean Gaussian CRPS over the training samples.
 *
 * Fitting (docs/scores.md): y, m are standardised internally by the mean and standard
 * deviation of y (v by its square) so one tolerance fits every unit; c = gamma^2 and
 * d = delta^2 keep sigma^2 >= 0 (sigma^2 + 1e-12 in standardised units during the fit);
 * start from the least-squares line of y on m with the residual variance split evenly between
 * gamma^2 and delta^2 * mean(v); then BFGS with analytic gradients and a backtracking (Armijo)
 * line search, until max |gradient| < tol (standardised units) or max_iter. Deterministic.
 * A sample with m, v or y NaN (or v < 0) is skipped.
 *
 * Layout for the per-point fit and apply: (T, npts) arrays, time major (point p of time t
 * at [t * npts + p]); the global fit of such arrays is emos_fit(m, v, y, T * npts, 1, ...).
 * Coefficient files are written by the post-processing command. */
#ifndef SMOECAST_POST_EMOS_H
#define SMOECAST_POST_EMOS_H

#include <stddef.h>

typedef struct {
    double a, b, c, d;
} emos_coef;

typedef struct {
    int max_iter;     /* BFGS iterations (default 500) */
    double tol;       /* gradient infinity-norm tolerance, standardised units (default 1e-7) */
    int min_samples;  /* fewer valid samples is an error (default 10) */
} emos_opts;

typedef struct {
    int iters;        /* BFGS iterations taken */
    int converged;    /* 1 when the gradient tolerance was met */
    double crps;      /* mean CRPS at the optimum, in the units of y */
    size_t n;         /* valid samples used */
} emos_info;

/* Sigma floor used by `smoecast postprocess apply` unless configured: zero ensemble spread
 * with c ~ 0 would give sigma = 0; sigma is raised to this value (units of the target). */
#define EMOS_DEFAULT_SIGMA_FLOOR 1e-3

void emos_default_opts(emos_opts *o);
/* Mean Gaussian CRPS of coefficients c on n samples at m[i*stride], v[i*stride], y[i*stride]
 * (NaN samples skipped); NaN if none is valid. */
double emos_crps(const emos_coef *c, const float *m, const float *v, const float *y, size_t n,
                 size_t stride);
/* Mean CRPS as above and its analytic gradient wrt (a, b, c, d) in grad[4]:
 *   dmu = 1 - 2 Phi(z), dsigma = 2 phi(z) - 1/sqrt(pi),  sigma = sqrt(c + d v),
 *   d/da = dmu, d/db = dmu m, d/dc = dsigma / (2 sigma), d/dd = dsigma v / (2 sigma)
 * (samples with c + d v <= 0 are skipped). Used by the tests; the fit applies the same
 * formulas to (gamma, delta) through c = gamma^2, d = delta^2. */
double emos_crps_grad(const emos_coef *c, const float *m, const float *v, const float *y,
                      size_t n, size_t stride, double grad[4]);
/* Global fit on n samples (stride as above; 1 for contiguous). opts/info nullable.
 * SM_ERR_USAGE when fewer than min_samples are valid, SM_ERR_NUMERIC on a non-finite result. */
int emos_fit(const float *m, const float *v, const float *y, size_t n, size_t stride,
             const emos_opts *opts, emos_coef *out, emos_info *info);
/* Per grid point: every point fitted on its own time series of T samples; m, v, y (T, npts);
 * out[npts]. OpenMP over points. A point that cannot be fitted (too few valid samples) gets
 * NaN coefficients and is counted in *n_failed (nullable); returns SM_OK unless every point
 * failed (then the first point's error). n_unconverged (nullable) counts points that hit
 * max_iter. */
int emos_fit_points(const float *m, const float *v, const float *y, int T, size_t npts,
                    const emos_opts *opts, emos_coef *out, long *n_failed, long *n_unconverged);
/* mu = a + b m, sigma = max(sqrt(max(c + d v, 0)), sigma_floor) for n = T * npts values of
 * (T, npts) arrays; coef has 1 entry (per_point = 0) or npts entries (per_point = 1).
 * NaN inputs (or NaN coefficients) give NaN outputs. */
void emos_apply(const emos_coef *coef, int per_point, const float *m, const float *v, int T,
                size_t npts, double sigma_floor, float *mu, float *sigma);

#endif
