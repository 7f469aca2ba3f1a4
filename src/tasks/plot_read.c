/* Reading one 2-D slice of a CF NetCDF variable for plotting: coordinate detection, selection of
 * the other dimensions, unpacking and missing values, categories (see plot_read.h). */
#include "tasks/plot_read.h"
#include "core/log.h"

#include <ctype.h>
#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum { CAL_PROLEPTIC = 0, CAL_JULIAN, CAL_NOLEAP, CAL_ALL_LEAP, CAL_360 };

/* ---------------------------------------------------------------- CF time (small subset) */

static const int cum_days[2][13] = {{0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365},
                                    {0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335, 366}};


/* Days since 1970-01-01 of y-m-d in a calendar. */
static double days_from_date(long y, long m, long d, int cal)
{
    switch (cal) {
    case CAL_NOLEAP: return (double)(y - 1970) * 365 + cum_days[0][m - 1] + d - 1;
    case CAL_ALL_LEAP: return (double)(y - 1970) * 366 + cum_days[1][m - 1] + d - 1;
    case CAL_360: return (double)(y - 1970) * 360 + (m - 1) * 30 + d - 1;
    case CAL_JULIAN: {
        long a = (14 - m) / 12, yy = y + 4800 - a, mm = m + 12 * a - 3;
        long jdn = d + (153 * mm + 2) / 5 + 365 * yy + yy / 4 - 32083;
        return (double)(jdn - 2440588);
    }
    default: { /* proleptic Gregorian (H. Hinnant's days_from_civil) */
        y -= m <= 2;
        long era = (y >= 0 ? y : y - 399) / 400;
        long yoe = y - era * 400;
        long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return (double)(era * 146097 + doe - 719468);
    }
    }
}

static void date_from_days(long z, int cal, long *y, long *m, long *d)
{
    if (cal == CAL_NOLEAP || cal == CAL_ALL_LEAP) {
        int leap = cal == CAL_ALL_LEAP, len = leap ? 366 : 365;
        long q = z >= 0 ? z / len : -((-z + len - 1) / len);
        long r = z - q * len;
        *y = 1970 + q;
        int mo = 1;
        while (mo < 12 && r >= cum_days[leap][mo]) mo++;
        *m = mo;
        *d = r - cum_days[leap][mo - 1] + 1;
        return;
    }
    if (cal == CAL_360) {
        long q = z >= 0 ? z / 360 : -((-z + 359) / 360);
        long r = z - q * 360;
        *y = 1970 + q;
        *m = r / 30 + 1;
        *d = r % 30 + 1;
        return;
    }
    if (cal == CAL_JULIAN) {
        long c = z + 2440588 + 32082;
        long dd = (4 * c + 3) / 1461, e = c - 1461 * dd / 4, mm = (5 * e + 2) / 153;
        *d = e - (153 * mm + 2) / 5 + 1;
        *m = mm + 3 - 12 * (mm / 10);
        *y = dd - 4800 + mm / 10;
        return;
    }
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

int plot_date_parse(const char *text, int *ymdhm, double *second)
{
    int y, mo, d, h = 0, mi = 0, n = 0;
    double s = 0;
    const char *p = text;
    while (isspace((unsigned char)*p)) p++;
    if (sscanf(p, "%d-%d-%d%n", &y, &mo, &d, &n) != 3) return -1;
    p += n;
    if (*p == 'T' || *p == ' ') {
        const char *q = p + 1;
        while (*q == ' ') q++;
        if (isdigit((unsigned char)*q)) {
            int k = 0;
            if (sscanf(q, "%d%n", &h, &k) != 1) return -1;
            q += k;
            if (*q == ':') {
                if (sscanf(q + 1, "%d%n", &mi, &k) != 1) return -1;
                q += 1 + k;
                if (*q == ':') {
                    if (sscanf(q + 1, "%lf%n", &s, &k) != 1) return -1;
                    q += 1 + k;
                }
            }
            p = q;
        }
    }
    while (isspace((unsigned char)*p)) p++;
    /* A time zone of Z/UTC/+00:00 is accepted; other offsets are not supported. */
    if (*p && strcasecmp(p, "Z") && strcasecmp(p, "UTC") && strcmp(p, "+00:00") && strcmp(p, "+0000") &&
        strcmp(p, "00:00") && strcmp(p, "+00"))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 24 || mi < 0 || mi > 59 || s < 0 || s >= 61) return -1;
    ymdhm[0] = y, ymdhm[1] = mo, ymdhm[2] = d, ymdhm[3] = h, ymdhm[4] = mi;
    *second = s;
    return 0;
}

