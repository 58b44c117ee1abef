# shellcheck shell=bash
# Shared harness for the local S3 servers used by Sluice's tests
# (scripts/ministack.sh, scripts/moto.sh). Not meant to be run directly:
# the front-end script sets the S3S_* variables below and then calls
# `s3s_main "$@"`.
#
# Required from the front-end:
#   S3S_NAME          short name, e.g. ministack / moto
#   S3S_PKG           pip requirement, e.g. ministack==1.5.33
#   S3S_VENV_NAME     venv dir name under the tools dir, e.g. ministack-venv
#   S3S_CHECK_BIN     executable (relative to the venv) that proves the install
#   S3S_ENDPOINT_VAR  name printed on stdout, e.g. MINISTACK_ENDPOINT
#   S3S_PORT_VAR      env var that pins the port, e.g. MINISTACK_PORT
#   S3S_HEALTH_PATH   path polled until it answers 2xx
#   s3s_command PORT DATA_DIR STATE_DIR  function that sets the array
#                                        S3S_CMD to the server's command line
#                                        (run with cwd=STATE_DIR, stdout/err
#                                        to STATE_DIR/server.log)

set -euo pipefail

# shellcheck source=scripts/loopback-env.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/loopback-env.sh"

S3S_TOOLS_DIR="${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}"
S3S_VENV="$S3S_TOOLS_DIR/$S3S_VENV_NAME"
S3S_PYTHON="${SLUICE_PYTHON:-python3}"
S3S_START_TIMEOUT="${S3S_START_TIMEOUT:-60}"   # seconds to wait for readiness
S3S_STOP_TIMEOUT="${S3S_STOP_TIMEOUT:-15}"     # seconds before SIGKILL

s3s_log() { printf '%s.sh: %s\n' "$S3S_NAME" "$*" >&2; }
s3s_die() { s3s_log "error: $*"; exit 1; }

s3s_usage() {
  cat >&2 <<EOF
usage: $0 <command> [args]
  install                    install $S3S_PKG into $S3S_VENV (if missing)
  start <data_dir> [bucket..] start a server for <data_dir> (idempotent), create the
                             given buckets, print ${S3S_ENDPOINT_VAR}=http://127.0.0.1:<port>
  stop <data_dir>            stop the server started for <data_dir> (no-op if none)
  status <data_dir>          print the endpoint and exit 0 if running, else exit 1
  mkbucket <endpoint> <bucket>   create a bucket (unsigned PUT /<bucket>; idempotent)
env: SLUICE_TOOLS_DIR (default \$HOME/.cache/sluice-tools), ${S3S_PORT_VAR} (fixed port),
     SLUICE_PYTHON (python used to build the venv, default python3)
state files (pid, port, log) live in <data_dir>.${S3S_NAME}-state/ next to <data_dir>
EOF
  exit 2
}

# ---------------------------------------------------------------- install --
s3s_install() {
  local marker="$S3S_VENV/.sluice-installed"
  if [[ -f "$marker" && "$(cat "$marker")" == "$S3S_PKG" && -x "$S3S_VENV/$S3S_CHECK_BIN" ]]; then
    return 0
  fi
  mkdir -p "$S3S_TOOLS_DIR"
  # Serialise concurrent installers (parallel test processes, CI jobs).
  exec {lockfd}>"$S3S_TOOLS_DIR/$S3S_VENV_NAME.lock"
  flock "$lockfd"
  if [[ -f "$marker" && "$(cat "$marker")" == "$S3S_PKG" && -x "$S3S_VENV/$S3S_CHECK_BIN" ]]; then
    flock -u "$lockfd"; exec {lockfd}>&-
    return 0
  fi
  s3s_log "installing $S3S_PKG into $S3S_VENV"
  rm -rf "$S3S_VENV"
  "$S3S_PYTHON" -m venv "$S3S_VENV" >&2
  if ! "$S3S_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$S3S_PKG" >&2; then
    rm -rf "$S3S_VENV"
    flock -u "$lockfd"; exec {lockfd}>&-
    s3s_die "pip install $S3S_PKG failed"
  fi
  [[ -x "$S3S_VENV/$S3S_CHECK_BIN" ]] || { rm -rf "$S3S_VENV"; s3s_die "$S3S_CHECK_BIN missing after install"; }
  printf '%s' "$S3S_PKG" >"$marker"
  flock -u "$lockfd"; exec {lockfd}>&-
}

