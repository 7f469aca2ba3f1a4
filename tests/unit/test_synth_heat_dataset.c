/* synth heat as a smoecast dataset: layout (temperature(time, y, x), static categorical region
 * and diffusivity on the unit-square cell centres), run/step -> time mapping with gaps between
 * runs, split-period attributes, field values equal to the generator's runs, and the training
 * engine's splits: every one-hour (step, step + 1) pair of a run, none across runs. */
#include "testutil.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/samples.h"
#include "tasks/synth_heat_dataset.h"

static void small_opts(synth_heat_opts *o)
{
    synth_heat_defaults(o);
    o->seed = 3;
    o->ny = 8;
    o->nx = 8;
    o->steps = 3;
    o->runs_train = 2;
    o->runs_val = 1;
    o->runs_test = 1;
}

static void test_layout_and_values(void **st)
{
    (void)st;
    char dir[4096], path[4200];
    testutil_tmpdir("synth_heat_ds", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/heat.nc", dir);
    synth_heat_opts o;
    small_opts(&o);
    assert_int_equal(synth_heat_write_dataset(&o, path), SM_OK);
    dataset *ds = NULL;
    assert_int_equal(dataset_open(path, &ds), SM_OK);
    assert_int_equal(ds->is_latlon, 0);
    assert_int_equal(ds->nlat, 8);
    assert_int_equal(ds->nlon, 8);
    assert_int_equal(ds->ntimes, 4 * 4);
    assert_float_equal(ds->lat[0], 1.0 - 0.5 / 8, 1e-12);
    assert_float_equal(ds->lon[7], 7.5 / 8, 1e-12);
    /* 2000-01-01T00 = 262968 h since 1970; runs start steps + 28 = 31 h apart */
    for (int r = 0; r < 4; r++)
        for (int s = 0; s < 4; s++) assert_float_equal(ds->times[r * 4 + s], 262968.0 + r * 31 + s, 1e-9);
    int vt = dataset_find_var(ds, "temperature"), vr = dataset_find_var(ds, "region");
    int vd = dataset_find_var(ds, "diffusivity");
    assert_true(vt >= 0 && vr >= 0 && vd >= 0);
    assert_false(ds->vars[vt].is_static);
    assert_true(ds->vars[vr].is_static && ds->vars[vr].categorical);
    assert_true(ds->vars[vd].is_static);
    int region[64];
    float diff[64], f[64], states[4 * 64];
    assert_int_equal(synth_heat_map(&o, region, diff), SM_OK);
    assert_int_equal(dataset_read(ds, vr, 0, 0, f), SM_OK);
    for (int i = 0; i < 64; i++) assert_float_equal(f[i], (float)region[i], 0);
    assert_int_equal(dataset_read(ds, vd, 0, 0, f), SM_OK);
    for (int i = 0; i < 64; i++) assert_float_equal(f[i], diff[i], 0);
    for (int r = 0; r < 4; r++) {
        assert_int_equal(synth_heat_run(&o, region, diff, r, states), SM_OK);
        for (int s = 0; s < 4; s++) {
            assert_int_equal(dataset_read(ds, vt, r * 4 + s, 0, f), SM_OK);
            assert_memory_equal(f, states + s * 64, sizeof f);
        }
    }
    char text[128];
    size_t len = 0;
    assert_int_equal(nc_inq_attlen(ds->ncid, NC_GLOBAL, "smoecast_val_period", &len), NC_NOERR);
    assert_true(len < sizeof text);
    assert_int_equal(nc_get_att_text(ds->ncid, NC_GLOBAL, "smoecast_val_period", text), NC_NOERR);
    text[len] = '\0';
    /* run 2: 262968 + 62 h = 2000-01-03T14 .. + 3 h */
    assert_string_equal(text, "2000-01-03T14/2000-01-03T17");

    /* The engine's default splits: lead 1 h, steps pairs per run, none across runs. */
    sm_config *cfg = NULL;
    char *ov[] = {"data.prognostic=[temperature]", "data.lead_time=1h", "data.tendency=false"};
    char ds_ov[4400];
    snprintf(ds_ov, sizeof ds_ov, "data.dataset=%s", path);
    char *ovs[4] = {ds_ov, ov[0], ov[1], ov[2]};
    assert_int_equal(config_load_text("{}", "test", 4, ovs, &cfg), SM_OK);
    sample_layout L;
    memset(&L, 0, sizeof L);
    assert_int_equal(samples_layout_init(&L, &cfg->data, ds), SM_OK);
    sample_split tr, va, te;
    assert_int_equal(samples_splits(&L, &cfg->data, ds, &tr, &va, &te), SM_OK);
    assert_int_equal(tr.n, 2 * 3);
    assert_int_equal(va.n, 3);
    assert_int_equal(te.n, 3);
    for (int64_t i = 0; i < tr.n; i++) assert_true(tr.idx[i] % 4 != 3 && tr.idx[i] < 8);
    for (int64_t i = 0; i < va.n; i++) assert_true(va.idx[i] >= 8 && va.idx[i] < 11);
    for (int64_t i = 0; i < te.n; i++) assert_true(te.idx[i] >= 12 && te.idx[i] < 15);
    samples_split_free(&tr);
    samples_split_free(&va);
    samples_split_free(&te);
    samples_layout_free(&L);
    config_free(cfg);
    dataset_close(ds);
}

static void test_unwritable(void **st)
{
    (void)st;
    synth_heat_opts o;
    small_opts(&o);
    assert_int_equal(synth_heat_write_dataset(&o, "/nonexistent-dir/heat.nc"), SM_ERR_IO);
    o.steps = 0;
    assert_int_equal(synth_heat_write_dataset(&o, "/tmp/unused.nc"), SM_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_and_values),
        cmocka_unit_test(test_unwritable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
