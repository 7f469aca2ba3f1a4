#!/usr/bin/env bash
# smoecast synth: --help, bad arguments (exit 1), unwritable output (exit 2), and small runs of the
# three data sets checked with the tools a user would run (ncdump, grib_ls, cdo, xarray).
set -u
BIN=${SMOECAST_BIN:?SMOECAST_BIN not set}
T=$(mktemp -d "$PWD/synth_cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_status() { # expected command...
    local want=$1; shift
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    [ "$got" = "$want" ] || { cat "$T/out" "$T/err" >&2; fail "'$*' exited $got, expected $want"; }
}

# --help: usage, options and an example on stdout
expect_status 0 "$BIN" synth --help
grep -q '^usage: smoecast synth' "$T/out" || fail "--help has no usage line"
grep -q -- '--runs-train' "$T/out" || fail "--help does not list --runs-train"
grep -q 'smoecast synth toy-atmosphere --out' "$T/out" || fail "--help has no example"

# bad arguments -> 1
expect_status 1 "$BIN" synth
expect_status 1 "$BIN" synth weather --out "$T/x"
grep -q "unknown data set 'weather'" "$T/err" || fail "unknown data set not named"
expect_status 1 "$BIN" synth heat
expect_status 1 "$BIN" synth heat --out "$T/x" --bogus
expect_status 1 "$BIN" synth heat --out "$T/x" --seed abc
expect_status 1 "$BIN" synth heat --out "$T/x" --seed -3
expect_status 1 "$BIN" synth toy-atmosphere --out "$T/x" --years 0
expect_status 1 "$BIN" synth ensemble --out "$T/x" --members 1
expect_status 1 "$BIN" synth heat --out "$T/x" --runs-train
expect_status 1 "$BIN" synth heat toy-atmosphere --out "$T/x"
expect_status 1 "$BIN" synth toy-atmosphere --out "$T/x" --runs-train 3
grep -q -- "--runs-train does not apply to the toy-atmosphere" "$T/err" || fail "inapplicable option not named"
expect_status 1 "$BIN" synth heat --out "$T/x" --emos-truth
[ ! -e "$T/x" ] || fail "a failed argument check created the output directory"

# unwritable output -> 2
touch "$T/file"
expect_status 2 "$BIN" synth heat --out "$T/file" --runs-train 1 --runs-val 0 --runs-test 0 --steps 1
expect_status 2 "$BIN" synth heat --out /proc/smoecast_synth_test --runs-train 1 --runs-val 0 --runs-test 0 --steps 1
expect_status 2 "$BIN" synth toy-atmosphere --out "$T/no/such/parent" --days 1

# heat: deterministic, seed-dependent, expected layout
H="--runs-train 2 --runs-val 1 --runs-test 1 --steps 5 --size 16"
expect_status 0 "$BIN" synth heat --out "$T/h1" --seed 4 $H
expect_status 0 "$BIN" synth heat --out "$T/h2" --seed 4 $H
expect_status 0 "$BIN" synth heat --out "$T/h3" --seed 5 $H
if command -v ncdump >/dev/null; then
    ncdump -h "$T/h1/heat.nc" >"$T/hdr" || fail "ncdump cannot read heat.nc"
    grep -q 'float temperature(run, step, y, x)' "$T/hdr" || fail "heat.nc: temperature(run, step, y, x) missing"
    grep -q 'int region(y, x)' "$T/hdr" || fail "heat.nc: region(y, x) missing"
    grep -q 'float diffusivity(y, x)' "$T/hdr" || fail "heat.nc: diffusivity(y, x) missing"
    grep -q 'runs_train = 2' "$T/hdr" || fail "heat.nc: runs_train attribute"
    grep -q 'flag_meanings' "$T/hdr" || fail "heat.nc: region flag_meanings"
    ncdump -v temperature "$T/h1/heat.nc" | sed 1d >"$T/d1"
    ncdump -v temperature "$T/h2/heat.nc" | sed 1d >"$T/d2"
    ncdump -v temperature "$T/h3/heat.nc" | sed 1d >"$T/d3"
    cmp -s "$T/d1" "$T/d2" || fail "heat: same seed gave different data"
    cmp -s "$T/d1" "$T/d3" && fail "heat: different seeds gave the same data"
fi

