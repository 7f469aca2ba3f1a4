/* SMoE layer, RC loss and the point-gated layer against PyTorch (tests/golden/smoe_*.nc from
 * scripts/golden/make_golden_smoe.py): ||c - torch||_2 <= 1e-4 ||torch||_2 + 1e-6 per tensor. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "moe/point_moe.h"
#include "moe/rc_loss.h"
#include "moe/smoe.h"
#include "nn/threads.h"

static void check_close(const char *what, const float *c, const float *t, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)c[i] - t[i];
        num += d * d;
        den += (double)t[i] * t[i];
    }
    if (!(sqrt(num) <= 1e-4 * sqrt(den) + 1e-6))
        fail_msg("%s: ||c - torch|| = %.3g, ||torch|| = %.3g", what, sqrt(num), sqrt(den));
}

static float *load(const char *file, const char *c, const char *v, size_t *n, size_t *shape)
{
    char name[128];
    snprintf(name, sizeof name, "%s%s%s", c, c[0] ? "_" : "", v);
    int nd;
    return testutil_golden_load(file, name, n, &nd, shape);
}

static void run_case(const char *c)
{
    const char *F = "smoe_layer.nc";
    size_t n, shape[8];
    float *cfg = load(F, c, "cfg", &n, NULL);
    float *x = load(F, c, "x", &n, shape);
    smoe_shape s;
    memset(&s, 0, sizeof s);
    s.batch = (int)shape[0]; s.c_in = (int)shape[1]; s.h = (int)shape[2]; s.w = (int)shape[3];
    s.k = (int)cfg[2];
    s.n_experts = (int)cfg[3];
    smoe_shape_defaults(&s);
    s.gate = (smoe_gate_type)(int)cfg[0];
    s.weighted = (int)cfg[1];
    s.pad = (pad_mode)(int)cfg[4];
    s.softmax = (int)cfg[5];
    s.rc_loss = (int)cfg[6];
    s.rc_quantile = cfg[7];
    s.rc_error_scale = cfg[8];
    s.damping = (int)cfg[9];
    s.damping_factor = cfg[10];
    s.rc_absolute = SMOE_RC_RELATIVE; /* the golden files use METHODS.md's relative thresholds */
    assert_int_equal(smoe_check(&s), SM_OK);
    size_t nw, ng, ny, np = smoe_param_floats(&s);
    float *w = load(F, c, "w", &nw, NULL), *g = load(F, c, "g", &ng, NULL);
    float *gy = load(F, c, "gy", &ny, NULL), *y_t = load(F, c, "y", NULL, NULL);
    float *gx_t = load(F, c, "gx", NULL, NULL), *gw_t = load(F, c, "gw", NULL, NULL);
    float *gg_t = load(F, c, "gg", NULL, NULL), *rc_t = load(F, c, "rc", NULL, NULL);
    assert_int_equal(nw + ng, np);
    float *params = malloc(np * sizeof(float)), *dparams = calloc(np, sizeof(float));
    memcpy(params, w, nw * sizeof(float));
    memcpy(params + nw, g, ng * sizeof(float));
    size_t nx = (size_t)s.batch * s.c_in * s.h * s.w;
    float *dx = calloc(nx, sizeof(float)), *y = malloc(ny * sizeof(float));
    float *state = calloc(smoe_state_floats(&s), sizeof(float));
    float *ws = calloc(smoe_workspace_floats(&s), sizeof(float));
    smoe_forward(&s, y, x, params, state, ws, NULL);
    smoe_backward(&s, dx, dparams, gy, NULL, x, params, state, ws);
    char what[96];
    snprintf(what, sizeof what, "%s y", c); check_close(what, y, y_t, ny);
    snprintf(what, sizeof what, "%s gx", c); check_close(what, dx, gx_t, nx);
    snprintf(what, sizeof what, "%s gw", c); check_close(what, dparams, gw_t, nw);
    snprintf(what, sizeof what, "%s gg", c); check_close(what, dparams + nw, gg_t, ng);
    float rc = smoe_state(&s, state).stats[SMOE_STAT_RC_LOSS];
    snprintf(what, sizeof what, "%s rc", c); check_close(what, &rc, rc_t, 1);
    if (s.rc_loss) assert_true(rc_t[0] > 0);
    free(cfg); free(x); free(w); free(g); free(gy); free(y_t); free(gx_t); free(gw_t);
    free(gg_t); free(rc_t); free(params); free(dparams); free(dx); free(y); free(state); free(ws);
}

