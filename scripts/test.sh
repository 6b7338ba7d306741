#!/usr/bin/env bash
# The project's test command (README): lint, every test, and a brief run of
# every bench and fuzz target so they can't rot. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

# The Runtime Manager page is tested in headless Chromium over WebDriver
# (tests/browser.rs): Debian's chromium and chromium-driver. Without them the
# browser test says SKIPPED, except under CI=true, where it fails.
browser_tools() {
  command -v chromedriver >/dev/null 2>&1 &&
    { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
}
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

# Several daemons on one PostgreSQL (tests/postgres.rs) run a real server
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

step "format"
cargo fmt --check
step "clippy"
cargo clippy --locked --all-targets -- -D warnings
step "tests"
cargo test --locked
step "load test (brief: issue 17's scenarios, small, on the debug build the tests made)"
python3 scripts/loadtest.py --scenario heartbeats --nodes 200 --period 2 --seconds 2 \
  --connections 8 --bin target/debug/rgmerge
python3 scripts/loadtest.py --scenario writers --writers 4 --seconds 1 --bin target/debug/rgmerge
python3 scripts/startup.py --members 4 --entities 50 --runs 1 --bin target/debug/rgmerge
# Issue 30: a small fleet of fake Kong data planes (examples/fleet.rs, built by cargo test).
python3 scripts/loadtest.py --scenario hybrid --nodes 50 --ping-interval 2 --seconds 10 \
  --connect-rate 200 --bin target/debug/rgmerge
step "the other measurement scripts compile (socket_limit and pg_bench need oha or a PostgreSQL and release builds: run them by hand)"
python3 -m py_compile scripts/socket_limit.py scripts/compare_bench.py scripts/compare_validate.py scripts/pg_bench.py
step "benches (criterion smoke mode: each bench once)"
cargo bench --locked -- --test
if [ -x scripts/fuzz.sh ]; then
  step "fuzz targets (brief)"
  scripts/fuzz.sh smoke
fi
step "all checks passed"
