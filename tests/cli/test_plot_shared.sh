# smoecast plot on the real sample files: the land-sea mask (integer categories without
# flag_values, labels from the title), ERA-Interim z500 (packed with a negative scale factor,
# global, Robinson). Skips when ../shared/data is absent (fails under CI=true).
. "$(dirname "$0")/lib.sh"
[ "${SMOECAST_HAVE_GMT:-1}" = "0" ] && { echo "SKIP: built without GMT (test_plot.sh checks the message)"; exit 77; }
need_shared geocat-datafiles__landsea.nc
need_shared xarray-data__eraint_uvz.nc
need_shared ncep-reanalysis__air-2013.nc
. "$SRC/tests/cli/plot_lib.sh"
WORK="$TMP/work"; mkdir -p "$WORK" "$TMP/gmt_tmp"
cd "$WORK" || exit 1
export TMPDIR="$TMP/gmt_tmp"

# ---------------------------------------------------------------- shared data
expect_exit 0 "wrote" -- "$BIN" plot "$SHARED/geocat-datafiles__landsea.nc" --var LSMASK --out "$TMP/landsea.png"
check_png "$TMP/landsea.png" "$W"
# five categories labelled from the title "0=Ocean, 1=Land, ..."; map centre (0 E, 0 N) is ocean
$PY "$CHECK" "$TMP/landsea.png" has 31/119/180 255/127/14 44/160/44 214/39/40 148/103/189 >/dev/null \
  && ok "land-sea mask: five category colours" || fail "land-sea mask lacks a category colour"
expect_colours "$TMP/landsea.png" 150 "land-sea 0E 0N (Gulf of Guinea):$BLUE:0.5 0.5" "land-sea Sahara:$ORANGE:0.53 0.37" \
  "land-sea Brazil:$ORANGE:0.35 0.57" "land-sea Pacific:$BLUE:0.15 0.5"
expect_exit 0 "wrote" -- "$BIN" plot "$SHARED/xarray-data__eraint_uvz.nc" --var z --level 500 --time 0 --width 20 --dpi 100 --out "$TMP/z500.png"
check_png "$TMP/z500.png" "$(px 20 100)"
{ read -r er eg eb; read -r pr pg pb; } < <(map_colours "$TMP/z500.png" 100 0.5 0.5 0.5 0.08)
[ "$eg" -gt 170 ] && [ "$eb" -lt 120 ] && [ "$pg" -lt 110 ] && ok "z500: high at the equator ($er $eg $eb), low near the pole ($pr $pg $pb)" \
  || fail "z500 colours: equator $er $eg $eb, pole $pr $pg $pb"
bad 2 "eraint_uvz.nc: variable 'z': level 300 is not in the file \('level'\); it has 3 values: 200 .. 850" "$TMP/b7.png" \
  "$SHARED/xarray-data__eraint_uvz.nc" --var z --level 300

# regional grid (NCEP North America, Mercator), time by ISO string; a time not in the file
expect_exit 0 "wrote" -- "$BIN" plot "$SHARED/ncep-reanalysis__air-2013.nc" --var air --time 2013-07-01T12:00 --out "$TMP/air.png"
check_png "$TMP/air.png" "$W"
bad 2 "air-2013.nc: variable 'air': time 2014-01-01T00:00 is not in the file; it has 1460 times: 2013-01-01T00:00 .. 2013-12-31T18:00" \
  "$TMP/b8.png" "$SHARED/ncep-reanalysis__air-2013.nc" --var air --time 2014-01-01T00:00

left=$(ls -A "$WORK"); [ -z "$left" ] && ok "working directory untouched" || fail "left in cwd: $left"
left=$(ls -A "$TMP/gmt_tmp"); [ -z "$left" ] && ok "temporary directory removed" || fail "left in TMPDIR: $left"
finish
