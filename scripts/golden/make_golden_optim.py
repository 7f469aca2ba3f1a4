#!/usr/bin/python3
"""Golden files for the training core (nn/init, nn/loss, nn/optim, nn/schedule).

Run with Debian's interpreter (python3-torch, python3-netcdf4):
    /usr/bin/python3 scripts/golden/make_golden_optim.py [outdir]
Writes (default outdir tests/golden):
  optim_steps.nc     SGD (momentum / nesterov / dampening), Adam (L2) and AdamW (decoupled)
                     trajectories on fixed params and per-step gradients, plus clip_grad_norm_
  optim_schedule.nc  StepLR, LinearLR->CosineAnnealingLR (SequentialLR), ReduceLROnPlateau
  optim_init.nc      fans and kaiming-uniform bounds from torch.nn.init
  loss_small.nc      MSE, lat-weighted MSE, MAE, Gaussian CRPS, ENS-10 CRPS head, NaN-masked
                     versions; values and autograd gradients
The hyper-parameters below are repeated in tests/unit/test_nn_optim.c, test_nn_schedule.c and
test_nn_loss.c: change both together.
"""
import math
import os
import sys
import warnings

import netCDF4
import numpy as np
import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden")


class Writer:
    def __init__(self, path):
        self.ds = netCDF4.Dataset(path, "w", format="NETCDF4")
        self.ds.source = "scripts/golden/make_golden_optim.py, torch " + torch.__version__

    def dim(self, n):
        name = "n%d" % n
        if name not in self.ds.dimensions:
            self.ds.createDimension(name, n)
        return name

    def put(self, name, arr):
        if isinstance(arr, torch.Tensor):
            arr = arr.detach().numpy()
        a = np.asarray(arr, dtype=np.float32)
        v = self.ds.createVariable(name, "f4", tuple(self.dim(s) for s in a.shape))
        if a.shape:
            v[...] = a
        else:
            v.assignValue(a)

    def close(self):
        self.ds.close()


def t2n(t):
    return t.detach().cpu().numpy().astype(np.float32)


# --------------------------------------------------------------------------- optimisers
STEPS = 5
SHAPES = {"w0": (4, 3, 3, 3), "b0": (4,), "w1": (5, 4)}
DECAY = {"w0": True, "b0": False, "w1": True}
CONFIGS = {
    "sgd": dict(kind="sgd", lr=0.1, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=1e-2),
    "sgdnest": dict(kind="sgd", lr=0.05, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=1e-3),
    "sgddamp": dict(kind="sgd", lr=0.1, momentum=0.8, dampening=0.3, nesterov=False, weight_decay=0.0),
    "sgdplain": dict(kind="sgd", lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=1e-2),
    "adam": dict(kind="adam", lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2),
    "adameps": dict(kind="adam", lr=1e-2, betas=(0.8, 0.99), eps=0.1, weight_decay=0.0),
    "adamw": dict(kind="adamw", lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1),
}


def make_optimizer(cfg, params):
    groups = [{"params": [params[k] for k in SHAPES if DECAY[k]]},
              {"params": [params[k] for k in SHAPES if not DECAY[k]], "weight_decay": 0.0}]
    if cfg["kind"] == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"],
                               dampening=cfg["dampening"], nesterov=cfg["nesterov"],
                               weight_decay=cfg["weight_decay"])
    cls = torch.optim.Adam if cfg["kind"] == "adam" else torch.optim.AdamW
    return cls(groups, lr=cfg["lr"], betas=cfg["betas"], eps=cfg["eps"],
               weight_decay=cfg["weight_decay"])


