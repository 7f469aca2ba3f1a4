/* Building blocks for the CF-1.8 NetCDF files smoecast writes (forecasts, post-processed
 * ensembles, expert maps): global attributes, the horizontal grid (latitude/longitude with a
 * latitude_longitude grid mapping, or y/x), time coordinates and data variables with the
 * standard attributes (METHODS.md section 6). All functions are called in define mode except
 * cf_put_grid, which writes the coordinate values afterwards. */
#ifndef SMOECAST_IO_CF_OUTPUT_H
#define SMOECAST_IO_CF_OUTPUT_H

typedef struct {
    int is_latlon;
    int nlat, nlon;
    const double *lat, *lon;
    /* filled by cf_define_grid */
    int dim_y, dim_x;
    int var_y, var_x, var_crs; /* var_crs is -1 on y/x grids */
} cf_grid;

/* Text attribute helper; returns the netCDF status. */
int cf_put_text(int ncid, int varid, const char *name, const char *text);

/* Conventions, title, institution, source (smoecast version), history. */
int cf_global_attributes(int ncid, const char *title, const char *history);
int cf_define_grid(int ncid, cf_grid *g);
int cf_put_grid(int ncid, const cf_grid *g);

/* A time-like coordinate "hours since 1970-01-01 00:00:00" with calendar (standard_name
 * time / forecast_reference_time). ndims may be 0 (scalar) .. 2. */
int cf_define_time(int ncid, const char *name, const char *standard_name, const char *long_name, const char *calendar,
                   int ndims, const int *dims, int *varid);
/* forecast_period in hours. */
int cf_define_period(int ncid, const char *name, int ndims, const int *dims, int *varid);

/* A float data variable with _FillValue NaN, units, standard_name (omitted when empty),
 * long_name, grid_mapping (lat-lon grids), coordinates (nullable), deflate level 4 and chunks
 * of one horizontal field. */
int cf_define_field(int ncid, const cf_grid *g, const char *name, int ndims, const int *dims, const char *units,
                    const char *standard_name, const char *long_name, const char *coordinates, int *varid);

#endif
