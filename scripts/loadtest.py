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
       scripts/loadtest.py --read status [--readers 8] [--bin PATH]
         group-status GETs from a pool of Python readers under the same write
         load (no oha needed); --bin runs another build, e.g. an older commit's,
         so two builds are measured the same way in one run.

With --slowloris (issue 15) it measures something else: --slow-headers
connections that never finish their request line or headers and --slow-bodies
config uploads dripping a byte a second (each reconnecting when the daemon
closes it) are held against the daemon for --seconds, while one normal client
sends GET /healthz and GET /snapshot back to back (5 ms apart) on a kept-alive
connection. It prints one JSON line: the normal client's p50/p99/max latency
and failures, how many slow connections the daemon closed and how many bodies
got 408, and the machine. The daemon runs with short read timeouts
(--header-timeout, --body-timeout) when it has the flags. No oha needed.

       scripts/loadtest.py --slowloris [--seconds 15] [--slow-headers 300]
                           [--slow-bodies 100] [--header-timeout 2] [--body-timeout 5]

Issue 17 (one JSON line per figure; exits 1 if a correctness check fails):

       scripts/loadtest.py --scenario heartbeats [--nodes 10000] [--period 30]
                           [--seconds 15] [--connections 32] [--write-interval 0.2]
         a composite of two members; --nodes data planes register at once,
         then heartbeat every --period seconds (spread evenly) for --seconds
         while a member's config changes every --write-interval seconds and
         the nodes follow the composite's hash; then all reconnect at once.
         Heartbeat p50/p99 and rate of each phase; then every node reports
         once more and the node list must count them all, every 100th out of
         sync, the rest in sync.
       scripts/loadtest.py --scenario writers [--writers 32] [--seconds 15]
         --writers clients, each replacing its own group's config back to
         back: acknowledged writes/s and acknowledgement p50/p99.
       Either with [--bin PATH] [--baseline PATH]: the baseline binary runs
       the same scenario right after, in the same run.

