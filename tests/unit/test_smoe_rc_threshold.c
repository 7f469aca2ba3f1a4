/* RC / damping thresholds of the SMoE layer: absolute (reference code: q_b + tol) and relative
 * (q_b (1 + 1e-5), q_b (1 + 1e-3)). The layer's labels, RC loss and damping must follow the
 * selected kind, and the two kinds must differ where the reference tolerance matters: errors
 * just above the quantile are damped by the relative rule but not by the absolute one. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "moe/rc_loss.h"
#include "moe/smoe.h"

static void test_thresholds(void **st)
{
    (void)st;
    const float qb[3] = {0.0f, 0.5f, 2.0f};
    float thr[3];
    rc_thresholds(3, qb, 1, 1e-3f, thr);
    assert_float_equal(thr[0], 1e-3f, 0);
    assert_float_equal(thr[1], 0.501f, 1e-7);
    assert_float_equal(thr[2], 2.001f, 1e-6);
    rc_thresholds(3, qb, 0, 1e-3f, thr);
    assert_float_equal(thr[0], 0.0f, 0);
    assert_float_equal(thr[1], 0.5005f, 1e-7);
    assert_float_equal(thr[2], 2.002f, 1e-6);
}

/* rc_labels / rc_damp (relative) equal the _thr variants with relative thresholds. */
static void test_relative_wrappers(void **st)
{
    (void)st;
    enum { B = 2, N = 3, K = 1, P = 7 };
    float e_s[B * K * P], qb[B], scratch[K * P], thr[B];
    int32_t idx[B * K * P];
    rng_t r;
    rng_seed(&r, 5, 1);
    for (int i = 0; i < B * K * P; i++) {
        e_s[i] = (float)rng_uniform(&r);
        idx[i] = (int32_t)rng_below(&r, N);
    }
    rc_sample_quantiles(B, K * P, e_s, 0.3f, qb, scratch);
    float la[B * N * P], lb[B * N * P];
    rc_labels(B, N, K, P, e_s, idx, qb, la);
    rc_thresholds(B, qb, 0, RC_CORRECT_REL, thr);
    rc_labels_thr(B, N, K, P, e_s, idx, thr, lb);
    assert_memory_equal(la, lb, sizeof la);
    float da[B * K * P], db[B * K * P];
    for (int i = 0; i < B * K * P; i++) da[i] = db[i] = 1.0f;
    size_t na = rc_damp(B, K * P, e_s, qb, 0.0f, da);
    rc_thresholds(B, qb, 0, RC_DAMP_REL, thr);
    size_t nb = rc_damp_thr(B, K * P, e_s, thr, 0.0f, db);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, sizeof da);
}

typedef struct {
    smoe_shape s;
    float *x, *p, *dp, *st, *ws, *y, *g;
    size_t nx, np, ny;
} layer_run;

static void run_layer(layer_run *L, int absolute, float tol_c, float tol_d, float err_scale)
{
    smoe_shape *s = &L->s;
    memset(s, 0, sizeof *s);
    s->batch = 2; s->c_in = 1; s->h = 6; s->w = 7; s->n_experts = 3; s->k = 1;
    smoe_shape_defaults(s);
    s->weighted = 0;
    s->rc_loss = 1;
    s->rc_quantile = 0.3f;
    s->damping = 1;
    s->damping_factor = 0.0f;
    s->rc_absolute = absolute;
    s->rc_tol_correct = tol_c;
    s->rc_tol_damp = tol_d;
    assert_int_equal(smoe_check(s), SM_OK);
    L->nx = (size_t)s->batch * s->h * s->w;
    L->ny = L->nx;
    L->np = smoe_param_floats(s);
    L->x = malloc(L->nx * sizeof(float));
    L->y = malloc(L->ny * sizeof(float));
    L->g = malloc(L->ny * sizeof(float));
    L->p = malloc(L->np * sizeof(float));
    L->dp = calloc(L->np, sizeof(float));
    L->st = calloc(smoe_state_floats(s), sizeof(float));
    L->ws = calloc(smoe_workspace_floats(s), sizeof(float));
    rng_t r;
    rng_seed(&r, 11, 2);
    smoe_init(s, L->p, &r);
    for (size_t i = 0; i < L->nx; i++) L->x[i] = (float)rng_uniform(&r);
    smoe_forward(s, L->y, L->x, L->p, L->st, L->ws, NULL);
    /* upstream gradient: small errors, so that an absolute tolerance covers them */
    for (size_t i = 0; i < L->ny; i++) L->g[i] = err_scale * (float)(rng_uniform(&r) - 0.5);
    smoe_backward(s, NULL, L->dp, L->g, NULL, L->x, L->p, L->st, L->ws);
}

static void free_layer(layer_run *L)
{
    free(L->x); free(L->y); free(L->g); free(L->p); free(L->dp); free(L->st); free(L->ws);
}

/* With an absolute damping tolerance larger than every error nothing is damped and the expert
 * gradient is the plain straight-through one; the relative rule damps about 1 - q of them. */
