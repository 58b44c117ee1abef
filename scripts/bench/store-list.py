#!/usr/bin/env python3
"""How long a loopback S3 emulator that accepts unsigned requests (ministack) takes to
page through many keys with ListObjectsV2 (1,000 keys per page, one page after another,
as a listing does): the floor under any stream listing built on LIST alone.

  store-list.py --endpoint http://127.0.0.1:<port> --bucket B --keys 100000 [--rounds 3]

Writes --keys empty objects under a fresh prefix of the (existing) bucket, then times
--rounds full listings of that prefix and prints each round's seconds and ms per page."""
import argparse
import http.client
import re
import threading
import time
import urllib.parse
import uuid


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=16)
    a = p.parse_args()
    url = urllib.parse.urlparse(a.endpoint)
    assert url.hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
    prefix = f"store-list-{uuid.uuid4().hex[:8]}/"
    failures = []

    def put(part):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        for i in part:
            conn.request("PUT", f"/{a.bucket}/{prefix}k{i:08d}", body=b"")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                failures.append(resp.status)

    started = time.perf_counter()
    threads = [threading.Thread(target=put, args=(range(j, a.keys, a.concurrency),))
               for j in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(f"{len(failures)} PUTs failed, e.g. HTTP {failures[0]}")
    print(f"wrote {a.keys} keys in {time.perf_counter() - started:.1f} s")

    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    for r in range(1, a.rounds + 1):
        started, pages, keys, token = time.perf_counter(), 0, 0, None
        while True:
            query = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
            if token:
                query["continuation-token"] = token
            conn.request("GET", f"/{a.bucket}?{urllib.parse.urlencode(query)}")
            resp = conn.getresponse()
            body = resp.read().decode()
            if resp.status != 200:
                raise SystemExit(f"LIST answered HTTP {resp.status}: {body[:200]}")
            pages += 1
            keys += body.count("<Key>")
            m = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", body)
            if not m:
                break
            token = m.group(1)
        took = time.perf_counter() - started
        print(f"round {r}: {keys} keys in {pages} pages, {took:.2f} s "
              f"({took / pages * 1e3:.1f} ms per page)")


if __name__ == "__main__":
    main()
