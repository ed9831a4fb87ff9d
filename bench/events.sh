#!/usr/bin/env bash
# Keyed event delivery, before and after a change, in one session: runs the events_bench
# example (throughput: 20 000 events, 4 publishers; the subscriber acknowledges at once) for
# each key count on each backend, REPEATS times, with each given binary, and prints one row per
# run (the median is read off the rows). Usage:
#   bench/events.sh NAME=PATH [NAME=PATH…]    e.g. before=/tmp/events_bench_base after=target/release/examples/events_bench
# Settings: KEYS ("1 100 5000 0"; 0 = unkeyed), BACKENDS ("sqlite postgres"), REPEATS (3),
# REPEATS_SLOW (1: for 1 key, where a run takes minutes before the change), LATENCY_KEYS (100:
# also the latency scenario, 1 000 events/s for 10 s, at that key count; empty: none).
set -euo pipefail
KEYS=${KEYS:-"1 100 5000 0"}
BACKENDS=${BACKENDS:-"sqlite postgres"}
REPEATS=${REPEATS:-3}
REPEATS_SLOW=${REPEATS_SLOW:-1}
LATENCY_KEYS=${LATENCY_KEYS:-100}
for binary in "$@"; do
  name=${binary%%=*}; path=${binary#*=}
  for backend in $BACKENDS; do
    for keys in $KEYS; do
      repeats=$REPEATS; [ "$keys" = 1 ] && repeats=$REPEATS_SLOW
      for _ in $(seq 1 "$repeats"); do
        row=$(BENCH_THROUGHPUT_ONLY=1 BENCH_KEYS=$keys "$path" "$backend" 2>/dev/null | grep '^| ' | tail -1) || row="(failed or stopped)"
        echo "$name keys=$keys $row"
      done
    done
    if [ -n "$LATENCY_KEYS" ]; then
      row=$(BENCH_KEYS=$LATENCY_KEYS "$path" "$backend" 2>/dev/null | grep '^| ' | tail -1) || row="(failed or stopped)"
      echo "$name latency keys=$LATENCY_KEYS $row"
    fi
  done
done
