#!/usr/bin/env python3
"""Round trips to ministack: the p50 of 200 sequential PUTs on one kept-alive connection,
straight and through the counting proxy, for a few body sizes, and of conditional
(`If-Match`) PUTs replacing one object. Starts and stops its own ministack on loopback.

    python3 scripts/bench/store-rtt.py
"""

import http.client
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
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
    work = pathlib.Path(tempfile.mkdtemp())
    out = subprocess.run([str(REPO / "scripts/ministack.sh"), "start", str(work / "s3"), "rtt"],
                         check=True, capture_output=True, text=True).stdout
    port = int(out.strip().split("=", 1)[1].rsplit(":", 1)[1])
    proxy = subprocess.Popen([sys.executable, str(REPO / "scripts/bench/s3proxy.py"), "--upstream",
                              f"127.0.0.1:{port}", "--log", str(work / "log.jsonl")],
                             stdout=subprocess.PIPE, text=True)
    try:
        proxy_port = int(proxy.stdout.readline().strip().rsplit(":", 1)[1])
        for name, p in (("straight", port), ("proxy", proxy_port)):
            conn = http.client.HTTPConnection("127.0.0.1", p)
            for size in (4096, 65536):
                body = b"x" * size
                plain = [timed(conn, "PUT", f"/rtt/{name}-{size}-{i}", body)[0] for i in range(N)]
                _, etag = timed(conn, "PUT", f"/rtt/{name}-{size}-m", body)
                cond = []
                for i in range(N):
                    t, etag = timed(conn, "PUT", f"/rtt/{name}-{size}-m",
                                    body[:-8] + i.to_bytes(8, "big"), {"If-Match": etag})
                    cond.append(t)
                print(f"{name:8} {size:6} B: PUT p50 {p50_ms(plain):.2f} ms, "
                      f"If-Match PUT p50 {p50_ms(cond):.2f} ms")
    finally:
        proxy.terminate()
        subprocess.run([str(REPO / "scripts/ministack.sh"), "stop", str(work / "s3")],
                       capture_output=True)


if __name__ == "__main__":
    main()
