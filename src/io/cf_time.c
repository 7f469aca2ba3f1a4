/* CF time decoding: udunits2 for the unit, our own calendars for the reference date. */
#include "io/cf_time.h"
#include "core/log.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <udunits2.h>

static const int k_cum_noleap[13] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365};
static const int k_cum_leap[13] = {0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335, 366};

int cf_calendar_parse(const char *name, cf_calendar *out)
{
    if (!name || !*name || !strcasecmp(name, "standard") || !strcasecmp(name, "gregorian")) *out = CAL_STANDARD;
    else if (!strcasecmp(name, "proleptic_gregorian")) *out = CAL_PROLEPTIC;
    else if (!strcasecmp(name, "julian")) *out = CAL_JULIAN;
    else if (!strcasecmp(name, "noleap") || !strcasecmp(name, "365_day")) *out = CAL_NOLEAP;
    else if (!strcasecmp(name, "all_leap") || !strcasecmp(name, "366_day")) *out = CAL_ALL_LEAP;
    else if (!strcasecmp(name, "360_day")) *out = CAL_360_DAY;
    else
        return sm_fail(SM_ERR_IO, "unknown calendar '%s' (standard, gregorian, proleptic_gregorian, julian, noleap, "
                                  "365_day, all_leap, 366_day, 360_day)", name);
    return SM_OK;
}

const char *cf_calendar_name(cf_calendar cal)
{
    switch (cal) {
    case CAL_STANDARD: return "standard";
    case CAL_PROLEPTIC: return "proleptic_gregorian";
    case CAL_JULIAN: return "julian";
    case CAL_NOLEAP: return "noleap";
    case CAL_ALL_LEAP: return "all_leap";
    case CAL_360_DAY: return "360_day";
    }
    return "standard";
}

