/* nn/params (parameter store) and nn/init (PyTorch-compatible initialisation). */
#include "testutil.h"

#include "core/log.h"
#include "core/rng.h"
#include "nn/init.h"
#include "nn/params.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static param_store *three_tensors(int *ids)
{
    param_store *s = param_store_create();
    assert_non_null(s);
    int w[4] = {8, 3, 5, 5}, b[1] = {8}, rm[1] = {7};
    ids[0] = param_store_declare(s, "enc0.conv.weight", 4, w, PARAM_DEFAULT);
    ids[1] = param_store_declare(s, "enc0.conv.bias", 1, b, PARAM_NO_DECAY);
    ids[2] = param_store_declare(s, "enc0.bn.running_mean", 1, rm, PARAM_BUFFER);
    return s;
}

static void test_declare_finalize_layout(void **state)
{
    (void)state;
    int ids[3];
    param_store *s = three_tensors(ids);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 1);
    assert_int_equal(ids[2], 2);
    assert_int_equal(param_store_count(s), 3);
    assert_false(param_store_is_finalized(s));
    assert_null(param_data(s, 0));
    assert_int_equal(param_store_finalize(s), SM_OK);
    assert_true(param_store_is_finalized(s));

    const param_view *v0 = param_store_view(s, 0), *v1 = param_store_view(s, 1),
                     *v2 = param_store_view(s, 2);
    assert_string_equal(v0->name, "enc0.conv.weight");
    assert_int_equal(v0->ndim, 4);
    assert_int_equal(v0->shape[0], 8);
    assert_int_equal(v0->shape[3], 5);
    assert_int_equal(v0->numel, 8 * 3 * 5 * 5);
    assert_int_equal(v1->numel, 8);
    assert_int_equal(v1->shape[1], 1);
    assert_int_equal(v0->flags, PARAM_DECAY | PARAM_TRAINABLE);
    assert_int_equal(v2->flags, 0);
    /* aligned, ordered, non-overlapping, inside the buffer */
    assert_int_equal(v0->offset, 0);
    assert_true(v1->offset >= v0->offset + v0->numel);
    assert_true(v2->offset >= v1->offset + v1->numel);
    for (int i = 0; i < 3; i++) assert_int_equal(param_store_view(s, i)->offset % PARAM_ALIGN, 0);
    assert_true(param_store_size(s) >= v2->offset + v2->numel);
    assert_int_equal(param_store_size(s) % PARAM_ALIGN, 0);
    assert_int_equal(param_store_numel(s, 0), 600 + 8 + 7);
    assert_int_equal(param_store_numel(s, 1), 600 + 8);
    assert_null(param_store_view(s, 3));
    assert_null(param_store_view(s, -1));

    /* slices of the flat buffers, 64-byte aligned, zero-filled */
    float *all = param_store_data_all(s), *gall = param_store_grad_all(s);
    assert_true(((uintptr_t)all % 64) == 0);
    assert_true(((uintptr_t)gall % 64) == 0);
    assert_ptr_equal(param_data(s, 1), all + v1->offset);
    assert_ptr_equal(param_grad(s, 2), gall + v2->offset);
    for (size_t k = 0; k < param_store_size(s); k++) {
        assert_true(all[k] == 0.0f);
        assert_true(gall[k] == 0.0f);
    }
    assert_null(param_data(s, 3));

    /* lookup by name */
    assert_int_equal(param_store_find(s, "enc0.conv.bias"), 1);
    assert_int_equal(param_store_find(s, "enc0.bn.running_mean"), 2);
    assert_int_equal(param_store_find(s, "enc0.conv"), -1);
    assert_int_equal(param_store_find(s, "nope"), -1);
    param_store_free(s);
}

static void test_zero_grad_and_finite(void **state)
{
    (void)state;
    int ids[3];
    param_store *s = three_tensors(ids);
    assert_int_equal(param_store_finalize(s), SM_OK);
    float *g = param_store_grad_all(s);
    for (size_t k = 0; k < param_store_size(s); k++) g[k] = 1.5f;
    param_store_zero_grad(s);
    for (size_t k = 0; k < param_store_size(s); k++) assert_true(g[k] == 0.0f);

    int bad = -1;
    assert_true(param_store_all_finite(s, 0, &bad));
    assert_true(param_store_all_finite(s, 1, &bad));
    param_grad(s, 1)[3] = NAN;
    assert_false(param_store_all_finite(s, 1, &bad));
    assert_int_equal(bad, 1);
    assert_true(param_store_all_finite(s, 0, NULL));
    param_data(s, 2)[6] = INFINITY;
    assert_false(param_store_all_finite(s, 0, &bad));
    assert_int_equal(bad, 2);
    param_store_free(s);
}

