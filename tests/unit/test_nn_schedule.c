/* nn/schedule: LR schedules against torch (tests/golden/optim_schedule.nc), state save/restore,
 * early stopping. Hyper-parameters repeat scripts/golden/make_golden_optim.py. */
#include "testutil.h"

#include "core/config.h"
#include "core/log.h"
#include "nn/schedule.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GOLD "optim_schedule.nc"

static void assert_seq(lr_schedule *s, const float *ref, size_t n, const float *metric,
                       const char *what)
{
    for (size_t t = 0; t < n; t++) {
        double lr = lr_schedule_lr(s);
        if (!(fabs(lr - ref[t]) <= 1e-6 * fabs(ref[t]) + 1e-9))
            fail_msg("%s: t = %zu: lr %.9g, torch %.9g", what, t, lr, (double)ref[t]);
        if (t + 1 < n) lr_schedule_step(s, metric ? metric[t] : NAN);
    }
}

static void test_step_lr(void **state)
{
    (void)state;
    size_t n;
    float *ref = testutil_golden_load(GOLD, "step_lr", &n, NULL, NULL);
    lr_schedule_config c = lr_schedule_default_config(LR_STEP, 0.1);
    c.step_size = 3;
    c.gamma = 0.5;
    lr_schedule s;
    assert_int_equal(lr_schedule_init(&s, &c), SM_OK);
    assert_seq(&s, ref, n, NULL, "step");
    free(ref);
}

static void test_cosine_warmup(void **state)
{
    (void)state;
    size_t n;
    float *ref = testutil_golden_load(GOLD, "cosine_lr", &n, NULL, NULL);
    lr_schedule_config c = lr_schedule_default_config(LR_COSINE, 0.1);
    c.warmup = 4;
    c.total = 20;
    c.warmup_start_factor = 0.1;
    c.min_lr = 1e-3;
    assert_int_equal(n, 21);
    lr_schedule s;
    assert_int_equal(lr_schedule_init(&s, &c), SM_OK);
    assert_seq(&s, ref, n, NULL, "cosine");
    /* closed form == stepped value; held at min_lr after total */
    for (int64_t t = 0; t < 30; t++) {
        if (t < (int64_t)n) assert_true(fabs(lr_schedule_at(&s, t) - ref[t]) <= 1e-6 * ref[t]);
        if (t >= 20) assert_true(lr_schedule_at(&s, t) == 1e-3);
    }
    /* no warm-up: starts at base_lr */
    c.warmup = 0;
    assert_int_equal(lr_schedule_init(&s, &c), SM_OK);
    assert_true(lr_schedule_lr(&s) == 0.1);
    assert_true(fabs(lr_schedule_at(&s, 10) - (1e-3 + (0.1 - 1e-3) * 0.5)) < 1e-15);
    free(ref);
}

static void test_onecycle(void **state)
{
    (void)state;
    size_t n;
    float *ref = testutil_golden_load(GOLD, "onecycle_lr", &n, NULL, NULL);
    assert_int_equal(n, 20);
    lr_schedule_config c = lr_schedule_default_config(LR_ONECYCLE, 0.1);
    assert_true(c.pct_start == 0.3 && c.div_factor == 25.0 && c.final_div_factor == 1e4);
    assert_int_equal(c.unit, LR_UNIT_STEP);
    c.total = 20;
    lr_schedule s;
    assert_int_equal(lr_schedule_init(&s, &c), SM_OK);
    assert_seq(&s, ref, n, NULL, "onecycle");
    /* the peak is reached exactly at step pct T - 1; after the last step the final lr holds */
    assert_true(fabs(lr_schedule_at(&s, 5) - 0.1) < 1e-15);
    assert_true(fabs(lr_schedule_at(&s, 19) - 0.1 / 25.0 / 1e4) < 1e-18);
    assert_true(lr_schedule_at(&s, 25) == lr_schedule_at(&s, 19));
    free(ref);
}

static void test_plateau(void **state)
{
    (void)state;
    size_t nm, n;
    float *metric = testutil_golden_load(GOLD, "plateau_metric", &nm, NULL, NULL);
    const char *vars[2] = {"plateau_rel_lr", "plateau_abs_lr"};
    for (int mode = 0; mode < 2; mode++) {
        float *ref = testutil_golden_load(GOLD, vars[mode], &n, NULL, NULL);
        assert_int_equal(n, nm + 1);
        lr_schedule_config c = lr_schedule_default_config(LR_PLATEAU, 0.1);
        c.factor = 0.5;
        c.patience = 2;
        c.threshold = mode ? 0.005 : 1e-4;
        c.threshold_abs = mode;
        c.cooldown = 1;
        c.min_lr = 0.004;
        lr_schedule s;
        assert_int_equal(lr_schedule_init(&s, &c), SM_OK);
        assert_seq(&s, ref, n, metric, vars[mode]);
        free(ref);
    }
    /* NaN metrics are bad epochs */
    lr_schedule_config c = lr_schedule_default_config(LR_PLATEAU, 1.0);
    c.patience = 1;
    lr_schedule s;
    assert_int_equal(lr_schedule_init(&s, &c), SM_OK);
    lr_schedule_step(&s, 1.0);
    lr_schedule_step(&s, NAN);
    assert_true(lr_schedule_lr(&s) == 1.0);
    lr_schedule_step(&s, NAN);
    assert_true(fabs(lr_schedule_lr(&s) - 0.1) < 1e-15);
    free(metric);
}

