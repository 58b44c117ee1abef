#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The TypeScript SDK (@s2-dev/streamstore, installed by scripts/install-tools.sh into
# $SLUICE_TOOLS_DIR/ts-sdk) appends to and reads encrypted streams of a fresh Sluice node
# (tests/ts/encryption.mjs); then, on a local directory, no file of the node's data may
# hold the plaintext it wrote, while the plain stream's control record is found.
#
#   tests/ts/encryption.sh [local|ministack]
set -euo pipefail

BACKEND="${1:-local}"
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# shellcheck source=../../scripts/with-sluice.sh disable=SC1091
source "$ROOT/scripts/with-sluice.sh"
command -v node >/dev/null || sluice_die "node not found"
MODULES="$SLUICE_TOOLS_DIR/ts-sdk/node_modules"
[[ -d "$MODULES/@s2-dev/streamstore" ]] || sluice_die "no TypeScript SDK in $MODULES (run scripts/install-tools.sh)"

sluice_start "$BACKEND"
# An .mjs resolves bare imports next to itself, not through NODE_PATH: link the modules.
WORK="$SLUICE_WORK_DIR/ts"
mkdir -p "$WORK"
ln -s "$MODULES" "$WORK/node_modules"
cp "$ROOT/tests/ts/encryption.mjs" "$WORK/"
timeout 120 node "$WORK/encryption.mjs" "$SLUICE_ENDPOINT" "ts-crypt-basin-1"

if [[ "$BACKEND" == local ]]; then
  DATA="$SLUICE_WORK_DIR/data"
  grep -rqa "ts-control-body-0" "$DATA" || sluice_die "the plain stream's record is not in $DATA: the search cannot find anything"
  if found="$(grep -rla "ts-plaintext-" "$DATA")"; then
    sluice_die "plaintext of an encrypted stream in: $found"
  fi
  echo "encryption.sh: no plaintext of the encrypted streams in $DATA"
fi
