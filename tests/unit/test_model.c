/* Model graph and builder: finite-difference gradients of every architecture (tiny instances),
 * MoE insertion, batch-size changes, summary and builder errors. */
#include "model_testlib.h"

#include "nn/optim.h"
#include "nn/threads.h"

typedef struct {
    int n;
    const char *ov[16];
    int c_in, c_out, h, w, periodic, batch;
    int training;
    const char *skip;  /* tensors not compared (e.g. an RC-trained gate) */
    double tol;
    float step;        /* finite-difference step (0: 1e-2) */
} fd_case;

static void run_fd(const fd_case *c)
{
    sm_model *m = mt_build(c->n, c->ov, c->c_in, c->c_out, c->h, c->w, c->periodic, c->batch);
    rng_t r;
    rng_seed(&r, 123, 1);
    size_t nin = mt_in_floats(m), nout = mt_out_floats(m);
    float *x = malloc(nin * sizeof(float)), *g = malloc(nout * sizeof(float));
    assert_non_null(x);
    assert_non_null(g);
    mt_fill(x, nin, &r, 1.0f);
    mt_fill(g, nout, &r, 1.0f);
    rng_t drop;
    rng_seed(&drop, 5, 2);
    mt_gradcheck(m, x, g, &drop, c->training, c->step > 0 ? c->step : 1e-2f, c->tol, 16, c->skip);
    free(x);
    free(g);
    model_free(m);
}

static void test_fd_cnn(void **state)
{
    (void)state;
    fd_case c = {4, {"model.architecture=cnn", "model.channels=[3, 4]", "model.kernel=3",
                     "model.activation=elu"},
                 2, 2, 6, 8, 1, 2, 1, NULL, 2e-2, 0};
    run_fd(&c);
}

static void test_fd_resnet(void **state)
{
    (void)state;
    fd_case c = {6, {"model.architecture=resnet", "model.channels=[4]", "model.kernel=3",
                     "model.blocks=2", "model.batchnorm=true", "model.dropout=0.2"},
                 2, 1, 6, 8, 0, 3, 1, NULL, 2e-2, 0};
    run_fd(&c);
}

static void test_fd_unet(void **state)
{
    (void)state;
    /* max-pool switches make the differences noisy: small step, looser tolerance (the
     * PyTorch golden test checks the exact values) */
    fd_case c = {5, {"model.architecture=unet", "model.channels=[3, 4, 5]", "model.kernel=3",
                     "model.batchnorm=true", "model.activation=tanh"},
                 2, 2, 8, 8, 1, 2, 1, NULL, 5e-2, 1e-3f};
    run_fd(&c);
}

static void test_fd_unet_eval(void **state)
{
    (void)state;
    fd_case c = {4, {"model.architecture=unet", "model.channels=[3, 4]", "model.kernel=3",
                     "model.batchnorm=true"},
                 1, 1, 4, 8, 0, 2, 0, NULL, 2e-2, 0};
    run_fd(&c);
}

static void test_fd_mlp(void **state)
{
    (void)state;
    fd_case c = {3, {"model.architecture=mlp", "model.channels=[5, 3]", "model.activation=tanh"},
                 3, 2, 4, 5, 0, 2, 1, NULL, 2e-2, 0};
    run_fd(&c);
}

static void test_fd_smoe_net(void **state)
{
    (void)state;
    /* weighted routing without the RC loss: the gate gets the straight-through gradient, which
     * is the exact derivative while the routing does not change */
    fd_case c = {7, {"model.architecture=smoe_net", "model.channels=[3]", "model.moe.experts=3",
                     "model.moe.k=1", "model.moe.rc_loss.enabled=false", "model.batchnorm=true",
                     "model.activation=tanh"},
                 2, 2, 6, 6, 0, 2, 1, NULL, 2e-2, 1e-3f};
    run_fd(&c);
}