static void test_latent_weighted(void **st) { (void)st; run_case("latent_w"); }
static void test_latent_unweighted_rc_damping(void **st) { (void)st; run_case("latent_u_rc"); }
static void test_latent_softmax_rc(void **st) { (void)st; run_case("latent_w_sm_rc"); }
static void test_conv_weighted_rc_damping(void **st) { (void)st; run_case("conv_w_rc"); }
static void test_conv_unweighted(void **st) { (void)st; run_case("conv_u"); }
static void test_conv_weighted_damping(void **st) { (void)st; run_case("conv_w_damp"); }
static void test_conv1x1_softmax(void **st) { (void)st; run_case("conv1x1_w_sm"); }

static void test_rc_labels_ties(void **st)
{
    (void)st;
    const char *F = "smoe_rc.nc";
    size_t n, shape[8], nl;
    float *e_s = load(F, "", "e_s", &n, shape);
    int B = (int)shape[0], k = (int)shape[1], P = (int)shape[2];
    float *idxf = load(F, "", "idx", NULL, NULL), *logits = load(F, "", "logits", &nl, shape);
    int N = (int)shape[1];
    float *q = load(F, "", "q", NULL, NULL), *qb_t = load(F, "", "qb", NULL, NULL);
    float *lab_t = load(F, "", "labels", NULL, NULL), *loss_t = load(F, "", "loss", NULL, NULL);
    float *dl_t = load(F, "", "dlogits", NULL, NULL), *damp_t = load(F, "", "damp", NULL, NULL);
    int32_t *idx = malloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) idx[i] = (int32_t)idxf[i];
    float qb[8], scratch[64], lab[64], dl[64] = {0}, d[64];
    rc_sample_quantiles(B, (size_t)k * P, e_s, q[0], qb, scratch);
    check_close("qb", qb, qb_t, (size_t)B);
    rc_labels(B, N, k, (size_t)P, e_s, idx, qb, lab);
    for (size_t i = 0; i < nl; i++) assert_float_equal(lab[i], lab_t[i], 1e-7);
    float loss = (float)rc_bce_with_logits(B, (size_t)N * P, logits, (size_t)N * P, lab, dl);
    check_close("rc loss", &loss, loss_t, 1);
    check_close("rc dlogits", dl, dl_t, nl);
    for (size_t i = 0; i < n; i++) d[i] = 1.0f;
    rc_damp(B, (size_t)k * P, e_s, qb, 0.25f, d);
    for (size_t i = 0; i < n; i++) assert_float_equal(d[i], damp_t[i], 0);
    free(e_s); free(idxf); free(logits); free(q); free(qb_t); free(lab_t); free(loss_t);
    free(dl_t); free(damp_t); free(idx);
}

