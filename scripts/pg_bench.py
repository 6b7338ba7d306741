#!/usr/bin/env python3
"""Several daemons on one PostgreSQL (issue 16): what sharing the store costs.

Starts a throwaway PostgreSQL server (initdb in a temporary directory, a Unix
socket only, as the `postgres` user when run as root) and two `rgmerge serve
--store postgres://…` daemons (release build) on one database, then measures:

  - propagation: --writes config writes on daemon A, one at a time; for each,
    the time from sending the write to daemon B answering a long-poll
    (`?wait=`, started before the write) with the new version. p50/p99/max.
  - throughput: --writers concurrent writers (one group each, half through A
    and half through B) for --seconds; acknowledged writes per second and the
    write latency p50/p99.
  - join: --members groups of --entities entities (`rgmerge gen`) and a
    composite of all of them are written; then a third daemon starts on the
    database, and the time until it answers `/healthz` with every group
    published is taken, --join-runs times (median and each run).

Prints one JSON object with the figures and the machine. Needs PostgreSQL 15
or later (Debian: apt-get install postgresql) and a release build.

Usage: scripts/pg_bench.py [--engine-only] [--writes 1000] [--writers 32] [--seconds 10]
                           [--members 256] [--entities 1000] [--join-runs 3]
                           [--bin target/release/rgmerge]

--bin runs another build (a baseline beside this one, as BENCHMARKS.md's
ratios are taken: the same session, the same machine).
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadtest import UnixConnection, cpu_model, percentile, request  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "rgmerge")
JS = {"Content-Type": "application/json"}


def pg_bin():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not dirs or int(dirs[-1].split("/")[-2]) < 15:
        sys.exit("PostgreSQL 15 or later is not installed (apt-get install postgresql)")
    return dirs[-1]


class Postgres:
    def __init__(self, tmp):
        self.bin = pg_bin()
        self.dir = os.path.join(tmp, "pg")
        os.makedirs(self.dir)
        self.user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres:postgres", self.dir], check=True)
        data = os.path.join(self.dir, "data")
        self.run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
        self.run("pg_ctl", "-D", data, "-l", os.path.join(self.dir, "log"), "-w", "-o",
                 f"-k {self.dir} -c listen_addresses='' -c max_connections=200", "start")
        self.data = data
        self.run("psql", "-X", "-q", "-h", self.dir, "-U", "postgres", "-d", "postgres",
                 "-c", "CREATE DATABASE bench")
        self.url = "postgres://postgres@" + self.dir.replace("/", "%2F") + "/bench"

    def run(self, tool, *args):
        subprocess.run(self.user + [os.path.join(self.bin, tool), *args], check=True,
                       stdout=subprocess.DEVNULL)

    def stop(self):
        self.run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")


def start_daemon(tmp, name, url):
    sock = os.path.join(tmp, f"{name}.sock")
    log = open(os.path.join(tmp, f"{name}.log"), "w")
    started = time.monotonic()
    p = subprocess.Popen([BIN, "serve", "--store", url, "--socket", sock,
                          "--data-dir", os.path.join(tmp, name)], stderr=log)
    while not os.path.exists(sock):
        if p.poll() is not None:
            sys.exit(f"daemon {name} exited: see {log.name}")
        time.sleep(0.005)
    return p, sock, started


def create(conn, name, composite=False):
    body = {"name": name}
    if composite:
        body["cluster_type"] = "CLUSTER_TYPE_CONTROL_PLANE_GROUP"
    st, _, data = request(conn, "POST", "/v2/control-planes", json.dumps(body), JS)
    assert st == 201, data
    return json.loads(data)["id"]


def visible(sock, gid):
    """Waits until the daemon on `sock` serves group `gid` (made through the
    other daemon: it arrives with the next catch-up)."""
    c = UnixConnection(sock)
    while request(c, "GET", f"/v2/control-planes/{gid}/snapshot")[0] != 200:
        time.sleep(0.001)


def config(name, host):
    return json.dumps({"_format_version": "3.0",
                       "services": [{"name": name, "host": host}]})


def propagation(a, b, writes):
    ca, cb = UnixConnection(a), UnixConnection(b)
    gid = create(ca, "propagation")
    visible(b, gid)
    took = []
    for i in range(writes):
        _, h, _ = request(cb, "GET", f"/v2/control-planes/{gid}/snapshot")
        etag = h["etag"]
        got = {}

        def poll():
            c = UnixConnection(b)
            st, h2, _ = request(c, "GET", f"/v2/control-planes/{gid}/snapshot?wait=30",
                                headers={"If-None-Match": etag})
            got["at"] = time.monotonic()
            got["status"] = st
        t = threading.Thread(target=poll)
        t.start()
        time.sleep(0.002)  # the long-poll is waiting
        start = time.monotonic()
        st, _, body = request(ca, "PUT", f"/v2/control-planes/{gid}/config",
                              config("svc", f"h{i}.internal"), JS)
        assert st == 200, body
        t.join()
        assert got["status"] == 200, got
        took.append((got["at"] - start) * 1000)
    return {"writes": writes, "p50_ms": round(percentile(took, 50), 2),
            "p99_ms": round(percentile(took, 99), 2), "max_ms": round(max(took), 2)}


def throughput(a, b, writers, seconds):
    conn = UnixConnection(a)
    gids = [create(conn, f"w{k}") for k in range(writers)]
    for g in gids:
        visible(b, g)
    lat, errors = [], [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def writer(k):
        c = UnixConnection(a if k % 2 == 0 else b)
        n = 0
        mine = []
        while time.monotonic() < stop:
            t0 = time.monotonic()
            st, _, _ = request(c, "PUT", f"/v2/control-planes/{gids[k]}/config",
                               config("svc", f"w{k}-{n}.internal"), JS)
            if st == 200:
                mine.append((time.monotonic() - t0) * 1000)
            else:
                with lock:
                    errors[0] += 1
            n += 1
        with lock:
            lat.extend(mine)
    ts = [threading.Thread(target=writer, args=(k,)) for k in range(writers)]
    began = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - began
    return {"writers": writers, "seconds": round(elapsed, 1),
            "writes_per_s": round(len(lat) / elapsed, 1), "errors": errors[0],
            "p50_ms": round(percentile(lat, 50), 2), "p99_ms": round(percentile(lat, 99), 2)}


def join(tmp, url, a, members, entities, runs):
    gen = os.path.join(tmp, "members")
    subprocess.run([BIN, "gen", "--out", gen, "--members", str(members),
                    "--entities", str(entities), "--seed", "7"], check=True,
                   stdout=subprocess.DEVNULL)
    conn = UnixConnection(a, timeout=600)
    comp = create(conn, "joined", composite=True)
    ids = []
    for f in sorted(os.listdir(gen)):
        gid = create(conn, "m-" + f.split(".")[0])
        ids.append(gid)
        with open(os.path.join(gen, f), "rb") as fh:
            st, _, body = request(conn, "PUT", f"/v2/control-planes/{gid}/config", fh.read(), JS)
            assert st == 200, body
    for i in range(0, len(ids), 50):
        st, _, body = request(conn, "POST", f"/v2/control-planes/{comp}/group-memberships/add",
                              json.dumps({"members": [{"id": g} for g in ids[i:i + 50]]}), JS)
        assert st == 204, body
    _, h, _ = request(conn, "GET", f"/v2/control-planes/{comp}/snapshot")
    want = h["x-snapshot-version"]
    times = []
    for r in range(runs):
        p, sock, started = start_daemon(tmp, f"join{r}", url)
        c = UnixConnection(sock, timeout=600)
        while True:
            try:
                _, h2, _ = request(c, "GET", f"/v2/control-planes/{comp}/snapshot")
                if h2["x-snapshot-version"] == want:
                    break
            except OSError:
                c = UnixConnection(sock, timeout=600)
            time.sleep(0.005)
        times.append(round(time.monotonic() - started, 2))
        p.kill()
        p.wait()
    return {"members": members, "entities": entities, "runs_s": times,
            "median_s": sorted(times)[len(times) // 2]}


def main():
    global BIN
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=1000)
    ap.add_argument("--writers", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--members", type=int, default=256)
    ap.add_argument("--entities", type=int, default=1000)
    ap.add_argument("--join-runs", type=int, default=3)
    ap.add_argument("--bin", default=BIN, help="the rgmerge binary [default: the release build]")
    ap.add_argument("--engine-only", action="store_true",
                    help="only `rgmerge bench --postgres` on the throwaway server: --writers writers "
                         "for --seconds through the engine's group commit, no daemons or HTTP")
    args = ap.parse_args()
    BIN = os.path.abspath(args.bin)
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    tmp = tempfile.mkdtemp(prefix="rgmerge-pg-")
    if os.geteuid() == 0:
        os.chmod(tmp, 0o755)
    pg = Postgres(tmp)
    if args.engine_only:
        try:
            out = subprocess.run(
                [BIN, "bench", "--members", "1", "--entities", "10", "--startup-runs", "0",
                 "--dense-consumers", "0", "--no-validate-memory", "--json",
                 "--postgres", pg.url, "--postgres-writers", str(args.writers),
                 "--postgres-seconds", str(args.seconds)],
                check=True, capture_output=True, text=True)
            rate = json.loads(out.stdout)["postgres_write_rate"]
            rate["machine"] = {"cpu": cpu_model(), "cores": os.cpu_count()}
            print(json.dumps(rate))
        finally:
            pg.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        return
    daemons = []
    try:
        pa, a, _ = start_daemon(tmp, "a", pg.url)
        daemons.append(pa)
        pb, b, _ = start_daemon(tmp, "b", pg.url)
        daemons.append(pb)
        out = {
            "propagation": propagation(a, b, args.writes),
            "throughput": throughput(a, b, args.writers, args.seconds),
            "join": join(tmp, pg.url, a, args.members, args.entities, args.join_runs),
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
        }
        print(json.dumps(out))
    finally:
        for p in daemons:
            p.kill()
            p.wait()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
