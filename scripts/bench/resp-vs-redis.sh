#!/usr/bin/env bash
# Sluice over RESP side by side with a durable redis-server (appendonly yes, appendfsync
# always), both on this machine's local disk, in interleaved rounds (the servers' order
# alternating), each round on fresh data:
#
#   scripts/bench/resp-vs-redis.sh [rounds=2]       (SLUICE_BIN: default target/release/sluice)
#
# XADD with redis-benchmark at 1, 16 and 64 connections, unpipelined and pipelined 16
# deep; then one group drained by 1, 8 and 32 consumers (scripts/bench/resp_groups.py,
# XREADGROUP COUNT 10 + XACK). Loopback only.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-bench} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-bench}
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
BIN="${SLUICE_BIN:-target/release/sluice}"
PY="${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}/redis-diff-venv/bin/python"
rounds="${1:-2}"
work="$(mktemp -d "${TMPDIR:-/tmp}/resp-bench.XXXXXX")"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# Each sets $port (its RESP port) and appends its pid to $pids.
start_redis() {
  local dir="$work/redis-$1"; mkdir -p "$dir"; port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --appendonly yes \
    --appendfsync always --save '' --daemonize no >"$dir/log" 2>&1 &
  pids+=($!); wait_port "$port"
}
start_sluice() {
  local dir="$work/sluice-$1" http; mkdir -p "$dir"; port=$(free_port); http=$(free_port)
  "$BIN" serve --host 127.0.0.1 --port "$http" --local-root "$dir/data" --redis-port "$port" \
    --redis-plate resp-bench >"$dir/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/health" >/dev/null && break; sleep 0.1; done
  curl -sf -X POST "http://127.0.0.1:$http/v1/basins" -H 'content-type: application/json' \
    -d '{"basin":"resp-bench"}' >/dev/null
  wait_port "$port"
}
bench_xadd() { # port clients pipeline requests
  redis-benchmark -p "$1" -c "$2" -P "$3" -n "$4" --csv XADD "k-$2-$3" '*' f vvvvvvvvvvvvvvvvvvvvvvvvvvvvvv \
    2>/dev/null | tail -1 | awk -F'","' '{printf "%s ops/s, p50 %s ms, p99 %s ms", $2, $5, $7}'
}
for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then order=(redis sluice); else order=(sluice redis); fi
  for server in "${order[@]}"; do
    "start_$server" "$round"
    for c in 1 16 64; do
      for p in 1 16; do
        n=$(( c == 1 && p == 1 ? 2000 : 20000 ))
        printf 'round %s %-6s XADD  c=%-2s P=%-2s %s\n' "$round" "$server" "$c" "$p" "$(bench_xadd "$port" "$c" "$p" "$n")"
      done
    done
    for consumers in 1 8 32; do
      printf 'round %s %-6s group consumers=%-2s %s\n' "$round" "$server" "$consumers" \
        "$("$PY" scripts/bench/resp_groups.py --port "$port" --consumers "$consumers" --entries 10000)"
    done
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
  done
done
