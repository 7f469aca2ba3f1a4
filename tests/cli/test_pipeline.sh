# The forecast pipeline end to end on small synthetic data: synth -> ingest -> train -> forecast,
# exact resume, SIGINT, and the bad-input cases of train and forecast.
. "$(dirname "$0")/lib.sh"
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
  val_end: 2000-11-15
  test_start: 2000-11-16
model:
  architecture: cnn
  channels: [8]
  kernel: 3
training:
  epochs: 2
  batch_size: 8
  steps_per_epoch: 6
  lr: 1e-3
output:
  dir: run
YAML
expect_exit 0 "epoch 2: train" -- "$BIN" train -c cfg.yaml run.threads=1
[ -s run/best.nc ] && [ -s run/last.nc ] && ok "checkpoints written" || fail "best.nc/last.nc missing"
[ "$(wc -l < run/metrics.jsonl)" = 2 ] && ok "metrics.jsonl has one line per epoch" || fail "metrics.jsonl: $(cat run/metrics.jsonl)"
grep -q '"val_rmse": {"z500"' run/metrics.jsonl && ok "metrics carry per-variable RMSE" || fail "metrics lack val_rmse"

# Exact resume: 1 epoch + --resume to 2 epochs == 2 epochs straight (1 thread).
params() { ncdump -p 9,17 "$1" | sed -n '/group: params/,/group: optim/p'; }
expect_exit 0 "epoch 1: train" -- "$BIN" train -c cfg.yaml run.threads=1 training.epochs=1 output.dir=split
expect_exit 0 "resuming from" -- "$BIN" train -c cfg.yaml run.threads=1 output.dir=split --resume
if [ -n "$(params run/last.nc)" ] && diff <(params run/last.nc) <(params split/last.nc) >/dev/null; then ok "resume is exact"; else fail "resumed weights differ"; fi
# ... also with an SMoE head whose latent gates form their own optimiser param group
moe=(model.moe.enabled=true model.moe.outputs=per_channel model.moe.rc_loss.enabled=false training.gate_lr_scale=100)
expect_exit 0 "epoch 2: train" -- "$BIN" train -c cfg.yaml run.threads=1 "${moe[@]}" output.dir=moe
expect_exit 0 "epoch 1: train" -- "$BIN" train -c cfg.yaml run.threads=1 "${moe[@]}" training.epochs=1 output.dir=moesplit
expect_exit 0 "resuming from" -- "$BIN" train -c cfg.yaml run.threads=1 "${moe[@]}" output.dir=moesplit --resume
if [ -n "$(params moe/last.nc)" ] && diff <(params moe/last.nc) <(params moesplit/last.nc) >/dev/null; then ok "resume with a gate lr is exact"; else fail "resumed SMoE weights differ"; fi
# SMoE in the last two layers: the hidden one has 12 x 8 = 96 experts, and the routing metrics
# of every epoch cover it (they once stopped at 64 experts, after the first epoch)
expect_exit 0 "epoch 2: train" -- "$BIN" train -c cfg.yaml run.threads=1 model.moe.enabled=true model.moe.rc_loss.enabled=false model.moe.layers=2 model.channels=[12] output.dir=moe2
grep -q '"layer": "conv0", "cv_importance"' moe2/metrics.jsonl && ok "routing metrics of a 96-expert hidden SMoE layer" || fail "no routing metrics for conv0: $(head -c 300 moe2/metrics.jsonl)"
# attention gate distilled into a softmax top-k student: every epoch logs the student's
# distillation loss and top-1 agreement with the teacher; forecasts route with the student
dmoe=(model.moe.enabled=true model.moe.gate=attention model.moe.experts=4 model.moe.k=2 model.moe.expert_hidden=8 model.moe.attention.hidden=8 model.moe.attention.distill=true)
expect_exit 0 "epoch 2: train" -- "$BIN" train -c cfg.yaml run.threads=1 "${dmoe[@]}" output.dir=distill
[ "$(grep -c '"distill_loss": [0-9.e+-]*, "agreement": [0-9.e+-]*, "load"' distill/metrics.jsonl)" = 2 ] && ok "distillation loss and agreement in every epoch's routing metrics" || fail "no distillation metrics: $(head -c 400 distill/metrics.jsonl)"
expect_exit 0 "wrote 1 initialisations x 1 leads" -- "$BIN" forecast --checkpoint distill/best.nc --dataset ds.nc --init 2000-11-20T00 --lead 6h --out fc_distill.nc
expect_exit 1 "model.moe.attention.distill: distils the attention gate; needs model.moe.gate attention \(got 'softmax_topk'\)" -- "$BIN" train -c cfg.yaml run.threads=1 "${dmoe[@]}" model.moe.gate=softmax_topk output.dir=bad
# one-cycle schedule per optimiser step: 12 steps; epoch 1 ends on the falling cosine, epoch 2 at
# lr / 25 / 1e4 (torch OneCycleLR's final lr)
expect_exit 0 "epoch 2: train" -- "$BIN" train -c cfg.yaml run.threads=1 training.lr_scheduler=onecycle output.dir=onecycle
lrs=$(sed 's/.*"lr": \([^,]*\),.*/\1/' onecycle/metrics.jsonl | paste -sd' ')
awk -v l="$lrs" 'BEGIN { split(l, a, " "); t = 5; e = 0.3 * 12 - 1; x = (t - e) / (11 - e); top = 1e-3; end = top / 25 / 1e4
  want = end + (top - end) * (1 + cos(3.141592653589793 * x)) / 2
  exit !(a[1] / want - 1 < 1e-5 && a[1] / want - 1 > -1e-5 && a[2] / end - 1 < 1e-5 && a[2] / end - 1 > -1e-5) }' \
  && ok "one-cycle lr per step ($lrs)" || fail "one-cycle lrs: $lrs"
