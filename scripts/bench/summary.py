#!/usr/bin/env python3
"""Condenses a `make bench` results.json into side-by-side tables (docs/BENCHMARKS.md quotes them).

Usage: scripts/bench/summary.py target/bench/results.json
A sweep of one backend (`scripts/bench.sh --backends local`) gives that backend's rows.
A run of several rounds (`--rounds N`) gives, in each row, the medians over the rounds of
both servers' figures and of their ratio, and the ratio of every round in a last column:
each ratio is taken within one round, between runs made minutes apart.
"""
import json, statistics as st, sys
from collections import defaultdict
d = json.load(open(sys.argv[1]))
GIB = 1024**3
by = defaultdict(list)
for r in d:
    by[(r.get('round', 1), r['backend'], r['record_size'], r['storage_class'], r['server'])].append(r)
ROUNDS = sorted({k[0] for k in by})
MANY = len(ROUNDS) > 1
BACKENDS = [b for b in ['local', 'ministack'] if any(k[1] == b for k in by)]


def at(rnd, b, s, c, server, rate):
    return next((r for r in by[(rnd, b, s, c, server)] if r['target_mibps'] == rate), None)


def configs():
    """Every (backend, record size, storage class) of the sweep, in table order."""
    for b in BACKENDS:
        for s in [8192, 1024]:
            for c in ['express', 'standard']:
                yield b, s, c


def header(columns):
    extra = ['ratio per round'] if MANY else []
    cols = columns + extra
    return '| ' + ' | '.join(cols) + ' |\n' + '|---' * len(cols) + '|'


def both_at(b, s, c, rate):
    """(Sluice's run, `s2 lite`'s run) at `rate`, for every round where both ran it."""
    runs = [(at(rnd, b, s, c, 'sluice', rate), at(rnd, b, s, c, 'lite', rate)) for rnd in ROUNDS]
    return [(a, l) for a, l in runs if a and l]


def row(lead, found, show, after=()):
    """One table row: the leading cells, then `show(sluice, lite)` of the medians, the
    median ratio, the cells `after` and, over several rounds, every round's ratio."""
    if not found:
        return None
    a = st.median(p[0] for p in found)
    l = st.median(p[1] for p in found)
    ratios = [p[0] / p[1] for p in found]
    cells = lead + show(a, l) + [f'{st.median(ratios):.2f}×', *after]
    if MANY:
        cells.append(' / '.join(f'{x:.2f}' for x in ratios))
    return '| ' + ' | '.join(str(c) for c in cells) + ' |'


def emit(line):
    if line is not None:
        print(line)


print("### Maximum sustained write throughput (MiB/s, highest rate reached in the sweep)\n")
print(header(['backend', 'record', 'class', 'Sluice', 's2 lite', 'ratio']))
for b, s, c in configs():
    best = lambda runs: max(r['write_mibps'] or 0 for r in runs)
    found = [(best(by[(rnd, b, s, c, 'sluice')]), best(by[(rnd, b, s, c, 'lite')]))
             for rnd in ROUNDS if by[(rnd, b, s, c, 'sluice')] and by[(rnd, b, s, c, 'lite')]]
    emit(row([b, s, c], found, lambda a, l: [f'{a:.1f}', f'{l:.1f}']))

print("\n### Ack latency at 20 MiB/s (below both saturations), ms\n")
print(header(['backend', 'record', 'class', 'Sluice p50 / p99', 's2 lite p50 / p99', 'p99 ratio']))
for b, s, c in configs():
    runs = both_at(b, s, c, 20)
    if runs:
        p50 = [(a['ack_p50_ms'], l['ack_p50_ms']) for a, l in runs]
        a50, l50 = st.median(p[0] for p in p50), st.median(p[1] for p in p50)
        found = [(a['ack_p99_ms'], l['ack_p99_ms']) for a, l in runs]
        emit(row([b, s, c], found,
                 lambda a, l: [f'{a50:.1f} / {a:.1f}', f'{l50:.1f} / {l:.1f}']))

