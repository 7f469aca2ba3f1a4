#!/usr/bin/python3
"""Golden files for the score tests (tests/unit/test_eval_*.c): small random cases and their
scores computed independently with numpy/scipy straight from the formulas in docs/scores.md.

Run: /usr/bin/python3 scripts/golden/make_golden_scores.py  (writes tests/golden/scores_*.nc;
scores_eda.nc needs ../shared/data or SMOECAST_SHARED_DATA)
Inputs are stored as float32 (what the C code reads); references are computed in float64 from
those float32 values and stored as float64.
"""
import datetime as dt
import os
import sys

import numpy as np
import netCDF4
from scipy.stats import norm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden")


def write(name, arrays):
    path = os.path.join(OUT, name)
    with netCDF4.Dataset(path, "w") as nc:
        nc.setncattr("source", "scripts/golden/make_golden_scores.py")
        for var, arr in arrays.items():
            arr = np.asarray(arr)
            dims = []
            for k, n in enumerate(arr.shape):
                d = f"{var}_d{k}"
                nc.createDimension(d, n)
                dims.append(d)
            v = nc.createVariable(var, arr.dtype, dims)
            v[...] = arr
    print("wrote", path)


def f32(a):
    return np.asarray(a, dtype=np.float32)


# ---------------------------------------------------------------- deterministic scores
def det_scores(f, o, c, w2, mask):
    """f, o, c (n, H, W) float64; w2 (H, W) weights; mask (H, W) bool."""
    n = f.shape[0]
    valid = ~np.isnan(f) & ~np.isnan(o) & mask[None]
    W = np.broadcast_to(w2, f.shape) * valid
    d = np.where(valid, f - o, 0.0)
    rmse = np.sqrt((W * d * d).sum() / W.sum())
    bias = (W * d).sum() / W.sum()
    mae = (W * np.abs(d)).sum() / W.sum()
    per = []
    accs = []
    for t in range(n):
        wt = W[t]
        if wt.sum() > 0:
            per.append(np.sqrt((wt * d[t] ** 2).sum() / wt.sum()))
        va = valid[t] & ~np.isnan(c[t])
        wa = w2 * va
        if wa.sum() > 0:
            fa = np.where(va, f[t] - c[t], 0.0)
            oa = np.where(va, o[t] - c[t], 0.0)
            fa = np.where(va, fa - (wa * fa).sum() / wa.sum(), 0.0)
            oa = np.where(va, oa - (wa * oa).sum() / wa.sum(), 0.0)
            den = np.sqrt((wa * fa * fa).sum() * (wa * oa * oa).sum())
            if den > 0:
                accs.append((wa * fa * oa).sum() / den)
    return [rmse, np.mean(per), bias, mae, np.mean(accs)]


def make_det(rng):
    n, H, W = 5, 6, 8
    lat = np.linspace(75.0, -75.0, H)
    wlat = np.cos(np.deg2rad(lat))
    wlat = wlat / wlat.mean()
    o = rng.normal(280.0, 5.0, (n, H, W))
    c = o + rng.normal(0.0, 3.0, (n, H, W))
    f = o + rng.normal(0.5, 2.0, (n, H, W))
    f[1, 2, 3] = np.nan
    o[3, 0, :4] = np.nan
    c[2, 4, 5] = np.nan
    lsm = (rng.uniform(size=(H, W)) > 0.6).astype(np.float64)
    f, o, c, lsm = (f32(a).astype(np.float64) for a in (f, o, c, lsm))
    w2 = np.broadcast_to(wlat[:, None], (H, W))
    regions = [np.ones((H, W), bool),
               np.broadcast_to((np.abs(lat) < 23.5)[:, None], (H, W)),
               lsm >= 0.5]
    expected = np.array([det_scores(f, o, c, w2, r) for r in regions])  # (region, metric)
    write("scores_det.nc", {"f": f32(f), "o": f32(o), "clim": f32(c), "lat": lat,
                            "wlat": wlat, "lsm": f32(lsm), "expected": expected})


# ---------------------------------------------------------------- probabilistic scores
def crps_gauss(mu, sig, y):
    z = (y - mu) / sig
    return sig * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))


def crps_ens_loop(x, y, fair):
    m = len(x)
    skill = np.mean(np.abs(x - y))
    pair = 0.0
    for i in range(m):
        for j in range(m):
            pair += abs(x[i] - x[j])
    return skill - pair / (2 * m * (m - 1) if fair else 2 * m * m)


def efi(x, q):
    p = np.arange(1, 20) / 20.0
    F = np.array([(np.sum(x < qk) + 0.5 * np.sum(x == qk)) / len(x) for qk in q])
    return 2 / np.pi * np.sum((p - F) / np.sqrt(p * (1 - p))) * 0.05


