/* conv2d: PyTorch golden files, finite-difference gradients for every padding mode, kernel
 * and stride, a direct double-precision reference for large images, accumulation. */
#include "nn_testlib.h"

#include "nn/conv2d.h"
#include "nn/nn_internal.h"
#include "nn/threads.h"

typedef struct {
    conv2d_shape s;
    float *x, *w, *b, *y, *gy, *ws;
} conv_ctx;

static size_t in_n(const conv2d_shape *s) { return (size_t)s->batch * s->c_in * s->h * s->w; }
static size_t out_n(const conv2d_shape *s)
{
    return (size_t)s->batch * s->c_out * conv2d_out_h(s) * conv2d_out_w(s);
}
static size_t w_n(const conv2d_shape *s) { return (size_t)s->c_out * s->c_in * s->kernel * s->kernel; }

static double conv_loss(void *p)
{
    conv_ctx *c = p;
    conv2d_forward(&c->s, c->y, c->x, c->w, c->s.has_bias ? c->b : NULL, c->ws);
    return nt_dot(c->y, c->gy, out_n(&c->s));
}

static void ctx_init(conv_ctx *c, conv2d_shape s, rng_t *r)
{
    c->s = s;
    c->x = nt_alloc(in_n(&s));
    c->w = nt_alloc(w_n(&s));
    c->b = nt_alloc((size_t)s.c_out);
    c->y = nt_alloc(out_n(&s));
    c->gy = nt_alloc(out_n(&s));
    c->ws = nt_alloc(conv2d_workspace_floats(&s));
    nt_fill(c->x, in_n(&s), r);
    nt_fill(c->w, w_n(&s), r);
    nt_fill(c->b, (size_t)s.c_out, r);
    nt_fill(c->gy, out_n(&s), r);
}

static void ctx_free(conv_ctx *c)
{
    free(c->x); free(c->w); free(c->b); free(c->y); free(c->gy); free(c->ws);
}

static void test_out_size(void **state)
{
    (void)state;
    conv2d_shape s = {1, 1, 32, 64, 1, 5, 1, PAD_PERIODIC_LON, 0};
    assert_int_equal(conv2d_out_h(&s), 32);
    assert_int_equal(conv2d_out_w(&s), 64);
    s.stride = 2;
    assert_int_equal(conv2d_out_h(&s), 16);
    s.h = 7; s.w = 9; s.kernel = 3;
    assert_int_equal(conv2d_out_h(&s), 4);
    assert_int_equal(conv2d_out_w(&s), 5);
    assert_true(conv2d_shape_valid(&s));
    s.kernel = 4;
    assert_false(conv2d_shape_valid(&s));
    s.kernel = 3; s.stride = 3;
    assert_false(conv2d_shape_valid(&s));
}

