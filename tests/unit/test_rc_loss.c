/* moe/rc_loss: the in-place quantile selection against a full sort (numpy "linear" definition),
 * on random arrays with ties, sorted and reversed input, every size from 1 to 40 and large n. */
#include "testutil.h"
#include "core/rng.h"
#include "moe/rc_loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The definition: sort, then interpolate between the two neighbouring order statistics. */
static float sorted_quantile(const float *v, size_t n, float q)
{
    float *s = malloc(n * sizeof *s);
    assert_non_null(s);
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_float);
    float r;
    if (q <= 0) r = s[0];
    else if (q >= 1) r = s[n - 1];
    else {
        double pos = (double)q * (double)(n - 1);
        size_t lo = (size_t)floor(pos);
        if (lo >= n - 1) r = s[n - 1];
        else r = s[lo] + (float)(pos - (double)lo) * (s[lo + 1] - s[lo]);
    }
    free(s);
    return r;
}

static void check(const float *v, size_t n, float q)
{
    float *buf = malloc(n * sizeof *buf);
    assert_non_null(buf);
    memcpy(buf, v, n * sizeof *buf);
    float got = rc_quantile(buf, n, q), want = sorted_quantile(v, n, q);
    if (memcmp(&got, &want, sizeof got) != 0)
        fail_msg("n=%zu q=%g: selection %.9g, sort %.9g", n, (double)q, (double)got, (double)want);
    /* the buffer is a permutation of the input */
    qsort(buf, n, sizeof *buf, cmp_float);
    float *s = malloc(n * sizeof *s);
    assert_non_null(s);
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_float);
    assert_memory_equal(buf, s, n * sizeof *s);
    free(s);
    free(buf);
}

static void test_quantile_matches_sort(void **state)
{
    (void)state;
    const float qs[] = {0.0f, 0.1f, 0.25f, 0.5f, 0.7f, 0.9f, 0.999f, 1.0f};
    rng_t r;
    rng_seed(&r, 7, 3);
    float v[5000];
    for (size_t n = 1; n <= 40; n++) {
        for (int rep = 0; rep < 20; rep++) {
            int ties = rep % 2;
            for (size_t i = 0; i < n; i++) v[i] = ties ? (float)rng_below(&r, 4) : (float)rng_uniform(&r);
            for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) check(v, n, qs[k]);
        }
    }
    const size_t big[] = {1024, 4999, 5000};
    for (size_t b = 0; b < 3; b++) {
        size_t n = big[b];
        for (size_t i = 0; i < n; i++) v[i] = (float)fabs(rng_normal(&r));
        for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) check(v, n, qs[k]);
        for (size_t i = 0; i < n; i++) v[i] = (float)i; /* sorted */
        for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) check(v, n, qs[k]);
        for (size_t i = 0; i < n; i++) v[i] = (float)(n - i); /* reversed */
        for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) check(v, n, qs[k]);
        for (size_t i = 0; i < n; i++) v[i] = 2.5f; /* all equal */
        check(v, n, 0.7f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantile_matches_sort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
