/* CF NetCDF and GRIB2 writing shared by the synthetic data sets (see synth_write.h). */
#include "tasks/synth_write.h"
#include "core/log.h"
#include "io/cf_time.h"
#include "io/nc_status.h"

#include <eccodes.h>
#include <netcdf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const synth_field synth_field_z500 = {"z500", "geopotential", "Geopotential at 500 hPa (synthetic)", "m2 s-2",
                                      129, "isobaricInhPa", 500, 24};
const synth_field synth_field_t850 = {"t850", "air_temperature", "Temperature at 850 hPa (synthetic)", "K",
                                      130, "isobaricInhPa", 850, 16};
const synth_field synth_field_t2m = {"t2m", "air_temperature", "2 metre temperature (synthetic)", "K",
                                     167, "heightAboveGround", 2, 16};
const synth_field synth_field_lsm = {"lsm", "land_binary_mask", "Land-sea mask (1 land, 0 sea)", "1",
                                     172, "surface", 0, 8};

/* ---- calendar (proleptic Gregorian, through io/cf_time) ---- */

int64_t synth_hours_from_civil(int year, int month, int day, int hour)
{
    const cf_date d = {year, month, day, hour, 0, 0.0};
    return (int64_t)cf_date_to_hours(&d, CAL_PROLEPTIC);
}

void synth_civil_from_hours(int64_t hours, int *year, int *month, int *day, int *hour)
{
    cf_date d;
    cf_hours_to_date((double)hours, CAL_PROLEPTIC, &d);
    *year = d.year;
    *month = d.month;
    *day = d.day;
    *hour = d.hour;
}

int synth_weekday(int64_t hours)
{
    int64_t days = hours >= 0 ? hours / 24 : -((-hours + 23) / 24);
    int64_t w = (days + 3) % 7; /* 1970-01-01 was a Thursday */
    return (int)(w < 0 ? w + 7 : w);
}

/* ---- NetCDF ---- */

int synth_nc_check(const synth_nc *nc, int status, const char *what)
{
    if (status == NC_NOERR) return SM_OK;
    return nc_status_fail(nc->out.final_path, what, status);
}

int synth_nc_att_text(synth_nc *nc, int varid, const char *name, const char *text)
{
    return synth_nc_check(nc, nc_put_att_text(nc->ncid, varid, name, strlen(text), text), name);
}

int synth_nc_att_double(synth_nc *nc, int varid, const char *name, double value)
{
    return synth_nc_check(nc, nc_put_att_double(nc->ncid, varid, name, NC_DOUBLE, 1, &value), name);
}

int synth_nc_att_int(synth_nc *nc, int varid, const char *name, int value)
{
    return synth_nc_check(nc, nc_put_att_int(nc->ncid, varid, name, NC_INT, 1, &value), name);
}

int synth_nc_create(synth_nc *nc, const char *path, const char *title)
{
    memset(nc, 0, sizeof *nc);
    int st = outfile_begin(&nc->out, path);
    if (st) return st;
    int rc = nc_create(nc->out.tmp_path, NC_NETCDF4 | NC_CLOBBER, &nc->ncid);
    if (rc != NC_NOERR) {
        outfile_abort(&nc->out);
        return sm_fail(SM_ERR_IO, "%s: cannot create NetCDF file: %s", path, nc_strerror(rc));
    }
    nc->open = 1;
    if ((st = synth_nc_att_text(nc, NC_GLOBAL, "Conventions", "CF-1.8"))) return st;
    if ((st = synth_nc_att_text(nc, NC_GLOBAL, "title", title))) return st;
    if ((st = synth_nc_att_text(nc, NC_GLOBAL, "institution", "smoecast synthetic data (no real observations)")))
        return st;
    if ((st = synth_nc_att_text(nc, NC_GLOBAL, "source", "smoecast " SMOECAST_VERSION " synth"))) return st;
    if ((st = synth_nc_att_text(nc, NC_GLOBAL, "history",
                                "written by smoecast synth (no timestamp, so that a seed always gives the same "
                                "file; seed and options are in the global attributes)")))
        return st;
    if ((st = synth_nc_att_text(nc, NC_GLOBAL, "references", "docs/synthetic.md"))) return st;
    return SM_OK;
}