static void test_golden(void **state)
{
    (void)state;
    static const struct { const char *name; conv2d_shape s; } cases[] = {
        {"zero_k3_s1", {2, 3, 6, 8, 4, 3, 1, PAD_ZERO, 1}},
        {"periodic_k5_s1", {2, 2, 8, 10, 3, 5, 1, PAD_PERIODIC_LON, 1}},
        {"replicate_k3_s1", {2, 3, 5, 7, 2, 3, 1, PAD_REPLICATE, 0}},
        {"zero_k3_s2", {2, 2, 7, 9, 3, 3, 2, PAD_ZERO, 1}},
        {"periodic_k3_s2", {1, 3, 8, 8, 2, 3, 2, PAD_PERIODIC_LON, 0}},
        {"replicate_k5_s2", {2, 2, 9, 10, 2, 5, 2, PAD_REPLICATE, 1}},
        {"zero_k1_s1", {2, 5, 4, 6, 3, 1, 1, PAD_ZERO, 1}},
        {"periodic_k1_s2", {2, 3, 5, 6, 2, 1, 2, PAD_PERIODIC_LON, 0}},
        {"periodic_k7_s1", {1, 2, 6, 8, 2, 7, 1, PAD_PERIODIC_LON, 1}},
        {"shift_zero_k3", {2, 8, 5, 7, 3, 3, 1, PAD_ZERO, 1}},
        {"shift_periodic_k5", {3, 8, 6, 9, 2, 5, 1, PAD_PERIODIC_LON, 1}},
        {"shift_replicate_k3", {2, 9, 4, 6, 3, 3, 1, PAD_REPLICATE, 0}},
        {"shift_periodic_k7", {1, 8, 4, 5, 2, 7, 1, PAD_PERIODIC_LON, 1}},
        {"shift_replicate_k5", {2, 8, 3, 4, 2, 5, 1, PAD_REPLICATE, 1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv2d_shape *s = &cases[i].s;
        const char *cs = cases[i].name;
        float *x = nt_golden("conv2d", cs, "x", in_n(s));
        float *w = nt_golden("conv2d", cs, "w", w_n(s));
        float *b = s->has_bias ? nt_golden("conv2d", cs, "b", (size_t)s->c_out) : NULL;
        float *gy = nt_golden("conv2d", cs, "gy", out_n(s));
        float *y = nt_alloc(out_n(s)), *gx = nt_alloc(in_n(s)), *gw = nt_alloc(w_n(s));
        float *gb = nt_alloc((size_t)s->c_out), *ws = nt_alloc(conv2d_workspace_floats(s));
        conv2d_forward(s, y, x, w, b, ws);
        nt_golden_check("conv2d", cs, "y", y, out_n(s));
        conv2d_backward(s, gx, gw, s->has_bias ? gb : NULL, gy, x, w, ws);
        nt_golden_check("conv2d", cs, "gx", gx, in_n(s));
        nt_golden_check("conv2d", cs, "gw", gw, w_n(s));
        if (s->has_bias) nt_golden_check("conv2d", cs, "gb", gb, (size_t)s->c_out);
        free(x); free(w); free(b); free(gy); free(y); free(gx); free(gw); free(gb); free(ws);
    }
}

static void test_gradcheck(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 11, 1);
    const pad_mode pads[] = {PAD_ZERO, PAD_PERIODIC_LON, PAD_REPLICATE};
    const int kernels[] = {1, 3, 5};
    for (int pi = 0; pi < 3; pi++) {
        for (int ki = 0; ki < 3; ki++) {
            for (int st = 0; st <= 2; st++) {
                /* st == 0: stride 1 with 8 input channels (shifted-GEMM path) */
                int cin = st == 0 ? 8 : 2;
                conv2d_shape s = {2, cin, 5 + st, 7, 3, kernels[ki], st ? st : 1, pads[pi], (ki + st) % 2};
                conv_ctx c;
                ctx_init(&c, s, &r);
                float *gx = nt_alloc(in_n(&s)), *gw = nt_alloc(w_n(&s)), *gb = nt_alloc(3);
                conv2d_backward(&s, gx, gw, s.has_bias ? gb : NULL, c.gy, c.x, c.w, c.ws);
                NT_GRADCHECK(conv_loss, &c, c.x, in_n(&s), gx, 1e-2f, 1e-3);
                NT_GRADCHECK(conv_loss, &c, c.w, w_n(&s), gw, 1e-2f, 1e-3);
                if (s.has_bias) NT_GRADCHECK(conv_loss, &c, c.b, 3, gb, 1e-2f, 1e-3);
                free(gx); free(gw); free(gb);
                ctx_free(&c);
            }
        }
    }
}

/* Direct convolution in double: the reference for shapes too large for golden files. */
static int map_idx(int i, int n, pad_mode pad, int is_w)
{
    if (i >= 0 && i < n) return i;
    if (pad == PAD_REPLICATE) return i < 0 ? 0 : n - 1;
    if (pad == PAD_PERIODIC_LON && is_w) return ((i % n) + n) % n;
    return -1;
}

static void ref_conv(const conv2d_shape *s, const float *x, const float *w, const float *b,
                     const float *gy, double *y, double *gx, double *gw, double *gb)
{
    int oh = conv2d_out_h(s), ow = conv2d_out_w(s), k = s->kernel, p = k / 2;
    for (int n = 0; n < s->batch; n++)
        for (int co = 0; co < s->c_out; co++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    size_t oi = (((size_t)n * s->c_out + co) * oh + oy) * ow + ox;
                    double acc = b ? b[co] : 0.0;
                    double g = gy[oi];
                    if (b) gb[co] += g;
                    for (int ci = 0; ci < s->c_in; ci++)
                        for (int ky = 0; ky < k; ky++) {
                            int iy = map_idx(oy * s->stride - p + ky, s->h, s->pad, 0);
                            if (iy < 0) continue;
                            for (int kx = 0; kx < k; kx++) {
                                int ix = map_idx(ox * s->stride - p + kx, s->w, s->pad, 1);
                                if (ix < 0) continue;
                                size_t xi = (((size_t)n * s->c_in + ci) * s->h + iy) * s->w + ix;
                                size_t wi = (((size_t)co * s->c_in + ci) * k + ky) * k + kx;
                                acc += (double)x[xi] * w[wi];
                                gx[xi] += g * w[wi];
                                gw[wi] += g * x[xi];
                            }
                        }
                    y[oi] = acc;
                }
}

static void check_close(const float *c, const double *ref, size_t n, const char *what)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = c[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    if (!(sqrt(num) <= 1e-5 * sqrt(den) + 1e-6))
        fail_msg("%s: rel err %.3g vs direct reference", what, sqrt(num) / sqrt(den));
}

/* Large images use one sample per GEMM (no batch folding) and 1x1 convs skip im2col. */
static void test_direct_reference(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 12, 1);
    const conv2d_shape shapes[] = {
        {2, 3, 32, 40, 4, 5, 1, PAD_PERIODIC_LON, 1},
        {2, 3, 33, 64, 2, 3, 2, PAD_PERIODIC_LON, 0},
        {2, 2, 32, 36, 3, 3, 1, PAD_REPLICATE, 1},
        {1, 2, 66, 40, 3, 3, 2, PAD_ZERO, 1},
        {3, 4, 9, 11, 5, 1, 1, PAD_ZERO, 1},
        {2, 3, 40, 30, 2, 1, 1, PAD_PERIODIC_LON, 0},
        {3, 8, 12, 20, 5, 5, 1, PAD_PERIODIC_LON, 1},
        {3, 10, 9, 11, 4, 3, 1, PAD_REPLICATE, 0},
        {1, 16, 8, 9, 3, 3, 1, PAD_ZERO, 1},
        {5, 8, 6, 4, 2, 7, 1, PAD_REPLICATE, 1},
        /* Winograd with several samples per GEMM and a partial last chunk */
        {5, 8, 20, 30, 4, 3, 1, PAD_PERIODIC_LON, 1},
        {3, 9, 17, 15, 5, 3, 1, PAD_REPLICATE, 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const conv2d_shape *s = &shapes[i];
        conv_ctx c;
        ctx_init(&c, *s, &r);
        size_t ni = in_n(s), no = out_n(s), nw = w_n(s);
        double *y = calloc(no, sizeof *y), *gx = calloc(ni, sizeof *gx);
        double *gw = calloc(nw, sizeof *gw), *gb = calloc((size_t)s->c_out, sizeof *gb);
        const float *bias = s->has_bias ? c.b : NULL;
        ref_conv(s, c.x, c.w, bias, c.gy, y, gx, gw, gb);
        conv2d_forward(s, c.y, c.x, c.w, bias, c.ws);
        check_close(c.y, y, no, "forward");
        /* accumulate twice from a non-zero start: grad = 0.5 + 2 * reference */
        float *fgx = nt_alloc(ni), *fgw = nt_alloc(nw), *fgb = nt_alloc((size_t)s->c_out);
        for (size_t j = 0; j < ni; j++) fgx[j] = 0.5f;
        for (size_t j = 0; j < nw; j++) fgw[j] = 0.5f;
        for (int j = 0; j < s->c_out; j++) fgb[j] = 0.5f;
        for (int rep = 0; rep < 2; rep++)
            conv2d_backward(s, fgx, fgw, bias ? fgb : NULL, c.gy, c.x, c.w, c.ws);
        for (size_t j = 0; j < ni; j++) gx[j] = 0.5 + 2 * gx[j];
        for (size_t j = 0; j < nw; j++) gw[j] = 0.5 + 2 * gw[j];
        for (int j = 0; j < s->c_out; j++) gb[j] = 0.5 + 2 * gb[j];
        check_close(fgx, gx, ni, "d_in");
        check_close(fgw, gw, nw, "d_weight");
        if (bias) check_close(fgb, gb, (size_t)s->c_out, "d_bias");
        /* d_in NULL: weight gradient unchanged by skipping the input gradient */
        memset(fgw, 0, nw * sizeof *fgw);
        conv2d_backward(s, NULL, fgw, NULL, c.gy, c.x, c.w, c.ws);
        for (size_t j = 0; j < nw; j++) gw[j] = (gw[j] - 0.5) / 2;
        check_close(fgw, gw, nw, "d_weight (d_in NULL)");
        free(y); free(gx); free(gw); free(gb); free(fgx); free(fgw); free(fgb);
        ctx_free(&c);
    }
}

/* Forward, input / weight / bias gradients of shape s with each of the `na` algorithms against
 * the im2col path (float) and the direct double reference: rel L2 <= tol. */
static void compare_algos(const conv2d_shape *s, const nn_conv_algo *algos, int na, double tol,
                          rng_t *r)
{
    size_t ni = in_n(s), no = out_n(s), nw = w_n(s), nb = (size_t)s->c_out;
    float *x = nt_alloc(ni), *w = nt_alloc(nw), *b = nt_alloc(nb), *gy = nt_alloc(no);
    nt_fill(x, ni, r); nt_fill(w, nw, r); nt_fill(b, nb, r); nt_fill(gy, no, r);
    const float *bias = s->has_bias ? b : NULL;
    double *ry = calloc(no, sizeof *ry), *rgx = calloc(ni, sizeof *rgx);
    double *rgw = calloc(nw, sizeof *rgw), *rgb = calloc(nb, sizeof *rgb);
    ref_conv(s, x, w, bias, gy, ry, rgx, rgw, rgb);
    float *y[2], *gx[2], *gw[2], *gb[2];
    for (int ai = 0; ai <= na; ai++) {
        int a = ai ? 1 : 0; /* slot 0: im2col, slot 1: the algorithm under test */
        nn_conv2d_set_algo(ai ? algos[ai - 1] : NN_CONV_IM2COL);
        float *ws = nt_alloc(conv2d_workspace_floats(s));
        y[a] = nt_alloc(no); gx[a] = nt_alloc(ni); gw[a] = nt_alloc(nw); gb[a] = nt_alloc(nb);
        conv2d_forward(s, y[a], x, w, bias, ws);
        conv2d_backward(s, gx[a], gw[a], bias ? gb[a] : NULL, gy, x, w, ws);
        free(ws);
        nn_conv2d_set_algo(NN_CONV_AUTO);
        if (!ai) continue;
        const char *what[4] = {"forward", "d_in", "d_weight", "d_bias"};
        float *got[4][2] = {{y[0], y[1]}, {gx[0], gx[1]}, {gw[0], gw[1]}, {gb[0], gb[1]}};
        const size_t n[4] = {no, ni, nw, nb};
        for (int q = 0; q < (bias ? 4 : 3); q++) {
            double e = testutil_rel_l2(got[q][1], got[q][0], n[q]);
            if (!(e <= tol))
                fail_msg("algo %d, k %d, pad %d, %dx%dx%dx%d -> %d: %s rel err %.3g vs im2col",
                         (int)algos[ai - 1], s->kernel, (int)s->pad, s->batch, s->c_in, s->h,
                         s->w, s->c_out, what[q], e);
        }
        check_close(y[1], ry, no, "forward vs direct");
        check_close(gx[1], rgx, ni, "d_in vs direct");
        check_close(gw[1], rgw, nw, "d_weight vs direct");
        if (bias) check_close(gb[1], rgb, nb, "d_bias vs direct");
        free(y[1]); free(gx[1]); free(gw[1]); free(gb[1]);
    }
    free(y[0]); free(gx[0]); free(gw[0]); free(gb[0]);
    free(x); free(w); free(b); free(gy); free(ry); free(rgx); free(rgw); free(rgb);
}

static const nn_conv_algo WINO_ALGOS[] = {NN_CONV_WINO2, NN_CONV_WINO4};

/* Every Winograd variant (F(2x2) and F(4x4) for kernels 3 and 5) against im2col: image sizes
 * that are not multiples of the tile (and smaller than one), channel counts that are not
 * multiples of 8, every padding mode, several samples per GEMM with a partial last chunk,
 * samples split into blocks of tile rows. */
static void test_winograd_vs_im2col(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 14, 1);
    const pad_mode pads[] = {PAD_ZERO, PAD_PERIODIC_LON, PAD_REPLICATE};
    const struct { int batch, c_in, h, w, c_out; } sizes[] = {
        {3, 9, 11, 13, 10},  /* odd sizes, several samples per GEMM, partial chunk */
        {2, 13, 7, 18, 5},
        {2, 3, 2, 3, 9},     /* image smaller than one tile, w < kernel */
        {1, 10, 26, 30, 11}, /* one sample per GEMM */
        {2, 9, 37, 45, 10},  /* F(2x2): blocks of tile rows, a partial last block */
    };
    for (int k = 3; k <= 5; k += 2)
        for (int pi = 0; pi < 3; pi++)
            for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                conv2d_shape s = {sizes[si].batch, sizes[si].c_in, sizes[si].h, sizes[si].w,
                                  sizes[si].c_out, k, 1, pads[pi], (int)((si + pi) % 2)};
                compare_algos(&s, WINO_ALGOS, 2, 1e-5, &r);
            }
}

