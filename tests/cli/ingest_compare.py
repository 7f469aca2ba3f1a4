#!/usr/bin/python3
"""Reference check for `smoecast ingest --grid native`: every point of every selected field in the
dataset must equal what ecCodes' own grib_get_data prints (GRIB) or what netCDF4-python reads with
CF masking and unpacking, i.e. ncdump's values times scale_factor plus add_offset (NetCDF).
Matching is by latitude/longitude (longitude modulo 360) and valid time / member, so scanning-mode
and orientation handling are checked too. Exit 0 on success, 1 with a message on mismatch.

usage: ingest_compare.py grib|nc SOURCE DATASET VAR:SHORTNAME[:LEVEL]...
"""
import datetime as dt
import subprocess
import sys
import warnings

import netCDF4
import numpy as np


def fail(msg):
    print("ingest_compare: " + msg)
    sys.exit(1)


def hours_since_1970(d):
    return (d - dt.datetime(1970, 1, 1)).total_seconds() / 3600.0


def locate(ds_lat, ds_lon, lat, lon):
    j = np.abs(ds_lat[None, :] - lat[:, None]).argmin(axis=1)
    dl = np.abs(((ds_lon[None, :] - lon[:, None]) + 180.0) % 360.0 - 180.0)
    i = dl.argmin(axis=1)
    if np.abs(ds_lat[j] - lat).max() > 2e-3 or dl[np.arange(len(i)), i].max() > 2e-3:
        fail("source points do not fall on the dataset grid")
    return j, i


def check(ref, got, what):
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if ref.shape != got.shape:
        fail(f"{what}: shape {got.shape} != {ref.shape}")
    nr, ng = np.isnan(ref), np.isnan(got)
    if (nr != ng).any():
        fail(f"{what}: {int((nr != ng).sum())} points differ in missingness")
    ok = ~nr
    tol = 1e-6 * np.maximum(np.abs(ref[ok]), 1e-3)
    err = np.abs(got[ok] - ref[ok])
    if (err > tol).any():
        k = int(np.argmax(err - tol))
        fail(f"{what}: {int((err > tol).sum())} points differ, worst {got[ok][k]} vs {ref[ok][k]}")
    return int(ok.sum()), int(nr.sum())


def main():
    warnings.filterwarnings("ignore")
    kind, src, dsp = sys.argv[1:4]
    ds = netCDF4.Dataset(dsp)
    for spec in sys.argv[4:]:
        parts = spec.split(":")
        compare(kind, src, ds, parts[0], parts[1], parts[2] if len(parts) > 2 else None)


def compare(kind, src, ds, var, short, level):
    ds.set_auto_mask(False)
    ds_lat = ds["latitude"][:].astype(np.float64)
    ds_lon = ds["longitude"][:].astype(np.float64)
    if not (np.diff(ds_lat) < 0).all():
        fail("dataset latitude is not north -> south")
    times = ds["time"][:]
    members = ds["realization"][:].tolist() if "realization" in ds.variables else None
    v = ds[var]
    data = v[:]
    nfields = npts = nmiss = 0
    if kind == "grib":
        where = f"shortName={short}" + (f",level={level}" if level else "")
        keys = subprocess.run(["grib_get", "-f", "-w", where, "-p", "validityDate,validityTime,number,alternativeRowScanning,Ni,Nj", src],
                              capture_output=True, text=True, check=False).stdout.split("\n")
        keys = [k.split() for k in keys if len(k.split()) == 6]
        # (no check: ecCodes tools exit non-zero on a file with a broken message, yet print the others)
        out = subprocess.run(["grib_get_data", "-m", "nan", "-w", where, src], capture_output=True, text=True,
                             check=False).stdout
        # ecCodes prints '"ERROR: unreadable message"' to stdout for a broken message: keep numeric rows only
        blocks = []
        for b in out.split("Latitude Longitude Value"):
            if '"' in b:
                b = "\n".join(r for r in b.split("\n") if not r.lstrip().startswith('"'))
            arr = np.array(b.split(), dtype=np.float64)
            if arr.size:
                blocks.append(arr.reshape(-1, 3))
        if len(blocks) != len(keys) or not blocks:
            fail(f"grib_get_data gave {len(blocks)} fields, grib_get {len(keys)}")
        for blk, (vd, vt, num, alt, ni, nj) in zip(blocks, keys):
            arr = blk
            if alt == "1":
                # ecCodes 2.28's point iterator (and so grib_get_data) ignores alternativeRowScanning and
                # prints every row in the first row's direction; the values of every second row are
                # really stored in the opposite direction (rows are 9x smoother once flipped), so the
                # reference puts them back where they belong.
                vals = arr[:, 2].reshape(int(nj), int(ni))
                vals[1::2] = vals[1::2, ::-1].copy()
                arr[:, 2] = vals.ravel()
            d = dt.datetime.strptime(vd, "%Y%m%d") + dt.timedelta(hours=int(vt) // 100, minutes=int(vt) % 100)
            t = np.where(np.abs(times - hours_since_1970(d)) < 1e-3)[0]
            if len(t) != 1:
                fail(f"valid time {d} not in the dataset")
            field = data[t[0]]
            if members is not None and v.dimensions[1] == "realization":
                field = field[members.index(int(num))]  # member from `number`
            j, i = locate(ds_lat, ds_lon, arr[:, 0], arr[:, 1])
            a, b = check(arr[:, 2], field[j, i], f"{src} field {nfields + 1}")
            npts += a
            nmiss += b
            nfields += 1
    else:
        nc = netCDF4.Dataset(src)
        sv = nc[short]
        sv.set_auto_maskandscale(True)
        dims = sv.dimensions
        raw = np.ma.filled(sv[:].astype(np.float64), np.nan)
        ydim = [k for k, n in enumerate(dims) if "lat" in n][0]
        xdim = [k for k, n in enumerate(dims) if "lon" in n][0]
        lat = nc[dims[ydim]][:].astype(np.float64)
        lon = nc[dims[xdim]][:].astype(np.float64)
        if level is not None:
            zdim = [k for k, n in enumerate(dims) if n in ("level", "lev", "plev")][0]
            kz = list(nc[dims[zdim]][:]).index(float(level))
            raw = np.take(raw, kz, axis=zdim)
            dims = dims[:zdim] + dims[zdim + 1:]
            ydim = [k for k, n in enumerate(dims) if "lat" in n][0]
            xdim = [k for k, n in enumerate(dims) if "lon" in n][0]
        raw = np.moveaxis(raw, [ydim, xdim], [-2, -1])
        raw = raw.reshape((-1, len(lat), len(lon)))
        if data.ndim == 2:
            data = data[None]
        if raw.shape[0] != data.shape[0]:
            fail(f"{raw.shape[0]} source fields but {data.shape[0]} in the dataset")
        jj, ii = np.meshgrid(np.arange(len(lat)), np.arange(len(lon)), indexing="ij")
        j, i = locate(ds_lat, ds_lon, lat[jj.ravel()], lon[ii.ravel()])
        for k in range(raw.shape[0]):
            a, b = check(raw[k].ravel(), data[k][j, i], f"{src} field {k + 1}")
            npts += a
            nmiss += b
            nfields += 1
    print(f"ingest_compare: {src}: {var}: {nfields} fields, {npts} points equal, {nmiss} missing points match")


main()
