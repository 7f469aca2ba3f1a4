#!/usr/bin/env bash
# The end-to-end demo on built-in synthetic data: installs dependencies if missing, builds,
# then runs synth -> ingest -> train -> forecast -> evaluate -> expert maps into demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
bin=build/smoecast
out=demo-out
rm -rf "$out" && mkdir -p "$out"

step() { echo; echo "== $*"; }
step "smoecast synth toy-atmosphere"
$bin synth toy-atmosphere --out "$out" --seed 1
ls -l "$out"
