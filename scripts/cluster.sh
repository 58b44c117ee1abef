#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# A Sluice cluster on loopback, without Docker: the topology of docker-compose.yml.
# ministack (S3) + N Sluice nodes on one bucket/prefix + nginx in front (round robin,
# h2c to the nodes), its config generated from deploy/nginx.conf.
#
# The balancer has two ports (Debian's nginx 1.22 serves h2c and HTTP/1.1 on separate
# ones): SLUICE_ENDPOINT speaks h2c with prior knowledge (the S2 CLI and SDKs),
# SLUICE_HTTP1_ENDPOINT HTTP/1.1 (curl, SSE, the Redis-Streams API).
#
#   scripts/cluster.sh up <state dir>              start everything, wait until healthy, print
#                                                  SLUICE_ENDPOINT=... (eval-able) and return
#   scripts/cluster.sh down <state dir>            stop everything (data and logs stay in <state dir>)
#   scripts/cluster.sh status <state dir>          print the endpoints and what is running
#   scripts/cluster.sh kill-node <state dir> <i>   SIGKILL node i (1-based) and wait until its
#                                                  port is closed
#   scripts/cluster.sh stop-node <state dir> <i>   SIGTERM node i (graceful) and wait for it to exit
#   scripts/cluster.sh restart-node <state dir> <i>  stop node i if running, start it again on the
#                                                  same port, wait until it and the balancer
#                                                  answer /health (nginx tries the node again
#                                                  at most 2 s after it last failed there)
#   scripts/cluster.sh run <state dir> -- <command...>
#                                                  up, run the command with SLUICE_ENDPOINT,
#                                                  SLUICE_HTTP1_ENDPOINT (and the S2_* client
#                                                  variables) exported, down; exits with the
#                                                  command's status
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
#   SLUICE_LB_PORT          pin the balancer's h2c port (default: a free one)
#   SLUICE_LB_HTTP1_PORT    pin the balancer's HTTP/1.1 port (default: a free one)
#   SLUICE_NODE_ARGS        extra arguments for every `sluice serve` (word-split)
#   SLUICE_CLUSTER_PEERS    1 (default): every node gets `--peers` naming the others, so
#                           followers hear of other nodes' commits at once; 0: none (the
#                           nodes learn of each other's commits only by polling)
#   NGINX_BIN               nginx binary (default: nginx on PATH or /usr/sbin/nginx; Debian's
#                           package is installed with apt-get if missing and running as root)
#   RUST_LOG                passed to the nodes
#
# Layout of <state dir>: s3/ (ministack data), s3.ministack-state/, node<i>/{pid,port,log},
# lb/{pid,port,http1_port,nginx.conf,nginx.pid,tmp/,log}, cluster.conf, env (the printed
# variables). Only 127.0.0.1 is used: nodes, ministack and nginx all bind loopback.

set -euo pipefail

REPO_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
NGINX_TEMPLATE="$REPO_DIR/deploy/nginx.conf"

# shellcheck source=scripts/loopback-env.sh
source "$REPO_DIR/scripts/loopback-env.sh"

TIMEOUT="${SLUICE_CLUSTER_TIMEOUT:-60}"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '3,28p' "$0" >&2
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

# --------------------------------------------------------------------- nginx --

ensure_nginx() {
  NGINX="${NGINX_BIN:-nginx}"
  if command -v "$NGINX" >/dev/null 2>&1; then return 0; fi
  # Debian installs it in /usr/sbin, which a non-login root shell may lack on PATH.
  if [[ -z "${NGINX_BIN:-}" && -x /usr/sbin/nginx ]]; then NGINX=/usr/sbin/nginx; return 0; fi
  [[ -z "${NGINX_BIN:-}" ]] || die "NGINX_BIN=$NGINX_BIN is not executable"
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "nginx not found; installing Debian's package"
    # The package's own service is not used (and in a container not started at all).
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >&2; then
      apt-get update -q >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >&2
    fi
    if command -v nginx >/dev/null 2>&1; then NGINX=nginx; else NGINX=/usr/sbin/nginx; fi
    [[ -x "$(command -v "$NGINX")" ]] || die "nginx still missing after apt-get install"
    return 0
  fi
  die "nginx not found (install it: apt-get install -y nginx, or set NGINX_BIN)"
}

