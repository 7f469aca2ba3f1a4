/* `smoecast synth heat`: the reference heat-diffusion data of METHODS.md section 2 (region map,
 * per-region diffusivity, explicit 5-point stencil, heat sources) written as DIR/heat.nc
 * (run, step, y, x) and, for `smoecast train`, as the smoecast dataset DIR/heat_dataset.nc
 * (tasks/synth_heat_dataset.h). */
#include "tasks/synth.h"
#include "tasks/synth_heat_dataset.h"
#include "tasks/synth_write.h"
#include "core/log.h"
#include "core/outfile.h"

#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double synth_heat_diffusivity[SYNTH_HEAT_REGIONS] = {0.0025, 0.025, 0.25};

void synth_heat_defaults(synth_heat_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 0;
    o->ny = 64;
    o->nx = 64;
    o->steps = 100;
    o->runs_train = 40;
    o->runs_val = 10;
    o->runs_test = 10;
}

int synth_heat_region_map(rng_t *rng, int ny, int nx, int nregions, int *region)
{
    int n = ny * nx;
    for (int i = 0; i < n; i++) region[i] = -1;
    for (int r = 0; r < nregions && r < n; r++) {
        int c;
        do c = (int)rng_below(rng, (uint32_t)n);
        while (region[c] >= 0);
        region[c] = r;
    }
    int64_t *free_cells = malloc(sizeof(int64_t) * (size_t)n);
    if (!free_cells) return sm_fail(SM_ERR_NUMERIC, "synth heat: out of memory");
    int64_t nfree = 0;
    for (int i = 0; i < n; i++)
        if (region[i] < 0) free_cells[nfree++] = i;
    /* Passes over the free cells in random order; a free cell with at least one assigned
     * 4-neighbour takes the region of one of them chosen at random. */
    while (nfree > 0) {
        rng_shuffle(rng, free_cells, nfree);
        int64_t kept = 0;
        for (int64_t k = 0; k < nfree; k++) {
            int c = (int)free_cells[k], y = c / nx, x = c % nx;
            int cand[4], nc = 0;
            if (y > 0 && region[c - nx] >= 0) cand[nc++] = region[c - nx];
            if (y < ny - 1 && region[c + nx] >= 0) cand[nc++] = region[c + nx];
            if (x > 0 && region[c - 1] >= 0) cand[nc++] = region[c - 1];
            if (x < nx - 1 && region[c + 1] >= 0) cand[nc++] = region[c + 1];
            if (nc == 0) {
                free_cells[kept++] = c;
                continue;
            }
            region[c] = cand[rng_below(rng, (uint32_t)nc)];
        }
        nfree = kept;
    }
    free(free_cells);
    return SM_OK;
}

void synth_heat_step(const float *u, float *out, const float *diff, int ny, int nx)
{
    for (int y = 0; y < ny; y++)
        for (int x = 0; x < nx; x++) {
            int c = y * nx + x;
            double d = diff[c];
            double nb = (y > 0 ? u[c - nx] : 0.0) + (y < ny - 1 ? u[c + nx] : 0.0) + (x > 0 ? u[c - 1] : 0.0) +
                        (x < nx - 1 ? u[c + 1] : 0.0);
            out[c] = (float)((1.0 - 4.0 * d) * u[c] + d * nb);
        }
}

int synth_heat_map(const synth_heat_opts *o, int *region, float *diffusivity)
{
    int n = o->ny * o->nx;
    int *reg = region ? region : malloc(sizeof(int) * (size_t)n);
    if (!reg) return sm_fail(SM_ERR_NUMERIC, "synth heat: out of memory");
    rng_t rng;
    rng_seed(&rng, o->seed, SYNTH_STREAM_HEAT_MAP);
    int st = synth_heat_region_map(&rng, o->ny, o->nx, SYNTH_HEAT_REGIONS, reg);
    if (st) {
        if (!region) free(reg);
        return st;
    }
    if (diffusivity)
        for (int i = 0; i < n; i++) diffusivity[i] = (float)synth_heat_diffusivity[reg[i]];
    if (!region) free(reg);
    return SM_OK;
}

