#!/usr/bin/env bash
# CPU instructions per proxied request, Portico against nginx, counted by valgrind (callgrind).
# Unlike bench/run.sh this does not depend on a quiet machine: it counts user-space instructions,
# which other work on the machine does not change. See docs/benchmarks.md.
#
#   bench/instructions.sh              both proxies, 20,000 requests each over 50 connections
#
# Settings (environment):
#   PORTICO_BIN          portico binary (default: target/release/portico of this checkout)
#   INSTR_TARGETS        which proxies, in that order           ("nginx portico")
#   INSTR_REQUESTS       requests counted per proxy             (20000)
#   INSTR_WARMUP         requests before counting starts        (2000)
#   INSTR_CONNS          keep-alive client connections          (50)
#   INSTR_IDLE           seconds of idle measured for the baseline (5)
#   INSTR_ROUTE          Portico's route: bare, f (limit-count + prometheus) or g (key-auth +
#                        limit-count + prometheus), as the scenarios of bench/run.sh  (bare)
#   INSTR_ROUTES=N       also load N mixed routes into Portico (bench/lib.py's table, as scenarios
#                        b/c of bench/run.sh: /hello plus N routes) and drive the path of that
#                        scenario (`lib.py target-path N`) instead of /hello. The routes are loaded
#                        once into `portico cp` without valgrind; each Portico run then starts on a
#                        copy of that data folder and compiles them once; counting starts once it
#                        is idle again (below 5% of a core for 2 s)        (0: /hello alone)
#   INSTR_ROUTES_DATA=DIR  keep the data folder with the loaded routes in DIR, and load nothing
#                        when DIR already holds one (same INSTR_ROUTES and INSTR_ROUTE)
#   INSTR_CACHESIM=1     simulate the caches in callgrind (--cache-sim=yes) and report D1 and LL
#                        misses per request (deterministic, unlike hardware counters)
#   INSTR_ACCESS_LOG     Portico's access log: on (to a file, as bench/run.sh runs it) or off
#                        (as the nginx proxy runs)                 (on)
#   INSTR_SYSCALLS=0     skip the syscall count (a run without valgrind, under `perf stat`)
#   INSTR_KEEP=DIR       keep the callgrind files (callgrind_annotate DIR/portico.load) in DIR
#
# For each proxy: start it under `valgrind --tool=callgrind` (nginx with one process:
# `master_process off`), send the warm-up requests, count an idle period (`callgrind_control
# --zero`, sleep, `--dump`) for the baseline rate, then count the measured requests the same way.
# Instructions per request = (counted - idle rate x duration) / requests. User space only: the
# kernel's share (loopback TCP, wake-ups) is not in it; the syscall count stands in for it.
# valgrind counts every byte that `rep movsb`/`rep stosb` moves as one instruction, so large
# memcpy/memset weigh far more here than on the CPU: their share is shown on its own.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
LIB=(python3 "$HERE/lib.py")
TARGETS=${INSTR_TARGETS:-"nginx portico"}
REQUESTS=${INSTR_REQUESTS:-20000}
WARMUP=${INSTR_WARMUP:-2000}
CONNS=${INSTR_CONNS:-50}
IDLE=${INSTR_IDLE:-5}
SYSCALLS=${INSTR_SYSCALLS:-1}
PORTICO_BIN=${PORTICO_BIN:-$ROOT/target/release/portico}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

