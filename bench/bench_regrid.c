/* Regridding speed against CDO on the same input and target grid, measured in the same run.
 *
 * Case 1 (the headline): the 744 fields of the shared ERA5 UK file (GRIB1 regular_ll 33x49) onto
 * uk050 (17x25), bilinear, and first-order conservative.
 * Case 2: one global 0.25 deg field (1440x721, made by `cdo random,r1440x721`) onto ens10
 * (720x361), bilinear and conservative: here computing the weights dominates.
 *
 * Ours: weights once + regrid_apply on every field (values already decoded; decoding is timed
 * separately). CDO: `cdo -f nc remapbil` is a whole command (process start, decode, NetCDF
 * write), so its regrid cost is estimated by subtracting a command that does the same decode
 * and writes the same amount: `cdo -f nc selindexbox` to a box of the target's size (and, for
 * reference, `cdo -f nc copy`, which writes the full source fields). Times are CPU times
 * (user + sys of the process, its threads and children), the best of RUNS: wall times on a
 * shared 2-core machine vary by more than CDO's whole remap cost in case 1.
 *
 * usage: bench_regrid [ERA5_UK.grib] [RUNS]   (default: $SMOECAST_SHARED_DATA or ../shared/data) */
#include "core/log.h"
#include "grid/geometry.h"
#include "grid/grid.h"
#include "grid/regrid.h"

#include <cblas.h>
#include <eccodes.h>
#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double children_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static void die(const char *what)
{
    fprintf(stderr, "bench_regrid: %s\n", what);
    exit(2);
}

/* Runs a command; returns its CPU time (user + sys of it and its children), *wall its wall time. */
static double time_cmd(const char *cmd, double *wall)
{
    double c0 = children_cpu(), t0 = wall_now();
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_regrid: command failed: %s\n", cmd);
        exit(2);
    }
    *wall = wall_now() - t0;
    return children_cpu() - c0;
}

typedef struct {
    src_geometry *geom;
    int nfields;
    double *values; /* nfields * npoints */
} fields;

static void fields_free(fields *f)
{
    free(f->values);
    geometry_free(f->geom);
}

static int grib_geometry(codes_handle *h, src_geometry **g)
{
    long ni, nj, jpos, ineg;
    double la0, lo0, lo1;
    char type[64];
    size_t tl = sizeof type;
    if (codes_get_string(h, "gridType", type, &tl) || strcmp(type, "regular_ll") != 0) return -1;
    if (codes_get_long(h, "Ni", &ni) || codes_get_long(h, "Nj", &nj) || codes_get_long(h, "jScansPositively", &jpos) ||
        codes_get_long(h, "iScansNegatively", &ineg) || ineg || ni < 2 ||
        codes_get_double(h, "latitudeOfFirstGridPointInDegrees", &la0) ||
        codes_get_double(h, "longitudeOfFirstGridPointInDegrees", &lo0) ||
        codes_get_double(h, "longitudeOfLastGridPointInDegrees", &lo1))
        return -1;
    double dj, la1;
    if (codes_get_double(h, "latitudeOfLastGridPointInDegrees", &la1)) return -1;
    dj = (la1 - la0) / (nj > 1 ? nj - 1 : 1);
    double span = lo1 - lo0;
    if (span < 0) span += 360.0;
    double *lat = malloc((size_t)nj * sizeof *lat);
    for (long j = 0; j < nj; j++) lat[j] = la0 + dj * j;
    int st = geometry_create_regular((int)nj, lat, (int)ni, lo0, span / (ni - 1), g);
    free(lat);
    return st;
}

