/* Sample assembly: splits, normalisation statistics (training period only), tendency targets,
 * time features and denormalisation, on a small hand-made dataset. */
#include "testutil.h"

#include "core/config.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/samples.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NT 12
#define NY 2
#define NX 3

static char g_path[600];

/* x(t, p) = 10 + t + p for "a" (hours 0, 6, ..., 66 since 2000-01-01), a static "m" = p. */
static float value_a(int t, int p) { return 10.0f + (float)t + (float)p; }

static int setup(void **state)
{
    (void)state;
    char dir[512];
    testutil_tmpdir("samples", dir, sizeof dir);
    snprintf(g_path, sizeof g_path, "%s/ds.nc", dir);
    double lat[NY] = {10, 0}, lon[NX] = {0, 10, 20}, times[NT];
    for (int t = 0; t < NT; t++) times[t] = 262968.0 + 6.0 * t; /* 2000-01-01T00 */
    dataset_var_info vars[2];
    memset(vars, 0, sizeof vars);
    snprintf(vars[0].name, sizeof vars[0].name, "a");
    snprintf(vars[0].units, sizeof vars[0].units, "K");
    vars[0].level = NAN;
    snprintf(vars[1].name, sizeof vars[1].name, "m");
    vars[1].level = NAN;
    vars[1].is_static = 1;
    dataset_layout L = {.is_latlon = 1, .nlat = NY, .nlon = NX, .lat = lat, .lon = lon, .ntimes = NT, .times = times,
                        .calendar = "proleptic_gregorian", .nvars = 2, .vars = vars};
    snprintf(L.grid_name, sizeof L.grid_name, "test");
    dataset_writer *w;
    assert_int_equal(dataset_writer_create(g_path, &L, &w), SM_OK);
    float f[NY * NX];
    for (int t = 0; t < NT; t++) {
        for (int p = 0; p < NY * NX; p++) f[p] = value_a(t, p);
        assert_int_equal(dataset_writer_put(w, 0, t, 0, f), SM_OK);
    }
    for (int p = 0; p < NY * NX; p++) f[p] = (float)p;
    assert_int_equal(dataset_writer_put(w, 1, 0, 0, f), SM_OK);
    assert_int_equal(dataset_writer_commit(w), SM_OK);
    return 0;
}

static sm_config *load(int n, char **ov)
{
    sm_config *cfg;
    assert_int_equal(config_load(NULL, n, ov, &cfg), SM_OK);
    return cfg;
}

/* The config of the n overrides `ov` on the test dataset (data.dataset). */
static sm_config *load_for_dataset(int n, char **ov)
{
    char ds_key[700], *all[16];
    assert_true(n + 1 <= 16);
    snprintf(ds_key, sizeof ds_key, "data.dataset=%s", g_path);
    all[0] = ds_key;
    memcpy(all + 1, ov, (size_t)n * sizeof *ov);
    return load(n + 1, all);
}

/* The same, with the test dataset opened into *ds. */
static sm_config *load_on_dataset(int n, char **ov, dataset **ds)
{
    sm_config *cfg = load_for_dataset(n, ov);
    assert_int_equal(dataset_open(g_path, ds), SM_OK);
    return cfg;
}

/* Frees what a test set up. */
static void release(sample_cache *cache, sample_split *tr, sample_split *va, sample_split *te, sample_layout *L,
                    sm_config *cfg)
{
    sample_cache_free(cache);
    samples_split_free(tr);
    samples_split_free(va);
    samples_split_free(te);
    samples_layout_free(L);
    config_free(cfg);
}

