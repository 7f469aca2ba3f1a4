# smoecast plot: PNG maps through GMT. Synthetic files (written here with ncgen) cover an
# integer expert map with flag_values on the wb5625 grid (32x64, Robinson) and y/x rasters;
# test_plot_shared.sh adds the real files (land-sea mask, ERA-Interim z500).
# Checks: exact pixel size (IHDR read here with od), non-blank (grey-level variance), the
# category colours in the right places (north up, east right), bad input with one-line errors
# and no PNG or temporary file left behind, nothing written to the working directory.
. "$(dirname "$0")/lib.sh"


if [ "${SMOECAST_HAVE_GMT:-1}" = "0" ]; then
  expect_exit 0 "usage: smoecast plot" -- "$BIN" plot --help
  expect_exit 1 "built without GMT support" -- "$BIN" plot x.nc --var z --out "$TMP/x.png"
  [ ! -e "$TMP/x.png" ] && ok "no PNG without GMT" || fail "PNG written without GMT"
  finish
fi
need_tool ncgen
. "$SRC/tests/cli/plot_lib.sh"

WORK="$TMP/work"; mkdir -p "$WORK" "$TMP/gmt_tmp"
cd "$WORK" || exit 1
export TMPDIR="$TMP/gmt_tmp"

# ---------------------------------------------------------------- synthetic inputs
{
  echo 'netcdf experts { dimensions: time = 2 ; latitude = 32 ; longitude = 64 ;'
  echo 'variables:'
  echo ' double time(time) ; time:units = "hours since 2000-01-01 00:00:00" ; time:calendar = "standard" ; time:standard_name = "time" ;'
  echo ' double latitude(latitude) ; latitude:units = "degrees_north" ; latitude:standard_name = "latitude" ;'
  echo ' double longitude(longitude) ; longitude:units = "degrees_east" ; longitude:standard_name = "longitude" ;'
  echo ' int expert_map(time, latitude, longitude) ; expert_map:long_name = "expert in charge" ;'
  echo '   expert_map:flag_values = 0, 1, 2, 3 ; expert_map:flag_meanings = "expert_0 expert_1 expert_2 expert_3" ;'
  echo ' float lat_profile(latitude) ;'
  echo 'data:'
  echo ' time = 0, 6 ;'
  awk 'BEGIN{printf " latitude = "; for(j=0;j<32;j++) printf "%s%.4f", (j?", ":""), 87.1875-5.625*j; print " ;"}'
  awk 'BEGIN{printf " longitude = "; for(i=0;i<64;i++) printf "%s%.4f", (i?", ":""), 5.625*i; print " ;"}'
  # time 0: expert 0 east (0..180 E) / 1 west, +2 in the southern hemisphere; time 1: east/west swapped
  awk 'BEGIN{printf " expert_map = "; n=0; for(t=0;t<2;t++) for(j=0;j<32;j++) for(i=0;i<64;i++){ e=(i<32)?0:1; if(t==1) e=1-e; if(j>=16) e+=2; printf "%s%d", (n++?", ":""), e}; print " ;"}'
  awk 'BEGIN{printf " lat_profile = "; for(j=0;j<32;j++) printf "%s%d", (j?", ":""), j; print " ;"}'
  echo '}'
} > experts.cdl
{
  echo 'netcdf raster { dimensions: y = 64 ; x = 64 ;'
  echo 'variables:'
  echo ' float temperature(y, x) ; temperature:long_name = "heat task temperature" ; temperature:units = "1" ;'
  echo ' float truth(y, x) ; truth:units = "1" ;'
  echo ' int region(y, x) ; region:flag_values = 0, 1, 2, 3 ; region:flag_meanings = "region_0 region_1 region_2 region_3" ;'
  echo 'data:'
  awk 'BEGIN{printf " temperature = "; n=0; for(y=0;y<64;y++) for(x=0;x<64;x++) printf "%s%.2f", (n++?", ":""), x; print " ;"}'
  awk 'BEGIN{printf " truth = "; n=0; for(y=0;y<64;y++) for(x=0;x<64;x++) printf "%s%.2f", (n++?", ":""), 63-x; print " ;"}'
  awk 'BEGIN{printf " region = "; n=0; for(y=0;y<64;y++) for(x=0;x<64;x++) printf "%s%d", (n++?", ":""), (x>=32)+2*(y>=32); print " ;"}'
  echo '}'
} > raster.cdl
# the ERA5 UK domain (lat 58 -> 50, lon -10 -> 2 at 0.25 deg): t2m rising to the south-east and
# 12 experts in 3 x 4 blocks (more than 8 categories: vertical legend)
{
  echo 'netcdf uk { dimensions: latitude = 33 ; longitude = 49 ;'
  echo 'variables:'
  echo ' float latitude(latitude) ; latitude:units = "degrees_north" ;'
  echo ' float longitude(longitude) ; longitude:units = "degrees_east" ;'
  echo ' float t2m(latitude, longitude) ; t2m:units = "K" ; t2m:long_name = "2 metre temperature" ;'
  echo ' int experts(latitude, longitude) ; experts:flag_values = 0,1,2,3,4,5,6,7,8,9,10,11 ;'
  echo '   experts:flag_meanings = "expert_0 expert_1 expert_2 expert_3 expert_4 expert_5 expert_6 expert_7 expert_8 expert_9 expert_10 expert_11" ;'
  echo 'data:'
  awk 'BEGIN{printf " latitude = "; for(j=0;j<33;j++) printf "%s%.2f", (j?", ":""), 58-0.25*j; print " ;"}'
  awk 'BEGIN{printf " longitude = "; for(i=0;i<49;i++) printf "%s%.2f", (i?", ":""), -10+0.25*i; print " ;"}'
  awk 'BEGIN{printf " t2m = "; n=0; for(j=0;j<33;j++) for(i=0;i<49;i++) printf "%s%.2f", (n++?", ":""), 281+0.125*j+0.1*i; print " ;"}'
  awk 'BEGIN{printf " experts = "; n=0; for(j=0;j<33;j++) for(i=0;i<49;i++) printf "%s%d", (n++?", ":""), int(i/13)+4*int(j/11); print " ;"}'
  echo '}'
} > uk.cdl
ncgen -o "$TMP/experts.nc" experts.cdl && ncgen -o "$TMP/raster.nc" raster.cdl && ncgen -o "$TMP/uk.nc" uk.cdl || { fail "ncgen"; finish; }
rm -f experts.cdl raster.cdl uk.cdl

