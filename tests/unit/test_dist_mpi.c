/* core/dist on 2 ranks: run by ctest as `mpirun -np 2 test_dist_mpi` (label mpi). Each rank
 * checks the collective results; the job fails if any rank fails.
 *
 * Data-parallel equality of ONE model holding every layer kind with batch statistics or random
 * draws: conv -> synchronised BatchNorm -> ReLU -> dropout -> point-gated softmax_topk MoE
 * (noisy, capacity factor 1, importance + load + switch + entropy losses, similarity
 * regulariser on 32 pixel pairs) -> ReLU -> latent-gate SMoE (RC loss, damping).
 * Every rank trains a reference on the whole global batch of 8 (one process) and its shard of
 * 4 with the gradient allreduce; after 20 Adam steps the weights agree per tensor to
 * ||w2 - w1|| <= 1e-5 ||w1|| + 1e-7. Without the reductions of the MoE statistics (each rank
 * on its own) they do not. The gradient allreduce overlapped with backward (non-blocking, in
 * chunks) gives the same weights as the single allreduce. The same with a hierarchical (HMOE)
 * point gate.
 * The 20-step comparison holds only while no discrete routing decision (switch-loss argmax,
 * capacity, top-k, RC / damping threshold) flips on the rounding differences of the two
 * summation orders, so it runs the SMoE layer without gate noise, a trajectory without such a
 * flip (docs/distributed.md, "Equality tests and discrete decisions"). The noisy SMoE routing is
 * checked exactly instead: on the same weights, a rank's shard gets the noisy gate values and
 * expert choices of its samples in the global batch, bit for bit. */
#include "testutil.h"

#include "core/dist.h"
#include "core/log.h"
#include "core/rng.h"
#include "model/model.h"
#include "nn/loss.h"
#include "nn/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GB 8   /* global batch */
#define CI 3
#define HH 8
#define WW 16
#define STEPS 20

static void test_collectives(void **state)
{
    (void)state;
    int r = dist_rank(), n = dist_size();
    assert_true(n >= 2);
    float f[5];
    double d[3];
    for (int i = 0; i < 5; i++) f[i] = (float)(r + 1) * (float)(i + 1);
    for (int i = 0; i < 3; i++) d[i] = 0.5 * r + i;
    assert_int_equal(dist_allreduce_sum_f(f, 5), SM_OK);
    assert_int_equal(dist_allreduce_sum_d(d, 3), SM_OK);
    double ranks = n * (n + 1) / 2.0; /* sum of r + 1 */
    for (int i = 0; i < 5; i++) assert_true(f[i] == (float)(ranks * (i + 1)));
    for (int i = 0; i < 3; i++) assert_true(d[i] == 0.5 * (n * (n - 1) / 2.0) + n * i);
    int v = 10 * r;
    assert_int_equal(dist_allreduce_max_i(&v), SM_OK);
    assert_int_equal(v, 10 * (n - 1));
    char buf[16];
    snprintf(buf, sizeof buf, "from %d", r);
    assert_int_equal(dist_broadcast(buf, sizeof buf, 1), SM_OK);
    assert_string_equal(buf, "from 1");
    assert_int_equal(dist_barrier(), SM_OK);
}

static int mpi_sum(double *buf, size_t n, void *arg)
{
    (void)arg;
    return dist_allreduce_sum_d(buf, n);
}

static pmoe_gate_type g_gate = PMOE_SOFTMAX_TOPK;
static int g_smoe_noise; /* gate noise on the SMoE layer */

