/* `smoecast synth heat` as a smoecast dataset (see synth_heat_dataset.h). */
#include "tasks/synth_heat_dataset.h"

#include "core/log.h"
#include "core/outfile.h"
#include "data/dataset.h"
#include "tasks/synth_write.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double synth_heat_time_hours(const synth_heat_opts *o, int run, int step)
{
    return (double)synth_hours_from_civil(2000, 1, 1, 0) +
           (double)run * (double)(o->steps + SYNTH_HEAT_RUN_GAP_HOURS) + (double)step;
}

static void iso_hours(double hours, char *buf, size_t len)
{
    int y, mo, d, h;
    synth_civil_from_hours((int64_t)llround(hours), &y, &mo, &d, &h);
    snprintf(buf, len, "%04d-%02d-%02dT%02d", y, mo, d, h);
}

/* Adds the split periods to a complete dataset file. */
static int put_periods(const synth_heat_opts *o, const char *path)
{
    const int first[3] = {0, o->runs_train, o->runs_train + o->runs_val};
    const int count[3] = {o->runs_train, o->runs_val, o->runs_test};
    static const char *names[3] = {"smoecast_train_period", "smoecast_val_period", "smoecast_test_period"};
    int ncid, rc = nc_open(path, NC_WRITE, &ncid);
    if (rc != NC_NOERR) return sm_fail(SM_ERR_IO, "%s: open for the split periods: %s", path, nc_strerror(rc));
    rc = nc_redef(ncid);
    for (int k = 0; k < 3 && rc == NC_NOERR; k++) {
        if (count[k] < 1) continue;
        char a[32], b[32], text[80];
        iso_hours(synth_heat_time_hours(o, first[k], 0), a, sizeof a);
        iso_hours(synth_heat_time_hours(o, first[k] + count[k] - 1, o->steps), b, sizeof b);
        snprintf(text, sizeof text, "%s/%s", a, b);
        rc = nc_put_att_text(ncid, NC_GLOBAL, names[k], strlen(text), text);
    }
    int rc2 = nc_close(ncid);
    if (rc == NC_NOERR) rc = rc2;
    if (rc != NC_NOERR) return sm_fail(SM_ERR_IO, "%s: split period attributes: %s", path, nc_strerror(rc));
    return SM_OK;
}

