/* EMOS fit (mean-CRPS minimisation by BFGS) and apply; see emos.h and docs/scores.md. */
#include "post/emos.h"

#include "core/log.h"
#include "eval/prob_scores.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NP 4
#define VAR_EPS 1e-12

void emos_default_opts(emos_opts *o)
{
    o->max_iter = 500;
    o->tol = 1e-7;
    o->min_samples = 10;
}

static int valid(float m, float v, float y) { return !isnan(m) && !isnan(v) && !isnan(y) && v >= 0; }

double emos_crps(const emos_coef *c, const float *m, const float *v, const float *y, size_t n,
                 size_t stride)
{
    double s = 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = i * stride;
        if (!valid(m[j], v[j], y[j])) continue;
        double s2 = c->c + c->d * v[j];
        s += eval_crps_gauss(c->a + c->b * m[j], sqrt(s2 > 0 ? s2 : 0), y[j], NULL, NULL);
        k++;
    }
    return k ? s / (double)k : NAN;
}

double emos_crps_grad(const emos_coef *c, const float *m, const float *v, const float *y,
                      size_t n, size_t stride, double grad[4])
{
    double s = 0.0, g[4] = {0, 0, 0, 0};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = i * stride;
        if (!valid(m[j], v[j], y[j])) continue;
        double s2 = c->c + c->d * v[j];
        if (!(s2 > 0)) continue;
        double sig = sqrt(s2), dmu, dsig;
        s += eval_crps_gauss(c->a + c->b * m[j], sig, y[j], &dmu, &dsig);
        g[0] += dmu;
        g[1] += dmu * m[j];
        g[2] += dsig / (2.0 * sig);
        g[3] += dsig * v[j] / (2.0 * sig);
        k++;
    }
    for (int i = 0; i < 4; i++) grad[i] = k ? g[i] / (double)k : NAN;
    return k ? s / (double)k : NAN;
}

/* Standardised samples. */
typedef struct {
    const double *m, *v, *y;
    size_t n;
} problem;

/* Mean CRPS and gradient wrt theta = (a', b', gamma, delta). */
static double objective(const problem *P, const double *th, double *g)
{
    double f = 0.0, ga = 0.0, gb = 0.0, gg = 0.0, gd = 0.0;
    double gam2 = th[2] * th[2], del2 = th[3] * th[3];
    for (size_t i = 0; i < P->n; i++) {
        double mu = th[0] + th[1] * P->m[i];
        double sig = sqrt(gam2 + del2 * P->v[i] + VAR_EPS);
        double dmu, dsig;
        f += eval_crps_gauss(mu, sig, P->y[i], &dmu, &dsig);
        ga += dmu;
        gb += dmu * P->m[i];
        gg += dsig * th[2] / sig;
        gd += dsig * th[3] * P->v[i] / sig;
    }
    double inv = 1.0 / (double)P->n;
    g[0] = ga * inv;
    g[1] = gb * inv;
    g[2] = gg * inv;
    g[3] = gd * inv;
    return f * inv;
}

static double inf_norm(const double *g)
{
    double r = 0.0;
    for (int i = 0; i < NP; i++) r = fmax(r, fabs(g[i]));
    return r;
}

