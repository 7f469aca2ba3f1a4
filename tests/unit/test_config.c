/* Config loading: defaults, overrides, every error case, round trip, path resolution. */
#include "testutil.h"

#include "core/config.h"
#include "core/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_dir[512];

static const char *write_file(const char *name, const char *text)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads `text` as a config file and expects failure with `status` and a message containing `needle`. */
static void expect_error(const char *text, int status, const char *needle)
{
    const char *path = write_file("bad.yaml", text);
    sm_config *cfg = NULL;
    sm_clear_error();
    int st = config_load(path, 0, NULL, &cfg);
    assert_int_equal(st, status);
    assert_null(cfg);
    if (!strstr(sm_last_error(), needle)) fail_msg("message '%s' lacks '%s'", sm_last_error(), needle);
}

static int setup(void **state)
{
    (void)state;
    testutil_tmpdir("config", g_dir, sizeof g_dir);
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    sm_config *cfg;
    assert_int_equal(config_load(NULL, 0, NULL, &cfg), SM_OK);
    assert_string_equal(cfg->model.architecture, "cnn");
    assert_int_equal(cfg->model.channels.n, 4);
    assert_true(cfg->model.channels.items[0] == 64.0);
    assert_true(fabs(cfg->training.lr - 1e-3) < 1e-15);
    assert_true(isnan(cfg->model.moe.capacity_factor));
    assert_true(fabs(cfg->model.moe.rc_loss.quantile - 0.7) < 1e-15);
    assert_int_equal(cfg->model.moe.weighted, 1);
    assert_int_equal(config_is_set(cfg, "training.lr"), 0);
    /* data.dataset is required: "???" until given. */
    assert_int_equal(config_require(cfg, "data"), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "missing required key 'data.dataset'"));
    assert_int_equal(config_require(cfg, "training"), SM_OK);
    config_free(cfg);
}

static void test_file_and_overrides(void **state)
{
    (void)state;
    const char *path = write_file("ok.yaml",
                                  "data:\n  dataset: ../data/x.nc\n  prognostic: [t2m]\n"
                                  "training:\n  lr: 3e-4\n  epochs: 5\n"
                                  "model:\n  moe: {gate: latent, experts: 3, k: 1, weighted: false,\n"
                                  "        rc_loss: {enabled: true, quantile: 0.3}, capacity_factor: null}\n");
    char *ov[] = {"training.lr=1e-2", "model.moe.experts=8", "model.channels=[8, 16]", "model.moe.capacity_factor=1.5"};
    sm_config *cfg;
    assert_int_equal(config_load(path, 4, ov, &cfg), SM_OK);
    assert_true(fabs(cfg->training.lr - 1e-2) < 1e-15);
    assert_int_equal(cfg->training.epochs, 5);
    assert_int_equal(cfg->model.moe.experts, 8);
    assert_int_equal(cfg->model.moe.weighted, 0);
    assert_true(fabs(cfg->model.moe.rc_loss.quantile - 0.3) < 1e-15);
    assert_true(fabs(cfg->model.moe.capacity_factor - 1.5) < 1e-15);
    assert_int_equal(cfg->model.channels.n, 2);
    assert_int_equal(cfg->data.prognostic.n, 1);
    assert_string_equal(cfg->data.prognostic.items[0], "t2m");
    /* Relative paths resolve from the config file's directory. */
    char expect[1200];
    snprintf(expect, sizeof expect, "%s/../data/x.nc", g_dir);
    assert_non_null(strstr(cfg->data.dataset, expect));
    assert_int_equal(cfg->data.dataset[0], '/');
    assert_int_equal(config_require(cfg, ""), SM_ERR_USAGE); /* ingest.output is still missing */
    assert_int_equal(config_require(cfg, "data"), SM_OK);
    assert_int_equal(config_is_set(cfg, "training.lr"), 1);
    config_free(cfg);
}

