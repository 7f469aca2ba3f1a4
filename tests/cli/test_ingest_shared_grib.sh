#!/bin/bash
# Acceptance on the shared GRIB files (see ingest_shared_lib.sh).
source "$(dirname "$0")/ingest_shared_lib.sh"

check grib xarray-data__era5-2mt-2019-03-uk.grib "2t:2t"
check grib cfgrib__era5-levels-members.grib "z500:z:500 t850:t:850 z850:z:850 t500:t:500"
check grib geocat-datafiles__z_tigge_c_egrr_20061028120000_0000_pt_glob_prod.grib2 "pv:pv"
check grib pygrib__gfs.grb "gh500:gh:500 t850:t:850 2t:2t r700:r:700 cicep:cicep"
check grib cfgrib__alternate-scanning.grib "2t:2t"
check grib cfgrib__scanning_mode_64.grib "skt:skt"
check grib cfgrib__fields_with_missing_values.grib "2t:2t"
check grib earthkit-data__ens_none.grib "2t:2t"
check grib cfgrib__regular_ll_msl.grib "prmsl:prmsl"
# the corrupted file: message 1 is an error (tests/cli/test_ingest_errors.sh); with --skip-bad
# message 2 is ingested and equals what grib_get_data decodes of it
# (ecCodes' grib_get stops at the broken message, so the reference is message 2 carved out by its
# GRIB1 length field: the valid message that ends exactly at the end of the file with "7777")
$PY - "$DATA/cfgrib__era5-levels-corrupted.grib" "$W/msg2.grib" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
for off in range(len(b) - 8):
    if b[off:off + 4] == b"GRIB" and b[off + 7] == 1:
        n = int.from_bytes(b[off + 4:off + 7], "big")
        if off > 0 and off + n == len(b) and b[-4:] == b"7777":
            open(sys.argv[2], "wb").write(b[off:])
            break
PY
if "$BIN" -q ingest --grid native --var t:850 --skip-bad --out "$W/corr.nc" "$DATA/cfgrib__era5-levels-corrupted.grib" 2>/dev/null &&
    $PY "$CMP" grib "$W/msg2.grib" "$W/corr.nc" t850:t:850; then :; else
    echo "FAIL corrupted --skip-bad"; fails=$((fails + 1))
fi

# the reduced Gaussian file needs a target grid: onto wb5625, a plausible 10 m wind everywhere
if "$BIN" -q ingest --grid wb5625 --var 10u --out "$W/rgg.nc" "$DATA/cfgrib__reduced_gg.grib" 2>"$W/err" &&
    $PY - "$W/rgg.nc" <<'PY'
import sys, netCDF4, numpy as np
d = netCDF4.Dataset(sys.argv[1]); v = d["10u"][:]
assert v.shape == (1, 32, 64), v.shape
assert np.isfinite(v).all() and -40 < v.min() < 0 < v.max() < 40, (v.min(), v.max())
PY
then echo "ingest_compare: reduced_gg onto wb5625: 2048 finite points"; else
    echo "FAIL reduced_gg onto wb5625"; cat "$W/err"; fails=$((fails + 1))
fi


# end to end through ingest: ERA5 UK onto uk050 against CDO's remapbil and remapcon (first 24 hours,
# interior points, 1e-4 relative)
if command -v cdo >/dev/null; then
    printf 'gridtype = lonlat\nxsize = 25\nysize = 17\nxfirst = -10\nxinc = 0.5\nyfirst = 58\nyinc = -0.5\n' > "$W/uk050.txt"
    for m in bil con; do
        method=bilinear; [ $m = con ] && method=conservative
        if cdo -s -f nc remap$m,"$W/uk050.txt" -seltimestep,1/24 "$DATA/xarray-data__era5-2mt-2019-03-uk.grib" "$W/cdo_$m.nc" &&
            "$BIN" -q ingest --grid uk050 --method $method --var 2t --out "$W/ours_$m.nc" "$DATA/xarray-data__era5-2mt-2019-03-uk.grib" &&
            $PY - "$W/cdo_$m.nc" "$W/ours_$m.nc" $m <<'PY'
import sys, netCDF4, numpy as np
c, o = netCDF4.Dataset(sys.argv[1]), netCDF4.Dataset(sys.argv[2])
cv = [v for v in c.variables if c[v].ndim == 3][0]
a, b = np.asarray(c[cv][:24], float), np.asarray(o["2t"][:24], float)
assert (np.asarray(c["lat"][:]) == np.asarray(o["latitude"][:])).all(), "latitudes differ"
i = (slice(None), slice(1, -1), slice(1, -1))
rel = np.nanmax(np.abs(a[i] - b[i]) / np.abs(a[i]))
assert rel < 1e-4, rel
print(f"ingest onto uk050 vs cdo remap{sys.argv[3]}: 24 fields, interior max relative difference {rel:.2e}")
PY
        then :; else echo "FAIL uk050 vs cdo remap$m"; fails=$((fails + 1)); fi
    done
fi
finish
