#!/usr/bin/env bash
# Counts the hub's instructions per gateway request under callgrind: repeatable on a noisy
# machine, so every change to the hot path can be measured before and after. One hub (SQLite,
# HMAC, audit on, one worker) before the bench upstream; setup and warm-up run with
# instrumentation off; it is switched on only around a wrk run of SECONDS, and the total is
# divided by the requests wrk counted.
# Settings: ROUTE (proxy, the default, or call), HUB_BIN (default target/release/plexhub),
# UPSTREAM_BIN (the shared harness's upstream, built by its proxy.sh into /tmp/bench-target),
# CONNS (32), MEASURE_SECONDS (20), OUT (/tmp/plexhub-callgrind), HUB_FLAGS, TOP (25 functions shown).
# Needs valgrind, wrk, curl, python3.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HUB_BIN=${HUB_BIN:-$REPO/target/release/plexhub}
UPSTREAM_BIN=${UPSTREAM_BIN:-/tmp/bench-target/release/bench-upstream}
ROUTE=${ROUTE:-proxy}
CONNS=${CONNS:-32}
MEASURE_SECONDS=${MEASURE_SECONDS:-20}
OUT=${OUT:-/tmp/plexhub-callgrind}
ADMIN_TOKEN=bench-admin-token-0123456789
rm -rf "$OUT"; mkdir -p "$OUT/data"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait' EXIT
"$UPSTREAM_BIN" 127.0.0.1:18191 >"$OUT/upstream.log" 2>&1 & pids+=($!)
PLEXHUB_ADMIN_TOKEN=$ADMIN_TOKEN valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$OUT/callgrind.out" "$HUB_BIN" --worker-threads 1 serve \
  --listen 127.0.0.1:18192 --data-dir "$OUT/data" --log-level warn --stale-after 86400 \
  ${HUB_FLAGS:-} >"$OUT/hub.log" 2>&1 & pids+=($!)
hub_pid=${pids[1]}
hub=http://127.0.0.1:18192
for _ in $(seq 1 600); do curl -fs $hub/healthz >/dev/null && break; sleep 0.1; done
# shellcheck source=bench/gateway-tenant.sh
source "$REPO/bench/gateway-tenant.sh"
token=$(gateway_tenant "$hub" 127.0.0.1:18191)
if [ "$ROUTE" = call ]; then
  url=$hub/api/plugin-gateway/call
  cat >"$OUT/call.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"targetPluginId":"plugin-crm","targetServiceName":"crm.contacts","method":"GET","path":"/contacts"}'
EOF
  script=(-s "$OUT/call.lua")
else
  url=$hub/api/v1/proxy/crm.contacts/contacts
  script=()
fi
load() { wrk -t1 -c"$CONNS" -d"$1" "${script[@]}" -H "Authorization: Bearer $token" "$url"; }
load 5s >/dev/null
callgrind_control -i on "$hub_pid" >/dev/null
load "${MEASURE_SECONDS}s" >"$OUT/wrk.txt"
callgrind_control -i off "$hub_pid" >/dev/null
callgrind_control -d "$hub_pid" >/dev/null
if grep -qE "Non-2xx|Socket errors" "$OUT/wrk.txt"; then
  echo "wrk saw errors:" >&2; cat "$OUT/wrk.txt" >&2; exit 1
fi
requests=$(awk '/requests in/ {print $1}' "$OUT/wrk.txt")
dump=$(ls -t "$OUT"/callgrind.out* | head -1)
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$ROUTE: $requests requests, $total Ir, $((total / requests)) Ir/request"
callgrind_annotate --inclusive=no "$dump" 2>/dev/null | grep -E '^ *[0-9,]+ ' | head -"${TOP:-25}" |
  awk -v n="$requests" '{c=$1; gsub(",", "", c); $1=""; printf "%8d Ir/req %s\n", c/n, $0}'
