# Data-parallel training under mpirun (label mpi): 2 ranks give the same weights as 1 rank
# after 20 steps with the same global batch (per tensor ||w2 - w1|| <= 1e-5 ||w1|| + 1e-7), on a
# CNN with BatchNorm (synchronised), dropout and a latent-gate SMoE last layer (RC loss, damping,
# importance and load losses), and on the same CNN with a point-gated softmax_topk last layer
# (noisy gate, capacity factor 1, importance / load / switch losses and the sample-similarity
# regulariser; tests/unit/test_dist_mpi.c has both MoE kinds in one model); rank 0 alone writes the run
# directory; --resume works on every rank (also with the weight average); a world size that does not divide the batch fails.
. "$(dirname "$0")/lib.sh"
[ "${SMOECAST_HAVE_MPI:-0}" = 1 ] || skip_or_fail "built without MPI"
MPIRUN=${SMOECAST_MPIRUN:-mpirun}
need_tool "$MPIRUN"
MPI=("$MPIRUN" --oversubscribe)
[ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
cd "$TMP"
toy_dataset 3
cat > cfg.yaml <<'YAML'
data:
  dataset: ds.nc
  prognostic: [z500, t2m]
  forcing: [lsm, hour_of_day]
  lead_time: 6h
  train_end: 2000-09-30T18
  val_start: 2000-10-01
  val_end: 2000-10-20
  test_start: 2000-11-16
model:
  architecture: cnn
  channels: [8, 8]
  kernel: 3
  dropout: 0.2
  batchnorm: true
  bias: false   # a conv bias before BatchNorm has a zero gradient up to rounding, which Adam turns into lr-sized steps
  moe:
    enabled: true
    placement: last
    gate: latent
    experts: 3
    k: 1
    rc_loss: {enabled: true, quantile: 0.7}
    damping: {enabled: true, factor: 0.5}
    aux: {importance: 0.1, load: 0.1}
training:
  epochs: 2
  batch_size: 8
  steps_per_epoch: 10
  lr: 1e-3
output:
  dir: run
YAML
expect_exit 0 "epoch 2: train" -- "$BIN" train -c cfg.yaml run.threads=1 output.dir=one
expect_exit 0 "epoch 2: train" -- "${MPI[@]}" -np 2 "$BIN" train -c cfg.yaml run.threads=1 output.dir=two
n_epochs=$(grep -c '"epoch"' two/metrics.jsonl 2>/dev/null)
[ "$n_epochs" = 2 ] && ok "rank 0 alone wrote metrics.jsonl (2 lines)" || fail "two/metrics.jsonl has $n_epochs lines, expected 2"

# compare every variable of the two checkpoints (Python/netCDF4 as the reference reader)
compare() {
  /usr/bin/python3 - "$1" "$2" "${3:-params}" <<'PY'
import sys, numpy as np, netCDF4
a, b = netCDF4.Dataset(sys.argv[1]), netCDF4.Dataset(sys.argv[2])
bad, n = [], 0
pa, pb = a.groups[sys.argv[3]], b.groups[sys.argv[3]]
for name, v in pa.variables.items():
    w1 = np.asarray(v[:], dtype=np.float64).ravel()
    w2 = np.asarray(pb.variables[name][:], dtype=np.float64).ravel()
    d, r = np.linalg.norm(w2 - w1), np.linalg.norm(w1)
    n += 1
    if not d <= 1e-5 * r + 1e-7:
        bad.append("%s: |w2-w1| %.3g |w1| %.3g" % (name, d, r))
print("compared %d parameter tensors" % n)
if bad or n == 0:
    print("\n".join(bad)); sys.exit(1)
PY
}
if out=$(compare one/last.nc two/last.nc 2>&1); then ok "2 ranks == 1 rank after 20 steps: $out"; else fail "weights differ: $out"; fi

# the gradient allreduce overlapped with backward (SMOECAST_GRAD_OVERLAP=1) gives the same weights
expect_exit 0 "allreduce overlapped with backward" -- "${MPI[@]}" -x SMOECAST_GRAD_OVERLAP=1 -np 2 "$BIN" train -c cfg.yaml \
  run.threads=1 output.dir=overlap
if out=$(compare one/last.nc overlap/last.nc 2>&1); then ok "overlapped allreduce: 2 ranks == 1 rank: $out"; else fail "overlap weights differ: $out"; fi

# the point-gated layer: gate noise, capacity order and similarity pairs drawn per global sample,
# its batch statistics summed over ranks
sed -e 's/gate: latent/gate: softmax_topk/' -e 's/experts: 3/experts: 4/' -e 's/k: 1$/k: 2/' \
    -e 's/aux: {importance: 0.1, load: 0.1}/aux: {importance: 0.1, load: 0.1, switch: 0.05, similarity: {beta_same: 0.1, beta_diff: 0.05, pairs: 64}}/' \
    -e 's/    rc_loss: .*/    noise: true/' -e 's/    damping: .*/    capacity_factor: 1.0\n    expert_hidden: 4/' cfg.yaml > point.yaml
grep -q "capacity_factor: 1.0" point.yaml && grep -q "gate: softmax_topk" point.yaml && grep -q "pairs: 64" point.yaml \
  || fail "point.yaml was not derived from cfg.yaml"
expect_exit 0 "epoch 2: train" -- "$BIN" train -c point.yaml run.threads=1 output.dir=p_one
expect_exit 0 "epoch 2: train" -- "${MPI[@]}" -np 2 "$BIN" train -c point.yaml run.threads=1 output.dir=p_two
if out=$(compare p_one/last.nc p_two/last.nc 2>&1); then ok "point-gated layer: 2 ranks == 1 rank after 20 steps: $out"; else fail "point-gated weights differ: $out"; fi
aux1=$(grep -o '"aux_loss": [0-9.e+-]*' p_one/metrics.jsonl | tail -1 | cut -d' ' -f2)
aux2=$(grep -o '"aux_loss": [0-9.e+-]*' p_two/metrics.jsonl | tail -1 | cut -d' ' -f2)
if [ -n "$aux1" ] && awk -v a="$aux1" -v b="$aux2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 1e-5 * a) }'; then
  ok "point-gated aux loss (importance, load, switch, similarity) equal on 1 and 2 ranks ($aux1, $aux2)"
else
  fail "point-gated aux loss: '$aux1' on 1 rank vs '$aux2' on 2 ranks"
fi

# a short last batch: 17 training samples in batches of 8 leave 1 sample for the last step, so
# rank 0 has none and only takes part in the BatchNorm and MoE reductions (model_sync_idle,
# which also updates its BatchNorm running statistics); still 2 ranks == 1 rank
expect_exit 0 "samples train 17," -- "$BIN" train -c point.yaml run.threads=1 output.dir=s_one data.train_end=2000-01-05T06 \
  training.steps_per_epoch=0
expect_exit 0 "epoch 2: train" -- "${MPI[@]}" -np 2 "$BIN" train -c point.yaml run.threads=1 output.dir=s_two \
  data.train_end=2000-01-05T06 training.steps_per_epoch=0
if out=$(compare s_one/last.nc s_two/last.nc 2>&1); then ok "short last batch with an idle rank: 2 ranks == 1 rank: $out"; else fail "short last batch: weights differ: $out"; fi

# resume on every rank from rank 0's checkpoint: 1 epoch on 2 ranks, then --resume to 2 epochs
# on 2 ranks == 2 epochs on 1 rank (20 steps)
expect_exit 0 "epoch 1: train" -- "${MPI[@]}" -np 2 "$BIN" train -c cfg.yaml run.threads=1 output.dir=split training.epochs=1
expect_exit 0 "resuming from" -- "${MPI[@]}" -np 2 "$BIN" train -c cfg.yaml run.threads=1 output.dir=split --resume
if out=$(compare one/last.nc split/last.nc 2>&1); then ok "2 ranks with a resume == 1 rank: $out"; else fail "resumed weights differ: $out"; fi

# the weight average (training.ema_decay) is rank-local: every rank averages the same weights;
# 2 ranks with a resume == 1 rank for the average (/params) and the raw weights (/ema)
expect_exit 0 "epoch 2: train" -- "$BIN" train -c cfg.yaml run.threads=1 output.dir=ema_one training.ema_decay=0.5
expect_exit 0 "epoch 1: train" -- "${MPI[@]}" -np 2 "$BIN" train -c cfg.yaml run.threads=1 output.dir=ema_two training.epochs=1 \
  training.ema_decay=0.5
expect_exit 0 "resuming from" -- "${MPI[@]}" -np 2 "$BIN" train -c cfg.yaml run.threads=1 output.dir=ema_two training.ema_decay=0.5 --resume
if out=$(compare ema_one/last.nc ema_two/last.nc 2>&1) && out2=$(compare ema_one/last.nc ema_two/last.nc ema 2>&1); then
  ok "weight average: 2 ranks with a resume == 1 rank: $out, raw $out2"
else fail "weight average differs on 2 ranks: $out ${out2:-}"; fi

# a failure on one rank mid-run (a NaN in one sample of the dataset, met by the rank whose
# shard holds it) ends every rank with a rank-tagged message and keeps last.nc intact
sum_before=$(md5sum two/last.nc | cut -d' ' -f1)
cp ds.nc nan.nc
/usr/bin/python3 -c "
import netCDF4, numpy as np
d = netCDF4.Dataset('nan.nc', 'a'); v = d['t2m']; x = v[100]; x[3, 4] = np.nan; v[100] = x; d.close()"
expect_exit 2 "rank [01]: .*nan.nc: variable t2m at 2000-01-26T00:00 has NaN" -- "${MPI[@]}" -np 2 "$BIN" train -c cfg.yaml \
  run.threads=1 output.dir=two data.dataset=nan.nc training.epochs=4 training.steps_per_epoch=0 --resume
[ "$(md5sum two/last.nc | cut -d' ' -f1)" = "$sum_before" ] && ok "last.nc intact after the failed run" || fail "last.nc changed"

# bad input: 3 ranks do not divide the global batch of 8
expect_exit 1 "rank [0-9]: training.batch_size 8 is not a multiple of the 3 MPI ranks" -- \
  "${MPI[@]}" -np 3 "$BIN" train -c cfg.yaml run.threads=1 output.dir=three
finish
