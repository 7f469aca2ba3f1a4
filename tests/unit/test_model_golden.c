/* The cnn, resnet and unet architectures (and a cnn with an SMoE last layer) against PyTorch (tests/golden/model_<arch>.nc from
 * scripts/golden/make_golden_models.py): the same config builds the same tensors (names and
 * shapes); with the golden weights, a training-mode forward, the backward of sum(y * gy) and the
 * BatchNorm running statistics match per tensor: ||c - torch||_2 <= 1e-4 ||torch||_2 + 1e-6. */
#include "model_testlib.h"

#include <netcdf.h>

static void golden_check(const char *file, const char *var, const float *c, size_t n)
{
    size_t got = 0;
    float *t = testutil_golden_load(file, var, &got, NULL, NULL);
    if (got != n) fail_msg("%s: %s has %zu elements, the model %zu", file, var, got, n);
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)c[i] - t[i];
        num += d * d;
        den += (double)t[i] * t[i];
    }
    free(t);
    if (!(sqrt(num) <= 1e-4 * sqrt(den) + 1e-6))
        fail_msg("golden %s/%s: ||c - torch|| = %.3g, ||torch|| = %.3g", file, var, sqrt(num), sqrt(den));
}

static int att_int(int nc, const char *name)
{
    int v = 0;
    if (nc_get_att_int(nc, NC_GLOBAL, name, &v) != NC_NOERR) fail_msg("golden: no attribute %s", name);
    return v;
}

static void run_golden(const char *arch)
{
    char file[64], path[1024];
    snprintf(file, sizeof file, "model_%s.nc", arch);
    snprintf(path, sizeof path, "%s/tests/golden/%s", SMOECAST_SOURCE_DIR, file);
    int nc;
    if (nc_open(path, NC_NOWRITE, &nc) != NC_NOERR) fail_msg("cannot open %s", path);
    size_t len;
    assert_int_equal(nc_inq_attlen(nc, NC_GLOBAL, "overrides", &len), NC_NOERR);
    char *ovs = calloc(len + 1, 1);
    nc_get_att_text(nc, NC_GLOBAL, "overrides", ovs);
    const int c_in = att_int(nc, "c_in"), c_out = att_int(nc, "c_out"), h = att_int(nc, "nlat"),
              w = att_int(nc, "nlon"), batch = att_int(nc, "batch"), periodic = att_int(nc, "periodic_lon");
    nc_close(nc);
    const char *ov[16];
    int n_ov = 0;
    for (char *tok = strtok(ovs, ";"); tok && n_ov < 16; tok = strtok(NULL, ";")) ov[n_ov++] = tok;
    sm_model *m = mt_build(n_ov, ov, c_in, c_out, h, w, periodic, batch);
    free(ovs);

    /* golden weights into the store, by name; every tensor must exist in the golden file */
    param_store *ps = model_params(m);
    for (int id = 0; id < param_store_count(ps); id++) {
        const param_view *v = param_store_view(ps, id);
        char var[256];
        snprintf(var, sizeof var, "p_%s", v->name);
        size_t n = 0;
        float *t = testutil_golden_load(file, var, &n, NULL, NULL);
        if (n != v->numel) fail_msg("%s: %s has %zu elements, the model's tensor %zu", file, var, n, v->numel);
        memcpy(param_data(ps, id), t, n * sizeof(float));
        free(t);
    }
    size_t nin = mt_in_floats(m), nout = mt_out_floats(m), n = 0;
    float *x = testutil_golden_load(file, "x", &n, NULL, NULL);
    assert_int_equal(n, nin);
    memcpy(model_input(m), x, nin * sizeof(float));
    free(x);
    model_zero_grad(m);
    rng_t r;
    rng_seed(&r, 1, 1);
    assert_int_equal(model_forward(m, 1, &r), SM_OK);
    golden_check(file, "y", model_output(m), nout);
    float *gy = testutil_golden_load(file, "gy", &n, NULL, NULL);
    assert_int_equal(n, nout);
    memcpy(model_output_grad(m), gy, nout * sizeof(float));
    free(gy);
    assert_int_equal(model_backward(m), SM_OK);
    int checked = 0;
    for (int id = 0; id < param_store_count(ps); id++) {
        const param_view *v = param_store_view(ps, id);
        char var[256];
        if (v->flags & PARAM_TRAINABLE) {
            snprintf(var, sizeof var, "g_%s", v->name);
            golden_check(file, var, param_grad(ps, id), v->numel);
        } else {
            snprintf(var, sizeof var, "r_%s", v->name);
            golden_check(file, var, param_data(ps, id), v->numel);
        }
        checked++;
    }
    assert_true(checked >= 5);
    model_free(m);
}

static void test_golden_cnn(void **state)
{
    (void)state;
    run_golden("cnn");
}

static void test_golden_resnet(void **state)
{
    (void)state;
    run_golden("resnet");
}

static void test_golden_unet(void **state)
{
    (void)state;
    run_golden("unet");
}

/* A CNN whose last conv is an SMoE layer (conv gate, weighted top-2 of 4 experts) + bias. */
static void test_golden_cnn_smoe(void **state)
{
    (void)state;
    run_golden("cnn_smoe");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_cnn),
        cmocka_unit_test(test_golden_resnet),
        cmocka_unit_test(test_golden_unet),
        cmocka_unit_test(test_golden_cnn_smoe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
