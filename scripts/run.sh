#!/usr/bin/env bash
# Set up and run the daemon on its embedded default storage (./rgmerge-data).
# Extra arguments go to `rgmerge serve` (e.g. --socket PATH --max-groups 3).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is needed: install Rust from https://rustup.rs" >&2
  exit 2
fi
cargo build --release --locked
exec ./target/release/rgmerge serve "$@"
