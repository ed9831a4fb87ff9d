#!/usr/bin/env bash
# Builds the hub (and the bare hyper proxy it is measured against) with profile-guided
# optimization (PGO) for the gateway's hot path:
#   1. an instrumented release build (-Cprofile-generate) of both;
#   2. a training run: that hub (SQLite, HMAC, audit on) before the shared harness's upstream,
#      wrk on the proxy route and on the seed /call route, 32 and 256 connections, then a
#      graceful stop, which writes the profile; the bare proxy likewise on its one route;
#   3. the profiles merged with llvm-profdata (its LLVM major version must be rustc's:
#      `rustc -vV`; Debian: apt-get install llvm-<major>);
#   4. the release build again with -Cprofile-use, into $PGO_TARGET_DIR/release/plexhub and
#      $PGO_TARGET_DIR/release/examples/bare_proxy (both paths printed).
# The code is the same; LLVM lays out and inlines it by what the training ran (hot paths
# together, cold paths out of the instruction cache). Measure the result with
# HUB_BIN=$PGO_TARGET_DIR/release/plexhub BARE_BIN=$PGO_TARGET_DIR/release/examples/bare_proxy
# bench/gateway.sh (HUB_BIN_B and BARE_BIN_B add the plain builds' rows to the same run).
# Settings: PGO_TARGET_DIR (/tmp/plexhub-pgo), LLVM_PROFDATA (llvm-profdata-<rustc's major>,
# else llvm-profdata), UPSTREAM_BIN (/tmp/bench-target/release/bench-upstream),
# TRAIN_SECONDS (8 per route and connection count). Needs wrk, curl, python3.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGO_TARGET_DIR=${PGO_TARGET_DIR:-/tmp/plexhub-pgo}
UPSTREAM_BIN=${UPSTREAM_BIN:-/tmp/bench-target/release/bench-upstream}
TRAIN_SECONDS=${TRAIN_SECONDS:-8}
llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
LLVM_PROFDATA=${LLVM_PROFDATA:-$(command -v "llvm-profdata-$llvm_major" || command -v llvm-profdata || true)}
[ -n "$LLVM_PROFDATA" ] || {
  echo "llvm-profdata not found: install LLVM $llvm_major (apt-get install llvm-$llvm_major)" >&2
  exit 1
}
[ -x "$UPSTREAM_BIN" ] || {
  echo "no upstream at $UPSTREAM_BIN: build ../shared/bench/upstream (see bench/callgrind.sh)" >&2
  exit 1
}
PROFILES=$PGO_TARGET_DIR/profiles
rm -rf "$PROFILES"; mkdir -p "$PROFILES"

echo "== 1/4 instrumented build" >&2
RUSTFLAGS="-Cprofile-generate=$PROFILES" CARGO_TARGET_DIR=$PGO_TARGET_DIR/generate \
  cargo build --release -p plexhub --bin plexhub -p plexhub-server --example bare_proxy \
  --manifest-path "$REPO/Cargo.toml" >&2

echo "== 2/4 training run" >&2
ADMIN_TOKEN=bench-admin-token-0123456789
DATA=$(mktemp -d /tmp/plexhub-pgo-data.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$DATA"' EXIT
"$UPSTREAM_BIN" 127.0.0.1:18151 >"$DATA/upstream.log" 2>&1 & pids+=($!)
# The hub's own profile only (the instrumented build scripts wrote theirs beside it).
LLVM_PROFILE_FILE="$PROFILES/training/hub-%p-%m.profraw" \
  PLEXHUB_ADMIN_TOKEN=$ADMIN_TOKEN "$PGO_TARGET_DIR/generate/release/plexhub" --worker-threads 1 \
  serve --listen 127.0.0.1:18152 --data-dir "$DATA/hub" --log-level warn --stale-after 86400 \
  >"$DATA/hub.log" 2>&1 &
hub_pid=$!; pids+=("$hub_pid")
hub=http://127.0.0.1:18152
for _ in $(seq 1 100); do curl -fs $hub/healthz >/dev/null && break; sleep 0.1; done
# shellcheck source=bench/gateway-tenant.sh
source "$REPO/bench/gateway-tenant.sh"
token=$(gateway_tenant "$hub" 127.0.0.1:18151)
cat >"$DATA/call.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"targetPluginId":"plugin-crm","targetServiceName":"crm.contacts","method":"GET","path":"/contacts"}'
EOF
for conns in 32 256; do
  wrk -t1 -c$conns -d"${TRAIN_SECONDS}s" -H "Authorization: Bearer $token" \
    $hub/api/v1/proxy/crm.contacts/contacts | grep -E "Requests/sec|Non-2xx|errors" >&2 || true
  wrk -t1 -c$conns -d"${TRAIN_SECONDS}s" -s "$DATA/call.lua" -H "Authorization: Bearer $token" \
    $hub/api/plugin-gateway/call | grep -E "Requests/sec|Non-2xx|errors" >&2 || true
done
# A graceful stop runs the process's exit, where the profile is written.
kill -TERM $hub_pid
wait $hub_pid || true
LLVM_PROFILE_FILE="$PROFILES/training/bare-%p-%m.profraw" \
  "$PGO_TARGET_DIR/generate/release/examples/bare_proxy" 127.0.0.1:18153 127.0.0.1:18151 \
  >"$DATA/bare.log" 2>&1 &
bare_pid=$!; pids+=("$bare_pid")
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:18153/contacts >/dev/null && break; sleep 0.1; done
for conns in 32 256; do
  wrk -t1 -c$conns -d"${TRAIN_SECONDS}s" http://127.0.0.1:18153/contacts |
    grep -E "Requests/sec|Non-2xx|errors" >&2 || true
done
kill -TERM $bare_pid
wait $bare_pid || true
ls "$PROFILES"/training/*.profraw >/dev/null || { echo "the training run wrote no profile" >&2; exit 1; }

echo "== 3/4 merge" >&2
"$LLVM_PROFDATA" merge -o "$PROFILES/merged.profdata" "$PROFILES"/training/*.profraw

echo "== 4/4 optimized build" >&2
# Cargo does not see a new profile behind the same flags: build everything anew.
rm -rf "$PGO_TARGET_DIR/release"
RUSTFLAGS="-Cprofile-use=$PROFILES/merged.profdata" CARGO_TARGET_DIR=$PGO_TARGET_DIR \
  cargo build --release -p plexhub --bin plexhub -p plexhub-server --example bare_proxy \
  --manifest-path "$REPO/Cargo.toml" >&2
echo "$PGO_TARGET_DIR/release/plexhub"
echo "$PGO_TARGET_DIR/release/examples/bare_proxy"
