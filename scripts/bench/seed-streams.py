#!/usr/bin/env python3
"""Writes stream catalog entries straight into a loopback S3 emulator that accepts
unsigned requests (ministack), as a Sluice without listing markers wrote them, for
listing benchmarks with many streams (creating 100,000 through the API takes long on an
emulator). Only the catalog entries: the streams have no manifests, so nothing but
listings may touch them.

  seed-streams.py --endpoint http://127.0.0.1:<port> --bucket B --path P --basin BASIN \
      --start 2000 --count 98000 [--concurrency 32]

Names are s<6 digits>, as scripts/bench/streams.py creates them; the basin must exist."""
import argparse
import base64
import http.client
import json
import os
import threading
import time
import urllib.parse


def encode_name(name):
    chars = base64.b32hexencode(name.encode()).decode().rstrip("=").lower()
    return "/".join(chars[i:i + 128] for i in range(0, len(chars), 128)) + "."


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--path", default="")
    p.add_argument("--basin", required=True)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=32)
    a = p.parse_args()
    url = urllib.parse.urlparse(a.endpoint)
    assert url.hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
    prefix = f"{a.path}/" if a.path else ""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    names = [f"s{i:06d}" for i in range(a.start, a.start + a.count)]
    failures = []

    def work(part):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        for name in part:
            entry = {
                "version": 1, "name": name, "id": os.urandom(16).hex(), "created_at": now,
                "deleted_at": None, "request_token": None, "requested_config": None,
                "cipher": None,
            }
            key = f"{prefix}streams/{a.basin}/{encode_name(name)}"
            conn.request("PUT", f"/{a.bucket}/{urllib.parse.quote(key)}", body=json.dumps(entry))
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                failures.append((name, resp.status))

    t = time.perf_counter()
    threads = [threading.Thread(target=work, args=(names[i::a.concurrency],))
               for i in range(a.concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(f"wrote {a.count} entries in {time.perf_counter() - t:.1f} s, {len(failures)} failed")


if __name__ == "__main__":
    main()
