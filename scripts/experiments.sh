#!/usr/bin/env bash
# Long acceptance experiments (several minutes each; not part of the test command). Each
# experiment is a function writing its table into docs/experiments.md between markers
#   <!-- begin NAME --> ... <!-- end NAME -->
# Usage: scripts/experiments.sh [NAME ...]   (default: all). Needs ../shared/data for the real-data
# experiments. Work files go to experiments-out/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/build/smoecast
shared=${SMOECAST_SHARED_DATA:-$root/../shared/data}
work=$root/experiments-out
doc=$root/docs/experiments.md
mkdir -p "$work"
[ -x "$bin" ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j"$(nproc)" >/dev/null; }

# replace_section NAME FILE: puts FILE's content between the markers of NAME in docs/experiments.md.
replace_section() {
  local name=$1 body=$2
  [ -f "$doc" ] || printf '# Experiments\n\nTables written by `scripts/experiments.sh`; rerun it to refresh them.\n' > "$doc"
  if ! grep -q "<!-- begin $name -->" "$doc"; then printf '\n<!-- begin %s -->\n<!-- end %s -->\n' "$name" "$name" >> "$doc"; fi
  /usr/bin/python3 - "$doc" "$name" "$body" <<'PY'
import sys, re
doc, name, body = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
text = open(doc).read()
pat = re.compile(r"(<!-- begin %s -->\n).*?(<!-- end %s -->)" % (re.escape(name), re.escape(name)), re.S)
open(doc, "w").write(pat.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text))
PY
}

# have_evaluate: true when this build has `smoecast evaluate` (baselines beside the model).
have_evaluate() { "$bin" evaluate --help >/dev/null 2>&1; }

# train_and_score D CFG DATASET INIT_RANGE LEADS SCORE_START SCORE_END: trains configs/CFG.yaml into
# D/CFG (timed: user+system CPU seconds and wall seconds), forecasts INIT_RANGE at LEADS and scores
# the 6-hourly inits from SCORE_START whose valid time is at most SCORE_END with
# scripts/score_rmse.py (latitude-weighted RMSE, time mean before the root, beside persistence).
train_and_score() {
  local d=$1 cfg=$2 ds=$3 inits=$4 leads=$5 s0=$6 s1=$7
  # SMOECAST_EXPERIMENTS_REUSE=1 keeps a finished run of the same config (best.nc and its .time).
  if [ "${SMOECAST_EXPERIMENTS_REUSE:-0}" != 1 ] || [ ! -s "$d/$cfg/best.nc" ] || [ ! -s "$d/$cfg.time" ]; then
    /usr/bin/time -f "%U %S %e" -o "$d/$cfg.time" "$bin" train -c "configs/$cfg.yaml" output.dir="$d/$cfg" \
      > "$d/$cfg.train.log" 2>&1
  fi
  "$bin" --quiet forecast --checkpoint "$d/$cfg/best.nc" --dataset "$ds" --init "$inits" --lead "$leads" --out "$d/$cfg.fc.nc"
  /usr/bin/python3 scripts/score_rmse.py "$d/$cfg.fc.nc" "$ds" "$s0" 6 "$s1" > "$d/$cfg.table"
  if have_evaluate; then
    "$bin" evaluate --forecast "$d/$cfg.fc.nc" --truth "$ds" --baselines persistence,climatology,damped-persistence \
      --out "$d/$cfg.scores.nc" >> "$d/$cfg.table"
  fi
}

