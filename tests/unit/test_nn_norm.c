/* BatchNorm2d (train/eval, running statistics) and GroupNorm: golden files and FD gradients. */
#include "nn_testlib.h"

#include "nn/norm.h"

typedef struct {
    norm_shape s;
    int groups; /* 0: batch norm */
    int training;
    float *x, *g, *b, *y, *gy, *rm, *rv, *save;
} nm_ctx;

static size_t nm_n(const nm_ctx *c) { return (size_t)c->s.batch * c->s.c * c->s.h * c->s.w; }

static void nm_forward(nm_ctx *c)
{
    if (c->groups) {
        groupnorm_forward(&c->s, c->groups, c->y, c->x, c->g, c->b, 1e-5f, c->save);
    } else {
        /* keep the running statistics fixed across repeated forwards */
        float rm[16], rv[16];
        memcpy(rm, c->rm, sizeof(float) * (size_t)c->s.c);
        memcpy(rv, c->rv, sizeof(float) * (size_t)c->s.c);
        batchnorm2d_forward(&c->s, c->y, c->x, c->g, c->b, rm, rv, 0.1f, 1e-5f, c->training, c->save);
    }
}

static void nm_backward(nm_ctx *c, float *gx, float *gg, float *gb)
{
    if (c->groups)
        groupnorm_backward(&c->s, c->groups, gx, gg, gb, c->gy, c->x, c->g, c->save);
    else
        batchnorm2d_backward(&c->s, gx, gg, gb, c->gy, c->x, c->g, c->save, c->training);
}

static double nm_loss(void *p)
{
    nm_ctx *c = p;
    nm_forward(c);
    return nt_dot(c->y, c->gy, nm_n(c));
}

static void golden_case(const char *cs, norm_shape s, int groups, int training)
{
    nm_ctx c = {s, groups, training, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t n = nm_n(&c), C = (size_t)s.c;
    c.x = nt_golden("norm", cs, "x", n);
    c.g = nt_golden("norm", cs, "w", C);
    c.b = nt_golden("norm", cs, "b", C);
    c.gy = nt_golden("norm", cs, "gy", n);
    c.y = nt_alloc(n);
    c.save = nt_alloc(2 * (size_t)(groups ? s.batch * groups : s.c));
    if (!groups) {
        c.rm = nt_golden("norm", cs, "rm0", C);
        c.rv = nt_golden("norm", cs, "rv0", C);
        batchnorm2d_forward(&s, c.y, c.x, c.g, c.b, c.rm, c.rv, 0.1f, 1e-5f, training, c.save);
        nt_golden_check("norm", cs, "rm", c.rm, C);
        nt_golden_check("norm", cs, "rv", c.rv, C);
    } else {
        groupnorm_forward(&s, groups, c.y, c.x, c.g, c.b, 1e-5f, c.save);
    }
    nt_golden_check("norm", cs, "y", c.y, n);
    float *gx = nt_alloc(n), *gg = nt_alloc(C), *gb = nt_alloc(C);
    nm_backward(&c, gx, gg, gb);
    nt_golden_check("norm", cs, "gx", gx, n);
    nt_golden_check("norm", cs, "gw", gg, C);
    nt_golden_check("norm", cs, "gb", gb, C);
    free(gx); free(gg); free(gb);
    free(c.x); free(c.g); free(c.b); free(c.gy); free(c.y); free(c.save); free(c.rm); free(c.rv);
}

static void test_golden(void **state)
{
    (void)state;
    golden_case("bn_train", (norm_shape){3, 4, 5, 6}, 0, 1);
    golden_case("bn_eval", (norm_shape){3, 4, 5, 6}, 0, 0);
    golden_case("gn3", (norm_shape){2, 6, 4, 5}, 3, 0);
    golden_case("gn1", (norm_shape){2, 6, 4, 5}, 1, 0);
}

static void test_gradcheck(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 41, 1);
    const struct { int groups, training; } modes[] = {{0, 1}, {0, 0}, {2, 0}, {4, 0}, {1, 0}};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        nm_ctx c = {{2, 4, 3, 5}, modes[m].groups, modes[m].training,
                    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
        size_t n = nm_n(&c), C = 4;
        c.x = nt_alloc(n); c.g = nt_alloc(C); c.b = nt_alloc(C); c.y = nt_alloc(n);
        c.gy = nt_alloc(n); c.rm = nt_alloc(C); c.rv = nt_alloc(C); c.save = nt_alloc(16);
        nt_fill(c.x, n, &r); nt_fill(c.g, C, &r); nt_fill(c.b, C, &r); nt_fill(c.gy, n, &r);
        for (size_t i = 0; i < C; i++) {
            c.rm[i] = 0.1f * (float)i;
            c.rv[i] = 0.5f + 0.2f * (float)i;
        }
        nm_forward(&c);
        float *gx = nt_alloc(n), *gg = nt_alloc(C), *gb = nt_alloc(C);
        nm_backward(&c, gx, gg, gb);
        NT_GRADCHECK(nm_loss, &c, c.x, n, gx, 1e-2f, 2e-3);
        NT_GRADCHECK(nm_loss, &c, c.g, C, gg, 1e-2f, 2e-3);
        NT_GRADCHECK(nm_loss, &c, c.b, C, gb, 1e-2f, 2e-3);
        free(gx); free(gg); free(gb);
        free(c.x); free(c.g); free(c.b); free(c.y); free(c.gy); free(c.rm); free(c.rv); free(c.save);
    }
}

/* Affine-free (gamma/beta NULL) and running statistics converge to the data's moments. */
static void test_no_affine_running_stats(void **state)
{
    (void)state;
    norm_shape s = {4, 2, 8, 8};
    size_t n = 4 * 2 * 64;
    float *x = nt_alloc(n), *y = nt_alloc(n), save[4], rm[2] = {0, 0}, rv[2] = {1, 1};
    rng_t r;
    rng_seed(&r, 42, 1);
    for (size_t i = 0; i < n; i++) x[i] = (float)(3.0 + 2.0 * rng_normal(&r));
    for (int it = 0; it < 200; it++) batchnorm2d_forward(&s, y, x, NULL, NULL, rm, rv, 0.1f, 1e-5f, 1, save);
    double mean = 0, sq = 0;
    for (int b = 0; b < 4; b++)
        for (int i = 0; i < 64; i++) mean += x[(size_t)b * 128 + i];
    mean /= 256;
    for (int b = 0; b < 4; b++)
        for (int i = 0; i < 64; i++) sq += pow(x[(size_t)b * 128 + i] - mean, 2);
    assert_float_equal(rm[0], mean, 1e-4);
    assert_float_equal(rv[0], sq / 255, 1e-3);
    double ym = 0;
    for (int b = 0; b < 4; b++)
        for (int i = 0; i < 64; i++) ym += y[(size_t)b * 128 + i];
    assert_float_equal(ym / 256, 0.0, 1e-5);
    free(x); free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_no_affine_running_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
