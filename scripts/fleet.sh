#!/usr/bin/env bash
# The fleet test (issue 20) at full size: 4 backend processes sharing one PostgreSQL drive 2,000 locations of the
# Apps and Books simulator; one is SIGKILLed. Prints a table of accounts, requests, CPU and peak RSS per instance and
# the checks (tests/load/fleet.mjs; tests/node/fleet.test.mjs runs the CI size, 3 instances and 200 locations).
#   bash scripts/fleet.sh                      4 instances, 2,000 locations (10–15 min on 2 shared cores)
#   bash scripts/fleet.sh --locations 10000    the benchmark size (hours at present: see BENCHMARKS.md)
# Other options: --instances N, --devices N (per location), --delta-sync-ms N (default max(5 s, 15 ms × locations)),
# --ttl-ms N (lease ttl, default 30000 as in production), --syncs N, --syncs-after N (delta syncs watched before / after the kill),
# --seed N, --verify-store. Uses the PostgreSQL server of VPP_PG_URL, or starts one of its own (scripts/postgres.sh)
# and stops it again. Needs pkg/ built (scripts/build-pkg.sh). Exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f pkg/vpp_license_engine_bg.wasm ] || { echo "fleet: pkg/ is not built: run bash scripts/build-pkg.sh" >&2; exit 2; }
if [ -z "${VPP_PG_URL:-}" ]; then
  pg_env=$(bash scripts/postgres.sh start)
  eval "$pg_env"
  export VPP_PG_URL
  trap 'bash scripts/postgres.sh stop "$VPP_PG_DIR"' EXIT
fi
node tests/load/fleet.mjs "$@"
