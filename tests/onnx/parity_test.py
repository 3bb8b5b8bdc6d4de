#!/usr/bin/python3
"""PyTorch parity of ONNX import, weight loading and export (issue: ONNX import and export).

For regnet_y_400mf, convnext_tiny (opsets 13 and 17), efficientnet_b0 and efficientnet_b3 at
300 px: a torchvision model with seeded, re-initialised weights (unit-scale weights, batch-norm
statistics calibrated on random images, so logits are far from degenerate) is
exported to ONNX by torch.onnx.export. visionserve must give PyTorch's logits on the same inputs,
within 1e-4 relative (max |Δ| / max |logit|), with identical top-5 indices wherever neighbouring
logits differ by more than that tolerance:
  1. importing the file (`visiononnx run FILE.onnx`),
  2. loading its weights into the zoo model (`visiononnx run --model M --weights FILE.onnx`),
and the zoo's own export must pass onnx.checker and import back to identical outputs.

usage: parity_test.py VISIONONNX_BINARY
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
import torchvision

TOL = 1e-4
CASES = [  # (model, input size, opset)
    ("regnet_y_400mf", 224, 13),
    ("convnext_tiny", 224, 13),
    ("convnext_tiny", 224, 17),
    ("efficientnet_b0", 224, 13),
    ("efficientnet_b3", 300, 13),
]
BATCH = 2


def reinit(model, seed, size):
    """Unit-scale weights and batch-norm statistics, so logits are O(1) and well separated."""
    g = torch.Generator().manual_seed(seed)
    bns = []
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.0 / m.in_features) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                if isinstance(m, torch.nn.BatchNorm2d):
                    bns.append(m)
            if hasattr(m, "layer_scale"):
                m.layer_scale.copy_(0.3 + 0.4 * torch.rand(m.layer_scale.shape, generator=g))
        # Batch-norm statistics from the data: the cumulative average over one batch of random
        # images, so every channel has its own mean and variance and activations stay unit-scale.
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
            bn.train()
        if bns:
            model(torch.randn((4, 3, size, size), generator=g))
        model.eval()


class ToyNeck(torch.nn.Module):
    """A feature-pyramid step as detector necks build it: nearest upsample, concat, conv."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.c2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.up = torch.nn.Upsample(scale_factor=2, mode="nearest")
        self.c3 = torch.nn.Conv2d(48, 24, 3, padding=1)
        self.fc = torch.nn.Linear(24, 10)

    def forward(self, x):
        a = torch.relu(self.c1(x))
        b = torch.relu(self.c2(a))
        y = torch.nn.functional.silu(self.c3(torch.cat([self.up(b), a], 1)))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(y, 1), 1))


def run(binary, args, inp, tmp):
    out = os.path.join(tmp, "out.f32")
    cmd = [binary, "run", *args, "--input", inp, "--batch", str(BATCH), "--output", out]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {r.stderr}")
    return np.fromfile(out, dtype=np.float32).reshape(BATCH, -1)


def compare(label, ref, got):
    """Returns a list of failure messages (empty when within tolerance)."""
    errors = []
    if ref.shape != got.shape:
        return [f"{label}: shape {got.shape} != {ref.shape}"]
    scale = float(np.abs(ref).max())
    rel = float(np.abs(ref - got).max()) / scale
    tol = TOL * scale
    for n in range(ref.shape[0]):
        order = np.argsort(-ref[n])
        srt = ref[n][order]
        got_top = np.argsort(-got[n])[:5]
        for k in range(5):
            left = srt[k - 1] - srt[k] if k > 0 else np.inf
            right = srt[k] - srt[k + 1]
            if min(left, right) > tol and got_top[k] != order[k]:
                errors.append(f"{label}: image {n} top-{k + 1} is {got_top[k]}, torch {order[k]}")
    print(f"{label}: max|logit| {scale:.3f}, max rel err {rel:.2e}, torch top-5 {list(np.argsort(-ref[0])[:5])}",
          flush=True)
    if not (rel <= TOL):
        errors.append(f"{label}: relative error {rel:.3e} > {TOL}")
    return errors


def main():
    binary = sys.argv[1]
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, size, opset) in enumerate(CASES):
            torch.manual_seed(1000 + i)
            model = getattr(torchvision.models, name)()
            reinit(model, 2000 + i, size)
            model.eval()
            x = torch.randn((BATCH, 3, size, size), generator=torch.Generator().manual_seed(3000 + i))
            with torch.no_grad():
                ref = model(x).numpy()
            path = os.path.join(tmp, f"{name}_op{opset}.onnx")
            torch.onnx.export(model, x[:1], path, opset_version=opset, input_names=["input"],
                              output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            inp = os.path.join(tmp, "in.f32")
            x.numpy().astype(np.float32).tofile(inp)
            failures += compare(f"{name} opset {opset} import", ref, run(binary, [path], inp, tmp))
            failures += compare(f"{name} opset {opset} zoo+weights", ref,
                                run(binary, ["--model", name, "--weights", path], inp, tmp))
            if opset == 13:
                # The zoo's export: valid ONNX, and it imports back to identical outputs.
                exported = os.path.join(tmp, f"{name}_zoo.onnx")
                r = subprocess.run([binary, "export", name, exported, "--seed", "7", "--opset", "17"],
                                   capture_output=True, text=True, timeout=600)
                if r.returncode != 0:
                    failures.append(f"{name}: export failed: {r.stderr}")
                    continue
                onnx.checker.check_model(onnx.load(exported))
                zoo = run(binary, ["--model", name, "--seed", "7"], inp, tmp)
                back = run(binary, [exported], inp, tmp)
                if not np.array_equal(zoo, back):
                    failures.append(f"{name}: zoo → ONNX → import differs by {np.abs(zoo - back).max()}")
                else:
                    print(f"{name} round trip: identical ({zoo.size} logits)", flush=True)
        # Upsample + Concat (Resize, Concat), as in detection necks.
        torch.manual_seed(5)
        neck = ToyNeck().eval()
        reinit(neck, 6, 64)
        x = torch.randn((BATCH, 3, 64, 64), generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            ref = neck(x).numpy()
        path = os.path.join(tmp, "neck.onnx")
        torch.onnx.export(neck, x[:1], path, opset_version=13, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}})
        inp = os.path.join(tmp, "in.f32")
        x.numpy().astype(np.float32).tofile(inp)
        failures += compare("toy neck (Resize, Concat) import", ref, run(binary, [path], inp, tmp))
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