static void test_layout_splits_stats(void **state)
{
    (void)state;
    char *ov[] = {"data.prognostic=[a]", "data.forcing=[m, hour_of_day]", "data.lead_time=12h",
                  "data.train_end=2000-01-02T12", "data.val_start=2000-01-02T18", "data.val_end=2000-01-03T18"};
    dataset *ds;
    sm_config *cfg = load_on_dataset(6, ov, &ds);
    sample_layout L;
    assert_int_equal(samples_layout_init(&L, &cfg->data, ds), SM_OK);
    assert_int_equal(L.c_in, 1 + 1 + 4);
    assert_int_equal(L.c_out, 1);
    assert_true(L.step_hours == 12.0 && L.dt_hours == 6.0);

    sample_split tr, va, te;
    assert_int_equal(samples_splits(&L, &cfg->data, ds, &tr, &va, &te), SM_OK);
    /* Train: times 0..6 (00Z day 1 .. 12Z day 2); inits need their +12h target inside: 0..4. */
    assert_int_equal(tr.n, 5);
    assert_int_equal(tr.idx[0], 0);
    assert_int_equal(tr.idx[4], 4);
    /* Validation: times 7..11, inits 7..9. */
    assert_int_equal(va.n, 3);
    assert_int_equal(va.idx[0], 7);

    sample_cache *cache;
    assert_int_equal(sample_cache_create(ds, &cache), SM_OK);
    assert_int_equal(samples_compute_stats(&L, cache, &tr, 0), SM_OK);
    /* Mean of 10 + t + p over t = 0..6 and p = 0..5: 10 + 3 + 2.5. The time std at each point
     * is the std of 0..6 (population): 2. Nothing from the validation times leaks in. */
    assert_true(fabs(L.stats.mean[0] - 15.5f) < 1e-5);
    assert_true(fabs(L.stats.std[0] - 2.0f) < 1e-5);
    /* Tendency over 12 h is exactly 2 everywhere: std 0 -> falls back to 1. */
    assert_true(fabs(L.stats.tend_std[0] - 1.0f) < 1e-6);
    /* Static m = p: constant in time, spatial std of 0..5. */
    assert_true(fabs(L.stats.mean[1] - 2.5f) < 1e-5);
    assert_true(fabs(L.stats.std[1] - sqrtf(35.0f / 12.0f)) < 1e-5);

    float in[2 * 6 * NY * NX], target[2 * NY * NX];
    int64_t inits[2] = {1, 3};
    assert_int_equal(samples_assemble(&L, cache, inits, 2, in, target), SM_OK);
    /* Sample 0 = time index 1 (06Z): a normalised, tendency target (x(t+12h)-x(t))/1 = 2. */
    assert_true(fabs(in[0] - (value_a(1, 0) - 15.5f) / 2.0f) < 1e-5);
    assert_true(fabs(target[0] - 2.0f) < 1e-6);
    /* hour_of_day at init 06Z: sin = 1, cos = 0; at the valid time 18Z: sin = -1. */
    size_t np = NY * NX;
    assert_true(fabs(in[2 * np] - 1.0f) < 1e-6);
    assert_true(fabs(in[3 * np]) < 1e-6);
    assert_true(fabs(in[4 * np] + 1.0f) < 1e-6);

    /* Denormalising the target restores the physical field at t + 12 h. */
    float state0[NY * NX], phys[NY * NX];
    for (int p = 0; p < NY * NX; p++) state0[p] = value_a(1, p);
    samples_denormalise(&L, target, state0, phys);
    for (int p = 0; p < NY * NX; p++) assert_true(fabs(phys[p] - value_a(3, p)) < 1e-5);

    release(cache, &tr, &va, &te, &L, cfg);
    dataset_close(ds);
}

static void test_durations_and_errors(void **state)
{
    (void)state;
    double h;
    assert_int_equal(samples_parse_duration("6h", "k", &h), SM_OK);
    assert_true(h == 6);
    assert_int_equal(samples_parse_duration("5d", "k", &h), SM_OK);
    assert_true(h == 120);
    assert_int_equal(samples_parse_duration("30m", "k", &h), SM_OK);
    assert_true(h == 0.5);
    assert_int_equal(samples_parse_duration("6w", "data.lead_time", &h), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "data.lead_time"));

    char *ov[] = {"data.prognostic=[a]", "data.lead_time=18h", "data.step=12h"};
    dataset *ds;
    sm_config *cfg = load_on_dataset(3, ov, &ds);
    sample_layout L;
    assert_int_equal(samples_layout_init(&L, &cfg->data, ds), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "not a multiple of data.step"));
    samples_layout_free(&L);
    config_free(cfg);
    char *ov2[] = {"data.prognostic=[m]"};
    cfg = load_for_dataset(1, ov2);
    assert_int_equal(samples_layout_init(&L, &cfg->data, ds), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "static"));
    samples_layout_free(&L);
    config_free(cfg);
    dataset_close(ds);
}

/* A direct multi-lead model (data.leads): training samples cover every (init, lead) pair,
 * validation too, and the lead is an input channel. */