# ------------------------------------------------------------------ state --
s3s_abs() { # absolute path without requiring existence of the leaf
  local d b
  d="$(dirname -- "$1")"; b="$(basename -- "$1")"
  mkdir -p -- "$d"
  printf '%s/%s' "$(cd -- "$d" && pwd -P)" "$b"
}

s3s_state_dir() { printf '%s.%s-state' "$(s3s_abs "$1")" "$S3S_NAME"; }

# True if PID is a live (non-zombie) process.
s3s_alive() {
  local pid="$1" st
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  st="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [[ -n "$st" && "$st" != "Z" && "$st" != "X" ]]
}

# True if PID is alive and is one of our servers (guards against a stale pid
# file whose pid was reused by an unrelated process).
s3s_ours() {
  s3s_alive "$1" || return 1
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$S3S_VENV/"
}

s3s_free_port() {
  "$S3S_PYTHON" - <<'EOF'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

s3s_port_in_use() {
  "$S3S_PYTHON" - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
}

s3s_http_code() { # prints the HTTP status of an unsigned GET, 000 if no answer
  curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 2 "$1" 2>/dev/null || true
}

# --------------------------------------------------------------- commands --
s3s_start() {
  local data_dir="${1:-}"
  [[ -n "$data_dir" ]] || s3s_usage
  s3s_install
  mkdir -p -- "$data_dir"
  data_dir="$(cd -- "$data_dir" && pwd -P)"
  local state; state="$(s3s_state_dir "$data_dir")"
  mkdir -p -- "$state"

  # Already running for this data dir? Report it (idempotent start).
  if [[ -f "$state/pid" ]] && s3s_ours "$(cat "$state/pid")"; then
    local p b; p="$(cat "$state/port")"
    s3s_log "already running (pid $(cat "$state/pid"), port $p)"
    for b in "${@:2}"; do s3s_mkbucket "http://127.0.0.1:$p" "$b" || s3s_die "could not create bucket $b"; done
    printf '%s=http://127.0.0.1:%s\n' "$S3S_ENDPOINT_VAR" "$p"
    return 0
  fi
  rm -f -- "$state/pid" "$state/port"

  local fixed_port="${!S3S_PORT_VAR:-}" attempt port pid deadline code
  for attempt in 1 2 3; do
    if [[ -n "$fixed_port" ]]; then
      port="$fixed_port"
      ! s3s_port_in_use "$port" || s3s_die "127.0.0.1:$port is already in use"
    else
      port="$(s3s_free_port)"
    fi
    s3s_command "$port" "$data_dir" "$state"   # sets S3S_CMD=(...)
    # New session => the server leads its own process group, so `stop` can
    # signal the whole group and leave nothing behind. The session leader
    # records its own pid and then execs the server (same pid), which is
    # robust even if setsid has to fork.
    rm -f -- "$state/pid.new"
    # shellcheck disable=SC2016  # $$ / $0 / $@ are for the inner bash
    ( cd -- "$state" && exec setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' \
        "$state/pid.new" "${S3S_CMD[@]}" </dev/null >>"$state/server.log" 2>&1 ) &
    disown $! 2>/dev/null || true
    deadline=$(( $(date +%s) + 10 ))
    until [[ -s "$state/pid.new" ]]; do
      (( $(date +%s) < deadline )) || s3s_die "launcher did not report a pid"
      sleep 0.02
    done
    pid="$(cat "$state/pid.new")"; rm -f -- "$state/pid.new"
    printf '%s\n' "$pid" >"$state/pid"
    printf '%s\n' "$port" >"$state/port"

    deadline=$(( $(date +%s) + S3S_START_TIMEOUT ))
    while :; do
      if ! s3s_alive "$pid"; then
        break
      fi
      code="$(s3s_http_code "http://127.0.0.1:$port$S3S_HEALTH_PATH")"
      if [[ "$code" == 2* ]]; then
        local b
        for b in "${@:2}"; do
          if ! s3s_mkbucket "http://127.0.0.1:$port" "$b"; then
            s3s_stop_pid "$pid"; rm -f -- "$state/pid" "$state/port"
            s3s_die "could not create bucket $b"
          fi
        done
        printf '%s=http://127.0.0.1:%s\n' "$S3S_ENDPOINT_VAR" "$port"
        return 0
      fi
      if (( $(date +%s) >= deadline )); then
        s3s_stop_pid "$pid"
        rm -f -- "$state/pid" "$state/port"
        tail -n 30 "$state/server.log" >&2 || true
        s3s_die "did not become ready on 127.0.0.1:$port within ${S3S_START_TIMEOUT}s"
      fi
      sleep 0.1  # polling interval, not a fixed wait
    done
    rm -f -- "$state/pid" "$state/port"
    s3s_log "server exited during startup (attempt $attempt); log tail:"
    tail -n 15 "$state/server.log" >&2 || true
    [[ -z "$fixed_port" ]] || break  # a pinned port will not get better
  done
  s3s_die "could not start $S3S_NAME"
}

s3s_stop_pid() { # signal process group, wait, escalate
  local pid="$1" deadline
  s3s_alive "$pid" || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  deadline=$(( $(date +%s) + S3S_STOP_TIMEOUT ))
  while s3s_alive "$pid" || pgrep -g "$pid" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then
      s3s_log "pid $pid did not exit on SIGTERM; sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      deadline=$(( $(date +%s) + 5 ))
      while s3s_alive "$pid"; do (( $(date +%s) < deadline )) || break; sleep 0.05; done
      break
    fi
    sleep 0.05
  done
}

s3s_stop() {
  local data_dir="${1:-}"
  [[ -n "$data_dir" ]] || s3s_usage
  local state; state="$(s3s_state_dir "$data_dir")"
  if [[ ! -f "$state/pid" ]]; then
    s3s_log "not running (no $state/pid)"
    return 0
  fi
  local pid; pid="$(cat "$state/pid")"
  if s3s_ours "$pid"; then
    s3s_stop_pid "$pid"
    s3s_log "stopped (pid $pid)"
  else
    s3s_log "not running (stale pid file for pid $pid removed)"
  fi
  rm -f -- "$state/pid" "$state/port"
}

s3s_status() {
  local data_dir="${1:-}"
  [[ -n "$data_dir" ]] || s3s_usage
  local state; state="$(s3s_state_dir "$data_dir")"
  if [[ -f "$state/pid" ]] && s3s_ours "$(cat "$state/pid")"; then
    printf '%s=http://127.0.0.1:%s\n' "$S3S_ENDPOINT_VAR" "$(cat "$state/port")"
    return 0
  fi
  return 1
}

s3s_mkbucket() {
  local endpoint="${1:-}" bucket="${2:-}"
  [[ -n "$endpoint" && -n "$bucket" ]] || s3s_usage
  local code out
  endpoint="${endpoint%/}"
  # Loopback only: these helpers must never send traffic anywhere else.
  if ! [[ "$endpoint" =~ ^http://(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|\[::1\])(:[0-9]+)?$ ]]; then
    s3s_log "error: refusing non-loopback endpoint: $endpoint"
    return 1
  fi
  out="$(mktemp)"
  code="$(curl -s -o "$out" -w '%{http_code}' --noproxy '*' --max-time 30 -X PUT "$endpoint/$bucket" || true)"
  if [[ "$code" == 200 ]] || { [[ "$code" == 409 ]] && grep -q BucketAlreadyOwnedByYou "$out"; }; then
    rm -f "$out"
    return 0
  fi
  s3s_log "PUT $endpoint/$bucket -> HTTP $code: $(head -c 500 "$out")"
  rm -f "$out"
  return 1
}

s3s_main() {
  local cmd="${1:-}"; shift || true
  case "$cmd" in
    install)  s3s_install ;;
    start)    s3s_start "$@" ;;
    stop)     s3s_stop "$@" ;;
    status)   s3s_status "$@" ;;
    mkbucket) s3s_mkbucket "$@" ;;
    *)        s3s_usage ;;
  esac
}
