# `smoecast forecast --checkpoint a.nc,b.nc` writes the mean of the members' forecasts (each
# member rolled out with its own model and statistics), names the first member as the training
# run (evaluate reads it) and refuses members of another configuration. Also training.rollout
# (the pushforward trick) trains and refuses direct models.
. "$(dirname "$0")/lib.sh"
cd "$TMP"
toy_t2m_dataset 30 5
cat > cfg.yaml <<'YAML'
data:
  dataset: ds.nc
  prognostic: [t2m]
  forcing: [hour_of_day]
  lead_time: 12h
  step: 6h
  history: 2
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
  rollout: 3
output:
  dir: a
YAML
expect_exit 0 "epoch 2: train" -- "$BIN" train -c cfg.yaml run.threads=1
expect_exit 0 "epoch 2: train" -- "$BIN" train -c cfg.yaml run.threads=1 run.seed=1 output.dir=b
fc() { "$BIN" forecast --checkpoint "$1" --dataset ds.nc --init 2000-01-27T00/2000-01-27T06 --lead 6h,12h --out "$2"; }
expect_exit 0 "wrote 2 initialisations x 2 leads" -- fc a/best.nc fc_a.nc
expect_exit 0 "wrote 2 initialisations x 2 leads" -- fc b/best.nc fc_b.nc
expect_exit 0 "wrote 2 initialisations x 2 leads" -- fc a/best.nc,b/best.nc fc_ens.nc
/usr/bin/python3 - <<'PY' && ok "the ensemble is the mean of its members" || fail "ensemble mean"
import netCDF4, numpy as np
r = lambda f: np.asarray(netCDF4.Dataset(f)["t2m"][:], float)
a, b, e = r("fc_a.nc"), r("fc_b.nc"), r("fc_ens.nc")
assert np.abs(a - b).max() > 1e-3, "the two seeds gave the same forecast"
assert np.allclose(e, (a + b) / 2, atol=1e-4)
d = netCDF4.Dataset("fc_ens.nc")
assert d.smoecast_checkpoint == "a/best.nc" and d.smoecast_ensemble_checkpoints == "a/best.nc,b/best.nc"
PY
# training.members: the same two seeds as one run (member0 = seed 0 = a, member1 = seed 1 = b);
# forecast --checkpoint DIR averages the members; --resume of a finished ensemble trains nothing
expect_exit 0 "trained 2 ensemble members" -- "$BIN" train -c cfg.yaml run.threads=1 training.members=2 output.dir=ens
ncdump -h ens/member1/best.nc | grep -q 'seed: 1' && ok "member 1 trained with run.seed 1" || fail "member 1 seed"
expect_exit 0 "wrote 2 initialisations x 2 leads" -- fc ens fc_dir.nc
expect_exit 0 "wrote 2 initialisations x 2 leads" -- fc a fc_rundir.nc
/usr/bin/python3 - <<'PY' && ok "forecast --checkpoint RUN_DIR: the members' mean; a single run's best.nc" || fail "run directory forecast"
import netCDF4, numpy as np
r = lambda f: np.asarray(netCDF4.Dataset(f)["t2m"][:], float)
assert np.array_equal(r("fc_dir.nc"), r("fc_ens.nc")), "members differ from the seed runs"
assert np.array_equal(r("fc_rundir.nc"), r("fc_a.nc"))
assert netCDF4.Dataset("fc_dir.nc").smoecast_ensemble_checkpoints == "ens/member0/best.nc,ens/member1/best.nc"
PY
expect_exit 0 "resumed" -- "$BIN" train -c cfg.yaml run.threads=1 training.members=2 output.dir=ens --resume
mkdir -p empty
expect_exit 2 "empty: a directory without best.nc" -- fc empty bad.nc
expect_exit 0 "epoch 1: train" -- "$BIN" train -c cfg.yaml run.threads=1 training.rollout=1 training.epochs=1 data.history=3 output.dir=c
expect_exit 1 "an ensemble averages members of one configuration" -- "$BIN" forecast --checkpoint a/best.nc,c/best.nc \
  --dataset ds.nc --init 2000-01-27T00 --lead 6h --out bad.nc
expect_exit 1 "needs an autoregressive model" -- "$BIN" train -c cfg.yaml data.step= output.dir=bad
finish
