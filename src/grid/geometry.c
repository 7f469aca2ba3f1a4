/* Source-field geometry: latitude rows of equally spaced longitudes (regular, Gaussian,
 * reduced), as readers produce them after canonicalising the scanning mode. */
#include "grid/geometry.h"
#include "core/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void geometry_free(src_geometry *g)
{
    if (!g) return;
    free(g->lat);
    free(g->row_len);
    free(g->row_start);
    free(g->lon0);
    free(g->dlon);
    free(g);
}

static int geometry_alloc(int nrows, src_geometry **out)
{
    src_geometry *g = calloc(1, sizeof *g);
    if (!g) return sm_fail(SM_ERR_NUMERIC, "geometry: out of memory");
    g->nrows = nrows;
    g->lat = malloc((size_t)nrows * sizeof *g->lat);
    g->row_len = malloc((size_t)nrows * sizeof *g->row_len);
    g->row_start = malloc(((size_t)nrows + 1) * sizeof *g->row_start);
    g->lon0 = malloc((size_t)nrows * sizeof *g->lon0);
    g->dlon = malloc((size_t)nrows * sizeof *g->dlon);
    if (!g->lat || !g->row_len || !g->row_start || !g->lon0 || !g->dlon) {
        geometry_free(g);
        return sm_fail(SM_ERR_NUMERIC, "geometry: out of memory");
    }
    *out = g;
    return SM_OK;
}

int geometry_create_rows(int nrows, const double *lat, const int *row_len, const double *lon0,
                         const double *dlon, src_geometry **out)
{
    if (!out) return sm_fail(SM_ERR_USAGE, "geometry_create_rows: NULL output");
    *out = NULL;
    if (nrows < 1 || !lat || !row_len || !lon0 || !dlon)
        return sm_fail(SM_ERR_USAGE, "geometry: need at least one row with latitudes, lengths and spacings");
    for (int j = 0; j < nrows; j++) {
        if (!isfinite(lat[j]) || fabs(lat[j]) > 90.0 + 1e-6)
            return sm_fail(SM_ERR_IO, "geometry: row %d latitude %g is outside -90..90", j, lat[j]);
        if (row_len[j] < 1)
            return sm_fail(SM_ERR_IO, "geometry: row %d has %d points (need >= 1)", j, row_len[j]);
        if (!isfinite(lon0[j]))
            return sm_fail(SM_ERR_IO, "geometry: row %d first longitude is not finite", j);
        if (!(dlon[j] > 0) || !isfinite(dlon[j]) || (double)(row_len[j] - 1) * dlon[j] > 360.0 + 1e-6)
            return sm_fail(SM_ERR_IO, "geometry: row %d longitude spacing %g with %d points is invalid "
                           "(must be > 0 and span at most 360 degrees)", j, dlon[j], row_len[j]);
    }
    int asc = nrows > 1 && lat[1] > lat[0];
    for (int j = 1; j < nrows; j++)
        if (asc ? !(lat[j] > lat[j - 1]) : !(lat[j] < lat[j - 1]))
            return sm_fail(SM_ERR_IO, "geometry: row latitudes are not strictly monotonic at row %d (%g after %g)",
                           j, lat[j], lat[j - 1]);
    src_geometry *g = NULL;
    int st = geometry_alloc(nrows, &g);
    if (st) return st;
    g->row_start[0] = 0;
    g->is_regular = 1;
    for (int j = 0; j < nrows; j++) {
        g->lat[j] = lat[j];
        g->row_len[j] = row_len[j];
        g->lon0[j] = lon0[j];
        g->dlon[j] = dlon[j];
        /* a row covering the circle up to rounding (GRIB1 millidegrees) is made exactly global */
        double gap = fabs(row_len[j] * dlon[j] - 360.0);
        if (gap > 0 && gap < 0.1 * dlon[j]) g->dlon[j] = 360.0 / row_len[j];
        g->row_start[j + 1] = g->row_start[j] + row_len[j];
        if (row_len[j] != row_len[0] || lon0[j] != lon0[0] || g->dlon[j] != g->dlon[0]) g->is_regular = 0;
    }
    snprintf(g->grid_type, sizeof g->grid_type, "%s", g->is_regular ? "regular_ll" : "reduced");
    *out = g;
    return SM_OK;
}

int geometry_create_regular(int nlat, const double *lat, int nlon, double lon0, double dlon, src_geometry **out)
{
    if (!out) return sm_fail(SM_ERR_USAGE, "geometry_create_regular: NULL output");
    *out = NULL;
    if (nlat < 1 || nlon < 1 || !lat) return sm_fail(SM_ERR_USAGE, "geometry: invalid size %d x %d", nlat, nlon);
    int *len = malloc((size_t)nlat * sizeof *len);
    double *l0 = malloc((size_t)nlat * sizeof *l0), *dl = malloc((size_t)nlat * sizeof *dl);
    int st;
    if (!len || !l0 || !dl) {
        st = sm_fail(SM_ERR_NUMERIC, "geometry: out of memory");
    } else {
        for (int j = 0; j < nlat; j++) {
            len[j] = nlon;
            l0[j] = lon0;
            dl[j] = dlon;
        }
        st = geometry_create_rows(nlat, lat, len, l0, dl, out);
    }
    free(len);
    free(l0);
    free(dl);
    return st;
}

int64_t geometry_npoints(const src_geometry *g) { return g ? g->row_start[g->nrows] : 0; }

int geometry_same(const src_geometry *a, const src_geometry *b)
{
    if (!a || !b) return 0;
    if (a->nrows != b->nrows) return 0;
    for (int j = 0; j < a->nrows; j++) {
        if (a->row_len[j] != b->row_len[j]) return 0;
        if (fabs(a->lat[j] - b->lat[j]) > 1e-6 || fabs(a->dlon[j] - b->dlon[j]) > 1e-6) return 0;
        double d = fmod(fabs(a->lon0[j] - b->lon0[j]), 360.0); /* -10 and 350 are the same meridian */
        if (d > 1e-6 && d < 360.0 - 1e-6) return 0;
    }
    return 1;
}

int geometry_row_is_global(const src_geometry *g, int row)
{
    if (!g || row < 0 || row >= g->nrows) return 0;
    return fabs(g->row_len[row] * g->dlon[row] - 360.0) < 1e-6;
}