static sm_model *build(int batch)
{
    sm_model *m = model_create(CI, HH, WW);
    int x = model_add_conv(m, "conv0", 0, 8, 3, 1, PAD_ZERO, 0, INIT_TORCH_DEFAULT);
    x = model_add_batchnorm(m, "bn0", x);
    x = model_add_act(m, x, ACT_RELU, 0.0f);
    x = model_add_dropout(m, x, 0.2f);
    pmoe_shape ps;
    memset(&ps, 0, sizeof ps);
    pmoe_shape_defaults(&ps);
    ps.c_out = 6;
    ps.n_experts = 4;
    ps.k = 2;
    ps.hidden = 4;
    ps.gate = g_gate;
    ps.noisy = 1;
    if (g_gate == PMOE_HMOE) {
        /* 2 groups x 2 experts, noisy softmax levels (no capacity at either level) */
        ps.groups = 2;
        ps.experts_per_group = 2;
        ps.k_outer = 1;
        ps.k_inner = 1;
        ps.k = 1;
        ps.outer_kind = ps.inner_kind = MOE_GATE_SOFTMAX;
    } else {
        ps.capacity_factor = 1.0f;
    }
    ps.sim_pairs = 32;
    pmoe_aux_weights pa = {0.1f, 0.1f, 0.05f, 0.02f, 0.1f, 0.05f, 0};
    x = model_add_pmoe(m, "pmoe", x, &ps, &pa);
    x = model_add_act(m, x, ACT_RELU, 0.0f);
    smoe_shape ss;
    memset(&ss, 0, sizeof ss);
    smoe_shape_defaults(&ss);
    ss.n_experts = 4;
    ss.k = 2;
    ss.gate = SMOE_GATE_LATENT;
    ss.noise = g_smoe_noise;
    ss.rc_loss = 1;
    ss.rc_quantile = 0.7f;
    ss.damping = 1;
    ss.damping_factor = 0.5f;
    model_add_smoe(m, "smoe", x, &ss, NULL);
    if (model_finalize(m, batch, 1) != SM_OK) {
        model_free(m);
        return NULL;
    }
    rng_t r;
    rng_seed(&r, 7, 1);
    model_init_params(m, &r);
    return m;
}

/* Global batch of step s (the same on every rank): inputs and a target of 2 channels. */
static void make_batch(int step, float *x, float *t)
{
    rng_t r;
    rng_seed(&r, 1000 + (uint64_t)step, 5);
    const size_t P = HH * WW;
    for (int b = 0; b < GB; b++) {
        float *xb = x + (size_t)b * CI * P, *tb = t + (size_t)b * 2 * P;
        for (size_t i = 0; i < CI * P; i++) xb[i] = (float)rng_normal(&r);
        for (size_t p = 0; p < P; p++) {
            tb[p] = xb[p] + 0.5f * xb[P + p];
            tb[P + p] = tanhf(xb[2 * P + p]) - 0.3f * xb[p];
        }
    }
}

/* 20 Adam steps on samples [lo, hi) of every global batch; with `shared` the MoE statistics and
 * BatchNorm are reduced over ranks and the gradients weighted and summed. Returns the flat
 * parameters (caller frees) and the sum over steps of the global aux loss. */
static int g_overlap; /* gradient allreduce overlapped with backward (dist_grad_sync) */

static float *train(int lo, int hi, int shared, int reduce_moe, double *aux_sum)
{
    const int n = hi - lo;
    sm_model *m = build(n);
    assert_non_null(m);
    param_store *ps = model_params(m);
    if (shared) assert_int_equal(model_set_batchnorm_sync(m, mpi_sum, NULL), SM_OK);
    assert_int_equal(model_set_dist(m, reduce_moe ? mpi_sum : NULL, NULL, dist_rank(), dist_size(), GB), SM_OK);
    dist_grad_sync gsync;
    int overlap = shared && g_overlap;
    if (overlap) assert_int_equal(model_set_grad_ready(m, dist_grad_sync_ready, &gsync), SM_OK);
    optim_config oc = optim_default_config(OPTIM_ADAM);
    oc.lr = 1e-2;
    optim *opt = NULL;
    assert_int_equal(optim_create(&opt, ps, &oc), SM_OK);
    rng_t drop;
    rng_seed(&drop, 11, 3);
    const size_t P = HH * WW, nout = (size_t)n * 2 * P;
    float *x = malloc(sizeof(float) * GB * CI * P), *t = malloc(sizeof(float) * GB * 2 * P);
    assert_true(x && t);
    *aux_sum = 0;
    for (int step = 0; step < STEPS; step++) {
        make_batch(step, x, t);
        assert_int_equal(model_set_batch(m, n), SM_OK);
        model_set_shard(m, lo, GB);
        memcpy(model_input(m), x + (size_t)lo * CI * P, sizeof(float) * (size_t)n * CI * P);
        model_zero_grad(m);
        if (overlap) dist_grad_sync_begin(&gsync, param_store_grad_all(ps), param_store_size(ps), (float)n / GB, 512);
        assert_int_equal(model_forward(m, 1, &drop), SM_OK);
        memset(model_output_grad(m), 0, nout * sizeof(float));
        loss_mse_masked_backward(model_output_grad(m), model_output(m), t + (size_t)lo * 2 * P, nout, 1.0);
        assert_int_equal(model_backward(m), SM_OK);
        double aux = model_aux_loss(m) * n / GB;
        if (overlap) {
            assert_int_equal(dist_grad_sync_finish(&gsync), SM_OK);
            assert_true(gsync.chunks > 1);
            assert_int_equal(dist_allreduce_sum_d(&aux, 1), SM_OK);
        } else if (shared) {
            float *g = param_store_grad_all(ps);
            size_t ng = param_store_size(ps);
            for (size_t i = 0; i < ng; i++) g[i] *= (float)n / GB;
            assert_int_equal(dist_allreduce_sum_f(g, ng), SM_OK);
            assert_int_equal(dist_allreduce_sum_d(&aux, 1), SM_OK);
        }
        *aux_sum += aux;
        optim_step(opt);
    }
    size_t np = param_store_size(ps);
    float *w = malloc(sizeof(float) * np);
    assert_non_null(w);
    memcpy(w, param_store_data_all(ps), sizeof(float) * np);
    /* tensor boundaries for the comparison: the store layout is the same for every batch */
    optim_free(opt);
    model_set_dist(m, NULL, NULL, 0, 1, 0);
    model_set_batchnorm_sync(m, NULL, NULL);
    model_set_grad_ready(m, NULL, NULL);
    model_free(m);
    free(x);
    free(t);
    return w;
}

