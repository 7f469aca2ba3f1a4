#!/usr/bin/python3
"""Golden files for the SMoE layer and its RC loss (tests/unit/test_smoe_golden.c) from PyTorch.

Run with /usr/bin/python3 (Debian python3-torch); only needed to regenerate tests/golden/smoe_*.nc.

smoe_layer.nc, one group of variables per case <c>:
  <c>_cfg  [gate(0 latent,1 conv,2 conv1x1), weighted, k, N, pad(0 zero,1 periodic_lon,
            2 replicate), softmax, rc, quantile, error_scale, damping, damping_factor]
  <c>_x, <c>_w (experts, (N, C, 3, 3)), <c>_g (gate parameter), <c>_gy (upstream gradient)
  <c>_y, <c>_gx, <c>_gw, <c>_gg (gradients of sum(y * gy) [+ the RC loss when on]), <c>_rc (loss)
The reference follows METHODS.md section 2 literally, with torch autograd doing the chain rule:
straight-through unweighted routing via y = E_sel + (R_sel - R_sel.detach()); with the RC loss
on, the gate is detached from the main loss and trained by BCE-with-logits(R, labels) only;
damping rescales the expert gradient through E*m + (E*(1-m)).detach().
Top-k ties go to the lower expert index (stable descending sort). Computed in float64 from
float32-representable inputs, stored as float32.

smoe_rc.nc: the RC labels and loss alone on a tiny case with ties at the quantile:
  e_s (B, k, P), idx (B, k, P) as float, logits (B, N, P), q, qb (B), labels (B, N, P),
  loss (1), dlogits (B, N, P), and the damping mask for factor 0.25 (B, k, P).
"""
import os

import netCDF4
import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden")
CORRECT_REL = 1e-5
DAMP_REL = 1e-3


class Writer:
    def __init__(self, name):
        self.path = os.path.join(OUT, f"smoe_{name}.nc")
        self.ds = netCDF4.Dataset(self.path + ".tmp", "w", format="NETCDF3_64BIT_OFFSET")
        self.ds.source = "scripts/golden/make_golden_smoe.py, torch " + torch.__version__

    def put(self, name, t):
        a = np.asarray(t.detach().cpu().numpy() if torch.is_tensor(t) else t, dtype=np.float32)
        if a.ndim == 0:
            a = a.reshape(1)
        dims = []
        for n in a.shape:
            dn = f"n{n}"
            if dn not in self.ds.dimensions:
                self.ds.createDimension(dn, n)
            dims.append(dn)
        v = self.ds.createVariable(name, "f4", dims)
        v[...] = a

    def close(self):
        self.ds.close()
        os.replace(self.path + ".tmp", self.path)


def f32(t):
    return t.float().double().requires_grad_(True)


def pad(x, mode, p):
    if p == 0:
        return x
    if mode == 0:
        return F.pad(x, (p, p, p, p))
    if mode == 1:
        return F.pad(F.pad(x, (p, p, 0, 0), mode="circular"), (0, 0, p, p))
    return F.pad(x, (p, p, p, p), mode="replicate")


def rc_labels(e_s, idx, qb, n):
    """Labels (B, N, P) by explicit loops, independent of any vectorised trick."""
    b_, k, p_ = e_s.shape
    lab = torch.zeros(b_, n, p_, dtype=torch.float64)
    for b in range(b_):
        thr = qb[b] * (1 + CORRECT_REL)
        for p in range(p_):
            correct = [bool(e_s[b, j, p] <= thr) for j in range(k)]
            wrong = sum(1 for c in correct if not c)
            for e in range(n):
                lab[b, e, p] = wrong / (n - k) if n > k else 0.0
            for j in range(k):
                lab[b, int(idx[b, j, p]), p] = 1.0 if correct[j] else 0.0
    return lab


