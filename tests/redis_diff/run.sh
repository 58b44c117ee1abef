#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Runs tests/redis_diff/diff.py, the differential test of the Redis-Streams HTTP API
# against a real Redis: starts redis-server on a free loopback port and a fresh Sluice
# server, creates a plate, and compares every reply for each seed.
#
#   tests/redis_diff/run.sh [local|ministack|moto|external|self-check] [diff.py args...]
#   tests/redis_diff/run.sh local --seeds 1,2,3          (the default seeds: 1,2,3)
#   tests/redis_diff/run.sh local --seed 7 --ops 1234    (replay, as a failure prints it)
#   tests/redis_diff/run.sh self-check --seeds 1,2,3     (no Sluice: Redis db 1 plays it)
#   tests/redis_diff/run.sh local --via resp3 --seed 1 --ops 1500
#                                   (through the RESP listener, RESP2 or RESP3, not HTTP)
#
# Needs target/debug/sluice (`cargo build --bin sluice`), redis-server and the venv
# $SLUICE_TOOLS_DIR/redis-diff-venv, both from scripts/install-tools.sh. REDIS_DIFF_OPS
# sets the default op count per seed, REDIS_DIFF_TIMEOUT the time limit (s, default 1800).
# See scripts/with-sluice.sh for the other knobs (external: SLUICE_EXTERNAL_ENDPOINT).
set -euo pipefail

BACKEND="${1:-local}"
[[ $# -gt 0 ]] && shift
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# shellcheck source=../../scripts/with-sluice.sh disable=SC1091
source "$ROOT/scripts/with-sluice.sh"

PY="$SLUICE_TOOLS_DIR/redis-diff-venv/bin/python"
if ! [[ -x "$PY" ]] || ! "$PY" -c 'import redis' 2>/dev/null; then
  sluice_die "no redis-py venv at $SLUICE_TOOLS_DIR/redis-diff-venv (run scripts/install-tools.sh)"
fi
command -v redis-server >/dev/null || sluice_die "redis-server not found (run scripts/install-tools.sh)"

has_seed=0 via=http prev=
for a in "$@"; do
  case "$a" in --seed | --seeds | --seed=* | --seeds=*) has_seed=1 ;; --via=*) via="${a#--via=}" ;; esac
  [[ "$prev" == --via ]] && via="$a"
  prev="$a"
done
((has_seed)) || set -- --seeds 1,2,3 "$@"

START=$SECONDS
# The reference: Redis on loopback, no persistence, stream nodes bounded by entry count
# only (100, as Sluice models a node), stopped at exit.
RDIR="$(mktemp -d "${TMPDIR:-/tmp}/redis-diff.XXXXXX")"
sluice_defer rm -rf -- "$RDIR"
RPORT="$(_sluice_free_port)"
redis-server --port "$RPORT" --bind 127.0.0.1 --protected-mode yes --save '' --appendonly no \
  --stream-node-max-bytes 0 --stream-node-max-entries 100 --daemonize no \
  --dir "$RDIR" --logfile "$RDIR/redis.log" </dev/null >/dev/null 2>&1 &
sluice_track_pid $!
deadline=$((SECONDS + 20))
until "$PY" -c 'import redis, sys; redis.Redis(host="127.0.0.1", port=int(sys.argv[1])).ping()' "$RPORT" 2>/dev/null; do
  ((SECONDS < deadline)) || { tail -n 20 "$RDIR/redis.log" >&2 || true; sluice_die "redis-server did not answer on 127.0.0.1:$RPORT"; }
  sleep 0.1
done
sluice_log "redis-server $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') on 127.0.0.1:$RPORT"

export REDIS_DIFF_REPLAY="tests/redis_diff/run.sh $BACKEND"
rc=0
if [[ "$BACKEND" == self-check ]]; then
  timeout "${REDIS_DIFF_TIMEOUT:-1800}" "$PY" "$ROOT/tests/redis_diff/diff.py" --self-check \
    --redis-port "$RPORT" "$@" </dev/null || rc=$?
else
  resp_args=()
  if [[ "$via" != http ]]; then
    [[ "$BACKEND" != external ]] || sluice_die "--via $via needs a node this script starts (not external)"
    RESP_PORT="$(_sluice_free_port)"
    export SLUICE_SERVER_ARGS="${SLUICE_SERVER_ARGS:-} --redis-port $RESP_PORT"
    resp_args=(--sluice-resp-port "$RESP_PORT")
  fi
  sluice_start "$BACKEND"
  export SLUICE_TOKEN="${SLUICE_TOKEN:-${SLUICE_ROOT_TOKEN:-}}"
  PLATE="redis-diff-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  timeout "${REDIS_DIFF_TIMEOUT:-1800}" "$PY" "$ROOT/tests/redis_diff/diff.py" \
    --sluice "$SLUICE_ENDPOINT" --plate "$PLATE" \
    --redis-port "$RPORT" "${resp_args[@]}" "$@" </dev/null || rc=$?
  if ((rc == 0)) && [[ "$via" != http ]]; then
    # Connection commands and protocol errors, byte for byte (the plate exists now).
    timeout 300 "$PY" "$ROOT/tests/redis_diff/raw.py" --redis-port "$RPORT" \
      --sluice-resp-port "$RESP_PORT" --plate "$PLATE" </dev/null || rc=$?
  fi
fi
((rc != 124)) || sluice_log "diff.py timed out"
printf '# redis-diff %s via %s: %ds\n' "$BACKEND" "$via" "$((SECONDS - START))"
exit "$rc"