int synth_heat_run(const synth_heat_opts *o, const int *region, const float *diffusivity, int run, float *states)
{
    int n = o->ny * o->nx;
    rng_t rng;
    rng_seed(&rng, o->seed, (uint64_t)SYNTH_STREAM_HEAT_RUN + (uint64_t)run);
    float *u0 = states;
    for (int i = 0; i < n; i++) u0[i] = (float)(0.1 * rng_uniform(&rng));
    int *cells = malloc(sizeof(int) * (size_t)n);
    if (!cells) return sm_fail(SM_ERR_NUMERIC, "synth heat: out of memory");
    for (int r = 0; r < SYNTH_HEAT_REGIONS; r++) {
        int ncell = 0;
        for (int i = 0; i < n; i++)
            if (region[i] == r) cells[ncell++] = i;
        int nsrc = 1 + (int)rng_below(&rng, 3);
        if (nsrc > ncell) nsrc = ncell;
        /* distinct cells: partial Fisher-Yates over the region's cells */
        for (int s = 0; s < nsrc; s++) {
            int j = s + (int)rng_below(&rng, (uint32_t)(ncell - s));
            int t = cells[s];
            cells[s] = cells[j];
            cells[j] = t;
            u0[cells[s]] += 1.0f;
        }
    }
    free(cells);
    for (int t = 0; t < o->steps; t++)
        synth_heat_step(states + (size_t)t * n, states + (size_t)(t + 1) * n, diffusivity, o->ny, o->nx);
    return SM_OK;
}

static int heat_check_opts(const synth_heat_opts *o)
{
    if (o->ny < 2 || o->nx < 2 || o->ny * o->nx < SYNTH_HEAT_REGIONS || o->ny > 4096 || o->nx > 4096)
        return sm_fail(SM_ERR_USAGE, "synth heat: grid %d x %d is invalid (2..4096 each)", o->ny, o->nx);
    if (o->steps < 1 || o->steps > 100000)
        return sm_fail(SM_ERR_USAGE, "synth heat: --steps %d is invalid (1..100000)", o->steps);
    if (o->runs_train < 0 || o->runs_val < 0 || o->runs_test < 0 ||
        (long)o->runs_train + o->runs_val + o->runs_test < 1 || (long)o->runs_train + o->runs_val + o->runs_test > 1000000)
        return sm_fail(SM_ERR_USAGE, "synth heat: run counts %d/%d/%d are invalid (>= 0, at least one run)",
                       o->runs_train, o->runs_val, o->runs_test);
    return SM_OK;
}

