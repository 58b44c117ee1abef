#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# A Sluice cluster on loopback, without Docker: the topology of docker-compose.yml.
# ministack (S3) + N Sluice nodes on one bucket/prefix + HAProxy in front (round robin,
# h2c on both sides), its config generated from deploy/haproxy.cfg.
#
#   scripts/cluster.sh up <state dir>              start everything, wait until healthy, print
#                                                  SLUICE_ENDPOINT=... (eval-able) and return
#   scripts/cluster.sh down <state dir>            stop everything (data and logs stay in <state dir>)
#   scripts/cluster.sh status <state dir>          print the endpoints and what is running
#   scripts/cluster.sh kill-node <state dir> <i>   SIGKILL node i (1-based)
#   scripts/cluster.sh stop-node <state dir> <i>   SIGTERM node i (graceful) and wait for it to exit
#   scripts/cluster.sh restart-node <state dir> <i>  stop node i if running, start it again on the
#                                                  same port, wait until HAProxy sees it UP
#   scripts/cluster.sh run <state dir> -- <command...>
#                                                  up, run the command with SLUICE_ENDPOINT (and the
#                                                  S2_* client variables) exported, down; exits with
#                                                  the command's status
#
# Typical use:
#   eval "$(scripts/cluster.sh up /tmp/c1)"; s2 ...; scripts/cluster.sh down /tmp/c1
#
# Environment:
#   SLUICE_BIN              node binary (default <repo>/target/debug/sluice)
#   SLUICE_CLUSTER_NODES    number of nodes for `up` (default 3)
#   SLUICE_CLUSTER_BUCKET   bucket (default sluice-cluster)
#   SLUICE_CLUSTER_PREFIX   key prefix inside the bucket, shared by all nodes (default cluster)
#   SLUICE_CLUSTER_TIMEOUT  seconds to wait for anything to become healthy (default 60)
#   SLUICE_LB_PORT          pin the balancer's port (default: a free one)
#   SLUICE_NODE_ARGS        extra arguments for every `sluice serve` (word-split)
#   HAPROXY_BIN             haproxy binary (default: haproxy on PATH; installed with apt-get
#                           if missing and running as root)
#   SLUICE_KILL_WAIT_DOWN   kill-node waits until HAProxy marks the node DOWN (default 1; 0: don't)
#   RUST_LOG                passed to the nodes
#
# Layout of <state dir>: s3/ (ministack data), s3.ministack-state/, node<i>/{pid,port,log},
# lb/{pid,port,stats_port,haproxy.cfg,log}, cluster.conf, env (the printed variables).
# Only 127.0.0.1 is used: nodes, ministack and HAProxy all bind loopback.

set -euo pipefail

REPO_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
HAPROXY_TEMPLATE="$REPO_DIR/deploy/haproxy.cfg"

# shellcheck source=scripts/loopback-env.sh
source "$REPO_DIR/scripts/loopback-env.sh"

TIMEOUT="${SLUICE_CLUSTER_TIMEOUT:-60}"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '3,19p' "$0" >&2
  exit 2
}

# ------------------------------------------------------------------ helpers --

abs_dir() { mkdir -p -- "$1" && (cd -- "$1" && pwd -P); }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# True if PID is alive, not a zombie, and its command line contains $2.
alive() {
  local pid="$1" what="${2:-}" st
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  st="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [[ -n "$st" && "$st" != Z && "$st" != X ]] || return 1
  [[ -z "$what" ]] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$what"
}

read_file() { if [[ -f "$1" ]]; then cat -- "$1"; fi; }

# stop_pid <pid> <cmdline match> [grace seconds]: SIGTERM, then SIGKILL after the grace.
stop_pid() {
  local pid="$1" what="$2" grace="${3:-15}" deadline
  alive "$pid" "$what" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + grace))
  while alive "$pid"; do
    if ((SECONDS >= deadline)); then
      log "pid $pid still running ${grace}s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.05
  done
  wait_gone "$pid"
}

wait_gone() {
  local pid="$1" deadline=$((SECONDS + 10))
  while alive "$pid"; do
    ((SECONDS < deadline)) || die "pid $pid does not go away"
    sleep 0.05
  done
  # Reap it if it is our own child (in `run` mode); harmless otherwise.
  wait "$pid" 2>/dev/null || true
}

http_code() { # <url> [curl args...]: the status code, 000 if no answer
  local url="$1"
  shift
  curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 2 "$@" "$url" 2>/dev/null || true
}

