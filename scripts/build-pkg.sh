#!/usr/bin/env bash
# Builds the npm package in pkg/ (shared/packaging.md §3): one wasm shared by the web glue (browsers, bundlers)
# and the nodejs glue (CJS, also behind the hand-written ESM wrapper), plus a copy of host-shim/.
# pkg/package.json and the vpp_license_engine.node.* wrappers are hand-written and committed: only the
# generated files are replaced. Env: PROFILE (release|dev), WASM_OPT (auto|off|<path to wasm-opt>),
# PKG_OUT (default pkg: another directory gets a private copy, seeded with pkg/'s hand-written files).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

CRATE=vpp_license_engine
OUT=${PKG_OUT:-pkg}
PROFILE=${PROFILE:-release}
WASM_OPT=${WASM_OPT:-auto}   # auto = npm binaryen's node_modules/.bin/wasm-opt if present; never Debian's binaryen
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
if [ "$OUT" != pkg ]; then
  mkdir -p "$OUT"
  cp pkg/package.json pkg/$CRATE.node.mjs pkg/$CRATE.node.d.mts "$OUT/"
fi

crate_version=$(awk -F'"' '/^version *=/ { print $2; exit }' Cargo.toml)
OUT_PATH=$(cd "$OUT" && pwd)
pkg_version=$(node -p "require('$OUT_PATH/package.json').version")
[ "$crate_version" = "$pkg_version" ] || {
  echo "version mismatch: Cargo.toml has $crate_version, $OUT/package.json has $pkg_version (edit both)" >&2; exit 1; }

lock_v=$(wasm_bindgen_lock_version)
cli_v=$(wasm_bindgen_cli_version)
[ "$lock_v" = "$cli_v" ] || {
  echo "wasm-bindgen CLI ${cli_v:-not installed} != Cargo.lock $lock_v (run scripts/setup.sh)" >&2; exit 1; }

cargo build --locked --target wasm32-unknown-unknown --profile "$PROFILE"
dir=$PROFILE; [ "$PROFILE" = dev ] && dir=debug
WASM=${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/$dir/$CRATE.wasm
wasm-bindgen --target web    --out-dir "$TMP/web"  "$WASM"
wasm-bindgen --target nodejs --out-dir "$TMP/node" "$WASM"
cmp "$TMP/web/${CRATE}_bg.wasm" "$TMP/node/${CRATE}_bg.wasm"   # identical, so the package ships it once

if [ "$WASM_OPT" = auto ]; then
  if [ -x node_modules/.bin/wasm-opt ]; then WASM_OPT=node_modules/.bin/wasm-opt; else WASM_OPT=off; fi
fi
if [ "$WASM_OPT" = off ]; then
  cp "$TMP/web/${CRATE}_bg.wasm" "$OUT/${CRATE}_bg.wasm"
else
  # -Oz: -O3 / -O4 measured no faster for 8-9 KB more (BENCHMARKS.md, "Wasm size against speed").
  "$WASM_OPT" -Oz "$TMP/web/${CRATE}_bg.wasm" -o "$OUT/${CRATE}_bg.wasm"
fi
cp "$TMP/web/$CRATE.js" "$TMP/web/$CRATE.d.ts" "$OUT/"
sed 's#@ts-self-types="./'"$CRATE"'.d.ts"#@ts-self-types="./'"$CRATE"'.d.cts"#' "$TMP/node/$CRATE.js" > "$OUT/$CRATE.cjs"
cp "$TMP/node/$CRATE.d.ts" "$OUT/$CRATE.d.cts"

# The host shim ships as written (ESM + hand-written .d.ts, no build step); tests and the demo console
# (host-shim/console/, served by scripts/demo.mjs) stay out of the package.
rm -rf "$OUT/host-shim"
(cd host-shim && find . -type f \( -name '*.js' -o -name '*.d.ts' \) ! -name '*.test.*' ! -path './console/*' -print0) |
  while IFS= read -r -d '' f; do install -D -m 644 "host-shim/$f" "$OUT/host-shim/$f"; done
chmod +x "$OUT/host-shim/cli.js"

# Smoke load: catches a broken optimizer output (shared/packaging.md §2) and a broken ESM wrapper.
node -e "const m = require('$OUT_PATH/$CRATE.cjs'); if (typeof m.Engine !== 'function') { console.error('smoke: no Engine export'); process.exit(1); }"
node --input-type=module -e "import * as m from '$OUT_PATH/$CRATE.node.mjs'; import { Driver } from '$OUT_PATH/host-shim/index.js';
if (typeof m.Engine !== 'function' || typeof m.default !== 'function' || typeof Driver !== 'function') { console.error('smoke: ESM entry incomplete'); process.exit(1); }"
echo "build-pkg: $OUT/ ($PROFILE, wasm-opt: $WASM_OPT) $(wc -c < "$OUT/${CRATE}_bg.wasm") bytes wasm"