/* BFGS on the inverse Hessian with Armijo backtracking. Returns iterations; *conv set. */
static int bfgs(const problem *P, double *th, int max_iter, double tol, int *conv, double *fout)
{
    double H[NP][NP], g[NP], gn[NP], thn[NP], p[NP], s[NP], yv[NP];
    memset(H, 0, sizeof H);
    for (int i = 0; i < NP; i++) H[i][i] = 1.0;
    double f = objective(P, th, g);
    *conv = 0;
    int it = 0;
    for (; it < max_iter; it++) {
        if (inf_norm(g) < tol) {
            *conv = 1;
            break;
        }
        double gp = 0.0;
        for (int i = 0; i < NP; i++) {
            p[i] = 0.0;
            for (int j = 0; j < NP; j++) p[i] -= H[i][j] * g[j];
            gp += p[i] * g[i];
        }
        if (!(gp < 0.0)) { /* not a descent direction: restart from steepest descent */
            memset(H, 0, sizeof H);
            gp = 0.0;
            for (int i = 0; i < NP; i++) {
                H[i][i] = 1.0;
                p[i] = -g[i];
                gp -= g[i] * g[i];
            }
        }
        double step = 1.0, fn = f;
        int ok = 0;
        for (int ls = 0; ls < 60; ls++) {
            for (int i = 0; i < NP; i++) thn[i] = th[i] + step * p[i];
            fn = objective(P, thn, gn);
            if (isfinite(fn) && fn <= f + 1e-4 * step * gp) {
                ok = 1;
                break;
            }
            step *= 0.5;
        }
        if (!ok) { /* no decrease possible at machine precision: at the optimum */
            *conv = inf_norm(g) < 1e3 * tol;
            break;
        }
        double sy = 0.0, yy = 0.0;
        for (int i = 0; i < NP; i++) {
            s[i] = thn[i] - th[i];
            yv[i] = gn[i] - g[i];
            sy += s[i] * yv[i];
            yy += yv[i] * yv[i];
        }
        if (sy > 1e-300) {
            if (it == 0) { /* scale the initial inverse Hessian (Nocedal & Wright 6.20) */
                for (int i = 0; i < NP; i++) H[i][i] = sy / yy;
            }
            double Hy[NP], yHy = 0.0;
            for (int i = 0; i < NP; i++) {
                Hy[i] = 0.0;
                for (int j = 0; j < NP; j++) Hy[i] += H[i][j] * yv[j];
                yHy += yv[i] * Hy[i];
            }
            double rho = 1.0 / sy;
            for (int i = 0; i < NP; i++)
                for (int j = 0; j < NP; j++)
                    H[i][j] += (1.0 + yHy * rho) * rho * s[i] * s[j] - rho * (Hy[i] * s[j] + s[i] * Hy[j]);
        }
        memcpy(th, thn, sizeof thn);
        memcpy(g, gn, sizeof gn);
        f = fn;
    }
    if (fout) *fout = f;
    return it;
}

