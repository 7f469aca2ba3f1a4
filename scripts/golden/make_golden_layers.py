#!/usr/bin/python3
"""Golden files for the nn layers (tests/unit/test_nn_*.c) from PyTorch.

Run with /usr/bin/python3 (Debian python3-torch); only needed to regenerate
tests/golden/layers_<name>.nc. Each file holds several cases; case <c> stores variables
<c>_x (input), <c>_w / <c>_b (parameters), <c>_y (output), <c>_gy (a fixed random upstream
gradient) and <c>_gx / <c>_gw / <c>_gb (gradients of sum(y * gy)). Inputs and parameters are
rounded to float32 and the reference is computed in float64, then stored as float32.
"""
import os
import sys

import netCDF4
import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden")


def f32(t):
    """float32-representable float64 tensor that requires grad."""
    return t.float().double().requires_grad_(True)


class Writer:
    def __init__(self, name):
        self.path = os.path.join(OUT, f"layers_{name}.nc")
        self.ds = netCDF4.Dataset(self.path + ".tmp", "w", format="NETCDF3_64BIT_OFFSET")
        self.ds.source = "scripts/golden/make_golden_layers.py, torch " + torch.__version__

    def put(self, case, name, t):
        a = t.detach().cpu().numpy().astype(np.float32)
        dims = []
        for n in a.shape:
            dn = f"n{n}"
            if dn not in self.ds.dimensions:
                self.ds.createDimension(dn, n)
            dims.append(dn)
        v = self.ds.createVariable(f"{case}_{name}", "f4", dims)
        v[...] = a

    def close(self):
        self.ds.close()
        os.replace(self.path + ".tmp", self.path)


def backward(y, gy, *ts):
    grads = torch.autograd.grad(y, ts, gy, allow_unused=True)
    return grads


def conv_cases():
    w = Writer("conv2d")
    #        name                  B  Cin H  W  Cout k  s  pad         bias
    cases = [("zero_k3_s1",        2, 3, 6, 8, 4, 3, 1, "zero", True),
             ("periodic_k5_s1",    2, 2, 8, 10, 3, 5, 1, "periodic", True),
             ("replicate_k3_s1",   2, 3, 5, 7, 2, 3, 1, "replicate", False),
             ("zero_k3_s2",        2, 2, 7, 9, 3, 3, 2, "zero", True),
             ("periodic_k3_s2",    1, 3, 8, 8, 2, 3, 2, "periodic", False),
             ("replicate_k5_s2",   2, 2, 9, 10, 2, 5, 2, "replicate", True),
             ("zero_k1_s1",        2, 5, 4, 6, 3, 1, 1, "zero", True),
             ("periodic_k1_s2",    2, 3, 5, 6, 2, 1, 2, "periodic", False),
             ("periodic_k7_s1",    1, 2, 6, 8, 2, 7, 1, "periodic", True),
             # c_in >= 8 at stride 1: the shifted-GEMM path
             ("shift_zero_k3",     2, 8, 5, 7, 3, 3, 1, "zero", True),
             ("shift_periodic_k5", 3, 8, 6, 9, 2, 5, 1, "periodic", True),
             ("shift_replicate_k3", 2, 9, 4, 6, 3, 3, 1, "replicate", False),
             ("shift_periodic_k7", 1, 8, 4, 5, 2, 7, 1, "periodic", True),
             ("shift_replicate_k5", 2, 8, 3, 4, 2, 5, 1, "replicate", True)]
    for name, B, ci, H, W, co, k, s, pad, bias in cases:
        x = f32(torch.randn(B, ci, H, W))
        wt = f32(torch.randn(co, ci, k, k) / (ci * k * k) ** 0.5)
        bt = f32(torch.randn(co)) if bias else None
        p = k // 2
        if pad == "zero":
            y = F.conv2d(x, wt, bt, stride=s, padding=p)
        elif pad == "periodic":
            y = F.conv2d(F.pad(x, (p, p, 0, 0), mode="circular"), wt, bt, stride=s, padding=(p, 0))
        else:
            y = F.conv2d(F.pad(x, (p, p, p, p), mode="replicate"), wt, bt, stride=s)
        gy = torch.randn_like(y)
        ts = (x, wt) + ((bt,) if bias else ())
        gs = backward(y, gy, *ts)
        w.put(name, "x", x); w.put(name, "w", wt); w.put(name, "y", y); w.put(name, "gy", gy)
        w.put(name, "gx", gs[0]); w.put(name, "gw", gs[1])
        if bias:
            w.put(name, "b", bt); w.put(name, "gb", gs[2])
    w.close()


