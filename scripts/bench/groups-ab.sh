#!/usr/bin/env bash
# Two server binaries side by side on the Redis-Streams surface's consumer groups, in
# interleaved rounds (the binaries' order alternating), each round on fresh storage:
#
#   scripts/bench/groups-ab.sh <binary A> <binary B> [rounds=3] [backends="local ministack"]
#
# Each run is `scripts/bench/redis-throughput.py --producers 16 --consumers C --count 10`
# for C in 8 and 32 (10 s of adds, then the group drained). Prints one line per run;
# the medians are for the reader (docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-bench} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-bench}
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true

a="$1" b="$2" rounds="${3:-3}" backends="${4:-local ministack}"
for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then order=("$a" "$b"); else order=("$b" "$a"); fi
  for backend in $backends; do
    for consumers in 8 32; do
      for bin in "${order[@]}"; do
        raw=$(SLUICE_BIN="$bin" scripts/with-sluice.sh "$backend" -- python3 scripts/bench/redis-throughput.py \
          --producers 16 --consumers "$consumers" --count 10 2>&1) || true
        out=$(grep -E '^(xadd|xreadgroup|error)' <<<"$raw" | tr '\n' ' ') || out="failed: ${raw: -300}"
        printf 'round %s %-9s consumers %2s %-18s %s\n' "$round" "$backend" "$consumers" "$(basename "$bin")" "$out"
      done
    done
  done
done