Issue 25 (the core-entities API; one JSON line per figure; exits 1 if a check fails):

       scripts/loadtest.py --scenario entities [--connections 32] [--seconds 15]
                           [--entities 100]
         the daemon with --api-listen over HTTPS (a certificate made with
         openssl) and a group of --entities services: GETs of one service,
         then one-service POSTs (each a new version of a group's config), from
         --connections asyncio clients for --seconds each, over the Unix
         socket and over HTTPS with an org admin's bearer token; requests/s,
         p50 and p99 of each, and HTTPS over socket as ratios. One Python
         process drives every client, so it, not the daemon, may be the limit
         of the GET figures; both transports share that limit.

Issue 30 (the cluster endpoint; one JSON line per figure; exits 1 if a check fails):

       scripts/loadtest.py --scenario hybrid [--nodes 10000] [--ping-interval 30]
                           [--seconds 60] [--connect-rate 2000] [--fleet PATH]
         the daemon with --cluster-listen on loopback and certificates from
         `rgmerge cluster-cert`; a group with a config and the fleet's pinned
         certificate; --nodes fake Kong data planes (examples/fleet.rs, which
         follows Kong's data_plane.lua) connect and get the config. Then: the
         daemon's memory per connected data plane (RSS after minus before,
         over the nodes), the pings it handled per second (its heartbeat
         counter over a quiet window), and, after one member write, the time
         from the write's acknowledgement until each data plane held the new
         hash (p50/p99/max). Checks: every node connected, every node ended on
         the new hash, no failed connects.
"""
import asyncio
import argparse
import ssl
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


def daemon_flags(header_timeout, body_timeout):
    """The read-timeout flags, if this binary has them (else its defaults apply)."""
    help_text = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True).stdout
    if "--header-read-timeout-secs" not in help_text:
        return [], None
    return (["--header-read-timeout-secs", str(header_timeout),
             "--body-read-timeout-secs", str(body_timeout)],
            {"header_read_s": header_timeout, "body_read_s": body_timeout})


async def slow_client(sock, head, drip, filler, deadline, stats):
    """One slow client slot: connect, send `head`, drip `drip` then `filler` a
    byte a second; when the daemon hangs up, count it and reconnect, until
    `deadline` (event-loop time)."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        try:
            reader, writer = await asyncio.open_unix_connection(sock)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(0.1)
            continue
        stats["opened"] += 1

        async def drip_bytes():
            try:
                writer.write(head)
                await writer.drain()
                for b in drip:
                    await asyncio.sleep(1)
                    writer.write(bytes([b]))
                    await writer.drain()
                while filler is not None:
                    await asyncio.sleep(1)
                    writer.write(filler)
                    await writer.drain()
            except OSError:
                pass
            await asyncio.sleep(3600)

        task = asyncio.ensure_future(drip_bytes())
        try:
            answer = await asyncio.wait_for(reader.read(), timeout=max(0.0, deadline - loop.time()))
            stats["closed_by_daemon"] += 1
            if answer.startswith(b"HTTP/1.1 408"):
                stats["answered_408"] += 1
        except (asyncio.TimeoutError, OSError):
            pass
        task.cancel()
        writer.close()


async def attack(sock, cfg_path, headers, bodies, seconds, ready):
    """Runs the slow clients for `seconds`; returns their stats."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    head_stats = {"opened": 0, "closed_by_daemon": 0, "answered_408": 0, "connect_errors": 0}
    body_stats = dict(head_stats)
    body_head = (f"PUT {cfg_path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: 100000\r\n\r\n").encode()
    slots = []
    for i in range(headers):
        kind = i % 3
        if kind == 0:    # connects, sends nothing
            slots.append(slow_client(sock, b"", b"", None, deadline, head_stats))
        elif kind == 1:  # the request line, a byte a second
            slots.append(slow_client(sock, b"", b"GET /healthz HTTP/1.1\r\n", b"a", deadline, head_stats))
        else:            # an endless header
            slots.append(slow_client(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: ", b"a",
                                     deadline, head_stats))
    for _ in range(bodies):
        slots.append(slow_client(sock, body_head, b"{", b" ", deadline, body_stats))
    tasks = [asyncio.ensure_future(s) for s in slots]
    while head_stats["opened"] + body_stats["opened"] < headers + bodies and loop.time() < deadline:
        await asyncio.sleep(0.05)
    ready.set()
    await asyncio.gather(*tasks)
    return head_stats, body_stats


def run_slowloris(args):
    flags, timeouts = daemon_flags(args.header_timeout, args.body_timeout)
    tmp = tempfile.mkdtemp(prefix="rgmerge-slowloris-")
    sock = os.path.join(tmp, "rg.sock")
    daemon = subprocess.Popen([BIN, "serve", "--data-dir", os.path.join(tmp, "data"), "--socket", sock] + flags,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        conn = UnixConnection(sock)
        js = {"Content-Type": "application/json"}
        _, _, body = request(conn, "POST", "/v2/control-planes", json.dumps({"name": "blue"}), js)
        gid = json.loads(body)["id"]
        cfg = json.dumps({"_format_version": "3.0", "services": [{"name": "s", "host": "h"}]})
        st, _, body = request(conn, "PUT", f"/v2/control-planes/{gid}/config", cfg, js)
        assert st == 200, body

        # The slow clients run on an event loop in a thread of their own.
        ready = threading.Event()
        result = {}

        def attacker():
            result["stats"] = asyncio.run(attack(sock, f"/v2/control-planes/{gid}/config",
                                                 args.slow_headers, args.slow_bodies, args.seconds + 2, ready))

        at = threading.Thread(target=attacker)
        load_before = os.getloadavg()
        at.start()
        ready.wait(timeout=60)

        lat, failures = [], 0
        paths = ["/healthz", f"/v2/control-planes/{gid}/snapshot"]
        end = time.perf_counter() + args.seconds
        conn = UnixConnection(sock)
        n = 0
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            try:
                st, _, _ = request(conn, "GET", paths[n % 2])
                if st == 200:
                    lat.append(time.perf_counter() - t0)
                else:
                    failures += 1
            except (OSError, http.client.HTTPException):
                failures += 1
                conn = UnixConnection(sock)
            n += 1
            time.sleep(0.005)
        at.join()
        load_after = os.getloadavg()
        head_stats, body_stats = result["stats"]
        st, _, _ = request(UnixConnection(sock), "GET", "/healthz")
        p99 = percentile(lat, 99) * 1000 if lat else None
        print(json.dumps({
            "scenario": "slowloris",
            "seconds": args.seconds,
            "slow_header_clients": args.slow_headers,
            "slow_body_clients": args.slow_bodies,
            "daemon_timeouts": timeouts or "defaults (no timeout flags in this binary)",
            "normal_requests": len(lat) + failures,
            "normal_failures": failures,
            "normal_p50_ms": percentile(lat, 50) * 1000 if lat else None,
            "normal_p99_ms": p99,
            "normal_max_ms": max(lat) * 1000 if lat else None,
            "p99_under_50ms": p99 is not None and p99 < 50 and failures == 0,
            "slow_header_connections": head_stats,
            "slow_body_connections": body_stats,
            "daemon_alive_after": st == 200,
            "cores": os.cpu_count(),
            "cpu": cpu_model(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
        }))
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def build_composite(conn, gen):
    """A composite `shared` of one standard group per file in `gen` (named by
    the file's stem, its config uploaded): (composite id, member ids in order)."""
    js = {"Content-Type": "application/json"}
    _, _, body = request(conn, "POST", "/v2/control-planes",
                         json.dumps({"name": "shared", "cluster_type": "CLUSTER_TYPE_CONTROL_PLANE_GROUP"}), js)
    composite = json.loads(body)["id"]
    ids = []
    for f in sorted(os.listdir(gen)):
        _, _, body = request(conn, "POST", "/v2/control-planes", json.dumps({"name": f.split(".")[0]}), js)
        gid = json.loads(body)["id"]
        ids.append(gid)
        with open(os.path.join(gen, f), "rb") as fh:
            st, _, body = request(conn, "PUT", f"/v2/control-planes/{gid}/config", fh.read(), js)
            assert st == 200, body
    for i in range(0, len(ids), 50):
        st, _, body = request(conn, "POST", f"/v2/control-planes/{composite}/group-memberships/add",
                              json.dumps({"members": [{"id": g} for g in ids[i:i + 50]]}), js)
        assert st in (200, 204), body  # 204 (Konnect); older builds answered 200
    return composite, ids


def read_pool(sock, path, readers, seconds):
    """GETs `path` from `readers` threads, each on its own keep-alive
    connection, for `seconds`; answers in oha's JSON shape (the fields used)."""
    lat, failures, lock = [], [0], threading.Lock()
    end = time.perf_counter() + seconds

    def reader():
        c = UnixConnection(sock)
        mine, bad = [], 0
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            try:
                st, _, _ = request(c, "GET", path)
                if st == 200:
                    mine.append(time.perf_counter() - t0)
                else:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                c = UnixConnection(sock)
        with lock:
            lat.extend(mine)
            failures[0] += bad

    threads = [threading.Thread(target=reader) for _ in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = len(lat) + failures[0]
    return {
        "summary": {"requestsPerSec": len(lat) / seconds,
                    "successRate": len(lat) / total if total else None},
        "latencyPercentiles": {"p50": percentile(lat, 50), "p99": percentile(lat, 99)},
        "statusCodeDistribution": {"200": len(lat)},
        "errorDistribution": {"failed": failures[0]},
    }


# ---- issue 17: heartbeats at fleet scale, and concurrent writers ----

class AsyncConn:
    """A minimal HTTP/1.1 keep-alive client over the Unix socket, on asyncio:
    cheap enough per request that one Python process can drive thousands of
    requests a second (http.client in threads can't)."""

    def __init__(self, sock, tls=None, headers=""):
        """`sock`: the Unix socket's path, or with `tls` (an ssl context) a
        (host, port) pair; `headers`: extra header lines (each ending \\r\\n)."""
        self.sock = sock
        self.tls = tls
        self.headers = headers
        self.r = self.w = None

    async def request(self, method, path, body=b"", ctype="application/json"):
        reused = self.w is not None
        try:
            return await self.send(method, path, body, ctype)
        except asyncio.IncompleteReadError as e:
            # The daemon closed a connection that sat idle: once more, anew.
            if not reused or e.partial:
                raise
            return await self.send(method, path, body, ctype)

    async def send(self, method, path, body, ctype):
        if self.w is None:
            if self.tls is not None:
                host, port = self.sock
                self.r, self.w = await asyncio.open_connection(host, port, ssl=self.tls)
            else:
                self.r, self.w = await asyncio.open_unix_connection(self.sock)
        head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                f"{self.headers}Content-Length: {len(body)}\r\n\r\n").encode()
        try:
            self.w.write(head + body)
            raw = await self.r.readuntil(b"\r\n\r\n")
            status = int(raw[9:12])
            lower = raw.lower()
            if b"transfer-encoding: chunked" in lower:
                data = b""
                while True:
                    size = int((await self.r.readuntil(b"\r\n")).strip(), 16)
                    chunk = await self.r.readexactly(size + 2)
                    if size == 0:
                        break
                    data += chunk[:-2]
            else:
                m = re.search(rb"content-length: *(\d+)", lower)
                data = await self.r.readexactly(int(m.group(1))) if m else b""
            if b"connection: close" in lower:
                self.close()
            return status, data
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.close()
            raise

    def close(self):
        if self.w is not None:
            self.w.close()
        self.r = self.w = None


def start_daemon(tmp, extra=()):
    sock = os.path.join(tmp, "rg.sock")
    daemon = subprocess.Popen([BIN, "serve", "--data-dir", os.path.join(tmp, "data"), "--socket", sock,
                               *extra], stderr=subprocess.DEVNULL)
    for _ in range(400):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    return daemon, sock


def figure(common, name, value, unit, **extra):
    """One JSON line per figure."""
    line = dict(common)
    line.update({"figure": name, "value": round(value, 3) if isinstance(value, float) else value,
                 "unit": unit})
    line.update(extra)
    print(json.dumps(line), flush=True)


def machine():
    return {"cores": os.cpu_count(), "cpu": cpu_model()}


def small_config(name, host):
    return json.dumps({"_format_version": "3.0",
                       "services": [{"name": name, "host": host, "routes": [{"name": name + "-r",
                                                                              "paths": ["/" + name]}]}]}).encode()


async def run_heartbeats_async(args, sock, common):
    js = "application/json"
    setup = AsyncConn(sock)
    st, body = await setup.request("POST", "/v2/control-planes", json.dumps(
        {"name": "fleet", "cluster_type": "CLUSTER_TYPE_CONTROL_PLANE_GROUP"}).encode())
    assert st == 201, body
    comp = json.loads(body)["id"]
    members = []
    for name in ("fleet-a", "fleet-b"):
        st, body = await setup.request("POST", "/v2/control-planes", json.dumps({"name": name}).encode())
        assert st == 201, body
        gid = json.loads(body)["id"]
        members.append(gid)
        st, body = await setup.request("PUT", f"/v2/control-planes/{gid}/config",
                                       small_config(name, name + ".internal"))
        assert st == 200, body
    st, body = await setup.request("POST", f"/v2/control-planes/{comp}/group-memberships/add",
                                   json.dumps({"members": [{"id": g} for g in members]}).encode())
    assert st in (200, 204), body
    hash_path = f"/v2/control-planes/{comp}/expected-config-hash"

    async def expected_hash(conn):
        st, body = await conn.request("GET", hash_path)
        assert st == 200, body
        return json.loads(body)["expected_hash"]

    known = {"hash": await expected_hash(setup)}
    n = args.nodes
    # Every 100th node runs an old config (out of sync) on purpose.
    stale = set(range(0, n, 100))
    failures = []

    def beat_body(i):
        return json.dumps({"id": f"dp-{i:05d}", "hostname": f"dp-{i:05d}.fleet", "ip": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                           "version": "3.10.0.1",
                           "config_hash": "0" * 32 if i in stale else known["hash"]}).encode()

    pool = [AsyncConn(sock) for _ in range(args.connections)]
    beat_path = f"/v2/control-planes/{comp}/nodes"

    async def beat(conn, i, lat):
        t0 = time.perf_counter()
        try:
            st, body = await conn.request("POST", beat_path, beat_body(i))
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            failures.append(repr(e))
            return
        if st != 200:
            failures.append(f"{st} {body[:200]!r}")
            return
        lat.append(time.perf_counter() - t0)

    async def burst(ids):
        """Every node in `ids` heartbeats at once (as many in flight as there
        are connections); returns the latencies and the seconds it took."""
        lat, queue = [], list(ids)
        queue.reverse()

        async def worker(conn):
            while queue:
                await beat(conn, queue.pop(), lat)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in pool))
        return lat, time.perf_counter() - t0

    # The writer: a member's config changes every --write-interval seconds,
    # so the composite publishes new versions (and new hashes) throughout.
    stop = asyncio.Event()
    writes = {"n": 0, "failed": 0}

    async def writer():
        conn = AsyncConn(sock)
        k = 0
        while not stop.is_set():
            k += 1
            st, _ = await conn.request("PUT", f"/v2/control-planes/{members[0]}/config",
                                       small_config("fleet-a", f"a{k % 2}.internal"))
            writes["n"] += 1
            if st != 200:
                writes["failed"] += 1
            try:
                await asyncio.wait_for(stop.wait(), args.write_interval)
            except asyncio.TimeoutError:
                pass

    async def follower():
        """What the data planes run follows the composite (as a sidecar would)."""
        conn = AsyncConn(sock)
        while not stop.is_set():
            known["hash"] = await expected_hash(conn)
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    lat, secs = await burst(range(n))
    figure(common, "register_burst_p50_ms", percentile(lat, 50) * 1000, "ms", nodes=n)
    figure(common, "register_burst_p99_ms", percentile(lat, 99) * 1000, "ms", nodes=n)
    figure(common, "register_burst_per_s", len(lat) / secs, "heartbeats/s", nodes=n)

    bg = [asyncio.ensure_future(writer()), asyncio.ensure_future(follower())]
    # Steady state: each node every --period seconds, spread evenly.
    rate = n / args.period
    steady, due, sent = [], time.perf_counter(), 0
    end = due + args.seconds
    inflight = set()
    free = list(pool)
    lagged = 0
    while time.perf_counter() < end:
        now = time.perf_counter()
        while due <= now and time.perf_counter() < end:
            if not free:
                lagged += 1
                break
            conn = free.pop()
            i = sent % n
            sent += 1
            t = asyncio.ensure_future(beat(conn, i, steady))
            t.add_done_callback(lambda _t, c=conn: free.append(c))
            inflight.add(t)
            t.add_done_callback(inflight.discard)
            due += 1.0 / rate
        await asyncio.sleep(max(0.0, min(due - time.perf_counter(), 0.005)))
    if inflight:
        await asyncio.gather(*inflight)
    figure(common, "steady_p50_ms", percentile(steady, 50) * 1000, "ms", nodes=n, period_s=args.period)
    figure(common, "steady_p99_ms", percentile(steady, 99) * 1000, "ms", nodes=n, period_s=args.period)
    figure(common, "steady_per_s", len(steady) / args.seconds, "heartbeats/s",
           nodes=n, offered_per_s=round(rate, 1), config_writes=writes["n"])

    lat, secs = await burst(range(n))
    figure(common, "reconnect_burst_p50_ms", percentile(lat, 50) * 1000, "ms", nodes=n)
    figure(common, "reconnect_burst_p99_ms", percentile(lat, 99) * 1000, "ms", nodes=n)
    figure(common, "reconnect_burst_per_s", len(lat) / secs, "heartbeats/s", nodes=n)

    # Correctness: configs stop changing, every node reports once more what it
    # runs now, and the node list must say exactly that.
    stop.set()
    await asyncio.gather(*bg)
    known["hash"] = await expected_hash(setup)
    await burst(range(n))
    counts, total, after = {"IN_SYNC": 0, "OUT_OF_SYNC": 0}, None, None
    while True:
        q = "page[size]=1000" + (f"&page[after]={after}" if after else "")
        st, body = await setup.request("GET", f"{beat_path}?{q}")
        assert st == 200, body
        page = json.loads(body)
        total = page["page"]["total_count"]
        for item in page["items"]:
            counts[item["sync_status"]] += 1
        nxt = page["page"].get("next")
        if not nxt:
            break
        after = re.search(r"page%5Bafter%5D=([^&]+)|page\[after\]=([^&]+)", nxt)
        after = after.group(1) or after.group(2)
    st, body = await setup.request("GET", f"/v2/control-planes/{comp}/details")
    details = json.loads(body)
    ok = (total == n and counts["OUT_OF_SYNC"] == len(stale) and counts["IN_SYNC"] == n - len(stale)
          and details.get("instances") == n and not failures and writes["failed"] == 0)
    figure(common, "nodes_listed", total, "nodes", nodes=n, in_sync=counts["IN_SYNC"],
           out_of_sync=counts["OUT_OF_SYNC"], expected_out_of_sync=len(stale),
           instances=details.get("instances"), active_instances=details.get("active_instances"),
           heartbeat_failures=len(failures), first_failures=failures[:3], correct=ok)
    for c in pool:
        c.close()
    return ok


