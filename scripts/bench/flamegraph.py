#!/usr/bin/env python3
"""Folds `perf script` output into stacks and draws them as a flame graph (SVG).

    perf record -F 499 -g -p <pid> -o perf.data -- sleep 10
    perf script -i perf.data | scripts/bench/flamegraph.py --title "..." > out.svg

With --folded FILE it also writes the folded stacks (`frame;frame;... count`), and with
--top N it prints to stderr the N functions with the most samples at the top of a stack
(self) and the share of samples in the kernel. Kernel frames are drawn in orange, the
rest in red-yellow, as Brendan Gregg's flamegraph.pl does; the widths are sample counts.
"""

import argparse
import html
import re
import sys
import zlib
from collections import Counter

FRAME = re.compile(r"^\s*[0-9a-f]+\s+(.+?)(?:\s+\((.*)\))?$")
OFFSET = re.compile(r"\+0x[0-9a-f]+$")


def fold(lines):
    """Counter of stacks (root first, as tuples) from `perf script` text."""
    stacks = Counter()
    frames, comm = [], None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                stacks[tuple([comm] + frames[::-1])] += 1
            frames, comm = [], None
            continue
        if comm is None and not line.startswith(("\t", " ")):
            comm = line.split()[0]
            continue
        m = FRAME.match(line)
        if m:
            name, dso = m.group(1), m.group(2) or ""
            name = OFFSET.sub("", name)
            if name == "[unknown]":
                name = f"[{dso.rsplit('/', 1)[-1]}]" if dso else name
            if "kernel" in dso:
                name += "_[k]"
            frames.append(name)
    if comm is not None:
        stacks[tuple([comm] + frames[::-1])] += 1
    return stacks


def colour(name):
    h = zlib.crc32(name.encode()) & 0xFFFF
    if name.endswith("_[k]"):
        return f"rgb({200 + h % 55},{100 + h % 60},{20 + h % 30})"
    return f"rgb({205 + h % 50},{h % 200},{h % 55})"


def svg(stacks, title, width=1200, row=16):
    total = sum(stacks.values())
    tree = {}
    for stack, n in stacks.items():
        node = tree
        for f in stack:
            entry = node.setdefault(f, [0, {}])
            entry[0] += n
            node = entry[1]
    depth = max((len(s) for s in stacks), default=0)
    height = (depth + 3) * row
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="monospace" font-size="11">',
           f'<rect width="100%" height="100%" fill="#f8f8f8"/>',
           f'<text x="{width / 2}" y="{row}" text-anchor="middle" font-size="14">'
           f'{html.escape(title)} ({total} samples)</text>']
    scale = width / total if total else 0

    def draw(node, x, level):
        for name, (n, children) in sorted(node.items()):
            w = n * scale
            y = height - (level + 1) * row
            if w >= 0.3:
                label = html.escape(name)
                pct = 100 * n / total
                out.append(f'<g><title>{label} ({n} samples, {pct:.2f}%)</title>'
                           f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{row - 1}" '
                           f'fill="{colour(name)}" rx="2"/>')
                chars = int(w / 7)
                if chars >= 3:
                    text = name if len(name) <= chars else name[:chars - 2] + ".."
                    out.append(f'<text x="{x + 2:.2f}" y="{y + row - 4}">{html.escape(text)}</text>')
                out.append("</g>")
                draw(children, x, level + 1)
            x += w

    draw(tree, 0.0, 0)
    out.append("</svg>")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--title", default="flame graph")
    ap.add_argument("--folded", help="also write the folded stacks here")
    ap.add_argument("--top", type=int, default=0, help="print the N hottest self frames")
    args = ap.parse_args()
    stacks = fold(sys.stdin)
    if args.folded:
        with open(args.folded, "w") as f:
            for stack, n in sorted(stacks.items()):
                f.write(";".join(stack) + f" {n}\n")
    sys.stdout.write(svg(stacks, args.title))
    if args.top:
        total = sum(stacks.values()) or 1
        selfs = Counter()
        kernel = 0
        for stack, n in stacks.items():
            selfs[stack[-1]] += n
            if stack[-1].endswith("_[k]"):
                kernel += n
        print(f"{total} samples, {100 * kernel / total:.1f}% in the kernel", file=sys.stderr)
        for name, n in selfs.most_common(args.top):
            print(f"{100 * n / total:6.2f}%  {name}", file=sys.stderr)


if __name__ == "__main__":
    main()
