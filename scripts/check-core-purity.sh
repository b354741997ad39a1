#!/usr/bin/env bash
# The core is sans-IO (shared/DESIGN.md §1): no wasm/JS bindings, no clock, no OS randomness outside the
# binding module src/wasm.rs. Fails, listing the offending lines, when any other src/ module mentions them.
set -euo pipefail
cd "$(dirname "$0")/.."

pattern='\bwasm_bindgen\b|js_sys|web_sys|SystemTime::now|Instant::now|getrandom'
if hits=$(grep -rnE --include='*.rs' "$pattern" src | grep -v '^src/wasm\.rs:'); then
  echo "core purity: only src/wasm.rs may use bindings, the clock or OS randomness:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "core purity: ok ($(find src -name '*.rs' ! -path src/wasm.rs | wc -l) core modules checked)"
