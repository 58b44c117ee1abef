#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The README's redis-cli session, run for real: starts a Sluice node with a RESP port
# and the session's plate, runs every `$ redis-cli -p 6380 …` line of the README block
# marked `tests/resp/redis_cli.sh` with Debian's redis-cli, and compares what it prints
# with what the README shows. Entry ids are time-based, so ids are matched by order of
# first appearance (the README's first id is this run's first id, and so on).
#
#   tests/resp/redis_cli.sh [local|ministack]
#
# Output is redis-cli's terminal format (`--no-raw`: the script's stdout is no
# terminal, and redis-cli would print raw replies otherwise).
set -euo pipefail

BACKEND="${1:-local}"
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# shellcheck source=../../scripts/with-sluice.sh disable=SC1091
source "$ROOT/scripts/with-sluice.sh"
command -v redis-cli >/dev/null || sluice_die "redis-cli not found (run scripts/install-tools.sh)"

RESP_PORT="$(_sluice_free_port)"
export SLUICE_SERVER_ARGS="${SLUICE_SERVER_ARGS:-} --redis-port $RESP_PORT --redis-plate my-plate-1"
sluice_start "$BACKEND"
curl -sf --noproxy '*' -XPOST "$SLUICE_ENDPOINT/v1/basins" -H 'content-type: application/json' \
  -d '{"basin": "my-plate-1"}' >/dev/null || sluice_die "could not create the plate"

python3 - "$ROOT/README.md" "$RESP_PORT" <<'PY'
import re, shlex, subprocess, sys

readme, port = sys.argv[1], sys.argv[2]
text = open(readme, encoding="utf-8").read()
marker = text.index("<!-- checked by tests/resp/redis_cli.sh -->")
block = text[marker:].split("```console\n", 1)[1].split("```", 1)[0]
steps, cur = [], None
for line in block.splitlines():
    if line.startswith("$ redis-cli -p 6380 "):
        cur = (line[len("$ redis-cli -p 6380 "):], [])
        steps.append(cur)
    elif cur is not None:
        cur[1].append(line)
if len(steps) < 6:
    sys.exit(f"redis-cli session: found {len(steps)} commands in the README block")
ID = re.compile(r"\b\d{10,}-\d+\b")
ids: dict[str, str] = {}  # README id -> this run's id

def to_run(s: str) -> str:
    return ID.sub(lambda m: ids.get(m.group(0), m.group(0)), s)

failed = 0
for args, expected in steps:
    argv = ["redis-cli", "-p", port, "--no-raw"] + shlex.split(to_run(args))
    got = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.rstrip("\n").split("\n")
    for want_id, got_id in zip(ID.findall("\n".join(expected)), ID.findall("\n".join(got))):
        ids.setdefault(want_id, got_id)
    want = [to_run(l) for l in expected]
    status = "ok" if want == got else "DIFFERENT"
    print(f"redis-cli session: {args}: {status}")
    if want != got:
        failed += 1
        print("  README shows:\n    " + "\n    ".join(want) + "\n  redis-cli printed:\n    " + "\n    ".join(got))
print(f"redis-cli session: {len(steps)} commands, {failed} different")
sys.exit(1 if failed else 0)
PY