/* Number of parameter tensors whose 2-rank weights miss the tolerance. */
static int count_bad(const float *w1, const float *w2, int verbose)
{
    sm_model *m = build(GB);
    assert_non_null(m);
    const param_store *ps = model_params_const(m);
    int bad = 0;
    for (int id = 0; id < param_store_count(ps); id++) {
        const param_view *v = param_store_view(ps, id);
        double d = 0, r = 0;
        for (size_t i = v->offset; i < v->offset + v->numel; i++) {
            d += ((double)w2[i] - w1[i]) * ((double)w2[i] - w1[i]);
            r += (double)w1[i] * w1[i];
        }
        d = sqrt(d);
        r = sqrt(r);
        int ok = d <= 1e-5 * r + 1e-7;
        if (verbose && dist_rank() == 0) printf("  %-22s |w2-w1| %.3g |w1| %.3g%s\n", v->name, d, r, ok ? "" : "  (differs)");
        bad += !ok;
    }
    model_free(m);
    return bad;
}

static void test_moe_model_equal(void **state)
{
    (void)state;
    g_gate = PMOE_SOFTMAX_TOPK;
    const int r = dist_rank(), n = dist_size();
    const int lo = GB * r / n, hi = GB * (r + 1) / n;
    double aux1, aux2, aux3;
    float *w1 = train(0, GB, 0, 0, &aux1);
    float *w2 = train(lo, hi, 1, 1, &aux2);
    assert_int_equal(count_bad(w1, w2, 1), 0);
    assert_true(fabs(aux2 - aux1) <= 1e-5 * fabs(aux1));
    /* control: the same split with the MoE statistics and capacity taken per rank */
    float *w3 = train(lo, hi, 1, 0, &aux3);
    int bad3 = count_bad(w1, w3, 0);
    if (r == 0) printf("  without the MoE reductions %d tensors differ; aux loss %.6g vs %.6g\n", bad3, aux3, aux1);
    assert_true(bad3 > 0);
    /* the gradient allreduce in chunks started during backward (between the BatchNorm and MoE
     * reductions) gives the weights of the single allreduce exactly */
    g_overlap = 1;
    double aux4;
    float *w4 = train(lo, hi, 1, 1, &aux4);
    g_overlap = 0;
    size_t np = 0;
    {
        sm_model *m = build(GB);
        np = param_store_size(model_params(m));
        model_free(m);
    }
    assert_memory_equal(w4, w2, np * sizeof(float));
    free(w1);
    free(w2);
    free(w3);
    free(w4);
}

/* The same with a hierarchical (HMOE) point gate: noise at both levels, per-level balancing
 * statistics summed over ranks. */
