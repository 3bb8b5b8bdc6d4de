#!/usr/bin/python3
"""Plots a visionload JSON report (visionload --json RUN.json) into one PNG with three panels:

  1. throughput vs latency across the steps of a sweep or search (p50 and p99; the p99
     objective and the chosen rate of a search are marked),
  2. the latency CDF of each step (OK calls, from the intended send time in open loop),
  3. the variant mix over time: responses/s per served variant (errors in red), step
     boundaries marked.

usage: plot.py RUN.json [-o OUT.png] [--title TEXT] [--dpi N]
Needs Debian's python3-matplotlib (run with /usr/bin/python3).
"""
import argparse
import json
import os
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    with open(path) as f:
        run = json.load(f)
    if run.get("tool") != "visionload" or "steps" not in run:
        sys.exit(f"plot.py: {path} is not a visionload JSON report")
    if not run["steps"]:
        sys.exit(f"plot.py: {path} has no steps")
    return run


def throughput_vs_latency(ax, run):
    steps = run["steps"]
    x = [s["throughput_rps"] for s in steps]
    p50 = [s["latency_ms"]["p50"] for s in steps]
    p99 = [s["latency_ms"]["p99"] for s in steps]
    # A search visits rates out of order: draw it sorted so the line reads as a curve.
    order = sorted(range(len(steps)), key=lambda i: (steps[i]["offered_rate"], steps[i]["concurrency"]))
    ax.plot([x[i] for i in order], [p99[i] for i in order], "o-", color="tab:red", label="p99")
    ax.plot([x[i] for i in order], [p50[i] for i in order], "s--", color="tab:blue", label="p50")
    for i, s in enumerate(steps):
        load = f"c={s['concurrency']}" if s["loop"] == "closed" else f"{s['offered_rate']:g}/s"
        ax.annotate(load, (x[i], p99[i]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    search = run.get("search")
    if search:
        ax.axhline(search["target_p99_ms"], color="gray", ls=":",
                   label=f"p99 objective {search['target_p99_ms']:g} ms")
        best = search.get("best_step", -1)
        if best is not None and best >= 0:
            ax.plot([x[best]], [p99[best]], "*", ms=14, color="gold", mec="black",
                    label=f"highest passing: {search['best_rate']:g}/s")
    if max(p99) > 20 * max(min(p50), 1e-3):
        ax.set_yscale("log")
    ax.set_xlabel("throughput (OK responses/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("throughput vs latency")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def latency_cdf(ax, run):
    steps = [s for s in run["steps"] if s["latency_cdf"]]
    if len(steps) > 7:  # keep it readable: evenly spaced steps, always the last
        pick = sorted({round(i * (len(steps) - 1) / 6) for i in range(7)})
        steps = [steps[i] for i in pick]
    cmap = plt.get_cmap("viridis")
    for k, s in enumerate(steps):
        xs = [p[0] for p in s["latency_cdf"]]
        ys = [p[1] for p in s["latency_cdf"]]
        ax.step([xs[0]] + xs, [0.0] + ys, where="post", color=cmap(k / max(1, len(steps) - 1)),
                label=s["label"])
    ax.set_xscale("log")
    ax.set_ylim(0, 1.01)
    for q in (0.5, 0.9, 0.99):
        ax.axhline(q, color="gray", lw=0.5, ls=":")
    ax.set_xlabel("latency (ms, log)")
    ax.set_ylabel("fraction of OK calls")
    ax.set_title("latency CDF")
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=7)


def variant_mix(ax, run):
    points = []  # (start, width, ok by variant, errors)
    for s in run["steps"]:
        for p in s["timeline"]:
            # The last interval of a step is cut short by its end; a sliver is left out rather
            # than shown as a spike or a dip.
            width = min(p["end_s"], s["end_s"]) - p["start_s"]
            if width < 0.25 * (p["end_s"] - p["start_s"]):
                continue
            points.append((s["start_offset_s"] + p["start_s"], width, p["variants"], p["errors"]))
    variants = sorted({v for _, _, vs, _ in points for v in vs})
    if not points:
        ax.text(0.5, 0.5, "no responses", ha="center", transform=ax.transAxes)
        return
    # One extra point closes the last interval of the step-wise curves.
    t = [p[0] for p in points] + [points[-1][0] + points[-1][1]]
    series = [[p[2].get(v, 0) / p[1] for p in points] for v in variants]
    series = [s + s[-1:] for s in series]
    if series:
        ax.stackplot(t, *series, labels=variants, step="post", alpha=0.85)
    errors = [p[3] / p[1] for p in points]
    if any(errors):
        ax.step(t, errors + errors[-1:], where="post", color="red", lw=1.2, label="errors")
    for s in run["steps"]:
        ax.axvline(s["start_offset_s"], color="black", lw=0.5, alpha=0.5)
        if s["measure_start_s"] > 0:  # warm-up: not part of the step's statistics
            ax.axvspan(s["start_offset_s"], s["start_offset_s"] + s["measure_start_s"],
                       color="gray", alpha=0.15, lw=0)
        ax.text(s["start_offset_s"], 1.0, " " + s["label"], transform=ax.get_xaxis_transform(),
                fontsize=6, va="top", rotation=90)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("responses/s")
    ax.set_title("served variant over time (warm-up shaded)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower left", framealpha=0.8)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", help="visionload --json output")
    ap.add_argument("-o", "--out", default=None, help="PNG path (default: REPORT with .png)")
    ap.add_argument("--title", default=None)
    ap.add_argument("--dpi", type=int, default=80)
    args = ap.parse_args()
    run = load(args.report)
    out = args.out or (args.report[:-5] if args.report.endswith(".json") else args.report) + ".png"

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    throughput_vs_latency(axes[0], run)
    latency_cdf(axes[1], run)
    variant_mix(axes[2], run)
    title = args.title
    if not title:
        argv = run.get("settings", {}).get("command", "visionload").split(" ")
        title = " ".join([os.path.basename(argv[0])] + argv[1:])
    fig.suptitle(textwrap.fill(title, 190), fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=args.dpi)
    print(f"plot.py: wrote {out}")


if __name__ == "__main__":
    main()
