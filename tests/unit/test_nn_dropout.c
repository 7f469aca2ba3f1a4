/* Dropout: keep rate, scaling, seeded reproducibility, eval identity, FD gradient with the
 * mask fixed. (Torch's RNG differs, so there is no golden file: the mask is ours.) */
#include "nn_testlib.h"

#include "nn/dropout.h"
#include "nn/threads.h"

static void test_statistics(void **state)
{
    (void)state;
    const size_t n = 200000;
    float *x = nt_alloc(n), *y = nt_alloc(n);
    uint8_t *mask = malloc(n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    rng_t r;
    rng_seed(&r, 71, 3);
    dropout_forward(0.3f, 1, n, y, x, mask, &r);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask[i]) {
            kept++;
            assert_float_equal(y[i], 1.0f / 0.7f, 1e-6);
        } else {
            assert_float_equal(y[i], 0.0f, 0);
        }
    }
    /* binomial: sd of the kept fraction ~ 0.001 */
    assert_true(fabs((double)kept / n - 0.7) < 0.005);
    free(x); free(y); free(mask);
}

static void test_seeded_and_thread_independent(void **state)
{
    (void)state;
    const size_t n = 5000;
    float *x = nt_alloc(n), *y1 = nt_alloc(n), *y2 = nt_alloc(n);
    uint8_t *m1 = malloc(n), *m2 = malloc(n);
    rng_t r;
    rng_seed(&r, 72, 0);
    nt_fill(x, n, &r);
    int old = nn_get_threads();
    rng_seed(&r, 5, 9);
    nn_set_threads(1);
    dropout_forward(0.5f, 1, n, y1, x, m1, &r);
    rng_seed(&r, 5, 9);
    nn_set_threads(2);
    dropout_forward(0.5f, 1, n, y2, x, m2, &r);
    nn_set_threads(old);
    assert_memory_equal(m1, m2, n);
    assert_memory_equal(y1, y2, n * sizeof *y1);
    rng_seed(&r, 6, 9);
    dropout_forward(0.5f, 1, n, y2, x, m2, &r);
    assert_true(memcmp(m1, m2, n) != 0);
    free(x); free(y1); free(y2); free(m1); free(m2);
}

static void test_eval_and_edges(void **state)
{
    (void)state;
    float x[4] = {1, -2, 3, -4}, y[4], gx[4] = {0}, gy[4] = {1, 1, 1, 1};
    uint8_t mask[4];
    rng_t r;
    rng_seed(&r, 1, 1);
    rng_t r0 = r;
    dropout_forward(0.5f, 0, 4, y, x, mask, &r);
    assert_memory_equal(x, y, sizeof x);
    assert_memory_equal(&r, &r0, sizeof r); /* eval draws nothing */
    dropout_backward(0.5f, 0, 4, gx, gy, mask);
    for (int i = 0; i < 4; i++) assert_float_equal(gx[i], 1.0f, 0);
    dropout_forward(1.0f, 1, 4, y, x, mask, &r);
    for (int i = 0; i < 4; i++) assert_float_equal(y[i], 0.0f, 0);
}

typedef struct {
    size_t n;
    float *x, *y, *gy;
    uint8_t *mask;
} dr_ctx;

/* forward with the stored mask (as backward sees it) */
static double dr_loss(void *p)
{
    dr_ctx *c = p;
    for (size_t i = 0; i < c->n; i++) c->y[i] = c->mask[i] ? c->x[i] * (1.0f / 0.75f) : 0.0f;
    return nt_dot(c->y, c->gy, c->n);
}

static void test_gradcheck(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 73, 1);
    dr_ctx c = {300, nt_alloc(300), nt_alloc(300), nt_alloc(300), malloc(300)};
    nt_fill(c.x, c.n, &r);
    nt_fill(c.gy, c.n, &r);
    float *y2 = nt_alloc(c.n), *gx = nt_alloc(c.n);
    dropout_forward(0.25f, 1, c.n, y2, c.x, c.mask, &r);
    dr_loss(&c);
    assert_memory_equal(y2, c.y, c.n * sizeof *y2);
    dropout_backward(0.25f, 1, c.n, gx, c.gy, c.mask);
    NT_GRADCHECK(dr_loss, &c, c.x, c.n, gx, 1e-2f, 1e-4);
    free(y2); free(gx); free(c.x); free(c.y); free(c.gy); free(c.mask);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statistics),
        cmocka_unit_test(test_seeded_and_thread_independent),
        cmocka_unit_test(test_eval_and_edges),
        cmocka_unit_test(test_gradcheck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
