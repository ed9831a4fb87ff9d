#!/usr/bin/env bash
# Server time of the web dashboard's pages with 1 000 installations (issue #19: < 50 ms).
# A release hub on SQLite gets tenant "big" with 1 000 plugins installed (each a one-line
# manifest depending on CRM, so the graph has 1 001 nodes and 1 000 edges) and CRM active; then
# each page is fetched REPEATS times (default 20) over loopback with one signed-in session, and
# the median and worst wall times are printed. HUB_BIN: a binary to use (else a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-20}
INSTALLATIONS=${INSTALLATIONS:-1000}
if [ -z "${HUB_BIN:-}" ]; then
  cargo build --release -p plexhub >&2
  HUB_BIN=$PWD/target/release/plexhub
fi
WORK=$(mktemp -d /tmp/plexhub-ui-bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOKEN=bench-admin-token-0123456789
(cd "$WORK" && PLEXHUB_ADMIN_TOKEN=$TOKEN exec "$HUB_BIN" serve --listen "127.0.0.1:$PORT" \
  --data-dir "$WORK/data" --log-level warn >"$WORK/hub.log" 2>&1) &
HUB=$!
trap 'kill $HUB 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

python3 - "http://127.0.0.1:$PORT" "$TOKEN" "$INSTALLATIONS" "$REPEATS" <<'PY'
import http.cookiejar, json, re, statistics, sys, time, urllib.parse, urllib.request

base, token, count, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def admin(method, path, body=None):
    request = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return answer.read()

started = time.perf_counter()
admin("POST", "/api/v1/tenants", {"slug": "big"})
admin("POST", "/api/v1/plugins", json.load(open("examples/manifests/crm.json")))
admin("POST", "/api/v1/tenants/big/installations",
      {"pluginId": "plugin-crm", "baseUrl": "http://127.0.0.1:9", "activate": True})
for n in range(count):
    plugin = f"plugin-bench-{n:04d}"
    admin("POST", "/api/v1/plugins", {
        "id": plugin, "name": f"Bench {n}", "version": "1.0.0", "description": "bench",
        "category": "tools", "author": "bench", "license": "MIT",
        "api": {"services": [], "dependencies": [
            {"pluginId": "plugin-crm", "version": "^1.0.0", "required": True}]}})
    admin("POST", "/api/v1/tenants/big/installations", {"pluginId": plugin})
print(f"seeded {count} installations in {time.perf_counter() - started:.1f} s", file=sys.stderr)

jar = http.cookiejar.CookieJar()
browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
form = browser.open(base + "/ui/login").read().decode()
csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form).group(1)
browser.open(base + "/ui/login", urllib.parse.urlencode({"token": token, "csrf": csrf}).encode()).read()

print(f"{'page':<40} {'median ms':>10} {'worst ms':>10} {'KiB':>8}")
for path in ["/ui", "/ui/tenants", "/ui/tenants/big", "/ui/tenants/big/services",
             "/ui/tenants/big/graph", "/ui/tenants/big/events", "/ui/catalog", "/ui/calls"]:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        with browser.open(base + path) as answer:
            body = answer.read()
            assert answer.status == 200 and b"<main" in body, path
        times.append((time.perf_counter() - began) * 1000)
    print(f"{path:<40} {statistics.median(times):>10.1f} {max(times):>10.1f} {len(body) / 1024:>8.0f}")
PY
