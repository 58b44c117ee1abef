#!/usr/bin/env bash
# Sluice over RESP side by side with a durable redis-server (appendonly yes, appendfsync
# always), one command for every figure of issue 20, in interleaved rounds (the targets'
# order rotating every round), each round on fresh data:
#
#   scripts/bench/resp-vs-redis.sh [rounds=2]
#
#   SLUICE_BIN             default target/release/sluice (cargo build --release --bin sluice)
#   RESP_GROUPS_BIN        default target/release/examples/resp_groups
#                            (cargo build --release --example resp_groups)
#   RESP_BENCH_TARGETS     default "redis local ministack cluster":
#                            redis      redis-server on this machine's disk
#                            local      one Sluice node on a local directory
#                            ministack  one Sluice node on ministack (scripts/ministack.sh)
#                            cluster    three Sluice nodes on one ministack bucket, each
#                                       naming the others in --peers (so each key has a
#                                       home node); clients take the nodes' RESP ports in
#                                       turn (no balancer in front: nginx here proxies
#                                       HTTP only). CLUSTER_ARGS adds flags to its nodes
#                            racing     the cluster with --no-key-homes: each node runs
#                                       every command itself, racing the others' writes
#                          A Sluice target may name its own binary, <target>@<path>
#                          ("local@/tmp/old/sluice"): two builds side by side.
#   RESP_BENCH_PARTS       default "xadd groups": which parts run
#   RESP_BENCH_XADD        default "1:1 1:16 16:1 16:16 64:1 64:16": the XADD runs, each
#                          connections:pipeline depth
#
# XADD with redis-benchmark at 1, 16 and 64 connections, unpipelined and pipelined 16
# deep (on the cluster, one redis-benchmark per node with a third of the connections,
# all on the same key; ops/s summed, the worst p50/p99 shown); XLEN then checks every
# XADD landed. Then one group drained by 1, 8 and 32 consumers (examples/resp_groups.rs,
# XREADGROUP COUNT 10 + XACK on one connection per consumer, a Rust client so that the
# client is not what bounds the figure), which also counts error replies. Prints the load
# average before each target. Loopback only.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-bench} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-bench}
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
BIN="${SLUICE_BIN:-target/release/sluice}"
GROUPS_BIN="${RESP_GROUPS_BIN:-target/release/examples/resp_groups}"
rounds="${1:-2}"
read -r -a targets <<<"${RESP_BENCH_TARGETS:-redis local ministack cluster}"
parts=" ${RESP_BENCH_PARTS:-xadd groups} "
read -r -a xadd_runs <<<"${RESP_BENCH_XADD:-1:1 1:16 16:1 16:16 64:1 64:16}"
work="$(mktemp -d "${TMPDIR:-/tmp}/resp-bench.XXXXXX")"
pids=() ministack_dir=
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  if [[ -n "$ministack_dir" ]]; then scripts/ministack.sh stop "$ministack_dir" >/dev/null 2>&1 || true; fi
  ministack_dir=
}
trap 'stop_all; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# Each sets $ports (its RESP ports, comma-separated) and appends its pids to $pids.
start_redis() {
  local dir="$work/redis-$1" port; mkdir -p "$dir"; port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --appendonly yes \
    --appendfsync always --save '' --daemonize no >"$dir/log" 2>&1 &
  pids+=($!); wait_port "$port"; ports=$port
}
# sluice_node <dir> <serve args...>: one node; appends its RESP port to $ports.
sluice_node() {
  local dir="$1" port http="${NODE_HTTP_PORT:-}"; shift; mkdir -p "$dir"; port=$(free_port)
  [[ -n "$http" ]] || http=$(free_port)
  "$bin" serve --host 127.0.0.1 --port "$http" --redis-port "$port" --redis-plate resp-bench \
    "$@" >"$dir/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$http/health" >/dev/null && break; sleep 0.1; done
  # The plate exists once: other nodes see it (409) on the same bucket.
  curl -s -o /dev/null -X POST "http://127.0.0.1:$http/v1/basins" \
    -H 'content-type: application/json' -d '{"basin":"resp-bench"}'
  wait_port "$port"; ports="${ports:+$ports,}$port"
}
start_local() { ports=; sluice_node "$work/local-$1" --local-root "$work/local-$1/data"; }
start_s3() { # round nodes
  ministack_dir="$work/ministack-$1"
  eval "$(scripts/ministack.sh start "$ministack_dir" resp-bench)"
  ports=
  # Every node's HTTP port is chosen first: with several, each names the others in --peers
  # (so each key has a home node, as scripts/cluster.sh runs them).
  local -a https=() peers
  local i j others
  for i in $(seq 1 "$2"); do https+=("$(free_port)"); done
  for i in $(seq 1 "$2"); do
    others=
    for j in $(seq 1 "$2"); do (( j == i )) || others+="${others:+,}http://127.0.0.1:${https[j-1]}"; done
    peers=(); [[ -z "$others" ]] || peers=(--peers "$others")
    # shellcheck disable=SC2086 # CLUSTER_ARGS: extra flags, word-split on purpose
    AWS_ENDPOINT_URL_S3="$MINISTACK_ENDPOINT" AWS_ENDPOINT_URL="$MINISTACK_ENDPOINT" NODE_HTTP_PORT="${https[i-1]}" \
      sluice_node "$work/s3-$1-$i" --bucket resp-bench --path "round-$1" ${CLUSTER_ARGS:-} "${peers[@]}"
  done
}
start_ministack() { start_s3 "$1" 1; }
start_cluster() { start_s3 "$1" 3; }
start_racing() { CLUSTER_ARGS="--no-key-homes ${CLUSTER_ARGS:-}" start_s3 "$1" 3; }