static void run_point(const char *c)
{
    const char *F = "smoe_point.nc";
    size_t n, shape[8], np_t, ny;
    float *cfg = load(F, c, "cfg", &n, NULL);
    float *x = load(F, c, "x", &n, shape);
    pmoe_shape s;
    memset(&s, 0, sizeof s);
    s.batch = (int)shape[0]; s.c_in = (int)shape[1]; s.h = (int)shape[2]; s.w = (int)shape[3];
    s.n_experts = (int)cfg[1];
    s.k = (int)cfg[2];
    pmoe_shape_defaults(&s);
    s.gate = (pmoe_gate_type)(int)cfg[0];
    s.hidden = (int)cfg[3];
    s.pad = (pad_mode)(int)cfg[4];
    s.groups = (int)cfg[5];
    s.experts_per_group = (int)cfg[6];
    s.k_outer = (int)cfg[7];
    s.k_inner = (int)cfg[8];
    s.outer_kind = cfg[9] != 0 ? MOE_GATE_LAPLACE : MOE_GATE_SOFTMAX;
    s.inner_kind = cfg[10] != 0 ? MOE_GATE_LAPLACE : MOE_GATE_SOFTMAX;
    s.laplace_bias = (int)cfg[11];
    s.noisy = 0;
    s.attn_hidden = 0; /* the reference uses the expert hidden width */
    pmoe_aux_weights aux = {cfg[12], 0, cfg[13], cfg[14], 0, 0, 0};
    float *params = load(F, c, "params", &np_t, NULL), *gy = load(F, c, "gy", &ny, shape);
    s.c_out = (int)shape[1];
    assert_int_equal(pmoe_check(&s), SM_OK);
    assert_int_equal(pmoe_param_floats(&s), np_t);
    float *y_t = load(F, c, "y", NULL, NULL), *gx_t = load(F, c, "gx", NULL, NULL);
    float *gp_t = load(F, c, "gparams", NULL, NULL);
    size_t nx = (size_t)s.batch * s.c_in * s.h * s.w;
    float *y = malloc(ny * sizeof(float)), *dx = calloc(nx, sizeof(float));
    float *dp = calloc(np_t, sizeof(float));
    float *state = calloc(pmoe_state_floats(&s), sizeof(float));
    float *ws = calloc(pmoe_workspace_floats(&s), sizeof(float));
    pmoe_forward(&s, y, x, params, state, ws, 0, NULL);
    pmoe_backward(&s, dx, dp, gy, &aux, x, params, state, ws);
    char what[96];
    snprintf(what, sizeof what, "%s y", c); check_close(what, y, y_t, ny);
    snprintf(what, sizeof what, "%s gx", c); check_close(what, dx, gx_t, nx);
    int nt = pmoe_param_count(&s);
    moe_param_info *info = malloc((size_t)nt * sizeof *info);
    pmoe_params(&s, info);
    for (int t = 0; t < nt; t++) {
        snprintf(what, sizeof what, "%s %s", c, info[t].name);
        check_close(what, dp + info[t].offset, gp_t + info[t].offset, info[t].count);
    }
    free(info); free(cfg); free(x); free(params); free(gy); free(y_t); free(gx_t); free(gp_t);
    free(y); free(dx); free(dp); free(state); free(ws);
}

static void test_point_softmax(void **st) { (void)st; run_point("softmax"); }
static void test_point_laplace(void **st) { (void)st; run_point("laplace"); }
static void test_point_hmoe_ll(void **st) { (void)st; run_point("hmoe_ll"); }
static void test_point_hmoe_sl(void **st) { (void)st; run_point("hmoe_sl"); }
static void test_point_attention_dense(void **st) { (void)st; run_point("attention_dense"); }
static void test_point_attention_k2(void **st) { (void)st; run_point("attention_k2"); }

int main(void)
{
    /* Tiny shapes: extra threads only add scheduling overhead on a loaded machine. */
    nn_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_latent_weighted),
        cmocka_unit_test(test_latent_unweighted_rc_damping),
        cmocka_unit_test(test_latent_softmax_rc),
        cmocka_unit_test(test_conv_weighted_rc_damping),
        cmocka_unit_test(test_conv_unweighted),
        cmocka_unit_test(test_conv_weighted_damping),
        cmocka_unit_test(test_conv1x1_softmax),
        cmocka_unit_test(test_rc_labels_ties),
        cmocka_unit_test(test_point_softmax),
        cmocka_unit_test(test_point_laplace),
        cmocka_unit_test(test_point_hmoe_ll),
        cmocka_unit_test(test_point_hmoe_sl),
        cmocka_unit_test(test_point_attention_dense),
        cmocka_unit_test(test_point_attention_k2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
