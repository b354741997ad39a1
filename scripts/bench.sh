#!/usr/bin/env bash
# The benchmarks of issue 7: builds a private copy of the npm package and the native bench binary, runs
# every benchmark natively (Rust, release) and through the wasm package in Node in the same run, prints
# one table and writes it into BENCHMARKS.md and the README.
#   bash scripts/bench.sh          full sizes (1,000,000 assignments; a few minutes)
#   bash scripts/bench.sh --quick  CI sizes (10,000 assignments): prints the table, writes nothing
# With VPP_PG_URL set (scripts/postgres.sh start), the restart row is measured from PostgreSQL too.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

quick=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=(--quick) ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

bash scripts/setup.sh >/dev/null
# What is measured is the work tree as it is now (the report is written minutes later).
BENCH_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
BENCH_DIRTY=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
export BENCH_COMMIT BENCH_DIRTY
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

printf '==> build: wasm package (private copy) and native bench\n'
PKG_OUT="$WORK/pkg" bash scripts/build-pkg.sh
cargo bench --locked --bench engine --no-run

printf '==> native\n'
cargo bench --locked --bench engine -- "${quick[@]}" --out "$WORK/native.json"
printf '==> wasm in Node\n'
node_run() { node --max-old-space-size=8192 scripts/bench/wasm.mjs --pkg "$WORK/pkg" "${quick[@]}" "$@"; }
node_run --part memory --out "$WORK/wasm-memory.json"   # its own process: linear memory only grows
node_run --part main --out "$WORK/wasm.json"
node_run --part fleet --out "$WORK/wasm-fleet.json"   # its own process: memory per idle account
printf '==> restart from the stores (each read in its own process)\n'
restore_run() { node --max-old-space-size=8192 scripts/bench/restore.mjs --pkg "$WORK/pkg" "${quick[@]}" "$@"; }
pg=()
if [ -n "${VPP_PG_URL:-}" ]; then pg=(--postgres "$VPP_PG_URL"); fi
restore_run --write "$WORK" "${pg[@]}" --out "$WORK/restore-write.json"
restore_run --read "sqlite:$WORK/restore.sqlite" --out "$WORK/restore-read-sqlite.json"
if [ -n "${VPP_PG_URL:-}" ]; then restore_run --read "postgres:$VPP_PG_URL" --out "$WORK/restore-read-postgres.json"; fi
restore_run --adopt-write "$WORK" --out "$WORK/adopt-write.json"
restore_run --adopt-read "$WORK" --how restore --out "$WORK/adopt-restore.json"
restore_run --adopt-read "$WORK" --how adopt --out "$WORK/adopt-adopt.json"

printf '==> end-to-end first sync through the simulator over HTTP (its own process; over a minute at full size)\n'
node scripts/bench/first-sync.mjs --pkg "$WORK/pkg" "${quick[@]}" --out "$WORK/first-sync.json"

write=(--write); [ ${#quick[@]} -eq 0 ] || write=()
RUSTC_VERSION=$(rustc --version) node scripts/bench/report.mjs --dir "$WORK" --pkg "$WORK/pkg" \
  --cargo-wasm "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/vpp_license_engine.wasm" "${quick[@]}" "${write[@]}"