# bench_xadd <ports> <clients> <pipeline> <requests>: one redis-benchmark per port, the
# connections and requests shared out; ops/s summed, the largest p50 and p99.
bench_xadd() {
  local -a ps; IFS=, read -r -a ps <<<"$1"
  local c="$2" p="$3" n="$4" k=$(( $2 < ${#ps[@]} ? $2 : ${#ps[@]} )) i key="k-$2-$3-$RANDOM" out=()
  for ((i = 0; i < k; i++)); do
    out+=("$work/xadd.$i")
    redis-benchmark -p "${ps[i]}" -c $(( c / k + (i < c % k) )) -P "$p" -n $(( n / k + (i < n % k) )) \
      --csv XADD "$key" '*' f vvvvvvvvvvvvvvvvvvvvvvvvvvvvvv >"${out[i]}" 2>/dev/null &
  done
  wait # (this runs in $(...): its only children are these)
  local len; len=$(redis-cli -p "${ps[0]}" XLEN "$key")
  for f in "${out[@]}"; do tail -1 "$f"; done | awk -F'","' -v n="$n" -v len="$len" '
    { ops += $2; if ($5 + 0 > p50) p50 = $5 + 0; if ($7 + 0 > p99) p99 = $7 + 0 }
    END { printf "%.0f ops/s, p50 %.3f ms, p99 %.3f ms%s", ops, p50, p99, (len >= n ? "" : sprintf(", only %s of %s landed", len, n)) }'
}

started=0
for round in $(seq 1 "$rounds"); do
  # The order rotates every round, so each target goes first in turn.
  shift_by=$(( (round - 1) % ${#targets[@]} ))
  order=("${targets[@]:shift_by}" "${targets[@]:0:shift_by}")
  for target in "${order[@]}"; do
    bin=$BIN
    [[ "$target" == *@* ]] && bin=${target#*@}
    "start_${target%%@*}" "$round-$(( ++started ))" # fresh data for each target and round
    printf 'round %s %-9s load average %s\n' "$round" "$target" "$(cut -d' ' -f1-3 /proc/loadavg)"
    slow=$([[ "${target%%@*}" == ministack || "${target%%@*}" == cluster || "${target%%@*}" == racing ]] && echo 1 || echo 0)
    for run in "${xadd_runs[@]}"; do
      [[ "$parts" == *" xadd "* ]] || break
      c=${run%:*} p=${run#*:}
      if (( c == 1 && p == 1 )); then n=$(( slow ? 300 : 2000 )); else n=$(( slow ? 5000 : 20000 )); fi
      printf 'round %s %-9s XADD  c=%-2s P=%-2s %s\n' "$round" "$target" "$c" "$p" "$(bench_xadd "$ports" "$c" "$p" "$n")"
    done
    for consumers in 1 8 32; do
      [[ "$parts" == *" groups "* ]] || break
      printf 'round %s %-9s group consumers=%-2s %s\n' "$round" "$target" "$consumers" \
        "$("$GROUPS_BIN" --port "$ports" --consumers "$consumers" --entries $(( slow ? 10000 : 50000 )))"
    done
    stop_all
  done
done
