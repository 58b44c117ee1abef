#!/usr/bin/env bash
# Interleaved A/B of two server binaries on one `s2 bench` write configuration, each run
# against a fresh node on a local directory (or BACKEND=ministack):
#   scripts/bench/write-ab.sh <binary A> <binary B> <record size> <class> <MiB/s>
# prints, per run, the write throughput and the ack p50/p99. WARM=1 first writes 10 s of
# 8 KiB records at 150 MiB/s to the same node, so the measured run starts with a full
# chunk cache, as the sweep's higher rates do. Knobs: PAIRS (3), WARM (0), BACKEND (local).
# A binary written `token:<path>` runs with a root token, and the client presents it.
set -euo pipefail
[[ $# -eq 5 ]] || { sed -n '2,7p' "$0" >&2; exit 2; }
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-dummy} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-dummy}
export AWS_REGION=${AWS_REGION:-us-east-1}
a=$1 b=$2 size=$3 class=$4 rate=$5

if [[ ${WRITE_AB_RUN:-} == 1 ]]; then
  # One measured run, inside scripts/with-sluice.sh.
  basin=write-ab-bench
  export S2_ACCESS_TOKEN=${SLUICE_ROOT_TOKEN:-$S2_ACCESS_TOKEN}
  "$S2_CLI" create-basin "$basin" >/dev/null
  if [[ ${WARM:-0} == 1 ]]; then
    "$S2_CLI" bench "$basin" --record-size 8192 --storage-class "$class" \
      --target-mibps 150 --duration 10s --catchup-delay 0s >/dev/null 2>&1
  fi
  "$S2_CLI" bench "$basin" --record-size "$size" --storage-class "$class" \
    --target-mibps "$rate" --duration 10s --catchup-delay 0s 2>&1 |
    awk '/^Write:/{w=$2} /^p50/{p50=$3} /^p99/{p99=$3}
         END{printf "write %s MiB/s, ack p50 %s, p99 %s\n", w, p50, p99}'
  exit
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for _ in $(seq "${PAIRS:-3}"); do
  for bin in "$a" "$b"; do
    printf '%s: ' "$bin"
    token=""
    [[ $bin == token:* ]] && token="write-ab-root-$RANDOM$RANDOM"
    SLUICE_ROOT_TOKEN=$token SLUICE_BIN=${bin#token:} WRITE_AB_RUN=1 \
      "$here/../with-sluice.sh" "${BACKEND:-local}" -- \
      "$0" "$a" "$b" "$size" "$class" "$rate" 2>"$log" || { echo failed; cat "$log" >&2; exit 1; }
  done
done
