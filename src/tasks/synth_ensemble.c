/* `smoecast synth ensemble`: 48 h ensemble forecasts of the toy atmosphere with region-dependent
 * bias, damping, error and under-dispersion; the verifying truth (the toy atmosphere, or in the
 * EMOS variant a draw from N(a + b mean, c + d var) with known coefficients); and a model climate
 * (the same forecast system for the same weekdays in earlier years). docs/synthetic.md. */
#include "tasks/synth.h"
#include "tasks/synth_write.h"
#include "core/log.h"
#include "core/outfile.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per variable error scale S_v (z500 m2 s-2, t850 K, t2m K). */
static const double ens_scale[SYNTH_NVARS] = {650.0, 2.5, 2.5};
/* Per variable and region (sea tropics, sea mid, sea polar, land tropics, land mid, land polar),
 * in units of S_v: constant bias b0, anomaly damping lambda, error sd sigma_e. */
static const double ens_bias[SYNTH_NVARS][6] = {
    {0.05, -0.10, 0.15, 0.10, -0.25, 0.30}, {0.10, -0.10, 0.20, 0.30, -0.30, 0.50}, {0.20, -0.10, 0.30, 0.60, -0.50, 0.80}};
static const double ens_damp[SYNTH_NVARS][6] = {
    {0.05, 0.10, 0.10, 0.05, 0.15, 0.10}, {0.05, 0.10, 0.10, 0.10, 0.20, 0.15}, {0.05, 0.10, 0.10, 0.15, 0.30, 0.20}};
static const double ens_err[SYNTH_NVARS][6] = {
    {0.15, 0.35, 0.30, 0.15, 0.40, 0.30}, {0.20, 0.35, 0.30, 0.30, 0.45, 0.40}, {0.15, 0.30, 0.30, 0.40, 0.50, 0.50}};
/* Member spread as a fraction of the error sd (under-dispersion), per region. */
static const double ens_spread[6] = {0.80, 0.70, 0.65, 0.70, 0.60, 0.55};
/* t2m cold-air bias: + kappa S max(0, -t850' / S_t850), per region (land only). */
static const double ens_cold[6] = {0.0, 0.0, 0.0, 0.30, 0.60, 0.40};
/* Predictability modulation: sigma_t = sigma_e S exp(PRED zeta - PRED^2 / 2). */
#define ENS_PRED 0.35

static const double emos_coef[SYNTH_NVARS][4] = {
    {1700.0, 0.97, 2.0e4, 1.5}, {13.5, 0.95, 0.3, 1.6}, {14.5, 0.95, 0.4, 1.8}};

void synth_ens_emos_coefficients(int v, double coef[4])
{
    for (int i = 0; i < 4; i++) coef[i] = emos_coef[v][i];
}

void synth_ens_defaults(synth_ens_opts *o)
{
    memset(o, 0, sizeof *o);
    synth_atmos_defaults(&o->atmos);
    o->members = 10;
    o->lead_hours = 48;
    o->clim_years = 2;
    o->emos_truth = 0;
}

int synth_ens_inits(int64_t h0, int64_t h1, int lead_hours, int64_t *out)
{
    int n = 0;
    int64_t first = h0 % 24 == 0 ? h0 : h0 + (24 - ((h0 % 24) + 24) % 24);
    for (int64_t h = first; h < h1 && h + lead_hours < h1; h += 24) {
        int wd = synth_weekday(h);
        if (wd != 0 && wd != 3) continue;
        if (out) out[n] = h;
        n++;
    }
    return n;
}

void synth_ens_period(const synth_ens_opts *o, int64_t *h0, int64_t *h1)
{
    *h0 = synth_hours_from_civil(o->atmos.start_year, 1, 1, 0);
    *h1 = o->atmos.days > 0 ? *h0 + (int64_t)o->atmos.days * 24
                            : synth_hours_from_civil(o->atmos.start_year + o->atmos.years, 1, 1, 0);
}

