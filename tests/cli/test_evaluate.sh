# smoecast evaluate on deterministic forecasts: synth -> ingest -> train -> forecast -> evaluate;
# scores NetCDF layout, a persistence forecast scores exactly the persistence baseline, the
# headline RMSE against numpy, both forecast layouts agree, skipped inits, bad input.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
$PY -c "import netCDF4, numpy" 2>/dev/null || skip_or_fail "python3 netCDF4/numpy missing"
cd "$TMP"
toy_dataset 5
cat > cfg.yaml <<'YAML'
data:
  dataset: ds.nc
  prognostic: [z500, t2m]
  forcing: [lsm, hour_of_day]
  lead_time: 6h
  train_end: 2000-09-30T18
  val_start: 2000-10-01
  val_end: 2000-11-15
  test_start: 2000-11-16
model:
  architecture: cnn
  channels: [4]
  kernel: 3
training:
  epochs: 1
  batch_size: 8
  steps_per_epoch: 4
  lr: 1e-3
output:
  dir: run
YAML
"$BIN" train -c cfg.yaml run.threads=1 >/dev/null 2>&1 || { fail "train"; finish; }
"$BIN" forecast --checkpoint run/best.nc --dataset ds.nc --init 2000-11-20T00/2000-11-21T18 --lead 6h,24h --out fc.nc >/dev/null 2>&1 \
  || { fail "forecast"; finish; }

# Table and scores NetCDF.
expect_exit 0 "damped_persistence.*model/pers" -- "$BIN" evaluate --forecast fc.nc --truth ds.nc --regions global,tropics,land,sea --out scores.nc
hdr=$(ncdump -h scores.nc)
grep -q 'double score(source, metric, variable, lead_time, region)' <<<"$hdr" && ok "score dims" || fail "score dims: $hdr"
grep -q 'source = 4 ;' <<<"$hdr" && grep -q 'metric = 5 ;' <<<"$hdr" && grep -q 'variable = 2 ;' <<<"$hdr" \
  && grep -q 'lead_time = 2 ;' <<<"$hdr" && grep -q 'region = 4 ;' <<<"$hdr" && ok "dimension sizes" || fail "dimension sizes: $hdr"
grep -q 'smoecast_train_period = "2000-01-01T00:00/2000-09-30T18:00 (from checkpoint run/best.nc)"' <<<"$hdr" \
  && ok "training period from the checkpoint" || fail "training period: $hdr"
$PY - <<'EOF' && ok "coordinates hold the names" || fail "coordinates"
import netCDF4
d = netCDF4.Dataset("scores.nc")
assert list(d["source"][:]) == ["model", "persistence", "climatology", "damped_persistence"], d["source"][:]
assert list(d["metric"][:]) == ["rmse", "rmse_mean_fc", "acc", "bias", "mae"]
assert list(d["variable"][:]) == ["z500", "t2m"] and list(d["region"][:]) == ["global", "tropics", "land", "sea"]
assert list(d["lead_time"][:]) == [6.0, 24.0] and (d["n_forecasts"][:] == 8).all()
EOF

