# Ensemble post-processing end to end: synth ensemble --emos-truth -> ingest -> postprocess fit
# (raw, EMOS global / per point) -> apply, recovery of the known EMOS coefficients, CF output,
# real EDA / TIGGE ensembles, and the bad-input cases of docs/postprocess.md.
. "$(dirname "$0")/lib.sh"
cd "$TMP"
"$BIN" synth ensemble --out syn --years 1 --clim-years 1 --seed 5 --emos-truth >/dev/null 2>&1 || { fail "synth"; finish; }
"$BIN" ingest --grid native --var t850 --var t2m --var z500 --out ens.nc syn/ensemble.nc >/dev/null 2>&1 || { fail "ingest ensemble"; finish; }
"$BIN" ingest --grid native --var t850 --var t2m --var z500 --out truth.nc syn/ensemble_truth.nc >/dev/null 2>&1 || { fail "ingest truth"; finish; }
"$BIN" ingest --grid native --var t850 --out clim.nc syn/ensemble_climate.nc >/dev/null 2>&1 || { fail "ingest climate"; finish; }
"$BIN" ingest --grid native --var t850 --out truth_t850.nc syn/ensemble_truth.nc >/dev/null 2>&1 || { fail "ingest truth t850"; finish; }
cat > cfg.yaml <<'YAML'
postprocess:
  method: emos
  target: t850
  emos_scope: global
  forecast: ens.nc
  truth: truth.nc
  climate: clim.nc
data:
  train_end: 2000-10-31
  test_start: 2000-11-01
  test_end: 2000-12-31
output:
  dir: emos_t850
YAML

# EMOS recovers the generator's coefficients (global attributes of ensemble_truth.nc) within 5 %.
for v in t850 t2m z500; do
  expect_exit 0 "EMOS global: a" -- "$BIN" postprocess fit --method emos -c cfg.yaml postprocess.target=$v output.dir=emos_$v $([ $v = t850 ] || echo postprocess.climate=)
  for c in a b c d; do
    truth=$(ncdump -h syn/ensemble_truth.nc | sed -n "s/.*:emos_${v}_${c} = \([-0-9.e+]*\).*/\1/p")
    fit=$(ncdump -v $c emos_$v/emos.nc | sed -n "s/^ $c = \([-0-9.e+]*\) ;/\1/p")
    if awk -v t="$truth" -v f="$fit" 'BEGIN { r = (f - t) / t; if (r < 0) r = -r; exit !(t != "" && f != "" && r < 0.05) }'; then
      ok "$v $c = $fit (true $truth)"
    else
      fail "$v $c = '$fit', true '$truth' (not within 5 %)"
    fi
  done
done
grep -q '"eecrps": [0-9]' emos_t850/scores_emos.json && ok "EECRPS scored" || fail "scores: $(cat emos_t850/scores_emos.json)"
ncdump -h emos_t850/emos.nc | grep -q 'smoecast_forecast = "[0-9a-f]\{64\}  ' && ok "model provenance (sha256)" || fail "emos.nc provenance"

# raw: nothing fitted, the raw ensemble scored; its CRPS is worse than EMOS's on this data.
expect_exit 0 "raw on test" -- "$BIN" postprocess fit --method raw -c cfg.yaml output.dir=emos_t850
[ ! -e emos_t850/raw.nc ] && ok "raw writes no model" || fail "raw wrote a model"
crps() { sed -n 's/.*"crps": \([0-9.e+-]*\).*/\1/p' "$1"; }
awk -v r="$(crps emos_t850/scores_raw.json)" -v e="$(crps emos_t850/scores_emos.json)" 'BEGIN { exit !(e < r) }' \
  && ok "CRPS emos $(crps emos_t850/scores_emos.json) < raw $(crps emos_t850/scores_raw.json)" || fail "EMOS does not beat raw"

# per grid point
expect_exit 0 "EMOS per grid point: 2048 points" -- "$BIN" postprocess fit -c cfg.yaml postprocess.emos_scope=per_point output.dir=emos_pp
ncdump -h emos_pp/emos.nc | grep -q "double a(latitude, longitude)" && ok "per-point coefficients on the grid" || fail "per-point layout"

