#!/bin/bash
# Acceptance on the shared NetCDF files (see ingest_shared_lib.sh).
source "$(dirname "$0")/ingest_shared_lib.sh"

check nc xarray-data__eraint_uvz.nc "z200:z:200 u500:u:500 v850:v:850"
check nc earthkit-data__test4.nc "t500:t:500 z850:z:850"
check nc geocat-datafiles__era5_1995-07-14T12.nc "u10:u10 v10:v10 d2m:d2m t2m:t2m sp:sp t2m_C:t2m_C d2m_C:d2m_C"
check nc geocat-datafiles__landsea.nc "LSMASK:LSMASK"
check nc ncep-reanalysis__air-2013.nc "air:air"

# a mix: a static categorical NetCDF field and a GRIB ensemble in one dataset on wb5625
if "$BIN" -q ingest --grid wb5625 --var LSMASK --categorical LSMASK --var z:500 --out "$W/mix.nc" \
    "$DATA/geocat-datafiles__landsea.nc" "$DATA/cfgrib__era5-levels-members.grib" 2>"$W/err" &&
    $PY - "$W/mix.nc" <<'PY'
import sys, netCDF4, numpy as np
d = netCDF4.Dataset(sys.argv[1])
m, z = d["LSMASK"], d["z500"]
assert m.dimensions == ("latitude", "longitude"), m.dimensions
assert z.dimensions == ("time", "realization", "latitude", "longitude"), z.dimensions
v = np.asarray(m[:])
assert set(np.unique(v)) <= {0, 1, 2, 3, 4} and (v == 0).any() and (v == 1).any(), np.unique(v)
assert m.smoecast_categorical == 1 and len(d["realization"]) == 10 and len(d["time"]) == 4
print("ingest_compare: static categorical NetCDF + GRIB ensemble on wb5625: categories kept, members kept")
PY
then :; else echo "FAIL mixed NetCDF + GRIB"; cat "$W/err"; fails=$((fails + 1)); fi
finish
