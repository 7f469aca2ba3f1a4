# Shared by test_postprocess_nn.sh and test_postprocess_mpi.sh (sourced after lib.sh, in $TMP):
# a one-year 5-member synthetic ensemble ingested as ens.nc / truth.nc, and cfg.yaml, a small
# mlp post-processing config (t2m from t850 with lat/lon features, 2 epochs of 3 steps).
"$BIN" synth ensemble --out syn --years 1 --clim-years 0 --members 5 --seed 7 >/dev/null 2>&1 || { fail "synth"; finish; }
"$BIN" ingest --grid native --var t850 --var t2m --out ens.nc syn/ensemble.nc >/dev/null 2>&1 || { fail "ingest ensemble"; finish; }
"$BIN" ingest --grid native --var t850 --var t2m --out truth.nc syn/ensemble_truth.nc >/dev/null 2>&1 || { fail "ingest truth"; finish; }
cat > cfg.yaml <<'YAML'
run:
  threads: 1
postprocess:
  method: mlp
  target: t2m
  predictors: [t850]
  latlon_features: true
  forecast: ens.nc
  truth: truth.nc
data:
  train_end: 2000-09-30
  val_start: 2000-10-01
  val_end: 2000-10-31
  test_start: 2000-11-01
  test_end: 2000-12-31
model:
  channels: [8]
  kernel: 1
  activation: relu
training:
  epochs: 2
  batch_size: 4
  steps_per_epoch: 3
  lr: 1e-3
output:
  dir: mlp
YAML
