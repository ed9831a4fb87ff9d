#!/usr/bin/env bash
# Discovery throughput against the same hub's /healthz, in one run. Target: >= 0.8x.
#   GET /healthz                                              (the HTTP stack alone)
#   GET /api/plugin-gateway/services/discover/crm.contacts    (auth + tenant + registry + JSON)
# Settings: CONNS (32), DURATION seconds (10), REPEATS (3), THREADS of wrk (1).
. "$(dirname "$0")/common.sh"

start_hub sqlite
PLUGIN_TOKEN=$(install_crm "$HUB_URL")
DISCOVER="$HUB_URL/api/plugin-gateway/services/discover/crm.contacts"
AUTH="authorization: Bearer $PLUGIN_TOKEN"
curl -fsS -H "$AUTH" "$DISCOVER" | grep -q '"status":"HEALTHY"'

DURATION=2 measure warmup "$HUB_URL/healthz"; DURATION=2 measure warmup "$DISCOVER" -H "$AUTH"; : >"$RESULTS"
for _ in $(seq 1 "$REPEATS"); do
  measure healthz "$HUB_URL/healthz"
  measure discover "$DISCOVER" -H "$AUTH"
done
report healthz
