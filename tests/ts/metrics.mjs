// The TypeScript SDK's metrics calls (`s2.metrics.account/basin/stream`) against two
// Sluice nodes on one bucket, after a known workload (tests/metrics/run.sh): every figure
// must match it, whichever node answers.
//
//   node tests/ts/metrics.mjs <sdk node_modules> <endpoint A> <endpoint B> <expected JSON>
//
// The expected JSON: {basin, stream, appendBytes, readBytes, appendOps: [min, max],
// readOps: [min, max]} (operations of sessions are per minute, so a session that spans a
// minute's end counts twice).
import { pathToFileURL } from "node:url";
import assert from "node:assert/strict";

const [modules, endpointA, endpointB, expectedJson] = process.argv.slice(2);
const want = JSON.parse(expectedJson);
const { S2 } = await import(
  pathToFileURL(`${modules}/@s2-dev/streamstore/dist/esm/index.js`).href
);

const client = (endpoint) =>
  new S2({
    accessToken: process.env.S2_ACCESS_TOKEN || "ignored",
    endpoints: { account: endpoint, basin: endpoint },
  });
const [a, b] = [client(endpointA), client(endpointB)];

const hourAgo = Date.now() - 3600_000;
const range = () => ({ start: hourAgo, end: Date.now() + 60_000 });

/** Each named series' total (accumulations), last value (gauges) or labels. */
function byName(response) {
  const out = {};
  for (const m of response.values) {
    if (m.accumulation) {
      assert.ok(m.accumulation.values.every(([t]) => t instanceof Date));
      out[m.accumulation.name] = m.accumulation.values.reduce((s, [, v]) => s + v, 0);
    } else if (m.gauge) {
      const v = m.gauge.values;
      assert.equal(m.gauge.unit, "bytes");
      out[m.gauge.name] = v.length ? v[v.length - 1][1] : 0;
    } else if (m.label) {
      out[m.label.name] = m.label.values;
    } else if (m.scalar) {
      out[m.scalar.name] = m.scalar.value;
    }
  }
  return out;
}

async function figures() {
  const { basin, stream } = want;
  const basinSet = async (node, set, interval) =>
    byName(await node.metrics.basin({ basin, set, interval, ...range() }));
  return {
    appendOps: await basinSet(a, "append-ops", "day"),
    readOps: await basinSet(b, "read-ops", "hour"),
    appendBytes: await basinSet(a, "append-throughput", "minute"),
    readBytes: await basinSet(b, "read-throughput", "day"),
    basinOps: await basinSet(a, "basin-ops"),
    basinStorage: await basinSet(b, "storage"),
    streamStorage: byName(
      await a.metrics.stream({ basin, stream, set: "storage", ...range() }),
    ),
    accountOps: byName(await b.metrics.account({ set: "account-ops", ...range() })),
    active: byName(await a.metrics.account({ set: "active-basins", ...range() })),
  };
}

function check(f) {
  const within = (v, [lo, hi]) => v >= lo && v <= hi;
  const problems = [];
  const expect = (what, ok) => ok || problems.push(what);
  expect("append-ops express", within(f.appendOps.express ?? 0, want.appendOps));
  expect("append-ops standard", (f.appendOps.standard ?? 0) === 0);
  expect("read-ops streaming", within(f.readOps.streaming ?? 0, want.readOps));
  expect("read-ops unary", (f.readOps.unary ?? 0) === 0);
  expect("append-throughput", f.appendBytes["append-throughput"] === want.appendBytes);
  expect("read-throughput", f.readBytes["read-throughput"] === want.readBytes);
  expect("basin-ops create-stream", f.basinOps["create-stream"] === 1);
  expect("basin storage", f.basinStorage.storage === want.appendBytes);
  expect("stream storage", f.streamStorage.storage === want.appendBytes);
  expect("account-ops create-basin", f.accountOps["create-basin"] === 1);
  expect("account-ops basin-metrics", (f.accountOps["basin-metrics"] ?? 0) >= 1);
  expect("active-basins", (f.active["active-basins"] ?? []).includes(want.basin));
  return problems;
}

const deadline = Date.now() + 30_000;
let f, problems;
for (;;) {
  f = await figures();
  problems = check(f);
  if (problems.length === 0 || Date.now() > deadline) break;
  await new Promise((r) => setTimeout(r, 300));
}
if (problems.length) {
  console.error("figures:", JSON.stringify(f, null, 1));
  console.error("wanted:", JSON.stringify(want));
  throw new Error(`metrics do not match the workload: ${problems.join(", ")}`);
}

// A set the API does not have is refused with S2's code.
await assert.rejects(
  a.metrics.account({ set: "no-such-set", ...range() }),
  (e) => e.status === 400 && e.code === "bad_query",
);
console.log("TS SDK metrics match the workload:", JSON.stringify(f));