async def run_writers_async(args, sock, common):
    setup = AsyncConn(sock)
    groups = []
    for k in range(args.writers):
        st, body = await setup.request("POST", "/v2/control-planes", json.dumps({"name": f"w{k}"}).encode())
        assert st == 201, body
        groups.append(json.loads(body)["id"])
    lat, failed = [], []
    stop_at = [0.0]

    async def writer(k, gid):
        conn = AsyncConn(sock)
        variants = [small_config(f"svc{k}", "a.internal"), small_config(f"svc{k}", "b.internal")]
        j = 0
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            try:
                st, body = await conn.request("PUT", f"/v2/control-planes/{gid}/config", variants[j % 2])
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                failed.append(repr(e))
                continue
            j += 1
            if st == 200:
                lat.append(time.perf_counter() - t0)
            else:
                failed.append(f"{st} {body[:200]!r}")
    t0 = time.perf_counter()
    stop_at[0] = t0 + args.seconds
    await asyncio.gather(*(writer(k, g) for k, g in enumerate(groups)))
    secs = time.perf_counter() - t0
    # Every acknowledged write is there: each group holds one of its variants.
    for k, gid in enumerate(groups):
        st, body = await setup.request("GET", f"/v2/control-planes/{gid}/config")
        if st != 200 or f"svc{k}".encode() not in body:
            failed.append(f"group w{k} lost its config")
    figure(common, "writes_per_s", len(lat) / secs, "acknowledged writes/s", writers=args.writers)
    figure(common, "write_p50_ms", percentile(lat, 50) * 1000, "ms", writers=args.writers)
    figure(common, "write_p99_ms", percentile(lat, 99) * 1000, "ms", writers=args.writers,
           failures=len(failed), first_failures=failed[:3], correct=not failed)
    return not failed


