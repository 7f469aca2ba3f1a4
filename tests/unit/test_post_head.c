/* MoE output heads of the neural post-processing (docs/postprocess.md, method smoe): the
 * per-channel SMoE head (model.moe.outputs = per_channel: one SMoE layer with its own gate per
 * output channel, so o0 and o1 each come from the top-1 expert of their gate) and the
 * point-gated head (each expert a conv block emitting both o0 and o1). Finite-difference
 * gradients of the whole network under the ENS-10 CRPS head loss (nn/loss.h
 * loss_crps_head_*), the layer layout, the k = 1 requirement, and a tiny region-dependent
 * calibration problem on which each head trains (the CRPS decreases). */
#include "model_testlib.h"

#include "nn/loss.h"
#include "nn/optim.h"

#define H 6
#define W 8
#define HW (H * W)

typedef struct {
    sm_model *m;
    const float *x, *m_ens, *s_ens, *y;
    rng_t rng0;
} crps_ctx;

/* CRPS head loss of the network output at the current parameters (deterministic forward). */
static double crps_loss(crps_ctx *c)
{
    rng_t r = c->rng0;
    memcpy(model_input(c->m), c->x, mt_in_floats(c->m) * sizeof(float));
    assert_int_equal(model_forward(c->m, 1, &r), SM_OK);
    return loss_crps_head_forward(model_output(c->m), c->m_ens, c->s_ens, c->y, model_batch(c->m), HW,
                                  NULL, NULL);
}

/* Region-dependent toy calibration batch: inputs (B, 2, H, W) = (standardised mean, spread);
 * raw ensemble mean m, spread s; truth y = m + s (bias(region) + z) with bias +2 on the left
 * half of the grid and -2 on the right: the calibrated head is o0 = bias(region), o1 = 0.
 * Mean CRPS (numpy, 2e5 draws): raw ensemble 0.997, calibrated 0.367, and at best 0.847 for a
 * head that does not know the region (o0 = 0, sigma = 2.5 s). Not regional: y = m + s (1 + 2 z)
 * everywhere (o0 = 1, o1 = log 2): raw 1.10, calibrated 0.733. */
static void toy_batch(int B, int regional, rng_t *r, float *x, float *m, float *s, float *y)
{
    for (int b = 0; b < B; b++)
        for (int p = 0; p < HW; p++) {
            float mu = (float)rng_normal(r), sd = 0.3f + 0.7f * (float)rng_uniform(r);
            int left = p % W < W / 2;
            m[b * HW + p] = mu;
            s[b * HW + p] = sd;
            if (regional) y[b * HW + p] = mu + sd * ((left ? 2.0f : -2.0f) + (float)rng_normal(r));
            else y[b * HW + p] = mu + sd * (1.0f + 2.0f * (float)rng_normal(r));
            x[((size_t)b * 2 + 0) * HW + p] = mu;
            x[((size_t)b * 2 + 1) * HW + p] = sd;
        }
}

/* Central differences of the CRPS head loss for every trainable tensor (up to 12 entries
 * each) against model_backward fed with loss_crps_head_backward. `skip`: tensors not compared
 * (an RC-trained gate gets no main-loss gradient). Entries on a routing switch (differences
 * with h and h/2 disagree) are skipped, at most a quarter of a tensor. */
