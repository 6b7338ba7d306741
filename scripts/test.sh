#!/usr/bin/env bash
# The project's test command (README): lint, every test, and a brief run of
# every bench and fuzz target so they can't rot. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

# Each stage's wall time, printed as a table at the end (also when a stage
# fails: the failing stage is marked).
STAGES=()
STAGE=""
STAGE_START=$SECONDS
SCRIPT_START=$SECONDS
stage() {
  stage_end
  STAGE=$1
  STAGE_START=$SECONDS
  shift
  step "$*"
}
stage_end() {
  if [ -n "$STAGE" ]; then
    STAGES+=("$STAGE|$((SECONDS - STAGE_START))|${1:-ok}")
    STAGE=""
  fi
}
summary() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then stage_end FAILED; else stage_end; fi
  printf '\n%-10s %9s  %s\n' stage time result
  local row name secs result
  for row in "${STAGES[@]}"; do
    IFS='|' read -r name secs result <<<"$row"
    printf '%-10s %5dm%02ds  %s\n' "$name" $((secs / 60)) $((secs % 60)) "$result"
  done
  local total=$((SECONDS - SCRIPT_START))
  printf '%-10s %5dm%02ds\n' total $((total / 60)) $((total % 60))
  exit "$rc"
}
trap summary EXIT

# The Runtime Manager page is tested in headless Chromium over WebDriver
# (tests/daemon/browser.rs): Debian's chromium and chromium-driver. Without them the
# browser test says SKIPPED, except under CI=true, where it fails.
browser_tools() {
  command -v chromedriver >/dev/null 2>&1 &&
    { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
}
stage setup "the tools the tests need"
if ! browser_tools; then
  step "installing chromium and chromium-driver (apt-get)"
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq chromium chromium-driver >/dev/null ||
      echo "could not install chromium and chromium-driver: the browser test will say why"
  else
    echo "apt-get (as root) is not available: install chromium and chromium-driver to run the browser test"
  fi
fi

# Several daemons on one PostgreSQL (tests/daemon/postgres.rs) run a real server
# from Debian's postgresql (15 or later) on a temporary directory and a Unix
# socket. Without it those tests say SKIPPED, except under CI=true.
pg_tools() {
  # The server's initdb, not just a client (psql or pg_config alone is not enough).
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 ||
    { command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; }
}
if ! pg_tools; then
  step "installing postgresql (apt-get)"
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq postgresql >/dev/null ||
      echo "could not install postgresql: the PostgreSQL tests will say why"
  else
    echo "apt-get (as root) is not available: install postgresql (15+) to run the PostgreSQL tests"
  fi
fi

stage format "format"
cargo fmt --check
stage clippy "clippy"
cargo clippy --locked --all-targets -- -D warnings
stage tests "tests"
cargo test --locked
stage load "load test (brief: issue 17's scenarios, small, on the debug build the tests made)"
python3 scripts/loadtest.py --scenario heartbeats --nodes 200 --period 2 --seconds 2 \
  --connections 8 --bin target/debug/rgmerge
python3 scripts/loadtest.py --scenario writers --writers 4 --seconds 1 --bin target/debug/rgmerge
python3 scripts/startup.py --members 4 --entities 50 --runs 1 --bin target/debug/rgmerge
# Issue 25: core-entities GETs and POSTs over the socket and over HTTPS.
python3 scripts/loadtest.py --scenario entities --seconds 1 --connections 4 --entities 10 \
  --bin target/debug/rgmerge
# Issue 30: a small fleet of fake Kong data planes (examples/fleet.rs, built by cargo test).
python3 scripts/loadtest.py --scenario hybrid --nodes 50 --ping-interval 2 --seconds 10 \
  --connect-rate 200 --bin target/debug/rgmerge
# Issue 27: the crash loop, 3 rounds on redb and 3 on PostgreSQL (two daemons; needs
# PostgreSQL 15+); scripts/slow.sh crashloop runs 100 of each.
python3 scripts/crashloop.py --rounds 3 --store redb --bin target/debug/rgmerge
python3 scripts/crashloop.py --rounds 3 --store postgres --bin target/debug/rgmerge
step "the other measurement scripts compile (socket_limit and pg_bench need oha or a PostgreSQL and release builds: run them by hand)"
python3 -m py_compile scripts/socket_limit.py scripts/compare_bench.py scripts/compare_validate.py scripts/pg_bench.py
stage benches "benches (criterion smoke mode: each bench once)"
# The dev profile the tests already built: the smoke run checks that every
# bench builds and runs once, which a release build (9+ minutes here) adds
# nothing to. Figures come from scripts/bench.sh, in release.
cargo bench --locked --profile dev -- --test
if [ -x scripts/fuzz.sh ]; then
  stage fuzz "fuzz targets (brief)"
  scripts/fuzz.sh smoke
fi
stage_end
step "all checks passed"
