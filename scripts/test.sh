#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs (outside the repo, in
# $SLUICE_TOOLS_DIR), starts the S3 servers on loopback, runs the Rust unit, integration
# and process tests on the local directory and on ministack, then the official clients'
# compatibility scripts (s2 CLI, s2 bench, Python SDK) and the differential test of the
# Redis-Streams API against a real Redis (tests/redis_diff: through HTTP, and through
# the RESP listener in RESP2 and RESP3) on both backends, redis-cli and ioredis against
# the RESP listener (tests/resp), the TypeScript SDK on encrypted streams (tests/ts), the
# metrics API through the s2 CLI and the TypeScript SDK on two nodes (tests/metrics), the
# dashboard in headless Chromium (tests/browser), the
# crash loop (SIGKILLs under load, then `sluice verify`) on both, then the compatibility
# suite through nginx in front of three nodes.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

# Dummy credentials and region everywhere: without them AWS clients probe the cloud
# metadata address, which must never be contacted.
export AWS_ACCESS_KEY_ID=sluice-test AWS_SECRET_ACCESS_KEY=sluice-test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export SLUICE_TOOLS_DIR="${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-test.XXXXXX")"
cleanup() {
  scripts/ministack.sh stop "$work/ministack" >/dev/null 2>&1 || true
  scripts/moto.sh stop "$work/moto" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }

step "installing test tools into $SLUICE_TOOLS_DIR"
scripts/install-tools.sh

step "starting S3 servers on loopback"
eval "$(scripts/ministack.sh start "$work/ministack" sluice-test)"
eval "$(scripts/moto.sh start "$work/moto" sluice-test)"
export SLUICE_TEST_S3_ENDPOINT="$MINISTACK_ENDPOINT" SLUICE_TEST_S3_BUCKET=sluice-test
export SLUICE_TEST_MOTO_ENDPOINT="$MOTO_ENDPOINT" SLUICE_TEST_MOTO_BUCKET=sluice-test

step "import cycles between modules"
python3 scripts/dev/import-cycles.py

step "building"
cargo build --locked --all-targets

step "unit, integration and process tests (local directory and ministack)"
cargo test --locked

step "official clients against a running node"
for backend in local ministack; do
  tests/cli/cli_compat.sh "$backend"
  tests/cli/bench.sh "$backend"
  tests/python/run.sh "$backend"
  tests/redis_diff/run.sh "$backend" --seeds 1,2,3
  tests/redis_diff/run.sh "$backend" --via resp2 --seed 1 --ops 1500
  tests/redis_diff/run.sh "$backend" --via resp3 --seed 1 --ops 1500
  tests/resp/redis_cli.sh "$backend"
  tests/resp/ioredis.sh "$backend"
  tests/ts/encryption.sh "$backend"
done
# Two processes on one ministack bucket: the s2 CLI and the TypeScript SDK read the metrics API.
tests/metrics/run.sh

step "the web dashboard in headless Chromium (tokens off, then on)"
tests/browser/run.sh local

# HTTPS (the s2 CLI, the Python SDK, curl over HTTP/1.1 and HTTP/2); TLS is the listener's,
# the same on every backend.
tests/tls/run.sh

step "crash loop: 20 SIGKILLs under load, then sluice verify and a full read (local directory and ministack)"
scripts/crash-loop.sh
scripts/crash-loop.sh --ministack

step "the compatibility suite and s2 bench through a load balancer in front of three nodes"
scripts/cluster-tests.sh

step "all tests passed"
