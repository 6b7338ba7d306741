#!/usr/bin/env bash
# Reproducible benchmark run of rgmerge: a release build, the key figures of
# `rgmerge bench` as JSON, then the criterion benches. Results go to
# target/bench-results/ (override with OUT=...).
#
#   scripts/bench.sh                  # full run (about 2 minutes of benches)
#   QUICK=1 scripts/bench.sh          # shorter criterion runs while iterating
#   scripts/bench.sh -- full_merge    # extra arguments go to criterion (a filter here)
#   MEMBERS=64 ENTITIES=500 scripts/bench.sh
#   scripts/bench.sh --load           # HTTP load test of the daemon instead (see below)
#
# --load: installs oha if missing (`cargo install oha --locked`, about 6
# minutes on 2 cores), builds the release binary, then runs
# scripts/loadtest.py in three configurations: 8 members x 10 entities (an
# 18 KB snapshot), 16 x 100 (334 KB), and 8 x 10 with If-None-Match
# (sidecar-style polling, 304s). Each: oha GETs /snapshot from 32
# connections for LOAD_SECONDS (default 15) while a writer replaces a member
# every 10 ms. Results: target/bench-results/load.json (one object per line).
#
# Inputs are generated from a fixed seed (rgmerge::synth), dependencies come
# from Cargo.lock (--locked), and the toolchain, commit and machine are
# recorded next to the figures. Run it on an otherwise idle machine: the
# figures include the load average at the start, and `thread_cpu` repeats the
# timings in CPU time, which other processes disturb less.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-target/bench-results}
MEMBERS=${MEMBERS:-256}
ENTITIES=${ENTITIES:-1000}
SEED=${SEED:-1}
LOAD=
if [[ "${1:-}" == "--load" ]]; then LOAD=1; shift; fi
if [[ "${1:-}" == "--" ]]; then shift; fi

mkdir -p "$OUT"
{
    echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit:    $(git describe --always --dirty 2>/dev/null || echo unknown)"
    echo "rustc:     $(rustc -V)"
    echo "cargo:     $(cargo -V)"
    echo "cpu:       $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "cores:     $(nproc)"
    echo "memory:    $(grep MemTotal /proc/meminfo | awk '{print $2 " kB"}')"
    echo "kernel:    $(uname -sr)"
    echo "thp:       $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo n/a)"
    echo "loadavg:   $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/environment.txt"

cargo build --release --locked

if [[ -n "$LOAD" ]]; then
    if ! command -v oha >/dev/null && [[ ! -x "$HOME/.cargo/bin/oha" ]]; then
        cargo install oha --locked
    fi
    SECONDS_PER_RUN=${LOAD_SECONDS:-15}
    : > "$OUT/load.json"
    for args in "--members 8 --entities 10" "--members 16 --entities 100" "--members 8 --entities 10 --conditional"; do
        # shellcheck disable=SC2086 # word splitting of $args is intended
        python3 scripts/loadtest.py $args --seconds "$SECONDS_PER_RUN" --connections 32 \
            | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))' | tee -a "$OUT/load.json"
    done
    echo "results in $OUT/load.json"
    exit 0
fi
./target/release/rgmerge bench --members "$MEMBERS" --entities "$ENTITIES" --seed "$SEED" --json \
    | tee "$OUT/figures.json"

# The PostgreSQL write rate (issue 26): `rgmerge bench` starts no server, so
# scripts/pg_bench.py does, when PostgreSQL's initdb is installed.
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    python3 scripts/pg_bench.py --members "$MEMBERS" --entities "$ENTITIES" | tee "$OUT/pg_bench.txt"
else
    echo "PostgreSQL is not installed: no write rate (see scripts/pg_bench.py)" | tee "$OUT/pg_bench.txt"
fi

criterion_args=()
if [[ -n "${QUICK:-}" ]]; then
    criterion_args+=(--warm-up-time 1 --measurement-time 2)
fi
cargo bench --locked --bench engine -- "${criterion_args[@]}" "$@" 2>&1 | tee "$OUT/criterion.txt"
echo "results in $OUT/"
