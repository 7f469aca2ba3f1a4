/* Helpers shared by tests/unit/test_model*.c and test_checkpoint*.c: models from config
 * overrides, seeded fills, whole-model finite-difference gradient checks. */
#ifndef SMOECAST_TESTS_MODEL_TESTLIB_H
#define SMOECAST_TESTS_MODEL_TESTLIB_H

#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/rng.h"
#include "model/builder.h"
#include "model/model.h"

static inline sm_config *mt_config(int n, const char *const *ov)
{
    sm_config *cfg = NULL;
    int rc = config_load(NULL, n, (char *const *)ov, &cfg);
    if (rc) fail_msg("config_load: %s", sm_last_error());
    return cfg;
}

static inline sm_model *mt_build(int n, const char *const *ov, int c_in, int c_out, int h, int w,
                                 int periodic, int batch)
{
    sm_config *cfg = mt_config(n, ov);
    sm_model *m = NULL;
    int rc = model_build_dims(&cfg->model, c_in, c_out, h, w, periodic, batch, 1, 7, &m);
    config_free(cfg);
    if (rc) fail_msg("model_build: %s", sm_last_error());
    return m;
}

static inline void mt_fill(float *x, size_t n, rng_t *r, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)(2.0 * rng_uniform(r) - 1.0);
}

static inline size_t mt_in_floats(const sm_model *m)
{
    return (size_t)model_batch(m) * model_c_in(m) * model_h(m) * model_w(m);
}

static inline size_t mt_out_floats(const sm_model *m)
{
    return (size_t)model_batch(m) * model_c_out(m) * model_out_h(m) * model_out_w(m);
}

/* L = sum(output * g) with a copy of rng0 (same dropout mask / noise every time). */
static inline double mt_loss(sm_model *m, const float *x, const float *g, const rng_t *rng0,
                             int training)
{
    rng_t r = *rng0;
    memcpy(model_input(m), x, mt_in_floats(m) * sizeof(float));
    assert_int_equal(model_forward(m, training, &r), SM_OK);
    const float *y = model_output(m);
    double s = 0.0;
    size_t n = mt_out_floats(m);
    for (size_t i = 0; i < n; i++) s += (double)y[i] * g[i];
    return s;
}

/* Analytic gradients of L into the store's grad buffer. */
static inline void mt_grad(sm_model *m, const float *x, const float *g, const rng_t *rng0,
                           int training)
{
    model_zero_grad(m);
    mt_loss(m, x, g, rng0, training);
    memcpy(model_output_grad(m), g, mt_out_floats(m) * sizeof(float));
    assert_int_equal(model_backward(m), SM_OK);
}

/* Central differences for every trainable tensor (up to max_per_tensor entries each, spread
 * over the tensor); fails when a tensor's error exceeds tol relative (plus an absolute floor for
 * the rounding noise of a float forward pass, e.g. for gradients that are ~0 such as a conv bias
 * followed by BatchNorm). An entry whose differences with steps h and h/2 disagree sits on a
 * kink (max-pool or ReLU switch, routing change) and is skipped; at most a quarter of a
 * tensor's entries may be skipped. Tensors whose name contains `skip` (nullable) are not
 * checked. */
static inline void mt_gradcheck(sm_model *m, const float *x, const float *g, const rng_t *rng0,
                                int training, float h, double tol, int max_per_tensor,
                                const char *skip)
{
    param_store *ps = model_params(m);
    mt_grad(m, x, g, rng0, training);
    size_t total = param_store_size(ps);
    float *analytic = malloc(total * sizeof(float));
    assert_non_null(analytic);
    memcpy(analytic, param_store_grad_all(ps), total * sizeof(float));
    const double noise = 1e-6 / h; /* per-entry rounding noise of the differences */
    for (int id = 0; id < param_store_count(ps); id++) {
        const param_view *v = param_store_view(ps, id);
        if (!(v->flags & PARAM_TRAINABLE)) continue;
        if (skip && strstr(v->name, skip)) continue;
        float *p = param_data(ps, id);
        const float *a = analytic + v->offset;
        size_t step = v->numel > (size_t)max_per_tensor ? v->numel / (size_t)max_per_tensor : 1;
        double num2 = 0.0, den2 = 0.0;
        size_t count = 0, kinks = 0;
        for (size_t i = 0; i < v->numel; i += step) {
            float keep = p[i];
            double fd[2];
            for (int k = 0; k < 2; k++) {
                float hk = k ? h / 2 : h;
                p[i] = keep + hk;
                double lp = mt_loss(m, x, g, rng0, training);
                p[i] = keep - hk;
                double lm = mt_loss(m, x, g, rng0, training);
                p[i] = keep;
                fd[k] = (lp - lm) / ((double)(keep + hk) - (double)(keep - hk));
            }
            if (fabs(fd[0] - fd[1]) > 0.05 * (fabs(fd[0]) + fabs(fd[1])) + 4 * noise) {
                kinks++;
                continue;
            }
            count++;
            num2 += (fd[1] - a[i]) * (fd[1] - a[i]);
            den2 += fd[1] * fd[1];
        }
        if (kinks * 4 > count + kinks)
            fail_msg("gradcheck %s: %zu of %zu entries are not differentiable at step %g", v->name,
                     kinks, count + kinks, (double)h);
        double err = sqrt(num2), bound = tol * sqrt(den2) + 2 * noise * sqrt((double)count);
        if (!(err <= bound))
            fail_msg("gradcheck %s: ||fd - analytic|| %.3g > %.3g (||fd|| %.3g, %zu entries, %zu kinks)",
                     v->name, err, bound, sqrt(den2), count, kinks);
    }
    free(analytic);
}

#endif
