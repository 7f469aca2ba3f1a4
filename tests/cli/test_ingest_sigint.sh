#!/bin/bash
# SIGINT during ingest: exit 130, and neither the dataset nor any temporary file is left behind.
set -u
BIN=${SMOECAST_BIN:?}
DATA=${SMOECAST_SHARED_DATA:-}
if [ ! -d "$DATA" ]; then
    if [ "${CI:-}" = true ]; then echo "CI=true but shared data is missing"; exit 1; fi
    echo "skipping: shared data absent"; exit 77
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/ingest_sigint.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir "$W/out"
# 20 copies (14880 messages): seconds of work, so the signal arrives mid-ingest
for i in $(seq 20); do cat "$DATA/xarray-data__era5-2mt-2019-03-uk.grib"; done > "$W/big.grib"
"$BIN" ingest --grid native --var 2t --out "$W/out/ds.nc" "$W/big.grib" 2>"$W/err" &
pid=$!
# wait until smoecast has installed its SIGINT handler (background jobs start with SIGINT ignored,
# so an early signal would be lost): bit 2 of SigCgt in /proc/PID/status
for _ in $(seq 600); do
    cgt=$(awk '/^SigCgt:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    [ -n "$cgt" ] && [ $((0x$cgt & 2)) -ne 0 ] && break
    sleep 0.05
done
kill -INT $pid
wait $pid
rc=$?
cat "$W/err"
if [ $rc -ne 130 ]; then echo "FAIL: exit $rc after SIGINT (want 130)"; exit 1; fi
if [ -n "$(ls -A "$W/out")" ]; then echo "FAIL: left behind: $(ls -A "$W/out")"; exit 1; fi
grep -q "interrupted" "$W/err" || { echo "FAIL: no 'interrupted' message"; exit 1; }
echo "SIGINT: exit 130, no dataset and no temporary file left"
