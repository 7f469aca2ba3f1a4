/* Routing metrics: known values of MI, ARI (sklearn documentation examples), entropies. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

#include "moe/routing_metrics.h"

static void test_ari_known(void **st)
{
    (void)st;
    int32_t a[] = {0, 0, 1, 1}, b[] = {0, 0, 1, 2}, c[] = {1, 1, 0, 0}, d[] = {0, 1, 0, 1};
    /* sklearn.metrics.adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714285714285715 */
    assert_float_equal(moe_adjusted_rand_index(4, a, 2, b, 3), 4.0 / 7.0, 1e-12);
    assert_float_equal(moe_adjusted_rand_index(4, a, 2, c, 2), 1.0, 1e-12);
    /* ([0,0,1,1],[0,1,0,1]) = -0.5 */
    assert_float_equal(moe_adjusted_rand_index(4, a, 2, d, 2), -0.5, 1e-12);
    int32_t bad[] = {0, 5, 0, 0};
    assert_true(isnan(moe_adjusted_rand_index(4, a, 2, bad, 2)));
}

static void test_mi_known(void **st)
{
    (void)st;
    int32_t a[] = {0, 0, 1, 1}, c[] = {1, 1, 0, 0}, d[] = {0, 1, 0, 1};
    assert_float_equal(moe_mutual_information(4, a, 2, c, 2), 1.0, 1e-12);
    assert_float_equal(moe_mutual_information(4, a, 2, d, 2), 0.0, 1e-12);
    /* a = {0,0,1,1,2,2,2,2}, b = {0,0,0,0,1,1,1,1}: H(b) = 1, H(b|a) = 0 -> 1 bit */
    int32_t e[] = {0, 0, 1, 1, 2, 2, 2, 2}, f[] = {0, 0, 0, 0, 1, 1, 1, 1};
    assert_float_equal(moe_mutual_information(8, e, 3, f, 2), 1.0, 1e-12);
}

static void test_metrics(void **st)
{
    (void)st;
    /* 2 samples, 2 experts, 4 pixels; sample-shared label map {0,0,1,1} */
    moe_layout l = {2, 2, 4};
    float p[16] = {
        1, 1, 0, 0,  0, 0, 1, 1,          /* sample 0: confident, matches the labels */
        0.5f, 0.5f, 0.5f, 0.5f,  0.5f, 0.5f, 0.5f, 0.5f /* sample 1: uniform -> argmax 0 */
    };
    int32_t lab[4] = {0, 0, 1, 1};
    moe_routing_metrics m;
    assert_int_equal(moe_routing_metrics_compute(&l, p, lab, 0, &m), 0);
    assert_float_equal(m.h_s, 0.5, 1e-12);           /* 4 tokens with 0 bits, 4 with 1 bit */
    assert_float_equal(m.load_frac[0], 6.0 / 8, 1e-12);
    assert_float_equal(m.load_frac[1], 2.0 / 8, 1e-12);
    assert_float_equal(m.h_u, 1.0, 1e-12);           /* mean distribution (0.5, 0.5) */
    assert_float_equal(m.cv_importance, 0.0, 1e-12);
    assert_true(m.has_labels);
    assert_true(m.mi > 0 && m.mi < 1);
    /* perfect routing: ARI 1, MI = H(Y) = 1 bit */
    float q[16] = {1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1};
    assert_int_equal(moe_routing_metrics_compute(&l, q, lab, 0, &m), 0);
    assert_float_equal(m.ari, 1.0, 1e-12);
    assert_float_equal(m.mi, 1.0, 1e-12);
    float r[16];
    moe_softmax_experts(&l, q, r);
    assert_float_equal(r[0] + r[4], 1.0, 1e-6);
    assert_float_equal(r[0], 1.0 / (1.0 + exp(-1.0)), 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ari_known),
        cmocka_unit_test(test_mi_known),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
