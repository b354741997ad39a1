#!/usr/bin/env bash
# Fuzzes the engine with cargo-fuzz (libFuzzer): the targets in fuzz/fuzz_targets/, one after another.
#   bash scripts/fuzz.sh [seconds-per-target]   fuzz each target that long (default 60), starting from the
#                                              committed seeds (fuzz/corpus/<target>/) and what earlier runs found
#   bash scripts/fuzz.sh --replay               run each target once over its committed seeds only (CI)
# Prints executions and crashes per target and in total; exits non-zero on any crash. A crashing input is kept
# in fuzz/artifacts/<target>/ (not committed): replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -s none -a <target> fuzz/artifacts/<target>/<file>
# cargo-fuzz needs nightly flags: RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. Builds go to
# $CARGO_TARGET_DIR/fuzz (default target/fuzz); the corpus a run grows, to <that>/corpus/<target>.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

mode=fuzz
seconds=60
case "${1:-}" in
  --replay) mode=replay ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
  '') ;;
  *) [[ "$1" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: expected seconds per target or --replay, got '$1'" >&2; exit 2; }
     seconds=$1 ;;
esac

bash scripts/setup.sh --fuzz

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
# No sanitizer (the crate is safe Rust: panics are the bugs to find, at full speed); debug assertions and
# overflow checks on, so that arithmetic the release build would wrap silently fails loudly here.
flags=(--fuzz-dir fuzz -s none -a)
profile=release
if [ "$mode" = replay ]; then
  flags+=(--dev)   # compiles much faster; speed does not matter for one pass over the seeds
  profile=debug
fi
targets=$(cargo fuzz list --fuzz-dir fuzz)
printf '==> build (%s)\n' "$(echo $targets)"
cargo fuzz build "${flags[@]}"
# The binaries run directly: built once, so that edits made during a long run don't change what it tests.
bin_dir="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/$profile"

total_execs=0
total_crashes=0
printf '\n%-18s %14s %8s %8s\n' target executions crashes seconds
for target in $targets; do
  seeds="fuzz/corpus/$target"
  artifacts="fuzz/artifacts/$target"
  mkdir -p "$artifacts"
  # libFuzzer's findings: crash-*, timeout-*, oom-*, leak-* (slow-unit-* only reports a slow input).
  findings() { find "$artifacts" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l; }
  before=$(findings)
  log=$(mktemp)
  started=$(date +%s)
  if [ "$mode" = replay ]; then
    corpora=("$seeds")
    libfuzzer=(-runs=0)
  else
    work="$CARGO_TARGET_DIR/corpus/$target"
    mkdir -p "$work"
    corpora=("$work" "$seeds")
    libfuzzer=(-max_total_time="$seconds")
  fi
  status=0
  "$bin_dir/$target" "${libfuzzer[@]}" -timeout=30 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "${corpora[@]}" >"$log" 2>&1 || status=$?
  elapsed=$(( $(date +%s) - started ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  crashes=$(( $(findings) - before ))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes=1   # it stopped on a failure that left no artifact (e.g. a build or setup error)
  fi
  printf '%-18s %14s %8s %8s\n' "$target" "${execs:-?}" "$crashes" "$elapsed"
  if [ "$crashes" -gt 0 ]; then
    grep -E 'panicked at|^thread|ERROR: libFuzzer|Test unit written|^Error' "$log" | head -n 20 | sed 's/^/    /' >&2
  fi
  total_execs=$(( total_execs + ${execs:-0} ))
  total_crashes=$(( total_crashes + crashes ))
  rm -f "$log"
done
printf '%-18s %14s %8s\n' total "$total_execs" "$total_crashes"
[ "$total_crashes" -eq 0 ]
