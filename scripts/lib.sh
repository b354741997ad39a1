# Helpers shared by the scripts in this folder (sourced, not run).

# cargo install puts wasm-bindgen here; a fresh shell may not have it on PATH yet.
case ":$PATH:" in *":${CARGO_HOME:-$HOME/.cargo}/bin:"*) ;; *) PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH" ;; esac
export PATH

# The wasm-bindgen version Cargo.lock resolved: the CLI must be exactly this version (schema check).
wasm_bindgen_lock_version() {
  [ -f Cargo.lock ] || { echo "Cargo.lock is missing: run 'cargo generate-lockfile' and commit it" >&2; return 1; }
  local v
  v=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
  [ -n "$v" ] || { echo "Cargo.lock has no wasm-bindgen package" >&2; return 1; }
  echo "$v"
}

# The installed wasm-bindgen CLI version, or nothing when it is not installed.
wasm_bindgen_cli_version() {
  command -v wasm-bindgen >/dev/null 2>&1 && wasm-bindgen --version | awk '{ print $2 }'
  return 0
}