load_conf() {
  [[ -f "$STATE/cluster.conf" ]] || die "$STATE is not a cluster state dir (no cluster.conf; run 'up' first)"
  # shellcheck source=/dev/null
  source "$STATE/cluster.conf"
}

node_bin() { printf '%s' "${SLUICE_BIN:-$REPO_DIR/target/debug/sluice}"; }

# ------------------------------------------------------------------- haproxy --

ensure_haproxy() {
  HAPROXY="${HAPROXY_BIN:-haproxy}"
  if command -v "$HAPROXY" >/dev/null 2>&1; then return 0; fi
  [[ -z "${HAPROXY_BIN:-}" ]] || die "HAPROXY_BIN=$HAPROXY_BIN is not executable"
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "haproxy not found; installing Debian's package"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >&2; then
      apt-get update -q >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >&2
    fi
    command -v haproxy >/dev/null 2>&1 || die "haproxy still missing after apt-get install"
    HAPROXY=haproxy
    return 0
  fi
  die "haproxy not found (install it: apt-get install -y haproxy, or set HAPROXY_BIN)"
}

# Debian bookworm's HAProxy 2.6.12 ends the client's HTTP/2 stream cleanly (END_STREAM)
# when a node dies in the middle of a response (seen: kill -9 during a read session), so
# the client takes a truncated read for a finished one. 3.2.0 resets the stream
# (RST_STREAM CANCEL), as it should. Versions in between were not tested.
warn_old_haproxy() {
  local v
  v="$("$HAPROXY" -v 2>/dev/null | sed -n 's/^HAProxy version \([0-9]*\.[0-9]*\).*/\1/p' | head -n 1)"
  case "$v" in
    1.* | 2.[0-6]) log "note: HAProxy $v may end HTTP/2 client streams cleanly when a node dies mid-response (seen with 2.6.12; 3.2.0 is fine); set HAPROXY_BIN to use a newer one" ;;
  esac
}

# Writes lb/haproxy.cfg: deploy/haproxy.cfg with its server block replaced by our nodes.
write_haproxy_cfg() {
  local servers="" i port
  if ! grep -q '^[[:space:]]*# BEGIN servers' "$HAPROXY_TEMPLATE" || ! grep -q '^[[:space:]]*# END servers' "$HAPROXY_TEMPLATE"; then
    die "$HAPROXY_TEMPLATE lacks the '# BEGIN servers' / '# END servers' markers"
  fi
  for ((i = 1; i <= NODES; i++)); do
    port="$(read_file "$STATE/node$i/port")"
    servers+="    server node$i 127.0.0.1:$port proto h2 check"$'\n'
  done
  awk -v servers="$servers" '
    /^[[:space:]]*# BEGIN servers/ { print "    # BEGIN servers (generated by scripts/cluster.sh)"; printf "%s", servers; skip = 1; next }
    /^[[:space:]]*# END servers/   { skip = 0 }
    !skip                          { print }
  ' "$HAPROXY_TEMPLATE" >"$STATE/lb/haproxy.cfg"
}

# CSV status of our backend's servers from the stats page: "<name> <status>" lines.
lb_server_states() {
  local stats_port
  stats_port="$(read_file "$STATE/lb/stats_port")"
  curl -s --noproxy '*' --max-time 2 "http://127.0.0.1:$stats_port/stats;csv" 2>/dev/null \
    | awk -F, '$1 == "sluice_nodes" && $2 != "BACKEND" && $2 != "FRONTEND" { print $2, $18 }' || true
}

# wait_lb_server <name> <UP|DOWN...>: until HAProxy reports that state for the server.
wait_lb_server() {
  local name="$1" want="$2" deadline=$((SECONDS + TIMEOUT)) state=""
  while :; do
    state="$(lb_server_states | awk -v n="$name" '$1 == n { print $2 }')"
    [[ "$state" == "$want"* ]] && return 0
    ((SECONDS < deadline)) || die "HAProxy does not report $name as $want within ${TIMEOUT}s (it says '${state:-nothing}')"
    alive "$(read_file "$STATE/lb/pid")" "$HAPROXY_MATCH" || die "haproxy exited; see $STATE/lb/log"
    sleep 0.1
  done
}

