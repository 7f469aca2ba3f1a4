/* core/dist outside an MPI launcher: one rank, collectives leave the data unchanged, the byte
 * counter counts what was passed to allreduce. (test_dist_mpi.c covers 2 ranks.) */
#include "testutil.h"

#include "core/dist.h"
#include "core/log.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_single_process)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
