#!/usr/bin/env python3
"""Rough throughput of the Redis-Streams surface (the plate API) against a running node:

    SLUICE_ENDPOINT=http://127.0.0.1:<port> python3 scripts/bench/redis-throughput.py

Creates a fresh plate (a basin, `POST /v1/basins`) and a group on one key
(`/{plate}/streams/groups/create`, mkstream). Producers (threads, one keep-alive HTTP/1.1
connection each) add 100-byte entries with `/{plate}/streams/add` for --seconds; then
consumers of that group read them with `/{plate}/streams/groups/read` (id ">", count
--count) and acknowledge each batch with `/{plate}/streams/groups/ack` until the group
has nothing new. Prints entries/s for both phases and request latency percentiles.
Python's client threads share one core's worth of interpreter, so the figures are a floor
for the server, not its ceiling. Loopback only.
"""

import argparse
import http.client
import json
import os
import sys
import threading
import time
import uuid
from urllib.parse import quote, urlsplit


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


# Requests retried after a 503 `unavailable` whose message asks for a retry (the key or
# group "kept changing concurrently": the server's own tries lost every race).
RETRIES = [0]


class Client:
    def __init__(self, host, port, prefix):
        self.conn = http.client.HTTPConnection(host, port, timeout=90)
        self.prefix = prefix

    def raw(self, method, path, body=None):
        headers = {"content-type": "application/json"} if body is not None else {}
        data = json.dumps(body).encode() if body is not None else None
        try:
            self.conn.request(method, self.prefix + path, body=data, headers=headers)
            resp = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closes keep-alive connections idle for a while (the control
            # connection between phases); only a GET is safe to send again.
            if method != "GET":
                raise
            self.conn.close()
            self.conn.request(method, self.prefix + path, body=data, headers=headers)
            resp = self.conn.getresponse()
        return resp.status, resp.read()

    def call(self, method, path, body=None):
        """A plate-API call: the reply's `data.result`, or an exception with the error."""
        while True:
            status, payload = self.raw(method, path, body)
            try:
                reply = json.loads(payload)
            except ValueError:
                raise RuntimeError(f"{method} {path}: {status} {payload[:300]!r}")
            if reply.get("ok") is True and status < 300:
                return reply["data"]["result"]
            err = reply.get("error") or {}
            if status == 503 and err.get("code") == "unavailable" \
                    and "concurrently" in err.get("message", ""):
                RETRIES[0] += 1
                continue
            raise RuntimeError(f"{method} {path}: {status} {payload[:300]!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--consumers", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--count", type=int, default=100)
    args = ap.parse_args()
    endpoint = os.environ.get("SLUICE_ENDPOINT", "")
    url = urlsplit(endpoint)
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"SLUICE_ENDPOINT must be a loopback URL, got {endpoint!r}")
    plate = f"redis-bench-{uuid.uuid4().hex[:8]}"
    admin = Client(url.hostname, url.port, "")
    status, payload = admin.raw("POST", "/v1/basins", {"basin": plate})
    if status >= 300:
        sys.exit(f"POST /v1/basins: {status} {payload[:300]!r}")
    prefix = f"/{plate}/streams"
    key, group = "bench", "g"
    ctl = Client(url.hostname, url.port, prefix)
    ctl.call("POST", "/groups/create", {"key": key, "group": group, "id": "0", "mkstream": True})

    added, add_lat, errors = [], [], []
    deadline = time.monotonic() + args.seconds

    def produce():
        c = Client(url.hostname, url.port, prefix)
        n, lat = 0, []
        try:
            while time.monotonic() < deadline:
                t = time.monotonic()
                c.call("POST", "/add", {"key": key, "values": {"payload": "x" * 100}})
                lat.append(time.monotonic() - t)
                n += 1
        except Exception as e:  # noqa: BLE001 - reported below, the run fails
            errors.append(f"xadd: {e}")
        added.append(n)
        add_lat.extend(lat)

    t0 = time.monotonic()
    threads = [threading.Thread(target=produce) for _ in range(args.producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    add_secs = time.monotonic() - t0
    total = sum(added)

    consumed, read_lat = [], []

    def consume(i):
        c = Client(url.hostname, url.port, prefix)
        n, lat = 0, []
        try:
            while True:
                t = time.monotonic()
                got = c.call("POST", "/groups/read",
                             {"group": group, "consumer": f"c{i}",
                              "streams": [{"key": key, "id": ">"}], "count": args.count})
                lat.append(time.monotonic() - t)
                entries = (got or {}).get(key) or []
                if not entries:
                    break
                c.call("POST", "/groups/ack",
                       {"key": key, "group": group, "ids": [e[0] for e in entries]})
                n += len(entries)
        except Exception as e:  # noqa: BLE001 - reported below, the run fails
            errors.append(f"xreadgroup/xack by c{i}: {e}")
        consumed.append(n)
        read_lat.extend(lat)

    t0 = time.monotonic()
    threads = [threading.Thread(target=consume, args=(i,)) for i in range(args.consumers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    read_secs = time.monotonic() - t0
    # XPENDING's summary form: [count, smallest id, greatest id, [[consumer, count], ...]].
    pending = ctl.call("GET", f"/groups/pending/{quote(key, safe='')}/{quote(group, safe='')}")[0]

    ms = lambda s: f"{s * 1000:.1f} ms"
    print(f"xadd: {total} entries by {args.producers} producers in {add_secs:.1f} s = "
          f"{total / add_secs:.0f}/s; latency p50 {ms(percentile(add_lat, 0.5))}, "
          f"p99 {ms(percentile(add_lat, 0.99))}")
    print(f"xreadgroup+xack: {sum(consumed)} entries by {args.consumers} consumers "
          f"(count {args.count}) in {read_secs:.1f} s = {sum(consumed) / read_secs:.0f}/s; "
          f"xreadgroup p50 {ms(percentile(read_lat, 0.5))}, p99 {ms(percentile(read_lat, 0.99))}; "
          f"pending after: {pending}; requests retried after a race: {RETRIES[0]}")
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if errors:
        sys.exit(f"{len(errors)} client(s) stopped on a server error")
    if sum(consumed) != total or pending != 0:
        sys.exit("not every entry was consumed and acknowledged once")


if __name__ == "__main__":
    main()
