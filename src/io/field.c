/* Field records: variable selectors and source-geometry helpers shared by the readers. */
#include "io/field.h"
#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int var_selector_parse(const char *text, var_selector *out)
{
    memset(out, 0, sizeof *out);
    out->level = NAN;
    if (!text || !*text) return sm_fail(SM_ERR_USAGE, "empty variable selector; use NAME or NAME:LEVEL (e.g. 2t, z:500)");
    const char *eq = strchr(text, '=');
    if (eq) {
        /* OUT=SELECTOR: the dataset variable is named OUT */
        size_t olen = (size_t)(eq - text);
        if (olen == 0 || olen >= sizeof out->out_name)
            return sm_fail(SM_ERR_USAGE, "variable selector '%s': the name before '=' must be 1-%zu characters", text, sizeof out->out_name - 1);
        int st = var_selector_parse(eq + 1, out);
        if (st) return st;
        memcpy(out->out_name, text, olen);
        out->out_name[olen] = '\0';
        return SM_OK;
    }
    const char *colon = strchr(text, ':');
    size_t nlen = colon ? (size_t)(colon - text) : strlen(text);
    if (nlen == 0 || nlen >= sizeof out->select)
        return sm_fail(SM_ERR_USAGE, "variable selector '%s': name must be 1-%zu characters", text, sizeof out->select - 1);
    memcpy(out->select, text, nlen);
    out->select[nlen] = '\0';
    int digits = 1;
    for (size_t i = 0; i < nlen; i++)
        if (!isdigit((unsigned char)out->select[i])) digits = 0;
    if (digits) out->param_id = strtol(out->select, NULL, 10);
    const char *lev = "";
    if (colon) {
        lev = colon + 1;
        char *end;
        errno = 0;
        double v = strtod(lev, &end);
        if (!*lev || *end || errno || !isfinite(v))
            return sm_fail(SM_ERR_USAGE, "variable selector '%s': level '%s' is not a number", text, lev);
        out->has_level = 1;
        out->level = v;
    }
    if (snprintf(out->out_name, sizeof out->out_name, "%s%s", out->select, lev) >= (int)sizeof out->out_name)
        return sm_fail(SM_ERR_USAGE, "variable selector '%s' is too long", text);
    for (char *p = out->out_name; *p; p++)
        if (*p == '.' || *p == '-') *p = '_';
    return SM_OK;
}

int var_selector_match(const var_selector *sel, const field_meta *m)
{
    if (sel->param_id > 0) {
        if (m->param_id != sel->param_id) return 0;
    } else if (strcmp(sel->select, m->short_name) != 0) {
        return 0;
    }
    if (sel->has_level && !(fabs(m->level - sel->level) < 1e-9)) return 0;
    return 1;
}

static int geometry_alloc(int nrows, src_geometry **out)
{
    src_geometry *g = calloc(1, sizeof *g);
    if (!g) return sm_fail(SM_ERR_NUMERIC, "out of memory for a geometry of %d rows", nrows);
    g->nrows = nrows;
    g->lat = malloc((size_t)nrows * sizeof *g->lat);
    g->row_len = malloc((size_t)nrows * sizeof *g->row_len);
    g->row_start = malloc(((size_t)nrows + 1) * sizeof *g->row_start);
    g->lon0 = malloc((size_t)nrows * sizeof *g->lon0);
    g->dlon = malloc((size_t)nrows * sizeof *g->dlon);
    if (!g->lat || !g->row_len || !g->row_start || !g->lon0 || !g->dlon) {
        io_geometry_free(g);
        return sm_fail(SM_ERR_NUMERIC, "out of memory for a geometry of %d rows", nrows);
    }
    *out = g;
    return SM_OK;
}

int io_geometry_regular(int nlat, const double *lat, int nlon, double lon0, double dlon,
                        const char *grid_type, src_geometry **out)
{
    if (nlat < 1 || nlon < 1 || !(dlon > 0))
        return sm_fail(SM_ERR_IO, "invalid regular grid %d x %d with spacing %g", nlon, nlat, dlon);
    src_geometry *g;
    int st = geometry_alloc(nlat, &g);
    if (st) return st;
    for (int j = 0; j < nlat; j++) {
        g->lat[j] = lat[j];
        g->row_len[j] = nlon;
        g->row_start[j] = (int64_t)j * nlon;
        g->lon0[j] = lon0;
        g->dlon[j] = dlon;
    }
    g->row_start[nlat] = (int64_t)nlat * nlon;
    g->is_regular = 1;
    snprintf(g->grid_type, sizeof g->grid_type, "%s", grid_type);
    *out = g;
    return SM_OK;
}

int io_geometry_rows(int nrows, const double *lat, const int *row_len, const double *lon0,
                     const double *dlon, const char *grid_type, src_geometry **out)
{
    if (nrows < 1) return sm_fail(SM_ERR_IO, "grid without rows");
    src_geometry *g;
    int st = geometry_alloc(nrows, &g);
    if (st) return st;
    int64_t off = 0;
    int regular = 1;
    for (int j = 0; j < nrows; j++) {
        if (row_len[j] < 0 || !(dlon[j] > 0)) {
            io_geometry_free(g);
            return sm_fail(SM_ERR_IO, "grid row %d: invalid length %d or spacing %g", j, row_len[j], dlon[j]);
        }
        g->lat[j] = lat[j];
        g->row_len[j] = row_len[j];
        g->row_start[j] = off;
        g->lon0[j] = lon0[j];
        g->dlon[j] = dlon[j];
        off += row_len[j];
        if (row_len[j] != row_len[0] || lon0[j] != lon0[0] || dlon[j] != dlon[0]) regular = 0;
    }
    g->row_start[nrows] = off;
    g->is_regular = regular;
    snprintf(g->grid_type, sizeof g->grid_type, "%s", grid_type);
    *out = g;
    return SM_OK;
}

void io_geometry_free(src_geometry *g)
{
    if (!g) return;
    free(g->lat);
    free(g->row_len);
    free(g->row_start);
    free(g->lon0);
    free(g->dlon);
    free(g);
}

int io_geometry_same(const src_geometry *a, const src_geometry *b)
{
    if (a->nrows != b->nrows) return 0;
    for (int j = 0; j < a->nrows; j++) {
        if (a->row_len[j] != b->row_len[j]) return 0;
        if (fabs(a->lat[j] - b->lat[j]) > 1e-6) return 0;
        if (fabs(a->dlon[j] - b->dlon[j]) > 1e-6) return 0;
        double d = fmod(fabs(a->lon0[j] - b->lon0[j]), 360.0);
        if (d > 1e-6 && 360.0 - d > 1e-6) return 0;
    }
    return 1;
}

double io_lon0_canonical(double lon0, int n, double dlon)
{
    if (lon0 + (n - 1) * dlon >= 360.0 - 1e-9 && lon0 >= 180.0) return lon0 - 360.0;
    return lon0;
}

int io_geometry_row_is_global(const src_geometry *g, int row)
{
    return fabs(g->row_len[row] * g->dlon[row] - 360.0) < 1e-6;
}
