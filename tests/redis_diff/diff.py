#!/usr/bin/env python3
"""Differential test of Sluice's Redis-Streams API against a real Redis.

A seeded generator issues a long random sequence of stream operations (all 14 commands,
their options, error cases and bad input) over a handful of keys. With `--via http` (the
default) each operation goes to Sluice through a wrapper endpoint that expresses it or
through one of the two command endpoints (picked at random), and to Redis as the
equivalent raw command (redis-py, RESP3). With `--via resp2` or `--via resp3` it goes to
Sluice's RESP listener (`--sluice-resp-port`) as the same raw command, by redis-py in
that protocol, logged in with `AUTH <plate> <token>` (RESP2) or `HELLO 3 AUTH …`
(RESP3), and to Redis in the same protocol. Every reply is compared after
normalization; the first difference is printed with the command line that replays it,
and the program exits 1.

Normally started by tests/redis_diff/run.sh, which starts redis-server and a Sluice node:

    tests/redis_diff/run.sh local --seeds 1,2,3            # fresh node, local directory
    tests/redis_diff/run.sh ministack --seed 7 --ops 500   # replay a failure
    tests/redis_diff/run.sh self-check --seeds 1,2,3       # no Sluice: validates the harness

Directly (needs redis-py >= 5, and a redis-server started with
`--save '' --appendonly no --stream-node-max-bytes 0`):

    python3 diff.py --sluice http://127.0.0.1:PORT --plate redis-diff-x --redis-port 6390 \
        --seeds 1,2,3 [--ops N] [--token T] [-v]
    python3 diff.py --sluice http://127.0.0.1:PORT --via resp3 --sluice-resp-port RPORT ...
    python3 diff.py --self-check --redis-port 6390 --seeds 1,2 [--corrupt-op 123]

--self-check plays Sluice with a second Redis database (db 1) behind an in-process
adapter that implements the contract's HTTP mapping (wrapper/command request -> Redis
command -> envelope), so a run must show zero differences; --corrupt-op N alters the
adapter's reply to op N, which must be reported. Only loopback URLs are accepted.

Normalizations (both sides alike): ids returned by XADD with `*` or `<ms>-*` become
tokens `<id:N>` by creation order (per key; the generator refers to such entries by
token, translated to each side's real id); idle times (XPENDING extended, XINFO
CONSUMERS idle/inactive), seen/active times and delivery timestamps (XINFO STREAM FULL)
and `radix-tree-nodes` are blanked when they are integers. Everything else, including
the HTTP status (200; errors 400, NOGROUP 404, BUSYGROUP 409), error code (the Redis
error's first word) and exact message, is compared exactly; object key order is ignored
(RESP3 maps and JSON objects), while RESP2's flat key/value arrays keep their order
(compared as the list of keys beside the values).
"""

from __future__ import annotations

import argparse
import copy
import http.client
import ipaddress
import json
import os
import random
import re
import shlex
import socket
import sys
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis
from redis._parsers import _RESP2Parser, _RESP3Parser
from redis.exceptions import ResponseError

ID_RE = re.compile(r"^\d+-\d+$")
LOGICAL_KEYS = ["a", "b", "c", "d"]  # a, b: mostly `*`; c: explicit small ids; d: rare
KEY_WEIGHTS = [36, 30, 24, 10]
GROUPS = ["g1", "g2", "g3"]
CONSUMERS = ["c1", "c2", "c3"]
FIELDS = ["f1", "f2", "f3", "name", "type"]
BLANK = "<blanked>"


# ------------------------------------------------------------------------- Redis side
class ExactErrorParser(_RESP3Parser):
    """redis-py strips a leading `ERR ` (and maps some texts to other classes); keep the
    server's error text exactly as sent."""

    @classmethod
    def parse_error(cls, response):
        return ResponseError(response)


class ExactErrorParser2(_RESP2Parser):
    """The same for RESP2."""

    @classmethod
    def parse_error(cls, response):
        return ResponseError(response)


def redis_client(port: int, db: int = 0, protocol: int = 3, username: str | None = None,
                 password: str | None = None) -> redis.Redis:
    pool = redis.ConnectionPool(
        host="127.0.0.1", port=port, db=db, protocol=protocol, decode_responses=True,
        parser_class=ExactErrorParser if protocol == 3 else ExactErrorParser2,
        socket_timeout=120, username=username, password=password,
    )
    r = redis.Redis(connection_pool=pool, protocol=protocol, decode_responses=True)
    r.response_callbacks.clear()  # raw RESP3 replies, no redis-py reshaping
    return r