static void crps_gradcheck(sm_model *m, const char *skip, float h)
{
    const int B = model_batch(m);
    float x[2 * 2 * HW], me[2 * HW], se[2 * HW], y[2 * HW];
    assert_true(B <= 2);
    rng_t r;
    rng_seed(&r, 31, 1);
    toy_batch(B, 1, &r, x, me, se, y);
    crps_ctx c = {m, x, me, se, y, r};
    rng_seed(&c.rng0, 5, 2);
    param_store *ps = model_params(m);
    model_zero_grad(m);
    crps_loss(&c);
    memset(model_output_grad(m), 0, mt_out_floats(m) * sizeof(float));
    loss_crps_head_backward(model_output_grad(m), model_output(m), me, se, y, B, HW, 1.0);
    assert_int_equal(model_backward(m), SM_OK);
    size_t total = param_store_size(ps);
    float *an = malloc(total * sizeof(float));
    assert_non_null(an);
    memcpy(an, param_store_grad_all(ps), total * sizeof(float));
    const double noise = 1e-6 / h; /* rounding noise of the float forward in the differences */
    int checked = 0;
    for (int id = 0; id < param_store_count(ps); id++) {
        const param_view *v = param_store_view(ps, id);
        if (!(v->flags & PARAM_TRAINABLE) || (skip && strstr(v->name, skip))) continue;
        float *p = param_data(ps, id);
        size_t step = v->numel > 12 ? v->numel / 12 : 1;
        double num2 = 0, den2 = 0;
        size_t n = 0, kinks = 0;
        for (size_t i = 0; i < v->numel; i += step) {
            float keep = p[i];
            double fd[2];
            for (int k = 0; k < 2; k++) {
                float hk = k ? h / 2 : h;
                p[i] = keep + hk;
                double lp = crps_loss(&c);
                p[i] = keep - hk;
                double lm = crps_loss(&c);
                p[i] = keep;
                fd[k] = (lp - lm) / ((double)(keep + hk) - (double)(keep - hk));
            }
            if (fabs(fd[0] - fd[1]) > 0.05 * (fabs(fd[0]) + fabs(fd[1])) + 4 * noise) {
                kinks++;
                continue;
            }
            n++;
            num2 += (fd[1] - an[v->offset + i]) * (fd[1] - an[v->offset + i]);
            den2 += fd[1] * fd[1];
        }
        if (kinks * 4 > n + kinks) fail_msg("%s: %zu of %zu entries on a routing switch", v->name, kinks, n + kinks);
        double err = sqrt(num2), bound = 2e-2 * sqrt(den2) + 2 * noise * sqrt((double)n);
        if (!(err <= bound))
            fail_msg("%s: ||fd - analytic|| %.3g > %.3g (||fd|| %.3g, %zu entries)", v->name, err, bound, sqrt(den2), n);
        checked++;
    }
    assert_true(checked >= 3);
    free(an);
}

static void test_per_channel_layout(void **state)
{
    (void)state;
    const char *ov[] = {"model.architecture=cnn", "model.channels=[4]", "model.kernel=3",
                        "model.moe.enabled=true", "model.moe.gate=latent", "model.moe.experts=3",
                        "model.moe.k=1", "model.moe.expert_kernel=1", "model.moe.outputs=per_channel"};
    sm_model *m = mt_build(9, ov, 2, 2, H, W, 0, 2);
    assert_int_equal(model_c_out(m), 2);
    assert_int_equal(model_moe_count(m), 2);
    for (int i = 0; i < 2; i++) {
        model_moe_info mi;
        assert_int_equal(model_moe_get(m, i, &mi), SM_OK);
        char want[32];
        snprintf(want, sizeof want, "conv1_ch%d", i);
        assert_string_equal(mi.name, want);
        assert_int_equal(mi.kind, LAYER_SMOE);
        assert_int_equal(mi.n_experts, 3);
        assert_int_equal(mi.k, 1);
    }
    model_free(m);
    /* the default (ranked) keeps one SMoE layer with k = c_out ranked outputs */
    sm_model *r = mt_build(8, ov, 2, 2, H, W, 0, 2);
    assert_int_equal(model_moe_count(r), 1);
    model_moe_info mi;
    assert_int_equal(model_moe_get(r, 0, &mi), SM_OK);
    assert_int_equal(mi.k, 2);
    assert_int_equal(mi.n_experts, 6);
    model_free(r);
}

