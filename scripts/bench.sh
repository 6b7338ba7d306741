#!/usr/bin/env bash
# Reproducible benchmark run of rgmerge: a release build, the key figures of
# `rgmerge bench` as JSON, then the criterion benches. Results go to
# target/bench-results/ (override with OUT=...).
#
#   scripts/bench.sh                  # full run (about 2 minutes of benches)
#   QUICK=1 scripts/bench.sh          # shorter criterion runs while iterating
#   scripts/bench.sh -- full_merge    # extra arguments go to criterion (a filter here)
#   MEMBERS=64 ENTITIES=500 scripts/bench.sh
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
./target/release/rgmerge bench --members "$MEMBERS" --entities "$ENTITIES" --seed "$SEED" --json \
    | tee "$OUT/figures.json"

criterion_args=()
if [[ -n "${QUICK:-}" ]]; then
    criterion_args+=(--warm-up-time 1 --measurement-time 2)
fi
cargo bench --locked --bench engine -- "${criterion_args[@]}" "$@" 2>&1 | tee "$OUT/criterion.txt"
echo "results in $OUT/"