static void test_round_trip(void **state)
{
    (void)state;
    char *ov[] = {"data.dataset=x.nc", "training.lr=0.1", "model.moe.capacity_factor=1.25", "run.name=with \"quotes\"",
                  "data.forcing=[hour_of_day, day_of_year]", "training.eps=1.2345678901234567e-9"};
    sm_config *a, *b;
    assert_int_equal(config_load(NULL, 6, ov, &a), SM_OK);
    char *ya = config_to_yaml(a);
    const char *path = write_file("round.yaml", ya);
    assert_int_equal(config_load(path, 0, NULL, &b), SM_OK);
    char *yb = config_to_yaml(b);
    assert_string_equal(ya, yb);
    assert_true(b->training.eps == a->training.eps);
    assert_string_equal(b->run.name, "with \"quotes\"");
    free(ya);
    free(yb);
    config_free(a);
    config_free(b);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("training:\n  lr_sheduler: cosine\n", SM_ERR_USAGE,
                 "bad.yaml:2: unknown key 'training.lr_sheduler' (did you mean 'training.lr_scheduler'?)");
    expect_error("trainig:\n  lr: 1\n", SM_ERR_USAGE, "bad.yaml:1: unknown key 'trainig' (did you mean 'training'?)");
    expect_error("training:\n  lr: fast\n", SM_ERR_USAGE, "bad.yaml:2: training.lr expects a number, got 'fast'");
    expect_error("training:\n  epochs: 2.5\n", SM_ERR_USAGE, "training.epochs expects an integer");
    expect_error("training:\n  epochs: 0\n", SM_ERR_USAGE, "training.epochs must be between 1 and");
    expect_error("model:\n  batchnorm: maybe\n", SM_ERR_USAGE, "model.batchnorm expects true or false");
    expect_error("model:\n  activation: swish\n", SM_ERR_USAGE, "model.activation must be one of relu|leaky_relu|elu");
    expect_error("training: 3\n", SM_ERR_USAGE, "'training' is a section and expects a mapping");
    expect_error("model:\n  channels: [a, b]\n", SM_ERR_USAGE, "model.channels expects a list of numbers");
    expect_error("training:\n  lr: [1, 2]\n", SM_ERR_USAGE, "training.lr expects a number, got 'a list'");
    expect_error("training:\n  lr: 1\n  lr: 2\n", SM_ERR_USAGE, "bad.yaml:3: duplicate key 'lr'");
    expect_error("training: [\n", SM_ERR_USAGE, "invalid YAML");
    expect_error("- a\n- b\n", SM_ERR_USAGE, "must be a YAML mapping");
    sm_config *cfg = NULL;
    assert_int_equal(config_load("/nonexistent/x.yaml", 0, NULL, &cfg), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "/nonexistent/x.yaml"));
}

static void test_override_errors(void **state)
{
    (void)state;
    sm_config *cfg = NULL;
    char *bad_key[] = {"training.lr_sheduler=cosine"};
    assert_int_equal(config_load(NULL, 1, bad_key, &cfg), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "override 'training.lr_sheduler=cosine': unknown key"));
    assert_non_null(strstr(sm_last_error(), "did you mean 'training.lr_scheduler'"));
    char *bad_value[] = {"model.moe.k=two"};
    assert_int_equal(config_load(NULL, 1, bad_value, &cfg), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "model.moe.k expects an integer"));
    assert_true(config_is_override("a.b=1"));
    assert_false(config_is_override("--out=x"));
    assert_false(config_is_override("file.nc"));
    assert_false(config_is_override("=1"));
}

static void test_required_mark(void **state)
{
    (void)state;
    const char *path = write_file("req.yaml", "data:\n  dataset: ???\n");
    sm_config *cfg;
    assert_int_equal(config_load(path, 0, NULL, &cfg), SM_OK);
    assert_int_equal(config_require(cfg, "data"), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "data.dataset"));
    config_free(cfg);
}

static void test_doc_lists_every_key(void **state)
{
    (void)state;
    char *md = config_doc_markdown();
    sm_config *cfg;
    assert_int_equal(config_load(NULL, 0, NULL, &cfg), SM_OK);
    char *yaml = config_to_yaml(cfg);
    assert_non_null(strstr(md, "`training.lr_scheduler`"));
    assert_non_null(strstr(md, "`model.moe.hmoe.levels`"));
    /* docs/config.md in the tree must be the generated text. */
    char path[1024];
    FILE *f = fopen(testutil_source_path("docs/config.md", path, sizeof path), "r");
    if (!f) fail_msg("docs/config.md missing: regenerate with 'smoecast config --doc > docs/config.md'");
    size_t len = strlen(md);
    char *disk = calloc(len + 2, 1);
    size_t got = fread(disk, 1, len + 1, f);
    fclose(f);
    if (got != len || memcmp(disk, md, len) != 0)
        fail_msg("docs/config.md is stale: regenerate with 'smoecast config --doc > docs/config.md'");
    free(disk);
    free(md);
    free(yaml);
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),      cmocka_unit_test(test_file_and_overrides),
        cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_errors),
        cmocka_unit_test(test_override_errors), cmocka_unit_test(test_required_mark),
        cmocka_unit_test(test_doc_lists_every_key),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
