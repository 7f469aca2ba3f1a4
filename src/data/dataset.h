/* The smoecast dataset file: what `smoecast ingest` writes and what training, forecasting and
 * evaluation read. This header is the contract (docs/ingest.md describes it for users).
 *
 * File layout (NetCDF-4, format version DATASET_FORMAT_VERSION):
 *   dimensions   time (fixed length, sorted ascending, no duplicates)
 *                realization (only when some variable has ensemble members)
 *                latitude, longitude   (lat-lon grids; latitude NORTH -> SOUTH, longitude ascending)
 *                or y, x               (non-geographic grids)
 *   coordinates  time(time) double, units "hours since 1970-01-01 00:00:00" and the source
 *                  calendar (`calendar`), standard_name time, axis T. A source whose time axis has
 *                  no units (e.g. `month` 1, 7) keeps the raw values with units "1" and the
 *                  global attribute smoecast_time_is_index = 1.
 *                forecast_reference_time(time), forecast_period(time) [hours]: written when the
 *                  source gives them (GRIB); NaN where unknown.
 *                realization(realization) int, standard_name realization.
 *                latitude(latitude)/longitude(longitude) double, degrees_north/degrees_east,
 *                  standard_name, axis Y/X; crs: grid_mapping_name = latitude_longitude.
 *   variables    one float32 variable per ingested selector (name "2t", "z500", ...), in
 *                physical units, _FillValue NaN (missing points are NaN):
 *                  (time, [realization], latitude, longitude) for time-dependent fields,
 *                  ([realization], latitude, longitude) for static fields (land-sea mask),
 *                chunked (1, [1], nlat, nlon) = one field per chunk, deflate level 4 + shuffle, so
 *                any (variable, time, member) is read without touching the rest of the file.
 *                Attributes: units, long_name, standard_name (when known), coordinates,
 *                grid_mapping, smoecast_param_id, smoecast_short_name, smoecast_type_of_level,
 *                smoecast_level, smoecast_categorical.
 *   global       Conventions "CF-1.8", title, institution, source "smoecast <version>", history,
 *                smoecast_format_version, smoecast_version, smoecast_grid (target grid name or
 *                "native"), smoecast_config (the resolved options as YAML text),
 *                smoecast_inputs ("<sha256>  <path>" per line), smoecast_time_is_index. */
#ifndef SMOECAST_DATA_DATASET_H
#define SMOECAST_DATA_DATASET_H

#include <limits.h>

#define DATASET_FORMAT_VERSION 1
#define DATASET_TIME_UNITS "hours since 1970-01-01 00:00:00"

typedef struct {
    char name[80];           /* dataset variable name ("2t", "z500") */
    char units[64];
    char long_name[128];
    char standard_name[96];  /* "" when unknown */
    long param_id;           /* GRIB paramId, 0 when unknown */
    char short_name[64];     /* GRIB shortName or source NetCDF variable name */
    char type_of_level[48];
    double level;            /* NaN when the variable has no level */
    int is_static;           /* 1: no time dimension */
    int has_members;         /* 1: has the realization dimension */
    int categorical;         /* 1: categorical field (regridded with nearest) */
} dataset_var_info;

/* Everything the writer needs up front (arrays are copied). */
typedef struct {
    int is_latlon;                 /* 1: latitude/longitude, 0: y/x */
    char grid_name[64];            /* target grid name or "native" */
    int nlat, nlon;
    const double *lat, *lon;       /* lat strictly descending (north -> south) for lat-lon grids */
    int ntimes;                    /* >= 1 (a dataset of only static fields still has time = 1) */
    const double *times;           /* ascending, hours since 1970-01-01 (or raw, time_is_index) */
    const double *reference_times; /* may be NULL; NaN entries allowed */
    const double *forecast_periods;/* may be NULL */
    char calendar[32];
    int time_is_index;
    int nmembers;                  /* 0: no realization dimension */
    const int *members;
    int nvars;
    const dataset_var_info *vars;
    const char *config_text;       /* resolved options (YAML), may be NULL */
    const char *inputs_text;       /* "<sha256>  <path>\n" per input, may be NULL */
    const char *history;           /* command line, may be NULL */
} dataset_layout;

typedef struct dataset_writer dataset_writer;

/* Creates the file under a temporary name (core/outfile.h); nothing appears at `path` until
 * dataset_writer_commit. SM_ERR_IO for an unwritable directory. */
int dataset_writer_create(const char *path, const dataset_layout *layout, dataset_writer **out);
/* Writes field (var, t, member index) of nlat*nlon floats (north -> south rows). `t` is ignored
 * for static variables and `member` for variables without members. Any order is allowed. */
int dataset_writer_put(dataset_writer *w, int var, int t, int member, const float *data);
/* Reads back a field that was put earlier (duplicate checks). */
int dataset_writer_get(dataset_writer *w, int var, int t, int member, float *out);
/* Closes the file and renames it into place; frees `w` whether it succeeds or not. */
int dataset_writer_commit(dataset_writer *w);
/* Removes the temporary file and frees `w`. Safe on NULL. */
void dataset_writer_abort(dataset_writer *w);

/* ---- reader: open once, read any single field on demand ---- */
typedef struct {
    char path[PATH_MAX];
    int ncid;
    int format_version;
    int is_latlon;
    char grid_name[64];
    int nlat, nlon;
    double *lat, *lon;             /* lat north -> south */
    int ntimes;
    double *times;                 /* hours since 1970-01-01 in `calendar` (raw if time_is_index) */
    double *reference_times;       /* NaN where unknown (all NaN when the file has none) */
    double *forecast_periods;
    char calendar[32];
    int time_is_index;
    int nmembers;                  /* 0 without a realization dimension */
    int *members;
    int nvars;
    dataset_var_info *vars;
    int *varids;
    char *config_text;             /* "" when absent */
    char *inputs_text;
    char version[32];              /* smoecast version that wrote the file */
} dataset;

/* SM_ERR_IO when the file is missing, not NetCDF, or not a smoecast dataset. */
int dataset_open(const char *path, dataset **out);
void dataset_close(dataset *ds);
/* Index of variable `name`, -1 when absent. */
int dataset_find_var(const dataset *ds, const char *name);
/* Index of the time equal to `hours` (within 1 second), -1 when absent. */
int dataset_find_time(const dataset *ds, double hours);
/* Reads one field (nlat*nlon floats, north -> south rows, NaN = missing) into `out`. `t` is
 * ignored for static variables, `member` (an index < nmembers) for variables without members. */
int dataset_read(const dataset *ds, int var, int t, int member, float *out);

#endif
