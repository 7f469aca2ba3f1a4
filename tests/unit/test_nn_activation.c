/* Activations: golden files (torch) and FD gradients away from kinks. */
#include "nn_testlib.h"

#include "nn/activation.h"

typedef struct {
    act_kind kind;
    float alpha;
    size_t n;
    float *x, *y, *gy;
} act_ctx;

static double act_loss(void *p)
{
    act_ctx *c = p;
    activation_forward(c->kind, c->alpha, c->n, c->y, c->x);
    return nt_dot(c->y, c->gy, c->n);
}

static const struct { const char *name; act_kind kind; float alpha; } cases[] = {
    {"relu", ACT_RELU, 0.0f},      {"leaky_relu", ACT_LEAKY_RELU, 0.01f},
    {"elu", ACT_ELU, 1.0f},        {"elu_a05", ACT_ELU, 0.5f},
    {"gelu", ACT_GELU, 0.0f},      {"tanh", ACT_TANH, 0.0f},
    {"sigmoid", ACT_SIGMOID, 0.0f},
};

static void test_golden(void **state)
{
    (void)state;
    const size_t n = 2 * 3 * 5 * 7;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float *x = nt_golden("activation", cases[i].name, "x", n);
        float *gy = nt_golden("activation", cases[i].name, "gy", n);
        float *y = nt_alloc(n), *gx = nt_alloc(n);
        activation_forward(cases[i].kind, cases[i].alpha, n, y, x);
        nt_golden_check("activation", cases[i].name, "y", y, n);
        activation_backward(cases[i].kind, cases[i].alpha, n, gx, gy, x, y);
        nt_golden_check("activation", cases[i].name, "gx", gx, n);
        free(x); free(gy); free(y); free(gx);
    }
}

static void test_gradcheck(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 51, 1);
    for (int k = ACT_IDENTITY; k <= ACT_SIGMOID; k++) {
        act_ctx c = {(act_kind)k, k == ACT_ELU ? 0.7f : activation_default_alpha((act_kind)k), 120,
                     NULL, NULL, NULL};
        c.x = nt_alloc(c.n); c.y = nt_alloc(c.n); c.gy = nt_alloc(c.n);
        nt_fill_away0(c.x, c.n, &r, 0.05f);
        for (size_t i = 0; i < c.n; i++) c.x[i] *= 3.0f;
        nt_fill(c.gy, c.n, &r);
        float *gx = nt_alloc(c.n);
        activation_forward(c.kind, c.alpha, c.n, c.y, c.x);
        activation_backward(c.kind, c.alpha, c.n, gx, c.gy, c.x, c.y);
        NT_GRADCHECK(act_loss, &c, c.x, c.n, gx, 1e-2f, 1e-3);
        /* accumulation (the gradient check left c.y from a perturbed input: recompute) */
        activation_forward(c.kind, c.alpha, c.n, c.y, c.x);
        activation_backward(c.kind, c.alpha, c.n, gx, c.gy, c.x, c.y);
        float *g1 = nt_alloc(c.n);
        activation_backward(c.kind, c.alpha, c.n, g1, c.gy, c.x, c.y);
        for (size_t i = 0; i < c.n; i++) assert_float_equal(gx[i], 2 * g1[i], 1e-6 * (1 + fabsf(g1[i])));
        free(g1); free(gx); free(c.x); free(c.y); free(c.gy);
    }
}

static void test_names_inplace(void **state)
{
    (void)state;
    act_kind k;
    assert_int_equal(activation_parse("elu", &k), 0);
    assert_int_equal(k, ACT_ELU);
    assert_int_equal(activation_parse("none", &k), 0);
    assert_int_equal(k, ACT_IDENTITY);
    assert_int_equal(activation_parse("swish", &k), -1);
    assert_string_equal(activation_name(ACT_GELU), "gelu");
    float x[3] = {-1.0f, 0.0f, 2.0f};
    activation_forward(ACT_RELU, 0.0f, 3, x, x);
    assert_float_equal(x[0], 0.0f, 0);
    assert_float_equal(x[2], 2.0f, 0);
}

/* The vectorised ELU exp against libm over a wide range, and its edge cases. */
static void test_elu_accuracy(void **state)
{
    (void)state;
    enum { N = 2001 };
    float x[N], y[N], g[N], gx[N];
    for (int i = 0; i < N; i++) {
        x[i] = -100.0f + 0.1f * (float)i;
        g[i] = 1.0f;
        gx[i] = 0.0f;
    }
    activation_forward(ACT_ELU, 0.7f, N, y, x);
    activation_backward(ACT_ELU, 0.7f, N, gx, g, x, y);
    for (int i = 0; i < N; i++) {
        double ref = x[i] > 0 ? x[i] : 0.7 * expm1((double)x[i]);
        double dref = x[i] > 0 ? 1.0 : 0.7 * exp((double)x[i]);
        assert_true(fabs(y[i] - ref) <= 2e-7 * fabs(ref) + 1e-30);
        assert_true(fabs(gx[i] - dref) <= 2e-7 * fabs(dref) + 1e-37);
    }
    float e[4] = {INFINITY, -INFINITY, NAN, -1e-8f}, ey[4];
    activation_forward(ACT_ELU, 1.0f, 4, ey, e);
    assert_true(isinf(ey[0]) && ey[0] > 0);
    assert_float_equal(ey[1], -1.0f, 0);
    assert_true(isnan(ey[2]));
    assert_float_equal(ey[3], -1e-8f, 1e-14);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_names_inplace),
        cmocka_unit_test(test_elu_accuracy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
