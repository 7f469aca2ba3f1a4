/* conv_transpose: PyTorch golden files and finite-difference gradients. */
#include "nn_testlib.h"

#include "nn/conv_transpose.h"
#include "nn/threads.h"

static size_t in_n(const conv_transpose_shape *s) { return (size_t)s->batch * s->c_in * s->h * s->w; }
static size_t out_n(const conv_transpose_shape *s)
{
    return (size_t)s->batch * s->c_out * conv_transpose_out_h(s) * conv_transpose_out_w(s);
}
static size_t w_n(const conv_transpose_shape *s)
{
    return (size_t)s->c_in * s->c_out * s->kernel * s->kernel;
}

static const struct { const char *name; conv_transpose_shape s; } cases[] = {
    {"k2_s2", {2, 3, 3, 4, 2, 2, 2, 0, 0, 1}},
    {"k3_s2_p1_op1", {2, 2, 4, 3, 3, 3, 2, 1, 1, 1}},
    {"k4_s2_p1", {1, 3, 3, 3, 2, 4, 2, 1, 0, 0}},
    {"k3_s1_p1", {2, 2, 4, 5, 2, 3, 1, 1, 0, 1}},
};

static void test_shapes(void **state)
{
    (void)state;
    conv_transpose_shape s = {1, 4, 16, 32, 2, 2, 2, 0, 0, 1};
    assert_int_equal(conv_transpose_out_h(&s), 32);
    assert_int_equal(conv_transpose_out_w(&s), 64);
    assert_true(conv_transpose_shape_valid(&s));
    s.output_padding = 2;
    assert_false(conv_transpose_shape_valid(&s));
}

static void test_golden(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_transpose_shape *s = &cases[i].s;
        const char *cs = cases[i].name;
        float *x = nt_golden("conv_transpose", cs, "x", in_n(s));
        float *w = nt_golden("conv_transpose", cs, "w", w_n(s));
        float *b = s->has_bias ? nt_golden("conv_transpose", cs, "b", (size_t)s->c_out) : NULL;
        float *gy = nt_golden("conv_transpose", cs, "gy", out_n(s));
        float *y = nt_alloc(out_n(s)), *gx = nt_alloc(in_n(s)), *gw = nt_alloc(w_n(s));
        float *gb = nt_alloc((size_t)s->c_out), *ws = nt_alloc(conv_transpose_workspace_floats(s));
        conv_transpose_forward(s, y, x, w, b, ws);
        nt_golden_check("conv_transpose", cs, "y", y, out_n(s));
        conv_transpose_backward(s, gx, gw, s->has_bias ? gb : NULL, gy, x, w, ws);
        nt_golden_check("conv_transpose", cs, "gx", gx, in_n(s));
        nt_golden_check("conv_transpose", cs, "gw", gw, w_n(s));
        if (s->has_bias) nt_golden_check("conv_transpose", cs, "gb", gb, (size_t)s->c_out);
        free(x); free(w); free(b); free(gy); free(y); free(gx); free(gw); free(gb); free(ws);
    }
}

typedef struct {
    conv_transpose_shape s;
    float *x, *w, *b, *y, *gy, *ws;
} ct_ctx;

static double ct_loss(void *p)
{
    ct_ctx *c = p;
    conv_transpose_forward(&c->s, c->y, c->x, c->w, c->s.has_bias ? c->b : NULL, c->ws);
    return nt_dot(c->y, c->gy, out_n(&c->s));
}

