#!/usr/bin/env python3
"""Condenses a `make bench` results.json into the side-by-side tables of docs/BENCHMARKS.md.

Usage: scripts/bench/summary.py target/bench/results.json
A sweep of one backend (`scripts/bench.sh --backends local`) gives that backend's rows.
"""
import json, statistics as st, sys
from collections import defaultdict
d = json.load(open(sys.argv[1]))
GIB = 1024**3
by = defaultdict(list)
for r in d:
    by[(r['backend'], r['record_size'], r['storage_class'], r['server'])].append(r)
def at(k, rate):
    return next((r for r in by[k] if r['target_mibps'] == rate), None)
BACKENDS = [b for b in ['local', 'ministack'] if any(k[0] == b for k in by)]
def configs():
    """Every (backend, record size, storage class) of the sweep, in table order."""
    for b in BACKENDS:
        for s in [8192, 1024]:
            for c in ['express', 'standard']:
                yield b, s, c
print("### Maximum sustained write throughput (MiB/s, highest rate reached in the sweep)\n")
print("| backend | record | class | Sluice | s2 lite | ratio |\n|---|---|---|---|---|---|")
for b, s, c in configs():
    a = max(r['write_mibps'] or 0 for r in by[(b, s, c, 'sluice')])
    l = max(r['write_mibps'] or 0 for r in by[(b, s, c, 'lite')])
    print(f"| {b} | {s} | {c} | {a:.1f} | {l:.1f} | {a/l:.2f}× |")
print("\n### Ack latency at 20 MiB/s (below both saturations), ms\n")
print("| backend | record | class | Sluice p50 / p99 | s2 lite p50 / p99 | p99 ratio |\n|---|---|---|---|---|---|")
for b, s, c in configs():
    a = at((b, s, c, 'sluice'), 20); l = at((b, s, c, 'lite'), 20)
    if a and l:
        print(f"| {b} | {s} | {c} | {a['ack_p50_ms']:.1f} / {a['ack_p99_ms']:.1f} | {l['ack_p50_ms']:.1f} / {l['ack_p99_ms']:.1f} | {a['ack_p99_ms']/l['ack_p99_ms']:.2f}× |")
print("\n### Express ack p50 at 1 MiB/s, ms\n")
print("| backend | record | Sluice | s2 lite |\n|---|---|---|---|")
for b in BACKENDS:
    for s in [8192, 1024]:
        a = at((b, s, 'express', 'sluice'), 1); l = at((b, s, 'express', 'lite'), 1)
        print(f"| {b} | {s} | {a['ack_p50_ms']:.1f} | {l['ack_p50_ms']:.1f} |")
print("\n### Catch-up read throughput (MiB/s; median over the sweep's runs, over the rates both servers ran, and at 20 MiB/s)\n")
print("| backend | record | class | Sluice median | s2 lite median | ratio | ratio at shared rates | Sluice @20 | lite @20 |\n|---|---|---|---|---|---|---|---|---|")
for b, s, c in configs():
    sluice, lite = by[(b, s, c, 'sluice')], by[(b, s, c, 'lite')]
    a = st.median(r['catchup_mibps'] for r in sluice)
    l = st.median(r['catchup_mibps'] for r in lite)
    shared = {r['target_mibps'] for r in sluice} & {r['target_mibps'] for r in lite}
    a_shared = st.median(r['catchup_mibps'] for r in sluice if r['target_mibps'] in shared)
    l_shared = st.median(r['catchup_mibps'] for r in lite if r['target_mibps'] in shared)
    a20 = at((b, s, c, 'sluice'), 20); l20 = at((b, s, c, 'lite'), 20)
    print(f"| {b} | {s} | {c} | {a:.0f} | {l:.0f} | {a/l:.2f}× | {a_shared/l_shared:.2f}× | {a20['catchup_mibps']:.0f} | {l20['catchup_mibps']:.0f} |")
def per_gib(r):
    gib = r['written_bytes'] / GIB
    return sum(n for k, n in r['store_write_phase']['requests'].items() if k != 'DELETE') / gib
def bytes_gib(r):
    return r['store_write_phase']['request_bytes'] / r['written_bytes']
if 'ministack' in BACKENDS:
    print("\n### Object-store requests per GiB written (ministack, through the counting proxy)\n")
    print("| record | class | target MiB/s | Sluice | s2 lite | ratio | bytes written per GiB, Sluice / lite |\n|---|---|---|---|---|---|---|")
    for s in [8192, 1024]:
        for c in ['express', 'standard']:
            for rate in [1, 20, 50]:
                a = at(('ministack', s, c, 'sluice'), rate); l = at(('ministack', s, c, 'lite'), rate)
                if a and l:
                    print(f"| {s} | {c} | {rate} | {per_gib(a):.0f} | {per_gib(l):.0f} | {per_gib(a)/per_gib(l):.2f}× | {bytes_gib(a):.2f} / {bytes_gib(l):.2f} GiB |")
