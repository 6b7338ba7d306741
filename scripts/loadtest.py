#!/usr/bin/env python3
"""Load test of the daemon over its Unix socket (issue 6).

Starts `rgmerge serve` (release build) on a temporary data directory, builds a
composite of synthetic members (`rgmerge gen`), then for a fixed time:
  - oha hammers GET /snapshot from many connections (reads), while
  - a writer replaces one member's config every 10 ms (writes; each is a
    durable commit, so writes/s is 1 / (10 ms + fsync-bound write latency) at
    most; with --conditional it writes a group outside the composite),
and prints one JSON object: requests/s, p50/p99 latency, writes/s, write p50/p99,
the snapshot size, and the machine. Loopback/Unix socket only.

Usage: scripts/loadtest.py [--members 16] [--entities 100] [--seconds 15]
                           [--connections 32] [--conditional]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "rgmerge")


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, resp.headers, data


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--entities", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--conditional", action="store_true",
                    help="send If-None-Match with the hash current at start (sidecar-style polling)")
    args = ap.parse_args()

    oha = shutil.which("oha") or os.path.expanduser("~/.cargo/bin/oha")
    if not os.path.exists(oha):
        sys.exit("oha not found: run `cargo install oha --locked` (scripts/bench.sh --load does)")

    tmp = tempfile.mkdtemp(prefix="rgmerge-load-")
    sock = os.path.join(tmp, "rg.sock")
    gen = os.path.join(tmp, "members")
    subprocess.run([BIN, "gen", "--out", gen, "--members", str(args.members),
                    "--entities", str(args.entities), "--seed", "7"], check=True)
    daemon = subprocess.Popen([BIN, "serve", "--data-dir", os.path.join(tmp, "data"), "--socket", sock],
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        conn = UnixConnection(sock)
        js = {"Content-Type": "application/json"}
        _, _, body = request(conn, "POST", "/v2/control-planes",
                             json.dumps({"name": "shared", "cluster_type": "CLUSTER_TYPE_CONTROL_PLANE_GROUP"}), js)
        composite = json.loads(body)["id"]
        files = sorted(os.listdir(gen))
        ids = []
        for f in files:
            _, _, body = request(conn, "POST", "/v2/control-planes", json.dumps({"name": f.split(".")[0]}), js)
            gid = json.loads(body)["id"]
            ids.append(gid)
            with open(os.path.join(gen, f), "rb") as fh:
                st, _, body = request(conn, "PUT", f"/v2/control-planes/{gid}/config", fh.read(), js)
                assert st == 200, body
        for i in range(0, len(ids), 50):
            st, _, body = request(conn, "POST", f"/v2/control-planes/{composite}/group-memberships/add",
                                  json.dumps({"members": [{"id": g} for g in ids[i:i + 50]]}), js)
            assert st == 200, body
        st, headers, snap = request(conn, "GET", f"/v2/control-planes/{composite}/snapshot")
        assert st == 200
        etag = headers["ETag"]

        # The writer: replace the last member every 10 ms, alternating two
        # configs that differ in one upstream host, so every write publishes a
        # new composite snapshot. With --conditional the readers send the
        # start's ETag, as a sidecar that already holds the snapshot does: the
        # writes then go to a group outside the composite, so its snapshot
        # stays current and the reads measure the 304 path under write load.
        with open(os.path.join(gen, files[-1]), "rb") as fh:
            base = fh.read()
        variants = [base, re.sub(rb'"host": ?"', b'"host": "x', base, count=1)]
        assert variants[0] != variants[1], "the two write variants must differ"
        target = ids[-1]
        if args.conditional:
            _, _, body = request(conn, "POST", "/v2/control-planes", json.dumps({"name": "loadtest-writes"}), js)
            target = json.loads(body)["id"]
        write_lat, write_failed, stop = [], [], threading.Event()
        write_span = [0.0, 0.0]

        def writer():
            c = UnixConnection(sock)
            n = 0
            write_span[0] = time.perf_counter()
            while not stop.is_set():
                t0 = time.perf_counter()
                st, _, _ = request(c, "PUT", f"/v2/control-planes/{target}/config", variants[n % 2], js)
                write_lat.append(time.perf_counter() - t0)
                if st != 200:
                    write_failed.append(st)
                n += 1
                time.sleep(max(0.0, 0.010 - (time.perf_counter() - t0)))
            write_span[1] = time.perf_counter()

        load_before = os.getloadavg()
        wt = threading.Thread(target=writer)
        wt.start()
        cmd = [oha, "--no-tui", "--output-format", "json", "-z", f"{args.seconds}s", "-c", str(args.connections),
               "--unix-socket", sock, f"http://localhost/v2/control-planes/{composite}/snapshot"]
        if args.conditional:
            cmd[1:1] = ["-H", f"If-None-Match: {etag}"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        stop.set()
        wt.join()
        load_after = os.getloadavg()
        # The snapshot after the writes still assembles and parses.
        st, _, last = request(conn, "GET", f"/v2/control-planes/{composite}/snapshot")
        assert st == 200 and json.loads(last)["_format_version"] == "3.0"
        write_secs = max(write_span[1] - write_span[0], 1e-9)
        o = json.loads(out)
        summary = o.get("summary", {})
        lat = o.get("latencyPercentiles", {})
        result = {
            "members": args.members,
            "entities_per_member": args.entities,
            "snapshot_bytes": len(snap),
            "connections": args.connections,
            "seconds": args.seconds,
            "conditional": args.conditional,
            "reads_per_s": summary.get("requestsPerSec"),
            "read_success_rate": summary.get("successRate"),
            "read_p50_ms": lat.get("p50", 0) * 1000 if lat.get("p50") is not None else None,
            "read_p99_ms": lat.get("p99", 0) * 1000 if lat.get("p99") is not None else None,
            "status_codes": o.get("statusCodeDistribution"),
            "read_errors": o.get("errorDistribution"),
            "writes": len(write_lat),
            "write_failures": len(write_failed),
            "writes_per_s": len(write_lat) / write_secs,
            "write_p50_ms": percentile(write_lat, 50) * 1000 if write_lat else None,
            "write_p99_ms": percentile(write_lat, 99) * 1000 if write_lat else None,
            "cores": os.cpu_count(),
            "cpu": cpu_model(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
        }
        print(json.dumps(result, indent=2))
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