def golden_optim():
    g = torch.Generator().manual_seed(1234)
    init = {k: torch.randn(s, generator=g) for k, s in SHAPES.items()}
    grads = {k: torch.randn((STEPS,) + s, generator=g) * 0.5 for k, s in SHAPES.items()}
    w = Writer(os.path.join(OUT, "optim_steps.nc"))
    for k in SHAPES:
        w.put("init_" + k, init[k])
        w.put("grad_" + k, grads[k])
    for name, cfg in CONFIGS.items():
        params = {k: init[k].clone().requires_grad_(True) for k in SHAPES}
        opt = make_optimizer(cfg, params)
        traj = {k: [] for k in SHAPES}
        for s in range(STEPS):
            for k in SHAPES:
                params[k].grad = grads[k][s].clone()
            opt.step()
            for k in SHAPES:
                traj[k].append(t2n(params[k]))
        for k in SHAPES:
            w.put("%s_%s" % (name, k), np.stack(traj[k]))
            st = opt.state[params[k]]
            if "exp_avg" in st:
                w.put("%s_%s_m" % (name, k), t2n(st["exp_avg"]))
                w.put("%s_%s_v" % (name, k), t2n(st["exp_avg_sq"]))
            elif st.get("momentum_buffer") is not None:
                w.put("%s_%s_m" % (name, k), t2n(st["momentum_buffer"]))
    # clip_grad_norm_ on the step-0 gradients: once clipping (max_norm 1), once not (1e3)
    for tag, max_norm in (("clip1", 1.0), ("clip1000", 1000.0)):
        params = {k: init[k].clone().requires_grad_(True) for k in SHAPES}
        for k in SHAPES:
            params[k].grad = grads[k][0].clone()
        total = torch.nn.utils.clip_grad_norm_([params[k] for k in SHAPES], max_norm)
        w.put(tag + "_norm", float(total))
        for k in SHAPES:
            w.put("%s_%s" % (tag, k), t2n(params[k].grad))
    w.close()


# --------------------------------------------------------------------------- a tiny training run
def golden_train():
    """Linear model pred = X W^T + b, NaN-masked MSE, clip_grad_norm_(1), AdamW (decay on W only),
    StepLR(5, 0.5); 20 steps. Checks loss + gradient + clipping + optimiser + schedule together."""
    g = torch.Generator().manual_seed(99)
    X = torch.randn(16, 3, generator=g)
    Wt = torch.tensor([[1.5, -2.0, 0.5], [0.3, 0.8, -1.2]])
    Y = X @ Wt.T + torch.tensor([0.7, -0.4]) + 0.05 * torch.randn(16, 2, generator=g)
    Y[3, 1] = float("nan")
    Y[10, 0] = float("nan")
    W = (0.1 * torch.randn(2, 3, generator=g)).requires_grad_(True)
    b = torch.zeros(2, requires_grad=True)
    w = Writer(os.path.join(OUT, "optim_train.nc"))
    w.put("X", X)
    w.put("Y", Y)
    w.put("W_init", W)
    w.put("b_init", b)
    opt = torch.optim.AdamW([{"params": [W]}, {"params": [b], "weight_decay": 0.0}], lr=0.2,
                            weight_decay=0.05)
    sch = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    valid = ~torch.isnan(Y)
    losses, norms = [], []
    for _ in range(20):
        opt.zero_grad()
        pred = X @ W.T + b
        loss = ((pred - torch.where(valid, Y, torch.zeros_like(Y))) ** 2)[valid].mean()
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_([W, b], 1.0)))
        opt.step()
        sch.step()
        losses.append(float(loss))
    w.put("loss", losses)
    w.put("grad_norm", norms)
    w.put("W_final", W)
    w.put("b_final", b)
    w.close()


# --------------------------------------------------------------------------- schedules
def lr_sequence(sched, opt, n, metrics=None):
    out = []
    for t in range(n):
        out.append(opt.param_groups[0]["lr"])
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[t])
    out.append(opt.param_groups[0]["lr"])
    return np.array(out)


