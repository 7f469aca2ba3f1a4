/* EMOS model file (see emos_file.h). */
#include "post/emos_file.h"
#include "core/log.h"
#include "core/outfile.h"
#include "io/cf_output.h"
#include "io/nc_status.h"
#include "io/nc_attr.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int emos_model_write(const char *path, const emos_model *m)
{
    outfile out;
    int st = outfile_begin(&out, path);
    if (st) return st;
    int ncid, s = nc_create(out.tmp_path, NC_NETCDF4 | NC_CLOBBER, &ncid);
    if (s) {
        outfile_abort(&out);
        return nc_status_fail(path, "cannot create", s);
    }
    cf_grid g = {.is_latlon = m->is_latlon, .nlat = m->H, .nlon = m->W, .lat = m->lat, .lon = m->lon, .var_crs = -1};
    int dims[2], vid[4];
    static const char *names[4] = {"a", "b", "c", "d"};
    char units[4][96];
    snprintf(units[0], sizeof units[0], "%s", m->units);
    snprintf(units[1], sizeof units[1], "1");
    snprintf(units[2], sizeof units[2], "(%s)2", m->units);
    snprintf(units[3], sizeof units[3], "1");
    if (!strcmp(m->units, "K")) snprintf(units[2], sizeof units[2], "K2");
    static const char *lnames[4] = {"EMOS intercept a (mu = a + b mean)", "EMOS slope b (mu = a + b mean)",
                                    "EMOS variance term c (sigma^2 = c + d var)", "EMOS spread term d (sigma^2 = c + d var)"};
    if ((s = cf_global_attributes(ncid, "smoecast EMOS coefficients", m->history))) goto nc_fail;
    int ver = EMOS_FILE_VERSION;
    if ((s = cf_put_text(ncid, NC_GLOBAL, "smoecast_model", EMOS_FILE_KIND)) ||
        (s = nc_put_att_int(ncid, NC_GLOBAL, "smoecast_model_format_version", NC_INT, 1, &ver)) ||
        (s = cf_put_text(ncid, NC_GLOBAL, "emos_scope", m->per_point ? "per_point" : "global")) ||
        (s = cf_put_text(ncid, NC_GLOBAL, "emos_model", "N(a + b * mean, c + d * var), var = member variance with divisor M - 1; "
                                                         "fitted by minimising the mean Gaussian CRPS")) ||
        (s = cf_put_text(ncid, NC_GLOBAL, "target", m->target)) || (s = cf_put_text(ncid, NC_GLOBAL, "target_units", m->units)) ||
        (s = cf_put_text(ncid, NC_GLOBAL, "target_standard_name", m->standard_name)) ||
        (s = cf_put_text(ncid, NC_GLOBAL, "target_long_name", m->long_name)) ||
        (s = nc_put_att_double(ncid, NC_GLOBAL, "sigma_floor", NC_DOUBLE, 1, &m->sigma_floor)) ||
        (s = nc_put_att_int(ncid, NC_GLOBAL, "members", NC_INT, 1, &m->members)) ||
        (s = cf_put_text(ncid, NC_GLOBAL, "training_period", m->training_period)) ||
        (s = nc_put_att_long(ncid, NC_GLOBAL, "training_samples", NC_INT64, 1, &m->training_samples)) ||
        (s = nc_put_att_double(ncid, NC_GLOBAL, "training_crps", NC_DOUBLE, 1, &m->training_crps)) ||
        (s = nc_put_att_long(ncid, NC_GLOBAL, "points_failed", NC_INT64, 1, &m->points_failed)))
        goto nc_fail;
    if (m->config_yaml && (s = cf_put_text(ncid, NC_GLOBAL, "smoecast_config", m->config_yaml))) goto nc_fail;
    if (m->forecast_src && (s = cf_put_text(ncid, NC_GLOBAL, "smoecast_forecast", m->forecast_src))) goto nc_fail;
    if (m->truth_src && (s = cf_put_text(ncid, NC_GLOBAL, "smoecast_truth", m->truth_src))) goto nc_fail;
    int nd = 0;
    if (m->per_point) {
        if ((s = cf_define_grid(ncid, &g))) goto nc_fail;
        dims[0] = g.dim_y, dims[1] = g.dim_x;
        nd = 2;
    }
    for (int k = 0; k < 4; k++) {
        if ((s = nc_def_var(ncid, names[k], NC_DOUBLE, nd, dims, &vid[k]))) goto nc_fail;
        double fill = NAN;
        if (nd && (s = nc_put_att_double(ncid, vid[k], "_FillValue", NC_DOUBLE, 1, &fill))) goto nc_fail;
        if ((s = cf_put_text(ncid, vid[k], "long_name", lnames[k])) || (s = cf_put_text(ncid, vid[k], "units", units[k])))
            goto nc_fail;
        if (nd && g.var_crs >= 0 && (s = cf_put_text(ncid, vid[k], "grid_mapping", "crs"))) goto nc_fail;
    }
    if ((s = nc_enddef(ncid))) goto nc_fail;
    if (m->per_point && (s = cf_put_grid(ncid, &g))) goto nc_fail;
    size_t n = m->per_point ? (size_t)m->H * m->W : 1;
    double *buf = malloc(sizeof(double) * n);
    if (!buf) {
        nc_close(ncid);
        outfile_abort(&out);
        return sm_fail(SM_ERR_NUMERIC, "out of memory");
    }
    for (int k = 0; k < 4 && s == NC_NOERR; k++) {
        for (size_t i = 0; i < n; i++) {
            const emos_coef *c = &m->coef[i];
            buf[i] = k == 0 ? c->a : k == 1 ? c->b : k == 2 ? c->c : c->d;
        }
        s = nc_put_var_double(ncid, vid[k], buf);
    }
    free(buf);
    if (s) goto nc_fail;
    if ((s = nc_close(ncid))) {
        outfile_abort(&out);
        return nc_status_fail(path, "cannot close", s);
    }
    return outfile_commit(&out);
nc_fail:
    nc_close(ncid);
    outfile_abort(&out);
    return nc_status_fail(path, "cannot write the EMOS model", s);
}

