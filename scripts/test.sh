#!/usr/bin/env bash
# Installs dependencies, builds the normal and the sanitizer (ASan+UBSan) trees and runs every
# test in both. This is the README's test command and what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
start=$(date +%s)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSMOECAST_SANITIZE=ON
cmake --build build-asan -j"$jobs"

status=0
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 900 || status=1
# MPI tests run in the normal build only: libmpi itself reports leaks under ASan.
ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 900 -LE mpi || status=1

echo "test.sh: finished in $(( $(date +%s) - start )) s"
exit $status