def conv_transpose_cases():
    w = Writer("conv_transpose")
    #        name            B Cin H W Cout k s p op bias
    cases = [("k2_s2",       2, 3, 3, 4, 2, 2, 2, 0, 0, True),
             ("k3_s2_p1_op1", 2, 2, 4, 3, 3, 3, 2, 1, 1, True),
             ("k4_s2_p1",    1, 3, 3, 3, 2, 4, 2, 1, 0, False),
             ("k3_s1_p1",    2, 2, 4, 5, 2, 3, 1, 1, 0, True)]
    for name, B, ci, H, W, co, k, s, p, op, bias in cases:
        x = f32(torch.randn(B, ci, H, W))
        wt = f32(torch.randn(ci, co, k, k) / (ci * k * k) ** 0.5)
        bt = f32(torch.randn(co)) if bias else None
        y = F.conv_transpose2d(x, wt, bt, stride=s, padding=p, output_padding=op)
        gy = torch.randn_like(y)
        ts = (x, wt) + ((bt,) if bias else ())
        gs = backward(y, gy, *ts)
        w.put(name, "x", x); w.put(name, "w", wt); w.put(name, "y", y); w.put(name, "gy", gy)
        w.put(name, "gx", gs[0]); w.put(name, "gw", gs[1])
        if bias:
            w.put(name, "b", bt); w.put(name, "gb", gs[2])
    w.close()


def simple(wr, name, fn, x):
    y = fn(x)
    gy = torch.randn_like(y)
    (gx,) = backward(y, gy, x)
    wr.put(name, "x", x); wr.put(name, "y", y); wr.put(name, "gy", gy); wr.put(name, "gx", gx)


def pool_upsample_cases():
    w = Writer("pool")
    for H, W in ((6, 8), (7, 9)):
        simple(w, f"avg_{H}x{W}", lambda t: F.avg_pool2d(t, 2), f32(torch.randn(2, 3, H, W)))
        simple(w, f"max_{H}x{W}", lambda t: F.max_pool2d(t, 2), f32(torch.randn(2, 3, H, W)))
    w.close()
    w = Writer("upsample")
    simple(w, "nearest", lambda t: F.interpolate(t, scale_factor=2, mode="nearest"),
           f32(torch.randn(2, 3, 4, 5)))
    simple(w, "bilinear", lambda t: F.interpolate(t, scale_factor=2, mode="bilinear",
                                                  align_corners=False),
           f32(torch.randn(2, 3, 4, 5)))
    w.close()


def norm_cases():
    w = Writer("norm")
    B, C, H, W = 3, 4, 5, 6
    for training in (1, 0):
        name = "bn_train" if training else "bn_eval"
        x = f32(torch.randn(B, C, H, W) * 2 + 0.5)
        g = f32(1 + 0.3 * torch.randn(C))
        b = f32(0.2 * torch.randn(C))
        rm0 = torch.randn(C).float().double() * 0.1
        rv0 = (1 + 0.2 * torch.rand(C)).float().double()
        rm, rv = rm0.clone(), rv0.clone()
        y = F.batch_norm(x, rm, rv, g, b, training=bool(training), momentum=0.1, eps=1e-5)
        gy = torch.randn_like(y)
        gx, gg, gb = backward(y, gy, x, g, b)
        for k, v in (("x", x), ("w", g), ("b", b), ("y", y), ("gy", gy), ("gx", gx), ("gw", gg),
                     ("gb", gb), ("rm0", rm0), ("rv0", rv0), ("rm", rm), ("rv", rv)):
            w.put(name, k, v)
    for G in (3, 1):
        name = f"gn{G}"
        B, C, H, W = 2, 6, 4, 5
        x = f32(torch.randn(B, C, H, W) * 1.5 - 0.3)
        g = f32(1 + 0.3 * torch.randn(C))
        b = f32(0.2 * torch.randn(C))
        y = F.group_norm(x, G, g, b, eps=1e-5)
        gy = torch.randn_like(y)
        gx, gg, gb = backward(y, gy, x, g, b)
        for k, v in (("x", x), ("w", g), ("b", b), ("y", y), ("gy", gy), ("gx", gx), ("gw", gg),
                     ("gb", gb)):
            w.put(name, k, v)
    w.close()


def activation_cases():
    w = Writer("activation")
    x = f32(torch.randn(2, 3, 5, 7) * 2)
    acts = {"relu": F.relu, "leaky_relu": lambda t: F.leaky_relu(t, 0.01),
            "elu": lambda t: F.elu(t, 1.0), "elu_a05": lambda t: F.elu(t, 0.5),
            "gelu": lambda t: F.gelu(t), "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    for name, fn in acts.items():
        simple(w, name, fn, f32(x.detach().clone()))
    w.close()


def dense_cases():
    w = Writer("dense")
    for name, B, I, O, bias in (("bias", 4, 7, 5, True), ("nobias", 3, 6, 2, False)):
        x = f32(torch.randn(B, I))
        wt = f32(torch.randn(O, I) / I ** 0.5)
        bt = f32(torch.randn(O)) if bias else None
        y = F.linear(x, wt, bt)
        gy = torch.randn_like(y)
        ts = (x, wt) + ((bt,) if bias else ())
        gs = backward(y, gy, *ts)
        w.put(name, "x", x); w.put(name, "w", wt); w.put(name, "y", y); w.put(name, "gy", gy)
        w.put(name, "gx", gs[0]); w.put(name, "gw", gs[1])
        if bias:
            w.put(name, "b", bt); w.put(name, "gb", gs[2])
    w.close()


def main():
    torch.manual_seed(20261123)
    os.makedirs(OUT, exist_ok=True)
    conv_cases()
    conv_transpose_cases()
    pool_upsample_cases()
    norm_cases()
    activation_cases()
    dense_cases()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT)
                if f.startswith("layers_"))
    print(f"wrote layers_*.nc to {OUT}: {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
