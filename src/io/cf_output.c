/* CF-1.8 output helpers (see cf_output.h). */
#include "io/cf_output.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <string.h>

#define NCTRY(call)                       \
    do {                                  \
        int nc_status_ = (call);          \
        if (nc_status_ != NC_NOERR) return nc_status_; \
    } while (0)

int cf_put_text(int ncid, int varid, const char *name, const char *text)
{
    return nc_put_att_text(ncid, varid, name, strlen(text), text);
}

int cf_global_attributes(int ncid, const char *title, const char *history)
{
    NCTRY(cf_put_text(ncid, NC_GLOBAL, "Conventions", "CF-1.8"));
    NCTRY(cf_put_text(ncid, NC_GLOBAL, "title", title));
    NCTRY(cf_put_text(ncid, NC_GLOBAL, "institution", "smoecast user"));
    NCTRY(cf_put_text(ncid, NC_GLOBAL, "source", "smoecast " SMOECAST_VERSION));
    if (history) NCTRY(cf_put_text(ncid, NC_GLOBAL, "history", history));
    return NC_NOERR;
}

int cf_define_grid(int ncid, cf_grid *g)
{
    const char *yname = g->is_latlon ? "latitude" : "y", *xname = g->is_latlon ? "longitude" : "x";
    NCTRY(nc_def_dim(ncid, yname, (size_t)g->nlat, &g->dim_y));
    NCTRY(nc_def_dim(ncid, xname, (size_t)g->nlon, &g->dim_x));
    NCTRY(nc_def_var(ncid, yname, NC_DOUBLE, 1, &g->dim_y, &g->var_y));
    NCTRY(nc_def_var(ncid, xname, NC_DOUBLE, 1, &g->dim_x, &g->var_x));
    g->var_crs = -1;
    if (g->is_latlon) {
        NCTRY(cf_put_text(ncid, g->var_y, "standard_name", "latitude"));
        NCTRY(cf_put_text(ncid, g->var_y, "long_name", "latitude"));
        NCTRY(cf_put_text(ncid, g->var_y, "units", "degrees_north"));
        NCTRY(cf_put_text(ncid, g->var_x, "standard_name", "longitude"));
        NCTRY(cf_put_text(ncid, g->var_x, "long_name", "longitude"));
        NCTRY(cf_put_text(ncid, g->var_x, "units", "degrees_east"));
        NCTRY(nc_def_var(ncid, "crs", NC_INT, 0, NULL, &g->var_crs));
        NCTRY(cf_put_text(ncid, g->var_crs, "grid_mapping_name", "latitude_longitude"));
        double r = 6371229.0;
        NCTRY(nc_put_att_double(ncid, g->var_crs, "earth_radius", NC_DOUBLE, 1, &r));
    } else {
        NCTRY(cf_put_text(ncid, g->var_y, "long_name", "y coordinate"));
        NCTRY(cf_put_text(ncid, g->var_y, "units", "1"));
        NCTRY(cf_put_text(ncid, g->var_x, "long_name", "x coordinate"));
        NCTRY(cf_put_text(ncid, g->var_x, "units", "1"));
    }
    NCTRY(cf_put_text(ncid, g->var_y, "axis", "Y"));
    NCTRY(cf_put_text(ncid, g->var_x, "axis", "X"));
    return NC_NOERR;
}

int cf_put_grid(int ncid, const cf_grid *g)
{
    NCTRY(nc_put_var_double(ncid, g->var_y, g->lat));
    NCTRY(nc_put_var_double(ncid, g->var_x, g->lon));
    return NC_NOERR;
}

int cf_define_time(int ncid, const char *name, const char *standard_name, const char *long_name, const char *calendar,
                   int ndims, const int *dims, int *varid)
{
    NCTRY(nc_def_var(ncid, name, NC_DOUBLE, ndims, dims, varid));
    NCTRY(cf_put_text(ncid, *varid, "standard_name", standard_name));
    NCTRY(cf_put_text(ncid, *varid, "long_name", long_name));
    NCTRY(cf_put_text(ncid, *varid, "units", "hours since 1970-01-01 00:00:00"));
    NCTRY(cf_put_text(ncid, *varid, "calendar", calendar && calendar[0] ? calendar : "standard"));
    return NC_NOERR;
}

int cf_define_period(int ncid, const char *name, int ndims, const int *dims, int *varid)
{
    NCTRY(nc_def_var(ncid, name, NC_DOUBLE, ndims, dims, varid));
    NCTRY(cf_put_text(ncid, *varid, "standard_name", "forecast_period"));
    NCTRY(cf_put_text(ncid, *varid, "long_name", "forecast period (lead time)"));
    NCTRY(cf_put_text(ncid, *varid, "units", "hours"));
    return NC_NOERR;
}

int cf_define_field(int ncid, const cf_grid *g, const char *name, int ndims, const int *dims, const char *units,
                    const char *standard_name, const char *long_name, const char *coordinates, int *varid)
{
    NCTRY(nc_def_var(ncid, name, NC_FLOAT, ndims, dims, varid));
    size_t chunks[8];
    for (int d = 0; d < ndims; d++) chunks[d] = 1;
    chunks[ndims - 2] = (size_t)g->nlat;
    chunks[ndims - 1] = (size_t)g->nlon;
    NCTRY(nc_def_var_chunking(ncid, *varid, NC_CHUNKED, chunks));
    NCTRY(nc_def_var_deflate(ncid, *varid, 1, 1, 4));
    float fill = NAN;
    NCTRY(nc_put_att_float(ncid, *varid, "_FillValue", NC_FLOAT, 1, &fill));
    if (units && units[0]) NCTRY(cf_put_text(ncid, *varid, "units", units));
    if (standard_name && standard_name[0]) NCTRY(cf_put_text(ncid, *varid, "standard_name", standard_name));
    NCTRY(cf_put_text(ncid, *varid, "long_name", long_name && long_name[0] ? long_name : name));
    if (coordinates && coordinates[0]) NCTRY(cf_put_text(ncid, *varid, "coordinates", coordinates));
    if (g->var_crs >= 0) NCTRY(cf_put_text(ncid, *varid, "grid_mapping", "crs"));
    return NC_NOERR;
}
