#!/usr/bin/env bash
# Shared data throughput, in one run, on the embedded default (SQLite), on PostgreSQL alone, and
# in scaled mode (PostgreSQL + Redis: reads come from the database, not the cache):
#   healthz       GET /healthz of the same hub (the HTTP stack alone)
#   get-<backend> GET /api/v1/data/bench/warm        (a warm key: auth + cache + expiry check)
#   put-<backend> PUT /api/v1/data/bench/counter     (a small value; committed before the answer)
#   put-keys-<backend> PUT /api/v1/data/bench/key-N  (the same, spread over 10000 keys at random)
# Compare put with etcd's put from ../shared/bench/kv.sh run beside it (KV_TARGETS=etcd).
# Settings: CONNS (32), DURATION (10), REPEATS (3), DATABASE_URL (postgres://postgres@127.0.0.1:5432/test;
# fresh databases are created and dropped), REDIS_URL (redis://127.0.0.1:6379),
# BACKENDS ("sqlite postgres", add "scaled").
. "$(dirname "$0")/common.sh"

BACKENDS=${BACKENDS:-"sqlite postgres"}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
BENCH_DB=plexhub_bench_$$
drop_db() {
  for db in "${BENCH_DB}_postgres" "${BENCH_DB}_scaled"; do
    psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
}

declare -A URLS TOKENS
for backend in $BACKENDS; do
  if [ "$backend" = postgres ] || [ "$backend" = scaled ]; then
    db="${BENCH_DB}_$backend"
    psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    psql "$DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null
    trap 'drop_db; cleanup' EXIT
    if [ "$backend" = scaled ]; then
      start_hub scaled --database-url "${DATABASE_URL%/*}/$db" --redis-url "$REDIS_URL"
    else
      start_hub postgres --database-url "${DATABASE_URL%/*}/$db"
    fi
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
