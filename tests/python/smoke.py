"""Smoke test of the Python s2-sdk (PyPI `s2-sdk`, pinned in scripts/install-tools.sh)
against a running Sluice server.

    SLUICE_ENDPOINT=http://127.0.0.1:<port> S2_ACCESS_TOKEN=<root token> python smoke.py

Normally started by tests/python/run.sh, which brings up the server. Prints one
`ok N - ...` line per check and ends with `N passed, M failed`; exits non-zero on any
failure. Every SDK call is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import traceback
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import s2_sdk
from s2_sdk import (
    S2,
    AccessTokenScope,
    AppendInput,
    CommandRecord,
    Endpoints,
    ExactMatch,
    FencingTokenMismatchError,
    OperationGroupPermissions,
    Permission,
    PrefixMatch,
    ReadLimit,
    ReadUnwrittenError,
    Record,
    S2ServerError,
    SeqNum,
    SeqNumMismatchError,
    StreamConfig,
    TailOffset,
    Timeout,
    Timestamping,
    TimestampingMode,
)

STEP_TIMEOUT = float(os.environ.get("SMOKE_STEP_TIMEOUT", "30"))


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    async def run(self, name: str, coro) -> bool:
        """Run one check; a failure is reported and counted, later checks still run
        unless they depend on it (they are skipped by the caller)."""
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(coro, STEP_TIMEOUT)
        except BaseException as e:  # noqa: BLE001 - report everything, incl. timeouts
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            self.failed += 1
            kind = "timed out" if isinstance(e, (asyncio.TimeoutError, TimeoutError)) else "failed"
            print(f"FAIL - {name}: {kind}: {e!r}", flush=True)
            traceback.print_exc(file=sys.stderr)
            return False
        self.passed += 1
        print(f"ok {self.passed} - {name} ({(time.monotonic() - t0) * 1000:.0f} ms)", flush=True)
        return True


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)


def body(i: int, j: int) -> bytes:
    return f"batch-{i}-record-{j}".encode()


# Several batches of different shapes for the append session: sizes, headers, an empty
# body and a larger body.
BATCHES: list[list[Record]] = [
    [Record(body=body(0, 0))],
    [Record(body=body(1, j)) for j in range(3)],
    [Record(body=body(2, j), headers=[(b"k", f"v{j}".encode()), (b"trace", b"")]) for j in range(5)],
    [Record(body=b"")],
    [Record(body=body(4, j) * 100) for j in range(50)],
    [Record(body=bytes(range(256)) * 64)],  # binary, 16 KiB
]


async def main() -> int:
    endpoint = os.environ.get("SLUICE_ENDPOINT")
    if not endpoint:
        print("SLUICE_ENDPOINT is not set (use tests/python/run.sh)", file=sys.stderr)
        return 2
    root_token = os.environ.get("S2_ACCESS_TOKEN")
    if not root_token or root_token == "ignored":
        print("S2_ACCESS_TOKEN must be the server's root token (use tests/python/run.sh)",
              file=sys.stderr)
        return 2
    host = urlsplit(endpoint).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        print(f"refusing non-loopback endpoint {endpoint}", file=sys.stderr)
        return 2

    print(f"# s2-sdk {s2_sdk.__version__} (Python) against {endpoint}", flush=True)
    c = Checks()
    suffix = uuid.uuid4().hex[:8]
    basin_name = f"py-smoke-{suffix}"
    stream_name = "events"

    def client(token: str) -> S2:
        return S2(
            token,
            endpoints=Endpoints(account=endpoint, basin=endpoint),
            timeout=Timeout(request=timedelta(seconds=10)),
        )

    async with client(root_token) as s2:
        basin = s2.basin(basin_name)
        stream = basin.stream(stream_name)
        state: dict = {}

        # ------------------------------------------------------------ control plane
        async def create_basin():
            info = await s2.create_basin(basin_name)
            expect(info.name == basin_name, f"create_basin returned {info}")
            page = await s2.list_basins(prefix=basin_name)
            expect([b.name for b in page.items] == [basin_name], f"list_basins: {page}")

        if not await c.run("create_basin + list_basins(prefix)", create_basin()):
            return finish(c)

        async def create_stream():
            cfg = StreamConfig(
                retention_policy=86400,
                timestamping=Timestamping(mode=TimestampingMode.CLIENT_PREFER),
            )
            info = await basin.create_stream(stream_name, config=cfg)
            expect(info.name == stream_name, f"create_stream returned {info}")
            page = await basin.list_streams()
            expect([s.name for s in page.items] == [stream_name], f"list_streams: {page}")
            got = await basin.get_stream_config(stream_name)
            expect(got.retention_policy == 86400, f"retention_policy: {got}")
            expect(
                got.timestamping is not None and got.timestamping.mode == TimestampingMode.CLIENT_PREFER,
                f"timestamping: {got}",
            )

        if not await c.run("create_stream (retention 1d) + list_streams + get_stream_config", create_stream()):
            return finish(c)

        async def reconfigure():
            new = await basin.reconfigure_stream(stream_name, config=StreamConfig(retention_policy=2 * 86400))
            expect(new.retention_policy == 2 * 86400, f"reconfigure_stream returned {new}")
            got = await basin.get_stream_config(stream_name)
            expect(got.retention_policy == 2 * 86400, f"after reconfigure: {got}")
            expect(got.timestamping.mode == TimestampingMode.CLIENT_PREFER, f"timestamping changed: {got}")

        await c.run("reconfigure_stream retention 2d (other fields kept)", reconfigure())

        async def tail_empty():
            pos = await stream.check_tail()
            expect(pos.seq_num == 0, f"check_tail on an empty stream: {pos}")

        await c.run("check_tail on an empty stream is 0", tail_empty())

        # ------------------------------------------------------------ append session
        async def append_session():
            acks = []
            async with stream.append_session() as session:
                # Submit every batch before awaiting any ack (pipelined).
                tickets = [await session.submit(AppendInput(records=b)) for b in BATCHES]
                for t in tickets:
                    acks.append(await t)
            next_seq = 0
            last_ts = 0
            for i, (batch, ack) in enumerate(zip(BATCHES, acks)):
                expect(ack.start.seq_num == next_seq, f"ack {i} starts at {ack.start.seq_num}, expected {next_seq}")
                expect(
                    ack.end.seq_num - ack.start.seq_num == len(batch),
                    f"ack {i} covers {ack.end.seq_num - ack.start.seq_num} records, batch has {len(batch)}",
                )
                expect(ack.tail.seq_num >= ack.end.seq_num, f"ack {i} tail {ack.tail} before its end {ack.end}")
                expect(ack.start.timestamp >= last_ts, f"ack {i} timestamp went backwards")
                expect(ack.start.timestamp > 0, f"ack {i} has no timestamp")
                last_ts = ack.end.timestamp
                next_seq = ack.end.seq_num
            state["appended"] = [r for b in BATCHES for r in b]
            state["total"] = next_seq
            pos = await stream.check_tail()
            expect(pos.seq_num == next_seq, f"check_tail {pos}, expected {next_seq}")

        if not await c.run(f"append_session: {len(BATCHES)} pipelined batches, acks in order", append_session()):
            return finish(c)
        appended: list[Record] = state["appended"]
        total: int = state["total"]

        def same_records(got, start: int, want: list[Record], what: str) -> None:
            expect(len(got) == len(want), f"{what}: {len(got)} records, expected {len(want)}")
            for k, (g, w) in enumerate(zip(got, want)):
                expect(g.seq_num == start + k, f"{what}: record {k} has seq_num {g.seq_num}, expected {start + k}")
                expect(g.body == w.body, f"{what}: seq_num {g.seq_num} body differs ({g.body[:40]!r} vs {w.body[:40]!r})")
                expect(list(g.headers) == list(w.headers), f"{what}: seq_num {g.seq_num} headers {g.headers} vs {w.headers}")
                expect(g.timestamp > 0, f"{what}: seq_num {g.seq_num} has no timestamp")

        # -------------------------------------------------------------- read session
        async def read_session():
            got = []
            batches = 0
            async with stream.read_session(start=SeqNum(0), limit=ReadLimit(count=total)) as rs:
                async for batch in rs:
                    batches += 1
                    got.extend(batch.records)
            same_records(got, 0, appended, "read_session")

        await c.run("read_session(SeqNum(0), limit=count) returns every record, body and header", read_session())

        async def read_session_mid():
            got = []
            async with stream.read_session(start=SeqNum(2), limit=ReadLimit(count=5)) as rs:
                async for batch in rs:
                    got.extend(batch.records)
            same_records(got, 2, appended[2:7], "read_session from 2")

        await c.run("read_session(SeqNum(2), count=5)", read_session_mid())

        async def read_session_to_tail():
            # Bounded by wait=0 instead of a count: must end at the tail.
            got = []
            async with stream.read_session(start=SeqNum(total - 3), wait=0) as rs:
                async for batch in rs:
                    got.extend(batch.records)
            same_records(got, total - 3, appended[-3:], "read_session wait=0")

        await c.run("read_session(wait=0) ends at the tail", read_session_to_tail())

        # ------------------------------------------------------------------- unary
        async def unary_read():
            b = await stream.read(start=SeqNum(0), limit=ReadLimit(count=4))
            same_records(b.records, 0, appended[:4], "read")
            b = await stream.read(start=TailOffset(2))
            same_records(b.records, total - 2, appended[-2:], "read(TailOffset(2))")
            try:
                await stream.read(start=SeqNum(total + 10))
            except ReadUnwrittenError as e:
                expect(e.tail.seq_num == total, f"ReadUnwrittenError tail {e.tail}, expected {total}")
            else:
                raise AssertionError("read beyond the tail did not raise ReadUnwrittenError")
            # Clamped to the tail, with a 1 s long-poll and nothing appended: empty batch.
            # (With wait=0 this is a 416, like s2-lite: start == tail cannot be served.)
            t0 = time.monotonic()
            b = await stream.read(start=SeqNum(total + 10), clamp_to_tail=True, wait=1)
            waited = time.monotonic() - t0
            expect(b.records == [], f"clamped read returned records: {b.records}")
            expect(0.5 <= waited < 10, f"clamped read with wait=1 returned after {waited:.2f}s")

        await c.run("unary read (SeqNum, TailOffset, beyond tail -> ReadUnwrittenError, clamp + wait=1 long-poll)", unary_read())

        async def unary_append():
            recs = [Record(body=b"unary-1"), Record(body=b"unary-2", headers=[(b"h", b"v")])]
            ack = await stream.append(AppendInput(records=recs, match_seq_num=total))
            expect(ack.start.seq_num == total and ack.end.seq_num == total + 2, f"unary append ack {ack}")
            try:
                await stream.append(AppendInput(records=[Record(body=b"x")], match_seq_num=total))
            except SeqNumMismatchError as e:
                expect(e.expected_seq_num == total + 2, f"SeqNumMismatchError expected_seq_num {e.expected_seq_num}")
            else:
                raise AssertionError("append with a stale match_seq_num did not raise SeqNumMismatchError")
            b = await stream.read(start=SeqNum(total), limit=ReadLimit(count=10))
            same_records(b.records, total, recs, "read after unary append")
            state["total"] = total + 2

        await c.run("unary append (match_seq_num ok, stale -> SeqNumMismatchError)", unary_append())
        total = state["total"]

        async def fencing():
            ack = await stream.append(AppendInput(records=[CommandRecord.fence("py-fence")]))
            expect(ack.end.seq_num == total + 1, f"fence ack {ack}")
            try:
                await stream.append(AppendInput(records=[Record(body=b"x")], fencing_token="wrong"))
            except FencingTokenMismatchError as e:
                expect(e.expected_fencing_token == "py-fence", f"expected_fencing_token {e.expected_fencing_token!r}")
            else:
                raise AssertionError("append with a wrong fencing token did not raise FencingTokenMismatchError")
            ack = await stream.append(AppendInput(records=[Record(body=b"fenced")], fencing_token="py-fence"))
            expect(ack.start.seq_num == total + 1, f"fenced append ack {ack}")
            b = await stream.read(start=SeqNum(total), limit=ReadLimit(count=2))
            expect(b.records[0].is_command_record(), f"fence record not a command record: {b.records[0]}")
            expect(b.records[0].body == b"py-fence", f"fence record body {b.records[0].body!r}")
            expect(b.records[1].body == b"fenced", f"record after fence {b.records[1]}")
            state["total"] = total + 2

        await c.run("fence command record; wrong token -> FencingTokenMismatchError; right token ok", fencing())
        total = state["total"]

        # ---------------------------------------------------------------- producer
        async def producer():
            bodies = [f"produced-{k}".encode() for k in range(20)]
            async with stream.producer(fencing_token="py-fence") as p:
                tickets = [await p.submit(Record(body=b)) for b in bodies]
                acks = [await t for t in tickets]
            seqs = [a.seq_num for a in acks]
            expect(seqs == list(range(total, total + 20)), f"producer seq_nums {seqs}")
            b = await stream.read(start=SeqNum(total), limit=ReadLimit(count=20))
            expect([r.body for r in b.records] == bodies, "producer records read back differ")
            state["total"] = total + 20

        await c.run("producer: 20 records, per-record acks with consecutive seq_nums", producer())
        total = state["total"]

        # ------------------------------------------------------- following session
        async def following():
            tail = (await stream.check_tail()).seq_num
            expect(tail == total, f"check_tail {tail}, expected {total}")
            live = [f"live-{k}".encode() for k in range(3)]
            got: list = []
            async with stream.read_session(start=SeqNum(tail)) as rs:
                caught_up = await rs.caught_up()  # heartbeat at the tail: session is following
                expect(caught_up.seq_num == tail, f"caught_up at {caught_up}, expected {tail}")
                await stream.append(AppendInput(records=[Record(body=live[0])]))
                await stream.append(AppendInput(records=[Record(body=b) for b in live[1:]]))
                async for batch in rs:
                    got.extend(batch.records)
                    if len(got) >= len(live):
                        break
            expect([r.seq_num for r in got] == [tail, tail + 1, tail + 2], f"live seq_nums {[r.seq_num for r in got]}")
            expect([r.body for r in got] == live, f"live bodies {[r.body for r in got]}")
            state["total"] = tail + 3

        await c.run("following read_session receives records appended after it caught up", following())
        total = state["total"]

        async def final_tail():
            pos = await stream.check_tail()
            expect(pos.seq_num == total, f"check_tail {pos}, expected {total}")

        await c.run(f"check_tail == {total} at the end", final_tail())

        # ----------------------------------------------------------- access tokens
        async def scoped_token():
            token_id = f"py-smoke/{suffix}"
            secret = await s2.issue_access_token(
                token_id,
                scope=AccessTokenScope(
                    basins=ExactMatch(basin_name),
                    streams=PrefixMatch("tok/"),
                    op_groups=OperationGroupPermissions(stream=Permission.READ_WRITE),
                ),
            )
            async with client(secret) as scoped:
                mine = scoped.basin(basin_name).stream("tok/s")
                await scoped.basin(basin_name).create_stream("tok/s")
                await mine.append(AppendInput(records=[Record(body=b"scoped")]))
                batch = await mine.read(start=SeqNum(0))
                expect([r.body for r in batch.records] == [b"scoped"], f"scoped read: {batch}")
                try:
                    await scoped.basin(basin_name).stream(stream_name).read(start=SeqNum(0))
                except S2ServerError as e:
                    expect(e.status_code == 403 and e.code == "permission_denied",
                           f"read outside the scope: {e.status_code} {e.code}")
                else:
                    raise AssertionError("a read outside the token's streams succeeded")
                page = await s2.list_access_tokens(prefix="py-smoke/")
                expect([t.id for t in page.items] == [token_id], f"list_access_tokens: {page}")
                await s2.revoke_access_token(token_id)
                try:
                    await mine.check_tail()
                except S2ServerError as e:
                    expect(e.status_code == 401 and e.code == "authn",
                           f"after revoke: {e.status_code} {e.code}")
                else:
                    raise AssertionError("a revoked token still works")

        await c.run("access tokens: a scoped token works in its scope only, until revoked",
                    scoped_token())

        # ----------------------------------------------------------------- cleanup
        async def delete_all():
            await basin.delete_stream(stream_name)
            await s2.delete_basin(basin_name)
            deadline = time.monotonic() + 20
            while True:
                # list_basins, not list_all_basins: the latter hides basins that are
                # only marked as deleting.
                names = [b.name for b in (await s2.list_basins(prefix=basin_name)).items]
                if basin_name not in names:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"basin still listed 20 s after delete_basin: {names}")
                await asyncio.sleep(0.1)
            try:
                await basin.get_stream_config(stream_name)
            except S2ServerError as e:
                expect(e.status_code == 404, f"get_stream_config after delete: {e.status_code} {e.code}")
            else:
                raise AssertionError("stream config still readable after its basin was deleted")

        await c.run("delete_stream + delete_basin (basin disappears from list_basins)", delete_all())

    return finish(c)


def finish(c: Checks) -> int:
    print(f"{c.passed} passed, {c.failed} failed", flush=True)
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