static long floordiv(long a, long b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static long days_gregorian(long y, int m, int d)
{
    y -= m <= 2;
    long era = floordiv(y, 400);
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_gregorian(long z, long *y, int *m, int *d)
{
    z += 719468;
    long era = floordiv(z, 146097);
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Julian calendar: Julian day number minus that of 1970-01-01 (2440588). */
static long days_julian(long y, int m, int d)
{
    long a = floordiv(14 - m, 12);
    long yy = y + 4800 - a;
    long mm = m + 12 * a - 3;
    long jdn = d + floordiv(153 * mm + 2, 5) + 365 * yy + floordiv(yy, 4) - 32083;
    return jdn - 2440588;
}

static void civil_julian(long z, long *y, int *m, int *d)
{
    long jdn = z + 2440588;
    long c = jdn + 32082;
    long dd = floordiv(4 * c + 3, 1461);
    long e = c - floordiv(1461 * dd, 4);
    long mm = floordiv(5 * e + 2, 153);
    *d = (int)(e - floordiv(153 * mm + 2, 5) + 1);
    *m = (int)(mm + 3 - 12 * floordiv(mm, 10));
    *y = dd - 4800 + floordiv(mm, 10);
}

static int is_leap_gregorian(long y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int month_length(long y, int m, cf_calendar cal)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (cal == CAL_360_DAY) return 30;
    if (m != 2) return len[m - 1];
    switch (cal) {
    case CAL_NOLEAP: return 28;
    case CAL_ALL_LEAP: return 29;
    case CAL_JULIAN: return (y % 4 == 0) ? 29 : 28;
    case CAL_STANDARD: return (y < 1583 ? (y % 4 == 0) : is_leap_gregorian(y)) ? 29 : 28;
    default: return is_leap_gregorian(y) ? 29 : 28;
    }
}

int cf_date_valid(const cf_date *d, cf_calendar cal)
{
    if (d->month < 1 || d->month > 12 || d->day < 1) return 0;
    if (d->day > month_length(d->year, d->month, cal)) return 0;
    if (cal == CAL_STANDARD && d->year == 1582 && d->month == 10 && d->day > 4 && d->day < 15) return 0;
    if (d->hour < 0 || d->hour > 24 || d->minute < 0 || d->minute > 59 || d->second < 0 || d->second >= 61) return 0;
    return 1;
}

static long date_days(long y, int m, int d, cf_calendar cal)
{
    switch (cal) {
    case CAL_PROLEPTIC: return days_gregorian(y, m, d);
    case CAL_JULIAN: return days_julian(y, m, d);
    case CAL_STANDARD:
        if (y < 1582 || (y == 1582 && (m < 10 || (m == 10 && d < 15)))) return days_julian(y, m, d);
        return days_gregorian(y, m, d);
    case CAL_NOLEAP: return (y - 1970) * 365 + k_cum_noleap[m - 1] + d - 1;
    case CAL_ALL_LEAP: return (y - 1970) * 366 + k_cum_leap[m - 1] + d - 1;
    case CAL_360_DAY: return (y - 1970) * 360 + (m - 1) * 30 + d - 1;
    }
    return 0;
}

double cf_date_to_hours(const cf_date *d, cf_calendar cal)
{
    return (double)date_days(d->year, d->month, d->day, cal) * 24.0 + d->hour + d->minute / 60.0 + d->second / 3600.0;
}

void cf_hours_to_date(double hours, cf_calendar cal, cf_date *out)
{
    /* round to the millisecond so that 23:59:59.9999 prints as the next day */
    double ms_total = floor(hours * 3600000.0 + 0.5);
    double days_f = floor(ms_total / 86400000.0);
    double rem = ms_total - days_f * 86400000.0;
    long z = (long)days_f;
    long y = 1970;
    int m = 1, d = 1;
    const int *cum = NULL;
    long ylen = 0;
    switch (cal) {
    case CAL_PROLEPTIC: civil_gregorian(z, &y, &m, &d); break;
    case CAL_JULIAN: civil_julian(z, &y, &m, &d); break;
    case CAL_STANDARD:
        if (z >= days_gregorian(1582, 10, 15)) civil_gregorian(z, &y, &m, &d);
        else civil_julian(z, &y, &m, &d);
        break;
    case CAL_NOLEAP: cum = k_cum_noleap; ylen = 365; break;
    case CAL_ALL_LEAP: cum = k_cum_leap; ylen = 366; break;
    case CAL_360_DAY: {
        long yy = floordiv(z, 360);
        long doy = z - yy * 360;
        y = 1970 + yy;
        m = (int)(doy / 30) + 1;
        d = (int)(doy % 30) + 1;
        break;
    }
    }
    if (cum) {
        long yy = floordiv(z, ylen);
        long doy = z - yy * ylen;
        y = 1970 + yy;
        m = 1;
        while (m < 12 && doy >= cum[m]) m++;
        d = (int)(doy - cum[m - 1]) + 1;
    }
    out->year = (int)y;
    out->month = m;
    out->day = d;
    out->hour = (int)(rem / 3600000.0);
    rem -= out->hour * 3600000.0;
    out->minute = (int)(rem / 60000.0);
    rem -= out->minute * 60000.0;
    out->second = rem / 1000.0;
}

void cf_format_hours(double hours, cf_calendar cal, char *buf, int len)
{
    if (!isfinite(hours)) {
        snprintf(buf, (size_t)len, "NaN");
        return;
    }
    cf_date d;
    cf_hours_to_date(hours, cal, &d);
    if (d.second != 0)
        snprintf(buf, (size_t)len, "%04d-%02d-%02dT%02d:%02d:%02g", d.year, d.month, d.day, d.hour, d.minute, d.second);
    else
        snprintf(buf, (size_t)len, "%04d-%02d-%02dT%02d:%02d", d.year, d.month, d.day, d.hour, d.minute);
}

static const char *parse_int(const char *p, int *out, int maxdigits)
{
    int n = 0, v = 0;
    while (isdigit((unsigned char)*p) && n < maxdigits) {
        v = v * 10 + (*p - '0');
        p++;
        n++;
    }
    if (n == 0) return NULL;
    *out = v;
    return p;
}

int cf_date_parse(const char *text, cf_date *out)
{
    memset(out, 0, sizeof *out);
    const char *p = text;
    while (isspace((unsigned char)*p)) p++;
    int sign = 1;
    if (*p == '-') {
        sign = -1;
        p++;
    }
    int y, mo, d;
    if (!(p = parse_int(p, &y, 6)) || *p++ != '-' || !(p = parse_int(p, &mo, 2)) || *p++ != '-' || !(p = parse_int(p, &d, 2)))
        return SM_ERR_IO;
    out->year = sign * y;
    out->month = mo;
    out->day = d;
    if (*p == 'T' || *p == ' ') {
        const char *q = p + 1;
        while (*q == ' ') q++;
        int h, mi = 0;
        const char *r = parse_int(q, &h, 2);
        if (r) {
            out->hour = h;
            p = r;
            if (*p == ':') {
                if (!(p = parse_int(p + 1, &mi, 2))) return SM_ERR_IO;
                out->minute = mi;
                if (*p == ':') {
                    char *end;
                    out->second = strtod(p + 1, &end);
                    if (end == p + 1) return SM_ERR_IO;
                    p = end;
                }
            }
        }
    }
    while (isspace((unsigned char)*p)) p++;
    if (*p == 'Z') p++;
    else if (!strncasecmp(p, "UTC", 3)) p += 3;
    else if (!strncasecmp(p, "GMT", 3)) p += 3;
    else if (*p == '+' || *p == '-') {
        int sgn = *p == '-' ? -1 : 1, oh = 0, om = 0;
        const char *r = parse_int(p + 1, &oh, 2);
        if (!r) return SM_ERR_IO;
        p = r;
        if (*p == ':') p++;
        const char *r2 = parse_int(p, &om, 2);
        if (r2) p = r2;
        /* a time-zone offset shifts the reference to UTC */
        out->hour -= sgn * oh;
        out->minute -= sgn * om;
    }
    while (isspace((unsigned char)*p)) p++;
    return *p ? SM_ERR_IO : SM_OK;
}

int cf_time_units_parse(const char *units, const char *calendar, cf_time_units *out)
{
    memset(out, 0, sizeof *out);
    int st = cf_calendar_parse(calendar, &out->cal);
    if (st) return st;
    if (!units) return sm_fail(SM_ERR_IO, "time units missing");
    const char *since = strstr(units, " since ");
    if (!since) return sm_fail(SM_ERR_IO, "time units '%s' are not '<unit> since <date>'", units);
    char unit[64];
    size_t ulen = (size_t)(since - units);
    while (ulen > 0 && isspace((unsigned char)units[ulen - 1])) ulen--;
    const char *u0 = units;
    while (isspace((unsigned char)*u0) && ulen > 0) {
        u0++;
        ulen--;
    }
    if (ulen == 0 || ulen >= sizeof unit) return sm_fail(SM_ERR_IO, "time units '%s': no unit before 'since'", units);
    memcpy(unit, u0, ulen);
    unit[ulen] = '\0';
    if (!strncasecmp(unit, "month", 5) || !strncasecmp(unit, "year", 4) || !strcasecmp(unit, "common_year") ||
        !strcasecmp(unit, "common_years"))
        return sm_fail(SM_ERR_IO, "time units '%s': months and years have no fixed length; use days or hours", units);

    ut_set_error_message_handler(ut_ignore);
    ut_system *sys = ut_read_xml(NULL);
    if (!sys) return sm_fail(SM_ERR_IO, "cannot load the udunits2 unit database (package udunits-bin/libudunits2-data)");
    st = SM_OK;
    ut_unit *from = ut_parse(sys, unit, UT_ASCII);
    ut_unit *hour = ut_parse(sys, "hour", UT_ASCII);
    if (!from || !hour || !ut_are_convertible(from, hour)) {
        st = sm_fail(SM_ERR_IO, "time units '%s': '%s' is not a unit of time", units, unit);
    } else {
        cv_converter *cv = ut_get_converter(from, hour);
        out->unit_hours = cv ? cv_convert_double(cv, 1.0) : NAN;
        cv_free(cv);
        if (!(out->unit_hours > 0)) st = sm_fail(SM_ERR_IO, "time units '%s': cannot convert '%s' to hours", units, unit);
    }
    ut_free(from);
    ut_free(hour);
    ut_free_system(sys);
    if (st) return st;

    cf_date d;
    if (cf_date_parse(since + 7, &d) != SM_OK) return sm_fail(SM_ERR_IO, "time units '%s': cannot parse the reference date", units);
    cf_date check = d;
    check.hour = check.minute = 0;
    check.second = 0;
    if (!cf_date_valid(&check, out->cal))
        return sm_fail(SM_ERR_IO, "time units '%s': reference date is not valid in the %s calendar", units,
                       cf_calendar_name(out->cal));
    out->ref_hours = cf_date_to_hours(&d, out->cal);
    return SM_OK;
}

double cf_time_to_hours(const cf_time_units *u, double value) { return u->ref_hours + value * u->unit_hours; }
