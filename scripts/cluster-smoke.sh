#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Smoke test of a load-balanced Sluice cluster with the official S2 CLI, through the
# balancer only.
#
#   scripts/cluster-smoke.sh                 start a cluster (scripts/cluster.sh) in a temp dir,
#                                            test it, tear it down
#   scripts/cluster-smoke.sh <state dir>     the same, keeping the state dir (logs) afterwards
#   SLUICE_ENDPOINT=http://127.0.0.1:8080 SLUICE_HTTP1_ENDPOINT=http://127.0.0.1:8081 \
#     scripts/cluster-smoke.sh               test an already running balancer (e.g. the
#                                            docker compose stack); loopback endpoints only.
#                                            SLUICE_ENDPOINT takes h2c, SLUICE_HTTP1_ENDPOINT
#                                            HTTP/1.1 (default: the same port for both)
#
# Checks: GET /health over h2c and HTTP/1.1; s2 create-basin; s2 append; s2 read (following:
# a record appended afterwards must show up while the read is open); SSE over h2c and
# HTTP/1.1 (a record appended while the event stream is open must arrive on it, i.e. it
# is not buffered); s2 bench --target-mibps 10 --duration 10s --catchup-delay 0s with its
# verification; s2 delete-basin.
#
# With SMOKE_KILL_NODE=<i> (only for a cluster this script starts): also run a bench, kill
# node i with SIGKILL in the middle of it, and report what the bench said (it does not fail
# the smoke test: an append session on the dead node cannot know whether its in-flight
# appends landed). Then restart the node and run a verified bench again (that must pass).
#
# Environment: S2_CLI (default $SLUICE_TOOLS_DIR/s2-cli/bin/s2, from scripts/install-tools.sh),
# SMOKE_BENCH_SECONDS (default 10), SMOKE_BENCH_MIBPS (default 10), SMOKE_TIMEOUT (default 30,
# seconds to wait for a record to arrive), plus the knobs of scripts/cluster.sh.

set -euo pipefail

REPO_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
CLUSTER="$REPO_DIR/scripts/cluster.sh"

# shellcheck source=scripts/loopback-env.sh
source "$REPO_DIR/scripts/loopback-env.sh"

SLUICE_TOOLS_DIR="${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}"
S2="${S2_CLI:-$SLUICE_TOOLS_DIR/s2-cli/bin/s2}"
BENCH_SECONDS="${SMOKE_BENCH_SECONDS:-10}"
BENCH_MIBPS="${SMOKE_BENCH_MIBPS:-10}"
WAIT="${SMOKE_TIMEOUT:-30}"