int synth_ens_climate_inits(const synth_ens_opts *o, int64_t *out)
{
    int64_t lim = synth_hours_from_civil(o->atmos.start_year, 1, 1, 0);
    if (o->clim_years <= 0) return 0;
    if (o->atmos.days <= 0 || o->atmos.days >= 365) /* whole years: everything before the forecasts */
        return synth_ens_inits(synth_hours_from_civil(o->atmos.start_year - o->clim_years, 1, 1, 0), lim,
                               o->lead_hours, out);
    int n = 0;
    for (int y = o->clim_years; y >= 1; y--) {
        int64_t h0 = synth_hours_from_civil(o->atmos.start_year - y, 1, 1, 0);
        int64_t h1 = h0 + (int64_t)o->atmos.days * 24;
        n += synth_ens_inits(h0, h1 < lim ? h1 : lim, o->lead_hours, out ? out + n : NULL);
    }
    return n;
}

int synth_ens_members(const synth_ens_opts *o, const synth_atmos *a, int64_t init_hours, const float *truth,
                       float *members)
{
    int M = o->members;
    int64_t valid = init_hours + o->lead_hours;
    rng_t rng;
    rng_seed(&rng, o->atmos.seed, (uint64_t)SYNTH_STREAM_ENS_INIT + (uint64_t)(init_hours / SYNTH_DT_HOURS));
    double *clim = malloc(sizeof(double) * SYNTH_NPTS * 5);
    if (!clim) return sm_fail(SM_ERR_NUMERIC, "synth ensemble: out of memory");
    double *zeta = clim + SYNTH_NPTS, *eta = zeta + SYNTH_NPTS, *eps = eta + SYNTH_NPTS, *tmp = eps + SYNTH_NPTS;
    const float *lsm = synth_atmos_lsm(a);
    const double *lat = synth_atmos_lat(a);
    double t850clim[SYNTH_NPTS];
    synth_atmos_climatology(a, 1, valid, t850clim);
    synth_smooth_noise(&rng, zeta, tmp);
    for (int v = 0; v < SYNTH_NVARS; v++) {
        synth_atmos_climatology(a, v, valid, clim);
        synth_smooth_noise(&rng, eta, tmp);
        double S = ens_scale[v];
        float *mv = members + (size_t)v * M * SYNTH_NPTS;
        for (int p = 0; p < SYNTH_NPTS; p++) {
            int r = synth_region(lat[p / SYNTH_NLON], lsm[p]);
            double y = truth[v * SYNTH_NPTS + p], anom = y - clim[p];
            double sig = ens_err[v][r] * S * exp(ENS_PRED * zeta[p] - 0.5 * ENS_PRED * ENS_PRED);
            double base = clim[p] + (1.0 - ens_damp[v][r]) * anom + S * ens_bias[v][r] + sig * eta[p];
            if (v == 2) {
                double t850a = (truth[SYNTH_NPTS + p] - t850clim[p]) / ens_scale[1];
                base += S * ens_cold[r] * (t850a < 0.0 ? -t850a : 0.0);
            }
            mv[p] = (float)base; /* member 0: the control, no member perturbation */
            tmp[p] = ens_spread[r] * sig;
        }
        /* tmp is overwritten by the noise smoother: keep the member sd in eta (no longer needed) */
        memcpy(eta, tmp, sizeof(double) * SYNTH_NPTS);
        for (int m = 1; m < M; m++) {
            synth_smooth_noise(&rng, eps, tmp);
            float *out = mv + (size_t)m * SYNTH_NPTS;
            for (int p = 0; p < SYNTH_NPTS; p++) out[p] = (float)((double)mv[p] + eta[p] * eps[p]);
        }
    }
    free(clim);
    return SM_OK;
}

