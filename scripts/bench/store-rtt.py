#!/usr/bin/env python3
"""Round trips to ministack: the p50 of 200 sequential PUTs on one kept-alive connection,
straight and through the counting proxy (both started as `make bench` starts them), for
two body sizes, and of conditional (`If-Match`) PUTs replacing one object. Starts and
stops its own ministack on loopback.

    python3 scripts/bench/store-rtt.py
"""

import http.client
import pathlib
import statistics
import tempfile
import time

from run import BUCKET, Ministack

N = 200


def p50_ms(samples):
    return statistics.median(samples) * 1000


def timed(conn, method, path, body, headers=None):
    t = time.perf_counter()
    conn.request(method, path, body, headers or {})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200, resp.status
    return time.perf_counter() - t, resp.getheader("ETag")


def main():
    s3 = Ministack(pathlib.Path(tempfile.mkdtemp()))
    try:
        for name, endpoint in (("straight", s3.endpoint), ("proxy", s3.proxy_endpoint)):
            conn = http.client.HTTPConnection("127.0.0.1", int(endpoint.rsplit(":", 1)[1]))
            for size in (4096, 65536):
                body = b"x" * size
                prefix = f"/{BUCKET}/rtt-{name}-{size}"
                plain = [timed(conn, "PUT", f"{prefix}-{i}", body)[0] for i in range(N)]
                _, etag = timed(conn, "PUT", f"{prefix}-m", body)
                cond = []
                for i in range(N):
                    t, etag = timed(conn, "PUT", f"{prefix}-m",
                                    body[:-8] + i.to_bytes(8, "big"), {"If-Match": etag})
                    cond.append(t)
                print(f"{name:8} {size:6} B: PUT p50 {p50_ms(plain):.2f} ms, "
                      f"If-Match PUT p50 {p50_ms(cond):.2f} ms")
    finally:
        s3.stop()


if __name__ == "__main__":
    main()