/* the reference block with its shortcut: a 1x1 conv + BN where the width changes (2 -> 3), the
 * identity where it does not (3 -> 3) */
static void test_fd_smoe_net_residual(void **state)
{
    (void)state;
    fd_case c = {8, {"model.architecture=smoe_net", "model.channels=[3, 3]", "model.moe.experts=3",
                     "model.moe.k=1", "model.moe.rc_loss.enabled=false", "model.batchnorm=true",
                     "model.residual=true", "model.activation=tanh"},
                 2, 2, 6, 6, 0, 2, 1, NULL, 2e-2, 1e-3f};
    run_fd(&c);
    sm_model *m = mt_build(c.n, c.ov, c.c_in, c.c_out, c.h, c.w, c.periodic, c.batch);
    int shortcut_convs = 0;
    for (int i = 0; i < model_layer_count(m); i++)
        shortcut_convs += strstr(model_layer_name(m, i), "_res") != NULL && strstr(model_layer_name(m, i), "_bn") == NULL;
    assert_int_equal(shortcut_convs, 1);
    model_free(m);
}

static void test_fd_cnn_smoe_last_conv_gate(void **state)
{
    (void)state;
    fd_case c = {8, {"model.architecture=cnn", "model.channels=[4]", "model.kernel=3",
                     "model.moe.enabled=true", "model.moe.gate=conv", "model.moe.experts=3",
                     "model.moe.k=1", "model.moe.rc_loss.enabled=false"},
                 2, 1, 6, 8, 1, 2, 1, NULL, 2e-2, 1e-3f};
    run_fd(&c);
}

static void test_fd_cnn_smoe_last_rc(void **state)
{
    (void)state;
    /* heat recipe (unweighted, RC loss): the latent gate is trained by the RC loss only and the
     * unweighted output does not depend continuously on it, so it is not compared */
    fd_case c = {9, {"model.architecture=cnn", "model.channels=[4]", "model.kernel=3",
                     "model.moe.enabled=true", "model.moe.gate=latent", "model.moe.experts=3",
                     "model.moe.k=1", "model.moe.weighted=false", "model.moe.rc_loss.quantile=0.3"},
                 2, 1, 6, 8, 1, 2, 1, "gate", 2e-2, 1e-3f};
    run_fd(&c);
}

static void test_fd_cnn_point_moe_softmax(void **state)
{
    (void)state;
    /* noise-free softmax gate over all experts (k = N): smooth, every tensor is compared */
    fd_case c = {9, {"model.architecture=cnn", "model.channels=[3]", "model.kernel=3",
                     "model.moe.enabled=true", "model.moe.gate=softmax_topk", "model.moe.experts=3",
                     "model.moe.k=3", "model.moe.noise=false", "model.moe.expert_hidden=4"},
                 2, 2, 6, 8, 1, 2, 1, NULL, 2e-2, 1e-3f};
    run_fd(&c);
}

static void test_fd_mlp_point_moe_laplace(void **state)
{
    (void)state;
    fd_case c = {9, {"model.architecture=mlp", "model.channels=[4]", "model.moe.enabled=true",
                     "model.moe.gate=laplace", "model.moe.experts=2", "model.moe.k=2",
                     "model.moe.noise=false", "model.moe.expert_hidden=3", "model.activation=tanh"},
                 2, 1, 5, 6, 0, 2, 1, NULL, 2e-2, 1e-3f};
    run_fd(&c);
}

