#!/usr/bin/env python3
"""Snapshot serving against the socket's limit (issue 17, item 5).

In one run, for each body size: builds a composite whose snapshot is about
that size on `rgmerge serve`, keeps a writer replacing a config outside the
composite every 10 ms (write load that does not change the body being read),
and measures GET /snapshot bandwidth with oha over the Unix socket. Then the
same oha run against `examples/raw_serve.rs`, a trivial server answering
every request with the same bytes on another Unix socket, under the same
write load. Raw and daemon runs alternate (raw, daemon, raw, daemon) and the
figure is each side's best, so a burst of other work on the machine doesn't
decide the ratio. Prints one JSON line per figure.

Usage: scripts/socket_limit.py [--sizes 334k,60m] [--seconds 5] [--connections 32]
                               [--bin PATH] [--raw PATH]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadtest import UnixConnection, build_composite, cpu_model, percentile, request  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# members × entities per member that give about the size named (the Kong
# form served, about 250 bytes an entity with `rgmerge gen --seed 7`; 334 KB
# and 60 MB are the sizes).
SHAPES = {
    "18k": (4, 18),
    "334k": (16, 96),
    "60m": (64, 3720),
}


def wait_for(path, what, proc=None):
    for _ in range(600):
        if os.path.exists(path):
            return
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode} before its socket appeared")
        time.sleep(0.05)
    sys.exit(f"{what}: {path} did not appear")


def oha_run(oha, sock, url, seconds, connections):
    cmd = [oha, "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-c",
           str(connections), "--unix-socket", sock, url]
    o = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    s = o.get("summary", {})
    lat = o.get("latencyPercentiles", {})
    codes = o.get("statusCodeDistribution", {})
    return {
        "requests_per_s": s.get("requestsPerSec"),
        "bytes_per_s": s.get("sizePerSec"),
        "success_rate": s.get("successRate"),
        "p99_ms": lat["p99"] * 1000 if lat.get("p99") is not None else None,
        "non_200": sum(v for k, v in codes.items() if k != "200"),
    }


def measure(args, oha, size, tmp):
    members, entities = SHAPES[size]
    work = os.path.join(tmp, size)
    os.makedirs(work)
    sock = os.path.join(work, "rg.sock")
    raw_sock = os.path.join(work, "raw.sock")
    gen = os.path.join(work, "members")
    subprocess.run([args.bin, "gen", "--out", gen, "--members", str(members),
                    "--entities", str(entities), "--seed", "7"], check=True,
                   stdout=subprocess.DEVNULL)
    daemon = subprocess.Popen([args.bin, "serve", "--data-dir", os.path.join(work, "data"),
                               "--socket", sock], stderr=subprocess.DEVNULL)
    raw = None
    stop = threading.Event()
    writes = []
    try:
        wait_for(sock, "rgmerge serve", daemon)
        conn = UnixConnection(sock, timeout=120)
        js = {"Content-Type": "application/json"}
        composite, _ = build_composite(conn, gen)
        path = f"/v2/control-planes/{composite}/snapshot"
        st, _, snap = request(conn, "GET", path)
        assert st == 200, snap
        body_file = os.path.join(work, "snapshot.json")
        with open(body_file, "wb") as fh:
            fh.write(snap)
        raw = subprocess.Popen([args.raw, raw_sock, body_file], stdout=subprocess.DEVNULL)
        wait_for(raw_sock, "raw_serve", raw)

        # Write load: a group outside the composite, every 10 ms.
        _, _, body = request(conn, "POST", "/v2/control-planes", json.dumps({"name": "writes"}), js)
        target = json.loads(body)["id"]
        variants = [b'{"_format_version":"3.0","services":[{"name":"w","host":"a.example"}]}',
                    b'{"_format_version":"3.0","services":[{"name":"w","host":"b.example"}]}']

        def writer():
            c = UnixConnection(sock)
            n = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                st, _, _ = request(c, "PUT", f"/v2/control-planes/{target}/config", variants[n % 2], js)
                writes.append((st, time.perf_counter() - t0))
                n += 1
                time.sleep(max(0.0, 0.010 - (time.perf_counter() - t0)))

        wt = threading.Thread(target=writer)
        wt.start()
        url = f"http://localhost{path}"
        runs = {"raw": [], "rgmerge": []}
        for _ in range(2):
            runs["raw"].append(oha_run(oha, raw_sock, url, args.seconds, args.connections))
            runs["rgmerge"].append(oha_run(oha, sock, url, args.seconds, args.connections))
        stop.set()
        wt.join()
        best = {k: max(v, key=lambda r: r["bytes_per_s"] or 0) for k, v in runs.items()}
        ratio = (best["rgmerge"]["bytes_per_s"] or 0) / max(best["raw"]["bytes_per_s"] or 1, 1)
        lat = [t for _, t in writes]
        common = {"body_bytes": len(snap), "connections": args.connections,
                  "seconds_per_run": args.seconds, "cores": os.cpu_count(), "cpu": cpu_model()}
        for side in ("raw", "rgmerge"):
            print(json.dumps({"figure": f"snapshot_get_{side}", "size": size, **best[side],
                              "runs_bytes_per_s": [r["bytes_per_s"] for r in runs[side]], **common}))
        print(json.dumps({"figure": "snapshot_get_vs_socket_limit", "size": size,
                          "ratio": round(ratio, 3),
                          "writes": len(writes),
                          "write_failures": sum(1 for st, _ in writes if st != 200),
                          "write_p99_ms": percentile(lat, 99) * 1000 if lat else None, **common}))
        if best["rgmerge"]["non_200"] or best["raw"]["non_200"]:
            sys.exit("some GETs were not answered 200")
    finally:
        stop.set()
        for p in (raw, daemon):
            if p is not None:
                p.terminate()
                p.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="334k,60m",
                    help=f"comma-separated, of {', '.join(SHAPES)}")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "rgmerge"))
    ap.add_argument("--raw", default=os.path.join(ROOT, "target", "release", "examples", "raw_serve"))
    args = ap.parse_args()
    oha = shutil.which("oha") or os.path.expanduser("~/.cargo/bin/oha")
    if not os.path.exists(oha):
        sys.exit("oha not found: run `cargo install oha --locked` (scripts/bench.sh --load does)")
    for p, build in ((args.bin, "cargo build --release"),
                     (args.raw, "cargo build --release --example raw_serve")):
        if not os.path.exists(p):
            sys.exit(f"{p} not found: run `{build}`")
    tmp = tempfile.mkdtemp(prefix="rgmerge-socket-")
    try:
        for size in args.sizes.split(","):
            if size not in SHAPES:
                sys.exit(f"unknown size {size!r}: one of {', '.join(SHAPES)}")
            measure(args, oha, size, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
