/* bench_ingest: ingest throughput against a bare ecCodes decode loop over the same file.
 *
 *   bench_ingest [GRIB_FILE] [VAR] [TARGET_GRID]
 *
 * Defaults: the ERA5 UK file from $SMOECAST_SHARED_DATA (else ../shared/data), 2t, uk050. The peer is the loop every GRIB
 * program needs at least (codes_handle_new_from_file + codes_get_double_array + delete per
 * message). Ours is `smoecast ingest` as a library call: reading, selecting, decoding and putting
 * every field on the output grid ("decode+select+regrid"), with the compressed NetCDF write
 * timed separately. Each measurement is the best of 5 rounds that interleave peer and ours. Ours
 * hashes the inputs (sha256, for the dataset's provenance) in a second thread alongside the decode,
 * so the native metric is also measured with the whole process pinned to one CPU (peer too): that
 * line shows the ratio without the help of a second core. One line per metric:
 *   <metric>: ratio R (ours X s, peer Y s, ...)   ratio = peer time / our time (>= 0.9 is the target) */
#define _GNU_SOURCE
#include "core/log.h"
#include "tasks/ingest.h"

#include <eccodes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

char *openblas_get_corename(void);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double bare_decode(const char *path, int *nmsg)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    codes_grib_multi_support_on(NULL);
    double t0 = now(), sum = 0;
    int err = 0, n = 0;
    double *v = NULL;
    size_t cap = 0;
    codes_handle *h;
    while ((h = codes_handle_new_from_file(NULL, f, PRODUCT_GRIB, &err)) != NULL) {
        size_t len = 0;
        codes_get_size(h, "values", &len);
        if (len > cap) {
            free(v);
            v = malloc(len * sizeof *v);
            cap = len;
        }
        codes_get_double_array(h, "values", v, &len);
        sum += v[0];
        codes_handle_delete(h);
        n++;
    }
    double t = now() - t0;
    codes_grib_multi_support_reset_file(NULL, f);
    fclose(f);
    free(v);
    *nmsg = n;
    return sum == sum ? t : t; /* sum keeps the decode from being optimised away */
}

static int run_ingest(const char *path, const char *var, const char *grid, const char *out, ingest_report *best)
{
    const char *inputs[1] = {path}, *vars[1] = {var};
    ingest_options o;
    memset(&o, 0, sizeof o);
    o.inputs = inputs;
    o.n_inputs = 1;
    o.variables = vars;
    o.n_variables = 1;
    o.grid = grid;
    o.output = out;
    ingest_report r;
    int st = ingest_run(&o, &r);
    unlink(out);
    if (st) {
        fprintf(stderr, "bench_ingest: %s\n", sm_last_error());
        return st;
    }
    if (best->n_fields == 0 || r.seconds_decode < best->seconds_decode) *best = r;
    return 0;
}

int main(int argc, char **argv)
{
    char dflt[4096];
    const char *dir = getenv("SMOECAST_SHARED_DATA");
    snprintf(dflt, sizeof dflt, "%s/xarray-data__era5-2mt-2019-03-uk.grib", dir ? dir : SMOECAST_SOURCE_DIR "/../shared/data");
    const char *path = argc > 1 ? argv[1] : dflt;
    const char *var = argc > 2 ? argv[2] : "2t";
    const char *grid = argc > 3 ? argv[3] : "uk050";
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "bench_ingest: %s not found (give a GRIB file)\n", path);
        return 2;
    }
    log_set_level(LOG_LEVEL_ERROR);
    printf("bench_ingest: openblas core %s, file %s, variable %s\n", openblas_get_corename(), path, var);
    /* rounds interleave the peer and ours so that load changes on a shared machine hit both */
    int nmsg = 0;
    double peer = 1e30;
    ingest_report nat, reg;
    memset(&nat, 0, sizeof nat);
    memset(&reg, 0, sizeof reg);
    for (int round = 0; round < 5; round++) {
        double t = bare_decode(path, &nmsg);
        if (t < peer) peer = t;
        if (run_ingest(path, var, "native", "bench_ingest_native.nc", &nat)) return 2;
        if (run_ingest(path, var, grid, "bench_ingest_regrid.nc", &reg)) return 2;
    }
    /* the same with the process on one CPU: the hash thread then shares the core with the decode */
    double peer1 = 1e30;
    ingest_report one;
    memset(&one, 0, sizeof one);
    cpu_set_t saved, pin;
    int cpu = sched_getcpu();
    int pinned = cpu >= 0 && sched_getaffinity(0, sizeof saved, &saved) == 0;
    if (pinned) {
        CPU_ZERO(&pin);
        CPU_SET(cpu, &pin);
        pinned = sched_setaffinity(0, sizeof pin, &pin) == 0;
    }
    for (int round = 0; round < 5 && pinned; round++) {
        double t = bare_decode(path, &nmsg);
        if (t < peer1) peer1 = t;
        if (run_ingest(path, var, "native", "bench_ingest_native.nc", &one)) return 2;
    }
    if (pinned) sched_setaffinity(0, sizeof saved, &saved);
    double tn = nat.seconds_decode, tr = reg.seconds_decode;
    printf("ingest_decode_select_native: ratio %.3f (ours %.3f s, peer bare ecCodes decode %.3f s, %d messages, %d fields)\n", peer / tn,
           tn, peer, nmsg, nat.n_fields);
    printf("ingest_decode_select_regrid_%s: ratio %.3f (ours %.3f s, peer bare ecCodes decode %.3f s)\n", grid, peer / tr, tr, peer);
    if (pinned)
        printf("ingest_decode_select_native_one_cpu: ratio %.3f (ours %.3f s, peer bare ecCodes decode %.3f s, both pinned to CPU %d)\n",
               peer1 / one.seconds_decode, one.seconds_decode, peer1, cpu);
    printf("ingest_write_compressed_native: %.3f s for %d fields (%.3f ms per field; ratio to the decode peer %.3f)\n", nat.seconds_write,
           nat.n_fields, 1e3 * nat.seconds_write / (nat.n_fields ? nat.n_fields : 1), peer / (nat.seconds_write > 0 ? nat.seconds_write : 1e-9));
    return 0;
}
