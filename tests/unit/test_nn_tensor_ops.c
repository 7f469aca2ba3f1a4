/* Residual add, channel concat/split (exact), FD gradients, and nn_set_threads. */
#include "nn_testlib.h"

#include "nn/tensor_ops.h"
#include "nn/threads.h"

static void test_concat_split_roundtrip(void **state)
{
    (void)state;
    const int B = 2, ca = 3, cb = 2;
    const size_t hw = 6, na = B * ca * hw, nb = B * cb * hw, nc = na + nb;
    rng_t r;
    rng_seed(&r, 81, 1);
    float *a = nt_alloc(na), *b = nt_alloc(nb), *o = nt_alloc(nc), *a2 = nt_alloc(na), *b2 = nt_alloc(nb);
    nt_fill(a, na, &r);
    nt_fill(b, nb, &r);
    channel_concat_forward(B, ca, cb, hw, o, a, b);
    /* sample 1, channel ca (first of b) */
    assert_float_equal(o[(size_t)(ca + cb) * hw + ca * hw], b[cb * hw], 0);
    assert_float_equal(o[(size_t)(ca + cb) * hw + 2], a[ca * hw + 2], 0);
    channel_split_forward(B, ca, cb, hw, a2, b2, o);
    assert_memory_equal(a, a2, na * sizeof *a);
    assert_memory_equal(b, b2, nb * sizeof *b);
    /* backward of concat is split-accumulate; backward of split is concat-accumulate */
    float *ga = nt_alloc(na), *gb = nt_alloc(nb), *go = nt_alloc(nc);
    for (size_t i = 0; i < na; i++) ga[i] = 1.0f;
    channel_concat_backward(B, ca, cb, hw, ga, gb, o);
    for (size_t i = 0; i < na; i++) assert_float_equal(ga[i], a[i] + 1.0f, 1e-6);
    assert_memory_equal(gb, b, nb * sizeof *b);
    channel_concat_backward(B, ca, cb, hw, NULL, gb, o);
    for (size_t i = 0; i < nb; i++) assert_float_equal(gb[i], 2 * b[i], 1e-6);
    channel_split_backward(B, ca, cb, hw, go, a, b);
    assert_memory_equal(go, o, nc * sizeof *go);
    free(a); free(b); free(o); free(a2); free(b2); free(ga); free(gb); free(go);
}

typedef struct {
    size_t n;
    float *a, *b, *y, *gy;
} add_ctx;

static double add_loss(void *p)
{
    add_ctx *c = p;
    tensor_add_forward(c->n, c->y, c->a, c->b);
    return nt_dot(c->y, c->gy, c->n);
}

static void test_add_gradcheck(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 82, 1);
    add_ctx c = {50, nt_alloc(50), nt_alloc(50), nt_alloc(50), nt_alloc(50)};
    nt_fill(c.a, 50, &r); nt_fill(c.b, 50, &r); nt_fill(c.gy, 50, &r);
    float *ga = nt_alloc(50), *gb = nt_alloc(50);
    tensor_add_backward(50, ga, gb, c.gy);
    NT_GRADCHECK(add_loss, &c, c.a, 50, ga, 1e-2f, 1e-5);
    NT_GRADCHECK(add_loss, &c, c.b, 50, gb, 1e-2f, 1e-5);
    tensor_add_backward(50, ga, NULL, c.gy);
    for (int i = 0; i < 50; i++) assert_float_equal(ga[i], 2 * c.gy[i], 1e-6);
    free(c.a); free(c.b); free(c.y); free(c.gy); free(ga); free(gb);
}

static void test_threads(void **state)
{
    (void)state;
    int old = nn_get_threads();
    assert_int_equal(nn_set_threads(1), 1);
    assert_int_equal(nn_get_threads(), 1);
    assert_int_equal(nn_set_threads(2), 2);
    assert_int_equal(nn_get_threads(), 2);
    /* 0 = OMP_NUM_THREADS (the test environment sets 2) */
    setenv("OMP_NUM_THREADS", "2", 1);
    assert_int_equal(nn_set_threads(0), 2);
    nn_set_threads(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concat_split_roundtrip),
        cmocka_unit_test(test_add_gradcheck),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
