#!/usr/bin/python3
"""How much +24 h skill do linear models find on the ERA5 UK test week? (reference, not run time)

Usage: era5_linear_reference.py DATASET.nc [LEAD_HOURS]

DATASET is the ingested ERA5 UK 2 m temperature file (scripts/experiments.sh era5_uk). The protocol
is issue 7's: train 1-21 March, test inits every 6 h from 25 March 00Z while init + lead is inside
the file, latitude-weighted RMSE with the time mean before the root, as a ratio to persistence.

Every model predicts the anomaly from the hour-of-day climatology of the training days:
  damped        damped anomaly persistence, its factor fitted on the training days
  local         one regression pooled over all grid points on the anomalies at t, t-6, t-12, t-18,
                t-24 h, the anomaly of the last 24 h mean and a constant
  spatial r     the same with the anomalies at t, t-6, t-12, t-24 h of the point and of its four
                neighbours r cells away (edge-replicated), i.e. what a linear 'CNN' could see
  recent week   the anomaly from the mean of the last 7 days at the same hour instead (only fields
                at or before the init: what data.recent_days = 7 gives the network), damped by a
                factor fitted on the training days
and each regression is fitted twice: on the training days (an honest forecast) and on the test
inits themselves (an oracle: the best any model of that family could do on this week).
"""
import sys

import netCDF4
import numpy as np

TRAIN_DAYS, TEST_FIRST_DAY = 21, 25  # 1-21 March train, tests start on 25 March (day index 24)


def recent_mean(x, hour, t_info, days=7):
    """Mean of the last `days` fields at the hour of `hour`, a day or more before it, not after t_info."""
    picked = [s for s in range(hour - 24, -1, -24) if s <= t_info][:days]
    return x[picked].mean(0)


def recent_week_row(x, train, test, lead, ratio):
    fit = [t for t in train if t >= 24]
    a0 = np.stack([x[t] - recent_mean(x, t, t) for t in fit])
    a1 = np.stack([x[t + lead] - recent_mean(x, t + lead, t) for t in fit])
    factor = float((a0 * a1).sum() / (a0 * a0).sum())
    forecast = np.stack([recent_mean(x, t + lead, t) + factor * (x[t] - recent_mean(x, t, t)) for t in test])
    return ("recent-week hour-of-day mean + damped anomaly (factor %.2f)" % factor, ratio(forecast), None)


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(__doc__)
    ds = netCDF4.Dataset(argv[1])
    lead = int(argv[2]) if len(argv) == 3 else 24
    x = np.asarray(ds["2t"][:], float)
    w = np.cos(np.deg2rad(np.asarray(ds["latitude"][:], float)))
    w = (w / w.mean())[None, :, None]
    hour = np.arange(x.shape[0]) % 24
    n_train = TRAIN_DAYS * 24
    clim = np.stack([x[:n_train][hour[:n_train] == h].mean(0) for h in range(24)])
    anomaly = x - clim[hour]
    mean24 = np.stack([x[max(i - 23, 0):i + 1].mean(0) for i in range(x.shape[0])]) - clim.mean(0)

    train = np.arange(24, n_train - lead)
    test = np.arange((TEST_FIRST_DAY - 1) * 24, x.shape[0] - lead, 6)

    def mse(forecast, idx):
        return np.mean(w * (forecast - x[idx + lead]) ** 2)

    pers = mse(x[test], test)

    def ratio(forecast):
        return np.sqrt(mse(forecast, test) / pers)

    def shifted(a, dj, dk):
        jj = np.clip(np.arange(a.shape[1]) + dj, 0, a.shape[1] - 1)
        kk = np.clip(np.arange(a.shape[2]) + dk, 0, a.shape[2] - 1)
        return a[:, jj][:, :, kk]

    def features(idx, lags, offsets):
        cols = [shifted(anomaly[idx - lag], dj, dk) for lag in lags for dj, dk in offsets]
        cols += [mean24[idx], np.ones((len(idx),) + x.shape[1:])]
        return np.stack(cols, -1)

    def regression(lags, offsets, fit_on):
        a = features(fit_on, lags, offsets).reshape(-1, len(lags) * len(offsets) + 2)
        coef = np.linalg.lstsq(a, anomaly[fit_on + lead].reshape(-1), rcond=None)[0]
        return clim[hour[test + lead]] + features(test, lags, offsets) @ coef

    a0, a1 = anomaly[train], anomaly[train + lead]
    damping = float((a0 * a1).sum() / (a0 * a0).sum())
    rows = [("persistence", 1.0, None),
            ("hour-of-day climatology", ratio(clim[hour[test + lead]]), None),
            ("damped anomaly persistence (factor %.2f)" % damping,
             ratio(clim[hour[test + lead]] + damping * anomaly[test]), None)]
    local = ((0, 6, 12, 18, 24), [(0, 0)])
    rows.append(("local regression", ratio(regression(*local, train)), ratio(regression(*local, test))))
    rows.append(recent_week_row(x, train, test, lead, ratio))
    for r in (2, 4, 8):
        spatial = ((0, 6, 12, 24), [(0, 0), (r, 0), (-r, 0), (0, r), (0, -r)])
        rows.append(("spatial regression, neighbours %d cells away" % r,
                     ratio(regression(*spatial, train)), ratio(regression(*spatial, test))))

    print("ERA5 UK 2 m temperature, +%d h, %d test inits from 25 March 00Z; persistence RMSE %.3f K"
          % (lead, len(test), np.sqrt(pers)))
    print("| model | fitted on 1-21 March | fitted on the test inits (oracle) |")
    print("|---|---|---|")
    for name, honest, oracle in rows:
        print("| %s | %.3f | %s |" % (name, honest, "-" if oracle is None else "%.3f" % oracle))


if __name__ == "__main__":
    main(sys.argv)