def resp_to_json(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, dict):
        return {str(resp_to_json(k)): resp_to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [resp_to_json(x) for x in v]
    if isinstance(v, set):
        return sorted((resp_to_json(x) for x in v), key=json.dumps)
    return v


def redis_call(r: redis.Redis, args: list[str]) -> dict:
    """-> {"ok": True, "result": ...} or {"ok": False, "code", "message"}"""
    try:
        return {"ok": True, "result": resp_to_json(r.execute_command(*args))}
    except ResponseError as e:
        msg = str(e)
        return {"ok": False, "code": msg.split(" ")[0], "message": msg}


def expected_status(reply: dict) -> int:
    if reply["ok"]:
        return 200
    return {"NOGROUP": 404, "BUSYGROUP": 409}.get(reply["code"], 400)


# ----------------------------------------------------------------------- operations
@dataclass(frozen=True)
class Ref:
    """An entry created with an auto id, by token; `prefix` is "" or "(" ."""
    token: str
    prefix: str = ""


@dataclass
class Op:
    args: list            # the Redis command: str | int | bool | Ref
    kind: str             # normalization: plain, xadd, xread, xinfo_stream, xinfo_full, ...
    key: str | None       # physical key the reply's ids belong to (single-key replies)
    wrapper: tuple | None = None    # (method, path, query, body) with Refs, or None
    keyed: bool = False   # args[1] is the key: /{key}/command applies
    route: str = ""
    tags: list = field(default_factory=list)


def argtext(a: Any) -> str:
    if isinstance(a, bool):
        return "true" if a else "false"
    return str(a)


def jsontext(v: Any) -> str:  # the contract: a non-string value is sent as its JSON text
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


class Side:
    """One side's token map: token -> real id, and per key real id -> token."""

    def __init__(self) -> None:
        self.real: dict[str, str] = {}
        self.tok: dict[str, dict[str, str]] = {}

    def resolve(self, v: Any) -> Any:
        if isinstance(v, Ref):
            return v.prefix + self.real.get(v.token, "0-1")
        if isinstance(v, list):
            return [self.resolve(x) for x in v]
        if isinstance(v, tuple):
            return tuple(self.resolve(x) for x in v)
        if isinstance(v, dict):
            return {k: self.resolve(x) for k, x in v.items()}
        return v

    def bind(self, token: str, key: str, real: str) -> None:
        self.real[token] = real
        self.tok.setdefault(key, {})[real] = token

    def ids_to_tokens(self, v: Any, key: str | None) -> Any:
        m = self.tok.get(key or "", {})
        if isinstance(v, str):
            return m.get(v, v) if ID_RE.match(v) else v
        if isinstance(v, list):
            return [self.ids_to_tokens(x, key) for x in v]
        if isinstance(v, dict):
            return {k: self.ids_to_tokens(x, key) for k, x in v.items()}
        return v


def blank(d: Any, k: Any) -> None:
    try:
        v = d[k]
    except (KeyError, IndexError, TypeError):
        return
    if isinstance(v, int) and not isinstance(v, bool):
        d[k] = BLANK


def blank_times(kind: str, res: Any) -> None:
    try:
        if kind == "xpending_ext" and isinstance(res, list):
            for item in res:
                blank(item, 2)
        elif kind == "xinfo_consumers" and isinstance(res, list):
            for c in res:
                blank(c, "idle")
                blank(c, "inactive")
        elif kind == "xinfo_stream" and isinstance(res, dict):
            blank(res, "radix-tree-nodes")
        elif kind == "xinfo_full" and isinstance(res, dict):
            blank(res, "radix-tree-nodes")
            for g in res.get("groups") or []:
                for p in g.get("pending") or []:
                    blank(p, 2)
                for c in g.get("consumers") or []:
                    blank(c, "seen-time")
                    blank(c, "active-time")
                    for p in c.get("pending") or []:
                        blank(p, 1)
    except (AttributeError, TypeError):
        pass  # an unexpected shape: left as it is, the comparison shows it


def kind_of(args: list) -> str:
    """Which normalization a reply gets, from the command itself (also for bad input
    that Redis happens to accept)."""
    cmd = str(args[0]).upper()
    sub = str(args[1]).upper() if len(args) > 1 else ""
    if cmd in ("XREAD", "XREADGROUP"):
        return "xread"
    if cmd == "XPENDING" and len(args) > 3:
        return "xpending_ext"
    if cmd == "XINFO" and sub == "STREAM":
        return "xinfo_full" if any(str(a).upper() == "FULL" for a in args[3:4]) else "xinfo_stream"
    if cmd == "XINFO" and sub == "CONSUMERS":
        return "xinfo_consumers"
    return "plain"


def r2map(flat: Any) -> Any:
    """A RESP2 flat [k1, v1, k2, v2, ...] as a dict, its key order kept under `__order__`."""
    if not isinstance(flat, list) or len(flat) % 2 or not all(isinstance(k, str) for k in flat[0::2]):
        return flat
    d: dict = {"__order__": flat[0::2]}
    d.update(zip(flat[0::2], flat[1::2]))
    return d


def resp2_shape(args: list, res: Any) -> Any:
    """RESP2 replies of the commands whose RESP3 form is a map, reshaped into dicts (key
    order kept) so that ids and times normalize as in RESP3."""
    kind = kind_of(args)
    sub = str(args[1]).upper() if len(args) > 1 else ""
    if kind == "xread" and isinstance(res, list) and all(isinstance(p, list) and len(p) == 2 for p in res):
        d: dict = {"__order__": [p[0] for p in res]}
        d.update((p[0], p[1]) for p in res)
        return d
    if kind == "xinfo_stream":
        return r2map(res)
    if kind == "xinfo_full":
        d = r2map(res)
        if isinstance(d, dict) and isinstance(d.get("groups"), list):
            d["groups"] = [r2map(g) for g in d["groups"]]
            for g in d["groups"]:
                if isinstance(g, dict) and isinstance(g.get("consumers"), list):
                    g["consumers"] = [r2map(c) for c in g["consumers"]]
        return d
    if kind == "xinfo_consumers" or (kind == "plain" and str(args[0]).upper() == "XINFO" and sub == "GROUPS"):
        return [r2map(x) for x in res] if isinstance(res, list) else res
    return res


def normalize(side: Side, op: Op, reply: dict, resp2: bool = False) -> dict:
    out = copy.deepcopy(reply)
    if out.get("ok") is True:
        res = out["result"]
        if resp2:
            res = resp2_shape(op.args, res)
        kind = kind_of(op.args)
        if kind == "xread" and isinstance(res, dict):
            res = {k: (v if k == "__order__" else side.ids_to_tokens(v, k)) for k, v in res.items()}
        else:
            res = side.ids_to_tokens(res, op.key)
        blank_times(kind, res)
        out["result"] = res
    return out


def canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


# ------------------------------------------------------------------------ generator
class Gen:
    """Seeded generator. Its state is updated only from the Redis (reference) replies, so
    a seed yields the same sequence every run, and a prefix of it with a smaller --ops."""

    def __init__(self, seed: int, prefix: str) -> None:
        self.rng = random.Random(seed)
        self.phys = {k: f"{prefix}{k}" for k in LOGICAL_KEYS}
        self.tokens: dict[str, list[str]] = {k: [] for k in LOGICAL_KEYS}
        self.explicit: dict[str, list[str]] = {k: [] for k in LOGICAL_KEYS}
        self.top = {k: (0, 0) for k in LOGICAL_KEYS}  # last explicit id that Redis took
        self.groups: dict[str, set] = {k: set() for k in LOGICAL_KEYS}
        self.delivered: dict[str, list] = {k: [] for k in LOGICAL_KEYS}  # ids XREADGROUP returned
        self.ntok = 0
        self.burst, self.burst_key = 0, "a"

    # -- small pickers
    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq):
        return self.rng.choice(list(seq))

    def lkey(self) -> str:
        return self.rng.choices(LOGICAL_KEYS, KEY_WEIGHTS)[0]

    def case(self, word: str) -> str:
        r = self.rng.random()
        return word.lower() if r < 0.15 else word.capitalize() if r < 0.2 else word

    def group(self, lk: str) -> str:
        if self.groups[lk] and self.chance(0.85):
            return self.pick(sorted(self.groups[lk]))
        return self.pick(GROUPS)

    def consumer(self) -> str:
        return self.rng.choices(CONSUMERS, [5, 4, 2])[0]

    def num(self, n: int) -> Any:
        """A numeric argument; sometimes a JSON number on the command endpoints."""
        return n if self.chance(0.3) else str(n)

    def pending_id(self, lk: str, allow_bad: bool = True) -> Any:
        """An id likely pending in some group (delivered by XREADGROUP), else entry_id."""
        if self.delivered[lk] and self.chance(0.65):
            return self.pick(self.delivered[lk])
        return self.entry_id(lk, allow_bad)

    def trim_id(self, lk: str) -> Any:
        """A MINID threshold that usually keeps most of the stream."""
        toks = self.tokens[lk]
        if toks and self.chance(0.9):
            back = self.rng.choices([10, 80, 150, 250, 400], [1, 2, 4, 4, 4])[0]
            return Ref(toks[max(len(toks) - back, 0)])
        return self.entry_id(lk, allow_bad=False)

    def entry_id(self, lk: str, allow_bad: bool = True) -> Any:
        """An id naming (most likely) an entry of key lk."""
        r = self.rng.random()
        toks, exp = self.tokens[lk], self.explicit[lk]
        if toks and r < 0.55:
            # recent entries are likelier pending / present
            return Ref(toks[-1 - min(int(self.rng.expovariate(0.15)), len(toks) - 1)])
        if exp and r < 0.8:
            return self.pick(exp[-20:])
        if r < 0.9:
            return f"{self.rng.randint(0, 9)}-{self.rng.randint(0, 3)}"
        if allow_bad and r < 0.93:
            return self.pick(["abc", "1-x", "-1", "1-2-3", "18446744073709551616-0", ""])
        return self.pick(["0", "0-0", "0-1", "1"])

    def bound(self, lk: str, low: bool) -> Any:
        r = self.rng.random()
        if r < 0.3:
            return "-" if low else "+"
        if r < 0.35:
            return "+" if low else "-"
        toks = self.tokens[lk]
        if toks and r < 0.7:
            t = self.pick(toks[-40:])
            return Ref(t, "(" if self.chance(0.3) else "")
        if r < 0.9:
            ms = self.rng.randint(0, self.top[lk][0] + 2)
            s = str(ms) if self.chance(0.5) else f"{ms}-{self.rng.randint(0, 3)}"
            return ("(" if self.chance(0.3) else "") + s
        if r < 0.97:
            return self.entry_id(lk, allow_bad=False)
        return self.pick(["(-", "(+", "x", "((1", "-1", "18446744073709551615-18446744073709551615"])

    def count(self, lo: int = 1, hi: int = 12, odd: float = 0.04) -> Any:
        if self.chance(odd):
            return self.pick(["0", "-1", "x", "1.5"])
        return self.rng.randint(lo, hi)

    def values(self) -> list:
        n = self.rng.choices([1, 2, 3], [5, 3, 1])[0]
        out = []
        for _ in range(n):
            f = self.pick(FIELDS)
            r = self.rng.random()
            v: Any = f"v{self.rng.randint(0, 999)}"
            if r < 0.08:
                v = self.rng.randint(-50, 5000)
            elif r < 0.11:
                v = self.chance(0.5)
            elif r < 0.12:
                v = {"a": self.rng.randint(0, 9)}
            elif r < 0.14:
                v = ""
            out.append((f, v))
        return out

    # -- operations
    def next(self) -> Op:
        if self.burst:  # a run of plain XADDs to one key: streams of several 100-entry nodes
            self.burst -= 1
            return self.xadd(self.burst_key)
        if self.chance(0.003):
            self.burst = self.rng.randint(30, 130)
            self.burst_key = self.rng.choices(LOGICAL_KEYS[:3], [3, 2, 1])[0]
        fn = self.rng.choices(
            [self.xadd, self.xlen, self.xrange, self.xread, self.xtrim, self.xdel, self.xinfo,
             self.xgroup, self.xreadgroup, self.xack, self.xpending, self.xclaim,
             self.xautoclaim, self.bad],
            [26, 3, 9, 5, 3, 4, 6, 7, 11, 6, 6, 5, 4, 5])[0]
        return fn()

    def new_token(self) -> str:
        self.ntok += 1
        return f"<id:{self.ntok}>"

    def xadd(self, lk: str | None = None) -> Op:
        bursting = lk is not None
        lk = lk or self.rng.choices(LOGICAL_KEYS, [45, 28, 17, 10])[0]
        k = self.phys[lk]
        opts: list = []
        tags = []
        if self.chance(0.08) and not bursting:
            opts.append(self.case("NOMKSTREAM"))
            tags.append("NOMKSTREAM")
        if self.chance(0.18) and not bursting:
            strat = self.pick(["MAXLEN", "MINID"])
            opts.append(self.case(strat))
            op = self.rng.choices(["", "=", "~"], [3, 2, 4])[0]
            if op:
                opts.append(op)
            if strat == "MAXLEN":
                opts.append(self.num(self.rng.choices([0, 1, 3, 10, 50, 100, 150, 250, 400], [1, 1, 1, 1, 2, 5, 8, 8, 8])[0]))
            else:
                opts.append(self.trim_id(lk) if self.tokens[lk] else str(self.rng.randint(0, 9)))
            tags.append(f"{strat}{op}")
            if (op == "~" and self.chance(0.4)) or self.chance(0.03):
                opts += [self.case("LIMIT"), self.num(self.pick([0, 1, 10, 100, 1000]))]
                tags.append("LIMIT")
        # the id
        r = self.rng.random()
        if lk == "c" and not (self.tokens["c"] and self.chance(0.7)):
            ms, seq = self.top["c"]
            if r < 0.45:
                idv = f"{ms}-{seq + self.rng.randint(1, 3)}" if self.chance(0.5) else f"{ms + self.rng.randint(1, 3)}-{self.rng.randint(0, 2)}"
            elif r < 0.65:
                idv = f"{ms + self.rng.randint(0, 2)}-*"
            elif r < 0.8:
                idv = str(ms + self.rng.randint(1, 2))
            elif r < 0.92:
                idv = self.pick([f"{ms}-{seq}", f"{max(ms - 1, 0)}-9", str(ms), "0-0"])  # below/equal top
            elif r < 0.985:
                idv = "*"
            else:
                idv = self.pick(["abc", "1-", "-", "0-*", "1-2-3"])
        else:
            if r < 0.88:
                idv = "*"
            elif r < 0.93:
                idv = self.pick(["1-1", "5-*", "7", "0-1"])
            elif r < 0.96:
                idv = self.pick(["0-0", "0"])
            elif r < 0.98 and lk == "d":
                idv = "18446744073709551615-18446744073709551615"
            else:
                idv = self.pick(["abc", "*-1", "1-x", "x-*"])
        vals = self.values()
        fields_unique = len({f for f, _ in vals}) == len(vals)
        wrapper = None
        if not opts and fields_unique and self.chance(0.55):
            vals.sort()
            body: dict = {"key": k, "values": dict(vals)}
            if idv != "*" or self.chance(0.5):
                body["id"] = idv
            wrapper = ("POST", "add", None, body)
        flat: list = []
        for f, v in vals:
            # command endpoints: strings, numbers and booleans as such; an object as text
            flat += [f, v if wrapper is None and isinstance(v, (str, int)) else jsontext(v)]
        if self.chance(0.02) and wrapper is None:
            flat = flat[:-1]  # odd number of field/value words
            tags.append("odd")
        auto = idv == "*" or bool(re.fullmatch(r"\d+-\*", idv))
        op = Op([self.case("XADD"), k, *opts, idv, *flat], "xadd", k, wrapper, keyed=True, tags=tags)
        op.meta = (lk, auto, idv)  # type: ignore[attr-defined]
        return op

    def xlen(self) -> Op:
        lk = self.lkey()
        k = self.phys[lk]
        return Op([self.case("XLEN"), k], "plain", k, ("GET", f"length/{q(k)}", None, None), keyed=True)

    def xrange(self) -> Op:
        lk = self.lkey()
        k = self.phys[lk]
        rev = self.chance(0.4)
        lo, hi = self.bound(lk, True), self.bound(lk, False)
        a, b = (hi, lo) if rev else (lo, hi)
        cnt = self.count(0, 15) if self.chance(0.5) else None
        cmd = "XREVRANGE" if rev else "XRANGE"
        args: list = [self.case(cmd), k, a, b]
        if cnt is not None:
            args += [self.case("COUNT"), cnt]
        wrapper = None
        if cnt is None or (isinstance(cnt, int) and cnt >= 1):
            query: dict = {}
            dflt = ("+", "-") if rev else ("-", "+")
            if a != dflt[0] or self.chance(0.5):
                query["start"] = a
            if b != dflt[1] or self.chance(0.5):
                query["end"] = b
            if cnt is not None:
                query["count"] = cnt
            wrapper = ("GET", f"{'reverse' if rev else 'range'}/{q(k)}", query, None)
        return Op(args, "plain", k, wrapper, keyed=True)

    def stream_list(self, group: bool) -> list:
        lks = self.rng.sample(LOGICAL_KEYS, self.rng.choices([1, 2, 3], [5, 3, 1])[0])
        out = []
        for lk in lks:
            r = self.rng.random()
            if group:
                idv = ">" if r < 0.75 else self.pick(["0", "0-0"]) if r < 0.9 else self.entry_id(lk, allow_bad=False)
            else:
                idv = "$" if r < 0.25 else self.pick(["0", "0-0"]) if r < 0.55 else self.entry_id(lk, allow_bad=False)
            out.append((lk, idv))
        return out

    def xread(self) -> Op:
        sl = self.stream_list(False)
        cnt = self.count(1, 10) if self.chance(0.5) else None
        block = None
        if all(i == "$" for _, i in sl) and self.chance(0.5):
            block = self.rng.randint(5, 40)  # nothing is ever appended meanwhile: null
        args: list = [self.case("XREAD")]
        if cnt is not None:
            args += [self.case("COUNT"), cnt]
        if block is not None:
            args += [self.case("BLOCK"), self.num(block)]
        args += [self.case("STREAMS")] + [self.phys[lk] for lk, _ in sl] + [i for _, i in sl]
        wrapper = None
        if cnt is None or (isinstance(cnt, int) and cnt >= 1):
            streams = []
            for lk, i in sl:
                s = {"key": self.phys[lk]}
                if i != "$" or self.chance(0.5):
                    s["id"] = i
                streams.append(s)
            body: dict = {"streams": streams}
            if cnt is not None:
                body["count"] = cnt
            if block is not None:
                body["block_ms"] = block
            wrapper = ("POST", "read", None, body)
        return Op(args, "xread", None, wrapper, tags=["BLOCK"] if block else [])

    def xtrim(self) -> Op:
        lk = self.lkey()
        k = self.phys[lk]
        strat = self.pick(["MAXLEN", "MINID"])
        op = self.rng.choices(["", "=", "~"], [3, 2, 4])[0]
        if strat == "MAXLEN":
            th: Any = self.rng.choices([0, 1, 2, 5, 20, 80, 100, 120, 200, 300, 400], [1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 5])[0]
        else:
            th = self.trim_id(lk)
        args: list = [self.case("XTRIM"), k, self.case(strat)] + ([op] if op else []) + [self.num(th) if isinstance(th, int) else th]
        limit = None
        if (op == "~" and self.chance(0.4)) or self.chance(0.03):
            limit = self.num(self.pick([0, 1, 50, 100, 500]))
            args += [self.case("LIMIT"), limit]
        wrapper = None
        if op != "=" and limit is None:
            body = {"key": k, "strategy": strat.lower(), "threshold": th}
            if op == "~" or self.chance(0.3):
                body["approximate"] = op == "~"
            wrapper = ("POST", "trim", None, body)
        return Op(args, "plain", k, wrapper, keyed=True, tags=[strat + op] + (["LIMIT"] if limit is not None else []))

    def xdel(self) -> Op:
        lk = self.lkey()
        k = self.phys[lk]
        ids = [self.pending_id(lk) if self.chance(0.3) else self.entry_id(lk) for _ in range(self.rng.choices([1, 2, 3], [5, 2, 1])[0])]
        return Op([self.case("XDEL"), k, *ids], "plain", k, ("POST", "delete", None, {"key": k, "ids": ids}), keyed=True)

    def xinfo(self) -> Op:
        lk = self.lkey()
        k = self.phys[lk]
        r = self.rng.random()
        if r < 0.3:
            return Op([self.case("XINFO"), self.case("STREAM"), k], "xinfo_stream", k,
                      ("GET", f"info/{q(k)}", {"section": "stream"} if self.chance(0.5) else None, None), tags=["STREAM"])
        if r < 0.5:
            args: list = [self.case("XINFO"), self.case("STREAM"), k, self.case("FULL")]
            if self.chance(0.6):
                args += [self.case("COUNT"), self.num(self.pick([0, 1, 3, 10, 1000]))]
            return Op(args, "xinfo_full", k, None, tags=["STREAM FULL"])
        if r < 0.7:
            return Op([self.case("XINFO"), self.case("GROUPS"), k], "plain", k,
                      ("GET", f"info/{q(k)}", {"section": "groups"}, None), tags=["GROUPS"])
        g = self.group(lk)
        return Op([self.case("XINFO"), self.case("CONSUMERS"), k, g], "xinfo_consumers", k,
                  ("GET", f"info/{q(k)}", {"section": "consumers", "group": g}, None), tags=["CONSUMERS"])

    def group_start(self, lk: str) -> Any:
        r = self.rng.random()
        if r < 0.35:
            return "$"
        if r < 0.65:
            return self.pick(["0", "0-0"])
        return self.entry_id(lk, allow_bad=self.chance(0.3))

    def xgroup(self) -> Op:
        lk = self.lkey()
        k = self.phys[lk]
        r = self.rng.random()
        if r < 0.4:
            g = self.pick(GROUPS) if self.chance(0.7) else self.group(lk)
            idv = self.group_start(lk)
            mk = self.chance(0.35)
            er = self.pick([-1, 0, 1, 3, 10, 1000, -5]) if self.chance(0.2) else None
            args: list = [self.case("XGROUP"), self.case("CREATE"), k, g, idv]
            if mk:
                args.append(self.case("MKSTREAM"))
            if er is not None:
                args += [self.case("ENTRIESREAD"), self.num(er)]
            wrapper = None
            if er is None:
                body: dict = {"key": k, "group": g}
                if idv != "$" or self.chance(0.5):
                    body["id"] = idv
                if mk or self.chance(0.3):
                    body["mkstream"] = mk
                wrapper = ("POST", "groups/create", None, body)
            op = Op(args, "plain", k, wrapper, tags=["CREATE"] + (["MKSTREAM"] if mk else []) + (["ENTRIESREAD"] if er is not None else []))
            op.meta = ("create", lk, g)  # type: ignore[attr-defined]
            return op
        if r < 0.6:
            args = [self.case("XGROUP"), self.case("SETID"), k, self.group(lk), self.group_start(lk)]
            if self.chance(0.3):
                args += [self.case("ENTRIESREAD"), self.num(self.pick([-1, 0, 2, 5, 1000]))]
            return Op(args, "plain", k, None, tags=["SETID"])
        if r < 0.72:
            g = self.group(lk)
            op = Op([self.case("XGROUP"), self.case("DESTROY"), k, g], "plain", k, None, tags=["DESTROY"])
            op.meta = ("destroy", lk, g)  # type: ignore[attr-defined]
            return op
        sub = self.pick(["CREATECONSUMER", "DELCONSUMER"])
        return Op([self.case("XGROUP"), self.case(sub), k, self.group(lk), self.consumer()], "plain", k, None, tags=[sub])

    def xreadgroup(self) -> Op:
        sl = self.stream_list(True)
        lk0 = sl[0][0]
        g, c = self.group(lk0), self.consumer()
        cnt = self.count(1, 8) if self.chance(0.6) else None
        noack = self.chance(0.12)
        block = self.rng.randint(5, 40) if all(i == ">" for _, i in sl) and self.chance(0.12) else None
        args: list = [self.case("XREADGROUP"), self.case("GROUP"), g, c]
        if cnt is not None:
            args += [self.case("COUNT"), cnt]
        if block is not None:
            args += [self.case("BLOCK"), self.num(block)]
        if noack:
            args.append(self.case("NOACK"))
        args += [self.case("STREAMS")] + [self.phys[lk] for lk, _ in sl] + [i for _, i in sl]
        wrapper = None
        if cnt is None or (isinstance(cnt, int) and cnt >= 1):
            streams = []
            for lk, i in sl:
                s = {"key": self.phys[lk]}
                if i != ">" or self.chance(0.5):
                    s["id"] = i
                streams.append(s)
            body: dict = {"group": g, "consumer": c, "streams": streams}
            if cnt is not None:
                body["count"] = cnt
            if block is not None:
                body["block_ms"] = block
            if noack or self.chance(0.2):
                body["noack"] = noack
            wrapper = ("POST", "groups/read", None, body)
        tags = (["NOACK"] if noack else []) + (["BLOCK"] if block else []) + (["history"] if any(i != ">" for _, i in sl) else [">"])
        return Op(args, "xread", None, wrapper, tags=tags)

    def xack(self) -> Op:
        lk = self.lkey()
        k = self.phys[lk]
        g = self.group(lk)
        ids = [self.pending_id(lk, allow_bad=self.chance(0.3)) for _ in range(self.rng.choices([1, 2, 4], [5, 2, 1])[0])]
        return Op([self.case("XACK"), k, g, *ids], "plain", k, ("POST", "groups/ack", None, {"key": k, "group": g, "ids": ids}), keyed=True)

    def xpending(self) -> Op:
        lk = self.lkey()
        k = self.phys[lk]
        g = self.group(lk)
        if self.chance(0.35):
            return Op([self.case("XPENDING"), k, g], "plain", k,
                      ("GET", f"groups/pending/{q(k)}/{q(g)}", None, None), keyed=True, tags=["summary"])
        idle = self.pick([0, 10_000_000, 10**13]) if self.chance(0.25) else None
        lo, hi = self.bound(lk, True), self.bound(lk, False)
        cnt = self.count(1, 12)
        cons = self.consumer() if self.chance(0.35) else None
        args: list = [self.case("XPENDING"), k, g]
        if idle is not None:
            args += [self.case("IDLE"), self.num(idle)]
        args += [lo, hi, cnt] + ([cons] if cons else [])
        wrapper = None
        if idle is None and isinstance(cnt, int):
            query: dict = {"start": lo}
            if hi != "+" or self.chance(0.5):
                query["end"] = hi
            if cnt != 10 or self.chance(0.5):
                query["count"] = cnt
            if cons:
                query["consumer"] = cons
            wrapper = ("GET", f"groups/pending/{q(k)}/{q(g)}", query, None)
        return Op(args, "xpending_ext", k, wrapper, keyed=True, tags=["extended"] + (["IDLE"] if idle is not None else []))

    def min_idle(self) -> int:
        return self.rng.choices([0, 10_000_000, 10**13], [6, 3, 1])[0]

    def xclaim(self) -> Op:
        lk = self.lkey()
        k = self.phys[lk]
        g, c, mi = self.group(lk), self.consumer(), self.min_idle()
        ids = [self.pending_id(lk, allow_bad=self.chance(0.2)) for _ in range(self.rng.choices([1, 2, 3], [4, 2, 1])[0])]
        opts: list = []
        tags = []
        if self.chance(0.5):
            for o in self.rng.sample(["IDLE", "TIME", "RETRYCOUNT", "FORCE", "JUSTID", "LASTID"], self.rng.randint(1, 3)):
                tags.append(o)
                if o == "IDLE":
                    opts += [self.case(o), self.num(self.pick([0, 50_000_000, 10**9]))]
                elif o == "TIME":
                    opts += [self.case(o), self.num(self.pick([1000, 10**6, 10**14]))]
                elif o == "RETRYCOUNT":
                    opts += [self.case(o), self.num(self.pick([0, 1, 5, 42]))]
                elif o == "LASTID":
                    opts += [self.case(o), self.entry_id(lk, allow_bad=False)]
                else:
                    opts.append(self.case(o))
        wrapper = None
        if not opts:
            wrapper = ("POST", "groups/claim", None, {"key": k, "group": g, "consumer": c, "min_idle_ms": mi, "ids": ids})
        return Op([self.case("XCLAIM"), k, g, c, self.num(mi), *ids, *opts], "plain", k, wrapper, keyed=True, tags=tags)

    def xautoclaim(self) -> Op:
        lk = self.lkey()
        k = self.phys[lk]
        g, c, mi = self.group(lk), self.consumer(), self.min_idle()
        start = self.pick(["0", "0-0", "-"]) if self.chance(0.5) else self.entry_id(lk, allow_bad=self.chance(0.2))
        cnt = self.count(1, 6, odd=0.06) if self.chance(0.6) else None
        justid = self.chance(0.25)
        args: list = [self.case("XAUTOCLAIM"), k, g, c, self.num(mi), start]
        if cnt is not None:
            args += [self.case("COUNT"), cnt]
        if justid:
            args.append(self.case("JUSTID"))
        wrapper = None
        if not justid and (cnt is None or isinstance(cnt, int)):
            body: dict = {"key": k, "group": g, "consumer": c, "min_idle_ms": mi, "start": start}
            if cnt is not None:
                body["count"] = cnt
            wrapper = ("POST", "groups/autoclaim", None, body)
        return Op(args, "plain", k, wrapper, keyed=True, tags=(["COUNT"] if cnt is not None else []) + (["JUSTID"] if justid else []))

    def bad(self) -> Op:
        """Arity errors, unknown options, bad numbers and ids: command endpoints only."""
        lk = self.lkey()
        k = self.phys[lk]
        g, c = self.group(lk), self.consumer()
        cases = [
            ["XADD"], ["XADD", k], ["XADD", k, "*"], ["XADD", k, "*", "f"],
            ["XADD", k, "MAXLEN", "abc", "*", "f", "v"], ["XADD", k, "MAXLEN", "-1", "*", "f", "v"],
            ["XADD", k, "LIMIT", "10", "*", "f", "v"], ["XADD", k, "MAXLEN", "~", "10", "LIMIT", "-1", "*", "f", "v"],
            ["XADD", k, "NOMKSTREAM"], ["XADD", k, "MINID", "abc", "*", "f", "v"], ["XADD", k, "MAXLEN"],
            ["XADD", k, "MAXLEN", "1", "MINID", "1", "*", "f", "v"], ["XADD", k, "FOO", "*", "f", "v"],
            ["XLEN"], ["XLEN", k, "extra"],
            ["XRANGE", k], ["XRANGE", k, "-"], ["XRANGE", k, "-", "+", "COUNT"], ["XRANGE", k, "-", "+", "COUNT", "x"],
            ["XRANGE", k, "-", "+", "FOO", "1"], ["XRANGE", k, "x", "+"], ["XREVRANGE", k, "+"],
            ["XREVRANGE", k, "+", "-", "COUNT", "1", "2"],
            ["XREAD"], ["XREAD", "STREAMS"], ["XREAD", "STREAMS", k], ["XREAD", "COUNT", "x", "STREAMS", k, "0"],
            ["XREAD", "BLOCK", "-1", "STREAMS", k, "0"], ["XREAD", "BLOCK", "x", "STREAMS", k, "0"],
            ["XREAD", "FOO", "STREAMS", k, "0"], ["XREAD", "STREAMS", k, "abc"], ["XREAD", "STREAMS", k, ">"],
            ["XREAD", "STREAMS", k, "0", "0"], ["XREAD", "COUNT", "1"],
            ["XTRIM", k], ["XTRIM", k, "FOO", "1"], ["XTRIM", k, "MAXLEN"], ["XTRIM", k, "MAXLEN", "-5"],
            ["XTRIM", k, "MINID", "abc"], ["XTRIM", k, "MAXLEN", "=", "1", "LIMIT", "5"],
            ["XTRIM", k, "MAXLEN", "1", "MINID", "1"], ["XTRIM", k, "MAXLEN", "~", "1", "LIMIT", "x"],
            ["XDEL", k], ["XDEL", k, "abc"], ["XDEL"], ["XDEL", k, "1-1", "x"],
            ["XINFO"], ["XINFO", "FOO"], ["XINFO", "STREAM"], ["XINFO", "STREAM", k, "FULL", "COUNT", "x"],
            ["XINFO", "STREAM", k, "FOO"], ["XINFO", "GROUPS"], ["XINFO", "CONSUMERS", k],
            ["XINFO", "STREAM", k, "FULL", "COUNT"], ["XINFO", "GROUPS", k, "extra"],
            ["XGROUP"], ["XGROUP", "FOO"], ["XGROUP", "CREATE", k], ["XGROUP", "CREATE", k, g, "abc"],
            ["XGROUP", "CREATE", k, g, "$", "FOO"], ["XGROUP", "SETID", k, g], ["XGROUP", "DESTROY", k],
            ["XGROUP", "CREATE", k, g, "$", "ENTRIESREAD", "x"], ["XGROUP", "CREATECONSUMER", k, g],
            ["XGROUP", "DELCONSUMER", k, g, c, "extra"], ["XGROUP", "SETID", k, g, "$", "ENTRIESREAD"],
            ["XREADGROUP"], ["XREADGROUP", "GROUP", g], ["XREADGROUP", "GROUP", g, c, "STREAMS", k],
            ["XREADGROUP", "STREAMS", k, ">"], ["XREADGROUP", "GROUP", g, c, "COUNT", "x", "STREAMS", k, ">"],
            ["XREADGROUP", "GROUP", g, c, "STREAMS", k, "$"], ["XREADGROUP", "GROUP", g, c, "FOO", "STREAMS", k, ">"],
            ["XREADGROUP", "GROUP", g, c, "STREAMS", k, "abc"],
            ["XACK", k, g], ["XACK", k, g, "abc"], ["XACK", k],
            ["XPENDING", k], ["XPENDING", k, g, "-", "+"], ["XPENDING", k, g, "-", "+", "x"],
            ["XPENDING", k, g, "IDLE", "x", "-", "+", "1"], ["XPENDING", k, g, "abc", "+", "1"],
            ["XPENDING", k, g, "-", "+", "1", c, "extra"], ["XPENDING", k, g, "IDLE", "10"],
            ["XCLAIM", k, g, c, "x", "1-1"], ["XCLAIM", k, g, c, "0"], ["XCLAIM", k, g, c, "0", "abc"],
            ["XCLAIM", k, g, c, "0", "1-1", "IDLE", "x"], ["XCLAIM", k, g, c, "0", "1-1", "RETRYCOUNT", "-1"],
            ["XCLAIM", k, g, c, "0", "1-1", "FOO"], ["XCLAIM", k, g, c, "0", "1-1", "LASTID", "abc"],
            ["XCLAIM", k, g, c, "-5", "1-1"], ["XCLAIM", k, g, c, "0", "1-1", "TIME", "x"],
            ["XAUTOCLAIM", k, g, c, "0"], ["XAUTOCLAIM", k, g, c, "0", "0", "COUNT", "0"],
            ["XAUTOCLAIM", k, g, c, "x", "0"], ["XAUTOCLAIM", k, g, c, "0", "abc"], ["XAUTOCLAIM", k, g, c, "0", "0", "FOO"],
            ["XAUTOCLAIM", k, g, c, "-1", "0"], ["XAUTOCLAIM", k, g, c, "0", "0", "COUNT"],
        ]
        args = list(self.pick(cases))
        args[0] = self.case(args[0])
        keyed = len(args) > 1 and args[1] == k
        return Op(args, "plain", k, None, keyed=keyed, tags=["bad:" + args[0].upper()])

    # -- state from the reference replies
    def observe(self, op: Op, ref: dict, side: Side) -> None:
        meta = getattr(op, "meta", None)
        if op.kind == "xadd" and ref["ok"] and isinstance(ref["result"], str):
            lk, auto, _ = meta
            if auto:
                self.tokens[lk].append(op.token)  # type: ignore[attr-defined]
            else:
                self.explicit[lk].append(ref["result"])
            ms, seq = (int(x) for x in ref["result"].split("-"))
            if ms < 10**12:
                self.top[lk] = (ms, seq)
        elif meta and meta[0] == "create" and ref["ok"]:
            self.groups[meta[1]].add(meta[2])
        elif meta and meta[0] == "destroy" and ref["ok"] and ref["result"] == 1:
            self.groups[meta[1]].discard(meta[2])
        elif op.kind == "xread" and op.args[0].upper() == "XREADGROUP" and ref["ok"] and isinstance(ref["result"], dict):
            # remember what was delivered: XACK / XCLAIM / XPENDING then name pending entries
            by_phys = {v: k for k, v in self.phys.items()}
            for k, entries in ref["result"].items():
                lk = by_phys.get(k)
                if lk is None or not isinstance(entries, list):
                    continue
                for e in entries:
                    if isinstance(e, list) and e and isinstance(e[0], str):
                        t = side.tok.get(k, {}).get(e[0])
                        self.delivered[lk].append(Ref(t) if t else e[0])
                del self.delivered[lk][:-60]