static void test_constant_and_restore(void **state)
{
    (void)state;
    lr_schedule_config c = lr_schedule_default_config(LR_CONSTANT, 3e-4);
    lr_schedule s;
    assert_int_equal(lr_schedule_init(&s, &c), SM_OK);
    for (int t = 0; t < 5; t++) assert_true(lr_schedule_step(&s, NAN) == 3e-4);
    assert_int_equal(s.t, 5);

    /* the struct is the whole state: a copy taken mid-way continues identically */
    size_t nm;
    float *metric = testutil_golden_load(GOLD, "plateau_metric", &nm, NULL, NULL);
    c = lr_schedule_default_config(LR_PLATEAU, 0.1);
    c.factor = 0.5;
    c.patience = 2;
    c.cooldown = 1;
    lr_schedule a, saved;
    assert_int_equal(lr_schedule_init(&a, &c), SM_OK);
    for (size_t t = 0; t < 9; t++) lr_schedule_step(&a, metric[t]);
    memcpy(&saved, &a, sizeof a);
    lr_schedule b;
    memcpy(&b, &saved, sizeof b);
    for (size_t t = 9; t < nm; t++)
        assert_true(lr_schedule_step(&a, metric[t]) == lr_schedule_step(&b, metric[t]));
    assert_true(a.best == b.best && a.num_bad == b.num_bad && a.t == b.t);
    free(metric);
}

static void test_config_errors(void **state)
{
    (void)state;
    lr_schedule s;
    lr_schedule_config c = lr_schedule_default_config(LR_STEP, 0.1);
    assert_int_equal(lr_schedule_init(&s, &c), SM_ERR_USAGE); /* step_size 0 */
    assert_non_null(strstr(sm_last_error(), "step_size"));
    c = lr_schedule_default_config(LR_COSINE, 0.1);
    c.warmup = 10;
    c.total = 10;
    assert_int_equal(lr_schedule_init(&s, &c), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "warmup"));
    c = lr_schedule_default_config(LR_PLATEAU, 0.1);
    c.factor = 1.0;
    assert_int_equal(lr_schedule_init(&s, &c), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "factor"));
    c = lr_schedule_default_config(LR_PLATEAU, 0.1);
    c.unit = LR_UNIT_STEP;
    assert_int_equal(lr_schedule_init(&s, &c), SM_ERR_USAGE);
    c = lr_schedule_default_config(LR_CONSTANT, -1.0);
    assert_int_equal(lr_schedule_init(&s, &c), SM_ERR_USAGE);

    lr_kind k;
    assert_int_equal(lr_kind_from_name("cosine", &k), SM_OK);
    assert_int_equal(k, LR_COSINE);
    assert_int_equal(lr_kind_from_name("plateau", &k), SM_OK);
    assert_int_equal(k, LR_PLATEAU);
    assert_int_equal(lr_kind_from_name("onecycle", &k), SM_OK);
    assert_int_equal(k, LR_ONECYCLE);
    assert_int_equal(lr_kind_from_name("one_cycle", &k), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "onecycle"));
    assert_string_equal(lr_kind_name((lr_kind)5), "unknown");
    c = lr_schedule_default_config(LR_ONECYCLE, 0.1);
    c.total = 6; /* pct_start 0.3: E = 0.8, no rising step */
    assert_int_equal(lr_schedule_init(&s, &c), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "too few"));
    c.total = 100;
    c.pct_start = 1.0;
    assert_int_equal(lr_schedule_init(&s, &c), SM_ERR_USAGE);
    c.pct_start = 0.3;
    c.div_factor = 0.5;
    assert_int_equal(lr_schedule_init(&s, &c), SM_ERR_USAGE);
    assert_string_equal(lr_kind_name(LR_STEP), "step");
    c = lr_schedule_default_config(LR_PLATEAU, 0.1);
    assert_true(c.threshold == 1e-4 && c.patience == 10 && c.unit == LR_UNIT_EPOCH);
}