/* Hierarchical and attention gates with balancing losses build, run and report their aux loss. */
static void test_point_moe_gates_run(void **state)
{
    (void)state;
    const char *gates[] = {"model.moe.gate=hmoe", "model.moe.gate=attention", "model.moe.gate=softmax_topk"};
    for (int gi = 0; gi < 3; gi++) {
        const char *ov[] = {"model.architecture=cnn", "model.channels=[4]", "model.kernel=3",
                            "model.moe.enabled=true", gates[gi], "model.moe.experts=4", "model.moe.k=2",
                            "model.moe.noise=true", "model.moe.aux.importance=0.1",
                            "model.moe.capacity_factor=1.5"};
        int n = gi == 2 ? 10 : 9;
        sm_model *m = mt_build(n, ov, 2, 2, 6, 8, 1, 2);
        assert_int_equal(model_moe_count(m), 1);
        model_moe_info info;
        assert_int_equal(model_moe_get(m, 0, &info), SM_OK);
        assert_int_equal(info.kind, LAYER_PMOE);
        assert_true(info.param_gate >= 0);
        rng_t r;
        rng_seed(&r, 3, 1);
        mt_fill(model_input(m), mt_in_floats(m), &r, 1.0f);
        model_zero_grad(m);
        assert_int_equal(model_forward(m, 1, &r), SM_OK);
        mt_fill(model_output_grad(m), mt_out_floats(m), &r, 1.0f);
        assert_int_equal(model_backward(m), SM_OK);
        assert_true(model_aux_loss(m) > 0.0);
        assert_int_equal(param_store_all_finite(model_params(m), 1, NULL), 1);
        /* gate weights of every token sum to 1 over its kept experts */
        assert_int_equal(model_moe_get(m, 0, &info), SM_OK);
        size_t hw = 6 * 8;
        for (size_t p = 0; p < hw; p++) {
            double sum = 0.0;
            for (int e = 0; e < info.n_experts; e++) sum += info.gate_weights[e * hw + p];
            if (gi != 2) assert_float_equal(sum, 1.0, 1e-5); /* capacity may drop experts */
        }
        model_free(m);
    }
}

/* The SMoE auxiliary losses (importance, load, spatial agreement) reach model_aux_loss and the
 * gate gradient even with the RC loss off; a re-plan for a larger batch keeps the weights. */
static void test_smoe_aux_and_replan(void **state)
{
    (void)state;
    const char *ov[] = {"model.architecture=smoe_net", "model.channels=[3]", "model.moe.experts=3",
                        "model.moe.k=1", "model.moe.rc_loss.enabled=false",
                        "model.moe.aux.importance=0.5", "model.moe.aux.spatial_agreement=0.5",
                        "model.moe.gate=conv"};
    sm_model *m = mt_build(8, ov, 2, 1, 6, 8, 0, 2);
    rng_t r;
    rng_seed(&r, 4, 1);
    mt_fill(model_input(m), mt_in_floats(m), &r, 1.0f);
    model_zero_grad(m);
    assert_int_equal(model_forward(m, 1, &r), SM_OK);
    memset(model_output_grad(m), 0, mt_out_floats(m) * sizeof(float));
    assert_int_equal(model_backward(m), SM_OK);
    /* no main-loss gradient at all: every gate gradient comes from the aux losses */
    assert_true(model_aux_loss(m) > 0.0);
    model_moe_info info;
    assert_int_equal(model_moe_count(m), 2);
    assert_int_equal(model_moe_get(m, 1, &info), SM_OK); /* the last SMoE layer */
    const param_view *gv = param_store_view(model_params(m), info.param_gate);
    const float *gg = param_grad(model_params(m), info.param_gate);
    double gn = 0.0;
    for (size_t i = 0; i < gv->numel; i++) gn += (double)gg[i] * gg[i];
    assert_true(gn > 0.0);
    const float *ge = param_grad(model_params(m), info.param_expert);
    assert_float_equal(ge[0], 0.0, 0.0); /* its experts get nothing from the gate losses */

    /* re-plan for batch 5: same weights, same per-sample eval outputs */
    size_t per_in = mt_in_floats(m) / 2, per_out = mt_out_floats(m) / 2;
    float *x0 = malloc(per_in * sizeof(float)), *y0 = malloc(per_out * sizeof(float));
    memcpy(x0, model_input(m), per_in * sizeof(float));
    assert_int_equal(model_forward(m, 0, NULL), SM_OK);
    memcpy(y0, model_output(m), per_out * sizeof(float));
    assert_int_equal(model_plan(m, 5, 1), SM_OK);
    assert_int_equal(model_max_batch(m), 5);
    for (int b = 0; b < 5; b++) memcpy(model_input(m) + b * per_in, x0, per_in * sizeof(float));
    assert_int_equal(model_forward(m, 0, NULL), SM_OK);
    for (int b = 0; b < 5; b++)
        for (size_t i = 0; i < per_out; i++) assert_float_equal(model_output(m)[b * per_out + i], y0[i], 1e-6);
    free(x0);
    free(y0);
    model_free(m);
}

