/* synth heat: region map (3 connected regions), per-region diffusivity, the 5-point stencil,
 * initial state and heat sources, determinism, and the heat.nc layout. */
#include "testutil.h"
#include "tasks/synth.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int count_component(const int *region, int ny, int nx, int start, int *seen, int *queue)
{
    int head = 0, tail = 0, n = 0, r = region[start];
    queue[tail++] = start;
    seen[start] = 1;
    while (head < tail) {
        int c = queue[head++], y = c / nx, x = c % nx;
        n++;
        int nb[4] = {y > 0 ? c - nx : -1, y < ny - 1 ? c + nx : -1, x > 0 ? c - 1 : -1, x < nx - 1 ? c + 1 : -1};
        for (int k = 0; k < 4; k++)
            if (nb[k] >= 0 && !seen[nb[k]] && region[nb[k]] == r) {
                seen[nb[k]] = 1;
                queue[tail++] = nb[k];
            }
    }
    return n;
}

static void test_region_map_connected(void **state)
{
    (void)state;
    synth_heat_opts o;
    synth_heat_defaults(&o);
    int n = o.ny * o.nx;
    int *region = malloc(sizeof(int) * n), *seen = malloc(sizeof(int) * n), *queue = malloc(sizeof(int) * n);
    float *diff = malloc(sizeof(float) * n);
    for (uint64_t seed = 0; seed < 8; seed++) {
        o.seed = seed;
        assert_int_equal(synth_heat_map(&o, region, diff), 0);
        int count[SYNTH_HEAT_REGIONS] = {0}, components[SYNTH_HEAT_REGIONS] = {0};
        for (int i = 0; i < n; i++) {
            assert_true(region[i] >= 0 && region[i] < SYNTH_HEAT_REGIONS);
            count[region[i]]++;
            assert_float_equal(diff[i], (float)synth_heat_diffusivity[region[i]], 0.0f);
        }
        memset(seen, 0, sizeof(int) * n);
        for (int i = 0; i < n; i++)
            if (!seen[i]) {
                components[region[i]]++;
                count_component(region, o.ny, o.nx, i, seen, queue);
            }
        for (int r = 0; r < SYNTH_HEAT_REGIONS; r++) {
            assert_true(count[r] > 0);
            assert_int_equal(components[r], 1); /* each region is one 4-connected piece */
        }
    }
    assert_float_equal(synth_heat_diffusivity[0], 0.0025, 0.0);
    assert_float_equal(synth_heat_diffusivity[1], 0.025, 0.0);
    assert_float_equal(synth_heat_diffusivity[2], 0.25, 0.0);
    free(region);
    free(seen);
    free(queue);
    free(diff);
}

static double stencil(const float *u, const float *diff, int ny, int nx, int y, int x)
{
    int c = y * nx + x;
    double d = diff[c];
    double nb = (y > 0 ? u[c - nx] : 0.0) + (y < ny - 1 ? u[c + nx] : 0.0) + (x > 0 ? u[c - 1] : 0.0) +
                (x < nx - 1 ? u[c + 1] : 0.0);
    return (1.0 - 4.0 * d) * u[c] + d * nb;
}