def make_prob(rng):
    n, H, W, m, nbins = 4, 5, 6, 7, 10
    lat = np.linspace(60.0, -60.0, H)
    wlat = np.cos(np.deg2rad(lat))
    wlat = wlat / wlat.mean()
    w3 = np.broadcast_to(wlat[None, :, None], (n, H, W))
    y = f32(rng.normal(0.0, 2.0, (n, H, W))).astype(np.float64)
    mu = f32(y + rng.normal(0.3, 1.0, (n, H, W))).astype(np.float64)
    sig = f32(rng.uniform(0.3, 2.0, (n, H, W))).astype(np.float64)
    ens = f32(y[:, None] + rng.normal(0.2, 1.0, (n, m, H, W)) * rng.uniform(0.5, 1.5, (n, 1, H, W)))
    ens = ens.astype(np.float64)
    # Gaussian
    cg = crps_gauss(mu, sig, y)
    pit = norm.cdf((y - mu) / sig)
    pit_hist = np.bincount(np.minimum((pit * nbins).astype(int), nbins - 1).ravel(), minlength=nbins)
    ws = w3.sum()
    g_expected = [(w3 * cg).sum() / ws, np.sqrt((w3 * (mu - y) ** 2).sum() / ws),
                  np.sqrt((w3 * sig ** 2).sum() / ws),
                  (w3 * (np.abs(y - mu) <= norm.ppf(0.9) * sig)).sum() / ws]
    # ensemble
    ce = np.zeros((n, H, W))
    cf = np.zeros((n, H, W))
    rank = np.zeros((n, H, W), int)
    cover = np.zeros((n, H, W))
    for t in range(n):
        for i in range(H):
            for j in range(W):
                x = ens[t, :, i, j]
                ce[t, i, j] = crps_ens_loop(x, y[t, i, j], False)
                cf[t, i, j] = crps_ens_loop(x, y[t, i, j], True)
                rank[t, i, j] = np.sum(x < y[t, i, j])
                q10, q90 = np.quantile(x, [0.1, 0.9])
                cover[t, i, j] = q10 <= y[t, i, j] <= q90
    em = ens.mean(axis=1)
    ev = ens.var(axis=1, ddof=1)
    rmse = np.sqrt((w3 * (em - y) ** 2).sum() / ws)
    spread = np.sqrt((w3 * ev).sum() / ws)
    e_expected = [(w3 * ce).sum() / ws, (w3 * cf).sum() / ws, rmse, spread,
                  np.sqrt((m + 1) / m) * spread / rmse, (w3 * cover).sum() / ws]
    rank_hist = np.bincount(rank.ravel(), minlength=m + 1)
    # EFI on the first forecast's ensemble against a climate sample per point
    nc = 40
    clim = f32(rng.normal(0.0, 2.0, (nc, H, W))).astype(np.float64)
    q = np.quantile(clim, np.arange(1, 20) / 20.0, axis=0)  # (19, H, W), linear
    e = np.array([[efi(ens[0, :, i, j], q[:, i, j]) for j in range(W)] for i in range(H)])
    eecrps = np.mean(np.abs(e) * ce[0])
    write("scores_prob.nc", {
        "y": f32(y), "mu": f32(mu), "sigma": f32(sig), "ens": f32(ens), "wlat": wlat,
        "crps_gauss_point": cg, "pit": pit, "pit_hist": pit_hist.astype(np.float64),
        "gauss_expected": np.array(g_expected),
        "crps_ens_point": ce, "crps_fair_point": cf, "rank_hist": rank_hist.astype(np.float64),
        "ens_expected": np.array(e_expected),
        "clim_sample": f32(clim), "clim_q": q, "efi": e, "eecrps": np.array([eecrps])})


# ---------------------------------------------------------------- baselines
def clim_doy(t):
    d = t.timetuple().tm_yday
    leap = (t.year % 4 == 0 and t.year % 100 != 0) or t.year % 400 == 0
    return d + 1 if (not leap and d >= 60) else d