static void test_moe_insertion(void **state)
{
    (void)state;
    const char *ov[] = {"model.architecture=unet", "model.channels=[4, 8]", "model.kernel=3",
                        "model.moe.enabled=true", "model.moe.placement=decoder",
                        "model.moe.experts=4", "model.moe.k=2"};
    sm_model *m = mt_build(7, ov, 2, 1, 8, 8, 1, 2);
    /* decoder: dec0.conv0 and dec0.conv1 (4 channels each -> k 4, N 8) */
    assert_int_equal(model_moe_count(m), 2);
    model_moe_info info;
    assert_int_equal(model_moe_get(m, 0, &info), SM_OK);
    assert_string_equal(info.name, "dec0.conv0");
    assert_int_equal(info.shape.k, 4);
    assert_int_equal(info.shape.n_experts, 8);
    assert_int_equal(info.shape.pad, PAD_PERIODIC_LON);
    assert_int_equal(model_moe_get(m, 2, &info), SM_ERR_USAGE);
    model_free(m);

    const char *ov2[] = {"model.architecture=cnn", "model.channels=[4, 4, 4]", "model.kernel=3",
                         "model.moe.enabled=true", "model.moe.placement=last", "model.moe.layers=2"};
    m = mt_build(6, ov2, 2, 2, 6, 8, 0, 1);
    assert_int_equal(model_moe_count(m), 2);
    assert_int_equal(model_moe_get(m, 1, &info), SM_OK);
    assert_string_equal(info.name, "conv3");
    assert_int_equal(info.shape.k, 2);
    assert_int_equal(info.shape.n_experts, 6);
    assert_int_equal(info.shape.pad, PAD_ZERO);
    /* the gate tensors form the optimiser's gate param group (training.gate_lr_scale); experts
     * and ordinary convs do not */
    param_store *ps = model_params(m);
    int gid = param_store_find(ps, "conv3.gate_latent"), eid = param_store_find(ps, "conv3.expert_weight");
    int cid = param_store_find(ps, "conv0.weight");
    assert_true(gid >= 0 && eid >= 0 && cid >= 0);
    assert_true(param_store_view(ps, gid)->flags & PARAM_GATE);
    assert_false(param_store_view(ps, eid)->flags & PARAM_GATE);
    assert_false(param_store_view(ps, cid)->flags & PARAM_GATE);
    model_free(m);

    const char *ov3[] = {"model.architecture=resnet", "model.channels=[4]", "model.blocks=1",
                         "model.moe.enabled=true", "model.moe.placement=all"};
    m = mt_build(5, ov3, 2, 2, 6, 8, 0, 1);
    assert_int_equal(model_moe_count(m), 4); /* stem, 2 block convs, head */
    model_free(m);
}

/* Eval-mode outputs do not depend on the batch a sample is in; a smaller batch reuses the
 * arena planned for the larger one. */