# Headline RMSE (time mean before the root), rmse_mean_fc, bias against numpy on the same files.
$PY - <<'EOF' && ok "headline RMSE equals numpy" || fail "RMSE differs from numpy"
import netCDF4, numpy as np
f = netCDF4.Dataset("fc.nc"); t = netCDF4.Dataset("ds.nc"); s = netCDF4.Dataset("scores.nc")
lat = t["latitude"][:]; w = np.cos(np.deg2rad(lat)); w = w / w.mean()
times = t["time"][:]; frt = f["forecast_reference_time"][:]; fp = f["forecast_period"][:]
lsm = t["lsm"][:]
for iv, v in enumerate(["z500", "t2m"]):
    for il, L in enumerate(fp):
        err = []
        for i, t0 in enumerate(frt):
            k = int(np.searchsorted(times, t0 + L)); assert times[k] == t0 + L
            err.append(f[v][i, il].astype(np.float64) - t[v][k].astype(np.float64))
        err = np.array(err)
        W = np.broadcast_to(w[None, :, None], err.shape)
        for ir, m in enumerate([np.ones_like(lsm, bool), np.abs(lat)[:, None] + 0 * lsm < 23.5, lsm >= 0.5, lsm < 0.5]):
            M = np.broadcast_to(m, err.shape)
            rmse = np.sqrt((W * err**2)[M].sum() / W[M].sum())
            per = np.mean([np.sqrt((W[j] * err[j]**2)[M[j]].sum() / W[j][M[j]].sum()) for j in range(len(err))])
            bias = (W * err)[M].sum() / W[M].sum()
            got = s["score"][0, :, iv, il, ir]
            assert abs(got[0] - rmse) <= 1e-6 * rmse, (v, L, ir, got[0], rmse)
            assert abs(got[1] - per) <= 1e-6 * per, (v, L, ir, got[1], per)
            assert abs(got[3] - bias) <= 1e-6 * rmse, (v, L, ir, got[3], bias)
            assert got[1] <= got[0] + 1e-9
EOF

# A forecast equal to persistence scores exactly the persistence baseline.
$PY - <<'EOF' || fail "writing the persistence forecast"
import netCDF4, numpy as np, shutil
shutil.copy("fc.nc", "pers.nc")
f = netCDF4.Dataset("pers.nc", "a"); t = netCDF4.Dataset("ds.nc")
times = t["time"][:]
for v in ["z500", "t2m"]:
    for i, t0 in enumerate(f["forecast_reference_time"][:]):
        k = int(np.searchsorted(times, t0)); assert times[k] == t0
        for j in range(len(f["forecast_period"])):
            f[v][i, j] = t[v][k]
f.close()
EOF
expect_exit 0 "persistence" -- "$BIN" evaluate --forecast pers.nc --truth ds.nc --regions global,land --out pers_scores.nc
$PY - <<'EOF' && ok "persistence forecast = persistence baseline exactly" || fail "persistence forecast differs"
import netCDF4, numpy as np
d = netCDF4.Dataset("pers_scores.nc"); d.set_auto_mask(False); s = d["score"][:]
assert np.array_equal(s[0, [0, 1, 3, 4]], s[1, [0, 1, 3, 4]]), (s[0, 0], s[1, 0])
assert np.all(s[0, 0] > 0)
EOF
# ... and the model's ratio to persistence in the table is 1.000.
"$BIN" -q evaluate --forecast pers.nc --truth ds.nc --vars t2m --baselines persistence > pers_table.txt 2>&1
grep -A3 'RMSE (headline' pers_table.txt | grep -E '^ +6h' | grep -q ' 1\.000$' && ok "table ratio 1.000" || fail "table: $(cat pers_table.txt)"

# --split-by init files (a shell glob) give the same scores as the combined file.
"$BIN" forecast --checkpoint run/best.nc --dataset ds.nc --init 2000-11-20T00/2000-11-21T18 --lead 6h,24h --out 'fs_{init}.nc' --split-by init >/dev/null 2>&1
expect_exit 0 "model/pers" -- "$BIN" evaluate --forecast fs_*.nc --truth ds.nc --regions global,tropics,land,sea --out split_scores.nc
$PY - <<'EOF' && ok "split-by-init files = combined file" || fail "split files score differently"
import netCDF4, numpy as np
a = netCDF4.Dataset("scores.nc")["score"][:]; b = netCDF4.Dataset("split_scores.nc")["score"][:]
assert np.allclose(a, b, rtol=1e-12, atol=0, equal_nan=True)
EOF