void synth_ens_emos_truth(const synth_ens_opts *o, int64_t init_hours, const float *members, float *truth)
{
    int M = o->members;
    rng_t rng;
    rng_seed(&rng, o->atmos.seed, (uint64_t)SYNTH_STREAM_ENS_EMOS + (uint64_t)(init_hours / SYNTH_DT_HOURS));
    for (int v = 0; v < SYNTH_NVARS; v++) {
        const float *mv = members + (size_t)v * M * SYNTH_NPTS;
        for (int p = 0; p < SYNTH_NPTS; p++) {
            double mean = 0.0, var = 0.0;
            for (int m = 0; m < M; m++) mean += mv[(size_t)m * SYNTH_NPTS + p];
            mean /= M;
            for (int m = 0; m < M; m++) {
                double d = mv[(size_t)m * SYNTH_NPTS + p] - mean;
                var += d * d;
            }
            var /= M - 1;
            const double *c = emos_coef[v];
            truth[v * SYNTH_NPTS + p] = (float)(c[0] + c[1] * mean + sqrt(c[2] + c[3] * var) * rng_normal(&rng));
        }
    }
}

/* ---- writing ---- */

static const synth_field *const ens_fields[SYNTH_NVARS] = {&synth_field_z500, &synth_field_t850, &synth_field_t2m};

typedef struct {
    synth_nc nc;
    synth_grib gr;
    int members; /* 0 for the truth file */
    int v_time, v_frt, v_field[SYNTH_NVARS];
} ens_file;

