#!/bin/bash
# Acceptance on the shared NetCDF files (see ingest_shared_lib.sh).
source "$(dirname "$0")/ingest_shared_lib.sh"

check nc xarray-data__eraint_uvz.nc "z200:z:200 u500:u:500 v850:v:850"
check nc earthkit-data__test4.nc "t500:t:500 z850:z:850"
check nc geocat-datafiles__era5_1995-07-14T12.nc "u10:u10 v10:v10 d2m:d2m t2m:t2m sp:sp t2m_C:t2m_C d2m_C:d2m_C"
check nc geocat-datafiles__landsea.nc "LSMASK:LSMASK"
check nc ncep-reanalysis__air-2013.nc "air:air"
finish
