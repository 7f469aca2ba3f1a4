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
# training.routing_labels: MI and ARI against the true regions every epoch, in metrics.jsonl and
# in the checkpoint's routing array (cv_importance, H_s, H_u, MI, ARI)
"$BIN" train -c "$SRC/configs/heat_smoe.yaml" data.dataset=heat/heat_dataset.nc output.dir=run training.epochs=2 \
  training.steps_per_epoch=2 training.routing_labels=region >/dev/null 2>&1 || fail "train with routing labels"
grep -q '"MI": [0-9.e+-]*, "ARI": [0-9.e+-]*' run/metrics.jsonl || fail "metrics.jsonl lacks MI/ARI: $(cat run/metrics.jsonl)"
[ "$(grep -c '"ARI"' run/metrics.jsonl)" = 2 ] || fail "ARI not logged every epoch"
ncdump -v conv0.routing run/best.nc 2>/dev/null | grep -q "conv0.routing = " || ncdump run/best.nc | grep -q "conv0.routing" || fail "checkpoint lacks conv0.routing"
expect_exit 1 "'temperature' varies in time" -- "$BIN" train -c "$SRC/configs/heat_smoe.yaml" data.dataset=heat/heat_dataset.nc \
  output.dir=run2 training.routing_labels=temperature
expect_exit 1 "has no variable 'nope'" -- "$BIN" train -c "$SRC/configs/heat_smoe.yaml" data.dataset=heat/heat_dataset.nc \
  output.dir=run2 training.routing_labels=nope
if "$BIN" plot --help >/dev/null 2>&1; then
  expect_exit 0 "" -- "$BIN" plot ex.nc --var expert_map --out map.png
  [ -s map.png ] || fail "no PNG"
fi
finish
