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

smoe_point.nc: the point-gated layer in evaluation mode (no noise, no capacity): <c>_cfg
  [gate(0 softmax_topk, 1 laplace, 2 hmoe, 3 attention), N, k, hidden, pad, groups,
   experts_per_group, k_outer, k_inner, outer_laplace, inner_laplace, laplace_bias,
   w_importance, w_switch, w_entropy], <c>_x, <c>_params (flat, in pmoe_params order), <c>_gy,
  <c>_y, <c>_gx, <c>_gparams (gradients of sum(y * gy) + the weighted aux losses).

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


def cv2(v):
    if v.numel() < 2:
        return v.sum() * 0
    return v.var(unbiased=True) / (v.mean() ** 2 + 1e-10)


def topk_softmax(logits, k):
    """Softmax over the top-k (ties to the lower index) along dim 1, exactly 0 elsewhere."""
    idx = torch.sort(logits.detach(), dim=1, descending=True, stable=True).indices[:, :k]
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, idx, True)
    return torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=1)


def gate_logits(kind, x, wg, bg=None):
    if kind == "S":
        return torch.einsum("nc,bcyx->bnyx", wg, x)
    d = ((x[:, None] - wg[None, :, :, None, None]) ** 2).sum(2).sqrt()
    return -d + (bg[None, :, None, None] if bg is not None else 0)


def switch_entropy(p):
    n = p.shape[1]
    f = F.one_hot(p.detach().argmax(1), n).permute(0, 3, 1, 2).double().mean((0, 2, 3))
    sw = n * (f * p.mean((0, 2, 3))).sum()
    pbar = p.mean((0, 2, 3))
    ent_tok = -(p * torch.log(p.clamp_min(1e-300))).sum(1).mean()
    ent = ent_tok + (pbar * torch.log(pbar)).sum()
    return sw, ent


def point_case(w, name, gate, n, k, aux, b=2, c=3, h=4, wd=5, co=2, hid=3, padm=0, seed=0,
               groups=2, epg=3, k_outer=1, k_inner=2, levels="LL", lbias=False):
    """Point-gated layer without noise or capacity (evaluation mode)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, s=0.5: f32(torch.randn(*shape, generator=g) * s)
    x = r(b, c, h, wd, s=1.0)
    w1, b1, w2, b2 = r(n * hid, c, 3, 3), r(n * hid), r(n, co, hid), r(n, co)
    params = [w1, b1, w2, b2]
    hpre = F.conv2d(pad(x, padm, 1), w1, b1)
    hh = torch.relu(hpre)
    hv = hh.view(b, n, hid, h, wd)
    e = torch.einsum("noh,bnhyx->bnoyx", w2, hv) + b2[None, :, :, None, None]
    w_imp, w_sw, w_ent = aux
    total = 0
    if gate in ("softmax_topk", "laplace"):
        kind = "S" if gate == "softmax_topk" else "L"
        wg = r(n, c, s=1.0)
        params.append(wg)
        bg = None
        if kind == "L" and lbias:
            bg = r(n)
            params.append(bg)
        logits = gate_logits(kind, x, wg, bg)
        G = topk_softmax(logits, k)
        sw, ent = switch_entropy(torch.softmax(logits, 1))
        total = w_imp * cv2(G.sum((0, 2, 3))) + w_sw * sw + w_ent * ent
    elif gate == "hmoe":
        wo = r(groups, c, s=1.0)
        params.append(wo)
        lo = gate_logits(levels[0], x, wo)
        G1 = topk_softmax(lo, k_outer)
        sw, ent = switch_entropy(torch.softmax(lo, 1))
        total = w_imp * cv2(G1.sum((0, 2, 3))) + w_sw * sw + w_ent * ent
        parts = []
        for gi in range(groups):
            wi = r(epg, c, s=1.0)
            params.append(wi)
            G2 = topk_softmax(gate_logits(levels[1], x, wi), k_inner)
            total = total + w_imp * cv2(G2.sum((0, 2, 3)))
            parts.append(G1[:, gi:gi + 1] * G2)
        G = torch.cat(parts, 1)
    else:  # attention
        wt, bt, wq, wk = r(hid, c), r(hid), r(hid, hid), r(hid, hid)
        params += [wt, bt, wq, wk]
        hg = torch.relu(torch.einsum("dc,bcyx->bdyx", wt, x) + bt[None, :, None, None])
        q = torch.einsum("ed,bdyx->beyx", wq, hg)
        kk = torch.einsum("ed,bndyx->bneyx", wk, hv)
        a = (q[:, None] * kk).sum(2) / hid ** 0.5
        G = topk_softmax(a, k)
        sw, ent = switch_entropy(torch.softmax(a, 1))
        total = w_imp * cv2(G.sum((0, 2, 3))) + w_sw * sw + w_ent * ent
    y = (G[:, :, None] * e).sum(1)
    gy = torch.randn(y.shape, generator=g).double()
    total = total + (y * gy).sum()
    grads = torch.autograd.grad(total, [x] + params)
    cfg = [["softmax_topk", "laplace", "hmoe", "attention"].index(gate), n, k, hid, padm,
           groups, epg, k_outer, k_inner, levels[0] == "L", levels[1] == "L", int(lbias)] + list(aux)
    w.put(f"{name}_cfg", np.array(cfg, dtype=np.float32))
    w.put(f"{name}_x", x)
    w.put(f"{name}_params", torch.cat([p_.reshape(-1) for p_ in params]))
    w.put(f"{name}_gy", gy)
    w.put(f"{name}_y", y)
    w.put(f"{name}_gx", grads[0])
    w.put(f"{name}_gparams", torch.cat([g_.reshape(-1) for g_ in grads[1:]]))


def point_cases():
    w = Writer("point")
    point_case(w, "softmax", "softmax_topk", 4, 2, (0.5, 0.3, 0.2), seed=21)
    point_case(w, "laplace", "laplace", 4, 2, (0.5, 0.3, 0.2), seed=22, lbias=True, padm=1)
    point_case(w, "hmoe_ll", "hmoe", 6, 0, (0.5, 0.3, 0.2), seed=23, levels="LL")
    point_case(w, "hmoe_sl", "hmoe", 6, 0, (0.4, 0.0, 0.0), seed=24, levels="SL", padm=2)
    point_case(w, "attention_dense", "attention", 4, 4, (0.5, 0.3, 0.2), seed=25)
    point_case(w, "attention_k2", "attention", 4, 2, (0.0, 0.0, 0.0), seed=26)
    w.close()


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    layer_cases()
    rc_case()
    point_cases()
    print("wrote", os.path.join(OUT, "smoe_layer.nc"), ", smoe_rc.nc and smoe_point.nc")