# describe D CFG: the heading line of one trained config (parameters counted in its checkpoint,
# CPU and wall time of training).
describe() {
  local d=$1 cfg=$2 params cpu wall
  params=$(/usr/bin/python3 -c '
import sys, netCDF4
print(sum(v.size for v in netCDF4.Dataset(sys.argv[1])["params"].variables.values()))' "$d/$cfg/best.nc")
  read -r u s wall < "$d/$cfg.time"
  cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.0f", u + s }')
  echo "### $cfg: ${params:-?} trainable parameters, trained in $cpu CPU s ($wall s wall)"
}

experiment_era5_uk() {
  local d=$work/era5_uk ds=$root/data/era5_uk_t2m.nc
  mkdir -p "$d" "$root/data"
  "$bin" --quiet ingest --grid native --var 2t --out "$ds" "$shared/xarray-data__era5-2mt-2019-03-uk.grib"
  for cfg in era5_uk_t2m era5_uk_t2m_dense; do
    train_and_score "$d" "$cfg" "$ds" 2019-03-25T00/2019-03-31T12 6h,24h 2019-03-25T00 2019-03-31T23
    # validation (22-24 March), the period the configs were tuned on
    "$bin" --quiet forecast --checkpoint "$d/$cfg/best.nc" --dataset "$ds" --init 2019-03-22T00/2019-03-24T18 \
      --lead 6h,24h --out "$d/$cfg.val.fc.nc"
    /usr/bin/python3 scripts/score_rmse.py "$d/$cfg.val.fc.nc" "$ds" 2019-03-22T00 6 2019-03-24T23 > "$d/$cfg.val.table"
  done
  {
    echo "## ERA5 UK 2 m temperature (issue 7)"
    echo
    echo "Train 1-21 March 2019, validate 22-24, test inits every 6 h from 25 March 00Z while the lead"
    echo "stays inside the file; latitude-weighted RMSE, time mean before the root (scripts/score_rmse.py)."
    echo "Targets: +6 h <= 0.58x and +24 h <= 0.95x persistence. CPU seconds are user + system time of"
    echo "\`smoecast train\` on a shared, heavily loaded machine (the estimate for an idle 2-core machine)."
    have_evaluate || echo "Climatology and damped persistence are added by \`smoecast evaluate\` once this build has it."
    for cfg in era5_uk_t2m era5_uk_t2m_dense; do
      echo; describe "$d" "$cfg"; echo
      echo 'Test (25-31 March):'; echo; echo '```'; cat "$d/$cfg.table"; echo '```'
      echo; echo 'Validation (22-24 March):'; echo; echo '```'; cat "$d/$cfg.val.table"; echo '```'
    done
  } > "$d/section.md"
  replace_section era5_uk "$d/section.md"
}

experiment_ncep_air() {
  local d=$work/ncep_air ds=$root/data/ncep_air_2013.nc
  mkdir -p "$d" "$root/data"
  "$bin" --quiet ingest --grid native --var air --out "$ds" "$shared/ncep-reanalysis__air-2013.nc"
  for cfg in ncep_air ncep_air_dense; do
    train_and_score "$d" "$cfg" "$ds" 2013-11-01T00/2013-12-30T18 1d,3d,5d 2013-11-01T00 2013-12-31T18
  done
  {
    echo "## NCEP reanalysis air temperature, medium range (issue 7)"
    echo
    echo "Trained January-October 2013; scored on the validation months November-December 2013 (every"
    echo "6-hourly init whose lead stays inside 2013; latitude-weighted RMSE, time mean before the root)."
    echo "The held-out year 2014 is scored independently; these numbers are the tuning estimate only."
    echo "Targets on 2014: <= 0.75x persistence at +1 d, <= 0.80x at +3 d and +5 d."
    have_evaluate || echo "Climatology and damped persistence are added by \`smoecast evaluate\` once this build has it."
    for cfg in ncep_air ncep_air_dense; do
      echo; describe "$d" "$cfg"; echo; echo '```'; cat "$d/$cfg.table"; echo '```'
    done
  } > "$d/section.md"
  replace_section ncep_air "$d/section.md"
}

# Ensemble post-processing acceptance (issue 8, docs/postprocess.md) on the synthetic ensemble:
# for each seed in PP_SEEDS (default "1 2 3"): `smoecast synth ensemble` (3 years 2000-2002 + 2
# model-climate years, 10 members), ingest, then raw, EMOS global, EMOS per grid point, U-Net and
# SMoE (configs/ens_*.yaml, target t2m, train 2000-01..2001-10, validation 2001-11/12, test
# 2002), PP_EPOCHS (default 30) epochs for the networks. Each method writes scores_<m>.json
# (test CRPS, spread-skill, coverage, EECRPS); the table is the per-seed and mean scores.
experiment_postprocess() {
  local d=$work/postprocess seeds=${PP_SEEDS:-"1 2 3"} epochs=${PP_EPOCHS:-30}
  mkdir -p "$d"
  for s in $seeds; do
    local e="$d/seed$s"
    mkdir -p "$e/data"
    if [ ! -s "$e/data/climate.nc" ]; then
      "$bin" synth ensemble --out "$e/syn" --seed "$s"
      for f in ens:ensemble truth:ensemble_truth climate:ensemble_climate; do
        "$bin" ingest --grid native --var z500 --var t850 --var t2m --out "$e/data/${f%%:*}.nc" "$e/syn/${f#*:}.nc"
      done
    fi
    local common="run.seed=$s postprocess.forecast=$e/data/ens.nc postprocess.truth=$e/data/truth.nc postprocess.climate=$e/data/climate.nc"
    for m in raw emos_global emos unet smoe; do
      [ -s "$e/$m/scores_${m%_global}.json" ] && continue
      case $m in
        raw) "$bin" postprocess fit -c configs/ens_emos.yaml --method raw $common output.dir="$e/$m" ;;
        emos_global) "$bin" postprocess fit -c configs/ens_emos.yaml postprocess.emos_scope=global $common output.dir="$e/$m" ;;
        emos) "$bin" postprocess fit -c configs/ens_emos.yaml $common output.dir="$e/$m" ;;
        *) "$bin" postprocess fit -c "configs/ens_$m.yaml" $common training.epochs="$epochs" output.dir="$e/$m" ;;
      esac
    done
  done
  {
    echo "## Ensemble post-processing on the synthetic ensemble (issue 8)"
    echo
    echo "Target t2m, test year 2002 (104 forecasts x 2048 points), latitude-weighted; EECRPS from the"
    echo "model climate; networks trained $epochs epochs. See docs/postprocess.md."
    echo
    echo '```'
    /usr/bin/python3 - "$d" $seeds <<'PY'
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
    echo '```'
  } > "$d/section.md"
  replace_section postprocess "$d/section.md"
}

all=(era5_uk ncep_air postprocess)
declare -F experiment_heat >/dev/null && all+=(heat)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")
for n in "${names[@]}"; do
  echo "== experiment $n"
  "experiment_$n"
done
