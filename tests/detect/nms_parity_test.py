#!/usr/bin/python3
"""Parity of visionserve's class-aware NMS (server/detect/nms.h) with torchvision.ops.batched_nms.

torchvision 0.14 on CPU, float32: every case must give exactly the same kept indices in exactly
the same order (then cut to max_detections, as Ultralytics' keep[:max_det]). The cases cover both
of batched_nms's strategies (coordinate trick for n <= 1000, per-class loop above), random and
clustered boxes (many overlaps), and adversarial inputs: massive score ties, exact duplicates,
zero-area and inverted boxes, IoU exactly at the threshold, huge, tiny and negative coordinates,
sparse/negative/huge class ids, thresholds 0 and 1, max_detections cutting through ties.
Non-finite inputs must be rejected (INVALID_ARGUMENT), not compared.
Every ISA the CPU supports is run (nms_tool --isa).

usage: nms_parity_test.py NMS_TOOL_BINARY
"""
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision

INVALID_ARGUMENT = 3
rng = np.random.default_rng(20240601)


def f32(x):
    return float(np.float32(x))


def random_boxes(n, size=640.0, min_wh=2.0, max_wh=200.0):
    cx = rng.uniform(0, size, n)
    cy = rng.uniform(0, size, n)
    w = rng.uniform(min_wh, max_wh, n)
    h = rng.uniform(min_wh, max_wh, n)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(np.float32)


def clustered_boxes(n, clusters, size=640.0, jitter=0.08):
    """Boxes around a few objects, as a detector's anchors fire: most pairs overlap a lot."""
    centers = random_boxes(clusters, size, 20, 300)
    pick = rng.integers(0, clusters, n)
    base = centers[pick]
    wh = np.stack([base[:, 2] - base[:, 0], base[:, 3] - base[:, 1]] * 2, 1)
    return (base + rng.normal(0, jitter, (n, 4)).astype(np.float32) * wh).astype(np.float32)


def scores_for(n, kind):
    if kind == "uniform":
        return rng.uniform(0, 1, n).astype(np.float32)
    if kind == "ties4":  # four distinct values: huge tie groups
        return (rng.integers(0, 4, n) / 4).astype(np.float32)
    if kind == "ties32":
        return (rng.integers(0, 32, n) / 32).astype(np.float32)
    if kind == "equal":
        return np.full(n, 0.5, np.float32)
    raise ValueError(kind)


def case(boxes, scores, classes, iou, max_det=None):
    n = len(scores)
    return {
        "boxes": np.ascontiguousarray(boxes, np.float32).reshape(n, 4),
        "scores": np.ascontiguousarray(scores, np.float32),
        "classes": np.ascontiguousarray(classes, np.int32),
        "iou": f32(iou),
        "max_det": max(n, 1) if max_det is None else max_det,
    }


