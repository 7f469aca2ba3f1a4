# Neural post-processing under mpirun (label mpi): `postprocess fit` on 2 ranks reduces its
# validation sums over ranks (val_reduce), so the validation CRPS / RMSE / spread-skill in
# metrics.jsonl equal the 1-rank run's (each rank scores only its share of the validation set).
. "$(dirname "$0")/lib.sh"
[ "${SMOECAST_HAVE_MPI:-0}" = 1 ] || skip_or_fail "built without MPI"
MPIRUN=${SMOECAST_MPIRUN:-mpirun}
need_tool "$MPIRUN"
MPI=("$MPIRUN" --oversubscribe)
[ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
cd "$TMP"
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
expect_exit 0 "epoch 2: train .* \(t2m crps" -- "$BIN" postprocess fit -c cfg.yaml output.dir=one
expect_exit 0 "epoch 2: train .* \(t2m crps" -- "${MPI[@]}" -np 2 "$BIN" postprocess fit -c cfg.yaml output.dir=two
scores() { grep -o '"val_\(crps\|rmse\|ssr\)": {"t2m": [0-9.e+-]*' "$1" | sed 's/.*: //'; }
n1=$(scores one/metrics.jsonl | wc -l)
if [ "$n1" = 6 ] && paste <(scores one/metrics.jsonl) <(scores two/metrics.jsonl) |
     awk '{ d = $1 - $2; if (d < 0) d = -d; if (!(d <= 1e-5 * ($1 < 0 ? -$1 : $1) + 1e-9)) bad = 1 } END { exit bad }'; then
  ok "validation CRPS, RMSE and spread/skill of 2 ranks == 1 rank ($(scores two/metrics.jsonl | tr '\n' ' '))"
else
  fail "validation scores differ: 1 rank $(scores one/metrics.jsonl | tr '\n' ' '); 2 ranks $(scores two/metrics.jsonl | tr '\n' ' ')"
fi
finish
