#!/usr/bin/env bash
# What a Redis command's hop to its key's home costs: two nodes on one ministack bucket,
# each naming the other in --peers; one redis-benchmark connection to node 1 on a key
# whose home is node 1 and on one whose home is node 2 (found through node 1's
# sluice_redis_key_homes_total), `XADD` (forwarded when homed on node 2) and `XLEN`
# (never forwarded), in rounds. Loopback only.
#   scripts/bench/key-home-hop.sh [rounds=3]     SLUICE_BIN: default target/release/sluice
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-bench} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-bench}
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
BIN="${SLUICE_BIN:-target/release/sluice}"
rounds="${1:-3}"
work=$(mktemp -d "${TMPDIR:-/tmp}/key-home-hop.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/ministack.sh stop "$work/ministack" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
eval "$(scripts/ministack.sh start "$work/ministack" hop-bench)"
export AWS_ENDPOINT_URL_S3="$MINISTACK_ENDPOINT" AWS_ENDPOINT_URL="$MINISTACK_ENDPOINT"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
h1=$(free_port) h2=$(free_port) r1=$(free_port) r2=$(free_port)
"$BIN" serve --host 127.0.0.1 --port "$h1" --redis-port "$r1" --redis-plate hop-bench --bucket hop-bench \
  --peers "http://127.0.0.1:$h2" >"$work/node1.log" 2>&1 & pids+=($!)
"$BIN" serve --host 127.0.0.1 --port "$h2" --redis-port "$r2" --redis-plate hop-bench --bucket hop-bench \
  --peers "http://127.0.0.1:$h1" >"$work/node2.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$h1/health" >/dev/null && curl -sf "http://127.0.0.1:$h2/health" >/dev/null && break
  sleep 0.1
done
curl -s -o /dev/null -X POST "http://127.0.0.1:$h1/v1/basins" -H 'content-type: application/json' -d '{"basin":"hop-bench"}'
sleep 3 # a probe interval or two: each node knows the other's id
forwarded() { curl -s "http://127.0.0.1:$h1/metrics" | awk '/^sluice_redis_key_homes_total\{outcome="forwarded"\}/ {print $2}'; }
here= there=
for i in $(seq 1 64); do
  key="key-$i" before=$(forwarded)
  redis-cli -p "$r1" XADD "$key" '*' a b >/dev/null
  if [[ "$(forwarded)" != "$before" ]]; then there=${there:-$key}; else here=${here:-$key}; fi
  [[ -n "$here" && -n "$there" ]] && break
done
echo "homed on node 1: $here; homed on node 2: $there"
for round in $(seq 1 "$rounds"); do
  for key in "$here" "$there"; do
    for cmd in XADD XLEN; do
      args=(XLEN "$key"); n=2000
      [[ $cmd == XADD ]] && args=(XADD "$key" '*' f v) n=500
      printf 'round %s %-7s %s: ' "$round" "$key" "$cmd"
      redis-benchmark -p "$r1" -c 1 -n "$n" --csv "${args[@]}" 2>/dev/null | tail -1 |
        awk -F'","' '{ printf "%.0f ops/s, p50 %s ms, p99 %s ms\n", $2, $5, $7 }'
    done
  done
done