# ---------------------------------------------------------------- expert map (categorical, global)
expect_exit 0 "wrote" -- "$BIN" plot "$TMP/experts.nc" --var expert_map --out "$TMP/experts.png"
check_png "$TMP/experts.png" "$W"
$PY "$CHECK" "$TMP/experts.png" has 31/119/180 255/127/14 44/160/44 214/39/40 >/dev/null \
  && ok "expert map: one Tableau colour per category" || fail "expert map lacks a category colour"
# Robinson centred near 0 E: NE quadrant = expert 0, NW = 1, SE = 2, SW = 3
# (sample points away from coastlines: 100E 35N, 100W 40N, 80E 30S, 120W 30S)
expect_colours "$TMP/experts.png" 150 "expert map NE:$BLUE:0.754 0.283" "expert map NW:$ORANGE:0.237 0.252" \
  "expert map SE:$GREEN:0.706 0.686" "expert map SW:$RED:0.172 0.686"
# second time, by ISO time: east and west swapped
# smaller pages (10 cm at 100 dpi) for the remaining cases keep the test fast
S=(--width 10 --dpi 100); WS=$(px 10 100)
expect_exit 0 "wrote" -- "$BIN" plot "$TMP/experts.nc" --var expert_map --time 2000-01-01T06:00 "${S[@]}" --out "$TMP/experts_t1.png"
expect_colours "$TMP/experts_t1.png" 100 "expert map t=06Z NE:$ORANGE:0.754 0.283" "expert map t=06Z NW:$BLUE:0.237 0.252"
expect_exit 0 "wrote" -- "$BIN" plot "$TMP/experts.nc" --var expert_map --time 1 "${S[@]}" --out "$TMP/experts_i1.png"
cmp -s "$TMP/experts_t1.png" "$TMP/experts_i1.png" && ok "--time 1 == --time 2000-01-01T06:00" || fail "--time index and ISO time differ"

# ---------------------------------------------------------------- limited area (Mercator)
expect_exit 0 "wrote" -- "$BIN" plot "$TMP/uk.nc" --var t2m "${S[@]}" --out "$TMP/uk.png"
check_png "$TMP/uk.png" "$WS"
{ read -r nr ng nb; read -r sr sg sb; } < <(map_colours "$TMP/uk.png" 100 0.03 0.03 0.97 0.97)
[ "$ng" -lt 60 ] && [ "$sg" -gt 180 ] && [ "$sb" -lt 100 ] && ok "UK t2m: north-west dark ($nr $ng $nb), south-east yellow ($sr $sg $sb)" \
  || fail "UK t2m colours: north-west $nr $ng $nb, south-east $sr $sg $sb"
