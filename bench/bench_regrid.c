/* Regridding speed against CDO on the same input and target grid, measured in the same run:
 * the 744 fields of the shared ERA5 UK file (GRIB1 regular_ll 33x49) onto uk050 (17x25), bilinear.
 *
 * Ours: weights once + regrid_apply on every field (values already decoded; decoding is timed
 * separately). CDO: `cdo -f nc remapbil` is a whole command (process start, GRIB decode, NetCDF
 * write), so its regrid cost is estimated by subtracting a command that does the same decode
 * and writes the same amount: `cdo -f nc selindexbox` to a 25x17 box (and, for reference,
 * `cdo -f nc copy`, which writes the full 49x33 fields). Every time is the best of N runs.
 *
 * usage: bench_regrid [FILE.grib] [RUNS]   (default: $SMOECAST_SHARED_DATA or ../shared/data) */
#include "core/log.h"
#include "grid/geometry.h"
#include "grid/grid.h"
#include "grid/regrid.h"

#include <cblas.h>
#include <eccodes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

typedef struct {
    src_geometry *geom;
    int nfields;
    double *values;
} fields;

static int get_geometry(codes_handle *h, src_geometry **g)
{
    long ni, nj, jpos, ineg;
    double la0, lo0, di, dj;
    char type[64];
    size_t tl = sizeof type;
    if (codes_get_string(h, "gridType", type, &tl) || strcmp(type, "regular_ll") != 0) return -1;
    if (codes_get_long(h, "Ni", &ni) || codes_get_long(h, "Nj", &nj) || codes_get_long(h, "jScansPositively", &jpos) ||
        codes_get_long(h, "iScansNegatively", &ineg) || ineg ||
        codes_get_double(h, "latitudeOfFirstGridPointInDegrees", &la0) ||
        codes_get_double(h, "longitudeOfFirstGridPointInDegrees", &lo0) ||
        codes_get_double(h, "iDirectionIncrementInDegrees", &di) ||
        codes_get_double(h, "jDirectionIncrementInDegrees", &dj))
        return -1;
    double *lat = malloc((size_t)nj * sizeof *lat);
    for (long j = 0; j < nj; j++) lat[j] = la0 + (jpos ? dj : -dj) * j;
    int st = geometry_create_regular((int)nj, lat, (int)ni, lo0, di, g);
    free(lat);
    return st;
}

static int decode(const char *path, fields *r)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int err = 0;
    codes_handle *h;
    size_t cap = 0;
    while ((h = codes_handle_new_from_file(NULL, f, PRODUCT_GRIB, &err))) {
        if (!r->geom && get_geometry(h, &r->geom)) {
            codes_handle_delete(h);
            fclose(f);
            return -1;
        }
        size_t n = (size_t)geometry_npoints(r->geom), got = n;
        if ((size_t)r->nfields + 1 > cap) {
            cap = cap ? 2 * cap : 64;
            r->values = realloc(r->values, cap * n * sizeof *r->values);
        }
        codes_get_double_array(h, "values", r->values + (size_t)r->nfields * n, &got);
        codes_handle_delete(h);
        if (got != n) {
            fclose(f);
            return -1;
        }
        r->nfields++;
    }
    fclose(f);
    return err ? -1 : 0;
}

static double time_cmd(const char *cmd)
{
    double t0 = now();
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_regrid: command failed: %s\n", cmd);
        exit(2);
    }
    return now() - t0;
}

