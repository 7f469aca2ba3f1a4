#!/usr/bin/env bash
# Reproducible experiments; results are recorded in docs/experiments.md.
#
#   scripts/experiments.sh postprocess [SEEDS] [EPOCHS]
#
# postprocess: ensemble post-processing acceptance (issue 8, docs/postprocess.md) on the
# synthetic ensemble (docs/synthetic.md): for each seed (default "1 2 3") generate
# `smoecast synth ensemble` (3 years 2000-2002 + 2 model-climate years, 10 members), ingest
# it, and fit raw, EMOS global, EMOS per grid point, MLP, U-Net and SMoE (configs/ens_*.yaml,
# target t2m; train 2000-01 .. 2001-10, validation 2001-11/12, test 2002). Every method writes
# scores_<method>.json (test CRPS, spread-skill ratio, coverage, EECRPS from the model climate);
# the script prints a table per seed and the mean over seeds.
# Environment: SMOECAST (binary, default build/smoecast), EXP_DIR (default runs/experiments),
# THREADS (default 0 = all cores).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SMOECAST:-$ROOT/build/smoecast}
OUT=${EXP_DIR:-$ROOT/runs/experiments}
THREADS=${THREADS:-0}

postprocess() {
  local seeds=${1:-"1 2 3"} epochs=${2:-30}
  local methods="raw emos_global emos mlp unet smoe"
  mkdir -p "$OUT/postprocess"
  for s in $seeds; do
    local d="$OUT/postprocess/seed$s"
    mkdir -p "$d/data"
    if [ ! -s "$d/data/climate.nc" ]; then
      "$BIN" synth ensemble --out "$d/syn" --seed "$s"
      for f in ens:ensemble truth:ensemble_truth climate:ensemble_climate; do
        "$BIN" ingest --grid native --var z500 --var t850 --var t2m --out "$d/data/${f%%:*}.nc" "$d/syn/${f#*:}.nc"
      done
    fi
    local data="postprocess.forecast=$d/data/ens.nc postprocess.truth=$d/data/truth.nc postprocess.climate=$d/data/climate.nc"
    local common="run.seed=$s run.threads=$THREADS $data"
    for m in $methods; do
      [ -s "$d/$m/scores_${m%_global}.json" ] && continue
      case $m in
        raw) "$BIN" postprocess fit -c "$ROOT/configs/ens_emos.yaml" --method raw $common output.dir="$d/$m" ;;
        emos_global) "$BIN" postprocess fit -c "$ROOT/configs/ens_emos.yaml" postprocess.emos_scope=global $common output.dir="$d/$m" ;;
        emos) "$BIN" postprocess fit -c "$ROOT/configs/ens_emos.yaml" $common output.dir="$d/$m" ;;
        *) "$BIN" postprocess fit -c "$ROOT/configs/ens_$m.yaml" $common training.epochs="$epochs" output.dir="$d/$m" ;;
      esac
    done
  done
  /usr/bin/python3 - "$OUT/postprocess" $seeds <<'PY'
import json, os, sys
root, seeds = sys.argv[1], sys.argv[2:]
methods = ["raw", "emos_global", "emos", "mlp", "unet", "smoe"]
keys = ["crps", "crps_fair", "rmse", "spread", "ssr", "coverage80", "eecrps"]
rows = {m: [] for m in methods}
for s in seeds:
    print(f"seed {s}")
    print("| method | " + " | ".join(keys) + " |")
    for m in methods:
        p = os.path.join(root, f"seed{s}", m, f"scores_{m.replace('_global', '')}.json")
        if not os.path.exists(p):
            continue
        r = json.load(open(p))
        rows[m].append(r)
        print(f"| {m} | " + " | ".join("-" if r.get(k) is None else f"{r[k]:.4f}" for k in keys) + " |")
print(f"mean over seeds {' '.join(seeds)}")
print("| method | seeds | " + " | ".join(keys) + " |")
for m in methods:
    if not rows[m]:
        continue
    vals = []
    for k in keys:
        v = [r[k] for r in rows[m] if r.get(k) is not None]
        vals.append("-" if not v else f"{sum(v) / len(v):.4f}")
    print(f"| {m} | {len(rows[m])} | " + " | ".join(vals) + " |")
PY
}

case ${1:-} in
  postprocess) shift; postprocess "$@" ;;
  *) echo "usage: scripts/experiments.sh postprocess [SEEDS] [EPOCHS]" >&2; exit 1 ;;
esac
