#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# HTTPS with the official clients: the s2 CLI against `--tls-self` (S2_SSL_NO_VERIFY=true;
# `s2 lite` suggests `=1`, which the 0.43 CLI does not parse), and against a node with a given
# certificate that the CLI, the Python s2-sdk and curl trust through SSL_CERT_FILE; curl
# checks HTTP/1.1 and HTTP/2 by ALPN. Everything on loopback.
#
#   tests/tls/run.sh
#
# Needs target/debug/sluice (`cargo build --bin sluice`), openssl, curl, and the s2 CLI and
# the Python venv from scripts/install-tools.sh.
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# shellcheck source=../../scripts/with-sluice.sh disable=SC1091
source "$ROOT/scripts/with-sluice.sh"

BIN="${SLUICE_BIN:-$ROOT/target/debug/sluice}"
PY="$SLUICE_TOOLS_DIR/python-sdk-venv/bin/python"
[[ -x "$BIN" ]] || sluice_die "no $BIN (cargo build --bin sluice)"
[[ -x "$S2_CLI" ]] || sluice_die "no s2 CLI at $S2_CLI (run scripts/install-tools.sh)"
"$PY" -c 'import s2_sdk' 2>/dev/null || sluice_die "no s2-sdk venv (run scripts/install-tools.sh)"
command -v openssl >/dev/null || sluice_die "openssl is required"

WORK="$(mktemp -d)"
sluice_defer rm -rf "$WORK"
START=$SECONDS
fails=0
ok() { printf 'ok - %s\n' "$*"; }
fail() { printf 'not ok - %s\n' "$*"; fails=$((fails + 1)); }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# serve <name> <args...>: starts a node on a fresh directory, waits for GET /health over
# HTTPS, and exports PORT.
serve() {
  local name="$1" deadline
  shift
  PORT="$(free_port)"
  "$BIN" serve --host 127.0.0.1 --port "$PORT" --local-root "$WORK/$name-data" "$@" \
    >"$WORK/$name.log" 2>&1 &
  sluice_track_pid $!
  deadline=$((SECONDS + 60))
  until [[ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "https://127.0.0.1:$PORT/health")" == 200 ]]; do
    ((SECONDS < deadline)) || { cat "$WORK/$name.log" >&2; sluice_die "$name did not come up"; }
    sleep 0.1
  done
}

cli() { timeout 60 "$S2_CLI" "$@"; }

# 1. --tls-self: the CLI skips verification.
serve self --tls-self
export S2_ACCOUNT_ENDPOINT="https://127.0.0.1:$PORT" S2_BASIN_ENDPOINT="https://127.0.0.1:$PORT"
export S2_ACCESS_TOKEN=ignored NO_COLOR=1
if S2_SSL_NO_VERIFY=true cli create-basin tls-self-basin >/dev/null \
  && S2_SSL_NO_VERIFY=true cli list-basins | grep -q tls-self-basin; then
  ok "s2 CLI over https with --tls-self and S2_SSL_NO_VERIFY=true"
else
  fail "s2 CLI over https with --tls-self"
fi
if ! cli list-basins >/dev/null 2>&1; then
  ok "s2 CLI refuses the self-signed certificate without S2_SSL_NO_VERIFY"
else
  fail "s2 CLI trusted a self-signed certificate it was not given"
fi

# 2. A given certificate, trusted by the clients through SSL_CERT_FILE. Not a CA
# certificate (openssl's default for -x509): rustls refuses a CA's as a server's.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
  -addext 'basicConstraints=critical,CA:FALSE' -addext 'extendedKeyUsage=serverAuth' \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
serve files --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"
export S2_ACCOUNT_ENDPOINT="https://127.0.0.1:$PORT" S2_BASIN_ENDPOINT="https://127.0.0.1:$PORT"
export SSL_CERT_FILE="$WORK/cert.pem"
for want in 1.1 2; do
  flag=--http1.1
  [[ $want == 2 ]] && flag=--http2
  got="$(curl -s --cacert "$WORK/cert.pem" "$flag" -o /dev/null -w '%{http_code} %{http_version}' \
    "https://127.0.0.1:$PORT/v1/basins")"
  if [[ "$got" == "200 $want" ]]; then ok "curl HTTP/$want by ALPN"; else fail "curl HTTP/$want: $got"; fi
done
if cli create-basin tls-file-basin >/dev/null \
  && cli create-stream s2://tls-file-basin/s >/dev/null \
  && printf 'one\ntwo\n' | cli append s2://tls-file-basin/s >/dev/null \
  && [[ "$(cli read s2://tls-file-basin/s --seq-num 0 --count 2 2>/dev/null | tr -d '\r')" == $'one\ntwo' ]]; then
  ok "s2 CLI over https trusting the certificate: create, append, read"
else
  fail "s2 CLI over https trusting the certificate"
fi
if [[ "$(cli list-locations 2>&1)" == *local* ]] \
  && [[ "$(cli get-default-location 2>&1)" == *local* ]] \
  && cli set-default-location local >/dev/null 2>&1 \
  && ! cli set-default-location elsewhere >/dev/null 2>&1; then
  ok "s2 CLI list-locations, get-default-location, set-default-location over https"
else
  fail "s2 CLI locations: $(cli list-locations 2>&1) / $(cli get-default-location 2>&1)"
fi
if SLUICE_ENDPOINT="https://127.0.0.1:$PORT" timeout 120 "$PY" - <<'PY'
import asyncio, os
from s2_sdk import S2, AppendInput, Endpoints, ReadLimit, Record, SeqNum

async def main():
    endpoint = os.environ["SLUICE_ENDPOINT"]
    async with S2("ignored", endpoints=Endpoints(account=endpoint, basin=endpoint)) as s2:
        await s2.create_basin("tls-py-basin")
        basin = s2.basin("tls-py-basin")
        await basin.create_stream("s")
        stream = basin.stream("s")
        await stream.append(AppendInput(records=[Record(body=b"over https")]))
        batch = await stream.read(start=SeqNum(0), limit=ReadLimit(count=1))
        assert [r.body for r in batch.records] == [b"over https"], batch
        page = await s2.list_basins(prefix="tls-py-basin")
        assert [b.name for b in page.items] == ["tls-py-basin"], page

asyncio.run(main())
PY
then
  ok "Python s2-sdk over https (HTTP/2) trusting the certificate"
else
  fail "Python s2-sdk over https"
fi

printf '# tls: %d failed, %ds\n' "$fails" "$((SECONDS - START))"
((fails == 0))
