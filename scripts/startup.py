#!/usr/bin/env python3
"""Start-up of the real daemon from its store (issue 17, item 6).

For each binary (--bin, then --baseline if given, one after the other in this
run): writes a composite of --members generated members of --entities
entities each through the API of `rgmerge serve` on a fresh data directory
(the same generated files for every binary), stops it with SIGTERM, then
starts it --runs times on that store and times each from exec until the
socket answers GET /healthz, and checks that the composite's snapshot (its
ETag) is the one served before the restart (exits 1 if not). Prints one JSON
line per figure: the start-ups' median and every run, the members thawed and
built as /metrics reports them, and the daemon's RSS one second after its
socket answered and its peak (VmHWM).

Usage: scripts/startup.py [--members 256] [--entities 1000] [--runs 5]
                          [--bin PATH] [--baseline PATH]
"""
import argparse
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadtest import UnixConnection, build_composite, figure, machine, request  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


LIVE = []


@atexit.register
def _kill_live():
    """A check that exits mid-run leaves no daemon behind."""
    for proc in LIVE:
        if proc.poll() is None:
            proc.kill()


def serve(binary, data, sock):
    proc = subprocess.Popen([binary, "serve", "--data-dir", data, "--socket", sock],
                            stderr=subprocess.DEVNULL)
    LIVE.append(proc)
    return proc


def answering(sock, proc, limit_s=600):
    """Seconds until GET /healthz answers 200 (polled every millisecond)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        if proc.poll() is not None:
            sys.exit(f"the daemon exited with {proc.returncode} before answering")
        if os.path.exists(sock):
            try:
                st, _, _ = request(UnixConnection(sock, timeout=5), "GET", "/healthz")
                if st == 200:
                    return time.perf_counter() - t0
            except OSError:
                pass
        time.sleep(0.001)
    sys.exit(f"the daemon did not answer within {limit_s} s")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) if m else None


def metric(sock, name):
    _, _, body = request(UnixConnection(sock), "GET", "/metrics")
    m = re.search(rf"^{name} (\S+)$", body.decode(), re.M)
    return float(m.group(1)) if m else None


def snapshot_etag(sock, composite):
    st, headers, body = request(UnixConnection(sock, timeout=60), "GET",
                                f"/v2/control-planes/{composite}/snapshot")
    if st != 200:
        sys.exit(f"GET the composite's snapshot answered {st}: {body[:200]!r}")
    etag = headers.get("etag")
    if not etag:
        sys.exit("GET the composite's snapshot answered without an ETag")
    return etag


def measure(args, binary, role, gen, tmp):
    data, sock = os.path.join(tmp, role, "data"), os.path.join(tmp, role, "rg.sock")
    os.makedirs(os.path.dirname(data), exist_ok=True)
    proc = serve(binary, data, sock)
    answering(sock, proc)
    composite, _ = build_composite(UnixConnection(sock, timeout=300), gen)
    served = snapshot_etag(sock, composite)
    stop(proc)
    common = {"scenario": "startup", "binary": binary, "role": role,
              "members": args.members, "entities_per_member": args.entities, **machine()}
    times, thawed, built, rss, peak = [], [], [], [], []
    for _ in range(args.runs):
        proc = serve(binary, data, sock)
        times.append(answering(sock, proc))
        again = snapshot_etag(sock, composite)
        if again != served:
            stop(proc)
            sys.exit(f"{role}: the composite's snapshot after a restart is {again}, not {served}")
        time.sleep(1)
        thawed.append(metric(sock, "rgmerge_startup_members_thawed"))
        built.append(metric(sock, "rgmerge_startup_members_built"))
        rss.append(status_kb(proc.pid, "VmRSS"))
        peak.append(status_kb(proc.pid, "VmHWM"))
        stop(proc)
    times.sort()
    store = os.path.getsize(os.path.join(data, "rgmerge.redb"))
    figure(common, "startup_to_socket_s", round(times[len(times) // 2], 3), "s (median)",
           runs=[round(t, 3) for t in times], snapshot_etag=served)
    figure(common, "startup_members", thawed[-1], "members thawed (last run)", built=built[-1],
           thawed_per_run=thawed, built_per_run=built)
    figure(common, "startup_rss_mb", round(max(rss) / 1024, 1), "MB at socket + 1 s (max of runs)",
           peak_mb=round(max(peak) / 1024, 1), store_mb=round(store / 1e6, 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=256)
    ap.add_argument("--entities", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "rgmerge"))
    ap.add_argument("--baseline", default=None, help="another build, measured right after --bin")
    args = ap.parse_args()
    if args.runs < 1:
        sys.exit("--runs must be at least 1")
    tmp = tempfile.mkdtemp(prefix="rgmerge-startup-")
    try:
        gen = os.path.join(tmp, "members")
        subprocess.run([args.bin, "gen", "--out", gen, "--members", str(args.members),
                        "--entities", str(args.entities)], check=True, stdout=subprocess.DEVNULL)
        measure(args, os.path.abspath(args.bin), "measured", gen, tmp)
        if args.baseline:
            measure(args, os.path.abspath(args.baseline), "baseline", gen, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
