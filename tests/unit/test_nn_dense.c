/* Dense layer: golden files and FD gradients. */
#include "nn_testlib.h"

#include "nn/dense.h"

typedef struct {
    dense_shape s;
    float *x, *w, *b, *y, *gy;
} dn_ctx;

static double dn_loss(void *p)
{
    dn_ctx *c = p;
    dense_forward(&c->s, c->y, c->x, c->w, c->s.has_bias ? c->b : NULL);
    return nt_dot(c->y, c->gy, (size_t)c->s.batch * c->s.out_features);
}

static void test_golden(void **state)
{
    (void)state;
    const struct { const char *name; dense_shape s; } cases[] = {
        {"bias", {4, 7, 5, 1}}, {"nobias", {3, 6, 2, 0}}};
    for (size_t i = 0; i < 2; i++) {
        const dense_shape *s = &cases[i].s;
        const char *cs = cases[i].name;
        size_t ni = (size_t)s->batch * s->in_features, no = (size_t)s->batch * s->out_features;
        size_t nw = (size_t)s->in_features * s->out_features;
        float *x = nt_golden("dense", cs, "x", ni), *w = nt_golden("dense", cs, "w", nw);
        float *b = s->has_bias ? nt_golden("dense", cs, "b", (size_t)s->out_features) : NULL;
        float *gy = nt_golden("dense", cs, "gy", no);
        float *y = nt_alloc(no), *gx = nt_alloc(ni), *gw = nt_alloc(nw);
        float *gb = nt_alloc((size_t)s->out_features);
        dense_forward(s, y, x, w, b);
        nt_golden_check("dense", cs, "y", y, no);
        dense_backward(s, gx, gw, b ? gb : NULL, gy, x, w);
        nt_golden_check("dense", cs, "gx", gx, ni);
        nt_golden_check("dense", cs, "gw", gw, nw);
        if (b) nt_golden_check("dense", cs, "gb", gb, (size_t)s->out_features);
        free(x); free(w); free(b); free(gy); free(y); free(gx); free(gw); free(gb);
    }
}

static void test_gradcheck(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 61, 1);
    dn_ctx c = {{3, 5, 4, 1}, NULL, NULL, NULL, NULL, NULL};
    c.x = nt_alloc(15); c.w = nt_alloc(20); c.b = nt_alloc(4); c.y = nt_alloc(12); c.gy = nt_alloc(12);
    nt_fill(c.x, 15, &r); nt_fill(c.w, 20, &r); nt_fill(c.b, 4, &r); nt_fill(c.gy, 12, &r);
    float gx[15], gw[20], gb[4];
    for (int i = 0; i < 15; i++) gx[i] = 1.0f;
    for (int i = 0; i < 20; i++) gw[i] = 1.0f;
    for (int i = 0; i < 4; i++) gb[i] = 1.0f;
    dense_backward(&c.s, gx, gw, gb, c.gy, c.x, c.w);
    /* backward accumulates onto the initial 1.0 */
    for (int i = 0; i < 15; i++) gx[i] -= 1.0f;
    for (int i = 0; i < 20; i++) gw[i] -= 1.0f;
    for (int i = 0; i < 4; i++) gb[i] -= 1.0f;
    NT_GRADCHECK(dn_loss, &c, c.x, 15, gx, 1e-2f, 1e-3);
    NT_GRADCHECK(dn_loss, &c, c.w, 20, gw, 1e-2f, 1e-3);
    NT_GRADCHECK(dn_loss, &c, c.b, 4, gb, 1e-2f, 1e-3);
    free(c.x); free(c.w); free(c.b); free(c.y); free(c.gy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_gradcheck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