start_lb() {
  local port stats_port pid deadline code cfg="$STATE/lb/haproxy.cfg"
  mkdir -p "$STATE/lb"
  port="${SLUICE_LB_PORT:-$(free_port)}"
  stats_port="$(free_port)"
  printf '%s\n' "$port" >"$STATE/lb/port"
  printf '%s\n' "$stats_port" >"$STATE/lb/stats_port"
  write_haproxy_cfg
  export SLUICE_LB_BIND="127.0.0.1:$port" SLUICE_LB_STATS_BIND="127.0.0.1:$stats_port"
  "$HAPROXY" -c -q -f "$cfg" >>"$STATE/lb/log" 2>&1 || { tail -n 20 "$STATE/lb/log" >&2; die "invalid HAProxy config $cfg"; }
  # -db: stay in the foreground (we background it), logs go to stdout = lb/log.
  setsid "$HAPROXY" -db -f "$cfg" </dev/null >>"$STATE/lb/log" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$STATE/lb/pid"
  unset SLUICE_LB_BIND SLUICE_LB_STATS_BIND
  # Up when it answers GET /health through h2c and every node is UP in its view.
  deadline=$((SECONDS + TIMEOUT))
  while :; do
    alive "$pid" "$HAPROXY_MATCH" || { tail -n 20 "$STATE/lb/log" >&2; die "haproxy exited during startup"; }
    code="$(http_code "http://127.0.0.1:$port/health" --http2-prior-knowledge)"
    [[ "$code" == 200 ]] && break
    ((SECONDS < deadline)) || die "HAProxy at 127.0.0.1:$port does not answer /health with 200 within ${TIMEOUT}s (last: $code)"
    sleep 0.1
  done
  local i
  for ((i = 1; i <= NODES; i++)); do wait_lb_server "node$i" UP; done
  log "haproxy up at http://127.0.0.1:$port (pid $pid, stats http://127.0.0.1:$stats_port/stats)"
}

# --------------------------------------------------------------------- nodes --

# start_node <i>: start node i on its recorded port (a new free one the first time).
start_node() {
  local i="$1" dir="$STATE/node$1" bin port pid code deadline attempt fixed=0
  bin="$(node_bin)"
  [[ -x "$bin" ]] || die "no node binary at $bin (cargo build --bin sluice, or set SLUICE_BIN)"
  mkdir -p "$dir"
  local -a extra=()
  # shellcheck disable=SC2206  # word splitting is the point of this knob
  [[ -n "${SLUICE_NODE_ARGS:-}" ]] && extra=(${SLUICE_NODE_ARGS})
  [[ -s "$dir/port" ]] && fixed=1
  for attempt in 1 2 3; do
    if ((fixed)); then port="$(cat "$dir/port")"; else port="$(free_port)"; fi
    # setsid: the node outlives `up` and ignores Ctrl+C aimed at the caller's terminal.
    AWS_ENDPOINT_URL_S3="$S3_ENDPOINT" AWS_ENDPOINT_URL="$S3_ENDPOINT" \
      setsid "$bin" serve --host 127.0.0.1 --port "$port" --bucket "$BUCKET" --path "$PREFIX" \
      "${extra[@]}" </dev/null >>"$dir/log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$dir/pid"
    printf '%s\n' "$port" >"$dir/port"
    deadline=$((SECONDS + TIMEOUT))
    while alive "$pid"; do
      code="$(http_code "http://127.0.0.1:$port/health")"
      if [[ "$code" == 200 ]]; then
        log "node $i up at http://127.0.0.1:$port (pid $pid, log $dir/log)"
        return 0
      fi
      ((SECONDS < deadline)) || die "node $i does not answer /health with 200 within ${TIMEOUT}s (last: $code); see $dir/log"
      sleep 0.05
    done
    wait "$pid" 2>/dev/null || true
    log "node $i exited during startup (attempt $attempt, port $port); log tail:"
    tail -n 10 -- "$dir/log" >&2 || true
    ((fixed)) && die "node $i could not start on its port $port"
  done
  die "node $i could not start"
}

node_pid() { read_file "$STATE/node$1/pid"; }

check_node_index() {
  if [[ ! "$1" =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > NODES)); then die "no node '$1' (nodes are 1..$NODES)"; fi
}

# ----------------------------------------------------------------- commands --

