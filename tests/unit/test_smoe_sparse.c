/* SMoE sparse compute against a dense path built from the NN core: all N expert channels by
 * conv2d (forward and backward), routing by a plain argmax loop, straight-through gradients
 * written out from METHODS.md section 2. N = 8, k = 1 and 2, weighted and unweighted, every
 * padding mode and gate, including routings where some experts own no pixel at all; output,
 * input gradient, expert-weight gradient and gate gradient are compared. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "moe/smoe.h"
#include "moe/smoe_expert.h"
#include "nn/conv2d.h"
#include "nn/threads.h"

typedef struct {
    float *y, *dx, *dp;
    int32_t *idx;
} result;

static void result_alloc(result *r, size_t ny, size_t nx, size_t np)
{
    r->y = calloc(ny, sizeof(float));
    r->dx = calloc(nx, sizeof(float));
    r->dp = calloc(np, sizeof(float));
    r->idx = calloc(ny, sizeof(int32_t));
}

static void result_free(result *r)
{
    free(r->y);
    free(r->dx);
    free(r->dp);
    free(r->idx);
}

/* Dense path: R by the gate (latent copy or conv2d), E = conv2d(x) over all N experts,
 * top-k by repeated argmax (ties to the lower index), y = R_sel * E_sel or E_sel;
 * dE_sel = g * (R_sel or 1) through conv2d_backward, dR_sel = g * (E_sel or 1) into the gate. */
static void dense_path(const smoe_shape *s, const float *x, const float *params, const float *gy,
                       result *r)
{
    const int B = s->batch, N = s->n_experts, k = s->k;
    const size_t hw = (size_t)s->h * s->w, nhw = (size_t)N * hw;
    moe_param_info info[2];
    smoe_params(s, info);
    float *R = malloc((size_t)B * nhw * sizeof(float));
    float *E = malloc((size_t)B * nhw * sizeof(float));
    float *dE = calloc((size_t)B * nhw, sizeof(float));
    float *dR = calloc((size_t)B * nhw, sizeof(float));
    conv2d_shape es = {B, s->c_in, s->h, s->w, N, s->kernel, 1, s->pad, 0};
    int gk = s->gate == SMOE_GATE_CONV1X1 ? 1 : 3;
    conv2d_shape gs = {B, s->c_in, s->h, s->w, N, gk, 1, s->pad, 0};
    size_t nws = conv2d_workspace_floats(&es), gws = conv2d_workspace_floats(&gs);
    float *ws = malloc((nws > gws ? nws : gws) * sizeof(float));
    if (s->gate == SMOE_GATE_LATENT) {
        for (int b = 0; b < B; b++) memcpy(R + (size_t)b * nhw, params + info[1].offset, nhw * sizeof(float));
    } else {
        conv2d_forward(&gs, R, x, params + info[1].offset, NULL, ws);
    }
    conv2d_forward(&es, E, x, params + info[0].offset, NULL, ws);
    for (int b = 0; b < B; b++)
        for (size_t p = 0; p < hw; p++) {
            int used[64] = {0};
            for (int j = 0; j < k; j++) {
                int best = -1;
                for (int n = 0; n < N; n++) {
                    if (used[n]) continue;
                    if (best < 0 || R[(size_t)b * nhw + (size_t)n * hw + p] >
                                        R[(size_t)b * nhw + (size_t)best * hw + p])
                        best = n;
                }
                used[best] = 1;
                const size_t o = ((size_t)b * k + j) * hw + p, q = (size_t)b * nhw + (size_t)best * hw + p;
                r->idx[o] = best;
                r->y[o] = s->weighted ? R[q] * E[q] : E[q];
                dE[q] = gy[o] * (s->weighted ? R[q] : 1.0f);
                dR[q] = gy[o] * (s->weighted ? E[q] : 1.0f);
            }
        }
    conv2d_backward(&es, r->dx, r->dp + info[0].offset, NULL, dE, x, params + info[0].offset, ws);
    if (s->gate == SMOE_GATE_LATENT) {
        for (int b = 0; b < B; b++)
            for (size_t i = 0; i < nhw; i++) r->dp[info[1].offset + i] += dR[(size_t)b * nhw + i];
    } else {
        conv2d_backward(&gs, r->dx, r->dp + info[1].offset, NULL, dR, x, params + info[1].offset, ws);
    }
    free(R); free(E); free(dE); free(dR); free(ws);
}