int synth_heat_write_dataset(const synth_heat_opts *o, const char *path)
{
    const int ny = o->ny, nx = o->nx, n = ny * nx, nstate = o->steps + 1;
    if (ny < 2 || nx < 2 || o->steps < 1 || o->runs_train < 0 || o->runs_val < 0 || o->runs_test < 0)
        return sm_fail(SM_ERR_USAGE, "synth heat: invalid options for %s", path);
    const long nruns = (long)o->runs_train + o->runs_val + o->runs_test;
    if (nruns < 1 || nruns * nstate > 100000000L)
        return sm_fail(SM_ERR_USAGE, "synth heat: %ld runs of %d states do not fit one dataset (%s)", nruns, nstate, path);
    const int ntimes = (int)(nruns * nstate);
    int st = SM_OK;
    int *region = malloc(sizeof(int) * (size_t)n);
    float *diff = malloc(sizeof(float) * (size_t)n), *fbuf = malloc(sizeof(float) * (size_t)n);
    float *states = malloc(sizeof(float) * (size_t)n * (size_t)nstate);
    double *times = malloc(sizeof(double) * (size_t)ntimes);
    double *yc = malloc(sizeof(double) * (size_t)ny), *xc = malloc(sizeof(double) * (size_t)nx);
    dataset_writer *w = NULL;
    outfile of;
    memset(&of, 0, sizeof of);
    if (!region || !diff || !fbuf || !states || !times || !yc || !xc) {
        st = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
        goto done;
    }
    if ((st = synth_heat_map(o, region, diff))) goto done;
    for (int j = 0; j < ny; j++) yc[j] = 1.0 - (j + 0.5) / ny; /* top row first, as grids/heat64.yaml */
    for (int i = 0; i < nx; i++) xc[i] = (i + 0.5) / nx;
    for (long r = 0; r < nruns; r++)
        for (int s = 0; s < nstate; s++) times[r * nstate + s] = synth_heat_time_hours(o, (int)r, s);

    dataset_var_info vars[3];
    memset(vars, 0, sizeof vars);
    snprintf(vars[0].name, sizeof vars[0].name, "temperature");
    snprintf(vars[0].units, sizeof vars[0].units, "1");
    snprintf(vars[0].long_name, sizeof vars[0].long_name, "temperature (dimensionless heat-diffusion state)");
    snprintf(vars[1].name, sizeof vars[1].name, "region");
    snprintf(vars[1].units, sizeof vars[1].units, "1");
    snprintf(vars[1].long_name, sizeof vars[1].long_name,
             "true region map: 0 slow (d 0.0025), 1 medium (d 0.025), 2 fast (d 0.25)");
    vars[1].is_static = 1;
    vars[1].categorical = 1;
    snprintf(vars[2].name, sizeof vars[2].name, "diffusivity");
    snprintf(vars[2].units, sizeof vars[2].units, "1");
    snprintf(vars[2].long_name, sizeof vars[2].long_name, "diffusivity of the 5-point stencil");
    vars[2].is_static = 1;
    static const char *const short_names[3] = {"temperature", "region", "diffusivity"};
    for (int v = 0; v < 3; v++) {
        vars[v].level = NAN;
        snprintf(vars[v].short_name, sizeof vars[v].short_name, "%s", short_names[v]);
    }
    char config[256];
    snprintf(config, sizeof config,
             "synth: heat\nseed: %llu\nsize: [%d, %d]\nsteps: %d\nruns_train: %d\nruns_val: %d\nruns_test: %d\n",
             (unsigned long long)o->seed, ny, nx, o->steps, o->runs_train, o->runs_val, o->runs_test);
    dataset_layout L;
    memset(&L, 0, sizeof L);
    L.is_latlon = 0;
    snprintf(L.grid_name, sizeof L.grid_name, "%s", ny == 64 && nx == 64 ? "heat64" : "native");
    L.nlat = ny;
    L.nlon = nx;
    L.lat = yc;
    L.lon = xc;
    L.ntimes = ntimes;
    L.times = times;
    snprintf(L.calendar, sizeof L.calendar, "proleptic_gregorian");
    L.nvars = 3;
    L.vars = vars;
    L.config_text = config;
    L.history = "smoecast synth heat";

    /* The dataset writer commits to a temporary name of ours; the split periods are added there
     * and only then is the file renamed into place. */
    if ((st = outfile_begin(&of, path))) goto done;
    if ((st = dataset_writer_create(of.tmp_path, &L, &w))) goto done;
    for (int i = 0; i < n; i++) fbuf[i] = (float)region[i];
    if ((st = dataset_writer_put(w, 1, 0, 0, fbuf))) goto done;
    if ((st = dataset_writer_put(w, 2, 0, 0, diff))) goto done;
    for (long r = 0; r < nruns; r++) {
        if (sm_interrupted()) {
            st = sm_fail(SM_ERR_INTERRUPTED, "%s: interrupted at run %ld", path, r);
            goto done;
        }
        if ((st = synth_heat_run(o, region, diff, (int)r, states))) goto done;
        for (int s = 0; s < nstate; s++)
            if ((st = dataset_writer_put(w, 0, (int)(r * nstate + s), 0, states + (size_t)s * n))) goto done;
    }
    st = dataset_writer_commit(w);
    w = NULL;
    if (st) goto done;
    if ((st = put_periods(o, of.tmp_path))) goto done;
    st = outfile_commit(&of);
done:
    if (w) dataset_writer_abort(w);
    if (st) outfile_abort(&of);
    free(region); free(diff); free(fbuf); free(states); free(times); free(yc); free(xc);
    return st;
}
