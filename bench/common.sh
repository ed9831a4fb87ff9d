# Shared helpers of the plexhub benchmarks (sourced, not run). Starts release hubs pinned to the
# server CPUs, prepares a tenant with the CRM example installed, and runs wrk pinned to the last
# CPU, as ../shared/bench does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONNS=${CONNS:-32}
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
THREADS=${THREADS:-1}
ADMIN_TOKEN=bench-admin-token-0123456789
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }

# HUB_BIN set: that binary, nothing built (as bench/gateway.sh); else this checkout's release build.
if [ -z "${HUB_BIN:-}" ]; then
  cargo build --release -p plexhub >&2
  HUB_BIN=$PWD/target/release/plexhub
fi
WORK=$(mktemp -d /tmp/plexhub-bench.XXXXXX)
RESULTS=$WORK/results.tsv
HUB_PIDS=()

cpus=$(nproc)
if [ "$cpus" -ge 2 ]; then
  PIN_HUB=(taskset -c "0-$((cpus - 2))"); PIN_LOAD=(taskset -c "$((cpus - 1))")
else
  PIN_HUB=(); PIN_LOAD=()
fi

cleanup() {
  for pid in "${HUB_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_hub NAME [serve flags…]: starts a hub in its own dir; sets HUB_URL.
start_hub() {
  local name=$1; shift
  local port; port=$(free_port)
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && PLEXHUB_ADMIN_TOKEN=$ADMIN_TOKEN exec "${PIN_HUB[@]}" "$HUB_BIN" serve \
    --listen "127.0.0.1:$port" --log-level warn "$@" >"$WORK/$name/hub.log" 2>&1) &
  HUB_PIDS+=($!)
  HUB_URL=http://127.0.0.1:$port
  for _ in $(seq 1 100); do curl -fsS "$HUB_URL/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "hub $name did not start:" >&2; cat "$WORK/$name/hub.log" >&2; exit 1
}

admin() { curl -fsS -H "authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' "$@"; }

# install_crm URL: tenant "bench" with CRM active; prints the plugin credential.
install_crm() {
  admin -X POST "$1/api/v1/tenants" -d '{"slug":"bench"}' >/dev/null
  admin -X POST "$1/api/v1/plugins" --data-binary @examples/manifests/crm.json >/dev/null
  admin -X POST "$1/api/v1/tenants/bench/installations" \
    -d '{"pluginId":"plugin-crm","baseUrl":"http://127.0.0.1:3100","activate":true}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"]["token"])'
}

# measure NAME URL [wrk args…]: one wrk run appended to $RESULTS as name, rps, p50, p99.
measure() {
  local name=$1 url=$2; shift 2
  local out
  out=$("${PIN_LOAD[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url")
  if echo "$out" | grep -qE 'Non-2xx|Socket errors'; then echo "$out" >&2; echo "errors during $name" >&2; exit 1; fi
  echo -e "$name\t$(echo "$out" | awk '/Requests\/sec/ {print $2}')\t$(echo "$out" | awk '$1=="50%" {print $2}')\t$(echo "$out" | awk '$1=="99%" {print $2}')" >>"$RESULTS"
}

# report BASE: median table of $RESULTS with each row's ratio to row BASE.
report() {
  python3 - "$RESULTS" "$1" "$CONNS" "$DURATION" "$REPEATS" <<'PY'
import sys
path, base, conns, duration, repeats = sys.argv[1:]
by = {}
for line in open(path):
    name, rps, p50, p99 = line.rstrip("\n").split("\t")
    by.setdefault(name, []).append((float(rps), p50, p99))
print(f"connections={conns} duration={duration}s repeats={repeats} (median of repeats)")
print(f"{'target':<22} {'rps_median':>11} {'rps_min':>9} {'rps_max':>9} {'p50':>9} {'p99':>9} {'x_' + base:>12}")
med = {name: sorted(runs)[len(runs) // 2] for name, runs in by.items()}
for name, runs in by.items():
    runs = sorted(runs)
    mid = med[name]
    ratio = mid[0] / med[base][0] if base in med else float("nan")
    print(f"{name:<22} {mid[0]:>11.0f} {runs[0][0]:>9.0f} {runs[-1][0]:>9.0f} {mid[1]:>9} {mid[2]:>9} {ratio:>12.2f}")
PY
}
