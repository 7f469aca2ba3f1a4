#!/bin/bash
# smoecast inspect: a summary of every shared file (exit 0) with the facts its README lists, a
# dataset summary, and exit 2 with a one-line message for unreadable files.
set -u
BIN=${SMOECAST_BIN:?}
DATA=${SMOECAST_SHARED_DATA:-}
if [ ! -d "$DATA" ]; then
    if [ "${CI:-}" = true ]; then echo "CI=true but shared data is missing"; exit 1; fi
    echo "skipping: shared data absent"; exit 77
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/inspect.XXXXXX")
trap 'rm -rf "$W"' EXIT
fails=0

# expect FILE PATTERN...: exit 0, at most 40 lines, every pattern present
expect() {
    local f=$1; shift
    if ! "$BIN" inspect "$DATA/$f" >"$W/out" 2>"$W/err"; then echo "FAIL $f: exit $?"; cat "$W/err"; fails=$((fails + 1)); return; fi
    local lines; lines=$(wc -l <"$W/out")
    [ "$lines" -le 40 ] || { echo "FAIL $f: $lines lines (not one screen)"; fails=$((fails + 1)); }
    for p in "$@"; do
        grep -q -- "$p" "$W/out" || { echo "FAIL $f: lacks '$p'"; cat "$W/out"; fails=$((fails + 1)); return; }
    done
    echo "ok   $f"
}

expect xarray-data__era5-2mt-2019-03-uk.grib "GRIB1, 744 fields" "regular_ll 33 x 49" "lat 58 -> 50 (north -> south)" "lon -10 -> 2" \
    "2019-03-01T00:00 .. 2019-03-31T23:00, 744 times, step 1 h" "167 *2t *K" "members     none"
expect cfgrib__era5-levels-members.grib "160 fields" "members     10 (number 0 .. 9)" "129 *z " "130 *t " "500..850 (2)" "step 12 h"
expect geocat-datafiles__z_tigge_c_egrr_20061028120000_0000_pt_glob_prod.grib2 "216 x 288" "south -> north" "members     24" "pv"
expect pygrib__gfs.grb "GRIB2, 344 fields" "73 x 144 (lat x lon" "complex_spatial_differencing" "156 *gh *gpm" "forecast    periods 72 .. 72 h" "more fields"
expect cfgrib__alternate-scanning.grib "171 x 291" "lon -10 -> 19"
expect cfgrib__scanning_mode_64.grib "lat -90 -> 90 (south -> north)" "skt"
expect cfgrib__fields_with_missing_values.grib "2 fields" "66.24%"
expect cfgrib__reduced_gg.grib "reduced_gg, 96 rows of 20..192 points (13280 points)" "lat 88.5722 -> -88.5722" "10u"
expect earthkit-data__ens_none.grib "ccsds" "13 x 24"
expect cfgrib__era5-levels-corrupted.grib "broken      1 message" "message 1: broken GRIB message" "850"
expect cfgrib__regular_ll_msl.grib "members     1 (number 5 .. 5)" "prmsl" "periods 72"
expect xarray-data__eraint_uvz.nc "NetCDF-3 64-bit offset" "241 x 480" "month:T" "levels (level): 200 500 850" "int16 packed" "1 .. 7, 2 times"
expect earthkit-data__test4.nc "181 x 360" "lat 90 -> -90 (north -> south)" "2007-01-01T12:00"
expect geocat-datafiles__era5_1995-07-14T12.nc "NetCDF-4" "1995-07-14T12:00 (1 time)" "t2m_C" "lat 50 -> 24"
expect geocat-datafiles__landsea.nc "LSMASK" "south -> north" "none (static)" "int8"
expect ncep-reanalysis__air-2013.nc "2013-01-01T00:00 .. 2013-12-31T18:00, 1460 times, step 6 h" "lon 200 -> 330"

# a dataset
"$BIN" -q ingest --grid native --var z:500 --var t:850 --out "$W/ds.nc" "$DATA/cfgrib__era5-levels-members.grib" 2>/dev/null
"$BIN" inspect "$W/ds.nc" >"$W/out" || { echo "FAIL dataset: exit $?"; fails=$((fails + 1)); }
for p in "smoecast dataset v1" "members     10" "z500" "t850" "time+member" "$(sha256sum "$DATA/cfgrib__era5-levels-members.grib" | cut -c1-64)"; do
    grep -q -- "$p" "$W/out" || { echo "FAIL dataset: lacks '$p'"; cat "$W/out"; fails=$((fails + 1)); }
done

# unreadable files: exit 2, the message names the file
: > "$W/empty.grib"
echo "plain text" > "$W/text.grib"
for f in "$W/empty.grib" "$W/text.grib" "$W/none.nc"; do
    "$BIN" inspect "$f" >/dev/null 2>"$W/err"; rc=$?
    if [ $rc -ne 2 ] || [ "$(wc -l <"$W/err")" -ne 1 ] || ! grep -q "$f" "$W/err"; then
        echo "FAIL $f: exit $rc"; cat "$W/err"; fails=$((fails + 1))
    else echo "ok   $(cat "$W/err")"; fi
done
"$BIN" inspect --help | grep -q example || { echo "FAIL --help"; fails=$((fails + 1)); }
"$BIN" inspect 2>/dev/null; [ $? -eq 1 ] || { echo "FAIL: no files is not a usage error"; fails=$((fails + 1)); }

[ $fails -eq 0 ] || { echo "$fails failures"; exit 1; }
echo "inspect summarises every shared file"
