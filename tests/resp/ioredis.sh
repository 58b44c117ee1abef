#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# ioredis (Node, from npm, installed by scripts/install-tools.sh into
# $SLUICE_TOOLS_DIR/ioredis) against a fresh Sluice node's RESP listener: XADD,
# XREADGROUP BLOCK woken by another client's XADD, XACK, in RESP2 and RESP3
# (tests/resp/ioredis.js).
#
#   tests/resp/ioredis.sh [local|ministack]
set -euo pipefail

BACKEND="${1:-local}"
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# shellcheck source=../../scripts/with-sluice.sh disable=SC1091
source "$ROOT/scripts/with-sluice.sh"
command -v node >/dev/null || sluice_die "node not found"
MODULES="$SLUICE_TOOLS_DIR/ioredis/node_modules"
[[ -d "$MODULES/ioredis" ]] || sluice_die "no ioredis in $MODULES (run scripts/install-tools.sh)"

PLATE=ioredis-plate-1
RESP_PORT="$(_sluice_free_port)"
export SLUICE_SERVER_ARGS="${SLUICE_SERVER_ARGS:-} --redis-port $RESP_PORT"
sluice_start "$BACKEND"
curl -sf --noproxy '*' -XPOST "$SLUICE_ENDPOINT/v1/basins" -H 'content-type: application/json' \
  -d "{\"basin\": \"$PLATE\"}" >/dev/null || sluice_die "could not create the plate"
NODE_PATH="$MODULES" timeout 120 node "$ROOT/tests/resp/ioredis.js" "$RESP_PORT" "$PLATE" "${SLUICE_ROOT_TOKEN:-}"
