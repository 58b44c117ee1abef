#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Runs tests/python/smoke.py (the Python s2-sdk from PyPI) against a fresh Sluice server
# that requires access tokens.
#
#   tests/python/run.sh [local|ministack|moto]        (default: local)
#
# Needs target/debug/sluice (`cargo build --bin sluice`) and the venv
# $SLUICE_TOOLS_DIR/python-sdk-venv from scripts/install-tools.sh.
# See scripts/with-sluice.sh for the other knobs.
set -euo pipefail

BACKEND="${1:-local}"
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# shellcheck source=../../scripts/with-sluice.sh disable=SC1091
source "$ROOT/scripts/with-sluice.sh"

PY="$SLUICE_TOOLS_DIR/python-sdk-venv/bin/python"
if ! [[ -x "$PY" ]] || ! "$PY" -c 'import s2_sdk' 2>/dev/null; then
  sluice_die "no s2-sdk venv at $SLUICE_TOOLS_DIR/python-sdk-venv (run scripts/install-tools.sh)"
fi

START=$SECONDS
# With a root token, so that every call also proves the SDK's bearer authentication.
SLUICE_ROOT_TOKEN="py-root-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export SLUICE_ROOT_TOKEN
sluice_start "$BACKEND"
export S2_ACCESS_TOKEN="$SLUICE_ROOT_TOKEN"
rc=0
timeout "${SMOKE_TIMEOUT:-300}" "$PY" "$ROOT/tests/python/smoke.py" </dev/null || rc=$?
((rc != 124)) || sluice_log "smoke.py timed out"
printf '# %s backend: %ds\n' "$BACKEND" "$((SECONDS - START))"
exit "$rc"