static void test_multi_lead(void **state)
{
    (void)state;
    char *ov[] = {"data.prognostic=[a]", "data.forcing=[hour_of_day]", "data.lead_time=12h", "data.leads=[6h, 12h]",
                  "data.train_end=2000-01-02T12", "data.val_start=2000-01-02T18", "data.val_end=2000-01-03T18",
                  "data.history=2", "data.history_step=12h"};
    dataset *ds;
    sm_config *cfg = load_on_dataset(9, ov, &ds);
    sample_layout L;
    assert_int_equal(samples_layout_init(&L, &cfg->data, ds), SM_OK);
    assert_int_equal(L.n_leads, 2);
    assert_int_equal(L.c_in, 2 + 4 + 1);
    assert_true(L.step_hours == 12.0 && L.dt_hours == 12.0);
    assert_int_equal(samples_lead_index(&L, 6.0), 0);
    assert_int_equal(samples_lead_index(&L, 24.0), -1);

    sample_split tr, va, te;
    assert_int_equal(samples_splits(&L, &cfg->data, ds, &tr, &va, &te), SM_OK);
    /* Train times 0..6, history at t - 12 h: +6 h inits 2..5 (code 1), +12 h inits 2..4 (code 2). */
    assert_int_equal(tr.n, 4 + 3);
    int64_t t;
    double lead;
    samples_decode(&L, ds, tr.idx[3], &t, &lead);
    assert_true(t == 5 && lead == 6.0);
    samples_decode(&L, ds, tr.idx[4], &t, &lead);
    assert_true(t == 2 && lead == 12.0);
    /* Validation (times 7..11) covers every lead too: +6 h inits 9, 10, +12 h init 9. */
    assert_int_equal(va.n, 2 + 1);
    samples_decode(&L, ds, va.idx[1], &t, &lead);
    assert_true(t == 10 && lead == 6.0);
    samples_decode(&L, ds, va.idx[2], &t, &lead);
    assert_true(t == 9 && lead == 12.0);

    sample_cache *cache;
    assert_int_equal(sample_cache_create(ds, &cache), SM_OK);
    assert_int_equal(samples_compute_stats(&L, cache, &tr, 0), SM_OK);
    /* The tendency scale is the primary lead's: the 12 h change is exactly 2 -> std 0 -> 1. */
    assert_true(fabs(L.stats.tend_std[0] - 1.0f) < 1e-6);

    size_t np = NY * NX;
    float in[2 * 7 * NY * NX], target[2 * NY * NX];
    int64_t samples[2] = {tr.idx[1], tr.idx[5]}; /* time 3 at +6 h, time 3 at +12 h */
    assert_int_equal(samples_assemble(&L, cache, samples, 2, in, target), SM_OK);
    assert_true(fabs(target[0] - 1.0f) < 1e-6);      /* x(t+6h) - x(t) = 1 */
    assert_true(fabs(target[np] - 2.0f) < 1e-6);     /* x(t+12h) - x(t) = 2 */
    /* History: a at time 3 and at time 1 (12 h earlier). */
    assert_true(fabs((in[0] - in[np]) * L.stats.std[0] - 2.0f) < 1e-4);
    /* hour_of_day at the valid time: 00Z for +6 h (sin 0, cos 1), 06Z for +12 h (sin 1). */
    assert_true(fabs(in[4 * np]) < 1e-6 && fabs(in[5 * np] - 1.0f) < 1e-6);
    assert_true(fabs(in[7 * np + 4 * np] - 1.0f) < 1e-6);
    /* The lead channel: lead / longest lead. */
    assert_true(fabs(in[6 * np] - 0.5f) < 1e-6);
    assert_true(fabs(in[7 * np + 6 * np] - 1.0f) < 1e-6);

    /* Forecast assembly at a chosen lead gives the same input as the training sample. */
    const float *hist[2];
    assert_int_equal(samples_prognostic_history(&L, cache, 3, hist), SM_OK);
    float in2[7 * NY * NX];
    assert_int_equal(samples_assemble_state_lead(&L, cache, ds->times[3], 6.0, hist, in2), SM_OK);
    for (size_t k = 0; k < 7 * np; k++) assert_true(fabs(in2[k] - in[k]) < 1e-6);

    release(cache, &tr, &va, &te, &L, cfg);

    /* data.lead_tendency_scale: each lead's target is scaled by its own tendency std, and
     * denormalising at that lead restores the physical field. */
    char *ov2[] = {"data.prognostic=[a]", "data.lead_time=12h", "data.leads=[6h, 12h]",
                   "data.train_end=2000-01-02T12", "data.lead_tendency_scale=true"};
    cfg = load_for_dataset(5, ov2);
    assert_int_equal(samples_layout_init(&L, &cfg->data, ds), SM_OK);
    assert_int_equal(L.lead_tendency, 1);
    assert_int_equal(samples_splits(&L, &cfg->data, ds, &tr, &va, &te), SM_OK);
    assert_int_equal(sample_cache_create(ds, &cache), SM_OK);
    assert_int_equal(samples_compute_stats(&L, cache, &tr, 0), SM_OK);
    /* The changes are constant (std 0 -> 1); set distinct scales to see which one is used. */
    L.stats.tend_std_lead[0] = 4.0f;  /* 6 h */
    L.stats.tend_std_lead[1] = 8.0f;  /* 12 h */
    assert_true(samples_tendency_scale(&L, 0, 6.0) == 4.0f && samples_tendency_scale(&L, 0, 12.0) == 8.0f);
    float in3[2 * 6 * NY * NX], target3[2 * NY * NX];
    int64_t s3[2] = {tr.idx[0], tr.idx[tr.n - 1]}; /* the first +6 h and the last +12 h sample */
    int64_t t6, t12;
    double l6, l12;
    samples_decode(&L, ds, s3[0], &t6, &l6);
    samples_decode(&L, ds, s3[1], &t12, &l12);
    assert_true(l6 == 6.0 && l12 == 12.0);
    assert_int_equal(samples_assemble(&L, cache, s3, 2, in3, target3), SM_OK);
    assert_true(fabs(target3[0] - 1.0f / 4.0f) < 1e-6);   /* change 1 over 6 h */
    assert_true(fabs(target3[np] - 2.0f / 8.0f) < 1e-6);  /* change 2 over 12 h */
    float st0[NY * NX], ph[NY * NX];
    for (int p = 0; p < NY * NX; p++) st0[p] = value_a((int)t12, p);
    samples_denormalise_lead(&L, target3 + np, st0, 12.0, ph);
    for (int p = 0; p < NY * NX; p++) assert_true(fabs(ph[p] - value_a((int)t12 + 2, p)) < 1e-5);
    release(cache, &tr, &va, &te, &L, cfg);

    /* data.leads needs lead_time among them and no autoregressive step. */
    char *bad1[] = {"data.prognostic=[a]", "data.lead_time=18h", "data.leads=[6h, 12h]"};
    cfg = load_for_dataset(3, bad1);
    assert_int_equal(samples_layout_init(&L, &cfg->data, ds), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "data.leads must include"));
    samples_layout_free(&L);
    config_free(cfg);
    char *bad2[] = {"data.prognostic=[a]", "data.lead_time=12h", "data.step=6h", "data.leads=[6h, 12h]"};
    cfg = load_for_dataset(4, bad2);
    assert_int_equal(samples_layout_init(&L, &cfg->data, ds), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "empty data.step"));
    samples_layout_free(&L);
    config_free(cfg);
    dataset_close(ds);
}

