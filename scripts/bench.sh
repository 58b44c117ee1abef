#!/usr/bin/env bash
# `make bench`: s2 bench against Sluice and s2 lite, side by side, on a local directory
# and on ministack (scripts/bench/run.py does the work; its --help lists the knobs, e.g.
# scripts/bench.sh --quick, or --backends ministack --sizes 1024).
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
for arg in "$@"; do
  [[ "$arg" == -h || "$arg" == --help ]] && exec python3 scripts/bench/run.py --help
done
SLUICE_SKIP_PYTHON_SDK=1 SLUICE_SKIP_MOTO=1 scripts/install-tools.sh
cargo build --locked --release --bin sluice
exec python3 scripts/bench/run.py "$@"
