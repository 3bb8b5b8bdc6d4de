"""A YOLOv8-architecture detector in PyTorch and its ONNX export, as Ultralytics makes it.

There is no Ultralytics package (nor network) here, so this file re-creates, module for
module, the YOLOv8 network (Conv-BN-SiLU, C2f, SPPF, nearest Upsample + Concat PAN-FPN, and the
anchor-free Detect head with its DFL and dist2bbox decode) and exports it the way
`yolo export format=onnx` does: BatchNorm fused into the convs, the Detect head in export mode
(anchors and strides computed by a dry run, so they are constants of the graph), a static
[1, 3, S, S] input named "images" and one output "output0" of shape [1, 4 + nc, anchors].

Weights are seeded: unit-scale convs and BatchNorm statistics calibrated on random images, so the
network's activations stay O(1) through every layer (the parity test compares real numbers, not
1e-30s).

    python3 yolo_fixture.py OUT.onnx [--size 320] [--opset 12] [--scale n] [--classes 80]
    python3 yolo_fixture.py OUT.onnx --reference IN.npy OUT.npy   # PyTorch's output on IN
"""
import argparse
import math
import sys

import numpy as np
import torch
import torch.nn as nn


def autopad(k, p=None, d=1):
    if d > 1:
        k = d * (k - 1) + 1 if isinstance(k, int) else [d * (x - 1) + 1 for x in k]
    if p is None:
        p = k // 2 if isinstance(k, int) else [x // 2 for x in k]
    return p


class Conv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, d=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=0.001, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))

    def forward_fuse(self, x):
        return self.act(self.conv(x))


class Bottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True, g=1, k=(3, 3), e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, k[0], 1)
        self.cv2 = Conv(c_, c2, k[1], 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class C2f(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=False, g=1, e=0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(
            Bottleneck(self.c, self.c, shortcut, g, k=((3, 3), (3, 3)), e=1.0) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class DFL(nn.Module):
    def __init__(self, c1=16):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        x = torch.arange(c1, dtype=torch.float)
        self.conv.weight.data[:] = nn.Parameter(x.view(1, c1, 1, 1))
        self.c1 = c1

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def make_anchors(feats, strides, grid_cell_offset=0.5):
    anchor_points, stride_tensor = [], []
    dtype, device = feats[0].dtype, feats[0].device
    for i, stride in enumerate(strides):
        _, _, h, w = feats[i].shape
        sx = torch.arange(end=w, device=device, dtype=dtype) + grid_cell_offset
        sy = torch.arange(end=h, device=device, dtype=dtype) + grid_cell_offset
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        anchor_points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_tensor.append(torch.full((h * w, 1), stride, dtype=dtype, device=device))
    return torch.cat(anchor_points), torch.cat(stride_tensor)


def dist2bbox(distance, anchor_points, xywh=True, dim=-1):
    lt, rb = distance.chunk(2, dim)
    x1y1 = anchor_points - lt
    x2y2 = anchor_points + rb
    if xywh:
        c_xy = (x1y1 + x2y2) / 2
        wh = x2y2 - x1y1
        return torch.cat((c_xy, wh), dim)
    return torch.cat((x1y1, x2y2), dim)


class Detect(nn.Module):
    def __init__(self, nc=80, ch=()):
        super().__init__()
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = 16
        self.no = nc + self.reg_max * 4
        self.stride = torch.tensor([8.0, 16.0, 32.0])
        self.shape = None
        self.export = False
        self.xywh = True  # False: corner boxes, not YOLOv8's convention (a negative test case)
        c2, c3 = max((16, ch[0] // 4, self.reg_max * 4)), max(ch[0], min(self.nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * self.reg_max, 1))
            for x in ch)
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, self.nc, 1)) for x in ch)
        self.dfl = DFL(self.reg_max)

    def forward(self, x):
        for i in range(self.nl):
            x[i] = torch.cat((self.cv2[i](x[i]), self.cv3[i](x[i])), 1)
        shape = x[0].shape
        x_cat = torch.cat([xi.view(shape[0], self.no, -1) for xi in x], 2)
        if self.shape != shape:
            self.anchors, self.strides = (a.transpose(0, 1) for a in make_anchors(x, self.stride, 0.5))
            self.shape = shape
        box, cls = x_cat.split((self.reg_max * 4, self.nc), 1)
        dbox = dist2bbox(self.dfl(box), self.anchors.unsqueeze(0), xywh=self.xywh, dim=1) * self.strides
        y = torch.cat((dbox, cls.sigmoid()), 1)
        return y if self.export else (y, x)


SCALES = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024)}


