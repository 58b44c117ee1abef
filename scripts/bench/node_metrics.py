#!/usr/bin/env python3
"""What a Sluice node did while a command ran, from its /metrics before and after:
quantiles of its append acks (by storage class) and object-store requests (by kind), its
commits and their mean size, requests and lost manifest races.

    SLUICE_BIN=target/release/sluice scripts/with-sluice.sh ministack -- \\
        scripts/bench/node_metrics.py -- "$S2_CLI" bench <basin> --record-size 8192 ...

Reads the node at $SLUICE_ENDPOINT (set by with-sluice.sh). Quantiles are interpolated
within a bucket, as Prometheus' histogram_quantile does, so they are as fine as the
buckets around them (src/metrics.rs).
"""

import os
import re
import subprocess
import sys
import urllib.request

ACKS = "sluice_append_ack_duration_seconds"
REQUESTS = "sluice_store_request_duration_seconds"
SAMPLE = re.compile(r"^(\w+?)(_bucket|_sum|_count)?(?:\{(.*)\})? (\S+)$")


def scrape(endpoint):
    """{(family, labels without le): {"buckets": {le: n}, "sum": x, "count": n, "value": x}}"""
    text = urllib.request.urlopen(f"{endpoint}/metrics", timeout=10).read().decode()
    series = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if not m or line.startswith("#"):
            continue
        name, suffix, labels, value = m.group(1), m.group(2), m.group(3) or "", float(m.group(4))
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        le = pairs.pop("le", None)
        key = (name, ",".join(f"{k}={v}" for k, v in sorted(pairs.items())))
        s = series.setdefault(key, {"buckets": {}})
        if suffix == "_bucket":
            s["buckets"][float(le)] = value
        elif suffix == "_sum":
            s["sum"] = value
        elif suffix == "_count":
            s["count"] = value
        else:
            s["value"] = value
    return series


def delta(after, before):
    out = {}
    for key, a in after.items():
        b = before.get(key, {"buckets": {}})
        out[key] = {
            "buckets": {le: n - b["buckets"].get(le, 0) for le, n in a["buckets"].items()},
            **{f: a[f] - b.get(f, 0) for f in ("sum", "count", "value") if f in a},
        }
    return out


def quantile(q, buckets):
    """The q-quantile of a cumulative histogram, interpolated within its bucket."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total == 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(buckets[le] - below, 1e-9)
        lower, below = le, buckets[le]
    return lower


def commit_mean_kib(d):
    commits = d.get(("sluice_commit_bytes", ""), {})
    n = commits.get("count", 0)
    return round(commits["sum"] / n / 1024, 1) if n else None


def summary(d):
    """The figures `run.py` keeps per Sluice run: the node's acks (of whichever storage
    class the run used) and PUTs in ms, its commits and their mean size."""
    def ms(name, labels, q):
        s = d.get((name, labels))
        x = quantile(q, s["buckets"]) if s and s.get("count") else None
        return None if x is None else round(x * 1000, 2)

    ack = next((labels for (name, labels), s in d.items() if name == ACKS and s.get("count")), None)
    return {
        "ack_p50_ms": ms(ACKS, ack, 0.5),
        "ack_p99_ms": ms(ACKS, ack, 0.99),
        "put_p50_ms": ms(REQUESTS, "op=put", 0.5),
        "put_p99_ms": ms(REQUESTS, "op=put", 0.99),
        "commits": int(d.get(("sluice_commit_bytes", ""), {}).get("count", 0)),
        "commit_mean_kib": commit_mean_kib(d),
        "conflicts": int(d.get(("sluice_commit_conflicts_total", ""), {}).get("value", 0)),
    }


def report(d):
    def ms(x):
        return "-" if x is None else f"{x * 1000:.2f}"

    for (name, labels), s in sorted(d.items()):
        if name in (ACKS, REQUESTS) and s.get("count", 0) > 0:
            qs = " / ".join(ms(quantile(q, s["buckets"])) for q in (0.5, 0.9, 0.99))
            mean = s["sum"] / s["count"] * 1000
            print(f"{name}{{{labels}}}: n={s['count']:.0f}, p50 / p90 / p99 {qs} ms, "
                  f"mean {mean:.2f} ms")
    if commit_mean_kib(d) is not None:
        commits = d[("sluice_commit_bytes", "")]["count"]
        print(f"commits: {commits:.0f}, mean {commit_mean_kib(d)} KiB")
    for (name, labels), s in sorted(d.items()):
        if name in ("sluice_store_requests_total", "sluice_store_bytes_total",
                    "sluice_commit_conflicts_total", "sluice_read_chunks_total"):
            print(f"{name}{{{labels}}}: {s['value']:.0f}")


def main():
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    endpoint = os.environ["SLUICE_ENDPOINT"]
    before = scrape(endpoint)
    code = subprocess.call(args)
    report(delta(scrape(endpoint), before))
    sys.exit(code)


if __name__ == "__main__":
    main()