int main(int argc, char **argv)
{
    char defpath[1024];
    const char *dir = getenv("SMOECAST_SHARED_DATA");
    snprintf(defpath, sizeof defpath, "%s/xarray-data__era5-2mt-2019-03-uk.grib",
             dir ? dir : SMOECAST_SOURCE_DIR "/../shared/data");
    const char *path = argc > 1 ? argv[1] : defpath;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (runs < 1) runs = 1;
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "bench_regrid: cannot read %s (give the ERA5 UK GRIB file as the first argument)\n", path);
        return 2;
    }
    if (system("cdo --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "bench_regrid: cdo is not installed (Debian package cdo): it is the peer\n");
        return 2;
    }
    grid *g = NULL;
    if (grid_load("uk050", &g)) {
        fprintf(stderr, "bench_regrid: %s\n", sm_last_error());
        return 2;
    }
    printf("openblas_core %s\n", openblas_get_corename());
    printf("# input %s -> grid uk050 (%dx%d), bilinear; every time is the best of %d runs\n", path, g->nlat,
           g->nlon, runs);

    /* ours: decode (reported, not part of the regrid time), then weights + apply */
    double t_dec = INFINITY;
    fields src = {0};
    for (int r = 0; r < runs; r++) {
        fields tmp = {0};
        double t0 = now();
        if (decode(path, &tmp)) {
            fprintf(stderr, "bench_regrid: %s: cannot decode as regular_ll GRIB\n", path);
            return 2;
        }
        t_dec = fmin(t_dec, now() - t0);
        if (r == 0) src = tmp;
        else {
            free(tmp.values);
            geometry_free(tmp.geom);
        }
    }
    int64_t np = geometry_npoints(src.geom);
    float *out = malloc((size_t)src.nfields * g->nlat * g->nlon * sizeof *out);
    double t_w = INFINITY, t_a = INFINITY, t_tot = INFINITY;
    int64_t nnz = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        regrid_weights *w = NULL;
        if (regrid_weights_create(src.geom, g, REGRID_BILINEAR, &w)) {
            fprintf(stderr, "bench_regrid: %s\n", sm_last_error());
            return 2;
        }
        double t1 = now();
        for (int k = 0; k < src.nfields; k++)
            regrid_apply(w, src.values + (size_t)k * np, out + (size_t)k * g->nlat * g->nlon);
        double t2 = now();
        nnz = regrid_weights_nnz(w);
        regrid_weights_free(w);
        t_w = fmin(t_w, t1 - t0);
        t_a = fmin(t_a, t2 - t1);
        t_tot = fmin(t_tot, t2 - t0);
    }
    double check = 0;
    for (int64_t k = 0; k < (int64_t)src.nfields * g->nlat * g->nlon; k++) check += out[k];

    /* CDO, same input and target grid */
    char tmpl[] = "/tmp/bench_regrid_XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 2;
    }
    char gridtxt[256], cmd[4096];
    snprintf(gridtxt, sizeof gridtxt, "%s/uk050.txt", tmpl);
    FILE *f = fopen(gridtxt, "w");
    fprintf(f, "gridtype = lonlat\nxsize = %d\nysize = %d\nxfirst = %.10g\nxinc = %.10g\nyfirst = %.10g\nyinc = %.10g\n",
            g->nlon, g->nlat, g->lon[0], g->lon[1] - g->lon[0], g->lat[0], g->lat[1] - g->lat[0]);
    fclose(f);
    double c_bil = INFINITY, c_box = INFINITY, c_copy = INFINITY;
    for (int r = 0; r < runs; r++) {
        snprintf(cmd, sizeof cmd, "cdo -s -O -f nc remapbil,%s '%s' %s/bil.nc", gridtxt, path, tmpl);
        c_bil = fmin(c_bil, time_cmd(cmd));
        snprintf(cmd, sizeof cmd, "cdo -s -O -f nc selindexbox,1,%d,1,%d '%s' %s/box.nc", g->nlon, g->nlat, path, tmpl);
        c_box = fmin(c_box, time_cmd(cmd));
        snprintf(cmd, sizeof cmd, "cdo -s -O -f nc copy '%s' %s/copy.nc", path, tmpl);
        c_copy = fmin(c_copy, time_cmd(cmd));
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
    if (system(cmd) != 0) fprintf(stderr, "bench_regrid: could not remove %s\n", tmpl);

    printf("fields %d (%lld source points each, %lld weights)\n", src.nfields, (long long)np, (long long)nnz);
    printf("ours_decode_ms %.3f  # ecCodes decode of all fields, not part of the regrid time\n", 1e3 * t_dec);
    printf("ours_weights_ms %.4f\n", 1e3 * t_w);
    printf("ours_apply_ms %.4f  # %d fields\n", 1e3 * t_a, src.nfields);
    printf("ours_regrid_ms %.4f  # weights + apply\n", 1e3 * t_tot);
    printf("cdo_remapbil_ms %.2f  # whole command: start, decode, remap, NetCDF write\n", 1e3 * c_bil);
    printf("cdo_selindexbox_ms %.2f  # same decode, writes the same %dx%d per field, no remap\n", 1e3 * c_box,
           g->nlat, g->nlon);
    printf("cdo_copy_ms %.2f  # same decode, writes the full source fields\n", 1e3 * c_copy);
    double d_box = c_bil - c_box, d_copy = c_bil - c_copy;
    printf("cdo_regrid_est_ms %.2f  # cdo_remapbil - cdo_selindexbox\n", 1e3 * d_box);
    if (d_box > 0)
        printf("regrid_vs_cdo_remapbil %.4f  # ours_regrid / (cdo_remapbil - cdo_selindexbox); target <= 1.0\n",
               t_tot / d_box);
    else
        printf("regrid_vs_cdo_remapbil n/a  # cdo_remapbil - cdo_selindexbox = %.2f ms is within noise\n", 1e3 * d_box);
    if (d_copy > 0)
        printf("regrid_vs_cdo_remapbil_minus_copy %.4f  # ours_regrid / (cdo_remapbil - cdo_copy)\n", t_tot / d_copy);
    else
        printf("regrid_vs_cdo_remapbil_minus_copy n/a  # cdo_remapbil - cdo_copy = %.2f ms (copy writes more data)\n",
               1e3 * d_copy);
    printf("decode_regrid_vs_cdo_remapbil_command %.4f  # (ours_decode + ours_regrid) / cdo_remapbil (cdo also "
           "starts a process and writes NetCDF)\n", (t_dec + t_tot) / c_bil);
    printf("# checksum %.6e\n", check);
    free(out);
    free(src.values);
    geometry_free(src.geom);
    grid_free(g);
    return 0;
}
