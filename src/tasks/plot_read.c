/* Reading one 2-D slice of a CF NetCDF variable for plotting: coordinate detection, selection of
 * the other dimensions, unpacking and missing values, categories (see plot_read.h). */
#include "tasks/plot_read.h"
#include "io/nc_attr.h"
#include "core/log.h"
#include "io/cf_time.h"

#include <ctype.h>
#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Hours since 1970-01-01 -> "YYYY-MM-DDTHH:MM" in the file's calendar, rounded to the minute. */
static void format_minutes(double hours, cf_calendar cal, char *buf, size_t len)
{
    cf_format_hours(floor(hours * 60.0 + 0.5) / 60.0, cal, buf, (int)len);
}

/* A coordinate's "<unit> since <date>" units; a failure only means "not a time axis" here, so
 * it leaves no error message behind. */
static int time_units(const char *units, const char *calendar, cf_time_units *u)
{
    if (cf_time_units_parse(units, calendar, u) == SM_OK) return 1;
    sm_clear_error();
    return 0;
}

/* ---------------------------------------------------------------- attributes */

/* A text attribute (nc_attr_text) without trailing blanks; returns whether it exists. */
static int att_text(int nc, int varid, const char *name, char *buf, size_t len)
{
    if (nc_attr_text(nc, varid, name, buf, len) < 0) return 0;
    size_t k = strlen(buf);
    while (k > 0 && isspace((unsigned char)buf[k - 1])) buf[--k] = 0;
    return 1;
}

static int att_double(int nc, int varid, const char *name, double *v)
{
    nc_type t;
    size_t n;
    if (nc_inq_att(nc, varid, name, &t, &n) != NC_NOERR || n < 1 || n > 64 || t == NC_CHAR || t == NC_STRING) return 0;
    double all[64];
    if (nc_get_att_double(nc, varid, name, all) != NC_NOERR) return 0;
    *v = all[0];
    return 1;
}

/* ---------------------------------------------------------------- dimensions */

typedef enum { D_OTHER = 0, D_LON, D_LAT, D_X, D_Y, D_TIME, D_LEVEL, D_MEMBER, D_LEAD } dim_kind;

typedef struct {
    char name[NC_MAX_NAME + 1];
    size_t len;
    int coord;          /* coordinate variable id or -1 */
    char units[128];
    char calendar[64];
    dim_kind kind;
} dim_info;

static int name_in(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (!strcasecmp(name, *list)) return 1;
    return 0;
}

static dim_kind classify(const dim_info *d, int nc)
{
    char sn[128] = "", axis[16] = "", pos[16] = "";
    if (d->coord >= 0) {
        att_text(nc, d->coord, "standard_name", sn, sizeof sn);
        att_text(nc, d->coord, "axis", axis, sizeof axis);
        att_text(nc, d->coord, "positive", pos, sizeof pos);
    }
    static const char *const lon_units[] = {"degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese", NULL};
    static const char *const lat_units[] = {"degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn", NULL};
    static const char *const lon_names[] = {"lon", "longitude", NULL};
    static const char *const lat_names[] = {"lat", "latitude", NULL};
    if (d->coord >= 0) {
        if (name_in(d->units, lon_units) || !strcmp(sn, "longitude") || (!d->units[0] && name_in(d->name, lon_names))) return D_LON;
        if (name_in(d->units, lat_units) || !strcmp(sn, "latitude") || (!d->units[0] && name_in(d->name, lat_names))) return D_LAT;
    }
    static const char *const member_names[] = {"realization", "member", "number", "ensemble", "ens", "ensemble_member", NULL};
    if (!strcmp(sn, "realization") || name_in(d->name, member_names)) return D_MEMBER;
    static const char *const lead_names[] = {"lead", "lead_time", "leadtime", "step", "forecast_period", "prediction_timedelta", NULL};
    if (!strcmp(sn, "forecast_period") || name_in(d->name, lead_names)) return D_LEAD;
    static const char *const time_names[] = {"time", "month", "valid_time", "t", "times", "date", NULL};
    if (strstr(d->units, " since ") || !strcmp(sn, "time") || !strcasecmp(axis, "T") || name_in(d->name, time_names)) return D_TIME;
    static const char *const level_units[] = {"hpa", "pa", "millibars", "millibar", "mbar", "mb", NULL};
    static const char *const level_names[] = {"level", "lev", "plev", "pressure", "isobaricinhpa", "pressure_level", "height", "depth", "altitude", "z", NULL};
    if (!strcasecmp(axis, "Z") || pos[0] || !strcmp(sn, "air_pressure") || !strcmp(sn, "height") || !strcmp(sn, "altitude") ||
        !strcmp(sn, "depth") || !strcmp(sn, "model_level_number") || name_in(d->units, level_units) || name_in(d->name, level_names))
        return D_LEVEL;
    if (!strcasecmp(axis, "X") || !strcasecmp(d->name, "x") || !strcmp(sn, "projection_x_coordinate")) return D_X;
    if (!strcasecmp(axis, "Y") || !strcasecmp(d->name, "y") || !strcmp(sn, "projection_y_coordinate")) return D_Y;
    return D_OTHER;
}

