#!/usr/bin/env bash
# Profiles the hub's proxy route under load: one hub (SQLite, HMAC, audit on) before the bench
# upstream, pinned like bench/gateway.sh (upstream and hub on CPU 0, wrk on CPU 1), then
# `perf record -g` on the hub for PERF_SECONDS while wrk runs, and the top frames printed.
# Settings: HUB_BIN (default target/release/plexhub), CONNS (256), PERF_SECONDS (10),
# OUT (default /tmp/plexhub-profile), HUB_FLAGS, UPSTREAM_BIN (the shared harness's upstream,
# built by its proxy.sh into /tmp/bench-target). Needs perf, wrk, curl, python3.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HUB_BIN=${HUB_BIN:-$REPO/target/release/plexhub}
UPSTREAM_BIN=${UPSTREAM_BIN:-/tmp/bench-target/release/bench-upstream}
CONNS=${CONNS:-256}
PERF_SECONDS=${PERF_SECONDS:-10}
OUT=${OUT:-/tmp/plexhub-profile}
ADMIN_TOKEN=bench-admin-token-0123456789
rm -rf "$OUT"; mkdir -p "$OUT/data"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
taskset -c 0 "$UPSTREAM_BIN" 127.0.0.1:18181 >"$OUT/upstream.log" 2>&1 & pids+=($!)
PLEXHUB_ADMIN_TOKEN=$ADMIN_TOKEN taskset -c 0 "$HUB_BIN" --worker-threads 1 serve \
  --listen 127.0.0.1:18182 --data-dir "$OUT/data" --log-level warn --stale-after 86400 \
  ${HUB_FLAGS:-} >"$OUT/hub.log" 2>&1 & pids+=($!)
hub_pid=${pids[1]}
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:18182/healthz >/dev/null && break; sleep 0.1; done
hub=http://127.0.0.1:18182
# shellcheck source=bench/gateway-tenant.sh
source "$REPO/bench/gateway-tenant.sh"
token=$(gateway_tenant "$hub" 127.0.0.1:18181)
url=$hub/api/v1/proxy/crm.contacts/contacts
taskset -c 1 wrk -t1 -c"$CONNS" -d2s -H "Authorization: Bearer $token" "$url" >/dev/null
taskset -c 1 wrk -t1 -c"$CONNS" -d$((PERF_SECONDS + 2))s -H "Authorization: Bearer $token" "$url" >"$OUT/wrk.txt" &
wrk_pid=$!
sleep 1
perf record -F 2999 -g -p "$hub_pid" -o "$OUT/perf.data" -- sleep "$PERF_SECONDS" 2>"$OUT/perf-record.log"
wait "$wrk_pid"
grep -E "Requests/sec|Non-2xx|errors" "$OUT/wrk.txt" || true
perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
  grep -E '^ +[0-9]' | head -${TOP:-40} | tee "$OUT/top.txt"
