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

step "1. synthetic data: one year of the toy atmosphere as GRIB2 and NetCDF"
$bin synth toy-atmosphere --out "$out/data" --years 1 --seed 1

step "2. ingest the GRIB2 file into a dataset (native 5.625 deg grid)"
$bin ingest --grid native --var z:500 --var t:850 --var 2t --var lsm --categorical lsm \
    --out "$out/data/toy.nc" "$out/data/toy-atmosphere.grib2"
$bin inspect "$out/data/toy.nc"

step "3. train the SMoE CNN (latent gate in the last layer) for a few short epochs"
$bin train -c configs/toy_forecast_smoe.yaml data.dataset="$out/data/toy.nc" output.dir="$out/run" \
    data.train_end=2000-09-30T18 data.val_start=2000-10-01 data.val_end=2000-11-15T18 \
    data.test_start=2000-11-16 data.test_end=2000-12-31T18 \
    training.epochs=3 training.steps_per_epoch=60

step "4. forecast from every 6 h of 1-3 December at +6 h and +24 h"
$bin forecast --checkpoint "$out/run/best.nc" --dataset "$out/data/toy.nc" \
    --init 2000-12-01T00/2000-12-03T18 --lead 6h,24h --out "$out/forecast.nc"

if $bin evaluate --help >/dev/null 2>&1; then
  step "5. evaluate against the truth and the baselines"
  $bin evaluate --forecast "$out/forecast.nc" --truth "$out/data/toy.nc" \
      --baselines persistence,climatology,damped-persistence --out "$out/scores.nc"
fi

echo
echo "demo finished in $(( $(date +%s) - start )) s; outputs in $out/:"
find "$out" -maxdepth 2 -type f -printf '  %p (%s bytes)\n' | sort