static void test_batch_change(void **state)
{
    (void)state;
    const char *ov[] = {"model.architecture=resnet", "model.channels=[4]", "model.kernel=3",
                        "model.batchnorm=true", "model.blocks=1"};
    sm_model *m = mt_build(5, ov, 2, 2, 6, 8, 1, 3);
    rng_t r;
    rng_seed(&r, 1, 1);
    size_t nin = mt_in_floats(m), nout = mt_out_floats(m);
    mt_fill(model_input(m), nin, &r, 1.0f);
    float *x = malloc(nin * sizeof(float)), *y3 = malloc(nout * sizeof(float));
    memcpy(x, model_input(m), nin * sizeof(float));
    /* a few training passes so that the running statistics differ from the initial ones */
    for (int i = 0; i < 3; i++) assert_int_equal(model_forward(m, 1, &r), SM_OK);
    memcpy(model_input(m), x, nin * sizeof(float));
    assert_int_equal(model_forward(m, 0, NULL), SM_OK);
    memcpy(y3, model_output(m), nout * sizeof(float));
    assert_int_equal(model_set_batch(m, 1), SM_OK);
    assert_int_equal(model_batch(m), 1);
    size_t per_in = nin / 3, per_out = nout / 3;
    memcpy(model_input(m), x + per_in, per_in * sizeof(float));
    assert_int_equal(model_forward(m, 0, NULL), SM_OK);
    for (size_t i = 0; i < per_out; i++) assert_float_equal(model_output(m)[i], y3[per_out + i], 1e-5);
    assert_int_equal(model_set_batch(m, 4), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "model_plan"));
    free(x);
    free(y3);
    model_free(m);
}

/* A CNN whose (only) convolution is replaced by an SMoE layer with the heat recipe (latent gate,
 * N 3, k 1, unweighted, RC loss + damping, q 0.3, Adam 1e-2) trains on a toy target whose rule
 * differs by region (three column bands: y = 2x, -x, x/2). */
static void test_smoe_cnn_trains(void **state)
{
    (void)state;
    const char *ov[] = {"model.architecture=cnn", "model.channels=[]", "model.kernel=3",
                        "model.bias=false", "model.moe.enabled=true", "model.moe.experts=3",
                        "model.moe.k=1", "model.moe.weighted=false",
                        "model.moe.rc_loss.quantile=0.3", "model.moe.damping.enabled=true"};
    const int B = 4, H = 8, W = 12;
    sm_model *m = mt_build(10, ov, 1, 1, H, W, 0, B);
    assert_int_equal(model_moe_count(m), 1);
    optim_config oc = optim_default_config(OPTIM_ADAM);
    oc.lr = 1e-2;
    optim *opt = NULL;
    assert_int_equal(optim_create(&opt, model_params(m), &oc), SM_OK);
    rng_t r;
    rng_seed(&r, 9, 1);
    size_t nin = mt_in_floats(m), nout = mt_out_floats(m);
    float *tgt = malloc(nout * sizeof(float));
    double first = 0.0, last = 0.0;
    const int steps = 300;
    for (int step = 0; step < steps; step++) {
        float *x = model_input(m);
        mt_fill(x, nin, &r, 1.0f);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    size_t p = ((size_t)b * H + i) * W + j;
                    float v = x[p];
                    tgt[p] = j < 4 ? 2.0f * v : j < 8 ? -v : 0.5f * v;
                }
        model_zero_grad(m);
        assert_int_equal(model_forward(m, 1, &r), SM_OK);
        const float *y = model_output(m);
        float *dy = model_output_grad(m);
        double loss = 0.0;
        for (size_t i = 0; i < nout; i++) {
            double d = (double)y[i] - tgt[i];
            loss += d * d;
            dy[i] = (float)(2.0 * d / (double)nout);
        }
        loss /= (double)nout;
        assert_int_equal(model_backward(m), SM_OK);
        assert_true(model_aux_loss(m) > 0.0); /* the RC loss is reported */
        optim_step(opt);
        if (step < 10) first += loss / 10;
        if (step >= steps - 10) last += loss / 10;
    }
    if (!(last < 0.75 * first)) fail_msg("loss %.4g -> %.4g did not fall by a quarter", first, last);
    free(tgt);
    optim_free(opt);
    model_free(m);
}