def build_cases():
    cases = []
    ious = [0.0, 0.3, 0.45, 0.5, 0.7, 1.0]
    # Random and clustered, across both strategies (the switch is at n = 1000).
    for n in [0, 1, 2, 3, 7, 16, 17, 100, 999, 1000, 1001, 2500, 8400]:
        for ncls in [1, 3, 80]:
            for kind in ["uniform", "ties4", "ties32", "equal"]:
                for layout in ["random", "clustered"]:
                    if n >= 2500 and (ncls == 3 or kind == "ties32"):
                        continue  # keep the run short; the big sizes still see every other mix
                    boxes = random_boxes(n) if layout == "random" else clustered_boxes(
                        n, max(1, n // 40))
                    classes = rng.integers(0, ncls, n)
                    iou = ious[len(cases) % len(ious)]
                    cases.append(case(boxes, scores_for(n, kind), classes, iou))
    # Exact duplicates (identical box, score, class), shuffled among others.
    for n in [10, 500, 1500]:
        base = clustered_boxes(n // 5, 3)
        boxes = np.repeat(base, 5, 0)
        scores = np.repeat(scores_for(n // 5, "ties4"), 5)
        perm = rng.permutation(len(boxes))
        for iou in [0.0, 0.5, 1.0]:
            cases.append(case(boxes[perm], scores[perm], rng.integers(0, 2, len(boxes)), iou))
    # Zero-area boxes (lines and points, IoU 0 or 0/0 = NaN) and inverted boxes (x2 < x1).
    for n in [50, 900, 1200]:
        boxes = clustered_boxes(n, 5)
        k = n // 3
        boxes[:k, 2] = boxes[:k, 0]  # zero width
        boxes[k:2 * k, 3] = boxes[k:2 * k, 1]  # zero height
        boxes[2 * k:2 * k + 10] = 0  # the same point
        boxes[2 * k + 10:2 * k + 30, [0, 2]] = boxes[2 * k + 10:2 * k + 30, [2, 0]]  # inverted
        for kind in ["ties4", "equal"]:
            for iou in [0.0, 0.5]:
                cases.append(case(boxes, scores_for(n, kind), rng.integers(0, 3, n), iou))
    # IoU exactly at the threshold: [0,0,4,1] vs [0,0,2,1] -> 2/4 = 0.5; kept at 0.5, not at
    # 0.4999; plus 1/3 which is not exact in float32.
    b = np.array([[0, 0, 4, 1], [0, 0, 2, 1], [0, 0, 3, 1], [1, 0, 3, 1]], np.float32)
    for iou in [0.5, np.nextafter(np.float32(0.5), np.float32(0)), 1 / 3, 2 / 3, 0.75]:
        for scores in [[0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.5, 0.5], [0.1, 0.9, 0.9, 0.2]]:
            cases.append(case(b, scores, [0, 0, 0, 0], iou))
            cases.append(case(np.tile(b, (300, 1)), np.tile(scores, 300), np.zeros(1200), iou))
    # Coordinates: huge (offsets overflow to inf in the trick), tiny, subnormal, negative.
    for scale in [1e-38, 1e-30, 1e-3, 1e4, 1e7, 1e15, 1e36]:
        for n in [300, 1100]:
            boxes = clustered_boxes(n, 8) * np.float32(scale / 640)
            cases.append(case(boxes, scores_for(n, "ties32"), rng.integers(0, 80, n), 0.5))
    for n in [400, 1100]:
        boxes = clustered_boxes(n, 8) - np.float32(500)  # negative: the trick lets classes mix
        cases.append(case(boxes, scores_for(n, "ties4"), rng.integers(0, 5, n), 0.3))
    # Class ids: sparse, negative, huge (offsets lose precision in float32).
    for ids in [[0, 1000000], [-7, 3, 12], [2**24 + 1, 5], [-(2**31), 2**31 - 1]]:
        for n in [200, 1300]:
            cases.append(case(clustered_boxes(n, 6), scores_for(n, "ties4"),
                              rng.choice(ids, n), 0.45))
    # Scores of any sign and size (the radix sort's key), with -0.0 and +0.0 (equal for torch).
    for n in [300, 600, 1500, 5000]:
        boxes = clustered_boxes(n, max(1, n // 30))
        wide = rng.normal(0, 1000, n).astype(np.float32)
        zeros = rng.choice(np.array([-0.0, 0.0, 0.5, -0.5], np.float32), n)
        for scores in [wide, zeros]:
            cases.append(case(boxes, scores, rng.integers(0, 4, n), 0.5))
    # max_detections cutting through tie groups, and through distinct scores (the selection
    # shortcut of the per-class path).
    for n in [600, 3000]:
        for max_det in [1, 10, 100, 300]:
            for kind in ["ties4", "uniform"]:
                cases.append(case(clustered_boxes(n, 60), scores_for(n, kind),
                                  rng.integers(0, 10, n), 0.5, max_det))
    # Random mixes of everything above, sizes up to several thousand.
    for _ in range(150):
        n = int(rng.choice([rng.integers(1, 1001), rng.integers(1001, 7000)]))
        ncls = int(rng.choice([1, 2, 5, 80]))
        layout = rng.choice(["random", "clustered"])
        boxes = random_boxes(n) if layout == "random" else clustered_boxes(
            n, int(rng.integers(1, max(2, n // 10))))
        if rng.random() < 0.3:  # some degenerate boxes
            k = int(rng.integers(0, n))
            boxes[:k:3, 2] = boxes[:k:3, 0]
        kind = rng.choice(["uniform", "ties4", "ties32", "equal"])
        iou = float(rng.choice([0.0, 0.25, 0.45, 0.5, 0.65, 0.7, 0.9, 1.0]))
        max_det = int(rng.choice([1, 30, 300, n]))
        cases.append(case(boxes, scores_for(n, kind), rng.integers(0, ncls, n), iou, max_det))
    return cases


def write_cases(cases, path):
    with open(path, "wb") as f:
        f.write(b"NMS1" + struct.pack("<i", len(cases)))
        for c in cases:
            f.write(struct.pack("<ifi", len(c["scores"]), c["iou"], c["max_det"]))
            f.write(c["boxes"].astype("<f4").tobytes())
            f.write(c["scores"].astype("<f4").tobytes())
            f.write(c["classes"].astype("<i4").tobytes())


def read_results(path, count):
    data = np.fromfile(path, "<i4")
    out, pos = [], 0
    for _ in range(count):
        code, k = int(data[pos]), int(data[pos + 1])
        out.append((code, data[pos + 2:pos + 2 + k].tolist()))
        pos += 2 + k
    assert pos == len(data), "trailing data in nms_tool output"
    return out


def expected(c):
    keep = torchvision.ops.batched_nms(torch.from_numpy(c["boxes"]), torch.from_numpy(c["scores"]),
                                       torch.from_numpy(c["classes"].astype(np.int64)), c["iou"])
    return keep[:c["max_det"]].tolist()


def run_tool(tool, isa, cases, tmp):
    inp, outp = os.path.join(tmp, "cases.bin"), os.path.join(tmp, f"keep_{isa}.bin")
    write_cases(cases, inp)
    r = subprocess.run([tool, f"--isa={isa}", f"--input={inp}", f"--output={outp}"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        if "this CPU has no" in r.stderr:
            return None
        raise RuntimeError(f"nms_tool --isa={isa} failed: {r.stderr}")
    return read_results(outp, len(cases)), r.stderr


def invalid_cases():
    b = random_boxes(20)
    s = scores_for(20, "uniform")
    c = np.zeros(20)
    nan_box, inf_box, nan_score = b.copy(), b.copy(), s.copy()
    nan_box[7, 2] = np.nan
    inf_box[3, 0] = -np.inf
    nan_score[11] = np.nan
    return [case(nan_box, s, c, 0.5), case(inf_box, s, c, 0.5), case(b, nan_score, c, 0.5),
            case(b, s, c, -0.1), case(b, s, c, 1.5), case(b, s, c, float("nan")),
            case(b, s, c, 0.5, 0)]


def main():
    tool = sys.argv[1]
    t0 = time.time()
    cases = build_cases()
    want = [expected(c) for c in cases]
    t_torch = time.time() - t0
    bad = invalid_cases()
    failures = 0
    ran = []
    with tempfile.TemporaryDirectory() as tmp:
        for isa in ["portable", "avx2", "avx512"]:
            got = run_tool(tool, isa, cases + bad, tmp)
            if got is None:
                print(f"{isa}: not supported by this CPU, skipped")
                continue
            results, _ = got
            ran.append(isa)
            for i, (c, w) in enumerate(zip(cases, want)):
                code, keep = results[i]
                if code != 0 or keep != w:
                    failures += 1
                    if failures <= 10:
                        first = next((k for k in range(min(len(keep), len(w))) if keep[k] != w[k]),
                                     min(len(keep), len(w)))
                        print(f"FAIL {isa} case {i}: n={len(c['scores'])} iou={c['iou']} "
                              f"max_det={c['max_det']} status={code}: {len(keep)} kept vs "
                              f"torchvision {len(w)}, first difference at position {first}")
            for j in range(len(bad)):
                code, keep = results[len(cases) + j]
                if code != INVALID_ARGUMENT or keep:
                    failures += 1
                    print(f"FAIL {isa}: invalid case {j} gave status {code}, {len(keep)} kept")
    sizes = [len(c["scores"]) for c in cases]
    kept = sum(len(w) for w in want)
    print(f"{len(cases)} cases (n up to {max(sizes)}, {sum(n > 1000 for n in sizes)} on the "
          f"per-class path), {kept} kept boxes in all, + {len(bad)} invalid inputs; ISAs: "
          f"{', '.join(ran)}; torchvision took {t_torch:.1f} s, total {time.time() - t0:.1f} s")
    if failures:
        print(f"{failures} FAILURES")
        return 1
    print("PASS: identical keep-sets and order to torchvision.ops.batched_nms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
