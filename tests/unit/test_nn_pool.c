/* 2x2 avg/max pooling and x2 nearest/bilinear upsampling: golden files and FD gradients. */
#include "nn_testlib.h"

#include "nn/pool.h"
#include "nn/upsample.h"

enum { AVG, MAX, NEAREST, BILINEAR };

typedef struct {
    int kind, b, c, h, w;
    float *x, *y, *gy;
} sp_ctx;

static size_t sp_in(const sp_ctx *c) { return (size_t)c->b * c->c * c->h * c->w; }
static size_t sp_out(const sp_ctx *c)
{
    size_t pl = (size_t)c->b * c->c;
    return c->kind <= MAX ? pl * (c->h / 2) * (c->w / 2) : pl * 4 * c->h * c->w;
}

static void sp_forward(sp_ctx *c)
{
    pool_shape ps = {c->b, c->c, c->h, c->w};
    upsample_shape us = {c->b, c->c, c->h, c->w};
    switch (c->kind) {
    case AVG: avgpool2x2_forward(&ps, c->y, c->x); break;
    case MAX: maxpool2x2_forward(&ps, c->y, c->x); break;
    case NEAREST: upsample_nearest2x_forward(&us, c->y, c->x); break;
    default: upsample_bilinear2x_forward(&us, c->y, c->x); break;
    }
}

static void sp_backward(sp_ctx *c, float *gx)
{
    pool_shape ps = {c->b, c->c, c->h, c->w};
    upsample_shape us = {c->b, c->c, c->h, c->w};
    switch (c->kind) {
    case AVG: avgpool2x2_backward(&ps, gx, c->gy); break;
    case MAX: maxpool2x2_backward(&ps, gx, c->gy, c->x); break;
    case NEAREST: upsample_nearest2x_backward(&us, gx, c->gy); break;
    default: upsample_bilinear2x_backward(&us, gx, c->gy); break;
    }
}

static double sp_loss(void *p)
{
    sp_ctx *c = p;
    sp_forward(c);
    return nt_dot(c->y, c->gy, sp_out(c));
}

static void golden_case(const char *file, const char *cs, int kind, int b, int ch, int h, int w)
{
    sp_ctx c = {kind, b, ch, h, w, NULL, NULL, NULL};
    c.x = nt_golden(file, cs, "x", sp_in(&c));
    c.gy = nt_golden(file, cs, "gy", sp_out(&c));
    c.y = nt_alloc(sp_out(&c));
    float *gx = nt_alloc(sp_in(&c));
    sp_forward(&c);
    nt_golden_check(file, cs, "y", c.y, sp_out(&c));
    sp_backward(&c, gx);
    nt_golden_check(file, cs, "gx", gx, sp_in(&c));
    free(c.x); free(c.gy); free(c.y); free(gx);
}

static void test_golden(void **state)
{
    (void)state;
    golden_case("pool", "avg_6x8", AVG, 2, 3, 6, 8);
    golden_case("pool", "max_6x8", MAX, 2, 3, 6, 8);
    golden_case("pool", "avg_7x9", AVG, 2, 3, 7, 9);
    golden_case("pool", "max_7x9", MAX, 2, 3, 7, 9);
    golden_case("upsample", "nearest", NEAREST, 2, 3, 4, 5);
    golden_case("upsample", "bilinear", BILINEAR, 2, 3, 4, 5);
}

static void test_gradcheck(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 31, 1);
    for (int kind = AVG; kind <= BILINEAR; kind++) {
        for (int odd = 0; odd < 2; odd++) {
            sp_ctx c = {kind, 2, 2, 4 + odd, 6 + odd, NULL, NULL, NULL};
            c.x = nt_alloc(sp_in(&c));
            c.y = nt_alloc(sp_out(&c));
            c.gy = nt_alloc(sp_out(&c));
            /* distinct values 0.05 apart so that no max window is within h of a tie */
            size_t n = sp_in(&c);
            for (size_t i = 0; i < n; i++) c.x[i] = 0.05f * (float)i - 1.0f;
            for (size_t i = n - 1; i > 0; i--) {
                size_t j = rng_below(&r, (uint32_t)(i + 1));
                float t = c.x[i]; c.x[i] = c.x[j]; c.x[j] = t;
            }
            nt_fill(c.gy, sp_out(&c), &r);
            float *gx = nt_alloc(n);
            sp_backward(&c, gx);
            NT_GRADCHECK(sp_loss, &c, c.x, n, gx, 1e-2f, 1e-3);
            free(c.x); free(c.y); free(c.gy); free(gx);
        }
    }
}

static void test_max_ties_and_nan(void **state)
{
    (void)state;
    pool_shape s = {1, 1, 2, 4};
    float x[8] = {1, 1, 0, NAN, 1, 1, 5, 0};
    float y[2], gx[8] = {0}, gy[2] = {1, 1};
    maxpool2x2_forward(&s, y, x);
    assert_float_equal(y[0], 1.0f, 0);
    assert_true(isnan(y[1]));
    maxpool2x2_backward(&s, gx, gy, x);
    assert_float_equal(gx[0], 1.0f, 0); /* first maximum wins the tie */
    assert_float_equal(gx[1] + gx[4] + gx[5], 0.0f, 0);
    assert_float_equal(gx[3], 1.0f, 0); /* NaN propagates and takes the gradient */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_max_ties_and_nan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
