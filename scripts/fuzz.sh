#!/usr/bin/env bash
# Runs the decoders' fuzz properties (every test named `fuzz…` or in a `fuzz` module:
# `cargo test --lib fuzz`) for longer than CI does: rounds of $FUZZ_CASES cases per
# property (default 20000; CI runs 1000–4000), each round with fresh random inputs, until
# about SECONDS have passed (default 600; the round under way is finished). Stops at the
# first failure, which proptest shrinks, prints and saves under proptest-regressions/ (not
# committed) to be replayed first by every later run; once fixed, keep it as a unit test.
#
#   scripts/fuzz.sh [seconds] [test filter]     e.g. scripts/fuzz.sh 3600 manifest::fuzz
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

# The tests touch no cloud, but nothing here may probe the metadata address either.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-sluice-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-sluice-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_EC2_METADATA_DISABLED=true

seconds="${1:-600}"
filter="${2:-fuzz}"
cases="${FUZZ_CASES:-20000}"

cargo test --lib --no-run --quiet
end=$((SECONDS + seconds))
round=0
while ((SECONDS < end)); do
  round=$((round + 1))
  printf '==> round %d: %s cases per property, %d s left\n' "$round" "$cases" "$((end - SECONDS))"
  PROPTEST_CASES="$cases" cargo test --lib --quiet "$filter"
done
printf '==> %d rounds, no failure\n' "$round"
