/* Checkpoints: round trip of every section, exact resume (N + save + load + N == 2N steps,
 * bit-identical, 1 thread), and each mismatch / corruption error. */
#include "model_testlib.h"

#include <netcdf.h>
#include <unistd.h>

#include "model/checkpoint.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "nn/threads.h"

static grid *mk_grid(const char *name, int nlat, int nlon, double lon0)
{
    grid *g = calloc(1, sizeof *g);
    assert_non_null(g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->kind = GRID_LATLON;
    g->nlat = nlat;
    g->nlon = nlon;
    g->periodic_lon = 1;
    g->lat = malloc((size_t)nlat * sizeof(double));
    g->lon = malloc((size_t)nlon * sizeof(double));
    for (int i = 0; i < nlat; i++) g->lat[i] = 90.0 - 180.0 * (i + 0.5) / nlat;
    for (int j = 0; j < nlon; j++) g->lon[j] = lon0 + 360.0 * j / nlon;
    return g;
}

static void free_grid(grid *g)
{
    free(g->lat);
    free(g->lon);
    free(g);
}

static const char *ck_path(const char *test, const char *file, char *buf, size_t len)
{
    char dir[512];
    testutil_tmpdir(test, dir, sizeof dir);
    snprintf(buf, len, "%s/%s", dir, file);
    return buf;
}

typedef struct {
    sm_config *cfg;
    sm_model *m;
    optim *opt;
    lr_schedule sched;
    rng_t drop;
    float *x, *t;
} run;

#define NOV 9
static const char *RUN_OV[NOV] = {"model.architecture=cnn", "model.channels=[4, 4]", "model.kernel=3",
                                  "model.batchnorm=true", "model.dropout=0.1", "model.moe.enabled=true",
                                  "model.moe.experts=3", "model.moe.k=1", "model.moe.damping.enabled=true"};

static void run_init(run *r, uint64_t seed, int n_ov, const char *const *ov)
{
    memset(r, 0, sizeof *r);
    r->cfg = mt_config(n_ov, ov);
    assert_int_equal(model_build_dims(&r->cfg->model, 2, 1, 6, 8, 1, 3, 1, seed, &r->m), SM_OK);
    optim_config oc = optim_default_config(OPTIM_ADAM);
    oc.lr = 3e-3;
    assert_int_equal(optim_create(&r->opt, model_params(r->m), &oc), SM_OK);
    lr_schedule_config sc = lr_schedule_default_config(LR_STEP, 3e-3);
    sc.step_size = 3;
    sc.gamma = 0.5;
    assert_int_equal(lr_schedule_init(&r->sched, &sc), SM_OK);
    rng_seed(&r->drop, seed, 3);
    /* the fixed synthetic batch */
    rng_t g;
    rng_seed(&g, 42, 1);
    size_t nin = mt_in_floats(r->m), nout = mt_out_floats(r->m);
    r->x = malloc(nin * sizeof(float));
    r->t = malloc(nout * sizeof(float));
    mt_fill(r->x, nin, &g, 1.0f);
    mt_fill(r->t, nout, &g, 1.0f);
}

static void run_free(run *r)
{
    free(r->x);
    free(r->t);
    optim_free(r->opt);
    model_free(r->m);
    config_free(r->cfg);
}

static void run_steps(run *r, int n)
{
    size_t nin = mt_in_floats(r->m), nout = mt_out_floats(r->m);
    for (int s = 0; s < n; s++) {
        memcpy(model_input(r->m), r->x, nin * sizeof(float));
        model_zero_grad(r->m);
        assert_int_equal(model_forward(r->m, 1, &r->drop), SM_OK);
        const float *y = model_output(r->m);
        float *dy = model_output_grad(r->m);
        for (size_t i = 0; i < nout; i++) dy[i] = 2.0f * (y[i] - r->t[i]) / (float)nout;
        assert_int_equal(model_backward(r->m), SM_OK);
        optim_set_lr(r->opt, lr_schedule_lr(&r->sched));
        optim_step(r->opt);
        lr_schedule_step(&r->sched, 0.0);
    }
}

static void fill_state(ckpt_state *st, run *r)
{
    checkpoint_state_init(st);
    st->opt = r->opt;
    st->sched = &r->sched;
    st->n_rng = 1;
    st->rng_names[0] = "dropout";
    st->rng[0] = &r->drop;
}

static void test_resume_exact(void **state)
{
    (void)state;
    nn_set_threads(1);
    const int N = 4;
    char path[700];
    ck_path("ck_resume", "ck.nc", path, sizeof path);
    grid *g = mk_grid("t6x8", 6, 8, 0.0);

    run a;
    run_init(&a, 7, NOV, RUN_OV);
    run_steps(&a, N);
    ckpt_state st;
    fill_state(&st, &a);
    st.step = N;
    assert_int_equal(checkpoint_save(path, a.m, a.cfg, g, &st), SM_OK);
    run_steps(&a, N);

    run b;
    run_init(&b, 99, NOV, RUN_OV); /* other initial weights and dropout stream */
    ckpt_state sb;
    fill_state(&sb, &b);
    assert_int_equal(checkpoint_load(path, b.m, b.cfg, g, &sb), SM_OK);
    /* the stored grid and channel counts rebuild the model without the dataset */
    grid *rg = NULL;
    int c_in = 0, c_out = 0;
    assert_int_equal(checkpoint_read_grid(path, &rg, &c_in, &c_out), SM_OK);
    assert_int_equal(rg->nlat, g->nlat);
    assert_int_equal(rg->nlon, g->nlon);
    for (int j = 0; j < g->nlat; j++) assert_float_equal(rg->lat[j], g->lat[j], 1e-12);
    for (int i = 0; i < g->nlon; i++) assert_float_equal(rg->lon[i], g->lon[i], 1e-12);
    assert_int_equal(c_in, model_c_in(a.m));
    assert_int_equal(c_out, model_c_out(a.m));
    grid_free(rg);
    assert_int_equal(sb.step, N);
    assert_int_equal(b.opt->step, N);
    run_steps(&b, N);

    param_store *pa = model_params(a.m), *pb = model_params(b.m);
    assert_int_equal(param_store_size(pa), param_store_size(pb));
    assert_memory_equal(param_store_data_all(pa), param_store_data_all(pb),
                        param_store_size(pa) * sizeof(float));
    assert_memory_equal(a.opt->m, b.opt->m, a.opt->size * sizeof(float));
    assert_memory_equal(a.opt->v, b.opt->v, a.opt->size * sizeof(float));
    assert_true(a.drop.state == b.drop.state);
    assert_true(lr_schedule_lr(&a.sched) == lr_schedule_lr(&b.sched));
    run_free(&a);
    run_free(&b);
    free_grid(g);
    nn_set_threads(0);
}

/* Two identical training runs at 2 threads give bit-identical weights (fixed thread count). */
static void test_deterministic_two_threads(void **state)
{
    (void)state;
    nn_set_threads(2);
    run a, b;
    run_init(&a, 7, NOV, RUN_OV);
    run_init(&b, 7, NOV, RUN_OV);
    run_steps(&a, 3);
    run_steps(&b, 3);
    assert_memory_equal(param_store_data_all(model_params(a.m)), param_store_data_all(model_params(b.m)),
                        param_store_size(model_params(a.m)) * sizeof(float));
    run_free(&a);
    run_free(&b);
    nn_set_threads(0);
}

static void test_round_trip(void **state)
{
    (void)state;
    char path[700];
    ck_path("ck_round", "ck.nc", path, sizeof path);
    grid *g = mk_grid("t6x8", 6, 8, 0.0);
    run a;
    run_init(&a, 7, NOV, RUN_OV);
    run_steps(&a, 2);
    early_stop es;
    assert_int_equal(early_stop_init(&es, 3, 0.0), SM_OK);
    early_stop_update(&es, 2.5, NULL);
    early_stop_update(&es, 2.7, NULL);
    float mean[2] = {1.5f, -2.0f}, std[2] = {0.5f, 3.0f}, load[6] = {0.1f, 0.2f, 0.7f, 1, 0, 0};
    ckpt_array norm[2] = {{"mean", 1, {2}, mean}, {"std", 1, {2}, std}};
    ckpt_array metrics[1] = {{"conv2.load_frac", 2, {2, 3}, load}};
    ckpt_state st;
    fill_state(&st, &a);
    st.stop = &es;
    st.epoch = 2;
    st.step = 2;
    st.best_score = 2.5;
    st.best_epoch = 1;
    st.input_variables = "z500,t850";
    st.output_variables = "z500";
    st.n_norm = 2;
    st.norm = norm;
    st.n_metrics = 1;
    st.metrics = metrics;
    assert_int_equal(checkpoint_save(path, a.m, a.cfg, g, &st), SM_OK);

    run b;
    run_init(&b, 99, NOV, RUN_OV);
    early_stop eb;
    assert_int_equal(early_stop_init(&eb, 3, 0.0), SM_OK);
    ckpt_state sb;
    fill_state(&sb, &b);
    sb.stop = &eb;
    sb.input_variables = "z500,t850";
    sb.output_variables = "z500";
    assert_int_equal(checkpoint_load(path, b.m, b.cfg, g, &sb), SM_OK);
    assert_int_equal(sb.epoch, 2);
    assert_true(sb.best_score == 2.5);
    assert_int_equal(sb.best_epoch, 1);
    assert_int_equal(eb.wait, 1);
    assert_true(eb.best == 2.5);
    assert_int_equal(sb.n_norm, 2);
    const ckpt_array *m = checkpoint_find_array(sb.norm, sb.n_norm, "std");
    assert_non_null(m);
    assert_int_equal(m->ndim, 1);
    assert_memory_equal(m->data, std, sizeof std);
    const ckpt_array *lf = checkpoint_find_array(sb.metrics, sb.n_metrics, "conv2.load_frac");
    assert_non_null(lf);
    assert_int_equal(lf->ndim, 2);
    assert_int_equal(lf->shape[1], 3);
    assert_memory_equal(lf->data, load, sizeof load);
    /* parameters, running statistics and optimiser state are identical */
    param_store *pa = model_params(a.m), *pb = model_params(b.m);
    assert_memory_equal(param_store_data_all(pa), param_store_data_all(pb),
                        param_store_size(pa) * sizeof(float));
    assert_int_equal(param_store_find(pb, "conv0_bn.running_var") >= 0, 1);
    assert_memory_equal(a.opt->v, b.opt->v, a.opt->size * sizeof(float));
    assert_true(optim_get_lr(a.opt) == optim_get_lr(b.opt));
    /* the stored config is the resolved YAML */
    char *yaml = NULL, *want = config_to_yaml(a.cfg);
    assert_int_equal(checkpoint_read_config(path, &yaml), SM_OK);
    assert_string_equal(yaml, want);
    free(yaml);
    sm_config *back = NULL;
    char *ovr[] = {"model.dropout=0.3"};
    assert_int_equal(checkpoint_load_config(path, 1, ovr, &back), SM_OK);
    assert_string_equal(back->model.architecture, "cnn");
    assert_int_equal(back->model.channels.n, 2);
    assert_true(back->model.dropout == 0.3);
    config_free(back);
    free(want);
    checkpoint_state_free_arrays(&sb);
    assert_null(sb.norm);
    /* parameters only (no state) also round-trips */
    assert_int_equal(checkpoint_save(path, a.m, a.cfg, NULL, NULL), SM_OK);
    {
        grid *none = NULL;
        int ci, co;
        assert_int_equal(checkpoint_read_grid(path, &none, &ci, &co), SM_ERR_IO); /* saved without a grid */
        assert_null(none);
    }
    assert_int_equal(checkpoint_load(path, b.m, NULL, NULL, NULL), SM_OK);
    run_free(&a);
    run_free(&b);
    free_grid(g);
}

/* Saves a checkpoint from a run with `ov_a`, loads it into a run built from `ov_b` (grid gb,
 * variables vars_b) and expects SM_ERR_IO with `needle` in the message. */
static void expect_mismatch(int na, const char *const *ov_a, int nb, const char *const *ov_b,
                            const grid *gb, const char *vars_b, const char *needle)
{
    char path[700];
    ck_path("ck_mismatch", "ck.nc", path, sizeof path);
    grid *g = mk_grid("t6x8", 6, 8, 0.0);
    run a, b;
    run_init(&a, 7, na, ov_a);
    ckpt_state st;
    fill_state(&st, &a);
    st.input_variables = "z500,t850";
    assert_int_equal(checkpoint_save(path, a.m, a.cfg, g, &st), SM_OK);
    run_init(&b, 7, nb, ov_b);
    float *before = malloc(param_store_size(model_params(b.m)) * sizeof(float));
    memcpy(before, param_store_data_all(model_params(b.m)), param_store_size(model_params(b.m)) * sizeof(float));
    ckpt_state sb;
    fill_state(&sb, &b);
    sb.input_variables = vars_b;
    int rc = checkpoint_load(path, b.m, b.cfg, gb ? gb : g, &sb);
    assert_int_equal(rc, SM_ERR_IO);
    if (!strstr(sm_last_error(), needle)) fail_msg("'%s' does not contain '%s'", sm_last_error(), needle);
    assert_non_null(strstr(sm_last_error(), "ck.nc"));
    /* a failed load leaves the model untouched */
    assert_memory_equal(before, param_store_data_all(model_params(b.m)),
                        param_store_size(model_params(b.m)) * sizeof(float));
    free(before);
    run_free(&a);
    run_free(&b);
    free_grid(g);
}

static void test_mismatch_errors(void **state)
{
    (void)state;
    const char *cnn4[] = {"model.architecture=cnn", "model.channels=[4]", "model.kernel=3"};
    const char *cnn5[] = {"model.architecture=cnn", "model.channels=[5]", "model.kernel=3"};
    const char *cnn44[] = {"model.architecture=cnn", "model.channels=[4, 4]", "model.kernel=3"};
    const char *nobias[] = {"model.architecture=cnn", "model.channels=[4]", "model.kernel=3", "model.bias=false"};
    const char *mlp[] = {"model.architecture=mlp", "model.channels=[4]"};
    expect_mismatch(3, cnn4, 3, cnn5, NULL, NULL,
                    "tensor conv0.weight has shape 4x2x3x3 in the checkpoint but 5x2x3x3 in the model built from the config");
    expect_mismatch(3, cnn4, 3, cnn44, NULL, NULL, "tensor conv1.weight has shape 1x4x3x3 in the checkpoint but 4x4x3x3");
    expect_mismatch(3, cnn44, 3, cnn4, NULL, NULL, "tensor conv1.weight has shape 4x4x3x3 in the checkpoint but 1x4x3x3");
    expect_mismatch(3, cnn4, 4, nobias, NULL, NULL,
                    "the checkpoint has tensor conv0.bias that the model built from the config does not have");
    expect_mismatch(4, nobias, 3, cnn4, NULL, NULL, "tensor conv0.bias of the model built from the config is not in the checkpoint");
    expect_mismatch(3, cnn4, 2, mlp, NULL, NULL, "the architecture is cnn in the checkpoint but mlp in the config");
    grid *other = mk_grid("shifted", 6, 8, 2.0);
    expect_mismatch(3, cnn4, 3, cnn4, other, NULL, "grid longitude 0 is 0 in the checkpoint (t6x8) but 2 for this run (shifted)");
    free_grid(other);
    expect_mismatch(3, cnn4, 3, cnn4, NULL, "z500,t2m",
                    "the input variable list is z500,t850 in the checkpoint but z500,t2m for this run");
}

static void test_grid_size_and_optimiser_mismatch(void **state)
{
    (void)state;
    char path[700];
    ck_path("ck_grid", "ck.nc", path, sizeof path);
    const char *ov[] = {"model.architecture=cnn", "model.channels=[4]", "model.kernel=3"};
    run a;
    run_init(&a, 7, 3, ov);
    grid *g = mk_grid("t6x8", 6, 8, 0.0), *g2 = mk_grid("t12x16", 12, 16, 0.0);
    ckpt_state st;
    fill_state(&st, &a);
    assert_int_equal(checkpoint_save(path, a.m, a.cfg, g, &st), SM_OK);
    assert_int_equal(checkpoint_load(path, a.m, a.cfg, g2, NULL), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "grid is 6 x 8 (t6x8) in the checkpoint but 12 x 16 (t12x16) for this run"));
    /* an SGD run cannot resume Adam state */
    optim_config oc = optim_default_config(OPTIM_SGD);
    optim *sgd = NULL;
    assert_int_equal(optim_create(&sgd, model_params(a.m), &oc), SM_OK);
    ckpt_state s2;
    checkpoint_state_init(&s2);
    s2.opt = sgd;
    assert_int_equal(checkpoint_load(path, a.m, a.cfg, g, &s2), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "the optimiser is adam in the checkpoint but sgd in the config"));
    /* plain SGD (no momentum buffer) saves and restores its step and lr */
    ckpt_state s3;
    checkpoint_state_init(&s3);
    s3.opt = sgd;
    sgd->step = 5;
    optim_set_lr(sgd, 0.25);
    assert_int_equal(checkpoint_save(path, a.m, a.cfg, g, &s3), SM_OK);
    sgd->step = 0;
    optim_set_lr(sgd, 1.0);
    assert_int_equal(checkpoint_load(path, a.m, a.cfg, g, &s3), SM_OK);
    assert_int_equal(sgd->step, 5);
    assert_true(optim_get_lr(sgd) == 0.25);
    /* asking for state the checkpoint does not have */
    assert_int_equal(checkpoint_save(path, a.m, a.cfg, g, NULL), SM_OK);
    assert_int_equal(checkpoint_load(path, a.m, a.cfg, g, &st), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "no optimiser state"));
    optim_free(sgd);
    run_free(&a);
    free_grid(g);
    free_grid(g2);
}

