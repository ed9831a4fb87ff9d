#!/usr/bin/env bash
# Discovery throughput against the same hub's /healthz, in one run (issue: registry benchmark).
#
# Starts a release hub on SQLite in a temp dir, creates a tenant, publishes and activates the
# CRM example (which registers crm.contacts), warms the cache, then alternates wrk runs on
#   GET /healthz                                              (the HTTP stack alone)
#   GET /api/plugin-gateway/services/discover/crm.contacts    (auth + tenant + registry + JSON)
# and prints the median requests/s of each and their ratio. Target: ratio >= 0.8.
#
# Settings: CONNS (default 32), DURATION seconds (10), REPEATS (3), THREADS of wrk (1).
# With 2+ CPUs, wrk runs on the last CPU and the hub on the others (as ../shared/bench does).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-32}
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
THREADS=${THREADS:-1}
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }

cargo build --release -p plexhub >&2
HUB=$PWD/target/release/plexhub
WORK=$(mktemp -d /tmp/plexhub-bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
TOKEN=bench-admin-token-0123456789

cpus=$(nproc)
if [ "$cpus" -ge 2 ]; then
  HUB_CPUS="0-$((cpus - 2))"; LOAD_CPUS="$((cpus - 1))"
  pin_hub=(taskset -c "$HUB_CPUS"); pin_load=(taskset -c "$LOAD_CPUS")
else
  pin_hub=(); pin_load=()
fi

cleanup() { [ -n "${HUB_PID:-}" ] && kill "$HUB_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

(cd "$WORK" && PLEXHUB_ADMIN_TOKEN=$TOKEN exec "${pin_hub[@]}" "$HUB" serve --listen "127.0.0.1:$PORT" \
  --log-level warn >"$WORK/hub.log" 2>&1) &
HUB_PID=$!
for _ in $(seq 1 100); do curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

admin() { curl -fsS -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }
admin -X POST "$BASE/api/v1/tenants" -d '{"slug":"bench"}' >/dev/null
admin -X POST "$BASE/api/v1/plugins" --data-binary @examples/manifests/crm.json >/dev/null
PLUGIN_TOKEN=$(admin -X POST "$BASE/api/v1/tenants/bench/installations" \
  -d '{"pluginId":"plugin-crm","baseUrl":"http://127.0.0.1:3100","activate":true}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"]["token"])')
DISCOVER="$BASE/api/plugin-gateway/services/discover/crm.contacts"
curl -fsS -H "authorization: Bearer $PLUGIN_TOKEN" "$DISCOVER" | grep -q '"status":"HEALTHY"'

run() { # name url [header]
  local out
  if [ -n "${3:-}" ]; then
    out=$("${pin_load[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "$3" "$2")
  else
    out=$("${pin_load[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$2")
  fi
  if echo "$out" | grep -qE 'Non-2xx|Socket errors'; then echo "$out" >&2; echo "errors during $1" >&2; exit 1; fi
  local rps p50 p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  echo -e "$1\t$rps\t$p50\t$p99"
}

# Warm up both paths.
"${pin_load[@]}" wrk -t1 -c"$CONNS" -d2s "$BASE/healthz" >/dev/null
"${pin_load[@]}" wrk -t1 -c"$CONNS" -d2s -H "authorization: Bearer $PLUGIN_TOKEN" "$DISCOVER" >/dev/null

results=$WORK/results.tsv
for _ in $(seq 1 "$REPEATS"); do
  run healthz "$BASE/healthz" >>"$results"
  run discover "$DISCOVER" "authorization: Bearer $PLUGIN_TOKEN" >>"$results"
done

python3 - "$results" "$CONNS" "$DURATION" "$REPEATS" <<'PY'
import statistics, sys
path, conns, duration, repeats = sys.argv[1:]
rows = [line.split("\t") for line in open(path).read().split("\n") if line]
by = {}
for name, rps, p50, p99 in rows:
    by.setdefault(name, []).append((float(rps), p50, p99))
print(f"connections={conns} duration={duration}s repeats={repeats} (median of repeats)")
print(f"{'target':<10} {'rps_median':>11} {'rps_min':>9} {'rps_max':>9} {'p50':>9} {'p99':>9}")
med = {}
for name in ("healthz", "discover"):
    runs = sorted(by[name])
    mid = runs[len(runs) // 2]
    med[name] = mid[0]
    print(f"{name:<10} {mid[0]:>11.0f} {runs[0][0]:>9.0f} {runs[-1][0]:>9.0f} {mid[1]:>9} {mid[2]:>9}")
print(f"discover / healthz = {med['discover'] / med['healthz']:.2f} (target >= 0.80)")
PY
