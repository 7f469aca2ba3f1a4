/* `smoecast synth toy-atmosphere`: a cheap stochastic global model of z500, t850 and t2m
 * anomalies about an analytic seasonal + diurnal climatology, on the WeatherBench 5.625 deg grid.
 * The dynamics differ by region on purpose (latitude-dependent zonal jet for semi-Lagrangian
 * advection, land/sea-dependent diffusion, relaxation, coupling and noise), so location-specific
 * experts can beat a translation-invariant CNN. Equations: docs/synthetic.md. */
#include "tasks/synth.h"
#include "tasks/synth_write.h"
#include "core/log.h"
#include "core/outfile.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846
#define G0 9.80665
#define EARTH_RADIUS 6.371e6
#define DLAT 5.625

const char *const synth_region_meanings =
    "sea_tropics sea_midlatitudes sea_polar land_tropics land_midlatitudes land_polar";

struct synth_atmos {
    synth_atmos_opts o;
    double lat[SYNTH_NLAT], lon[SYNTH_NLON];
    float lsm[SYNTH_NPTS];
    double anom[SYNTH_NVARS][SYNTH_NPTS];
    double shift[SYNTH_NVARS][SYNTH_NLAT];    /* eastward displacement per step, grid cells */
    double kappa[SYNTH_NVARS][SYNTH_NPTS];    /* diffusion coefficient per step (grid units) */
    double noise_sd[SYNTH_NVARS][SYNTH_NPTS]; /* stochastic forcing per step */
    double work[SYNTH_NPTS], work2[SYNTH_NPTS];
    rng_t rng[SYNTH_NVARS];
    int64_t hours, start_hours, nsteps;
};

void synth_atmos_defaults(synth_atmos_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 0;
    o->start_year = 2000;
    o->years = 3;
    o->spinup_steps = 120;
}

int synth_region(double lat, float lsm)
{
    double a = fabs(lat);
    int band = a < 25.0 ? 0 : a < 60.0 ? 1 : 2;
    return 3 * (lsm > 0.5f) + band;
}

/* Blocky continents: Antarctica (lat < -62) plus seeded unions of rectangles until 28 % of the
 * cells north of -62 are land. */
static void make_lsm(synth_atmos *a)
{
    rng_t rng;
    rng_seed(&rng, a->o.seed, SYNTH_STREAM_LSM);
    for (int i = 0; i < SYNTH_NLAT; i++)
        for (int j = 0; j < SYNTH_NLON; j++) a->lsm[i * SYNTH_NLON + j] = a->lat[i] < -62.0 ? 1.0f : 0.0f;
    int nmid = 0;
    for (int i = 0; i < SYNTH_NLAT; i++)
        if (a->lat[i] >= -62.0) nmid += SYNTH_NLON;
    for (int cont = 0; cont < 60; cont++) {
        int land = 0;
        for (int i = 0; i < SYNTH_NLAT; i++)
            for (int j = 0; j < SYNTH_NLON; j++)
                if (a->lat[i] >= -62.0 && a->lsm[i * SYNTH_NLON + j] > 0.5f) land++;
        if (land >= 0.28 * nmid) break;
        double clat = -45.0 + 115.0 * rng_uniform(&rng), clon = 360.0 * rng_uniform(&rng);
        int nrect = 2 + (int)rng_below(&rng, 3);
        for (int r = 0; r < nrect; r++) {
            double rlat = clat + 24.0 * (rng_uniform(&rng) - 0.5);
            double rlon = clon + 40.0 * (rng_uniform(&rng) - 0.5);
            double hh = 6.0 + 14.0 * rng_uniform(&rng), hw = 10.0 + 25.0 * rng_uniform(&rng);
            for (int i = 0; i < SYNTH_NLAT; i++) {
                if (a->lat[i] < -62.0 || fabs(a->lat[i] - rlat) > hh) continue;
                for (int j = 0; j < SYNTH_NLON; j++) {
                    double dl = fmod(fabs(a->lon[j] - rlon), 360.0);
                    if (dl > 180.0) dl = 360.0 - dl;
                    if (dl <= hw) a->lsm[i * SYNTH_NLON + j] = 1.0f;
                }
            }
        }
    }
}