static int ens_file_open(ens_file *f, const synth_ens_opts *o, const synth_atmos *a, const char *dir,
                         const char *name, int n, int members, const char *title, const char *what)
{
    char path[PATH_MAX], gpath[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s.nc", dir, name) >= (int)sizeof path ||
        snprintf(gpath, sizeof gpath, "%s/%s.grib2", dir, name) >= (int)sizeof gpath)
        return sm_fail(SM_ERR_IO, "%s: output path too long", dir);
    f->members = members;
    int st;
    if ((st = synth_nc_create(&f->nc, path, title))) return st;
    const double *lat = synth_atmos_lat(a), *lon = synth_atmos_lon(a);
    if ((st = synth_grib_open(&f->gr, gpath, SYNTH_NLAT, SYNTH_NLON, lat[0], lon[0], 5.625, 5.625))) return st;
    synth_nc *nc = &f->nc;
    int ncid = nc->ncid;
    synth_latlon_ids ll;
    if ((st = synth_nc_def_latlon(nc, SYNTH_NLAT, SYNTH_NLON, &ll))) return st;
    int d_time = -1, d_real = -1, v_real = -1, v_fp = -1;
    if ((st = synth_nc_def_time(nc, "time", "time", n, &d_time, &f->v_time))) return st;
    if (members > 0) {
        if ((st = synth_nc_def_time(nc, "forecast_reference_time", "forecast_reference_time", n, &d_time, &f->v_frt)))
            return st;
        if ((st = synth_nc_check(nc, nc_def_var(ncid, "forecast_period", NC_DOUBLE, 0, NULL, &v_fp), "forecast_period")))
            return st;
        if ((st = synth_nc_att_text(nc, v_fp, "standard_name", "forecast_period")) ||
            (st = synth_nc_att_text(nc, v_fp, "long_name", "forecast lead time")) ||
            (st = synth_nc_att_text(nc, v_fp, "units", "hours")))
            return st;
        if ((st = synth_nc_check(nc, nc_def_dim(ncid, "realization", (size_t)members, &d_real), "realization")))
            return st;
        if ((st = synth_nc_check(nc, nc_def_var(ncid, "realization", NC_INT, 1, &d_real, &v_real), "realization")))
            return st;
        if ((st = synth_nc_att_text(nc, v_real, "standard_name", "realization")) ||
            (st = synth_nc_att_text(nc, v_real, "units", "1")) ||
            (st = synth_nc_att_text(nc, v_real, "long_name", "ensemble member number (0 = control)")))
            return st;
    }
    int dims[4], nd = 0;
    dims[nd++] = d_time;
    if (members > 0) dims[nd++] = d_real;
    dims[nd++] = ll.dim_lat;
    dims[nd++] = ll.dim_lon;
    size_t chunks[4] = {1, (size_t)(members > 0 ? members : SYNTH_NLAT), SYNTH_NLAT, SYNTH_NLON};
    if (members == 0) chunks[2] = SYNTH_NLON;
    for (int v = 0; v < SYNTH_NVARS; v++)
        if ((st = synth_nc_def_field(nc, ens_fields[v], nd, dims, chunks, 1,
                                     members > 0 ? "forecast_reference_time forecast_period" : NULL, &f->v_field[v])))
            return st;
    int v_lsm, v_region, dims2[2] = {ll.dim_lat, ll.dim_lon};
    if ((st = synth_nc_def_field(nc, &synth_field_lsm, 2, dims2, NULL, 1, NULL, &v_lsm))) return st;
    if ((st = synth_nc_check(nc, nc_def_var(ncid, "region", NC_INT, 2, dims2, &v_region), "region"))) return st;
    int flags[6] = {0, 1, 2, 3, 4, 5};
    if ((st = synth_nc_check(nc, nc_put_att_int(ncid, v_region, "flag_values", NC_INT, 6, flags), "region")) ||
        (st = synth_nc_att_text(nc, v_region, "flag_meanings", synth_region_meanings)) ||
        (st = synth_nc_att_text(nc, v_region, "long_name", "error-model region: 3 * land + latitude band")) ||
        (st = synth_nc_att_text(nc, v_region, "grid_mapping", "crs")))
        return st;
    char buf[512];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)o->atmos.seed);
    if ((st = synth_nc_att_text(nc, NC_GLOBAL, "seed", buf)) || (st = synth_nc_att_text(nc, NC_GLOBAL, "content", what)) ||
        (st = synth_nc_att_int(nc, NC_GLOBAL, "lead_hours", o->lead_hours)) ||
        (st = synth_nc_att_int(nc, NC_GLOBAL, "members", o->members)) ||
        (st = synth_nc_att_text(nc, NC_GLOBAL, "truth_variant", o->emos_truth ? "emos" : "toy-atmosphere")))
        return st;
    if (o->atmos.days > 0)
        snprintf(buf, sizeof buf,
                 "toy atmosphere (smoecast synth toy-atmosphere --seed %llu --start-year %d --days %lld reproduces it)",
                 (unsigned long long)o->atmos.seed, o->atmos.start_year - o->clim_years,
                 (long long)((synth_hours_from_civil(o->atmos.start_year, 1, 1, 0) -
                              synth_hours_from_civil(o->atmos.start_year - o->clim_years, 1, 1, 0)) / 24 + o->atmos.days));
    else
        snprintf(buf, sizeof buf,
                 "toy atmosphere (smoecast synth toy-atmosphere --seed %llu --start-year %d --years %d reproduces it)",
                 (unsigned long long)o->atmos.seed, o->atmos.start_year - o->clim_years, o->atmos.years + o->clim_years);
    if ((st = synth_nc_att_text(nc, NC_GLOBAL, "atmosphere", buf))) return st;
    if ((st = synth_nc_att_text(nc, NC_GLOBAL, "model_climate",
                                "ensemble_climate.nc: the same forecast system initialised on the same weekdays "
                                "(Monday, Thursday 00Z) in the clim_years years before the forecasts (with --days: "
                                "the same calendar window of each of those years); for the EFI use the forecasts "
                                "whose initialisation is within 15 days of the same day of year")))
        return st;
    if (o->emos_truth) {
        if ((st = synth_nc_att_text(nc, NC_GLOBAL, "emos_model",
                                    "truth ~ N(a + b * mean, c + d * var); mean and var over the members of each "
                                    "variable at each point, var with divisor M - 1")))
            return st;
        for (int v = 0; v < SYNTH_NVARS; v++) {
            static const char *const cn[4] = {"a", "b", "c", "d"};
            for (int i = 0; i < 4; i++) {
                char att[64];
                snprintf(att, sizeof att, "emos_%s_%s", ens_fields[v]->name, cn[i]);
                if ((st = synth_nc_att_double(nc, NC_GLOBAL, att, emos_coef[v][i]))) return st;
            }
        }
    }
    if ((st = synth_nc_check(nc, nc_enddef(ncid), "enddef"))) return st;
    if ((st = synth_nc_put_latlon(nc, &ll, lat, lon))) return st;
    if ((st = synth_nc_check(nc, nc_put_var_float(ncid, v_lsm, synth_atmos_lsm(a)), "lsm"))) return st;
    int region[SYNTH_NPTS];
    for (int p = 0; p < SYNTH_NPTS; p++) region[p] = synth_region(lat[p / SYNTH_NLON], synth_atmos_lsm(a)[p]);
    if ((st = synth_nc_check(nc, nc_put_var_int(ncid, v_region, region), "region"))) return st;
    if (members > 0) {
        double fp = o->lead_hours;
        if ((st = synth_nc_check(nc, nc_put_var_double(ncid, v_fp, &fp), "forecast_period"))) return st;
        int *rv = malloc(sizeof(int) * (size_t)members);
        if (!rv) return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
        for (int m = 0; m < members; m++) rv[m] = m;
        st = synth_nc_check(nc, nc_put_var_int(ncid, v_real, rv), "realization");
        free(rv);
        if (st) return st;
    }
    return SM_OK;
}