int synth_nc_def_latlon(synth_nc *nc, int nlat, int nlon, synth_latlon_ids *ids)
{
    int st;
    if ((st = synth_nc_check(nc, nc_def_dim(nc->ncid, "latitude", (size_t)nlat, &ids->dim_lat), "latitude")))
        return st;
    if ((st = synth_nc_check(nc, nc_def_dim(nc->ncid, "longitude", (size_t)nlon, &ids->dim_lon), "longitude")))
        return st;
    if ((st = synth_nc_check(nc, nc_def_var(nc->ncid, "latitude", NC_DOUBLE, 1, &ids->dim_lat, &ids->var_lat),
                             "latitude")))
        return st;
    if ((st = synth_nc_check(nc, nc_def_var(nc->ncid, "longitude", NC_DOUBLE, 1, &ids->dim_lon, &ids->var_lon),
                             "longitude")))
        return st;
    if ((st = synth_nc_att_text(nc, ids->var_lat, "standard_name", "latitude")) ||
        (st = synth_nc_att_text(nc, ids->var_lat, "long_name", "latitude")) ||
        (st = synth_nc_att_text(nc, ids->var_lat, "units", "degrees_north")) ||
        (st = synth_nc_att_text(nc, ids->var_lat, "axis", "Y")) ||
        (st = synth_nc_att_text(nc, ids->var_lon, "standard_name", "longitude")) ||
        (st = synth_nc_att_text(nc, ids->var_lon, "long_name", "longitude")) ||
        (st = synth_nc_att_text(nc, ids->var_lon, "units", "degrees_east")) ||
        (st = synth_nc_att_text(nc, ids->var_lon, "axis", "X")))
        return st;
    if ((st = synth_nc_check(nc, nc_def_var(nc->ncid, "crs", NC_INT, 0, NULL, &ids->var_crs), "crs"))) return st;
    if ((st = synth_nc_att_text(nc, ids->var_crs, "grid_mapping_name", "latitude_longitude")) ||
        (st = synth_nc_att_double(nc, ids->var_crs, "semi_major_axis", 6371229.0)) ||
        (st = synth_nc_att_double(nc, ids->var_crs, "inverse_flattening", 0.0)))
        return st;
    return SM_OK;
}

int synth_nc_put_latlon(synth_nc *nc, const synth_latlon_ids *ids, const double *lat, const double *lon)
{
    int st, zero = 0;
    if ((st = synth_nc_check(nc, nc_put_var_double(nc->ncid, ids->var_lat, lat), "latitude"))) return st;
    if ((st = synth_nc_check(nc, nc_put_var_double(nc->ncid, ids->var_lon, lon), "longitude"))) return st;
    return synth_nc_check(nc, nc_put_var_int(nc->ncid, ids->var_crs, &zero), "crs");
}

int synth_nc_def_time(synth_nc *nc, const char *name, const char *standard_name, int n, int *dimid, int *varid)
{
    int st;
    if (*dimid < 0 && (st = synth_nc_check(nc, nc_def_dim(nc->ncid, name, (size_t)n, dimid), name))) return st;
    if ((st = synth_nc_check(nc, nc_def_var(nc->ncid, name, NC_DOUBLE, 1, dimid, varid), name))) return st;
    if ((st = synth_nc_att_text(nc, *varid, "standard_name", standard_name)) ||
        (st = synth_nc_att_text(nc, *varid, "units", "hours since 1970-01-01 00:00:00")) ||
        (st = synth_nc_att_text(nc, *varid, "calendar", "proleptic_gregorian")))
        return st;
    if (!strcmp(standard_name, "time") && (st = synth_nc_att_text(nc, *varid, "axis", "T"))) return st;
    if (!strcmp(standard_name, "time")) return synth_nc_att_text(nc, *varid, "long_name", "valid time");
    return synth_nc_att_text(nc, *varid, "long_name", "forecast initialisation time");
}

int synth_nc_def_field(synth_nc *nc, const synth_field *f, int ndims, const int *dimids, const size_t *chunks,
                       int latlon, const char *coordinates, int *varid)
{
    int st;
    if ((st = synth_nc_check(nc, nc_def_var(nc->ncid, f->name, NC_FLOAT, ndims, dimids, varid), f->name))) return st;
    if (chunks && (st = synth_nc_check(nc, nc_def_var_chunking(nc->ncid, *varid, NC_CHUNKED, chunks), f->name)))
        return st;
    if ((st = synth_nc_check(nc, nc_def_var_deflate(nc->ncid, *varid, 1, 1, 1), f->name))) return st;
    float fill = NC_FILL_FLOAT;
    if ((st = synth_nc_check(nc, nc_put_att_float(nc->ncid, *varid, "_FillValue", NC_FLOAT, 1, &fill), f->name)))
        return st;
    if (f->standard_name && (st = synth_nc_att_text(nc, *varid, "standard_name", f->standard_name))) return st;
    if ((st = synth_nc_att_text(nc, *varid, "long_name", f->long_name)) ||
        (st = synth_nc_att_text(nc, *varid, "units", f->units)))
        return st;
    if (latlon && (st = synth_nc_att_text(nc, *varid, "grid_mapping", "crs"))) return st;
    if (coordinates && (st = synth_nc_att_text(nc, *varid, "coordinates", coordinates))) return st;
    return SM_OK;
}