/* Zonal wind (m/s) of the toy jet: mid-latitude westerlies, weak tropical easterlies. */
static double jet(double lat_deg)
{
    double m = (fabs(lat_deg) - 45.0) / 13.0, t = lat_deg / 14.0;
    return 25.0 * exp(-m * m) - 6.0 * exp(-t * t);
}

static const double wind_factor[SYNTH_NVARS] = {1.0, 0.8, 0.4};
/* diffusion per step (grid units) over sea / land */
static const double kappa_sea[SYNTH_NVARS] = {0.05, 0.05, 0.03};
static const double kappa_land[SYNTH_NVARS] = {0.12, 0.10, 0.15};

static void setup_coefficients(synth_atmos *a)
{
    for (int i = 0; i < SYNTH_NLAT; i++) {
        double coslat = cos(a->lat[i] * PI / 180.0);
        for (int v = 0; v < SYNTH_NVARS; v++) {
            double u = wind_factor[v] * jet(a->lat[i]);
            a->shift[v][i] = u * SYNTH_DT_HOURS * 3600.0 / (EARTH_RADIUS * coslat) * (180.0 / PI) / DLAT;
        }
        double m = (fabs(a->lat[i]) - 50.0) / 15.0, storm = exp(-m * m);
        for (int j = 0; j < SYNTH_NLON; j++) {
            int p = i * SYNTH_NLON + j;
            int land = a->lsm[p] > 0.5f;
            for (int v = 0; v < SYNTH_NVARS; v++) a->kappa[v][p] = land ? kappa_land[v] : kappa_sea[v];
            a->noise_sd[0][p] = 400.0 * (0.25 + storm) * (land ? 0.8 : 1.0);
            a->noise_sd[1][p] = 0.30 * (0.5 + storm);
            a->noise_sd[2][p] = land ? 0.35 : 0.08;
        }
    }
}

void synth_atmos_climatology(const synth_atmos *a, int v, int64_t hours, double *out)
{
    double days = (double)(hours - synth_hours_from_civil(2000, 1, 1, 0)) / 24.0;
    double season = cos(2.0 * PI * (days - 15.0) / 365.2425); /* +1 in mid-January */
    int64_t hm = hours % 24;
    double utc = (double)(hm < 0 ? hm + 24 : hm);
    for (int i = 0; i < SYNTH_NLAT; i++) {
        double phi = a->lat[i] * PI / 180.0, s = sin(phi), c = cos(phi);
        for (int j = 0; j < SYNTH_NLON; j++) {
            int p = i * SYNTH_NLON + j;
            double L = a->lsm[p];
            double val;
            if (v == 0) {
                val = G0 * (5780.0 - 520.0 * s * s - 130.0 * s * season * (1.0 + 0.5 * L));
            } else if (v == 1) {
                val = 289.0 - 40.0 * s * s - 8.0 * s * season * (1.0 + 0.8 * L);
            } else {
                double local = utc + a->lon[j] / 15.0;
                double diurnal = c * (5.0 * L + 0.4 * (1.0 - L)) * cos(2.0 * PI * (local - 15.0) / 24.0);
                val = 301.0 - 48.0 * s * s - 11.0 * s * season * (1.0 + L) + diurnal;
            }
            out[p] = val;
        }
    }
}

/* Semi-Lagrangian zonal advection with periodic cubic Lagrange interpolation. */
static void advect(const double *in, double *out, const double *shift)
{
    for (int i = 0; i < SYNTH_NLAT; i++) {
        const double *row = in + i * SYNTH_NLON;
        double *orow = out + i * SYNTH_NLON;
        for (int j = 0; j < SYNTH_NLON; j++) {
            double x = j - shift[i];
            double fl = floor(x), f = x - fl;
            int i0 = (int)fl;
            double w[4] = {-f * (f - 1.0) * (f - 2.0) / 6.0, (f + 1.0) * (f - 1.0) * (f - 2.0) / 2.0,
                           -(f + 1.0) * f * (f - 2.0) / 2.0, (f + 1.0) * f * (f - 1.0) / 6.0};
            double s = 0.0;
            for (int k = 0; k < 4; k++) {
                int jj = ((i0 - 1 + k) % SYNTH_NLON + SYNTH_NLON) % SYNTH_NLON;
                s += w[k] * row[jj];
            }
            orow[j] = s;
        }
    }
}

/* Explicit diffusion with the centre cell's coefficient; periodic in longitude, no flux across
 * the polar rows. */