/* Record k: data layout [var][member][pt] (members > 0) or [var][pt]. */
static int ens_file_put(ens_file *f, int k, int64_t init, int64_t valid, const float *data)
{
    synth_nc *nc = &f->nc;
    int st;
    size_t t0 = (size_t)k, one = 1;
    double tv = (double)valid, ti = (double)init;
    if ((st = synth_nc_check(nc, nc_put_vara_double(nc->ncid, f->v_time, &t0, &one, &tv), "time"))) return st;
    int M = f->members;
    if (M > 0 && (st = synth_nc_check(nc, nc_put_vara_double(nc->ncid, f->v_frt, &t0, &one, &ti), "forecast_reference_time")))
        return st;
    for (int v = 0; v < SYNTH_NVARS; v++) {
        if (M > 0) {
            size_t start[4] = {t0, 0, 0, 0}, count[4] = {1, (size_t)M, SYNTH_NLAT, SYNTH_NLON};
            const float *dv = data + (size_t)v * M * SYNTH_NPTS;
            if ((st = synth_nc_check(nc, nc_put_vara_float(nc->ncid, f->v_field[v], start, count, dv), ens_fields[v]->name)))
                return st;
            for (int m = 0; m < M; m++)
                if ((st = synth_grib_write(&f->gr, ens_fields[v], init, valid - init, m, M, dv + (size_t)m * SYNTH_NPTS)))
                    return st;
        } else {
            size_t start[3] = {t0, 0, 0}, count[3] = {1, SYNTH_NLAT, SYNTH_NLON};
            const float *dv = data + (size_t)v * SYNTH_NPTS;
            if ((st = synth_nc_check(nc, nc_put_vara_float(nc->ncid, f->v_field[v], start, count, dv), ens_fields[v]->name)))
                return st;
            if ((st = synth_grib_write(&f->gr, ens_fields[v], valid, 0, -1, 0, dv))) return st;
        }
    }
    return SM_OK;
}

static int ens_file_close(ens_file *f)
{
    int st = synth_nc_close(&f->nc);
    if (st) return st;
    return synth_grib_close(&f->gr);
}

static void ens_file_abort(ens_file *f)
{
    synth_nc_abort(&f->nc);
    synth_grib_abort(&f->gr);
}