# apply: CF output, quantiles, members
# The NetCDF ingest keeps forecast_reference_time / forecast_period (CF coordinates of
# ensemble.nc), so apply needs no --lead here (a file without them does: zero_ds.nc below).
ncdump -v forecast_period ens.nc | grep -q "forecast_period = 48, 48, 48" && ok "NetCDF ingest keeps forecast_period" \
  || fail "ens.nc forecast_period: $(ncdump -v forecast_period ens.nc | tail -3)"
expect_exit 0 "calibrated t850 for 104 forecasts" -- "$BIN" postprocess apply --model emos_t850/emos.nc --forecast ens.nc --out cal0.nc
ncdump -v forecast_period cal0.nc | grep -q "forecast_period = 48 ;" && ok "lead 48 h from the NetCDF reference times" \
  || fail "cal0.nc forecast_period: $(ncdump -v forecast_period cal0.nc | tail -2)"
expect_exit 0 "calibrated t850 for 104 forecasts" -- "$BIN" postprocess apply --model emos_t850/emos.nc --forecast ens.nc --out cal.nc \
  --lead 48h --quantiles 10,50,90 --members 4
H=$(ncdump -h cal.nc)
for pat in 'float t850_mu\(forecast_reference_time, latitude, longitude\)' 'float t850_sigma\(forecast_reference_time, latitude, longitude\)' \
  't850_mu:standard_name = "air_temperature"' 't850_sigma:units = "K"' 't850_mu:long_name = "predictive mean of' \
  't850_sigma:long_name = "predictive standard deviation of' 'float t850_percentile\(forecast_reference_time, percentile, latitude' \
  'float t850\(forecast_reference_time, realization, latitude' ':Conventions = "CF-1.8"' ':smoecast_model = "emos_t850/emos.nc"' \
  'forecast_period:units = "hours"'; do
  grep -qE "$pat" <<<"$H" && ok "cal.nc has /$pat/" || fail "cal.nc lacks /$pat/"
done
# mu = a + b mean and the 50th percentile = mu, read back at one point with ncdump
vals() { ncdump -v "$1" -f c cal.nc | grep -E "^ *[-0-9.e+]+[,;] *// $1\($2\)" | sed 's/^ *\([-0-9.e+]*\).*/\1/'; }
mu=$(vals t850_mu "10,5,7"); p50=$(vals t850_percentile "10,1,5,7")
awk -v a="$mu" -v b="$p50" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d < 1e-3) }' && ok "median = mu ($mu)" || fail "median '$p50' != mu '$mu'"
if command -v cdo >/dev/null 2>&1; then
  cdo -s sinfon cal.nc 2>&1 | grep -q "lonlat .*points=2048 (64x32)" && ok "cdo sees a lonlat grid" || fail "cdo sinfon: $(cdo -s sinfon cal.nc 2>&1)"
fi
# smoecast evaluate reads the calibrated output (<var>_mu / <var>_sigma): Gaussian CRPS
expect_exit 0 "scored 104 forecast fields" -- "$BIN" evaluate --forecast cal.nc --truth truth.nc --vars t850 --baselines none --out ev.nc
expect_exit 1 "percentiles strictly between 0 and 100" -- "$BIN" postprocess apply --model emos_t850/emos.nc --forecast ens.nc --out x.nc --lead 48h --quantiles 0,50
[ ! -e x.nc ] && ok "no output after a usage error" || fail "x.nc written"

# Bad input: target absent from the truth file
expect_exit 2 "target variable 't2m' is absent from the truth file \(variables: t850\)" -- \
  "$BIN" postprocess fit -c cfg.yaml postprocess.target=t2m postprocess.truth=truth_t850.nc output.dir=bad
expect_exit 2 "target variable 'q700' is not in the ensemble dataset" -- "$BIN" postprocess fit -c cfg.yaml postprocess.target=q700 output.dir=bad
expect_exit 2 "no realization dimension" -- "$BIN" postprocess fit -c cfg.yaml postprocess.forecast=truth.nc output.dir=bad
expect_exit 1 "postprocess.truth is not set" -- "$BIN" postprocess fit -c cfg.yaml postprocess.truth= output.dir=bad
expect_exit 1 "unknown subcommand" -- "$BIN" postprocess score
expect_exit 2 "neither an EMOS model file nor a smoecast checkpoint" -- "$BIN" postprocess apply --model ens.nc --forecast ens.nc --out y.nc --lead 48h

