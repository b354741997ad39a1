#!/usr/bin/env bash
# THE demo command: sets up what is missing, builds the package, runs the demo (Ctrl-C to stop).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build-pkg.sh
exec node scripts/demo.mjs "$@"