def q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


# ------------------------------------------------------------------- Sluice requests
def build_request(op: Op, route: str, plate: str, side: Side, rng: random.Random) -> tuple:
    """-> (method, path-with-query, json body or None)"""
    base = f"/{q(plate)}/streams"
    if route == "wrapper":
        method, path, query, body = side.resolve(op.wrapper)
        url = f"{base}/{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: argtext(v) for k, v in query.items()}, quote_via=urllib.parse.quote)
        return method, url, body
    args = side.resolve(op.args)
    # the command endpoints take strings or JSON numbers/booleans: ints stay numbers
    # where the generator made them ones, everything else is sent as a string
    jargs = [a if isinstance(a, (int, bool)) else str(a) for a in args[1:]]
    if route == "keycommand":
        body: dict = {"command": args[0]}
        if len(jargs) > 1 or rng.random() < 0.7:
            body["args"] = jargs[1:]
        return "POST", f"{base}/{q(str(args[1]))}/command", body
    body = {"command": args[0]}
    if jargs or rng.random() < 0.5:
        body["args"] = jargs
    return "POST", f"{base}/command", body


class HttpSluice:
    def __init__(self, url: str, token: str | None) -> None:
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            sys.exit(f"redis-diff: --sluice must be an http:// URL, got {url!r}")
        host = u.hostname
        try:
            loop = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loop = host == "localhost"
        if not loop:
            sys.exit(f"redis-diff: refusing non-loopback Sluice address {host!r}")
        self.host, self.port = host, u.port or 80
        self.token = token or "redis-diff"
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any) -> tuple[int, Any, str]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            fresh = self.conn is None
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=90)
                self.conn.connect()
                self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                text = resp.read().decode("utf-8", "replace")
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if fresh or attempt:
                    raise
                print("redis-diff: warning: an idle keep-alive connection was closed; request resent", file=sys.stderr)
        try:
            return resp.status, json.loads(text), text
        except ValueError:
            return resp.status, None, text