/* model.moe.latent_init_scale multiplies the latent gates' initial values (same draws). */
static void test_latent_init_scale(void **state)
{
    (void)state;
    const char *ov[] = {"model.architecture=cnn", "model.channels=[4]", "model.moe.enabled=true",
                        "model.moe.experts=3", "model.moe.outputs=per_channel", "model.moe.latent_init_scale=0.01"};
    sm_model *a = mt_build(5, ov, 2, 2, H, W, 0, 2), *b = mt_build(6, ov, 2, 2, H, W, 0, 2);
    for (int i = 0; i < 2; i++) {
        model_moe_info ma, mb;
        assert_int_equal(model_moe_get(a, i, &ma), SM_OK);
        assert_int_equal(model_moe_get(b, i, &mb), SM_OK);
        const float *ga = param_data(model_params(a), ma.param_gate), *gb = param_data(model_params(b), mb.param_gate);
        size_t n = param_store_view(model_params(a), ma.param_gate)->numel;
        assert_int_equal(n, 3 * HW);
        double amax = 0;
        for (size_t j = 0; j < n; j++) {
            assert_float_equal(gb[j], 0.01f * ga[j], 1e-6f);
            amax = fmax(amax, fabs(ga[j]));
        }
        assert_true(amax > 0.5 * sqrt(3.0 * 3) && amax <= sqrt(3.0 * 3)); /* U(-a, a), a = sqrt(3 N / k) */
    }
    model_free(a);
    model_free(b);
}

static void test_per_channel_needs_k1(void **state)
{
    (void)state;
    const char *ov[] = {"model.architecture=cnn", "model.channels=[4]", "model.moe.enabled=true",
                        "model.moe.experts=3", "model.moe.k=2", "model.moe.outputs=per_channel"};
    sm_config *cfg = mt_config(6, ov);
    sm_model *m = NULL;
    assert_int_equal(model_build_dims(&cfg->model, 2, 2, H, W, 0, 2, 1, 7, &m), SM_ERR_USAGE);
    assert_null(m);
    assert_non_null(strstr(sm_last_error(), "model.moe.outputs"));
    config_free(cfg);
}

static void test_fd_per_channel_crps(void **state)
{
    (void)state;
    /* weighted routing, gates trained by the main loss (RC off): every tensor is compared */
    const char *ov[] = {"model.architecture=cnn", "model.channels=[3]", "model.kernel=3",
                        "model.activation=tanh", "model.moe.enabled=true", "model.moe.gate=latent",
                        "model.moe.experts=3", "model.moe.k=1", "model.moe.outputs=per_channel",
                        "model.moe.rc_loss.enabled=false"};
    sm_model *m = mt_build(10, ov, 2, 2, H, W, 0, 2);
    crps_gradcheck(m, NULL, 1e-2f);
    model_free(m);
}

static void test_fd_per_channel_rc_crps(void **state)
{
    (void)state;
    /* the configs/ens_smoe.yaml head: RC-trained latent gates (not compared), 1x1 experts */
    const char *ov[] = {"model.architecture=cnn", "model.channels=[3]", "model.kernel=3",
                        "model.activation=tanh", "model.moe.enabled=true", "model.moe.gate=latent",
                        "model.moe.experts=3", "model.moe.k=1", "model.moe.outputs=per_channel",
                        "model.moe.expert_kernel=1"};
    sm_model *m = mt_build(10, ov, 2, 2, H, W, 0, 2);
    crps_gradcheck(m, "gate", 1e-2f);
    model_free(m);
}

static void test_fd_point_head_crps(void **state)
{
    (void)state;
    /* point-gated head, noise-free softmax over all experts (smooth): every tensor compared */
    const char *ov[] = {"model.architecture=cnn", "model.channels=[3]", "model.kernel=3",
                        "model.activation=tanh", "model.moe.enabled=true",
                        "model.moe.gate=softmax_topk", "model.moe.experts=3", "model.moe.k=3",
                        "model.moe.expert_kernel=1", "model.moe.expert_hidden=4"};
    sm_model *m = mt_build(10, ov, 2, 2, H, W, 0, 2);
    crps_gradcheck(m, NULL, 1e-3f);
    model_free(m);
}