static void diffuse(const double *in, double *out, const double *kappa)
{
    for (int i = 0; i < SYNTH_NLAT; i++)
        for (int j = 0; j < SYNTH_NLON; j++) {
            int p = i * SYNTH_NLON + j;
            double c = in[p];
            double n = i > 0 ? in[p - SYNTH_NLON] : c, s = i < SYNTH_NLAT - 1 ? in[p + SYNTH_NLON] : c;
            double w = in[i * SYNTH_NLON + (j + SYNTH_NLON - 1) % SYNTH_NLON];
            double e = in[i * SYNTH_NLON + (j + 1) % SYNTH_NLON];
            out[p] = c + kappa[p] * (n + s + w + e - 4.0 * c);
        }
}

/* Unit-variance spatially correlated noise: white N(0,1), SMOOTH_PASSES 1-2-1 passes in each
 * direction (periodic in longitude, edge rows repeated), renormalised by the interior factor
 * 1 / sum_k w_k^2 of the resulting binomial kernel w = binomial(2 P) / 4^P. */
#define SMOOTH_PASSES 4
void synth_smooth_noise(rng_t *rng, double *xi, double *tmp)
{
    for (int p = 0; p < SYNTH_NPTS; p++) xi[p] = rng_normal(rng);
    for (int pass = 0; pass < SMOOTH_PASSES; pass++) {
        for (int i = 0; i < SYNTH_NLAT; i++)
            for (int j = 0; j < SYNTH_NLON; j++) {
                const double *r = xi + i * SYNTH_NLON;
                tmp[i * SYNTH_NLON + j] =
                    0.25 * r[(j + SYNTH_NLON - 1) % SYNTH_NLON] + 0.5 * r[j] + 0.25 * r[(j + 1) % SYNTH_NLON];
            }
        for (int i = 0; i < SYNTH_NLAT; i++) {
            int in_ = i > 0 ? i - 1 : i, is = i < SYNTH_NLAT - 1 ? i + 1 : i;
            for (int j = 0; j < SYNTH_NLON; j++)
                xi[i * SYNTH_NLON + j] = 0.25 * tmp[in_ * SYNTH_NLON + j] + 0.5 * tmp[i * SYNTH_NLON + j] +
                                         0.25 * tmp[is * SYNTH_NLON + j];
        }
    }
    /* sum of squared weights of binomial(8) / 256: C(16, 8) / 4^8 */
    const double renorm = 65536.0 / 12870.0;
    for (int p = 0; p < SYNTH_NPTS; p++) xi[p] *= renorm;
}

static void step_anomalies(synth_atmos *a)
{
    for (int v = 0; v < SYNTH_NVARS; v++) {
        advect(a->anom[v], a->work, a->shift[v]);
        diffuse(a->work, a->anom[v], a->kappa[v]);
    }
    double *z = a->anom[0], *t = a->anom[1], *t2 = a->anom[2];
    for (int p = 0; p < SYNTH_NPTS; p++) {
        z[p] *= 1.0 - 1.0 / 24.0;
        t[p] += (z[p] / 200.0 - t[p]) / 8.0;
        int land = a->lsm[p] > 0.5f;
        double alpha = land ? 1.2 : 0.5, tau = land ? 3.0 : 20.0;
        t2[p] += (alpha * t[p] - t2[p]) / tau;
    }
    for (int v = 0; v < SYNTH_NVARS; v++) {
        synth_smooth_noise(&a->rng[v], a->work, a->work2);
        for (int p = 0; p < SYNTH_NPTS; p++) a->anom[v][p] += a->noise_sd[v][p] * a->work[p];
    }
}

