#!/usr/bin/env bash
# A perf profile of a Sluice node through one `s2 bench` run (write with a live follower,
# then catch-up), drawn as a flame graph:
#   scripts/bench/profile.sh <local|ministack> <out.svg> [s2 bench args...]
# Default bench args: --record-size 8192 --storage-class express --target-mibps 40
# --duration 10s --catchup-delay 3s. SLUICE_BIN picks the binary (a release build has
# the line tables perf needs). Needs `perf` (Debian: linux-perf). Also writes
# <out>.folded and prints the hottest frames.
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,8p' "$0" >&2; exit 2; }
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
backend=$1 out=$2
shift 2
if [[ ${PROFILE_RUN:-} == 1 ]]; then
  args=("$@")
  [[ ${#args[@]} -gt 0 ]] || args=(--record-size 8192 --storage-class express
                                   --target-mibps 40 --duration 10s --catchup-delay 3s)
  "$S2_CLI" create-basin profile-bench >/dev/null
  data=$(mktemp -d)
  perf record -F 499 -g -p "$SLUICE_PID" -o "$data/perf.data" 2>/dev/null &
  perf_pid=$!
  "$S2_CLI" bench profile-bench "${args[@]}" 2>&1 | grep -E '^(Write|Read|Catchup):'
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  perf script -i "$data/perf.data" 2>/dev/null |
    python3 "$here/flamegraph.py" --title "sluice ${args[*]}" --folded "$out.folded" --top 25 >"$out"
  rm -rf "$data"
  exit
fi
PROFILE_RUN=1 "$here/../with-sluice.sh" "$backend" -- "$0" "$backend" "$(realpath "$out")" "$@"