static void test_layer_absolute_vs_relative(void **st)
{
    (void)st;
    layer_run a, rel;
    run_layer(&a, 1, 1e-5f, 1e-3f, 1e-3f);
    run_layer(&rel, 0, 0, 0, 1e-3f);
    smoe_state_view va = smoe_state(&a.s, a.st), vr = smoe_state(&rel.s, rel.st);
    assert_float_equal(va.stats[SMOE_STAT_DAMPED_FRAC], 0.0f, 0);
    assert_true(vr.stats[SMOE_STAT_DAMPED_FRAC] > 0.6f && vr.stats[SMOE_STAT_DAMPED_FRAC] < 0.8f);
    /* expert gradient of the absolute run = undamped straight-through gradient */
    const int H = a.s.h, W = a.s.w, HW = H * W, N = a.s.n_experts;
    float *ref = calloc((size_t)N * 9, sizeof(float));
    for (int b = 0; b < a.s.batch; b++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                int e = va.idx[(size_t)b * HW + h * W + w];
                float gg = a.g[(size_t)b * HW + h * W + w];
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int yy = h + dy, xx = w + dx;
                        float xv = yy >= 0 && yy < H && xx >= 0 && xx < W ? a.x[(size_t)b * HW + yy * W + xx] : 0;
                        ref[e * 9 + (dy + 1) * 3 + dx + 1] += gg * xv;
                    }
            }
    for (int i = 0; i < N * 9; i++) assert_float_equal(a.dp[i], ref[i], 1e-6);
    /* labels of the absolute run: correct when e_s <= q_b + 1e-5 */
    float qb[2], scratch[42], thr[2], *lab = malloc((size_t)a.s.batch * N * HW * sizeof(float));
    float es[84];
    for (size_t i = 0; i < a.ny; i++) es[i] = fabsf(a.g[i]);
    rc_sample_quantiles(a.s.batch, (size_t)HW, es, 0.3f, qb, scratch);
    rc_thresholds(a.s.batch, qb, 1, 1e-5f, thr);
    size_t nc = 0;
    for (int b = 0; b < a.s.batch; b++)
        for (int i = 0; i < HW; i++) nc += es[b * HW + i] <= thr[b];
    assert_float_equal(va.stats[SMOE_STAT_CORRECT_FRAC], (double)nc / (double)a.ny, 1e-6);
    rc_labels_thr(a.s.batch, N, 1, (size_t)HW, es, va.idx, thr, lab);
    moe_param_info info[2];
    smoe_params(&a.s, info);
    float *dg = calloc((size_t)N * HW, sizeof(float));
    double loss = rc_bce_with_logits(a.s.batch, (size_t)N * HW, a.p + info[1].offset, 0, lab, dg);
    assert_float_equal(va.stats[SMOE_STAT_RC_LOSS], loss, 1e-6);
    for (int i = 0; i < N * HW; i++) assert_float_equal(a.dp[info[1].offset + i], dg[i], 1e-7);
    free(ref); free(lab); free(dg);
    free_layer(&a);
    free_layer(&rel);
}

/* Absolute tolerances of 0 reduce to "correct when e_s <= q_b": a larger error scale makes
 * the absolute rule behave like the relative one (same damped fraction up to ties). */
static void test_absolute_zero_tolerance(void **st)
{
    (void)st;
    layer_run a, rel;
    run_layer(&a, 1, 0, 0, 10.0f);
    run_layer(&rel, 0, 0, 0, 10.0f);
    float fa = smoe_state(&a.s, a.st).stats[SMOE_STAT_DAMPED_FRAC];
    float fr = smoe_state(&rel.s, rel.st).stats[SMOE_STAT_DAMPED_FRAC];
    assert_float_equal(fa, fr, 1e-6);
    smoe_shape bad = a.s;
    bad.rc_tol_damp = -1;
    assert_int_equal(smoe_check(&bad), SM_ERR_USAGE);
    free_layer(&a);
    free_layer(&rel);
}

/* SMOE_RC_AUTO (the default): absolute at the model's output layer (errors rescaled to pointwise
 * errors, rc_error_scale != 1), relative elsewhere. */
static void test_auto(void **st)
{
    (void)st;
    smoe_shape s;
    memset(&s, 0, sizeof s);
    s.batch = 1; s.c_in = 1; s.h = 4; s.w = 4; s.n_experts = 3; s.k = 1;
    smoe_shape_defaults(&s);
    assert_int_equal(s.rc_absolute, SMOE_RC_AUTO);
    assert_int_equal(smoe_check(&s), SM_OK);
    assert_int_equal(smoe_rc_is_absolute(&s), 0);
    s.rc_error_scale = 48.0f;
    assert_int_equal(smoe_rc_is_absolute(&s), 1);
    s.rc_absolute = SMOE_RC_RELATIVE;
    assert_int_equal(smoe_rc_is_absolute(&s), 0);
    s.rc_absolute = SMOE_RC_ABSOLUTE;
    s.rc_error_scale = 1.0f;
    assert_int_equal(smoe_rc_is_absolute(&s), 1);
    s.rc_absolute = 2;
    assert_int_equal(smoe_check(&s), SM_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thresholds),
        cmocka_unit_test(test_relative_wrappers),
        cmocka_unit_test(test_layer_absolute_vs_relative),
        cmocka_unit_test(test_absolute_zero_tolerance),
        cmocka_unit_test(test_auto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
