#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The metrics API through the official clients, on two Sluice processes sharing one
# ministack bucket: a known workload through both (the s2 CLI: a basin, a stream, two
# append sessions, three read sessions), then `s2 get-account-metrics`,
# `get-basin-metrics` and `get-stream-metrics` and the TypeScript SDK's metrics calls
# (tests/ts/metrics.mjs) must show exactly its figures, whichever node answers. Last, a
# node that flushes hourly appends and is stopped gracefully: its shutdown flush puts the
# append in the figures the other node answers with.
#
#   tests/metrics/run.sh        (needs target/debug/sluice and scripts/install-tools.sh)
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# shellcheck source=../../scripts/with-sluice.sh disable=SC1091
source "$ROOT/scripts/with-sluice.sh"
command -v node >/dev/null || sluice_die "node not found"
[[ -x "$S2_CLI" ]] || sluice_die "no s2 CLI at $S2_CLI (run scripts/install-tools.sh)"
MODULES="$SLUICE_TOOLS_DIR/ts-sdk/node_modules"
[[ -d "$MODULES/@s2-dev/streamstore" ]] || sluice_die "no TS SDK in $MODULES (run scripts/install-tools.sh)"
BIN="${SLUICE_BIN:-$ROOT/target/debug/sluice}"

export SLUICE_SERVER_ARGS="${SLUICE_SERVER_ARGS:-} --metrics-flush-interval 1s"
sluice_start ministack
A="$SLUICE_ENDPOINT"

# start_node <port> <flush interval> <log>: another node on the bucket, its pid in NODE_PID.
start_node() {
  env AWS_ENDPOINT_URL="$MINISTACK_ENDPOINT" AWS_ENDPOINT_URL_S3="$MINISTACK_ENDPOINT" \
    "$BIN" serve --host 127.0.0.1 --port "$1" --bucket "$SLUICE_S3_BUCKET" \
    --metrics-flush-interval "$2" </dev/null >>"$3" 2>&1 &
  local pid=$! deadline=$((SECONDS + 60))
  sluice_track_pid "$pid"
  until [[ "$(_sluice_health "http://127.0.0.1:$1")" == 200 ]]; do
    kill -0 "$pid" 2>/dev/null || sluice_die "node on port $1 exited; see $3"
    ((SECONDS < deadline)) || sluice_die "node on port $1 did not start"
    sleep 0.05
  done
  NODE_PID="$pid"
}

PORT_B="$(_sluice_free_port)"
start_node "$PORT_B" 1s "$SLUICE_WORK_DIR/b.log"
B="http://127.0.0.1:$PORT_B"

on() { # on <endpoint> <s2 args...>
  S2_ACCOUNT_ENDPOINT="$1" S2_BASIN_ENDPOINT="$1" "$S2_CLI" "${@:2}"
}

BASIN="metrics-$(date +%s)-$RANDOM"
URI="s2://$BASIN/s"
on "$A" create-basin "$BASIN" >/dev/null
on "$B" create-stream "$URI" >/dev/null
# Ten records of 8 bytes, each metered 8 more: 160 bytes, in two append sessions.
printf 'record-%d\n' 0 1 2 3 4 | on "$A" append "$URI" >/dev/null 2>&1
printf 'record-%d\n' 5 6 7 8 9 | on "$B" append "$URI" >/dev/null 2>&1
# Three read sessions: 10 + 4 + 3 records, 272 bytes.
on "$A" read "$URI" --seq-num 0 --count 10 >/dev/null
on "$B" read "$URI" --seq-num 0 --count 4 >/dev/null
on "$A" read "$URI" --seq-num 5 --count 3 >/dev/null
APPENDED=160
READ_BYTES=272

# cli_value <metric name>: the last value of that metric's table in the CLI's output.
cli_value() {
  awk -v n="$1" '
    $0 == n { f = 1; next }
    f && /^$/ { if (t) exit; next }
    f { t = 1; gsub(/[|│]/, " "); if ($NF ~ /^[0-9.]+$/) v = $NF }
    END { print v }'
}

# until_cli <expected> <metric name> <s2 args...>: polls until the CLI shows it.
until_cli() {
  local want="$1" name="$2" got="" deadline=$((SECONDS + 30))
  shift 2
  while ((SECONDS < deadline)); do
    got="$("$@" | cli_value "$name")"
    [[ "$got" == "$want" ]] && { sluice_log "$name: $got"; return 0; }
    sleep 0.3
  done
  "$@" >&2 || true
  sluice_die "$name: got '$got', want $want (s2 ${*:2})"
}

RANGE=(--start-ago 1h --end-ago 0s)
until_cli "$APPENDED" append-throughput on "$A" get-basin-metrics "$BASIN" append-throughput "${RANGE[@]}" --interval day
until_cli "$READ_BYTES" read-throughput on "$B" get-basin-metrics "$BASIN" read-throughput "${RANGE[@]}" --interval day
until_cli 1 create-stream on "$A" get-basin-metrics "$BASIN" basin-ops "${RANGE[@]}" --interval day
until_cli "$APPENDED" storage on "$B" get-basin-metrics "$BASIN" storage "${RANGE[@]}"
until_cli "$APPENDED" storage on "$A" get-stream-metrics "$URI" storage --start-ago 10m --end-ago 0s
until_cli 1 create-basin on "$B" get-account-metrics account-ops "${RANGE[@]}" --interval day
# Sessions count once per minute they span: two or three (or four) of each.
ops="$(on "$A" get-basin-metrics "$BASIN" append-ops "${RANGE[@]}" --interval day | cli_value express)"
((ops >= 2 && ops <= 4)) || sluice_die "append-ops express: $ops, want 2 (one per session and minute)"
reads="$(on "$B" get-basin-metrics "$BASIN" read-ops "${RANGE[@]}" --interval day | cli_value streaming)"
((reads >= 3 && reads <= 6)) || sluice_die "read-ops streaming: $reads, want 3 (one per session and minute)"
on "$A" get-account-metrics active-basins "${RANGE[@]}" | grep -qx "  $BASIN" \
  || sluice_die "active-basins does not list $BASIN"
sluice_log "s2 CLI metrics match the workload (append-ops $ops, read-ops $reads)"

timeout 120 node "$ROOT/tests/ts/metrics.mjs" "$MODULES" "$A" "$B" \
  "{\"basin\":\"$BASIN\",\"stream\":\"s\",\"appendBytes\":$APPENDED,\"readBytes\":$READ_BYTES,\"appendOps\":[2,4],\"readOps\":[3,6]}"

# A node that would flush only hourly: its graceful stop writes what it counted.
PORT_C="$(_sluice_free_port)"
start_node "$PORT_C" 1h "$SLUICE_WORK_DIR/c.log"
echo record-10 | on "http://127.0.0.1:$PORT_C" append "$URI" >/dev/null 2>&1
sluice_kill_pid "$NODE_PID" 20
until_cli $((APPENDED + 17)) append-throughput on "$B" get-basin-metrics "$BASIN" append-throughput "${RANGE[@]}" --interval day
sluice_log "metrics: a graceful stop flushed the node's counts"