log() { printf '[instructions %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in valgrind callgrind_control python3 curl; do
  command -v $tool >/dev/null || die "needs $tool"
done
[[ -x $NGINX ]] || die "needs nginx"
[[ $TARGETS != *portico* || -x $PORTICO_BIN ]] || die "no portico binary at $PORTICO_BIN"

TMP=$(mktemp -d /tmp/portico-instr.XXXXXX)
PIDS=()
cleanup() {
  local rc=$? p i
  set +e
  for p in "${PIDS[@]}"; do
    [[ -d /proc/$p ]] || continue
    kill -TERM "$p" 2>/dev/null
    for i in $(seq 100); do [[ -d /proc/$p ]] || break; sleep 0.1; done
    [[ -d /proc/$p ]] && kill -KILL "$p" 2>/dev/null
  done
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# The load: CONNS keep-alive connections, REQUESTS GETs in all, each answer checked (200 and
# the 1 KiB body). Prints the seconds it took.
cat >"$TMP/drive.py" <<'EOF'
import selectors, socket, sys, time
host, port, path, total, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
extra = "".join(h + "\r\n" for h in sys.argv[6:])
req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: instructions\r\n{extra}\r\n".encode()
sel = selectors.DefaultSelector()
sent = done = 0
class Conn:
    def __init__(self):
        self.s = socket.create_connection((host, port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
def send(c):
    global sent
    if sent < total:
        sent += 1
        c.s.sendall(req)
        return True
    return False
t0 = time.monotonic()
for _ in range(min(conns, total)):
    c = Conn()
    sel.register(c.s, selectors.EVENT_READ, c)
    send(c)
open_conns = min(conns, total)
while open_conns:
    for key, _ in sel.select(timeout=60):
        c = key.data
        data = c.s.recv(65536)
        if not data:
            sys.exit("connection closed by the proxy")
        c.buf += data
        while True:
            end = c.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = c.buf[:end].decode("latin-1").lower()
            if not head.startswith("http/1.1 200"):
                sys.exit("unexpected answer: " + head.splitlines()[0])
            length = None
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name == "content-length":
                    length = int(value)
            if length is None:
                sys.exit("answer without content-length")
            if len(c.buf) < end + 4 + length:
                break
            if length != 1024:
                sys.exit(f"body of {length} bytes")
            c.buf = c.buf[end + 4 + length:]
            done += 1
            if not send(c):
                sel.unregister(c.s)
                c.s.close()
                open_conns -= 1
print(f"{time.monotonic() - t0:.3f}")
EOF
ROUTE=${INSTR_ROUTE:-bare}
ROUTES=${INSTR_ROUTES:-0}
CACHESIM=${INSTR_CACHESIM:-0}
DRIVE_PATH=/hello
((ROUTES > 0)) && DRIVE_PATH=$("${LIB[@]}" target-path "$ROUTES")
DRIVE_HEADERS=()
case $ROUTE in
  bare | f) ;;
  g) DRIVE_HEADERS=("apikey: bench-key") ;;
  *) die "unknown INSTR_ROUTE $ROUTE (bare, f or g)" ;;
esac
drive() { python3 "$TMP/drive.py" 127.0.0.1 "$1" "$DRIVE_PATH" "$2" "$CONNS" "${DRIVE_HEADERS[@]}"; }

# Total instructions in the callgrind file dumped last for PID, D1 and LL misses (0 without
# INSTR_CACHESIM), and the instructions in memcpy/memset.
dumped_ir() {
  local pid=$1 f
  f=$(ls -t "$TMP/cg/callgrind.$pid".* 2>/dev/null | head -1)
  [[ -n $f ]] || die "no callgrind dump for $pid"
  echo "$f" >"$TMP/last-dump"
  # events: Ir [Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw]
  echo "$(awk '/^(summary|totals):/ { print $2, $6 + $7, $8 + $9 + $10; exit }' "$f")" \
    "$(callgrind_annotate --threshold=100 --auto=no "$f" 2>/dev/null \
      | awk '/__mem(cpy|move|set)/ { gsub(",", "", $1); s += $1 } END { print s + 0 }')"
}

# settle PID: waits (at most 600 s) until PID uses below 5% of a core for 2 s (after a big
# config, the work it started: last-known-good writes, freeing the replaced snapshot)
settle() {
  local a b quiet=0 t0=$SECONDS
  a=$("${LIB[@]}" cpu "$1")
  while ((quiet < 2 && SECONDS - t0 < 600)); do
    sleep 1
    b=$("${LIB[@]}" cpu "$1")
    if (((b - a) * 100 < 5 * $(getconf CLK_TCK))); then quiet=$((quiet + 1)); else quiet=0; fi
    a=$b
  done
  log "idle again after $((SECONDS - t0)) s"
}

control() { callgrind_control "$@" >/dev/null 2>&1 || die "callgrind_control $* failed"; }

# count NAME PORT PID: prints "instructions/request idle-rate seconds memcpy+memset/request"
count() {
  local name=$1 port=$2 pid=$3 idle_ir idle_d1 idle_ll idle_mem secs load_ir load_d1 load_ll load_mem
  log "$name: warm-up, $WARMUP requests"
  drive "$port" "$WARMUP" >/dev/null || die "$name: warm-up failed"
  sleep 1
  ((ROUTES == 0)) || settle "$pid"
  control -z "$pid"
  sleep "$IDLE"
  control -d "$pid"
  read -r idle_ir idle_d1 idle_ll idle_mem < <(dumped_ir "$pid")
  [[ -n ${INSTR_KEEP:-} ]] && cp "$(cat "$TMP/last-dump")" "$INSTR_KEEP/$name.idle"
  log "$name: counting $REQUESTS requests over $CONNS connections"
  control -z "$pid"
  secs=$(drive "$port" "$REQUESTS") || die "$name: load failed"
  control -d "$pid"
  read -r load_ir load_d1 load_ll load_mem < <(dumped_ir "$pid")
  [[ -n ${INSTR_KEEP:-} ]] && cp "$(cat "$TMP/last-dump")" "$INSTR_KEEP/$name.load"
  python3 -c "
idle, load, secs, n, idle_secs = $idle_ir, $load_ir, $secs, $REQUESTS, $IDLE
rate = idle / idle_secs
per = lambda load, idle: (load - idle / idle_secs * secs) / n
print(round((load - rate * secs) / n), round(rate), secs, round(per($load_mem, $idle_mem)),
      round(per($load_d1, $idle_d1), 1), round(per($load_ll, $idle_ll), 1))"
}

# syscalls NAME PORT PID...: syscalls and context switches per request, without valgrind, and the
# first process's RSS in MB afterwards.
syscalls() {
  local name=$1 port=$2
  shift 2
  local pids
  pids=$(IFS=,; echo "$*")
  drive "$port" "$WARMUP" >/dev/null
  ((ROUTES == 0)) || settle "$1"
  perf stat -x, -e raw_syscalls:sys_enter,context-switches,page-faults -p "$pids" -o "$TMP/perf-$name.txt" \
    -- python3 "$TMP/drive.py" 127.0.0.1 "$port" "$DRIVE_PATH" "$REQUESTS" "$CONNS" "${DRIVE_HEADERS[@]}" >/dev/null 2>&1 \
    || { echo "- - -"; return; }
  awk -F, -v n="$REQUESTS" -v rss="$(("$("${LIB[@]}" rss "$1")" / 1024))" \
    '$3 == "raw_syscalls:sys_enter" { s = $1 } $3 == "context-switches" { c = $1 }
    $3 == "page-faults" { f = $1 }
    END { if (s == "") print "- -", rss; else printf "%.2f %.2f %d %.3f\n", s / n, c / n, rss, f / n }' "$TMP/perf-$name.txt"
}

mkdir -p "$TMP/cg"
[[ -n ${INSTR_KEEP:-} ]] && mkdir -p "$INSTR_KEEP"
VG=(valgrind --tool=callgrind --callgrind-out-file="$TMP/cg/callgrind.%p" --dump-instr=no)
[[ $CACHESIM == 1 ]] && VG+=(--cache-sim=yes)
[[ $SYSCALLS == 1 ]] && ! perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1 && SYSCALLS=0

UP_PORT=$("${LIB[@]}" freeport)
"${LIB[@]}" upstream-conf "$TMP" "$UP_PORT" >"$TMP/upstream.conf"
"$NGINX" -p "$TMP" -e "$TMP/upstream-error.log" -c "$TMP/upstream.conf" || die "upstream nginx did not start"
for _ in $(seq 100); do [[ -s $TMP/upstream.pid ]] && break; sleep 0.1; done
PIDS+=("$(cat "$TMP/upstream.pid")")
"${LIB[@]}" wait-route "http://127.0.0.1:$UP_PORT/hello" "" 10 >/dev/null || die "upstream does not answer"
log "upstream nginx on 127.0.0.1:$UP_PORT"

# start_nginx_proxy [valgrind...]: the nginx proxy as one process (no master), in the foreground
start_nginx_proxy() {
  "${LIB[@]}" proxy-conf "$TMP" "$NGINX_PORT" "$UP_PORT" "$ROUTES" \
    | sed 's/^daemon on;/daemon off;/; s/^master_process on;/master_process off;/' >"$TMP/proxy.conf"
  "$@" "$NGINX" -p "$TMP" -e "$TMP/proxy-error.log" -c "$TMP/proxy.conf" \
    >"$TMP/nginx.out" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  "${LIB[@]}" wait-route "http://127.0.0.1:$NGINX_PORT$DRIVE_PATH" "" 600 >/dev/null || die "nginx proxy does not answer"
}

# launch_portico ROLE DATA [valgrind...]: portico ROLE (up: one worker) on the data folder DATA;
# sets PID and ADMIN
launch_portico() {
  local role=$1 data=$2
  shift 2
  (
    cd "$data"
    export PORTICO_DATA="$data/data" PORTICO_ADMIN_KEY=instr-admin-key \
      PORTICO_ADMIN_ADDR="127.0.0.1:$ADMIN_PORT" PORTICO_PROXY_ADDR="127.0.0.1:$PORTICO_PORT" \
      PORTICO_PROXY_TLS_ADDR=127.0.0.1:0 PORTICO_METRICS_ADDR=127.0.0.1:0 \
      PORTICO_PORTAL_ADDR=127.0.0.1:0 PORTICO_STATUS_ADDR=127.0.0.1:0 PORTICO_WORKERS=1 \
      PORTICO_LOG=warn PORTICO_CONFIG="$data/none.yaml"
    [[ ${INSTR_ACCESS_LOG:-on} == off ]] && export PORTICO_ACCESS_LOG=off
    exec "$@" "$PORTICO_BIN" "$role"
  ) >"$TMP/portico.out" 2>"$TMP/portico.err" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 6000); do
    grep -qx ready "$TMP/portico.out" 2>/dev/null && break
    [[ -d /proc/$PID ]] || break
    sleep 0.1
  done
  grep -qx ready "$TMP/portico.out" || { tail -20 "$TMP/portico.err" >&2; die "portico did not start"; }
  ADMIN=$(sed -n 's/^admin API: //p' "$TMP/portico.out")
}