int synth_atmos_create(const synth_atmos_opts *o, synth_atmos **out)
{
    *out = NULL;
    if (o->years < 1 || o->years > 200)
        return sm_fail(SM_ERR_USAGE, "synth toy-atmosphere: --years %d is invalid (1..200)", o->years);
    if (o->start_year < 1900 || o->start_year > 2200)
        return sm_fail(SM_ERR_USAGE, "synth toy-atmosphere: --start-year %d is invalid (1900..2200)", o->start_year);
    if (o->days < 0 || o->days > 100000)
        return sm_fail(SM_ERR_USAGE, "synth toy-atmosphere: --days %d is invalid (0..100000)", o->days);
    if (o->spinup_steps < 0 || o->spinup_steps > 100000)
        return sm_fail(SM_ERR_USAGE, "synth toy-atmosphere: spin-up %d steps is invalid", o->spinup_steps);
    synth_atmos *a = calloc(1, sizeof *a);
    if (!a) return sm_fail(SM_ERR_NUMERIC, "synth toy-atmosphere: out of memory");
    a->o = *o;
    for (int i = 0; i < SYNTH_NLAT; i++) a->lat[i] = 90.0 - DLAT / 2.0 - DLAT * i;
    for (int j = 0; j < SYNTH_NLON; j++) a->lon[j] = DLAT * j;
    make_lsm(a);
    setup_coefficients(a);
    for (int v = 0; v < SYNTH_NVARS; v++) rng_seed(&a->rng[v], o->seed, SYNTH_STREAM_ATMOS_NOISE + (uint64_t)v);
    a->start_hours = synth_hours_from_civil(o->start_year, 1, 1, 0);
    a->nsteps = o->days > 0 ? (int64_t)o->days * (24 / SYNTH_DT_HOURS)
                            : (synth_hours_from_civil(o->start_year + o->years, 1, 1, 0) - a->start_hours) / SYNTH_DT_HOURS;
    a->hours = a->start_hours - (int64_t)o->spinup_steps * SYNTH_DT_HOURS;
    for (int s = 0; s < o->spinup_steps; s++) synth_atmos_advance(a);
    *out = a;
    return SM_OK;
}

void synth_atmos_free(synth_atmos *a) { free(a); }
int64_t synth_atmos_nsteps(const synth_atmos *a) { return a->nsteps; }
int64_t synth_atmos_hours(const synth_atmos *a) { return a->hours; }
const float *synth_atmos_lsm(const synth_atmos *a) { return a->lsm; }
const double *synth_atmos_lat(const synth_atmos *a) { return a->lat; }
const double *synth_atmos_lon(const synth_atmos *a) { return a->lon; }

void synth_atmos_advance(synth_atmos *a)
{
    step_anomalies(a);
    a->hours += SYNTH_DT_HOURS;
}

void synth_atmos_fields(const synth_atmos *a, float *out)
{
    double clim[SYNTH_NPTS];
    for (int v = 0; v < SYNTH_NVARS; v++) {
        synth_atmos_climatology(a, v, a->hours, clim);
        for (int p = 0; p < SYNTH_NPTS; p++) out[v * SYNTH_NPTS + p] = (float)(clim[p] + a->anom[v][p]);
    }
}

/* ---- writing ---- */

static const synth_field *const atmos_fields[SYNTH_NVARS] = {&synth_field_z500, &synth_field_t850, &synth_field_t2m};

int synth_atmos_write(const synth_atmos_opts *o, const char *dir)
{
    char path_nc[PATH_MAX], path_grib[PATH_MAX];
    if (snprintf(path_nc, sizeof path_nc, "%s/toy-atmosphere.nc", dir) >= (int)sizeof path_nc ||
        snprintf(path_grib, sizeof path_grib, "%s/toy-atmosphere.grib2", dir) >= (int)sizeof path_grib)
        return sm_fail(SM_ERR_IO, "%s: output path too long", dir);
    synth_atmos *a = NULL;
    int st = synth_atmos_create(o, &a);
    if (st) return st;
    synth_nc nc;
    synth_grib gr;
    memset(&nc, 0, sizeof nc);
    memset(&gr, 0, sizeof gr);
    int nt = (int)a->nsteps;
    float *fields = malloc(sizeof(float) * SYNTH_NVARS * SYNTH_NPTS);
    int *region = malloc(sizeof(int) * SYNTH_NPTS);
    if (!fields || !region) {
        st = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path_nc);
        goto done;
    }
#define NC(call, what)                                                                                           \
    do {                                                                                                         \
        if ((st = synth_nc_check(&nc, (call), what))) goto done;                                                \
    } while (0)
