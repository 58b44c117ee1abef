// ioredis against Sluice's RESP listener: XADD, XREADGROUP with BLOCK woken by a second
// client's XADD, XACK; once in RESP2 (ioredis's default) and once in RESP3. Started by
// tests/resp/ioredis.sh: node ioredis.js <resp-port> <plate> [token].
"use strict";
const Redis = require("ioredis");

const [port, plate, token] = [Number(process.argv[2]), process.argv[3], process.argv[4] || "ignored"];

function check(cond, what) {
  if (!cond) throw new Error(`ioredis: ${what}`);
}

async function run(protocol) {
  const opts = { host: "127.0.0.1", port, username: plate, password: token, protocol, maxRetriesPerRequest: 1 };
  const writer = new Redis(opts);
  const reader = new Redis(opts);
  const key = `jobs-resp${protocol}`;
  try {
    check((await writer.ping()) === "PONG", "PING");
    check((await writer.xgroup("CREATE", key, "workers", "$", "MKSTREAM")) === "OK", "XGROUP CREATE");
    // The reader blocks first (connected, then its read sent and given a moment to
    // arrive); the writer's XADD must wake it. Were the read to arrive late, it would
    // find the entry at once: the test would still pass, never flake.
    check((await reader.ping()) === "PONG", "the reader's PING");
    const blocked = reader.xreadgroup("GROUP", "workers", "worker-1", "COUNT", 10, "BLOCK", 0, "STREAMS", key, ">");
    await new Promise((resolve) => setTimeout(resolve, 200));
    const id = await writer.xadd(key, "*", "task", "resize", "image", "cat.png");
    check(/^\d+-\d+$/.test(id), `XADD id ${id}`);
    const got = await blocked;
    const entries = protocol === 3 && !Array.isArray(got) ? got[key] : got[0][1];
    if (!(protocol === 3 && !Array.isArray(got))) check(got[0][0] === key, `XREADGROUP key ${JSON.stringify(got)}`);
    check(JSON.stringify(entries) === JSON.stringify([[id, ["task", "resize", "image", "cat.png"]]]),
      `XREADGROUP entries ${JSON.stringify(got)}`);
    check((await writer.xack(key, "workers", id)) === 1, "XACK");
    const pending = await writer.xpending(key, "workers");
    check(pending[0] === 0, `XPENDING after XACK ${JSON.stringify(pending)}`);
    console.log(`ioredis RESP${protocol}: XADD ${id}, XREADGROUP BLOCK 0 woken, XACK: ok`);
  } finally {
    reader.disconnect();
    writer.disconnect();
  }
}

(async () => {
  const deadline = setTimeout(() => {
    console.error("ioredis: timed out after 60 s");
    process.exit(1);
  }, 60000);
  await run(2);
  await run(3);
  clearTimeout(deadline);
})().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