# Zero ensemble spread: every member equal -> sigma = sqrt(c), raised to the sigma floor.
/usr/bin/python3 - <<'PY' || fail "python zero-spread file"
import netCDF4, numpy as np
src = netCDF4.Dataset("syn/ensemble.nc")
d = netCDF4.Dataset("zero.nc", "w")
for n, l in (("time", 3), ("realization", 4), ("latitude", 32), ("longitude", 64)): d.createDimension(n, l)
for n in ("latitude", "longitude"):
    v = d.createVariable(n, "f8", (n,)); v[:] = src[n][:]; v.units = src[n].units; v.standard_name = n
t = d.createVariable("time", "f8", ("time",)); t[:] = src["time"][:3]; t.units = src["time"].units; t.calendar = "proleptic_gregorian"
r = d.createVariable("realization", "i4", ("realization",)); r[:] = np.arange(4); r.standard_name = "realization"
x = d.createVariable("t850", "f4", ("time", "realization", "latitude", "longitude"))
x.units = "K"; x.standard_name = "air_temperature"
m = np.asarray(src["t850"][:3, 0])
x[:] = np.repeat(m[:, None], 4, axis=1)
d.close()
# the same with only a scalar forecast_period in days (the reference time follows from it)
d = netCDF4.Dataset("zero.nc", "a")
fp = d.createVariable("forecast_period", "f8", ()); fp[...] = 2.0; fp.units = "days"; fp.standard_name = "forecast_period"
d["t850"].coordinates = "forecast_period"
d.close()
import shutil; shutil.move("zero.nc", "zero_fp.nc")
d = netCDF4.Dataset("zero_fp.nc"); e = netCDF4.Dataset("zero.nc", "w")
for n, dim in d.dimensions.items(): e.createDimension(n, len(dim))
for n, v in d.variables.items():
    if n == "forecast_period": continue
    w = e.createVariable(n, v.dtype, v.dimensions)
    w.setncatts({k: v.getncattr(k) for k in v.ncattrs() if k != "coordinates"}); w[...] = v[...]
e.close()
PY
"$BIN" ingest --grid native --var t850 --out zero_fp_ds.nc zero_fp.nc >/dev/null 2>&1 || fail "ingest zero_fp.nc"
expect_exit 0 "calibrated t850 for 3 forecasts" -- "$BIN" postprocess apply --model emos_t850/emos.nc --forecast zero_fp_ds.nc --out z3.nc
ncdump -v forecast_period z3.nc | grep -q "forecast_period = 48 ;" && ok "scalar forecast_period in days read" \
  || fail "z3.nc forecast_period: $(ncdump -v forecast_period z3.nc | tail -2)"
"$BIN" ingest --grid native --var t850 --out zero_ds.nc zero.nc >/dev/null 2>&1 || fail "ingest zero-spread"
expect_exit 1 "pass --lead" -- "$BIN" postprocess apply --model emos_t850/emos.nc --forecast zero_ds.nc --out z0.nc
expect_exit 0 "calibrated t850 for 3 forecasts" -- "$BIN" postprocess apply --model emos_t850/emos.nc --forecast zero_ds.nc --out z1.nc --lead 48h
c=$(ncdump -v c emos_t850/emos.nc | sed -n 's/^ c = \([-0-9.e+]*\) ;/\1/p')
s1=$(ncdump -v t850_sigma -f c z1.nc | grep -E "// t850_sigma\(1,3,3\)$" | sed 's/^ *\([-0-9.e+]*\).*/\1/')
awk -v c="$c" -v s="$s1" 'BEGIN { d = s - sqrt(c); if (d < 0) d = -d; exit !(s != "" && d < 1e-5) }' && ok "zero spread: sigma = sqrt(c) = $s1" || fail "zero spread sigma '$s1', sqrt(c) of '$c'"
expect_exit 0 "sigma floor 2 K" -- "$BIN" postprocess apply --model emos_t850/emos.nc --forecast zero_ds.nc --out z2.nc --lead 48h --sigma-floor 2
s2=$(ncdump -v t850_sigma -f c z2.nc | grep -E "// t850_sigma\(1,3,3\)$" | sed 's/^ *\([-0-9.e+]*\).*/\1/')
[ "$s2" = "2" ] && ok "zero spread: sigma raised to the floor" || fail "floored sigma '$s2'"