static void test_declare_errors(void **state)
{
    (void)state;
    param_store *s = param_store_create();
    int shp[2] = {3, 4}, zero[2] = {3, 0};
    assert_int_equal(param_store_declare(s, "a", 2, shp, PARAM_DEFAULT), 0);
    sm_clear_error();
    assert_int_equal(param_store_declare(s, "a", 2, shp, PARAM_DEFAULT), -1);
    assert_non_null(strstr(sm_last_error(), "'a'"));
    assert_non_null(strstr(sm_last_error(), "twice"));
    assert_int_equal(param_store_declare(s, "b", 5, shp, PARAM_DEFAULT), -1);
    assert_non_null(strstr(sm_last_error(), "ndim 5"));
    assert_int_equal(param_store_declare(s, "c", 2, zero, PARAM_DEFAULT), -1);
    assert_non_null(strstr(sm_last_error(), "dimension 1"));
    assert_int_equal(param_store_declare(s, "", 2, shp, PARAM_DEFAULT), -1);
    assert_int_equal(param_store_declare(s, "d", 2, shp, 8u), -1);
    assert_non_null(strstr(sm_last_error(), "flags"));
    assert_int_equal(param_store_declare(s, "scalar", 0, NULL, PARAM_NO_DECAY), 1);
    assert_int_equal(param_store_view(s, 1)->numel, 1);
    assert_int_equal(param_store_count(s), 2);
    assert_int_equal(param_store_finalize(s), SM_OK);
    assert_int_equal(param_store_finalize(s), SM_ERR_USAGE);
    assert_int_equal(param_store_declare(s, "late", 2, shp, PARAM_DEFAULT), -1);
    assert_non_null(strstr(sm_last_error(), "after finalize"));
    param_store_free(s);

    /* an empty store finalizes to zero-length buffers and still works */
    param_store *e = param_store_create();
    assert_int_equal(param_store_finalize(e), SM_OK);
    assert_int_equal(param_store_size(e), 0);
    param_store_zero_grad(e);
    param_store_free(e);
    param_store_free(NULL);
}

/* ---- init ------------------------------------------------------------------------------ */

static void test_init_fans_and_bounds_match_torch(void **state)
{
    (void)state;
    size_t n, nsh;
    float *shape = testutil_golden_load("optim_init.nc", "shape", &nsh, NULL, NULL);
    float *ndim = testutil_golden_load("optim_init.nc", "ndim", &n, NULL, NULL);
    float *fan = testutil_golden_load("optim_init.nc", "fan_in", NULL, NULL, NULL);
    float *bdef = testutil_golden_load("optim_init.nc", "bound_default", NULL, NULL, NULL);
    float *brelu = testutil_golden_load("optim_init.nc", "bound_relu", NULL, NULL, NULL);
    float *bbias = testutil_golden_load("optim_init.nc", "bound_bias", NULL, NULL, NULL);
    assert_int_equal(nsh, 4 * n);
    assert_true(n >= 5);
    for (size_t i = 0; i < n; i++) {
        int nd = (int)ndim[i], sh[4];
        for (int d = 0; d < 4; d++) sh[d] = (int)shape[4 * i + d];
        double fi = init_fan_in(nd, sh);
        assert_true(fi == fan[i]);
        double b = init_kaiming_bound(init_gain_leaky_relu(sqrt(5.0)), fi);
        assert_true(fabs(b - bdef[i]) <= 1e-6 * bdef[i]);
        /* the derivation: with a = sqrt(5) the bound is exactly 1/sqrt(fan_in) */
        assert_true(fabs(b - 1.0 / sqrt(fi)) <= 1e-15);
        assert_true(fabs(init_kaiming_bound(init_gain_relu(), fi) - brelu[i]) <= 1e-6 * brelu[i]);
        assert_true(fabs(1.0 / sqrt(fi) - bbias[i]) <= 1e-6 * bbias[i]);
    }
    free(shape);
    free(ndim);
    free(fan);
    free(bdef);
    free(brelu);
    free(bbias);
}

