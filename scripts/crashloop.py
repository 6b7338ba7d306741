#!/usr/bin/env python3
"""A crash loop (issue 27, item 6): kill -9 the daemon at random moments, N rounds.

Sets up, on loopback only, a composite `crash` of two standard groups `m0` and
`m1`, certificates from `rgmerge cluster-cert`, the daemon with
`--cluster-listen`, and the data-plane certificate pinned on the composite.
A fleet of fake Kong data planes (examples/fleet.rs, `--trace`) stays
connected for the whole run. Then, each round:

  1. load: one writer PUTs the members' configs in turn, each with a counter
     in it (`host: c<N>.m<i>.internal`); after each acknowledged write it reads
     the composite's version, Kong hash, version (a hash read between two equal
     versions belongs to that version: the hash → version map); a heartbeater
     POSTs Konnect node reports on the composite; the fleet pings and follows;
  2. at a random moment (--min-kill .. --max-kill seconds in) the daemon gets
     SIGKILL, mid-write as often as not;
  3. it is started again, and the round checks, with a bounded wait:
     - every acknowledged write is there: each member's current counter is the
       last acknowledged one for it, or a later one that was sent;
     - versions only grow: the composite's and each member's version are at
       least the highest seen before the kill; the history lists versions
       newest first, strictly decreasing, its newest the current one.

With --store postgres it starts a throwaway PostgreSQL (as scripts/pg_bench.py
does) and two daemons on it, each with its own cluster port and its own fleet;
the writer and heartbeater use a random live daemon; the rounds kill them in
turn, one at a time, and the checks run on both.

At the end the fleets stop and print, per node, the config hash of every
reconfigure frame it was sent, in order: mapped to versions, no node may
have been sent a version below one it had been sent before (a hash the map
never saw is counted as unmapped, not judged).

Prints a line per round to stderr and one JSON object to stdout: the store,
rounds, kills, writes acknowledged / verified / unacknowledged, heartbeats,
data-plane frames checked, unmapped frames, the machine, the start time,
seconds, and `failure` (null when every check passed). Exits 1, with what
failed, if a check fails (the temporary directory, with the daemons' logs,
is then kept).

Usage: scripts/crashloop.py [--rounds 100] [--store redb|postgres]
                            [--bin target/debug/rgmerge] [--fleet PATH]
                            [--nodes 20] [--seed N] [--min-kill 0.3] [--max-kill 2.0]
"""
import argparse
import asyncio
import datetime
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadtest  # noqa: E402
from loadtest import AsyncConn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOMAIN = "cp.crashloop.internal"
REQ_TIMEOUT = 10.0          # seconds for any one request
READY_TIMEOUT = 60.0        # seconds for a (re)started daemon to answer /healthz
CONVERGE_TIMEOUT = 15.0     # seconds for a round's checks to hold on every daemon
NET_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError)