int emos_fit(const float *m, const float *v, const float *y, size_t n, size_t stride,
             const emos_opts *opts, emos_coef *out, emos_info *info)
{
    emos_opts def;
    if (!opts) {
        emos_default_opts(&def);
        opts = &def;
    }
    out->a = out->b = out->c = out->d = NAN;
    size_t nv = 0;
    double sy = 0.0, syy = 0.0;
    for (size_t i = 0; i < n; i++) {
        size_t j = i * stride;
        if (!valid(m[j], v[j], y[j])) continue;
        nv++;
        sy += y[j];
    }
    if (nv < (size_t)(opts->min_samples > 2 ? opts->min_samples : 2))
        return sm_fail(SM_ERR_USAGE, "EMOS fit: %zu valid samples, need at least %d", nv,
                       opts->min_samples > 2 ? opts->min_samples : 2);
    double ybar = sy / (double)nv;
    for (size_t i = 0; i < n; i++) {
        size_t j = i * stride;
        if (valid(m[j], v[j], y[j])) syy += ((double)y[j] - ybar) * ((double)y[j] - ybar);
    }
    double ys = sqrt(syy / (double)nv);
    if (!(ys > 0.0)) ys = 1.0;
    double *buf = malloc(3 * nv * sizeof *buf);
    if (!buf) return sm_fail(SM_ERR_NUMERIC, "EMOS fit: out of memory for %zu samples", nv);
    double *ms = buf, *vs = buf + nv, *ysd = buf + 2 * nv;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = i * stride;
        if (!valid(m[j], v[j], y[j])) continue;
        ms[k] = ((double)m[j] - ybar) / ys;
        vs[k] = (double)v[j] / (ys * ys);
        ysd[k] = ((double)y[j] - ybar) / ys;
        k++;
    }
    /* least-squares start */
    double mm = 0.0, my = 0.0, vm = 0.0;
    for (size_t i = 0; i < nv; i++) {
        mm += ms[i];
        my += ysd[i];
        vm += vs[i];
    }
    mm /= nv;
    my /= nv;
    vm /= nv;
    double sxx = 0.0, sxy = 0.0;
    for (size_t i = 0; i < nv; i++) {
        sxx += (ms[i] - mm) * (ms[i] - mm);
        sxy += (ms[i] - mm) * (ysd[i] - my);
    }
    double b0 = sxx > 0 ? sxy / sxx : 0.0, a0 = my - b0 * mm, r = 0.0;
    for (size_t i = 0; i < nv; i++) {
        double e = ysd[i] - a0 - b0 * ms[i];
        r += e * e;
    }
    r = r / nv;
    if (!(r > 1e-8)) r = 1e-8;
    double th[NP] = {a0, b0, sqrt(0.5 * r), vm > 0 ? sqrt(0.5 * r / vm) : 0.0};
    problem P = {ms, vs, ysd, nv};
    int conv;
    double f;
    int it = bfgs(&P, th, opts->max_iter, opts->tol, &conv, &f);
    free(buf);
    out->b = th[1];
    out->a = ybar + ys * th[0] - th[1] * ybar;
    out->c = ys * ys * th[2] * th[2];
    out->d = th[3] * th[3];
    if (!isfinite(out->a) || !isfinite(out->b) || !isfinite(out->c) || !isfinite(out->d))
        return sm_fail(SM_ERR_NUMERIC, "EMOS fit: non-finite coefficients after %d iterations", it);
    if (info) {
        info->iters = it;
        info->converged = conv;
        info->crps = f * ys;
        info->n = nv;
    }
    return SM_OK;
}

int emos_fit_points(const float *m, const float *v, const float *y, int T, size_t npts,
                    const emos_opts *opts, emos_coef *out, long *n_failed, long *n_unconverged)
{
    long failed = 0, unconv = 0;
    int first_status = SM_OK;
    long np = (long)npts;
#pragma omp parallel for schedule(dynamic, 8) reduction(+ : failed, unconv)
    for (long p = 0; p < np; p++) {
        emos_info info;
        int st = emos_fit(m + p, v + p, y + p, (size_t)T, npts, opts, &out[p], &info);
        if (st != SM_OK) {
            out[p].a = out[p].b = out[p].c = out[p].d = NAN;
            failed++;
            if (p == 0) first_status = st;
        } else if (!info.converged) {
            unconv++;
        }
    }
    if (n_failed) *n_failed = failed;
    if (n_unconverged) *n_unconverged = unconv;
    if (npts > 0 && failed == np) {
        return sm_fail(first_status ? first_status : SM_ERR_NUMERIC,
                       "EMOS per-point fit: no grid point could be fitted (%ld points, %d times "
                       "each)", np, T);
    }
    return SM_OK;
}

void emos_apply(const emos_coef *coef, int per_point, const float *m, const float *v, int T,
                size_t npts, double sigma_floor, float *mu, float *sigma)
{
    for (int t = 0; t < T; t++) {
        for (size_t p = 0; p < npts; p++) {
            size_t k = (size_t)t * npts + p;
            const emos_coef *c = per_point ? &coef[p] : coef;
            if (!valid(m[k], v[k], 0.0f) || isnan(c->a) || isnan(c->c)) {
                mu[k] = sigma[k] = NAN;
                continue;
            }
            double s2 = c->c + c->d * v[k];
            double s = sqrt(s2 > 0 ? s2 : 0.0);
            mu[k] = (float)(c->a + c->b * m[k]);
            sigma[k] = (float)(s > sigma_floor ? s : sigma_floor);
        }
    }
}
