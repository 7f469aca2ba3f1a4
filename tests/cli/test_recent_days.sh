# data.recent_days (the recent diurnal cycle as input): a model trains with it (also with the
# pushforward rollout), and its forecasts (to 48 h) read no field after the initial time in any step of
# the rollout (changing the dataset after the init leaves them bit-identical), while the days
# before the init do change them (the input is used).
. "$(dirname "$0")/lib.sh"
cd "$TMP"
toy_t2m_dataset 30 5
cat > cfg.yaml <<'YAML'
data:
  dataset: ds.nc
  prognostic: [t2m]
  forcing: [hour_of_day]
  lead_time: 24h
  step: 6h
  history: 2
  recent_days: 3
  train_end: 2000-01-20T18
  val_start: 2000-01-21
  val_end: 2000-01-25T18
model:
  architecture: cnn
  channels: [4]
  kernel: 3
training:
  epochs: 2
  batch_size: 8
  steps_per_epoch: 3
  rollout: 2
output:
  dir: run
YAML
expect_exit 0 "epoch 2: train" -- "$BIN" train -c cfg.yaml run.threads=1
/usr/bin/python3 - <<'PY' || fail "perturbed datasets"
import shutil, netCDF4, numpy as np
for name, after in (("after.nc", True), ("before.nc", False)):
    shutil.copy("ds.nc", name)
    d = netCDF4.Dataset(name, "a")
    t = netCDF4.num2date(d["time"][:], d["time"].units, only_use_cftime_datetimes=False)
    init = [i for i, x in enumerate(t) if x.strftime("%Y-%m-%dT%H") == "2000-01-27T00"][0]
    v = d["t2m"]
    # after: every time after the last init (06Z); before: 25 March 00Z .. 26 March 06Z, inside
    # the recent days but not in the 6 h history of 2 steps
    idx = range(init + 2, v.shape[0]) if after else range(init - 8, init - 2)
    for i in idx:
        v[i] = v[i] + 10.0
    d.close()
PY
fc() { "$BIN" forecast --checkpoint run/best.nc --dataset "$1" --init 2000-01-27T00/2000-01-27T06 --lead 6h,24h,36h,48h --out "$2"; }
expect_exit 0 "wrote 2 initialisations x 4 leads" -- fc ds.nc fc.nc
expect_exit 0 "wrote 2 initialisations x 4 leads" -- fc after.nc fc_after.nc
expect_exit 0 "wrote 2 initialisations x 4 leads" -- fc before.nc fc_before.nc
/usr/bin/python3 - <<'PY' && ok "no field after the init reaches a forecast; the recent days do" || fail "recent_days information time"
import netCDF4, numpy as np
r = lambda f: np.asarray(netCDF4.Dataset(f)["t2m"][:], float)
base, after, before = r("fc.nc"), r("fc_after.nc"), r("fc_before.nc")
assert np.array_equal(base, after), "a field after the init changed the forecast"
assert np.abs(base - before).max() > 1e-3, "the recent days did not change the forecast"
PY
expect_exit 1 "data.recent_days must be between 0 and 14" -- "$BIN" train -c cfg.yaml data.recent_days=15 output.dir=bad
finish
