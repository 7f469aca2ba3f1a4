/* Post-processing building blocks: ensemble moments against a brute-force loop, missing members,
 * feature normalisation (METHODS.md 5), splits, truth matching, the normal quantile function,
 * the EMOS model file round trip and the calibrated CF output read back. */
#include "testutil.h"

#include "core/config.h"
#include "core/log.h"
#include "data/dataset.h"
#include "post/emos_file.h"
#include "post/ens_data.h"
#include "post/post_output.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEG 0.017453292519943295
#define NY 3
#define NX 4
#define NT 10
#define NM 4
#define NP (NY * NX)

static char g_ens[700], g_truth[700], g_dir[512];

static float member_value(int v, int t, int m, int p) { return (float)(10 * v + sin(0.7 * t + 0.3 * p) + 0.1 * m * m * (1 + 0.05 * p) + (t == 3 && p == 5 ? 0 : 0)); }

static void write_ds(const char *path, int with_members, int nan_member_time)
{
    double lat[NY] = {50, 49, 48}, lon[NX] = {0, 1, 2, 3}, times[NT];
    int members[NM] = {0, 1, 2, 3};
    for (int t = 0; t < NT; t++) times[t] = 262968.0 + 24.0 * t; /* 2000-01-01 */
    dataset_var_info vars[2];
    memset(vars, 0, sizeof vars);
    snprintf(vars[0].name, sizeof vars[0].name, "t850");
    snprintf(vars[0].units, sizeof vars[0].units, "K");
    snprintf(vars[1].name, sizeof vars[1].name, "z500");
    snprintf(vars[1].units, sizeof vars[1].units, "m2 s-2");
    vars[0].has_members = vars[1].has_members = with_members;
    vars[0].level = vars[1].level = NAN;
    dataset_layout L = {.is_latlon = 1, .nlat = NY, .nlon = NX, .lat = lat, .lon = lon, .ntimes = NT, .times = times,
                        .calendar = "proleptic_gregorian", .nmembers = with_members ? NM : 0, .members = members, .nvars = 2,
                        .vars = vars};
    snprintf(L.grid_name, sizeof L.grid_name, "native");
    dataset_writer *w;
    assert_int_equal(dataset_writer_create(path, &L, &w), SM_OK);
    float f[NP];
    for (int v = 0; v < 2; v++)
        for (int t = 0; t < NT; t++)
            for (int m = 0; m < (with_members ? NM : 1); m++) {
                for (int p = 0; p < NP; p++) f[p] = with_members ? member_value(v, t, m, p) : (float)(10 * v + t + 0.01 * p);
                if (with_members && m == 2 && t == nan_member_time)
                    for (int p = 0; p < NP; p++) f[p] = NAN;
                if (with_members && t == 4 && m == 1) f[7] = NAN; /* one point of one member */
                assert_int_equal(dataset_writer_put(w, v, t, m, f), SM_OK);
            }
    assert_int_equal(dataset_writer_commit(w), SM_OK);
}

static int setup(void **state)
{
    (void)state;
    testutil_tmpdir("post_ens", g_dir, sizeof g_dir);
    snprintf(g_ens, sizeof g_ens, "%s/ens.nc", g_dir);
    snprintf(g_truth, sizeof g_truth, "%s/truth.nc", g_dir);
    write_ds(g_ens, 1, -1);
    write_ds(g_truth, 0, -1);
    return 0;
}