class Failed(Exception):
    """A check failed: the message says which and how."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def req(conn, method, path, body=b""):
    return await asyncio.wait_for(conn.request(method, path, body), REQ_TIMEOUT)


def member_config(i, k):
    return json.dumps({"_format_version": "3.0",
                       "services": [{"name": f"m{i}-svc", "host": f"c{k}.m{i}.internal"}]}).encode()


COUNTER = re.compile(rb"c(\d+)\.m\d+\.internal")


class Daemon:
    def __init__(self, name, tmp, binary, certs, store_url):
        self.name = name
        self.sock = os.path.join(tmp, f"{name}.sock")
        self.port = free_port()
        self.log_path = os.path.join(tmp, f"{name}.log")
        self.argv = [binary, "serve", "--socket", self.sock, "--data-dir", os.path.join(tmp, f"{name}-data"),
                     "--cluster-listen", f"127.0.0.1:{self.port}", "--cluster-domain", DOMAIN,
                     "--cluster-cert", os.path.join(certs, "cluster.crt"),
                     "--cluster-cert-key", os.path.join(certs, "cluster.key")]
        if store_url:
            self.argv += ["--store", store_url]
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        with open(self.log_path, "a") as log:
            log.write(f"\n--- crashloop: start {self.starts} ---\n")
            log.flush()
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=log)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    async def ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                raise Failed(f"daemon {self.name} exited with {self.proc.returncode} on start "
                             f"{self.starts}: see {self.log_path}")
            conn = AsyncConn(self.sock)
            try:
                st, _ = await req(conn, "GET", "/healthz")
                if st == 200:
                    return
            except NET_ERRORS:
                pass
            finally:
                conn.close()
            await asyncio.sleep(0.05)
        raise Failed(f"daemon {self.name} did not answer /healthz within {READY_TIMEOUT:.0f} s "
                     f"(start {self.starts}): see {self.log_path}")

    def kill9(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=30)


class Loop:
    def __init__(self, args, daemons, comp, members):
        self.args = args
        self.daemons = daemons
        self.comp = comp
        self.members = members
        self.rng = random.Random(args.seed)
        self.next_counter = 1
        self.acked = {m: 0 for m in members}          # last acknowledged counter per member
        self.sent = {m: {0} for m in members}         # every counter ever sent per member
        self.hash_versions = {}                       # Kong hash -> versions it was read at
        self.max_version = {g: 0 for g in [comp] + members}
        self.stats = {"kills": 0, "writes_acknowledged": 0, "writes_verified": 0,
                      "writes_unacknowledged": 0, "writes_refused": {}, "heartbeats": 0,
                      "hash_reads": 0}
        self.pending_verify = 0
        self.last_hash = "0" * 32

    def live(self):
        return [d for d in self.daemons if d.alive()]

    async def stable_read(self, conn, gid=None):
        """The composite's version, hash, version: a hash read between two
        equal versions is that version's; versions read are kept as seen."""
        gid = gid or self.comp
        base = f"/v2/control-planes/{gid}"
        st1, b1 = await req(conn, "GET", base + "/expected-config-version")
        st2, b2 = await req(conn, "GET", base + "/expected-config-hash")
        st3, b3 = await req(conn, "GET", base + "/expected-config-version")
        if (st1, st2, st3) != (200, 200, 200):
            return None
        v1 = int(json.loads(b1)["expected_config_version"])
        v2 = int(json.loads(b3)["expected_config_version"])
        h = json.loads(b2)["expected_hash"]
        if v2 < v1:
            raise Failed(f"group {gid}: version went down between two reads: {v1} then {v2}")
        self.max_version[gid] = max(self.max_version[gid], v2)
        if v1 == v2:
            self.hash_versions.setdefault(h, set()).add(v1)
            self.stats["hash_reads"] += 1
            if gid == self.comp:
                self.last_hash = h
        return v2

    async def writer(self, stop):
        conns = {}
        i = 0
        while not stop.is_set():
            live = self.live()
            if not live:
                return
            d = self.rng.choice(live)
            conn = conns.setdefault(d.name, AsyncConn(d.sock))
            m = self.members[i % len(self.members)]
            i += 1
            k = self.next_counter
            self.next_counter += 1
            self.sent[m].add(k)
            try:
                st, body = await req(conn, "PUT", f"/v2/control-planes/{m}/config",
                                     member_config(self.members.index(m), k))
            except NET_ERRORS:
                conn.close()
                self.stats["writes_unacknowledged"] += 1
                await asyncio.sleep(0.01)
                continue
            if st != 200:
                # Not acknowledged (e.g. 503 while a store is unreachable): counted, not lost.
                self.stats["writes_unacknowledged"] += 1
                key = str(st)
                self.stats["writes_refused"][key] = self.stats["writes_refused"].get(key, 0) + 1
                if st < 500:
                    raise Failed(f"PUT config of {m} answered {st}: {body[:300]!r}")
                await asyncio.sleep(0.01)
                continue
            self.acked[m] = max(self.acked[m], k)
            self.stats["writes_acknowledged"] += 1
            self.pending_verify += 1
            try:
                await self.stable_read(conn)
            except NET_ERRORS:
                conn.close()
            await asyncio.sleep(self.args.write_interval)

    async def heartbeater(self, stop):
        conns = {}
        n = 0
        while not stop.is_set():
            live = self.live()
            if not live:
                return
            d = self.rng.choice(live)
            conn = conns.setdefault(d.name, AsyncConn(d.sock))
            i = n % 16
            n += 1
            body = json.dumps({"id": f"crash-hb-{i:02d}", "hostname": f"hb-{i:02d}.crashloop",
                               "ip": f"127.0.0.{i + 1}", "version": "3.10.0.1",
                               "config_hash": self.last_hash}).encode()
            try:
                st, _ = await req(conn, "POST", f"/v2/control-planes/{self.comp}/nodes", body)
                if st == 200:
                    self.stats["heartbeats"] += 1
            except NET_ERRORS:
                conn.close()
            await asyncio.sleep(0.02)

    async def check(self, d, before):
        """The round's checks on daemon d; returns None when they hold, else what failed."""
        conn = AsyncConn(d.sock)
        try:
            for m in self.members:
                st, body = await req(conn, "GET", f"/v2/control-planes/{m}/config")
                if st != 200:
                    return f"{d.name}: GET config of {m} answered {st}: {body[:200]!r}"
                found = COUNTER.search(body)
                if not found:
                    return f"{d.name}: config of {m} has no counter: {body[:200]!r}"
                k = int(found.group(1))
                if k < self.acked[m]:
                    return (f"{d.name}: acknowledged write lost: member {m} holds counter {k}, "
                            f"the last acknowledged was {self.acked[m]}")
                if k not in self.sent[m]:
                    return f"{d.name}: member {m} holds counter {k}, which was never sent to it"
            for g in [self.comp] + self.members:
                v = await self.stable_read(conn, g)
                if v is None:
                    return f"{d.name}: could not read the version of {g}"
                if v < before[g]:
                    return f"{d.name}: version of {g} went down across the kill: {before[g]} then {v}"
            st, body = await req(conn, "GET", f"/v2/control-planes/{self.comp}/snapshot/history")
            if st != 200:
                return f"{d.name}: history answered {st}: {body[:200]!r}"
            hist = json.loads(body)
            items = hist.get("items", hist.get("data", hist)) if isinstance(hist, dict) else hist
            versions = [int(e["version"]) for e in items if isinstance(e, dict) and "version" in e]
            if any(a <= b for a, b in zip(versions, versions[1:])):
                return f"{d.name}: history versions not strictly decreasing: {versions}"
            if versions and versions[0] < before[self.comp]:
                return f"{d.name}: history's newest version {versions[0]} is below {before[self.comp]}"
            return None
        except NET_ERRORS as e:
            return f"{d.name}: request failed: {e!r}"
        finally:
            conn.close()

    async def round(self, r):
        victim = self.daemons[r % len(self.daemons)]
        stop = asyncio.Event()
        tasks = [asyncio.ensure_future(self.writer(stop)), asyncio.ensure_future(self.heartbeater(stop))]
        await asyncio.sleep(self.rng.uniform(self.args.min_kill, self.args.max_kill))
        for t in tasks:
            if t.done() and t.exception():
                raise t.exception()
        before = dict(self.max_version)
        victim.kill9()
        self.stats["kills"] += 1
        stop.set()
        done, pending = await asyncio.wait(tasks, timeout=REQ_TIMEOUT + 5)
        for t in pending:
            t.cancel()
        for t in done:
            if t.exception():
                raise t.exception()
        # Versions read after the kill (on the other daemon) count as seen too.
        before = {g: max(before[g], self.max_version[g]) for g in before}
        victim.start()
        await victim.ready()
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        while True:
            problems = [p for p in [await self.check(d, before) for d in self.daemons] if p]
            if not problems:
                break
            if time.monotonic() > deadline:
                raise Failed(f"round {r + 1}: " + "; ".join(problems))
            await asyncio.sleep(0.1)
        self.stats["writes_verified"] += self.pending_verify
        self.pending_verify = 0


