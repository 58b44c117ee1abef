#!/usr/bin/env python3
"""Cross-node freshness: how long after node A acks an append a follower on node B sees the
record, and how many object-store reads B makes per followed stream per hour, with and
without peer notices (`--peers`), in interleaved rounds on one ministack.

    SLUICE_BIN=target/release/sluice python3 scripts/bench/cross-node.py [--rounds 3]

Each round starts, per mode (the order alternating between rounds), two fresh nodes on a
fresh prefix of one bucket ("polling": neither has --peers; "peers": each names the
other), creates an `express` stream through A, follows it from B with an SSE read, then:
appends one record through A every --gaps milliseconds (--appends of them per gap),
timing from A's ack to the record's arrival on B's SSE body; then leaves the stream idle
for --idle seconds. B's reads are its sluice_store_requests_total{op="get"} over each
phase, scaled to an hour (one stream is followed). Prints medians over rounds of each
round's p50 and p99, and writes the raw samples to --out as JSON.
"""

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from run import ENV, REPO, SLUICE, Ministack, free_port, log, wait_http

import subprocess


class Node:
    def __init__(self, work, name, s3, prefix, port, peers):
        self.port = port
        env = dict(ENV, AWS_ENDPOINT_URL=s3.endpoint)
        cmd = [SLUICE, "serve", "--host", "127.0.0.1", "--port", str(port),
               "--bucket", "sluice-bench", "--path", prefix]
        if peers:
            cmd += ["--peers", ",".join(f"http://127.0.0.1:{p}" for p in peers)]
        self.logfile = open(work / f"{name}.log", "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.logfile, stderr=subprocess.STDOUT)
        self.endpoint = f"http://127.0.0.1:{port}"

    def gets(self):
        text = urllib.request.urlopen(f"{self.endpoint}/metrics", timeout=10).read().decode()
        for line in text.splitlines():
            if line.startswith('sluice_store_requests_total{op="get"}'):
                return int(float(line.split()[1]))
        raise RuntimeError("no get counter")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logfile.close()


def call(node, method, path, body, basin=None):
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    headers = {"content-type": "application/json"}
    if basin:
        headers["s2-basin"] = basin
    conn.request(method, f"/v1{path}", json.dumps(body), headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:200]!r}")
    return data


class Follower(threading.Thread):
    """An SSE read of the stream on a node; notes when each record body arrives."""

    def __init__(self, node, basin, stream):
        super().__init__(daemon=True)
        self.conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=600)
        self.conn.request("GET", f"/v1/streams/{stream}/records?seq_num=0",
                          headers={"accept": "text/event-stream", "s2-basin": basin})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.status
        self.seen = {}
        self.following = threading.Event()
        self.cond = threading.Condition()

    def run(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    return
                now = time.monotonic()
                line = line.decode().strip()
                if line.startswith("event:") and "ping" in line:
                    self.following.set()
                if line.startswith("data:") and '"records"' in line:
                    batch = json.loads(line[5:])
                    with self.cond:
                        for r in batch.get("records", []):
                            self.seen.setdefault(r["body"], now)
                        self.cond.notify_all()
        except Exception:
            return

    def wait_for(self, body, timeout=10):
        deadline = time.monotonic() + timeout
        with self.cond:
            while body not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.seen[body]


def pct(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def run_mode(mode, s3, work, args, rnd):
    pa, pb = free_port(), free_port()
    prefix = f"xnode-{mode}-{rnd}-{int(time.time() * 1000)}"
    peers = mode == "peers"
    a = Node(work, f"{mode}-a", s3, prefix, pa, [pb] if peers else [])
    b = Node(work, f"{mode}-b", s3, prefix, pb, [pa] if peers else [])
    try:
        wait_http(f"{a.endpoint}/health")
        wait_http(f"{b.endpoint}/health")
        basin = f"xnode-{rnd}-{mode}"
        call(a, "POST", "/basins", {"basin": basin, "config": None})
        call(a, "POST", "/streams", {"stream": "s", "config": None}, basin)
        follower = Follower(b, basin, "s")
        follower.start()
        if not follower.following.wait(10):
            raise RuntimeError("follower never reached the tail")
        out = {"mode": mode, "round": rnd, "gaps": {}}
        for gap in args.gaps:
            time.sleep(1)
            before, started = b.gets(), time.monotonic()
            lat, acks = [], []
            for i in range(args.appends):
                body = f"{gap}-{i}"
                t0 = time.monotonic()
                call(a, "POST", "/streams/s/records", {"records": [{"body": body}]}, basin)
                t_ack = time.monotonic()
                seen = follower.wait_for(body)
                if seen is None:
                    raise RuntimeError(f"{body} not seen on B within 10 s")
                acks.append((t_ack - t0) * 1000)
                lat.append((seen - t_ack) * 1000)
                time.sleep(max(0.0, gap / 1000 - (time.monotonic() - t0)))
            elapsed = time.monotonic() - started
            out["gaps"][gap] = {
                "latency_ms": lat,
                "ack_ms": acks,
                "b_gets_per_hour": (b.gets() - before) / elapsed * 3600,
            }
        before, started = b.gets(), time.monotonic()
        time.sleep(args.idle)
        out["idle_b_gets_per_hour"] = (b.gets() - before) / (time.monotonic() - started) * 3600
        return out
    finally:
        a.stop()
        b.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--appends", type=int, default=40)
    p.add_argument("--gaps", default="100,1000", help="ms between appends, comma-separated")
    p.add_argument("--idle", type=float, default=30.0, help="seconds of the idle phase")
    p.add_argument("--out", default=str(REPO / "target/bench/cross-node.json"))
    args = p.parse_args()
    args.gaps = [int(g) for g in args.gaps.split(",")]
    work = Path(tempfile.mkdtemp(prefix="sluice-xnode-"))
    s3 = Ministack(work)
    results = []
    try:
        for rnd in range(1, args.rounds + 1):
            modes = ["polling", "peers"] if rnd % 2 else ["peers", "polling"]
            for mode in modes:
                log(f"round {rnd}: {mode}")
                results.append(run_mode(mode, s3, work, args, rnd))
    finally:
        s3.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print("| mode | gap between appends | ack→seen on B p50 / p99 (ms) | A's ack p50 (ms) | B's GETs per hour |")
    print("|---|---|---|---|---|")
    for mode in ("polling", "peers"):
        runs = [r for r in results if r["mode"] == mode]
        for gap in args.gaps:
            g = [r["gaps"][gap] for r in runs]
            p50 = statistics.median(pct(x["latency_ms"], 0.5) for x in g)
            p99 = statistics.median(pct(x["latency_ms"], 0.99) for x in g)
            ack = statistics.median(pct(x["ack_ms"], 0.5) for x in g)
            gets = statistics.median(x["b_gets_per_hour"] for x in g)
            print(f"| {mode} | {gap} ms | {p50:.1f} / {p99:.1f} | {ack:.1f} | {gets:,.0f} |")
        idle = statistics.median(r["idle_b_gets_per_hour"] for r in runs)
        print(f"| {mode} | idle | | | {idle:,.0f} |")
    print(f"rounds: {args.rounds}, per-round p50s: " + "; ".join(
        f"{r['mode']} r{r['round']}: " + ", ".join(
            f"{g}ms {pct(r['gaps'][g]['latency_ms'], 0.5):.1f}" for g in args.gaps)
        for r in results), file=sys.stderr)


if __name__ == "__main__":
    main()
