#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Does the load balancer report a dead node as an error? Following reads are open through
# the balancer when every node behind it is killed with SIGKILL; each must then end with
# an error (HTTP/2: RST_STREAM; HTTP/1.1: the connection closed without the last chunk),
# or, for the SDK clients, reconnect and carry on once the nodes are back. A clean end of
# the response is a failure: S2S has no end-of-session frame, so a clean end is what a
# client reads as "the session is over, you have everything" (a read to the tail then
# returns fewer records than were acked, and a following read stops for good).
#
#   scripts/lb-kill-check.sh                   start a cluster (scripts/cluster.sh) in a
#                                              temp dir, check its nginx, tear it down
#   scripts/lb-kill-check.sh <state dir>       check the cluster running there (its nodes are
#                                              killed and restarted on their ports)
#
# Readers, each following from seq_num 0 of a stream holding one record:
#   s2s-h2c   curl --http2-prior-knowledge, Content-Type: s2s/proto (raw S2S read session)
#   sse-h2c   curl --http2-prior-knowledge, Accept: text/event-stream
#   sse-h1    curl --http1.1 on the HTTP/1.1 endpoint, Accept: text/event-stream
#   s2-cli    s2 read (Rust SDK read session; it reconnects by itself)
#   py-sdk    the Python s2-sdk's read_session (it reconnects by itself)
# A curl reader passes when curl exits non-zero (92 / 18); an SDK reader passes when it
# fails, or when it is still reading after the nodes are back and then receives a record
# appended afterwards. Any reader whose response ended cleanly fails the check.
#
# Environment:
#   LB_CHECK_BALANCER   "cluster" (default): the cluster's own balancer (nginx).
#                       "haproxy": start Debian's HAProxy in front of the same nodes (h2c to
#                       clients and nodes, one port) and check that instead, to show that
#                       HAProxy 2.6 fails (installed with apt-get if missing, as root).
#   S2_CLI              default $SLUICE_TOOLS_DIR/s2-cli/bin/s2 (scripts/install-tools.sh);
#                       PY_SDK default $SLUICE_TOOLS_DIR/python-sdk-venv/bin/python. A reader
#                       whose tool is missing is skipped.
# Exit status 0: every reader passed; 1: some reader saw a clean end (or another failure).

set -euo pipefail

REPO_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
CLUSTER="$REPO_DIR/scripts/cluster.sh"

# shellcheck source=scripts/loopback-env.sh
source "$REPO_DIR/scripts/loopback-env.sh"

SLUICE_TOOLS_DIR="${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}"
S2="${S2_CLI:-$SLUICE_TOOLS_DIR/s2-cli/bin/s2}"
PY="${PY_SDK:-$SLUICE_TOOLS_DIR/python-sdk-venv/bin/python}"
BALANCER="${LB_CHECK_BALANCER:-cluster}"

