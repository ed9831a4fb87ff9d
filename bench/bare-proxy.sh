#!/usr/bin/env bash
# The ceiling of the gateway's crate stack, and whether another engine raises it (issue #16): in
# ONE run of bench/compare.sh (same upstream, same pinning, interleaved), against nginx and
# haproxy, with REQ_PATH=/contacts and one worker each (BENCH_WORKERS):
#   bare     crates/plexhub-server/examples/bare_proxy.rs: hyper's HTTP/1 server and hyper-util's
#            pooled client, nothing else
#   pingora  bench/engines/src/bin/pingora_proxy.rs: Pingora, tuned (upstream keep-alive pool of
#            256, one thread, no retries)
#   uring    bench/engines/src/bin/uring_proxy.rs: a minimal HTTP/1.1 proxy on monoio's io_uring
#            runtime (httparse heads, a per-thread upstream pool of 256)
# bench/engines is a cargo project of its own (not in the workspace), built here in release mode
# with CARGO_TARGET_DIR=$ENGINES_TARGET_DIR; an engine that does not build is left out with a
# warning. Read bench/gateway.sh's numbers against this one's.
# Settings: everything bench/compare.sh reads (CONNS, DURATION, REPEATS, TARGETS…; RATIO_TO
# defaults to bare); BARE_BIN (default: the release build of the example, built first; set,
# nothing of the workspace is built); ENGINES (default "pingora uring"); ENGINES_TARGET_DIR
# (default /tmp/engines-target).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${BARE_BIN:-}" ]; then
  cargo build --release -p plexhub-server --example bare_proxy --manifest-path "$REPO/Cargo.toml" >&2
fi
BARE_BIN=${BARE_BIN:-$REPO/target/release/examples/bare_proxy}
ENGINES_TARGET_DIR=${ENGINES_TARGET_DIR:-/tmp/engines-target}

export CANDIDATES=bare
export CANDIDATE_bare="BARE_PROXY_THREADS=\$BENCH_WORKERS exec $BARE_BIN 127.0.0.1:{PORT} {UPSTREAM}"
export CANDIDATE_bare_PATH=/contacts
for engine in ${ENGINES-pingora uring}; do
  if ! CARGO_TARGET_DIR=$ENGINES_TARGET_DIR cargo build --release --bin "${engine}_proxy" \
      --manifest-path "$REPO/bench/engines/Cargo.toml" >&2; then
    echo "bare-proxy.sh: bench/engines ${engine}_proxy does not build here; left out" >&2
    continue
  fi
  CANDIDATES+=" $engine"
  export "CANDIDATE_$engine=exec $ENGINES_TARGET_DIR/release/${engine}_proxy 127.0.0.1:{PORT} {UPSTREAM}"
  export "CANDIDATE_${engine}_PATH=/contacts"
done
export REQ_PATH=/contacts RATIO_TO=${RATIO_TO:-bare}
exec "$REPO/bench/compare.sh"
