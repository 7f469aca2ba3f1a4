/* smoecast inspect: summaries of GRIB files, NetCDF files and smoecast datasets. */
#include "tasks/inspect.h"
#include "core/log.h"
#include "core/outfile.h"
#include "data/dataset.h"
#include "io/cf_time.h"
#include "io/field.h"
#include "io/grib_reader.h"
#include "io/netcdf_reader.h"

#include <math.h>
#include <netcdf.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS 64
#define MAX_LEVELS 48
#define MAX_GEOMS 8
#define MAX_BROKEN 8
#define MAX_PRINT 24 /* variable rows shown, so that the summary fits one screen */

typedef struct {
    double *v;
    size_t n, cap;
} dvec;

static int dvec_add_unique(dvec *d, double x)
{
    for (size_t i = 0; i < d->n; i++)
        if (fabs(d->v[i] - x) < 1e-9) return 0;
    if (d->n == d->cap) {
        size_t nc = d->cap ? 2 * d->cap : 16;
        double *nv = realloc(d->v, nc * sizeof *nv);
        if (!nv) return -1;
        d->v = nv;
        d->cap = nc;
    }
    d->v[d->n++] = x;
    return 1;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* "2019-03-01T00:00 .. 2019-03-31T23:00, 744 times, step 1 h" */
static void print_times(FILE *out, dvec *t, cf_calendar cal, int is_index)
{
    if (t->n == 0) {
        fprintf(out, "none (static)\n");
        return;
    }
    qsort(t->v, t->n, sizeof *t->v, cmp_d);
    char a[40], b[40];
    if (is_index) {
        snprintf(a, sizeof a, "%g", t->v[0]);
        snprintf(b, sizeof b, "%g", t->v[t->n - 1]);
    } else {
        cf_format_hours(t->v[0], cal, a, sizeof a);
        cf_format_hours(t->v[t->n - 1], cal, b, sizeof b);
    }
    if (t->n == 1) {
        fprintf(out, "%s (1 time)%s\n", a, is_index ? " [axis without units]" : "");
        return;
    }
    double step = INFINITY, maxstep = 0;
    for (size_t i = 1; i < t->n; i++) {
        double d = t->v[i] - t->v[i - 1];
        if (d < step) step = d;
        if (d > maxstep) maxstep = d;
    }
    const char *u = is_index ? "" : " h";
    if (maxstep > step + 1e-9)
        fprintf(out, "%s .. %s, %zu times, irregular steps %g%s .. %g%s\n", a, b, t->n, step, u, maxstep, u);
    else
        fprintf(out, "%s .. %s, %zu times, step %g%s\n", a, b, t->n, step, u);
}

static void print_geometry(FILE *out, const src_geometry *g)
{
    int64_t npts = g->row_start[g->nrows];
    double la0 = g->lat[0], la1 = g->lat[g->nrows - 1];
    const char *dir = g->nrows < 2 ? "single row" : la0 > la1 ? "north -> south" : "south -> north";
    if (g->is_regular) {
        double lon0 = io_lon0_canonical(g->lon0[0], g->row_len[0], g->dlon[0]), lon1 = lon0 + (g->row_len[0] - 1) * g->dlon[0];
        fprintf(out, "%s %d x %d (lat x lon, %lld points); lat %g -> %g (%s); lon %g -> %g (step %g%s)\n", g->grid_type, g->nrows, g->row_len[0],
                (long long)npts, la0, la1, dir, lon0, lon1, g->dlon[0], geometry_row_is_global(g, 0) ? ", global" : "");
    } else {
        int mn = g->row_len[0], mx = g->row_len[0];
        for (int j = 0; j < g->nrows; j++) {
            if (g->row_len[j] < mn) mn = g->row_len[j];
            if (g->row_len[j] > mx) mx = g->row_len[j];
        }
        fprintf(out, "%s, %d rows of %d..%d points (%lld points); lat %g -> %g (%s); lon from %g\n", g->grid_type, g->nrows, mn, mx,
                (long long)npts, la0, la1, dir, g->lon0[0]);
    }
}

typedef struct {
    long param_id;
    char short_name[64], units[64], type_of_level[48], packing[48], name[128];
    int bits;
    dvec levels;
    int nfields;
    double nmissing, npoints;
    int geom;
} group;

static int inspect_grib(const char *path, FILE *out)
{
    grib_reader *r;
    int st = grib_reader_open(path, &r);
    if (st) return st;
    group *gr = calloc(MAX_GROUPS, sizeof *gr);
    src_geometry *geoms[MAX_GEOMS] = {0};
    int ngeoms = 0, ngroups = 0, nfields = 0, nbroken = 0, extra_groups = 0, ned[3] = {0, 0, 0};
    char broken[MAX_BROKEN][300];
    dvec times = {0}, members = {0}, periods = {0};
    if (!gr) {
        grib_reader_close(r);
        return sm_fail(SM_ERR_NUMERIC, "out of memory");
    }
    for (;;) {
        field_meta m;
        int done;
        st = grib_reader_next(r, &m, &done);
        if (st) {
            if (!grib_reader_recoverable(r)) break;
            if (nbroken < MAX_BROKEN) snprintf(broken[nbroken], sizeof broken[0], "%s", sm_last_error());
            nbroken++;
            sm_clear_error();
            st = SM_OK;
            continue;
        }
        if (done) break;
        nfields++;
        if (m.edition == 1 || m.edition == 2) ned[m.edition]++;
        const double *v;
        const src_geometry *g;
        int gi = -1;
        double nmiss = 0;
        if (grib_reader_decode(r, &v, &g) == SM_OK) {
            for (int k = 0; k < ngeoms; k++)
                if (geometry_same(geoms[k], g)) gi = k;
            if (gi < 0 && ngeoms < MAX_GEOMS &&
                io_geometry_rows(g->nrows, g->lat, g->row_len, g->lon0, g->dlon, g->grid_type, &geoms[ngeoms]) == SM_OK)
                gi = ngeoms++;
            for (int64_t i = 0; i < m.npoints; i++) nmiss += isnan(v[i]);
        } else {
            if (nbroken < MAX_BROKEN) snprintf(broken[nbroken], sizeof broken[0], "%s", sm_last_error());
            nbroken++;
            sm_clear_error();
            nmiss = (double)m.npoints;
        }
        dvec_add_unique(&times, m.valid_time);
        if (isfinite(m.forecast_period)) dvec_add_unique(&periods, m.forecast_period);
        if (m.member >= 0) dvec_add_unique(&members, m.member);
        int k;
        for (k = 0; k < ngroups; k++)
            if (gr[k].param_id == m.param_id && !strcmp(gr[k].short_name, m.short_name) && !strcmp(gr[k].type_of_level, m.type_of_level) &&
                gr[k].geom == gi)
                break;
        if (k == ngroups) {
            if (ngroups == MAX_GROUPS) {
                extra_groups++;
                continue;
            }
            ngroups++;
            gr[k].param_id = m.param_id;
            snprintf(gr[k].short_name, sizeof gr[k].short_name, "%s", m.short_name);
            snprintf(gr[k].name, sizeof gr[k].name, "%s", m.name);
            snprintf(gr[k].units, sizeof gr[k].units, "%s", m.units);
            snprintf(gr[k].type_of_level, sizeof gr[k].type_of_level, "%s", m.type_of_level);
            snprintf(gr[k].packing, sizeof gr[k].packing, "%s", m.packing);
            gr[k].bits = m.bits_per_value;
            gr[k].geom = gi;
        }
        if (gr[k].levels.n < MAX_LEVELS) dvec_add_unique(&gr[k].levels, m.level);
        gr[k].nfields++;
        gr[k].nmissing += nmiss;
        gr[k].npoints += (double)m.npoints;
    }
    if (st == SM_OK && nfields == 0 && nbroken > 0) st = sm_fail(SM_ERR_IO, "%s", broken[0]);
    if (st == SM_OK) {
        fprintf(out, "%s\n", path);
        fprintf(out, "  format      %s, %d fields\n", ned[1] && ned[2] ? "GRIB1 + GRIB2" : ned[2] ? "GRIB2" : "GRIB1", nfields);
        for (int k = 0; k < ngeoms; k++) {
            fprintf(out, ngeoms > 1 ? "  grid[%d]     " : "  grid        ", k);
            print_geometry(out, geoms[k]);
        }
        fprintf(out, "  time        ");
        print_times(out, &times, CAL_PROLEPTIC, 0);
        if (periods.n) {
            qsort(periods.v, periods.n, sizeof *periods.v, cmp_d);
            fprintf(out, "  forecast    periods %g .. %g h (%zu distinct)\n", periods.v[0], periods.v[periods.n - 1], periods.n);
        }
        if (members.n) {
            qsort(members.v, members.n, sizeof *members.v, cmp_d);
            fprintf(out, "  members     %zu (number %g .. %g)\n", members.n, members.v[0], members.v[members.n - 1]);
        } else {
            fprintf(out, "  members     none (not an ensemble)\n");
        }
        fprintf(out, "  variables   %-8s %-10s %-12s %-18s %-22s %6s %-28s %s\n", "paramId", "shortName", "units", "typeOfLevel", "levels",
                "fields", "packing", "missing");
        int shown = ngroups < MAX_PRINT ? ngroups : MAX_PRINT - 1, hidden_fields = extra_groups;
        for (int k = shown; k < ngroups; k++) hidden_fields += gr[k].nfields;
        for (int k = 0; k < shown; k++) {
            group *g = &gr[k];
            qsort(g->levels.v, g->levels.n, sizeof *g->levels.v, cmp_d);
            char lev[64];
            if (g->levels.n == 1) snprintf(lev, sizeof lev, "%g", g->levels.v[0]);
            else snprintf(lev, sizeof lev, "%g..%g (%zu%s)", g->levels.v[0], g->levels.v[g->levels.n - 1], g->levels.n,
                          g->levels.n >= MAX_LEVELS ? "+" : "");
            char pack[64];
            snprintf(pack, sizeof pack, "%.40s(%d bits)", strncmp(g->packing, "grid_", 5) ? g->packing : g->packing + 5, g->bits);
            char grid_tag[16] = "";
            if (ngeoms > 1 && g->geom >= 0) snprintf(grid_tag, sizeof grid_tag, " [%d]", g->geom);
            fprintf(out, "              %-8ld %-10s %-12s %-18s %-22s %6d %-28s %.2f%%%s\n", g->param_id, g->short_name, g->units,
                    g->type_of_level, lev, g->nfields, pack, g->npoints > 0 ? 100.0 * g->nmissing / g->npoints : 0.0, grid_tag);
        }
        if (hidden_fields)
            fprintf(out, "              ... %d more fields in %s%d further variables\n", hidden_fields, extra_groups ? "more than " : "",
                    ngroups - shown);
        if (nbroken) {
            fprintf(out, "  broken      %d message%s\n", nbroken, nbroken > 1 ? "s" : "");
            for (int k = 0; k < nbroken && k < MAX_BROKEN; k++) fprintf(out, "              %s\n", broken[k]);
        }
    }
    for (int k = 0; k < MAX_GROUPS; k++) free(gr[k].levels.v);
    free(gr);
    for (int k = 0; k < ngeoms; k++) geometry_free(geoms[k]);
    free(times.v);
    free(members.v);
    free(periods.v);
    grib_reader_close(r);
    return st;
}

static int inspect_dataset(const char *path, FILE *out)
{
    dataset *ds;
    int st = dataset_open(path, &ds);
    if (st) return st;
    fprintf(out, "%s\n", path);
    fprintf(out, "  format      smoecast dataset v%d (written by smoecast %s), NetCDF-4\n", ds->format_version, ds->version);
    fprintf(out, "  grid        %s: %s %d x %d (%s); lat %g -> %g (%s); lon %g -> %g\n", ds->grid_name, ds->is_latlon ? "lat-lon" : "y-x",
            ds->nlat, ds->nlon, ds->is_latlon ? "lat x lon" : "y x x", ds->lat[0], ds->lat[ds->nlat - 1],
            ds->nlat < 2 ? "single row" : ds->lat[0] > ds->lat[ds->nlat - 1] ? "north -> south" : "south -> north", ds->lon[0],
            ds->lon[ds->nlon - 1]);
    cf_calendar cal = CAL_STANDARD;
    cf_calendar_parse(ds->calendar, &cal);
    dvec t = {0};
    for (int k = 0; k < ds->ntimes; k++) dvec_add_unique(&t, ds->times[k]);
    fprintf(out, "  time        ");
    print_times(out, &t, cal, ds->time_is_index);
    free(t.v);
    fprintf(out, "  calendar    %s\n", ds->time_is_index ? "none (time axis without units)" : ds->calendar);
    if (ds->nmembers) fprintf(out, "  members     %d (realization %d .. %d)\n", ds->nmembers, ds->members[0], ds->members[ds->nmembers - 1]);
    else fprintf(out, "  members     none\n");
    size_t n = (size_t)ds->nlat * (size_t)ds->nlon;
    float *buf = malloc(n * sizeof *buf);
    if (!buf) {
        dataset_close(ds);
        return sm_fail(SM_ERR_NUMERIC, "out of memory");
    }
    fprintf(out, "  variables   %-10s %-12s %-8s %-10s %-8s %-10s %s\n", "name", "units", "paramId", "shortName", "level", "shape", "missing");
    for (int v = 0; v < ds->nvars && !st; v++) {
        const dataset_var_info *vi = &ds->vars[v];
        int nt = vi->is_static ? 1 : ds->ntimes, nm = vi->has_members ? ds->nmembers : 1;
        /* all fields up to 2000, else an evenly spaced sample of 200 */
        int total = nt * nm, nsample = total <= 2000 ? total : 200;
        double miss = 0, pts = 0;
        for (int s = 0; s < nsample && !st; s++) {
            int idx = (int)((long long)s * total / nsample);
            st = dataset_read(ds, v, idx / nm, idx % nm, buf);
            for (size_t i = 0; i < n; i++) miss += isnan(buf[i]);
            pts += (double)n;
        }
        char lev[32] = "-", shape[40];
        if (isfinite(vi->level)) snprintf(lev, sizeof lev, "%g", vi->level);
        snprintf(shape, sizeof shape, "%s%s", vi->is_static ? "static" : "time", vi->has_members ? "+member" : "");
        fprintf(out, "              %-10s %-12s %-8ld %-10s %-8s %-10s %.2f%%%s%s\n", vi->name, vi->units, vi->param_id, vi->short_name, lev,
                shape, pts > 0 ? 100.0 * miss / pts : 0.0, nsample < total ? " (sampled)" : "", vi->categorical ? " categorical" : "");
    }
    fprintf(out, "  packing     float32, deflate + shuffle, one field per chunk\n");
    fprintf(out, "  inputs      %s", ds->inputs_text[0] ? "\n" : "none recorded\n");
    if (ds->inputs_text[0]) {
        char *copy = strdup(ds->inputs_text), *save = NULL;
        for (char *line = copy ? strtok_r(copy, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save))
            fprintf(out, "              %s\n", line);
        free(copy);
    }
    free(buf);
    dataset_close(ds);
    return st;
}

static int inspect_netcdf(const char *path, FILE *out)
{
    {
        int ncid, fv;
        if (nc_open(path, NC_NOWRITE, &ncid) == NC_NOERR) {
            int is_ds = nc_get_att_int(ncid, NC_GLOBAL, "smoecast_format_version", &fv) == NC_NOERR;
            nc_close(ncid);
            if (is_ds) return inspect_dataset(path, out);
        }
    }
    nc_reader *r;
    int st = nc_reader_open(path, &r);
    if (st) return st;
    int fmt = 0;
    nc_inq_format(nc_reader_ncid(r), &fmt);
    const char *fname = fmt == NC_FORMAT_CLASSIC ? "NetCDF-3 classic" : fmt == NC_FORMAT_64BIT_OFFSET ? "NetCDF-3 64-bit offset"
                        : fmt == NC_FORMAT_NETCDF4 ? "NetCDF-4" : fmt == NC_FORMAT_NETCDF4_CLASSIC ? "NetCDF-4 classic model" : "NetCDF";
    fprintf(out, "%s\n", path);
    fprintf(out, "  format      %s, %d data variables on a lat-lon grid\n", fname, nc_reader_nvars(r));
    src_geometry *geoms[MAX_GEOMS] = {0};
    int ngeoms = 0;
    for (int i = 0; i < nc_reader_nvars(r) && !st; i++) {
        var_selector sel;
        memset(&sel, 0, sizeof sel);
        snprintf(sel.select, sizeof sel.select, "%.63s", nc_reader_var_name(r, i));
        sel.level = NAN;
        /* open at the first level so that multi-level variables can be summarised */
        nc_var *v;
        st = nc_var_open(r, &sel, &v);
        if (st && strstr(sm_last_error(), "select one as")) {
            sm_clear_error();
            int ncid = nc_reader_ncid(r), vid, nd, dims[NC_MAX_VAR_DIMS];
            nc_inq_varid(ncid, sel.select, &vid);
            nc_inq_varndims(ncid, vid, &nd);
            nc_inq_vardimid(ncid, vid, dims);
            double lv = NAN;
            for (int d = 0; d < nd && isnan(lv); d++) {
                char dn[NC_MAX_NAME + 1];
                nc_inq_dimname(ncid, dims[d], dn);
                int cv;
                size_t start = 0;
                if (nc_inq_varid(ncid, dn, &cv) == NC_NOERR && (!strcmp(dn, "level") || !strcmp(dn, "lev") || !strcmp(dn, "plev") ||
                                                               !strcmp(dn, "pressure") || !strcmp(dn, "isobaricInhPa")))
                    nc_get_var1_double(ncid, cv, &start, &lv);
            }
            sel.has_level = 1;
            sel.level = lv;
            st = nc_var_open(r, &sel, &v);
        }
        if (st) {
            fprintf(out, "  %-10s  (not readable: %s)\n", sel.select, sm_last_error());
            sm_clear_error();
            st = SM_OK;
            continue;
        }
        const src_geometry *g = nc_var_geometry(v);
        int gi = -1;
        for (int k = 0; k < ngeoms; k++)
            if (geometry_same(geoms[k], g)) gi = k;
        if (gi < 0 && ngeoms < MAX_GEOMS && io_geometry_rows(g->nrows, g->lat, g->row_len, g->lon0, g->dlon, g->grid_type, &geoms[ngeoms]) == SM_OK) {
            gi = ngeoms++;
            fprintf(out, "  grid        ");
            print_geometry(out, g);
        }
        field_meta m;
        nc_var_field_meta(v, 0, 0, &m);
        char kinds[8];
        const char *names[8];
        int nd = nc_var_dims(v, kinds, names);
        char dimtxt[160] = "";
        size_t used = 0;
        for (int d = 0; d < nd && used < sizeof dimtxt - 40; d++)
            used += (size_t)snprintf(dimtxt + used, sizeof dimtxt - used, "%s%s:%c", d ? "," : "", names[d], kinds[d]);
        fprintf(out, "  variable    %s(%s) units '%s' %s, %s\n", m.short_name, dimtxt, m.units, m.name, m.packing);
        if (nc_var_nlevels(v) > 0) {
            fprintf(out, "              levels (%s):", nc_var_level_name(v));
            for (int k = 0; k < nc_var_nlevels(v) && k < 16; k++) fprintf(out, " %g", nc_var_level_value(v, k));
            fprintf(out, "%s\n", nc_var_nlevels(v) > 16 ? " ..." : "");
        }
        dvec t = {0};
        int nt = nc_var_ntimes(v);
        cf_calendar cal = CAL_STANDARD;
        cf_calendar_parse(m.calendar, &cal);
        for (int k = 0; k < nt; k++) {
            field_meta mk;
            nc_var_field_meta(v, k, 0, &mk);
            if (mk.has_time) dvec_add_unique(&t, mk.valid_time);
        }
        fprintf(out, "              time ");
        print_times(out, &t, cal, m.time_is_index);
        free(t.v);
        if (nc_var_nmembers(v) > 1 || m.member >= 0) fprintf(out, "              members %d\n", nc_var_nmembers(v));
        /* missing fraction over up to 50 evenly spaced fields of the first level */
        int total = nt * nc_var_nmembers(v), nsample = total < 50 ? total : 50;
        double miss = 0, pts = 0;
        for (int s = 0; s < nsample && !st; s++) {
            int idx = (int)((long long)s * total / nsample);
            const double *vals;
            st = nc_var_read(v, idx / nc_var_nmembers(v), idx % nc_var_nmembers(v), &vals);
            for (int64_t p = 0; !st && p < m.npoints; p++) miss += isnan(vals[p]);
            pts += (double)m.npoints;
        }
        if (!st) fprintf(out, "              missing %.2f%%%s\n", pts > 0 ? 100 * miss / pts : 0.0, nsample < total ? " (sampled)" : "");
        nc_var_close(v);
    }
    for (int k = 0; k < ngeoms; k++) geometry_free(geoms[k]);
    nc_reader_close(r);
    return st;
}

int inspect_file(const char *path, FILE *out)
{
    if (nc_file_looks_like_netcdf(path)) return inspect_netcdf(path, out);
    return inspect_grib(path, out);
}
