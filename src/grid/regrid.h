/* Regridding from a source geometry onto a target grid through precomputed sparse weights:
 * computed once per (source geometry, target grid, method) and applied to every field. */
#ifndef SMOECAST_GRID_REGRID_H
#define SMOECAST_GRID_REGRID_H

#include "grid/geometry.h"
#include "grid/grid.h"

typedef enum { REGRID_BILINEAR = 0, REGRID_CONSERVATIVE = 1, REGRID_NEAREST = 2 } regrid_method;

typedef struct regrid_weights regrid_weights;

int regrid_method_parse(const char *text, regrid_method *out); /* bilinear|conservative|nearest */
const char *regrid_method_name(regrid_method m);

/* Fails (SM_ERR_IO) when the target lies outside the source domain entirely. */
int regrid_weights_create(const src_geometry *src, const grid *dst, regrid_method method, regrid_weights **out);
void regrid_weights_free(regrid_weights *w);

/* dst[nlat*nlon] from src values laid out as the geometry says. Missing (NaN) source values are
 * dropped and the remaining weights renormalised; a target point with no valid source is NaN. */
void regrid_apply(const regrid_weights *w, const double *src, float *dst);

/* Number of stored weights, of source points regrid_apply reads, and the method. */
int64_t regrid_weights_nnz(const regrid_weights *w);
int64_t regrid_weights_src_points(const regrid_weights *w);
regrid_method regrid_weights_method(const regrid_weights *w);

/* The target grid equal to a REGULAR source geometry (for `--grid native`): same points, latitude
 * stored north -> south, longitudes lon0 + i*dlon. Regridding onto it with any method is exact
 * (bilinear and nearest copy each value; only the row order changes). SM_ERR_IO if not regular. */
int grid_from_geometry(const src_geometry *src, const char *name, grid **out);

#endif