/* Computed latitude / longitude maps: sin(lat) and sin, cos of lon after the time phases, the
 * same in training and forecast assembly, named in the input list. */
static void test_coordinate_forcings(void **state)
{
    (void)state;
    char *ov[] = {"data.prognostic=[a]", "data.forcing=[longitude, hour_of_day, latitude]", "data.lead_time=6h"};
    dataset *ds;
    sm_config *cfg = load_on_dataset(3, ov, &ds);
    sample_layout L;
    assert_int_equal(samples_layout_init(&L, &cfg->data, ds), SM_OK);
    assert_int_equal(L.c_in, 1 + 4 + 2 + 1);
    char inputs[256], outputs[256];
    samples_variable_lists(&L, ds, inputs, sizeof inputs, outputs, sizeof outputs);
    assert_string_equal(inputs, "a,longitude,hour_of_day,latitude");

    sample_split tr, va, te;
    assert_int_equal(samples_splits(&L, &cfg->data, ds, &tr, &va, &te), SM_OK);
    sample_cache *cache;
    assert_int_equal(sample_cache_create(ds, &cache), SM_OK);
    assert_int_equal(samples_compute_stats(&L, cache, &tr, 0), SM_OK);
    size_t np = NY * NX;
    float in[8 * NY * NX];
    int64_t init = 1;
    assert_int_equal(samples_assemble(&L, cache, &init, 1, in, NULL), SM_OK);
    /* Channels: a, hour phases (4), sin lon, cos lon, sin lat; lat {10, 0}, lon {0, 10, 20}. */
    const double deg = 3.141592653589793 / 180.0;
    for (int j = 0; j < NY; j++)
        for (int i = 0; i < NX; i++) {
            size_t p = (size_t)j * NX + i;
            double lat = j == 0 ? 10 : 0, lon = 10.0 * i;
            assert_true(fabs(in[5 * np + p] - sin(lon * deg)) < 1e-6);
            assert_true(fabs(in[6 * np + p] - cos(lon * deg)) < 1e-6);
            assert_true(fabs(in[7 * np + p] - sin(lat * deg)) < 1e-6);
        }
    const float *hist[1];
    float in2[8 * NY * NX];
    assert_int_equal(samples_prognostic_history(&L, cache, init, hist), SM_OK);
    assert_int_equal(samples_assemble_state(&L, cache, ds->times[init], ds->times[init], hist, in2), SM_OK);
    for (size_t k = 0; k < 8 * np; k++) assert_true(fabs(in2[k] - in[k]) < 1e-6);

    release(cache, &tr, &va, &te, &L, cfg);
    dataset_close(ds);
}

