/* CF time decoding: units through udunits2, every calendar, date parsing and formatting. */
#include "testutil.h"

#include "core/log.h"
#include "io/cf_time.h"

#include <math.h>
#include <string.h>

static double hours_of(const char *units, const char *cal, double v)
{
    cf_time_units u;
    assert_int_equal(cf_time_units_parse(units, cal, &u), SM_OK);
    return cf_time_to_hours(&u, v);
}

static void test_standard_units(void **state)
{
    (void)state;
    /* 1900-01-01 is 25567 days before the epoch */
    assert_true(fabs(hours_of("hours since 1900-01-01 00:00:0.0", "gregorian", 0) - (-25567.0 * 24)) < 1e-9);
    assert_true(fabs(hours_of("days since 1970-01-01", NULL, 1.5) - 36.0) < 1e-9);
    assert_true(fabs(hours_of("seconds since 1970-01-01T00:00:00Z", "standard", 7200) - 2.0) < 1e-9);
    assert_true(fabs(hours_of("minutes since 2000-1-1 12:30", "proleptic_gregorian", 30) - (10957.0 * 24 + 13)) < 1e-9);
    /* ncep air-2013 first time: 1867128 hours since 1800-01-01 = 2013-01-01T00 */
    double h = hours_of("hours since 1800-01-01", "standard", 1867128);
    char buf[40];
    cf_format_hours(h, CAL_STANDARD, buf, sizeof buf);
    assert_string_equal(buf, "2013-01-01T00:00");
    /* time zone offsets move the reference to UTC */
    assert_true(fabs(hours_of("hours since 1970-01-01 06:00 +06:00", NULL, 0)) < 1e-9);
}

static void test_rejects(void **state)
{
    (void)state;
    cf_time_units u;
    assert_int_equal(cf_time_units_parse("months since 2000-01-01", NULL, &u), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "months"));
    assert_int_equal(cf_time_units_parse("furlongs since 2000-01-01", NULL, &u), SM_ERR_IO);
    assert_int_equal(cf_time_units_parse("hours", NULL, &u), SM_ERR_IO);
    assert_int_equal(cf_time_units_parse("hours since yesterday", NULL, &u), SM_ERR_IO);
    assert_int_equal(cf_time_units_parse("hours since 2000-01-01", "lunar", &u), SM_ERR_IO);
    assert_int_equal(cf_time_units_parse("days since 2001-02-29", "standard", &u), SM_ERR_IO);
    assert_int_equal(cf_time_units_parse("days since 2001-02-30", "360_day", &u), SM_OK);
}

static void test_calendars(void **state)
{
    (void)state;
    /* noleap: 365 days after 2000-01-01 is 2001-01-01 (no Feb 29) */
    char buf[40];
    cf_format_hours(hours_of("days since 2000-01-01", "noleap", 365), CAL_NOLEAP, buf, sizeof buf);
    assert_string_equal(buf, "2001-01-01T00:00");
    cf_format_hours(hours_of("days since 2000-01-01", "365_day", 59), CAL_NOLEAP, buf, sizeof buf);
    assert_string_equal(buf, "2000-03-01T00:00");
    /* proleptic: 2000 is a leap year */
    cf_format_hours(hours_of("days since 2000-01-01", "proleptic_gregorian", 59), CAL_PROLEPTIC, buf, sizeof buf);
    assert_string_equal(buf, "2000-02-29T00:00");
    /* 360_day: 30-day months */
    cf_format_hours(hours_of("days since 2000-01-01", "360_day", 59), CAL_360_DAY, buf, sizeof buf);
    assert_string_equal(buf, "2000-02-30T00:00");
    cf_format_hours(hours_of("days since 2000-01-01", "360_day", 360), CAL_360_DAY, buf, sizeof buf);
    assert_string_equal(buf, "2001-01-01T00:00");
    /* standard: the day after 1582-10-04 (Julian) is 1582-10-15 (Gregorian) */
    cf_format_hours(hours_of("days since 1582-10-04", "standard", 1), CAL_STANDARD, buf, sizeof buf);
    assert_string_equal(buf, "1582-10-15T00:00");
    /* julian: 1900 is a leap year */
    cf_format_hours(hours_of("days since 1900-02-28", "julian", 1), CAL_JULIAN, buf, sizeof buf);
    assert_string_equal(buf, "1900-02-29T00:00");
    cf_format_hours(hours_of("days since 1900-02-28", "gregorian", 1), CAL_STANDARD, buf, sizeof buf);
    assert_string_equal(buf, "1900-03-01T00:00");
}

static void test_roundtrip(void **state)
{
    (void)state;
    const cf_calendar cals[] = {CAL_STANDARD, CAL_PROLEPTIC, CAL_JULIAN, CAL_NOLEAP, CAL_ALL_LEAP, CAL_360_DAY};
    for (size_t c = 0; c < sizeof cals / sizeof cals[0]; c++) {
        int checked = 0;
        for (int y = -200; y <= 2400; y += 37)
            for (int m = 1; m <= 12; m++)
                for (int d = 1; d <= 31; d += 3) {
                    cf_date in = {y, m, d, 13, 45, 0};
                    if (!cf_date_valid(&in, cals[c])) continue;
                    cf_date out;
                    cf_hours_to_date(cf_date_to_hours(&in, cals[c]), cals[c], &out);
                    if (out.year != y || out.month != m || out.day != d || out.hour != 13 || out.minute != 45)
                        fail_msg("%s: %d-%d-%d came back as %d-%d-%d", cf_calendar_name(cals[c]), y, m, d, out.year, out.month, out.day);
                    checked++;
                }
        assert_true(checked > 1000);
    }
}

static void test_date_parse(void **state)
{
    (void)state;
    cf_date d;
    assert_int_equal(cf_date_parse("1995-7-14T12:00:30.5Z", &d), SM_OK);
    assert_int_equal(d.year, 1995);
    assert_int_equal(d.month, 7);
    assert_int_equal(d.day, 14);
    assert_int_equal(d.hour, 12);
    assert_true(fabs(d.second - 30.5) < 1e-12);
    assert_int_equal(cf_date_parse("2000-01-01 UTC", &d), SM_OK);
    assert_int_equal(cf_date_parse("2000/01/01", &d), SM_ERR_IO);
    assert_int_equal(cf_date_parse("2000-01-01 junk", &d), SM_ERR_IO);
    cf_calendar cal;
    assert_int_equal(cf_calendar_parse("GREGORIAN", &cal), SM_OK);
    assert_int_equal(cal, CAL_STANDARD);
    assert_int_equal(cf_calendar_parse("366_day", &cal), SM_OK);
    assert_int_equal(cal, CAL_ALL_LEAP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standard_units), cmocka_unit_test(test_rejects), cmocka_unit_test(test_calendars),
        cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_date_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