def check_traces(reports, hash_versions):
    """Each node's frames, mapped to versions, never go below one sent before."""
    frames = unmapped = 0
    for f, report in enumerate(reports):
        for node, hashes in enumerate(report.get("trace", [])):
            had = None
            for pos, h in enumerate(hashes):
                frames += 1
                vs = hash_versions.get(h)
                if not vs:
                    unmapped += 1
                    continue
                if had is not None and max(vs) < had[0]:
                    raise Failed(f"fleet {f} node {node}: frame {pos} carried hash {h} (version "
                                 f"{sorted(vs)}) after it had been sent {had[1]} (version {had[0]})")
                if had is None or min(vs) > had[0]:
                    had = (min(vs), h)
    return frames, unmapped


async def setup(d, certs):
    conn = AsyncConn(d.sock)
    st, body = await req(conn, "POST", "/v2/control-planes", json.dumps(
        {"name": "crash", "cluster_type": "CLUSTER_TYPE_CONTROL_PLANE_GROUP"}).encode())
    if st != 201:
        raise Failed(f"creating the composite answered {st}: {body[:300]!r}")
    comp = json.loads(body)["id"]
    members = []
    for i in range(2):
        st, body = await req(conn, "POST", "/v2/control-planes", json.dumps({"name": f"m{i}"}).encode())
        if st != 201:
            raise Failed(f"creating m{i} answered {st}: {body[:300]!r}")
        gid = json.loads(body)["id"]
        members.append(gid)
        st, body = await req(conn, "PUT", f"/v2/control-planes/{gid}/config", member_config(i, 0))
        if st != 200:
            raise Failed(f"the first config of m{i} answered {st}: {body[:300]!r}")
    st, body = await req(conn, "POST", f"/v2/control-planes/{comp}/group-memberships/add",
                         json.dumps({"members": [{"id": g} for g in members]}).encode())
    if st not in (200, 204):
        raise Failed(f"adding the members answered {st}: {body[:300]!r}")
    with open(os.path.join(certs, "dp.crt")) as f:
        pem = f.read()
    st, body = await req(conn, "POST", f"/v2/control-planes/{comp}/dp-client-certificates",
                         json.dumps({"cert": pem}).encode())
    if st != 201:
        raise Failed(f"pinning the data-plane certificate answered {st}: {body[:300]!r}")
    conn.close()
    return comp, members


