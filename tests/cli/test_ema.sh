# training.ema_decay: off is the plain training, the checkpoint's /params follow the EMA
# recurrence over the raw SGD trajectory (which the average does not change), /ema keeps the
# raw weights, --resume is exact with the average on, and forecast reads the averaged weights.
. "$(dirname "$0")/lib.sh"
/usr/bin/python3 -c "import netCDF4, numpy" 2>/dev/null || skip_or_fail "python3 netCDF4/numpy missing"
cd "$TMP"
toy_dataset 3
# plain SGD, constant lr, one step per epoch: epochs=k from scratch gives the raw weights after k
# steps (lr=0 the initial ones); a constant schedule keeps the EMA's validation out of the trajectory
cat > cfg.yaml <<'YAML'
data:
  dataset: ds.nc
  prognostic: [z500, t2m]
  forcing: [lsm, hour_of_day]
  lead_time: 6h
  train_end: 2000-09-30T18
  val_start: 2000-10-01
  val_end: 2000-10-15
model:
  architecture: cnn
  channels: [8]
  kernel: 3
training:
  epochs: 3
  batch_size: 8
  steps_per_epoch: 1
  optimizer: sgd
  momentum: 0
  lr: 0.05
  lr_scheduler: constant
output:
  dir: run
YAML
T=(run.threads=1)
# dump of everything after the header (params, optim, ema, schedule, rng, ...)
state() { ncdump -p 9,17 "$1" | sed -n '/group: params/,$p'; }

# (1) ema_decay 0 is the plain training: identical checkpoint, no /ema group
expect_exit 0 "epoch 3: train" -- "$BIN" train -c cfg.yaml "${T[@]}" output.dir=plain
expect_exit 0 "epoch 3: train" -- "$BIN" train -c cfg.yaml "${T[@]}" training.ema_decay=0 output.dir=off
if [ -n "$(state plain/last.nc)" ] && diff <(state plain/last.nc) <(state off/last.nc) >/dev/null; then ok "ema_decay 0 is the plain training"; else fail "ema_decay 0 changes the checkpoint"; fi
ncdump -h off/last.nc | grep -q "group: ema" && fail "/ema written with ema_decay 0" || ok "no /ema group when off"

# (2) the recurrence: decay 0.15 (the warm-up min(d, (1+n)/(10+n)) is 0.1 at n = 0, then d)
expect_exit 0 "epoch 1: train" -- "$BIN" train -c cfg.yaml "${T[@]}" training.epochs=1 training.lr=0 output.dir=p0
for k in 1 2; do
  expect_exit 0 "epoch $k: train" -- "$BIN" train -c cfg.yaml "${T[@]}" training.epochs=$k output.dir=p$k
done
expect_exit 0 "epoch 3: train" -- "$BIN" train -c cfg.yaml "${T[@]}" training.ema_decay=0.15 output.dir=ema
out=$(/usr/bin/python3 - <<'PY' 2>&1
import netCDF4, numpy as np
def grp(path, g):
    with netCDF4.Dataset(path) as d:
        return {k: np.array(v[:], dtype=np.float32) for k, v in d[g].variables.items()}
traj = [grp('p0/last.nc', 'params'), grp('p1/last.nc', 'params'), grp('p2/last.nc', 'params'), grp('plain/last.nc', 'params')]
ema, raw = grp('ema/last.nc', 'params'), grp('ema/last.nc', 'ema')
bad = []
for name in traj[0]:
    s = traj[0][name].copy()
    for n in range(3):
        d = min(0.15, (1 + n) / (10 + n))
        s = s + np.float32(1 - d) * (traj[n + 1][name] - s)
    err = float(np.max(np.abs(s - ema[name])))
    if err > 1e-6 * (1 + float(np.max(np.abs(s)))): bad.append('%s: |ema - recurrence| %g' % (name, err))
    if not np.array_equal(raw[name], traj[3][name]): bad.append('%s: /ema raw weights differ from the plain run' % name)
    if np.array_equal(ema[name], raw[name]): bad.append('%s: average equals the raw weights' % name)
print('\n'.join(bad) if bad else 'OK')
PY
)
[ "$out" = OK ] && ok "checkpoint params follow the EMA recurrence; /ema holds the raw trajectory" || fail "EMA recurrence: $out"
ncdump -h ema/last.nc | grep -q "decay = 0.15" && ok "decay stored in /ema" || fail "no decay attribute in /ema"

# (3) exact resume with the average on (1 epoch + --resume == 3 epochs straight)
expect_exit 0 "epoch 1: train" -- "$BIN" train -c cfg.yaml "${T[@]}" training.ema_decay=0.15 training.epochs=1 output.dir=split
expect_exit 0 "resuming from" -- "$BIN" train -c cfg.yaml "${T[@]}" training.ema_decay=0.15 output.dir=split --resume
if [ -n "$(state ema/last.nc)" ] && diff <(state ema/last.nc) <(state split/last.nc) >/dev/null; then ok "resume with EMA is exact"; else fail "resumed EMA run differs"; fi
# ... also with Adam, BatchNorm (not averaged running statistics) and the default plateau schedule
bn=(training.optimizer=adam training.lr_scheduler=plateau model.architecture=resnet model.batchnorm=true model.blocks=1 training.ema_decay=0.5)
expect_exit 0 "epoch 3: train" -- "$BIN" train -c cfg.yaml "${T[@]}" "${bn[@]}" output.dir=bn
expect_exit 0 "epoch 2: train" -- "$BIN" train -c cfg.yaml "${T[@]}" "${bn[@]}" training.epochs=2 output.dir=bnsplit
expect_exit 0 "resuming from" -- "$BIN" train -c cfg.yaml "${T[@]}" "${bn[@]}" output.dir=bnsplit --resume
if [ -n "$(state bn/last.nc)" ] && diff <(state bn/last.nc) <(state bnsplit/last.nc) >/dev/null; then ok "resume with EMA + Adam + BatchNorm is exact"; else fail "resumed EMA/BatchNorm run differs"; fi

# switching mid-run: off -> on starts the average from the resumed weights, on -> off drops it
# and continues from the raw weights (the plain trajectory)
expect_exit 0 "has no weight average" -- "$BIN" train -c cfg.yaml "${T[@]}" training.ema_decay=0.15 output.dir=p2 --resume
expect_exit 0 "epoch 1: train" -- "$BIN" train -c cfg.yaml "${T[@]}" training.ema_decay=0.15 training.epochs=1 output.dir=dropped
expect_exit 0 "the average is dropped" -- "$BIN" train -c cfg.yaml "${T[@]}" output.dir=dropped --resume
params() { ncdump -p 9,17 "$1" | sed -n '/group: params/,/group: optim/p'; }
if diff <(params plain/last.nc) <(params dropped/last.nc) >/dev/null; then ok "resume without EMA continues the raw weights"; else fail "dropping the average changed the raw trajectory"; fi

# forecast reads /params, i.e. the average, without knowing about it
expect_exit 0 "wrote 1 initialisations x 1 leads" -- "$BIN" forecast --checkpoint ema/last.nc --dataset ds.nc --init 2000-10-05T00 --lead 6h --out fc_ema.nc
expect_exit 0 "wrote 1 initialisations x 1 leads" -- "$BIN" forecast --checkpoint plain/last.nc --dataset ds.nc --init 2000-10-05T00 --lead 6h --out fc_raw.nc
cmp -s fc_ema.nc fc_raw.nc && fail "forecast ignores the averaged weights" || ok "forecast uses the averaged weights"
finish