# toy-atmosphere (10 days): NetCDF + GRIB2, byte-identical GRIB2 for the same seed
expect_status 0 "$BIN" synth toy-atmosphere --out "$T/a1" --days 10 --seed 2
expect_status 0 "$BIN" synth toy-atmosphere --out "$T/a2" --days 10 --seed 2
[ -s "$T/a1/toy-atmosphere.nc" ] && [ -s "$T/a1/toy-atmosphere.grib2" ] || fail "toy-atmosphere files missing"
cmp -s "$T/a1/toy-atmosphere.grib2" "$T/a2/toy-atmosphere.grib2" || fail "toy-atmosphere GRIB2 differs for the same seed"
ls -a "$T/a1" | grep -q '\.tmp\.' && fail "temporary files left behind"
if command -v grib_count >/dev/null; then
    [ "$(grib_count "$T/a1/toy-atmosphere.grib2")" = 121 ] || fail "toy-atmosphere.grib2: expected 1 + 3 * 40 messages"
    grib_ls -p shortName,paramId,typeOfLevel,level,dataDate,dataTime -w count=2 "$T/a1/toy-atmosphere.grib2" >"$T/gl"
    grep -Eq 'z +129 +isobaricInhPa +500 +20000101 +0' "$T/gl" || { cat "$T/gl"; fail "toy-atmosphere.grib2: message 2 keys"; }
fi
if command -v ncdump >/dev/null; then
    ncdump -h "$T/a1/toy-atmosphere.nc" >"$T/hdr"
    grep -q 'float z500(time, latitude, longitude)' "$T/hdr" || fail "toy-atmosphere.nc: z500 dims"
    grep -q 'float lsm(latitude, longitude)' "$T/hdr" || fail "toy-atmosphere.nc: lsm dims"
    grep -q 'time:units = "hours since 1970-01-01 00:00:00"' "$T/hdr" || fail "toy-atmosphere.nc: time units"
    grep -q 'time:calendar = "proleptic_gregorian"' "$T/hdr" || fail "toy-atmosphere.nc: calendar"
    grep -q ':Conventions = "CF-1.8"' "$T/hdr" || fail "toy-atmosphere.nc: Conventions"
fi
if command -v cdo >/dev/null; then
    for f in "$T/a1/toy-atmosphere.nc" "$T/a1/toy-atmosphere.grib2"; do
        cdo -s sinfon "$f" 2>/dev/null | grep -q 'lonlat' || fail "cdo sinfon does not report a lonlat grid for $f"
    done
fi

# very short periods (fewer times than a chunk)
expect_status 0 "$BIN" synth toy-atmosphere --out "$T/short" --days 1
expect_status 1 "$BIN" synth ensemble --out "$T/short" --days 2

# ensemble (30 days, 3 members, no climate)
expect_status 0 "$BIN" synth ensemble --out "$T/e" --days 30 --clim-years 0 --members 3 --emos-truth
for f in ensemble.nc ensemble.grib2 ensemble_truth.nc ensemble_truth.grib2; do
    [ -s "$T/e/$f" ] || fail "ensemble: $f missing"
done
if command -v grib_ls >/dev/null; then
    grib_ls -p number,typeOfEnsembleForecast,numberOfForecastsInEnsemble,step,productDefinitionTemplateNumber \
        -w count=2 "$T/e/ensemble.grib2" >"$T/gl"
    grep -Eq '^1 +3 +3 +48 +1' "$T/gl" || { cat "$T/gl"; fail "ensemble.grib2: ensemble keys of message 2"; }
fi
if command -v ncdump >/dev/null; then
    ncdump -h "$T/e/ensemble.nc" >"$T/hdr"
    grep -q 'float t2m(time, realization, latitude, longitude)' "$T/hdr" || fail "ensemble.nc: t2m dims"
    grep -q 'realization:standard_name = "realization"' "$T/hdr" || fail "ensemble.nc: realization"
    ncdump -h "$T/e/ensemble_truth.nc" | grep -q 'emos_t2m_b = 0.95' || fail "ensemble_truth.nc: EMOS attributes"
fi
if command -v cdo >/dev/null; then
    cdo -s sinfon "$T/e/ensemble.grib2" 2>/dev/null | grep -q 'lonlat' || fail "cdo: ensemble.grib2 grid"
fi

# xarray decodes every time axis without warnings
if /usr/bin/python3 -c 'import xarray, netCDF4' 2>/dev/null; then
    /usr/bin/python3 - "$T" <<'EOF' || fail "xarray could not open the files cleanly"
import sys, netCDF4, warnings, xarray as xr
warnings.simplefilter("error")
d = sys.argv[1]
for f in ["a1/toy-atmosphere.nc", "e/ensemble.nc", "e/ensemble_truth.nc", "h1/heat.nc"]:
    ds = xr.open_dataset(f"{d}/{f}")
    if "time" in ds.coords:
        assert str(ds.time.dtype).startswith("datetime64"), f
    ds.close()
ds = xr.open_dataset(f"{d}/a1/toy-atmosphere.nc")
assert str(ds.time.values[0]).startswith("2000-01-01T00"), ds.time.values[0]
assert ds.sizes["time"] == 40 and ds.z500.dims == ("time", "latitude", "longitude")
EOF
fi
echo "test_synth.sh: all checks passed"
