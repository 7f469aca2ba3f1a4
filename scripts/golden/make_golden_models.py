#!/usr/bin/python3
"""Golden files for the model builder (tests/unit/test_model_golden.c) from PyTorch.

Run with /usr/bin/python3 (Debian python3-torch); only needed to regenerate
tests/golden/model_<arch>.nc. Each file holds one small instance of an architecture exactly as
src/model/builder.c assembles it, with fixed random weights already in the C parameter layout
and names:
  x            input (B, C_in, H, W)
  gy           fixed random upstream gradient dL/dy
  y            output of a training-mode forward (BatchNorm batch statistics)
  p_<name>     every tensor of the C param store before the step (weights, biases, BN
               affine parameters, BN running statistics)
  g_<name>     gradient of sum(y * gy) for every trainable tensor
  r_<name>     BN running statistics after the forward (momentum 0.1, unbiased variance)
model_cnn_smoe.nc is a CNN whose last conv is replaced by an SMoE layer (conv gate, weighted
top-k routing, N 4, k 2) plus its bias layer. Inputs and parameters are rounded to float32, the reference is computed in float64 and stored
as float32. Attributes record the config overrides that build the same model in C. The BatchNorm models
(resnet, unet) are built without conv biases, as usual before BatchNorm: the exact gradient of
such a bias is 0 and float32 rounding alone (~1e-6) would exceed the absolute tolerance.
"""
import os

import netCDF4
import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden")


def f32(t):
    return t.float().double().requires_grad_(True)


class Net:
    """Parameters by C name, plus the forward building blocks of src/model/builder.c."""

    def __init__(self, pad, act, batchnorm, bias=True):
        self.p = {}            # name -> tensor (trainable ones require grad)
        self.order = []
        self.pad = pad
        self.act = act
        self.batchnorm = batchnorm
        self.bias = bias

    def param(self, name, shape, scale=1.0, trainable=True, value=None):
        if getattr(self, "frozen", False):
            return self.p[name]
        if value is None:
            t = torch.randn(*shape) * scale
        else:
            t = torch.full(shape, float(value))
        t = f32(t) if trainable else t.float().double()
        self.p[name] = t
        self.order.append(name)
        return t

    def conv(self, name, x, c_out, k):
        bias = self.bias
        c_in = x.shape[1]
        w = self.p.get(name + ".weight")
        if w is None:
            w = self.param(name + ".weight", (c_out, c_in, k, k), (c_in * k * k) ** -0.5)
            b = self.param(name + ".bias", (c_out,), 0.1) if bias else None
        else:
            b = self.p.get(name + ".bias")
        p = k // 2
        if self.pad == "periodic":
            if p:
                x = F.pad(x, (p, p, 0, 0), mode="circular")
            return F.conv2d(x, w, b, padding=(p, 0))
        return F.conv2d(x, w, b, padding=p)

    def convt(self, name, x, c_out):
        bias = self.bias
        c_in = x.shape[1]
        w = self.p.get(name + ".weight")
        if w is None:
            w = self.param(name + ".weight", (c_in, c_out, 2, 2), (c_in * 4) ** -0.5)
            b = self.param(name + ".bias", (c_out,), 0.1) if bias else None
        else:
            b = self.p.get(name + ".bias")
        return F.conv_transpose2d(x, w, b, stride=2)

    def bn(self, name, x):
        c = x.shape[1]
        if name + ".weight" not in self.p:
            self.param(name + ".weight", (c,), 0.2)
            with torch.no_grad():
                self.p[name + ".weight"] += 1.0
            self.param(name + ".bias", (c,), 0.1)
            self.param(name + ".running_mean", (c,), trainable=False, value=0.0)
            self.param(name + ".running_var", (c,), trainable=False, value=1.0)
        return F.batch_norm(x, self.p[name + ".running_mean"], self.p[name + ".running_var"],
                            self.p[name + ".weight"], self.p[name + ".bias"], training=True,
                            momentum=0.1, eps=1e-5)

    def activation(self, x):
        return {"elu": F.elu, "relu": F.relu, "tanh": torch.tanh}[self.act](x)

    def unit(self, name, x, c_out, k):
        x = self.conv(name, x, c_out, k)
        if self.batchnorm:
            x = self.bn(name + "_bn", x)
        return self.activation(x)


def smoe(net, name, x, n_experts, k):
    """SMoE layer (METHODS.md section 2): conv gate, weighted routing, no noise/softmax/RC, followed
    by the per-channel bias layer the builder adds (model.bias)."""
    c_in = x.shape[1]
    we = net.param(name + ".expert_weight", (n_experts, c_in, 3, 3), (c_in * 9) ** -0.5)
    wg = net.param(name + ".gate_weight", (n_experts, c_in, 3, 3), (c_in * 9) ** -0.5)
    b = net.param(name + "_bias.bias", (k,), 0.1)
    xp = F.pad(x, (1, 1, 0, 0), mode="circular") if net.pad == "periodic" else x
    pad = (1, 0) if net.pad == "periodic" else 1
    e = F.conv2d(xp, we, padding=pad)
    r = F.conv2d(xp, wg, padding=pad)
    vals, idx = torch.topk(r, k, dim=1, largest=True, sorted=True)
    y = vals * torch.gather(e, 1, idx)
    return y + b[None, :, None, None]


def cnn_smoe(net, x, channels, k, c_out, n_experts):
    for i, c in enumerate(channels):
        x = net.unit(f"conv{i}", x, c, k)
    return smoe(net, f"conv{len(channels)}", x, n_experts, c_out)