int synth_ens_write(const synth_ens_opts *o, const char *dir)
{
    if (o->members < 2 || o->members > 1000)
        return sm_fail(SM_ERR_USAGE, "synth ensemble: --members %d is invalid (2..1000)", o->members);
    if (o->clim_years < 0 || o->clim_years > 100)
        return sm_fail(SM_ERR_USAGE, "synth ensemble: --clim-years %d is invalid (0..100)", o->clim_years);
    if (o->lead_hours <= 0 || o->lead_hours % SYNTH_DT_HOURS)
        return sm_fail(SM_ERR_USAGE, "synth ensemble: lead %d h is not a positive multiple of 6 h", o->lead_hours);
    int64_t h0, h1;
    synth_ens_period(o, &h0, &h1);
    synth_atmos_opts ao = o->atmos;
    ao.start_year = o->atmos.start_year - o->clim_years;
    ao.years = o->atmos.years + o->clim_years;
    if (o->atmos.days > 0) ao.days = (int)((h1 - synth_hours_from_civil(ao.start_year, 1, 1, 0)) / 24);
    synth_atmos *a = NULL;
    int st = synth_atmos_create(&ao, &a);
    if (st) return st;
    int nclim = synth_ens_climate_inits(o, NULL);
    int nfc = synth_ens_inits(h0, h1, o->lead_hours, NULL);
    int M = o->members;
    int64_t *inits = malloc(sizeof(int64_t) * (size_t)(nclim + nfc + 1));
    float *truth = malloc(sizeof(float) * SYNTH_NVARS * SYNTH_NPTS);
    float *emos = malloc(sizeof(float) * SYNTH_NVARS * SYNTH_NPTS);
    float *members = malloc(sizeof(float) * SYNTH_NVARS * (size_t)M * SYNTH_NPTS);
    ens_file fc, tr, cl;
    memset(&fc, 0, sizeof fc);
    memset(&tr, 0, sizeof tr);
    memset(&cl, 0, sizeof cl);
    if (!inits || !truth || !emos || !members) {
        st = sm_fail(SM_ERR_NUMERIC, "synth ensemble: out of memory");
        goto done;
    }
    if (nfc < 1) {
        st = sm_fail(SM_ERR_USAGE, "synth ensemble: no Monday/Thursday initialisation with its %d h lead fits in the "
                                   "period (use more --years or --days)", o->lead_hours);
        goto done;
    }
    synth_ens_climate_inits(o, inits);
    synth_ens_inits(h0, h1, o->lead_hours, inits + nclim);
    if ((st = ens_file_open(&fc, o, a, dir, "ensemble", nfc, M, "smoecast synthetic ensemble forecasts (48 h lead)",
                            "ensemble forecasts")))
        goto done;
    if ((st = ens_file_open(&tr, o, a, dir, "ensemble_truth", nfc, 0, "smoecast synthetic ensemble: verifying truth",
                            o->emos_truth ? "verifying truth, EMOS variant" : "verifying truth (toy atmosphere)")))
        goto done;
    if (nclim > 0 &&
        (st = ens_file_open(&cl, o, a, dir, "ensemble_climate", nclim, M,
                            "smoecast synthetic ensemble: model climate (reforecasts of earlier years)",
                            "model climate: ensemble forecasts initialised in the years before the forecasts")))
        goto done;
    for (int k = 0; k < nclim + nfc; k++) {
        if (sm_interrupted()) {
            st = sm_fail(SM_ERR_INTERRUPTED, "%s/ensemble.nc: interrupted at initialisation %d", dir, k);
            goto done;
        }
        int64_t valid = inits[k] + o->lead_hours;
        while (synth_atmos_hours(a) < valid) synth_atmos_advance(a);
        synth_atmos_fields(a, truth);
        if ((st = synth_ens_members(o, a, inits[k], truth, members))) goto done;
        if (k < nclim) {
            if ((st = ens_file_put(&cl, k, inits[k], valid, members))) goto done;
        } else {
            if ((st = ens_file_put(&fc, k - nclim, inits[k], valid, members))) goto done;
            if (o->emos_truth) synth_ens_emos_truth(o, inits[k], members, emos);
            if ((st = ens_file_put(&tr, k - nclim, inits[k], valid, o->emos_truth ? emos : truth))) goto done;
        }
    }
    if ((st = ens_file_close(&fc)) || (st = ens_file_close(&tr))) goto done;
    if (nclim > 0) st = ens_file_close(&cl);
done:
    if (st) {
        ens_file_abort(&fc);
        ens_file_abort(&tr);
        ens_file_abort(&cl);
    }
    free(inits);
    free(truth);
    free(emos);
    free(members);
    synth_atmos_free(a);
    return st;
}