static const char *kind_word(dim_kind k)
{
    switch (k) {
    case D_TIME: return "time";
    case D_LEVEL: return "level";
    case D_MEMBER: return "member";
    case D_LEAD: return "lead";
    default: return "other";
    }
}

/* Reads a coordinate variable (or 0..n-1 without one). */
static double *read_coord(int nc, const dim_info *d)
{
    double *v = malloc(sizeof(double) * (d->len ? d->len : 1));
    if (!v) return NULL;
    if (d->coord >= 0 && nc_get_var_double(nc, d->coord, v) == NC_NOERR) return v;
    for (size_t i = 0; i < d->len; i++) v[i] = (double)i;
    return v;
}

static void fmt_value(double v, char *buf, size_t len)
{
    if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, len, "%.0f", v);
    else snprintf(buf, len, "%g", v);
}

static int is_index_text(const char *s)
{
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p)) return 0;
    return 1;
}

typedef struct {
    int is_time;     /* time coordinate decoded */
    cf_time_units u;
} time_decode;

static void describe_values(int nc, const dim_info *d, const time_decode *td, char *buf, size_t len)
{
    double *v = read_coord(nc, d);
    if (!v) {
        snprintf(buf, len, "%zu values", d->len);
        return;
    }
    char a[64], b[64];
    if (td && td->is_time) {
        format_minutes(cf_time_to_hours(&td->u, v[0]), td->u.cal, a, sizeof a);
        format_minutes(cf_time_to_hours(&td->u, v[d->len - 1]), td->u.cal, b, sizeof b);
    } else {
        fmt_value(v[0], a, sizeof a);
        fmt_value(v[d->len - 1], b, sizeof b);
    }
    const char *what = d->kind == D_TIME ? "time" : "value";
    if (d->len == 1) snprintf(buf, len, "it has 1 %s: %s", what, a);
    else snprintf(buf, len, "it has %zu %ss: %s .. %s", d->len, what, a, b);
    free(v);
}

/* Chooses the index along a non-spatial dimension. */
static int select_index(int nc, const char *path, const char *var, const dim_info *d, const char *text,
                        const time_decode *td, size_t *index)
{
    *index = 0;
    if (!text) return SM_OK;
    char avail[256];
    if (d->kind == D_TIME && td->is_time && !is_index_text(text)) {
        cf_date date;
        if (cf_date_parse(text, &date) != SM_OK)
            return sm_fail(SM_ERR_USAGE, "%s: variable '%s': cannot parse time '%s' (use YYYY-MM-DDTHH:MM or an index)", path, var, text);
        if (!cf_date_valid(&date, td->u.cal))
            return sm_fail(SM_ERR_USAGE, "%s: variable '%s': %s is not a date in the file's calendar '%s'", path, var, text,
                           d->calendar[0] ? d->calendar : "standard");
        double want = cf_date_to_hours(&date, td->u.cal);
        double *v = read_coord(nc, d);
        if (!v) return sm_fail(SM_ERR_IO, "%s: out of memory", path);
        for (size_t i = 0; i < d->len; i++) {
            if (fabs(cf_time_to_hours(&td->u, v[i]) - want) < 1.0 / 120.0) {
                *index = i;
                free(v);
                return SM_OK;
            }
        }
        free(v);
        describe_values(nc, d, td, avail, sizeof avail);
        return sm_fail(SM_ERR_IO, "%s: variable '%s': time %s is not in the file; %s", path, var, text, avail);
    }
    if (d->kind == D_TIME || d->coord < 0) {
        if (!is_index_text(text) && d->kind == D_TIME) {
            describe_values(nc, d, td, avail, sizeof avail);
            return sm_fail(SM_ERR_IO, "%s: variable '%s': time '%s' cannot be matched: '%s' has no 'since' units, give a 0-based index; %s",
                           path, var, text, d->name, avail);
        }
        if (!is_index_text(text))
            return sm_fail(SM_ERR_USAGE, "%s: variable '%s': dimension '%s' has no coordinate variable; give a 0-based index, not '%s'", path, var, d->name, text);
        long i = strtol(text, NULL, 10);
        if (i < 0 || (size_t)i >= d->len) {
            describe_values(nc, d, td, avail, sizeof avail);
            return sm_fail(SM_ERR_IO, "%s: variable '%s': %s index %ld is not in the file (dimension '%s' has %zu entries, 0..%zu); %s",
                           path, var, kind_word(d->kind), i, d->name, d->len, d->len - 1, avail);
        }
        *index = (size_t)i;
        return SM_OK;
    }
    char *end;
    double want = strtod(text, &end);
    while (*end && isspace((unsigned char)*end)) end++;
    if (end == text || (*end && strcasecmp(end, "h") && strcasecmp(end, "hpa")))
        return sm_fail(SM_ERR_USAGE, "%s: variable '%s': cannot parse %s '%s' as a number", path, var, kind_word(d->kind), text);
    double *v = read_coord(nc, d);
    if (!v) return sm_fail(SM_ERR_IO, "%s: out of memory", path);
    for (size_t i = 0; i < d->len; i++) {
        if (fabs(v[i] - want) <= 1e-6 * fmax(1.0, fabs(want))) {
            *index = i;
            free(v);
            return SM_OK;
        }
    }
    free(v);
    describe_values(nc, d, NULL, avail, sizeof avail);
    return sm_fail(SM_ERR_IO, "%s: variable '%s': %s %s is not in the file ('%s'); %s", path, var, kind_word(d->kind), text, d->name, avail);
}

