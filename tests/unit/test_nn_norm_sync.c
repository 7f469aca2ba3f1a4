/* nn/norm synchronised BatchNorm: with a reduce that counts its calls and leaves the data (one
 * process), forward/backward equal the plain BatchNorm; a reduce error is returned. The
 * 2-rank result is tested by tests/cli/test_train_mpi.sh. */
#include "testutil.h"

#include "core/rng.h"
#include "nn/norm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int calls;
static int reduce_count(double *buf, size_t n, void *arg)
{
    (void)buf;
    (void)n;
    (void)arg;
    calls++;
    return 0;
}
static int reduce_fail(double *buf, size_t n, void *arg)
{
    (void)buf;
    (void)n;
    (void)arg;
    return 3;
}

static void test_sync_equals_plain(void **state)
{
    (void)state;
    norm_shape s = {3, 4, 5, 6};
    size_t n = (size_t)3 * 4 * 5 * 6;
    float *x = malloc(n * sizeof *x), *g = malloc(n * sizeof *g), *o1 = malloc(n * sizeof *o1), *o2 = malloc(n * sizeof *o2);
    float *d1 = calloc(n, sizeof *d1), *d2 = calloc(n, sizeof *d2);
    rng_t r;
    rng_seed(&r, 7, 1);
    for (size_t i = 0; i < n; i++) x[i] = (float)(2.0 * rng_normal(&r) + 0.5), g[i] = (float)rng_normal(&r);
    float gamma[4] = {1.0f, 0.5f, -2.0f, 1.5f}, beta[4] = {0.1f, 0.0f, -0.3f, 0.2f};
    float rm1[4] = {0}, rv1[4] = {1, 1, 1, 1}, rm2[4] = {0}, rv2[4] = {1, 1, 1, 1};
    float sv1[8], sv2[8], dg1[4] = {0}, db1[4] = {0}, dg2[4] = {0}, db2[4] = {0};
    double scratch[9];
    batchnorm2d_forward(&s, o1, x, gamma, beta, rm1, rv1, 0.1f, 1e-5f, 1, sv1);
    calls = 0;
    assert_int_equal(batchnorm2d_forward_sync(&s, o2, x, gamma, beta, rm2, rv2, 0.1f, 1e-5f, 1, sv2, reduce_count, NULL, scratch), 0);
    assert_int_equal(calls, 2);
    assert_true(testutil_rel_l2(o2, o1, n) < 1e-6);
    assert_true(testutil_rel_l2(rm2, rm1, 4) < 1e-6);
    assert_true(testutil_rel_l2(rv2, rv1, 4) < 1e-6);
    batchnorm2d_backward(&s, d1, dg1, db1, g, x, gamma, sv1, 1);
    calls = 0;
    assert_int_equal(batchnorm2d_backward_sync(&s, d2, dg2, db2, g, x, gamma, sv2, 1, reduce_count, NULL, scratch), 0);
    assert_int_equal(calls, 1);
    assert_true(testutil_rel_l2(d2, d1, n) < 1e-5);
    assert_true(testutil_rel_l2(dg2, dg1, 4) < 1e-5);
    assert_true(testutil_rel_l2(db2, db1, 4) < 1e-5);
    assert_int_equal(batchnorm2d_forward_sync(&s, o2, x, gamma, beta, rm2, rv2, 0.1f, 1e-5f, 1, sv2, reduce_fail, NULL, scratch), 3);
    free(x), free(g), free(o1), free(o2), free(d1), free(d2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_sync_equals_plain)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
