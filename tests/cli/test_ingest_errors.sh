#!/bin/bash
# smoecast ingest on bad input: each case exits 2 with ONE line naming the file and the message
# number or variable, and leaves no output (nor a temporary file) behind.
set -u
BIN=${SMOECAST_BIN:?}
DATA=${SMOECAST_SHARED_DATA:-}
if [ ! -d "$DATA" ]; then
    if [ "${CI:-}" = true ]; then echo "CI=true but shared data is missing"; exit 1; fi
    echo "skipping: shared data absent"; exit 77
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/ingest_errors.XXXXXX")
trap 'rm -rf "$W"' EXIT
fails=0

# expect_error NAME PATTERN... -- ARGS: exit 2, one stderr line matching every PATTERN, no output
expect_error() {
    local name=$1; shift
    local patterns=()
    while [ "$1" != "--" ]; do patterns+=("$1"); shift; done
    shift
    rm -rf "$W/out"; mkdir -p "$W/out"
    "$BIN" ingest "$@" 2>"$W/err" >/dev/null
    local rc=$?
    local lines
    lines=$(grep -c . "$W/err")
    if [ $rc -ne 2 ]; then echo "FAIL $name: exit $rc (want 2)"; cat "$W/err"; fails=$((fails + 1)); return; fi
    if [ "$lines" -ne 1 ]; then echo "FAIL $name: $lines stderr lines (want 1)"; cat "$W/err"; fails=$((fails + 1)); return; fi
    for p in "${patterns[@]}"; do
        if ! grep -q -- "$p" "$W/err"; then echo "FAIL $name: message lacks '$p'"; cat "$W/err"; fails=$((fails + 1)); return; fi
    done
    if [ -n "$(ls -A "$W/out")" ]; then echo "FAIL $name: output left behind: $(ls -A "$W/out")"; fails=$((fails + 1)); return; fi
    echo "ok   $name: $(cat "$W/err")"
}

UK=$DATA/xarray-data__era5-2mt-2019-03-uk.grib
: > "$W/empty.grib"
echo "plain text, nothing binary" > "$W/text.grib"
head -c 1000000 "$UK" > "$W/half.grib"

expect_error nonexistent "$W/nope.grib" "cannot open" -- --grid native --var 2t --out "$W/out/ds.nc" "$W/nope.grib"
expect_error empty "$W/empty.grib" "empty" -- --grid native --var 2t --out "$W/out/ds.nc" "$W/empty.grib"
expect_error text "$W/text.grib" "no GRIB message" -- --grid native --var 2t --out "$W/out/ds.nc" "$W/text.grib"
expect_error half "$W/half.grib" "message 298" "truncated" -- --grid native --var 2t --out "$W/out/ds.nc" "$W/half.grib"
expect_error corrupted "era5-levels-corrupted.grib" "message 1:" "broken" -- --grid native --var t:850 --out "$W/out/ds.nc" \
    "$DATA/cfgrib__era5-levels-corrupted.grib"
expect_error nc-missing-var "eraint_uvz.nc" "variable q" "not in the file" -- --grid native --var q:500 --out "$W/out/ds.nc" \
    "$DATA/xarray-data__eraint_uvz.nc"
expect_error grib-missing-var "era5-2mt-2019-03-uk.grib" "variable 10u" -- --grid native --var 10u --out "$W/out/ds.nc" "$UK"
expect_error missing-level "test4.nc" "variable t" "no level 300" -- --grid native --var t:300 --out "$W/out/ds.nc" \
    "$DATA/earthkit-data__test4.nc"

cat > "$W/baddims.cdl" <<'CDL'
netcdf baddims {
dimensions: band = 2 ; lat = 2 ; lon = 3 ;
variables:
  float lat(lat) ; lat:units = "degrees_north" ;
  float lon(lon) ; lon:units = "degrees_east" ;
  float sst(band, lat, lon) ; sst:units = "K" ;
data:
  lat = 10, 0 ; lon = 0, 1, 2 ; sst = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 ;
}
CDL
ncgen -o "$W/baddims.nc" "$W/baddims.cdl"
expect_error unexpected-dims "baddims.nc" "variable sst" "unexpected dimension 'band'" -- --grid native --var sst \
    --out "$W/out/ds.nc" "$W/baddims.nc"

