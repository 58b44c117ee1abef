#!/usr/bin/env bash
# Installs the tools that Sluice's compatibility tests use, outside the repo, into
# ${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}. Idempotent: every part is skipped when
# the pinned version is already there.
#
#   s2-cli/bin/s2      s2 CLI 0.43.4      (cargo install --locked; build dir: <tools>/target)
#   ministack-venv/    ministack          (scripts/ministack.sh install)
#   moto-venv/         moto[server]       (scripts/moto.sh install)
#   python-sdk-venv/   Python s2-sdk      (pip, exact pins below)
#   redis-diff-venv/   redis-py           (pip, exact pin below; tests/redis_diff)
#   redis-server       Debian's package   (apt-get, only when none is on PATH; the
#                                          reference Redis of tests/redis_diff)
#   redis-cli          Debian's redis-tools (apt-get, only when none is on PATH;
#                                          tests/resp/redis_cli.sh)
#   ioredis/           ioredis from npm   (exact pin below; tests/resp/ioredis.sh)
#   ts-sdk/            @s2-dev/streamstore from npm (the TypeScript SDK; tests/ts)
#   playwright/        playwright-core from npm, driving Debian's chromium (apt-get,
#                                          only when none is on PATH; browser tests)
#
# Skip a part with SLUICE_SKIP_S2_CLI=1, SLUICE_SKIP_MINISTACK=1, SLUICE_SKIP_MOTO=1,
# SLUICE_SKIP_PYTHON_SDK=1, SLUICE_SKIP_REDIS_DIFF=1 (redis-server, redis-cli, redis-py),
# SLUICE_SKIP_IOREDIS=1, SLUICE_SKIP_TS_SDK=1 or SLUICE_SKIP_BROWSER=1. SLUICE_PYTHON picks
# the python used to build the venvs (default python3; the Python SDK needs >= 3.11).
#
# Why s2-sdk 0.13.0: it is the newest release on PyPI, and it speaks HTTP/2 with prior
# knowledge (h2c) on http:// endpoints through its own `h2`-based client, which is what
# Sluice serves. Verified against Sluice by tests/python/run.sh.
set -euo pipefail

S2_CLI_VERSION=0.43.4
# The SDK and its whole dependency closure, pinned, so every machine gets the same bytes.
PYTHON_SDK_REQS=(
  "s2-sdk==0.13.0"
  "h2==4.4.1"
  "hpack==4.2.0"
  "hyperframe==6.1.0"
  "protobuf==6.33.6"
  "zstandard==0.25.0"
)

# redis-py for the differential test against Redis (RESP3 parser; no dependencies on
# Python >= 3.11.3, async-timeout below that).
REDIS_DIFF_REQS=(
  "redis==5.2.1"
  "async-timeout==4.0.3"
)

# ioredis for tests/resp/ioredis.sh; its own dependencies come pinned by its
# package-lock (npm install --no-save of an exact version).
IOREDIS_VERSION=6.0.0
# The TypeScript SDK (tests/ts), and playwright-core driving Debian's chromium for the
# dashboard's browser tests.
TS_SDK_VERSION=0.27.0
PLAYWRIGHT_VERSION=1.65.1

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
TOOLS_DIR="${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}"
PYTHON="${SLUICE_PYTHON:-python3}"

# Dummy credentials and region: nothing here talks to AWS, but keep every client away
# from the cloud metadata endpoint no matter what it does.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1

