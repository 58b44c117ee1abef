#!/usr/bin/env bash
# Self-test of scripts/ministack.sh and scripts/moto.sh: for each server,
# start / mkbucket / signed PUT / stop, twice on the same data dir, plus
# idempotent start, pinned port, busy port, and "nothing left running".
# Loopback only. Usage: scripts/s3servers-selftest.sh [ministack|moto ...]
set -euo pipefail
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
S="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
servers=("$@"); [[ ${#servers[@]} -gt 0 ]] || servers=(ministack moto)
work="$(mktemp -d "${TMPDIR:-/tmp}/s3selftest-XXXXXX")"
fail=0
err() { echo "FAIL: $*"; fail=1; }
# moto stores bodies sent as application/x-www-form-urlencoded (curl's default) as EMPTY objects
sig=(--aws-sigv4 "aws:amz:us-east-1:s3" --user test:test -s -H "Content-Type: application/octet-stream")

for srv in "${servers[@]}"; do
  up="$(tr '[:lower:]' '[:upper:]' <<<"$srv")"
  var="${up}_ENDPOINT"
  D="$work/$srv/data"
  for round in 1 2; do
    out="$("$S/$srv.sh" start "$D" selftest-a)"
    [[ "$out" =~ ^${var}=http://127\.0\.0\.1:[0-9]+$ ]] || err "$srv: unexpected stdout '$out'"
    ep="${out#*=}"
    pid="$(cat "$D.$srv-state/pid")"
    "$S/$srv.sh" mkbucket "$ep" selftest-b || err "$srv: mkbucket"
    "$S/$srv.sh" mkbucket "$ep" selftest-b || err "$srv: mkbucket not idempotent"
    [[ "$("$S/$srv.sh" start "$D" 2>/dev/null)" == "$out" ]] || err "$srv: second start not idempotent"
    "$S/$srv.sh" status "$D" >/dev/null || err "$srv: status says not running"
    prev="$(curl "${sig[@]}" -o /dev/null -w '%{http_code}' "$ep/selftest-a/obj")"
    put="$(curl "${sig[@]}" -o /dev/null -w '%{http_code}' -X PUT --data-binary "r$round" "$ep/selftest-b/obj")"
    [[ "$put" == 200 ]] || err "$srv: PUT -> $put"
    curl "${sig[@]}" -o /dev/null -X PUT --data-binary "r$round" "$ep/selftest-a/obj"
    echo "$srv round $round: $ep pid=$pid put=$put object-from-previous-run=$prev"
    "$S/$srv.sh" stop "$D" 2>/dev/null
    if kill -0 "$pid" 2>/dev/null || pgrep -g "$pid" >/dev/null; then err "$srv: process $pid left behind"; fi
    if curl -s -o /dev/null --max-time 1 "$ep/"; then err "$srv: port still answering after stop"; fi
    if "$S/$srv.sh" status "$D" >/dev/null; then err "$srv: status says running after stop"; fi
  done
  "$S/$srv.sh" stop "$D" 2>/dev/null || err "$srv: stop when stopped should be a no-op"
  port="$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')"
  out="$(env "${up}_PORT=$port" "$S/$srv.sh" start "$D")"
  [[ "$out" == "$var=http://127.0.0.1:$port" ]] || err "$srv: ${up}_PORT not honoured ($out)"
  if env "${up}_PORT=$port" "$S/$srv.sh" start "$D.other" 2>/dev/null; then err "$srv: start on a busy port succeeded"; fi
  "$S/$srv.sh" stop "$D" 2>/dev/null; "$S/$srv.sh" stop "$D.other" 2>/dev/null
done
if "$S/ministack.sh" mkbucket http://192.0.2.1:80 nope 2>/dev/null; then err "non-loopback endpoint accepted"; fi
rm -rf -- "$work"
if [[ $fail == 0 ]]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; exit 1; fi
