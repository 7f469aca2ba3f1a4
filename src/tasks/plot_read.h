/* Reading one 2-D slice of a variable from any CF NetCDF file for plotting (no GMT needed).
 *
 * Spatial dimensions are found through their coordinate variables: longitude/latitude by units
 * (degrees_east / degrees_north and variants), standard_name or axis; otherwise dimensions with
 * axis X/Y or named x/y form a plain (non-geographic) raster. Every other dimension is selected
 * down to one index: time (units "... since ...", standard_name time, axis T, or named
 * time/month/valid_time) by --time (an ISO date/time or a 0-based index), vertical levels,
 * ensemble members and lead times by coordinate value (or index when there is no coordinate
 * variable), any other dimension by an explicit "dim=index"; unselected dimensions take their
 * first entry. Packing (scale_factor/add_offset, also negative), _FillValue/missing_value and
 * valid_min/valid_max/valid_range are applied; missing points become NaN.
 *
 * A slice is categorical when the variable carries flag_values/flag_meanings (expert maps), or
 * when it is an unpacked integer variable (or a smoecast dataset variable with
 * smoecast_categorical = 1 holding whole numbers) with at most 16 distinct values;
 * then labels come from flag_meanings, else from "k=Label" lists in the variable's long_name,
 * description or comment or the global title (the land-sea mask file), else the values. */
#ifndef SMOECAST_TASKS_PLOT_READ_H
#define SMOECAST_TASKS_PLOT_READ_H

#include <stddef.h>

#define PLOT_MAX_CATEGORIES 64
#define PLOT_MAX_INDEX_SEL 8

typedef enum { PLOT_GRID_GEO = 0, PLOT_GRID_XY = 1 } plot_grid_kind;

typedef struct {
    const char *time;    /* ISO date/time ("2019-03-01T06:00") or 0-based index; NULL = first */
    const char *level;   /* vertical coordinate value (e.g. "500"); NULL = first */
    const char *member;  /* ensemble member (realization value); NULL = first */
    const char *lead;    /* lead time (forecast_period value, usually hours); NULL = first */
    int n_index;         /* "dim=index" selections for any other dimension */
    const char *index[PLOT_MAX_INDEX_SEL];
    int lenient;         /* ignore selectors naming dimensions the variable lacks (truth files) */
} plot_select;

typedef struct {
    char path[1024];
    char var[256];
    char long_name[256];
    char units[128];
    char time_label[64];   /* "2019-03-01T00:00", "month 7", or "" when the slice has no time */
    double time_hours;     /* valid time in hours since 1970-01-01 (NaN when not decoded) */
    char selection[256];   /* other selected coordinates, e.g. "level 500 millibars" */
    plot_grid_kind kind;
    size_t nx, ny;
    double *x, *y;         /* ascending coordinate values (longitudes unwrapped to increase) */
    float *data;           /* ny rows of nx values, row 0 = smallest y; NaN = missing */
    char x_name[128], y_name[128], x_units[64], y_units[64];
    int periodic_x;        /* longitudes cover the full circle */
    int categorical;
    int n_categories;      /* data then holds the category index 0..n-1 (NaN elsewhere) */
    double cat_values[PLOT_MAX_CATEGORIES];
    char cat_labels[PLOT_MAX_CATEGORIES][64];
    int is_difference;     /* set by plot_field_subtract */
} plot_field;

/* Reads the slice of `var` in `path` chosen by `sel` (NULL = defaults). SM_ERR_IO for a missing
 * file or variable (the message lists the available variables), a variable without a 2-D
 * lat/lon or y/x grid, or a time/level/member/lead that is not in the file (the message says
 * which values exist: first..last and count). */
int plot_read_slice(const char *path, const char *var, const plot_select *sel, plot_field *out);
void plot_field_free(plot_field *f);

/* field -= truth for forecast-minus-truth maps: the grids must match (same nx, ny and
 * coordinates within 1e-4 degrees); the result is continuous and marked is_difference. */
int plot_field_subtract(plot_field *field, const plot_field *truth);

/* Default title: "long_name (units), time[, selection]"; for differences "... minus truth". */
void plot_default_title(const plot_field *f, char *buf, size_t len);
/* The same in two parts: "long_name [units]" and "time, selection" (maps draw a subtitle). */
void plot_default_title_parts(const plot_field *f, char *title, size_t tlen, char *sub, size_t slen);

/* Minimal CF time support (no udunits): "<seconds|minutes|hours|days> since <date>" with the
 * calendars standard/gregorian/proleptic_gregorian (treated as proleptic), julian,
 * noleap/365_day, all_leap/366_day, 360_day. Exposed for the tests. */
int plot_time_units_parse(const char *units, const char *calendar, double *unit_hours, double *ref_hours, int *cal);
int plot_date_parse(const char *text, int *ymdhm, double *second);
int plot_date_valid(const int *ymdhm, int cal); /* 1 when the day exists in the calendar */
double plot_date_to_hours(const int *ymdhm, double second, int cal);
void plot_format_hours(double hours, int cal, char *buf, size_t len);

#endif
