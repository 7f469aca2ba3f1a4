# Shared part of tests/cli/test_ingest_shared_{grib,nc}.sh (sourced): acceptance on ../shared/data.
# Every file ingests (or gives the specified error), and with --grid native the dataset reproduces
# ecCodes' grib_get_data / the CF-decoded NetCDF values at ALL points of every selected field
# (tests/cli/ingest_compare.py).
set -u
BIN=${SMOECAST_BIN:?}
DATA=${SMOECAST_SHARED_DATA:-}
SRC=${SMOECAST_SOURCE_DIR:?}
if [ ! -d "$DATA" ]; then
    if [ "${CI:-}" = true ]; then echo "CI=true but shared data is missing"; exit 1; fi
    echo "skipping: shared data absent"; exit 77
fi
PY=/usr/bin/python3
CMP="$SRC/tests/cli/ingest_compare.py"
W=$(mktemp -d "${TMPDIR:-/tmp}/ingest_shared.XXXXXX")
trap 'rm -rf "$W"' EXIT
fails=0
n=0

# check KIND FILE "VAR:SHORT[:LEVEL] ..." [extra ingest args]
check() {
    local kind=$1 file=$2 specs=$3; shift 3
    local args=() out="$W/ds$n.nc"
    n=$((n + 1))
    for s in $specs; do
        IFS=: read -r var short level <<<"$s"
        args+=(--var "$short${level:+:$level}")
    done
    if ! "$BIN" -q ingest --grid native "${args[@]}" "$@" --out "$out" "$DATA/$file" 2>"$W/err"; then
        echo "FAIL $file: ingest failed"; cat "$W/err"; fails=$((fails + 1)); return
    fi
    # shellcheck disable=SC2086
    if ! $PY "$CMP" "$kind" "$DATA/$file" "$out" $specs; then
        echo "FAIL $file: values differ"; fails=$((fails + 1))
    fi
    rm -f "$out"
}

finish() {
    [ $fails -eq 0 ] || { echo "$fails failures"; exit 1; }
    echo "all checked shared files ingest and match their references"
}
