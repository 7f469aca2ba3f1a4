/* Calibrated CF output (see post_output.h). */
#include "post/post_output.h"
#include "core/log.h"
#include "core/outfile.h"
#include "io/cf_output.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double post_norm_ppf(double p)
{
    if (!(p > 0 && p < 1)) return NAN;
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00};
    double q, r, x;
    if (p < 0.02425) {
        q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p > 1 - 0.02425) {
        q = sqrt(-2 * log(1 - p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else {
        q = p - 0.5;
        r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    /* Halley step on Phi(x) - p */
    double e = 0.5 * erfc(-x / sqrt(2.0)) - p;
    double u = e * 2.5066282746310002 * exp(x * x / 2);
    x = x - u / (1 + x * u / 2);
    return x;
}

int post_parse_percentiles(const char *text, double *out, int max, int *n)
{
    *n = 0;
    const char *s = text;
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || !(v > 0 && v < 100))
            return sm_fail(SM_ERR_USAGE, "--quantiles: '%s' is not a list of percentiles strictly between 0 and 100 (e.g. 10,50,90)", text);
        if (*n >= max) return sm_fail(SM_ERR_USAGE, "--quantiles: at most %d values", max);
        out[(*n)++] = v;
        s = end;
        if (*s == ',') s++;
        else if (*s) return sm_fail(SM_ERR_USAGE, "--quantiles: unexpected '%s' in '%s'", s, text);
    }
    if (*n == 0) return sm_fail(SM_ERR_USAGE, "--quantiles: empty list");
    return SM_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int uniq(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (k == 0 || fabs(v[i] - v[k - 1]) > 1e-6) v[k++] = v[i];
    return k;
}

static int find(const double *v, int n, double x)
{
    for (int i = 0; i < n; i++)
        if (fabs(v[i] - x) <= 1e-6) return i;
    return -1;
}

int post_output_write(const char *path, const post_output *o)
{
    size_t npts = (size_t)o->H * o->W;
    double *refs = malloc(sizeof(double) * (size_t)o->T), *pers = malloc(sizeof(double) * (size_t)o->T);
    float *buf = malloc(sizeof(float) * npts);
    if (!refs || !pers || !buf) {
        free(refs), free(pers), free(buf);
        return sm_fail(SM_ERR_NUMERIC, "out of memory");
    }
    memcpy(refs, o->ref, sizeof(double) * (size_t)o->T);
    memcpy(pers, o->period, sizeof(double) * (size_t)o->T);
    int R = uniq(refs, o->T), L = uniq(pers, o->T);
    int two = L > 1;
    outfile out;
    int st = outfile_begin(&out, path), ncid = -1, s = NC_NOERR;
    if (st) goto done;
    if ((s = nc_create(out.tmp_path, NC_NETCDF4 | NC_CLOBBER, &ncid))) goto nc_fail;
    cf_grid g = {.is_latlon = o->is_latlon, .nlat = o->H, .nlon = o->W, .lat = o->lat, .lon = o->lon, .var_crs = -1};
    if ((s = cf_global_attributes(ncid, "smoecast calibrated ensemble forecast", o->history))) goto nc_fail;
    if ((o->model_path && (s = cf_put_text(ncid, NC_GLOBAL, "smoecast_model", o->model_path))) ||
        (o->method && (s = cf_put_text(ncid, NC_GLOBAL, "smoecast_postprocess_method", o->method))) ||
        (o->model_target && (s = cf_put_text(ncid, NC_GLOBAL, "smoecast_model_target", o->model_target))) ||
        (o->forecast_path && (s = cf_put_text(ncid, NC_GLOBAL, "smoecast_forecast", o->forecast_path))) ||
        (o->extra_text && (s = cf_put_text(ncid, NC_GLOBAL, "smoecast_model_provenance", o->extra_text))) ||
        (s = nc_put_att_double(ncid, NC_GLOBAL, "sigma_floor", NC_DOUBLE, 1, &o->sigma_floor)))
        goto nc_fail;
    int dr, dp = -1, dq = -1, dm = -1, vr, vp, vt, vq = -1, vm = -1;
    if ((s = nc_def_dim(ncid, "forecast_reference_time", (size_t)R, &dr))) goto nc_fail;
    if (two && (s = nc_def_dim(ncid, "forecast_period", (size_t)L, &dp))) goto nc_fail;
    if (o->nq > 0 && (s = nc_def_dim(ncid, "percentile", (size_t)o->nq, &dq))) goto nc_fail;
    if (o->n_members > 0 && (s = nc_def_dim(ncid, "realization", (size_t)o->n_members, &dm))) goto nc_fail;
    if ((s = cf_define_time(ncid, "forecast_reference_time", "forecast_reference_time", "forecast reference time", o->calendar, 1, &dr, &vr)))
        goto nc_fail;
    if ((s = cf_define_period(ncid, "forecast_period", two ? 1 : 0, &dp, &vp))) goto nc_fail;
    int tdims[2] = {dr, dp};
    if ((s = cf_define_time(ncid, "time", "time", "valid time", o->calendar, two ? 2 : 1, tdims, &vt))) goto nc_fail;
    if (o->nq > 0) {
        if ((s = nc_def_var(ncid, "percentile", NC_DOUBLE, 1, &dq, &vq)) || (s = cf_put_text(ncid, vq, "units", "%")) ||
            (s = cf_put_text(ncid, vq, "long_name", "percentile of the predictive distribution")))
            goto nc_fail;
    }
    if (o->n_members > 0) {
        if ((s = nc_def_var(ncid, "realization", NC_INT, 1, &dm, &vm)) || (s = cf_put_text(ncid, vm, "standard_name", "realization")) ||
            (s = cf_put_text(ncid, vm, "units", "1")) ||
            (s = cf_put_text(ncid, vm, "long_name", "calibrated member: equidistant quantile (k + 0.5) / N of the predictive distribution")))
            goto nc_fail;
    }
    if ((s = cf_define_grid(ncid, &g))) goto nc_fail;
    const char *coords = two ? "time" : "time forecast_period";
    char name[3][160], lname[3][300];
    const char *tl = o->long_name && o->long_name[0] ? o->long_name : o->var;
    snprintf(name[0], sizeof name[0], "%s_mu", o->var);
    snprintf(name[1], sizeof name[1], "%s_sigma", o->var);
    snprintf(lname[0], sizeof lname[0], "predictive mean of %s", tl);
    snprintf(lname[1], sizeof lname[1], "predictive standard deviation of %s", tl);
    int vf[2], vpq = -1, vmem = -1;
    int fd[5], nd = 0;
    fd[nd++] = dr;
    if (two) fd[nd++] = dp;
    fd[nd++] = g.dim_y;
    fd[nd++] = g.dim_x;
    for (int k = 0; k < 2; k++) {
        if ((s = cf_define_field(ncid, &g, name[k], nd, fd, o->units, o->standard_name, lname[k], coords, &vf[k]))) goto nc_fail;
        if ((s = cf_put_text(ncid, vf[k], "cell_methods", k == 0 ? "realization: mean" : "realization: standard_deviation"))) goto nc_fail;
    }
    int xd[5], xn = 0;
    xd[xn++] = dr;
    if (two) xd[xn++] = dp;
    xd[xn++] = -1;
    xd[xn++] = g.dim_y;
    xd[xn++] = g.dim_x;
    if (o->nq > 0) {
        xd[two ? 2 : 1] = dq;
        snprintf(name[2], sizeof name[2], "%s_percentile", o->var);
        snprintf(lname[2], sizeof lname[2], "percentiles of the predictive distribution of %s", tl);
        if ((s = cf_define_field(ncid, &g, name[2], xn, xd, o->units, o->standard_name, lname[2], coords, &vpq))) goto nc_fail;
    }
    if (o->n_members > 0) {
        xd[two ? 2 : 1] = dm;
        snprintf(lname[2], sizeof lname[2], "calibrated members of %s", tl);
        if ((s = cf_define_field(ncid, &g, o->var, xn, xd, o->units, o->standard_name, lname[2], coords, &vmem))) goto nc_fail;
    }
    if ((s = nc_enddef(ncid)) || (s = cf_put_grid(ncid, &g))) goto nc_fail;
    if ((s = nc_put_var_double(ncid, vr, refs))) goto nc_fail;
    if (two) {
        if ((s = nc_put_var_double(ncid, vp, pers))) goto nc_fail;
        for (int r = 0; r < R; r++)
            for (int l = 0; l < L; l++) {
                size_t idx[2] = {(size_t)r, (size_t)l};
                double v = refs[r] + pers[l];
                if ((s = nc_put_var1_double(ncid, vt, idx, &v))) goto nc_fail;
            }
    } else {
        if ((s = nc_put_var_double(ncid, vp, pers))) goto nc_fail;
        for (int r = 0; r < R; r++) {
            size_t idx = (size_t)r;
            double v = refs[r] + pers[0];
            if ((s = nc_put_var1_double(ncid, vt, &idx, &v))) goto nc_fail;
        }
    }
    if (vq >= 0 && (s = nc_put_var_double(ncid, vq, o->percentiles))) goto nc_fail;
    if (vm >= 0) {
        for (int k = 0; k < o->n_members; k++) {
            size_t idx = (size_t)k;
            if ((s = nc_put_var1_int(ncid, vm, &idx, &k))) goto nc_fail;
        }
    }
    /* NaN everywhere first when some (reference, lead) pairs are absent */
    if (R * L != o->T) {
        for (int i = 0; i < (int)npts; i++) buf[i] = NAN;
        for (int r = 0; r < R; r++)
            for (int l = 0; l < L; l++) {
                size_t start[5] = {(size_t)r, (size_t)l, 0, 0, 0}, count[5] = {1, 1, (size_t)o->H, (size_t)o->W, 0};
                if (!two) count[1] = (size_t)o->H, count[2] = (size_t)o->W, start[1] = 0;
                for (int k = 0; k < 2; k++)
                    if ((s = nc_put_vara_float(ncid, vf[k], start, count, buf))) goto nc_fail;
            }
    }
    for (int t = 0; t < o->T; t++) {
        int r = find(refs, R, o->ref[t]), l = find(pers, L, o->period[t]);
        const float *mu = o->mu + (size_t)t * npts, *sg = o->sigma + (size_t)t * npts;
        size_t start[5], count[5];
        int n = 0;
        start[n] = (size_t)r, count[n++] = 1;
        if (two) start[n] = (size_t)l, count[n++] = 1;
        size_t sx = (size_t)n;
        start[n] = 0, count[n++] = (size_t)o->H;
        start[n] = 0, count[n++] = (size_t)o->W;
        if ((s = nc_put_vara_float(ncid, vf[0], start, count, mu)) || (s = nc_put_vara_float(ncid, vf[1], start, count, sg))) goto nc_fail;
        /* extra fields: insert the percentile / member index before the grid */
        size_t xs[5], xc[5];
        for (size_t i = 0; i < sx; i++) xs[i] = start[i], xc[i] = count[i];
        xs[sx + 1] = 0, xc[sx + 1] = (size_t)o->H, xs[sx + 2] = 0, xc[sx + 2] = (size_t)o->W;
        xc[sx] = 1;
        for (int q = 0; q < o->nq; q++) {
            double z = post_norm_ppf(o->percentiles[q] / 100.0);
            for (size_t p = 0; p < npts; p++) buf[p] = (float)(mu[p] + z * sg[p]);
            xs[sx] = (size_t)q;
            if ((s = nc_put_vara_float(ncid, vpq, xs, xc, buf))) goto nc_fail;
        }
        for (int k = 0; k < o->n_members; k++) {
            double z = post_norm_ppf((k + 0.5) / o->n_members);
            for (size_t p = 0; p < npts; p++) buf[p] = (float)(mu[p] + z * sg[p]);
            xs[sx] = (size_t)k;
            if ((s = nc_put_vara_float(ncid, vmem, xs, xc, buf))) goto nc_fail;
        }
        if (sm_interrupted()) {
            nc_close(ncid);
            outfile_abort(&out);
            st = sm_fail(SM_ERR_INTERRUPTED, "%s: interrupted; nothing written", path);
            goto done;
        }
    }
    if ((s = nc_close(ncid))) {
        ncid = -1;
        goto nc_fail;
    }
    st = outfile_commit(&out);
    goto done;
nc_fail:
    if (ncid >= 0) nc_close(ncid);
    outfile_abort(&out);
    st = sm_fail(SM_ERR_IO, "%s: cannot write the calibrated forecast: %s", path, nc_strerror(s));
done:
    free(refs);
    free(pers);
    free(buf);
    return st;
}