def smoe_case(w, name, gate, weighted, k, n, padm, softmax, rc, q, scale, damping, factor,
              b=2, c=3, h=6, wd=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = f32(torch.randn(b, c, h, wd, generator=g))
    we = f32(torch.randn(n, c, 3, 3, generator=g) * 0.4)
    if gate == 0:
        gp = f32((torch.rand(n, h, wd, generator=g) * 2 - 1) * (3 * n / k) ** 0.5)
    else:
        kg = 3 if gate == 1 else 1
        gp = f32(torch.randn(n, c, kg, kg, generator=g) * 0.4)
    gy = torch.randn(b, k, h, wd, generator=g).float().double()

    e_all = F.conv2d(pad(x, padm, 1), we)
    if gate == 0:
        r = gp.unsqueeze(0).expand(b, n, h, wd)
    else:
        r = F.conv2d(pad(x, padm, gp.shape[-1] // 2), gp)
    route = torch.softmax(r, dim=1) if softmax else r
    idx = torch.sort(route.detach(), dim=1, descending=True, stable=True).indices[:, :k]
    esel = torch.gather(e_all, 1, idx)
    rsel = torch.gather(route, 1, idx)
    if rc:
        rsel_main = rsel.detach()
    else:
        rsel_main = rsel
    if rc or damping:
        e = gy * esel.detach() if weighted else gy
        e_s = e.abs() * scale
        qb = torch.quantile(e_s.reshape(b, -1), q, dim=1)
    if damping:
        m = torch.where(e_s > qb.view(b, 1, 1, 1) * (1 + DAMP_REL),
                        torch.tensor(factor, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
        esel_d = esel * m + (esel * (1 - m)).detach()
    else:
        esel_d = esel
    if weighted:
        y = rsel_main * esel_d
    else:
        y = esel_d + (rsel_main - rsel_main.detach())
    total = (y * gy).sum()
    rc_val = torch.zeros(())
    if rc:
        lab = rc_labels(e_s.reshape(b, k, -1), idx.reshape(b, k, -1), qb, n).reshape(b, n, h, wd)
        rc_val = F.binary_cross_entropy_with_logits(r, lab, reduction="mean")
        total = total + rc_val
    gx, gw, gg = torch.autograd.grad(total, (x, we, gp), allow_unused=True)
    cfg = [gate, weighted, k, n, padm, softmax, rc, q, scale, damping, factor]
    w.put(f"{name}_cfg", np.array(cfg, dtype=np.float32))
    for nm, t in (("x", x), ("w", we), ("g", gp), ("gy", gy), ("y", y), ("gx", gx), ("gw", gw),
                  ("gg", gg), ("rc", rc_val)):
        w.put(f"{name}_{nm}", t)


def layer_cases():
    w = Writer("layer")
    #            name            gate w  k  N  pad sm rc  q    scale dmp  factor
    smoe_case(w, "latent_w",       0, 1, 2, 4, 0, 0, 0, 0.7, 1.0, 0, 0.0, seed=1)
    smoe_case(w, "latent_u_rc",    0, 0, 1, 3, 1, 0, 1, 0.3, 1.0, 1, 0.0, seed=2)
    smoe_case(w, "latent_w_sm_rc", 0, 1, 2, 4, 0, 1, 1, 0.5, 48.0, 0, 0.0, seed=3)
    smoe_case(w, "conv_w_rc",      1, 1, 2, 4, 2, 0, 1, 0.7, 1.0, 1, 0.5, seed=4)
    smoe_case(w, "conv_u",         1, 0, 2, 4, 0, 0, 0, 0.7, 1.0, 0, 0.0, seed=5)
    smoe_case(w, "conv_w_damp",    1, 1, 1, 3, 1, 0, 0, 0.3, 1.0, 1, 0.0, seed=6)
    smoe_case(w, "conv1x1_w_sm",   2, 1, 2, 5, 1, 1, 0, 0.7, 1.0, 0, 0.0, seed=7)
    w.close()


def rc_case():
    w = Writer("rc")
    # B = 2, k = 2, N = 4, P = 3; sample 0 ties at its quantile, sample 1 ties below and above.
    e_s = torch.tensor([[[1.0, 2.0, 2.0], [2.0, 3.0, 1.0]],
                        [[0.5, 0.5, 0.5], [0.5, 1.0, 1.0]]], dtype=torch.float64)
    idx = torch.tensor([[[0, 3, 1], [2, 0, 3]],
                        [[1, 1, 2], [0, 3, 0]]])
    q = 0.5
    qb = torch.quantile(e_s.reshape(2, -1), q, dim=1)
    lab = rc_labels(e_s, idx, qb, 4)
    g = torch.Generator().manual_seed(11)
    logits = f32(torch.randn(2, 4, 3, generator=g) * 2)
    loss = F.binary_cross_entropy_with_logits(logits, lab, reduction="mean")
    (dl,) = torch.autograd.grad(loss, (logits,))
    damp = torch.where(e_s > qb.view(2, 1, 1) * (1 + DAMP_REL), 0.25, 1.0)
    for nm, t in (("e_s", e_s), ("idx", idx.double()), ("logits", logits), ("q", torch.tensor(q)),
                  ("qb", qb), ("labels", lab), ("loss", loss), ("dlogits", dl), ("damp", damp)):
        w.put(nm, t)
    w.close()


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    layer_cases()
    rc_case()
    print("wrote", os.path.join(OUT, "smoe_layer.nc"), "and smoe_rc.nc")
