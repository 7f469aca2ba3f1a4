#!/bin/bash
# Streaming ingest: peak RSS stays under 100 MB and does not grow with the number of messages
# (the ERA5 UK file and ten concatenated copies of it); the copies' exact duplicates are dropped
# with a warning; a conflicting duplicate is an error naming both messages; messages in reverse
# order give the same, time-sorted dataset; a field given at one time only is stored as static;
# the inputs' sha256 in the dataset match sha256sum.
set -u
BIN=${SMOECAST_BIN:?}
DATA=${SMOECAST_SHARED_DATA:-}
if [ ! -d "$DATA" ]; then
    if [ "${CI:-}" = true ]; then echo "CI=true but shared data is missing"; exit 1; fi
    echo "skipping: shared data absent"; exit 77
fi
UK=$DATA/xarray-data__era5-2mt-2019-03-uk.grib
W=$(mktemp -d "${TMPDIR:-/tmp}/ingest_stream.XXXXXX")
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

for i in 1 2 3 4 5 6 7 8 9 10; do cat "$UK"; done > "$W/uk10.grib"

/usr/bin/time -f %M -o "$W/rss1" "$BIN" -q ingest --grid native --var 2t --out "$W/one.nc" "$UK" 2>"$W/err1" || fail "ingest of one copy"
/usr/bin/time -f %M -o "$W/rss10" "$BIN" ingest --grid native --var 2t --out "$W/ten.nc" "$W/uk10.grib" 2>"$W/err10" ||
    { fail "ingest of ten copies"; cat "$W/err10"; }
rss1=$(tail -1 "$W/rss1"); rss10=$(tail -1 "$W/rss10")
echo "peak RSS: one copy ${rss1} kB, ten copies ${rss10} kB"
if [ "${SMOECAST_SANITIZE:-0}" = 1 ]; then
    echo "(sanitizer build: RSS limits not checked, ASan's shadow memory dominates)"
else
    [ "$rss10" -lt 102400 ] || fail "ten copies: peak RSS ${rss10} kB >= 100 MB"
    [ "$rss10" -lt $((rss1 + 8192)) ] || fail "peak RSS grows with the number of messages (${rss1} -> ${rss10} kB)"
fi
grep -q "exact duplicate of .* message 1 dropped" "$W/err10" || fail "no duplicate warning"
grep -q "6696 exact duplicate fields dropped in total" "$W/err10" || { fail "duplicate count"; cat "$W/err10"; }
[ "$(grep -c "warning" "$W/err10")" -le 5 ] || fail "duplicate warnings are not summarised"

# identical datasets (values, times) from one copy, ten copies and the reversed message order
/usr/bin/python3 - "$UK" "$W/rev.grib" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
msgs, off = [], b.find(b"GRIB")
while off >= 0:
    n = int.from_bytes(b[off + 4:off + 7], "big")  # GRIB1 total length (messages are padded apart)
    assert n > 8 and b[off + n - 4:off + n] == b"7777", "bad GRIB1 message"
    msgs.append(b[off:off + n])
    off = b.find(b"GRIB", off + n)
open(sys.argv[2], "wb").write(b"".join(reversed(msgs)))
PY
"$BIN" -q ingest --grid native --var 2t --out "$W/rev.nc" "$W/rev.grib" 2>/dev/null || fail "ingest of reversed messages"
/usr/bin/python3 - "$W/one.nc" "$W/ten.nc" "$W/rev.nc" <<'PY' || fail "datasets differ"
import sys, netCDF4, numpy as np
ds = [netCDF4.Dataset(p) for p in sys.argv[1:]]
t0 = ds[0]["time"][:]
assert len(t0) == 744 and (np.diff(t0) == 1).all(), "time axis not sorted hourly"
for d in ds[1:]:
    assert (d["time"][:] == t0).all(), "time axes differ"
    assert np.array_equal(d["2t"][:], ds[0]["2t"][:]), "values differ"
print("one copy, ten copies and reversed order give identical datasets (744 hourly times)")
PY

