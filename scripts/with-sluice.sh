#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Start a throwaway Sluice server on loopback for a test, and stop it (and everything
# else the test started) when the test exits.
#
# Run a command against a fresh server:
#   scripts/with-sluice.sh local|ministack|moto|external [--] <command> [args...]
#   scripts/with-sluice.sh local          # no command: serve until Ctrl+C
#
# Or source it from a bash script (with `set -euo pipefail`):
#   source scripts/with-sluice.sh
#   sluice_start local|ministack|moto|external  # blocks until GET /health answers 200
#   sluice_defer <command> [args...]      # extra cleanup, run in reverse order at exit
#   sluice_track_pid <pid>                # a background job to stop at exit
#   sluice_stop                           # optional: cleanup early (also runs at EXIT)
# Sourcing installs traps for EXIT, INT and TERM; don't replace them, use sluice_defer.
#
# After sluice_start these are exported:
#   SLUICE_ENDPOINT   http://127.0.0.1:<port>
#   SLUICE_PORT, SLUICE_PID, SLUICE_BACKEND, SLUICE_WORK_DIR (temp dir), SLUICE_LOG
#   S2_ACCOUNT_ENDPOINT, S2_BASIN_ENDPOINT (= SLUICE_ENDPOINT), S2_ACCESS_TOKEN=ignored,
#   NO_COLOR=1       (what the s2 CLI and the SDKs need to talk to it)
#   S2_CLI           path of the s2 CLI in the tools dir (installed by scripts/install-tools.sh)
#   SLUICE_TOOLS_DIR ${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}
#   MINISTACK_ENDPOINT / MOTO_ENDPOINT for those backends; SLUICE_S3_BUCKET
#
# Environment knobs:
#   SLUICE_BIN            server binary (default <repo>/target/debug/sluice; build it with
#                         `cargo build --bin sluice`)
#   SLUICE_START_TIMEOUT  seconds to wait for /health (default 60)
#   SLUICE_KEEP_WORK=1    keep the temp dir (data, server log) after exit
#   SLUICE_SERVER_ARGS    extra args for `sluice serve` (word-split)
#   RUST_LOG              passed through to the server (its log is $SLUICE_LOG)
# On a non-zero exit the tail of the server log is printed to stderr.
#
# Only loopback is ever used: the server binds 127.0.0.1, the S3 emulators bind 127.0.0.1,
# and dummy AWS credentials/region are exported so no client looks for cloud metadata.

SLUICE_REPO_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
export SLUICE_TOOLS_DIR="${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}"
export S2_CLI="${S2_CLI:-$SLUICE_TOOLS_DIR/s2-cli/bin/s2}"

# shellcheck source=scripts/loopback-env.sh
source "$SLUICE_REPO_DIR/scripts/loopback-env.sh"

_SLUICE_CLEANUP=()      # shell-quoted commands, run last-in first-out
_SLUICE_CLEANED=0

sluice_log() { printf '[with-sluice] %s\n' "$*" >&2; }
sluice_die() { sluice_log "error: $*"; exit 1; }

# sluice_defer <command> [args...]: run it at exit (before the ones deferred earlier).
sluice_defer() {
  local q
  printf -v q '%q ' "$@"
  _SLUICE_CLEANUP+=("$q")
}

# Stop a process: SIGTERM, wait up to $2 seconds (default 10), then SIGKILL. Reaps it
# if it is our child. No-op if it is already gone.
sluice_kill_pid() {
  local pid="$1" grace="${2:-10}" deadline
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]; do
    if ((SECONDS >= deadline)); then
      sluice_log "pid $pid ignored SIGTERM for ${grace}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.05
  done
  wait "$pid" 2>/dev/null || true
}

sluice_track_pid() { sluice_defer sluice_kill_pid "$1" 5; }

