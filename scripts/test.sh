#!/usr/bin/env bash
# The project's test command (README): lint, every test, and a brief run of
# every bench and fuzz target so they can't rot. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --check
step "clippy"
cargo clippy --locked --all-targets -- -D warnings
step "tests"
cargo test --locked
step "benches (criterion smoke mode: each bench once)"
cargo bench --locked -- --test
if [ -x scripts/fuzz.sh ]; then
  step "fuzz targets (brief)"
  scripts/fuzz.sh smoke
fi
step "all checks passed"
