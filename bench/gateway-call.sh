#!/usr/bin/env bash
# The seed's POST /api/plugin-gateway/call and the proxy route with a real plugin credential,
# against nginx (proxy_pass with keepalive) on the same upstream, in one run. (bench/gateway.sh
# runs the shared harness, which only issues GETs with fixed headers.)
#   direct        GET  upstream /contacts
#   nginx         GET  nginx -> upstream /contacts
#   proxy         GET  /api/v1/proxy/crm.contacts/contacts       (plugin credential)
#   call          POST /api/plugin-gateway/call {GET /contacts}  (plugin credential)
# Settings: CONNS (32), DURATION (10), REPEATS (3), SIGN (true).
. "$(dirname "$0")/common.sh"
command -v nginx >/dev/null || { echo "nginx is required (apt-get install nginx)" >&2; exit 1; }
SIGN=${SIGN:-true}

UPSTREAM_BIN=${CARGO_TARGET_DIR:-/tmp/bench-target}/release/bench-upstream
if [ ! -x "$UPSTREAM_BIN" ]; then
  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/bench-target} cargo build --release \
    --manifest-path ../shared/bench/upstream/Cargo.toml >&2
fi
UP_PORT=$(free_port)
"${PIN_HUB[@]}" "$UPSTREAM_BIN" "127.0.0.1:$UP_PORT" >"$WORK/upstream.log" 2>&1 &
HUB_PIDS+=($!)
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream plugin { server 127.0.0.1:$UP_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { proxy_pass http://plugin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
"${PIN_HUB[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
HUB_PIDS+=($!)
start_hub gateway --worker-threads 1 --sign-requests "$SIGN"
admin -X POST "$HUB_URL/api/v1/tenants" -d '{"slug":"bench"}' >/dev/null
admin -X POST "$HUB_URL/api/v1/plugins" --data-binary @examples/manifests/crm.json >/dev/null
admin -X POST "$HUB_URL/api/v1/plugins" --data-binary @examples/manifests/analytics.json >/dev/null
admin -X POST "$HUB_URL/api/v1/tenants/bench/installations" \
  -d "{\"pluginId\":\"plugin-crm\",\"baseUrl\":\"http://127.0.0.1:$UP_PORT\",\"activate\":true}" >/dev/null
TOKEN=$(admin -X POST "$HUB_URL/api/v1/tenants/bench/installations" \
  -d '{"pluginId":"plugin-analytics","baseUrl":"http://127.0.0.1:9","activate":true,"grants":["plugin.crm.contacts.read"]}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"]["token"])')
AUTH="authorization: Bearer $TOKEN"
PROXY="$HUB_URL/api/v1/proxy/crm.contacts/contacts"
export WRK_BODY='{"targetPluginId":"plugin-crm","targetServiceName":"crm.contacts","method":"GET","path":"/contacts"}'
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$NGINX_PORT/contacts" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -H "$AUTH" "$PROXY" | grep -q '"ok":true'
curl -fsS -H "$AUTH" -H 'content-type: application/json' -d "$WRK_BODY" "$HUB_URL/api/plugin-gateway/call" | grep -q '"ok":true'

DURATION=2 measure warmup "$PROXY" -H "$AUTH"; : >"$RESULTS"
for _ in $(seq 1 "$REPEATS"); do
  measure direct "http://127.0.0.1:$UP_PORT/contacts"
  measure nginx "http://127.0.0.1:$NGINX_PORT/contacts"
  measure proxy "$PROXY" -H "$AUTH"
  measure call "$HUB_URL/api/plugin-gateway/call" -H "$AUTH" -s ../shared/bench/wrk/post-json.lua
done
report nginx