int plot_date_valid(const int *ymdhm, int cal)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = ymdhm[0], m = ymdhm[1], d = ymdhm[2];
    if (m < 1 || m > 12 || d < 1) return 0;
    if (cal == CAL_360) return d <= 30;
    int len = mdays[m - 1];
    if (m == 2) {
        int leap = cal == CAL_ALL_LEAP || (cal == CAL_JULIAN && y % 4 == 0) ||
                   (cal == CAL_PROLEPTIC && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
        len += leap;
    }
    return d <= len;
}

double plot_date_to_hours(const int *ymdhm, double second, int cal)
{
    return days_from_date(ymdhm[0], ymdhm[1], ymdhm[2], cal) * 24.0 + ymdhm[3] + ymdhm[4] / 60.0 + second / 3600.0;
}

void plot_format_hours(double hours, int cal, char *buf, size_t len)
{
    double minutes = floor(hours * 60.0 + 0.5);
    long days = (long)floor(minutes / 1440.0);
    long rem = (long)(minutes - days * 1440.0);
    long y, m, d;
    date_from_days(days, cal, &y, &m, &d);
    snprintf(buf, len, "%04ld-%02ld-%02ldT%02ld:%02ld", y, m, d, rem / 60, rem % 60);
}

int plot_time_units_parse(const char *units, const char *calendar, double *unit_hours, double *ref_hours, int *cal)
{
    int c = CAL_PROLEPTIC;
    if (calendar && *calendar) {
        if (!strcasecmp(calendar, "standard") || !strcasecmp(calendar, "gregorian") ||
            !strcasecmp(calendar, "proleptic_gregorian"))
            c = CAL_PROLEPTIC;
        else if (!strcasecmp(calendar, "julian")) c = CAL_JULIAN;
        else if (!strcasecmp(calendar, "noleap") || !strcasecmp(calendar, "365_day")) c = CAL_NOLEAP;
        else if (!strcasecmp(calendar, "all_leap") || !strcasecmp(calendar, "366_day")) c = CAL_ALL_LEAP;
        else if (!strcasecmp(calendar, "360_day")) c = CAL_360;
        else return -1;
    }
    char unit[32];
    int n = 0;
    if (sscanf(units, " %31s since %n", unit, &n) != 1 || n == 0) return -1;
    double uh;
    if (!strcasecmp(unit, "seconds") || !strcasecmp(unit, "second") || !strcasecmp(unit, "s") ||
        !strcasecmp(unit, "sec") || !strcasecmp(unit, "secs"))
        uh = 1.0 / 3600.0;
    else if (!strcasecmp(unit, "minutes") || !strcasecmp(unit, "minute") || !strcasecmp(unit, "min") ||
             !strcasecmp(unit, "mins"))
        uh = 1.0 / 60.0;
    else if (!strcasecmp(unit, "hours") || !strcasecmp(unit, "hour") || !strcasecmp(unit, "h") ||
             !strcasecmp(unit, "hr") || !strcasecmp(unit, "hrs"))
        uh = 1.0;
    else if (!strcasecmp(unit, "days") || !strcasecmp(unit, "day") || !strcasecmp(unit, "d"))
        uh = 24.0;
    else
        return -1;
    int ymdhm[5];
    double s;
    if (plot_date_parse(units + n, ymdhm, &s) != 0) return -1;
    *unit_hours = uh;
    *ref_hours = plot_date_to_hours(ymdhm, s, c);
    *cal = c;
    return 0;
}

