#!/usr/bin/python3
"""Latitude-weighted RMSE of a smoecast forecast file against a dataset, beside persistence.

Usage: score_rmse.py FORECAST.nc DATASET.nc START STEP_HOURS [END]

Scores the initialisations START, START + STEP_HOURS, ... (ISO times) of every lead whose
valid time is at most END (default: the last time of the dataset), the issue-7 protocol:
RMSE = sqrt(mean over inits, lat, lon of w_j (f - o)^2) with w_j = cos(lat_j) / mean cos(lat),
the time mean taken before the root (METHODS.md section 4). Persistence is the truth at the
initialisation time. Prints one line per variable and lead. Used by scripts/experiments.sh
while `smoecast evaluate` is not in the build; Python is a reference here, never run time.
"""
import datetime as dt
import sys

import netCDF4
import numpy as np


def hours(iso):
    return (dt.datetime.fromisoformat(iso) - dt.datetime(1970, 1, 1)).total_seconds() / 3600


def main(argv):
    if len(argv) not in (5, 6):
        sys.exit(__doc__)
    fc, ds = netCDF4.Dataset(argv[1]), netCDF4.Dataset(argv[2])
    start, step = hours(argv[3]), float(argv[4])
    times = np.asarray(ds["time"][:], float)
    end = hours(argv[5]) if len(argv) == 6 else times[-1]
    index = {float(t): i for i, t in enumerate(times)}
    lat = np.asarray(ds["latitude"][:], float)
    w = np.cos(np.deg2rad(lat))
    w = (w / w.mean())[:, None]
    inits = np.asarray(fc["forecast_reference_time"][:], float)
    leads = np.asarray(fc["forecast_period"][:], float)
    for var in [v for v in fc.variables if fc.variables[v].ndim == 4]:
        F = np.asarray(fc[var][:], float)
        truth = np.asarray(ds[var][:], float)
        for k, lead in enumerate(leads):
            sel = [i for i, r in enumerate(inits) if r >= start and (r - start) % step == 0 and r + lead <= end]
            if not sel:
                continue
            se = sp = 0.0
            for i in sel:
                o = truth[index[inits[i] + lead]]
                se += np.mean(w * (F[i, k] - o) ** 2)
                sp += np.mean(w * (truth[index[inits[i]]] - o) ** 2)
            rm, rp = np.sqrt(se / len(sel)), np.sqrt(sp / len(sel))
            print("%-6s lead %4gh  inits %4d  rmse %7.3f  persistence %7.3f  ratio %.3f" % (var, lead, len(sel), rm, rp, rm / rp))


if __name__ == "__main__":
    main(sys.argv)