log() { printf 'install-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p -- "$TOOLS_DIR"

# Runs "$@" while holding an exclusive lock on <tools>/<name>.lock, so parallel
# installers (CI jobs, test processes) do not build over each other.
with_lock() {
  local name="$1"; shift
  local fd
  exec {fd}>"$TOOLS_DIR/$name.lock"
  flock "$fd"
  "$@"   # under set -e a failure exits the script, which releases the lock too
  exec {fd}>&-
}

# ------------------------------------------------------------------ s2 CLI --
s2_cli_ok() {
  local out
  out="$("$TOOLS_DIR/s2-cli/bin/s2" --version 2>/dev/null)" || return 1
  [[ "$out" == "s2 $S2_CLI_VERSION" || "$out" == "s2 $S2_CLI_VERSION "* ]]
}

install_s2_cli_locked() {
  if s2_cli_ok; then
    log "s2 CLI: already installed ($("$TOOLS_DIR/s2-cli/bin/s2" --version))"
    return 0
  fi
  command -v cargo >/dev/null || die "cargo not found; it is needed to build s2-cli"
  log "s2 CLI: building s2-cli $S2_CLI_VERSION (cargo install --locked; takes several minutes)"
  local start=$SECONDS
  cargo install --locked s2-cli --version "$S2_CLI_VERSION" \
    --root "$TOOLS_DIR/s2-cli" --target-dir "$TOOLS_DIR/target" --force >&2 \
    || die "cargo install s2-cli $S2_CLI_VERSION failed"
  s2_cli_ok || die "s2 CLI installed but '$TOOLS_DIR/s2-cli/bin/s2 --version' does not report $S2_CLI_VERSION"
  log "s2 CLI: installed $("$TOOLS_DIR/s2-cli/bin/s2" --version) in $((SECONDS - start))s"
}

install_s2_cli() {
  if s2_cli_ok; then
    log "s2 CLI: already installed ($("$TOOLS_DIR/s2-cli/bin/s2" --version))"
    return 0
  fi
  with_lock s2-cli install_s2_cli_locked
}

# --------------------------------------------------------- Python s2-sdk --
PY_VENV="$TOOLS_DIR/python-sdk-venv"
PY_MARKER="$PY_VENV/.sluice-installed"
py_want() { printf '%s\n' "${PYTHON_SDK_REQS[@]}"; }
py_sdk_ok() {
  [[ -f "$PY_MARKER" && -x "$PY_VENV/bin/python" ]] || return 1
  [[ "$(cat "$PY_MARKER")" == "$(py_want)" ]] || return 1
  "$PY_VENV/bin/python" -c 'import s2_sdk' 2>/dev/null
}

install_python_sdk_locked() {
  if py_sdk_ok; then
    log "Python s2-sdk: already installed in $PY_VENV (${PYTHON_SDK_REQS[0]})"
    return 0
  fi
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "$PYTHON is older than 3.11; s2-sdk needs >= 3.11 (set SLUICE_PYTHON)"
  log "Python s2-sdk: creating $PY_VENV with ${PYTHON_SDK_REQS[*]}"
  rm -rf -- "$PY_VENV"
  "$PYTHON" -m venv "$PY_VENV" >&2
  if ! "$PY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      "${PYTHON_SDK_REQS[@]}" >&2; then
    rm -rf -- "$PY_VENV"
    die "pip install ${PYTHON_SDK_REQS[*]} failed"
  fi
  py_want >"$PY_MARKER"
  py_sdk_ok || die "s2_sdk does not import from $PY_VENV after install"
  log "Python s2-sdk: installed ($("$PY_VENV/bin/python" -c 'import s2_sdk; print("s2-sdk", s2_sdk.__version__)'))"
}

install_python_sdk() {
  if py_sdk_ok; then
    log "Python s2-sdk: already installed in $PY_VENV (${PYTHON_SDK_REQS[0]})"
    return 0
  fi
  with_lock python-sdk-venv install_python_sdk_locked
}

# ------------------------------------------- redis-server + redis-py --
install_apt() { # command package
  local cmd="$1" pkg="$2"
  if command -v "$cmd" >/dev/null; then
    log "$cmd: already installed ($(command -v "$cmd"))"
    return 0
  fi
  command -v apt-get >/dev/null || die "$cmd not found and no apt-get to install $pkg"
  local sudo=()
  ((EUID == 0)) || sudo=(sudo -n)
  log "$cmd: installing Debian's $pkg (apt-get)"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$pkg" >&2 \
    || { "${sudo[@]}" apt-get update -qq >&2 \
      && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$pkg" >&2; } \
    || die "apt-get install $pkg failed"
  command -v "$cmd" >/dev/null || die "$pkg installed but $cmd is not on PATH"
  log "$cmd: installed ($(command -v "$cmd"))"
}

# ------------------------------------------------------ npm packages --
# One directory per package under <tools>, each installed with `npm install` of an exact
# version (its own dependencies pinned by the package's lock).
npm_ok() { # dir spec
  [[ "$(cat "$TOOLS_DIR/$1/.sluice-installed" 2>/dev/null)" == "$2" ]] \
    && [[ -d "$TOOLS_DIR/$1/node_modules" ]]
}

install_npm_locked() { # dir spec
  local dir="$TOOLS_DIR/$1" spec="$2"
  if npm_ok "$1" "$spec"; then
    log "$spec: already installed in $dir"
    return 0
  fi
  command -v npm >/dev/null || die "npm not found; it is needed to install $spec"
  log "$spec: installing into $dir (npm)"
  rm -rf -- "$dir"
  mkdir -p -- "$dir"
  (cd "$dir" && npm install --no-audit --no-fund --silent "$spec" >&2) \
    || { rm -rf -- "$dir"; die "npm install $spec failed"; }
  printf '%s\n' "$spec" >"$dir/.sluice-installed"
  log "$spec: installed"
}

