#!/usr/bin/env bash
# The S2 compatibility suite through a load balancer: ministack, three `sluice` nodes on
# one bucket and nginx in front (scripts/cluster.sh), then every integration test that
# can run against a remote endpoint, then the linearizable workloads with nodes killed
# (SIGKILL) mid-way (unary reads with one node killed; read sessions while every node is
# killed and restarted in turn), then the check that every node's open streams end with
# an error when it dies (scripts/lb-kill-check.sh, which fails behind a balancer that
# ends them cleanly, such as Debian's HAProxy 2.6), then the dashboard's browser test and
# `s2 bench` through the balancer.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

export AWS_ACCESS_KEY_ID=sluice-test AWS_SECRET_ACCESS_KEY=sluice-test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export SLUICE_TOOLS_DIR="${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}"

state="$(mktemp -d "${TMPDIR:-/tmp}/sluice-cluster.XXXXXX")"
cleanup() {
  scripts/cluster.sh down "$state" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

cargo build --locked --bin sluice --tests
eval "$(scripts/cluster.sh up "$state")"
export SLUICE_TEST_CLUSTER_ENDPOINT="$SLUICE_ENDPOINT" SLUICE_TEST_CLUSTER_STATE="$state"
export SLUICE_TEST_CLUSTER_HTTP1_ENDPOINT="$SLUICE_HTTP1_ENDPOINT"
printf '==> compatibility suite through %s (h2c) and %s (HTTP/1.1)\n' \
  "$SLUICE_ENDPOINT" "$SLUICE_HTTP1_ENDPOINT"
cargo test --locked --test integration -- --ignored cluster::
printf '==> linearizable workloads through the balancer, nodes killed with SIGKILL\n'
# One at a time: each kills nodes of the one cluster.
cargo test --locked --test integration -- --ignored --nocapture --test-threads=1 balanced::
printf '==> every node killed under open read sessions: they must end with an error\n'
scripts/lb-kill-check.sh "$state"
printf '==> the dashboard in headless Chromium through the balancer (HTTP/1.1 port)\n'
SLUICE_EXTERNAL_ENDPOINT="$SLUICE_HTTP1_ENDPOINT" SLUICE_BEHIND_BALANCER=1 tests/browser/run.sh external
printf '==> s2 bench through the balancer\n'
SLUICE_EXTERNAL_ENDPOINT="$SLUICE_ENDPOINT" tests/cli/bench.sh external