# put_upstream ADMIN: upstream 1, the upstream nginx of this run
put_upstream() {
  curl -fsS -o /dev/null -X PUT "$1/upstreams/1" -H "X-API-KEY: instr-admin-key" \
    -d "{\"nodes\":{\"127.0.0.1:$UP_PORT\":1}}" || die "PUT upstream failed"
}

# configure ADMIN: the upstream and route 1 (/hello, with the plugins of INSTR_ROUTE)
configure() {
  local admin=$1
  put_upstream "$admin"
  local put=(curl -fsS -o /dev/null -X PUT -H "X-API-KEY: instr-admin-key")
  local limit='"limit-count":{"count":2000000000,"time_window":60,"rejected_code":503,"key":"remote_addr"}'
  case $ROUTE in
    bare) "${put[@]}" "$admin/routes/1" -d '{"uri":"/hello","upstream_id":"1"}' || die "PUT route failed" ;;
    f)
      "${put[@]}" "$admin/plugin_configs/f" -d "{\"plugins\":{$limit,\"prometheus\":{}}}" || die "PUT template failed"
      "${put[@]}" "$admin/routes/1" -d '{"uri":"/hello","upstream_id":"1","plugin_config_id":"f"}' || die "PUT route failed" ;;
    g)
      "${put[@]}" "$admin/consumers" -d '{"username":"bench","plugins":{"key-auth":{"key":"bench-key"}}}' || die "PUT consumer failed"
      "${put[@]}" "$admin/plugin_configs/g" -d "{\"plugins\":{\"key-auth\":{},$limit,\"prometheus\":{}}}" || die "PUT template failed"
      "${put[@]}" "$admin/routes/1" -d '{"uri":"/hello","upstream_id":"1","plugin_config_id":"g"}' || die "PUT route failed" ;;
  esac
}

