#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Local S3 server for Sluice tests: moto in server mode (moto[server]==5.2.5).
#
#   scripts/moto.sh start <data_dir>         -> prints MOTO_ENDPOINT=http://127.0.0.1:<port>
#   scripts/moto.sh mkbucket <endpoint> <bucket>
#   scripts/moto.sh stop <data_dir>
#   scripts/moto.sh status <data_dir> | install
#
# Installs moto[server]==5.2.5 into ${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}/moto-venv
# on first use. Runs moto_server through scripts/moto-server.py, which makes each
# conditional PUT atomic as in S3 (see there), with `-H 127.0.0.1 -p <port>` (port from $MOTO_PORT or
# a free one). moto keeps everything IN MEMORY: a stop/start loses all data.
# <data_dir> is only used as TMPDIR (moto spools large bodies to temp files).
# pid, port and server.log are kept in <data_dir>.moto-state/.
# See scripts/S3_SERVERS.md for the measured behaviour.

S3S_NAME=moto
MOTO_SCRIPTS_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
S3S_PKG="moto[server]==5.2.5"
S3S_VENV_NAME=moto-venv
S3S_CHECK_BIN=bin/moto_server
S3S_ENDPOINT_VAR=MOTO_ENDPOINT
S3S_PORT_VAR=MOTO_PORT
S3S_HEALTH_PATH=/moto-api/data.json

s3s_command() {
  local port="$1" data_dir="$2"   # $3 (state dir) unused
  S3S_CMD=(env TMPDIR="$data_dir" "$S3S_VENV/bin/python"
    "$MOTO_SCRIPTS_DIR/moto-server.py" -H 127.0.0.1 -p "$port")
}

# shellcheck source=s3server-common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/s3server-common.sh"
s3s_main "$@"