class SelfCheckSluice:
    """Plays Sluice: the contract's HTTP mapping, in process, onto a second Redis db."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self.corrupt = False

    def request(self, method: str, path: str, body: Any) -> tuple[int, Any, str]:
        u = urllib.parse.urlsplit(path)
        parts = [urllib.parse.unquote(p) for p in u.path.split("/")[1:]]
        qs = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        body = None if body is None else json.loads(json.dumps(body))
        assert parts[1] == "streams", path
        rest = parts[2:]
        args = self.command(method, rest, qs, body)
        reply = redis_call(self.r, [argtext(a) for a in args])
        status = expected_status(reply)
        if reply["ok"]:
            env: dict = {"ok": True, "data": {"result": reply["result"]}}
        else:
            env = {"ok": False, "error": {"code": reply["code"], "message": reply["message"]}}
        if self.corrupt:
            self.corrupt = False
            env = corrupt(env)
        return status, env, json.dumps(env)

    @staticmethod
    def command(method: str, rest: list[str], qs: dict, b: Any) -> list:
        tail = "/".join(rest)
        if method == "POST" and tail == "command":
            return [b["command"], *b.get("args", [])]
        if method == "POST" and len(rest) == 2 and rest[1] == "command":
            return [b["command"], rest[0], *b.get("args", [])]
        if method == "POST" and tail == "add":
            flat = []
            for f, v in sorted(b["values"].items()):
                flat += [f, jsontext(v)]
            return ["XADD", b["key"], b.get("id", "*"), *flat]
        if method == "GET" and rest[0] == "length":
            return ["XLEN", rest[1]]
        if method == "GET" and rest[0] in ("range", "reverse"):
            fwd = rest[0] == "range"
            out = ["XRANGE" if fwd else "XREVRANGE", rest[1], qs.get("start", "-" if fwd else "+"),
                   qs.get("end", "+" if fwd else "-")]
            return out + (["COUNT", qs["count"]] if "count" in qs else [])
        if method == "POST" and tail in ("read", "groups/read"):
            out = ["XREAD"] if tail == "read" else ["XREADGROUP", "GROUP", b["group"], b["consumer"]]
            if "count" in b:
                out += ["COUNT", b["count"]]
            if "block_ms" in b:
                out += ["BLOCK", b["block_ms"]]
            if b.get("noack"):
                out.append("NOACK")
            dflt = "$" if tail == "read" else ">"
            return out + ["STREAMS"] + [s["key"] for s in b["streams"]] + [s.get("id", dflt) for s in b["streams"]]
        if method == "POST" and tail == "trim":
            return ["XTRIM", b["key"], b["strategy"].upper()] + (["~"] if b.get("approximate") else []) + [b["threshold"]]
        if method == "POST" and tail == "delete":
            return ["XDEL", b["key"], *b["ids"]]
        if method == "GET" and rest[0] == "info":
            sec = qs.get("section", "stream")
            return ["XINFO", sec.upper(), rest[1]] + ([qs["group"]] if sec == "consumers" else [])
        if method == "POST" and tail == "groups/create":
            return ["XGROUP", "CREATE", b["key"], b["group"], b.get("id", "$")] + (["MKSTREAM"] if b.get("mkstream") else [])
        if method == "POST" and tail == "groups/ack":
            return ["XACK", b["key"], b["group"], *b["ids"]]
        if method == "GET" and rest[:2] == ["groups", "pending"]:
            out = ["XPENDING", rest[2], rest[3]]
            if "start" in qs:
                out += [qs["start"], qs.get("end", "+"), qs.get("count", "10")] + ([qs["consumer"]] if "consumer" in qs else [])
            return out
        if method == "POST" and tail == "groups/claim":
            return ["XCLAIM", b["key"], b["group"], b["consumer"], b["min_idle_ms"], *b["ids"]]
        if method == "POST" and tail == "groups/autoclaim":
            return ["XAUTOCLAIM", b["key"], b["group"], b["consumer"], b["min_idle_ms"], b["start"]] + (
                ["COUNT", b["count"]] if "count" in b else [])
        raise AssertionError(f"self-check adapter: no route for {method} {rest}")


def corrupt(env: dict) -> dict:
    env = copy.deepcopy(env)
    if not env["ok"]:
        env["error"]["message"] += "!"
        return env
    res = env["data"]["result"]
    if isinstance(res, list):
        res.append("corrupt")
    elif isinstance(res, dict):
        res["corrupt"] = 1
    elif isinstance(res, int):
        res += 1
    elif isinstance(res, str):
        res += "x"
    else:
        res = "corrupt"
    env["data"]["result"] = res
    return env


class RespSluice:
    """Sluice's RESP listener, through redis-py in RESP2 or RESP3, logged in to the plate."""

    def __init__(self, port: int, protocol: int, plate: str, token: str | None) -> None:
        self.r = redis_client(port, 0, protocol, username=plate, password=token or "redis-diff")

    def call(self, args: list[str]) -> dict:
        return redis_call(self.r, args)


