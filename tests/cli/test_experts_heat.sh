# Issue 9: the expert map of a trained heat-task SMoE (tests/data/heat_smoe_seed1.nc, see
# tests/data/README.md) matches the true regions of the seed-0 generator (ARI through
# `smoecast experts --labels`), is drawn as a plain raster, and a reference map of another grid
# is refused with a message naming the file, the variable and both shapes.
source "$(dirname "$0")/lib.sh"
ck=$SRC/tests/data/heat_smoe_seed1.nc
cd "$TMP" || exit 1
"$BIN" synth heat --out heat --seed 0 --runs-train 1 --runs-val 1 --runs-test 1 --steps 2 >/dev/null 2>&1 || { fail "synth heat"; finish; }
expect_exit 0 "against heat/heat_dataset.nc:region: ARI" -- "$BIN" experts --checkpoint "$ck" --out ex.nc --stats ex.csv --labels heat/heat_dataset.nc:region
ari=$(awk -F, 'NR == 2 { print $7 }' ex.csv)
awk -v a="$ari" 'BEGIN { exit !(a >= 0.95) }' && ok "heat expert map ARI $ari >= 0.95" || fail "heat expert map ARI '$ari' < 0.95 ($(cat ex.csv))"
# the same regions given by their diffusivity values (float classes) agree exactly
"$BIN" experts --checkpoint "$ck" --stats ex2.csv --labels heat/heat.nc:diffusivity >/dev/null 2>&1 || fail "--labels diffusivity"
[ "$(awk -F, 'NR == 2 { print $7 }' ex2.csv)" = "$ari" ] || fail "diffusivity classes give another ARI: $(cat ex2.csv)"
"$BIN" synth heat --out heat32 --seed 0 --size 32 --runs-train 1 --runs-val 1 --runs-test 1 --steps 2 >/dev/null 2>&1
expect_exit 2 "heat32/heat_dataset.nc: region is 32x32 but layer conv0 is 64x64" -- "$BIN" experts --checkpoint "$ck" --stats bad.csv --labels heat32/heat_dataset.nc:region
expect_exit 2 "temperature has more than 64 distinct values" -- "$BIN" experts --checkpoint "$ck" --stats bad.csv --labels heat/heat.nc:temperature
[ -e bad.csv ] && fail "a failed run left bad.csv"
if "$BIN" plot --help >/dev/null 2>&1; then
  expect_exit 0 "" -- "$BIN" plot ex.nc --var expert_map --out map.png
  [ -s map.png ] || fail "no PNG"
fi
finish
