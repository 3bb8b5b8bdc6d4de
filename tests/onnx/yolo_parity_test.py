#!/usr/bin/python3
"""PyTorch parity of YOLOv8-format ONNX detectors (issue: Detect RPC, YOLO-format ONNX).

yolo_fixture.py re-creates YOLOv8 (C2f, SPPF, PAN-FPN, DFL head) and exports it as Ultralytics
does (BatchNorm fused, static input, anchors as constants). For each case visionserve must:
  - import the file (torch 1.13 writes chunk() as Shape/Gather/Div/Slice at opset 12 and as
    Split from 13: constant folding and channel slices; the decode tail is recognised as
    YOLOv8's and becomes one DetectDecode),
  - give PyTorch's [N, 4 + classes, anchors] output: boxes within 1e-4 of the input size,
    class scores within 1e-4 absolute.
A model whose tail decodes corner boxes (x1, y1, x2, y2) instead of YOLOv8's (cx, cy, w, h) must
be refused with a clear error, not imported wrongly.

usage: yolo_parity_test.py VISIONONNX_BINARY
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import yolo_fixture  # noqa: E402

BATCH = 2
CASES = [  # (input size, opset, scale, classes)
    (320, 12, "n", 80),
    (416, 13, "n", 80),
    (320, 17, "s", 5),
]


def export(model, path, size, opset):
    torch.onnx.export(model, torch.zeros(1, 3, size, size), path, opset_version=opset,
                      do_constant_folding=True, input_names=["images"], output_names=["output0"])


def main():
    binary = sys.argv[1]
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (size, opset, scale, classes) in enumerate(CASES):
            label = f"yolov8{scale} {size}px opset {opset} {classes} classes"
            model = yolo_fixture.build(size, scale, classes, seed=10 + i)
            path = os.path.join(tmp, f"yolo_{i}.onnx")
            export(model, path, size, opset)
            x = torch.rand((BATCH, 3, size, size), generator=torch.Generator().manual_seed(20 + i))
            with torch.no_grad():
                ref = torch.cat([model(x[k:k + 1]) for k in range(BATCH)]).numpy()
            inp, out = os.path.join(tmp, "in.f32"), os.path.join(tmp, "out.f32")
            x.numpy().astype(np.float32).tofile(inp)
            r = subprocess.run([binary, "run", path, "--input", inp, "--batch", str(BATCH),
                                "--output", out], capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                failures.append(f"{label}: visiononnx run failed: {r.stderr.strip()}")
                continue
            got = np.fromfile(out, dtype=np.float32)
            if got.size != ref.size:
                failures.append(f"{label}: {got.size} values, torch {ref.shape}")
                continue
            got = got.reshape(ref.shape)
            box_err = float(np.abs(got[:, :4] - ref[:, :4]).max()) / size
            cls_err = float(np.abs(got[:, 4:] - ref[:, 4:]).max())
            live = int((ref[:, 4:].max(axis=1) > 0.25).sum())
            print(f"{label}: output {list(ref.shape)}, box error {box_err:.2e} of the input size, "
                  f"score error {cls_err:.2e}, {live} anchors above 0.25", flush=True)
            if not box_err <= 1e-4:
                failures.append(f"{label}: box error {box_err:.3e} > 1e-4 of the input size")
            if not cls_err <= 1e-4:
                failures.append(f"{label}: score error {cls_err:.3e} > 1e-4")

        # Corner boxes are not YOLOv8's convention: refused, naming the difference.
        model = yolo_fixture.build(320, "n", 80, seed=3, xywh=False)
        path = os.path.join(tmp, "xyxy.onnx")
        export(model, path, 320, 13)
        r = subprocess.run([binary, "inspect", path], capture_output=True, text=True, timeout=600)
        msg = r.stderr.strip()
        print(f"corner-box decode: exit {r.returncode}: {msg}", flush=True)
        if r.returncode == 0 or "differs from YOLOv8's decode" not in msg:
            failures.append(f"a corner-box decode was not refused clearly (exit {r.returncode}: {msg})")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