def dummy_opt(lr):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def golden_schedule():
    w = Writer(os.path.join(OUT, "optim_schedule.nc"))
    # StepLR(step_size=3, gamma=0.5), base 0.1, 12 steps -> 13 values
    opt = dummy_opt(0.1)
    w.put("step_lr", lr_sequence(torch.optim.lr_scheduler.StepLR(opt, 3, 0.5), opt, 12))
    # warm-up 4 (start factor 0.1) then cosine over 16 to eta_min 1e-3: total 20
    opt = dummy_opt(0.1)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=4)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=16, eta_min=1e-3)
    seq = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[4])
    w.put("cosine_lr", lr_sequence(seq, opt, 20))
    # OneCycleLR: peak 0.1, 20 steps, 30 % rising, div 25, final div 1e4 (t = 0..19; torch
    # raises after the last step, smoecast holds the final lr)
    opt = dummy_opt(0.1)
    w.put("onecycle_lr", lr_sequence(torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=20, pct_start=0.3, div_factor=25.0, final_div_factor=1e4,
        cycle_momentum=False), opt, 19))
    # ReduceLROnPlateau on a metric sequence with improvements, plateaus and sub-threshold gains
    metrics = np.array([1.0, 0.9, 0.8, 0.8, 0.79995, 0.8, 0.7, 0.7, 0.71, 0.72, 0.6999, 0.69,
                        0.686, 0.688, 0.687, 0.686, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
                        0.5, 0.5, 0.5, 0.5, 0.5])
    w.put("plateau_metric", metrics)
    for tag, mode in (("plateau_rel", "rel"), ("plateau_abs", "abs")):
        opt = dummy_opt(0.1)
        thr = 1e-4 if mode == "rel" else 0.005
        sch = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2,
                                                         threshold=thr, threshold_mode=mode,
                                                         cooldown=1, min_lr=0.004)
        w.put(tag + "_lr", lr_sequence(sch, opt, len(metrics), metrics.tolist()))
    w.close()


# --------------------------------------------------------------------------- init
def golden_init():
    shapes = [(8, 3, 5, 5), (16, 64, 3, 3), (2, 64, 1, 1), (10, 7), (4, 6, 2, 2), (64, 2, 5, 5)]
    w = Writer(os.path.join(OUT, "optim_init.nc"))
    sh = np.ones((len(shapes), 4))
    ndim = np.zeros(len(shapes))
    fan_in, b_default, b_relu, b_bias = [], [], [], []
    for i, s in enumerate(shapes):
        sh[i, :len(s)] = s
        ndim[i] = len(s)
        t = torch.empty(s)
        fi, _ = torch.nn.init._calculate_fan_in_and_fan_out(t)
        fan = torch.nn.init._calculate_correct_fan(t, "fan_in")
        fan_in.append(fi)
        # torch.nn.init.kaiming_uniform_: std = gain / sqrt(fan); bound = sqrt(3) * std
        g5 = torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5))
        b_default.append(math.sqrt(3.0) * (g5 / math.sqrt(fan)))
        gr = torch.nn.init.calculate_gain("relu")
        b_relu.append(math.sqrt(3.0) * (gr / math.sqrt(fan)))
        b_bias.append(1 / math.sqrt(fi))
    w.put("shape", sh)
    w.put("ndim", ndim)
    w.put("fan_in", fan_in)
    w.put("bound_default", b_default)
    w.put("bound_relu", b_relu)
    w.put("bound_bias", b_bias)
    # the bound torch's nn.Conv2d(64, 16, 3) default init actually respects (empirical check)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 16, 3)
    w.put("conv_64_16_3_weight_maxabs", float(conv.weight.abs().max()))
    w.put("conv_64_16_3_bias_maxabs", float(conv.bias.abs().max()))
    w.close()


# --------------------------------------------------------------------------- losses
def crps_gauss(mu, sigma, y):
    z = (y - mu) / sigma
    n = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
    return sigma * (z * (2 * n.cdf(z) - 1) + 2 * torch.exp(n.log_prob(z)) - 1 / math.sqrt(math.pi))