class YOLOv8(nn.Module):
    """yolov8.yaml's backbone and head at a scale (depth, width, max channels)."""

    def __init__(self, scale="n", nc=80):
        super().__init__()
        d, w, mc = SCALES[scale]
        ch = lambda c: int(math.ceil(min(c, mc) * w / 8) * 8)
        n = lambda k: max(round(k * d), 1)
        self.b0 = Conv(3, ch(64), 3, 2)
        self.b1 = Conv(ch(64), ch(128), 3, 2)
        self.b2 = C2f(ch(128), ch(128), n(3), True)
        self.b3 = Conv(ch(128), ch(256), 3, 2)
        self.b4 = C2f(ch(256), ch(256), n(6), True)
        self.b5 = Conv(ch(256), ch(512), 3, 2)
        self.b6 = C2f(ch(512), ch(512), n(6), True)
        self.b7 = Conv(ch(512), ch(1024), 3, 2)
        self.b8 = C2f(ch(1024), ch(1024), n(3), True)
        self.b9 = SPPF(ch(1024), ch(1024), 5)
        self.up = nn.Upsample(None, 2, "nearest")
        self.h12 = C2f(ch(1024) + ch(512), ch(512), n(3))
        self.h15 = C2f(ch(512) + ch(256), ch(256), n(3))
        self.h16 = Conv(ch(256), ch(256), 3, 2)
        self.h18 = C2f(ch(256) + ch(512), ch(512), n(3))
        self.h19 = Conv(ch(512), ch(512), 3, 2)
        self.h21 = C2f(ch(512) + ch(1024), ch(1024), n(3))
        self.detect = Detect(nc, (ch(256), ch(512), ch(1024)))

    def forward(self, x):
        x = self.b1(self.b0(x))
        x = self.b2(x)
        p3 = self.b4(self.b3(x))
        p4 = self.b6(self.b5(p3))
        p5 = self.b9(self.b8(self.b7(p4)))
        h12 = self.h12(torch.cat([self.up(p5), p4], 1))
        h15 = self.h15(torch.cat([self.up(h12), p3], 1))
        h18 = self.h18(torch.cat([self.h16(h15), h12], 1))
        h21 = self.h21(torch.cat([self.h19(h18), p5], 1))
        return self.detect([h15, h18, h21])

    def fuse(self):
        for m in self.modules():
            if isinstance(m, Conv):
                conv, bn = m.conv, m.bn
                fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                  conv.stride, conv.padding, conv.dilation, conv.groups, bias=True)
                std = torch.sqrt(bn.running_var + bn.eps)
                fused.weight.data = conv.weight.data * (bn.weight / std).view(-1, 1, 1, 1)
                fused.bias.data = bn.bias - bn.weight * bn.running_mean / std
                m.conv = fused
                delattr(m, "bn")
                m.forward = m.forward_fuse
        return self


def build(size=320, scale="n", nc=80, seed=0, xywh=True):
    torch.manual_seed(seed)
    model = YOLOv8(scale, nc)
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.weight.requires_grad:
            fan_in = m.weight[0].numel()
            nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(fan_in))
            if m.bias is not None:
                nn.init.uniform_(m.bias, -0.5, 0.5)
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.8, 1.2)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    # Calibrate BatchNorm statistics on random images (cumulative average, as PyTorch's
    # momentum=None), so every layer sees roughly unit-variance inputs.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(2, 3, size, size))
    model.eval()
    model.detect.shape = None
    model.fuse()
    model.detect.export = True
    model.detect.xywh = xywh
    with torch.no_grad():
        for _ in range(2):  # Ultralytics' dry runs: anchors and strides become constants
            model(torch.zeros(1, 3, size, size))
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--opset", type=int, default=12)
    ap.add_argument("--scale", default="n", choices=sorted(SCALES))
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", nargs=2, metavar=("IN_NPY", "OUT_NPY"))
    a = ap.parse_args()
    model = build(a.size, a.scale, a.classes, a.seed)
    im = torch.zeros(1, 3, a.size, a.size)
    torch.onnx.export(model, im, a.out, opset_version=a.opset, do_constant_folding=True,
                      input_names=["images"], output_names=["output0"])
    if a.reference:
        x = torch.from_numpy(np.load(a.reference[0]).astype(np.float32))
        with torch.no_grad():
            y = torch.cat([model(x[i:i + 1]) for i in range(x.shape[0])])
        np.save(a.reference[1], y.numpy())
    return 0


if __name__ == "__main__":
    sys.exit(main())