# provenance: the inputs' sha256 (hashed in a second thread during the pass) as sha256sum prints them
"$BIN" -q ingest --grid native --var 2t --out "$W/two.nc" "$UK" "$W/rev.grib" 2>/dev/null || fail "ingest of two inputs"
sha256sum "$UK" "$W/rev.grib" > "$W/sums"
/usr/bin/python3 - "$W/two.nc" "$W/sums" <<'PY' || fail "smoecast_inputs does not match sha256sum"
import sys, netCDF4
ds = netCDF4.Dataset(sys.argv[1])
got = ds.getncattr("smoecast_inputs").strip()
want = open(sys.argv[2]).read().strip()
assert got == want, f"smoecast_inputs {got!r} != sha256sum {want!r}"
# the reader describes (name, units, typeOfLevel) only the fields ingest keeps
v = ds["2t"]
assert v.units == "K" and v.long_name == "2 metre temperature", (v.units, v.long_name)
print("smoecast_inputs matches sha256sum for both inputs; 2t described (K, 2 metre temperature)")
PY

# selection by paramId, and by paramId and shortName together (the reader then evaluates only the
# concept the selectors compare for every message, the description for the fields kept)
"$BIN" -q ingest --grid native --var 167 --out "$W/pid.nc" "$UK" 2>/dev/null || fail "ingest --var 167"
"$BIN" -q ingest --grid native --var 167 --var x=2t --out "$W/mix.nc" "$UK" 2>/dev/null || fail "ingest --var 167 --var x=2t"
/usr/bin/python3 - "$W/one.nc" "$W/pid.nc" "$W/mix.nc" <<'PY' || fail "selection by paramId differs"
import sys, netCDF4, numpy as np
one, pid, mix = (netCDF4.Dataset(p) for p in sys.argv[1:])
ref = one["2t"][:]
for d, names in ((pid, ["167"]), (mix, ["167", "x"])):
    for n in names:
        v = d[n]
        assert np.array_equal(v[:], ref), n + " values"
        assert v.units == "K" and v.long_name == "2 metre temperature" and v.standard_name == "air_temperature", (n, v.units, v.long_name)
print("--var 167 and --var 167 --var x=2t give 2t's values and description")
PY

# a conflicting duplicate: one message of a copy with its values scaled
grib_set -s scaleValuesBy=1.01 -w dataDate=20190315,dataTime=1200 "$UK" "$W/mod.grib"
"$BIN" ingest --grid native --var 2t --out "$W/conf.nc" "$UK" "$W/mod.grib" 2>"$W/errc"; rc=$?
[ $rc -eq 2 ] || fail "conflicting duplicate: exit $rc"
grep -q "mod.grib: message 349: variable 2t at 2019-03-15T12:00: conflicting duplicate of .*message 349" "$W/errc" ||
    { fail "conflicting duplicate message"; cat "$W/errc"; }
[ ! -e "$W/conf.nc" ] || fail "output left after a conflicting duplicate"
ls -A "$W" | grep -q "^\.conf" && fail "temporary files left behind"

# a field given once (a land-sea mask retrieved at one time) beside a time series is static
grib_copy -w count=1 "$UK" "$W/first.grib"
grib_set -s paramId=172 "$W/first.grib" "$W/lsm.grib"
if "$BIN" ingest --grid native --var 2t --var lsm --categorical lsm --out "$W/inv.nc" "$UK" "$W/lsm.grib" 2>"$W/erri" &&
    grep -q "variable lsm: given at a single time" "$W/erri" &&
    /usr/bin/python3 -c "
import sys, netCDF4
d = netCDF4.Dataset(sys.argv[1])
assert d['lsm'].dimensions == ('latitude', 'longitude') and len(d['time']) == 744
" "$W/inv.nc"; then echo "single-time lsm stored as a static field"; else fail "single-time field not static"; cat "$W/erri"; fi

[ $fails -eq 0 ] || { echo "$fails failures"; exit 1; }
echo "streaming ingest: bounded memory, duplicates and ordering handled"
