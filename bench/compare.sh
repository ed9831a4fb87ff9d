#!/usr/bin/env bash
# Several candidates against the reference proxies in ONE run: ../shared/bench/proxy.sh with any
# number of candidates. The shared harness takes one candidate per run, but the targets we set
# are ratios (hub ÷ bare hyper proxy, hub ÷ nginx), and a ratio is only worth something when both
# sides share the run: same upstream, same pinning, targets interleaved in every repetition.
#   client --> [direct | nginx | nginx-log | haproxy | candidate…] --> upstream ("plugin")
# nginx-log is the nginx proxy with a buffered access log (the fair peer of an audited hub); it
# runs when TARGETS lists it or WITH_NGINX_LOG=1. Load generator: wrk only.
# Candidates: CANDIDATES="hub bare" names them (letters, digits, _; shown with - for _); each NAME
# reads CANDIDATE_<NAME> (command, run with bash -c; {PORT} and {UPSTREAM} replaced),
# CANDIDATE_<NAME>_PATH (/), _HEADERS ('|'-separated), _SETUP (run once, with $CANDIDATE_PORT
# and $UPSTREAM_ADDR) and _READY_PATH, with the contract of proxy.sh's CANDIDATE* variables;
# beyond it, lines `header: Name: value` that the setup prints are added to the candidate's
# headers (a credential the setup created), and _BODY makes every request a POST of that JSON
# body (wrk with ../shared/bench/wrk/post-json.lua).
# Settings: proxy.sh's (CONNS, DURATION, REPEATS, WARMUP, TARGETS, UPSTREAM, REQ_PATH, EXPECT,
# PIN, LOADGEN_CPUS, SERVER_CPUS, WORKERS, LG_THREADS, BENCH_NICE, CANDIDATE_READY_TIMEOUT;
# RESULTS_DIR defaults to /tmp/bench-compare-<ts>); RATIO_TO=<target> adds a column x_<target>
# (throughput ÷ that target's median) and px_<target> (paired: the median of the ratios of the
# same repetition, as px_nginx is always); SHARED_BENCH (default ../shared/bench).
# e.g. CANDIDATES="hub bare" CANDIDATE_hub=… CANDIDATE_bare=… RATIO_TO=bare bench/compare.sh
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
[ -r "$SHARED_BENCH/lib.sh" ] || { echo "no harness at $SHARED_BENCH/lib.sh" >&2; exit 1; }
# shellcheck source=/dev/null
. "$SHARED_BENCH/lib.sh"

CONNS=${CONNS:-"32 256"}
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
WARMUP=${WARMUP:-2}
TARGETS=${TARGETS:-auto}
UPSTREAM=${UPSTREAM:-auto}
REQ_PATH=${REQ_PATH:-/}
EXPECT=${EXPECT:-'"ok":true'}
RESULTS_DIR=${RESULTS_DIR:-/tmp/bench-compare-$(date +%Y%m%d-%H%M%S)}
PIN=${PIN:-auto}
CANDIDATES=${CANDIDATES:-}
CANDIDATE_READY_TIMEOUT=${CANDIDATE_READY_TIMEOUT:-30}
WITH_NGINX_LOG=${WITH_NGINX_LOG:-0}
RATIO_TO=${RATIO_TO:-}
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/bench-target}
export CARGO_TARGET_DIR