static void test_moments_and_features(void **state)
{
    (void)state;
    char names[ENS_MAX_VARS][80];
    int P;
    cfg_strlist pred = {.n = 2};
    snprintf(pred.items[0], CFG_PATH, "z500");
    snprintf(pred.items[1], CFG_PATH, "t850");
    assert_int_equal(ens_predictor_list("t850", &pred, &P, names), SM_OK);
    assert_int_equal(P, 2); /* target first, duplicate dropped */
    assert_string_equal(names[0], "t850");
    assert_string_equal(names[1], "z500");
    ens_data E;
    assert_int_equal(ens_data_load(g_ens, P, names, &E), SM_OK);
    assert_int_equal(E.M, NM);
    for (int p = 0; p < P; p++)
        for (int t = 0; t < NT; t++)
            for (int i = 0; i < NP; i++) {
                double s = 0, ss = 0;
                int bad = 0;
                for (int m = 0; m < NM; m++) s += member_value(p, t, m, i);
                for (int m = 0; m < NM; m++) ss += pow(member_value(p, t, m, i) - s / NM, 2);
                bad = t == 4 && i == 7;
                if (bad) {
                    assert_true(isnan(ens_mean(&E, t, p)[i]) && isnan(ens_sd(&E, t, p)[i]));
                    continue;
                }
                assert_float_equal(ens_mean(&E, t, p)[i], s / NM, 1e-4);
                assert_float_equal(ens_sd(&E, t, p)[i], sqrt(ss / (NM - 1)), 1e-4);
            }
    /* features: (x - time mean) / (time std + 0.1) over the training times, then lat/lon */
    int64_t tr[5] = {0, 1, 2, 3, 5};
    ens_norm N;
    assert_int_equal(ens_norm_compute(&E, tr, 5, &N), SM_OK);
    for (int c = 0; c < 2 * P; c++)
        for (int i = 0; i < NP; i++) {
            double s = 0, ss = 0;
            for (int k = 0; k < 5; k++) s += (c & 1 ? ens_sd(&E, (int)tr[k], c / 2) : ens_mean(&E, (int)tr[k], c / 2))[i];
            double mu = s / 5;
            for (int k = 0; k < 5; k++) ss += pow((c & 1 ? ens_sd(&E, (int)tr[k], c / 2) : ens_mean(&E, (int)tr[k], c / 2))[i] - mu, 2);
            assert_float_equal(N.mean[c * NP + i], mu, 1e-4);
            assert_float_equal(N.std[c * NP + i], sqrt(ss / 5), 1e-4);
        }
    float feat[(2 * 2 + 3) * NP];
    assert_int_equal(ens_feature_channels(P, 1), 7);
    ens_features(&E, &N, 6, 1, E.ds->lat, E.ds->lon, feat);
    double x = ens_sd(&E, 6, 1)[9];
    assert_float_equal(feat[3 * NP + 9], (x - N.mean[3 * NP + 9]) / (N.std[3 * NP + 9] + 0.1), 1e-4);
    /* point 9: lat 48 (row 2), lon 1 (column 1) */
    assert_float_equal(feat[4 * NP + 9], sin(48 * DEG), 1e-6);
    assert_float_equal(feat[5 * NP + 9], cos(48 * DEG) * sin(1 * DEG), 1e-6);
    assert_float_equal(feat[6 * NP + 9], cos(48 * DEG) * cos(1 * DEG), 1e-6);
    /* truth matching and splits: data.train_end set -> ISO bounds, inclusive */
    float *truth;
    int matched;
    assert_int_equal(ens_truth_load(g_truth, "t850", &E, &truth, &matched), SM_OK);
    assert_int_equal(matched, NT);
    assert_float_equal(truth[3 * NP + 2], 3 + 0.02, 1e-5);
    data_config dc;
    memset(&dc, 0, sizeof dc);
    snprintf(dc.train_end, sizeof dc.train_end, "2000-01-05");
    snprintf(dc.test_start, sizeof dc.test_start, "2000-01-08");
    snprintf(dc.test_end, sizeof dc.test_end, "2000-01-10");
    uint8_t has[NT] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 1};
    ens_split a, b, c;
    assert_int_equal(ens_splits(&E, &dc, has, &a, &b, &c), SM_OK);
    assert_int_equal(a.n, 5);
    assert_int_equal(b.n, 0);
    assert_int_equal(c.n, 2); /* 2000-01-08 and 01-10; 01-09 has no truth */
    assert_int_equal(c.idx[1], 9);
    ens_split_free(&a), ens_split_free(&b), ens_split_free(&c);
    /* default split: 80 / 10 / 10 % */
    memset(&dc, 0, sizeof dc);
    assert_int_equal(ens_splits(&E, &dc, NULL, &a, &b, &c), SM_OK);
    assert_int_equal(a.n, 8);
    assert_int_equal(b.n, 1);
    assert_int_equal(c.n, 1);
    ens_split_free(&a), ens_split_free(&b), ens_split_free(&c);
    free(truth);
    /* target absent from the truth file */
    assert_int_equal(ens_truth_load(g_truth, "t2m", &E, &truth, &matched), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "target variable 't2m' is absent from the truth file (variables: t850, z500)"));
    assert_null(truth);
    ens_norm_free(&N);
    ens_data_free(&E);
}

static void test_bad_ensembles(void **state)
{
    (void)state;
    char path[600], names[1][80] = {"t850"};
    snprintf(path, sizeof path, "%s/missing.nc", g_dir);
    write_ds(path, 1, 6);
    ens_data E;
    assert_int_equal(ens_data_load(path, 1, names, &E), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "time 2000-01-07T00:00: member 2 (realization 2) is missing"));
    ens_data_free(&E);
    assert_int_equal(ens_data_load(g_truth, 1, names, &E), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "no realization dimension"));
    ens_data_free(&E);
    char bad[1][80] = {"q700"};
    assert_int_equal(ens_data_load(g_ens, 1, bad, &E), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "(variables: t850, z500)"));
    ens_data_free(&E);
}

static void test_norm_ppf(void **state)
{
    (void)state;
    for (int i = 1; i < 2000; i++) {
        double p = i / 2000.0, z = post_norm_ppf(p);
        assert_float_equal(0.5 * erfc(-z / sqrt(2.0)), p, 1e-13);
    }
    assert_float_equal(post_norm_ppf(1e-10), -6.361340902404056, 1e-9);
    assert_true(isnan(post_norm_ppf(0)) && isnan(post_norm_ppf(1)));
    double q[4];
    int n;
    assert_int_equal(post_parse_percentiles("10,50,90", q, 4, &n), SM_OK);
    assert_int_equal(n, 3);
    assert_int_equal(post_parse_percentiles("10,100", q, 4, &n), SM_ERR_USAGE);
    assert_int_equal(post_parse_percentiles("10;20", q, 4, &n), SM_ERR_USAGE);
}

