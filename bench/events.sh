#!/usr/bin/env bash
# Keyed event delivery, before and after a change, in one session: runs the events_bench
# example (throughput: 20 000 events, 4 publishers; the subscriber acknowledges at once) for
# each key count on each backend, REPEATS times, the given binaries taking turns run by run (a
# drifting machine then moves every binary alike), and prints one row per run (the median is
# read off the rows). Usage:
#   bench/events.sh NAME=PATH [NAME=PATH…]    e.g. before=/tmp/events_bench_base after=target/release/examples/events_bench
# Settings: KEYS ("1 100 5000 0"; 0 = unkeyed), BACKENDS ("sqlite postgres"), REPEATS (3),
# REPEATS_SLOW (1: for 1 key, where a run takes minutes before the change), LATENCY_KEYS (100:
# also the latency scenario, 1 000 events/s for 10 s, at that key count; set empty: none),
# RUN_TIMEOUT (seconds one run may take, 600).
set -euo pipefail
KEYS=${KEYS:-"1 100 5000 0"}
BACKENDS=${BACKENDS:-"sqlite postgres"}
REPEATS=${REPEATS:-3}
REPEATS_SLOW=${REPEATS_SLOW:-1}
LATENCY_KEYS=${LATENCY_KEYS-100}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
# row BINARY BACKEND VAR=VALUE…: the result row of one run (the last table row it prints).
row() {
  local out
  out=$(timeout "$RUN_TIMEOUT" env "${@:3}" "$1" "$2" 2>/dev/null | grep '^| ' | tail -1) || true
  case $out in
    *"delivered/s"* | "") echo "(failed, or longer than ${RUN_TIMEOUT} s)" ;;
    *) echo "$out" ;;
  esac
}
for backend in $BACKENDS; do
  for keys in $KEYS; do
    repeats=$REPEATS; [ "$keys" = 1 ] && repeats=$REPEATS_SLOW
    for _ in $(seq 1 "$repeats"); do
      for binary in "$@"; do
        echo "${binary%%=*} keys=$keys $(row "${binary#*=}" "$backend" BENCH_THROUGHPUT_ONLY=1 BENCH_KEYS="$keys")"
      done
    done
  done
  if [ -n "$LATENCY_KEYS" ]; then
    for binary in "$@"; do
      echo "${binary%%=*} latency keys=$LATENCY_KEYS $(row "${binary#*=}" "$backend" BENCH_KEYS="$LATENCY_KEYS")"
    done
  fi
done
