#!/usr/bin/env bash
# The gateway against nginx and haproxy, with ../shared/bench/proxy.sh: same upstream, same
# machine, same run. plexhub is measured through its streaming proxy route
# (GET /api/v1/proxy/crm.contacts/contacts) with authentication, the caller's dependency and
# grant checks and endpoint matching on: the admin token acts for tenant "bench" and names
# plugin-analytics as the caller (a plugin credential is random per install, and the harness
# fixes its headers before setup).
# Settings: everything ../shared/bench/proxy.sh reads (CONNS, DURATION, REPEATS, TARGETS…);
# SHARED_BENCH (default ../shared/bench); SIGN (true: every forwarded request carries an
# Ed25519 X-Plexhub-Signature, as in production; false to measure the gateway without it).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
[ -x "$SHARED_BENCH/proxy.sh" ] || { echo "no harness at $SHARED_BENCH/proxy.sh" >&2; exit 1; }
cargo build --release -p plexhub --manifest-path "$REPO/Cargo.toml" >&2

export ADMIN_TOKEN=bench-admin-token-0123456789
export REPO
DATA_DIR=$(mktemp -d /tmp/plexhub-gateway-bench.XXXXXX)
trap 'rm -rf "$DATA_DIR"' EXIT

SIGN=${SIGN:-true}
export CANDIDATE="PLEXHUB_ADMIN_TOKEN=$ADMIN_TOKEN exec $REPO/target/release/plexhub --worker-threads \$BENCH_WORKERS serve \
  --listen 127.0.0.1:{PORT} --data-dir $DATA_DIR --log-level warn --sign-requests $SIGN"
export CANDIDATE_READY_PATH=/healthz
export CANDIDATE_SETUP='
  set -e
  hub=http://127.0.0.1:$CANDIDATE_PORT
  admin() { curl -fsS -H "authorization: Bearer $ADMIN_TOKEN" -H "content-type: application/json" "$@"; }
  admin -X POST $hub/api/v1/tenants -d "{\"slug\":\"bench\"}"
  admin -X POST $hub/api/v1/plugins --data-binary @$REPO/examples/manifests/crm.json
  admin -X POST $hub/api/v1/plugins --data-binary @$REPO/examples/manifests/analytics.json
  admin -X POST $hub/api/v1/tenants/bench/installations \
    -d "{\"pluginId\":\"plugin-crm\",\"baseUrl\":\"http://$UPSTREAM_ADDR\",\"activate\":true}"
  admin -X POST $hub/api/v1/tenants/bench/installations \
    -d "{\"pluginId\":\"plugin-analytics\",\"baseUrl\":\"http://127.0.0.1:9\",\"activate\":true,\"grants\":[\"plugin.crm.contacts.read\"]}"
'
export CANDIDATE_PATH=/api/v1/proxy/crm.contacts/contacts
export CANDIDATE_HEADERS="Authorization: Bearer $ADMIN_TOKEN|X-Tenant-Slug: bench|X-Caller-Plugin-ID: plugin-analytics"
export REQ_PATH=/contacts
exec "$SHARED_BENCH/proxy.sh"
