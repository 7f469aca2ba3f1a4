/* core/dist outside an MPI launcher: one rank, collectives leave the data unchanged, the byte
 * counter counts what was passed to allreduce. (test_dist_mpi.c covers 2 ranks.)
 * Data-parallel MoE passes in one process (model_set_dist): without random draws they equal the
 * plain passes, and a process with no sample (model_sync_idle) makes the same sequence of
 * reductions as one training step of a process with samples (else the ranks would hang). */
#include "testutil.h"

#include "core/dist.h"
#include "core/log.h"
#include "core/rng.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_single_process(void **state)
{
    (void)state;
    assert_int_equal(dist_init(NULL, NULL), SM_OK);
    assert_int_equal(dist_rank(), 0);
    assert_int_equal(dist_size(), 1);
    dist_reset_bytes();
    float f[3] = {1.5f, -2.0f, 3.0f};
    double d[2] = {0.25, 7.0};
    int v = 4;
    assert_int_equal(dist_allreduce_sum_f(f, 3), SM_OK);
    assert_int_equal(dist_allreduce_sum_d(d, 2), SM_OK);
    assert_int_equal(dist_allreduce_max_i(&v), SM_OK);
    assert_true(f[0] == 1.5f && f[1] == -2.0f && f[2] == 3.0f);
    assert_true(d[0] == 0.25 && d[1] == 7.0);
    assert_int_equal(v, 4);
    assert_int_equal(dist_bytes_reduced(), 3 * sizeof(float) + 2 * sizeof(double));
    char buf[4] = "abc";
    assert_int_equal(dist_broadcast(buf, 4, 0), SM_OK);
    assert_string_equal(buf, "abc");
    assert_int_equal(dist_barrier(), SM_OK);
    dist_finalize();
    assert_int_equal(dist_size(), 1);
}

/* conv -> BatchNorm -> point-gated MoE (softmax_topk, capacity, all balancing losses,
 * optionally similarity pairs and gate noise) on (batch, 2, 4, 6). */
static sm_model *build_cap(int batch, int noisy, int pairs, float capacity)
{
    sm_model *m = model_create(2, 4, 6);
    int x = model_add_conv(m, "conv0", 0, 3, 3, 1, PAD_ZERO, 0, INIT_TORCH_DEFAULT);
    x = model_add_batchnorm(m, "bn0", x);
    pmoe_shape ps;
    memset(&ps, 0, sizeof ps);
    pmoe_shape_defaults(&ps);
    ps.c_out = 2;
    ps.n_experts = 3;
    ps.k = 2;
    ps.hidden = 3;
    ps.noisy = noisy;
    ps.capacity_factor = capacity;
    ps.sim_pairs = pairs;
    pmoe_aux_weights pa = {0.1f, 0.1f, 0.05f, 0.02f, 0.1f, 0.05f, 0};
    model_add_pmoe(m, "pmoe", x, &ps, &pa);
    assert_int_equal(model_finalize(m, batch, 1), SM_OK);
    rng_t r;
    rng_seed(&r, 3, 1);
    model_init_params(m, &r);
    /* gate weights start at 0 (ties): give them values */
    param_store *st = model_params(m);
    for (int id = 0; id < param_store_count(st); id++) {
        const param_view *v = param_store_view(st, id);
        if (!strstr(v->name, "gate_w")) continue;
        for (size_t i = 0; i < v->numel; i++) param_store_data_all(st)[v->offset + i] = (float)(2.0 * rng_uniform(&r) - 1.0);
    }
    return m;
}

static sm_model *build(int batch, int noisy, int pairs) { return build_cap(batch, noisy, pairs, 1.0f); }