static int decode_grib(const char *path, fields *r)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int err = 0;
    codes_handle *h;
    size_t cap = 0;
    while ((h = codes_handle_new_from_file(NULL, f, PRODUCT_GRIB, &err))) {
        if (!r->geom && grib_geometry(h, &r->geom)) {
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

/* A (lat, lon) NetCDF field as CDO writes it (variable `random`). */
static int decode_nc(const char *path, fields *r)
{
    int nc, vlat, vlon, v;
    if (nc_open(path, NC_NOWRITE, &nc)) return -1;
    if (nc_inq_varid(nc, "lat", &vlat) || nc_inq_varid(nc, "lon", &vlon) || nc_inq_varid(nc, "random", &v)) {
        nc_close(nc);
        return -1;
    }
    int d;
    size_t nlat, nlon;
    nc_inq_vardimid(nc, vlat, &d);
    nc_inq_dimlen(nc, d, &nlat);
    nc_inq_vardimid(nc, vlon, &d);
    nc_inq_dimlen(nc, d, &nlon);
    double *lat = malloc(nlat * sizeof *lat), *lon = malloc(nlon * sizeof *lon);
    r->values = malloc(nlat * nlon * sizeof *r->values);
    nc_get_var_double(nc, vlat, lat);
    nc_get_var_double(nc, vlon, lon);
    int st = nc_get_var_double(nc, v, r->values);
    nc_close(nc);
    if (!st) st = geometry_create_regular((int)nlat, lat, (int)nlon, lon[0], lon[1] - lon[0], &r->geom);
    r->nfields = 1;
    free(lat);
    free(lon);
    return st;
}

/* Best-of-`runs` CPU time of weights + apply over every field; also weights and apply alone. */
static void time_ours(const fields *src, const grid *g, regrid_method m, int runs, double t[3], int64_t *nnz,
                      double *check)
{
    int64_t np = geometry_npoints(src->geom), nd = (int64_t)g->nlat * g->nlon;
    float *out = malloc((size_t)src->nfields * nd * sizeof *out);
    t[0] = t[1] = t[2] = INFINITY;
    for (int r = 0; r < runs; r++) {
        double t0 = cpu_now();
        regrid_weights *w = NULL;
        if (regrid_weights_create(src->geom, g, m, &w)) die(sm_last_error());
        double t1 = cpu_now();
        for (int k = 0; k < src->nfields; k++) regrid_apply(w, src->values + (size_t)k * np, out + (size_t)k * nd);
        double t2 = cpu_now();
        *nnz = regrid_weights_nnz(w);
        regrid_weights_free(w);
        t[0] = fmin(t[0], t2 - t0);
        t[1] = fmin(t[1], t1 - t0);
        t[2] = fmin(t[2], t2 - t1);
    }
    *check = 0;
    for (int64_t k = 0; k < (int64_t)src->nfields * nd; k++)
        if (!isnan(out[k])) *check += out[k];
    free(out);
}

static void write_cdo_grid(const grid *g, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) die("cannot write the CDO grid description");
    fprintf(f, "gridtype = lonlat\nxsize = %d\nysize = %d\nxfirst = %.10g\nxinc = %.10g\nyfirst = %.10g\nyinc = %.10g\n",
            g->nlon, g->nlat, g->lon[0], g->lon[1] - g->lon[0], g->lat[0], g->lat[1] - g->lat[0]);
    fclose(f);
}

/* One case: ours (bilinear, conservative) and CDO (remapbil, remapcon, selindexbox, copy). */
static void bench_case(const char *tag, const char *path, const fields *src, const grid *g, const char *tmp, int runs)
{
    double tb[3], tc[3], cb, cc;
    int64_t nb, ncon;
    time_ours(src, g, REGRID_BILINEAR, runs, tb, &nb, &cb);
    time_ours(src, g, REGRID_CONSERVATIVE, runs, tc, &ncon, &cc);

    char gridtxt[600], cmd[4096];
    snprintf(gridtxt, sizeof gridtxt, "%s/%s.txt", tmp, g->name);
    write_cdo_grid(g, gridtxt);
    const char *opname[4] = {"remapbil", "remapcon", "selindexbox", "copy"};
    double ccpu[4], cwall[4];
    for (int k = 0; k < 4; k++) ccpu[k] = cwall[k] = INFINITY;
    for (int r = 0; r < runs; r++)
        for (int k = 0; k < 4; k++) {
            char op[700];
            if (k < 2) snprintf(op, sizeof op, "%s,%s", opname[k], gridtxt);
            else if (k == 2) snprintf(op, sizeof op, "selindexbox,1,%d,1,%d", g->nlon, g->nlat);
            else snprintf(op, sizeof op, "copy");
            snprintf(cmd, sizeof cmd, "cdo -s -O -f nc %s '%s' %s/out%d.nc", op, path, tmp, k);
            double wall, cpu = time_cmd(cmd, &wall);
            ccpu[k] = fmin(ccpu[k], cpu);
            cwall[k] = fmin(cwall[k], wall);
        }
    printf("%s_fields %d (%lld source points each -> %s %dx%d; weights: bilinear %lld, conservative %lld)\n", tag,
           src->nfields, (long long)geometry_npoints(src->geom), g->name, g->nlat, g->nlon, (long long)nb,
           (long long)ncon);
    printf("%s_ours_bilinear_regrid_ms %.4f  # weights %.4f + apply %.4f\n", tag, 1e3 * tb[0], 1e3 * tb[1], 1e3 * tb[2]);
    printf("%s_ours_conservative_regrid_ms %.4f  # weights %.4f + apply %.4f\n", tag, 1e3 * tc[0], 1e3 * tc[1],
           1e3 * tc[2]);
    for (int k = 0; k < 4; k++)
        printf("%s_cdo_%s_ms %.2f  # wall %.2f; %s\n", tag, opname[k], 1e3 * ccpu[k], 1e3 * cwall[k],
               k < 2 ? "whole command: start, decode, remap, NetCDF write"
               : k == 2 ? "same decode, writes as many points per field, no remap"
                        : "same decode, writes the full source fields");
    double d_bil = ccpu[0] - ccpu[2], d_con = ccpu[1] - ccpu[2], d_copy = ccpu[0] - ccpu[3];
    printf("%s_cdo_remapbil_regrid_est_ms %.2f  # cdo_remapbil - cdo_selindexbox\n", tag, 1e3 * d_bil);
    printf("%s_cdo_remapcon_regrid_est_ms %.2f  # cdo_remapcon - cdo_selindexbox\n", tag, 1e3 * d_con);
    if (d_bil > 0)
        printf("%s_regrid_vs_cdo_remapbil %.4f  # ours_bilinear_regrid / cdo_remapbil_regrid_est; target <= 1.0\n", tag,
               tb[0] / d_bil);
    else
        printf("%s_regrid_vs_cdo_remapbil n/a  # cdo_remapbil - cdo_selindexbox = %.2f ms: below the noise of CDO's "
               "decode\n", tag, 1e3 * d_bil);
    if (d_copy > 0)
        printf("%s_regrid_vs_cdo_remapbil_minus_copy %.4f  # ours_bilinear_regrid / (cdo_remapbil - cdo_copy)\n", tag,
               tb[0] / d_copy);
    else
        printf("%s_regrid_vs_cdo_remapbil_minus_copy n/a  # cdo_remapbil - cdo_copy = %.2f ms\n", tag, 1e3 * d_copy);
    if (d_con > 0)
        printf("%s_conservative_vs_cdo_remapcon %.4f  # ours_conservative_regrid / cdo_remapcon_regrid_est\n", tag,
               tc[0] / d_con);
    else
        printf("%s_conservative_vs_cdo_remapcon n/a  # cdo_remapcon - cdo_selindexbox = %.2f ms\n", tag, 1e3 * d_con);
    printf("# %s checksums %.6e %.6e\n", tag, cb, cc);
}

int main(int argc, char **argv)
{
    char defpath[1024];
    const char *dir = getenv("SMOECAST_SHARED_DATA");
    snprintf(defpath, sizeof defpath, "%s/xarray-data__era5-2mt-2019-03-uk.grib",
             dir ? dir : SMOECAST_SOURCE_DIR "/../shared/data");
    const char *path = argc > 1 ? argv[1] : defpath;
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    if (runs < 1) runs = 1;
    if (access(path, R_OK) != 0) die("cannot read the ERA5 UK GRIB file (give it as the first argument)");
    if (system("cdo --version >/dev/null 2>&1") != 0) die("cdo is not installed (Debian package cdo): it is the peer");
    grid *uk = NULL, *ens = NULL;
    if (grid_load("uk050", &uk) || grid_load("ens10", &ens)) die(sm_last_error());
    char tmp[] = "/tmp/bench_regrid_XXXXXX";
    if (!mkdtemp(tmp)) die("mkdtemp failed");

    printf("openblas_core %s\n", openblas_get_corename());
    printf("# times: CPU (user + sys over threads and child processes), best of %d runs; CDO wall times alongside.\n"
           "# CDO's regrid cost = its remap command minus `selindexbox` to a box of the target's size (same\n"
           "# decode, same amount written); `copy` (writes the full source) is a second baseline.\n", runs);

    /* case 1: ERA5 UK, 744 GRIB fields -> uk050 */
    fields era = {0};
    double t_dec = INFINITY;
    for (int r = 0; r < runs; r++) {
        fields f = {0};
        double t0 = cpu_now();
        if (decode_grib(path, &f)) die("cannot decode the ERA5 UK file as regular_ll GRIB");
        t_dec = fmin(t_dec, cpu_now() - t0);
        if (r == 0) era = f;
        else fields_free(&f);
    }
    printf("# case era5uk: %s\n", path);
    printf("era5uk_ours_decode_ms %.3f  # ecCodes decode of all fields, not part of the regrid time\n", 1e3 * t_dec);
    bench_case("era5uk", path, &era, uk, tmp, runs);

    /* case 2: one global 0.25 deg field -> ens10 */
    char gpath[700], cmd[1024];
    snprintf(gpath, sizeof gpath, "%s/global025.nc", tmp);
    snprintf(cmd, sizeof cmd, "cdo -s -f nc random,r1440x721 %s", gpath);
    if (system(cmd) != 0) die("cdo random failed");
    fields glob = {0};
    if (decode_nc(gpath, &glob)) die("cannot read the global 0.25 deg field");
    printf("# case global025: cdo random,r1440x721 (lat -90 .. 90 ascending, lon 0 .. 359.75)\n");
    bench_case("global025", gpath, &glob, ens, tmp, runs > 3 ? 3 : runs);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "bench_regrid: could not remove %s\n", tmp);
    fields_free(&era);
    fields_free(&glob);
    grid_free(uk);
    grid_free(ens);
    return 0;
}