#define TRY(expr)                                                                                                \
    do {                                                                                                         \
        if ((st = (expr))) goto done;                                                                            \
    } while (0)
    TRY(synth_nc_create(&nc, path_nc, "smoecast synthetic toy atmosphere (z500, t850, t2m, land-sea mask)"));
    TRY(synth_grib_open(&gr, path_grib, SYNTH_NLAT, SYNTH_NLON, a->lat[0], a->lon[0], DLAT, DLAT));
    synth_latlon_ids ll;
    TRY(synth_nc_def_latlon(&nc, SYNTH_NLAT, SYNTH_NLON, &ll));
    int d_time = -1, v_time;
    TRY(synth_nc_def_time(&nc, "time", "time", nt, &d_time, &v_time));
    int dims3[3] = {d_time, ll.dim_lat, ll.dim_lon}, dims2[2] = {ll.dim_lat, ll.dim_lon};
    size_t chunks[3] = {nt < 8 ? (size_t)nt : 8, SYNTH_NLAT, SYNTH_NLON};
    int v_field[SYNTH_NVARS], v_lsm, v_region;
    for (int v = 0; v < SYNTH_NVARS; v++)
        TRY(synth_nc_def_field(&nc, atmos_fields[v], 3, dims3, chunks, 1, NULL, &v_field[v]));
    TRY(synth_nc_def_field(&nc, &synth_field_lsm, 2, dims2, NULL, 1, NULL, &v_lsm));
    NC(nc_def_var(nc.ncid, "region", NC_INT, 2, dims2, &v_region), "region");
    int flags[6] = {0, 1, 2, 3, 4, 5};
    NC(nc_put_att_int(nc.ncid, v_region, "flag_values", NC_INT, 6, flags), "region flag_values");
    TRY(synth_nc_att_text(&nc, v_region, "flag_meanings", synth_region_meanings));
    TRY(synth_nc_att_text(&nc, v_region, "long_name",
                          "dynamical region: 3 * land + latitude band (|lat| < 25, < 60, >= 60)"));
    TRY(synth_nc_att_text(&nc, v_region, "grid_mapping", "crs"));
    char buf[128];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)o->seed);
    TRY(synth_nc_att_text(&nc, NC_GLOBAL, "seed", buf));
    TRY(synth_nc_att_int(&nc, NC_GLOBAL, "start_year", o->start_year));
    if (o->days > 0) TRY(synth_nc_att_int(&nc, NC_GLOBAL, "days", o->days));
    else TRY(synth_nc_att_int(&nc, NC_GLOBAL, "years", o->years));
    TRY(synth_nc_att_text(&nc, NC_GLOBAL, "generator",
                          "anomalies about an analytic seasonal + diurnal climatology: semi-Lagrangian advection by a "
                          "latitude-dependent zonal jet, land/sea-dependent diffusion, relaxation and coupling, "
                          "smoothed Gaussian forcing; see docs/synthetic.md"));
    NC(nc_enddef(nc.ncid), "enddef");
    TRY(synth_nc_put_latlon(&nc, &ll, a->lat, a->lon));
    NC(nc_put_var_float(nc.ncid, v_lsm, a->lsm), "lsm");
    for (int p = 0; p < SYNTH_NPTS; p++) region[p] = synth_region(a->lat[p / SYNTH_NLON], a->lsm[p]);
    NC(nc_put_var_int(nc.ncid, v_region, region), "region");
    TRY(synth_grib_write(&gr, &synth_field_lsm, a->hours, 0, -1, 0, a->lsm));
    for (int k = 0; k < nt; k++) {
        if (sm_interrupted()) {
            st = sm_fail(SM_ERR_INTERRUPTED, "%s: interrupted at time step %d", path_nc, k);
            goto done;
        }
        if (k > 0) synth_atmos_advance(a);
        synth_atmos_fields(a, fields);
        double th = (double)a->hours;
        size_t t0 = (size_t)k, one = 1;
        NC(nc_put_vara_double(nc.ncid, v_time, &t0, &one, &th), "time");
        size_t start[3] = {(size_t)k, 0, 0}, count[3] = {1, SYNTH_NLAT, SYNTH_NLON};
        for (int v = 0; v < SYNTH_NVARS; v++) {
            NC(nc_put_vara_float(nc.ncid, v_field[v], start, count, fields + v * SYNTH_NPTS), atmos_fields[v]->name);
            TRY(synth_grib_write(&gr, atmos_fields[v], a->hours, 0, -1, 0, fields + v * SYNTH_NPTS));
        }
    }
#undef NC
#undef TRY
    if ((st = synth_nc_close(&nc))) goto done;
    st = synth_grib_close(&gr);
done:
    if (st) {
        synth_nc_abort(&nc);
        synth_grib_abort(&gr);
    }
    free(fields);
    free(region);
    synth_atmos_free(a);
    return st;
}
