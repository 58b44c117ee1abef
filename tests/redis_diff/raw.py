#!/usr/bin/env python3
"""Byte-for-byte comparison of Sluice's RESP listener with Redis for the connection
commands and protocol errors the differential test (diff.py) does not reach through
redis-py: each case goes on a fresh connection to both, after a login (`AUTH <plate> x`
to Sluice, `AUTH default x` to Redis, both answering +OK), and what comes back until the
server closes or goes quiet must be the same bytes (client ids in HELLO blanked).

Left out on purpose, because Sluice differs by design: `AUTH <password>` without a
configured password (Redis refuses it, Sluice accepts any), `CLIENT SETINFO` (Redis
7.2's, which clients send), `SELECT 1..15` (one key space per plate), `COMMAND COUNT`
and `COMMAND INFO <cmd>` (Sluice lists its own commands, without key specs), the
subcommands it does not serve (`CLIENT LIST`, `COMMAND GETKEYS`, …: unknown to it), and
`RESET` (Sluice's connections without `--redis-plate` are logged out by it).

    raw.py --redis-port P --sluice-resp-port Q --plate PLATE
"""

import argparse
import re
import socket
import sys
import time

CASES = [
    b"PING\r\nPING hello\r\nPING a b\r\nECHO\r\nECHO x y\r\nECHO hi\r\n",
    b"SELECT 0\r\nSELECT 16\r\nSELECT -1\r\nSELECT x\r\nSELECT 99999999999\r\n",
    b"HELLO 4\r\nHELLO x\r\nHELLO 3 FOO\r\nHELLO 2 SETNAME\r\nHELLO 2 SETNAME \"a b\"\r\nHELLO 2 SETNAME app\r\nCLIENT GETNAME\r\n",
    b"HELLO 3\r\nXREAD STREAMS raw-nokey 0\r\nXRANGE raw-nokey - + COUNT 0\r\nCLIENT GETNAME\r\nHELLO\r\nHELLO 2\r\n",
    b"CLIENT\r\nCLIENT FOO\r\nCLIENT ID x\r\nCLIENT GETNAME\r\nCLIENT SETNAME a\r\nCLIENT GETNAME\r\nCLIENT SETNAME\r\n"
    b"CLIENT SETNAME \"a b\"\r\nCLIENT SETNAME \"\"\r\nCLIENT GETNAME\r\nCLIENT SETNAME a b\r\n",
    b"COMMAND FOO\r\nCOMMAND COUNT x\r\nCOMMAND INFO nosuch\r\nCOMMAND DOCS nosuch\r\n",
    b"FOO a b\r\nNOSUCH\r\n*3\r\n$3\r\nfoo\r\n$3\r\na\r\nb\r\n$0\r\n\r\n",
    b"XLEN\r\nXINFO\r\nXINFO FOO\r\nXGROUP\r\nXINFO STREAM\r\nXGROUP CREATE k\r\nXADD k\r\n",
    b"ECHO \"a\\x41\\n\\t\" 'b\\'c'\r\nECHO x\r\n\r\n   \r\nECHO \"\"\r\n",
    b"AUTH a b c\r\nQUIT\r\nPING\r\n",
    b"PING\r\n*1\r\n+PING\r\n",
    b"PING\r\n*x\r\n",
    b"*1\r\n$-5\r\n",
    b"*3000000000\r\n",
    b"*1\r\n$600000000\r\n",
    b"ECHO \"a\r\n",
    b"ECHO 'a'b\r\n",
    b"*2\r\n$4\r\nECHO\r\n$3\r\nabcXYPING\r\n",
    b"*-1\r\n*0\r\nPING\r\n",
    b"POST / HTTP/1.1\r\nPING\r\n",
]


def exchange(port: int, login: bytes, data: bytes) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(login + data)
    out = b""
    deadline = time.monotonic() + 5
    s.settimeout(0.3)
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            out += b"<reset>"
            break
        if not chunk:
            out += b"<closed>"
            break
        out += chunk
    s.close()
    return re.sub(rb"\$2\r\nid\r\n:\d+\r\n", b"$2\r\nid\r\n:N\r\n", out)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--sluice-resp-port", type=int, required=True)
    p.add_argument("--plate", required=True)
    a = p.parse_args()
    failed = 0
    for case in CASES:
        want = exchange(a.redis_port, b"AUTH default x\r\n", case)
        got = exchange(a.sluice_resp_port, b"AUTH " + a.plate.encode() + b" x\r\n", case)
        if want != got:
            failed += 1
            print(f"redis-diff raw: DIFFERENT for {case!r}\n  redis : {want!r}\n  sluice: {got!r}")
    print(f"redis-diff raw: {len(CASES)} cases, {failed} different")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