/* Adam on fresh toy batches on a grid periodic in longitude (so only a location-aware gate can
 * tell the regions apart); *first / *last: mean CRPS of the first / last 20 steps. */
static void train_head(int n, const char *const *ov, int regional, double lr, int steps, double *first_out,
                       double *last_out)
{
    const int B = 4;
    sm_model *m = mt_build(n, ov, 2, 2, H, W, 1, B);
    optim_config oc = optim_default_config(OPTIM_ADAM);
    oc.lr = lr;
    optim *opt = NULL;
    assert_int_equal(optim_create(&opt, model_params(m), &oc), SM_OK);
    rng_t r, nr;
    rng_seed(&r, 17, 1);
    rng_seed(&nr, 18, 2);
    float me[4 * HW], se[4 * HW], y[4 * HW];
    double first = 0, last = 0;
    for (int step = 0; step < steps; step++) {
        toy_batch(B, regional, &r, model_input(m), me, se, y);
        model_zero_grad(m);
        assert_int_equal(model_forward(m, 1, &nr), SM_OK);
        double loss = loss_crps_head_forward(model_output(m), me, se, y, B, HW, NULL, NULL);
        memset(model_output_grad(m), 0, mt_out_floats(m) * sizeof(float));
        loss_crps_head_backward(model_output_grad(m), model_output(m), me, se, y, B, HW, 1.0);
        assert_int_equal(model_backward(m), SM_OK);
        optim_step(opt);
        assert_true(isfinite(loss));
        if (step < 20) first += loss / 20;
        if (step >= steps - 20) last += loss / 20;
    }
    optim_free(opt);
    model_free(m);
    *first_out = first;
    *last_out = last;
}

static void test_per_channel_head_trains(void **state)
{
    (void)state;
    const char *ov[] = {"model.architecture=cnn", "model.channels=[8]", "model.kernel=3",
                        "model.activation=relu", "model.moe.enabled=true", "model.moe.gate=latent",
                        "model.moe.experts=3", "model.moe.k=1", "model.moe.outputs=per_channel",
                        "model.moe.expert_kernel=1"};
    double first, last;
    train_head(10, ov, 1, 1e-2, 600, &first, &last);
    /* measured 0.976 -> 0.773: below 0.847, the best a head blind to the regions can do, so the
     * latent gates have learned the two regions */
    if (!(last < 0.81 && last < 0.9 * first)) fail_msg("per-channel head: CRPS %.4f -> %.4f", first, last);
}

static void test_point_head_trains(void **state)
{
    (void)state;
    const char *ov[] = {"model.architecture=cnn", "model.channels=[8]", "model.kernel=3",
                        "model.activation=relu", "model.moe.enabled=true",
                        "model.moe.gate=softmax_topk", "model.moe.experts=4", "model.moe.k=2",
                        "model.moe.expert_kernel=1", "model.moe.expert_hidden=8",
                        "model.moe.aux.importance=0.01"};
    double first, last;
    /* its gate sees features, not locations: the location-independent calibration problem */
    train_head(11, ov, 0, 1e-2, 600, &first, &last);
    /* measured 0.758 -> 0.721, the calibrated score within the sampling noise */
    if (!(last < 0.75 && last < first - 0.02)) fail_msg("point-gated head: CRPS %.4f -> %.4f", first, last);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_channel_layout),
        cmocka_unit_test(test_latent_init_scale),
        cmocka_unit_test(test_per_channel_needs_k1),
        cmocka_unit_test(test_fd_per_channel_crps),
        cmocka_unit_test(test_fd_per_channel_rc_crps),
        cmocka_unit_test(test_fd_point_head_crps),
        cmocka_unit_test(test_per_channel_head_trains),
        cmocka_unit_test(test_point_head_trains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
