#!/usr/bin/env python3
"""Compare `rgmerge bench --json` thread-CPU figures of two builds, in one run.

Runs the two binaries alternately (A, B, A, B, ...) so that whatever else the
machine does falls on both alike, and prints one JSON line per figure: each
build's median over its runs, every run's value, and B's median as a ratio of
A's (time figures: above 1 is slower; throughput figures: above 1 is faster).

Usage: scripts/compare_bench.py OLD_BINARY NEW_BINARY [--runs 4] [--members 256]
                                [--entities 1000]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadtest import cpu_model  # noqa: E402

# Figures where a larger value is better.
THROUGHPUT = {"parse_simd_json_mb_s", "parse_serde_json_mb_s", "parse_speedup_vs_serde_json",
              "incremental_speedup"}


def bench(binary, args):
    cmd = [binary, "bench", "--json", "--startup-runs", "0",
           "--members", str(args.members), "--entities", str(args.entities)]
    # Builds that measure validate's peak memory in child processes: not
    # part of the thread-CPU figures, and minutes long.
    help_text = subprocess.run([binary, "bench", "--help"], capture_output=True, text=True).stdout
    if "--no-validate-memory" in help_text:
        cmd.append("--no-validate-memory")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["thread_cpu"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--members", type=int, default=256)
    ap.add_argument("--entities", type=int, default=1000)
    args = ap.parse_args()
    runs = {"old": [], "new": []}
    for _ in range(args.runs):
        for side in ("old", "new"):
            runs[side].append(bench(getattr(args, side), args))
    for name in runs["old"][0]:
        old = [r[name] for r in runs["old"] if name in r]
        new = [r[name] for r in runs["new"] if name in r]
        if not old or not new:
            continue
        mo, mn = statistics.median(old), statistics.median(new)
        print(json.dumps({
            "figure": name,
            "old_median": mo,
            "new_median": mn,
            "new_over_old": round(mn / mo, 3) if mo else None,
            "larger_is_better": name in THROUGHPUT,
            "old_runs": old,
            "new_runs": new,
            "old": args.old,
            "new": args.new,
            "cores": os.cpu_count(),
            "cpu": cpu_model(),
            "load_average": os.getloadavg()[0],
        }))


if __name__ == "__main__":
    main()
