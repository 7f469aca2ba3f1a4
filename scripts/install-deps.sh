#!/usr/bin/env bash
# Installs the Debian 12 packages smoecast builds with, and the ones its tests use as independent
# references. Non-interactive and idempotent: does nothing when everything is present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libnetcdf-dev libeccodes-dev libopenblas-dev libcmocka-dev libyaml-dev libudunits2-dev libssl-dev
  libopenmpi-dev openmpi-bin
  libgmt-dev gmt gmt-common gmt-gshhg-low ghostscript
  libeccodes-tools netcdf-bin cdo
  python3-torch python3-numpy python3-scipy python3-xarray python3-netcdf4 python3-cfgrib
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
