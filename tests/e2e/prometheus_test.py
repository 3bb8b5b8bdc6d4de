#!/usr/bin/python3
"""A real Prometheus (Debian's `prometheus` package) scrapes a running visionserve.

Checks the deploy files with promtool, starts visionserve with --metrics-listen and Prometheus
on 127.0.0.1 (temp data dir, scrape every second, deploy/rules.yml loaded), sends requests, then
reads visionserve_requests_total and a histogram_quantile over the queue-latency histogram
through Prometheus's HTTP API, and evaluates every expression of deploy/rules.yml and the
Grafana dashboard against it. Prometheus is killed by pid at the end.
usage: prometheus_test.py SERVER_BINARY PROTO_DIR DEPLOY_DIR
"""
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

SERVER, PROTO_DIR, DEPLOY = sys.argv[1], sys.argv[2], sys.argv[3]
del sys.argv[1:4]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_testlib  # noqa: E402

for tool in ("prometheus", "promtool"):
    if not shutil.which(tool):
        sys.exit(f"prometheus_test: {tool} not found; run tools/setup.sh (Debian prometheus)")
try:
    import grpc
    import yaml
except ImportError as e:
    sys.exit(f"prometheus_test: missing module ({e}); run tools/setup.sh")

GEN = vs_testlib.generate_stubs(PROTO_DIR)
import vision_service_pb2 as pb  # noqa: E402
import vision_service_pb2_grpc as pbg  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusTest(unittest.TestCase):
    def test_deploy_files_pass_promtool(self):
        for args in (["check", "config", os.path.join(DEPLOY, "prometheus.yml")],
                     ["check", "rules", os.path.join(DEPLOY, "rules.yml")]):
            r = subprocess.run(["promtool", *args], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_prometheus_scrapes_and_queries(self):
        server = vs_testlib.Server(SERVER, "--metrics-listen", "127.0.0.1:0")
        prom = None
        tmp = tempfile.mkdtemp(prefix="vs_prom_")
        try:
            line = server.wait_for("metrics: http://", 30)
            metrics_addr = line.split("http://")[1].split("/")[0]
            server.wait_for("SERVING", 120)
            shutil.copy(os.path.join(DEPLOY, "rules.yml"), tmp)
            config = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["rules.yml"],
                "scrape_configs": [{"job_name": "visionserve",
                                    "static_configs": [{"targets": [metrics_addr]}]}],
            }
            with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
                yaml.safe_dump(config, f)
            port = free_port()
            prom = subprocess.Popen(
                ["prometheus", f"--config.file={tmp}/prometheus.yml",
                 f"--storage.tsdb.path={tmp}/data", f"--web.listen-address=127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "prom.log"), "w"))
            api = f"http://127.0.0.1:{port}/api/v1"

            def query(expr):
                url = api + "/query?" + urllib.parse.urlencode({"query": expr})
                with urllib.request.urlopen(url, timeout=10) as r:
                    return json.load(r)

            # Wait for Prometheus to scrape the idle server once, so the traffic shows up as an
            # increase inside the rate() windows.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    r = query('up{job="visionserve"}')
                    if r["data"]["result"] and r["data"]["result"][0]["value"][1] == "1":
                        break
                except OSError:
                    pass  # Prometheus still starting
                time.sleep(0.3)
            else:
                self.fail("Prometheus never scraped visionserve: " +
                          open(os.path.join(tmp, "prom.log")).read()[-2000:])
            # Traffic: 20 requests over ~3 s, 2 of them bad.
            channel = grpc.insecure_channel(server.address)
            stub = pbg.VisionServiceStub(channel)
            img = vs_testlib_png()
            for i in range(20):
                data = b"bad" if i % 10 == 0 else img
                try:
                    stub.Classify(pb.ClassifyRequest(images=[pb.Image(encoded=data)]), timeout=30)
                except grpc.RpcError:
                    pass
                time.sleep(0.15)
            channel.close()

            deadline = time.monotonic() + 90
            total = 0
            while time.monotonic() < deadline:
                try:
                    r = query("sum(visionserve_requests_total)")
                    if r["data"]["result"]:
                        total = float(r["data"]["result"][0]["value"][1])
                        if total >= 20:
                            break
                except OSError:
                    pass  # Prometheus still starting
                time.sleep(0.5)
            self.assertEqual(total, 20, open(os.path.join(tmp, "prom.log")).read()[-2000:])
            bad = query('sum(visionserve_requests_total{code="INVALID_ARGUMENT"})')
            self.assertEqual(float(bad["data"]["result"][0]["value"][1]), 2)
            time.sleep(2)  # at least two samples inside the rate window
            q = query("histogram_quantile(0.5, sum by (le) "
                      "(rate(visionserve_queue_duration_seconds_bucket[1m])))")
            self.assertEqual(q["status"], "success")
            value = float(q["data"]["result"][0]["value"][1])
            self.assertFalse(math.isnan(value))
            self.assertGreaterEqual(value, 0)
            self.assertLess(value, 10)

            # Every rule and dashboard expression is valid PromQL against real data.
            exprs = []
            with open(os.path.join(DEPLOY, "rules.yml")) as f:
                for group in yaml.safe_load(f)["groups"]:
                    exprs += [r["expr"] for r in group["rules"]]
            with open(os.path.join(DEPLOY, "grafana", "visionserve-dashboard.json")) as f:
                for panel in json.load(f)["panels"]:
                    exprs += [t["expr"] for t in panel["targets"]]
            for e in exprs:
                self.assertEqual(query(e)["status"], "success", e)
            rules = json.load(urllib.request.urlopen(api + "/rules", timeout=10))
            health = [r["health"] for g in rules["data"]["groups"] for r in g["rules"]]
            self.assertTrue(health)
            self.assertNotIn("err", health)
        finally:
            if prom:
                prom.send_signal(signal.SIGKILL)
                prom.wait(10)
            self.assertEqual(server.stop(), 0)
            shutil.rmtree(tmp, ignore_errors=True)


def vs_testlib_png():
    import io
    import numpy as np
    from PIL import Image
    a = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


if __name__ == "__main__":
    try:
        unittest.main(verbosity=2)
    finally:
        shutil.rmtree(GEN, ignore_errors=True)
