# shellcheck shell=bash
# Sourced by the gateway benchmarks (bench/profile.sh, bench/callgrind.sh): the tenant they call
# through. Needs REPO and ADMIN_TOKEN.

# gateway_tenant HUB UPSTREAM: tenant "bench" with CRM installed at UPSTREAM (host:port) and
# Analytics granted CRM's read permission; prints Analytics' credential.
gateway_tenant() {
  local hub=$1 upstream=$2
  admin() { curl -fsS -H "authorization: Bearer $ADMIN_TOKEN" -H "content-type: application/json" "$@"; }
  admin -X POST "$hub/api/v1/tenants" -d '{"slug":"bench"}' >/dev/null
  admin -X POST "$hub/api/v1/plugins" --data-binary @"$REPO/examples/manifests/crm.json" >/dev/null
  admin -X POST "$hub/api/v1/plugins" --data-binary @"$REPO/examples/manifests/analytics.json" >/dev/null
  admin -X POST "$hub/api/v1/tenants/bench/installations" \
    -d "{\"pluginId\":\"plugin-crm\",\"baseUrl\":\"http://$upstream\",\"activate\":true}" >/dev/null
  admin -X POST "$hub/api/v1/tenants/bench/installations" \
    -d '{"pluginId":"plugin-analytics","baseUrl":"http://127.0.0.1:9","activate":true,"grants":["plugin.crm.contacts.read"]}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"]["token"])'
}
