#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The web dashboard in a real browser: playwright-core (npm) driving Debian's chromium,
# both installed by scripts/install-tools.sh, runs tests/browser/dashboard.mjs against a
# fresh node with access tokens off, then against one with --root-token.
#
#   tests/browser/run.sh [local|ministack]   a fresh node per run, tokens off then on
#   tests/browser/run.sh external            tokens off, against SLUICE_EXTERNAL_ENDPOINT
#                                            (HTTP/1.1, e.g. a cluster's balancer)
#
# SLUICE_SCREENSHOTS=1 also writes a PNG of each view to docs/dashboard/ (the README's
# "Dashboard" section shows them). A failure leaves a screenshot in /tmp.
set -euo pipefail

BACKEND="${1:-local}"
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# shellcheck source=../../scripts/with-sluice.sh disable=SC1091
source "$ROOT/scripts/with-sluice.sh"
command -v node >/dev/null || sluice_die "node not found"
export PLAYWRIGHT_MODULES="$SLUICE_TOOLS_DIR/playwright/node_modules"
[[ -d "$PLAYWRIGHT_MODULES/playwright-core" ]] || sluice_die "no playwright-core in $PLAYWRIGHT_MODULES (run scripts/install-tools.sh)"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[[ -x "$CHROMIUM" ]] || sluice_die "no chromium at $CHROMIUM (run scripts/install-tools.sh)"
if [[ "${SLUICE_SCREENSHOTS:-}" == 1 ]]; then
  export SCREENSHOT_DIR="$ROOT/docs/dashboard"
fi

browse() { # <mode name> [root token]
  SLUICE_BROWSER_MODE="$1" SLUICE_ROOT_TOKEN="${2:-}" FAILURE_DIR="${TMPDIR:-/tmp}" \
    timeout 180 node "$ROOT/tests/browser/dashboard.mjs"
}

if [[ "$BACKEND" == external ]]; then
  sluice_start external
  browse external
  exit 0
fi

sluice_start "$BACKEND"
browse "$BACKEND, tokens off"
sluice_stop

ROOT_TOKEN="dashboard-root-$RANDOM$RANDOM"
export SLUICE_SERVER_ARGS="${SLUICE_SERVER_ARGS:-} --root-token $ROOT_TOKEN"
sluice_start "$BACKEND"
browse "$BACKEND, tokens on" "$ROOT_TOKEN"
