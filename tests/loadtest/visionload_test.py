#!/usr/bin/python3
"""The visionload binary end to end.

  --fake BIN   against fake_visionserve (known latency, scripted failures): the modes, the
               JSON/CSV/table outputs and the exit codes.
  --plot PY    also runs loadtest/plot.py on the JSON reports (exits 77, a failure, when
               python3-matplotlib is missing).
  --real BIN   against the real visionserve with its default models and metrics endpoint.
"""
import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from vs_testlib import Server  # noqa: E402

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)


def visionload(binary, *args, timeout=120):
    p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class Fake(Server):
    """fake_visionserve: the same first line format as visionserve ("listening on ...")."""


def fake_tests(args, tmp):
    fake = Fake(args.fake, "--latency-ms", "4", "--jitter-ms", "4", "--error-every", "10")
    try:
        # A closed-loop sweep with a two-model mix.
        j1, c1 = os.path.join(tmp, "sweep.json"), os.path.join(tmp, "sweep.csv")
        rc, out, err = visionload(
            args.visionload, "--server", fake.address, "--mode", "closed", "--concurrency", "1..4",
            "--warmup-s", "0.2", "--duration-s", "0.6", "--mix", "model:alpha@1;model:beta@1",
            "--encoding", "png", "--image-size", "64x48", "--json", j1, "--csv", c1)
        check(rc == 0, f"closed sweep exits 0 (got {rc}: {err})")
        run = json.load(open(j1))
        steps = run["steps"]
        check([s["concurrency"] for s in steps] == [1, 2, 4], "one step per concurrency level")
        for s in steps:
            check(s["loop"] == "closed" and s["end_reason"] == "duration", "closed steps end by duration")
            check(s["sent"] > 20 and s["completed"] == s["sent"], f"{s['label']}: every call completed")
            # Every 10th call fails: 10% UNAVAILABLE, give or take the window edges.
            share = s["codes"].get("UNAVAILABLE", 0) / s["completed"]
            check(0.05 <= share <= 0.15, f"{s['label']}: ~10% UNAVAILABLE (got {share:.3f})")
            check(s["ok"] + s["errors"] == s["completed"], "ok + errors = completed")
            check(set(s["variants"]) == {"alpha", "beta"}, f"{s['label']}: both models served")
            check(4.0 <= s["latency_ms"]["p50"] < 12, f"{s['label']}: p50 within 4..8 ms + transport")
            check(s["latency_ms"]["max"] >= s["latency_ms"]["p99"] >= s["latency_ms"]["p50"],
                  "percentiles ordered")
            check(abs(s["latency_cdf"][-1][1] - 1) < 1e-9, "CDF ends at 1")
            check(s["server"]["queue_ms"]["p50"] == 0.1, "server queue time from the responses")
            check(s["generator"]["cpu_us_per_request"] > 0, "generator CPU per request reported")
            check(len(s["timeline"]) >= 1, "timeline present")
        rows = list(csv.DictReader(open(c1)))
        check(len(rows) == 3 and rows[2]["concurrency"] == "4", "CSV: one row per step")
        check("p99" in out and "c=4" in out and "UNAVAILABLE" in out, "the table shows steps and errors")

        # Open loop, constant rate, request bound.
        j2 = os.path.join(tmp, "open.json")
        rc, out, err = visionload(
            args.visionload, "--server", fake.address, "--mode", "open", "--rate", "100,200",
            "--arrivals", "constant", "--warmup-s", "0", "--duration-s", "0", "--requests", "50",
            "--encoding", "u8", "--image-size", "32x32", "--quiet", "--json", j2)
        check(rc == 0, f"open loop exits 0 (got {rc}: {err})")
        check(err == "", f"--quiet prints nothing on stderr (got {err!r})")
        run = json.load(open(j2))
        for s, rate in zip(run["steps"], (100, 200)):
            check(s["offered_rate"] == rate and s["sent"] == 50, f"{rate}/s: 50 requests")
            check(s["end_reason"] == "requests", "ended by the request bound")
            check(abs(s["window_s"] - 50 / rate) < 0.1, f"{rate}/s: window spans the requests")

        # Search: the fake has no capacity limit, so the highest rate passes.
        j3 = os.path.join(tmp, "search.json")
        rc, out, err = visionload(
            args.visionload, "--server", fake.address, "--mode", "search", "--p99-ms", "100",
            "--rate-min", "20", "--rate-max", "80", "--max-error-rate", "0.2", "--warmup-s", "0.1",
            "--duration-s", "0.5", "--json", j3, "--quiet")
        check(rc == 0, f"search exits 0 (got {rc}: {err})")
        run = json.load(open(j3))
        check([s["offered_rate"] for s in run["steps"]] == [20, 40, 80], "search doubles to the max")
        check(run["search"]["best_rate"] == 80 and run["search"]["converged"], "max rate passes")
        check("search: highest rate with p99 <= 100.0 ms: 80.0 req/s" in out, "search line in the table")

        # Usage errors exit 2; an unreachable server exits 1.
        for bad in (["--mode", "sideways"], ["--concurrency", "0"], ["--nope"],
                    ["--mode", "search"], ["--duration-s", "0"], ["--mix", "model:"],
                    ["--image-size", "big"], ["--input", "/nonexistent"]):
            rc, _, err = visionload(args.visionload, "--server", fake.address, *bad)
            check(rc == 2 and err.startswith("visionload: "), f"{bad} is a usage error (got {rc}: {err})")
        rc, _, err = visionload(args.visionload, "--server", "127.0.0.1:1", "--wait-ready-s", "1")
        check(rc == 1 and "not SERVING" in err, f"unreachable server exits 1 (got {rc}: {err})")
        rc, out, _ = visionload(args.visionload, "--help")
        check(rc == 0 and "--p99-ms" in out, "--help lists the flags")
    finally:
        fake.stop(signal.SIGTERM)
    return [j1, j3]


