/* SMoE layer: finite-difference gradients for every gate and routing mode, sparse experts vs the
 * dense reference, straight-through semantics, RC-only gate gradient, damping. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "moe/rc_loss.h"
#include "moe/smoe.h"
#include "moe/smoe_expert.h"
#include "nn/threads.h"

typedef struct {
    smoe_shape s;
    float *x, *params, *state, *ws, *y, *gy, *dx, *dp;
    size_t nx, np, ny;
} fixture;

static void fx_init(fixture *f, const smoe_shape *s, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->s = *s;
    assert_int_equal(smoe_check(s), SM_OK);
    f->nx = (size_t)s->batch * s->c_in * s->h * s->w;
    f->ny = (size_t)s->batch * s->k * s->h * s->w;
    f->np = smoe_param_floats(s);
    f->x = malloc(f->nx * sizeof(float));
    f->dx = calloc(f->nx, sizeof(float));
    f->params = malloc(f->np * sizeof(float));
    f->dp = calloc(f->np, sizeof(float));
    f->state = calloc(smoe_state_floats(s), sizeof(float));
    f->ws = calloc(smoe_workspace_floats(s), sizeof(float));
    f->y = malloc(f->ny * sizeof(float));
    f->gy = malloc(f->ny * sizeof(float));
    rng_t r;
    rng_seed(&r, seed, 1);
    smoe_init(s, f->params, &r);
    for (size_t i = 0; i < f->nx; i++) f->x[i] = (float)rng_normal(&r);
    for (size_t i = 0; i < f->ny; i++) f->gy[i] = (float)rng_normal(&r);
}

static void fx_free(fixture *f)
{
    free(f->x); free(f->dx); free(f->params); free(f->dp);
    free(f->state); free(f->ws); free(f->y); free(f->gy);
}

/* L = sum(y * gy); also copies the routing into idx_out (may be NULL). */
static double fx_loss(fixture *f, int32_t *idx_out)
{
    smoe_forward(&f->s, f->y, f->x, f->params, f->state, f->ws, NULL);
    double L = 0;
    for (size_t i = 0; i < f->ny; i++) L += (double)f->y[i] * f->gy[i];
    if (idx_out) memcpy(idx_out, smoe_state(&f->s, f->state).idx, f->ny * sizeof(int32_t));
    return L;
}

static void fx_backward(fixture *f)
{
    memset(f->dx, 0, f->nx * sizeof(float));
    memset(f->dp, 0, f->np * sizeof(float));
    fx_loss(f, NULL);
    smoe_backward(&f->s, f->dx, f->dp, f->gy, NULL, f->x, f->params, f->state, f->ws);
}

/* Central differences on `n` entries of buf (a view into x or params) against grad; entries
 * whose perturbation changes the routing are skipped (the loss is not differentiable there). */
static void fd_check(fixture *f, float *buf, const float *grad, size_t n, const char *what,
                     float eps, double tol)
{
    int32_t *idx0 = malloc(f->ny * sizeof(int32_t)), *idx1 = malloc(f->ny * sizeof(int32_t));
    fx_loss(f, idx0);
    double num = 0, den = 0;
    size_t checked = 0;
    size_t step = n > 300 ? n / 300 : 1;
    for (size_t i = 0; i < n; i += step) {
        float keep = buf[i];
        buf[i] = keep + eps;
        double lp = fx_loss(f, idx1);
        int same = memcmp(idx0, idx1, f->ny * sizeof(int32_t)) == 0;
        buf[i] = keep - eps;
        double lm = fx_loss(f, idx1);
        same = same && memcmp(idx0, idx1, f->ny * sizeof(int32_t)) == 0;
        buf[i] = keep;
        if (!same) continue;
        double fd = (lp - lm) / (2.0 * eps);
        num += (fd - grad[i]) * (fd - grad[i]);
        den += fd * fd;
        checked++;
    }
    double rel = sqrt(num) / (sqrt(den) + 1e-12);
    if (!(rel < tol) || checked < (n + step - 1) / step / 2)
        fail_msg("%s: FD rel error %.3g over %zu checked entries", what, rel, checked);
    free(idx0);
    free(idx1);
}

static smoe_shape small_shape(int gate, int weighted, int k, int pad)
{
    smoe_shape s;
    memset(&s, 0, sizeof s);
    s.batch = 2; s.c_in = 3; s.h = 5; s.w = 6; s.n_experts = 4; s.k = k;
    smoe_shape_defaults(&s);
    s.gate = (smoe_gate_type)gate;
    s.weighted = weighted;
    s.pad = (pad_mode)pad;
    return s;
}