expect_exit 0 "wrote" -- "$BIN" plot "$TMP/uk.nc" --var experts "${S[@]}" --out "$TMP/uk_experts.png"
# --no-coastlines: same map without GSHHG (the UK coast is a long black line at this scale)
expect_exit 0 "wrote" -- "$BIN" plot "$TMP/uk.nc" --var experts --no-coastlines "${S[@]}" --out "$TMP/uk_experts_nocoast.png"
check_png "$TMP/uk_experts_nocoast.png" "$WS"
dark_coast=$($PY "$CHECK" "$TMP/uk_experts.png" dark); dark_plain=$($PY "$CHECK" "$TMP/uk_experts_nocoast.png" dark)
[ "$dark_plain" -lt $((dark_coast * 3 / 4)) ] && ok "--no-coastlines drops the coastline ($dark_coast -> $dark_plain dark pixels)" \
  || fail "--no-coastlines: $dark_coast dark pixels with coastlines, $dark_plain without"
check_png "$TMP/uk_experts.png" "$WS"
$PY "$CHECK" "$TMP/uk_experts.png" has 31/119/180 255/127/14 44/160/44 214/39/40 148/103/189 140/86/75 227/119/194 \
  127/127/127 188/189/34 23/190/207 174/199/232 255/187/120 >/dev/null \
  && ok "12 experts: 12 distinct colours" || fail "12 experts: a category colour is missing"

# ---------------------------------------------------------------- y/x rasters: exact size with --width/--height
expect_exit 0 "wrote" -- "$BIN" plot "$TMP/raster.nc" --var region --width 12 --height 10 --dpi 100 --out "$TMP/region_small.png"
check_png "$TMP/region_small.png" "$(px 12 100)" "$(px 10 100)"
for wd in "13.3 97" "7.7 133"; do # odd sizes: still exact (IHDR only)
  set -- $wd
  "$BIN" -q plot "$TMP/raster.nc" --var region --width "$1" --height "$1" --dpi "$2" --out "$TMP/odd.png" || fail "plot at $1 cm, $2 dpi"
  [ "$(png_size "$TMP/odd.png")" = "$(px "$1" "$2") $(px "$1" "$2")" ] && ok "$1 cm at $2 dpi: $(png_size "$TMP/odd.png")" \
    || fail "$1 cm at $2 dpi: got $(png_size "$TMP/odd.png")"
done
expect_exit 0 "wrote" -- "$BIN" plot "$TMP/raster.nc" --var region --dpi 100 --out "$TMP/region.png"
# square raster, default height: page = 1.8 + map width + 3.0 cm (page width = pixels / dpi)
W100=$(px 16 100)
check_png "$TMP/region.png" "$W100" "$(awk -v w="$W100" 'BEGIN{pw=w*2.54/100; printf "%d", int((pw-2.4+4.8)/2.54*100+0.5)}')"
expect_colours "$TMP/region.png" 100 "raster bottom-left (y low, x low):$BLUE:0.25 0.75" "raster bottom-right:$ORANGE:0.75 0.75" \
  "raster top-left:$GREEN:0.25 0.25" "raster top-right:$RED:0.75 0.25"
expect_exit 0 "wrote" -- "$BIN" plot "$TMP/raster.nc" --var temperature --title "heat + x" "${S[@]}" --out "$TMP/temperature.png"
check_png "$TMP/temperature.png" "$WS"
{ read -r lr lg lb; read -r rr rg rb; } < <(map_colours "$TMP/temperature.png" 100 0.05 0.5 0.95 0.5)
# viridis: dark purple at the low (left) end, yellow at the high (right) end
[ "$lg" -lt 60 ] && [ "$rg" -gt 180 ] && [ "$rb" -lt 100 ] && ok "temperature: left dark ($lr $lg $lb), right yellow ($rr $rg $rb)" \
  || fail "temperature colours: left $lr $lg $lb, right $rr $rg $rb"