# ---------------------------------------------------------------- targets (checked before starting anything)
REFERENCES=" direct nginx nginx-log haproxy "
declare -A CAND_VAR   # target name -> CANDIDATE_<NAME>
for n in $CANDIDATES; do
  [[ "$n" =~ ^[A-Za-z0-9_]+$ ]] || die "candidate name '$n': letters, digits and _ only"
  v=CANDIDATE_$n
  [ -n "${!v:-}" ] || die "CANDIDATES names $n but $v is unset"
  t=${n//_/-}
  [[ "$REFERENCES" != *" $t "* && -z "${CAND_VAR[$t]:-}" ]] || die "candidate name $n clashes with target $t"
  CAND_VAR[$t]=$v
done
if [ "$TARGETS" = auto ]; then
  TARGETS="direct nginx"
  have haproxy && TARGETS+=" haproxy"
  [ "$WITH_NGINX_LOG" = 1 ] && TARGETS+=" nginx-log"
  for n in $CANDIDATES; do TARGETS+=" ${n//_/-}"; done
elif [ "$WITH_NGINX_LOG" = 1 ] && [[ " $TARGETS " != *" nginx-log "* ]]; then
  TARGETS+=" nginx-log"
fi
TARGETS=${TARGETS//_/-}
for t in $TARGETS; do
  [[ "$REFERENCES" == *" $t "* || -n "${CAND_VAR[$t]:-}" ]] || die "unknown target $t (candidates: ${CANDIDATES:-none})"
done
RATIO_TO=${RATIO_TO//_/-}
[ -z "$RATIO_TO" ] || [[ " $TARGETS " == *" $RATIO_TO "* ]] || die "RATIO_TO=$RATIO_TO is not among the targets ($TARGETS)"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$RESULTS_DIR/logs" || die "cannot create $RESULTS_DIR"
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
have curl || die "curl is required"
have wrk || die "wrk not installed (apt-get install wrk)"
have nginx || die "nginx not installed (apt-get install nginx); it is the reference proxy"

# ---------------------------------------------------------------- CPU layout (as proxy.sh)
NCPU=$(nproc)
if [ "$PIN" = auto ]; then [ "$NCPU" -ge 2 ] && PIN=1 || PIN=0; fi
if [ "$PIN" = 1 ]; then
  LOADGEN_CPUS=${LOADGEN_CPUS:-$(( NCPU - 1 ))}
  SERVER_CPUS=${SERVER_CPUS:-0-$(( NCPU - 2 ))}
  [ "$NCPU" -eq 2 ] && SERVER_CPUS=${SERVER_CPUS/0-0/0}
else
  LOADGEN_CPUS=""; SERVER_CPUS=""
fi
if [ -n "$SERVER_CPUS" ]; then WORKERS=${WORKERS:-$(cpu_list_count "$SERVER_CPUS")}; else WORKERS=${WORKERS:-$NCPU}; fi
if [ -n "$LOADGEN_CPUS" ]; then LG_THREADS=${LG_THREADS:-$(cpu_list_count "$LOADGEN_CPUS")}; else LG_THREADS=${LG_THREADS:-$NCPU}; fi
export BENCH_WORKERS=$WORKERS

# ---------------------------------------------------------------- servers
UPSTREAM_ADDR="127.0.0.1:$(free_port)"
export UPSTREAM_ADDR
UP_BIN="$CARGO_TARGET_DIR/release/bench-upstream"
if [ "$UPSTREAM" = auto ]; then
  if [ -x "$UP_BIN" ] || have cargo; then UPSTREAM=rust; else UPSTREAM=nginx; fi
fi
declare -A URL HDRS BODY
URL[direct]="http://$UPSTREAM_ADDR$REQ_PATH"

nginx_conf_common() { # $1=dir
  cat <<EOF
worker_processes $WORKERS;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 8192; multi_accept on; }
EOF
}
nginx_http_common() { # $1=dir [$2=access_log directive, default off]
  cat <<EOF
  ${2:-access_log off;}
  client_body_temp_path $1/tmp_body;
  proxy_temp_path $1/tmp_proxy;
  fastcgi_temp_path $1/tmp_fcgi;
  uwsgi_temp_path $1/tmp_uwsgi;
  scgi_temp_path $1/tmp_scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
EOF
}

start_upstream() {
  case "$UPSTREAM" in
    rust)
      if [ ! -x "$UP_BIN" ]; then
        log "building bench-upstream (cargo build --release) into $CARGO_TARGET_DIR"
        (cd "$SHARED_BENCH/upstream" && cargo build --release -q) || die "upstream build failed"
      fi
      spawn upstream "$RESULTS_DIR/logs/upstream.log" "$SERVER_CPUS" \
        env UPSTREAM_THREADS="$WORKERS" "$UP_BIN" "$UPSTREAM_ADDR" ;;
    nginx)
      local d="$RESULTS_DIR/nginx-upstream"; mkdir -p "$d"; chmod 777 "$d"
      { nginx_conf_common "$d"
        echo "http {"; nginx_http_common "$d"
        cat <<EOF
  server {
    listen $UPSTREAM_ADDR;
    location / { default_type application/json; return 200 '{"ok":true,"plugin":"echo","value":42}'; }
  }
}
EOF
      } > "$d/nginx.conf"
      spawn upstream-nginx "$RESULTS_DIR/logs/upstream.log" "$SERVER_CPUS" nginx -e "$d/startup.log" -p "$d" -c "$d/nginx.conf" ;;
    *) die "UPSTREAM must be rust or nginx" ;;
  esac
  wait_http upstream "${URL[direct]}" "$SPAWNED_PID" 30 "$EXPECT" || die "upstream failed; see $RESULTS_DIR/logs/upstream.log"
}