static void test_stencil_and_initial_state(void **state)
{
    (void)state;
    synth_heat_opts o;
    synth_heat_defaults(&o);
    o.seed = 3;
    int ny = o.ny, nx = o.nx, n = ny * nx;
    int *region = malloc(sizeof(int) * n);
    float *diff = malloc(sizeof(float) * n);
    float *states = malloc(sizeof(float) * n * (o.steps + 1));
    assert_int_equal(synth_heat_map(&o, region, diff), 0);
    for (int run = 0; run < 3; run++) {
        assert_int_equal(synth_heat_run(&o, region, diff, run, states), 0);
        /* initial state: U(0, 0.1) plus 1-3 unit sources per region */
        int sources[SYNTH_HEAT_REGIONS] = {0};
        for (int i = 0; i < n; i++) {
            float v = states[i];
            assert_true(v >= 0.0f);
            if (v >= 1.0f) {
                assert_true(v < 1.1f);
                sources[region[i]]++;
            } else {
                assert_true(v < 0.1f);
            }
        }
        for (int r = 0; r < SYNTH_HEAT_REGIONS; r++) assert_true(sources[r] >= 1 && sources[r] <= 3);
        /* the stencil at sample points: corners, edges, interior, and one point of every region */
        int samples[16][2] = {{0, 0}, {0, nx - 1}, {ny - 1, 0}, {ny - 1, nx - 1}, {0, nx / 2}, {ny / 2, 0}, {31, 17}, {12, 50}};
        int ns = 8;
        for (int r = 0; r < SYNTH_HEAT_REGIONS; r++)
            for (int i = 0; i < n; i++)
                if (region[i] == r) {
                    samples[ns][0] = i / nx;
                    samples[ns][1] = i % nx;
                    ns++;
                    break;
                }
        int steps_checked[3] = {0, 1, o.steps - 1};
        for (int k = 0; k < 3; k++) {
            int t = steps_checked[k];
            const float *u = states + (size_t)t * n, *un = states + (size_t)(t + 1) * n;
            for (int s = 0; s < ns; s++) {
                double want = stencil(u, diff, ny, nx, samples[s][0], samples[s][1]);
                assert_float_equal(un[samples[s][0] * nx + samples[s][1]], want, 1e-6 * (1.0 + fabs(want)));
            }
        }
        /* zero boundary: heat leaves the domain, so the total never increases */
        double prev = 1e30;
        for (int t = 0; t <= o.steps; t++) {
            double sum = 0;
            for (int i = 0; i < n; i++) sum += states[(size_t)t * n + i];
            assert_true(sum <= prev * (1.0 + 1e-6));
            prev = sum;
        }
    }
    free(region);
    free(diff);
    free(states);
}

static void test_determinism(void **state)
{
    (void)state;
    synth_heat_opts o;
    synth_heat_defaults(&o);
    o.steps = 5;
    int n = o.ny * o.nx;
    size_t len = (size_t)n * (o.steps + 1);
    int *region = malloc(sizeof(int) * n);
    float *diff = malloc(sizeof(float) * n);
    float *a = malloc(sizeof(float) * len), *b = malloc(sizeof(float) * len);
    o.seed = 11;
    synth_heat_map(&o, region, diff);
    synth_heat_run(&o, region, diff, 2, a);
    synth_heat_map(&o, region, diff);
    synth_heat_run(&o, region, diff, 2, b);
    assert_memory_equal(a, b, len * sizeof(float));
    synth_heat_run(&o, region, diff, 3, b);
    assert_memory_not_equal(a, b, len * sizeof(float));
    int *region2 = malloc(sizeof(int) * n);
    o.seed = 12;
    synth_heat_map(&o, region2, diff);
    assert_memory_not_equal(region, region2, sizeof(int) * n);
    free(region);
    free(region2);
    free(diff);
    free(a);
    free(b);
}

static float *read_var(const char *path, const char *var, size_t *n)
{
    int nc, vid, nd, dims[8];
    assert_int_equal(nc_open(path, NC_NOWRITE, &nc), NC_NOERR);
    assert_int_equal(nc_inq_varid(nc, var, &vid), NC_NOERR);
    nc_inq_varndims(nc, vid, &nd);
    nc_inq_vardimid(nc, vid, dims);
    size_t total = 1;
    for (int d = 0; d < nd; d++) {
        size_t len;
        nc_inq_dimlen(nc, dims[d], &len);
        total *= len;
    }
    float *buf = malloc(total * sizeof(float));
    assert_int_equal(nc_get_var_float(nc, vid, buf), NC_NOERR);
    nc_close(nc);
    *n = total;
    return buf;
}