static void check_all_fd(const smoe_shape *s, int check_gate, uint64_t seed)
{
    fixture f;
    fx_init(&f, s, seed);
    fx_backward(&f);
    moe_param_info info[2];
    smoe_params(s, info);
    float *dx = malloc(f.nx * sizeof(float)), *dp = malloc(f.np * sizeof(float));
    memcpy(dx, f.dx, f.nx * sizeof(float));
    memcpy(dp, f.dp, f.np * sizeof(float));
    fd_check(&f, f.x, dx, f.nx, "input", 1e-2f, 2e-3);
    fd_check(&f, f.params, dp, info[0].count, "expert_weight", 1e-2f, 2e-3);
    if (check_gate)
        fd_check(&f, f.params + info[1].offset, dp + info[1].offset, info[1].count, info[1].name,
                 s->gate == SMOE_GATE_LATENT ? 1e-2f : 1e-3f, s->gate == SMOE_GATE_LATENT ? 2e-3 : 1e-2);
    free(dx);
    free(dp);
    fx_free(&f);
}

static void test_fd_latent_weighted(void **st)
{
    (void)st;
    for (int pad = 0; pad < 3; pad++)
        for (int k = 1; k <= 2; k++) {
            smoe_shape s = small_shape(SMOE_GATE_LATENT, 1, k, pad);
            check_all_fd(&s, 1, 10 + pad * 3 + k);
        }
}

static void test_fd_conv_gates_weighted(void **st)
{
    (void)st;
    for (int g = SMOE_GATE_CONV; g <= SMOE_GATE_CONV1X1; g++)
        for (int pad = 0; pad < 3; pad++) {
            smoe_shape s = small_shape(g, 1, 2, pad);
            check_all_fd(&s, 1, 40 + g * 3 + pad);
        }
}

static void test_fd_softmax_before_topk(void **st)
{
    (void)st;
    smoe_shape s = small_shape(SMOE_GATE_LATENT, 1, 2, PAD_PERIODIC_LON);
    s.softmax = 1;
    check_all_fd(&s, 1, 77);
    s = small_shape(SMOE_GATE_CONV, 1, 1, PAD_ZERO);
    s.softmax = 1;
    check_all_fd(&s, 1, 78);
}

/* Unweighted: experts and input get true gradients (FD); the gate gets the straight-through
 * g at the selected experts (not a derivative of the forward). */
static void test_unweighted_straight_through(void **st)
{
    (void)st;
    for (int k = 1; k <= 3; k++) {
        smoe_shape s = small_shape(SMOE_GATE_LATENT, 0, k, PAD_ZERO);
        check_all_fd(&s, 0, 90 + k);
        fixture f;
        fx_init(&f, &s, 95 + k);
        fx_backward(&f);
        moe_param_info info[2];
        smoe_params(&s, info);
        size_t hw = (size_t)s.h * s.w;
        float *expect = calloc(info[1].count, sizeof(float));
        smoe_state_view v = smoe_state(&s, f.state);
        for (int b = 0; b < s.batch; b++)
            for (int j = 0; j < k; j++)
                for (size_t p = 0; p < hw; p++) {
                    size_t o = ((size_t)b * k + j) * hw + p;
                    expect[(size_t)v.idx[o] * hw + p] += f.gy[o];
                }
        for (size_t i = 0; i < info[1].count; i++)
            assert_float_equal(f.dp[info[1].offset + i], expect[i], 1e-5);
        free(expect);
        fx_free(&f);
    }
}

