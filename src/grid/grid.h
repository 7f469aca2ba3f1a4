/* Target grids: regular latitude-longitude grids (cell centres) and non-geographic x/y grids,
 * loaded by name from grids/<name>.yaml or from a path. Sizes are lat x lon (H x W) everywhere.
 *
 * Convention: a lat-lon grid stores latitude NORTH -> SOUTH (descending, as ERA5 and ECMWF do)
 * and longitude west -> east (ascending); every dataset smoecast writes uses this order. */
#ifndef SMOECAST_GRID_GRID_H
#define SMOECAST_GRID_GRID_H

typedef enum { GRID_LATLON = 0, GRID_XY = 1 } grid_kind;

typedef struct {
    char name[64];
    grid_kind kind;
    int nlat, nlon;        /* H, W */
    double *lat;           /* nlat cell-centre latitudes, descending (y for GRID_XY) */
    double *lon;           /* nlon cell-centre longitudes, ascending (x for GRID_XY) */
    int periodic_lon;      /* 1 when the grid wraps around the globe in longitude */
    double *area_weight;   /* nlat row weights w_j = cos(lat_j) / mean_j cos(lat_j); 1 for XY */
} grid;

/* `name_or_path`: a name looked up as grids/<name>.yaml (SMOECAST_GRID_PATH, then the source
 * tree's grids/, then the installed share dir), or a path to a .yaml file. */
int grid_load(const char *name_or_path, grid **out);
/* A regular lat-lon grid from its axes (copied; latitude is reordered to descending). */
int grid_create_latlon(const char *name, int nlat, const double *lat, int nlon, const double *lon, grid **out);
/* A non-geographic x/y grid (kind GRID_XY, unit area weights, never periodic); y stored
 * descending like latitude. */
int grid_create_xy(const char *name, int ny, const double *y, int nx, const double *x, grid **out);
void grid_free(grid *g);
int grid_same(const grid *a, const grid *b); /* same kind, sizes and coordinates (1e-6 deg) */

#endif