/* Layer sizes like the models' (5x5 on 32 x 64, 3x3 on 32 x 64 and 64 x 128, 48-64 input
 * channels): many tiles and a long channel sum. */
static void test_winograd_model_sizes(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 15, 1);
    const conv2d_shape shapes[] = {
        {1, 64, 32, 64, 24, 5, 1, PAD_PERIODIC_LON, 1},
        {2, 48, 32, 64, 20, 3, 1, PAD_ZERO, 0},
        {1, 32, 64, 128, 8, 3, 1, PAD_PERIODIC_LON, 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        compare_algos(&shapes[i], WINO_ALGOS, 2, 1e-5, &r);
}

/* Bit-identical results for a fixed thread count; 1 and 2 threads agree closely. */
static void test_threads_deterministic(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 13, 1);
    const conv2d_shape shapes[] = {
        {4, 8, 10, 12, 6, 5, 1, PAD_PERIODIC_LON, 1},
        {6, 3, 30, 40, 8, 3, 2, PAD_ZERO, 1},
        {4, 32, 24, 32, 16, 1, 1, PAD_ZERO, 1},
        {2, 4, 40, 40, 8, 5, 1, PAD_REPLICATE, 0},
        {8, 16, 20, 30, 8, 3, 1, PAD_PERIODIC_LON, 1},
        {9, 12, 14, 18, 10, 5, 1, PAD_PERIODIC_LON, 1}, /* Winograd F(4x4, 5x5) */
        {5, 16, 22, 26, 12, 3, 1, PAD_REPLICATE, 0},    /* Winograd F(4x4, 3x3) */
        {3, 10, 66, 70, 9, 3, 1, PAD_ZERO, 1},          /* F(4x4, 3x3) in tile-row blocks */
    };
    int old = nn_get_threads();
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const conv2d_shape *s = &shapes[i];
        size_t ni = in_n(s), no = out_n(s), nw = w_n(s);
        float *x = nt_alloc(ni), *w = nt_alloc(nw), *b = nt_alloc((size_t)s->c_out), *gy = nt_alloc(no);
        nt_fill(x, ni, &r); nt_fill(w, nw, &r); nt_fill(b, (size_t)s->c_out, &r); nt_fill(gy, no, &r);
        float *y[3], *gx[3], *gw[3];
        const int threads[3] = {2, 2, 1};
        for (int run = 0; run < 3; run++) {
            nn_set_threads(threads[run]);
            float *ws = nt_alloc(conv2d_workspace_floats(s));
            y[run] = nt_alloc(no); gx[run] = nt_alloc(ni); gw[run] = nt_alloc(nw);
            float gb[16] = {0};
            conv2d_forward(s, y[run], x, w, b, ws);
            conv2d_backward(s, gx[run], gw[run], gb, gy, x, w, ws);
            free(ws);
        }
        assert_memory_equal(y[0], y[1], no * sizeof(float));
        assert_memory_equal(gx[0], gx[1], ni * sizeof(float));
        assert_memory_equal(gw[0], gw[1], nw * sizeof(float));
        assert_true(testutil_rel_l2(y[2], y[0], no) < 1e-6);
        assert_true(testutil_rel_l2(gx[2], gx[0], ni) < 1e-6);
        assert_true(testutil_rel_l2(gw[2], gw[0], nw) < 1e-6);
        for (int run = 0; run < 3; run++) { free(y[run]); free(gx[run]); free(gw[run]); }
        free(x); free(w); free(b); free(gy);
    }
    nn_set_threads(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_size),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_direct_reference),
        cmocka_unit_test(test_winograd_vs_im2col),
        cmocka_unit_test(test_winograd_model_sizes),
        cmocka_unit_test(test_threads_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
