#!/usr/bin/env bash
# THE test command. Installs what is missing, then runs every suite; a failing suite does not hide the
# results of the others (except that the JS tests need a fresh pkg/). Exits non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh   # PATH: cargo installs wasm-bindgen-test-runner into ~/.cargo/bin

failed=()
step() {
  local name=$1; shift
  printf '\n==> %s\n' "$name"
  "$@" || failed+=("$name")
}

printf '==> setup\n'
bash scripts/setup.sh --browser --postgres

step "Rust tests (native)" cargo test --locked --no-fail-fast
# The deterministic simulation at CI size (the native step above runs a few seeds); prints its summary line.
step "simulation (500 seeds × 2,000 steps)" env SIM_SEEDS=500 SIM_STEPS=2000 \
  cargo test --locked --release --test simulation -- --nocapture
step "core purity" bash scripts/check-core-purity.sh
step "Rust tests (wasm32 under Node)" env CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --locked --no-fail-fast --target wasm32-unknown-unknown --tests
# One pass of every fuzz target over its committed seeds (installs cargo-fuzz once, ~1.5 min; longer runs: fuzz.sh N).
step "fuzz (short)" bash scripts/fuzz.sh --replay
# `step` records a failure and carries on, so whether pkg/ built is read from the failures it recorded.
failures_before_pkg=${#failed[@]}
step "build pkg/" bash scripts/build-pkg.sh
if [ ${#failed[@]} -eq "$failures_before_pkg" ]; then
  # A throwaway PostgreSQL on loopback for the PostgreSQL store tests (VPP_PG_URL), stopped on exit.
  printf '\n==> PostgreSQL for the store tests\n'
  if pg_env=$(bash scripts/postgres.sh start); then
    eval "$pg_env"
    export VPP_PG_URL
    trap 'bash scripts/postgres.sh stop "$VPP_PG_DIR"' EXIT
  else
    failed+=("PostgreSQL server (scripts/postgres.sh start; the PostgreSQL store tests fail or skip without it)")
  fi
  step "JS tests (node --test)" node --test tests/node/ tests/browser/
  step "the README's demo command" bash scripts/demo.sh --check
else
  failed+=("JS tests (not run: pkg/ did not build)")
fi
step "benchmarks at CI sizes (they run and print the table; no timing assertions)" bash scripts/bench.sh --quick

if [ ${#failed[@]} -gt 0 ]; then
  printf '\nFAILED:\n'; printf '  %s\n' "${failed[@]}"
  exit 1
fi
printf '\nall suites passed\n'
