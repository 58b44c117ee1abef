#!/usr/bin/env python3
"""One consumer group drained over RESP: adds N entries (pipelined), then C consumer
threads `XREADGROUP GROUP g c<i> COUNT 10 STREAMS k >` and `XACK` each batch until the
group has nothing new. Prints entries/s, XREADGROUP latency percentiles, and the error
replies clients saw (each retried; `transaction_conflict` would be one).

    resp_groups.py --port P[,P2,...] --consumers C [--entries N] [--key K]

With several ports (the nodes of one cluster) consumers take them in turn; the entries
are added through the first.

Python threads share one interpreter, so the figure is a floor for either server.
"""

import argparse
import threading
import time

import redis


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", required=True, help="RESP port(s), comma-separated")
    ap.add_argument("--consumers", type=int, default=8)
    ap.add_argument("--entries", type=int, default=20000)
    ap.add_argument("--key", default=f"groups-{time.time_ns()}")
    args = ap.parse_args()
    ports = [int(p) for p in args.port.split(",")]
    r = redis.Redis(port=ports[0])
    key = args.key
    r.xgroup_create(key, "g", id="0", mkstream=True)
    pipe = r.pipeline(transaction=False)
    for i in range(args.entries):
        pipe.xadd(key, {"n": str(i), "payload": "x" * 90})
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()

    done = [0] * args.consumers
    latencies = [[] for _ in range(args.consumers)]
    errors = []

    def retried(call):
        while True:
            try:
                return call()
            except redis.ResponseError as e:
                errors.append(str(e))
                if len(errors) > 1000:
                    raise

    def consume(i):
        c = redis.Redis(port=ports[i % len(ports)])
        while True:
            t0 = time.monotonic()
            reply = retried(lambda: c.xreadgroup("g", f"c{i}", {key: ">"}, count=10))
            latencies[i].append(time.monotonic() - t0)
            entries = reply[0][1] if reply else []
            if not entries:
                return
            retried(lambda: c.xack(key, "g", *[e[0] for e in entries]))
            done[i] += len(entries)

    t0 = time.monotonic()
    threads = [threading.Thread(target=consume, args=(i,)) for i in range(args.consumers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    lat = sorted(x for l in latencies for x in l)
    pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] * 1000
    pending = r.xpending(key, "g")["pending"]
    print(f"groups: {sum(done)} entries by {args.consumers} consumers in {secs:.1f} s = "
          f"{sum(done) / secs:.0f}/s; xreadgroup p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms; "
          f"pending after: {pending}; error replies: {len(errors)}"
          + (f" (first: {errors[0]})" if errors else ""))


if __name__ == "__main__":
    main()
