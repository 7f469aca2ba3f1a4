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

/* unlabelled points (-1) are left out: a perfect routing on the labelled ones stays ARI 1 */
static void test_unlabelled_points(void **st)
{
    (void)st;
    moe_layout l = {1, 2, 4};
    float q[8] = {1, 0, 0, 1,  0, 1, 1, 0}; /* argmax {0, 1, 1, 0} */
    int32_t lab[4] = {0, 1, -1, -1};
    moe_routing_metrics m;
    assert_int_equal(moe_routing_metrics_compute(&l, q, lab, 0, &m), 0);
    assert_true(m.has_labels);
    assert_float_equal(m.ari, 1.0, 1e-12);
    assert_float_equal(m.mi, 1.0, 1e-12);
    int32_t none[4] = {-1, -1, -1, -1};
    assert_int_equal(moe_routing_metrics_compute(&l, q, none, 0, &m), 0);
    assert_false(m.has_labels);
}

static void test_labels_from_values(void **st)
{
    (void)st;
    float v[6] = {0.25f, 0.0025f, NAN, 0.025f, 0.25f, 0.0025f};
    int32_t lab[6];
    assert_int_equal(moe_labels_from_values(v, 6, 8, lab), 3);
    const int32_t want[6] = {2, 0, -1, 1, 2, 0}; /* numbered by increasing value */
    for (int i = 0; i < 6; i++) assert_int_equal(lab[i], want[i]);
    assert_int_equal(moe_labels_from_values(v, 6, 2, lab), -1); /* three values, two allowed */
    int32_t bands[3 * 2];
    const double lat[3] = {80.0, 0.0, -89.0};
    moe_latitude_band_labels(lat, 3, 2, bands);
    assert_int_equal(bands[0], 5);
    assert_int_equal(bands[1], 5);
    assert_int_equal(bands[2], 3);
    assert_int_equal(bands[4], 0);
    moe_latitude_band_labels(NULL, 3, 2, bands); /* x/y grid: bands of rows */
    assert_int_equal(bands[0], 0);
    assert_int_equal(bands[2], 2);
    assert_int_equal(bands[4], 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ari_known),
        cmocka_unit_test(test_mi_known),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_unlabelled_points),
        cmocka_unit_test(test_labels_from_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
