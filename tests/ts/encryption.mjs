// The TypeScript SDK (@s2-dev/streamstore) against Sluice's encrypted streams: append
// and read with the stream's key, unary and in sessions, over both of the SDK's
// transports (fetch: HTTP/1.1 JSON and SSE; s2s: HTTP/2 sessions); without the key the
// SDK gets S2's bad_header, with another key decryption_failed; a key on a plain stream
// is ignored. Run by tests/ts/encryption.sh, which then searches the data for the
// plaintext written here.
//
//   node tests/ts/encryption.mjs <endpoint> <basin>
import assert from "node:assert/strict";
import { AppendInput, AppendRecord, S2 } from "@s2-dev/streamstore";

const [endpoint, basinName] = process.argv.slice(2);
const t0 = Date.now();
const at = (what) => console.log(`encryption.mjs: ${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`);
const s2 = new S2({
  accessToken: process.env.S2_ACCESS_TOKEN || "ignored",
  endpoints: { account: endpoint, basin: endpoint },
});
const KEY = new Uint8Array(32).fill(7);
const OTHER_KEY = new Uint8Array(32).fill(8);

const records = (prefix, from, n) =>
  AppendInput.create(
    Array.from({ length: n }, (_, i) =>
      AppendRecord.string({
        body: `${prefix}-body-${from + i}`,
        headers: [["tag", `${prefix}-header`]],
      }),
    ),
  );

async function rejects(promise, status, code, what) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.status, status, `${what}: ${e}`);
    assert.equal(e.code, code, `${what}: ${e}`);
    return;
  }
  assert.fail(`${what}: succeeded`);
}

async function readBodies(stream, n) {
  const batch = await stream.read({
    start: { from: { seqNum: 0 } },
    stop: { limits: { count: n } },
  });
  return batch.records.map((r) => r.body);
}

// A plain stream first, with the key it ignores; then the basin's cipher for what follows.
await s2.basins.create({ basin: basinName });
const basin = s2.basin(basinName);
await basin.streams.create({ stream: "ts-plain" });
const plain = basin.stream("ts-plain", { encryptionKey: KEY });
await plain.append(records("ts-control", 0, 1));
assert.deepEqual(await readBodies(plain, 1), ["ts-control-body-0"]);
await s2.basins.reconfigure({ basin: basinName, streamCipher: "aes-256-gcm" });

for (const transport of ["fetch", "s2s"]) {
  const name = `ts-secret-${transport}`;
  const prefix = `ts-plaintext-${transport}`;
  const created = await basin.streams.create({ stream: name });
  assert.equal(created.cipher, "aes-256-gcm", JSON.stringify(created));
  const stream = basin.stream(name, { encryptionKey: KEY, forceTransport: transport });

  at(`${transport}: start`);
  await stream.append(records(prefix, 0, 3));
  const session = await stream.appendSession();
  const ticket = await session.submit(records(prefix, 3, 2));
  const ack = await ticket.ack();
  assert.equal(Number(ack.end.seqNum), 5);
  await session.close();
  at(`${transport}: appended`);

  const expected = Array.from({ length: 5 }, (_, i) => `${prefix}-body-${i}`);
  assert.deepEqual(await readBodies(stream, 5), expected);
  const reading = await stream.readSession({
    start: { from: { seqNum: 0 } },
    stop: { limits: { count: 5 } },
  });
  const seen = [];
  for await (const record of reading) {
    assert.deepEqual(record.headers, [["tag", `${prefix}-header`]]);
    seen.push(record.body);
  }
  assert.deepEqual(seen, expected, `${transport}: read session`);
  at(`${transport}: read`);

  const keyless = basin.stream(name, { forceTransport: transport });
  await rejects(keyless.append(records(prefix, 9, 1)), 400, "bad_header", `${transport}: append without key`);
  await rejects(readBodies(keyless, 1), 400, "bad_header", `${transport}: read without key`);
  const wrong = basin.stream(name, { forceTransport: transport }).withEncryptionKey(OTHER_KEY);
  await rejects(readBodies(wrong, 1), 400, "decryption_failed", `${transport}: read with another key`);
  const tail = await stream.checkTail();
  assert.equal(Number(tail.tail.seqNum), 5, `${transport}: nothing appended without the key`);
  console.log(`encryption.mjs: ${transport}: appended and read 5 records with the key; refusals as S2's`);
}
at("done");
// The SDK keeps its HTTP/2 connection open (until the server's idle timeout): end here.
process.exit(0);
