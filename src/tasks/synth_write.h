/* Shared writing for the synthetic data sets: CF NetCDF through netCDF-C and GRIB2 through
 * ecCodes (regular_ll, grid_simple packing), both via core/outfile.h (temp name + rename), plus
 * the calendar arithmetic (proleptic Gregorian, hours since 1970-01-01 00:00:00). */
#ifndef SMOECAST_TASKS_SYNTH_WRITE_H
#define SMOECAST_TASKS_SYNTH_WRITE_H

#include "core/outfile.h"

#include <stdint.h>
#include <stdio.h>

/* One physical field: its NetCDF name/attributes and its GRIB2 identity. */
typedef struct {
    const char *name;          /* NetCDF variable name, e.g. "z500" */
    const char *standard_name; /* CF standard name */
    const char *long_name;
    const char *units;
    long param_id;             /* ECMWF paramId (129 z, 130 t, 167 2t, 172 lsm) */
    const char *type_of_level; /* GRIB typeOfLevel */
    long level;
    long bits;                 /* GRIB bitsPerValue for grid_simple packing */
} synth_field;

extern const synth_field synth_field_z500, synth_field_t850, synth_field_t2m, synth_field_lsm;

/* ---- calendar ---- */
int64_t synth_hours_from_civil(int year, int month, int day, int hour);
void synth_civil_from_hours(int64_t hours, int *year, int *month, int *day, int *hour);
int synth_weekday(int64_t hours); /* 0 = Monday .. 6 = Sunday */

/* ---- NetCDF ---- */
typedef struct {
    int ncid;
    int open;
    outfile out;
} synth_nc;

/* Creates a NetCDF-4 file at the temporary name of `path` (directory must exist and be writable:
 * SM_ERR_IO otherwise) and writes the CF global attributes (Conventions, title, institution,
 * source, history). */
int synth_nc_create(synth_nc *nc, const char *path, const char *title);
/* Turns a netCDF-C status into sm_fail(SM_ERR_IO, "<path>: <what>: <nc_strerror>"). */
int synth_nc_check(const synth_nc *nc, int status, const char *what);
int synth_nc_att_text(synth_nc *nc, int varid, const char *name, const char *text);
int synth_nc_att_double(synth_nc *nc, int varid, const char *name, double value);
int synth_nc_att_int(synth_nc *nc, int varid, const char *name, int value);
/* latitude(latitude), longitude(longitude) with CF attributes and a `crs` grid_mapping variable;
 * call synth_nc_put_latlon after nc_enddef. */
typedef struct {
    int dim_lat, dim_lon, var_lat, var_lon, var_crs;
} synth_latlon_ids;
int synth_nc_def_latlon(synth_nc *nc, int nlat, int nlon, synth_latlon_ids *ids);
int synth_nc_put_latlon(synth_nc *nc, const synth_latlon_ids *ids, const double *lat, const double *lon);
/* time(time) as double "hours since 1970-01-01 00:00:00", proleptic_gregorian. `dimid` may be
 * an existing dimension (pass >= 0) or -1 to create dimension `name` of length n. */
int synth_nc_def_time(synth_nc *nc, const char *name, const char *standard_name, int n, int *dimid, int *varid);
/* A float32 field variable (deflate level 1 + shuffle, given chunk sizes) with standard_name,
 * long_name, units, _FillValue, and (for lat-lon data) grid_mapping = crs and `coordinates`. */
int synth_nc_def_field(synth_nc *nc, const synth_field *f, int ndims, const int *dimids, const size_t *chunks,
                       int latlon, const char *coordinates, int *varid);
int synth_nc_close(synth_nc *nc); /* nc_close and rename into place */
void synth_nc_abort(synth_nc *nc);

/* ---- GRIB2 ---- */
#define SYNTH_GRIB_CACHE 8
typedef struct {
    FILE *f;
    outfile out;
    int open;
    long nmsg;
    int nlat, nlon;
    double lat_first, lon_first, dlat, dlon; /* first point (north-west), increments */
    double *buf;                             /* nlat * nlon values as double */
    struct synth_grib_slot {
        const synth_field *field;
        int ensemble;
        void *handle; /* codes_handle * */
    } cache[SYNTH_GRIB_CACHE];
} synth_grib;

/* Opens a GRIB2 output for a regular_ll grid scanned north -> south, west -> east. */
int synth_grib_open(synth_grib *g, const char *path, int nlat, int nlon, double lat_first, double lon_first,
                    double dlat, double dlon);
/* One message: field `f` with reference time `ref_hours` (hours since 1970), forecast step
 * `step_hours`; `member` >= 0 writes productDefinitionTemplateNumber 1 with number = member,
 * typeOfEnsembleForecast 1 (member 0, control) or 3 (perturbed), numberOfForecastsInEnsemble =
 * n_members; member < 0 writes template 0. `values` are nlat * nlon, north -> south rows. */
int synth_grib_write(synth_grib *g, const synth_field *f, int64_t ref_hours, long step_hours, int member,
                     int n_members, const float *values);
int synth_grib_close(synth_grib *g);
void synth_grib_abort(synth_grib *g);

#endif