int synth_heat_write(const synth_heat_opts *o, const char *dir)
{
    int st = heat_check_opts(o);
    if (st) return st;
    int ny = o->ny, nx = o->nx, n = ny * nx, nstate = o->steps + 1;
    int nruns = o->runs_train + o->runs_val + o->runs_test;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/heat.nc", dir) >= (int)sizeof path)
        return sm_fail(SM_ERR_IO, "%s: output path too long", dir);

    int *region = malloc(sizeof(int) * (size_t)n);
    float *diff = malloc(sizeof(float) * (size_t)n);
    float *states = malloc(sizeof(float) * (size_t)n * (size_t)nstate);
    int *ibuf = malloc(sizeof(int) * (size_t)(nruns > nstate ? nruns : nstate));
    double *coord = malloc(sizeof(double) * (size_t)(ny > nx ? ny : nx));
    synth_nc nc;
    memset(&nc, 0, sizeof nc);
    if (!region || !diff || !states || !ibuf || !coord) {
        st = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
        goto done;
    }
    if ((st = synth_heat_map(o, region, diff))) goto done;
    if ((st = synth_nc_create(&nc, path, "smoecast synthetic heat diffusion (METHODS.md section 2)"))) goto done;

    int d_run, d_step, d_y, d_x, v_run, v_step, v_y, v_x, v_temp, v_region, v_diff, v_split;
    int ncid = nc.ncid;
#define NC(call, what)                                                                                           \
    do {                                                                                                         \
        if ((st = synth_nc_check(&nc, (call), what))) goto done;                                                \
    } while (0)
#define ATT(expr)                                                                                                \
    do {                                                                                                         \
        if ((st = (expr))) goto done;                                                                            \
    } while (0)
    NC(nc_def_dim(ncid, "run", (size_t)nruns, &d_run), "run");
    NC(nc_def_dim(ncid, "step", (size_t)nstate, &d_step), "step");
    NC(nc_def_dim(ncid, "y", (size_t)ny, &d_y), "y");
    NC(nc_def_dim(ncid, "x", (size_t)nx, &d_x), "x");
    NC(nc_def_var(ncid, "run", NC_INT, 1, &d_run, &v_run), "run");
    ATT(synth_nc_att_text(&nc, v_run, "long_name", "run index (train runs first, then validation, then test)"));
    NC(nc_def_var(ncid, "step", NC_INT, 1, &d_step, &v_step), "step");
    ATT(synth_nc_att_text(&nc, v_step, "long_name", "time step (0 = initial state)"));
    ATT(synth_nc_att_text(&nc, v_step, "units", "1"));
    NC(nc_def_var(ncid, "y", NC_DOUBLE, 1, &d_y, &v_y), "y");
    ATT(synth_nc_att_text(&nc, v_y, "long_name", "grid row index"));
    ATT(synth_nc_att_text(&nc, v_y, "units", "1"));
    ATT(synth_nc_att_text(&nc, v_y, "axis", "Y"));
    NC(nc_def_var(ncid, "x", NC_DOUBLE, 1, &d_x, &v_x), "x");
    ATT(synth_nc_att_text(&nc, v_x, "long_name", "grid column index"));
    ATT(synth_nc_att_text(&nc, v_x, "units", "1"));
    ATT(synth_nc_att_text(&nc, v_x, "axis", "X"));

    static const synth_field temperature = {"temperature", NULL, "temperature (dimensionless heat-diffusion state)",
                                            "1", 0, NULL, 0, 0};
    int dims4[4] = {d_run, d_step, d_y, d_x};
    size_t chunks[4] = {1, (size_t)nstate, (size_t)ny, (size_t)nx};
    ATT(synth_nc_def_field(&nc, &temperature, 4, dims4, chunks, 0, NULL, &v_temp));

    int dims2[2] = {d_y, d_x};
    NC(nc_def_var(ncid, "region", NC_INT, 2, dims2, &v_region), "region");
    int flags[SYNTH_HEAT_REGIONS] = {0, 1, 2};
    NC(nc_put_att_int(ncid, v_region, "flag_values", NC_INT, SYNTH_HEAT_REGIONS, flags), "region flag_values");
    ATT(synth_nc_att_text(&nc, v_region, "flag_meanings", "region_0_slow region_1_medium region_2_fast"));
    ATT(synth_nc_att_text(&nc, v_region, "long_name", "true region map (diffusivity class)"));
    NC(nc_put_att_double(ncid, v_region, "region_diffusivity", NC_DOUBLE, SYNTH_HEAT_REGIONS, synth_heat_diffusivity),
       "region_diffusivity");
    NC(nc_def_var(ncid, "diffusivity", NC_FLOAT, 2, dims2, &v_diff), "diffusivity");
    ATT(synth_nc_att_text(&nc, v_diff, "long_name", "diffusivity d of the 5-point stencil at each cell"));
    ATT(synth_nc_att_text(&nc, v_diff, "units", "1"));
    NC(nc_def_var(ncid, "split", NC_INT, 1, &d_run, &v_split), "split");
    ATT(synth_nc_att_text(&nc, v_split, "long_name", "data split of each run"));
    NC(nc_put_att_int(ncid, v_split, "flag_values", NC_INT, 3, flags), "split flag_values");
    ATT(synth_nc_att_text(&nc, v_split, "flag_meanings", "train validation test"));

    char buf[256];
    ATT(synth_nc_att_int(&nc, NC_GLOBAL, "runs_train", o->runs_train));
    ATT(synth_nc_att_int(&nc, NC_GLOBAL, "runs_validation", o->runs_val));
    ATT(synth_nc_att_int(&nc, NC_GLOBAL, "runs_test", o->runs_test));
    snprintf(buf, sizeof buf, "train: runs [0, %d); validation: runs [%d, %d); test: runs [%d, %d)", o->runs_train,
             o->runs_train, o->runs_train + o->runs_val, o->runs_train + o->runs_val, nruns);
    ATT(synth_nc_att_text(&nc, NC_GLOBAL, "split", buf));
    ATT(synth_nc_att_text(&nc, NC_GLOBAL, "reference_split", "1000 train / 20 validation / 20 test runs"));
    ATT(synth_nc_att_int(&nc, NC_GLOBAL, "steps", o->steps));
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)o->seed);
    ATT(synth_nc_att_text(&nc, NC_GLOBAL, "seed", buf));
    ATT(synth_nc_att_text(&nc, NC_GLOBAL, "task", "predict temperature at step t+1 from step t"));
    ATT(synth_nc_att_text(&nc, NC_GLOBAL, "generator",
                          "u'(c) = (1 - 4 d_c) u(c) + d_c (sum of the 4 neighbours, 0 outside the grid); initial "
                          "state U(0, 0.1) plus 1-3 unit heat sources per region; see docs/synthetic.md"));
    NC(nc_enddef(ncid), "enddef");

    for (int i = 0; i < nruns; i++) ibuf[i] = i;
    NC(nc_put_var_int(ncid, v_run, ibuf), "run");
    for (int i = 0; i < nruns; i++) ibuf[i] = i < o->runs_train ? 0 : i < o->runs_train + o->runs_val ? 1 : 2;
    NC(nc_put_var_int(ncid, v_split, ibuf), "split");
    for (int i = 0; i < nstate; i++) ibuf[i] = i;
    NC(nc_put_var_int(ncid, v_step, ibuf), "step");
    for (int i = 0; i < ny; i++) coord[i] = i;
    NC(nc_put_var_double(ncid, v_y, coord), "y");
    for (int i = 0; i < nx; i++) coord[i] = i;
    NC(nc_put_var_double(ncid, v_x, coord), "x");
    NC(nc_put_var_int(ncid, v_region, region), "region");
    NC(nc_put_var_float(ncid, v_diff, diff), "diffusivity");
    for (int r = 0; r < nruns; r++) {
        if (sm_interrupted()) {
            st = sm_fail(SM_ERR_INTERRUPTED, "%s: interrupted at run %d", path, r);
            goto done;
        }
        if ((st = synth_heat_run(o, region, diff, r, states))) goto done;
        size_t start[4] = {(size_t)r, 0, 0, 0}, count[4] = {1, (size_t)nstate, (size_t)ny, (size_t)nx};
        NC(nc_put_vara_float(ncid, v_temp, start, count, states), "temperature");
    }
#undef NC
#undef ATT
    st = synth_nc_close(&nc);
    if (st == SM_OK) {
        /* the same runs as a smoecast dataset (bit-identical fields, own temp + rename) */
        if (snprintf(path, sizeof path, "%s/heat_dataset.nc", dir) >= (int)sizeof path)
            st = sm_fail(SM_ERR_IO, "%s: output path too long", dir);
        else
            st = synth_heat_write_dataset(o, path);
    }
done:
    if (st) synth_nc_abort(&nc);
    free(region);
    free(diff);
    free(states);
    free(ibuf);
    free(coord);
    return st;
}
