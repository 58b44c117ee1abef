#!/usr/bin/env bash
# Catch-up read throughput of whatever server S2_BASIN_ENDPOINT points at, two ways:
# `s2 bench`'s own catch-up (the client decodes and hashes every record, and on two cores
# competes with the server for CPU), and a bare HTTP/2 S2S read session by curl to
# /dev/null (close to the server's own limit). A catch-up of a few hundred MiB lasts well
# under a second, so it repeats each measurement: RUNS times for `s2 bench`, READS times
# for curl.
#   SLUICE_BIN=target/release/sluice scripts/with-sluice.sh local -- scripts/bench/catchup.sh
# Against `s2 lite`: start it, set S2_ACCOUNT_ENDPOINT, S2_BASIN_ENDPOINT, S2_CLI, dummy
# AWS_* variables, and run this script directly.
# Knobs: RUNS (5), READS (RUNS), SIZE record bytes (8192), RATE MiB/s (50), DUR seconds of
# writing (5).
set -euo pipefail
runs=${RUNS:-5} reads=${READS:-${RUNS:-5}} size=${SIZE:-8192} rate=${RATE:-50} dur=${DUR:-5}
basin=catchup-bench
"$S2_CLI" create-basin "$basin" >/dev/null 2>&1 || true
out=$(mktemp)
trap 'rm -f "$out"; [[ -n "${bench:-}" ]] && kill "$bench" 2>/dev/null || true' EXIT

bench_args=(--record-size "$size" --storage-class express --target-mibps "$rate"
            --duration "${dur}s")
for _ in $(seq "$runs"); do
  "$S2_CLI" bench "$basin" "${bench_args[@]}" --catchup-delay 1s 2>&1 | grep '^Catchup'
done

# One more write; curl reads its stream while `s2 bench` waits to catch up (it deletes
# the stream when it ends).
"$S2_CLI" bench "$basin" "${bench_args[@]}" --catchup-delay 120s >"$out" 2>&1 &
bench=$!
until grep -q '^Waiting' "$out"; do
  kill -0 "$bench" 2>/dev/null || { cat "$out" >&2; exit 1; }
  sleep 0.2
done
stream=$(grep -o "s2://$basin/[^ ]*" "$out" | head -1)
stream=${stream#"s2://$basin/"}
records=$(grep -o '[0-9]* records in' "$out" | head -1 | cut -d' ' -f1)
encoded=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$stream")
for _ in $(seq "$reads"); do
  curl -sS --noproxy '*' --http2-prior-knowledge -o /dev/null \
    -w '%{size_download} %{time_total}\n' \
    -H 'content-type: s2s/proto' -H "s2-basin: $basin" -H 'authorization: Bearer ignored' \
    "$S2_BASIN_ENDPOINT/v1/streams/$encoded/records?seq_num=0&count=$records" |
    awk '{printf "Bare S2S read: %.2f MiB/s (%d bytes)\n", $1 / $2 / 1048576, $1}'
done