print_env() {
  local i lb_port stats_port
  lb_port="$(read_file "$STATE/lb/port")"
  stats_port="$(read_file "$STATE/lb/stats_port")"
  {
    printf 'SLUICE_ENDPOINT=http://127.0.0.1:%s\n' "$lb_port"
    printf 'SLUICE_LB_PID=%s\n' "$(read_file "$STATE/lb/pid")"
    printf 'SLUICE_LB_STATS=http://127.0.0.1:%s/stats\n' "$stats_port"
    printf 'SLUICE_CLUSTER_NODES=%s\n' "$NODES"
    for ((i = 1; i <= NODES; i++)); do
      printf 'SLUICE_NODE_%s=http://127.0.0.1:%s\n' "$i" "$(read_file "$STATE/node$i/port")"
      printf 'SLUICE_NODE_%s_PID=%s\n' "$i" "$(node_pid "$i")"
    done
    printf 'MINISTACK_ENDPOINT=%s\n' "$S3_ENDPOINT"
    printf 'SLUICE_CLUSTER_BUCKET=%s\n' "$BUCKET"
    printf 'SLUICE_CLUSTER_PREFIX=%s\n' "$PREFIX"
  } >"$STATE/env"
  cat "$STATE/env"
}

everything_alive() {
  local i
  alive "$(read_file "$STATE/lb/pid")" "$HAPROXY_MATCH" || return 1
  for ((i = 1; i <= NODES; i++)); do alive "$(node_pid "$i")" "$(node_bin)" || return 1; done
  "$REPO_DIR/scripts/ministack.sh" status "$STATE/s3" >/dev/null 2>&1
}

anything_alive() {
  local i
  alive "$(read_file "$STATE/lb/pid")" "$HAPROXY_MATCH" && return 0
  for ((i = 1; i <= NODES; i++)); do alive "$(node_pid "$i")" "$(node_bin)" && return 0; done
  "$REPO_DIR/scripts/ministack.sh" status "$STATE/s3" >/dev/null 2>&1
}

cmd_up() {
  if [[ -f "$STATE/cluster.conf" ]]; then
    load_conf
    if everything_alive; then
      log "already up in $STATE"
      print_env
      return 0
    fi
    anything_alive && die "$STATE is partly running; run 'down' first"
  fi
  NODES="${SLUICE_CLUSTER_NODES:-3}"
  BUCKET="${SLUICE_CLUSTER_BUCKET:-sluice-cluster}"
  PREFIX="${SLUICE_CLUSTER_PREFIX:-cluster}"
  if [[ ! "$NODES" =~ ^[0-9]+$ ]] || ((NODES < 1)); then die "SLUICE_CLUSTER_NODES must be a positive number"; fi
  ensure_haproxy
  warn_old_haproxy
  command -v curl >/dev/null || die "curl is required"
  # Fresh ports every time (old ones may be taken by now); data stays.
  rm -rf -- "$STATE"/node*/port "$STATE"/node*/pid "$STATE/lb"

  # Undo everything on failure or interruption (the success path clears this trap).
  trap 'cmd_down_quiet' EXIT

  local out
  out="$("$REPO_DIR/scripts/ministack.sh" start "$STATE/s3" "$BUCKET")" || die "could not start ministack"
  [[ "$out" == MINISTACK_ENDPOINT=* ]] || die "unexpected output from ministack.sh: $out"
  S3_ENDPOINT="${out#MINISTACK_ENDPOINT=}"
  log "ministack at $S3_ENDPOINT, bucket $BUCKET, prefix $PREFIX"
  {
    printf 'NODES=%q\n' "$NODES"
    printf 'BUCKET=%q\n' "$BUCKET"
    printf 'PREFIX=%q\n' "$PREFIX"
    printf 'S3_ENDPOINT=%q\n' "$S3_ENDPOINT"
    printf 'HAPROXY=%q\n' "$HAPROXY"
  } >"$STATE/cluster.conf"

  local i
  for ((i = 1; i <= NODES; i++)); do start_node "$i"; done
  start_lb
  trap - EXIT
  print_env
}

cmd_down() {
  local i
  if [[ ! -f "$STATE/cluster.conf" ]]; then
    log "nothing to stop in $STATE"
    return 0
  fi
  load_conf
  stop_pid "$(read_file "$STATE/lb/pid")" "$HAPROXY_MATCH" 5
  for ((i = 1; i <= NODES; i++)); do
    stop_pid "$(node_pid "$i")" "$(node_bin)" 15
  done
  "$REPO_DIR/scripts/ministack.sh" stop "$STATE/s3" >/dev/null 2>&1 || true
  log "stopped (data and logs kept in $STATE)"
}

# For traps: never fails, keeps the exit status.
cmd_down_quiet() {
  local rc=$?
  set +e
  trap - EXIT
  cmd_down
  exit "$rc"
}

