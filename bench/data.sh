#!/usr/bin/env bash
# Shared data throughput, in one run, on the embedded default (SQLite) and on PostgreSQL:
#   healthz       GET /healthz of the same hub (the HTTP stack alone)
#   get-<backend> GET /api/v1/data/bench/warm        (a warm key: auth + cache + expiry check)
#   put-<backend> PUT /api/v1/data/bench/counter     (a small value; committed before the answer)
#   put-keys-<backend> PUT /api/v1/data/bench/key-N  (the same, spread over 10000 keys at random)
# Compare put with etcd's put from ../shared/bench/kv.sh run beside it (KV_TARGETS=etcd).
# Settings: CONNS (32), DURATION (10), REPEATS (3), DATABASE_URL (postgres://postgres@127.0.0.1:5432/test;
# a fresh database is created and dropped), BACKENDS ("sqlite postgres").
. "$(dirname "$0")/common.sh"

BACKENDS=${BACKENDS:-"sqlite postgres"}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
BENCH_DB=plexhub_bench_$$
drop_db() { psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true; }

declare -A URLS TOKENS
for backend in $BACKENDS; do
  if [ "$backend" = postgres ]; then
    drop_db; psql "$DATABASE_URL" -qc "CREATE DATABASE $BENCH_DB" >/dev/null
    trap 'drop_db; cleanup' EXIT
    start_hub postgres --database-url "${DATABASE_URL%/*}/$BENCH_DB"
  else
    start_hub sqlite
  fi
  URLS[$backend]=$HUB_URL
  TOKENS[$backend]=$(install_crm "$HUB_URL")
  curl -fsS -X PUT -H "authorization: Bearer ${TOKENS[$backend]}" -H 'content-type: application/json' \
    "$HUB_URL/api/v1/data/bench/warm" -d '{"value":{"contacts":1250,"synced":"2026-11-25T12:00:00Z"}}' >/dev/null
done

export WRK_BODY='{"value":{"n":1}}'
first=${BACKENDS%% *}
DURATION=2 measure warmup "${URLS[$first]}/healthz"; : >"$RESULTS"
for _ in $(seq 1 "$REPEATS"); do
  measure healthz "${URLS[$first]}/healthz"
  for backend in $BACKENDS; do
    auth="authorization: Bearer ${TOKENS[$backend]}"
    measure "get-$backend" "${URLS[$backend]}/api/v1/data/bench/warm" -H "$auth"
    measure "put-$backend" "${URLS[$backend]}/api/v1/data/bench/counter" -H "$auth" -s bench/wrk/put-json.lua
    measure "put-keys-$backend" "${URLS[$backend]}/api/v1/data/bench/key-" -H "$auth" -s bench/wrk/put-many-keys.lua
  done
done
report healthz