/* ---------------------------------------------------------------- categories */

/* Looks for "k=Label" pairs (comma or semicolon separated) in `text`. */
static int label_from_text(const char *text, double value, char *out, size_t len)
{
    int pairs = 0, found = 0;
    const char *p = text;
    while (*p) {
        if (isdigit((unsigned char)*p) || (*p == '-' && isdigit((unsigned char)p[1]))) {
            if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '.')) {
                p++;
                continue;
            }
            char *end;
            long k = strtol(p, &end, 10);
            const char *q = end;
            while (*q == ' ') q++;
            if (*q == '=') {
                q++;
                while (*q == ' ') q++;
                const char *e = q;
                while (*e && *e != ',' && *e != ';' && *e != '\n') e++;
                while (e > q && e[-1] == ' ') e--;
                if (e > q) {
                    pairs++;
                    if ((double)k == value && !found) {
                        size_t n = (size_t)(e - q) < len - 1 ? (size_t)(e - q) : len - 1;
                        memcpy(out, q, n);
                        out[n] = 0;
                        found = 1;
                    }
                }
                p = e;
                continue;
            }
            p = end;
            continue;
        }
        p++;
    }
    return pairs >= 2 && found;
}

/* Categories from flag_values, labelled by flag_meanings (else the values); 0 when the values
 * cannot be read. */
static int categories_from_flags(int nc, int varid, size_t nflags, plot_field *f)
{
    if (nc_get_att_double(nc, varid, "flag_values", f->cat_values) != NC_NOERR) return 0;
    f->n_categories = (int)nflags;
    char meanings[4096];
    int nm = 0;
    if (att_text(nc, varid, "flag_meanings", meanings, sizeof meanings)) {
        char *save = NULL;
        for (char *tok = strtok_r(meanings, " \t", &save); tok && nm < f->n_categories; tok = strtok_r(NULL, " \t", &save))
            snprintf(f->cat_labels[nm++], sizeof f->cat_labels[0], "%s", tok);
    }
    for (int c = nm; c < f->n_categories; c++) fmt_value(f->cat_values[c], f->cat_labels[c], sizeof f->cat_labels[0]);
    return 1;
}

/* The distinct values of the field in ascending order into cat_values; 0 when there are none
 * or more than 16 (then it is drawn as a continuous field). */
static int distinct_values(plot_field *f, size_t n)
{
    int nv = 0;
    for (size_t i = 0; i < n; i++) {
        double v = f->data[i];
        if (isnan(v)) continue;
        int seen = 0;
        for (int c = 0; c < nv && !seen; c++) seen = f->cat_values[c] == v;
        if (seen) continue;
        if (nv == 16) return 0;
        f->cat_values[nv++] = v;
    }
    for (int a = 1; a < nv; a++)
        for (int b = a; b > 0 && f->cat_values[b] < f->cat_values[b - 1]; b--) {
            double t = f->cat_values[b];
            f->cat_values[b] = f->cat_values[b - 1];
            f->cat_values[b - 1] = t;
        }
    return nv;
}

/* Categories of an unpacked integer variable (or a smoecast dataset variable with
 * smoecast_categorical = 1 holding whole numbers): its distinct values, labelled from "k=Label"
 * lists in the variable's texts or the global title, else by value; 0 when not categorical. */
static int categories_from_values(int nc, int varid, nc_type type, int packed, plot_field *f, size_t n)
{
    int integer = type == NC_BYTE || type == NC_UBYTE || type == NC_SHORT || type == NC_USHORT || type == NC_INT ||
                  type == NC_UINT || type == NC_INT64 || type == NC_UINT64;
    /* smoecast datasets store categorical fields (land-sea masks) as float32 with
     * smoecast_categorical = 1 */
    double forced = 0;
    att_double(nc, varid, "smoecast_categorical", &forced);
    if (forced != 0) {
        for (size_t i = 0; i < n; i++)
            if (!isnan(f->data[i]) && f->data[i] != floorf(f->data[i])) return 0;
    } else if (!integer || packed) {
        return 0;
    }
    int nv = distinct_values(f, n);
    if (nv == 0) return 0;
    f->n_categories = nv;
    char texts[4][1024];
    att_text(nc, varid, "long_name", texts[0], sizeof texts[0]);
    att_text(nc, varid, "description", texts[1], sizeof texts[1]);
    att_text(nc, varid, "comment", texts[2], sizeof texts[2]);
    att_text(nc, NC_GLOBAL, "title", texts[3], sizeof texts[3]);
    for (int c = 0; c < nv; c++) {
        int ok = 0;
        for (int t = 0; t < 4 && !ok; t++) ok = label_from_text(texts[t], f->cat_values[c], f->cat_labels[c], sizeof f->cat_labels[0]);
        if (!ok) fmt_value(f->cat_values[c], f->cat_labels[c], sizeof f->cat_labels[0]);
    }
    return 1;
}

