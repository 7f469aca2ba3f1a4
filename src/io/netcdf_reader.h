/* NetCDF-3/4 reader: presents one variable (at one level) as a sequence of 2-D fields, one per
 * (time, member), each in the same canonical layout as the GRIB reader (rows in the file's
 * latitude order, each row west -> east, NaN for missing).
 *
 * Dimensions are classified, not assumed: time (axis T, standard_name time, "<unit> since"
 * units, or the names time/month/valid_time), level (axis Z, positive, pressure/height units or
 * names level/lev/plev/pressure/isobaricInhPa), latitude and longitude (axis Y/X, standard_name,
 * degrees_north/east units, or the names lat/latitude/y and lon/longitude/x), realization
 * (standard_name realization, names number/realization/member/ensemble). Packed values are
 * unpacked with scale_factor/add_offset (either sign); _FillValue, missing_value and
 * valid_range/valid_min/valid_max become NaN. A scalar time variable (a `coordinates` entry or a
 * scalar `time`) gives a single time; a time axis without units (e.g. `month`) is kept as raw
 * values with time_is_index = 1; a variable without any time is static. */
#ifndef SMOECAST_IO_NETCDF_READER_H
#define SMOECAST_IO_NETCDF_READER_H

#include "io/field.h"

#include <stddef.h>

typedef struct nc_reader nc_reader;
typedef struct nc_var nc_var;

/* 1 when the file starts with a NetCDF-3 ("CDF\1", "CDF\2", "CDF\5") or HDF5 signature. */
int nc_file_looks_like_netcdf(const char *path);

int nc_reader_open(const char *path, nc_reader **out);
void nc_reader_close(nc_reader *r);
const char *nc_reader_path(const nc_reader *r);
int nc_reader_ncid(const nc_reader *r);
/* Data variables: those with a latitude and a longitude dimension (names, in file order). */
int nc_reader_nvars(const nc_reader *r);
const char *nc_reader_var_name(const nc_reader *r, int i);

/* Opens variable sel->select at sel->level (when given; matched on the level coordinate, also
 * as level*100 when the coordinate is in Pa). SM_ERR_IO when it is missing, has an unexpected
 * dimension, or the level does not exist. */
int nc_var_open(nc_reader *r, const var_selector *sel, nc_var **out);
void nc_var_close(nc_var *v);
int nc_var_ntimes(const nc_var *v);     /* 1 for a scalar time or a static field */
int nc_var_nmembers(const nc_var *v);   /* 1 without a realization dimension */
int nc_var_nlevels(const nc_var *v);    /* length of the level dimension (0 without one) */
double nc_var_level_value(const nc_var *v, int k);
const char *nc_var_level_name(const nc_var *v);
/* Names of the dimensions in file order, classified: "T", "Z", "Y", "X", "R" in `kinds`. */
int nc_var_dims(const nc_var *v, char kinds[8], const char *names[8]);
/* Metadata of field (t, m): t < ntimes, m < nmembers. */
int nc_var_field_meta(const nc_var *v, int t, int m, field_meta *out);
const src_geometry *nc_var_geometry(const nc_var *v);
/* Reads field (t, m) into a buffer owned by the variable (valid until the next read). */
int nc_var_read(nc_var *v, int t, int m, const double **values);

#endif