print("\n### Express ack p50 at 1 MiB/s, ms\n")
print('| backend | record | Sluice | s2 lite |' + (' Sluice per round |' if MANY else '')
      + '\n|---|---|---|---|' + ('---|' if MANY else ''))
for b in BACKENDS:
    for s in [8192, 1024]:
        runs = both_at(b, s, 'express', 1)
        if runs:
            a = [x['ack_p50_ms'] for x, _ in runs]
            l = [y['ack_p50_ms'] for _, y in runs]
            tail = f" {' / '.join(f'{x:.1f}' for x in a)} |" if MANY else ''
            print(f"| {b} | {s} | {st.median(a):.1f} | {st.median(l):.1f} |{tail}")

print("\n### Catch-up read throughput (MiB/s; median over the sweep's runs, over the rates both servers ran, and at 20 MiB/s)\n")
print(header(['backend', 'record', 'class', 'Sluice median', 's2 lite median', 'ratio',
              'ratio at shared rates', 'Sluice @20', 'lite @20']))
for b, s, c in configs():
    per_round = []
    for rnd in ROUNDS:
        sluice, lite = by[(rnd, b, s, c, 'sluice')], by[(rnd, b, s, c, 'lite')]
        a20, l20 = at(rnd, b, s, c, 'sluice', 20), at(rnd, b, s, c, 'lite', 20)
        if not (sluice and lite and a20 and l20):
            continue
        shared = {r['target_mibps'] for r in sluice} & {r['target_mibps'] for r in lite}
        per_round.append(dict(
            a=st.median(r['catchup_mibps'] for r in sluice),
            l=st.median(r['catchup_mibps'] for r in lite),
            a_shared=st.median(r['catchup_mibps'] for r in sluice if r['target_mibps'] in shared),
            l_shared=st.median(r['catchup_mibps'] for r in lite if r['target_mibps'] in shared),
            a20=a20['catchup_mibps'], l20=l20['catchup_mibps']))
    if not per_round:
        continue
    med = lambda k: st.median(x[k] for x in per_round)
    ratios = [x['a'] / x['l'] for x in per_round]
    shared_ratio = st.median(x['a_shared'] / x['l_shared'] for x in per_round)
    cells = [b, s, c, f"{med('a'):.0f}", f"{med('l'):.0f}", f"{st.median(ratios):.2f}×",
             f"{shared_ratio:.2f}×", f"{med('a20'):.0f}", f"{med('l20'):.0f}"]
    if MANY:
        cells.append(' / '.join(f'{x:.2f}' for x in ratios))
    print('| ' + ' | '.join(str(x) for x in cells) + ' |')


def per_gib(r):
    gib = r['written_bytes'] / GIB
    return sum(n for k, n in r['store_write_phase']['requests'].items() if k != 'DELETE') / gib


def bytes_gib(r):
    return r['store_write_phase']['request_bytes'] / r['written_bytes']


if 'ministack' in BACKENDS:
    print("\n### Object-store requests per GiB written (ministack, through the counting proxy)\n")
    print(header(['record', 'class', 'target MiB/s', 'Sluice', 's2 lite', 'ratio',
                  'bytes written per GiB, Sluice / lite']))
    for s in [8192, 1024]:
        for c in ['express', 'standard']:
            for rate in [1, 20, 50]:
                runs = both_at('ministack', s, c, rate)
                if not runs:
                    continue
                wa = st.median(bytes_gib(a) for a, _ in runs)
                wl = st.median(bytes_gib(l) for _, l in runs)
                found = [(per_gib(a), per_gib(l)) for a, l in runs]
                emit(row([s, c, rate], found, lambda a, l: [f'{a:.0f}', f'{l:.0f}'],
                         after=[f'{wa:.2f} / {wl:.2f} GiB']))