/* A categorical slice: data becomes the category index (NaN for values of no category). */
static void setup_categories(int nc, int varid, nc_type type, int packed, plot_field *f, size_t n)
{
    size_t nflags = 0;
    nc_type ft;
    int have_flags = nc_inq_att(nc, varid, "flag_values", &ft, &nflags) == NC_NOERR && nflags >= 1 &&
                     nflags <= PLOT_MAX_CATEGORIES && ft != NC_CHAR && ft != NC_STRING;
    int found = have_flags ? categories_from_flags(nc, varid, nflags, f) : categories_from_values(nc, varid, type, packed, f, n);
    if (!found) return;
    f->categorical = 1;
    for (size_t i = 0; i < n; i++) {
        double v = f->data[i];
        float idx = NAN;
        for (int c = 0; c < f->n_categories; c++)
            if (v == f->cat_values[c]) {
                idx = (float)c;
                break;
            }
        f->data[i] = idx;
    }
}

/* ---------------------------------------------------------------- coordinates */

/* Makes coordinates monotonic (longitudes unwrapped); *reversed when they decrease. */
static int tidy_axis(double *v, size_t n, int is_lon, int *reversed, const char *path, const char *var, const char *name)
{
    *reversed = 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return sm_fail(SM_ERR_IO, "%s: variable '%s': coordinate '%s' has a missing value at index %zu", path, var, name, i);
    if (n < 2) return SM_OK;
    int dec = v[1] < v[0];
    if (is_lon) {
        for (size_t i = 1; i < n; i++) {
            while (!dec && v[i] < v[i - 1]) v[i] += 360.0;
            while (dec && v[i] > v[i - 1]) v[i] -= 360.0;
        }
    }
    for (size_t i = 1; i < n; i++)
        if ((dec && !(v[i] < v[i - 1])) || (!dec && !(v[i] > v[i - 1])))
            return sm_fail(SM_ERR_IO, "%s: variable '%s': coordinate '%s' is not monotonic (index %zu)", path, var, name, i);
    if (dec) {
        for (size_t i = 0; i < n / 2; i++) {
            double t = v[i];
            v[i] = v[n - 1 - i];
            v[n - 1 - i] = t;
        }
        *reversed = 1;
    }
    return SM_OK;
}

static void list_variables(int nc, char *buf, size_t len)
{
    int nvars = 0;
    nc_inq_nvars(nc, &nvars);
    size_t used = 0;
    buf[0] = 0;
    for (int v = 0; v < nvars && used + 2 < len; v++) {
        char name[NC_MAX_NAME + 1];
        int nd;
        nc_inq_varname(nc, v, name);
        nc_inq_varndims(nc, v, &nd);
        int dimid[NC_MAX_VAR_DIMS];
        nc_inq_vardimid(nc, v, dimid);
        /* skip coordinate variables */
        if (nd == 1) {
            char dn[NC_MAX_NAME + 1];
            nc_inq_dimname(nc, dimid[0], dn);
            if (!strcmp(dn, name)) continue;
        }
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", name);
        if (w < 0) break;
        used += (size_t)w;
    }
    if (used >= len) snprintf(buf + len - 5, 5, "...");
}

static void describe_dims(const dim_info *d, int nd, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < nd && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s(%zu)", i ? ", " : "", d[i].name, d[i].len);
        if (w < 0) break;
        used += (size_t)w;
    }
}

/* ---------------------------------------------------------------- the slice */

/* The selectors of plot_select by the dimension kind they choose along. */
static const dim_kind sel_kind[4] = {D_TIME, D_LEVEL, D_MEMBER, D_LEAD};
static const char *const sel_opt[4] = {"--time", "--level", "--member", "--lead"};

/* One slice read, filled phase by phase; read_slice frees `raw` whichever phase failed (the
 * arrays of the field are freed by plot_read_slice). */
typedef struct {
    int nc;
    const char *path, *var;
    const plot_select *sel;
    plot_field *f;
    int varid, nd;
    nc_type type;
    dim_info dims[NC_MAX_VAR_DIMS];
    int ix, iy;                   /* the x and y dimensions */
    const char *want[4];          /* --time, --level, --member, --lead (as sel_kind) */
    size_t start[NC_MAX_VAR_DIMS], count[NC_MAX_VAR_DIMS];
    size_t used_sel;              /* characters of f->selection in use */
    double init_h, lead_h;        /* forecast_reference_time and lead of the slice (NaN: none) */
    cf_calendar init_cal;
    double *raw;                  /* the slice as stored, in file order */
    int packed;                   /* scale_factor or add_offset present */
} slice_run;

static int slice_find_var(slice_run *S)
{
    if (nc_inq_varid(S->nc, S->var, &S->varid) != NC_NOERR) {
        char vars[700];
        list_variables(S->nc, vars, sizeof vars);
        return sm_fail(SM_ERR_IO, "%s: no variable '%s'; available: %s", S->path, S->var, vars[0] ? vars : "(none)");
    }
    nc_inq_vartype(S->nc, S->varid, &S->type);
    nc_inq_varndims(S->nc, S->varid, &S->nd);
    if (S->type == NC_CHAR || S->type == NC_STRING)
        return sm_fail(SM_ERR_IO, "%s: variable '%s' holds text, not numbers", S->path, S->var);
    return SM_OK;
}

