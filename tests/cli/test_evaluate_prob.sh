# smoecast evaluate on probabilistic forecasts (synth ensemble): raw ensemble (ensemble CRPS
# standard and fair, spread-skill, coverage, rank histogram, EECRPS with the model climate) and a
# Gaussian forecast <var>_mu/<var>_sigma (Gaussian CRPS, PIT), each against a numpy brute force.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
$PY -c "import netCDF4, numpy, scipy" 2>/dev/null || skip_or_fail "python3 netCDF4/numpy/scipy missing"
cd "$TMP"
"$BIN" synth ensemble --years 1 --clim-years 1 --out D >/dev/null 2>&1 || { fail "synth ensemble"; finish; }
"$BIN" ingest --grid native --var t2m --out ens.nc D/ensemble.nc >/dev/null 2>&1 || { fail "ingest ensemble"; finish; }
"$BIN" ingest --grid native --var t2m --var lsm --categorical lsm --out truth.nc D/ensemble_truth.nc >/dev/null 2>&1 || { fail "ingest truth"; finish; }
"$BIN" ingest --grid native --var t2m --out clim.nc D/ensemble_climate.nc >/dev/null 2>&1 || { fail "ingest climate"; finish; }
ncdump -h ens.nc | grep -q 'float t2m(time, realization, latitude, longitude)' && ok "ensemble dataset has members" || fail "ens.nc layout"

# The NetCDF ingest keeps forecast_reference_time / forecast_period (CF coordinates of
# ensemble.nc): no --lead needed. A forecast file without them needs it.
expect_exit 0 "1 lead" -- "$BIN" evaluate --forecast ens.nc --truth truth.nc --out nolead.nc
ncdump -v lead_time nolead.nc | grep -q "lead_time = 48 ;" && ok "lead 48 h from the NetCDF forecast times" || fail "nolead.nc lead_time"
expect_exit 1 "no forecast_period .* --lead" -- "$BIN" evaluate --forecast truth.nc --truth truth.nc
expect_exit 1 "baselines are deterministic" -- "$BIN" evaluate --forecast ens.nc --truth truth.nc --lead 48h --baselines persistence
expect_exit 0 "crps_fair" -- "$BIN" evaluate --forecast ens.nc --truth truth.nc --lead 48h --regions global,land --climate clim.nc --out ens_scores.nc
ncdump -h ens_scores.nc | grep -q 'double score(source, metric, variable, lead_time, region)' && ok "score dims" || fail "score dims"
ncdump -h ens_scores.nc | grep -q 'double rank_histogram(variable, lead_time, region, rank)' && ok "rank histogram dims" || fail "rank histogram dims"

$PY - <<'EOF' && ok "ensemble CRPS, spread-skill, coverage, EECRPS = numpy brute force" || fail "ensemble scores differ from numpy"
import netCDF4, numpy as np, datetime
e = netCDF4.Dataset("ens.nc"); t = netCDF4.Dataset("truth.nc"); c = netCDF4.Dataset("clim.nc"); s = netCDF4.Dataset("ens_scores.nc")
for d in (e, t, c, s): d.set_auto_mask(False)
met = list(s["metric"][:]); sc = s["score"][0, :, 0, 0, :]
assert list(s["lead_time"][:]) == [48.0] and list(s["region"][:]) == ["global", "land"]
X = e["t2m"][:].astype(np.float64)             # (T, m, H, W)
tt = list(t["time"][:]); et = e["time"][:]
Y = np.stack([t["t2m"][tt.index(v)] for v in et]).astype(np.float64)
lat = t["latitude"][:]; w = np.cos(np.deg2rad(lat)); w = w / w.mean()
W = np.broadcast_to(w[None, :, None], Y.shape)
T, m = X.shape[:2]
# brute-force double loop over members
a = np.abs(X - Y[:, None]).mean(1)
pair = np.zeros_like(Y)
for i in range(m):
    for l in range(m):
        pair += np.abs(X[:, i] - X[:, l])
crps = a - pair / (2 * m * m); crps_fair = a - pair / (2 * m * (m - 1))
mean = X.mean(1); var = X.var(1, ddof=1)
lo, hi = np.quantile(X, 0.1, axis=1), np.quantile(X, 0.9, axis=1)
# EFI from the model climate: climate fields within +-15 days of the valid date (leap-aligned day of year)
def doy(h):
    d = datetime.datetime(1970, 1, 1) + datetime.timedelta(hours=float(h))
    n = d.timetuple().tm_yday
    leap = d.year % 4 == 0 and (d.year % 100 != 0 or d.year % 400 == 0)
    return n + 1 if (not leap and d.month >= 3) else n
cd = np.array([doy(h) for h in c["time"][:]]); C = c["t2m"][:].astype(np.float64)
p = np.arange(1, 20) / 20.0
efi = np.zeros_like(Y)
for k, v in enumerate(et):
    d = np.abs(cd - doy(v)); d = np.where(d > 183, 366 - d, d)
    sample = C[d <= 15].reshape(-1, *Y.shape[1:])
    q = np.quantile(sample, p, axis=0).astype(np.float32).astype(np.float64)   # (19, H, W), stored as float
    F = ((X[k][None] < q[:, None]).sum(1) + 0.5 * (X[k][None] == q[:, None]).sum(1)) / m
    efi[k] = 2 / np.pi * ((p[:, None, None] - F) / np.sqrt(p * (1 - p))[:, None, None] * 0.05).sum(0)
