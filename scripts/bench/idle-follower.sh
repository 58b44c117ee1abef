#!/usr/bin/env bash
# Object-store reads one node makes for one idle `express` stream with one following
# `s2 read`, over 30 s, on ministack:
#   SLUICE_BIN=target/release/sluice scripts/with-sluice.sh ministack -- scripts/bench/idle-follower.sh
# (reads the node's sluice_store_requests_total{op="get"} from /metrics before and after).
set -euo pipefail
"$S2_CLI" create-basin idle-basin >/dev/null
"$S2_CLI" create-stream s2://idle-basin/s >/dev/null
echo hello | "$S2_CLI" append s2://idle-basin/s >/dev/null
"$S2_CLI" read s2://idle-basin/s >/dev/null 2>&1 &
reader=$!
trap 'kill "$reader" 2>/dev/null || true' EXIT
gets() { curl -s --noproxy '*' "$SLUICE_ENDPOINT/metrics" | awk '/^sluice_store_requests_total{op="get"}/{print $2}'; }
sleep 5 # let the reader reach the tail and the stream go quiet
before=$(gets)
sleep 30 # the measured window
echo "object GETs in 30 s with one idle follower: $(($(gets) - before))"
