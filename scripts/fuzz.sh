#!/usr/bin/env bash
# The cargo-fuzz targets in fuzz/ (see docs/TESTING.md).
#
#   scripts/fuzz.sh smoke              every target for 20 s (the test command runs this)
#   scripts/fuzz.sh long [SECONDS]     every target for SECONDS (default 600)
#   scripts/fuzz.sh run TARGET [SECS]  one target (default 60 s)
#   scripts/fuzz.sh repro TARGET FILE  run one input (a crash artifact) once
#
# Each run first replays the committed seeds in fuzz/corpus/TARGET (the project's
# own inputs and every input that once crashed; parse_member and yaml_agreement
# also replay the real decK/Kong files of ../shared/fixtures/real, and
# yaml_agreement the cases of fixtures/yaml), then mutates. New corpus entries go to
# fuzz/target/work/TARGET (kept between `long` and `run` runs, so they build on
# each other; `smoke` uses a fresh directory so it stays short), never into the
# committed corpus. A crash leaves its input in fuzz/artifacts/TARGET and fails
# the script.
# Needs nightly (for -Zsanitizer); without one the script says SKIPPED and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

TARGETS=(parse_member merge_sequence http_bodies yaml_agreement cluster_wire)

skip() {
  echo "" >&2
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  echo "!!! SKIPPED: fuzz targets were NOT run: $*" >&2
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  exit 0
}

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

mode=${1:-smoke}
case "$mode" in
  smoke) secs=20; targets=("${TARGETS[@]}") ;;
  long) secs=${2:-600}; targets=("${TARGETS[@]}") ;;
  run) [ $# -ge 2 ] || usage; secs=${3:-60}; targets=("$2") ;;
  repro) [ $# -eq 3 ] || usage; targets=("$2") ;;
  *) usage ;;
esac
for t in "${targets[@]}"; do
  [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "no fuzz target '$t' (have: ${TARGETS[*]})" >&2; exit 2; }
done

command -v rustup >/dev/null 2>&1 || skip "rustup is not installed, so no nightly toolchain"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "==> installing the nightly toolchain (cargo-fuzz needs it for -Zsanitizer)"
  rustup toolchain install nightly --profile minimal \
    || skip "no nightly toolchain and 'rustup toolchain install nightly' failed"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked || skip "cargo-fuzz is missing and could not be installed"
fi

echo "==> building the fuzz targets (nightly, AddressSanitizer)"
if [ "${#targets[@]}" -eq 1 ]; then
  cargo +nightly fuzz build "${targets[0]}"
else
  cargo +nightly fuzz build
fi

if [ "$mode" = repro ]; then
  exec cargo +nightly fuzz run "$2" "$3"
fi

for t in "${targets[@]}"; do
  echo "==> fuzzing $t for ${secs}s"
  mkdir -p "fuzz/target/work/$t"
  log="fuzz/target/work/$t.log"
  work="fuzz/target/work/$t"
  if [ "$mode" = smoke ]; then
    work=$(mktemp -d "fuzz/target/work/smoke-$t.XXXXXX")
  fi
  status=0
  # -rss_limit_mb: a runaway allocation is a finding, not a swap storm.
  seeds=("fuzz/corpus/$t")
  [ -d "fuzz/corpus/$t" ] || seeds=()
  # Real decK/Kong files seed the parser from ../shared (never committed here).
  if { [ "$t" = parse_member ] || [ "$t" = yaml_agreement ]; } && [ -d ../shared/fixtures/real ]; then
    real=$(mktemp -d "fuzz/target/work/real-seeds.XXXXXX")
    find ../shared/fixtures/real -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) \
      -exec cp {} "$real/" \;
    seeds+=("$real")
  fi
  if [ "$t" = yaml_agreement ] && [ -d fixtures/yaml ]; then
    seeds+=("fixtures/yaml")
  fi
  cargo +nightly fuzz run "$t" "$work" "${seeds[@]}" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
  if [ "$mode" = smoke ]; then rm -rf "$work"; fi
  if [ "$status" -ne 0 ]; then
    grep -E -A12 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -n 60 >&2 || tail -n 60 "$log" >&2
    echo "FUZZ FAILURE in $t (log: $log); the input is in fuzz/artifacts/$t/;" >&2
    echo "reproduce with: scripts/fuzz.sh repro $t fuzz/artifacts/$t/<file>" >&2
    exit 1
  fi
done
echo "==> fuzz: ${targets[*]} ran ${secs}s each without a finding"