static void test_early_stop(void **state)
{
    (void)state;
    early_stop es;
    assert_int_equal(early_stop_init(&es, 3, 0.0), SM_OK);
    const double vals[] = {1.0, 0.8, 0.85, 0.8, 0.79, 0.9, 0.95, 0.79};
    const int expect_imp[] = {1, 1, 0, 0, 1, 0, 0, 0};
    const int expect_stop[] = {0, 0, 0, 0, 0, 0, 0, 1};
    for (int e = 0; e < 8; e++) {
        int imp = -1;
        int stop = early_stop_update(&es, vals[e], &imp);
        assert_int_equal(imp, expect_imp[e]);
        assert_int_equal(stop, expect_stop[e]);
    }
    assert_true(es.best == 0.79);
    assert_int_equal(es.best_epoch, 4);
    assert_int_equal(es.epoch, 8);
    assert_true(early_stop_update(&es, 0.1, NULL)); /* stays stopped */

    /* min_delta: gains smaller than it do not count; NaN is never an improvement */
    assert_int_equal(early_stop_init(&es, 2, 0.05), SM_OK);
    int imp;
    early_stop_update(&es, 1.0, &imp);
    assert_int_equal(imp, 1);
    early_stop_update(&es, 0.96, &imp);
    assert_int_equal(imp, 0);
    assert_int_equal(early_stop_update(&es, NAN, &imp), 1);
    assert_int_equal(imp, 0);
    assert_true(es.best == 1.0);
    assert_int_equal(es.best_epoch, 0);

    assert_int_equal(early_stop_init(&es, 0, 0.0), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "patience"));
    assert_int_equal(early_stop_init(&es, 3, -1.0), SM_ERR_USAGE);
}

static void test_from_training_config(void **state)
{
    (void)state;
    sm_config *cfg;
    assert_int_equal(config_load(NULL, 0, NULL, &cfg), SM_OK);
    lr_schedule_config c;
    assert_int_equal(lr_schedule_config_from_training(&cfg->training, 7, &c), SM_OK);
    assert_int_equal(c.kind, LR_PLATEAU);
    assert_int_equal(c.unit, LR_UNIT_EPOCH);
    assert_true(c.factor == cfg->training.plateau_factor);
    assert_int_equal(c.patience, cfg->training.plateau_patience);
    lr_schedule s;
    assert_int_equal(lr_schedule_init(&s, &c), SM_OK);
    config_free(cfg);

    char *ov[4] = {"training.lr_scheduler=cosine", "training.warmup_epochs=3", "training.epochs=11",
                   "training.lr=0.4"};
    assert_int_equal(config_load(NULL, 4, ov, &cfg), SM_OK);
    assert_int_equal(lr_schedule_config_from_training(&cfg->training, 7, &c), SM_OK);
    assert_int_equal(lr_schedule_init(&s, &c), SM_OK);
    for (int t = 0; t < 3; t++) {
        assert_true(fabs(lr_schedule_lr(&s) - 0.4 * (t + 1) / 4.0) < 1e-15);
        lr_schedule_step(&s, NAN);
    }
    assert_true(fabs(lr_schedule_lr(&s) - 0.4) < 1e-15);
    for (int t = 3; t < 11; t++) lr_schedule_step(&s, NAN);
    assert_true(lr_schedule_lr(&s) == 0.0);
    config_free(cfg);

    /* onecycle runs per optimiser step over epochs * steps_per_epoch */
    char *ov1[3] = {"training.lr_scheduler=onecycle", "training.epochs=4", "training.onecycle_pct_start=0.25"};
    assert_int_equal(config_load(NULL, 3, ov1, &cfg), SM_OK);
    assert_int_equal(lr_schedule_config_from_training(&cfg->training, 7, &c), SM_OK);
    assert_int_equal(c.kind, LR_ONECYCLE);
    assert_int_equal(c.unit, LR_UNIT_STEP);
    assert_int_equal(c.total, 28);
    assert_true(c.pct_start == 0.25 && c.div_factor == 25.0 && c.final_div_factor == 1e4);
    assert_int_equal(lr_schedule_init(&s, &c), SM_OK);
    assert_true(fabs(lr_schedule_at(&s, 6) - cfg->training.lr) < 1e-15);
    strcpy(cfg->training.lr_scheduler, "exponential");
    assert_int_equal(lr_schedule_config_from_training(&cfg->training, 7, &c), SM_ERR_USAGE);
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_lr),
        cmocka_unit_test(test_cosine_warmup),
        cmocka_unit_test(test_onecycle),
        cmocka_unit_test(test_plateau),
        cmocka_unit_test(test_constant_and_restore),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_early_stop),
        cmocka_unit_test(test_from_training_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