start_nginx_proxy() { # $1=target name, $2=access_log directive
  local d="$RESULTS_DIR/$1" port; port=$(free_port)
  mkdir -p "$d"; chmod 777 "$d"
  { nginx_conf_common "$d"
    echo "http {"; nginx_http_common "$d" "$2"
    cat <<EOF
  upstream plugin {
    server $UPSTREAM_ADDR;
    keepalive 512;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://plugin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  } > "$d/nginx.conf"
  spawn "$1" "$RESULTS_DIR/logs/$1.log" "$SERVER_CPUS" nginx -e "$d/startup.log" -p "$d" -c "$d/nginx.conf"
  wait_http "$1" "http://127.0.0.1:$port$REQ_PATH" "$SPAWNED_PID" 20 "$EXPECT" || die "$1 failed; see $d/error.log"
  URL[$1]="http://127.0.0.1:$port$REQ_PATH"
}

start_haproxy() {
  local d="$RESULTS_DIR/haproxy" port; port=$(free_port)
  mkdir -p "$d"
  cat > "$d/haproxy.cfg" <<EOF
global
  nbthread $WORKERS
  maxconn 8000
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 75s
frontend fe
  bind 127.0.0.1:$port
  default_backend plugin
backend plugin
  server up1 $UPSTREAM_ADDR maxconn 1024
EOF
  spawn haproxy "$RESULTS_DIR/logs/haproxy.log" "$SERVER_CPUS" haproxy -db -f "$d/haproxy.cfg"
  wait_http haproxy "http://127.0.0.1:$port$REQ_PATH" "$SPAWNED_PID" 20 "$EXPECT" || die "haproxy failed; see $RESULTS_DIR/logs/haproxy.log"
  URL[haproxy]="http://127.0.0.1:$port$REQ_PATH"
}

start_candidate() { # $1=target name; reads ${CAND_VAR[$1]} and its _PATH/_HEADERS/_SETUP/_READY_PATH
  local t=$1 v=${CAND_VAR[$1]} port cpid hdrs
  local p=${v}_PATH h=${v}_HEADERS s=${v}_SETUP r=${v}_READY_PATH b=${v}_BODY
  port=$(free_port)
  local cmd=${!v//\{PORT\}/$port}
  cmd=${cmd//\{UPSTREAM\}/$UPSTREAM_ADDR}
  log "$t command: $cmd"
  spawn "$t" "$RESULTS_DIR/logs/$t.log" "$SERVER_CPUS" env CANDIDATE_PORT="$port" bash -c "$cmd"
  cpid=$SPAWNED_PID
  local deadline=$(( $(date +%s) + CANDIDATE_READY_TIMEOUT ))
  until ss -Htln "sport = :$port" | grep -q .; do
    kill -0 "$cpid" 2>/dev/null || die "$t exited; see $RESULTS_DIR/logs/$t.log"
    [ "$(date +%s)" -lt "$deadline" ] || die "$t did not listen on $port within ${CANDIDATE_READY_TIMEOUT}s"
    sleep 0.2
  done
  if [ -n "${!r:-}" ]; then
    wait_http "$t-health" "http://127.0.0.1:$port${!r}" "$cpid" "$CANDIDATE_READY_TIMEOUT" "" || die "$t health check failed"
  fi
  if [ -n "${!s:-}" ]; then
    log "$t setup: ${!s}"
    CANDIDATE_PORT=$port timeout 60 bash -c "${!s}" > "$RESULTS_DIR/logs/$t-setup.log" 2>&1 \
      || die "${s} failed; see $RESULTS_DIR/logs/$t-setup.log"
  fi
  HDRS[$t]=${!h:-}
  local line
  while IFS= read -r line; do
    HDRS[$t]="${HDRS[$t]:+${HDRS[$t]}|}${line#header: }"
  done < <(grep '^header: ' "$RESULTS_DIR/logs/$t-setup.log" 2>/dev/null)
  IFS='|' read -ra hdrs <<< "${HDRS[$t]}"
  URL[$t]="http://127.0.0.1:$port${!p:-/}"
  BODY[$t]=${!b:-}
  if [ -n "${BODY[$t]}" ]; then
    local args=() answer
    for line in "${hdrs[@]}"; do [ -n "$line" ] && args+=(-H "$line"); done
    answer=$(curl -fsS --max-time 5 -X POST -H 'content-type: application/json' "${args[@]}" \
      --data-binary "${BODY[$t]}" "${URL[$t]}") && [[ "$answer" == *"$EXPECT"* ]] \
      || die "$t does not proxy the POST to the upstream (answer: ${answer:-none})"
  else
    wait_http "$t" "${URL[$t]}" "$cpid" "$CANDIDATE_READY_TIMEOUT" "$EXPECT" "${hdrs[@]}" \
      || die "$t does not proxy to the upstream (expected body containing $EXPECT)"
  fi
}

# ---------------------------------------------------------------- load
# run_load TARGET CONNS SECONDS OUTFILE -> echoes "rps p50_us p99_us errors" (wrk, as proxy.sh)
run_load() {
  local target=$1 c=$2 secs=$3 out=$4 hdr=() h hs=()
  IFS='|' read -ra hs <<< "${HDRS[$target]:-}"
  for h in "${hs[@]}"; do [ -n "$h" ] && hdr+=(-H "$h"); done
  local t=$LG_THREADS; [ "$t" -gt "$c" ] && t=$c
  local pin=("${NICE[@]}"); [ -n "$LOADGEN_CPUS" ] && pin+=(taskset -c "$LOADGEN_CPUS")
  local post=()
  [ -n "${BODY[$target]:-}" ] && post=(-s "$SHARED_BENCH/wrk/post-json.lua")
  WRK_BODY=${BODY[$target]:-} timeout $(( secs + 30 )) "${pin[@]}" wrk -t"$t" -c"$c" -d"${secs}s" --timeout 5s --latency \
    "${post[@]}" "${hdr[@]}" "${URL[$target]}" > "$out" 2>&1
  local rps p50 p99 errs non2xx
  rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
  p50=$(awk '$1=="50%"{print $2}' "$out"); p99=$(awk '$1=="99%"{print $2}' "$out")
  errs=$(awk '/Socket errors:/{gsub(/,/,""); print $4+$6+$8+$10}' "$out"); errs=${errs:-0}
  non2xx=$(awk '/Non-2xx or 3xx responses:/{print $NF}' "$out"); non2xx=${non2xx:-0}
  [ -n "$rps" ] || { echo "NA NA NA NA"; return; }
  echo "$rps $(to_us "$p50") $(to_us "$p99") $(( errs + non2xx ))"
}

# ---------------------------------------------------------------- main
log "results dir: $RESULTS_DIR"
log "cpus: $NCPU, pin=$PIN loadgen_cpus=${LOADGEN_CPUS:-any} server_cpus=${SERVER_CPUS:-any} workers=$WORKERS loadgen_threads=$LG_THREADS"
start_upstream
for t in $TARGETS; do
  case "$t" in
    direct) ;;
    nginx) start_nginx_proxy nginx 'access_log off;' ;;
    nginx-log) start_nginx_proxy nginx-log "access_log $RESULTS_DIR/nginx-log/access.log combined buffer=64k flush=1s;" ;;
    haproxy) have haproxy || die "haproxy not installed"; start_haproxy ;;
    *) start_candidate "$t" ;;
  esac