_sluice_cleanup() {
  local rc=$? i
  if ((_SLUICE_CLEANED)); then return 0; fi
  _SLUICE_CLEANED=1
  set +e
  if ((rc != 0)) && [[ -n "${SLUICE_LOG:-}" && -s "${SLUICE_LOG:-}" ]]; then
    sluice_log "exit status $rc; last lines of the server log ($SLUICE_LOG):"
    tail -n 40 -- "$SLUICE_LOG" >&2
  fi
  for ((i = ${#_SLUICE_CLEANUP[@]} - 1; i >= 0; i--)); do
    eval "${_SLUICE_CLEANUP[i]}"
  done
  _SLUICE_CLEANUP=()
  return 0
}

sluice_stop() { _sluice_cleanup; _SLUICE_CLEANED=0; }

trap _sluice_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

_sluice_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

_sluice_health() { # prints the HTTP status of GET /health, 000 if no answer
  curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 2 "$1/health" 2>/dev/null || true
}

# sluice_start <local|ministack|moto|external>
sluice_start() {
  local backend="${1:-local}"
  local bin="${SLUICE_BIN:-$SLUICE_REPO_DIR/target/debug/sluice}"
  [[ -x "$bin" ]] || sluice_die "no server binary at $bin (run 'cargo build --bin sluice' or set SLUICE_BIN)"
  command -v curl >/dev/null || sluice_die "curl is required"

  SLUICE_WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/sluice-test.XXXXXX")"
  export SLUICE_WORK_DIR SLUICE_BACKEND="$backend"
  export SLUICE_LOG="$SLUICE_WORK_DIR/sluice.log"
  if [[ "${SLUICE_KEEP_WORK:-}" == 1 ]]; then
    sluice_defer sluice_log "kept $SLUICE_WORK_DIR (SLUICE_KEEP_WORK=1)"
  else
    sluice_defer rm -rf -- "$SLUICE_WORK_DIR"
  fi

  local -a storage_args=() storage_env=(-u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_S3)
  case "$backend" in
    external)
      # A node or cluster someone else runs, at $SLUICE_EXTERNAL_ENDPOINT.
      [[ -n "${SLUICE_EXTERNAL_ENDPOINT:-}" ]] || sluice_die "external backend needs SLUICE_EXTERNAL_ENDPOINT"
      export SLUICE_ENDPOINT="$SLUICE_EXTERNAL_ENDPOINT"
      export S2_ACCOUNT_ENDPOINT="$SLUICE_ENDPOINT" S2_BASIN_ENDPOINT="$SLUICE_ENDPOINT"
      export S2_ACCESS_TOKEN=ignored NO_COLOR=1
      sluice_log "using the running Sluice at $SLUICE_ENDPOINT"
      return 0
      ;;
    local)
      storage_args=(--local-root "$SLUICE_WORK_DIR/data")
      ;;
    ministack | moto)
      local s3dir="$SLUICE_WORK_DIR/s3" out var
      export SLUICE_S3_BUCKET="${SLUICE_S3_BUCKET:-sluice-test}"
      # Deferred before starting, so a half-started emulator is stopped too.
      sluice_defer "$SLUICE_REPO_DIR/scripts/$backend.sh" stop "$s3dir"
      out="$("$SLUICE_REPO_DIR/scripts/$backend.sh" start "$s3dir" "$SLUICE_S3_BUCKET")" \
        || sluice_die "could not start $backend"
      var="${out%%=*}"
      [[ "$var" == MINISTACK_ENDPOINT || "$var" == MOTO_ENDPOINT ]] || sluice_die "unexpected output from $backend.sh: $out"
      export "$var=${out#*=}"
      storage_args=(--bucket "$SLUICE_S3_BUCKET")
      storage_env=(AWS_ENDPOINT_URL="${out#*=}" AWS_ENDPOINT_URL_S3="${out#*=}")
      sluice_log "$backend at ${out#*=}, bucket $SLUICE_S3_BUCKET"
      ;;
    *) sluice_die "unknown backend '$backend' (want local, ministack, moto or external)" ;;
  esac

  local -a extra=()
  # shellcheck disable=SC2206  # word splitting is the point of this knob
  [[ -n "${SLUICE_SERVER_ARGS:-}" ]] && extra=(${SLUICE_SERVER_ARGS})

  local attempt port pid code deadline timeout="${SLUICE_START_TIMEOUT:-60}"
  for attempt in 1 2 3; do
    port="$(_sluice_free_port)"
    env "${storage_env[@]}" "$bin" serve --host 127.0.0.1 --port "$port" \
      "${storage_args[@]}" "${extra[@]}" </dev/null >>"$SLUICE_LOG" 2>&1 &
    pid=$!
    sluice_track_pid "$pid"
    deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null; do
      code="$(_sluice_health "http://127.0.0.1:$port")"
      if [[ "$code" == 200 ]]; then
        export SLUICE_PID="$pid" SLUICE_PORT="$port" SLUICE_ENDPOINT="http://127.0.0.1:$port"
        export S2_ACCOUNT_ENDPOINT="$SLUICE_ENDPOINT" S2_BASIN_ENDPOINT="$SLUICE_ENDPOINT"
        export S2_ACCESS_TOKEN=ignored NO_COLOR=1
        sluice_log "sluice ($backend) is up at $SLUICE_ENDPOINT (pid $pid, log $SLUICE_LOG)"
        return 0
      fi
      if ((SECONDS >= deadline)); then
        sluice_die "sluice did not answer GET /health with 200 within ${timeout}s (last: $code)"
      fi
      sleep 0.05 # polling interval
    done
    wait "$pid" 2>/dev/null || true
    sluice_log "sluice exited during startup (attempt $attempt, port $port); log tail:"
    tail -n 15 -- "$SLUICE_LOG" >&2 || true
  done
  sluice_die "could not start sluice"
}

# ----------------------------------------------------------- executed --
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  [[ $# -ge 1 ]] || { sed -n '3,8p' "$0" >&2; exit 2; }
  _backend="$1"; shift
  [[ "${1:-}" == -- ]] && shift
  sluice_start "$_backend"
  if [[ $# -eq 0 ]]; then
    sluice_log "serving at $SLUICE_ENDPOINT until Ctrl+C"
    printf 'SLUICE_ENDPOINT=%s\n' "$SLUICE_ENDPOINT"
    wait "$SLUICE_PID"
    exit $?
  fi
  _rc=0
  "$@" || _rc=$?
  exit "$_rc"
fi
