# Sourced by the scripts in scripts/. Installs what the project needs and is missing, and
# exports the paths worker-build uses instead of downloading tools from github.com:
#   - the wasm32-unknown-unknown Rust target;
#   - worker-build 0.8.7 and wasm-bindgen-cli matching the locked wasm-bindgen, installed once
#     with `cargo install --root "$ONECODE_TOOLS"` (10-20 minutes each on two cores; skipped when
#     the right version is there);
#   - the npm packages of package-lock.json (wrangler, esbuild, binaryen's wasm-opt, payloads,
#     playwright-core);
#   - Debian's `chromium` (ensure_chromium: the console's browser tests, its screenshot and
#     benchmark), with apt-get, as root or through sudo. playwright-core never downloads one.
# ONECODE_TOOLS defaults to ~/.cache/onecode-edge/tools.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ONECODE_TOOLS="${ONECODE_TOOLS:-$HOME/.cache/onecode-edge/tools}"
WORKER_BUILD_VERSION="0.8.7"
# The wasm-bindgen version Cargo.lock pins; the CLI must match it exactly.
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock")"

# Offline-friendly wrangler.
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

installed_version() { # tool binary → its version (last word of `--version`), or nothing
  [ -x "$ONECODE_TOOLS/bin/$1" ] && "$ONECODE_TOOLS/bin/$1" --version 2>/dev/null | awk '{ print $NF }' || true
}

ensure_tools() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if [ "$(installed_version worker-build)" != "$WORKER_BUILD_VERSION" ]; then
    log "installing worker-build $WORKER_BUILD_VERSION into $ONECODE_TOOLS (one-time, slow)"
    cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --root "$ONECODE_TOOLS"
  fi
  if [ "$(installed_version wasm-bindgen)" != "$WASM_BINDGEN_VERSION" ]; then
    # Without --locked: the registry here lacks one of its locked dependencies.
    log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION into $ONECODE_TOOLS (one-time, slow)"
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --root "$ONECODE_TOOLS" --force
  fi
  if [ ! -x "$ROOT/node_modules/.bin/wrangler" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
    log "installing npm packages (npm ci)"
    (cd "$ROOT" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
  export WASM_BINDGEN_BIN="$ONECODE_TOOLS/bin/wasm-bindgen"
  export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
  export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
  export WORKER_BUILD_BIN="$ONECODE_TOOLS/bin/worker-build"
}

ensure_chromium() {
  [ -x /usr/bin/chromium ] && return
  log "installing Debian's chromium (headless browser for the console tests)"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { log "chromium is missing: apt-get install chromium as root"; return 1; }
    sudo="sudo"
  fi
  $sudo apt-get install -y chromium || { $sudo apt-get update && $sudo apt-get install -y chromium; }
}

# A throwaway local configuration: .dev.vars from the example (dev key, dev secrets) if missing;
# settings the example gained since are added (existing values are kept).
ensure_dev_vars() {
  if [ ! -f "$ROOT/.dev.vars" ]; then
    log "creating .dev.vars from .dev.vars.example (throwaway local secrets)"
    cp "$ROOT/.dev.vars.example" "$ROOT/.dev.vars"
    return
  fi
  local line name
  while IFS= read -r line; do
    case "$line" in [A-Z_]*=*) ;; *) continue ;; esac
    name="${line%%=*}"
    if ! grep -q "^$name=" "$ROOT/.dev.vars"; then
      log "adding $name to .dev.vars from .dev.vars.example"
      printf '%s\n' "$line" >> "$ROOT/.dev.vars"
    fi
  done < "$ROOT/.dev.vars.example"
}