log() { printf '[lb-kill-check] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

CLEANUP=()
cleanup() {
  local rc=$? i
  set +e
  for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[i]}"; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
defer() {
  local q
  printf -v q '%q ' "$@"
  CLEANUP+=("$q")
}

# stop_bg <pid>: end a background job of ours that may still run.
stop_bg() {
  if jobs -p | grep -qx -- "$1"; then
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" 2>/dev/null || true; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-lb-check.XXXXXX")"
defer rm -rf -- "$WORK"

if [[ $# -ge 1 ]]; then
  STATE="$1"
  [[ -f "$STATE/env" ]] || die "$STATE is not a running cluster (no env; scripts/cluster.sh up first)"
else
  STATE="$WORK/cluster"
  defer "$CLUSTER" down "$STATE"
  "$CLUSTER" up "$STATE" >/dev/null || die "could not start the cluster"
fi
while IFS= read -r line; do
  [[ "$line" == *=* ]] && export "${line?}"
done <"$STATE/env"
H2="$SLUICE_ENDPOINT"
H1="${SLUICE_HTTP1_ENDPOINT:-$SLUICE_ENDPOINT}"

# ------------------------------------------------------------ balancer under test --

case "$BALANCER" in
  cluster) LB_NAME="$("$(sed -n 's/^NGINX=//p' "$STATE/cluster.conf")" -v 2>&1 | sed 's/^nginx version: //')" ;;
  haproxy)
    if ! command -v haproxy >/dev/null 2>&1; then
      [[ "$(id -u)" == 0 ]] || die "haproxy is not installed"
      log "installing Debian's haproxy"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >&2; }
    fi
    LB_NAME="HAProxy $(haproxy -v | sed -n 's/^HAProxy version \([^ ]*\).*/\1/p')"
    port="$(free_port)"
    {
      printf 'defaults\n    mode http\n    timeout connect 5s\n    timeout client 1h\n'
      printf '    timeout server 1h\n    timeout tunnel 1h\n'
      printf 'frontend sluice\n    bind 127.0.0.1:%s\n    default_backend nodes\n' "$port"
      printf 'backend nodes\n    balance roundrobin\n'
      for ((i = 1; i <= SLUICE_CLUSTER_NODES; i++)); do
        v="SLUICE_NODE_$i"
        printf '    server node%s %s proto h2\n' "$i" "${!v#http://}"
      done
    } >"$WORK/haproxy.cfg"
    haproxy -db -f "$WORK/haproxy.cfg" </dev/null >"$WORK/haproxy.log" 2>&1 &
    defer stop_bg "$!"
    H2="http://127.0.0.1:$port" H1="http://127.0.0.1:$port"
    for _ in $(seq 100); do [[ "$(code --http2-prior-knowledge "$H2/health")" == 200 ]] && break; sleep 0.1; done
    ;;
  *) die "LB_CHECK_BALANCER must be cluster or haproxy" ;;
esac
[[ "$(code --http2-prior-knowledge "$H2/health")/$(code --http1.1 "$H1/health")" == 200/200 ]] \
  || die "the balancer does not answer GET /health at $H2 (h2c) and $H1 (HTTP/1.1)"
log "balancer: $LB_NAME, h2c $H2, HTTP/1.1 $H1, ${SLUICE_CLUSTER_NODES} nodes"

# ---------------------------------------------------------------------- readers --

BASIN="lb-check-$(date +%s)-$RANDOM"
curl -sf --http1.1 -XPOST "$H1/v1/basins" -H 'content-type: application/json' \
  -d "{\"basin\":\"$BASIN\",\"config\":{\"create_stream_on_append\":true}}" >/dev/null \
  || die "could not create basin $BASIN"
append() { # <body>
  curl -sf --http1.1 --max-time 10 -XPOST "$H1/v1/streams/s/records" -H "s2-basin: $BASIN" \
    -H 'content-type: application/json' -d "{\"records\":[{\"body\":\"$1\"}]}" >/dev/null
}
append first-record || die "could not append"

export S2_ACCOUNT_ENDPOINT="$H2" S2_BASIN_ENDPOINT="$H2" S2_ACCESS_TOKEN=ignored NO_COLOR=1
cat >"$WORK/read.py" <<'EOF'
import asyncio, os, sys
from s2_sdk import S2, Endpoints, SeqNum

async def main():
    e = os.environ["S2_ACCOUNT_ENDPOINT"]
    async with S2("ignored", endpoints=Endpoints(account=e, basin=e)) as s2:
        stream = s2.basin(sys.argv[1]).stream("s")
        async with stream.read_session(start=SeqNum(0)) as rs:
            async for batch in rs:
                for r in batch.records:
                    print(r.body.decode(), flush=True)
    print("read_session ended without an error", file=sys.stderr)

asyncio.run(main())
EOF

declare -a NAMES=() PIDS=()
reader() { # <name> <command...>
  local name="$1"
  shift
  timeout 300 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null &
  NAMES+=("$name")
  PIDS+=("$!")
  defer stop_bg "$!"
}
url="/v1/streams/s/records?seq_num=0"
reader s2s-h2c curl -sS --http2-prior-knowledge -N "$H2$url" -H "s2-basin: $BASIN" -H 'content-type: s2s/proto'
reader sse-h2c curl -sS --http2-prior-knowledge -N "$H2$url" -H "s2-basin: $BASIN" -H 'accept: text/event-stream'
reader sse-h1 curl -sS --http1.1 -N "$H1$url" -H "s2-basin: $BASIN" -H 'accept: text/event-stream'
if [[ -x "$S2" ]]; then reader s2-cli "$S2" read "s2://$BASIN/s" --seq-num 0; else log "skipping s2-cli: no $S2"; fi
if [[ -x "$PY" ]]; then reader py-sdk "$PY" "$WORK/read.py" "$BASIN"; else log "skipping py-sdk: no $PY"; fi