static void test_file(void **state)
{
    (void)state;
    char d1[256], d2[256], d3[256], p1[512], p2[512], p3[512];
    testutil_tmpdir("synth_heat1", d1, sizeof d1);
    testutil_tmpdir("synth_heat2", d2, sizeof d2);
    testutil_tmpdir("synth_heat3", d3, sizeof d3);
    synth_heat_opts o;
    synth_heat_defaults(&o);
    o.runs_train = 2;
    o.runs_val = 1;
    o.runs_test = 1;
    o.steps = 10;
    o.seed = 5;
    assert_int_equal(synth_heat_write(&o, d1), 0);
    assert_int_equal(synth_heat_write(&o, d2), 0);
    o.seed = 6;
    assert_int_equal(synth_heat_write(&o, d3), 0);
    snprintf(p1, sizeof p1, "%s/heat.nc", d1);
    snprintf(p2, sizeof p2, "%s/heat.nc", d2);
    snprintf(p3, sizeof p3, "%s/heat.nc", d3);
    size_t n1, n2, n3;
    float *t1 = read_var(p1, "temperature", &n1), *t2 = read_var(p2, "temperature", &n2),
          *t3 = read_var(p3, "temperature", &n3);
    assert_int_equal(n1, (size_t)4 * 11 * 64 * 64);
    assert_int_equal(n1, n2);
    assert_memory_equal(t1, t2, n1 * sizeof(float));
    assert_memory_not_equal(t1, t3, n1 * sizeof(float));
    /* the smoecast dataset written beside it (tasks/synth_heat_dataset.h) holds the same
     * fields with (run, step) flattened into its time axis */
    char pd[600];
    snprintf(pd, sizeof pd, "%s/heat_dataset.nc", d1);
    size_t nd;
    float *td = read_var(pd, "temperature", &nd);
    assert_int_equal(nd, n1);
    assert_memory_equal(td, t1, n1 * sizeof(float));
    free(td);

    /* the file's runs are the generator's runs; region/diffusivity match the map */
    o.seed = 5;
    int n = o.ny * o.nx;
    int *region = malloc(sizeof(int) * n);
    float *diff = malloc(sizeof(float) * n), *states = malloc(sizeof(float) * n * 11);
    synth_heat_map(&o, region, diff);
    synth_heat_run(&o, region, diff, 3, states);
    assert_memory_equal(t1 + (size_t)3 * 11 * n, states, sizeof(float) * n * 11);
    size_t nr;
    float *freg = read_var(p1, "region", &nr), *fdiff = read_var(p1, "diffusivity", &nr);
    for (int i = 0; i < n; i++) {
        assert_float_equal(freg[i], (float)region[i], 0.0f);
        assert_float_equal(fdiff[i], diff[i], 0.0f);
    }
    float *split = read_var(p1, "split", &nr);
    assert_int_equal(nr, 4);
    assert_float_equal(split[0], 0.0f, 0.0f);
    assert_float_equal(split[1], 0.0f, 0.0f);
    assert_float_equal(split[2], 1.0f, 0.0f);
    assert_float_equal(split[3], 2.0f, 0.0f);
    int nc, ival;
    assert_int_equal(nc_open(p1, NC_NOWRITE, &nc), NC_NOERR);
    assert_int_equal(nc_get_att_int(nc, NC_GLOBAL, "runs_train", &ival), NC_NOERR);
    assert_int_equal(ival, 2);
    assert_int_equal(nc_get_att_int(nc, NC_GLOBAL, "runs_validation", &ival), NC_NOERR);
    assert_int_equal(ival, 1);
    assert_int_equal(nc_get_att_int(nc, NC_GLOBAL, "runs_test", &ival), NC_NOERR);
    assert_int_equal(ival, 1);
    int vid;
    assert_int_equal(nc_inq_varid(nc, "region", &vid), NC_NOERR);
    char meanings[256] = {0};
    assert_int_equal(nc_get_att_text(nc, vid, "flag_meanings", meanings), NC_NOERR);
    assert_non_null(strstr(meanings, "region_2"));
    nc_close(nc);
    free(t1);
    free(t2);
    free(t3);
    free(region);
    free(diff);
    free(states);
    free(freg);
    free(fdiff);
    free(split);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", d1, d2, d3);
    assert_int_equal(system(cmd), 0);
}

static void test_bad_options(void **state)
{
    (void)state;
    synth_heat_opts o;
    synth_heat_defaults(&o);
    o.runs_train = o.runs_val = o.runs_test = 0;
    assert_int_equal(synth_heat_write(&o, "."), 1);
    synth_heat_defaults(&o);
    o.steps = 0;
    assert_int_equal(synth_heat_write(&o, "."), 1);
    synth_heat_defaults(&o);
    o.runs_train = 1;
    o.runs_val = o.runs_test = 0;
    o.steps = 1;
    assert_int_equal(synth_heat_write(&o, "/proc/no/such/dir"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_region_map_connected),
        cmocka_unit_test(test_stencil_and_initial_state),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