static void test_sparse_matches_dense(void **st)
{
    (void)st;
    for (int pad = 0; pad < 3; pad++) {
        smoe_shape s = small_shape(SMOE_GATE_CONV, 1, 2, pad);
        s.h = 4; s.w = 3; s.kernel = 5;  /* kernel wider than the grid: wrap/clamp twice */
        fixture f;
        fx_init(&f, &s, 120 + pad);
        fx_loss(&f, NULL);
        smoe_expert_shape es = {s.batch, s.c_in, s.h, s.w, s.n_experts, s.k, s.kernel, s.pad};
        size_t hw = (size_t)s.h * s.w;
        float *dense = malloc((size_t)s.batch * s.n_experts * hw * sizeof(float));
        smoe_expert_dense_forward(&es, dense, f.x, f.params);
        smoe_state_view v = smoe_state(&s, f.state);
        for (int b = 0; b < s.batch; b++)
            for (int j = 0; j < s.k; j++)
                for (size_t p = 0; p < hw; p++) {
                    size_t o = ((size_t)b * s.k + j) * hw + p;
                    float d = dense[((size_t)b * s.n_experts + v.idx[o]) * hw + p];
                    assert_float_equal(v.esel[o], d, 1e-4 * (1 + fabsf(d)));
                    float r = v.gate_route[((size_t)b * s.n_experts + v.idx[o]) * hw + p];
                    assert_float_equal(f.y[o], r * d, 1e-4 * (1 + fabsf(r * d)));
                    if (j > 0) {
                        float rp = v.gate_route[((size_t)b * s.n_experts + v.idx[o - hw]) * hw + p];
                        assert_true(rp >= r);
                    }
                }
        /* idx == NULL: every expert at every pixel (k = N), equal to the dense reference */
        smoe_expert_shape all = es;
        all.k = s.n_experts;
        float *sp = malloc((size_t)s.batch * s.n_experts * hw * sizeof(float));
        float *ws = malloc(smoe_expert_workspace_floats(&all) * sizeof(float));
        smoe_expert_forward(&all, sp, NULL, f.x, f.params, ws);
        assert_true(testutil_rel_l2(sp, dense, (size_t)s.batch * s.n_experts * hw) < 1e-5);
        free(sp);
        free(ws);
        free(dense);
        fx_free(&f);
    }
}

static void test_topk_ties_lower_index(void **st)
{
    (void)st;
    smoe_shape s = small_shape(SMOE_GATE_LATENT, 1, 2, PAD_ZERO);
    fixture f;
    fx_init(&f, &s, 5);
    moe_param_info info[2];
    smoe_params(&s, info);
    for (size_t i = 0; i < info[1].count; i++) f.params[info[1].offset + i] = 0.5f;
    fx_loss(&f, NULL);
    smoe_state_view v = smoe_state(&s, f.state);
    size_t hw = (size_t)s.h * s.w;
    for (int b = 0; b < s.batch; b++)
        for (size_t p = 0; p < hw; p++) {
            assert_int_equal(v.idx[((size_t)b * 2 + 0) * hw + p], 0);
            assert_int_equal(v.idx[((size_t)b * 2 + 1) * hw + p], 1);
        }
    fx_free(&f);
}

/* With RC on, the gate's gradient is exactly the BCE gradient: zero main-loss contribution. */
static void test_rc_gate_gets_only_rc_gradient(void **st)
{
    (void)st;
    for (int weighted = 0; weighted <= 1; weighted++) {
        smoe_shape s = small_shape(SMOE_GATE_LATENT, weighted, 1, PAD_ZERO);
        s.n_experts = 3;
        s.rc_loss = 1;
        s.rc_quantile = 0.3f;
        fixture f;
        fx_init(&f, &s, 200 + weighted);
        fx_backward(&f);
        moe_param_info info[2];
        smoe_params(&s, info);
        smoe_state_view v = smoe_state(&s, f.state);
        size_t hw = (size_t)s.h * s.w, khw = (size_t)s.k * hw, nhw = (size_t)s.n_experts * hw;
        float *es = malloc(f.ny * sizeof(float)), *qb = malloc(s.batch * sizeof(float));
        float *scr = malloc(khw * sizeof(float));
        float *lab = malloc((size_t)s.batch * nhw * sizeof(float));
        float *dg = calloc(nhw, sizeof(float));
        for (size_t o = 0; o < f.ny; o++) es[o] = fabsf(weighted ? f.gy[o] * v.esel[o] : f.gy[o]);
        rc_sample_quantiles(s.batch, khw, es, s.rc_quantile, qb, scr);
        rc_labels(s.batch, s.n_experts, s.k, hw, es, v.idx, qb, lab);
        double loss = rc_bce_with_logits(s.batch, nhw, f.params + info[1].offset, 0, lab, dg);
        for (size_t i = 0; i < nhw; i++) assert_float_equal(f.dp[info[1].offset + i], dg[i], 1e-7);
        assert_float_equal(v.stats[SMOE_STAT_RC_LOSS], loss, 1e-6);
        assert_true(loss > 0);
        free(es); free(qb); free(scr); free(lab); free(dg);
        fx_free(&f);
    }
}

/* Damping with factor 0 equals dropping the upstream gradient at the damped outputs; factor 1
 * equals no damping. The gate gradient is not damped. */