# Inits outside the truth are skipped and counted.
$PY - <<'EOF' || fail "writing the shifted forecast"
import netCDF4, shutil
shutil.copy("fc.nc", "late.nc")
f = netCDF4.Dataset("late.nc", "a")
frt = f["forecast_reference_time"][:]; frt[-1] = frt[-1] + 24 * 400; frt[-2] = frt[-2] + 24 * 400
f["forecast_reference_time"][:] = frt; f.close()
EOF
expect_exit 0 "skipped 4 forecasts whose initialisation or valid time is not in the truth" -- "$BIN" evaluate --forecast late.nc --truth ds.nc --out late_scores.nc
$PY -c "
import netCDF4; d = netCDF4.Dataset('late_scores.nc')
assert (d['n_forecasts'][:] == 6).all() and d.smoecast_skipped_forecasts == 4" && ok "skipped count in scores.nc" || fail "skipped count"

# --baselines selects the sources written.
expect_exit 0 "model" -- "$BIN" evaluate --forecast fc.nc --truth ds.nc --baselines none --out none.nc
ncdump -h none.nc | grep -q 'source = 1 ;' && ok "--baselines none: model only" || fail "--baselines none"
expect_exit 0 "clim/pers" -- "$BIN" evaluate --forecast fc.nc --truth ds.nc --baselines climatology,persistence --out two.nc
$PY -c "
import netCDF4; d = netCDF4.Dataset('two.nc'); assert list(d['source'][:]) == ['model', 'persistence', 'climatology']" \
  && ok "--baselines subset in canonical order" || fail "--baselines subset"

# Bad input.
expect_exit 1 "--baselines: unknown baseline 'persistance'" -- "$BIN" evaluate --forecast fc.nc --truth ds.nc --baselines persistance
expect_exit 1 "--regions: unknown region 'arctic'" -- "$BIN" evaluate --forecast fc.nc --truth ds.nc --regions global,arctic
"$BIN" ingest --grid native --var z500 --out only_z.nc data/toy-atmosphere.nc >/dev/null 2>&1
expect_exit 2 "variable t2m of forecast fc.nc is not a time-dependent field of the truth only_z.nc" -- "$BIN" evaluate --forecast fc.nc --truth only_z.nc
expect_exit 1 "land/sea need a land-sea mask" -- "$BIN" evaluate --forecast fc.nc --truth only_z.nc --vars z500 --regions land
expect_exit 0 "region land" -- "$BIN" evaluate --forecast fc.nc --truth only_z.nc --vars z500 --regions land --lsm ds.nc:lsm
$PY -c "
import netCDF4; d = netCDF4.Dataset('pers.nc', 'a'); d.delncattr('smoecast_checkpoint'); d.close()"
expect_exit 1 "pass --train-period" -- "$BIN" evaluate --forecast pers.nc --truth ds.nc
expect_exit 0 "model/pers" -- "$BIN" evaluate --forecast pers.nc --truth ds.nc --train-period 2000-01-01T00/2000-09-30T18 --out tp.nc
$PY -c "
import netCDF4, numpy as np
a = netCDF4.Dataset('pers_scores.nc')['score'][:, :, :, :, 0]; b = netCDF4.Dataset('tp.nc')['score'][:]
assert np.array_equal(a, b, equal_nan=True)" && ok "--train-period = the checkpoint's period" || fail "--train-period scores differ"
expect_exit 1 "lead 6h appears twice \(fc.nc and fs_20001120T0000.nc\)" -- "$BIN" evaluate --forecast fc.nc,fs_20001120T0000.nc --truth ds.nc
expect_exit 1 "has no time in the training period 1990-01-01T00:00/1990-12-31T00:00" -- "$BIN" evaluate --forecast fc.nc --truth ds.nc --train-period 1990-01-01/1990-12-31
expect_exit 1 "--train-period expects START/END" -- "$BIN" evaluate --forecast fc.nc --truth ds.nc --train-period 2000-01-01
expect_exit 2 "missing.nc" -- "$BIN" evaluate --forecast missing.nc --truth ds.nc
expect_exit 1 "--truth is required" -- "$BIN" evaluate --forecast fc.nc
ls .*.tmp.* >/dev/null 2>&1 && fail "temporary files left" || ok "no temporary files"
finish
