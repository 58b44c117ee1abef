#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Runs `s2 bench` (s2 CLI 0.43.4) against a fresh Sluice server: a writer at the target
# rate over an S2S append session, a live reader and a catch-up reader, each verifying
# a chain hash over every record. Passes when the CLI exits 0, prints the Write, Read
# and Catchup summary lines, and reports no verification error.
#
#   tests/cli/bench.sh [local|ministack|moto|external]   (default: local; external: SLUICE_EXTERNAL_ENDPOINT)
#
# Knobs: BENCH_MIBPS (default 20), BENCH_DURATION (default 10s), BENCH_RECORD_SIZE
# (default: the CLI's 8192), BENCH_TIMEOUT seconds for the whole bench (default 300).
# Needs target/debug/sluice (`cargo build --bin sluice`) and the s2 CLI from
# scripts/install-tools.sh. See scripts/with-sluice.sh for the other knobs.
set -euo pipefail

BACKEND="${1:-local}"
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# shellcheck source=../../scripts/with-sluice.sh disable=SC1091
source "$ROOT/scripts/with-sluice.sh"

[[ -x "$S2_CLI" ]] || sluice_die "s2 CLI not found at $S2_CLI (run scripts/install-tools.sh)"
MIBPS="${BENCH_MIBPS:-20}"
DURATION="${BENCH_DURATION:-10s}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-300}"
START=$SECONDS

sluice_start "$BACKEND"
T="$SLUICE_WORK_DIR/bench"
mkdir -p "$T"
BASIN="bench-$(printf '%04x%04x' "$RANDOM" "$RANDOM")"

fail() {
  printf 'FAIL - %s\n' "$1" >&2
  shift
  local f
  for f in "$@"; do
    printf '  --- %s:\n' "${f##*/}" >&2
    sed 's/^/  | /' "$f" | tail -n 60 >&2
  done
  printf '0 passed, 1 failed\n'
  exit 1
}

timeout 60 "$S2_CLI" create-basin "$BASIN" >"$T/create-basin.out" 2>"$T/create-basin.err" \
  || fail "s2 create-basin $BASIN" "$T/create-basin.out" "$T/create-basin.err"

args=(bench "$BASIN" --target-mibps "$MIBPS" --duration "$DURATION" --catchup-delay 0s)
[[ -n "${BENCH_RECORD_SIZE:-}" ]] && args+=(--record-size "$BENCH_RECORD_SIZE")
printf '# s2 %s  (%s backend, %s)\n' "${args[*]}" "$BACKEND" "$SLUICE_ENDPOINT"

rc=0
BENCH_START=$SECONDS
timeout "$BENCH_TIMEOUT" "$S2_CLI" "${args[@]}" </dev/null >"$T/bench.out" 2>"$T/bench.err" || rc=$?
BENCH_SECS=$((SECONDS - BENCH_START))
# The CLI draws progress bars with ANSI escapes even under NO_COLOR; strip them.
sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\r/\n/g' "$T/bench.err" >"$T/bench.err.txt"

((rc != 124)) || fail "s2 bench did not finish within ${BENCH_TIMEOUT}s" "$T/bench.err.txt"
((rc == 0)) || fail "s2 bench exited $rc" "$T/bench.out" "$T/bench.err.txt"
if grep -qi 'verification' "$T/bench.err.txt" "$T/bench.out"; then
  fail "s2 bench reported a verification problem" "$T/bench.err.txt"
fi

num='[0-9]+(\.[0-9]+)?'
summary_re="^(Write|Read|Catchup): $num MiB/s, $num records/s \\([0-9]+ bytes, [0-9]+ records in $num""s\\)"
grep -E "$summary_re" "$T/bench.err.txt" >"$T/summary.txt" || true
for label in Write Read Catchup; do
  grep -q "^$label: " "$T/summary.txt" || fail "no '$label: ... MiB/s, ... records/s (...)' summary line" "$T/bench.err.txt"
done

# The three phases must agree on the record count (the CLI verifies this too).
counts="$(sed -E 's/.*, ([0-9]+) records in .*/\1/' "$T/summary.txt" | sort -u)"
[[ "$(wc -l <<<"$counts")" == 1 ]] || fail "Write/Read/Catchup record counts differ: $(tr '\n' ' ' <<<"$counts")" "$T/summary.txt"
((counts > 0)) || fail "bench wrote no records" "$T/summary.txt"

cat "$T/summary.txt"
# The latency tables: from the "Latency Statistics" title through the "max" row.
sed -n '/Latency Statistics/,/^max/p' "$T/bench.err.txt"
printf '# %s backend: %s records each way; bench %ds, script %ds\n' "$BACKEND" "$counts" "$BENCH_SECS" "$((SECONDS - START))"
printf '1 passed, 0 failed\n'