# ---- issue 25: the core-entities API, over the socket and over HTTPS ----

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(tmp):
    """A certificate for 127.0.0.1 and its key, made with openssl."""
    cert, key = os.path.join(tmp, "api.crt"), os.path.join(tmp, "api.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


async def run_entities_async(args, sock, https, common):
    """GETs of one entity, then one-entity POSTs (each a new version of the
    group's config), from --connections clients for --seconds each, over the
    socket and over HTTPS with a bearer token: requests/s and p50/p99."""
    setup = AsyncConn(sock)
    services = [{"name": f"s{i}", "host": f"s{i}.internal"} for i in range(args.entities)]
    config = json.dumps({"_format_version": "3.0", "services": services}).encode()
    groups = {}
    for name in ["get", "post-socket", "post-https"]:
        st, body = await setup.request("POST", "/v2/control-planes", json.dumps({"name": name}).encode())
        assert st == 201, body
        gid = json.loads(body)["id"]
        st, body = await setup.request("PUT", f"/v2/control-planes/{gid}/config", config)
        assert st == 200, body
        groups[name] = gid
    st, body = await setup.request("POST", "/v2/teams/org-admins/tokens", b'{"name":"bench"}')
    assert st == 201, body
    token = json.loads(body)["token"]
    tls = ssl.create_default_context(cafile=https["cert"])
    ok = True

    def conn(over):
        if over == "socket":
            return AsyncConn(sock)
        return AsyncConn(("127.0.0.1", https["port"]), tls=tls,
                         headers=f"Authorization: Bearer {token}\r\n")

    async def measure(over, method, group, ok_status):
        lat, failed = [], []
        stop_at = time.perf_counter() + args.seconds
        base = f"/v2/control-planes/{group}/core-entities/services"

        async def client(k):
            c = conn(over)
            n = 0
            while time.perf_counter() < stop_at:
                n += 1
                if method == "GET":
                    req = ("GET", f"{base}/s{k % args.entities}", b"")
                else:
                    body = json.dumps({"name": f"c{k}-{n}", "host": "new.internal"}).encode()
                    req = ("POST", base, body)
                t0 = time.perf_counter()
                try:
                    st, body = await c.request(*req)
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    failed.append(repr(e))
                    continue
                if st == ok_status:
                    lat.append(time.perf_counter() - t0)
                else:
                    failed.append(f"{st} {body[:200]!r}")
        t0 = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(args.connections)))
        secs = time.perf_counter() - t0
        what = f"{method.lower()}_{over}"
        figure(common, f"{what}_per_s", len(lat) / secs, "requests/s", connections=args.connections)
        figure(common, f"{what}_p50_ms", percentile(lat, 50) * 1000 if lat else 0, "ms")
        figure(common, f"{what}_p99_ms", percentile(lat, 99) * 1000 if lat else 0, "ms",
               failures=len(failed), first_failures=failed[:3])
        return len(lat) / secs, not failed

    rates = {}
    for over in ["socket", "https"]:
        rates[("GET", over)], good = await measure(over, "GET", groups["get"], 200)
        ok &= good
        rates[("POST", over)], good = await measure(over, "POST", groups[f"post-{over}"], 201)
        ok &= good
    for method in ["GET", "POST"]:
        if rates[(method, "socket")]:
            figure(common, f"{method.lower()}_https_over_socket",
                   rates[(method, "https")] / rates[(method, "socket")], "ratio")
    # Every acknowledged POST is there.
    for over in ["socket", "https"]:
        st, body = await setup.request("GET", f"/v2/control-planes/{groups['post-' + over]}/core-entities/services?size=1000")
        ok &= st == 200
    return ok


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def metric(conn, name):
    st, body = await conn.request("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def run_hybrid(args, common):
    """Issue 30: a fleet of hybrid-mode data planes on the cluster endpoint."""
    fleet = args.fleet or os.path.join(os.path.dirname(BIN), "examples", "fleet")
    if not os.path.exists(fleet):
        sys.exit(f"{fleet} not found: cargo build --release --example fleet (or pass --fleet)")
    tmp = tempfile.mkdtemp(prefix="rgmerge-hybrid-")
    certs = os.path.join(tmp, "certs")
    domain = "cp.loadtest.internal"
    subprocess.run([BIN, "cluster-cert", "--domain", domain, "--out", certs, "--dp-cn", "fleet"],
                   check=True, stdout=subprocess.DEVNULL)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sock = os.path.join(tmp, "rg.sock")
    daemon = subprocess.Popen(
        [BIN, "serve", "--data-dir", os.path.join(tmp, "data"), "--socket", sock,
         "--cluster-listen", f"127.0.0.1:{port}", "--cluster-domain", domain,
         "--cluster-cert", os.path.join(certs, "cluster.crt"),
         "--cluster-cert-key", os.path.join(certs, "cluster.key"),
         "--active-window-secs", str(max(30, int(args.ping_interval * 2)))],
        stderr=subprocess.DEVNULL)
    for _ in range(400):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    ok = True
    fleet_proc = None
    try:
        async def setup():
            conn = AsyncConn(sock)
            st, body = await conn.request("POST", "/v2/control-planes", json.dumps({"name": "fleet"}).encode())
            assert st == 201, body
            gid = json.loads(body)["id"]
            st, body = await conn.request("PUT", f"/v2/control-planes/{gid}/config",
                                          small_config("fleet-svc", "a.internal"))
            assert st == 200, body
            with open(os.path.join(certs, "dp.crt")) as f:
                pem = f.read()
            st, body = await conn.request("POST", f"/v2/control-planes/{gid}/dp-client-certificates",
                                          json.dumps({"cert": pem}).encode())
            assert st == 201, body
            return gid
        gid = asyncio.run(setup())
        label = gid.replace("-", "")[:10]
        rss_before = rss_kb(daemon.pid)
        fleet_proc = subprocess.Popen(
            [fleet, "--addr", f"127.0.0.1:{port}", "--server-name", f"{label}.{domain}",
             "--ca", os.path.join(certs, "ca.crt"), "--cert", os.path.join(certs, "dp.crt"),
             "--key", os.path.join(certs, "dp.key"), "--nodes", str(args.nodes),
             "--seconds", str(args.seconds), "--ping-interval", str(args.ping_interval),
             "--connect-rate", str(args.connect_rate)],
            stdout=subprocess.PIPE, text=True)

        async def measure():
            conn = AsyncConn(sock)
            path = f"/v2/control-planes/{gid}/nodes?page[size]=1"
            deadline = time.time() + args.seconds
            total = 0
            while time.time() < deadline:
                st, body = await conn.request("GET", path)
                total = json.loads(body)["page"]["total_count"] if st == 200 else 0
                if total >= args.nodes:
                    break
                await asyncio.sleep(0.2)
            # Every node has connected (and pinged): the idle fleet's cost.
            await asyncio.sleep(min(2.0, args.ping_interval))
            rss_after = rss_kb(daemon.pid)
            # One whole ping interval: every node pings once in it.
            window = max(1.0, args.ping_interval)
            b0 = await metric(conn, "rgmerge_heartbeats_total")
            await asyncio.sleep(window)
            b1 = await metric(conn, "rgmerge_heartbeats_total")
            t0 = time.time()
            st, body = await conn.request("PUT", f"/v2/control-planes/{gid}/config",
                                          small_config("fleet-svc", "b.internal"))
            assert st == 200, body
            written_ms = time.time() * 1000.0
            ack_ms = (time.time() - t0) * 1000.0
            st, body = await conn.request("GET", f"/v2/control-planes/{gid}/expected-config-hash")
            return total, rss_after, (b1 - b0) / window, written_ms, ack_ms, json.loads(body)["expected_hash"]
        total, rss_after, pings_per_s, written_ms, ack_ms, new_hash = asyncio.run(measure())
        out, _ = fleet_proc.communicate(timeout=args.seconds + 120)
        report = json.loads(out.strip().splitlines()[-1])
        change = next((c for c in report["hash_changes"] if c["hash"] == new_hash), None)
        held = report["hashes_held"].get(new_hash, 0)
        per_conn = (rss_after - rss_before) * 1024 / max(total, 1)
        figure(common, "connected_data_planes", report["connected"], "nodes", nodes=args.nodes,
               node_records=total, failed_connects=report["failed_connects"])
        figure(common, "memory_per_connection_kb", per_conn / 1024, "KB (daemon RSS delta / nodes)",
               rss_before_mb=round(rss_before / 1024, 1), rss_after_mb=round(rss_after / 1024, 1))
        figure(common, "pings_per_s", pings_per_s, "pings handled/s",
               ping_interval_s=args.ping_interval)
        if change:
            offset = report["start_unix_ms"] + change["first_at_ms"] - written_ms
            figure(common, "propagation_p50_ms", offset + change["p50_ms"], "ms from the write's ack")
            figure(common, "propagation_p99_ms", offset + change["p99_ms"], "ms from the write's ack",
                   max_ms=round(offset + change["max_ms"], 1), write_ack_ms=round(ack_ms, 1),
                   nodes_moved=change["nodes"])
        correct = (report["connected"] == args.nodes and held == args.nodes
                   and not report["failed_connects"] and change is not None)
        figure(common, "correct", correct, "bool", nodes_on_new_hash=held,
               configs_received=report["configs_received"])
        ok = correct
    finally:
        if fleet_proc and fleet_proc.poll() is None:
            fleet_proc.kill()
        daemon.terminate()
        daemon.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    return ok


def run_scenario(args):
    """Runs --scenario for --bin, then for --baseline if given (the same
    way, one after the other, in this run). Exits 1 if a check failed."""
    global BIN
    ok = True
    bins = [BIN] + ([os.path.abspath(args.baseline)] if args.baseline else [])
    if args.scenario == "hybrid":
        common = {"scenario": "hybrid", "binary": BIN, "role": "measured"}
        common.update(machine())
        if not run_hybrid(args, common):
            sys.exit(1)
        return
    if args.scenario == "entities":
        tmp = tempfile.mkdtemp(prefix="rgmerge-load-")
        cert, key = self_signed(tmp)
        port = free_port()
        daemon, sock = start_daemon(tmp, ["--api-listen", f"127.0.0.1:{port}", "--api-cert", cert,
                                          "--api-cert-key", key, "--api-rate-limit", "1000000"])
        common = {"scenario": "entities", "binary": BIN, "role": "measured"}
        common.update(machine())
        try:
            good = asyncio.run(run_entities_async(args, sock, {"port": port, "cert": cert}, common))
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
            shutil.rmtree(tmp, ignore_errors=True)
        if not good:
            sys.exit(1)
        return
    for b in bins:
        BIN = b
        tmp = tempfile.mkdtemp(prefix="rgmerge-load-")
        daemon, sock = start_daemon(tmp)
        common = {"scenario": args.scenario, "binary": b,
                  "role": "baseline" if b != bins[0] else "measured"}
        common.update(machine())
        try:
            if args.scenario == "heartbeats":
                ok &= asyncio.run(run_heartbeats_async(args, sock, common))
            else:
                ok &= asyncio.run(run_writers_async(args, sock, common))
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
            shutil.rmtree(tmp, ignore_errors=True)
    if not ok:
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--entities", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--conditional", action="store_true",
                    help="send If-None-Match with the hash current at start (sidecar-style polling)")
    ap.add_argument("--slowloris", action="store_true",
                    help="hold slow clients against the daemon and measure a normal client instead")
    ap.add_argument("--slow-headers", type=int, default=300)
    ap.add_argument("--slow-bodies", type=int, default=100)
    ap.add_argument("--header-timeout", type=int, default=2)
    ap.add_argument("--body-timeout", type=int, default=5)
    ap.add_argument("--read", choices=["snapshot", "status"], default="snapshot",
                    help="what the readers GET: the composite's snapshot or its group-status (oha; "
                         "group-status falls back to Python readers without it)")
    ap.add_argument("--readers", type=int, default=8, help="reader threads for --read status")
    ap.add_argument("--bin", default=None, help="the rgmerge binary to measure")
    ap.add_argument("--scenario", choices=["heartbeats", "writers", "hybrid", "entities"], default=None,
                    help="issue 17: a fleet of data planes heartbeating, or concurrent writers; "
                         "issue 30: hybrid-mode data planes on the cluster endpoint")
    ap.add_argument("--ping-interval", type=float, default=30.0,
                    help="seconds between a hybrid data plane's pings (Kong: 30)")
    ap.add_argument("--connect-rate", type=float, default=2000.0,
                    help="hybrid data planes connecting per second")
    ap.add_argument("--fleet", default=None,
                    help="the fleet example binary [default: beside --bin, examples/fleet]")
    ap.add_argument("--baseline", default=None,
                    help="with --scenario: another binary measured the same way right after")
    ap.add_argument("--nodes", type=int, default=10_000, help="data planes (--scenario heartbeats)")
    ap.add_argument("--period", type=float, default=30.0, help="seconds between a node's heartbeats")
    ap.add_argument("--write-interval", type=float, default=0.2,
                    help="seconds between config changes during --scenario heartbeats")
    ap.add_argument("--writers", type=int, default=32, help="writers, each on its own group")
    args = ap.parse_args()
    global BIN
    if args.bin:
        BIN = os.path.abspath(args.bin)
    if args.scenario:
        run_scenario(args)
        return
    if args.slowloris:
        run_slowloris(args)
        return

    oha = shutil.which("oha") or os.path.expanduser("~/.cargo/bin/oha")
    if args.read == "snapshot" and not os.path.exists(oha):
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
        files = sorted(os.listdir(gen))
        composite, ids = build_composite(conn, gen)
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
        if args.read == "status" and not os.path.exists(oha):
            # Without oha: Python readers, which saturate near 3,000 GETs/s
            # on 2 cores (the client, not the daemon, is then the limit).
            out = json.dumps(read_pool(sock, f"/v2/control-planes/{composite}/group-status",
                                       args.readers, args.seconds))
        else:
            what = "group-status" if args.read == "status" else "snapshot"
            cmd = [oha, "--no-tui", "--output-format", "json", "-z", f"{args.seconds}s", "-c",
                   str(args.connections), "--unix-socket", sock,
                   f"http://localhost/v2/control-planes/{composite}/{what}"]
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
            "read": args.read,
            "binary": BIN,
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