cat > "$W/allnan.cdl" <<'CDL'
netcdf allnan {
dimensions: time = 2 ; lat = 2 ; lon = 3 ;
variables:
  double time(time) ; time:units = "hours since 2000-01-01" ;
  float lat(lat) ; lat:units = "degrees_north" ;
  float lon(lon) ; lon:units = "degrees_east" ;
  short t2m(time, lat, lon) ; t2m:_FillValue = -32767s ; t2m:scale_factor = 0.01 ; t2m:units = "K" ;
data:
  time = 0, 6 ; lat = 10, 0 ; lon = 0, 1, 2 ;
  t2m = 1, 2, 3, 4, 5, 6, _, _, _, _, _, _ ;
}
CDL
ncgen -o "$W/allnan.nc" "$W/allnan.cdl"
expect_error all-nan "allnan.nc" "message 2" "variable t2m" "every point is missing" -- --grid native --var t2m \
    --out "$W/out/ds.nc" "$W/allnan.nc"
expect_error different-grids "ens_none.grib" "variable 2t" "different grid" -- --grid native --var 2t --out "$W/out/ds.nc" \
    "$DATA/cfgrib__alternate-scanning.grib" "$DATA/earthkit-data__ens_none.grib"
expect_error unknown-grid "unknown grid 'no_such_grid'" -- --grid no_such_grid --var 2t --out "$W/out/ds.nc" "$UK"
expect_error missing-outdir "$W/out/no/such/dir" "does not exist" -- --grid native --var 2t --out "$W/out/no/such/dir/ds.nc" "$UK"
expect_error unwritable-outdir "/proc" -- --grid native --var 2t --out /proc/ds.nc "$UK"
expect_error reduced-native "reduced_gg.grib" "message 1" "reduced_gg" -- --grid native --var 10u --out "$W/out/ds.nc" \
    "$DATA/cfgrib__reduced_gg.grib"

# --skip-bad: the broken message 1 is reported as a warning and message 2 is ingested
rm -rf "$W/out"; mkdir -p "$W/out"
if "$BIN" ingest --grid native --var t:850 --skip-bad --out "$W/out/ds.nc" "$DATA/cfgrib__era5-levels-corrupted.grib" 2>"$W/err"; then
    if grep -q "message 1: broken" "$W/err" && "$BIN" inspect "$W/out/ds.nc" | grep -q "t850"; then
        echo "ok   skip-bad: message 2 ingested"
    else
        echo "FAIL skip-bad: no warning or no t850"; cat "$W/err"; fails=$((fails + 1))
    fi
else
    echo "FAIL skip-bad: exit $?"; cat "$W/err"; fails=$((fails + 1))
fi
# --skip-bad also leaves an all-missing field out (and the other time in)
if "$BIN" ingest --grid native --var t2m --skip-bad --out "$W/out/nan.nc" "$W/allnan.nc" 2>"$W/err" &&
    grep -q "every point is missing (skipped)" "$W/err"; then
    echo "ok   skip-bad all-NaN"
else
    echo "FAIL skip-bad all-NaN"; cat "$W/err"; fails=$((fails + 1))
fi
# usage errors exit 1
"$BIN" ingest --var 2t --out "$W/out/x.nc" "$UK" 2>/dev/null; rc=$?
[ $rc -eq 1 ] && echo "ok   missing --grid is a usage error" || { echo "FAIL missing --grid: exit $rc"; fails=$((fails + 1)); }
"$BIN" ingest --grid native --var 2t --method cubic --out "$W/out/x.nc" "$UK" 2>/dev/null; rc=$?
[ $rc -eq 1 ] && echo "ok   unknown method is a usage error" || { echo "FAIL unknown method: exit $rc"; fails=$((fails + 1)); }
"$BIN" ingest --help | grep -q "example" || { echo "FAIL --help"; fails=$((fails + 1)); }

[ $fails -eq 0 ] || { echo "$fails failures"; exit 1; }
echo "all ingest error cases pass"