def sluice_reply(status: int, env: Any, text: str) -> dict:
    """Sluice's envelope -> the same shape as redis_call's, plus the HTTP status."""
    if isinstance(env, dict) and env.get("ok") is True and isinstance(env.get("data"), dict) and "result" in env["data"] and len(env) == 2:
        return {"status": status, "ok": True, "result": env["data"]["result"]}
    if isinstance(env, dict) and env.get("ok") is False and isinstance(env.get("error"), dict):
        e = env["error"]
        return {"status": status, "ok": False, "code": e.get("code"), "message": e.get("message")}
    return {"status": status, "malformed": text[:2000]}


# ------------------------------------------------------------------------------ main
def ensure_plate(sl: HttpSluice, plate: str) -> None:
    status, env, text = sl.request("POST", "/v1/basins", {"basin": plate})
    if status not in (200, 201, 409):
        sys.exit(f"redis-diff: creating basin {plate!r}: HTTP {status}: {text[:500]}")
    deadline = time.monotonic() + 20
    while True:  # usable as a plate?
        status, env, text = sl.request("GET", f"/{q(plate)}/streams/length/redis-diff-probe", None)
        if isinstance(env, dict) and "ok" in env and not (status == 404 and (env.get("error") or {}).get("code") == "not_found"):
            return  # answered in the envelope, and not "no such plate"
        if time.monotonic() > deadline:
            sys.exit(f"redis-diff: plate {plate!r} not usable 20 s after creating it: HTTP {status}: {text[:500]}")
        time.sleep(0.2)