lsm = t["lsm"][:]
for ir, M in enumerate([np.ones(Y.shape, bool), np.broadcast_to(lsm >= 0.5, Y.shape)]):
    sw = W[M].sum()
    mw = lambda x: (W * x)[M].sum() / sw
    rmse = np.sqrt(mw((mean - Y) ** 2)); spread = np.sqrt(mw(var))
    want = {"crps": mw(crps), "crps_fair": mw(crps_fair), "rmse": rmse, "spread": spread,
            "ssr": np.sqrt((m + 1) / m) * spread / rmse, "ssr_uncorrected": spread / rmse,
            "coverage80": mw(((Y >= lo) & (Y <= hi)).astype(float)),
            "eecrps": mw(np.abs(efi) * crps), "eecrps_fair": mw(np.abs(efi) * crps_fair),
            "bias": mw(mean - Y), "mae": mw(np.abs(mean - Y))}
    for k, v in want.items():
        got = sc[met.index(k), ir]
        assert abs(got - v) <= 1e-6 * max(abs(v), 1e-3), (ir, k, got, v)
    h = s["rank_histogram"][0, 0, ir]
    assert h.shape == (m + 1,) and h.sum() == M.sum(), (h.sum(), M.sum())
assert (s["n_forecasts"][:] == T).all()
print("ensemble CRPS %.5f K (fair %.5f), EECRPS %.5f" % (sc[0, 0], sc[1, 0], sc[met.index("eecrps"), 0]))
EOF

# A Gaussian forecast in the (time, lat, lon) layout with forecast_reference_time(time) and
# forecast_period(time), as the post-processing writes it.
$PY - <<'EOF' || fail "writing the Gaussian forecast"
import netCDF4, numpy as np
e = netCDF4.Dataset("ens.nc")
X = e["t2m"][:].astype(np.float64)
g = netCDF4.Dataset("gauss.nc", "w")
g.setncattr("Conventions", "CF-1.8")
g.createDimension("time", X.shape[0]); g.createDimension("latitude", X.shape[2]); g.createDimension("longitude", X.shape[3])
for n in ["latitude", "longitude"]:
    v = g.createVariable(n, "f8", (n,)); v[:] = e[n][:]; v.units = e[n].units
tv = g.createVariable("time", "f8", ("time",)); tv.units = "days since 1970-01-01 00:00:00"; tv.calendar = "proleptic_gregorian"
tv[:] = e["time"][:] / 24.0
fr = g.createVariable("forecast_reference_time", "f8", ("time",)); fr.units = "hours since 1970-01-01"; fr[:] = e["time"][:] - 48
fp = g.createVariable("forecast_period", "f8", ("time",)); fp.units = "hours"; fp[:] = 48
mu = g.createVariable("t2m_mu", "f4", ("time", "latitude", "longitude"), fill_value=np.float32(np.nan))
sg = g.createVariable("t2m_sigma", "f4", ("time", "latitude", "longitude"), fill_value=np.float32(np.nan))
mu[:] = X.mean(1) + 0.2; sg[:] = 1.5 * X.std(1, ddof=1) + 0.1
g.close()
EOF
expect_exit 1 "pass the raw ensemble with --ensemble" -- "$BIN" evaluate --forecast gauss.nc --truth truth.nc --climate clim.nc
expect_exit 0 "crps" -- "$BIN" evaluate --forecast gauss.nc --truth truth.nc --climate clim.nc --ensemble ens.nc --out g_scores.nc
ncdump -h g_scores.nc | grep -q 'double pit_histogram(variable, lead_time, pit_bin)' && ok "PIT histogram dims" || fail "PIT histogram dims"
$PY - <<'EOF' && ok "Gaussian CRPS, PIT, coverage = numpy" || fail "Gaussian scores differ from numpy"
import netCDF4, numpy as np
from scipy.stats import norm
g = netCDF4.Dataset("gauss.nc"); t = netCDF4.Dataset("truth.nc"); s = netCDF4.Dataset("g_scores.nc")
for d in (g, t, s): d.set_auto_mask(False)
met = list(s["metric"][:]); sc = s["score"][0, :, 0, 0]
tt = list(t["time"][:])
Y = np.stack([t["t2m"][tt.index(v * 24.0)] for v in g["time"][:]]).astype(np.float64)
mu = g["t2m_mu"][:].astype(np.float64); sg = g["t2m_sigma"][:].astype(np.float64)
lat = t["latitude"][:]; w = np.cos(np.deg2rad(lat)); w = w / w.mean(); W = np.broadcast_to(w[None, :, None], Y.shape)
z = (Y - mu) / sg
crps = sg * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))
mw = lambda x: (W * x).sum() / W.sum()
want = {"crps": mw(crps), "rmse": np.sqrt(mw((mu - Y) ** 2)), "spread": np.sqrt(mw(sg ** 2)),
        "coverage80": mw((np.abs(Y - mu) <= 1.2815515655446004 * sg).astype(float)), "bias": mw(mu - Y)}
for k, v in want.items():
    assert abs(sc[met.index(k)] - v) <= 1e-6 * max(abs(v), 1e-3), (k, sc[met.index(k)], v)
assert np.isnan(sc[met.index("crps_fair")])
pit = np.histogram(norm.cdf(z), bins=10, range=(0, 1))[0]
assert (s["pit_histogram"][0, 0] == pit).all(), (s["pit_histogram"][0, 0], pit)
# EECRPS uses the raw ensemble's EFI: same weights as for the ensemble itself
assert np.isfinite(sc[met.index("eecrps")]) and sc[met.index("eecrps")] < sc[met.index("crps")]
EOF
finish
