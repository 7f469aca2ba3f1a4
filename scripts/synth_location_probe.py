#!/usr/bin/env python3
"""Location-specificity probe for `smoecast synth toy-atmosphere` (reference only, not run by tests).

Fits the same linear model -- a 3x3 neighbourhood of z500, t850, t2m at time t plus hour-of-day
forcing at t+lead -- to predict x(t+lead) - x(t) in two ways: once for the whole grid
(translation-invariant, like a dense CNN) and separately at every grid point (location-specific,
like per-location experts). Prints the latitude-weighted RMSE of each as a ratio to persistence
on the last third of the file (training on the first two thirds, every 2nd time).

usage: /usr/bin/python3 scripts/synth_location_probe.py DIR/toy-atmosphere.nc [LEAD_HOURS]
"""
import sys

import netCDF4  # noqa: F401  (import before xarray: avoids a numpy ABI warning on Debian 12)
import numpy as np
import xarray as xr

ds = xr.open_dataset(sys.argv[1])
lead = (int(sys.argv[2]) if len(sys.argv) > 2 else 6) // 6
X = np.stack([ds[v].values for v in ["z500", "t850", "t2m"]], 1).astype(np.float64)
X = (X - X.mean((0, 2, 3), keepdims=True)) / X.std((0, 2, 3), keepdims=True)
T, C, H, W = X.shape
hours = (ds.time.values - np.datetime64("1970-01-01")).astype("timedelta64[h]").astype(np.int64)
hod = 2 * np.pi * (hours % 24) / 24.0


def features(t):
    xp = np.pad(X[t], ((0, 0), (0, 0), (1, 1), (0, 0)), mode="edge")
    xp = np.concatenate([xp[..., -1:], xp, xp[..., :1]], -1)  # periodic in longitude
    f = np.concatenate([xp[:, :, dy:dy + H, dx:dx + W] for dy in range(3) for dx in range(3)], 1)
    forc = np.stack([np.sin(hod[t + lead]), np.cos(hod[t + lead])], 1)[:, :, None, None] * np.ones((1, 1, H, W))
    return np.concatenate([f, forc, np.ones((len(t), 1, H, W))], 1).astype(np.float32)


ntr = int(T * 2 / 3)
tr, te = np.arange(0, ntr - lead, 2), np.arange(ntr, T - lead, 2)
Ftr, Fte = features(tr), features(te)
Ytr, Yte = X[tr + lead] - X[tr], X[te + lead] - X[te]
w = np.cos(np.deg2rad(ds.latitude.values))
w = (w / w.mean())[None, None, :, None]
nf = Ftr.shape[1]


def ratio(P):
    return np.sqrt((((P - Yte) ** 2) * w).mean((0, 2, 3)) / ((Yte ** 2) * w).mean((0, 2, 3)))


A = Ftr.transpose(0, 2, 3, 1).reshape(-1, nf).astype(np.float64)
G = A.T @ A + 1e-3 * len(A) * np.eye(nf)
Pg = np.zeros_like(Yte)
for c in range(C):
    coef = np.linalg.solve(G, A.T @ Ytr[:, c].reshape(-1))
    Pg[:, c] = np.einsum("tfhw,f->thw", Fte, coef)
del A
Fp = np.ascontiguousarray(Ftr.transpose(2, 3, 0, 1)).astype(np.float64)
del Ftr
Pl = np.zeros_like(Yte)
for i in range(H):
    for j in range(W):
        A = Fp[i, j]
        G = A.T @ A + 1e-3 * len(A) * np.eye(nf)
        for c in range(C):
            Pl[:, c, i, j] = Fte[:, :, i, j] @ np.linalg.solve(G, A.T @ Ytr[:, c, i, j])
print(f"+{lead * 6} h RMSE / persistence (z500, t850, t2m)")
print("  global linear stencil (translation-invariant):", np.round(ratio(Pg), 3))
print("  per-grid-point linear stencil (location-specific):", np.round(ratio(Pl), 3))