static void test_damping(void **st)
{
    (void)st;
    smoe_shape s = small_shape(SMOE_GATE_CONV, 0, 2, PAD_ZERO);
    s.damping = 1;
    s.damping_factor = 0.25f;
    s.rc_quantile = 0.5f;
    fixture f;
    fx_init(&f, &s, 300);
    fx_backward(&f);
    smoe_state_view v = smoe_state(&s, f.state);
    assert_true(v.stats[SMOE_STAT_DAMPED_FRAC] > 0.3f && v.stats[SMOE_STAT_DAMPED_FRAC] < 0.7f);
    float *dx_damp = malloc(f.nx * sizeof(float)), *dp_damp = malloc(f.np * sizeof(float));
    memcpy(dx_damp, f.dx, f.nx * sizeof(float));
    memcpy(dp_damp, f.dp, f.np * sizeof(float));
    /* expected: no damping, with gy scaled at damped positions, except for the gate */
    size_t hw = (size_t)s.h * s.w, khw = (size_t)s.k * hw;
    float *es = malloc(f.ny * sizeof(float)), *qb = malloc(s.batch * sizeof(float));
    float *scr = malloc(khw * sizeof(float));
    for (size_t o = 0; o < f.ny; o++) es[o] = fabsf(f.gy[o]);
    rc_sample_quantiles(s.batch, khw, es, 0.5f, qb, scr);
    float *gy0 = malloc(f.ny * sizeof(float));
    memcpy(gy0, f.gy, f.ny * sizeof(float));
    size_t nd = rc_damp(s.batch, khw, es, qb, 0.25f, f.gy);
    assert_true(nd > 0);
    f.s.damping = 0;
    fx_backward(&f);
    moe_param_info info[2];
    smoe_params(&s, info);
    /* expert weights: identical to the scaled-gy run */
    for (size_t i = 0; i < info[0].count; i++) assert_float_equal(dp_damp[i], f.dp[i], 1e-5);
    /* gate: identical to the undamped gy run */
    memcpy(f.gy, gy0, f.ny * sizeof(float));
    fx_backward(&f);
    for (size_t i = info[1].offset; i < f.np; i++) assert_float_equal(dp_damp[i], f.dp[i], 1e-5);
    free(dx_damp); free(dp_damp); free(es); free(qb); free(scr); free(gy0);
    fx_free(&f);
}

static void test_backward_accumulates(void **st)
{
    (void)st;
    smoe_shape s = small_shape(SMOE_GATE_CONV, 1, 2, PAD_PERIODIC_LON);
    fixture f;
    fx_init(&f, &s, 400);
    fx_backward(&f);
    float *dx1 = malloc(f.nx * sizeof(float)), *dp1 = malloc(f.np * sizeof(float));
    memcpy(dx1, f.dx, f.nx * sizeof(float));
    memcpy(dp1, f.dp, f.np * sizeof(float));
    smoe_backward(&s, f.dx, f.dp, f.gy, NULL, f.x, f.params, f.state, f.ws);
    for (size_t i = 0; i < f.nx; i++) assert_float_equal(f.dx[i], 2 * dx1[i], 1e-5 * (1 + fabsf(dx1[i])));
    for (size_t i = 0; i < f.np; i++) assert_float_equal(f.dp[i], 2 * dp1[i], 1e-5 * (1 + fabsf(dp1[i])));
    free(dx1); free(dp1);
    fx_free(&f);
}

static void test_noise_and_init(void **st)
{
    (void)st;
    smoe_shape s = small_shape(SMOE_GATE_LATENT, 1, 1, PAD_ZERO);
    s.n_experts = 3; s.h = 20; s.w = 20; s.noise = 1;
    fixture f;
    fx_init(&f, &s, 500);
    moe_param_info info[2];
    smoe_params(&s, info);
    assert_string_equal(info[1].name, "gate_latent");
    double a = 3.0, mx = 0; /* sqrt(3 * 3 / 1) */
    for (size_t i = 0; i < info[1].count; i++) mx = fmax(mx, fabs(f.params[info[1].offset + i]));
    assert_true(mx <= a && mx > 0.9 * a);
    rng_t nr;
    rng_seed(&nr, 1, 7);
    smoe_forward(&s, f.y, f.x, f.params, f.state, f.ws, &nr);
    smoe_state_view v = smoe_state(&s, f.state);
    double ss = 0;
    size_t n = (size_t)s.batch * s.n_experts * s.h * s.w;
    for (size_t i = 0; i < n; i++) ss += pow(v.gate_noisy[i] - v.gate_raw[i], 2);
    double sd = sqrt(ss / n);
    assert_true(sd > 0.9 / 3 && sd < 1.1 / 3);
    smoe_shape bad = s;
    bad.k = 4;
    assert_int_equal(smoe_check(&bad), SM_ERR_USAGE);
    fx_free(&f);
}