static void test_corrupt_files(void **state)
{
    (void)state;
    char path[700], bad[760];
    ck_path("ck_corrupt", "ck.nc", path, sizeof path);
    const char *ov[] = {"model.architecture=cnn", "model.channels=[8, 8]", "model.kernel=3"};
    run a;
    run_init(&a, 7, 3, ov);
    assert_int_equal(checkpoint_save(path, a.m, a.cfg, NULL, NULL), SM_OK);
    /* truncated: the first half of the file */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)size);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    snprintf(bad, sizeof bad, "%s.trunc", path);
    f = fopen(bad, "wb");
    fwrite(buf, 1, (size_t)size / 2, f);
    fclose(f);
    free(buf);
    assert_int_equal(checkpoint_load(bad, a.m, a.cfg, NULL, NULL), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "ck.nc.trunc"));
    assert_non_null(strstr(sm_last_error(), "truncated"));
    /* missing file */
    snprintf(bad, sizeof bad, "%s.missing", path);
    assert_int_equal(checkpoint_load(bad, a.m, a.cfg, NULL, NULL), SM_ERR_IO);
    /* another format version */
    int nc;
    assert_int_equal(nc_open(path, NC_WRITE, &nc), NC_NOERR);
    long long v = 99;
    assert_int_equal(nc_put_att_longlong(nc, NC_GLOBAL, "format_version", NC_INT64, 1, &v), NC_NOERR);
    nc_close(nc);
    assert_int_equal(checkpoint_load(path, a.m, a.cfg, NULL, NULL), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "checkpoint format version 99 is not supported"));
    /* a NetCDF file that is not a checkpoint */
    snprintf(bad, sizeof bad, "%s.other.nc", path);
    assert_int_equal(nc_create(bad, NC_NETCDF4 | NC_CLOBBER, &nc), NC_NOERR);
    nc_close(nc);
    assert_int_equal(checkpoint_load(bad, a.m, a.cfg, NULL, NULL), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "not a smoecast checkpoint"));
    /* an unwritable destination leaves nothing behind */
    assert_int_equal(checkpoint_save("/nonexistent-dir/ck.nc", a.m, a.cfg, NULL, NULL), SM_ERR_IO);
    run_free(&a);
}

