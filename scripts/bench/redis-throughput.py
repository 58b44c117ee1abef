#!/usr/bin/env python3
"""Rough throughput of the Redis-Streams surface against a running node:

    SLUICE_ENDPOINT=http://127.0.0.1:<port> python3 scripts/bench/redis-throughput.py

Producers (threads, one keep-alive HTTP/1.1 connection each) add 100-byte entries for
--seconds; then consumers of one group read them with XREADGROUP COUNT --count and
acknowledge each batch with XACK until the group has nothing new. Prints entries/s for
both phases and request latency percentiles. Python's client threads share one core's
worth of interpreter, so the figures are a floor for the server, not its ceiling.
Loopback only.
"""

import argparse
import http.client
import json
import os
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


RETRIES = [0]  # requests retried after `transaction_conflict`, as the server asks


class Client:
    def __init__(self, host, port, prefix):
        self.conn = http.client.HTTPConnection(host, port, timeout=60)
        self.prefix = prefix

    def call(self, method, path, body=None):
        headers = {"content-type": "application/json"} if body is not None else {}
        data = json.dumps(body).encode() if body is not None else None
        while True:
            self.conn.request(method, self.prefix + path, body=data, headers=headers)
            resp = self.conn.getresponse()
            payload = resp.read()
            if resp.status == 409 and b"transaction_conflict" in payload:
                RETRIES[0] += 1
                continue
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {payload[:200]!r}")
            return json.loads(payload) if payload else None


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
    basin = f"redis-bench-{uuid.uuid4().hex[:8]}"
    admin = Client(url.hostname, url.port, "")
    admin.call("POST", "/v1/basins", {"basin": basin})
    prefix = f"/redis/v1/{basin}/bench"
    key = Client(url.hostname, url.port, prefix)
    key.call("POST", "/xgroup/create", {"group": "g", "id": "0", "mkstream": True})

    added, add_lat = [], []
    deadline = time.monotonic() + args.seconds

    def produce():
        c = Client(url.hostname, url.port, prefix)
        n, lat = 0, []
        while time.monotonic() < deadline:
            t = time.monotonic()
            c.call("POST", "/xadd", {"fields": [["payload", "x" * 100]]})
            lat.append(time.monotonic() - t)
            n += 1
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
        while True:
            t = time.monotonic()
            got = c.call("POST", "/xreadgroup",
                         {"group": "g", "consumer": f"c{i}", "count": args.count})["entries"]
            lat.append(time.monotonic() - t)
            if not got:
                break
            c.call("POST", "/xack", {"group": "g", "ids": [e["id"] for e in got]})
            n += len(got)
        consumed.append(n)
        read_lat.extend(lat)

    t0 = time.monotonic()
    threads = [threading.Thread(target=consume, args=(i,)) for i in range(args.consumers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    read_secs = time.monotonic() - t0
    pending = key.call("GET", "/xpending?group=g")["pending"]

    ms = lambda s: f"{s * 1000:.1f} ms"
    print(f"xadd: {total} entries by {args.producers} producers in {add_secs:.1f} s = "
          f"{total / add_secs:.0f}/s; latency p50 {ms(percentile(add_lat, 0.5))}, "
          f"p99 {ms(percentile(add_lat, 0.99))}")
    print(f"xreadgroup+xack: {sum(consumed)} entries by {args.consumers} consumers "
          f"(count {args.count}) in {read_secs:.1f} s = {sum(consumed) / read_secs:.0f}/s; "
          f"xreadgroup p50 {ms(percentile(read_lat, 0.5))}, p99 {ms(percentile(read_lat, 0.99))}; "
          f"pending after: {pending}; requests retried after a conflict: {RETRIES[0]}")
    if sum(consumed) != total or pending != 0:
        sys.exit("not every entry was consumed and acknowledged once")


if __name__ == "__main__":
    main()