def cnn(net, x, channels, k, c_out):
    for i, c in enumerate(channels):
        x = net.unit(f"conv{i}", x, c, k)
    return net.conv(f"conv{len(channels)}", x, c_out, k)


def resnet(net, x, width, blocks, k, c_out):
    x = net.unit("stem", x, width, k)
    for b in range(blocks):
        y = net.unit(f"block{b}.conv0", x, width, k)
        y = net.unit(f"block{b}.conv1", y, width, k)
        x = x + y
    return net.conv("head", x, c_out, k)


def unet(net, x, channels, k, c_out):
    skips = []
    for i, c in enumerate(channels):
        if i > 0:
            x = F.max_pool2d(x, 2)
        x = net.unit(f"enc{i}.conv0", x, c, k)
        x = net.unit(f"enc{i}.conv1", x, c, k)
        skips.append(x)
    for i in range(len(channels) - 2, -1, -1):
        x = net.convt(f"dec{i}.up", x, channels[i])
        x = torch.cat([skips[i], x], 1)
        x = net.unit(f"dec{i}.conv0", x, channels[i], k)
        x = net.unit(f"dec{i}.conv1", x, channels[i], k)
    return net.conv("head", x, c_out, 1)


def write(arch, overrides, net, build):
    B, C_in, H, W, C_out = build["shape"]
    x = torch.randn(B, C_in, H, W).float().double()
    # first pass creates the parameters; reset running stats, then the measured pass
    with torch.no_grad():
        build["fn"](net, x.clone())
    net.frozen = True
    for n in net.order:
        if n.endswith(".running_mean"):
            net.p[n].zero_()
        elif n.endswith(".running_var"):
            net.p[n].fill_(1.0)
    before = {n: net.p[n].detach().clone() for n in net.order}
    y = build["fn"](net, x)
    gy = torch.randn_like(y)
    trainable = [n for n in net.order if net.p[n].requires_grad]
    grads = torch.autograd.grad(y, [net.p[n] for n in trainable], gy)
    path = os.path.join(OUT, f"model_{arch}.nc")
    ds = netCDF4.Dataset(path + ".tmp", "w", format="NETCDF4")
    ds.source = "scripts/golden/make_golden_models.py, torch " + torch.__version__
    ds.overrides = ";".join(overrides)
    ds.c_in, ds.c_out, ds.nlat, ds.nlon, ds.batch = C_in, C_out, H, W, B
    ds.periodic_lon = int(net.pad == "periodic")

    def put(name, t):
        a = t.detach().cpu().numpy().astype(np.float32)
        dims = []
        for n in a.shape:
            dn = f"n{n}"
            if dn not in ds.dimensions:
                ds.createDimension(dn, n)
            dims.append(dn)
        ds.createVariable(name, "f4", dims)[...] = a

    put("x", x)
    put("y", y)
    put("gy", gy)
    for n in net.order:
        put("p_" + n, before[n])
        if n.endswith(".running_mean") or n.endswith(".running_var"):
            put("r_" + n, net.p[n])
    for n, g in zip(trainable, grads):
        put("g_" + n, g)
    ds.close()
    os.replace(path + ".tmp", path)
    print(path, os.path.getsize(path), "bytes,", len(net.order), "tensors")


def main():
    torch.manual_seed(20261123)
    # WeatherBench CNN (periodic, ELU, no BN), small
    ov = ["model.architecture=cnn", "model.channels=[4, 4]", "model.kernel=5", "model.activation=elu",
          "model.padding=periodic_lon"]
    write("cnn", ov, Net("periodic", "elu", False),
          {"shape": (2, 2, 8, 16, 2), "fn": lambda n, x: cnn(n, x, [4, 4], 5, 2)})
    # Rasp & Thuerey ResNet (periodic, BN, ELU)
    ov = ["model.architecture=resnet", "model.channels=[4]", "model.blocks=2", "model.kernel=3",
          "model.batchnorm=true", "model.activation=elu", "model.padding=periodic_lon",
          "model.bias=false"]
    write("resnet", ov, Net("periodic", "elu", True, bias=False),
          {"shape": (2, 2, 8, 16, 1), "fn": lambda n, x: resnet(n, x, 4, 2, 3, 1)})
    # ENS-10 U-Net, 3 levels (zero padding, BN, ELU)
    ov = ["model.architecture=unet", "model.channels=[4, 6, 8]", "model.kernel=3",
          "model.batchnorm=true", "model.activation=elu", "model.padding=zero", "model.bias=false"]
    write("unet", ov, Net("zero", "elu", True, bias=False),
          {"shape": (2, 3, 8, 16, 2), "fn": lambda n, x: unet(n, x, [4, 6, 8], 3, 2)})
    # WeatherBench-style CNN whose last conv is an SMoE layer (conv gate, weighted, N 4, k 2)
    ov = ["model.architecture=cnn", "model.channels=[4]", "model.kernel=3", "model.activation=elu",
          "model.padding=periodic_lon", "model.moe.enabled=true", "model.moe.gate=conv",
          "model.moe.experts=4", "model.moe.k=2", "model.moe.rc_loss.enabled=false"]
    write("cnn_smoe", ov, Net("periodic", "elu", False),
          {"shape": (2, 2, 8, 16, 2), "fn": lambda n, x: cnn_smoe(n, x, [4], 3, 2, 4)})


if __name__ == "__main__":
    main()