static void test_hmoe_model_equal(void **state)
{
    (void)state;
    g_gate = PMOE_HMOE;
    const int r = dist_rank(), n = dist_size();
    double aux1, aux2;
    float *w1 = train(0, GB, 0, 0, &aux1);
    float *w2 = train(GB * r / n, GB * (r + 1) / n, 1, 1, &aux2);
    assert_int_equal(count_bad(w1, w2, 0), 0);
    assert_true(fabs(aux2 - aux1) <= 1e-5 * fabs(aux1));
    if (r == 0) printf("  hmoe: 2 ranks == 1 rank (aux loss %.6g vs %.6g)\n", aux2, aux1);
    free(w1);
    free(w2);
    g_gate = PMOE_SOFTMAX_TOPK;
}

/* SMoE gate noise per global sample: one training forward on the global batch (one process)
 * and on this rank's shard, same weights and key. The noisy gate values and the expert
 * choices do not depend on the input, so the shard's must be those of its samples in the
 * global batch bit for bit (a rank skips the noise blocks of the samples before its shard);
 * and they differ between samples, so the per-sample routing path is the one exercised. */
static const model_moe_info *smoe_info(const sm_model *m, model_moe_info *mi)
{
    for (int i = 0; i < model_moe_count(m); i++) {
        assert_int_equal(model_moe_get(m, i, mi), SM_OK);
        if (mi->kind == LAYER_SMOE) return mi;
    }
    fail_msg("no SMoE layer");
    return NULL;
}

static void test_smoe_noise_per_sample(void **state)
{
    (void)state;
    g_smoe_noise = 1;
    const int r = dist_rank(), n = dist_size();
    const int lo = GB * r / n, hi = GB * (r + 1) / n, nb = hi - lo;
    sm_model *ref = build(GB), *sh = build(nb);
    assert_true(ref && sh);
    assert_int_equal(model_set_dist(ref, NULL, NULL, 0, 1, GB), SM_OK);
    model_set_shard(ref, 0, GB);
    assert_int_equal(model_set_batchnorm_sync(sh, mpi_sum, NULL), SM_OK);
    assert_int_equal(model_set_dist(sh, mpi_sum, NULL, r, n, GB), SM_OK);
    model_set_shard(sh, lo, GB);
    const size_t P = HH * WW;
    float *x = malloc(sizeof(float) * GB * CI * P), *t = malloc(sizeof(float) * GB * 2 * P);
    assert_true(x && t);
    make_batch(0, x, t);
    memcpy(model_input(ref), x, sizeof(float) * GB * CI * P);
    memcpy(model_input(sh), x + (size_t)lo * CI * P, sizeof(float) * (size_t)nb * CI * P);
    rng_t r1, r2;
    rng_seed(&r1, 11, 3);
    rng_seed(&r2, 11, 3);
    assert_int_equal(model_forward(ref, 1, &r1), SM_OK);
    assert_int_equal(model_forward(sh, 1, &r2), SM_OK);
    model_moe_info a, b;
    smoe_info(ref, &a);
    smoe_info(sh, &b);
    const size_t nhw = (size_t)a.n_experts * a.h * a.w, khw = (size_t)a.k * a.h * a.w;
    assert_memory_equal(b.gate_route, a.gate_route + (size_t)lo * nhw, (size_t)nb * nhw * sizeof(float));
    assert_memory_equal(b.idx, a.idx + (size_t)lo * khw, (size_t)nb * khw * sizeof(int32_t));
    assert_memory_not_equal(a.gate_route, a.gate_raw, nhw * sizeof(float));
    assert_memory_not_equal(a.idx, a.idx + khw, khw * sizeof(int32_t));
    model_set_dist(sh, NULL, NULL, 0, 1, 0);
    model_set_batchnorm_sync(sh, NULL, NULL);
    model_free(ref);
    model_free(sh);
    free(x);
    free(t);
    g_smoe_noise = 0;
}

int main(int argc, char **argv)
{
    if (dist_init(&argc, &argv) != SM_OK) return 1;
    if (dist_size() < 2) {
        fprintf(stderr, "test_dist_mpi: needs mpirun -np 2 (got 1 rank)\n");
        dist_finalize();
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_collectives), cmocka_unit_test(test_moe_model_equal),
                                       cmocka_unit_test(test_hmoe_model_equal),
                                       cmocka_unit_test(test_smoe_noise_per_sample)};
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    int any = failed != 0;
    dist_allreduce_max_i(&any);
    dist_finalize();
    return any;
}
