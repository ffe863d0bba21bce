#!/usr/bin/env bash
# Portico vs nginx, measured in one run on the same machine. See docs/benchmarks.md.
#
#   bench/run.sh            full mode: 10 s runs after a 3 s warm-up, 3 rounds (15–25 minutes)
#   bench/run.sh --quick    quick mode: 3 s runs after a 1 s warm-up, 2 rounds (5–10 minutes)
#
# Settings (environment):
#   PORTICO_BIN          portico binary (default: target/release/portico of this checkout)
#   BENCH_DURATION       seconds per measured wrk run            (full 10, quick 3)
#   BENCH_WARMUP         seconds of warm-up before each run      (full 3, quick 1)
#   BENCH_ROUNDS         rounds of A B (nginx, Portico)          (full 3, quick 2)
#   BENCH_CONNS          wrk connection counts                   ("50 200")
#   BENCH_SCENARIOS      which of a b c d e f g, run in that order ("a f g d b c"; e = churn at the
#                        big table; f = limit-count + prometheus, g = key-auth + limit-count +
#                        prometheus on the one route, both against bare nginx of the same run)
#   BENCH_ROUTES_B/C     table sizes of (b) and (c)              (10000 / 100000); their rounds
#                        also measure a second Portico that has the one route only, so that
#                        "N routes ÷ one route" compares runs of the same rounds
#   BENCH_CHURN_RATE     route changes per second in (d)/(e)     (10)
#   BENCH_LOAD_CONNS     parallel Admin API connections to load routes (4)
#   BENCH_LOAD_SEQ       how many of the first PUTs go one at a time, to time that (1000)
#   BENCH_LOAD_LIMIT     seconds allowed to load one table into portico up; beyond, the rest is
#                        loaded into portico cp (no gateway) and portico up is restarted
#                        (full 600, quick 120)
#   BENCH_PROXY_CPU      core of the two proxies                 (1)
#   BENCH_LOAD_CPU       core of wrk, the upstream and helpers   (0)
#   BENCH_OUT            folder of the results                   (bench/results)
#   BENCH_MAX_SECONDS    hard limit of the whole run             (3600)
#   BENCH_KEEP=1         keep the temp folder (configs, logs)
#   BENCH_ACCESS_LOG     Portico's access log: off (as the nginx proxy) or a path ("off")
#   BENCH_PORTICO_REV    what source PORTICO_BIN was built from, for the report (default: this checkout)
#   BENCH_PERF=1         also count the proxy's syscalls, context switches and page faults per
#                        request during each measured run (`perf stat`), in the log
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
LIB=(python3 "$HERE/lib.py")
COMMAND="bench/run.sh $*"

MODE=full
for arg in "$@"; do
  case "$arg" in
    --quick) MODE=quick ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