/* data.relative_inputs: the current field minus its domain mean, earlier steps as differences
 * from the current field; the same through samples_assemble_state (the rollout path). */
static void test_relative_inputs(void **state)
{
    (void)state;
    char *ov[] = {"data.prognostic=[a]", "data.history=3", "data.lead_time=6h", "data.relative_inputs=true"};
    dataset *ds;
    sm_config *cfg = load_on_dataset(4, ov, &ds);
    sample_layout L;
    assert_int_equal(samples_layout_init(&L, &cfg->data, ds), SM_OK);
    assert_int_equal(L.c_in, 3);
    sample_split tr, va, te;
    assert_int_equal(samples_splits(&L, &cfg->data, ds, &tr, &va, &te), SM_OK);
    sample_cache *cache;
    assert_int_equal(sample_cache_create(ds, &cache), SM_OK);
    assert_int_equal(samples_compute_stats(&L, cache, &tr, 0), SM_OK);
    const float sd = L.stats.std[0], tsd = L.stats.tend_std[0];
    assert_true(sd > 0 && tsd > 0 && isfinite(tsd));
    const size_t np = NY * NX;
    float in[3 * NY * NX], in2[3 * NY * NX];
    int64_t init = 4;
    assert_int_equal(samples_assemble(&L, cache, &init, 1, in, NULL), SM_OK);
    const double domain_mean = (NY * NX - 1) / 2.0; /* of the p term of value_a */
    for (size_t p = 0; p < np; p++) {
        assert_true(fabs(in[p] - ((double)p - domain_mean) / sd) < 1e-5);
        assert_true(fabs(in[np + p] - (value_a(3, (int)p) - value_a(4, (int)p)) / tsd) < 1e-5);
        assert_true(fabs(in[2 * np + p] - (value_a(2, (int)p) - value_a(4, (int)p)) / tsd) < 1e-5);
    }
    const float *hist[3];
    assert_int_equal(samples_prognostic_history(&L, cache, init, hist), SM_OK);
    assert_int_equal(samples_assemble_state(&L, cache, ds->times[init], ds->times[init], hist, in2), SM_OK);
    for (size_t k = 0; k < 3 * np; k++) assert_true(fabs(in2[k] - in[k]) < 1e-6);
    /* a warmer or colder copy of the same weather gives the same input */
    float shifted[3][NY * NX];
    for (int h = 0; h < 3; h++)
        for (size_t p = 0; p < np; p++) shifted[h][p] = hist[h][p] + 7.5f;
    const float *shifted_hist[3] = {shifted[0], shifted[1], shifted[2]};
    assert_int_equal(samples_assemble_state(&L, cache, ds->times[init], ds->times[init], shifted_hist, in2), SM_OK);
    for (size_t k = 0; k < 3 * np; k++) assert_true(fabs(in2[k] - in[k]) < 1e-5);

    release(cache, &tr, &va, &te, &L, cfg);
    dataset_close(ds);
}

/* data.recent_days: the mean of the last D fields at the hours of t0 and t0 + step, between the
 * prognostic history and the forcings; a rollout step reads no field after its information time. */
