# Expert-location maps: CF attributes, weights, statistics against an independent computation,
# --write-experts, and the bad-input cases.
. "$(dirname "$0")/lib.sh"
cd "$TMP"
toy_dataset 5
cat > cfg.yaml <<'YAML'
data: {dataset: ds.nc, prognostic: [t2m], forcing: [lsm], lead_time: 6h, train_end: 2000-09-30T18, val_start: 2000-10-01, val_end: 2000-11-15}
model: {architecture: cnn, channels: [8], kernel: 3, moe: {enabled: true, gate: latent, experts: 3, k: 1}}
training: {epochs: 1, batch_size: 8, steps_per_epoch: 5}
output: {dir: run}
YAML
"$BIN" train -c cfg.yaml >/dev/null 2>&1 || { fail "train"; finish; }
"$BIN" train -c cfg.yaml model.moe.enabled=false output.dir=dense >/dev/null 2>&1 || fail "dense train"

lsm_opt=()
if [ -r "$SHARED/geocat-datafiles__landsea.nc" ]; then lsm_opt=(--lsm "$SHARED/geocat-datafiles__landsea.nc:LSMASK")
else skip_or_fail "shared landsea.nc missing"; fi
expect_exit 0 "layer conv1: 3 experts on 32x64" -- "$BIN" experts --checkpoint run/best.nc --out ex.nc --stats ex.csv "${lsm_opt[@]}"
h=$(ncdump -h ex.nc)
grep -q 'int expert_map(latitude, longitude)' <<<"$h" && ok "expert_map dims" || fail "expert_map dims"
grep -q 'expert_map:flag_values = 0, 1, 2' <<<"$h" && ok "flag_values" || fail "flag_values"
grep -q 'expert_map:flag_meanings = "expert_0 expert_1 expert_2"' <<<"$h" && ok "flag_meanings" || fail "flag_meanings"
grep -q 'float expert_weight(expert, latitude, longitude)' <<<"$h" && ok "expert_weight dims" || fail "expert_weight dims"
grep -q ':Conventions = "CF-1.8"' <<<"$h" && ok "CF-1.8" || fail "Conventions"
if command -v cdo >/dev/null; then cdo sinfon ex.nc 2>/dev/null | grep -q lonlat && ok "cdo: lonlat" || fail "cdo sinfon"; else skip_or_fail "cdo missing"; fi
[ "$(wc -l < ex.csv)" = 4 ] && ok "one CSV row per expert" || fail "ex.csv: $(cat ex.csv)"

# Independent check: weights sum to 1, the map is their argmax, area shares are cos-lat weighted.
if /usr/bin/python3 -c "import netCDF4, numpy" 2>/dev/null; then
  /usr/bin/python3 - <<'PY' && ok "weights, argmax and area shares agree with numpy" || fail "numpy cross-check"
import netCDF4, numpy as np, csv
d = netCDF4.Dataset("ex.nc")
w = d["expert_weight"][:].filled(np.nan); m = d["expert_map"][:]; lat = d["latitude"][:]
assert np.allclose(w.sum(axis=0), 1, atol=1e-5)
assert (np.argmax(w, axis=0) == m).all()
cw = np.cos(np.deg2rad(lat))[:, None] * np.ones(m.shape)
rows = list(csv.DictReader(open("ex.csv")))
for r in rows:
    e = int(r["expert"]); share = cw[m == e].sum() / cw.sum()
    assert abs(share - float(r["area_share"])) < 1e-5, (e, share, r)
PY
else skip_or_fail "python3 netCDF4 missing"; fi

expect_exit 0 "wrote 1 initialisations" -- "$BIN" forecast --checkpoint run/best.nc --dataset ds.nc --init 2000-12-01T00 --lead 6h --out fc.nc --write-experts
ncdump -h fc.nc | grep -q 'int expert_map(latitude, longitude)' && ok "--write-experts adds the maps" || fail "--write-experts"
expect_exit 0 "MAE in region" -- "$BIN" experts --checkpoint run/best.nc --stats err.csv --forecast fc.nc --truth ds.nc

expect_exit 1 "has no MoE layer" -- "$BIN" experts --checkpoint dense/best.nc --out bad.nc
expect_exit 1 "has no MoE layer" -- "$BIN" forecast --checkpoint dense/best.nc --dataset ds.nc --init 2000-12-01T00 --lead 6h --out bad.nc --write-experts
expect_exit 2 "missing.nc" -- "$BIN" experts --checkpoint missing.nc --out bad.nc
expect_exit 2 "no variable 'NOPE'" -- "$BIN" experts --checkpoint run/best.nc --stats bad.csv --lsm "ds.nc:NOPE"
[ ! -e bad.nc ] && [ ! -e bad.csv ] && ok "nothing written after errors" || fail "output left behind"
finish
