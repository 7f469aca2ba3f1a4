/* core/dist on 2 ranks: run by ctest as `mpirun -np 2 test_dist_mpi` (label mpi). Each rank
 * checks the collective results; the job fails if any rank fails. */
#include "testutil.h"

#include "core/dist.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv)
{
    if (dist_init(&argc, &argv) != SM_OK) return 1;
    if (dist_size() < 2) {
        fprintf(stderr, "test_dist_mpi: needs mpirun -np 2 (got 1 rank)\n");
        dist_finalize();
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_collectives)};
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    int any = failed != 0;
    dist_allreduce_max_i(&any);
    dist_finalize();
    return any;
}
