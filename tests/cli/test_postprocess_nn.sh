# Neural post-processing (mlp, unet, smoe) through the shared training engine: a few CRPS
# steps, checkpoints, metrics.jsonl, exact --resume (also with the weight average), scores, and apply with the checkpoint.
. "$(dirname "$0")/lib.sh"
cd "$TMP"
. "$(dirname "$0")/postprocess_lib.sh"
expect_exit 0 "epoch 2: train .* \(t2m crps" -- "$BIN" postprocess fit -c cfg.yaml
[ -s mlp/best.nc ] && [ -s mlp/last.nc ] && ok "checkpoints written" || fail "best.nc/last.nc missing"
[ "$(wc -l < mlp/metrics.jsonl)" = 2 ] && ok "metrics.jsonl: one line per epoch" || fail "metrics.jsonl: $(cat mlp/metrics.jsonl)"
grep -q '"val_crps": {"t2m": [0-9]' mlp/metrics.jsonl && ok "metrics carry the validation CRPS" || fail "metrics lack val_crps"
grep -q '"crps": [0-9]' mlp/scores_mlp.json && grep -q '"split": "test"' mlp/scores_mlp.json && ok "test scores" || fail "scores: $(cat mlp/scores_mlp.json)"
ncdump -h mlp/best.nc | grep -q 'input_variables = "t2m_mean,t2m_std,t850_mean,t850_std,sin_lat,cos_lat_sin_lon,cos_lat_cos_lon"' \
  && ok "checkpoint names the features" || fail "checkpoint input_variables"

# exact resume: 1 epoch + --resume to 2 epochs == 2 epochs straight
params() { ncdump -p 9,17 "$1" | sed -n '/group: params/,/group: optim/p'; }
expect_exit 0 "epoch 1: train" -- "$BIN" postprocess fit -c cfg.yaml training.epochs=1 output.dir=split
expect_exit 0 "resuming from" -- "$BIN" postprocess fit -c cfg.yaml output.dir=split --resume
if [ -n "$(params mlp/last.nc)" ] && diff <(params mlp/last.nc) <(params split/last.nc) >/dev/null; then ok "resume is exact"; else fail "resumed weights differ"; fi
# ... also with the weight average (training.ema_decay): /params hold the average, /ema the raw weights
state() { ncdump -p 9,17 "$1" | sed -n '/group: params/,$p'; }
expect_exit 0 "epoch 2: train" -- "$BIN" postprocess fit -c cfg.yaml training.ema_decay=0.9 output.dir=ema
expect_exit 0 "epoch 1: train" -- "$BIN" postprocess fit -c cfg.yaml training.ema_decay=0.9 training.epochs=1 output.dir=emasplit
expect_exit 0 "resuming from" -- "$BIN" postprocess fit -c cfg.yaml training.ema_decay=0.9 output.dir=emasplit --resume
if ncdump -h ema/last.nc | grep -q "group: ema" && diff <(state ema/last.nc) <(state emasplit/last.nc) >/dev/null; then ok "resume with the weight average is exact"; else fail "resumed EMA post-processing network differs"; fi
expect_exit 1 "--resume applies to the neural methods" -- "$BIN" postprocess fit -c cfg.yaml --method emos --resume output.dir=e

# apply with the checkpoint
expect_exit 0 "mlp-calibrated t2m for 104 forecasts" -- "$BIN" postprocess apply --model mlp/best.nc --forecast ens.nc --out cal.nc --lead 48h
ncdump -h cal.nc | grep -q 'float t2m_sigma(forecast_reference_time, latitude, longitude)' && ok "neural CF output" || fail "cal.nc layout"
"$BIN" ingest --grid native --var t2m --out only_t2m.nc syn/ensemble.nc >/dev/null 2>&1
expect_exit 2 "predictor 't850' is not in the ensemble dataset" -- "$BIN" postprocess apply --model mlp/best.nc --forecast only_t2m.nc --out x.nc --lead 48h

# U-Net and SMoE train a few steps through the same engine
expect_exit 0 "unet on test" -- "$BIN" postprocess fit -c cfg.yaml --method unet model.channels=[4,8] model.kernel=3 training.epochs=1 \
  training.steps_per_epoch=2 output.dir=unet
expect_exit 0 "smoe on test" -- "$BIN" postprocess fit -c cfg.yaml --method smoe model.architecture=cnn model.channels=[8] model.kernel=3 \
  model.moe.experts=3 model.moe.gate=latent training.epochs=1 training.steps_per_epoch=2 output.dir=smoe
grep -q '"routing": \[{"layer"' smoe/metrics.jsonl && ok "SMoE routing metrics logged" || fail "smoe metrics: $(cat smoe/metrics.jsonl)"
expect_exit 0 "smoe-calibrated t2m" -- "$BIN" postprocess apply --model smoe/best.nc --forecast ens.nc --out smoe.nc --lead 48h
# the configs/ens_smoe.yaml head: one latent-gated top-1 SMoE layer per output channel
expect_exit 0 "smoe on test" -- "$BIN" postprocess fit -c cfg.yaml --method smoe model.architecture=cnn model.channels=[8] model.kernel=3 \
  model.moe.experts=3 model.moe.gate=latent model.moe.outputs=per_channel model.moe.weighted=false model.moe.expert_kernel=1 \
  training.epochs=1 training.steps_per_epoch=2 output.dir=smoe_pc
grep -q '"routing": \[{"layer": "conv1_ch0".*{"layer": "conv1_ch1"' smoe_pc/metrics.jsonl && ok "per-channel SMoE head: routing metrics of both gates" \
  || fail "smoe_pc metrics: $(cat smoe_pc/metrics.jsonl)"
expect_exit 0 "smoe-calibrated t2m" -- "$BIN" postprocess apply --model smoe_pc/best.nc --forecast ens.nc --out smoe_pc.nc
expect_exit 1 "model.moe.outputs: per_channel" -- "$BIN" postprocess fit -c cfg.yaml --method smoe model.architecture=cnn model.channels=[8] \
  model.moe.experts=3 model.moe.k=2 model.moe.outputs=per_channel output.dir=smoe_bad
finish
