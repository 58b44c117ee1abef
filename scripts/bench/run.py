#!/usr/bin/env python3
"""Side-by-side `s2 bench` of Sluice and `s2 lite` on the same machine and backends.

For each backend (a local directory; ministack), each server (sluice; s2 lite), each record
size and storage class, it runs `s2 bench` at rising target rates until the server no longer
keeps up, on a fresh server per sweep. On ministack both servers reach S3 through the same
counting proxy (scripts/bench/s3proxy.py), which gives object-store requests and bytes per
GiB written (the write phase: writer and live reader) and per GiB read back (the catch-up
phase). Peak RSS is the server's VmHWM after each sweep. For Sluice it also keeps what the
node's /metrics say of each run (node_metrics.py): its acks' p50 and p99 from the request
reaching the engine, its PUTs' p50 and p99, its commits and their mean size.

With --rounds N the whole set runs N times, the servers' order alternating from one round
to the next (Sluice first in odd rounds), and every result carries its round: repeated
runs of one configuration vary by more than some targets' margins, and summary.py reports
each ratio per round and its median.

Writes results.json and results.md into --out and prints the Markdown tables.
Everything runs on 127.0.0.1 with dummy AWS credentials.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import node_metrics

REPO = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("SLUICE_TOOLS_DIR", Path.home() / ".cache/sluice-tools"))
S2 = os.environ.get("S2_CLI", str(TOOLS / "s2-cli/bin/s2"))
SLUICE = os.environ.get("SLUICE_BIN", str(REPO / "target/release/sluice"))
BUCKET = "sluice-bench"
GIB = 1024**3

ENV = dict(
    os.environ,
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_REGION="us-east-1",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
    AWS_ALLOW_HTTP="true",
    NO_COLOR="1",
    S2_ACCESS_TOKEN="ignored",
    RUST_LOG="warn",
)
for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
    ENV.pop(var, None)


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s")


def vm_hwm_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class Ministack:
    def __init__(self, work):
        self.dir = work / "s3"
        out = subprocess.run(
            [str(REPO / "scripts/ministack.sh"), "start", str(self.dir), BUCKET],
            env=ENV, check=True, capture_output=True, text=True,
        ).stdout
        self.endpoint = out.strip().split("=", 1)[1]
        port = self.endpoint.rsplit(":", 1)[1]
        self.log = work / "requests.jsonl"
        self.proxy = subprocess.Popen(
            [sys.executable, str(REPO / "scripts/bench/s3proxy.py"), "--upstream",
             f"127.0.0.1:{port}", "--log", str(self.log)],
            env=ENV, stdout=subprocess.PIPE, text=True,
        )
        self.proxy_endpoint = self.proxy.stdout.readline().strip().split("=", 1)[1]

    def mark(self):
        self.proxy.send_signal(signal.SIGUSR1)
        time.sleep(0.2)

    def stop(self):
        self.proxy.terminate()
        self.proxy.wait()
        subprocess.run([str(REPO / "scripts/ministack.sh"), "stop", str(self.dir)],
                       env=ENV, capture_output=True)


class Server:
    """A sluice or s2 lite process on a fresh port and fresh storage."""

    def __init__(self, kind, backend, work, s3=None):
        self.kind = kind
        self.port = free_port()
        env = dict(ENV)
        if backend == "local":
            root = work / f"{kind}-data"
            storage = ["--local-root", str(root)]
        else:
            env["AWS_ENDPOINT_URL"] = s3.proxy_endpoint
            storage = ["--bucket", BUCKET, "--path", f"{kind}-{int(time.time() * 1000)}"]
        if kind == "sluice":
            cmd = [SLUICE, "serve", "--host", "127.0.0.1", "--port", str(self.port), *storage]
        else:
            cmd = [S2, "lite", "--port", str(self.port), *storage]
        self.logfile = open(work / f"{kind}.log", "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.logfile, stderr=subprocess.STDOUT)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        wait_http(f"{self.endpoint}/health")

    def client_env(self):
        return dict(ENV, S2_ACCOUNT_ENDPOINT=self.endpoint, S2_BASIN_ENDPOINT=self.endpoint)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logfile.close()


UNITS_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_bench(out):
    def rate(label):
        m = re.search(rf"^{label}: ([0-9.]+) MiB/s.*\((\d+) bytes, (\d+) records", out, re.M)
        return (float(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (None, 0, 0)

    def latency(row):
        # Rows print the ack table, then the end-to-end one, side by side.
        m = re.findall(rf"^{row}\s*:\s*([0-9.]+)(ns|us|µs|ms|s)\s+{row}\s*:\s*([0-9.]+)(ns|us|µs|ms|s)", out, re.M)
        if not m:
            return None, None
        a, au, e, eu = m[0]
        return float(a) * UNITS_MS[au], float(e) * UNITS_MS[eu]

    write, written, records = rate("Write")
    read, _, read_records = rate("Read")
    catchup, _, catchup_records = rate("Catchup")
    ack50, e2e50 = latency("p50")
    ack99, e2e99 = latency("p99")
    return {
        "write_mibps": write, "written_bytes": written, "records": records,
        "read_mibps": read, "catchup_mibps": catchup,
        "ack_p50_ms": ack50, "ack_p99_ms": ack99, "e2e_p50_ms": e2e50, "e2e_p99_ms": e2e99,
        "verified": records > 0 and records == read_records == catchup_records
        and "verification" not in out.lower(),
    }


def proxy_window(log_path, start, end):
    """Requests and bytes logged between two times, from the proxy's log."""
    entries = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    by_conn = {}
    for e in entries:
        by_conn.setdefault(e["conn"], []).append(e)
    counts, req_bytes, resp_bytes = {}, 0, 0
    for conn_entries in by_conn.values():
        conn_entries.sort(key=lambda e: (e["t"], e["resp_before"]))
        for i, e in enumerate(conn_entries):
            if e["kind"] in ("MARK", "CLOSE") or not (start <= e["t"] < end):
                continue
            counts[e["kind"]] = counts.get(e["kind"], 0) + 1
            req_bytes += e["req_bytes"]
            following = next((f for f in conn_entries[i + 1:]), None)
            if following is not None:
                resp_bytes += following["resp_before"] - e["resp_before"]
    return {"requests": counts, "request_bytes": req_bytes, "response_bytes": resp_bytes}