/* Name, length, coordinate variable and kind of every dimension of the variable. */
static void slice_read_dims(slice_run *S)
{
    int dimid[NC_MAX_VAR_DIMS];
    nc_inq_vardimid(S->nc, S->varid, dimid);
    for (int i = 0; i < S->nd; i++) {
        dim_info *d = &S->dims[i];
        nc_inq_dim(S->nc, dimid[i], d->name, &d->len);
        d->coord = -1;
        int cid, cnd, cdim;
        if (nc_inq_varid(S->nc, d->name, &cid) == NC_NOERR && nc_inq_varndims(S->nc, cid, &cnd) == NC_NOERR && cnd == 1 &&
            nc_inq_vardimid(S->nc, cid, &cdim) == NC_NOERR && cdim == dimid[i]) {
            d->coord = cid;
            att_text(S->nc, cid, "units", d->units, sizeof d->units);
            att_text(S->nc, cid, "calendar", d->calendar, sizeof d->calendar);
        }
        d->kind = classify(d, S->nc);
    }
}

/* The map's x and y dimensions: the geographic pair first, else y/x. */
static int slice_find_grid(slice_run *S)
{
    const dim_info *dims = S->dims;
    int nd = S->nd, ix = -1, iy = -1;
    for (int i = 0; i < nd; i++) {
        if (dims[i].kind == D_LON && ix < 0) ix = i;
        if (dims[i].kind == D_LAT && iy < 0) iy = i;
    }
    S->f->kind = PLOT_GRID_GEO;
    if (ix < 0 || iy < 0) {
        ix = iy = -1;
        for (int i = 0; i < nd; i++) {
            if ((dims[i].kind == D_X || dims[i].kind == D_LON) && ix < 0) ix = i;
            if ((dims[i].kind == D_Y || dims[i].kind == D_LAT) && iy < 0) iy = i;
        }
        S->f->kind = PLOT_GRID_XY;
    }
    S->ix = ix;
    S->iy = iy;
    if (ix < 0 || iy < 0) {
        char dd[300];
        describe_dims(dims, nd, dd, sizeof dd);
        return sm_fail(SM_ERR_IO, "%s: variable '%s' (dimensions: %s) is not on a latitude/longitude or y/x grid; nothing to map",
                       S->path, S->var, nd ? dd : "none, a scalar");
    }
    if (dims[ix].len < 2 || dims[iy].len < 2)
        return sm_fail(SM_ERR_IO, "%s: variable '%s' has only %zu x %zu points; a map needs at least 2 x 2", S->path, S->var,
                       dims[iy].len, dims[ix].len);
    return SM_OK;
}

/* Every --time/--level/--member/--lead given names a dimension of the variable (unless lenient). */
static int slice_check_selectors(slice_run *S)
{
    const plot_select *sel = S->sel;
    if (sel) S->want[0] = sel->time, S->want[1] = sel->level, S->want[2] = sel->member, S->want[3] = sel->lead;
    for (int s = 0; s < 4; s++) {
        if (!S->want[s] || (sel && sel->lenient)) continue;
        int found = 0;
        for (int i = 0; i < S->nd; i++) found |= S->dims[i].kind == sel_kind[s];
        if (!found) {
            char dd[300];
            describe_dims(S->dims, S->nd, dd, sizeof dd);
            return sm_fail(SM_ERR_USAGE, "%s: variable '%s' has no %s dimension (dimensions: %s); drop %s", S->path, S->var,
                           kind_word(sel_kind[s]), dd, sel_opt[s]);
        }
    }
    return SM_OK;
}

/* --index DIM=I naming dimension d: *found, and *start set to I when it is in the dimension. */
static int pick_by_index(const slice_run *S, const dim_info *d, size_t *start, int *found)
{
    *found = 0;
    if (!S->sel) return SM_OK;
    size_t len = strlen(d->name);
    for (int k = 0; k < S->sel->n_index; k++) {
        const char *item = S->sel->index[k], *eq = strchr(item, '=');
        if (!eq || (size_t)(eq - item) != len || strncmp(item, d->name, len)) continue;
        if (!is_index_text(eq + 1))
            return sm_fail(SM_ERR_USAGE, "%s: variable '%s': --index %s: expected DIM=INDEX with a 0-based integer", S->path, S->var, item);
        long v = strtol(eq + 1, NULL, 10);
        if (v < 0 || (size_t)v >= d->len)
            return sm_fail(SM_ERR_IO, "%s: variable '%s': index %ld is not in dimension '%s' (%zu entries, 0..%zu)", S->path, S->var, v,
                           d->name, d->len, d->len - 1);
        *start = (size_t)v;
        *found = 1;
        return SM_OK;
    }
    return SM_OK;
}

/* The index along non-spatial dimension i: --index, else the selector of its kind, else 0. */
static int slice_pick(slice_run *S, int i, const time_decode *td)
{
    const dim_info *d = &S->dims[i];
    int found, st = pick_by_index(S, d, &S->start[i], &found);
    if (st || found) return st;
    const char *text = NULL;
    for (int s = 0; s < 4; s++)
        if (d->kind == sel_kind[s]) text = S->want[s];
    return select_index(S->nc, S->path, S->var, d, text, td, &S->start[i]);
}

/* A lead coordinate value in hours (lead_h unchanged for units other than hours, days,
 * minutes or seconds). */
