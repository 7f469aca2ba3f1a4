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

experiment_era5_uk() {
  local d=$work/era5_uk
  mkdir -p "$d" "$root/data"
  "$bin" ingest --grid native --var 2t --out "$root/data/era5_uk_t2m.nc" "$shared/xarray-data__era5-2mt-2019-03-uk.grib"
  for cfg in era5_uk_t2m era5_uk_t2m_dense; do
    /usr/bin/time -f "%e" -o "$d/$cfg.time" "$bin" train -c "configs/$cfg.yaml" output.dir="$d/$cfg"
    "$bin" forecast --checkpoint "$d/$cfg/best.nc" --dataset "$root/data/era5_uk_t2m.nc" \
      --init 2019-03-25T00/2019-03-30T23 --lead 6h,24h --out "$d/$cfg.fc.nc"
    "$bin" evaluate --forecast "$d/$cfg.fc.nc" --truth "$root/data/era5_uk_t2m.nc" \
      --baselines persistence,climatology,damped-persistence --out "$d/$cfg.scores.nc" > "$d/$cfg.table"
  done
  {
    echo "## ERA5 UK 2 m temperature (issue 7)"
    echo
    echo "Train 1-21 March 2019, validate 22-24, test inits every 6 h from 25 March 00Z while the lead"
    echo "stays inside the file; latitude-weighted RMSE, time mean before the root."
    for cfg in era5_uk_t2m era5_uk_t2m_dense; do
      echo; echo "### $cfg (trained in $(cat "$d/$cfg.time") s)"; echo; echo '```'; cat "$d/$cfg.table"; echo '```'
    done
  } > "$d/section.md"
  replace_section era5_uk "$d/section.md"
}

experiment_ncep_air() {
  local d=$work/ncep_air
  mkdir -p "$d" "$root/data"
  "$bin" ingest --grid native --var air --out "$root/data/ncep_air_2013.nc" "$shared/ncep-reanalysis__air-2013.nc"
  for cfg in ncep_air ncep_air_dense; do
    /usr/bin/time -f "%e" -o "$d/$cfg.time" "$bin" train -c "configs/$cfg.yaml" output.dir="$d/$cfg"
    "$bin" forecast --checkpoint "$d/$cfg/best.nc" --dataset "$root/data/ncep_air_2013.nc" \
      --init 2013-11-06T00/2013-12-26T18 --lead 1d,3d,5d --out "$d/$cfg.fc.nc"
    "$bin" evaluate --forecast "$d/$cfg.fc.nc" --truth "$root/data/ncep_air_2013.nc" \
      --baselines persistence,climatology,damped-persistence --out "$d/$cfg.scores.nc" > "$d/$cfg.table"
  done
  {
    echo "## NCEP reanalysis air temperature, medium range (issue 7)"
    echo
    echo "Trained January-October 2013; scored on the validation months November-December 2013 (the"
    echo "held-out year 2014 is scored independently)."
    for cfg in ncep_air ncep_air_dense; do
      echo; echo "### $cfg (trained in $(cat "$d/$cfg.time") s)"; echo; echo '```'; cat "$d/$cfg.table"; echo '```'
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