def run_bench(server, basin, size, storage_class, rate, duration, catchup_delay):
    cmd = [S2, "bench", basin, "--record-size", str(size), "--storage-class", storage_class,
           "--target-mibps", str(rate), "--duration", f"{duration}s",
           "--catchup-delay", f"{catchup_delay}s"]
    node_before = node_metrics.scrape(server.endpoint) if server.kind == "sluice" else None
    started = time.time()
    p = subprocess.run(cmd, env=server.client_env(), capture_output=True, text=True,
                       timeout=duration + catchup_delay + 600)
    out = p.stdout + p.stderr
    result = parse_bench(out)
    result.update({"command": "s2 " + " ".join(cmd[1:]), "exit_code": p.returncode,
                   "started": started, "ended": time.time()})
    if node_before is not None:
        after = node_metrics.scrape(server.endpoint)
        result["node"] = node_metrics.summary(node_metrics.delta(after, node_before))
    if p.returncode != 0 or not result["verified"]:
        result["verified"] = False
        result["output_tail"] = out[-2000:]
    return result


def sweep(kind, backend, size, storage_class, rates, duration, work):
    s3 = Ministack(work) if backend == "ministack" else None
    server = Server(kind, backend, work, s3)
    basin = f"bench-{kind}-{size}-{storage_class}"[:48]
    subprocess.run([S2, "create-basin", basin], env=server.client_env(), check=True,
                   capture_output=True)
    results = []
    try:
        for rate in rates:
            catchup_delay = 3
            log(f"{backend} {kind} {size}B {storage_class} {rate} MiB/s")
            r = run_bench(server, basin, size, storage_class, rate, duration, catchup_delay)
            r.update({"backend": backend, "server": kind, "record_size": size,
                      "storage_class": storage_class, "target_mibps": rate})
            r["peak_rss_mib"] = round(vm_hwm_kib(server.proc.pid) / 1024, 1)
            if s3:
                s3.mark()
                split = r["started"] + duration + catchup_delay / 2
                r["store_write_phase"] = proxy_window(s3.log, r["started"], split)
                r["store_read_phase"] = proxy_window(s3.log, split, r["ended"] + 0.5)
            results.append(r)
            log(f"  -> write {r['write_mibps']} MiB/s, ack p50/p99 {r['ack_p50_ms']}/{r['ack_p99_ms']} ms, "
                f"catch-up {r['catchup_mibps']} MiB/s, verified {r['verified']}")
            if not r["verified"] or (r["write_mibps"] or 0) < 0.9 * rate:
                break
    finally:
        server.stop()
        if s3:
            s3.stop()
    return results


def per_gib(phase, gib):
    """Requests per GiB, leaving out DELETEs: those are the previous run's stream being
    torn down in the background, not the cost of this run's writes or reads."""
    total = sum(n for kind, n in phase["requests"].items() if kind != "DELETE")
    return total / gib if gib else None


