#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Local S3 server for Sluice tests: MiniStack (https://pypi.org/project/ministack/).
#
#   scripts/ministack.sh start <data_dir>         -> prints MINISTACK_ENDPOINT=http://127.0.0.1:<port>
#   scripts/ministack.sh mkbucket <endpoint> <bucket>
#   scripts/ministack.sh stop <data_dir>
#   scripts/ministack.sh status <data_dir> | install
#
# Installs ministack==1.5.33 into ${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}/ministack-venv
# on first use. Binds 127.0.0.1 only; port from $MINISTACK_PORT or a free one.
# Objects persist in <data_dir> (S3_PERSIST=1) and survive a stop/start.
# pid, port and server.log are kept in <data_dir>.ministack-state/.
# See scripts/S3_SERVERS.md for the measured behaviour.

S3S_NAME=ministack
S3S_PKG="ministack==1.5.33"
S3S_VENV_NAME=ministack-venv
S3S_CHECK_BIN=bin/ministack
S3S_ENDPOINT_VAR=MINISTACK_ENDPOINT
S3S_PORT_VAR=MINISTACK_PORT
S3S_HEALTH_PATH=/_ministack/health

# Entry point: console script `ministack` = ministack.app:main, equivalently
# `python -m ministack`. Without -d it serves in the foreground (hypercorn,
# one asyncio loop). It writes ministack-<port>.pid into $TMPDIR, so TMPDIR
# points at the state dir to keep /tmp clean.
s3s_command() {
  local port="$1" data_dir="$2" state="$3"
  S3S_CMD=(env
    BIND_HOST=127.0.0.1
    GATEWAY_PORT="$port"
    SERVICES=s3
    S3_PERSIST=1
    S3_DATA_DIR="$data_dir"
    TMPDIR="$state"
    "$S3S_VENV/bin/python" -m ministack)
}

# shellcheck source=s3server-common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/s3server-common.sh"
s3s_main "$@"
