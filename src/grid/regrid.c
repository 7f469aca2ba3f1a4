/* Regridding from a source geometry (rows of equally spaced longitudes) onto a lat-lon target
 * grid: bilinear, first-order conservative and nearest-neighbour weights, stored as a sparse
 * CSR matrix (one row per target point) and applied with a NaN-aware, renormalising mat-vec. */
#include "grid/regrid.h"
#include "core/log.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846
#define DEG2RAD (PI / 180.0)
#define LON_TOL 1e-6   /* degrees: a target this close outside a limited-area row is on its edge */
#define LAT_TOL 1e-6   /* degrees */
#define SNAP 1e-9      /* interpolation fractions this close to 0 or 1 are snapped (exact identity) */

struct regrid_weights {
    regrid_method method;
    int64_t nsrc;       /* source points expected by regrid_apply */
    int64_t ndst;       /* nlat * nlon of the target */
    int64_t *ptr;       /* ndst + 1 */
    int32_t *col;       /* source point index of each weight */
    double *w;          /* weights (for conservative: overlap area in steradians) */
};

int regrid_method_parse(const char *text, regrid_method *out)
{
    if (!text || !out) return sm_fail(SM_ERR_USAGE, "regrid method: missing value");
    if (strcmp(text, "bilinear") == 0) *out = REGRID_BILINEAR;
    else if (strcmp(text, "conservative") == 0) *out = REGRID_CONSERVATIVE;
    else if (strcmp(text, "nearest") == 0) *out = REGRID_NEAREST;
    else return sm_fail(SM_ERR_USAGE, "unknown regrid method '%s' (expected bilinear, conservative or nearest)", text);
    return SM_OK;
}

const char *regrid_method_name(regrid_method m)
{
    switch (m) {
    case REGRID_BILINEAR: return "bilinear";
    case REGRID_CONSERVATIVE: return "conservative";
    case REGRID_NEAREST: return "nearest";
    }
    return "unknown";
}

void regrid_weights_free(regrid_weights *w)
{
    if (!w) return;
    free(w->ptr);
    free(w->col);
    free(w->w);
    free(w);
}

int64_t regrid_weights_nnz(const regrid_weights *w) { return w ? w->ptr[w->ndst] : 0; }
int64_t regrid_weights_src_points(const regrid_weights *w) { return w ? w->nsrc : 0; }
regrid_method regrid_weights_method(const regrid_weights *w) { return w->method; }

/* ---- sparse builder ----------------------------------------------------------------------- */

typedef struct {
    int64_t n, cap;
    int32_t *col;
    double *w;
} wlist;

static int wlist_push(wlist *l, int64_t col, double w)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 1024;
        int32_t *c = realloc(l->col, (size_t)cap * sizeof *c);
        if (!c) return -1;
        l->col = c;
        double *ww = realloc(l->w, (size_t)cap * sizeof *ww);
        if (!ww) return -1;
        l->w = ww;
        l->cap = cap;
    }
    l->col[l->n] = (int32_t)col;
    l->w[l->n] = w;
    l->n++;
    return 0;
}

/* A small list of (source index, weight) for one target point, duplicates merged. */
typedef struct {
    int n, cap;
    int64_t *idx;
    double *w;
} pt_list;

static int pt_add(pt_list *p, int64_t idx, double w)
{
    if (w == 0.0) return 0;
    for (int k = 0; k < p->n; k++)
        if (p->idx[k] == idx) {
            p->w[k] += w;
            return 0;
        }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        int64_t *i2 = realloc(p->idx, (size_t)cap * sizeof *i2);
        if (!i2) return -1;
        p->idx = i2;
        double *w2 = realloc(p->w, (size_t)cap * sizeof *w2);
        if (!w2) return -1;
        p->w = w2;
        p->cap = cap;
    }
    p->idx[p->n] = idx;
    p->w[p->n] = w;
    p->n++;
    return 0;
}

/* ---- source rows sorted by latitude ------------------------------------------------------- */

typedef struct {
    const src_geometry *g;
    int n;
    int *row;      /* row index in the geometry, by ascending latitude */
    double *lat;   /* ascending row latitudes */
    int south_global, north_global; /* outermost rows encircle the pole */
} rows_t;