def fmt(v, digits=1):
    return "–" if v is None else f"{v:.{digits}f}"


def report(results):
    """Markdown tables of every run; a round column when there was more than one round."""
    rounds = any(r.get("round", 1) > 1 for r in results)
    lead = lambda r: f"| {r.get('round', 1)} " if rounds else ""
    head, rule = ("| round ", "|---") if rounds else ("", "")
    rows = [head + "| backend | size | class | target MiB/s | server | write MiB/s | ack p50 / p99 ms | e2e p50 / p99 ms | catch-up MiB/s | peak RSS MiB | verified |",
            rule + "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append(
            f"{lead(r)}| {r['backend']} | {r['record_size']} | {r['storage_class']} | {r['target_mibps']} | {r['server']} | "
            f"{fmt(r['write_mibps'])} | {fmt(r['ack_p50_ms'])} / {fmt(r['ack_p99_ms'])} | "
            f"{fmt(r['e2e_p50_ms'])} / {fmt(r['e2e_p99_ms'])} | {fmt(r['catchup_mibps'])} | "
            f"{fmt(r['peak_rss_mib'], 0)} | {'yes' if r['verified'] else 'NO'} |")
    store = ["", head + "| size | class | target MiB/s | server | requests / GiB written | PUT / GET / LIST / other | bytes written / GiB | requests / GiB read back | bytes read / GiB read |",
             rule + "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "store_write_phase" not in r:
            continue
        gib = r["written_bytes"] / GIB
        w, rd = r["store_write_phase"], r["store_read_phase"]
        req = w["requests"]
        puts = req.get("PUT", 0) + req.get("PUT-IF", 0)
        gets = req.get("GET", 0) + req.get("HEAD", 0)
        lists = req.get("LIST", 0)
        other = sum(n for k, n in req.items() if k != "DELETE") - puts - gets - lists
        store.append(
            f"{lead(r)}| {r['record_size']} | {r['storage_class']} | {r['target_mibps']} | {r['server']} | "
            f"{fmt(per_gib(w, gib), 0)} | {fmt(puts / gib, 0)} / {fmt(gets / gib, 0)} / {fmt(lists / gib, 0)} / {fmt(other / gib, 0)} | "
            f"{fmt(w['request_bytes'] / gib / GIB, 2)} GiB | {fmt(per_gib(rd, gib), 0)} | {fmt(rd['response_bytes'] / gib / GIB, 2)} GiB |")
    node = ["", head + "| backend | size | class | target MiB/s | Sluice's acks p50 / p99 ms | PUT p50 / p99 ms | commits | mean commit KiB |",
            rule + "|---|---|---|---|---|---|---|---|"]
    for r in results:
        n = r.get("node")
        if not n:
            continue
        node.append(
            f"{lead(r)}| {r['backend']} | {r['record_size']} | {r['storage_class']} | {r['target_mibps']} | "
            f"{fmt(n['ack_p50_ms'], 2)} / {fmt(n['ack_p99_ms'], 2)} | {fmt(n['put_p50_ms'], 2)} / {fmt(n['put_p99_ms'], 2)} | "
            f"{n['commits']} | {fmt(n['commit_mean_kib'])} |")
    return "\n".join(rows + store + node) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="local,ministack")
    ap.add_argument("--servers", default="sluice,lite")
    ap.add_argument("--sizes", default="8192,1024")
    ap.add_argument("--classes", default="express,standard")
    ap.add_argument("--rates", default="1,20,50,100,200,400")
    ap.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", "10")))
    ap.add_argument("--out", default=str(REPO / "target/bench"))
    ap.add_argument("--rounds", type=int, default=1,
                    help="run everything this many times, alternating the servers' order")
    ap.add_argument("--quick", action="store_true", help="one size, express, two rates")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.classes, args.rates = "8192", "express", "20,100"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    servers = args.servers.split(",")
    for round_no in range(1, args.rounds + 1):
        order = servers if round_no % 2 else servers[::-1]
        if args.rounds > 1:
            log(f"round {round_no} of {args.rounds}")
        for backend in args.backends.split(","):
            for size in map(int, args.sizes.split(",")):
                for storage_class in args.classes.split(","):
                    for kind in order:
                        with tempfile.TemporaryDirectory(prefix="sluice-bench-") as work:
                            swept = sweep(kind, backend, size, storage_class,
                                          list(map(int, args.rates.split(","))), args.duration,
                                          Path(work))
                        for r in swept:
                            r["round"] = round_no
                        results += swept
                        (out / "results.json").write_text(json.dumps(results, indent=1))
    table = report(results)
    (out / "results.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
