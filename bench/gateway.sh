#!/usr/bin/env bash
# The gateway against nginx, haproxy and a bare hyper proxy, all in ONE run of bench/compare.sh
# (same upstream, same pinning, interleaved), so every ratio the targets name comes from one run:
#   proxy        GET  /api/v1/proxy/crm.contacts/contacts with a real plugin credential
#                (authentication, access decision, quota, signature, audit: all on)
#   call         POST /api/plugin-gateway/call {GET /contacts}, same credential
#   bare         crates/plexhub-server/examples/bare_proxy.rs: hyper server + pooled client only
#   proxy-ed25519, proxy-pg, nginx-log   with EXTRA=1: Ed25519 signatures; audit (and everything
#                else) on PostgreSQL + Redis; nginx with a buffered access log
#   proxy_b, call_b   with HUB_BIN_B set: the proxy and call rows of a second hub binary (a
#                before/after pair, or a PGO build beside the plain one), in the same run
#   bare_b       with BARE_BIN_B set: a second bare proxy binary, likewise
# Settings: everything bench/compare.sh reads (CONNS, DURATION, REPEATS, TARGETS…); SCHEME
# (hmac, the default, or ed25519) for the proxy and call rows; HUB_BIN (default: the release
# build of this checkout, built first with the bare proxy; set, nothing is built); BARE_BIN
# (default: that build's bare proxy); HUB_FLAGS (extra `serve` flags); EXTRA=1;
# PG_URL/REDIS_URL for proxy-pg (default the local test servers).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${HUB_BIN:-}" ]; then
  cargo build --release -p plexhub --bin plexhub -p plexhub-server --example bare_proxy \
    --manifest-path "$REPO/Cargo.toml" >&2
fi
export HUB_BIN=${HUB_BIN:-$REPO/target/release/plexhub}
export ADMIN_TOKEN=bench-admin-token-0123456789 REPO
SCHEME=${SCHEME:-hmac}
HUB_FLAGS=${HUB_FLAGS:-"--signing-scheme $SCHEME"}
DATA_DIR=$(mktemp -d /tmp/plexhub-gateway-bench.XXXXXX)
trap 'rm -rf "$DATA_DIR"' EXIT

# hub NAME [flags…]: a hub on its own data dir, one event loop per server CPU; the replica
# registered at setup stays HEALTHY without heartbeats for the whole run.
hub() {
  local name=$1; shift
  mkdir -p "$DATA_DIR/$name"
  echo "PLEXHUB_ADMIN_TOKEN=$ADMIN_TOKEN exec $HUB_BIN --worker-threads \$BENCH_WORKERS serve \
    --listen 127.0.0.1:{PORT} --data-dir $DATA_DIR/$name --log-level warn --stale-after 86400 $*"
}

# A tenant with CRM (at the upstream) and Analytics (granted the read permission) installed;
# prints Analytics' credential as a header for bench/compare.sh.
SETUP='
  set -e
  hub=http://127.0.0.1:$CANDIDATE_PORT
  admin() { curl -fsS -H "authorization: Bearer $ADMIN_TOKEN" -H "content-type: application/json" "$@"; }
  admin -X POST $hub/api/v1/tenants -d "{\"slug\":\"bench\"}" >/dev/null
  admin -X POST $hub/api/v1/plugins --data-binary @$REPO/examples/manifests/crm.json >/dev/null
  admin -X POST $hub/api/v1/plugins --data-binary @$REPO/examples/manifests/analytics.json >/dev/null
  admin -X POST $hub/api/v1/tenants/bench/installations \
    -d "{\"pluginId\":\"plugin-crm\",\"baseUrl\":\"http://$UPSTREAM_ADDR\",\"activate\":true}" >/dev/null
  token=$(admin -X POST $hub/api/v1/tenants/bench/installations \
    -d "{\"pluginId\":\"plugin-analytics\",\"baseUrl\":\"http://127.0.0.1:9\",\"activate\":true,\"grants\":[\"plugin.crm.contacts.read\"]}" |
    python3 -c "import json,sys; print(json.load(sys.stdin)[\"credential\"][\"token\"])")
  echo "header: Authorization: Bearer $token"
'
PROXY_PATH=/api/v1/proxy/crm.contacts/contacts
CALL_PATH=/api/plugin-gateway/call
CALL_BODY='{"targetPluginId":"plugin-crm","targetServiceName":"crm.contacts","method":"GET","path":"/contacts"}'
# hub_row NAME BIN PATH BODY FLAGS…: a row NAME of hub BIN (set up as above) asked PATH,
# POSTing BODY when not empty.
hub_row() {
  local name=$1 bin=$2 path=$3 body=$4 var=CANDIDATE_$1; shift 4
  printf -v "$var" '%s' "$(HUB_BIN=$bin hub "$name" "$@")"
  export "${var?}" "${var}_SETUP=$SETUP" "${var}_READY_PATH=/healthz" "${var}_PATH=$path"
  [ -z "$body" ] || export "${var}_BODY=$body"
}
# bare_row NAME BIN: a row NAME of bare proxy BIN.
bare_row() {
  export "CANDIDATE_$1=BARE_PROXY_THREADS=\$BENCH_WORKERS exec $2 127.0.0.1:{PORT} {UPSTREAM}"
  export "CANDIDATE_$1_PATH=/contacts"
}
export CANDIDATES="proxy call bare"
hub_row proxy "$HUB_BIN" $PROXY_PATH "" "$HUB_FLAGS"
hub_row call "$HUB_BIN" $CALL_PATH "$CALL_BODY" "$HUB_FLAGS"
if [ -n "${HUB_BIN_B:-}" ]; then
  CANDIDATES="$CANDIDATES proxy_b call_b"
  hub_row proxy_b "$HUB_BIN_B" $PROXY_PATH "" "$HUB_FLAGS"
  hub_row call_b "$HUB_BIN_B" $CALL_PATH "$CALL_BODY" "$HUB_FLAGS"
fi
bare_row bare "${BARE_BIN:-$REPO/target/release/examples/bare_proxy}"
if [ -n "${BARE_BIN_B:-}" ]; then
  CANDIDATES="$CANDIDATES bare_b"
  bare_row bare_b "$BARE_BIN_B"
fi
if [ "${EXTRA:-0}" = 1 ]; then
  PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
  REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
  PG_DB=plexhub_bench_$$
  psql "$PG_URL" -qc "CREATE DATABASE $PG_DB" >&2
  trap 'rm -rf "$DATA_DIR"; psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >&2' EXIT
  CANDIDATES="$CANDIDATES proxy_ed25519 proxy_pg"
  export WITH_NGINX_LOG=1
  hub_row proxy_ed25519 "$HUB_BIN" $PROXY_PATH "" --signing-scheme ed25519
  hub_row proxy_pg "$HUB_BIN" $PROXY_PATH "" "$HUB_FLAGS" --database-url "${PG_URL%/*}/$PG_DB" --redis-url "$REDIS_URL"
fi
export REQ_PATH=/contacts RATIO_TO=${RATIO_TO:-bare}
"$REPO/bench/compare.sh"