static void test_gradcheck(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 21, 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_ctx c = {.s = cases[i].s};
        const conv_transpose_shape *s = &c.s;
        c.x = nt_alloc(in_n(s)); c.w = nt_alloc(w_n(s)); c.b = nt_alloc((size_t)s->c_out);
        c.y = nt_alloc(out_n(s)); c.gy = nt_alloc(out_n(s));
        c.ws = nt_alloc(conv_transpose_workspace_floats(s));
        nt_fill(c.x, in_n(s), &r); nt_fill(c.w, w_n(s), &r); nt_fill(c.b, (size_t)s->c_out, &r);
        nt_fill(c.gy, out_n(s), &r);
        float *gx = nt_alloc(in_n(s)), *gw = nt_alloc(w_n(s)), *gb = nt_alloc((size_t)s->c_out);
        conv_transpose_backward(s, gx, gw, s->has_bias ? gb : NULL, c.gy, c.x, c.w, c.ws);
        NT_GRADCHECK(ct_loss, &c, c.x, in_n(s), gx, 1e-2f, 1e-3);
        NT_GRADCHECK(ct_loss, &c, c.w, w_n(s), gw, 1e-2f, 1e-3);
        if (s->has_bias) NT_GRADCHECK(ct_loss, &c, c.b, (size_t)s->c_out, gb, 1e-2f, 1e-3);
        /* accumulation: a second backward doubles the gradients; NULL d_in is allowed */
        float *gw2 = nt_alloc(w_n(s));
        memcpy(gw2, gw, w_n(s) * sizeof *gw);
        conv_transpose_backward(s, NULL, gw2, NULL, c.gy, c.x, c.w, c.ws);
        for (size_t j = 0; j < w_n(s); j++) assert_float_equal(gw2[j], 2 * gw[j], 1e-5 * (1 + fabsf(gw[j])));
        free(gw2); free(gx); free(gw); free(gb);
        free(c.x); free(c.w); free(c.b); free(c.y); free(c.gy); free(c.ws);
    }
}

/* Forward and backward of one shape with `threads` threads into y, gx, gw, gb. */
static void run_with_threads(const conv_transpose_shape *s, int threads, const float *x,
                             const float *w, const float *b, const float *gy, float *y, float *gx,
                             float *gw, float *gb)
{
    nn_set_threads(threads);
    float *ws = nt_alloc(conv_transpose_workspace_floats(s));
    conv_transpose_forward(s, y, x, w, b, ws);
    memset(gx, 0, in_n(s) * sizeof *gx);
    memset(gw, 0, w_n(s) * sizeof *gw);
    memset(gb, 0, (size_t)s->c_out * sizeof *gb);
    conv_transpose_backward(s, gx, gw, gb, gy, x, w, ws);
    free(ws);
}

/* A shape large enough to split its samples over threads (5 samples on 3 threads: uneven
 * blocks, private weight gradients summed afterwards) gives the single-thread result, and the
 * same bits every time for a fixed thread count. */
static void test_threads(void **state)
{
    (void)state;
    const conv_transpose_shape s = {5, 16, 8, 16, 8, 2, 2, 0, 0, 1};
    rng_t r;
    rng_seed(&r, 22, 1);
    float *x = nt_alloc(in_n(&s)), *w = nt_alloc(w_n(&s)), *b = nt_alloc((size_t)s.c_out);
    float *gy = nt_alloc(out_n(&s));
    nt_fill(x, in_n(&s), &r); nt_fill(w, w_n(&s), &r); nt_fill(b, (size_t)s.c_out, &r);
    nt_fill(gy, out_n(&s), &r);
    float *out[3][4];
    const int threads[3] = {1, 3, 3};
    for (int run = 0; run < 3; run++) {
        out[run][0] = nt_alloc(out_n(&s)); out[run][1] = nt_alloc(in_n(&s));
        out[run][2] = nt_alloc(w_n(&s)); out[run][3] = nt_alloc((size_t)s.c_out);
        run_with_threads(&s, threads[run], x, w, b, gy, out[run][0], out[run][1], out[run][2],
                         out[run][3]);
    }
    nn_set_threads(0);
    const size_t n[4] = {out_n(&s), in_n(&s), w_n(&s), (size_t)s.c_out};
    for (int v = 0; v < 4; v++) {
        for (size_t i = 0; i < n[v]; i++)
            assert_float_equal(out[1][v][i], out[0][v][i], 1e-5 * (1 + fabsf(out[0][v][i])));
        assert_memory_equal(out[1][v], out[2][v], n[v] * sizeof(float));
    }
    for (int run = 0; run < 3; run++)
        for (int v = 0; v < 4; v++) free(out[run][v]);
    free(x); free(w); free(b); free(gy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