# Writes lb/nginx.conf: deploy/nginx.conf with its server block replaced by our nodes, its
# two listen ports moved to loopback, and temporary files kept in lb/tmp.
write_nginx_conf() {
  local servers="" i port h2_port h1_port marker out="$STATE/lb/nginx.conf"
  h2_port="$(read_file "$STATE/lb/port")"
  h1_port="$(read_file "$STATE/lb/http1_port")"
  for marker in '# BEGIN servers' '# END servers' 'listen 8080 http2;' 'listen 8081;' 'http {'; do
    [[ "$(grep -c "^[[:space:]]*$marker" "$NGINX_TEMPLATE")" == 1 ]] \
      || die "$NGINX_TEMPLATE must have exactly one line starting with '$marker'"
  done
  for ((i = 1; i <= NODES; i++)); do
    port="$(read_file "$STATE/node$i/port")"
    servers+="        server 127.0.0.1:$port max_fails=1 fail_timeout=2s;"$'\n'
  done
  mkdir -p "$STATE/lb/tmp"
  awk -v servers="$servers" -v h2="127.0.0.1:$h2_port" -v h1="127.0.0.1:$h1_port" -v tmp="$STATE/lb/tmp" '
    /^[[:space:]]*# BEGIN servers/ { print "        # BEGIN servers (generated by scripts/cluster.sh)"; printf "%s", servers; skip = 1; next }
    /^[[:space:]]*# END servers/   { skip = 0 }
    skip                           { next }
    /^[[:space:]]*listen 8080 http2;/ { sub(/8080/, h2) }
    /^[[:space:]]*listen 8081;/       { sub(/8081/, h1) }
    { print }
    /^http \{/ {
      print "    # scripts/cluster.sh: temporary files in its state directory"
      n = split("client_body proxy fastcgi uwsgi scgi", kinds, " ")
      for (k = 1; k <= n; k++) printf "    %s_temp_path %s/%s;\n", kinds[k], tmp, kinds[k]
    }
  ' "$NGINX_TEMPLATE" >"$out"
}

# nginx_args: the command-line arguments of our nginx (besides -t / -q).
nginx_args() {
  printf '%s\0' -p "$STATE/lb/" -c "$STATE/lb/nginx.conf" -e stderr \
    -g "daemon off; pid $STATE/lb/nginx.pid;"
}

start_lb() {
  local port h1_port pid deadline code cfg="$STATE/lb/nginx.conf"
  local -a args
  mkdir -p "$STATE/lb"
  port="${SLUICE_LB_PORT:-$(free_port)}"
  h1_port="${SLUICE_LB_HTTP1_PORT:-$(free_port)}"
  printf '%s\n' "$port" >"$STATE/lb/port"
  printf '%s\n' "$h1_port" >"$STATE/lb/http1_port"
  write_nginx_conf
  mapfile -d '' args < <(nginx_args)
  "$NGINX" -t -q "${args[@]}" >>"$STATE/lb/log" 2>&1 || { tail -n 20 "$STATE/lb/log" >&2; die "invalid nginx config $cfg"; }
  # daemon off: the master stays in the foreground (we background it); the access log
  # (/dev/stdout) and the error log (stderr) go to lb/log.
  setsid "$NGINX" "${args[@]}" </dev/null >>"$STATE/lb/log" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$STATE/lb/pid"
  # Up when it answers GET /health through both ports.
  deadline=$((SECONDS + TIMEOUT))
  while :; do
    alive "$pid" "$NGINX_MATCH" || { tail -n 20 "$STATE/lb/log" >&2; die "nginx exited during startup"; }
    code="$(http_code "http://127.0.0.1:$port/health" --http2-prior-knowledge)/$(http_code "http://127.0.0.1:$h1_port/health" --http1.1)"
    [[ "$code" == 200/200 ]] && break
    ((SECONDS < deadline)) || die "nginx at 127.0.0.1:$port (h2c) / $h1_port (HTTP/1.1) does not answer /health with 200 within ${TIMEOUT}s (last: $code)"
    sleep 0.1
  done
  log "nginx up at http://127.0.0.1:$port (h2c) and http://127.0.0.1:$h1_port (HTTP/1.1) (pid $pid, log $STATE/lb/log)"
}

# port_closed <port>: nothing accepts connections on 127.0.0.1:<port>.
port_closed() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

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
  if [[ "${PEERS:-1}" == 1 ]]; then
    local j peers=""
    for ((j = 1; j <= NODES; j++)); do
      ((j == i)) && continue
      peers+="${peers:+,}http://127.0.0.1:$(read_file "$STATE/node$j/port")"
    done
    if [[ -n "$peers" ]]; then extra+=(--peers "$peers"); fi
  fi
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
  local i
  {
    printf 'SLUICE_ENDPOINT=http://127.0.0.1:%s\n' "$(read_file "$STATE/lb/port")"
    printf 'SLUICE_HTTP1_ENDPOINT=http://127.0.0.1:%s\n' "$(read_file "$STATE/lb/http1_port")"
    printf 'SLUICE_LB_PID=%s\n' "$(read_file "$STATE/lb/pid")"
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
  alive "$(read_file "$STATE/lb/pid")" "$NGINX_MATCH" || return 1
  for ((i = 1; i <= NODES; i++)); do alive "$(node_pid "$i")" "$(node_bin)" || return 1; done
  "$REPO_DIR/scripts/ministack.sh" status "$STATE/s3" >/dev/null 2>&1
}

anything_alive() {
  local i
  alive "$(read_file "$STATE/lb/pid")" "$NGINX_MATCH" && return 0
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
  ensure_nginx
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
    printf 'NGINX=%q\n' "$NGINX"
    printf 'PEERS=%q\n' "${SLUICE_CLUSTER_PEERS:-1}"
  } >"$STATE/cluster.conf"
  PEERS="${SLUICE_CLUSTER_PEERS:-1}"

  local i
  # Every node's port is chosen before any starts: each names the others in --peers.
  for ((i = 1; i <= NODES; i++)); do
    mkdir -p "$STATE/node$i"
    free_port >"$STATE/node$i/port"
  done
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
  stop_pid "$(read_file "$STATE/lb/pid")" "$NGINX_MATCH" 5
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
  if alive "$pid" "$NGINX_MATCH"; then log "nginx: running (pid $pid)"; else log "nginx: not running"; fi
  for ((i = 1; i <= NODES; i++)); do
    pid="$(node_pid "$i")"
    if alive "$pid" "$(node_bin)"; then
      log "node $i: running (pid $pid), GET /health: $(http_code "http://127.0.0.1:$(read_file "$STATE/node$i/port")/health")"
    else
      log "node $i: not running"
    fi
  done
}