def start_fleet(fleet, d, label, certs, args, tmp):
    log = open(os.path.join(tmp, f"fleet-{d.name}.log"), "w")
    return subprocess.Popen(
        [fleet, "--addr", f"127.0.0.1:{d.port}", "--server-name", f"{label}.{DOMAIN}",
         "--ca", os.path.join(certs, "ca.crt"), "--cert", os.path.join(certs, "dp.crt"),
         "--key", os.path.join(certs, "dp.key"), "--nodes", str(args.nodes),
         "--seconds", str(args.rounds * 120 + 600), "--ping-interval", "1",
         "--connect-rate", "200", "--reconnect", "0.2:0.6", "--trace"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)


async def run(args, tmp, out):
    certs = os.path.join(tmp, "certs")
    subprocess.run([args.bin, "cluster-cert", "--domain", DOMAIN, "--out", certs, "--dp-cn", "crashloop"],
                   check=True, stdout=subprocess.DEVNULL)
    pg = None
    url = None
    if args.store == "postgres":
        import pg_bench
        pg = pg_bench.Postgres(tmp)
        out["_pg"] = pg
        url = pg.url
    daemons = [Daemon(n, tmp, args.bin, certs, url) for n in (["a", "b"] if pg else ["a"])]
    out["_daemons"] = daemons
    for d in daemons:
        d.start()
        await d.ready()
    comp, members = await setup(daemons[0], certs)
    label = comp.replace("-", "")[:10]
    fleets = [start_fleet(args.fleet, d, label, certs, args, tmp) for d in daemons]
    out["_fleets"] = fleets
    loop = Loop(args, daemons, comp, members)
    conn = AsyncConn(daemons[0].sock)
    await loop.stable_read(conn)  # the first version's hash, which the fleets get first
    conn.close()
    # The fleets connect before the first kill.
    await asyncio.sleep(1.0)
    began = time.monotonic()
    try:
        for r in range(args.rounds):
            await loop.round(r)
            print(f"crashloop: round {r + 1}/{args.rounds} ok: kills {loop.stats['kills']}, "
                  f"writes acknowledged {loop.stats['writes_acknowledged']}, verified "
                  f"{loop.stats['writes_verified']}", file=sys.stderr, flush=True)
    finally:
        out.update(loop.stats)
        out["seconds"] = round(time.monotonic() - began, 1)
    # Let the fleets settle on the last version, then stop them and judge their frames.
    conn = AsyncConn(daemons[0].sock)
    await loop.stable_read(conn)
    conn.close()
    await asyncio.sleep(2.0)
    reports = []
    for f in fleets:
        try:
            stdout, _ = f.communicate(input="", timeout=60)
        except subprocess.TimeoutExpired:
            f.kill()
            raise Failed("a fleet did not stop within 60 s of its stdin closing")
        lines = stdout.strip().splitlines()
        if f.returncode != 0 or not lines:
            raise Failed(f"a fleet exited {f.returncode} without a report: see {tmp}/fleet-*.log")
        reports.append(json.loads(lines[-1]))
    frames, unmapped = check_traces(reports, loop.hash_versions)
    out["dp_nodes"] = sum(r["nodes"] for r in reports)
    out["dp_frames_checked"] = frames - unmapped
    out["dp_frames_unmapped"] = unmapped
    out["dp_connections"] = sum(r["connections"] for r in reports)
    out["dp_on_last_hash"] = sum(r["hashes_held"].get(loop.last_hash, 0) for r in reports)
    out["dp_failed_connects"] = sum(sum(r["failed_connects"].values()) for r in reports)
    if frames == 0:
        raise Failed("no data plane was sent any config: the fleet never connected")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--store", choices=["redb", "postgres"], default="redb")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "rgmerge"))
    ap.add_argument("--fleet", default=None, help="[default: beside --bin, examples/fleet]")
    ap.add_argument("--nodes", type=int, default=20, help="data planes per daemon")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--min-kill", type=float, default=0.3, help="earliest kill, seconds into a round")
    ap.add_argument("--max-kill", type=float, default=2.0, help="latest kill, seconds into a round")
    ap.add_argument("--write-interval", type=float, default=0.005, help="seconds between writes")
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    args.fleet = os.path.abspath(args.fleet or os.path.join(os.path.dirname(args.bin), "examples", "fleet"))
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    for p, what in ((args.bin, "cargo build --bin rgmerge"), (args.fleet, "cargo build --example fleet")):
        if not os.path.exists(p):
            sys.exit(f"crashloop: {p} not found: {what} (or pass --bin/--fleet)")
    if args.rounds < 1 or args.nodes < 1 or not 0 < args.min_kill <= args.max_kill:
        sys.exit("crashloop: --rounds and --nodes must be positive, 0 < --min-kill <= --max-kill")
    tmp = tempfile.mkdtemp(prefix="rgmerge-crashloop-")
    if os.geteuid() == 0:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as the postgres user
    out = {"store": args.store, "rounds": args.rounds, "seed": args.seed, "binary": args.bin,
           "started_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    failure = None
    try:
        asyncio.run(run(args, tmp, out))
    except Failed as e:
        failure = str(e)
    except (subprocess.CalledProcessError, SystemExit) as e:
        failure = f"setup failed: {e}"
    finally:
        for f in out.pop("_fleets", []):
            if f.poll() is None:
                f.kill()
                f.wait()
        for d in out.pop("_daemons", []):
            d.stop()
        pg = out.pop("_pg", None)
        if pg is not None:
            try:
                pg.stop()
            except subprocess.CalledProcessError:
                pass
    out.update(loadtest.machine())
    out["failure"] = failure
    if failure:
        out["kept"] = tmp
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))
    if failure:
        print(f"crashloop: FAILED: {failure}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
