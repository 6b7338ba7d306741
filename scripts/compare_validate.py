#!/usr/bin/env python3
"""Time `rgmerge validate` of one input with two builds, in one run.

Runs the two binaries alternately (one warm-up each, then OLD, NEW pairs) so
that whatever else the machine does falls on both alike, and prints one line
per pair and then one JSON line: each build's median wall and CPU time (user
+ system, all threads, from the children's rusage) and OLD's median as a
multiple of NEW's (above 1: NEW is faster).

Usage: scripts/compare_validate.py OLD_BINARY NEW_BINARY INPUT [--pairs 6]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadtest import cpu_model  # noqa: E402


def run(binary, path):
    """Wall and CPU seconds of one `validate --format json` (exit 0 or 1)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([binary, "validate", "--format", "json", path],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        sys.exit(f"{binary} validate {path}: exit {done.returncode}: "
                 f"{done.stderr.decode(errors='replace').strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("input")
    ap.add_argument("--pairs", type=int, default=6)
    a = ap.parse_args()
    run(a.old, a.input)
    run(a.new, a.input)
    rows = []
    for i in range(a.pairs):
        ow, oc = run(a.old, a.input)
        nw, nc = run(a.new, a.input)
        rows.append((ow, oc, nw, nc))
        print(f"pair {i + 1}: old {ow:.3f} s wall {oc:.3f} s CPU, "
              f"new {nw:.3f} s wall {nc:.3f} s CPU", file=sys.stderr)
    med = [statistics.median(r[k] for r in rows) for k in range(4)]
    print(json.dumps({
        "input": a.input,
        "input_bytes": os.path.getsize(a.input) if os.path.isfile(a.input) else None,
        "pairs": a.pairs,
        "old_wall_s": round(med[0], 4), "old_cpu_s": round(med[1], 4),
        "new_wall_s": round(med[2], 4), "new_cpu_s": round(med[3], 4),
        "wall_speedup": round(med[0] / med[2], 2),
        "cpu_speedup": round(med[1] / med[3], 2),
        "pair_wall_speedups": sorted(round(r[0] / r[2], 2) for r in rows),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                    "load": os.getloadavg()[0]},
    }))


if __name__ == "__main__":
    main()