log() { printf '[smoke] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
pass() { log "ok: $*"; }

# --------------------------------------------------------------- cleanup --

CLEANUP=() # shell-quoted commands, run last-in first-out
defer() {
  local q
  printf -v q '%q ' "$@"
  CLEANUP+=("$q")
}
cleanup() {
  local rc=$? i
  set +e
  for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[i]}"; done
  CLEANUP=()
  if ((rc == 0)); then log "all checks passed"; else log "exit status $rc"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_bg <pid>: end a background job of ours; a no-op once it has been waited for (so a
# reused pid is never signalled).
stop_bg() {
  if jobs -p | grep -qx -- "$1"; then
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}

# wait_for_text <file> <text> <what> [pid]: poll until the file contains the text; fail after
# $WAIT seconds, or as soon as the process that writes the file has exited.
wait_for_text() {
  local file="$1" text="$2" what="$3" pid="${4:-}" deadline=$((SECONDS + WAIT))
  until grep -qF -- "$text" "$file" 2>/dev/null; do
    ((SECONDS < deadline)) || die "$what: '$text' did not arrive within ${WAIT}s (got: $(tail -c 300 "$file" 2>/dev/null))"
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      grep -qF -- "$text" "$file" 2>/dev/null && return 0
      die "$what: the reader exited before '$text' arrived (got: $(tail -c 300 "$file" 2>/dev/null))"
    fi
    sleep 0.1
  done
}

# ----------------------------------------------------------------- setup --

[[ -x "$S2" ]] || die "no s2 CLI at $S2 (run scripts/install-tools.sh or set S2_CLI)"
command -v curl >/dev/null || die "curl is required"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-smoke.XXXXXX")"
defer rm -rf -- "$WORK"

OWN_CLUSTER=0
if [[ -n "${SLUICE_ENDPOINT:-}" && $# -eq 0 ]]; then
  log "testing the running balancer at $SLUICE_ENDPOINT"
else
  [[ $# -le 1 ]] || die "usage: $0 [state dir]"
  STATE="${1:-$WORK/cluster}"
  OWN_CLUSTER=1
  defer "$CLUSTER" down "$STATE"
  env_out="$("$CLUSTER" up "$STATE")" || die "could not start the cluster"
  while IFS= read -r line; do
    [[ "$line" == *=* ]] && export "${line?}"
  done <<<"$env_out"
  log "cluster up: balancer $SLUICE_ENDPOINT (h2c), $SLUICE_HTTP1_ENDPOINT (HTTP/1.1), ${SLUICE_CLUSTER_NODES} nodes (state $STATE)"
fi

HTTP1_ENDPOINT="${SLUICE_HTTP1_ENDPOINT:-$SLUICE_ENDPOINT}"
# The hard rule: traffic only to loopback.
for endpoint in "$SLUICE_ENDPOINT" "$HTTP1_ENDPOINT"; do
  case "$endpoint" in
    http://127.* | http://localhost:* | http://localhost | "http://[::1]"*) ;;
    *) die "$endpoint is not a loopback http:// address" ;;
  esac
done
# endpoint_for <curl protocol option>: the balancer's address for that protocol.
endpoint_for() { if [[ "$1" == --http1.1 ]]; then printf '%s' "$HTTP1_ENDPOINT"; else printf '%s' "$SLUICE_ENDPOINT"; fi; }

export S2_ACCOUNT_ENDPOINT="$SLUICE_ENDPOINT" S2_BASIN_ENDPOINT="$SLUICE_ENDPOINT"
export S2_ACCESS_TOKEN=ignored NO_COLOR=1

# ---------------------------------------------------------------- checks --

for proto in --http2-prior-knowledge --http1.1; do
  code="$(curl -s -o /dev/null -w '%{http_code} %{http_version}' --max-time 5 "$proto" "$(endpoint_for "$proto")/health" || true)"
  [[ "$code" == "200 "* ]] || die "GET /health ($proto) through the balancer: $code"
  pass "GET /health through the balancer ($proto): HTTP/${code#* } 200"
done

BASIN="smoke-$(date +%s)-$RANDOM"
"$S2" create-basin "$BASIN" --create-stream-on-append --create-stream-on-read >"$WORK/create.out" 2>&1 \
  || die "s2 create-basin: $(cat "$WORK/create.out")"
delete_basin() { "$S2" delete-basin "$1" >/dev/null 2>&1 || log "could not delete basin $1"; }
defer delete_basin "$BASIN"
pass "s2 create-basin $BASIN"

echo hi | "$S2" append "s2://$BASIN/x" >"$WORK/append.out" 2>&1 || die "s2 append: $(cat "$WORK/append.out")"
pass "echo hi | s2 append s2://$BASIN/x ($(grep -o 'APPENDED.*' "$WORK/append.out" | head -n 1))"

# A following read: the record already there, then one appended while it is open (the
# append goes through the balancer too, so usually to another node than the read).
timeout "$((WAIT + 30))" "$S2" read "s2://$BASIN/x" --seq-num 0 >"$WORK/read.out" 2>"$WORK/read.err" &
reader=$!
defer stop_bg "$reader"
wait_for_text "$WORK/read.out" hi "s2 read" "$reader"
live="live-$RANDOM-$RANDOM"
echo "$live" | "$S2" append "s2://$BASIN/x" >/dev/null 2>&1 || die "s2 append (while reading)"
wait_for_text "$WORK/read.out" "$live" "s2 read (following)" "$reader"
stop_bg "$reader"
pass "s2 read s2://$BASIN/x --seq-num 0: got 'hi', then followed to a record appended later"

# SSE through the balancer, both protocols: an event must arrive while the response is
# still open (an LB that buffers the response would only deliver it at the end).
for proto in --http2-prior-knowledge --http1.1; do
  out="$WORK/sse${proto//-/_}.out"
  timeout "$((WAIT + 30))" curl -sSN "$proto" -H 'accept: text/event-stream' -H "s2-basin: $BASIN" \
    "$(endpoint_for "$proto")/v1/streams/x/records?seq_num=0" >"$out" 2>"$out.err" &
  sse=$!
  defer stop_bg "$sse"
  wait_for_text "$out" '"body":"hi"' "SSE ($proto)" "$sse"
  live="sse-$RANDOM-$RANDOM"
  echo "$live" | "$S2" append "s2://$BASIN/x" >/dev/null 2>&1 || die "s2 append (while SSE is open)"
  wait_for_text "$out" "$live" "SSE ($proto)" "$sse"
  kill -0 "$sse" 2>/dev/null || die "SSE ($proto): the response ended instead of staying open"
  stop_bg "$sse"
  pass "SSE ($proto) through the balancer: live event delivered while the response is open"
done

# bench_start <label> <log>: start s2 bench (it verifies what it read) in the background;
# its pid goes to $BENCH_PID. bench_wait <log>: wait for it, print its summary, return its status.
bench_start() {
  log "running s2 bench ($1): ${BENCH_MIBPS} MiB/s for ${BENCH_SECONDS}s"
  timeout "$((BENCH_SECONDS * 6 + 120))" "$S2" bench "$BASIN" --target-mibps "$BENCH_MIBPS" \
    --duration "${BENCH_SECONDS}s" --catchup-delay 0s >"$2" 2>&1 &
  BENCH_PID=$!
  defer stop_bg "$BENCH_PID"
}
bench_wait() {
  local rc=0
  wait "$BENCH_PID" || rc=$?
  grep -E '^(Write|Read|Catchup):' "$1" | sed 's/^/[smoke]     /' >&2 || true
  return "$rc"
}
bench_run() { bench_start "$1" "$2"; bench_wait "$2"; }

bench_run "verified" "$WORK/bench.out" || die "s2 bench: $(grep -E 'Error|×|╰' "$WORK/bench.out" | head -n 3)"
pass "s2 bench $BASIN --target-mibps $BENCH_MIBPS --duration ${BENCH_SECONDS}s --catchup-delay 0s (verification passed)"

if [[ -n "${SMOKE_KILL_NODE:-}" ]]; then
  ((OWN_CLUSTER)) || die "SMOKE_KILL_NODE needs a cluster started by this script"
  bench_start "node $SMOKE_KILL_NODE killed mid-way" "$WORK/bench-kill.out"
  # Kill once the bench is writing (its stream exists), a third of the way through.
  wait_for_text "$WORK/bench-kill.out" "Running for" "s2 bench (kill run)" "$BENCH_PID"
  deadline=$((SECONDS + BENCH_SECONDS / 3))
  while ((SECONDS < deadline)) && kill -0 "$BENCH_PID" 2>/dev/null; do sleep 0.1; done
  "$CLUSTER" kill-node "$STATE" "$SMOKE_KILL_NODE"
  rc=0
  bench_wait "$WORK/bench-kill.out" || rc=$?
  if ((rc == 0)); then
    log "kill run: bench passed its verification (no session of the bench was on node $SMOKE_KILL_NODE, or it recovered)"
  else
    log "kill run: bench exited with status $rc: $(grep -E 'Error|×' "$WORK/bench-kill.out" | head -n 1 | sed 's/^ *//')"
  fi
  "$CLUSTER" restart-node "$STATE" "$SMOKE_KILL_NODE" >/dev/null
  pass "node $SMOKE_KILL_NODE restarted"
  bench_run "after restart" "$WORK/bench-after.out" || die "s2 bench after restart: $(grep -E 'Error|×' "$WORK/bench-after.out" | head -n 3)"
  pass "s2 bench after the restart (verification passed)"
fi