int synth_nc_close(synth_nc *nc)
{
    if (!nc->open) return sm_fail(SM_ERR_IO, "%s: file was not open", nc->out.final_path);
    nc->open = 0;
    int rc = nc_close(nc->ncid);
    if (rc != NC_NOERR) {
        outfile_abort(&nc->out);
        return sm_fail(SM_ERR_IO, "%s: closing the NetCDF file failed: %s", nc->out.final_path, nc_strerror(rc));
    }
    return outfile_commit(&nc->out);
}

void synth_nc_abort(synth_nc *nc)
{
    if (nc->open) nc_close(nc->ncid);
    nc->open = 0;
    outfile_abort(&nc->out);
}

/* ---- GRIB2 ---- */

int synth_grib_open(synth_grib *g, const char *path, int nlat, int nlon, double lat_first, double lon_first,
                    double dlat, double dlon)
{
    memset(g, 0, sizeof *g);
    int st = outfile_begin(&g->out, path);
    if (st) return st;
    g->f = fopen(g->out.tmp_path, "wb");
    if (!g->f) {
        outfile_abort(&g->out);
        return sm_fail(SM_ERR_IO, "%s: cannot create the GRIB2 file", path);
    }
    g->buf = malloc(sizeof(double) * (size_t)nlat * (size_t)nlon);
    if (!g->buf) {
        fclose(g->f);
        outfile_abort(&g->out);
        return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
    }
    g->open = 1;
    g->nlat = nlat;
    g->nlon = nlon;
    g->lat_first = lat_first;
    g->lon_first = lon_first;
    g->dlat = dlat;
    g->dlon = dlon;
    return SM_OK;
}

#define GRIB_TRY(call, key)                                                                                      \
    do {                                                                                                         \
        int e_ = (call);                                                                                         \
        if (e_)                                                                                                  \
            return sm_fail(SM_ERR_IO, "%s: message %ld (%s): setting %s failed: %s", g->out.final_path, g->nmsg + 1, \
                           f->name, key, codes_get_error_message(e_));                                           \
    } while (0)

static int grib_make_handle(synth_grib *g, const synth_field *f, int ensemble, codes_handle **out)
{
    codes_handle *h = codes_grib_handle_new_from_samples(NULL, "GRIB2");
    if (!h) return sm_fail(SM_ERR_IO, "%s: ecCodes has no GRIB2 sample (check ECCODES_SAMPLES_PATH)", g->out.final_path);
    *out = h;
    GRIB_TRY(codes_set_long(h, "centre", 98), "centre");
    GRIB_TRY(codes_set_long(h, "productDefinitionTemplateNumber", ensemble ? 1 : 0), "productDefinitionTemplateNumber");
    GRIB_TRY(codes_set_long(h, "Ni", g->nlon), "Ni");
    GRIB_TRY(codes_set_long(h, "Nj", g->nlat), "Nj");
    GRIB_TRY(codes_set_long(h, "iScansNegatively", 0), "iScansNegatively");
    GRIB_TRY(codes_set_long(h, "jScansPositively", 0), "jScansPositively");
    GRIB_TRY(codes_set_double(h, "latitudeOfFirstGridPointInDegrees", g->lat_first), "latitudeOfFirstGridPoint");
    GRIB_TRY(codes_set_double(h, "longitudeOfFirstGridPointInDegrees", g->lon_first), "longitudeOfFirstGridPoint");
    GRIB_TRY(codes_set_double(h, "latitudeOfLastGridPointInDegrees", g->lat_first - g->dlat * (g->nlat - 1)),
             "latitudeOfLastGridPoint");
    GRIB_TRY(codes_set_double(h, "longitudeOfLastGridPointInDegrees", g->lon_first + g->dlon * (g->nlon - 1)),
             "longitudeOfLastGridPoint");
    GRIB_TRY(codes_set_double(h, "iDirectionIncrementInDegrees", g->dlon), "iDirectionIncrement");
    GRIB_TRY(codes_set_double(h, "jDirectionIncrementInDegrees", g->dlat), "jDirectionIncrement");
    size_t len = strlen(f->type_of_level);
    GRIB_TRY(codes_set_string(h, "typeOfLevel", f->type_of_level, &len), "typeOfLevel");
    GRIB_TRY(codes_set_long(h, "level", f->level), "level");
    GRIB_TRY(codes_set_long(h, "paramId", f->param_id), "paramId");
    len = 1;
    GRIB_TRY(codes_set_string(h, "stepUnits", "h", &len), "stepUnits");
    len = strlen("grid_simple");
    GRIB_TRY(codes_set_string(h, "packingType", "grid_simple", &len), "packingType");
    GRIB_TRY(codes_set_long(h, "bitsPerValue", f->bits), "bitsPerValue");
    return SM_OK;
}

