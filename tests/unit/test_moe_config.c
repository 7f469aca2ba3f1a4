/* model.moe YAML: the heat-recipe example, defaults, point gates, errors. */
#include "testutil.h"

#include <string.h>

#include "core/log.h"
#include "core/yaml_tree.h"
#include "moe/moe_config.h"

static int parse(const char *text, moe_config *c)
{
    ynode *root = yaml_tree_load_string(text, "test.yaml");
    assert_non_null(root);
    ynode *model = yaml_tree_get(root, "model");
    int rc = moe_config_parse(model ? yaml_tree_get(model, "moe") : NULL, "test.yaml", c);
    yaml_tree_free(root);
    return rc;
}

static void test_heat_recipe(void **st)
{
    (void)st;
    moe_config c;
    assert_int_equal(parse(
        "model:\n"
        "  moe: {gate: latent, experts: 3, k: 1, weighted: false, rc_loss: {enabled: true, quantile: 0.3},\n"
        "        damping: {enabled: true, factor: 0.0}, noise: false,\n"
        "        aux: {importance: 0, load: 0, switch: 0, entropy: 0,\n"
        "              similarity: {beta_same: 0, beta_diff: 0, pairs: 4096}},\n"
        "        capacity_factor: null,\n"
        "        hmoe: {groups: 2, experts_per_group: 4, k_outer: 1, k_inner: 2, levels: LL}}\n",
        &c), SM_OK);
    assert_int_equal(c.family, MOE_FAMILY_SMOE);
    assert_int_equal(c.experts, 3);
    assert_int_equal(c.weighted, 0);
    assert_int_equal(c.rc_enabled, 1);
    assert_float_equal(c.rc_quantile, 0.3, 1e-7);
    assert_int_equal(c.damping_enabled, 1);
    assert_float_equal(c.capacity_factor, 0, 0);
    smoe_shape s;
    assert_int_equal(moe_config_smoe_shape(&c, 4, 1, 64, 64, PAD_ZERO, &s), SM_OK);
    assert_int_equal(s.gate, SMOE_GATE_LATENT);
    assert_int_equal(s.n_experts, 3);
    assert_int_equal(s.rc_loss, 1);
    assert_int_equal(s.weighted, 0);
    pmoe_shape p;
    assert_int_equal(moe_config_pmoe_shape(&c, 4, 1, 64, 64, 1, PAD_ZERO, &p), SM_ERR_USAGE);
}

static void test_defaults_and_point(void **st)
{
    (void)st;
    moe_config c;
    assert_int_equal(parse("model: {}\n", &c), SM_OK);
    assert_string_equal(c.gate, "latent");
    assert_int_equal(c.weighted, 1);
    assert_float_equal(c.rc_quantile, 0.7, 1e-7);
    assert_int_equal(c.noise, 0);
    assert_int_equal(parse("model:\n  moe: {gate: hmoe, hmoe: {groups: 3, experts_per_group: 2, levels: SL},\n"
                           "    capacity_factor: 1.5, aux: {load: 0.01, similarity: {beta_same: 1, pairs: 64}}}\n",
                           &c), SM_OK);
    assert_int_equal(c.family, MOE_FAMILY_POINT);
    assert_int_equal(c.experts, 6);
    assert_int_equal(c.noise, 1);
    pmoe_shape p;
    assert_int_equal(moe_config_pmoe_shape(&c, 2, 4, 8, 8, 2, PAD_PERIODIC_LON, &p), SM_OK);
    assert_int_equal(p.gate, PMOE_HMOE);
    assert_int_equal(p.outer_kind, MOE_GATE_SOFTMAX);
    assert_int_equal(p.inner_kind, MOE_GATE_LAPLACE);
    assert_int_equal(p.sim_pairs, 64);
    pmoe_aux_weights a = moe_config_pmoe_aux(&c);
    assert_float_equal(a.load, 0.01, 1e-7);
    assert_float_equal(a.sim_same, 1, 0);
}

static void test_errors(void **st)
{
    (void)st;
    moe_config c;
    assert_int_equal(parse("model:\n  moe: {gate: latent, bogus: 1}\n", &c), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "test.yaml:2: model.moe.bogus: unknown key"));
    assert_int_equal(parse("model:\n  moe:\n    rc_loss: {enabled: maybe}\n", &c), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "model.moe.rc_loss.enabled"));
    assert_int_equal(parse("model:\n  moe: {rc_loss: {quantile: 1.5}}\n", &c), SM_ERR_USAGE);
    assert_int_equal(parse("model:\n  moe: {experts: 2, k: 3}\n", &c), SM_ERR_USAGE);
    assert_int_equal(parse("model:\n  moe: {gate: dense}\n", &c), SM_ERR_USAGE);
    assert_int_equal(parse("model:\n  moe: {gate: hmoe, hmoe: {levels: LS}}\n", &c), SM_ERR_USAGE);
    assert_int_equal(parse("model:\n  moe: {aux: {similarity: {pairs: many}}}\n", &c), SM_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heat_recipe),
        cmocka_unit_test(test_defaults_and_point),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
