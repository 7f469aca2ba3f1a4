/* Helpers shared by the tests/unit/test_nn_*.c programs: seeded fills, finite-difference
 * gradient checks (central differences, loss accumulated in double) and golden-file checks
 * against tests/golden/layers_<name>.nc (written by scripts/golden/make_golden_layers.py). */
#ifndef SMOECAST_TESTS_NN_TESTLIB_H
#define SMOECAST_TESTS_NN_TESTLIB_H

#include "testutil.h"

#include "core/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline float *nt_alloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

/* uniform in [-1, 1) */
static inline void nt_fill(float *x, size_t n, rng_t *r)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(2.0 * rng_uniform(r) - 1.0);
}

/* uniform in +-[margin, 1): keeps values away from kinks at 0 */
static inline void nt_fill_away0(float *x, size_t n, rng_t *r, float margin)
{
    for (size_t i = 0; i < n; i++) {
        float v = margin + (1.0f - margin) * (float)rng_uniform(r);
        x[i] = (rng_u32(r) & 1) ? v : -v;
    }
}

static inline double nt_dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* The loss L(params) = sum(forward(...) * g_out), recomputed by the caller's closure. */
typedef double (*nt_loss_fn)(void *ctx);

/* Relative L2 error between `analytic` (dL/dx) and central differences of f over x. */
static inline double nt_gradcheck(nt_loss_fn f, void *ctx, float *x, size_t n,
                                  const float *analytic, float h)
{
    double num2 = 0.0, den2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = f(ctx);
        x[i] = keep - h;
        double lm = f(ctx);
        x[i] = keep;
        double fd = (lp - lm) / ((double)(keep + h) - (double)(keep - h));
        double d = fd - analytic[i];
        num2 += d * d;
        den2 += fd * fd;
    }
    return sqrt(num2) / (sqrt(den2) + 1e-12);
}

#define NT_GRADCHECK(f, ctx, x, n, analytic, h, tol)                                        \
    do {                                                                                    \
        double nt_err_ = nt_gradcheck((f), (ctx), (x), (n), (analytic), (h));               \
        if (!(nt_err_ <= (tol)))                                                            \
            fail_msg("%s:%d gradcheck of %s: rel err %.3g > %.3g", __FILE__, __LINE__, #x,  \
                     nt_err_, (double)(tol));                                               \
    } while (0)

/* Loads <case>_<var> from layers_<file>.nc, asserting it has `n` elements. */
static inline float *nt_golden(const char *file, const char *cs, const char *var, size_t n)
{
    char fname[256], vname[256];
    snprintf(fname, sizeof fname, "layers_%s.nc", file);
    snprintf(vname, sizeof vname, "%s_%s", cs, var);
    size_t got = 0;
    float *p = testutil_golden_load(fname, vname, &got, NULL, NULL);
    if (got != n) fail_msg("%s: %s has %zu elements, expected %zu", fname, vname, got, n);
    return p;
}

/* ||c - t||_2 <= 1e-4 ||t||_2 + 1e-6 against golden <case>_<var>. */
static inline void nt_golden_check(const char *file, const char *cs, const char *var,
                                   const float *c, size_t n)
{
    float *t = nt_golden(file, cs, var, n);
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)c[i] - t[i];
        num += d * d;
        den += (double)t[i] * t[i];
    }
    free(t);
    if (!(sqrt(num) <= 1e-4 * sqrt(den) + 1e-6))
        fail_msg("golden %s/%s_%s: ||c - torch|| = %.3g, ||torch|| = %.3g", file, cs, var,
                 sqrt(num), sqrt(den));
}

#endif