ncdump -h moe/last.nc | grep -q 'gate_lr_scale = 100' && ok "gate_lr_scale in the checkpoint" || fail "no gate_lr_scale in /optim"

# Forecasts: both layouts, CF attributes, lonlat grid for CDO.
expect_exit 0 "wrote 3 initialisations x 2 leads" -- "$BIN" forecast --checkpoint run/best.nc --dataset ds.nc \
  --init 2000-11-20T00/2000-11-20T12 --lead 6h,24h --out fc.nc
ncdump -h fc.nc | grep -q 'z500(forecast_reference_time, forecast_period, latitude, longitude)' && ok "forecast layout" || fail "forecast layout"
ncdump -h fc.nc | grep -q 'double time(forecast_reference_time, forecast_period)' && ok "2-D valid time" || fail "no 2-D time"
ncdump -h fc.nc | grep -q ':Conventions = "CF-1.8"' && ok "CF-1.8" || fail "Conventions"
if command -v cdo >/dev/null; then
  cdo sinfon fc.nc 2>/dev/null | grep -q "lonlat" && ok "cdo sees a lonlat grid" || fail "cdo sinfon: no lonlat grid"
else skip_or_fail "cdo missing"; fi
expect_exit 0 "one file per init" -- "$BIN" forecast --checkpoint run/best.nc --dataset ds.nc --init 2000-11-20T00,2000-11-21T00 \
  --lead 6h,12h --out 'fc_{init}.nc' --split-by init
[ -s fc_20001120T0000.nc ] && [ -s fc_20001121T0000.nc ] && ok "split files" || fail "split files missing"
ncdump -h fc_20001120T0000.nc | grep -q 'float t2m(time, latitude, longitude)' && ok "split layout" || fail "split layout"

# Bad input.
expect_exit 1 "--lead 5h is not a multiple of the model step 6h" -- "$BIN" forecast --checkpoint run/best.nc --dataset ds.nc --init 2000-11-20T00 --lead 5h --out bad.nc
expect_exit 1 "--init 2003-01-01T00 is not a time of" -- "$BIN" forecast --checkpoint run/best.nc --dataset ds.nc --init 2003-01-01T00 --lead 6h --out bad.nc
"$BIN" ingest --grid native --var z500 --out only_z.nc data/toy-atmosphere.nc >/dev/null 2>&1
expect_exit 1 "does not fit checkpoint run/best.nc: .*variable 't2m' \(from data.prognostic\) is not in the dataset" -- "$BIN" forecast --checkpoint run/best.nc --dataset only_z.nc --init 2000-11-20T00 --lead 6h --out bad.nc
[ ! -e bad.nc ] && ok "no output after errors" || fail "bad.nc left behind"
expect_exit 1 "variable 'q700' \(from data.prognostic\) is not in the dataset; it has: z500, t2m, lsm" -- "$BIN" train -c cfg.yaml data.prognostic=[q700] output.dir=bad
expect_exit 2 "missing.nc" -- "$BIN" train -c cfg.yaml data.dataset=missing.nc output.dir=bad
expect_exit 1 "missing required key 'data.dataset'" -- "$BIN" train data.prognostic=[z500]

# NaN input: stop with the variable and time named.
if /usr/bin/python3 -c "import netCDF4" 2>/dev/null; then
  cp ds.nc nan.nc
  /usr/bin/python3 -c "
import netCDF4, numpy as np
d = netCDF4.Dataset('nan.nc', 'a'); v = d['t2m']; x = v[100]; x[3, 4] = np.nan; v[100] = x; d.close()"
  expect_exit 2 "variable t2m at 2000-01-26T00:00 has NaN" -- "$BIN" train -c cfg.yaml data.dataset=nan.nc output.dir=nanrun training.steps_per_epoch=0 training.epochs=1
else skip_or_fail "python3 netCDF4 missing"; fi

# NaN/divergence: a huge learning rate stops with exit 3 and keeps nothing half-written.
expect_exit 3 "diverged" -- "$BIN" train -c cfg.yaml training.lr=10 training.optimizer=sgd training.momentum=0.99 output.dir=div

# SIGINT: exit 130, a resumable last.nc, no temporary files.
"$BIN" train -c cfg.yaml training.epochs=50 training.steps_per_epoch=0 output.dir=intr >intr.log 2>&1 &
pid=$!
for i in $(seq 1 100); do grep -q "epoch 1/50" intr.log 2>/dev/null && break; sleep 0.1; done
sleep 1; kill -INT $pid; wait $pid; rc=$?
[ $rc = 130 ] && ok "SIGINT exits 130" || fail "SIGINT exit $rc: $(tail -2 intr.log)"
[ -s intr/last.nc ] && ok "interrupted run left last.nc" || fail "no last.nc after SIGINT"
ls intr/.*.tmp.* >/dev/null 2>&1 && fail "temporary files left" || ok "no temporary files"
expect_exit 0 "resuming from" -- "$BIN" train -c cfg.yaml training.epochs=1 training.steps_per_epoch=0 output.dir=intr --resume
finish
