/* CF time coordinates: "<unit> since <date>" (the unit parsed with udunits2) and the calendars
 * standard/gregorian (Julian before 1582-10-15, Gregorian after), proleptic_gregorian, julian,
 * noleap/365_day, all_leap/366_day and 360_day. smoecast keeps every time as hours since
 * 1970-01-01 00:00:00 in the source's calendar. */
#ifndef SMOECAST_IO_CF_TIME_H
#define SMOECAST_IO_CF_TIME_H

typedef enum {
    CAL_STANDARD = 0,   /* standard, gregorian: mixed Julian/Gregorian */
    CAL_PROLEPTIC,      /* proleptic_gregorian */
    CAL_JULIAN,
    CAL_NOLEAP,         /* noleap, 365_day */
    CAL_ALL_LEAP,       /* all_leap, 366_day */
    CAL_360_DAY
} cf_calendar;

typedef struct {
    int year, month, day, hour, minute;
    double second;
} cf_date;

typedef struct {
    double unit_hours;   /* length of one unit in hours */
    double ref_hours;    /* the reference date in hours since 1970-01-01 in `cal` */
    cf_calendar cal;
} cf_time_units;

/* Calendar name (case-insensitive; NULL or "" means standard) -> enum; SM_ERR_IO if unknown. */
int cf_calendar_parse(const char *name, cf_calendar *out);
const char *cf_calendar_name(cf_calendar cal);

/* Parses "hours since 1900-01-01 00:00:0.0" etc. Months and years are rejected (their length
 * is not fixed). Returns SM_ERR_IO with a message naming `units`. */
int cf_time_units_parse(const char *units, const char *calendar, cf_time_units *out);
/* Value in the file's units -> hours since 1970-01-01. */
double cf_time_to_hours(const cf_time_units *u, double value);

/* Date <-> hours since 1970-01-01 in a calendar. cf_date_valid checks month/day ranges. */
int cf_date_valid(const cf_date *d, cf_calendar cal);
double cf_date_to_hours(const cf_date *d, cf_calendar cal);
void cf_hours_to_date(double hours, cf_calendar cal, cf_date *out);
/* "YYYY-MM-DDTHH:MM" (":SS" appended when seconds are non-zero) into buf. */
void cf_format_hours(double hours, cf_calendar cal, char *buf, int len);
/* Parses "Y-M-D", "Y-M-D h:m", "Y-M-DTh:m:s", with optional fraction and "Z"/"UTC"/+hh:mm. */
int cf_date_parse(const char *text, cf_date *out);

#endif
