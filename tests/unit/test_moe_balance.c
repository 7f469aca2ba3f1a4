/* Balancing losses: finite-difference gradients and known values. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "moe/moe_balance.h"

typedef double (*loss_fn)(const moe_layout *l, float *a, float *b, float *da, float *db);

static moe_layout L1 = {3, 5, 4}; /* 3 samples, 5 experts, 4 pixels */
static moe_layout L2 = {12, 4, 1}; /* 12 tokens, 4 experts */

static float noise_eps[256];
static int load_k = 2;

static double f_importance(const moe_layout *l, float *a, float *b, float *da, float *db)
{
    (void)b; (void)db;
    return moe_importance_cv2(l, a, da, 1.0f);
}

static double f_switch(const moe_layout *l, float *a, float *b, float *da, float *db)
{
    (void)b; (void)db;
    return moe_switch_loss(l, a, da, 1.0f);
}

static double f_entropy(const moe_layout *l, float *a, float *b, float *da, float *db)
{
    (void)b; (void)db;
    return moe_entropy_loss(l, a, da, 1.0f);
}

/* a = clean, b = std (softplus-positive); noisy = clean + eps * std recomputed each call. */
static double f_load(const moe_layout *l, float *a, float *b, float *da, float *db)
{
    size_t n = (size_t)l->outer * l->n * l->inner;
    float noisy[256];
    for (size_t i = 0; i < n; i++) noisy[i] = a[i] + noise_eps[i] * b[i];
    return moe_load_cv2(l, load_k, a, noisy, b, 0, da, db, 1.0f);
}

static double f_agree(const moe_layout *l, float *a, float *b, float *da, float *db)
{
    (void)b; (void)db;
    return smoe_spatial_agreement(l->outer, l->n, l->inner, a, da, 1.0f);
}

static void fd(loss_fn f, const moe_layout *l, int positive, int use_b, uint64_t seed)
{
    size_t n = (size_t)l->outer * l->n * l->inner;
    float a[256], b[256], da[256] = {0}, db[256] = {0};
    rng_t r;
    rng_seed(&r, seed, 3);
    for (size_t i = 0; i < n; i++) {
        a[i] = positive ? (float)(0.05 + rng_uniform(&r)) : (float)rng_normal(&r);
        b[i] = (float)(0.3 + rng_uniform(&r));
        noise_eps[i] = (float)rng_normal(&r);
    }
    if (positive == 2) { /* rows of probabilities */
        for (int o = 0; o < l->outer; o++)
            for (size_t i = 0; i < l->inner; i++) {
                double s = 0;
                for (int e = 0; e < l->n; e++) s += a[((size_t)o * l->n + e) * l->inner + i];
                for (int e = 0; e < l->n; e++) a[((size_t)o * l->n + e) * l->inner + i] /= (float)s;
            }
    }
    double L0 = f(l, a, b, da, db);
    assert_true(isfinite(L0));
    const float eps = 1e-3f;
    double num = 0, den = 0;
    for (int which = 0; which < (use_b ? 2 : 1); which++) {
        float *x = which ? b : a, *g = which ? db : da;
        for (size_t i = 0; i < n; i++) {
            float keep = x[i];
            x[i] = keep + eps;
            double lp = f(l, a, b, NULL, NULL);
            x[i] = keep - eps;
            double lm = f(l, a, b, NULL, NULL);
            x[i] = keep;
            double fdv = (lp - lm) / (2 * eps);
            num += (fdv - g[i]) * (fdv - g[i]);
            den += fdv * fdv;
        }
    }
    if (!(sqrt(num) <= 2e-3 * sqrt(den) + 1e-6))
        fail_msg("FD mismatch: %.3g vs %.3g", sqrt(num), sqrt(den));
}

static void test_importance(void **st) { (void)st; fd(f_importance, &L1, 1, 0, 1); fd(f_importance, &L2, 1, 0, 2); }
static void test_entropy(void **st) { (void)st; fd(f_entropy, &L1, 2, 0, 3); fd(f_entropy, &L2, 2, 0, 4); }
static void test_switch(void **st) { (void)st; fd(f_switch, &L2, 2, 0, 5); }
static void test_agreement(void **st) { (void)st; fd(f_agree, &L1, 0, 0, 6); }

static void test_load(void **st)
{
    (void)st;
    for (load_k = 1; load_k <= 3; load_k++) {
        fd(f_load, &L1, 0, 1, 10 + load_k);
        fd(f_load, &L2, 0, 1, 20 + load_k);
    }
    load_k = 2;
}

static void test_values(void **st)
{
    (void)st;
    /* uniform importance: CV^2 = 0; one-hot: var/mean^2 = (1/(n-1) * ...) */
    double v[4] = {1, 1, 1, 1}, w[4] = {4, 0, 0, 0};
    assert_float_equal(moe_cv2(v, 4, NULL), 0, 1e-12);
    /* mean 1, unbiased var = (9 + 1 + 1 + 1) / 3 = 4 */
    assert_float_equal(moe_cv2(w, 4, NULL), 4.0 / (1 + 1e-10), 1e-9);
    /* entropy loss of identical uniform rows is 0; of distinct one-hot rows covering all
     * experts it is -log N */
    moe_layout l = {4, 4, 1};
    float p[16] = {0};
    for (int t = 0; t < 4; t++) p[t * 4 + t] = 1;
    assert_float_equal(moe_entropy_loss(&l, p, NULL, 1), -log(4.0), 1e-9);
    /* switch: all tokens on expert 0 with prob 1 -> N * 1 * 1 = N */
    float q[16] = {0};
    for (int t = 0; t < 4; t++) q[t * 4] = 1;
    assert_float_equal(moe_switch_loss(&l, q, NULL, 1), 4.0, 1e-9);
    /* a latent gate (same R for every sample) has zero spatial disagreement */
    float r[2 * 3 * 5];
    for (int i = 0; i < 15; i++) r[i] = r[15 + i] = (float)i;
    assert_float_equal(smoe_spatial_agreement(2, 3, 5, r, NULL, 1), 0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_importance), cmocka_unit_test(test_entropy),
        cmocka_unit_test(test_switch),     cmocka_unit_test(test_agreement),
        cmocka_unit_test(test_load),       cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
