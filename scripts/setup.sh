#!/usr/bin/env bash
# Installs what building and testing need; idempotent, and quick when everything is already there.
#   bash scripts/setup.sh            Rust wasm target, wasm-bindgen CLI (Cargo.lock's version), npm devDependencies
#   bash scripts/setup.sh --browser  the same, plus Chromium + chromedriver (apt) for the browser tests
#   bash scripts/setup.sh --postgres the same, plus Debian's PostgreSQL server (apt) for the PostgreSQL store tests
#   bash scripts/setup.sh --fuzz     the same, plus cargo-fuzz (scripts/fuzz.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

browser=no
postgres=no
fuzz=no
for arg in "$@"; do
  case "$arg" in
    --browser) browser=yes ;;
    --postgres) postgres=yes ;;
    --fuzz) fuzz=yes ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'setup: %s\n' "$*"; }

if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "skip  rust target wasm32-unknown-unknown (installed)"
else
  say "add   rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

want=$(wasm_bindgen_lock_version)
have=$(wasm_bindgen_cli_version)
if [ "$have" = "$want" ]; then
  say "skip  wasm-bindgen-cli $want (installed)"
else
  say "install wasm-bindgen-cli $want (found: ${have:-none}; takes ~3.5 min)"
  # No --locked: the registry mirror lacks a version its lockfile pins (see shared/packaging.md, pitfall 3).
  cargo install wasm-bindgen-cli --version "$want"
fi

# npm ci wipes node_modules; skip it when npm's own record of the install is newer than the lockfile.
if [ -f package-lock.json ]; then
  if [ node_modules/.package-lock.json -nt package-lock.json ] && [ node_modules/.package-lock.json -nt package.json ]; then
    say "skip  npm ci (node_modules matches package-lock.json)"
  else
    say "run   npm ci"
    npm ci --no-audit --no-fund
  fi
else
  say "run   npm install (no package-lock.json yet)"
  npm install --no-audit --no-fund
fi

apt_updated=no
apt_install() {
  [ "$apt_updated" = yes ] || { apt-get update; apt_updated=yes; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

if [ "$browser" = yes ]; then
  if [ -x /usr/bin/chromium ]; then
    say "skip  chromium (/usr/bin/chromium present)"
  else
    say "install chromium + chromium-driver (apt)"
    apt_install chromium chromium-driver
  fi
else
  say "skip  chromium (no --browser)"
fi

if [ "$postgres" = yes ]; then
  if compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; then
    say "skip  postgresql ($(ls -d /usr/lib/postgresql/*/bin/pg_ctl | head -n 1) present)"
  else
    say "install postgresql (apt; scripts/postgres.sh runs throwaway servers from it)"
    apt_install postgresql
  fi
else
  say "skip  postgresql (no --postgres)"
fi

if [ "$fuzz" = yes ]; then
  if cargo fuzz --version >/dev/null 2>&1; then
    say "skip  cargo-fuzz ($(cargo fuzz --version) installed)"
  else
    say "install cargo-fuzz (takes ~1.5 min)"
    cargo install cargo-fuzz --version 0.13.2 --locked
  fi
else
  say "skip  cargo-fuzz (no --fuzz)"
fi
