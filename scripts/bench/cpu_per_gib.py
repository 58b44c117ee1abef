#!/usr/bin/env python3
"""Server CPU seconds and store bytes written per GiB appended, Sluice beside `s2 lite`.

Each run starts a fresh server on fresh storage (a local directory, or ministack behind
the counting proxy), runs one `s2 bench` (write with a live follower, then catch-up), and
reads around it:

- the server's CPU: utime and stime from /proc/<pid>/stat (user and kernel seconds);
- the client's CPU (`s2 bench`, from the children's rusage), to see what it took from the
  two cores;
- store bytes written: on a local directory the server's write_bytes from /proc/<pid>/io
  (what it sent towards the disk, page-granular); on ministack the request bytes of every
  PUT and POST through the proxy; for Sluice also its own sluice_store_bytes_total
  (direction=written), the objects' logical bytes.

Runs alternate between the servers within a round and the order flips from round to round
(the --servers order in odd rounds). Prints a table per run and the medians; --out keeps the raw
results as JSON.

    scripts/bench/cpu_per_gib.py --backends local,ministack --rounds 3 --rate 40

Everything runs on 127.0.0.1 with dummy AWS credentials (run.py's environment).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import node_metrics
import run

GIB = 1024**3
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """(user, kernel) seconds of a live process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def io_write_bytes(pid):
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def store_written(endpoint):
    series = node_metrics.scrape(endpoint)
    return sum(s.get("value", 0) for (name, labels), s in series.items()
               if name == "sluice_store_bytes_total" and "direction=written" in labels)


def proxy_written(log_path, start, end):
    phase = run.proxy_window(log_path, start, end)
    return phase["request_bytes"], phase["requests"]


def one_run(label, backend, args, work):
    kind, _, binary = label.partition("=")
    run.SLUICE = binary or os.environ.get("SLUICE_BIN", str(run.REPO / "target/release/sluice"))
    s3 = run.Ministack(work) if backend == "ministack" else None
    server = run.Server(kind, backend, work, s3)
    basin = f"cpu-{kind}"
    subprocess.run([run.S2, "create-basin", basin], env=server.client_env(), check=True,
                   capture_output=True)
    try:
        time.sleep(1)  # past the start-up's own work
        user0, sys0 = cpu_seconds(server.proc.pid)
        io0 = io_write_bytes(server.proc.pid)
        node0 = store_written(server.endpoint) if kind == "sluice" else None
        client0 = children_cpu()
        load = os.getloadavg()[0]
        r = run.run_bench(server, basin, args.size, args.storage_class, args.rate,
                          args.duration, args.catchup_delay)
        user1, sys1 = cpu_seconds(server.proc.pid)
        io1 = io_write_bytes(server.proc.pid)
        client1 = children_cpu()
        gib = r["written_bytes"] / GIB if r["written_bytes"] else None
        r.update({
            "backend": backend, "server": label, "load_avg_1m": load,
            "server_user_s": user1 - user0, "server_kernel_s": sys1 - sys0,
            "client_cpu_s": client1 - client0, "io_write_bytes": io1 - io0,
        })
        if kind == "sluice":
            r["node_store_written"] = store_written(server.endpoint) - node0
        if s3:
            s3.mark()
            r["proxy_written"], r["proxy_requests"] = proxy_written(
                s3.log, r["started"] - 1, r["ended"] + 0.5)
        cpu = r["server_user_s"] + r["server_kernel_s"]
        r["cpu_s_per_gib"] = cpu / gib if gib else None
        r["kernel_share"] = r["server_kernel_s"] / cpu if cpu else None
        store = r.get("proxy_written") if s3 else r["io_write_bytes"]
        r["store_bytes_per_byte"] = store / r["written_bytes"] if gib else None
        if kind == "sluice" and gib:
            r["node_store_bytes_per_byte"] = r["node_store_written"] / r["written_bytes"]
        return r
    finally:
        server.stop()
        if s3:
            s3.stop()


def fmt(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


def row(r):
    return (f"| {r['backend']} | {r['server']} | {r['round']} | {fmt(r['write_mibps'], 1)} | "
            f"{fmt(r['cpu_s_per_gib'])} | {fmt(r['kernel_share'])} | "
            f"{fmt(r['client_cpu_s'] / (r['written_bytes'] / GIB) if r['written_bytes'] else None)} | "
            f"{fmt(r['store_bytes_per_byte'], 3)} | {fmt(r.get('node_store_bytes_per_byte'), 3)} | "
            f"{fmt(r['load_avg_1m'], 1)} | {r['verified']} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="local,ministack")
    ap.add_argument("--servers", default="sluice,lite",
                    help="comma-separated: lite, sluice (SLUICE_BIN), or sluice=<binary> "
                         "to compare builds")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=8192, help="record bytes (8192)")
    ap.add_argument("--storage-class", default="express")
    ap.add_argument("--rate", type=int, default=40, help="target MiB/s (40)")
    ap.add_argument("--duration", type=int, default=10, help="seconds of writing (10)")
    ap.add_argument("--catchup-delay", type=int, default=3)
    ap.add_argument("--out", type=Path, help="write results.json here")
    args = ap.parse_args()
    servers = args.servers.split(",")
    results = []
    print("| backend | server | round | write MiB/s | server CPU s/GiB | kernel share | "
          "client CPU s/GiB | store B/B | node store B/B | load | verified |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for rnd in range(1, args.rounds + 1):
        order = servers if rnd % 2 else servers[::-1]
        for backend in args.backends.split(","):
            for kind in order:
                with run.tempfile.TemporaryDirectory(prefix="sluice-cpu-") as tmp:
                    run.log(f"round {rnd}: {backend} {kind}")
                    r = one_run(kind, backend, args, Path(tmp))
                r["round"] = rnd
                results.append(r)
                print(row(r), flush=True)
    print()
    print("| backend | server | median server CPU s/GiB | median store B/B | ratio to lite (median of rounds) |")
    print("|---|---|---|---|---|")
    for backend in args.backends.split(","):
        for kind in servers:
            rs = [r for r in results if r["backend"] == backend and r["server"] == kind
                  and r["cpu_s_per_gib"] is not None]
            if not rs:
                continue
            ratios = []
            for rnd in range(1, args.rounds + 1):
                mine = [r for r in rs if r["round"] == rnd]
                lite = [r for r in results if r["backend"] == backend and r["server"] == "lite"
                        and r["round"] == rnd and r["cpu_s_per_gib"]]
                if mine and lite:
                    ratios.append(mine[0]["cpu_s_per_gib"] / lite[0]["cpu_s_per_gib"])
            print(f"| {backend} | {kind} | {fmt(statistics.median(r['cpu_s_per_gib'] for r in rs))} | "
                  f"{fmt(statistics.median(r['store_bytes_per_byte'] for r in rs), 3)} | "
                  f"{fmt(statistics.median(ratios)) if ratios else '–'} "
                  f"({', '.join(fmt(x) for x in ratios)}) |")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cpu-per-gib.json").write_text(json.dumps(results, indent=1))
    if not all(r["verified"] for r in results):
        sys.exit("some run failed verification")


if __name__ == "__main__":
    main()
