#!/usr/bin/python3
"""A YOLOv8-format ONNX file served by visionserve, end to end over gRPC (Python grpcio).

The repository holds yolo.onnx (yolo_fixture.py's YOLOv8n at 320 px) and a config
`onnx: "yolo.onnx"`. The test checks that the server lists it as a detector, and that Detect on
a 320×320 image (letterbox is then the identity) returns what PyTorch plus Ultralytics'
postprocessing (best class per anchor, score threshold, xywh→xyxy, torchvision batched_nms,
max_det, clip_boxes) return: same count, and every well-separated detection with the same class, score
(±1e-4) and box (±0.05 px). A wide JPEG must come back with boxes inside the image.

usage: yolo_serve_test.py SERVER_BINARY PROTO_DIR
"""
import io
import os
import sys
import tempfile

import numpy as np
import torch
import torchvision
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import yolo_fixture  # noqa: E402
import vs_testlib  # noqa: E402

SIZE, SCORE, IOU, MAX_DET = 320, 0.25, 0.45, 100


def reference(model, rgb):
    x = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = model(x)[0]  # [84, A]
    boxes, scores = y[:4].T, y[4:].T
    conf, cls = scores.max(1)
    keep = conf > SCORE
    b, conf, cls = boxes[keep], conf[keep], cls[keep]
    xyxy = torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)
    k = torchvision.ops.batched_nms(xyxy, conf, cls, IOU)[:MAX_DET]
    return xyxy[k].clamp(0, SIZE).numpy(), conf[k].numpy(), cls[k].numpy()  # clip_boxes


def main():
    binary, proto_dir = sys.argv[1], sys.argv[2]
    vs_testlib.generate_stubs(proto_dir)
    import grpc
    import vision_service_pb2 as pb
    import vision_service_pb2_grpc as pbg

    failures = []
    with tempfile.TemporaryDirectory() as repo:
        model = yolo_fixture.build(SIZE, "n", 80, seed=7)
        torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), os.path.join(repo, "yolo.onnx"),
                          opset_version=13, do_constant_folding=True, input_names=["images"],
                          output_names=["output0"])
        with open(os.path.join(repo, "yolo.pbtxt"), "w") as f:
            f.write('onnx: "yolo.onnx"\nbatching { max_batch_size: 4 }\n')
        server = vs_testlib.Server(binary, "--repository", repo, "--threads", "2")
        try:
            server.wait_for("SERVING", 120)
            stub = pbg.VisionServiceStub(grpc.insecure_channel(server.address))
            info = stub.GetModel(pb.GetModelRequest(name="yolo"), timeout=10)
            print(f"model: task {info.task}, variant {info.variant}, family {info.family}, "
                  f"input {list(info.input_shape)}, anchors {info.num_anchors}, "
                  f"weights {info.weights}")
            if (info.task, info.variant, info.family, info.num_anchors, info.num_classes) != (
                    "detect", "yolo.onnx", "onnx", 2100, 80):
                failures.append(f"GetModel: {info}")

            rgb = np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            req = pb.DetectRequest(images=[pb.Image(tensor=pb.RawTensor(
                dtype=pb.RawTensor.UINT8, shape=[SIZE, SIZE, 3], data=rgb.tobytes()))])
            got = stub.Detect(req, timeout=60).results[0]
            rb, rs, rc = reference(model, rgb)
            print(f"{len(got.detections)} detections, PyTorch {len(rs)}; "
                  f"top: {got.detections[0].label if got.detections else None} "
                  f"{got.detections[0].score if got.detections else 0:.4f}")
            if abs(len(got.detections) - len(rs)) > max(1, len(rs) // 50):
                failures.append(f"{len(got.detections)} detections, PyTorch {len(rs)}")
            ours = [(d.class_id, d.score, (d.box.x1, d.box.y1, d.box.x2, d.box.y2))
                    for d in got.detections]
            checked = 0
            for k in range(len(rs)):
                gap = min([abs(rs[k] - rs[j]) for j in range(len(rs)) if j != k] or [1.0])
                if gap < 2e-4:
                    continue  # a near tie: the order may differ by float rounding
                checked += 1
                match = [o for o in ours if o[0] == rc[k] and abs(o[1] - rs[k]) <= 1e-4 and
                         max(abs(a - b) for a, b in zip(o[2], rb[k])) <= 0.05]
                if not match:
                    failures.append(f"PyTorch detection {k} (class {rc[k]}, score {rs[k]:.5f}, "
                                    f"box {rb[k]}) has no match")
            print(f"{checked} well-separated detections compared")
            if checked < min(10, len(rs)):
                failures.append(f"only {checked} detections were separated enough to compare")

            buf = io.BytesIO()
            Image.fromarray(np.random.default_rng(2).integers(
                0, 256, (150, 500, 3), dtype=np.uint8)).save(buf, format="JPEG")
            wide = stub.Detect(pb.DetectRequest(images=[pb.Image(encoded=buf.getvalue())],
                                                max_detections=300), timeout=60).results[0]
            if (wide.image_width, wide.image_height) != (500, 150) or not wide.detections:
                failures.append(f"wide JPEG: {wide.image_width}x{wide.image_height}, "
                                f"{len(wide.detections)} detections")
            for d in wide.detections:
                b = d.box
                if not (0 <= b.x1 < b.x2 <= 500 and 0 <= b.y1 < b.y2 <= 150):
                    failures.append(f"wide JPEG: box {b} outside 500x150")
                    break
            print(f"wide JPEG: {len(wide.detections)} detections inside 500x150")
        finally:
            code = server.stop()
            if code != 0:
                failures.append(f"server exit code {code}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