int emos_model_is(const char *path)
{
    int ncid;
    if (nc_open(path, NC_NOWRITE, &ncid)) return 0;
    char kind[32];
    nc_attr_text(ncid, NC_GLOBAL, "smoecast_model", kind, sizeof kind);
    nc_close(ncid);
    return !strcmp(kind, EMOS_FILE_KIND);
}

int emos_model_read(const char *path, emos_model *m)
{
    memset(m, 0, sizeof *m);
    int ncid, s = nc_open(path, NC_NOWRITE, &ncid);
    if (s) return nc_status_fail(path, "cannot open", s);
    char kind[32], scope[32];
    nc_attr_text(ncid, NC_GLOBAL, "smoecast_model", kind, sizeof kind);
    int st = SM_OK;
    if (strcmp(kind, EMOS_FILE_KIND)) {
        nc_close(ncid);
        return sm_fail(SM_ERR_IO, "%s: not an EMOS model file (global attribute smoecast_model is '%s')", path, kind);
    }
    nc_attr_text(ncid, NC_GLOBAL, "emos_scope", scope, sizeof scope);
    nc_attr_text(ncid, NC_GLOBAL, "target", m->target, sizeof m->target);
    nc_attr_text(ncid, NC_GLOBAL, "target_units", m->units, sizeof m->units);
    nc_attr_text(ncid, NC_GLOBAL, "target_standard_name", m->standard_name, sizeof m->standard_name);
    nc_attr_text(ncid, NC_GLOBAL, "target_long_name", m->long_name, sizeof m->long_name);
    nc_attr_text(ncid, NC_GLOBAL, "training_period", m->training_period, sizeof m->training_period);
    m->config_yaml = nc_attr_text_dup(ncid, NC_GLOBAL, "smoecast_config");
    m->forecast_src = nc_attr_text_dup(ncid, NC_GLOBAL, "smoecast_forecast");
    m->truth_src = nc_attr_text_dup(ncid, NC_GLOBAL, "smoecast_truth");
    m->history = nc_attr_text_dup(ncid, NC_GLOBAL, "history");
    if (nc_get_att_double(ncid, NC_GLOBAL, "sigma_floor", &m->sigma_floor)) m->sigma_floor = EMOS_DEFAULT_SIGMA_FLOOR;
    if (nc_get_att_int(ncid, NC_GLOBAL, "members", &m->members)) m->members = 0;
    if (nc_get_att_double(ncid, NC_GLOBAL, "training_crps", &m->training_crps)) m->training_crps = NAN;
    if (nc_get_att_long(ncid, NC_GLOBAL, "training_samples", &m->training_samples)) m->training_samples = 0;
    if (nc_get_att_long(ncid, NC_GLOBAL, "points_failed", &m->points_failed)) m->points_failed = 0;
    if (!strcmp(scope, "per_point"))
        m->per_point = 1;
    else if (strcmp(scope, "global"))
        st = sm_fail(SM_ERR_IO, "%s: emos_scope '%s' is neither global nor per_point", path, scope);
    static const char *names[4] = {"a", "b", "c", "d"};
    int vid[4];
    for (int k = 0; st == SM_OK && k < 4; k++)
        if (nc_inq_varid(ncid, names[k], &vid[k])) st = sm_fail(SM_ERR_IO, "%s: coefficient variable '%s' is missing", path, names[k]);
    size_t n = 1;
    if (st == SM_OK && m->per_point) {
        int dimids[2], ndims;
        size_t len[2];
        if ((s = nc_inq_varndims(ncid, vid[0], &ndims)) || ndims != 2 || (s = nc_inq_vardimid(ncid, vid[0], dimids)) ||
            (s = nc_inq_dimlen(ncid, dimids[0], &len[0])) || (s = nc_inq_dimlen(ncid, dimids[1], &len[1])))
            st = sm_fail(SM_ERR_IO, "%s: per-point coefficient 'a' must be 2-D (latitude, longitude)", path);
        if (st == SM_OK) {
            char dname[NC_MAX_NAME + 1];
            nc_inq_dimname(ncid, dimids[0], dname);
            m->is_latlon = !strcmp(dname, "latitude");
            m->H = (int)len[0];
            m->W = (int)len[1];
            n = len[0] * len[1];
            m->lat = malloc(sizeof(double) * len[0]);
            m->lon = malloc(sizeof(double) * len[1]);
            int vy, vx;
            if (!m->lat || !m->lon) st = sm_fail(SM_ERR_NUMERIC, "out of memory");
            else if (nc_inq_varid(ncid, m->is_latlon ? "latitude" : "y", &vy) || nc_inq_varid(ncid, m->is_latlon ? "longitude" : "x", &vx) ||
                     nc_get_var_double(ncid, vy, m->lat) || nc_get_var_double(ncid, vx, m->lon))
                st = sm_fail(SM_ERR_IO, "%s: grid coordinates missing", path);
        }
    }
    double *buf = NULL;
    if (st == SM_OK) {
        m->coef = malloc(sizeof(emos_coef) * n);
        buf = malloc(sizeof(double) * n);
        if (!m->coef || !buf) st = sm_fail(SM_ERR_NUMERIC, "out of memory");
    }
    for (int k = 0; st == SM_OK && k < 4; k++) {
        if ((s = nc_get_var_double(ncid, vid[k], buf))) {
            st = nc_status_fail(path, names[k], s);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            emos_coef *c = &m->coef[i];
            if (k == 0) c->a = buf[i];
            else if (k == 1) c->b = buf[i];
            else if (k == 2) c->c = buf[i];
            else c->d = buf[i];
        }
    }
    free(buf);
    nc_close(ncid);
    if (st) emos_model_free(m);
    return st;
}

void emos_model_free(emos_model *m)
{
    if (!m) return;
    free(m->lat);
    free(m->lon);
    free(m->coef);
    free(m->config_yaml);
    free(m->forecast_src);
    free(m->truth_src);
    free(m->history);
    memset(m, 0, sizeof *m);
}
