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
# Many copies of a GRIB file (seconds of work). The process is frozen (SIGSTOP) as soon as its
# SIGINT handler is installed, signalled, and thawed, so the signal arrives mid-ingest however
# loaded the machine is; if it still finished first, retry with twice the input.
for i in $(seq 20); do cat "$DATA/xarray-data__era5-2mt-2019-03-uk.grib"; done > "$W/big.grib"
rc=
for attempt in 1 2 3; do
    "$BIN" ingest --grid native --var 2t --out "$W/out/ds.nc" "$W/big.grib" 2>"$W/err" &
    pid=$!
    # background jobs start with SIGINT ignored, so an early signal would be lost: wait for the
    # handler (bit 2 of SigCgt in /proc/PID/status)
    for _ in $(seq 2000); do
        cgt=$(awk '/^SigCgt:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
        [ -z "$cgt" ] && break
        [ $((0x$cgt & 2)) -ne 0 ] && kill -STOP $pid 2>/dev/null && break
        sleep 0.01
    done
    if kill -INT $pid 2>/dev/null; then
        kill -CONT $pid
        wait $pid
        rc=$?
        break
    fi
    wait $pid
    echo "attempt $attempt: ingest finished before the signal; doubling the input"
    rm -f "$W/out/"*
    cat "$W/big.grib" "$W/big.grib" > "$W/big2.grib" && mv "$W/big2.grib" "$W/big.grib"
done
cat "$W/err"
if [ $rc -ne 130 ]; then echo "FAIL: exit $rc after SIGINT (want 130)"; exit 1; fi
if [ -n "$(ls -A "$W/out")" ]; then echo "FAIL: left behind: $(ls -A "$W/out")"; exit 1; fi
grep -q "interrupted" "$W/err" || { echo "FAIL: no 'interrupted' message"; exit 1; }
echo "SIGINT: exit 130, no dataset and no temporary file left"
