/* The record a reader (GRIB or NetCDF) produces for one 2-D field: identity (parameter, level,
 * member), time (valid time, reference time, forecast period) and the source geometry. Values
 * travel separately as a double array laid out as the geometry says (rows, each west -> east),
 * NaN for missing points.
 *
 * Also owns the small helpers that build and compare src_geometry objects for the readers, and
 * the parsing of variable selectors ("2t", "z:500", "129:850"). */
#ifndef SMOECAST_IO_FIELD_H
#define SMOECAST_IO_FIELD_H

#include "grid/geometry.h"

#include <stdint.h>

/* Times are hours since 1970-01-01 00:00:00 in the field's calendar (GRIB: proleptic Gregorian). */
typedef struct {
    int msg;                  /* 1-based message (GRIB field) number or NetCDF time index + 1 */
    long param_id;            /* GRIB paramId, 0 when unknown (NetCDF) */
    char short_name[64];      /* GRIB shortName or NetCDF variable name */
    char name[128];           /* long name */
    char units[64];
    char standard_name[96];   /* CF standard_name when known, else "" */
    char type_of_level[48];   /* GRIB typeOfLevel, NetCDF level coordinate name, "" when none */
    double level;             /* level value (hPa for isobaric), NaN when the field has no level */
    int member;               /* ensemble member (GRIB `number`, NetCDF realization), -1 if none */
    int has_time;             /* 0 for static fields (NetCDF variable without a time axis) */
    double valid_time;        /* hours since 1970-01-01 (or the raw axis value, see time_is_index) */
    double reference_time;    /* forecast_reference_time, NaN when unknown */
    double forecast_period;   /* hours, NaN when unknown */
    int time_is_index;        /* 1: valid_time is a unitless axis value (e.g. a `month` axis) */
    char calendar[32];        /* standard, proleptic_gregorian, noleap, 360_day, ... */
    char packing[48];         /* GRIB packingType or NetCDF storage type ("int16 packed", ...) */
    int bits_per_value;       /* GRIB bitsPerValue, 0 otherwise */
    int edition;              /* GRIB edition (1, 2), 0 for NetCDF */
    int64_t npoints;          /* values in the field */
} field_meta;

/* A variable selector from the command line or config: "[OUT=]NAME[:LEVEL]". NAME is a shortName,
 * a numeric paramId or a NetCDF variable name; the dataset variable is OUT when given, else NAME
 * followed by LEVEL ("z:500" -> "z500", "2t" -> "2t", "t2m=2t" -> "t2m"). */
typedef struct {
    char select[64];     /* shortName / variable name, or the paramId digits */
    long param_id;       /* > 0 when select is all digits */
    int has_level;
    double level;
    char out_name[80];   /* dataset variable name */
} var_selector;

int var_selector_parse(const char *text, var_selector *out);
/* 1 when the GRIB field matches (paramId when the selector is numeric, else shortName; level when
 * given). */
int var_selector_match(const var_selector *sel, const field_meta *m);

/* Geometry construction for the readers (grid/geometry.h, plus the source's grid type name);
 * free with geometry_free, compare with geometry_same. */
int io_geometry_regular(int nlat, const double *lat, int nlon, double lon0, double dlon,
                        const char *grid_type, src_geometry **out);
int io_geometry_rows(int nrows, const double *lat, const int *row_len, const double *lon0,
                     const double *dlon, const char *grid_type, src_geometry **out);

/* Canonical longitude of the first point of a regular row: unchanged unless the row runs past
 * 360 degrees east, in which case it is shifted by -360 so the axis increases monotonically
 * across the 0 meridian (350 .. 379 becomes -10 .. 19). */
double io_lon0_canonical(double lon0, int n, double dlon);

#endif
