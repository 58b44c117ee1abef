#!/usr/bin/env python3
"""Many streams in one basin, through the S2 REST API of a running Sluice (loopback only).

  streams.py create  --basin B --count N [--append] [--start K] [--concurrency C]
      creates streams s000000… (and appends one small record to each with --append)
  streams.py list    --basin B [--rounds R]
      times full listings (pages of 1000 until has_more is false); prints each time,
      the median and the number of streams listed
  streams.py memory  --basin B --pid PID --counts 2000,20000 --release-wait S
      per step: creates and appends once to enough new streams to reach the count, reads
      the node's RSS once they are idle (open), then again after S seconds (released by
      --stream-idle-release), and prints the growth per stream over the RSS at the start

The endpoint is $SLUICE_ENDPOINT (scripts/with-sluice.sh exports it)."""
import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
import urllib.parse

ENDPOINT = urllib.parse.urlparse(os.environ.get("SLUICE_ENDPOINT", "http://127.0.0.1:8080"))
assert ENDPOINT.hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"


class Client:
    def __init__(self):
        self.conn = http.client.HTTPConnection(ENDPOINT.hostname, ENDPOINT.port, timeout=120)

    def call(self, method, path, basin=None, body=None):
        headers = {"content-type": "application/json"}
        if basin:
            headers["s2-basin"] = basin
        data = json.dumps(body) if body is not None else None
        for attempt in range(5):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
                return resp.status, (json.loads(payload) if payload else None)
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(ENDPOINT.hostname, ENDPOINT.port, timeout=120)
                if attempt == 4:
                    raise
                time.sleep(0.2)


def ensure_basin(basin):
    status, body = Client().call("POST", "/v1/basins", body={"basin": basin})
    if status not in (200, 201, 409):
        sys.exit(f"create basin: {status} {body}")


def create(basin, start, count, append, concurrency):
    names = [f"s{i:06d}" for i in range(start, start + count)]
    lock, failures = threading.Lock(), []

    def work(part):
        c = Client()
        for name in part:
            status, body = c.call("POST", "/v1/streams", basin, {"stream": name})
            if status not in (201, 409):
                with lock:
                    failures.append((name, status, body))
                continue
            if append:
                status, body = c.call(
                    "POST", f"/v1/streams/{name}/records", basin, {"records": [{"body": "hello"}]}
                )
                if status != 200:
                    with lock:
                        failures.append((name, status, body))

    parts = [names[i::concurrency] for i in range(concurrency)]
    threads = [threading.Thread(target=work, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit(f"{len(failures)} failures, first: {failures[0]}")


def full_listing(basin):
    c, after, n = Client(), "", 0
    while True:
        q = urllib.parse.urlencode({"limit": 1000, "start_after": after})
        status, body = c.call("GET", f"/v1/streams?{q}", basin)
        if status != 200:
            sys.exit(f"list: {status} {body}")
        n += len(body["streams"])
        if not body["has_more"]:
            return n
        after = body["streams"][-1]["name"]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["create", "list", "memory"])
    p.add_argument("--basin", required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--append", action="store_true")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pid", type=int)
    p.add_argument("--counts", default="2000,20000")
    p.add_argument("--release-wait", type=float, default=0)
    a = p.parse_args()
    ensure_basin(a.basin)
    if a.command == "create":
        t = time.perf_counter()
        create(a.basin, a.start, a.count, a.append, a.concurrency)
        print(f"created {a.count} streams in {time.perf_counter() - t:.1f} s")
    elif a.command == "list":
        times = []
        for _ in range(a.rounds):
            t = time.perf_counter()
            n = full_listing(a.basin)
            times.append(time.perf_counter() - t)
            print(f"full listing: {n} streams in {times[-1]:.2f} s", flush=True)
        print(f"median {statistics.median(times):.2f} s over {a.rounds} rounds")
    else:
        base, made = rss_kib(a.pid), 0
        print(f"RSS at start: {base / 1024:.1f} MiB")
        for target in (int(x) for x in a.counts.split(",")):
            create(a.basin, made, target - made, True, a.concurrency)
            made = target
            time.sleep(2)
            idle = rss_kib(a.pid)
            print(f"{made} streams appended once, open and idle: RSS {idle / 1024:.1f} MiB, "
                  f"{(idle - base) * 1024 / made:.0f} B per stream over the start", flush=True)
            if a.release_wait:
                time.sleep(a.release_wait)
                after = rss_kib(a.pid)
                print(f"  {a.release_wait:.0f} s later (idle streams released): RSS "
                      f"{after / 1024:.1f} MiB, {(after - base) * 1024 / made:.0f} B per stream",
                      flush=True)


if __name__ == "__main__":
    main()