def replay_line(args, seed: int, ops: int) -> str:
    prefix = os.environ.get("REDIS_DIFF_REPLAY")
    if prefix:
        return f"{prefix} --seed {seed} --ops {ops}"
    parts = [sys.executable, os.path.abspath(__file__)]
    if args.self_check:
        parts += ["--self-check"]
    else:
        parts += ["--sluice", args.sluice, "--plate", args.plate]
        if args.via != "http":
            parts += ["--via", args.via, "--sluice-resp-port", str(args.sluice_resp_port)]
    parts += ["--redis-port", str(args.redis_port), "--seed", str(seed), "--ops", str(ops)]
    return " ".join(shlex.quote(p) for p in parts)


def show(v: Any) -> str:
    s = json.dumps(v, sort_keys=True, ensure_ascii=False)
    return s if len(s) < 6000 else s[:6000] + f"... ({len(s)} chars)"


def run_seed(args, seed: int, ref_r: redis.Redis, sl, stats: Counter, resp: Any = None) -> bool:
    ref_r.execute_command("FLUSHALL")
    prefix = args.key_prefix if args.key_prefix is not None else f"s{seed}-{os.urandom(3).hex()}-"
    gen = Gen(seed, prefix)
    route_rng = random.Random(f"routes-{seed}")
    rside, sside = Side(), Side()
    t0 = time.monotonic()
    diffs = 0
    for i in range(args.ops):
        op = gen.next()
        routes = ["command"] + (["keycommand"] if op.keyed else []) + (["wrapper"] * 3 if op.wrapper else [])
        op.route = route_rng.choice(routes)
        if args.via != "http":
            op.route = args.via
        if op.kind == "xadd" and op.meta[1]:  # type: ignore[attr-defined]
            op.token = gen.new_token()  # type: ignore[attr-defined]
        rargs = [argtext(a) for a in rside.resolve(op.args)]
        ref = redis_call(ref_r, rargs)
        if args.via == "http":
            method, url, body = build_request(op, op.route, args.plate, sside, route_rng)
            if args.self_check and args.corrupt_op == i:
                sl.corrupt = True
            status, env, text = sl.request(method, url, body)
            got = sluice_reply(status, env, text)
        else:
            method, url, body = "RESP", args.via, [argtext(a) for a in sside.resolve(op.args)]
            got = resp.call(body)
            status, text = 0, json.dumps(got)
            got["status"] = expected_status(got)
        if op.kind == "xadd" and op.meta[1]:  # type: ignore[attr-defined]
            if ref["ok"] and isinstance(ref["result"], str):
                rside.bind(op.token, op.key, ref["result"])  # type: ignore[attr-defined]
            if got.get("ok") is True and isinstance(got.get("result"), str):
                sside.bind(op.token, op.key, got["result"])  # type: ignore[attr-defined]
        if os.environ.get("REDIS_DIFF_TRACE") and getattr(op, "key", None) and args.via == "http":
            rk = rside.resolve([op.key])[0] if hasattr(rside, "resolve") else op.key
            rl = redis_call(ref_r, ["XLEN", argtext(rk)])
            _, senv, stext = sl.request("POST", f"/{args.plate}/streams/command", {"command": "XLEN", "args": [argtext(rk)]})
            print(f"trace {i}: {' '.join(map(str, rargs))[:160]} -> redis xlen {rl.get('result')} sluice {senv}")
        resp2 = args.via == "resp2"
        want = normalize(rside, op, ref, resp2)
        want["status"] = expected_status(ref)
        have = normalize(sside, op, got, resp2) if "malformed" not in got else got
        cmd = op.args[0].upper()
        stats[cmd] += 1
        stats[f"{cmd} via {op.route}"] += 1
        stats["errors" if not ref["ok"] else "ok"] += 1
        for t in op.tags:
            stats[f"{cmd} {t}"] += 1
        if not ref["ok"]:
            stats[f"error {ref['code']}"] += 1
        elif ref["result"] not in (None, [], {}, 0, [None, [], []], ["0-0", [], []]):
            stats[f"{cmd} non-empty"] += 1
            if isinstance(ref["result"], dict) and isinstance(ref["result"].get("radix-tree-keys"), int):
                stats["max radix-tree-keys"] = max(stats["max radix-tree-keys"], ref["result"]["radix-tree-keys"])
        if canon(want) != canon(have):
            diffs += 1
            print(f"redis-diff: DIFFERENCE at seed {seed}, op {i} (of {args.ops})", flush=True)
            print(f"  redis command : {' '.join(shlex.quote(a) for a in rargs)}")
            print(f"  sluice request: {method} {url} {json.dumps(body) if body is not None else ''}")
            print(f"  redis reply   : {show(want)}")
            print(f"  sluice reply  : {show(have)}")
            print(f"  (raw) redis   : {show(ref)}")
            print(f"  (raw) sluice  : HTTP {status} {text[:3000]}")
            print(f"  replay        : {replay_line(args, seed, i + 1)}", flush=True)
            return False
        if args.verbose >= 2:
            print(f"  {i}: {' '.join(rargs)[:160]} -> {show(want)[:160]}")
        seen = dict(ref, result=resp2_shape(op.args, ref["result"])) if resp2 and ref["ok"] else ref
        gen.observe(op, seen, rside)
    dt = time.monotonic() - t0
    if args.verbose:
        for lk, k in gen.phys.items():
            info = redis_call(ref_r, ["XINFO", "STREAM", k])
            if info["ok"]:
                r = info["result"]
                print(f"redis-diff:   key {lk}: length {r['length']}, radix-tree-keys {r['radix-tree-keys']}, "
                      f"entries-added {r['entries-added']}, groups {r['groups']}")
    print(f"redis-diff: seed {seed}: {args.ops} ops, {diffs} differences ({dt:.1f}s, keys {prefix}*)", flush=True)
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sluice", help="a running Sluice node, http://127.0.0.1:PORT")
    p.add_argument("--plate", default=None, help="plate (basin) to create and use (default redis-diff-<random>)")
    p.add_argument("--token", default=os.environ.get("SLUICE_TOKEN"), help="access token (default: any)")
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--seed", type=int, action="append", default=[])
    p.add_argument("--seeds", default="", help="comma-separated seeds")
    p.add_argument("--ops", type=int, default=int(os.environ.get("REDIS_DIFF_OPS", "3000")))
    p.add_argument("--key-prefix", default=None, help="key name prefix (default s<seed>-<random>-)")
    p.add_argument("--via", choices=["http", "resp2", "resp3"], default="http",
                   help="how commands reach Sluice: the plate HTTP API, or its RESP listener in RESP2/RESP3")
    p.add_argument("--sluice-resp-port", type=int, default=None, help="Sluice's RESP port (--via resp2|resp3)")
    p.add_argument("--self-check", action="store_true", help="play Sluice with Redis db 1 (validates the harness)")
    p.add_argument("--corrupt-op", type=int, default=None, help="self-check: corrupt the reply to this op")
    p.add_argument("-v", "--verbose", action="count", default=0)
    args = p.parse_args()
    seeds = list(args.seed) + [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds:
        seeds = [1]
    if args.plate is None:
        args.plate = f"redis-diff-{os.urandom(4).hex()}"
    if args.via != "http" and (args.self_check or args.sluice_resp_port is None):
        p.error("--via resp2|resp3 needs --sluice-resp-port (and no --self-check)")
    ref_r = redis_client(args.redis_port, 0, 2 if args.via == "resp2" else 3)
    ref_r.execute_command("PING")
    if args.self_check:
        sl: Any = SelfCheckSluice(redis_client(args.redis_port, 1))
    else:
        if not args.sluice:
            p.error("--sluice URL is required (or --self-check)")
        sl = HttpSluice(args.sluice, args.token)
        ensure_plate(sl, args.plate)
    resp = None
    if args.via != "http":
        proto = 2 if args.via == "resp2" else 3
        resp = RespSluice(args.sluice_resp_port, proto, args.plate, args.token)
        hello = resp.r.execute_command("HELLO")
        if (hello.get("proto") if isinstance(hello, dict) else r2map(hello).get("proto")) != proto:
            sys.exit(f"redis-diff: Sluice's RESP listener did not switch to RESP{proto}: {hello!r}")
    info = redis.Redis(host="127.0.0.1", port=args.redis_port, protocol=3, decode_responses=True).info("server")
    ver = info.get("redis_version", "?") if isinstance(info, dict) else re.search(r"redis_version:(\S+)", str(info)).group(1)
    cfg = ref_r.execute_command("CONFIG", "GET", "stream-node-max-*")
    print(f"redis-diff: Redis {ver} on 127.0.0.1:{args.redis_port} {cfg}; "
          f"{'self-check (Redis db 1 as Sluice)' if args.self_check else 'Sluice ' + args.sluice + ' plate ' + args.plate}"
          f" via {args.via}{'' if args.via == 'http' else ' on port ' + str(args.sluice_resp_port)}; "
          f"seeds {seeds}, {args.ops} ops each", flush=True)
    passed = failed = 0
    stats: Counter = Counter()
    for seed in seeds:
        if run_seed(args, seed, ref_r, sl, stats, resp):
            passed += 1
        else:
            failed += 1
            break
    if args.verbose:
        print("redis-diff: coverage: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