static void test_summary(void **state)
{
    (void)state;
    const char *ov[] = {"model.architecture=cnn"};
    sm_model *m = mt_build(1, ov, 2, 2, 32, 64, 1, 1);
    /* WeatherBench CNN: 2->64->64->64->64->2, kernel 5, with biases */
    size_t expect = (2 * 64 * 25 + 64) + 3 * (64 * 64 * 25 + 64) + (64 * 2 * 25 + 2);
    assert_int_equal(model_param_count(m), expect);
    assert_int_equal(model_layer_param_count(m, 0), 2 * 64 * 25 + 64);
    char dir[512], path[600];
    testutil_tmpdir("model_summary", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/summary.txt", dir);
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    model_summary(m, f);
    rewind(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    assert_non_null(strstr(buf, "conv4"));
    assert_non_null(strstr(buf, "64x32x64"));
    char tot[64];
    snprintf(tot, sizeof tot, "trainable parameters: %zu", expect);
    assert_non_null(strstr(buf, tot));
    model_free(m);
}

static void expect_build_error(int n, const char **ov, int h, int w, const char *needle)
{
    sm_config *cfg = mt_config(n, ov);
    sm_model *m = NULL;
    int rc = model_build_dims(&cfg->model, 2, 2, h, w, 0, 2, 1, 1, &m);
    config_free(cfg);
    assert_int_equal(rc, SM_ERR_USAGE);
    assert_null(m);
    if (!strstr(sm_last_error(), needle))
        fail_msg("error '%s' does not mention '%s'", sm_last_error(), needle);
}

static void test_build_errors(void **state)
{
    (void)state;
    const char *a[] = {"model.architecture=cnn", "model.moe.enabled=true", "model.moe.placement=decoder"};
    expect_build_error(3, a, 8, 8, "model.moe.placement");
    const char *b[] = {"model.architecture=unet", "model.channels=[4, 8, 16]"};
    expect_build_error(2, b, 6, 8, "divisible by 4");
    const char *c[] = {"model.architecture=cnn", "model.channels=[4]", "model.moe.enabled=true",
                       "model.moe.layers=3"};
    expect_build_error(4, c, 8, 8, "model.moe.layers");
    const char *d[] = {"model.architecture=cnn", "model.moe.enabled=true", "model.moe.k=4",
                       "model.moe.experts=3"};
    expect_build_error(4, d, 8, 8, "model.moe.k");
    const char *e[] = {"model.architecture=cnn", "model.kernel=4"};
    expect_build_error(2, e, 8, 8, "model.kernel");
    const char *f[] = {"model.architecture=smoe_net", "model.moe.gate=laplace"};
    expect_build_error(2, f, 8, 8, "smoe_net");
    const char *r[] = {"model.architecture=cnn", "model.residual=true"};
    expect_build_error(2, r, 8, 8, "model.residual");
    const char *g[] = {"model.architecture=cnn", "model.moe.enabled=true", "model.moe.aux.switch=0.1"};
    expect_build_error(3, g, 8, 8, "point-gated");
}

/* An inference-only plan has no gradient buffers and refuses backward. */
static void test_inference_plan(void **state)
{
    (void)state;
    const char *ov[] = {"model.architecture=unet", "model.channels=[4, 8]", "model.kernel=3"};
    sm_config *cfg = mt_config(3, ov);
    sm_model *mi = NULL, *mt = NULL;
    assert_int_equal(model_build_dims(&cfg->model, 2, 2, 8, 8, 1, 2, 0, 7, &mi), SM_OK);
    assert_int_equal(model_build_dims(&cfg->model, 2, 2, 8, 8, 1, 2, 1, 7, &mt), SM_OK);
    config_free(cfg);
    assert_true(model_arena_bytes(mi) < model_arena_bytes(mt));
    assert_null(model_output_grad(mi));
    rng_t r;
    rng_seed(&r, 1, 1);
    mt_fill(model_input(mi), mt_in_floats(mi), &r, 1.0f);
    memcpy(model_input(mt), model_input(mi), mt_in_floats(mi) * sizeof(float));
    assert_int_equal(model_forward(mi, 0, NULL), SM_OK);
    assert_int_equal(model_forward(mt, 0, NULL), SM_OK);
    /* same seed, same weights, same outputs */
    assert_memory_equal(model_output(mi), model_output(mt), mt_out_floats(mi) * sizeof(float));
    assert_int_equal(model_backward(mi), SM_ERR_USAGE);
    /* more threads than the workspace was planned for are refused */
    int t = nn_get_threads();
    nn_set_threads(t + 1);
    assert_int_equal(model_forward(mi, 0, NULL), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "nn_set_threads"));
    nn_set_threads(t);
    assert_int_equal(model_forward(mi, 0, NULL), SM_OK);
    model_free(mi);
    model_free(mt);
}

/* The gradient arena shares buffers between slots that are never live together. */
static void test_arena_plan(void **state)
{
    (void)state;
    const char *ov[] = {"model.architecture=cnn", "model.channels=[8, 8, 8, 8, 8, 8]", "model.kernel=3"};
    sm_model *m = mt_build(3, ov, 8, 8, 16, 16, 1, 2);
    /* 13 slots of 8x16x16 per sample plus the input: activations alone are 14 planes; with
     * reuse the gradients need only 2 more (plus saved state), not 13 */
    size_t plane = (size_t)2 * 8 * 16 * 16 * sizeof(float);
    assert_true(model_arena_bytes(m) <= 17 * plane);
    assert_true(model_arena_bytes(m) >= 14 * plane);
    model_free(m);
}

/* A NaN weight is traced to the first layer whose output is not finite and to its owner. */
static void test_nonfinite_layer(void **state)
{
    (void)state;
    const char *ov[] = {"model.architecture=cnn", "model.channels=[3, 3]", "model.kernel=3"};
    sm_model *m = mt_build(3, ov, 2, 1, 4, 6, 0, 1);
    rng_t r;
    rng_seed(&r, 2, 1);
    mt_fill(model_input(m), mt_in_floats(m), &r, 1.0f);
    assert_int_equal(model_forward(m, 0, NULL), SM_OK);
    assert_int_equal(model_first_nonfinite_layer(m), -1);
    param_store *ps = model_params(m);
    int id = param_store_find(ps, "conv1.weight");
    assert_true(id >= 0);
    param_data(ps, id)[0] = NAN;
    assert_int_equal(model_forward(m, 0, NULL), SM_OK);
    int l = model_first_nonfinite_layer(m);
    assert_true(l >= 0);
    assert_string_equal(model_layer_name(m, l), "conv1");
    assert_int_equal(model_param_layer(m, id), l);
    model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_cnn),
        cmocka_unit_test(test_fd_resnet),
        cmocka_unit_test(test_fd_unet),
        cmocka_unit_test(test_fd_unet_eval),
        cmocka_unit_test(test_fd_mlp),
        cmocka_unit_test(test_fd_smoe_net),
        cmocka_unit_test(test_fd_smoe_net_residual),
        cmocka_unit_test(test_fd_cnn_smoe_last_conv_gate),
        cmocka_unit_test(test_fd_cnn_smoe_last_rc),
        cmocka_unit_test(test_fd_cnn_point_moe_softmax),
        cmocka_unit_test(test_fd_mlp_point_moe_laplace),
        cmocka_unit_test(test_point_moe_gates_run),
        cmocka_unit_test(test_smoe_aux_and_replan),
        cmocka_unit_test(test_moe_insertion),
        cmocka_unit_test(test_batch_change),
        cmocka_unit_test(test_smoe_cnn_trains),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_arena_plan),
        cmocka_unit_test(test_nonfinite_layer),
        cmocka_unit_test(test_inference_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