# Every reader must have the first record (and so a response in progress) before the kill.
deadline=$((SECONDS + 30))
for i in "${!NAMES[@]}"; do
  until grep -q first-record "$WORK/${NAMES[i]}.out" 2>/dev/null; do
    ((SECONDS < deadline)) || die "${NAMES[i]} did not receive the first record: $(cat "$WORK/${NAMES[i]}.err")"
    kill -0 "${PIDS[i]}" 2>/dev/null || die "${NAMES[i]} exited before the first record: $(cat "$WORK/${NAMES[i]}.err")"
    sleep 0.1
  done
done
log "${#NAMES[@]} readers following; killing every node with SIGKILL"
for ((i = 1; i <= SLUICE_CLUSTER_NODES; i++)); do "$CLUSTER" kill-node "$STATE" "$i" 2>/dev/null; done

# ---------------------------------------------------------------------- verdicts --

declare -A RC=()
ended() { # <index>: record the exit status once the reader has exited
  local i="$1" rc=0
  [[ -n "${RC[$i]:-}" ]] && return 0
  kill -0 "${PIDS[i]}" 2>/dev/null && return 1
  wait "${PIDS[i]}" || rc=$?
  RC[$i]=$rc
}
# curl readers end at once; give the SDK readers a moment too (they may fail or retry).
deadline=$((SECONDS + 15))
for i in "${!NAMES[@]}"; do
  case "${NAMES[i]}" in
    s2-cli | py-sdk) ;;
    *) until ended "$i"; do
      ((SECONDS < deadline)) || break
      sleep 0.1
    done ;;
  esac
done
sleep 2
for i in "${!NAMES[@]}"; do ended "$i" || true; done

log "restarting the nodes"
for ((i = 1; i <= SLUICE_CLUSTER_NODES; i++)); do "$CLUSTER" restart-node "$STATE" "$i" >/dev/null 2>&1; done
# A reader still running must have reconnected: it has to receive a record appended now.
# (nginx may still skip the restarted nodes for up to fail_timeout: retry the append.)
deadline=$((SECONDS + 30))
until append after-restart; do
  ((SECONDS < deadline)) || die "no append through the balancer succeeds after the restart"
  sleep 0.5
done
deadline=$((SECONDS + 40))
for i in "${!NAMES[@]}"; do
  ended "$i" && continue
  until grep -q after-restart "$WORK/${NAMES[i]}.out" || ended "$i"; do
    ((SECONDS < deadline)) || break
    sleep 0.1
  done
done

failed=0
for i in "${!NAMES[@]}"; do
  name="${NAMES[i]}"
  # The last line that names an error says what happened (a Python traceback ends with
  # the exception; the s2 CLI adds a banner after its error).
  err="$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/$name.err" | { grep -iE 'error|×|curl:' || true; } | tail -n 1 | tr -s ' ' | cut -c1-200)"
  [[ -n "$err" ]] || err="$(tail -n 1 "$WORK/$name.err" | cut -c1-200)"
  if ended "$i"; then
    if [[ "${RC[$i]}" == 0 ]]; then
      verdict="FAIL: the response ended cleanly (exit 0) when its node died ${err:+($err)}"
      failed=1
    else
      verdict="ok: error (exit ${RC[$i]}: $err)"
    fi
  elif grep -q after-restart "$WORK/$name.out"; then
    verdict="ok: reconnected and received a record appended after the restart"
  else
    verdict="FAIL: still open but did not receive the record appended after the restart"
    failed=1
  fi
  printf '[lb-kill-check] %-8s %s\n' "$name" "$verdict" >&2
done
curl -s --http1.1 -XDELETE "$H1/v1/basins/$BASIN" >/dev/null 2>&1 || true
if ((failed)); then
  log "FAILED through $LB_NAME: a dead node's streams ended as if complete"
  exit 1
fi
log "passed through $LB_NAME: every stream of a dead node ended with an error or resumed"
