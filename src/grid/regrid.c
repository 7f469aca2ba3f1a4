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

/* A small list of (source index, weight) for one target point; pt_finish sorts it by source
 * index and merges duplicates (a wrapped row, a pole row mean next to the same row). */
typedef struct {
    int n, cap;
    int64_t *idx;
    double *w;
} pt_list;

static int pt_add(pt_list *p, int64_t idx, double w)
{
    if (w == 0.0) return 0;
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

static void pt_sort(int64_t *idx, double *w, int n)
{
    if (n < 24) { /* insertion sort: the usual 1-16 entries */
        for (int a = 1; a < n; a++) {
            int64_t ki = idx[a];
            double kw = w[a];
            int b = a - 1;
            while (b >= 0 && idx[b] > ki) {
                idx[b + 1] = idx[b];
                w[b + 1] = w[b];
                b--;
            }
            idx[b + 1] = ki;
            w[b + 1] = kw;
        }
        return;
    }
    /* heapsort for long lists (conservative coarsening, pole means): O(n log n), in place */
    for (int start = n / 2 - 1, end = n;;) {
        int root;
        if (start >= 0) root = start--;
        else {
            if (--end <= 0) break;
            int64_t ti = idx[0];
            idx[0] = idx[end];
            idx[end] = ti;
            double tw = w[0];
            w[0] = w[end];
            w[end] = tw;
            root = 0;
        }
        for (;;) {
            int child = 2 * root + 1;
            if (child >= end) break;
            if (child + 1 < end && idx[child + 1] > idx[child]) child++;
            if (idx[root] >= idx[child]) break;
            int64_t ti = idx[root];
            idx[root] = idx[child];
            idx[child] = ti;
            double tw = w[root];
            w[root] = w[child];
            w[child] = tw;
            root = child;
        }
    }
}

static void pt_finish(pt_list *p)
{
    pt_sort(p->idx, p->w, p->n);
    int m = 0;
    for (int k = 0; k < p->n; k++) {
        if (m > 0 && p->idx[m - 1] == p->idx[k]) p->w[m - 1] += p->w[k];
        else {
            p->idx[m] = p->idx[k];
            p->w[m] = p->w[k];
            m++;
        }
    }
    p->n = m;
}

/* ---- source rows sorted by latitude ------------------------------------------------------- */

typedef struct {
    const src_geometry *g;
    int n;
    int *row;      /* row index in the geometry, by ascending latitude */
    double *lat;   /* ascending row latitudes */
    /* the outermost row is global and no further than one row spacing from its pole: the source
     * covers the polar cap (a latitude band that is global in longitude does not) */
    int south_global, north_global;
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
    int n = r->n;
    double sp_s = n > 1 ? r->lat[1] - r->lat[0] : 0, sp_n = n > 1 ? r->lat[n - 1] - r->lat[n - 2] : 0;
    r->south_global = geometry_row_is_global(g, r->row[0]) && r->lat[0] + 90.0 <= sp_s + 1e-9;
    r->north_global = geometry_row_is_global(g, r->row[n - 1]) && 90.0 - r->lat[n - 1] <= sp_n + 1e-9;
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

/* Every point of a polar row, equally weighted: the pole value. */
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
        /* south of the southernmost row: interpolate towards the pole if that row is polar */
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
    int n0 = p->n, ok = 1;
    if (t < 1) ok &= row_linear(g, r->row[k], lam, 1 - t, p, oom);
    if (t > 0) ok &= row_linear(g, r->row[k + 1], lam, t, p, oom);
    if (!ok) p->n = n0; /* outside one of the bracketing rows: outside the domain */
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
    /* domain in latitude: half a row spacing beyond the outer rows, or the pole beyond a polar row */
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

/* What every target row needs, shared read-only between threads. */
typedef struct {
    const src_geometry *src;
    const grid *dst;
    regrid_method method;
    rows_t rows;
    double *tedge;  /* conservative: ascending target latitude edges (nlat + 1) */
    double *tlon_e; /* conservative: target longitude edges (nlon + 1) */
    double *sedge;  /* conservative: ascending source row edges (nrows + 1) */
} plan_t;

/* Weights of target row jt into `out` (appended) and the count of each point into cnt[nlon]. */
static int plan_row(const plan_t *pl, int jt, pt_list *p, wlist *out, int64_t *cnt)
{
    const grid *dst = pl->dst;
    int oom = 0, nl = dst->nlon;
    int k0 = 0, tn = dst->nlat, sn = pl->rows.n;
    double s = 0, nth = 0;
    if (pl->method == REGRID_CONSERVATIVE) {
        /* target row jt (north -> south) is ascending index tn-1-jt; source rows overlapping it */
        s = pl->tedge[tn - 1 - jt];
        nth = pl->tedge[tn - jt];
        while (k0 < sn && pl->sedge[k0 + 1] <= s) k0++;
    }
    for (int it = 0; it < nl; it++) {
        p->n = 0;
        if (pl->method == REGRID_BILINEAR) {
            bilinear_point(&pl->rows, dst->lat[jt], dst->lon[it], p, &oom);
        } else if (pl->method == REGRID_NEAREST) {
            nearest_point(&pl->rows, dst->lat[jt], dst->lon[it], p, &oom);
        } else {
            for (int k = k0; k < sn && pl->sedge[k] < nth; k++) {
                double ls = fmax(s, pl->sedge[k]), ln = fmin(nth, pl->sedge[k + 1]);
                if (!(ln > ls)) continue;
                double dsin = sin(ln * DEG2RAD) - sin(ls * DEG2RAD);
                row_overlap(pl->src, pl->rows.row[k], pl->tlon_e[it], pl->tlon_e[it + 1], dsin, p, &oom);
            }
        }
        if (oom) return -1;
        pt_finish(p);
        int64_t c = 0;
        for (int k = 0; k < p->n; k++) {
            if (p->w[k] == 0.0) continue;
            if (wlist_push(out, p->idx[k], p->w[k])) return -1;
            c++;
        }
        cnt[it] = c;
    }
    return 0;
}

static int plan_edges(plan_t *pl)
{
    const grid *dst = pl->dst;
    int tn = dst->nlat, sn = pl->rows.n, nl = dst->nlon;
    pl->tedge = malloc(((size_t)tn + 1) * sizeof *pl->tedge);
    pl->tlon_e = malloc(((size_t)nl + 1) * sizeof *pl->tlon_e);
    pl->sedge = malloc(((size_t)sn + 1) * sizeof *pl->sedge);
    double *tlat_asc = malloc((size_t)tn * sizeof *tlat_asc);
    if (!pl->tedge || !pl->tlon_e || !pl->sedge || !tlat_asc) {
        free(tlat_asc);
        return -1;
    }
    for (int j = 0; j < tn; j++) tlat_asc[j] = dst->lat[tn - 1 - j];
    double tfall = nl > 1 ? 0.5 * (dst->lon[1] - dst->lon[0]) : 0.5;
    lat_edges(tlat_asc, tn, 0, 0, tfall, pl->tedge);
    free(tlat_asc);
    lat_edges(pl->rows.lat, sn, pl->rows.south_global, pl->rows.north_global, 0.5 * pl->src->dlon[pl->rows.row[0]],
              pl->sedge);
    for (int i = 1; i < nl; i++) pl->tlon_e[i] = 0.5 * (dst->lon[i - 1] + dst->lon[i]);
    pl->tlon_e[0] = nl > 1 ? dst->lon[0] - 0.5 * (dst->lon[1] - dst->lon[0]) : dst->lon[0] - 0.5;
    pl->tlon_e[nl] = nl > 1 ? dst->lon[nl - 1] + 0.5 * (dst->lon[nl - 1] - dst->lon[nl - 2]) : dst->lon[0] + 0.5;
    return 0;
}

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
    int st = SM_OK;
    int64_t ndst = (int64_t)dst->nlat * dst->nlon;
    plan_t pl = {.src = src, .dst = dst, .method = method};
    wlist *rowl = NULL;
    regrid_weights *w = calloc(1, sizeof *w);
    if (!w || rows_init(src, &pl.rows)) goto nomem;
    if (method == REGRID_CONSERVATIVE && plan_edges(&pl)) goto nomem;
    w->method = method;
    w->nsrc = nsrc;
    w->ndst = ndst;
    w->ptr = calloc((size_t)ndst + 1, sizeof *w->ptr);
    rowl = calloc((size_t)dst->nlat, sizeof *rowl);
    if (!w->ptr || !rowl) goto nomem;

    /* target rows in parallel, each into its own list; then concatenated in order */
    int failed = 0;
#pragma omp parallel if (ndst > 4096) reduction(| : failed)
    {
        pt_list p = {0};
#pragma omp for schedule(dynamic, 1)
        for (int jt = 0; jt < dst->nlat; jt++)
            if (!failed && plan_row(&pl, jt, &p, &rowl[jt], w->ptr + (int64_t)jt * dst->nlon + 1)) failed = 1;
        free(p.idx);
        free(p.w);
    }
    if (failed) goto nomem;
    for (int64_t t = 0; t < ndst; t++) w->ptr[t + 1] += w->ptr[t];
    int64_t nnz = w->ptr[ndst];
    if (nnz == 0) {
        st = sm_fail(SM_ERR_IO, "regrid: target grid '%s' (lat %g..%g, lon %g..%g) lies entirely outside the "
                     "source domain (%s, lat %g..%g); choose a grid inside the data or --grid native",
                     dst->name, dst->lat[dst->nlat - 1], dst->lat[0], dst->lon[0], dst->lon[dst->nlon - 1],
                     src->grid_type, pl.rows.lat[0], pl.rows.lat[pl.rows.n - 1]);
        goto done;
    }
    w->col = malloc((size_t)nnz * sizeof *w->col);
    w->w = malloc((size_t)nnz * sizeof *w->w);
    if (!w->col || !w->w) goto nomem;
    for (int jt = 0; jt < dst->nlat; jt++) {
        int64_t at = w->ptr[(int64_t)jt * dst->nlon];
        if (rowl[jt].n == 0) continue;
        memcpy(w->col + at, rowl[jt].col, (size_t)rowl[jt].n * sizeof *w->col);
        memcpy(w->w + at, rowl[jt].w, (size_t)rowl[jt].n * sizeof *w->w);
    }
    *out = w;
    w = NULL;
    goto done;
nomem:
    st = sm_fail(SM_ERR_NUMERIC, "regrid: out of memory computing %s weights onto grid '%s'",
                 regrid_method_name(method), dst->name);
done:
    if (rowl)
        for (int jt = 0; jt < dst->nlat; jt++) {
            free(rowl[jt].col);
            free(rowl[jt].w);
        }
    free(rowl);
    free(pl.tedge);
    free(pl.tlon_e);
    free(pl.sedge);
    rows_free(&pl.rows);
    regrid_weights_free(w);
    return st;
}

void regrid_apply(const regrid_weights *w, const double *src, float *dst)
{
    const int64_t *ptr = w->ptr;
    const int32_t *col = w->col;
    const double *wt = w->w;
    int64_t n = w->ndst;
    /* threads only for very large matrices: a mat-vec of a few 10^5 weights takes well under a
     * millisecond, less than waking a team on a busy machine */
#pragma omp parallel for schedule(static) if (ptr[n] > (1 << 22))
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