static void sparse_path(const smoe_shape *s, const float *x, const float *params, const float *gy,
                        result *r)
{
    float *state = calloc(smoe_state_floats(s), sizeof(float));
    float *ws = calloc(smoe_workspace_floats(s), sizeof(float));
    size_t ny = (size_t)s->batch * s->k * s->h * s->w;
    smoe_forward(s, r->y, x, params, state, ws, NULL);
    memcpy(r->idx, smoe_state(s, state).idx, ny * sizeof(int32_t));
    smoe_backward(s, r->dx, r->dp, gy, NULL, x, params, state, ws);
    free(state);
    free(ws);
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* Runs one case; `dead` experts get a gate value far below the others (latent gate: everywhere;
 * conv gate: a large negative weight on a positive input channel is not possible, so the
 * conv cases only check the comparison). Returns through cmocka assertions. */
static void check_case_nk(int B, int C, int H, int W, int N, int kernel, int k, int weighted,
                          int pad, int gate, const int *dead, int ndead, uint64_t seed)
{
    smoe_shape s;
    memset(&s, 0, sizeof s);
    s.batch = B; s.c_in = C; s.h = H; s.w = W; s.n_experts = N; s.k = k;
    smoe_shape_defaults(&s);
    s.kernel = kernel;
    s.weighted = weighted;
    s.pad = (pad_mode)pad;
    s.gate = (smoe_gate_type)gate;
    assert_int_equal(smoe_check(&s), SM_OK);
    const size_t nx = (size_t)B * C * H * W, ny = (size_t)B * k * H * W, np = smoe_param_floats(&s);
    const size_t hw = (size_t)H * W;
    moe_param_info info[2];
    smoe_params(&s, info);
    float *x = malloc(nx * sizeof(float)), *gy = malloc(ny * sizeof(float));
    float *params = malloc(np * sizeof(float));
    rng_t rng;
    rng_seed(&rng, seed, 5);
    smoe_init(&s, params, &rng);
    for (size_t i = 0; i < nx; i++) x[i] = (float)rng_normal(&rng);
    for (size_t i = 0; i < ny; i++) gy[i] = (float)rng_normal(&rng);
    for (int d = 0; d < ndead; d++)
        for (size_t p = 0; p < hw; p++) params[info[1].offset + (size_t)dead[d] * hw + p] = -50.0f;
    result dn, sp;
    result_alloc(&dn, ny, nx, np);
    result_alloc(&sp, ny, nx, np);
    dense_path(&s, x, params, gy, &dn);
    sparse_path(&s, x, params, gy, &sp);

    assert_memory_equal(dn.idx, sp.idx, ny * sizeof(int32_t));
    /* the dead experts own no pixel, every live one owns some (k = 1) */
    int owns[64] = {0};
    for (size_t i = 0; i < ny; i++) owns[sp.idx[i]]++;
    for (int d = 0; d < ndead; d++) assert_int_equal(owns[dead[d]], 0);
    const double tol = 2e-5;
    double ey = testutil_rel_l2(sp.y, dn.y, ny), ex = testutil_rel_l2(sp.dx, dn.dx, nx);
    double ew = testutil_rel_l2(sp.dp, dn.dp, info[0].count);
    double eg = testutil_rel_l2(sp.dp + info[1].offset, dn.dp + info[1].offset, info[1].count);
    if (!(ey < tol && ex < tol && ew < tol && eg < tol))
        fail_msg("B%d C%d %dx%d N%d K%d k%d weighted %d pad %d gate %d: rel err y %.3g dx %.3g "
                 "dW %.3g dgate %.3g", B, C, H, W, N, kernel, k, weighted, pad, gate, ey, ex, ew, eg);
    assert_true(max_abs(sp.dx, nx) > 0 && max_abs(sp.dp, info[0].count) > 0);
    /* an expert that owns no pixel gets exactly zero weight gradient */
    for (int d = 0; d < ndead; d++) {
        const size_t per = (size_t)C * s.kernel * s.kernel;
        assert_true(max_abs(sp.dp + info[0].offset + (size_t)dead[d] * per, per) == 0.0);
    }
    result_free(&dn);
    result_free(&sp);
    free(x); free(gy); free(params);
}

/* N = 8 experts, 3 x 3 filters */
static void check_case(int B, int C, int H, int W, int k, int weighted, int pad, int gate,
                       const int *dead, int ndead, uint64_t seed)
{
    check_case_nk(B, C, H, W, 8, 3, k, weighted, pad, gate, dead, ndead, seed);
}

/* Latent gate (the shared-routing path), N = 8, k = 1 and 2, weighted and unweighted, every pad
 * mode, with two / three experts that own no pixel. C = 13 and W = 11 exercise the scalar
 * edges of the 8 x 8 block transposes, C = 16 and W = 20 the blocks. */
static void test_latent_matches_dense(void **st)
{
    (void)st;
    const int dead1[2] = {3, 7}, dead2[3] = {0, 5, 6};
    for (int k = 1; k <= 2; k++)
        for (int weighted = 0; weighted <= 1; weighted++)
            for (int pad = 0; pad < 3; pad++) {
                check_case(3, 13, 7, 11, k, weighted, pad, SMOE_GATE_LATENT, dead1, 2, 10 + pad);
                check_case(2, 16, 9, 20, k, weighted, pad, SMOE_GATE_LATENT, dead2, 3, 20 + pad);
            }
}

/* Without dead experts (every expert owns pixels) and a single sample. */
static void test_latent_all_experts(void **st)
{
    (void)st;
    for (int k = 1; k <= 2; k++) {
        check_case(1, 8, 6, 17, k, 1, PAD_PERIODIC_LON, SMOE_GATE_LATENT, NULL, 0, 30 + k);
        check_case(4, 9, 5, 8, k, 0, PAD_ZERO, SMOE_GATE_LATENT, NULL, 0, 40 + k);
    }
}

/* 5 x 5 filters on a grid narrower than the filter (padding wraps / clamps more than once), and
 * more than 16 experts (the few-channel input gradient's expert table holds 16): both input
 * gradient kernels (c_in < 16 channel-major, c_in >= 16 pixel-major) in every pad mode. */
static void test_wide_kernel_and_many_experts(void **st)
{
    (void)st;
    const int dead[1] = {1};
    for (int pad = 0; pad < 3; pad++) {
        check_case_nk(2, 3, 4, 3, 4, 5, 2, 1, pad, SMOE_GATE_LATENT, NULL, 0, 80 + pad);
        check_case_nk(2, 16, 4, 3, 4, 5, 1, 0, pad, SMOE_GATE_LATENT, dead, 1, 83 + pad);
        check_case_nk(2, 5, 6, 9, 20, 3, 2, 1, pad, SMOE_GATE_LATENT, dead, 1, 86 + pad);
        check_case_nk(2, 5, 6, 9, 20, 3, 1, 0, pad, SMOE_GATE_CONV, NULL, 0, 89 + pad);
    }
}

/* Input-dependent gates: routing differs per sample (per-sample top-k path). */
static void test_conv_gates_match_dense(void **st)
{
    (void)st;
    for (int k = 1; k <= 2; k++)
        for (int pad = 0; pad < 3; pad++) {
            check_case(3, 13, 7, 11, k, 1, pad, SMOE_GATE_CONV, NULL, 0, 50 + pad);
            check_case(2, 16, 9, 20, k, 0, pad, SMOE_GATE_CONV1X1, NULL, 0, 60 + pad);
        }
}

/* Large enough for the parallel kernels (2 threads, samples and row bands split over them). */
static void test_threaded_matches_dense(void **st)
{
    (void)st;
    const int dead[1] = {2};
    nn_set_threads(2);
    check_case(4, 16, 24, 32, 2, 1, PAD_PERIODIC_LON, SMOE_GATE_LATENT, dead, 1, 70);
    check_case(1, 16, 64, 64, 2, 1, PAD_REPLICATE, SMOE_GATE_LATENT, dead, 1, 71); /* row bands */
    check_case(2, 4, 96, 96, 1, 0, PAD_PERIODIC_LON, SMOE_GATE_LATENT, dead, 1, 73);   /* few channels */
    check_case(3, 16, 24, 32, 1, 0, PAD_ZERO, SMOE_GATE_CONV, NULL, 0, 72);
    nn_set_threads(1);
}

/* smoe_topk: descending order, ties to the lower index; with a NaN the k indices stay
 * distinct and valid. */
static void test_topk(void **st)
{
    (void)st;
    const size_t hw = 3;
    /* pixel 0: ties; pixel 1: distinct; pixel 2: NaN first */
    const float r[5 * 3] = {1, 0, NAN, 2, 5, 1, 2, 4, 3, 1, 3, 3, 0, 1, 3};
    int32_t idx[3 * 3];
    smoe_topk(5, 3, hw, hw, r, idx);
    assert_int_equal(idx[0], 1); assert_int_equal(idx[3], 2); assert_int_equal(idx[6], 0);
    assert_int_equal(idx[1], 1); assert_int_equal(idx[4], 2); assert_int_equal(idx[7], 3);
    assert_true(idx[2] >= 0 && idx[2] < 5 && idx[5] >= 0 && idx[5] < 5 && idx[8] >= 0 && idx[8] < 5);
    assert_true(idx[2] != idx[5] && idx[2] != idx[8] && idx[5] != idx[8]);
}

int main(void)
{
    nn_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_latent_matches_dense),
        cmocka_unit_test(test_latent_all_experts),
        cmocka_unit_test(test_conv_gates_match_dense),
        cmocka_unit_test(test_wide_kernel_and_many_experts),
        cmocka_unit_test(test_threaded_matches_dense),
        cmocka_unit_test(test_topk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