# preload_routes DATA: the configuration and the INSTR_ROUTES mixed routes, PUT into `portico cp`
# (no valgrind, no gateway compiling along) on the data folder DATA
preload_routes() {
  local data=$1
  mkdir -p "$data"
  echo "{}" >"$data/none.yaml"
  launch_portico cp "$data"
  configure "$ADMIN"
  log "portico: loading $ROUTES mixed routes"
  "${LIB[@]}" load "$ADMIN" instr-admin-key 0 "$ROUTES" 4 >"$TMP/load.json" || die "loading routes failed"
  log "portico: loaded $(cat "$TMP/load.json")"
  stop "$PID"
}

# start_portico [valgrind...]: portico up (one worker) with /hello routed to the upstream, and
# the preloaded routes with INSTR_ROUTES
start_portico() {
  local data="$TMP/portico-$RANDOM"
  if ((ROUTES > 0)); then
    local loaded=${INSTR_ROUTES_DATA:-$TMP/preloaded}
    [[ -d $loaded ]] || preload_routes "$loaded"
    cp -a "$loaded" "$data"
    # This run's upstream port, written without a gateway compiling along.
    launch_portico cp "$data"
    put_upstream "$ADMIN"
    stop "$PID"
    launch_portico up "$data" "$@"
  else
    mkdir -p "$data"
    echo "{}" >"$data/none.yaml"
    launch_portico up "$data" "$@"
    configure "$ADMIN"
  fi
  local h=()
  [[ $ROUTE == g && $DRIVE_PATH == /hello ]] && h=(-H "apikey: bench-key")
  for _ in $(seq 6000); do
    curl -fsS -o /dev/null "${h[@]}" "http://127.0.0.1:$PORTICO_PORT$DRIVE_PATH" 2>/dev/null && return 0
    [[ -d /proc/$PID ]] || break
    sleep 0.1
  done
  die "portico does not route $DRIVE_PATH"
}