/* Auxiliary losses reach the gate parameters through d_gate_extra (FD on a conv gate). */
static void test_aux_losses_through_gate(void **st)
{
    (void)st;
    smoe_shape s = small_shape(SMOE_GATE_CONV, 1, 2, PAD_ZERO);
    s.noise = 1;
    fixture f;
    fx_init(&f, &s, 600);
    smoe_aux_weights aw = {0.7f, 0.2f, 0.3f};
    moe_param_info info[2];
    smoe_params(&s, info);
    size_t nr = (size_t)s.batch * s.n_experts * s.h * s.w;
    float *dg = calloc(nr, sizeof(float)), *zero = calloc(f.ny, sizeof(float));
    rng_t nr0;
    rng_seed(&nr0, 9, 9);
    smoe_forward(&s, f.y, f.x, f.params, f.state, f.ws, &nr0);
    double vals[3];
    smoe_aux_losses(&s, f.state, &aw, dg, vals);
    assert_true(vals[0] > 0 && vals[1] > 0 && vals[2] > 0);
    smoe_backward(&s, f.dx, f.dp, zero, dg, f.x, f.params, f.state, f.ws);
    for (size_t i = 0; i < info[0].count; i++) assert_float_equal(f.dp[i], 0, 0);
    const float eps = 1e-3f;
    double num = 0, den = 0;
    for (size_t i = info[1].offset; i < f.np; i++) {
        float keep = f.params[i];
        double l[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            f.params[i] = keep + (sgn ? -eps : eps);
            rng_seed(&nr0, 9, 9);
            smoe_forward(&s, f.y, f.x, f.params, f.state, f.ws, &nr0);
            l[sgn] = smoe_aux_losses(&s, f.state, &aw, NULL, NULL);
        }
        f.params[i] = keep;
        double fd = (l[0] - l[1]) / (2 * eps);
        num += (fd - f.dp[i]) * (fd - f.dp[i]);
        den += fd * fd;
    }
    if (!(sqrt(num) <= 1e-2 * sqrt(den))) fail_msg("aux FD %.3g vs %.3g", sqrt(num), sqrt(den));
    free(dg);
    free(zero);
    fx_free(&f);
}

/* The threaded sparse kernels (large enough to run in parallel) agree with one thread. */
static void test_threads_agree(void **st)
{
    (void)st;
    smoe_shape s = small_shape(SMOE_GATE_LATENT, 1, 2, PAD_PERIODIC_LON);
    s.batch = 4; s.c_in = 16; s.h = 24; s.w = 32;
    fixture f;
    fx_init(&f, &s, 700);
    nn_set_threads(1);
    fx_backward(&f);
    float *y1 = malloc(f.ny * sizeof(float)), *dx1 = malloc(f.nx * sizeof(float));
    float *dp1 = malloc(f.np * sizeof(float));
    memcpy(y1, f.y, f.ny * sizeof(float));
    memcpy(dx1, f.dx, f.nx * sizeof(float));
    memcpy(dp1, f.dp, f.np * sizeof(float));
    nn_set_threads(2);
    fx_backward(&f);
    nn_set_threads(1);
    assert_true(testutil_rel_l2(f.y, y1, f.ny) < 1e-6);
    assert_true(testutil_rel_l2(f.dx, dx1, f.nx) < 1e-6);
    assert_true(testutil_rel_l2(f.dp, dp1, f.np) < 1e-5);
    free(y1); free(dx1); free(dp1);
    fx_free(&f);
}

int main(void)
{
    /* Tiny shapes: extra threads only add scheduling overhead on a loaded machine. */
    nn_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_latent_weighted),
        cmocka_unit_test(test_fd_conv_gates_weighted),
        cmocka_unit_test(test_fd_softmax_before_topk),
        cmocka_unit_test(test_unweighted_straight_through),
        cmocka_unit_test(test_sparse_matches_dense),
        cmocka_unit_test(test_topk_ties_lower_index),
        cmocka_unit_test(test_rc_gate_gets_only_rc_gradient),
        cmocka_unit_test(test_damping),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_noise_and_init),
        cmocka_unit_test(test_aux_losses_through_gate),
        cmocka_unit_test(test_threads_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