cmd_status() {
  load_conf
  local i pid
  print_env
  pid="$(read_file "$STATE/lb/pid")"
  if alive "$pid" "$HAPROXY_MATCH"; then log "haproxy: running (pid $pid)"; else log "haproxy: not running"; fi
  for ((i = 1; i <= NODES; i++)); do
    pid="$(node_pid "$i")"
    if alive "$pid" "$(node_bin)"; then log "node $i: running (pid $pid)"; else log "node $i: not running"; fi
  done
  lb_server_states | while read -r name st; do log "haproxy sees $name: $st"; done
}

cmd_kill_node() {
  load_conf
  check_node_index "$1"
  local pid
  pid="$(node_pid "$1")"
  alive "$pid" "$(node_bin)" || die "node $1 is not running"
  kill -KILL "$pid"
  wait_gone "$pid"
  log "node $1 (pid $pid) killed with SIGKILL"
  # Until its health checks fail (2 x 2s), HAProxy still picks the node for new
  # requests; those fail to connect and are redispatched (retry-on conn-failure).
  if [[ "${SLUICE_KILL_WAIT_DOWN:-1}" == 1 ]] && alive "$(read_file "$STATE/lb/pid")" "$HAPROXY_MATCH"; then
    local t0=$SECONDS
    wait_lb_server "node$1" DOWN
    log "HAProxy marked node$1 DOWN after ~$((SECONDS - t0))s"
  fi
}

cmd_stop_node() {
  load_conf
  check_node_index "$1"
  local pid
  pid="$(node_pid "$1")"
  alive "$pid" "$(node_bin)" || die "node $1 is not running"
  stop_pid "$pid" "$(node_bin)" 15
  log "node $1 (pid $pid) stopped with SIGTERM"
}

cmd_restart_node() {
  load_conf
  check_node_index "$1"
  local pid
  pid="$(node_pid "$1")"
  if alive "$pid" "$(node_bin)"; then
    stop_pid "$pid" "$(node_bin)" 15
    log "node $1 (pid $pid) stopped"
  fi
  start_node "$1"
  alive "$(read_file "$STATE/lb/pid")" "$HAPROXY_MATCH" && wait_lb_server "node$1" UP
  print_env >/dev/null
  printf 'SLUICE_NODE_%s=http://127.0.0.1:%s\nSLUICE_NODE_%s_PID=%s\n' \
    "$1" "$(read_file "$STATE/node$1/port")" "$1" "$(node_pid "$1")"
}

cmd_run() {
  [[ "${1:-}" == -- ]] && shift
  [[ $# -ge 1 ]] || die "run: no command given"
  cmd_up >/dev/null
  # From here on, always tear down (also on Ctrl+C).
  trap 'cmd_down_quiet' EXIT
  local line
  while IFS= read -r line; do export "${line?}"; done <"$STATE/env"
  export S2_ACCOUNT_ENDPOINT="$SLUICE_ENDPOINT" S2_BASIN_ENDPOINT="$SLUICE_ENDPOINT"
  export S2_ACCESS_TOKEN=ignored NO_COLOR=1
  log "running: $*"
  # In the background so that a signal to this script is handled at once (bash runs traps
  # only after a foreground command ends); stdin stays the caller's.
  "$@" <&0 &
  RUN_CHILD=$!
  trap 'stop_run_child 130' INT
  trap 'stop_run_child 143' TERM
  local rc=0
  wait "$RUN_CHILD" || rc=$?
  log "command exited with status $rc"
  exit "$rc"
}

# On INT/TERM during `run`: pass SIGTERM on to the command, wait for it, then exit (the
# EXIT trap tears the cluster down).
stop_run_child() {
  kill -TERM "$RUN_CHILD" 2>/dev/null || true
  wait "$RUN_CHILD" 2>/dev/null || true
  exit "$1"
}

# ---------------------------------------------------------------------- main --

[[ $# -ge 2 ]] || usage
CMD="$1"
STATE="$(abs_dir "$2")"
shift 2
HAPROXY_MATCH="$STATE/lb/haproxy.cfg"

trap 'exit 130' INT
trap 'exit 143' TERM

case "$CMD" in
  up) [[ $# -eq 0 ]] || usage; cmd_up ;;
  down) [[ $# -eq 0 ]] || usage; cmd_down ;;
  status) [[ $# -eq 0 ]] || usage; cmd_status ;;
  kill-node) [[ $# -eq 1 ]] || usage; cmd_kill_node "$1" ;;
  stop-node) [[ $# -eq 1 ]] || usage; cmd_stop_node "$1" ;;
  restart-node) [[ $# -eq 1 ]] || usage; cmd_restart_node "$1" ;;
  run) cmd_run "$@" ;;
  *) usage ;;
esac