def golden_loss():
    rng = np.random.default_rng(42)
    N, C, H, W = 2, 3, 4, 5
    shape = (N, C, H, W)
    pred = rng.standard_normal(shape).astype(np.float32)
    target = rng.standard_normal(shape).astype(np.float32)
    target_nan = target.copy()
    target_nan[rng.random(shape) < 0.2] = np.nan
    lat = np.array([-67.5, -22.5, 22.5, 67.5])
    wl = np.cos(np.deg2rad(lat))
    wl = (wl / wl.mean()).astype(np.float32)
    w = Writer(os.path.join(OUT, "loss_small.nc"))
    w.put("pred", pred)
    w.put("target", target)
    w.put("target_nan", target_nan)
    w.put("lat", lat)
    w.put("wlat", wl)

    def emit(name, fn, inputs):
        ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inputs]
        loss = fn(*ts)
        loss.backward()
        w.put(name, float(loss))
        for i, t in enumerate(ts):
            w.put("%s_grad%d" % (name, i), t2n(t.grad))

    y = torch.tensor(target, dtype=torch.float64)
    yn = torch.tensor(target_nan, dtype=torch.float64)
    valid = ~torch.isnan(yn)
    y0 = torch.where(valid, yn, torch.zeros_like(yn))
    wt = torch.tensor(wl, dtype=torch.float64)[None, None, :, None].expand(shape)
    emit("mse", lambda p: torch.nn.functional.mse_loss(p, y), [pred])
    emit("mae", lambda p: torch.nn.functional.l1_loss(p, y), [pred])
    emit("mse_lat", lambda p: (wt * (p - y) ** 2).mean(), [pred])
    emit("mse_masked", lambda p: ((p - y0) ** 2)[valid].mean(), [pred])
    emit("mae_masked", lambda p: (p - y0).abs()[valid].mean(), [pred])
    emit("mse_lat_masked", lambda p: (wt * (p - y0) ** 2)[valid].sum() / wt[valid].sum(), [pred])

    mu = rng.standard_normal(shape).astype(np.float32)
    sigma = np.exp(0.5 * rng.standard_normal(shape)).astype(np.float32)
    w.put("mu", mu)
    w.put("sigma", sigma)
    emit("crps", lambda m, s: crps_gauss(m, s, y).mean(), [mu, sigma])
    emit("crps_masked", lambda m, s: crps_gauss(m, s, y0)[valid].mean(), [mu, sigma])

    out = (0.5 * rng.standard_normal((N, 2, H, W))).astype(np.float32)
    m_ens = rng.standard_normal((N, H, W)).astype(np.float32)
    s_ens = np.exp(0.3 * rng.standard_normal((N, H, W))).astype(np.float32)
    yh = m_ens + s_ens * rng.standard_normal((N, H, W)).astype(np.float32)
    yh_nan = yh.copy()
    yh_nan[rng.random((N, H, W)) < 0.25] = np.nan
    w.put("head_out", out)
    w.put("head_m_ens", m_ens)
    w.put("head_s_ens", s_ens)
    w.put("head_y", yh)
    w.put("head_y_nan", yh_nan)
    me = torch.tensor(m_ens, dtype=torch.float64)
    se = torch.tensor(s_ens, dtype=torch.float64)
    yht = torch.tensor(yh, dtype=torch.float64)
    yhn = torch.tensor(yh_nan, dtype=torch.float64)
    hv = ~torch.isnan(yhn)
    yh0 = torch.where(hv, yhn, torch.zeros_like(yhn))

    def head(o, yy):
        return crps_gauss(o[:, 0] * se + me, torch.exp(o[:, 1]) * se, yy)
    emit("crps_head", lambda o: head(o, yht).mean(), [out])
    emit("crps_head_masked", lambda o: head(o, yh0)[hv].mean(), [out])
    w.close()


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", UserWarning)  # scheduler-order notices
    golden_optim()
    golden_train()
    golden_schedule()
    golden_init()
    golden_loss()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT)
                if f.startswith(("optim_", "loss_")))
    print("wrote golden files to %s (%d bytes)" % (OUT, total))