# Real ensembles (no truth here): EDA (10 members) and TIGGE (24 members) calibrated with the
# synthetic global EMOS.
if [ -r "$SHARED/cfgrib__era5-levels-members.grib" ] && [ -r "$SHARED/geocat-datafiles__z_tigge_c_egrr_20061028120000_0000_pt_glob_prod.grib2" ]; then
  "$BIN" ingest --grid native --var t:850 --var z:500 --out eda.nc "$SHARED/cfgrib__era5-levels-members.grib" >/dev/null 2>&1 || fail "ingest EDA"
  [ "$(ncdump -h eda.nc | sed -n 's/^\trealization = \([0-9]*\) ;/\1/p')" = 10 ] && ok "EDA realization = 10" || fail "EDA realization"
  expect_exit 0 "calibrated t850 for 4 forecasts \(10 members in" -- "$BIN" postprocess apply --model emos_t850/emos.nc --forecast eda.nc --out eda_cal.nc --members 3
  ncdump -h eda_cal.nc | grep -q 'float t850_sigma(forecast_reference_time, latitude, longitude)' && ok "EDA output layout" || fail "EDA output"
  ncdump -v forecast_period eda_cal.nc | grep -q "forecast_period = 0 ;" && ok "EDA lead 0 from GRIB" || fail "EDA forecast_period"
  "$BIN" ingest --grid native --var pv --out tigge.nc "$SHARED/geocat-datafiles__z_tigge_c_egrr_20061028120000_0000_pt_glob_prod.grib2" >/dev/null 2>&1 || fail "ingest TIGGE"
  [ "$(ncdump -h tigge.nc | sed -n 's/^\trealization = \([0-9]*\) ;/\1/p')" = 24 ] && ok "TIGGE realization = 24" || fail "TIGGE realization"
  expect_exit 0 "calibrated pv for 1 forecasts \(24 members in" -- "$BIN" postprocess apply --model emos_t850/emos.nc --forecast tigge.nc --var pv --out tigge_cal.nc --quantiles 10,90
  ncdump -h tigge_cal.nc | grep -q 'pv_mu:standard_name = "ertel_potential_vorticity"' && ok "TIGGE output attributes" || fail "TIGGE attributes"
  if command -v cdo >/dev/null 2>&1; then
    cdo -s sinfon tigge_cal.nc 2>&1 | grep -q "lonlat .*points=62208 (288x216)" && ok "cdo: TIGGE lonlat" || fail "cdo TIGGE: $(cdo -s sinfon tigge_cal.nc 2>&1)"
    cdo -s sinfon eda_cal.nc 2>&1 | grep -q "lonlat .*points=7320 (120x61)" && ok "cdo: EDA lonlat" || fail "cdo EDA: $(cdo -s sinfon eda_cal.nc 2>&1)"
  fi
  expect_exit 2 "per-point EMOS coefficients are for a 32 x 64 grid" -- "$BIN" postprocess apply --model emos_pp/emos.nc --forecast eda.nc --out e.nc
  # Different member counts across times (5 members on 2 Jan) and one member missing at one time.
  if command -v grib_copy >/dev/null 2>&1; then
    G="$SHARED/cfgrib__era5-levels-members.grib"
    grib_copy -w dataDate=20170101 "$G" d1.grib && grib_copy -w dataDate=20170102,number=0/1/2/3/4 "$G" d2.grib && cat d1.grib d2.grib > fewer.grib
    "$BIN" ingest --grid native --var t:850 --out fewer.nc fewer.grib >/dev/null 2>&1 || fail "ingest fewer"
    expect_exit 2 "fewer.nc: variable t850, time 2017-01-02T00:00: member 5 \(realization 5\) is missing" -- \
      "$BIN" postprocess apply --model emos_t850/emos.nc --forecast fewer.nc --out f.nc
    grib_copy -w dataDate=20170102,number!=7 "$G" d3.grib && cat d1.grib d3.grib > onemissing.grib
    "$BIN" ingest --grid native --var t:850 --out onemissing.nc onemissing.grib >/dev/null 2>&1 || fail "ingest onemissing"
    expect_exit 2 "member 7 \(realization 7\) is missing" -- "$BIN" postprocess apply --model emos_t850/emos.nc --forecast onemissing.nc --out f.nc
    [ ! -e f.nc ] && ok "nothing written for a bad ensemble" || fail "f.nc written"
  fi
else
  skip_or_fail "shared data (EDA / TIGGE ensembles) missing"
fi
finish
