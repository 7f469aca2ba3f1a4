# A direct multi-lead model (data.leads): trained by `smoecast train` over several leads with the
# lead as an input channel; `smoecast forecast` predicts each trained lead directly from the
# analysis (the same result whichever other leads are requested) and refuses untrained leads.
. "$(dirname "$0")/lib.sh"
cd "$TMP"
toy_t2m_dataset 40 4
cat > cfg.yaml <<'YAML'
data:
  dataset: ds.nc
  prognostic: [t2m]
  forcing: [hour_of_day]
  lead_time: 24h
  leads: [6h, 24h]
  history: 2
  history_step: 6h
  train_end: 2000-01-28T18
  val_start: 2000-01-29
  val_end: 2000-02-04T18
model:
  architecture: cnn
  channels: [4]
  kernel: 3
training:
  epochs: 1
  batch_size: 8
  steps_per_epoch: 4
output:
  dir: run
YAML
expect_exit 0 "epoch 1: train" -- "$BIN" train -c cfg.yaml run.threads=1
expect_exit 0 "wrote 2 initialisations x 2 leads" -- "$BIN" forecast --checkpoint run/best.nc --dataset ds.nc \
  --init 2000-02-05T00/2000-02-05T06 --lead 6h,24h --out fc.nc
expect_exit 0 "wrote 2 initialisations x 1 leads" -- "$BIN" forecast --checkpoint run/best.nc --dataset ds.nc \
  --init 2000-02-05T00/2000-02-05T06 --lead 24h --out fc24.nc
/usr/bin/python3 - <<'PY' && ok "each lead is predicted directly and finite" || fail "multi-lead forecast values"
import netCDF4, numpy as np
a = np.asarray(netCDF4.Dataset("fc.nc")["t2m"][:], float)
b = np.asarray(netCDF4.Dataset("fc24.nc")["t2m"][:], float)
assert np.isfinite(a).all() and a.shape[1] == 2
assert np.allclose(a[:, 1], b[:, 0], atol=1e-4), "the +24 h forecast depends on the other leads requested"
assert np.abs(a[:, 0] - a[:, 1]).max() > 1e-3, "the two leads are identical"
PY
expect_exit 1 "trained for the leads 6h, 24h only" -- "$BIN" forecast --checkpoint run/best.nc --dataset ds.nc \
  --init 2000-02-05T00 --lead 12h --out bad.nc
expect_exit 1 "needs an empty data.step" -- "$BIN" train -c cfg.yaml data.step=6h output.dir=bad
# data.lead_tendency_scale and the latitude/longitude maps: the per-lead scales travel in the
# checkpoint (tend_std_lead, one per lead) and the forecast uses them.
expect_exit 0 "epoch 1: train" -- "$BIN" train -c cfg.yaml run.threads=1 data.lead_tendency_scale=true \
  "data.forcing=[hour_of_day, latitude, longitude]" output.dir=run_ls
expect_exit 0 "wrote 2 initialisations x 2 leads" -- "$BIN" forecast --checkpoint run_ls/best.nc --dataset ds.nc \
  --init 2000-02-05T00/2000-02-05T06 --lead 6h,24h --out fc_ls.nc
/usr/bin/python3 - <<'PY' && ok "per-lead tendency scales stored and used" || fail "per-lead tendency scales"
import netCDF4, numpy as np
ck = netCDF4.Dataset("run_ls/best.nc")
names = {v for g in [ck] + list(ck.groups.values()) for v in g.variables}
assert "tend_std_lead" in names, sorted(names)
a = np.asarray(netCDF4.Dataset("fc_ls.nc")["t2m"][:], float)
assert np.isfinite(a).all() and a.shape[1] == 2
PY
finish
