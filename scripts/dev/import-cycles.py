#!/usr/bin/env python3
"""Import cycles between sibling modules of the crate (and between its layers).

An edge A -> B means a file of module A names a path into module B. Both ends are
lifted to the children of their lowest common ancestor, so a file using its parent's
items, or a parent re-exporting a child's, is not a cycle; what is reported are
strongly connected groups of siblings. Prints one line per cycle, exits 1 if any.

    scripts/dev/import-cycles.py [src-dir]
"""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../src")
SRC = os.path.normpath(SRC)


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


files = {}
for root, _, names in os.walk(SRC):
    for n in names:
        if n.endswith(".rs") and n != "main.rs":
            p = os.path.join(root, n)
            files[module_of(p)] = open(p).read()
modules = set(files)


def code_of(text):
    """The production code: without tests and comments (doc links are not imports)."""
    i = text.find("#[cfg(test)]\nmod tests")
    text = text if i < 0 else text[:i]
    return re.sub(r"//[^\n]*", "", text)


def resolve(current, segments):
    """The longest known module a path (as segments) points into."""
    if segments[0] == "crate":
        base, rest = (), segments[1:]
    elif segments[0] == "super":
        base, rest = current, segments
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif segments[0] == "self":
        base, rest = current, segments[1:]
    else:
        return None
    best = None
    for k in range(len(rest) + 1):
        cand = base + tuple(rest[:k])
        if cand in modules:
            best = cand
    return best


def paths(text):
    """Every path a file names: `use` trees expanded, and inline `crate::`/`super::` paths."""
    out = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        out.extend(expand(m.group(1).replace("\n", " ")))
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
        out.append(m.group(1).split("::"))
    return out


def expand(tree, prefix=()):
    tree = tree.strip()
    if "{" not in tree:
        return [list(prefix) + [s for s in tree.split(" as ")[0].strip().split("::") if s]]
    head, _, body = tree.partition("{")
    body = body[: body.rfind("}")]
    head = [s for s in head.strip().rstrip(":").split("::") if s]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p.strip():
            out.extend(expand(p, tuple(prefix) + tuple(head)))
    return out


edges = set()
for mod, text in files.items():
    for segs in paths(code_of(text)):
        target = resolve(mod, segs)
        if target is None or target == mod:
            continue
        i = 0
        while i < min(len(mod), len(target)) and mod[i] == target[i]:
            i += 1
        if i == len(mod) or i == len(target):
            continue  # ancestor and descendant
        edges.add((mod[: i + 1], target[: i + 1]))

graph = {}
for a, b in edges:
    graph.setdefault(a, set()).add(b)

index, low, stack, on, sccs = {}, {}, [], set(), []


def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in graph.get(v, ()):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(comp)


sys.setrecursionlimit(10000)
for v in list(graph):
    if v not in index:
        visit(v)
for comp in sccs:
    print(" <-> ".join(sorted("::".join(m) for m in comp)))
sys.exit(1 if sccs else 0)
