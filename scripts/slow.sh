#!/usr/bin/env bash
# The slow suites, run by their own command (issue 28): each also runs in
# `scripts/test.sh`, briefly, so it can't rot. Here they run long.
#
#   scripts/slow.sh soak [SECONDS]     the mixed-client soak (tests/daemon/soak.rs), default 600 s
#   scripts/slow.sh fuzz [SECONDS]     every fuzz target, default 600 s each (scripts/fuzz.sh long)
#   scripts/slow.sh fleet [NODES]      10,000 hybrid data planes on the cluster endpoint, release
#                                      build (scripts/loadtest.py --scenario hybrid)
#   scripts/slow.sh heartbeats         issue 17's heartbeat and writer scenarios, release build
#   scripts/slow.sh crashloop [ROUNDS] issue 27's crash loop: kill -9 under writes, heartbeats and
#                                      data planes, ROUNDS (default 100) on redb, then on
#                                      PostgreSQL with two daemons (scripts/crashloop.py)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-}
case "$what" in
  soak)
    RGMERGE_SOAK_SECS=${2:-600} cargo test --release --test daemon -- soak:: --nocapture ;;
  fuzz)
    exec scripts/fuzz.sh long "${2:-600}" ;;
  fleet)
    cargo build --release --bin rgmerge --example fleet
    python3 scripts/loadtest.py --scenario hybrid --nodes "${2:-10000}" --ping-interval 30 \
      --seconds 120 --connect-rate 1000 --bin target/release/rgmerge ;;
  heartbeats)
    cargo build --release --bin rgmerge
    python3 scripts/loadtest.py --scenario heartbeats --bin target/release/rgmerge
    python3 scripts/loadtest.py --scenario writers --bin target/release/rgmerge ;;
  crashloop)
    cargo build --bin rgmerge --example fleet
    python3 scripts/crashloop.py --rounds "${2:-100}" --store redb --bin target/debug/rgmerge
    python3 scripts/crashloop.py --rounds "${2:-100}" --store postgres --bin target/debug/rgmerge ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2 ;;
esac