int synth_grib_write(synth_grib *g, const synth_field *f, int64_t ref_hours, long step_hours, int member,
                     int n_members, const float *values)
{
    int ensemble = member >= 0;
    codes_handle *h = NULL;
    int slot = -1;
    for (int i = 0; i < SYNTH_GRIB_CACHE; i++) {
        if (g->cache[i].handle && g->cache[i].field == f && g->cache[i].ensemble == ensemble) {
            h = g->cache[i].handle;
            break;
        }
        if (!g->cache[i].handle && slot < 0) slot = i;
    }
    if (!h) {
        if (slot < 0) return sm_fail(SM_ERR_IO, "%s: too many distinct GRIB fields", g->out.final_path);
        int st = grib_make_handle(g, f, ensemble, &h);
        if (st) {
            if (h) codes_handle_delete(h);
            return st;
        }
        g->cache[slot].field = f;
        g->cache[slot].ensemble = ensemble;
        g->cache[slot].handle = h;
    }
    int year, month, day, hour;
    synth_civil_from_hours(ref_hours, &year, &month, &day, &hour);
    GRIB_TRY(codes_set_long(h, "dataDate", (long)year * 10000 + month * 100 + day), "dataDate");
    GRIB_TRY(codes_set_long(h, "dataTime", (long)hour * 100), "dataTime");
    GRIB_TRY(codes_set_long(h, "step", step_hours), "step");
    if (ensemble) {
        GRIB_TRY(codes_set_long(h, "typeOfEnsembleForecast", member == 0 ? 1 : 3), "typeOfEnsembleForecast");
        GRIB_TRY(codes_set_long(h, "numberOfForecastsInEnsemble", n_members), "numberOfForecastsInEnsemble");
        GRIB_TRY(codes_set_long(h, "perturbationNumber", member), "number");
    }
    size_t n = (size_t)g->nlat * (size_t)g->nlon;
    for (size_t i = 0; i < n; i++) g->buf[i] = values[i];
    GRIB_TRY(codes_set_double_array(h, "values", g->buf, n), "values");
    const void *msg = NULL;
    size_t size = 0;
    GRIB_TRY(codes_get_message(h, &msg, &size), "message");
    if (fwrite(msg, 1, size, g->f) != size)
        return sm_fail(SM_ERR_IO, "%s: message %ld (%s): write failed (disk full?)", g->out.final_path, g->nmsg + 1,
                       f->name);
    g->nmsg++;
    return SM_OK;
}

static void grib_release(synth_grib *g)
{
    for (int i = 0; i < SYNTH_GRIB_CACHE; i++) {
        if (g->cache[i].handle) codes_handle_delete((codes_handle *)g->cache[i].handle);
        g->cache[i].handle = NULL;
    }
    free(g->buf);
    g->buf = NULL;
}

int synth_grib_close(synth_grib *g)
{
    if (!g->open) return sm_fail(SM_ERR_IO, "%s: file was not open", g->out.final_path);
    g->open = 0;
    grib_release(g);
    int bad = fflush(g->f) != 0 || fsync(fileno(g->f)) != 0;
    bad |= fclose(g->f) != 0;
    g->f = NULL;
    if (bad) {
        outfile_abort(&g->out);
        return sm_fail(SM_ERR_IO, "%s: writing the GRIB2 file failed (disk full?)", g->out.final_path);
    }
    return outfile_commit(&g->out);
}

void synth_grib_abort(synth_grib *g)
{
    if (g->open) {
        grib_release(g);
        fclose(g->f);
        g->f = NULL;
    }
    g->open = 0;
    outfile_abort(&g->out);
}
