/* The geometry of a SOURCE field as it comes out of a reader (GRIB or NetCDF), before regridding.
 * Every supported source grid is a set of latitude rows, each with equally spaced longitudes:
 * regular_ll, regular_gg (Gaussian latitudes), reduced_gg / octahedral (row lengths vary), and
 * reduced_ll. Readers canonicalise scanning modes so that values are stored row after row, each
 * row west -> east with longitude increasing from lon0; rows are in strictly monotonic latitude
 * order (either direction). NaN marks missing values.
 *
 * geometry_create_* copy their arguments and validate them (SM_ERR_IO naming the row). A row
 * whose n * dlon misses 360 by less than dlon / 10 is taken as global and its dlon set to 360 / n
 * exactly: GRIB1 stores longitudes in millidegrees, so a reader deriving dlon from the first and
 * last longitude of a 2560-point global row gets 359.859 / 2559 (n * dlon = 360.0006). Readers
 * should derive dlon that way, not from the stored increment (0.141 for 0.140625). */
#ifndef SMOECAST_GRID_GEOMETRY_H
#define SMOECAST_GRID_GEOMETRY_H

#include <stdint.h>

typedef struct {
    int nrows;
    double *lat;          /* nrows row latitudes (degrees north), strictly monotonic */
    int *row_len;         /* points in each row */
    int64_t *row_start;   /* offset of each row's first value; row_start[nrows] = total points */
    double *lon0;         /* longitude of each row's first point, degrees east, any range */
    double *dlon;         /* spacing along each row, degrees, > 0 */
    int is_regular;       /* every row has the same length, lon0 and dlon */
    char grid_type[32];   /* what the source called it: regular_ll, reduced_gg, netcdf, ... */
} src_geometry;

int geometry_create_regular(int nlat, const double *lat, int nlon, double lon0, double dlon, src_geometry **out);
int geometry_create_rows(int nrows, const double *lat, const int *row_len, const double *lon0,
                         const double *dlon, src_geometry **out);
void geometry_free(src_geometry *g);
int64_t geometry_npoints(const src_geometry *g);
int geometry_same(const src_geometry *a, const src_geometry *b);
/* Whether a row spans the full circle (n * dlon == 360 within 1e-6). */
int geometry_row_is_global(const src_geometry *g, int row);

#endif