# the real heat task file from `smoecast synth heat`: the region map (flag_values, y/x) and one
# temperature state selected by run (--index) and step (a lead-like dimension, --lead)
"$BIN" -q synth heat --out "$TMP/heat" --runs-train 1 --runs-val 1 --runs-test 1 --steps 2 || fail "synth heat"
expect_exit 0 "wrote" -- "$BIN" plot "$TMP/heat/heat.nc" --var region "${S[@]}" --out "$TMP/heat_region.png"
check_png "$TMP/heat_region.png" "$WS"
$PY "$CHECK" "$TMP/heat_region.png" has 31/119/180 255/127/14 44/160/44 >/dev/null \
  && ok "heat regions: three category colours" || fail "heat regions: a category colour is missing"
expect_exit 0 "wrote" -- "$BIN" plot "$TMP/heat/heat.nc" --var temperature --index run=2 --lead 2 "${S[@]}" --out "$TMP/heat_t.png"
check_png "$TMP/heat_t.png" "$WS"
bad 2 "heat.nc: variable 'temperature': index 7 is not in dimension 'run'" "$TMP/b10.png" "$TMP/heat/heat.nc" --var temperature --index run=7

# forecast minus truth: categorical variables are rejected; temperature - truth = 2x - 63,
# drawn with the diverging vik palette symmetric about 0: blue left, brown/red right
bad 1 "categorical" "$TMP/bad_diff.png" "$TMP/raster.nc" --var region --diff-truth "$TMP/raster.nc"
expect_exit 0 "wrote" -- "$BIN" plot "$TMP/raster.nc" --var temperature --diff-truth "$TMP/raster.nc" --truth-var truth "${S[@]}" --out "$TMP/diff.png"
check_png "$TMP/diff.png" "$WS"
{ read -r lr lg lb; read -r mr mg mb; read -r rr rg rb; } < <(map_colours "$TMP/diff.png" 100 0.05 0.5 0.5 0.5 0.95 0.5)
[ "$lb" -gt "$lr" ] && [ "$rr" -gt "$rb" ] && [ "$mg" -gt 180 ] && ok "difference: blue $lr $lg $lb | light $mr $mg $mb | red $rr $rg $rb" \
  || fail "difference colours: left $lr $lg $lb, middle $mr $mg $mb, right $rr $rg $rb"

# ---------------------------------------------------------------- bad input: one line, non-zero exit, no PNG
bad 2 "nope.nc: cannot open.*variable 'z'" "$TMP/b1.png" "$TMP/nope.nc" --var z
bad 2 "experts.nc: no variable 'zz'; available: expert_map, lat_profile" "$TMP/b2.png" "$TMP/experts.nc" --var zz
bad 2 "experts.nc: variable 'lat_profile' \(dimensions: latitude\(32\)\) is not on a latitude/longitude or y/x grid" "$TMP/b3.png" "$TMP/experts.nc" --var lat_profile
bad 2 "experts.nc: variable 'expert_map': time 2000-01-02T00:00 is not in the file; it has 2 times: 2000-01-01T00:00 .. 2000-01-01T06:00" \
  "$TMP/b4.png" "$TMP/experts.nc" --var expert_map --time 2000-01-02T00:00
bad 2 "experts.nc: variable 'expert_map': time index 5 is not in the file" "$TMP/b5.png" "$TMP/experts.nc" --var expert_map --time 5
bad 1 "raster.nc: variable 'region' has no time dimension" "$TMP/b6.png" "$TMP/raster.nc" --var region --time 0
bad 2 "output directory '$TMP/no/such' does not exist.*raster.nc variable 'region'" "$TMP/no/such/map.png" "$TMP/raster.nc" --var region
bad 2 "raster.nc variable 'region'" "/proc/smoecast_plot_test.png" "$TMP/raster.nc" --var region
bad 1 "raster.nc: variable 'temperature': --cmap no_such_palette: not a GMT palette" "$TMP/b9.png" "$TMP/raster.nc" --var temperature --cmap no_such_palette
expect_exit 1 "--var NAME is required" -- "$BIN" plot "$TMP/raster.nc"
expect_exit 1 "--width expects" -- "$BIN" plot "$TMP/raster.nc" --var region --width 2

# nothing left in the working directory or in TMPDIR (GMT session files, temporaries)
left=$(ls -A "$WORK"); [ -z "$left" ] && ok "working directory untouched" || fail "left in cwd: $left"
left=$(ls -A "$TMP/gmt_tmp"); [ -z "$left" ] && ok "temporary directory removed" || fail "left in TMPDIR: $left"
left=$(ls -A "$TMP" | grep -c '\.tmp\.'); [ "$left" = 0 ] && ok "no temporary outputs" || fail "temporary outputs left"

finish