done

{
  echo "# bench/compare.sh $(date -Is)"
  echo "# host: $(uname -srm), $NCPU cpus; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "# loadgen=wrk upstream=$UPSTREAM nice=$BENCH_NICE pin=$PIN loadgen_cpus=${LOADGEN_CPUS:-any} server_cpus=${SERVER_CPUS:-any} workers=$WORKERS"
  echo "# duration=${DURATION}s repeats=$REPEATS conns=[$CONNS] targets=[$TARGETS]"
  for t in $TARGETS; do echo "# $t: ${URL[$t]}"; done
  for t in $TARGETS; do [ -z "${CAND_VAR[$t]:-}" ] || echo "# $t command: ${!CAND_VAR[$t]}"; done
} > "$RESULTS_DIR/meta.txt"
cat "$RESULTS_DIR/meta.txt" >&2

RAW="$RESULTS_DIR/raw.tsv"
printf 'target\tconns\trep\trps\tp50_us\tp99_us\terrors\n' > "$RAW"

if [ "$WARMUP" -gt 0 ]; then
  for t in $TARGETS; do run_load "$t" 32 "$WARMUP" "$RESULTS_DIR/logs/warmup-$t.txt" > /dev/null; done
fi

# Interleave targets inside each repetition so slow drift of the machine affects all alike.
for c in $CONNS; do
  for r in $(seq 1 "$REPEATS"); do
    for t in $TARGETS; do
      read -r rps p50 p99 errs <<< "$(run_load "$t" "$c" "$DURATION" "$RESULTS_DIR/logs/$t-c$c-r$r.txt")"
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$c" "$r" "$rps" "$p50" "$p99" "$errs" >> "$RAW"
      log "$(printf '%-10s c=%-4s rep=%s rps=%-10s p50=%sus p99=%sus errors=%s' "$t" "$c" "$r" "$rps" "$p50" "$p99" "$errs")"
    done
  done