static void lead_to_hours(const char *units, double value, double *lead_h)
{
    static const char *const lead_units[][2] = {{"hours", "1"}, {"hour", "1"}, {"h", "1"}, {"days", "24"}, {"day", "24"},
                                                {"minutes", "0.0166666666666667"}, {"seconds", "0.000277777777777778"}};
    for (size_t u = 0; u < sizeof lead_units / sizeof lead_units[0]; u++)
        if (!strcasecmp(units, lead_units[u][0])) *lead_h = value * strtod(lead_units[u][1], NULL);
}

/* The chosen time coordinate: the valid time label, or the initialisation of forecasts with
 * (forecast_reference_time, forecast_period) dimensions, whose valid time is init + lead. */
static void slice_note_time(slice_run *S, const dim_info *d, const time_decode *td, double cv)
{
    plot_field *f = S->f;
    char sn[64] = "";
    if (d->coord >= 0) att_text(S->nc, d->coord, "standard_name", sn, sizeof sn);
    if (td->is_time && !strcmp(sn, "forecast_reference_time")) {
        S->init_h = cf_time_to_hours(&td->u, cv);
        S->init_cal = td->u.cal;
        return;
    }
    if (td->is_time) {
        f->time_hours = cf_time_to_hours(&td->u, cv);
        format_minutes(f->time_hours, td->u.cal, f->time_label, sizeof f->time_label);
    } else {
        char val[64];
        fmt_value(cv, val, sizeof val);
        snprintf(f->time_label, sizeof f->time_label, "%.40s %.20s", d->name, val);
    }
}

/* Describes the chosen coordinate of dimension i for the title: time label, lead, or
 * "name value units" appended to the selection. */
static int slice_note_choice(slice_run *S, int i, const time_decode *td)
{
    const dim_info *d = &S->dims[i];
    plot_field *f = S->f;
    double *v = read_coord(S->nc, d);
    if (!v) return sm_fail(SM_ERR_IO, "%s: out of memory", S->path);
    double cv = v[S->start[i]];
    free(v);
    if (d->kind == D_LEAD) lead_to_hours(d->units, cv, &S->lead_h);
    if (d->kind == D_TIME) {
        slice_note_time(S, d, td, cv);
        return SM_OK;
    }
    if (d->len == 1 && d->kind == D_OTHER) return SM_OK;
    char val[64];
    fmt_value(cv, val, sizeof val);
    int show_units = d->units[0] && strcmp(d->units, "1") != 0;
    int w = snprintf(f->selection + S->used_sel, sizeof f->selection - S->used_sel, "%s%s %s%s%s", S->used_sel ? ", " : "",
                     d->name, val, show_units ? " " : "", show_units ? d->units : "");
    if (w > 0) S->used_sel = strlen(f->selection);
    return SM_OK;
}

/* start/count of the slice: all of x and y, one chosen index along every other dimension. */
static int slice_select(slice_run *S)
{
    S->f->time_hours = NAN;
    S->init_h = S->lead_h = NAN;
    S->init_cal = CAL_STANDARD;
    for (int i = 0; i < S->nd; i++) {
        const dim_info *d = &S->dims[i];
        S->start[i] = 0;
        S->count[i] = 1;
        if (i == S->ix || i == S->iy) {
            S->count[i] = d->len;
            continue;
        }
        if (d->len == 0) return sm_fail(SM_ERR_IO, "%s: variable '%s': dimension '%s' is empty; nothing to map", S->path, S->var, d->name);
        time_decode td = {0};
        if (d->kind == D_TIME && d->coord >= 0) td.is_time = time_units(d->units, d->calendar, &td.u);
        int st = slice_pick(S, i, &td);
        if (!st) st = slice_note_choice(S, i, &td);
        if (st) return st;
    }
    return SM_OK;
}

/* Forecasts: "init <time>" leads the selection, and the valid time is init + lead unless a time
 * dimension gave it. */
static void slice_prefix_init(slice_run *S)
{
    plot_field *f = S->f;
    if (!isfinite(S->init_h)) return;
    char init[32], rest[sizeof f->selection];
    format_minutes(S->init_h, S->init_cal, init, sizeof init);
    memcpy(rest, f->selection, sizeof rest);
    int w = snprintf(f->selection, sizeof f->selection, "init %s%s", init, rest[0] ? ", " : "");
    size_t used = w > 0 ? (size_t)w : 0, k = 0;
    while (rest[k] && used + 1 < sizeof f->selection) f->selection[used++] = rest[k++];
    f->selection[used] = 0;
    if (isfinite(S->lead_h) && !f->time_label[0]) {
        f->time_hours = S->init_h + S->lead_h;
        format_minutes(f->time_hours, S->init_cal, f->time_label, sizeof f->time_label);
    }
}