static void test_recent_days(void **state)
{
    (void)state;
    for (int relative = 0; relative < 2; relative++) {
        char *ov[] = {"data.prognostic=[a]", "data.forcing=[hour_of_day]", "data.lead_time=6h", "data.recent_days=2",
                      relative ? "data.relative_inputs=true" : "data.relative_inputs=false"};
        dataset *ds;
        sm_config *cfg = load_on_dataset(5, ov, &ds);
        sample_layout L;
        assert_int_equal(samples_layout_init(&L, &cfg->data, ds), SM_OK);
        assert_int_equal(L.c_in, 1 + 2 + 4);
        /* Time indices are 6 h apart, so a day is 4 indices: an init needs index - 4 (its own
         * hour) and index - 3 (the hour of the target) to exist. */
        sample_split all, tr, va, te;
        assert_int_equal(samples_valid_inits(&L, ds, ds->times[0], ds->times[NT - 1], &all), SM_OK);
        assert_int_equal(all.n, NT - 1 - 4);
        assert_int_equal(all.idx[0], 4);
        assert_int_equal(samples_splits(&L, &cfg->data, ds, &tr, &va, &te), SM_OK);
        sample_cache *cache;
        assert_int_equal(sample_cache_create(ds, &cache), SM_OK);
        assert_int_equal(samples_compute_stats(&L, cache, &tr, 0), SM_OK);
        const float mu = L.stats.mean[0], sd = L.stats.std[0], tsd = L.stats.tend_std[0];
        const size_t np = NY * NX;
        float in[7 * NY * NX], in2[7 * NY * NX];
        int64_t init = 9;
        assert_int_equal(samples_assemble(&L, cache, &init, 1, in, NULL), SM_OK);
        /* hour of t0: indices 5 and 1 (mean 10 + 3 + p); hour of t1: 6 and 2 (10 + 4 + p) */
        for (size_t p = 0; p < np; p++) {
            double x0 = value_a(9, (int)p), r0 = 13.0 + (double)p, r1 = 14.0 + (double)p;
            double want0 = relative ? (r0 - x0) / tsd : (r0 - mu) / sd, want1 = relative ? (r1 - x0) / tsd : (r1 - mu) / sd;
            assert_true(fabs(in[np + p] - want0) < 1e-5);
            assert_true(fabs(in[2 * np + p] - want1) < 1e-5);
        }
        double hour_phase, doy_phase;
        samples_time_features(ds->times[9], ds->calendar, &hour_phase, &doy_phase);
        assert_true(fabs(in[3 * np] - sin(hour_phase)) < 1e-6);

        const float *hist[1];
        assert_int_equal(samples_prognostic_history(&L, cache, init, hist), SM_OK);
        assert_int_equal(samples_assemble_state(&L, cache, ds->times[9], ds->times[9], hist, in2), SM_OK);
        for (size_t k = 0; k < 7 * np; k++) assert_true(fabs(in2[k] - in[k]) < 1e-6);
        /* As step 5 of a rollout from index 5: index 6 is in the forecast's future, so the hour of
         * t1 has only index 2 (10 + 2 + p); the hour of t0 keeps 5 and 1. */
        assert_int_equal(samples_assemble_state(&L, cache, ds->times[9], ds->times[5], hist, in2), SM_OK);
        for (size_t p = 0; p < np; p++) {
            double x0 = value_a(9, (int)p), r1 = 12.0 + (double)p;
            assert_true(fabs(in2[np + p] - in[np + p]) < 1e-6);
            assert_true(fabs(in2[2 * np + p] - (relative ? (r1 - x0) / tsd : (r1 - mu) / sd)) < 1e-5);
        }
        /* from index 1 nothing at the hour of t1 (index 10) is old enough */
        assert_int_equal(samples_assemble_state(&L, cache, ds->times[9], ds->times[1], hist, in2), SM_ERR_IO);
        assert_non_null(strstr(sm_last_error(), "data.recent_days"));

        samples_split_free(&all);
        release(cache, &tr, &va, &te, &L, cfg);
        dataset_close(ds);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_layout_splits_stats), cmocka_unit_test(test_durations_and_errors),
                                       cmocka_unit_test(test_multi_lead), cmocka_unit_test(test_coordinate_forcings),
                                       cmocka_unit_test(test_relative_inputs), cmocka_unit_test(test_recent_days)};
    return cmocka_run_group_tests(tests, setup, NULL);
}