def make_baselines(rng):
    H, W = 2, 3
    t0 = dt.datetime(2015, 1, 1)
    # 6-hourly for a bit more than a year (2015-01-01 .. 2016-03-31), 2016 is a leap year
    times = []
    t = t0
    while t < dt.datetime(2016, 4, 1):
        times.append(t)
        t += dt.timedelta(hours=6)
    hrs = np.array([(x - dt.datetime(1970, 1, 1)).total_seconds() / 3600.0 for x in times])
    T = len(times)
    doy = np.array([clim_doy(x) for x in times])
    hod = np.array([x.hour for x in times])
    seasonal = 10 * np.cos(2 * np.pi * (doy - 20) / 366.0)
    diurnal = 3 * np.cos(2 * np.pi * (hod - 15) / 24.0)
    base = (seasonal + diurnal)[:, None, None] + rng.normal(0, 1, (1, H, W)) * 2
    # AR(1)-like anomalies so damped persistence has something to fit
    a = np.zeros((T, H, W))
    for k in range(1, T):
        a[k] = 0.9 * a[k - 1] + rng.normal(0, 1.0, (H, W))
    data = base + a
    data[5, 0, 1] = np.nan
    data = f32(data).astype(np.float64)
    window = 5
    # climatology (by doy with +-window, by hour), evaluated at a set of query times
    def clim_value(qdoy, qhour):
        out = np.full((H, W), np.nan)
        sel_h = hod == qhour
        for i in range(H):
            for j in range(W):
                x = data[:, i, j]
                ok = sel_h & ~np.isnan(x)
                if not ok.any():
                    continue
                dist = np.abs(doy - qdoy)
                dist = np.minimum(dist, 366 - dist)
                r = window
                while not (ok & (dist <= r)).any():
                    r += 1
                out[i, j] = x[ok & (dist <= r)].mean()
        return out
    queries = [dt.datetime(2017, 1, 1, 0), dt.datetime(2017, 7, 15, 12), dt.datetime(2016, 2, 29, 18),
               dt.datetime(2017, 3, 1, 6), dt.datetime(2017, 12, 31, 18), dt.datetime(2017, 5, 5, 3)]
    qh = np.array([(x - dt.datetime(1970, 1, 1)).total_seconds() / 3600.0 for x in queries])
    cq = []
    for x in queries:
        hour = x.hour
        if hour not in (0, 6, 12, 18):  # nearest slot, earlier on a tie
            hour = min((0, 6, 12, 18), key=lambda s: (min(abs(s - hour), 24 - abs(s - hour)), s))
        cq.append(clim_value(clim_doy(x), hour))
    cq = np.array(cq)
    # damped persistence at lead 24 h: alpha = sum a0 a1 / sum a0^2 with anomalies vs clim
    cl_all = np.array([clim_value(doy[k], hod[k]) for k in range(T)])
    anom = data - f32(cl_all).astype(np.float64)
    lead = 4  # 4 steps of 6 h = 24 h (the series is regular)
    a0, a1 = anom[:-lead], anom[lead:]
    ok = ~np.isnan(a0) & ~np.isnan(a1)
    alpha_global = np.sum(np.where(ok, a0 * a1, 0)) / np.sum(np.where(ok, a0 * a0, 0))
    alpha_point = np.sum(np.where(ok, a0 * a1, 0), axis=0) / np.sum(np.where(ok, a0 * a0, 0), axis=0)
    write("scores_baselines.nc", {"times": hrs, "data": f32(data), "query_times": qh,
                                  "clim_at_query": cq, "alpha_global": np.array([alpha_global]),
                                  "alpha_point": alpha_point})


def crps_members(x, y, fair):
    """x (m, ...) members, y (...) -> per-point CRPS, brute force over member pairs."""
    m = x.shape[0]
    skill = np.abs(x - y[None]).mean(axis=0)
    pair = np.abs(x[:, None] - x[None, :]).sum(axis=(0, 1))
    return skill - pair / (2.0 * m * (m - 1) if fair else 2.0 * m * m)


def make_eda():
    """Ensemble CRPS of the 9 perturbed ERA5 EDA members (number 1-9) against the control
    (number 0) as a stand-in verification, for t and z at 850 and 500 hPa and the 4 times."""
    shared = os.environ.get("SMOECAST_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
    path = os.path.join(shared, "cfgrib__era5-levels-members.grib")
    if not os.path.exists(path):
        print("skipping scores_eda.nc:", path, "is absent (set SMOECAST_SHARED_DATA)")
        return
    import xarray as xr
    ds = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
    lat = ds.latitude.values.astype(np.float64)
    w = np.cos(np.deg2rad(lat))
    w = w / w.mean()
    W2 = np.broadcast_to(w[:, None], (len(lat), ds.sizes["longitude"]))
    out = {}
    for name in ("crps", "crps_fair", "crps_w", "crps_fair_w"):
        out[name] = np.zeros((2, 2, ds.sizes["time"]))
    for iv, var in enumerate(("t", "z")):
        for il, lev in enumerate((850.0, 500.0)):
            for it in range(ds.sizes["time"]):
                f = ds[var].sel(isobaricInhPa=lev).isel(time=it).values.astype(np.float64)  # (number, lat, lon)
                y, x = f[0], f[1:]
                for fair, (a, b) in ((0, ("crps", "crps_w")), (1, ("crps_fair", "crps_fair_w"))):
                    c = crps_members(x, y, fair)
                    out[a][iv, il, it] = c.mean()
                    out[b][iv, il, it] = (W2 * c).sum() / W2.sum()
                    if var == "t" and lev == 850.0 and it == 0 and fair == 0:
                        out["crps_point_t850_t0"] = c
    out["lat"] = lat
    write("scores_eda.nc", out)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261123)
    make_det(rng)
    make_prob(rng)
    make_baselines(rng)
    make_eda()


if __name__ == "__main__":
    sys.exit(main())
