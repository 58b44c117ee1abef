#!/usr/bin/env python3
"""One consumer group drained over RESP: adds N entries (pipelined), then C consumer
threads `XREADGROUP GROUP g c<i> COUNT 10 STREAMS k >` and `XACK` each batch until the
group has nothing new. Prints entries/s and XREADGROUP latency percentiles.

    resp_groups.py --port P --consumers C [--entries N] [--key K]

Python threads share one interpreter, so the figure is a floor for either server.
"""

import argparse
import threading
import time

import redis


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--consumers", type=int, default=8)
    ap.add_argument("--entries", type=int, default=20000)
    ap.add_argument("--key", default=f"groups-{time.time_ns()}")
    args = ap.parse_args()
    r = redis.Redis(port=args.port)
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

    def consume(i):
        c = redis.Redis(port=args.port)
        while True:
            t0 = time.monotonic()
            reply = c.xreadgroup("g", f"c{i}", {key: ">"}, count=10)
            latencies[i].append(time.monotonic() - t0)
            entries = reply[0][1] if reply else []
            if not entries:
                return
            c.xack(key, "g", *[e[0] for e in entries])
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
          f"pending after: {pending}")


if __name__ == "__main__":
    main()