/* Still no time: the time of a scalar coordinate named in `coordinates` (not a reference time). */
static void slice_scalar_time(slice_run *S)
{
    plot_field *f = S->f;
    char coords[512];
    if (f->time_label[0] || !att_text(S->nc, S->varid, "coordinates", coords, sizeof coords)) return;
    char *save = NULL;
    for (char *tok = strtok_r(coords, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        int cid, cnd;
        char units[128], cal[64];
        cf_time_units tu;
        double val;
        if (nc_inq_varid(S->nc, tok, &cid) != NC_NOERR || nc_inq_varndims(S->nc, cid, &cnd) != NC_NOERR || cnd != 0) continue;
        if (!att_text(S->nc, cid, "units", units, sizeof units) || !strstr(units, " since ")) continue;
        att_text(S->nc, cid, "calendar", cal, sizeof cal);
        if (!time_units(units, cal, &tu) || nc_get_var_double(S->nc, cid, &val) != NC_NOERR) continue;
        char sn[64] = "";
        att_text(S->nc, cid, "standard_name", sn, sizeof sn);
        if (!strcmp(sn, "forecast_reference_time")) continue;
        f->time_hours = cf_time_to_hours(&tu, val);
        format_minutes(f->time_hours, tu.cal, f->time_label, sizeof f->time_label);
        return;
    }
}

/* The stored values of the slice and the x/y coordinates. */
static int slice_read_raw(slice_run *S)
{
    plot_field *f = S->f;
    size_t nx = S->dims[S->ix].len, ny = S->dims[S->iy].len, n = nx * ny;
    S->raw = malloc(sizeof(double) * n);
    f->data = malloc(sizeof(float) * n);
    f->x = read_coord(S->nc, &S->dims[S->ix]);
    f->y = read_coord(S->nc, &S->dims[S->iy]);
    if (!S->raw || !f->data || !f->x || !f->y) return sm_fail(SM_ERR_IO, "%s: out of memory reading '%s'", S->path, S->var);
    int ncst = nc_get_vara_double(S->nc, S->varid, S->start, S->count, S->raw);
    if (ncst != NC_NOERR && ncst != NC_ERANGE)
        return sm_fail(SM_ERR_IO, "%s: variable '%s': cannot read: %s", S->path, S->var, nc_strerror(ncst));
    f->nx = nx, f->ny = ny;
    return SM_OK;
}

/* How stored values become physical ones: packing, fill and missing values, valid range. */
typedef struct {
    double scale, offset, fill, missing, vmin, vmax;
    int packed;
} unpacking;

/* The netCDF default fill value of a type without _FillValue (NaN: no default applies). */
static double default_fill(nc_type type)
{
    switch (type) {
    case NC_SHORT: return NC_FILL_SHORT;
    case NC_USHORT: return NC_FILL_USHORT;
    case NC_INT: return NC_FILL_INT;
    case NC_UINT: return NC_FILL_UINT;
    case NC_FLOAT: return NC_FILL_FLOAT;
    case NC_DOUBLE: return NC_FILL_DOUBLE;
    default: return NAN;
    }
}

static void read_unpacking(int nc, int varid, nc_type type, unpacking *u)
{
    u->scale = 1, u->offset = 0, u->fill = NAN, u->missing = NAN, u->vmin = -INFINITY, u->vmax = INFINITY;
    u->packed = att_double(nc, varid, "scale_factor", &u->scale);
    u->packed |= att_double(nc, varid, "add_offset", &u->offset);
    int has_fill = att_double(nc, varid, "_FillValue", &u->fill);
    att_double(nc, varid, "missing_value", &u->missing);
    double vr[2];
    size_t nvr;
    nc_type vt;
    if (nc_inq_att(nc, varid, "valid_range", &vt, &nvr) == NC_NOERR && nvr == 2 && vt != NC_CHAR &&
        nc_get_att_double(nc, varid, "valid_range", vr) == NC_NOERR) {
        u->vmin = vr[0], u->vmax = vr[1];
    }
    att_double(nc, varid, "valid_min", &u->vmin);
    att_double(nc, varid, "valid_max", &u->vmax);
    if (!has_fill) u->fill = default_fill(type);
}

/* Ascending coordinates, and the data unpacked into rows of increasing y (NaN = missing). */
static int slice_unpack(slice_run *S)
{
    plot_field *f = S->f;
    size_t nx = f->nx, ny = f->ny;
    unpacking u;
    read_unpacking(S->nc, S->varid, S->type, &u);
    S->packed = u.packed;
    int xrev, yrev;
    int st = tidy_axis(f->x, nx, f->kind == PLOT_GRID_GEO, &xrev, S->path, S->var, S->dims[S->ix].name);
    if (!st) st = tidy_axis(f->y, ny, 0, &yrev, S->path, S->var, S->dims[S->iy].name);
    if (st) return st;
    int y_first = S->iy < S->ix;
    for (size_t j = 0; j < ny; j++) {
        for (size_t i = 0; i < nx; i++) {
            double r = y_first ? S->raw[j * nx + i] : S->raw[i * ny + j];
            double v;
            if (isnan(r) || r == u.fill || r == u.missing || r < u.vmin || r > u.vmax) v = NAN;
            else v = r * u.scale + u.offset;
            size_t jj = yrev ? ny - 1 - j : j, ii = xrev ? nx - 1 - i : i;
            f->data[jj * nx + ii] = (float)v;
        }
    }
    return SM_OK;
}

/* Names and units for the title and axes; whether longitudes close the circle. */
static void slice_describe(slice_run *S)
{
    plot_field *f = S->f;
    const dim_info *xd = &S->dims[S->ix], *yd = &S->dims[S->iy];
    att_text(S->nc, S->varid, "long_name", f->long_name, sizeof f->long_name);
    att_text(S->nc, S->varid, "units", f->units, sizeof f->units);
    snprintf(f->x_name, sizeof f->x_name, "%s", xd->name);
    snprintf(f->y_name, sizeof f->y_name, "%s", yd->name);
    snprintf(f->x_units, sizeof f->x_units, "%s", xd->units);
    snprintf(f->y_units, sizeof f->y_units, "%s", yd->units);
    if (f->kind != PLOT_GRID_GEO) return;
    size_t nx = f->nx, ny = f->ny;
    double dx = (f->x[nx - 1] - f->x[0]) / (double)(nx - 1);
    if (nx > 2 && fabs(f->x[nx - 1] - f->x[0] - 360.0) < 0.01 * dx) {
        /* the last column repeats the first (0 .. 360 inclusive): drop it */
        for (size_t j = 0; j < ny; j++) memmove(f->data + j * (nx - 1), f->data + j * nx, sizeof(float) * (nx - 1));
        f->nx = --nx;
        dx = (f->x[nx - 1] - f->x[0]) / (double)(nx - 1);
    }
    f->periodic_x = fabs(dx * (double)nx - 360.0) < 0.01 * dx;
}

static int read_slice(int nc, const char *path, const char *var, const plot_select *sel, plot_field *f)
{
    slice_run S = {.nc = nc, .path = path, .var = var, .sel = sel, .f = f};
    int st = slice_find_var(&S);
    if (!st) {
        slice_read_dims(&S);
        st = slice_find_grid(&S);
    }
    if (!st) st = slice_check_selectors(&S);
    if (!st) st = slice_select(&S);
    if (!st) {
        slice_prefix_init(&S);
        slice_scalar_time(&S);
        st = slice_read_raw(&S);
    }
    if (!st) st = slice_unpack(&S);
    if (!st) {
        slice_describe(&S);
        setup_categories(nc, S.varid, S.type, S.packed, f, f->nx * f->ny);
    }
    free(S.raw);
    return st;
}

int plot_read_slice(const char *path, const char *var, const plot_select *sel, plot_field *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", path);
    snprintf(out->var, sizeof out->var, "%s", var);
    int nc;
    if (access(path, R_OK) != 0) return sm_fail(SM_ERR_IO, "%s: cannot open: no such readable file (variable '%s')", path, var);
    int st = nc_open(path, NC_NOWRITE, &nc);
    if (st != NC_NOERR)
        return sm_fail(SM_ERR_IO, "%s: cannot open as NetCDF (variable '%s'): %s; plot reads NetCDF only (GRIB: convert with smoecast ingest)",
                       path, var, nc_strerror(st));
    st = read_slice(nc, path, var, sel, out);
    nc_close(nc);
    if (st) plot_field_free(out);
    return st;
}

void plot_field_free(plot_field *f)
{
    if (!f) return;
    free(f->x);
    free(f->y);
    free(f->data);
    f->x = f->y = NULL;
    f->data = NULL;
}

int plot_field_subtract(plot_field *field, const plot_field *truth)
{
    if (field->categorical || truth->categorical)
        return sm_fail(SM_ERR_USAGE, "%s: variable '%s' is categorical; a forecast-minus-truth map needs continuous fields",
                       field->categorical ? field->path : truth->path, field->categorical ? field->var : truth->var);
    if (field->nx != truth->nx || field->ny != truth->ny || field->kind != truth->kind)
        return sm_fail(SM_ERR_IO, "%s: variable '%s' is on a %zu x %zu grid but the truth %s '%s' is on %zu x %zu; regrid first",
                       field->path, field->var, field->ny, field->nx, truth->path, truth->var, truth->ny, truth->nx);
    for (size_t i = 0; i < field->nx; i++)
        if (fabs(field->x[i] - truth->x[i]) > 1e-4 && fabs(fabs(field->x[i] - truth->x[i]) - 360.0) > 1e-4)
            return sm_fail(SM_ERR_IO, "%s: variable '%s': x coordinate %zu is %g but %g in the truth %s", field->path, field->var, i,
                           field->x[i], truth->x[i], truth->path);
    for (size_t j = 0; j < field->ny; j++)
        if (fabs(field->y[j] - truth->y[j]) > 1e-4)
            return sm_fail(SM_ERR_IO, "%s: variable '%s': y coordinate %zu is %g but %g in the truth %s", field->path, field->var, j,
                           field->y[j], truth->y[j], truth->path);
    for (size_t k = 0; k < field->nx * field->ny; k++) field->data[k] -= truth->data[k];
    field->is_difference = 1;
    return SM_OK;
}

void plot_default_title_parts(const plot_field *f, char *title, size_t tlen, char *sub, size_t slen)
{
    const char *name = f->long_name[0] ? f->long_name : f->var;
    char units[160] = "";
    if (f->units[0] && !f->categorical) snprintf(units, sizeof units, " [%s]", f->units);
    snprintf(title, tlen, "%s%s%s", f->is_difference ? "Error (forecast - truth): " : "", name, units);
    snprintf(sub, slen, "%s%s%s", f->time_label, f->time_label[0] && f->selection[0] ? ", " : "", f->selection);
}

void plot_default_title(const plot_field *f, char *buf, size_t len)
{
    char title[512], sub[512];
    plot_default_title_parts(f, title, sizeof title, sub, sizeof sub);
    snprintf(buf, len, "%s%s%s", title, sub[0] ? ", " : "", sub);
}