stop() { # stop PID
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 300); do [[ -d /proc/$1 ]] || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}

declare -A RESULT SYS
for target in $TARGETS; do
  case $target in
    nginx)
      NGINX_PORT=$("${LIB[@]}" freeport)
      start_nginx_proxy "${VG[@]}"
      RESULT[nginx]=$(count nginx "$NGINX_PORT" "$PID")
      stop "$PID"
      if [[ $SYSCALLS == 1 ]]; then
        start_nginx_proxy
        SYS[nginx]=$(syscalls nginx "$NGINX_PORT" "$PID")
        stop "$PID"
      fi
      ;;
    portico)
      ADMIN_PORT=$("${LIB[@]}" freeport)
      PORTICO_PORT=$("${LIB[@]}" freeport)
      start_portico "${VG[@]}"
      RESULT[portico]=$(count portico "$PORTICO_PORT" "$PID")
      stop "$PID"
      if [[ $SYSCALLS == 1 ]]; then
        ADMIN_PORT=$("${LIB[@]}" freeport)
        PORTICO_PORT=$("${LIB[@]}" freeport)
        start_portico
        SYS[portico]=$(syscalls portico "$PORTICO_PORT" "$PID")
        stop "$PID"
      fi
      ;;
    *) die "unknown target $target" ;;
  esac
  log "$target: ${RESULT[$target]} (instructions/request, idle instructions/s, seconds, memcpy+memset/request, D1 and LL misses/request)"
done

echo "requests: $REQUESTS over $CONNS connections (after $WARMUP warm-up) to $DRIVE_PATH; 1 KiB body;" \
  "user-space instructions (callgrind); Portico route $ROUTE, $ROUTES mixed routes, access log ${INSTR_ACCESS_LOG:-on}"
printf '%-8s %14s %9s %15s %14s %11s %8s %7s %9s' proxy "instr/request" "x nginx" "memcpy+memset" "idle instr/s" "syscalls/r" "ctxsw/r" "RSS MB" "faults/r"
[[ $CACHESIM == 1 ]] && printf ' %10s %10s' "D1 miss/r" "LL miss/r"
echo
for target in $TARGETS; do
  read -r per idle _ mem d1 ll <<<"${RESULT[$target]}"
  read -r sc cs rss faults <<<"${SYS[$target]:-- - - -}"
  ratio=-
  [[ -n ${RESULT[nginx]:-} ]] && ratio=$(python3 -c "print(f'{$per / ${RESULT[nginx]%% *}:.2f}')")
  printf '%-8s %14s %9s %15s %14s %11s %8s %7s %9s' "$target" "$per" "$ratio" "$mem" "$idle" "$sc" "$cs" "$rss" "${faults:--}"
  [[ $CACHESIM == 1 ]] && printf ' %10s %10s' "$d1" "$ll"
  echo
done
