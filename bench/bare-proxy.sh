#!/usr/bin/env bash
# The ceiling of the gateway's crate stack: a bare hyper reverse proxy (hyper's HTTP/1 server and
# hyper-util's pooled client, nothing else; crates/plexhub-server/examples/bare_proxy.rs) against
# nginx and haproxy with ../shared/bench/proxy.sh, same upstream, same run. Read bench/gateway.sh's
# numbers against this one's. Settings: everything ../shared/bench/proxy.sh reads (CONNS,
# DURATION, REPEATS, TARGETS…); SHARED_BENCH (default ../shared/bench).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
[ -x "$SHARED_BENCH/proxy.sh" ] || { echo "no harness at $SHARED_BENCH/proxy.sh" >&2; exit 1; }
cargo build --release -p plexhub-server --example bare_proxy --manifest-path "$REPO/Cargo.toml" >&2
export CANDIDATE="BARE_PROXY_THREADS=\$BENCH_WORKERS exec $REPO/target/release/examples/bare_proxy 127.0.0.1:{PORT} {UPSTREAM}"
export CANDIDATE_PATH=/contacts
exec "$SHARED_BENCH/proxy.sh"
