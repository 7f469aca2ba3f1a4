#!/usr/bin/env bash
# The end-to-end demo on built-in synthetic data: installs dependencies if missing, builds,
# then runs synth -> ingest -> train -> forecast -> evaluate (-> expert maps) into demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
bin=$PWD/build/smoecast
out=demo-out
rm -rf "$out" && mkdir -p "$out"
start=$(date +%s)
step() { echo; echo "== $*"; }

step "1. synthetic data: 240 days of the toy atmosphere as GRIB2 and NetCDF"
$bin synth toy-atmosphere --out "$out/data" --days 240 --seed 1

step "2. ingest the GRIB2 file into a dataset (native 5.625 deg grid)"
$bin ingest --grid native --var z:500 --var t:850 --var 2t --var lsm --categorical lsm \
    --out "$out/data/toy.nc" "$out/data/toy-atmosphere.grib2"
$bin inspect "$out/data/toy.nc"

step "3. train the SMoE CNN (latent gate in the last layer) for a few short epochs"
$bin train -c configs/toy_forecast_smoe.yaml data.dataset="$out/data/toy.nc" output.dir="$out/run" \
    data.train_end=2000-06-30T18 data.val_start=2000-07-01 data.val_end=2000-07-31T18 \
    data.test_start=2000-08-01 data.test_end=2000-08-27T18 \
    training.epochs=3 training.steps_per_epoch=60

step "4. forecast every 6 h of 1-20 August at +6 h and +24 h, with the expert maps"
$bin forecast --checkpoint "$out/run/best.nc" --dataset "$out/data/toy.nc" \
    --init 2000-08-01T00/2000-08-20T18 --lead 6h,24h --out "$out/forecast.nc" --write-experts

step "5. evaluate against the truth and the baselines"
$bin evaluate --forecast "$out/forecast.nc" --truth "$out/data/toy.nc" \
    --baselines persistence,climatology,damped-persistence --out "$out/scores.nc"

step "6. expert-location maps and per-expert statistics"
$bin experts --checkpoint "$out/run/best.nc" --out "$out/experts.nc" --stats "$out/experts.csv" \
    --forecast "$out/forecast.nc" --truth "$out/data/toy.nc"
if $bin plot --help >/dev/null 2>&1; then
  # one map per SMoE layer (the toy config has one SMoE per output variable: expert_map_<layer>);
  # the toy's continents are its own, so no Earth coastlines
  for map in $(ncdump -h "$out/experts.nc" | grep -o 'int expert_map[A-Za-z0-9_]*' | cut -d' ' -f2); do
    $bin plot "$out/experts.nc" --var "$map" --no-coastlines --out "$out/${map/expert_map/experts}.png"
  done
fi

echo
echo "demo finished in $(( $(date +%s) - start )) s; outputs in $out/:"
find "$out" -maxdepth 2 -type f -printf '  %p (%s bytes)\n' | sort