static int rows_init(const src_geometry *g, rows_t *r)
{
    r->g = g;
    r->n = g->nrows;
    r->row = malloc((size_t)r->n * sizeof *r->row);
    r->lat = malloc((size_t)r->n * sizeof *r->lat);
    if (!r->row || !r->lat) return -1;
    int asc = r->n < 2 || g->lat[1] > g->lat[0];
    for (int k = 0; k < r->n; k++) {
        r->row[k] = asc ? k : r->n - 1 - k;
        r->lat[k] = g->lat[r->row[k]];
    }
    r->south_global = geometry_row_is_global(g, r->row[0]);
    r->north_global = geometry_row_is_global(g, r->row[r->n - 1]);
    return 0;
}

static void rows_free(rows_t *r)
{
    free(r->row);
    free(r->lat);
}

/* Largest k with lat[k] <= phi (binary search), -1 if phi < lat[0]. */
static int rows_below(const rows_t *r, double phi)
{
    int lo = 0, hi = r->n - 1;
    if (phi < r->lat[0]) return -1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (r->lat[mid] <= phi) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* Longitude offset of `lam` east of `lon0`, in [0, 360). */
static double east_of(double lam, double lon0)
{
    double d = fmod(lam - lon0, 360.0);
    if (d < 0) d += 360.0;
    if (d >= 360.0) d = 0.0;
    return d;
}

/* Linear interpolation along one row at longitude lam: up to two (index, weight) pairs scaled
 * by `scale`. Returns 0 when lam lies outside a limited-area row. */
static int row_linear(const src_geometry *g, int j, double lam, double scale, pt_list *p, int *oom)
{
    int n = g->row_len[j];
    double d = g->dlon[j];
    int64_t base = g->row_start[j];
    double delta = east_of(lam, g->lon0[j]);
    if (geometry_row_is_global(g, j)) {
        double u = delta / d;
        int64_t i0 = (int64_t)floor(u);
        double f = u - (double)i0;
        if (f < SNAP) f = 0;
        if (f > 1 - SNAP) {
            f = 0;
            i0++;
        }
        i0 %= n;
        int64_t i1 = (i0 + 1) % n;
        if (pt_add(p, base + i0, scale * (1 - f)) || pt_add(p, base + i1, scale * f)) *oom = 1;
        return 1;
    }
    double span = (n - 1) * d;
    if (delta > span + LON_TOL) {
        if (delta >= 360.0 - LON_TOL) delta = 0.0; /* a hair west of the first point */
        else return 0;
    }
    if (n == 1) {
        if (pt_add(p, base, scale)) *oom = 1;
        return 1;
    }
    double u = delta / d;
    int64_t i0 = (int64_t)floor(u);
    if (i0 > n - 2) i0 = n - 2;
    if (i0 < 0) i0 = 0;
    double f = u - (double)i0;
    if (f > 1) f = 1;
    if (f < SNAP) f = 0;
    if (f > 1 - SNAP) f = 1;
    if (pt_add(p, base + i0, scale * (1 - f)) || pt_add(p, base + i0 + 1, scale * f)) *oom = 1;
    return 1;
}

/* Every point of a (global, pole-encircling) row, equally weighted: the pole value. */
static void row_mean(const src_geometry *g, int j, double scale, pt_list *p, int *oom)
{
    int n = g->row_len[j];
    for (int i = 0; i < n; i++)
        if (pt_add(p, g->row_start[j] + i, scale / n)) *oom = 1;
}

static int bilinear_point(const rows_t *r, double phi, double lam, pt_list *p, int *oom)
{
    const src_geometry *g = r->g;
    int n = r->n;
    if (n == 1) {
        if (fabs(phi - r->lat[0]) > LAT_TOL) return 0;
        return row_linear(g, r->row[0], lam, 1.0, p, oom);
    }
    if (phi < r->lat[0] - LAT_TOL) {
        /* south of the southernmost row: interpolate towards the pole if that row encircles it */
        if (!r->south_global || r->lat[0] <= -90.0) return 0;
        double t = (r->lat[0] - phi) / (r->lat[0] + 90.0);
        if (t > 1) t = 1;
        row_linear(g, r->row[0], lam, 1 - t, p, oom);
        row_mean(g, r->row[0], t, p, oom);
        return 1;
    }
    if (phi > r->lat[n - 1] + LAT_TOL) {
        if (!r->north_global || r->lat[n - 1] >= 90.0) return 0;
        double t = (phi - r->lat[n - 1]) / (90.0 - r->lat[n - 1]);
        if (t > 1) t = 1;
        row_linear(g, r->row[n - 1], lam, 1 - t, p, oom);
        row_mean(g, r->row[n - 1], t, p, oom);
        return 1;
    }
    int k = rows_below(r, phi);
    if (k < 0) k = 0;
    if (k > n - 2) k = n - 2;
    double t = (phi - r->lat[k]) / (r->lat[k + 1] - r->lat[k]);
    if (t < SNAP) t = 0;
    if (t > 1 - SNAP) t = 1;
    pt_list tmp = *p;
    int ok = 1;
    if (t < 1) ok &= row_linear(g, r->row[k], lam, 1 - t, p, oom);
    if (t > 0) ok &= row_linear(g, r->row[k + 1], lam, t, p, oom);
    if (!ok) p->n = tmp.n; /* outside one of the bracketing rows: outside the domain */
    return ok;
}

/* cos of the great-circle distance between two points (monotonic in the distance). */
static double cos_dist(double phi1, double lam1, double phi2, double lam2)
{
    phi1 *= DEG2RAD;
    phi2 *= DEG2RAD;
    return sin(phi1) * sin(phi2) + cos(phi1) * cos(phi2) * cos((lam2 - lam1) * DEG2RAD);
}

static int nearest_point(const rows_t *r, double phi, double lam, pt_list *p, int *oom)
{
    const src_geometry *g = r->g;
    int n = r->n;
    /* domain in latitude: half a row spacing beyond the outer rows, or the pole if they encircle it */
    double hs = n > 1 ? (r->lat[1] - r->lat[0]) / 2 : g->dlon[r->row[0]] / 2;
    double hn = n > 1 ? (r->lat[n - 1] - r->lat[n - 2]) / 2 : hs;
    double south = r->south_global ? -90.0 : r->lat[0] - hs;
    double north = r->north_global ? 90.0 : r->lat[n - 1] + hn;
    if (phi < south - LAT_TOL || phi > north + LAT_TOL) return 0;
    int k = rows_below(r, phi);
    int best_set = 0;
    double best = -2;
    int64_t best_idx = 0;
    for (int kk = k - 1; kk <= k + 2; kk++) {
        if (kk < 0 || kk >= n) continue;
        int j = r->row[kk];
        int len = g->row_len[j];
        double d = g->dlon[j];
        double delta = east_of(lam, g->lon0[j]);
        int64_t i;
        if (geometry_row_is_global(g, j)) {
            i = (int64_t)floor(delta / d + 0.5) % len;
        } else {
            double span = (len - 1) * d;
            if (delta > span + d / 2 + LON_TOL) {
                if (delta >= 360.0 - d / 2 - LON_TOL) i = 0;
                else continue;
            } else {
                i = (int64_t)floor(delta / d + 0.5);
                if (i > len - 1) i = len - 1;
            }
        }
        double c = cos_dist(phi, lam, r->lat[kk], g->lon0[j] + i * d);
        if (!best_set || c > best) {
            best = c;
            best_idx = g->row_start[j] + i;
            best_set = 1;
        }
    }
    if (!best_set) return 0;
    if (pt_add(p, best_idx, 1.0)) *oom = 1;
    return 1;
}

/* ---- conservative ------------------------------------------------------------------------- */

/* Latitude edges of cells centred on ascending `lat` (n values): edge[k], edge[k+1] bound cell k.
 * Interior edges halfway between centres, outer edges half a spacing out (or the pole when
 * `to_pole_*`), clipped to -90..90. `fallback` is the half-width used when n == 1. */
static void lat_edges(const double *lat, int n, int to_pole_s, int to_pole_n, double fallback, double *edge)
{
    for (int k = 1; k < n; k++) edge[k] = 0.5 * (lat[k - 1] + lat[k]);
    edge[0] = n > 1 ? lat[0] - 0.5 * (lat[1] - lat[0]) : lat[0] - fallback;
    edge[n] = n > 1 ? lat[n - 1] + 0.5 * (lat[n - 1] - lat[n - 2]) : lat[0] + fallback;
    if (to_pole_s) edge[0] = -90.0;
    if (to_pole_n) edge[n] = 90.0;
    for (int k = 0; k <= n; k++) edge[k] = edge[k] < -90.0 ? -90.0 : edge[k] > 90.0 ? 90.0 : edge[k];
}

/* Overlap (in degrees of longitude) of target interval [a, b] with each cell of row j, added
 * into p with weight dsin * overlap in radians. */
static void row_overlap(const src_geometry *g, int j, double a, double b, double dsin, pt_list *p, int *oom)
{
    int n = g->row_len[j];
    double d = g->dlon[j];
    int64_t base = g->row_start[j];
    double width = b - a;
    if (!(width > 0)) return;
    /* offset of a from the western edge of cell 0, in [0, 360) */
    double da = east_of(a, g->lon0[j] - d / 2);
    if (geometry_row_is_global(g, j)) {
        double ua = da / d, ub = ua + width / d;
        for (int64_t i = (int64_t)floor(ua); (double)i < ub; i++) {
            double ov = fmin(ub, (double)(i + 1)) - fmax(ua, (double)i);
            if (ov > 0 && pt_add(p, base + (i % n), dsin * ov * d * DEG2RAD)) *oom = 1;
        }
        return;
    }
    for (int s = 0; s < 2; s++) {
        double ua = (da - 360.0 * s) / d, ub = ua + width / d;
        int64_t i0 = (int64_t)floor(ua), i1 = (int64_t)ceil(ub) - 1;
        if (i0 < 0) i0 = 0;
        if (i1 > n - 1) i1 = n - 1;
        for (int64_t i = i0; i <= i1; i++) {
            double ov = fmin(ub, (double)(i + 1)) - fmax(ua, (double)i);
            if (ov > 0 && pt_add(p, base + i, dsin * ov * d * DEG2RAD)) *oom = 1;
        }
    }
}

/* ---- driver ------------------------------------------------------------------------------- */

int regrid_weights_create(const src_geometry *src, const grid *dst, regrid_method method, regrid_weights **out)
{
    if (!out) return sm_fail(SM_ERR_USAGE, "regrid_weights_create: NULL output");
    *out = NULL;
    if (!src || !dst) return sm_fail(SM_ERR_USAGE, "regrid_weights_create: NULL source or target");
    if (dst->kind != GRID_LATLON)
        return sm_fail(SM_ERR_USAGE, "regrid: target grid '%s' is not a lat-lon grid (x/y grids cannot be "
                       "regridded to)", dst->name);
    if (method != REGRID_BILINEAR && method != REGRID_CONSERVATIVE && method != REGRID_NEAREST)
        return sm_fail(SM_ERR_USAGE, "regrid: unknown method %d", (int)method);
    int64_t nsrc = geometry_npoints(src);
    if (nsrc <= 0 || nsrc > INT32_MAX)
        return sm_fail(SM_ERR_IO, "regrid: source grid has %lld points (supported: 1 .. %d)", (long long)nsrc,
                       INT32_MAX);
    regrid_weights *w = calloc(1, sizeof *w);
    rows_t rows = {0};
    wlist all = {0};
    pt_list p = {0};
    double *tedge = NULL, *tlon_e = NULL, *sedge = NULL;
    int st = SM_OK, oom = 0;
    int64_t ndst = (int64_t)dst->nlat * dst->nlon;
    if (!w || rows_init(src, &rows)) goto nomem;
    w->method = method;
    w->nsrc = nsrc;
    w->ndst = ndst;
    w->ptr = malloc(((size_t)ndst + 1) * sizeof *w->ptr);
    if (!w->ptr) goto nomem;
    w->ptr[0] = 0;

    if (method == REGRID_CONSERVATIVE) {
        int tn = dst->nlat, sn = rows.n;
        tedge = malloc(((size_t)tn + 1) * sizeof *tedge);
        tlon_e = malloc(((size_t)dst->nlon + 1) * sizeof *tlon_e);
        sedge = malloc(((size_t)sn + 1) * sizeof *sedge);
        double *tlat_asc = malloc((size_t)tn * sizeof *tlat_asc);
        if (!tedge || !tlon_e || !sedge || !tlat_asc) {
            free(tlat_asc);
            goto nomem;
        }
        for (int j = 0; j < tn; j++) tlat_asc[j] = dst->lat[tn - 1 - j];
        double tfall = dst->nlon > 1 ? 0.5 * (dst->lon[1] - dst->lon[0]) : 0.5;
        lat_edges(tlat_asc, tn, 0, 0, tfall, tedge);
        free(tlat_asc);
        lat_edges(rows.lat, sn, rows.south_global, rows.north_global, 0.5 * src->dlon[rows.row[0]], sedge);
        int nl = dst->nlon;
        for (int i = 1; i < nl; i++) tlon_e[i] = 0.5 * (dst->lon[i - 1] + dst->lon[i]);
        tlon_e[0] = nl > 1 ? dst->lon[0] - 0.5 * (dst->lon[1] - dst->lon[0]) : dst->lon[0] - 0.5;
        tlon_e[nl] = nl > 1 ? dst->lon[nl - 1] + 0.5 * (dst->lon[nl - 1] - dst->lon[nl - 2]) : dst->lon[0] + 0.5;
        for (int jt = 0; jt < tn; jt++) {
            /* target row jt (north -> south) is ascending index tn-1-jt */
            double s = tedge[tn - 1 - jt], nth = tedge[tn - jt];
            /* source rows whose band overlaps [s, nth] */
            int k0 = 0;
            while (k0 < sn && sedge[k0 + 1] <= s) k0++;
            for (int it = 0; it < nl; it++) {
                p.n = 0;
                for (int k = k0; k < sn && sedge[k] < nth; k++) {
                    double ls = fmax(s, sedge[k]), ln = fmin(nth, sedge[k + 1]);
                    if (!(ln > ls)) continue;
                    double dsin = sin(ln * DEG2RAD) - sin(ls * DEG2RAD);
                    row_overlap(src, rows.row[k], tlon_e[it], tlon_e[it + 1], dsin, &p, &oom);
                }
                if (oom) goto nomem;
                for (int k = 0; k < p.n; k++)
                    if (wlist_push(&all, p.idx[k], p.w[k])) goto nomem;
                w->ptr[(int64_t)jt * nl + it + 1] = all.n;
            }
        }
    } else {
        for (int jt = 0; jt < dst->nlat; jt++) {
            for (int it = 0; it < dst->nlon; it++) {
                p.n = 0;
                if (method == REGRID_BILINEAR) bilinear_point(&rows, dst->lat[jt], dst->lon[it], &p, &oom);
                else nearest_point(&rows, dst->lat[jt], dst->lon[it], &p, &oom);
                if (oom) goto nomem;
                for (int k = 0; k < p.n; k++)
                    if (p.w[k] != 0.0 && wlist_push(&all, p.idx[k], p.w[k])) goto nomem;
                w->ptr[(int64_t)jt * dst->nlon + it + 1] = all.n;
            }
        }
    }
    if (all.n == 0) {
        st = sm_fail(SM_ERR_IO, "regrid: target grid '%s' (lat %g..%g, lon %g..%g) lies entirely outside the "
                     "source domain (%s, lat %g..%g); choose a grid inside the data or --grid native",
                     dst->name, dst->lat[dst->nlat - 1], dst->lat[0], dst->lon[0], dst->lon[dst->nlon - 1],
                     src->grid_type, rows.lat[0], rows.lat[rows.n - 1]);
        goto done;
    }
    w->col = all.col;
    w->w = all.w;
    all.col = NULL;
    all.w = NULL;
    *out = w;
    w = NULL;
    goto done;
nomem:
    st = sm_fail(SM_ERR_NUMERIC, "regrid: out of memory computing %s weights onto grid '%s'",
                 regrid_method_name(method), dst->name);
done:
    free(p.idx);
    free(p.w);
    free(all.col);
    free(all.w);
    free(tedge);
    free(tlon_e);
    free(sedge);
    rows_free(&rows);
    regrid_weights_free(w);
    return st;
}

void regrid_apply(const regrid_weights *w, const double *src, float *dst)
{
    const int64_t *ptr = w->ptr;
    const int32_t *col = w->col;
    const double *wt = w->w;
    int64_t n = w->ndst;
#pragma omp parallel for schedule(static) if (ptr[n] > 200000)
    for (int64_t t = 0; t < n; t++) {
        double s = 0, ws = 0;
        for (int64_t k = ptr[t]; k < ptr[t + 1]; k++) {
            double v = src[col[k]];
            if (v == v) {
                s += wt[k] * v;
                ws += wt[k];
            }
        }
        dst[t] = ws > 0 ? (float)(s / ws) : NAN;
    }
}

int grid_from_geometry(const src_geometry *src, const char *name, grid **out)
{
    if (!out) return sm_fail(SM_ERR_USAGE, "grid_from_geometry: NULL output");
    *out = NULL;
    if (!src) return sm_fail(SM_ERR_USAGE, "grid_from_geometry: NULL geometry");
    if (!src->is_regular)
        return sm_fail(SM_ERR_IO, "grid_from_geometry: a %s source (rows of different lengths) has no native "
                       "regular grid; choose a target grid", src->grid_type);
    int nlon = src->row_len[0];
    double *lon = malloc((size_t)nlon * sizeof *lon);
    if (!lon) return sm_fail(SM_ERR_NUMERIC, "grid_from_geometry: out of memory");
    for (int i = 0; i < nlon; i++) lon[i] = src->lon0[0] + i * src->dlon[0];
    int st = grid_create_latlon(name ? name : "native", src->nrows, src->lat, nlon, lon, out);
    free(lon);
    return st;
}
