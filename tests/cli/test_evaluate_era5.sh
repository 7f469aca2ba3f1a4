# Data test: the ERA5 UK 2 m temperature protocol of issue 7 through `smoecast evaluate`.
# A persistence "forecast" file (inits every 6 h from 2019-03-25T00, leads 6 h and 24 h) is
# scored against the ingested file with the baselines fitted on 1-21 March: latitude-weighted
# RMSE (time mean before the root) 2.77 K at +6 h and 1.57 K at +24 h (independent reference),
# hour-of-day climatology 0.69x / 1.26x persistence.
. "$(dirname "$0")/lib.sh"
need_shared xarray-data__era5-2mt-2019-03-uk.grib
PY=/usr/bin/python3
$PY -c "import netCDF4, numpy" 2>/dev/null || skip_or_fail "python3 netCDF4/numpy missing"
cd "$TMP"
"$BIN" ingest --grid native --var 2t --out era5.nc "$SHARED/xarray-data__era5-2mt-2019-03-uk.grib" >/dev/null 2>&1 || { fail "ingest"; finish; }
$PY - <<'EOF' || fail "writing the persistence forecast"
import netCDF4, numpy as np
t = netCDF4.Dataset("era5.nc"); t.set_auto_mask(False)
times = t["time"][:]
t0 = (np.datetime64("2019-03-25T00") - np.datetime64("1970-01-01T00")) / np.timedelta64(1, "h")
inits = np.arange(t0, times[-1] - 6 + 1e-6, 6.0)      # 27 inits: the last one whose +6 h is in the file
leads = np.array([6.0, 24.0])
f = netCDF4.Dataset("pers.nc", "w")
f.createDimension("forecast_reference_time", len(inits)); f.createDimension("forecast_period", 2)
f.createDimension("latitude", len(t["latitude"])); f.createDimension("longitude", len(t["longitude"]))
for n in ["latitude", "longitude"]:
    v = f.createVariable(n, "f8", (n,)); v[:] = t[n][:]; v.units = t[n].units
r = f.createVariable("forecast_reference_time", "f8", ("forecast_reference_time",))
r.units = "hours since 1970-01-01 00:00:00"; r.calendar = "proleptic_gregorian"; r[:] = inits
p = f.createVariable("forecast_period", "f8", ("forecast_period",)); p.units = "hours"; p[:] = leads
x = f.createVariable("2t", "f4", ("forecast_reference_time", "forecast_period", "latitude", "longitude"))
for i, h in enumerate(inits):
    k = int(np.searchsorted(times, h)); assert times[k] == h
    x[i, 0] = t["2t"][k]; x[i, 1] = t["2t"][k]
f.close()
EOF
expect_exit 0 "skipped 3 forecasts" -- "$BIN" evaluate --forecast pers.nc --truth era5.nc --train-period 2019-03-01T00/2019-03-21T23 --out scores.nc
$PY - <<'EOF' && ok "ERA5 UK persistence 2.77 K (+6 h) and 1.57 K (+24 h); climatology 0.69x / 1.26x" || fail "ERA5 UK numbers"
import netCDF4, numpy as np
d = netCDF4.Dataset("scores.nc"); d.set_auto_mask(False)
s = d["score"][:]                       # (source, metric, variable, lead_time)
src = list(d["source"][:]); rmse = s[:, 0, 0, :]
print("model (persistence file) %.4f / %.4f K; persistence baseline %.4f / %.4f K; climatology %.3fx / %.3fx; "
      "damped persistence %.3fx / %.3fx" % (rmse[0, 0], rmse[0, 1], rmse[1, 0], rmse[1, 1], rmse[2, 0] / rmse[1, 0],
      rmse[2, 1] / rmse[1, 1], rmse[3, 0] / rmse[1, 0], rmse[3, 1] / rmse[1, 1]))
assert src == ["model", "persistence", "climatology", "damped_persistence"]
assert round(rmse[0, 0], 2) == 2.77 and round(rmse[0, 1], 2) == 1.57, rmse[0]
assert np.array_equal(rmse[0], rmse[1])
assert round(rmse[2, 0] / rmse[1, 0], 2) == 0.69 and round(rmse[2, 1] / rmse[1, 1], 2) == 1.26
assert list(d["n_forecasts"][0]) == [27, 24], d["n_forecasts"][:]
EOF
grep -q 'per hour of day' <(ncdump -h scores.nc) && ok "hour-of-day climatology for a 21-day training period" || fail "climatology kind"
finish
