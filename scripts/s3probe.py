#!/usr/bin/env python3
"""Raw-HTTP behaviour probe for a local S3 server (loopback only).

Produced the facts in scripts/S3_SERVERS.md; rerun it when bumping a server.
Needs requests + botocore, e.g. the python of the moto venv:

  eval "$(scripts/moto.sh start /tmp/m probe-bkt)"
  ~/.cache/sluice-tools/moto-venv/bin/python scripts/s3probe.py "$MOTO_ENDPOINT" probe-bkt signed
  scripts/moto.sh stop /tmp/m

usage: s3probe.py <endpoint> <bucket> <signed|unsigned> [--no-latency] [--race-only]
       (ROUNDS=N sets the number of race rounds for --race-only, default 100)
Use a fresh bucket per run (several checks assume keys do not pre-exist).
"""
import hashlib
import json
import os
import statistics
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

for k, v in dict(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                 AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1").items():
    os.environ[k] = v

import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

EP = sys.argv[1].rstrip("/")
assert EP.startswith("http://127.0.0.1:"), EP
BUCKET = sys.argv[2]
SIGNED = sys.argv[3] == "signed"
DO_LAT = "--no-latency" not in sys.argv
CREDS = Credentials("test", "test")
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

_tls = threading.local()


def sess():
    s = getattr(_tls, "s", None)
    if s is None:
        s = requests.Session()
        s.trust_env = False
        _tls.s = s
    return s


def enc_key(key):
    # like object_store / AWS SDKs: encode everything but unreserved and '/'
    return urllib.parse.quote(key, safe="/-_.~")


def req(method, key=None, headers=None, data=b"", query=None):
    path = "/" + BUCKET + ("/" + enc_key(key) if key is not None else "")
    url = EP + path
    if query:
        url += "?" + urllib.parse.urlencode(sorted(query.items()), quote_via=urllib.parse.quote, safe="-_.~")
    headers = dict(headers or {})
    if SIGNED:
        headers["x-amz-content-sha256"] = hashlib.sha256(data).hexdigest()
        r = AWSRequest(method=method, url=url, headers=headers, data=data)
        S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(r)
        headers = dict(r.headers.items())
    # requests would re-encode '%' etc.: build a PreparedRequest by hand.
    p = requests.Request(method, url, headers=headers, data=data if data else None).prepare()
    p.url = url
    return sess().send(p, timeout=60, allow_redirects=False)


R = {}
RUN = os.urandom(4).hex()


def rec(name, val):
    R[name] = val
    print(f"{name}: {val}", flush=True)


def err_code(r):
    try:
        return ET.fromstring(r.content).findtext("Code")
    except Exception:
        return r.content[:80]


# ------------------------------------------------------------ conditionals
def t_conditionals():
    k = "cond/obj"
    req("DELETE", k)
    r = req("PUT", k, {"If-None-Match": "*"}, b"v1")
    rec("put_inm*_missing", (r.status_code, r.headers.get("ETag")))
    etag1 = r.headers.get("ETag")
    rec("etag_is_quoted", etag1.startswith('"') and etag1.endswith('"'))
    rec("etag_is_md5", etag1.strip('"') == hashlib.md5(b"v1").hexdigest())
    r = req("PUT", k, {"If-None-Match": "*"}, b"v1-again")
    rec("put_inm*_existing", (r.status_code, err_code(r)))
    r = req("GET", k)
    rec("after_failed_create_content_unchanged", r.content == b"v1")
    # equal bytes -> equal etag (other key)
    r2 = req("PUT", "cond/other", {}, b"v1")
    rec("equal_bytes_equal_etag_other_key", r2.headers.get("ETag") == etag1)
    r3 = req("PUT", "cond/obj2", {}, b"v1")
    r3b = req("PUT", "cond/obj2", {}, b"v1")
    rec("rewrite_same_bytes_same_etag", r3.headers.get("ETag") == r3b.headers.get("ETag"))

    r = req("PUT", k, {"If-Match": etag1}, b"v2")
    rec("put_im_match_quoted", (r.status_code, r.headers.get("ETag")))
    etag2 = r.headers.get("ETag")
    r = req("PUT", k, {"If-Match": etag1}, b"v3")
    rec("put_im_stale", (r.status_code, err_code(r)))
    r = req("PUT", k, {"If-Match": etag2.strip('"')}, b"v3")
    rec("put_im_match_unquoted", (r.status_code,))
    etag3 = r.headers.get("ETag")
    r = req("PUT", k, {"If-Match": '"' + "0" * 32 + '"'}, b"v4")
    rec("put_im_mismatch", (r.status_code, err_code(r)))
    r = req("PUT", "cond/missing-key", {"If-Match": etag1}, b"x")
    rec("put_im_missing_key", (r.status_code, err_code(r)))
    r = req("HEAD", "cond/missing-key")
    rec("put_im_missing_key_created_anything", r.status_code != 404)
    r = req("PUT", k, {"If-Match": "*"}, b"v5")
    rec("put_im*_existing", (r.status_code,))
    etag5 = req("HEAD", k).headers.get("ETag")
    r = req("PUT", "cond/missing2", {"If-Match": "*"}, b"v5")
    rec("put_im*_missing", (r.status_code, err_code(r)))
    r = req("PUT", k, {"If-None-Match": etag5}, b"v6")
    rec("put_inm_etag_matching", (r.status_code, err_code(r) if r.content else b""))
    etag5 = req("HEAD", k).headers.get("ETag")  # moto ignores this header and overwrites

    # GET conditionals
    r = req("GET", k, {"If-None-Match": etag5})
    rec("get_inm_current_quoted", (r.status_code, r.headers.get("ETag"), len(r.content)))
    r = req("GET", k, {"If-None-Match": etag5.strip('"')})
    rec("get_inm_current_unquoted", (r.status_code,))
    r = req("GET", k, {"If-None-Match": etag1})
    rec("get_inm_stale", (r.status_code, r.content))
    r = req("GET", k, {"If-Match": etag5})
    rec("get_im_current_quoted", (r.status_code, r.content))
    r = req("GET", k, {"If-Match": etag5.strip('"')})
    rec("get_im_current_unquoted", (r.status_code,))
    r = req("GET", k, {"If-Match": etag1})
    rec("get_im_stale", (r.status_code, err_code(r) if r.content else b""))
    r = req("HEAD", k, {"If-None-Match": etag5})
    rec("head_inm_current", (r.status_code,))
    r = req("HEAD", k, {"If-Match": etag1})
    rec("head_im_stale", (r.status_code,))
    r = req("GET", "cond/nope", {"If-Match": etag1})
    rec("get_im_missing_key", (r.status_code, err_code(r) if r.content else b""))
    r = req("GET", "cond/nope")
    rec("get_missing_key", (r.status_code, err_code(r)))

    # delete & re-create with If-None-Match
    r = req("DELETE", k)
    rec("delete_existing", r.status_code)
    r = req("PUT", k, {"If-None-Match": "*"}, b"again")
    rec("put_inm*_after_delete", (r.status_code,))
    r = req("DELETE", "cond/definitely-missing")
    rec("delete_missing", (r.status_code, r.content[:100]))
    r = req("DELETE", k, {"If-Match": '"' + "0" * 32 + '"'})
    rec("delete_if_match_mismatch", (r.status_code, err_code(r) if r.content else b""))
    # empty body
    r = req("PUT", "cond/empty", {}, b"")
    rec("empty_object_etag", (r.status_code, r.headers.get("ETag"), hashlib.md5(b"").hexdigest()))


# ------------------------------------------------------------------ ranges
def t_ranges():
    body = bytes(range(256)) * 4  # 1024 bytes
    req("PUT", "range/obj", {}, body)

    def g(rng):
        r = req("GET", "range/obj", {"Range": rng})
        if r.status_code == 206:
            cr = r.headers.get("Content-Range")
            return (r.status_code, cr, len(r.content), r.content == _expect(rng, body))
        return (r.status_code, r.headers.get("Content-Range"), len(r.content), err_code(r) if r.status_code >= 400 else "")

    for rng in ["bytes=0-0", "bytes=10-19", "bytes=1000-1023", "bytes=1000-5000", "bytes=1000-",
                "bytes=-24", "bytes=-5000", "bytes=1024-", "bytes=2000-3000", "bytes=0-", "bytes=5-2"]:
        rec(f"range {rng}", g(rng))
    req("PUT", "range/empty", {}, b"")
    r = req("GET", "range/empty", {"Range": "bytes=0-"})
    rec("range on empty object bytes=0-", (r.status_code, r.headers.get("Content-Range"), len(r.content)))


def _expect(rng, body):
    spec = rng.split("=", 1)[1]
    a, b = spec.split("-")
    n = len(body)
    if a == "":
        return body[max(0, n - int(b)):]
    a = int(a)
    e = n - 1 if b == "" else min(int(b), n - 1)
    return body[a:e + 1]


# ------------------------------------------------------------------- keys
SPECIAL = [
    "k/plain", "k/a/b/c", "k/with space", "k/plus+sign", "k/pct%25lit", "k/100%", "k/pct%2Fslash",
    "k/uni-ü-日本-🦀", "k/tilde~x", "k/q?mark", "k/hash#x", "k/amp&eq=x", "k/semi;colon:x",
    "k/dbl//slash", "k/trail/", "k/dot/./x", "k/dotdot/../x", "k/ctl\tTab", "k/quote\"x", "k/lt<gt>",
    "k/star*", "k/back\\slash", "k/caret^pipe|", "k/" + "L" * 898,
]


def t_keys():
    res = {}
    for key in SPECIAL:
        data = ("v:" + key).encode()
        r = req("PUT", key, {}, data)
        g = req("GET", key)
        res[key] = [r.status_code, g.status_code, g.content == data]
    # list
    keys = list_all(prefix="k/")
    listed = set(keys)
    bad = {}
    for key, (ps, gs, ok) in res.items():
        inlist = key in listed
        if not (ps == 200 and gs == 200 and ok and inlist):
            bad[key[:40]] = dict(put=ps, get=gs, content_ok=ok, in_list=inlist)
    rec("keys_tested", len(SPECIAL))
    rec("keys_failing", bad)
    extra = listed - set(SPECIAL)
    rec("list_has_unexpected_keys", [k[:60] for k in extra])
    # encoding-type=url listing
    keys_url = list_all(prefix="k/", encoding_url=True)
    rec("list_encoding_type_url_roundtrip_ok", set(keys_url) == listed)
    rec("list_sorted_by_utf8_bytes", keys == sorted(keys, key=lambda s: s.encode()))


def list_page(**q):
    query = {"list-type": "2"}
    for k, v in q.items():
        query[k.replace("_", "-")] = str(v)
    r = req("GET", None, {}, b"", query)
    assert r.status_code == 200, (r.status_code, r.content[:300])
    root = ET.fromstring(r.content)
    enc = root.findtext(NS + "EncodingType")
    keys = [c.findtext(NS + "Key") for c in root.findall(NS + "Contents")]
    if enc == "url":
        keys = [urllib.parse.unquote(k) for k in keys]
    prefixes = [c.findtext(NS + "Prefix") for c in root.findall(NS + "CommonPrefixes")]
    return dict(keys=keys, prefixes=prefixes, truncated=root.findtext(NS + "IsTruncated"),
                token=root.findtext(NS + "NextContinuationToken"), keycount=root.findtext(NS + "KeyCount"),
                maxkeys=root.findtext(NS + "MaxKeys"), startafter=root.findtext(NS + "StartAfter"), enc=enc)


def list_all(prefix, encoding_url=False, max_keys=1000):
    out, token = [], None
    while True:
        q = dict(prefix=prefix, max_keys=max_keys)
        if encoding_url:
            q["encoding_type"] = "url"
        if token:
            q["continuation_token"] = token
        p = list_page(**q)
        out += p["keys"]
        if p["truncated"] != "true":
            return out
        token = p["token"]


def t_list():
    names = ["l/b", "l/a", "l/a/x", "l/a0", "l/A", "l/a-", "l/é", "l/z", "l/~", "l/a b", "l/a+b", "l/a%b",
             "l/10", "l/9", "l/\u00ff", "l/\u0100", "l/\U0001F980", "l/\uFFFD"]
    for n in names:
        req("PUT", n, {}, b"x")
    p = list_page(prefix="l/")
    rec("list_order", p["keys"])
    rec("list_order_is_utf8_byte_order", p["keys"] == sorted(names, key=lambda s: s.encode()))
    rec("list_order_is_utf16_or_codepoint_order",
        (p["keys"] == sorted(names), p["keys"] == sorted(names, key=lambda s: s.encode("utf-16-be"))))
    p = list_page(prefix="l/", start_after="l/a0")
    rec("start_after l/a0", p["keys"][:4])
    p = list_page(prefix="l/", start_after="l/a")
    rec("start_after l/a (exact existing key excluded?)", p["keys"][:3])
    p = list_page(prefix="l/", start_after="k/zzz")
    rec("start_after before prefix", len(p["keys"]))
    p = list_page(prefix="l/", start_after="m")
    rec("start_after after prefix", len(p["keys"]))
    # pagination
    got, token, pages = [], None, 0
    while True:
        q = dict(prefix="l/", max_keys=5)
        if token:
            q["continuation_token"] = token
        p = list_page(**q)
        pages += 1
        got += p["keys"]
        if pages == 1:
            rec("page1 max-keys=5", dict(n=len(p["keys"]), truncated=p["truncated"], keycount=p["keycount"],
                                          maxkeys=p["maxkeys"], token=(p["token"] or "")[:40]))
        if p["truncated"] != "true":
            break
        token = p["token"]
    rec("pagination max-keys=5", dict(pages=pages, total=len(got), same_as_full=got == list_page(prefix="l/")["keys"]))
    # start-after + continuation token together
    p1 = list_page(prefix="l/", start_after="l/a", max_keys=3)
    p2 = list_page(prefix="l/", start_after="l/a", max_keys=3, continuation_token=p1["token"])
    rec("start_after+continuation", (p1["keys"], p2["keys"]))
    p = list_page(prefix="l/", delimiter="/")
    rec("delimiter", dict(keys=len(p["keys"]), prefixes=p["prefixes"]))
    p = list_page(prefix="l/", max_keys=0)
    rec("max-keys=0", (p["keys"], p["truncated"]))
    r = req("GET", None, {}, b"", {"list-type": "2", "prefix": "l/", "continuation-token": "garbage!!"})
    rec("bad continuation token", (r.status_code, err_code(r)))
    # > 1000 keys? skipped (time); check max-keys cap
    p = list_page(prefix="l/", max_keys=5000)
    rec("max-keys=5000 echoed", p["maxkeys"])


# ------------------------------------------------------------ concurrency
def race(n, fn):
    barrier = threading.Barrier(n)
    out = [None] * n

    def w(i):
        sess()  # establish session first
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as e:
            out[i] = repr(e)

    ts = [threading.Thread(target=w, args=(i,)) for i in range(n)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return out


def t_concurrency(rounds=10):
    summary_im, summary_inm = [], []
    for rnd in range(rounds):
        k = f"race/{RUN}/im-{rnd}"
        e = req("PUT", k, {}, b"base").headers["ETag"]
        # warm connections
        st = race(20, lambda i: req("PUT", k, {"If-Match": e}, f"writer-{i}".encode()).status_code)
        final = req("GET", k).content
        wins = st.count(200)
        summary_im.append((wins, st.count(412), sorted(set(map(str, st)) - {"200", "412"}), final[:12]))
        k2 = f"race/{RUN}/inm-{rnd}"
        st2 = race(20, lambda i: req("PUT", k2, {"If-None-Match": "*"}, f"creator-{i}".encode()).status_code)
        summary_inm.append((st2.count(200), st2.count(412), sorted(set(map(str, st2)) - {"200", "412"})))
    rec("race If-Match x20 (wins,412s,other) per round", [s[:3] for s in summary_im])
    rec("race If-None-Match:* x20 (wins,412s,other) per round", summary_inm)
    rec("race If-Match: rounds with exactly one winner", sum(1 for s in summary_im if s[0] == 1))
    rec("race If-None-Match: rounds with exactly one winner", sum(1 for s in summary_inm if s[0] == 1))


# ---------------------------------------------------------------- latency
def t_latency(n=50):
    def med(f):
        ts = []
        for i in range(n):
            t = time.perf_counter()
            r = f(i)
            ts.append(time.perf_counter() - t)
            assert r.status_code in (200, 206), r.status_code
        return round(statistics.median(ts) * 1000, 2), round(sorted(ts)[int(n * 0.9)] * 1000, 2)

    kb, mb = os.urandom(1024), os.urandom(1 << 20)
    rec("latency PUT 1KiB (median ms, p90 ms)", med(lambda i: req("PUT", f"lat/kb-{i}", {}, kb)))
    rec("latency PUT 1MiB (median ms, p90 ms)", med(lambda i: req("PUT", f"lat/mb-{i}", {}, mb)))
    rec("latency GET 1KiB", med(lambda i: req("GET", f"lat/kb-{i}")))
    rec("latency GET 1MiB", med(lambda i: req("GET", f"lat/mb-{i}")))
    rec("latency LIST (50 keys)", med(lambda i: req("GET", None, {}, b"", {"list-type": "2", "prefix": "lat/kb"})))


def t_race_only():
    t_concurrency(int(os.environ.get("ROUNDS", "100")))


if __name__ == "__main__":
    print(f"== {EP} bucket={BUCKET} signed={SIGNED}")
    if "--race-only" in sys.argv:
        t_race_only(); sys.exit(0)
    tests = [t_conditionals, t_ranges, t_keys, t_list, t_concurrency] + ([t_latency] if DO_LAT else [])
    for t in tests:
        try:
            t()
        except Exception as e:
            import traceback
            traceback.print_exc()
            rec(t.__name__ + " CRASHED", repr(e))
    if os.environ.get("PROBE_JSON"):
        with open(os.environ["PROBE_JSON"], "w") as f:
            json.dump(R, f, indent=1, default=str, ensure_ascii=False)