static void step(sm_model *m, int batch, rng_t *r)
{
    rng_t data;
    rng_seed(&data, 9, 2);
    float *in = model_input(m);
    for (int i = 0; i < batch * 2 * 24; i++) in[i] = (float)rng_normal(&data);
    model_zero_grad(m);
    assert_int_equal(model_forward(m, 1, r), SM_OK);
    float *g = model_output_grad(m);
    const float *out = model_output(m);
    for (int i = 0; i < batch * 2 * 24; i++) g[i] = out[i] - 0.5f;
    assert_int_equal(model_backward(m), SM_OK);
}

static void test_dist_pmoe_equals_plain(void **state)
{
    (void)state;
    /* no noise, no pairs: the only difference is the code path (selection with capacity and
     * the balancing statistics through moe_reduce) */
    sm_model *a = build(4, 0, 0), *b = build(4, 0, 0);
    assert_int_equal(model_set_dist(b, NULL, NULL, 0, 1, 4), SM_OK);
    model_set_shard(b, 0, 4);
    model_set_sample_offset(a, -1);
    rng_t r1, r2;
    rng_seed(&r1, 1, 1);
    rng_seed(&r2, 1, 1);
    step(a, 4, &r1);
    step(b, 4, &r2);
    const int n = 4 * 2 * 24;
    for (int i = 0; i < n; i++) assert_true(model_output(a)[i] == model_output(b)[i]);
    size_t np = param_store_size(model_params(a));
    const float *ga = param_store_grad_all(model_params(a)), *gb = param_store_grad_all(model_params(b));
    for (size_t i = 0; i < np; i++) assert_true(fabsf(ga[i] - gb[i]) <= 1e-6f * (1.0f + fabsf(ga[i])));
    assert_true(fabs(model_aux_loss(a) - model_aux_loss(b)) <= 1e-6 * fabs(model_aux_loss(a)));
    assert_true(model_aux_loss(a) > 0);
    model_free(a);
    model_free(b);
}

/* A reduce that records the sizes of its calls and leaves the data unchanged. */
typedef struct {
    size_t sizes[64];
    int n;
} call_log;

static int log_reduce(double *buf, size_t n, void *arg)
{
    (void)buf;
    call_log *l = arg;
    if (l->n < 64) l->sizes[l->n] = n;
    l->n++;
    return SM_OK;
}

/* The reductions of one training step of a rank with samples and of model_sync_idle. */
static void check_idle(float capacity, int expect)
{
    sm_model *m = build_cap(2, 1, 16, capacity);
    call_log busy, idle;
    memset(&busy, 0, sizeof busy);
    memset(&idle, 0, sizeof idle);
    assert_int_equal(model_set_batchnorm_sync(m, log_reduce, &busy), SM_OK);
    assert_int_equal(model_set_dist(m, log_reduce, &busy, 1, 2, 4), SM_OK);
    model_set_shard(m, 2, 4);
    rng_t r;
    rng_seed(&r, 1, 1);
    step(m, 2, &r);
    assert_int_equal(model_set_batchnorm_sync(m, log_reduce, &idle), SM_OK);
    assert_int_equal(model_set_dist(m, log_reduce, &idle, 1, 2, 4), SM_OK);
    model_set_shard(m, 4, 4);
    assert_int_equal(model_sync_idle(m), SM_OK);
    assert_int_equal(busy.n, expect);
    assert_int_equal(idle.n, busy.n);
    for (int i = 0; i < busy.n; i++) assert_int_equal(idle.sizes[i], busy.sizes[i]);
    model_set_dist(m, NULL, NULL, 0, 1, 0);
    model_set_batchnorm_sync(m, NULL, NULL);
    model_free(m);
}

static void test_idle_matches_step(void **state)
{
    (void)state;
    /* BatchNorm 3 + capacity turns k * size = 4 + importance, similarity, load, switch,
     * entropy 5; without a capacity no turns */
    check_idle(1.0f, 12);
    check_idle(0.0f, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_single_process), cmocka_unit_test(test_dist_pmoe_equals_plain),
                                       cmocka_unit_test(test_idle_matches_step)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
