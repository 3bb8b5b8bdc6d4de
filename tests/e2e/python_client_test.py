#!/usr/bin/python3
"""End-to-end test of visionserve with Python's grpcio (Debian python3-grpcio).

Generates Python stubs from proto/ and Debian's grpc-proto health.proto with the system protoc,
starts the real server binary on 127.0.0.1 (free port), and checks what a Python user sees:
health, model listing, Classify with PIL-encoded images, error codes, streaming, concurrent
futures and a graceful drain on SIGTERM.
usage: python_client_test.py SERVER_BINARY PROTO_DIR
"""
import io
import os
import shutil
import signal
import sys
import time
import unittest

SERVER, PROTO_DIR = sys.argv[1], sys.argv[2]
del sys.argv[1:3]

try:
    import grpc
    import numpy as np
    from PIL import Image
except ImportError as e:  # a missing dependency is a failure, not a skip
    sys.exit(f"python_client_test: missing module ({e}); run tools/setup.sh")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_testlib  # noqa: E402

GEN = vs_testlib.generate_stubs(PROTO_DIR)
import vision_service_pb2 as pb  # noqa: E402
import vision_service_pb2_grpc as pbg  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402


def png_bytes(w, h, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    a = (rng.random((h, w, channels)) * 255).astype(np.uint8)
    img = Image.fromarray(a[:, :, 0] if channels == 1 else a, mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(w, h, seed=0):
    rng = np.random.default_rng(seed)
    a = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def Server(*args):
    return vs_testlib.Server(SERVER, *args)


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--max-images-per-request", "4")
        cls.server.wait_for("SERVING", 120)
        cls.channel = grpc.insecure_channel(cls.server.address)
        cls.stub = pbg.VisionServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        assert cls.server.stop() == 0

    def test_health_is_serving(self):
        h = health_pb2_grpc.HealthStub(self.channel)
        r = h.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING)

    def test_list_models(self):
        r = self.stub.ListModels(pb.ListModelsRequest(), timeout=10)
        self.assertEqual([m.name for m in r.models],
                         ["regnet_y_400mf", "efficientnet_b0", "convnext_tiny",
                          "det_regnet_y_400mf_416"])
        self.assertEqual([m.task for m in r.models], ["classify"] * 3 + ["detect"])
        self.assertTrue(all(m.state == pb.READY for m in r.models))
        self.assertTrue(all(m.weights.startswith("synthetic") for m in r.models))

    def test_classify_pil_images(self):
        req = pb.ClassifyRequest(request_id="py", top_k=3, model="efficientnet_b0", images=[
            pb.Image(encoded=png_bytes(120, 90, "L")),
            pb.Image(encoded=png_bytes(64, 200, "RGBA", 1)),
            pb.Image(encoded=jpeg_bytes(640, 480, 2)),
        ])
        r = self.stub.Classify(req, timeout=30)
        self.assertEqual(r.request_id, "py")
        self.assertEqual(len(r.results), 3)
        self.assertEqual(r.served_by.model, "efficientnet_b0")
        for res in r.results:
            self.assertEqual(len(res.classes), 3)
            scores = [c.score for c in res.classes]
            self.assertEqual(scores, sorted(scores, reverse=True))
            self.assertTrue(all(c.label for c in res.classes))
            self.assertGreaterEqual(res.timing.batch_size, 1)

    def test_detect_pil_images(self):
        req = pb.DetectRequest(request_id="det", score_threshold=0.3, max_detections=25, images=[
            pb.Image(encoded=jpeg_bytes(640, 480, 3)),
            pb.Image(encoded=png_bytes(90, 300, "RGB", 4)),
        ])
        r = self.stub.Detect(req, timeout=30)
        self.assertEqual(r.request_id, "det")
        self.assertEqual(r.served_by.model, "det_regnet_y_400mf_416")
        self.assertEqual([(x.image_width, x.image_height) for x in r.results], [(640, 480), (90, 300)])
        for res, (w, h) in zip(r.results, [(640, 480), (90, 300)]):
            self.assertLessEqual(len(res.detections), 25)
            scores = [d.score for d in res.detections]
            self.assertEqual(scores, sorted(scores, reverse=True))
            for d in res.detections:
                self.assertGreater(d.score, 0.3)
                self.assertTrue(0 <= d.box.x1 < d.box.x2 <= w and 0 <= d.box.y1 < d.box.y2 <= h)
                self.assertTrue(d.label)
        with self.assertRaises(grpc.RpcError) as e:
            self.stub.Detect(pb.DetectRequest(model="regnet_y_400mf",
                                              images=[pb.Image(encoded=png_bytes(8, 8))]), timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("classify model", e.exception.details())

    def test_errors_have_codes_and_messages(self):
        cases = [
            (pb.ClassifyRequest(images=[pb.Image(encoded=b"nope")]),
             grpc.StatusCode.INVALID_ARGUMENT, "format"),
            (pb.ClassifyRequest(), grpc.StatusCode.INVALID_ARGUMENT, "no images"),
            (pb.ClassifyRequest(model="missing", images=[pb.Image(encoded=png_bytes(8, 8))]),
             grpc.StatusCode.NOT_FOUND, "missing"),
            (pb.ClassifyRequest(images=[pb.Image(encoded=png_bytes(8, 8))] * 5),
             grpc.StatusCode.INVALID_ARGUMENT, "at most 4"),
            (pb.ClassifyRequest(top_k=5000, images=[pb.Image(encoded=png_bytes(8, 8))]),
             grpc.StatusCode.INVALID_ARGUMENT, "top_k"),
        ]
        for req, code, text in cases:
            with self.assertRaises(grpc.RpcError) as cm:
                self.stub.Classify(req, timeout=30)
            self.assertEqual(cm.exception.code(), code)
            self.assertIn(text, cm.exception.details())

    def test_stream(self):
        img = jpeg_bytes(200, 200, 3)
        reqs = [pb.ClassifyRequest(request_id=f"s{i}", images=[pb.Image(encoded=img if i != 2 else b"x")])
                for i in range(8)]
        out = list(self.stub.ClassifyStream(iter(reqs), timeout=60))
        self.assertEqual(sorted(r.request_id for r in out), sorted(f"s{i}" for i in range(8)))
        for r in out:
            if r.request_id == "s2":
                self.assertEqual(r.error.code, grpc.StatusCode.INVALID_ARGUMENT.value[0])
            else:
                self.assertEqual(r.error.code, 0)
                self.assertEqual(len(r.results), 1)

    def test_concurrent_futures(self):
        img = jpeg_bytes(320, 240, 4)
        futures = [self.stub.Classify.future(pb.ClassifyRequest(images=[pb.Image(encoded=img)]),
                                             timeout=60) for _ in range(24)]
        results = [f.result() for f in futures]
        self.assertEqual(len(results), 24)
        self.assertTrue(any(r.results[0].timing.batch_size > 1 for r in results))


class DrainTest(unittest.TestCase):
    def test_sigterm_completes_requests_in_flight(self):
        server = Server("--drain-timeout-s", "20")
        server.wait_for("SERVING", 120)
        channel = grpc.insecure_channel(server.address)
        stub = pbg.VisionServiceStub(channel)
        img = jpeg_bytes(320, 240, 5)
        req = pb.ClassifyRequest(model="convnext_tiny", images=[pb.Image(encoded=img)] * 3)
        futures = [stub.Classify.future(req, timeout=60) for _ in range(4)]
        time.sleep(0.2)  # let them arrive
        server.proc.send_signal(signal.SIGTERM)
        for f in futures:
            self.assertEqual(len(f.result().results), 3)
        self.assertEqual(server.proc.wait(30), 0)
        channel.close()


if __name__ == "__main__":
    try:
        unittest.main(verbosity=2)
    finally:
        shutil.rmtree(GEN, ignore_errors=True)
