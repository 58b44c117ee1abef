#!/usr/bin/env python3
"""A counting HTTP/1.1 proxy for S3 traffic on loopback.

Sits between an S3 client (a Sluice node or s2 lite) and an S3 server (ministack) and logs
every request: time, kind (GET, LIST, HEAD, PUT, PUT-IF (conditional), DELETE (including
bulk DeleteObjects), POST),
request bytes and response bytes. Clients here send one request at a time per connection
with a Content-Length body (object_store via reqwest), which is all this proxy parses;
response bytes are counted as they pass.

    s3proxy.py --listen 127.0.0.1:0 --upstream 127.0.0.1:PORT --log requests.jsonl

Prints "PROXY_ENDPOINT=http://127.0.0.1:<port>" once listening. SIGUSR1 appends a MARK
entry per open connection with its response bytes so far. Only loopback addresses
are accepted for both sides.
"""

import argparse
import asyncio
import json
import signal
import sys
import time

BUF = 256 * 1024


def loopback(hostport):
    host, _, port = hostport.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"refusing non-loopback address {hostport}")
    return host, int(port)


class Log:
    def __init__(self, path):
        self.file = open(path, "a", buffering=1)

    def write(self, entry):
        self.file.write(json.dumps(entry) + "\n")


def kind_of(method, target, headers):
    if method == "GET" and "list-type=" in target:
        return "LIST"
    if method == "PUT" and ("if-match" in headers or "if-none-match" in headers):
        return "PUT-IF"
    if method == "POST" and "delete" in target.split("?", 1)[-1]:
        # DeleteObjects (bulk delete) is a POST to ?delete.
        return "DELETE"
    return method


async def pump(reader, writer, counter):
    while True:
        data = await reader.read(BUF)
        if not data:
            break
        counter[0] += len(data)
        writer.write(data)
        await writer.drain()


CONNECTIONS = iter(range(1 << 62))
# Response bytes so far per open connection, for MARK entries.
OPEN = {}


async def handle(client_r, client_w, upstream, log):
    conn = next(CONNECTIONS)
    try:
        up_r, up_w = await asyncio.open_connection(*upstream)
    except OSError:
        client_w.close()
        return
    response_bytes = [0]
    OPEN[conn] = response_bytes
    back = asyncio.create_task(pump(up_r, client_w, response_bytes))
    try:
        while True:
            head = await client_r.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0"))
            if headers.get("transfer-encoding", "").lower() == "chunked":
                raise RuntimeError("chunked request bodies are not supported")
            up_w.write(head)
            remaining = length
            while remaining:
                data = await client_r.read(min(BUF, remaining))
                if not data:
                    raise ConnectionError("client closed mid-body")
                up_w.write(data)
                remaining -= len(data)
            await up_w.drain()
            before = response_bytes[0]
            log.write({
                "t": time.time(),
                "conn": conn,
                "kind": kind_of(method, target, headers),
                "req_bytes": length,
                # Response bytes so far on this connection: a request's response bytes are
                # the difference to the next request's (or to the connection's total).
                "resp_before": before,
            })
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, RuntimeError):
        pass
    finally:
        up_w.close()
        try:
            await back
        except Exception:
            pass
        OPEN.pop(conn, None)
        log.write({"t": time.time(), "conn": conn, "kind": "CLOSE", "resp_before": response_bytes[0]})
        client_w.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    listen = loopback(args.listen)
    upstream = loopback(args.upstream)
    log = Log(args.log)

    def mark():
        # Closes every open connection's account so far (SIGUSR1).
        now = time.time()
        for conn, counter in OPEN.items():
            log.write({"t": now, "conn": conn, "kind": "MARK", "resp_before": counter[0]})

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, mark)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, upstream, log), listen[0], listen[1], limit=1 << 20
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PROXY_ENDPOINT=http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