done

# ---------------------------------------------------------------- report
# paired TARGET REF CONNS: the median, over the repetitions, of TARGET's throughput ÷ REF's in
# the same repetition (the two ran back to back, so the machine's drift between repetitions
# cancels out of each ratio); NA when they never ran in the same repetition.
paired() {
  awk -F'\t' -v t="$1" -v ref="$2" -v c="$3" '
    $2 == c && $4 != "NA" && $1 == t { mine[$3] = $4 }
    $2 == c && $4 != "NA" && $1 == ref { theirs[$3] = $4 }
    END {
      n = 0
      for (r in mine) if ((r in theirs) && theirs[r] > 0) v[++n] = mine[r] / theirs[r]
      if (n == 0) { print "NA"; exit }
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
      printf "%.3f", (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }' "$RAW"
}
W=10; for t in $TARGETS; do [ "${#t}" -gt "$W" ] && W=${#t}; done
XREF=${RATIO_TO:+x_$RATIO_TO}
PREF=${RATIO_TO:+px_$RATIO_TO}
SUMMARY="$RESULTS_DIR/summary.txt"
{
  cat "$RESULTS_DIR/meta.txt"
  echo
  printf "%-${W}s %6s %12s %9s %9s %7s %8s %10s %10s %12s %12s${XREF:+ %10s}%10s${PREF:+ %10s}\n" \
    target conns rps_median p50_us p99_us errors rps_min/max x_direct x_nginx +p50_us +p99_us ${XREF:+"$XREF"} \
    px_nginx ${PREF:+"$PREF"}
  for c in $CONNS; do
    declare -A MR=() M50=() M99=()
    for t in $TARGETS; do
      mapfile -t rs < <(awk -F'\t' -v t="$t" -v c="$c" '$1==t && $2==c && $4!="NA"{print $4}' "$RAW")
      mapfile -t l50 < <(awk -F'\t' -v t="$t" -v c="$c" '$1==t && $2==c && $5!="NA"{print $5}' "$RAW")
      mapfile -t l99 < <(awk -F'\t' -v t="$t" -v c="$c" '$1==t && $2==c && $6!="NA"{print $6}' "$RAW")
      MR[$t]=$(median "${rs[@]}"); M50[$t]=$(median "${l50[@]}"); M99[$t]=$(median "${l99[@]}")
    done
    for t in $TARGETS; do
      errs=$(awk -F'\t' -v t="$t" -v c="$c" '$1==t && $2==c{s+=$7} END{print s+0}' "$RAW")
      spread=$(awk -F'\t' -v t="$t" -v c="$c" '$1==t && $2==c && $4!="NA"{if(mn==""||$4<mn)mn=$4; if($4>mx)mx=$4} END{if(mn=="")print "NA"; else printf "%.0f/%.0f", mn, mx}' "$RAW")
      awk -v w="$W" -v t="$t" -v c="$c" -v r="${MR[$t]}" -v a="${M50[$t]}" -v b="${M99[$t]}" -v e="$errs" -v sp="$spread" \
          -v dr="${MR[direct]:-NA}" -v nr="${MR[nginx]:-NA}" -v d50="${M50[direct]:-NA}" -v d99="${M99[direct]:-NA}" \
          -v xref="$XREF" -v rr="${MR[$RATIO_TO]:-NA}" \
          -v pn="$(paired "$t" nginx "$c")" -v pref="$PREF" -v pr="${RATIO_TO:+$(paired "$t" "$RATIO_TO" "$c")}" '
        function ratio(x, y) { return (x=="NA"||y=="NA"||y==0) ? "NA" : sprintf("%.3f", x/y) }
        BEGIN{
        a50 = (d50=="NA"||a=="NA") ? "NA" : sprintf("%+.0f", a-d50);
        a99 = (d99=="NA"||b=="NA") ? "NA" : sprintf("%+.0f", b-d99);
        printf "%-" w "s %6s %12.0f %9.0f %9.0f %7s %8s %10s %10s %12s %12s", t, c, r, a, b, e, sp, ratio(r, dr), ratio(r, nr), a50, a99;
        if (xref != "") printf " %10s", ratio(r, rr);
        printf " %9s", pn;
        if (pref != "") printf " %10s", pr;
        printf "\n" }'
    done
  done
  echo
  echo "x_direct / x_nginx: median throughput relative to direct / to nginx (same run)."
  [ -z "$XREF" ] || echo "$XREF: median throughput relative to $RATIO_TO (same run)."
  echo "px_nginx${PREF:+ / $PREF}: median over the repetitions of the throughput ÷ that target's in the same repetition (paired)."
  echo "+p50_us / +p99_us: median latency added over direct, in microseconds."
  echo "errors: socket errors + non-2xx responses summed over all repeats (must be 0)."
} > "$SUMMARY"
echo
cat "$SUMMARY"
log "raw results: $RAW ; per-run output: $RESULTS_DIR/logs/"
