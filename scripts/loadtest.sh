#!/usr/bin/env bash
# The production-shaped load test (issue 13): a school district's morning against the Apps and Books simulator over
# HTTP, through the package's Driver, a SQLite store and the Node notification endpoint, with faults on.
#   bash scripts/loadtest.sh            full size: 3 locations, 15,000 devices, 3,000 enrollments over 2 minutes (~5 min)
#   bash scripts/loadtest.sh --small    CI size: 2 locations, 1,500 devices, 300 enrollments over 20 s (~1 min)
# Other options: --seed N, --coalesce-ms N, --no-faults. Exits non-zero when a check fails. Needs pkg/ built
# (scripts/build-pkg.sh) and npm's better-sqlite3 (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f pkg/vpp_license_engine_bg.wasm ] || { echo "loadtest: pkg/ is not built: run bash scripts/build-pkg.sh" >&2; exit 2; }
exec node tests/load/loadtest.mjs "$@"