static void test_emos_file_and_output(void **state)
{
    (void)state;
    double lat[NY] = {50, 49, 48}, lon[NX] = {0, 1, 2, 3};
    emos_coef coef[NP];
    for (int i = 0; i < NP; i++) coef[i] = (emos_coef){0.5 + i, 0.9, 0.2, 1.1 + 0.01 * i};
    coef[3].a = NAN;
    emos_model m = {.per_point = 1, .is_latlon = 1, .H = NY, .W = NX, .lat = lat, .lon = lon, .coef = coef, .sigma_floor = 0.01,
                    .members = NM, .training_crps = 0.3, .training_samples = 100};
    snprintf(m.target, sizeof m.target, "t850");
    snprintf(m.units, sizeof m.units, "K");
    char path[600];
    snprintf(path, sizeof path, "%s/emos.nc", g_dir);
    assert_int_equal(emos_model_write(path, &m), SM_OK);
    assert_true(emos_model_is(path));
    assert_false(emos_model_is(g_ens));
    emos_model r;
    assert_int_equal(emos_model_read(path, &r), SM_OK);
    assert_int_equal(r.per_point, 1);
    assert_int_equal(r.H, NY);
    assert_int_equal(r.W, NX);
    assert_string_equal(r.target, "t850");
    assert_float_equal(r.sigma_floor, 0.01, 0);
    assert_true(isnan(r.coef[3].a));
    assert_float_equal(r.coef[11].d, 1.1 + 0.01 * 11, 1e-15);
    assert_float_equal(r.lat[2], 48, 0);
    emos_model_free(&r);
    assert_int_equal(emos_model_read(g_ens, &r), SM_ERR_IO);

    /* output: two leads -> (forecast_reference_time, forecast_period, lat, lon) with NaN gaps */
    double ref[3] = {100, 100, 124}, per[3] = {24, 48, 24};
    float mu[3 * NP], sg[3 * NP];
    for (int i = 0; i < 3 * NP; i++) mu[i] = 280 + i, sg[i] = 1 + 0.1 * (i % 5);
    double pct[2] = {10, 90};
    post_output o = {.var = "t850", .units = "K", .standard_name = "air_temperature", .long_name = "temperature", .calendar = "standard",
                     .is_latlon = 1, .H = NY, .W = NX, .lat = lat, .lon = lon, .T = 3, .ref = ref, .period = per, .mu = mu, .sigma = sg,
                     .nq = 2, .percentiles = pct, .n_members = 3, .method = "emos", .sigma_floor = 0.01};
    snprintf(path, sizeof path, "%s/out.nc", g_dir);
    assert_int_equal(post_output_write(path, &o), SM_OK);
    int nc, v, nd;
    assert_int_equal(nc_open(path, NC_NOWRITE, &nc), NC_NOERR);
    assert_int_equal(nc_inq_varid(nc, "t850_mu", &v), NC_NOERR);
    assert_int_equal(nc_inq_varndims(nc, v, &nd), NC_NOERR);
    assert_int_equal(nd, 4);
    float got[NP];
    size_t st4[4] = {1, 0, 0, 0}, ct4[4] = {1, 1, NY, NX};
    assert_int_equal(nc_get_vara_float(nc, v, st4, ct4, got), NC_NOERR);
    assert_float_equal(got[5], mu[2 * NP + 5], 0);
    st4[1] = 1;
    assert_int_equal(nc_get_vara_float(nc, v, st4, ct4, got), NC_NOERR);
    assert_true(isnan(got[0])); /* (124, 48) was not given */
    assert_int_equal(nc_inq_varid(nc, "t850_percentile", &v), NC_NOERR);
    size_t st5[5] = {0, 1, 1, 0, 0}, ct5[5] = {1, 1, 1, NY, NX};
    assert_int_equal(nc_get_vara_float(nc, v, st5, ct5, got), NC_NOERR);
    assert_float_equal(got[4], mu[NP + 4] + 1.2815515655446004 * sg[NP + 4], 1e-4);
    assert_int_equal(nc_inq_varid(nc, "t850", &v), NC_NOERR);
    st5[2] = 1; /* middle member of 3 = the median */
    assert_int_equal(nc_get_vara_float(nc, v, st5, ct5, got), NC_NOERR);
    assert_float_equal(got[4], mu[NP + 4], 1e-4);
    double t2[2];
    int vt;
    assert_int_equal(nc_inq_varid(nc, "time", &vt), NC_NOERR);
    size_t s2[2] = {1, 0}, c2[2] = {1, 2};
    assert_int_equal(nc_get_vara_double(nc, vt, s2, c2, t2), NC_NOERR);
    assert_float_equal(t2[0], 148, 0);
    assert_float_equal(t2[1], 172, 0);
    nc_close(nc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_moments_and_features),
        cmocka_unit_test(test_bad_ensembles),
        cmocka_unit_test(test_norm_ppf),
        cmocka_unit_test(test_emos_file_and_output),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