/* Routing metrics of an SMoE layer (latent gate) from a forward pass, stored in and restored
 * from the checkpoint; the load fractions equal the argmax counts of the latent gate map. */
static void test_routing_metrics(void **state)
{
    (void)state;
    char path[700];
    ck_path("ck_routing", "ck.nc", path, sizeof path);
    const char *ov[] = {"model.architecture=cnn", "model.channels=[4]", "model.kernel=3",
                        "model.moe.enabled=true", "model.moe.experts=3", "model.moe.k=1"};
    run a;
    run_init(&a, 7, 6, ov);
    memcpy(model_input(a.m), a.x, mt_in_floats(a.m) * sizeof(float));
    assert_int_equal(model_forward(a.m, 0, NULL), SM_OK);
    const int H = 6, W = 8, N = 3;
    int32_t labels[6 * 8];
    for (int p = 0; p < H * W; p++) labels[p] = (p % W) / 3; /* column bands 0, 1, 2 */
    moe_routing_metrics rm;
    assert_int_equal(model_moe_routing_metrics(a.m, 0, labels, 0, &rm), SM_OK);
    assert_int_equal(rm.n_experts, N);
    assert_int_equal(rm.has_labels, 1);
    model_moe_info info;
    assert_int_equal(model_moe_get(a.m, 0, &info), SM_OK);
    const float *g = param_data(model_params(a.m), info.param_gate);
    int count[3] = {0, 0, 0};
    for (int p = 0; p < H * W; p++) {
        int best = 0;
        for (int e = 1; e < N; e++)
            if (g[e * H * W + p] > g[best * H * W + p]) best = e;
        count[best]++;
    }
    double sum = 0.0;
    for (int e = 0; e < N; e++) {
        assert_float_equal(rm.load_frac[e], count[e] / (double)(H * W), 1e-9);
        sum += rm.load_frac[e];
    }
    assert_float_equal(sum, 1.0, 1e-9);
    assert_true(rm.h_u >= 0.0 && rm.h_u <= log2(3.0) + 1e-9);
    float buf[CKPT_ROUTING_FLOATS];
    ckpt_array arr[2];
    checkpoint_routing_arrays(info.name, &rm, buf, arr);
    ckpt_state st;
    checkpoint_state_init(&st);
    st.n_metrics = 2;
    st.metrics = arr;
    assert_int_equal(checkpoint_save(path, a.m, a.cfg, NULL, &st), SM_OK);
    ckpt_state sb;
    checkpoint_state_init(&sb);
    assert_int_equal(checkpoint_load(path, a.m, a.cfg, NULL, &sb), SM_OK);
    const ckpt_array *lf = checkpoint_find_array(sb.metrics, sb.n_metrics, "conv1.load_fraction");
    const ckpt_array *ro = checkpoint_find_array(sb.metrics, sb.n_metrics, "conv1.routing");
    assert_non_null(lf);
    assert_non_null(ro);
    assert_int_equal(lf->shape[0], 3);
    assert_float_equal(lf->data[1], (float)rm.load_frac[1], 0);
    assert_float_equal(ro->data[2], (float)rm.h_u, 0);
    assert_float_equal(ro->data[3], (float)rm.mi, 0);
    checkpoint_state_free_arrays(&sb);
    run_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_deterministic_two_threads),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_mismatch_errors),
        cmocka_unit_test(test_grid_size_and_optimiser_mismatch),
        cmocka_unit_test(test_corrupt_files),
        cmocka_unit_test(test_routing_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