static void test_init_distribution(void **state)
{
    (void)state;
    /* nn.Conv2d(64, 16, 3): fan_in 576 */
    int sh[4] = {16, 64, 3, 3};
    size_t n = 16 * 64 * 9;
    float *w = malloc(n * sizeof *w), *w2 = malloc(n * sizeof *w2);
    rng_t r;
    rng_seed(&r, 7, 1);
    init_weight_default(w, 4, sh, &r);
    double bound = 1.0 / sqrt(576.0), mx = 0, sum = 0, ss = 0;
    for (size_t k = 0; k < n; k++) {
        assert_true(fabs(w[k]) <= bound);
        mx = fmax(mx, fabs(w[k]));
        sum += w[k];
        ss += (double)w[k] * w[k];
    }
    double mean = sum / n, var = ss / n - mean * mean;
    assert_true(mx > 0.995 * bound);
    assert_true(fabs(mean) < 0.05 * bound);
    assert_true(fabs(var / (bound * bound / 3.0) - 1.0) < 0.05);

    /* torch's own nn.Conv2d(64, 16, 3) weights/bias respect the same bound and reach it */
    float *tw = testutil_golden_load("optim_init.nc", "conv_64_16_3_weight_maxabs", NULL, NULL, NULL);
    float *tb = testutil_golden_load("optim_init.nc", "conv_64_16_3_bias_maxabs", NULL, NULL, NULL);
    assert_true(tw[0] <= bound * (1 + 1e-6) && tw[0] > 0.99 * bound);
    assert_true(tb[0] <= bound * (1 + 1e-6) && tb[0] > 0.5 * bound);
    free(tw);
    free(tb);

    /* same seed and stream: identical; another stream: different */
    rng_seed(&r, 7, 1);
    init_weight_default(w2, 4, sh, &r);
    assert_memory_equal(w, w2, n * sizeof *w);
    rng_seed(&r, 7, 2);
    init_weight_default(w2, 4, sh, &r);
    assert_memory_not_equal(w, w2, n * sizeof *w);

    /* ReLU gain: bound sqrt(6 / fan_in) */
    rng_seed(&r, 9, 1);
    init_weight_kaiming_relu(w, 4, sh, &r);
    double brelu = sqrt(6.0 / 576.0);
    mx = 0;
    for (size_t k = 0; k < n; k++) mx = fmax(mx, fabs(w[k]));
    assert_true(mx <= brelu && mx > 0.995 * brelu);

    /* bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    init_bias_default(w, n, 576.0, &r);
    mx = 0;
    for (size_t k = 0; k < n; k++) mx = fmax(mx, fabs(w[k]));
    assert_true(mx <= bound && mx > 0.995 * bound);
    init_bias_default(w, 4, 0.0, &r);
    for (int k = 0; k < 4; k++) assert_true(w[k] == 0.0f);

    /* uniform(lo, hi) and the draw formula lo + (hi - lo) u */
    rng_t a, b;
    rng_seed(&a, 3, 5);
    rng_seed(&b, 3, 5);
    init_uniform(w, 100, -0.25, 0.75, &a);
    for (int k = 0; k < 100; k++) {
        float expect = (float)(-0.25 + 1.0 * rng_uniform(&b));
        assert_true(w[k] == expect);
        assert_true(w[k] >= -0.25f && w[k] <= 0.75f);
    }
    free(w);
    free(w2);
}

static void test_init_fans_and_constants(void **state)
{
    (void)state;
    int conv[4] = {16, 8, 5, 3}, dense[2] = {10, 7}, vec[1] = {6};
    assert_true(init_fan_in(4, conv) == 8 * 15);
    assert_true(init_fan_out(4, conv) == 16 * 15);
    assert_true(init_fan_in(2, dense) == 7);
    assert_true(init_fan_out(2, dense) == 10);
    assert_true(init_fan_in(1, vec) == 6);
    assert_true(init_kaiming_bound(1.0, 0.0) == 0.0);
    assert_true(fabs(init_gain_leaky_relu(0.0) - sqrt(2.0)) < 1e-15);
    float wt[5], bs[5];
    for (int k = 0; k < 5; k++) wt[k] = bs[k] = 3.0f;
    init_norm_affine(wt, bs, 5);
    for (int k = 0; k < 5; k++) {
        assert_true(wt[k] == 1.0f);
        assert_true(bs[k] == 0.0f);
    }
    init_constant(wt, 5, -2.0f);
    for (int k = 0; k < 5; k++) assert_true(wt[k] == -2.0f);
    init_zeros(wt, 5);
    for (int k = 0; k < 5; k++) assert_true(wt[k] == 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_declare_finalize_layout),
        cmocka_unit_test(test_zero_grad_and_finite),
        cmocka_unit_test(test_declare_errors),
        cmocka_unit_test(test_init_fans_and_bounds_match_torch),
        cmocka_unit_test(test_init_distribution),
        cmocka_unit_test(test_init_fans_and_constants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