if [[ $MODE == quick ]]; then d=3 w=1 r=2; else d=10 w=3 r=3; fi
DURATION=${BENCH_DURATION:-$d}
WARMUP=${BENCH_WARMUP:-$w}
ROUNDS=${BENCH_ROUNDS:-$r}
CONNS=${BENCH_CONNS:-"50 200"}
SCENARIOS=${BENCH_SCENARIOS:-"a f g d b c"}
ROUTES_B=${BENCH_ROUTES_B:-10000}
ROUTES_C=${BENCH_ROUTES_C:-100000}
CHURN_RATE=${BENCH_CHURN_RATE:-10}
CHURN_POOL=50
LOAD_CONNS=${BENCH_LOAD_CONNS:-4}
LOAD_SEQ=${BENCH_LOAD_SEQ:-1000}
LOAD_LIMIT=${BENCH_LOAD_LIMIT:-$([[ $MODE == quick ]] && echo 120 || echo 600)}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
LOAD_CPU=${BENCH_LOAD_CPU:-0}
OUT_DIR=${BENCH_OUT:-$HERE/results}
MAX_SECONDS=${BENCH_MAX_SECONDS:-3600}
PORTICO_BIN=${PORTICO_BIN:-$ROOT/target/release/portico}
# Like the nginx proxy (`access_log off`), Portico runs without its access log unless asked.
ACCESS_LOG=${BENCH_ACCESS_LOG:-off}
PERF=${BENCH_PERF:-0}
ADMIN_KEY=bench-admin-key

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- tools
need=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
if ((${#need[@]})); then
  [[ $(id -u) == 0 ]] || die "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root"
  log "installing ${need[*]} with apt-get"
  # Never start the system's nginx service: a policy-rc.d that refuses every start, only when
  # the machine has none of its own, removed right after.
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  ((made_policy)) && rm -f /usr/sbin/policy-rc.d
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $PORTICO_BIN ]] || die "no portico binary at $PORTICO_BIN (cargo build --release -p portico, or set PORTICO_BIN)"
[[ $(nproc) -gt $PROXY_CPU && $(nproc) -gt $LOAD_CPU ]] || die "needs cores $PROXY_CPU and $LOAD_CPU"

# ---------------------------------------------------------------- processes and cleanup
TMP=$(mktemp -d /tmp/portico-bench.XXXXXX)
PIDS=()          # plain processes we started
NGINX_PIDFILES=() # nginx masters we started (pid files)
CHURN_PID=
WATCHDOG_PID=

children_of() { # pids whose parent is $1
  local p=$1 f
  if [[ -r /proc/$p/task/$p/children ]]; then
    cat /proc/$p/task/*/children 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+$' || true
  else
    local f line d
    for f in /proc/[0-9]*/stat; do
      read -r line <"$f" 2>/dev/null || continue
      set -- ${line##*) }
      [[ ${2:-} == "$p" ]] && { d=${f%/stat}; echo "${d#/proc/}"; }
    done
  fi
}

stop_pid() { # stop_pid PID [SIGNAL]: signal, wait up to 10 s, then SIGKILL
  local pid=$1 sig=${2:-TERM} i
  [[ -n $pid && -d /proc/$pid ]] || return 0
  kill -"$sig" "$pid" 2>/dev/null || true
  for i in $(seq 100); do [[ -d /proc/$pid ]] || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

stop_nginx() { # stop_nginx PIDFILE: graceful quit of the master, then its workers by pid
  local pidfile=$1 master kids
  [[ -s $pidfile ]] || return 0
  master=$(cat "$pidfile")
  [[ -d /proc/$master ]] || return 0
  kids=$(children_of "$master")
  stop_pid "$master" QUIT
  for k in $kids; do stop_pid "$k" KILL; done
}

cleanup() {
  local rc=$?
  set +e
  [[ -n $CHURN_PID ]] && stop_pid "$CHURN_PID"
  for f in "${NGINX_PIDFILES[@]}"; do stop_nginx "$f"; done
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  [[ -n $WATCHDOG_PID ]] && kill "$WATCHDOG_PID" 2>/dev/null && wait "$WATCHDOG_PID" 2>/dev/null
  if ((rc != 0)) && [[ -s ${RESULTS:-} ]]; then # keep the runs measured so far
    mkdir -p "$OUT_DIR" && cp "$RESULTS" "$OUT_DIR/$(date +%Y-%m-%d-%H%M)-incomplete.jsonl" \
      && log "runs so far kept in $OUT_DIR/$(date +%Y-%m-%d-%H%M)-incomplete.jsonl"
  fi
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Hard time limit: the watchdog ends this script (whose EXIT trap cleans up).
(
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  sleep "$MAX_SECONDS" & sp=$!
  wait "$sp" && { echo "[bench] time limit of ${MAX_SECONDS}s reached" >&2; kill -TERM $$; }
) &
WATCHDOG_PID=$!

freeport() { "${LIB[@]}" freeport; }

start_nginx() { # start_nginx NAME CPU CONF: nginx with its own prefix, config, pid and logs
  local name=$1 cpu=$2 conf=$3 pidfile="$TMP/$1.pid" t0
  stop_nginx "$pidfile"
  rm -f "$pidfile"
  t0=$(date +%s.%N)
  taskset -c "$cpu" "$NGINX" -p "$TMP" -e "$TMP/$name-error.log" -c "$conf" \
    || { cat "$TMP/$name-error.log" >&2; die "nginx $name did not start with $conf"; }
  for _ in $(seq 300); do [[ -s $pidfile ]] && break; sleep 0.1; done
  [[ -s $pidfile ]] || die "nginx $name wrote no pid file"
  NGINX_PIDFILES+=("$pidfile")
  NGINX_START_SECS=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
}

nginx_pids() { # master then workers
  local master
  master=$(cat "$TMP/$1.pid")
  echo "$master" $(children_of "$master")
}

# ---------------------------------------------------------------- measuring
RESULTS="$TMP/results.jsonl"
: >"$RESULTS"

# cpu_ticks PID...: user:system clock ticks of the processes, summed
cpu_ticks() { local u=0 s=0 p v; for p in "$@"; do v=$(awk '{ s=$0; sub(/^.*\) /, "", s); split(s, a, " "); print a[12], a[13] }' "/proc/$p/stat"); u=$((u + ${v% *})); s=$((s + ${v#* })); done; echo "$u:$s"; }
# cpu_total PID...: their user + system clock ticks
cpu_total() { local t; t=$(cpu_ticks "$@"); echo $((${t%:*} + ${t#*:})); }

WRK_ARGS=()  # extra wrk arguments for the current scenario (request headers)
# measure TARGET SCENARIO CONNS ROUND URL RSS_PID PID...: warm-up, then one measured wrk run
measure() {
  local target=$1 sc=$2 c=$3 rnd=$4 url=$5 rss_pid=$6
  shift 6
  local pids=("$@") cpu0 cpu1 t0 t1 rss load1 out="$TMP/wrk-$sc-$target-$c-$rnd.txt"
  taskset -c "$LOAD_CPU" timeout $((WARMUP + 30)) wrk "${WRK_ARGS[@]}" -t1 -c"$c" -d"${WARMUP}s" "$url" >/dev/null
  load1=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(date +%s.%N)
  cpu0=$(cpu_ticks "${pids[@]}")
  local perf_pid=
  if [[ $PERF == 1 ]]; then
    taskset -c "$LOAD_CPU" perf stat -x, -e raw_syscalls:sys_enter,context-switches,page-faults \
      -p "$(IFS=,; echo "${pids[*]}")" -o "$out.perf" -- sleep "$DURATION" &
    perf_pid=$!
  fi
  taskset -c "$LOAD_CPU" timeout $((DURATION + 30)) \
    wrk "${WRK_ARGS[@]}" -t1 -c"$c" -d"${DURATION}s" --timeout 5s --latency "$url" >"$out"
  cpu1=$(cpu_ticks "${pids[@]}")
  if [[ -n $perf_pid ]]; then
    wait "$perf_pid" || true
    local n
    n=$(awk '/^Requests\/sec:/ { printf "%d", $2 * '"$DURATION"' }' "$out")
    awk -F, -v n="${n:-0}" '$3 == "raw_syscalls:sys_enter" { s = $1 } $3 == "context-switches" { c = $1 }
      $3 == "page-faults" { f = $1 }
      END { if (n > 0) printf "[bench]     perf: %.2f syscalls, %.3f context switches, %.3f page faults per request\n", s / n, c / n, f / n }' \
      "$out.perf" >&2
  fi
  t1=$(date +%s.%N)
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$rss_pid/status")
  "${LIB[@]}" record "$target" "$sc" "$c" "$rnd" "$out" "$cpu0" "$cpu1" "$t0" "$t1" "$rss" "$load1" \
    >>"$RESULTS"
}

# ---------------------------------------------------------------- upstream, Portico
UP_PORT=$(freeport)
"${LIB[@]}" upstream-conf "$TMP" "$UP_PORT" >"$TMP/upstream.conf"
start_nginx upstream "$LOAD_CPU" "$TMP/upstream.conf"
"${LIB[@]}" wait-route "http://127.0.0.1:$UP_PORT/hello" "" 10 >/dev/null || die "upstream does not answer"
log "upstream nginx on 127.0.0.1:$UP_PORT (core $LOAD_CPU)"

NGINX_PORT=$(freeport)
ADMIN_PORT=$(freeport)
PORTICO_PORT=$(freeport)
mkdir -p "$TMP/portico"
echo "{}" >"$TMP/portico/none.yaml"
PORTICO_PID=
start_portico() { # start_portico ROLE (up, or cp: the control plane alone) on the same data folder
  local role=$1
  [[ -n $PORTICO_PID ]] && stop_pid "$PORTICO_PID"
  (
    cd "$TMP/portico"
    export PORTICO_DATA="$TMP/portico/data" PORTICO_ADMIN_KEY="$ADMIN_KEY" \
      PORTICO_ADMIN_ADDR="127.0.0.1:$ADMIN_PORT" PORTICO_PROXY_ADDR="127.0.0.1:$PORTICO_PORT" \
      PORTICO_PROXY_TLS_ADDR=127.0.0.1:0 PORTICO_METRICS_ADDR=127.0.0.1:0 \
      PORTICO_PORTAL_ADDR=127.0.0.1:0 PORTICO_WORKERS=1 PORTICO_LOG=warn \
      PORTICO_ACCESS_LOG="$ACCESS_LOG" \
      PORTICO_CONFIG="$TMP/portico/none.yaml"
    exec taskset -c "$PROXY_CPU" "$PORTICO_BIN" "$role"
  ) >"$TMP/portico.out" 2>>"$TMP/portico.err" &
  PORTICO_PID=$!
  PIDS+=("$PORTICO_PID")
  for _ in $(seq 600); do grep -qx ready "$TMP/portico.out" 2>/dev/null && break; [[ -d /proc/$PORTICO_PID ]] || break; sleep 0.1; done
  grep -qx ready "$TMP/portico.out" || { tail -20 "$TMP/portico.err" >&2; die "portico $role did not start"; }
  ADMIN=$(sed -n 's/^admin API: //p' "$TMP/portico.out")
  log "portico $role pid $PORTICO_PID (core $PROXY_CPU, 1 worker): admin $ADMIN, proxy 127.0.0.1:$PORTICO_PORT"
}
start_portico up

# A second Portico with the one route only, measured in the same rounds as the route tables
# (b, c): "N routes ÷ one route" then compares runs seconds apart, not minutes (the machine's
# speed drifts over a run; nginx's own ratio shows it). Idle while the others are measured.
ONE_PID=
ONE_PORT=
start_portico_one() {
  [[ -n $ONE_PID ]] && return 0
  local admin_port admin
  ONE_PORT=$(freeport)
  admin_port=$(freeport)
  mkdir -p "$TMP/portico-one"
  echo "{}" >"$TMP/portico-one/none.yaml"
  (
    cd "$TMP/portico-one"
    export PORTICO_DATA="$TMP/portico-one/data" PORTICO_ADMIN_KEY="$ADMIN_KEY" \
      PORTICO_ADMIN_ADDR="127.0.0.1:$admin_port" PORTICO_PROXY_ADDR="127.0.0.1:$ONE_PORT" \
      PORTICO_PROXY_TLS_ADDR=127.0.0.1:0 PORTICO_METRICS_ADDR=127.0.0.1:0 \
      PORTICO_PORTAL_ADDR=127.0.0.1:0 PORTICO_STATUS_ADDR=127.0.0.1:0 PORTICO_WORKERS=1 \
      PORTICO_LOG=warn PORTICO_ACCESS_LOG="$ACCESS_LOG" PORTICO_CONFIG="$TMP/portico-one/none.yaml"
    exec taskset -c "$PROXY_CPU" "$PORTICO_BIN" up
  ) >"$TMP/portico-one.out" 2>>"$TMP/portico-one.err" &
  ONE_PID=$!
  PIDS+=("$ONE_PID")
  for _ in $(seq 600); do grep -qx ready "$TMP/portico-one.out" 2>/dev/null && break; [[ -d /proc/$ONE_PID ]] || break; sleep 0.1; done
  grep -qx ready "$TMP/portico-one.out" || { tail -20 "$TMP/portico-one.err" >&2; die "the one-route portico did not start"; }
  admin=$(sed -n 's/^admin API: //p' "$TMP/portico-one.out")
  curl -fsS -o /dev/null -X PUT "$admin/upstreams/1" -H "X-API-KEY: $ADMIN_KEY" \
    -d "{\"nodes\":{\"127.0.0.1:$UP_PORT\":1}}" || die "one-route portico: PUT upstream failed"
  curl -fsS -o /dev/null -X PUT "$admin/routes/1" -H "X-API-KEY: $ADMIN_KEY" \
    -d '{"uri":"/hello","upstream_id":"1"}' || die "one-route portico: PUT route failed"
  "${LIB[@]}" wait-route "http://127.0.0.1:$ONE_PORT/hello" "" 30 >/dev/null || die "one-route portico: /hello"
  log "one-route portico pid $ONE_PID (core $PROXY_CPU) on 127.0.0.1:$ONE_PORT, measured in the rounds of (b) and (c)"
}

admin_put() { # admin_put PATH JSON
  curl -fsS -o /dev/null -X PUT "$ADMIN$1" -H "X-API-KEY: $ADMIN_KEY" -H 'Content-Type: application/json' -d "$2" \
    || die "PUT $1 failed"
}
admin_put /upstreams/1 "{\"nodes\":{\"127.0.0.1:$UP_PORT\":1}}"
admin_put /routes/1 '{"uri":"/hello","upstream_id":"1"}'

# ---------------------------------------------------------------- scenarios
LOADS_JSON="$TMP/loads.jsonl"
: >"$LOADS_JSON"
NGINX_STARTS="$TMP/nginx-starts.txt"
: >"$NGINX_STARTS"
LOADED=0   # mixed routes r0..r{LOADED-1} are in Portico

nginx_with_routes() { # nginx_with_routes N: (re)start the nginx proxy with /hello plus N mixed routes
  "${LIB[@]}" proxy-conf "$TMP" "$NGINX_PORT" "$UP_PORT" "$1" >"$TMP/proxy.conf"
  start_nginx proxy "$PROXY_CPU" "$TMP/proxy.conf"
  echo "$1 $NGINX_START_SECS" >>"$NGINX_STARTS"
  log "nginx proxy with $1 routes on 127.0.0.1:$NGINX_PORT (core $PROXY_CPU), started in ${NGINX_START_SECS}s"
}

load_record() { # load_record RESULT_JSON FROM TO VIA [ROUTABLE_AFTER SETTLED_AFTER]
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.update({"from": int(sys.argv[2]), "to": int(sys.argv[3]), "via": sys.argv[4]}); r.update({"routable_after": float(sys.argv[5]), "settled_after": float(sys.argv[6])} if len(sys.argv) > 6 else {}); print(json.dumps(r))' "$@" >>"$LOADS_JSON"
}

portico_settle() { # waits (at most 600 s) until Portico uses < 5% CPU for 2 s; prints the seconds
  local t0 a b quiet=0 i
  t0=$(date +%s)
  a=$(cpu_total "$PORTICO_PID")
  for i in $(seq 600); do
    sleep 1
    b=$(cpu_total "$PORTICO_PID")
    if (((b - a) * 100 < 5 * $(getconf CLK_TCK))); then quiet=$((quiet + 1)); else quiet=0; fi
    a=$b
    ((quiet < 2)) || break
  done
  echo $(($(date +%s) - t0))
}

portico_with_routes() { # portico_with_routes N: add mixed routes until N are loaded
  local n=$1 seq=0 res last_path last_host t t0 ndone via=up
  ((n > LOADED)) || return 0
  ((LOADED < LOAD_SEQ)) && seq=$((LOAD_SEQ - LOADED))
  log "loading routes $LOADED..$((n - 1)) into Portico (portico up) through the Admin API"
  res=$("${LIB[@]}" load "$ADMIN" "$ADMIN_KEY" "$LOADED" "$n" "$LOAD_CONNS" "$seq" "$LOAD_LIMIT") \
    || die "loading routes failed"
  if [[ $res == *'"incomplete": true'* ]]; then
    # Too slow with the gateway running: load the rest into the control plane alone
    # (portico cp on the same data folder), then start portico up again, which compiles once.
    ndone=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["done"])' "$res")
    load_record "$res" "$LOADED" "$n" up
    log "loading hit the limit of ${LOAD_LIMIT}s at $((LOADED + ndone)) routes; loading the rest with portico cp"
    LOADED=$((LOADED + ndone))
    start_portico cp
    res=$("${LIB[@]}" load "$ADMIN" "$ADMIN_KEY" "$LOADED" "$n" "$LOAD_CONNS" 0 "$LOAD_LIMIT") \
      || die "loading routes failed"
    [[ $res != *'"incomplete": true'* ]] || { load_record "$res" "$LOADED" "$n" cp; return 1; }
    via=cp
    t0=$(date +%s.%N)
    start_portico up
    log "portico up restarted on $n routes in $(python3 -c "import time; print(round(time.time() - $t0, 2))")s"
  fi
  # The last route must route (through the gateway) before we measure.
  read -r last_path last_host < <("${LIB[@]}" route-spec $((n - 1)) | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(r["uri"].replace("*", "x"), (r.get("hosts") or ["-"])[0])')
  [[ $last_host == - ]] && last_host=""
  t=$("${LIB[@]}" wait-route "http://127.0.0.1:$PORTICO_PORT$last_path" "$last_host" 600) || die "route $((n - 1)) never routed"
  # Let the work that the changes started (snapshot compiles, last-known-good writes) finish,
  # so that it does not count against the proxy.
  settle=$(portico_settle)
  load_record "$res" "$LOADED" "$n" "$via" "$t" "$settle"
  log "portico idle again ${settle}s after the last route routed"
  log "loaded: $res; last route routes ${t}s after its PUT"
  LOADED=$n
}

check_both() { # check_both PATH [HOST]: both proxies answer 200 with the 1 KiB body
  "${LIB[@]}" wait-route "http://127.0.0.1:$NGINX_PORT$1" "${2:-}" 30 >/dev/null || die "nginx: $1 ${2:-}"
  "${LIB[@]}" wait-route "http://127.0.0.1:$PORTICO_PORT$1" "${2:-}" 60 >/dev/null || die "portico: $1 ${2:-}"
}

run_ab() { # run_ab SCENARIO PATH: rounds of nginx, Portico for each connection count
  local sc=$1 path=$2 c rnd
  for c in $CONNS; do
    for rnd in $(seq "$ROUNDS"); do
      measure nginx "$sc" "$c" "$rnd" "http://127.0.0.1:$NGINX_PORT$path" \
        "$(nginx_pids proxy | cut -d' ' -f2)" $(nginx_pids proxy)
      measure portico "$sc" "$c" "$rnd" "http://127.0.0.1:$PORTICO_PORT$path" "$PORTICO_PID" "$PORTICO_PID"
      if [[ ($sc == b || $sc == c) && -n $ONE_PID ]]; then
        measure portico-one "$sc" "$c" "$rnd" "http://127.0.0.1:$ONE_PORT/hello" "$ONE_PID" "$ONE_PID"
      fi
    done
  done
}

run_churn() { # run_churn SCENARIO PATH: rounds of Portico without and with route churn
  local sc=$1 path=$2 c rnd
  # The churn routes exist in both halves, so the table is the same.
  "${LIB[@]}" churn-init "$ADMIN" "$ADMIN_KEY" "$CHURN_POOL"
  for c in $CONNS; do
    for rnd in $(seq "$ROUNDS"); do
      measure portico-steady "$sc" "$c" "$rnd" "http://127.0.0.1:$PORTICO_PORT$path" "$PORTICO_PID" "$PORTICO_PID"
      taskset -c "$LOAD_CPU" "${LIB[@]}" churn "$ADMIN" "$ADMIN_KEY" "$CHURN_RATE" "$CHURN_POOL" "$TMP/churn-count" &
      CHURN_PID=$!
      measure portico-churn "$sc" "$c" "$rnd" "http://127.0.0.1:$PORTICO_PORT$path" "$PORTICO_PID" "$PORTICO_PID"
      stop_pid "$CHURN_PID"; CHURN_PID=
      read -r changes secs <"$TMP/churn-count"
      log "  churn: $changes changes in ${secs}s"
      echo "$sc $c $rnd $changes $secs" >>"$TMP/churn-log.txt"
    done
  done
  "${LIB[@]}" unchurn "$ADMIN" "$ADMIN_KEY" "$CHURN_POOL"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
START_TIME=$(date +%s)
log "mode $MODE: ${DURATION}s runs after ${WARMUP}s warm-up, $ROUNDS rounds, c=[$CONNS], scenarios [$SCENARIOS]; load average $LOAD_START"
for sc in $SCENARIOS; do
  case $sc in
    a)
      log "scenario (a): one route"
      nginx_with_routes 0
      check_both /hello
      run_ab a /hello ;;
    b|c)
      if [[ $sc == b ]]; then n=$ROUTES_B; else n=$ROUTES_C; fi
      log "scenario ($sc): $n mixed routes"
      if ! portico_with_routes "$n"; then
        log "scenario ($sc) skipped: loading $n routes takes longer than ${LOAD_LIMIT}s"
        break
      fi
      nginx_with_routes "$n"
      path=$("${LIB[@]}" target-path "$n")
      check_both "$path"
      ti=$((n / 2 / 10 * 10))
      check_both "/pfx$((ti + 4))/api/x"
      check_both /api/x "h$((ti + 8)).example.com"
      start_portico_one
      run_ab "$sc" "$path" ;;
    f)
      # APISIX's own benchmark set-up: limit-count with a count never reached, and prometheus.
      log "scenario (f): one route with limit-count + prometheus"
      nginx_with_routes 0
      admin_put /plugin_configs/bench-f '{"plugins":{"limit-count":{"count":2000000000,"time_window":60,"rejected_code":503,"key":"remote_addr"},"prometheus":{}}}'
      admin_put /routes/1 '{"uri":"/hello","upstream_id":"1","plugin_config_id":"bench-f"}'
      check_both /hello
      run_ab f /hello
      admin_put /routes/1 '{"uri":"/hello","upstream_id":"1"}' ;;
    g)
      log "scenario (g): one route with key-auth + limit-count + prometheus"
      nginx_with_routes 0
      admin_put /consumers '{"username":"bench","plugins":{"key-auth":{"key":"bench-key"}}}'
      admin_put /plugin_configs/bench-g '{"plugins":{"key-auth":{},"limit-count":{"count":2000000000,"time_window":60,"rejected_code":503,"key":"remote_addr"},"prometheus":{}}}'
      admin_put /routes/1 '{"uri":"/hello","upstream_id":"1","plugin_config_id":"bench-g"}'
      WRK_ARGS=(-H "apikey: bench-key")
      "${LIB[@]}" wait-route "http://127.0.0.1:$PORTICO_PORT/hello" "" 30 >/dev/null 2>&1 || true
      curl -fsS -o /dev/null -H "apikey: bench-key" "http://127.0.0.1:$PORTICO_PORT/hello" || die "portico: key-auth route"
      run_ab g /hello
      WRK_ARGS=()
      admin_put /routes/1 '{"uri":"/hello","upstream_id":"1"}' ;;
    d)
      log "scenario (d): one route, $CHURN_RATE route changes per second"
      "${LIB[@]}" wait-route "http://127.0.0.1:$PORTICO_PORT/hello" "" 30 >/dev/null || die "portico: /hello"
      run_churn d /hello ;;
    e)
      log "scenario (e): $LOADED routes, $CHURN_RATE route changes per second"
      ((LOADED > 0)) || die "scenario e runs after b or c"
      run_churn e "$("${LIB[@]}" target-path "$LOADED")" ;;
    *) die "unknown scenario $sc" ;;
  esac
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(($(date +%s) - START_TIME))

# ---------------------------------------------------------------- report
mkdir -p "$OUT_DIR"
STAMP=$(date +%Y-%m-%d-%H%M)
[[ $MODE == quick ]] && STAMP="$STAMP-quick"
OUT="$OUT_DIR/$STAMP.md"
python3 - "$TMP/meta.json" "$LOADS_JSON" "$NGINX_STARTS" <<EOF
import json, sys
loads = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
starts = {}
for l in open(sys.argv[3]):
    n, s = l.split()
    starts[f"{int(n):,}"] = float(s)
json.dump({"loads": loads, "nginx_start": starts,
           "sizes": {"b": $ROUTES_B, "c": $ROUTES_C, "e": $LOADED}}, open(sys.argv[1], "w"))
EOF
# Which source the binary is from: BENCH_PORTICO_REV names it (for a binary built elsewhere),
# else this checkout's commit.
if [[ -n ${BENCH_PORTICO_REV:-} ]]; then
  REV=$BENCH_PORTICO_REV DIRTY=
else
  REV="commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  DIRTY=$(git -C "$ROOT" --no-optional-locks status --porcelain 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
fi
{
  echo "# Portico vs nginx — $(date '+%Y-%m-%d %H:%M %Z') ($MODE mode)"
  echo
  echo "Command: \`${COMMAND% }\`$( [[ -n ${BENCH_SCENARIOS:-}${BENCH_DURATION:-}${BENCH_ROUNDS:-} ]] && echo " with BENCH_SCENARIOS='$SCENARIOS' BENCH_DURATION=$DURATION BENCH_ROUNDS=$ROUNDS")"
  echo
  echo "- Machine: $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
  echo "- Load average (1/5/15 min): $LOAD_START at the start, $LOAD_END at the end; 1-min load before each run: $(python3 -c "
import json; v = [json.loads(l)['load1'] for l in open('$RESULTS') if l.strip()]
print(f'{min(v):.2f}–{max(v):.2f}' if v else '—')") (wrk + upstream + proxy alone account for about 2)"
  echo "- Portico: \`$PORTICO_BIN\` at $REV$DIRTY, PORTICO_WORKERS=1; $($NGINX -v 2>&1 | sed 's/.*: //'), worker_processes 1; $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
  echo "- Proxies on core $PROXY_CPU; wrk (-t1), the upstream (nginx, 1 worker, 1 KiB body) and helpers on core $LOAD_CPU"
  echo "- ${DURATION}s per run after ${WARMUP}s warm-up; $ROUNDS rounds alternating nginx, Portico (A B A B); medians; total ${ELAPSED}s"
  if [[ -s $TMP/churn-log.txt ]]; then
    echo "- Churn achieved: $(awk '{ n += $4; s += $5 } END { printf "%.1f changes/s over %d runs", n / s, NR }' "$TMP/churn-log.txt")"
  fi
  echo
  "${LIB[@]}" report "$RESULTS" "$TMP/meta.json"
  echo
  echo "<details><summary>raw runs (JSON lines)</summary>"
  echo
  echo '```'
  cat "$RESULTS"
  echo '```'
  echo "</details>"
} >"$OUT"
cat "$OUT"
log "written to ${OUT#$ROOT/}"
