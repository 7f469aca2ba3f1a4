# Shared helpers for the shell tests (sourced). Environment comes from tests/CMakeLists.txt.
set -u
BIN=${SMOECAST_BIN:?SMOECAST_BIN not set}
SRC=${SMOECAST_SOURCE_DIR:?}
SHARED=${SMOECAST_SHARED_DATA:-$SRC/../shared/data}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/smoecast-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
FAILS=0

fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }

# skip_or_fail WHY: exit 77 (skip) normally, but fail under CI=true.
skip_or_fail() {
  if [ "${CI:-}" = "true" ]; then echo "FAIL (CI=true forbids skipping): $*"; exit 1; fi
  echo "SKIP: $*"; exit 77
}
need_shared() { [ -r "$SHARED/$1" ] || skip_or_fail "shared data $1 missing"; }
need_tool() { command -v "$1" >/dev/null 2>&1 || skip_or_fail "tool $1 missing"; }

# expect_exit CODE PATTERN -- CMD...: runs CMD, checks its exit code and that stderr+stdout match PATTERN.
expect_exit() {
  local code=$1 pattern=$2; shift 3
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$code" ]; then fail "'$*' exited $rc, expected $code; output: $out"; return; fi
  if ! grep -qE -- "$pattern" <<<"$out"; then fail "'$*' output lacks /$pattern/: $out"; return; fi
  ok "'$*' -> $rc"
}

finish() {
  echo "$FAILS failed"
  [ "$FAILS" -eq 0 ]
  exit $?
}

# toy_dataset SEED: one year of the synthetic toy atmosphere (seed SEED) ingested into ./ds.nc
# (z500, t2m and the categorical lsm), the dataset most pipeline tests train on.
toy_dataset() {
  "$BIN" synth toy-atmosphere --out data --years 1 --seed "$1" >/dev/null 2>&1 || { fail "synth"; finish; }
  "$BIN" ingest --grid native --var z500 --var t2m --var lsm --categorical lsm --out ds.nc data/toy-atmosphere.nc >/dev/null 2>&1 \
    || { fail "ingest"; finish; }
}

# toy_t2m_dataset DAYS SEED: DAYS days of the toy atmosphere (seed SEED), only t2m ingested into
# ./ds.nc, for the tests of single-variable forecast models.
toy_t2m_dataset() {
  "$BIN" synth toy-atmosphere --out data --days "$1" --seed "$2" >/dev/null 2>&1 || { fail "synth"; finish; }
  "$BIN" ingest --grid native --var t2m --out ds.nc data/toy-atmosphere.nc >/dev/null 2>&1 || { fail "ingest"; finish; }
}