/* ---------------------------------------------------------------- attributes */

static int att_text(int nc, int varid, const char *name, char *buf, size_t len)
{
    nc_type t;
    size_t n;
    buf[0] = 0;
    if (nc_inq_att(nc, varid, name, &t, &n) != NC_NOERR) return 0;
    if (t == NC_STRING && n == 1) { /* NetCDF-4 string attribute */
        char *str[1] = {NULL};
        if (nc_get_att_string(nc, varid, name, str) != NC_NOERR) return 0;
        snprintf(buf, len, "%s", str[0] ? str[0] : "");
        nc_free_string(1, str);
        return 1;
    }
    if (t != NC_CHAR) return 0;
    char *tmp = malloc(n + 1);
    if (!tmp) return 0;
    if (nc_get_att_text(nc, varid, name, tmp) != NC_NOERR) {
        free(tmp);
        return 0;
    }
    tmp[n] = 0;
    snprintf(buf, len, "%s", tmp);
    free(tmp);
    /* trim trailing NULs/spaces */
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
    double uh, ref;
    int cal;
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
        plot_format_hours(td->ref + v[0] * td->uh, td->cal, a, sizeof a);
        plot_format_hours(td->ref + v[d->len - 1] * td->uh, td->cal, b, sizeof b);
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
        int ymdhm[5];
        double s;
        if (plot_date_parse(text, ymdhm, &s) != 0)
            return sm_fail(SM_ERR_USAGE, "%s: variable '%s': cannot parse time '%s' (use YYYY-MM-DDTHH:MM or an index)", path, var, text);
        if (!plot_date_valid(ymdhm, td->cal))
            return sm_fail(SM_ERR_USAGE, "%s: variable '%s': %s is not a date in the file's calendar '%s'", path, var, text,
                           d->calendar[0] ? d->calendar : "standard");
        double want = plot_date_to_hours(ymdhm, s, td->cal);
        double *v = read_coord(nc, d);
        if (!v) return sm_fail(SM_ERR_IO, "%s: out of memory", path);
        for (size_t i = 0; i < d->len; i++) {
            if (fabs(td->ref + v[i] * td->uh - want) < 1.0 / 120.0) {
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

static void setup_categories(int nc, int varid, nc_type type, int packed, plot_field *f, size_t n)
{
    size_t nflags = 0;
    nc_type ft;
    int have_flags = nc_inq_att(nc, varid, "flag_values", &ft, &nflags) == NC_NOERR && nflags >= 1 &&
                     nflags <= PLOT_MAX_CATEGORIES && ft != NC_CHAR && ft != NC_STRING;
    if (have_flags) {
        if (nc_get_att_double(nc, varid, "flag_values", f->cat_values) != NC_NOERR) return;
        f->n_categories = (int)nflags;
        char meanings[4096];
        int nm = 0;
        if (att_text(nc, varid, "flag_meanings", meanings, sizeof meanings)) {
            char *save = NULL;
            for (char *tok = strtok_r(meanings, " \t", &save); tok && nm < f->n_categories; tok = strtok_r(NULL, " \t", &save))
                snprintf(f->cat_labels[nm++], sizeof f->cat_labels[0], "%s", tok);
        }
        for (int c = nm; c < f->n_categories; c++) fmt_value(f->cat_values[c], f->cat_labels[c], sizeof f->cat_labels[0]);
    } else {
        int integer = type == NC_BYTE || type == NC_UBYTE || type == NC_SHORT || type == NC_USHORT || type == NC_INT ||
                      type == NC_UINT || type == NC_INT64 || type == NC_UINT64;
        /* smoecast datasets store categorical fields (land-sea masks) as float32 with
         * smoecast_categorical = 1 */
        double forced = 0;
        att_double(nc, varid, "smoecast_categorical", &forced);
        if (forced != 0) {
            for (size_t i = 0; i < n; i++)
                if (!isnan(f->data[i]) && f->data[i] != floorf(f->data[i])) return;
        } else if (!integer || packed) {
            return;
        }
        int nc_ = 0;
        for (size_t i = 0; i < n; i++) {
            double v = f->data[i];
            if (isnan(v)) continue;
            int seen = 0;
            for (int c = 0; c < nc_ && !seen; c++) seen = f->cat_values[c] == v;
            if (seen) continue;
            if (nc_ == 16) return; /* too many distinct values: draw as a continuous field */
            f->cat_values[nc_++] = v;
        }
        if (nc_ == 0) return;
        /* sort ascending */
        for (int a = 1; a < nc_; a++)
            for (int b = a; b > 0 && f->cat_values[b] < f->cat_values[b - 1]; b--) {
                double t = f->cat_values[b];
                f->cat_values[b] = f->cat_values[b - 1];
                f->cat_values[b - 1] = t;
            }
        f->n_categories = nc_;
        char texts[4][1024];
        att_text(nc, varid, "long_name", texts[0], sizeof texts[0]);
        att_text(nc, varid, "description", texts[1], sizeof texts[1]);
        att_text(nc, varid, "comment", texts[2], sizeof texts[2]);
        att_text(nc, NC_GLOBAL, "title", texts[3], sizeof texts[3]);
        for (int c = 0; c < nc_; c++) {
            int ok = 0;
            for (int t = 0; t < 4 && !ok; t++) ok = label_from_text(texts[t], f->cat_values[c], f->cat_labels[c], sizeof f->cat_labels[0]);
            if (!ok) fmt_value(f->cat_values[c], f->cat_labels[c], sizeof f->cat_labels[0]);
        }
    }
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

static int read_slice(int nc, const char *path, const char *var, const plot_select *sel, plot_field *f)
{
    int varid;
    if (nc_inq_varid(nc, var, &varid) != NC_NOERR) {
        char vars[700];
        list_variables(nc, vars, sizeof vars);
        return sm_fail(SM_ERR_IO, "%s: no variable '%s'; available: %s", path, var, vars[0] ? vars : "(none)");
    }
    int nd;
    nc_type type;
    nc_inq_vartype(nc, varid, &type);
    nc_inq_varndims(nc, varid, &nd);
    if (type == NC_CHAR || type == NC_STRING)
        return sm_fail(SM_ERR_IO, "%s: variable '%s' holds text, not numbers", path, var);
    int dimid[NC_MAX_VAR_DIMS];
    nc_inq_vardimid(nc, varid, dimid);
    dim_info dims[NC_MAX_VAR_DIMS];
    int ix = -1, iy = -1;
    for (int i = 0; i < nd; i++) {
        dim_info *d = &dims[i];
        memset(d, 0, sizeof *d);
        nc_inq_dim(nc, dimid[i], d->name, &d->len);
        d->coord = -1;
        int cid, cnd, cdim;
        if (nc_inq_varid(nc, d->name, &cid) == NC_NOERR && nc_inq_varndims(nc, cid, &cnd) == NC_NOERR && cnd == 1 &&
            nc_inq_vardimid(nc, cid, &cdim) == NC_NOERR && cdim == dimid[i]) {
            d->coord = cid;
            att_text(nc, cid, "units", d->units, sizeof d->units);
            att_text(nc, cid, "calendar", d->calendar, sizeof d->calendar);
        }
        d->kind = classify(d, nc);
    }
    /* geographic pair first, else y/x */
    for (int i = 0; i < nd; i++) {
        if (dims[i].kind == D_LON && ix < 0) ix = i;
        if (dims[i].kind == D_LAT && iy < 0) iy = i;
    }
    f->kind = PLOT_GRID_GEO;
    if (ix < 0 || iy < 0) {
        ix = iy = -1;
        for (int i = 0; i < nd; i++) {
            if ((dims[i].kind == D_X || dims[i].kind == D_LON) && ix < 0) ix = i;
            if ((dims[i].kind == D_Y || dims[i].kind == D_LAT) && iy < 0) iy = i;
        }
        f->kind = PLOT_GRID_XY;
    }
    if (ix < 0 || iy < 0) {
        char dd[300];
        describe_dims(dims, nd, dd, sizeof dd);
        return sm_fail(SM_ERR_IO, "%s: variable '%s' (dimensions: %s) is not on a latitude/longitude or y/x grid; nothing to map",
                       path, var, nd ? dd : "none, a scalar");
    }
    if (dims[ix].len < 2 || dims[iy].len < 2)
        return sm_fail(SM_ERR_IO, "%s: variable '%s' has only %zu x %zu points; a map needs at least 2 x 2", path, var, dims[iy].len, dims[ix].len);

    /* selections */
    const char *want[5] = {0};
    if (sel) {
        want[0] = sel->time, want[1] = sel->level, want[2] = sel->member, want[3] = sel->lead;
    }
    static const dim_kind sel_kind[4] = {D_TIME, D_LEVEL, D_MEMBER, D_LEAD};
    static const char *const sel_opt[4] = {"--time", "--level", "--member", "--lead"};
    for (int s = 0; s < 4; s++) {
        if (!want[s] || (sel && sel->lenient)) continue;
        int found = 0;
        for (int i = 0; i < nd; i++) found |= dims[i].kind == sel_kind[s];
        if (!found) {
            char dd[300];
            describe_dims(dims, nd, dd, sizeof dd);
            return sm_fail(SM_ERR_USAGE, "%s: variable '%s' has no %s dimension (dimensions: %s); drop %s", path, var,
                           kind_word(sel_kind[s]), dd, sel_opt[s]);
        }
    }
    size_t start[NC_MAX_VAR_DIMS], count[NC_MAX_VAR_DIMS];
    f->time_hours = NAN;
    size_t used_sel = 0;
    double init_h = NAN, lead_h = NAN;
    int init_cal = 0;
    for (int i = 0; i < nd; i++) {
        dim_info *d = &dims[i];
        start[i] = 0;
        count[i] = 1;
        if (i == ix || i == iy) {
            count[i] = d->len;
            continue;
        }
        if (d->len == 0) return sm_fail(SM_ERR_IO, "%s: variable '%s': dimension '%s' is empty; nothing to map", path, var, d->name);
        time_decode td = {0};
        if (d->kind == D_TIME && d->coord >= 0 &&
            plot_time_units_parse(d->units, d->calendar, &td.uh, &td.ref, &td.cal) == 0)
            td.is_time = 1;
        const char *text = NULL;
        for (int s = 0; s < 4; s++)
            if (d->kind == sel_kind[s]) text = want[s];
        if (sel) {
            for (int k = 0; k < sel->n_index; k++) {
                const char *eq = strchr(sel->index[k], '=');
                if (eq && (size_t)(eq - sel->index[k]) == strlen(d->name) && !strncmp(sel->index[k], d->name, strlen(d->name))) {
                    if (!is_index_text(eq + 1))
                        return sm_fail(SM_ERR_USAGE, "%s: variable '%s': --index %s: expected DIM=INDEX with a 0-based integer", path, var, sel->index[k]);
                    long v = strtol(eq + 1, NULL, 10);
                    if (v < 0 || (size_t)v >= d->len)
                        return sm_fail(SM_ERR_IO, "%s: variable '%s': index %ld is not in dimension '%s' (%zu entries, 0..%zu)", path, var, v, d->name, d->len, d->len - 1);
                    start[i] = (size_t)v;
                    text = NULL;
                    goto chosen;
                }
            }
        }
        {
            int st = select_index(nc, path, var, d, text, &td, &start[i]);
            if (st) return st;
        }
    chosen:;
        /* describe the chosen coordinate for the title */
        double *v = read_coord(nc, d);
        if (!v) return sm_fail(SM_ERR_IO, "%s: out of memory", path);
        double cv = v[start[i]];
        free(v);
        char val[64];
        if (d->kind == D_LEAD) {
            static const char *const lead_units[][2] = {{"hours", "1"}, {"hour", "1"}, {"h", "1"}, {"days", "24"}, {"day", "24"},
                                                        {"minutes", "0.0166666666666667"}, {"seconds", "0.000277777777777778"}};
            for (size_t u = 0; u < sizeof lead_units / sizeof lead_units[0]; u++)
                if (!strcasecmp(d->units, lead_units[u][0])) lead_h = cv * strtod(lead_units[u][1], NULL);
        }
        if (d->kind == D_TIME) {
            char sn[64] = "";
            if (d->coord >= 0) att_text(nc, d->coord, "standard_name", sn, sizeof sn);
            if (td.is_time && !strcmp(sn, "forecast_reference_time")) {
                /* forecasts with (forecast_reference_time, forecast_period) dimensions: the
                 * valid time is init + lead (below) */
                init_h = td.ref + cv * td.uh;
                init_cal = td.cal;
                continue;
            }
            if (td.is_time) {
                f->time_hours = td.ref + cv * td.uh;
                plot_format_hours(f->time_hours, td.cal, f->time_label, sizeof f->time_label);
            } else {
                fmt_value(cv, val, sizeof val);
                snprintf(f->time_label, sizeof f->time_label, "%.40s %.20s", d->name, val);
            }
            continue;
        }
        if (d->len == 1 && d->kind == D_OTHER) continue;
        fmt_value(cv, val, sizeof val);
        int show_units = d->units[0] && strcmp(d->units, "1") != 0;
        int w = snprintf(f->selection + used_sel, sizeof f->selection - used_sel, "%s%s %s%s%s", used_sel ? ", " : "",
                         d->name, val, show_units ? " " : "", show_units ? d->units : "");
        if (w > 0) used_sel = strlen(f->selection);
    }
    if (isfinite(init_h)) {
        char init[32], rest[sizeof f->selection];
        plot_format_hours(init_h, init_cal, init, sizeof init);
        memcpy(rest, f->selection, sizeof rest);
        int w = snprintf(f->selection, sizeof f->selection, "init %s%s", init, rest[0] ? ", " : "");
        size_t used = w > 0 ? (size_t)w : 0, k = 0;
        while (rest[k] && used + 1 < sizeof f->selection) f->selection[used++] = rest[k++];
        f->selection[used] = 0;
        if (isfinite(lead_h) && !f->time_label[0]) {
            f->time_hours = init_h + lead_h;
            plot_format_hours(f->time_hours, init_cal, f->time_label, sizeof f->time_label);
        }
    }
    /* time from a scalar coordinate named in `coordinates` */
    if (!f->time_label[0]) {
        char coords[512];
        if (att_text(nc, varid, "coordinates", coords, sizeof coords)) {
            char *save = NULL;
            for (char *tok = strtok_r(coords, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
                int cid, cnd;
                char units[128], cal[64];
                double uh, ref, val;
                int c;
                if (nc_inq_varid(nc, tok, &cid) != NC_NOERR || nc_inq_varndims(nc, cid, &cnd) != NC_NOERR || cnd != 0) continue;
                if (!att_text(nc, cid, "units", units, sizeof units) || !strstr(units, " since ")) continue;
                att_text(nc, cid, "calendar", cal, sizeof cal);
                if (plot_time_units_parse(units, cal, &uh, &ref, &c) != 0 || nc_get_var_double(nc, cid, &val) != NC_NOERR) continue;
                char sn[64] = "";
                att_text(nc, cid, "standard_name", sn, sizeof sn);
                if (!strcmp(sn, "forecast_reference_time")) continue;
                f->time_hours = ref + val * uh;
                plot_format_hours(f->time_hours, c, f->time_label, sizeof f->time_label);
                break;
            }
        }
    }
    /* data */
    size_t nx = dims[ix].len, ny = dims[iy].len, n = nx * ny;
    double *raw = malloc(sizeof(double) * n);
    f->data = malloc(sizeof(float) * n);
    f->x = read_coord(nc, &dims[ix]);
    f->y = read_coord(nc, &dims[iy]);
    if (!raw || !f->data || !f->x || !f->y) {
        free(raw);
        return sm_fail(SM_ERR_IO, "%s: out of memory reading '%s'", path, var);
    }
    int ncst = nc_get_vara_double(nc, varid, start, count, raw);
    if (ncst != NC_NOERR && ncst != NC_ERANGE) {
        free(raw);
        return sm_fail(SM_ERR_IO, "%s: variable '%s': cannot read: %s", path, var, nc_strerror(ncst));
    }
    f->nx = nx, f->ny = ny;
    double scale = 1, offset = 0, fill = NAN, missing = NAN, vmin = -INFINITY, vmax = INFINITY;
    int packed = att_double(nc, varid, "scale_factor", &scale);
    packed |= att_double(nc, varid, "add_offset", &offset);
    int has_fill = att_double(nc, varid, "_FillValue", &fill);
    att_double(nc, varid, "missing_value", &missing);
    {
        double vr[2];
        size_t nvr;
        nc_type vt;
        if (nc_inq_att(nc, varid, "valid_range", &vt, &nvr) == NC_NOERR && nvr == 2 && vt != NC_CHAR &&
            nc_get_att_double(nc, varid, "valid_range", vr) == NC_NOERR) {
            vmin = vr[0], vmax = vr[1];
        }
        att_double(nc, varid, "valid_min", &vmin);
        att_double(nc, varid, "valid_max", &vmax);
    }
    if (!has_fill) {
        switch (type) {
        case NC_SHORT: fill = NC_FILL_SHORT; break;
        case NC_USHORT: fill = NC_FILL_USHORT; break;
        case NC_INT: fill = NC_FILL_INT; break;
        case NC_UINT: fill = NC_FILL_UINT; break;
        case NC_FLOAT: fill = NC_FILL_FLOAT; break;
        case NC_DOUBLE: fill = NC_FILL_DOUBLE; break;
        default: break;
        }
    }
    int xrev, yrev;
    int st = tidy_axis(f->x, nx, f->kind == PLOT_GRID_GEO, &xrev, path, var, dims[ix].name);
    if (!st) st = tidy_axis(f->y, ny, 0, &yrev, path, var, dims[iy].name);
    if (st) {
        free(raw);
        return st;
    }
    int y_first = iy < ix;
    for (size_t j = 0; j < ny; j++) {
        for (size_t i = 0; i < nx; i++) {
            double r = y_first ? raw[j * nx + i] : raw[i * ny + j];
            double v;
            if (isnan(r) || r == fill || r == missing || r < vmin || r > vmax) v = NAN;
            else v = r * scale + offset;
            size_t jj = yrev ? ny - 1 - j : j, ii = xrev ? nx - 1 - i : i;
            f->data[jj * nx + ii] = (float)v;
        }
    }
    free(raw);

    att_text(nc, varid, "long_name", f->long_name, sizeof f->long_name);
    att_text(nc, varid, "units", f->units, sizeof f->units);
    snprintf(f->x_name, sizeof f->x_name, "%s", dims[ix].name);
    snprintf(f->y_name, sizeof f->y_name, "%s", dims[iy].name);
    snprintf(f->x_units, sizeof f->x_units, "%s", dims[ix].units);
    snprintf(f->y_units, sizeof f->y_units, "%s", dims[iy].units);
    if (f->kind == PLOT_GRID_GEO) {
        double dx = (f->x[nx - 1] - f->x[0]) / (double)(nx - 1);
        if (nx > 2 && fabs(f->x[nx - 1] - f->x[0] - 360.0) < 0.01 * dx) {
            /* the last column repeats the first (0 .. 360 inclusive): drop it */
            for (size_t j = 0; j < ny; j++) memmove(f->data + j * (nx - 1), f->data + j * nx, sizeof(float) * (nx - 1));
            f->nx = --nx;
            n = nx * ny;
            dx = (f->x[nx - 1] - f->x[0]) / (double)(nx - 1);
        }
        f->periodic_x = fabs(dx * (double)nx - 360.0) < 0.01 * dx;
    }
    setup_categories(nc, varid, type, packed, f, n);
    return SM_OK;
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