cmd_kill_node() {
  load_conf
  check_node_index "$1"
  local pid
  pid="$(node_pid "$1")"
  alive "$pid" "$(node_bin)" || die "node $1 is not running"
  kill -KILL "$pid"
  wait_gone "$pid"
  # nginx has no health checks of its own: the next request it sends there finds the port
  # closed, goes to another node (nothing was sent yet, so any request may) and the node
  # is skipped for fail_timeout. Streams open to the node were reset when it died.
  local port deadline=$((SECONDS + 10))
  port="$(read_file "$STATE/node$1/port")"
  until port_closed "$port"; do
    ((SECONDS < deadline)) || die "port $port of node $1 still accepts connections after SIGKILL"
    sleep 0.05
  done
  log "node $1 (pid $pid) killed with SIGKILL; port $port closed"
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
  # If every node had been marked failed, nginx answers 502 until a mark expires.
  if alive "$(read_file "$STATE/lb/pid")" "$NGINX_MATCH"; then
    local deadline=$((SECONDS + TIMEOUT))
    until [[ "$(http_code "http://127.0.0.1:$(read_file "$STATE/lb/http1_port")/health")" == 200 ]]; do
      ((SECONDS < deadline)) || die "nginx does not answer /health with 200 within ${TIMEOUT}s of restarting node $1"
      sleep 0.1
    done
  fi
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
NGINX_MATCH="$STATE/lb/nginx.conf"

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