def plot_tests(plot, reports, tmp):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("python3-matplotlib missing: plot test skipped")
        sys.exit(77)
    for report in reports:
        png = os.path.join(tmp, os.path.basename(report) + ".png")
        p = subprocess.run([sys.executable, plot, report, "-o", png], capture_output=True, text=True)
        check(p.returncode == 0, f"plot.py {report}: {p.stderr}")
        data = open(png, "rb").read() if os.path.exists(png) else b""
        check(data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10000, f"{png} is a PNG")
    bad = os.path.join(tmp, "bad.json")
    open(bad, "w").write("{}")
    p = subprocess.run([sys.executable, plot, bad], capture_output=True, text=True)
    check(p.returncode != 0 and "not a visionload JSON" in p.stderr, "plot.py rejects other JSON")


def real_tests(args, tmp):
    server = Server(args.real, "--metrics-listen", "127.0.0.1:0")
    try:
        line = server.wait_for("metrics: http://", 30)
        metrics = re.search(r"(http://\S+/metrics)", line).group(1)
        server.wait_for("SERVING", 120)
        j = os.path.join(tmp, "real.json")
        rc, out, err = visionload(
            args.visionload, "--server", server.address, "--mode", "closed", "--concurrency", "2",
            "--warmup-s", "1", "--duration-s", "3", "--deadline-ms", "5000",
            "--mix", "model:regnet_y_400mf;model:efficientnet_b0;model:convnext_tiny",
            "--metrics-url", metrics, "--json", j, timeout=200)
        print(out)
        check(rc == 0, f"against visionserve exits 0 (got {rc}: {err})")
        s = json.load(open(j))["steps"][0]
        check(s["ok"] > 5 and s["errors"] == 0, f"all calls OK ({s['codes']})")
        check(set(s["variants"]) == {"regnet_y_400mf", "efficientnet_b0", "convnext_tiny"},
              f"three variants served ({s['variants']})")
        check(s["server"]["compute_ms"]["p50"] > 0, "server compute time reported")
        m = s["server_metrics"]
        check(m["error"] == "" and m["requests"] >= s["ok"], f"metrics scraped ({m['error']})")
        check(m["cpu_s"] > 0 and m["batches"] > 0, "server CPU and batches from the metrics")
    finally:
        server.stop(signal.SIGTERM)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--visionload", required=True)
    ap.add_argument("--fake")
    ap.add_argument("--plot")
    ap.add_argument("--real")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="visionload_test_") as tmp:
        if args.fake:
            reports = fake_tests(args, tmp)
            if args.plot:
                plot_tests(args.plot, reports, tmp)
        if args.real:
            real_tests(args, tmp)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