install_npm() { # dir spec
  if npm_ok "$1" "$2"; then
    log "$2: already installed in $TOOLS_DIR/$1"
    return 0
  fi
  with_lock "$1" install_npm_locked "$1" "$2"
}

RD_VENV="$TOOLS_DIR/redis-diff-venv"
RD_MARKER="$RD_VENV/.sluice-installed"
rd_want() { printf '%s\n' "${REDIS_DIFF_REQS[@]}"; }
redis_py_ok() {
  [[ -f "$RD_MARKER" && -x "$RD_VENV/bin/python" ]] || return 1
  [[ "$(cat "$RD_MARKER")" == "$(rd_want)" ]] || return 1
  "$RD_VENV/bin/python" -c 'import redis' 2>/dev/null
}

install_redis_py_locked() {
  if redis_py_ok; then
    log "redis-py: already installed in $RD_VENV (${REDIS_DIFF_REQS[0]})"
    return 0
  fi
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "$PYTHON is older than 3.11; tests/redis_diff needs >= 3.11 (set SLUICE_PYTHON)"
  log "redis-py: creating $RD_VENV with ${REDIS_DIFF_REQS[*]}"
  rm -rf -- "$RD_VENV"
  "$PYTHON" -m venv "$RD_VENV" >&2
  if ! "$RD_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      "${REDIS_DIFF_REQS[@]}" >&2; then
    rm -rf -- "$RD_VENV"
    die "pip install ${REDIS_DIFF_REQS[*]} failed"
  fi
  rd_want >"$RD_MARKER"
  redis_py_ok || die "redis does not import from $RD_VENV after install"
  log "redis-py: installed ($("$RD_VENV/bin/python" -c 'import redis; print("redis", redis.__version__)'))"
}

install_redis_diff() {
  with_lock apt install_apt redis-server redis-server
  with_lock apt install_apt redis-cli redis-tools
  if redis_py_ok; then
    log "redis-py: already installed in $RD_VENV (${REDIS_DIFF_REQS[0]})"
    return 0
  fi
  with_lock redis-diff-venv install_redis_py_locked
}

# ------------------------------------------------------ S3 server venvs --
install_s3_server() { # ministack|moto
  local name="$1"
  log "$name: ensuring its venv (scripts/$name.sh install)"
  SLUICE_TOOLS_DIR="$TOOLS_DIR" "$SCRIPT_DIR/$name.sh" install
  log "$name: ready in $TOOLS_DIR/$name-venv ($(cat "$TOOLS_DIR/$name-venv/.sluice-installed" 2>/dev/null || echo '?'))"
}

# ------------------------------------------------------------------- main --
log "tools dir: $TOOLS_DIR"
if [[ "${SLUICE_SKIP_S2_CLI:-}" == 1 ]]; then log "s2 CLI: skipped (SLUICE_SKIP_S2_CLI=1)"; else install_s2_cli; fi
if [[ "${SLUICE_SKIP_MINISTACK:-}" == 1 ]]; then log "ministack: skipped (SLUICE_SKIP_MINISTACK=1)"; else install_s3_server ministack; fi
if [[ "${SLUICE_SKIP_MOTO:-}" == 1 ]]; then log "moto: skipped (SLUICE_SKIP_MOTO=1)"; else install_s3_server moto; fi
if [[ "${SLUICE_SKIP_PYTHON_SDK:-}" == 1 ]]; then log "Python s2-sdk: skipped (SLUICE_SKIP_PYTHON_SDK=1)"; else install_python_sdk; fi
if [[ "${SLUICE_SKIP_REDIS_DIFF:-}" == 1 ]]; then log "redis-server, redis-py: skipped (SLUICE_SKIP_REDIS_DIFF=1)"; else install_redis_diff; fi
if [[ "${SLUICE_SKIP_IOREDIS:-}" == 1 ]]; then log "ioredis: skipped (SLUICE_SKIP_IOREDIS=1)"; else install_npm ioredis "ioredis@$IOREDIS_VERSION"; fi
if [[ "${SLUICE_SKIP_TS_SDK:-}" == 1 ]]; then log "TypeScript SDK: skipped (SLUICE_SKIP_TS_SDK=1)"; else install_npm ts-sdk "@s2-dev/streamstore@$TS_SDK_VERSION"; fi
if [[ "${SLUICE_SKIP_BROWSER:-}" == 1 ]]; then log "chromium, playwright-core: skipped (SLUICE_SKIP_BROWSER=1)"; else
  with_lock apt install_apt chromium chromium
  install_npm playwright "playwright-core@$PLAYWRIGHT_VERSION"
fi
log "done"
