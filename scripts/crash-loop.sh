#!/usr/bin/env bash
# Crash loop: one Sluice node under append and read load, SIGKILLed at random moments and
# restarted, then `sluice verify` on what the last kill left (must exit 0) and a full read
# that must return every acknowledged record exactly once, at the seq_num its ack gave, in
# order (and records of appends whose outcome the kill hid at most once, whole batches).
#
#   scripts/crash-loop.sh [--ministack] [--kills N] [--seed S] [--keep]
#
#   --ministack   keep the data on ministack (scripts/ministack.sh) instead of a local
#                 directory
#   --kills N     how many SIGKILLs (default 20)
#   --seed S      seed of the kill timing and the load (default: random, printed)
#   --keep        keep the work directory (node logs, acks, data) even on success
#
# Uses target/debug/sluice (built if needed) unless SLUICE_BIN names a binary. Exits
# non-zero on any failure, keeping the work directory. Only 127.0.0.1 is contacted.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

export AWS_ACCESS_KEY_ID=sluice-test AWS_SECRET_ACCESS_KEY=sluice-test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

backend=local kills=20 seed="$RANDOM$RANDOM" keep=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --ministack) backend=ministack ;;
    --kills) kills="$2"; shift ;;
    --seed) seed="$2"; shift ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--ministack] [--kills N] [--seed S] [--keep]" >&2; exit 2 ;;
  esac
  shift
done

work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-crash.XXXXXX")"
node_pid="" load_pid="" failed=1
cleanup() {
  if [[ -n "$load_pid" ]]; then kill "$load_pid" 2>/dev/null || true; fi
  if [[ -n "$node_pid" ]]; then kill -9 "$node_pid" 2>/dev/null || true; fi
  if [[ "$backend" == ministack ]]; then
    scripts/ministack.sh stop "$work/ministack" >/dev/null 2>&1 || true
  fi
  if [[ $failed -eq 0 && $keep -eq 0 ]]; then
    rm -rf "$work"
  else
    echo "crash-loop: work directory kept: $work" >&2
  fi
}
trap cleanup EXIT
log() { printf 'crash-loop: %s\n' "$*" >&2; }
started=$SECONDS

bin="${SLUICE_BIN:-target/debug/sluice}"
if [[ -z "${SLUICE_BIN:-}" ]]; then
  cargo build --quiet --bin sluice
fi

store_args=()
case "$backend" in
  local) store_args=(--local-root "$work/data") ;;
  ministack)
    eval "$(scripts/ministack.sh start "$work/ministack" sluice-crash)"
    export AWS_ENDPOINT_URL_S3="$MINISTACK_ENDPOINT"
    store_args=(--bucket sluice-crash --path "crash-$seed") ;;
esac
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
log "backend $backend, $kills kills, seed $seed, node on $base, work $work"

start_node() {
  "$bin" serve --host 127.0.0.1 --port "$port" "${store_args[@]}" >>"$work/node.log" 2>&1 &
  node_pid=$!
  for _ in $(seq 1 300); do
    if curl -sf -o /dev/null "$base/health"; then return 0; fi
    if ! kill -0 "$node_pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  log "the node did not start; its log:"; tail -n 30 "$work/node.log" >&2
  exit 1
}

kill_node() {
  kill -9 "$node_pid" 2>/dev/null || true
  wait "$node_pid" 2>/dev/null || true
  node_pid=""
}

start_node
curl -sf -o /dev/null -XPOST "$base/v1/basins" -H 'content-type: application/json' \
  -d '{"basin":"crash-basin"}'
curl -sf -o /dev/null -XPOST "$base/v1/streams" -H 's2-basin: crash-basin' \
  -H 'content-type: application/json' -d '{"stream":"crash"}'

# The load: writers append batches of fresh bodies (never retried: a retry could land
# twice), logging each ack with its seq_num, and each append whose outcome a kill hid;
# a reader reads from random positions. Runs until $work/stop exists.
python3 - "$base" "$work" "$seed" >"$work/load.log" 2>&1 <<'PY' &
import http.client, json, os, random, sys, threading, time
base, work, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = base.removeprefix("http://").split(":")
HEADERS = {"s2-basin": "crash-basin", "content-type": "application/json"}

def request(method, path, body=None):
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=HEADERS)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()

lock = threading.Lock()
acks = open(f"{work}/acks.jsonl", "a")
maybe = open(f"{work}/maybe.jsonl", "a")

def writer(w):
    rng = random.Random(seed * 100 + w)
    n = 0
    while not os.path.exists(f"{work}/stop"):
        count = rng.randint(1, 5)
        bodies = [f"w{w}-{n}-{i}" for i in range(count)]
        if rng.random() < 0.02:  # too big to travel inline: a chunk object of its own
            bodies[-1] += "-" + "x" * 300_000
        n += 1
        payload = json.dumps({"records": [{"body": b} for b in bodies]})
        try:
            status, body = request("POST", "/v1/streams/crash/records", payload)
        except (OSError, http.client.HTTPException):
            status, body = None, b""
        line = json.dumps({"bodies": bodies, **({"start": json.loads(body)["start"]["seq_num"]} if status == 200 else {})})
        with lock:
            (acks if status == 200 else maybe).write(line + "\n")
            (acks if status == 200 else maybe).flush()
        if status != 200:
            time.sleep(0.05)

errors = []

def reader():
    rng = random.Random(seed)
    while not os.path.exists(f"{work}/stop") and not errors:
        try:
            status, body = request("GET", "/v1/streams/crash/records/tail")
            if status == 200:
                tail = json.loads(body)["tail"]["seq_num"]
                start = rng.randint(0, max(tail - 1, 0))
                status, body = request("GET", f"/v1/streams/crash/records?seq_num={start}&count=200")
                if status == 200:
                    seqs = [r["seq_num"] for r in json.loads(body)["records"]]
                    if seqs != list(range(start, start + len(seqs))):
                        errors.append(f"a read from {start} returned seq_nums {seqs[:5]}…")
        except (OSError, http.client.HTTPException, ValueError):
            time.sleep(0.05)

threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
threads.append(threading.Thread(target=reader))
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    sys.exit("load: " + errors[0])
PY
load_pid=$!

# Kill at random moments: mostly soon after a start (mid-recovery), sometimes later.
RANDOM=$seed
for k in $(seq 1 "$kills"); do
  sleep "$(( RANDOM % 1500 / 1000 )).$(printf '%03d' $(( RANDOM % 1000 )))"
  kill_node
  if ! kill -0 "$load_pid" 2>/dev/null; then
    log "the load generator died:"; tail -n 20 "$work/load.log" >&2; exit 1
  fi
  if [[ $k -lt $kills ]]; then start_node; fi
done
touch "$work/stop"
wait "$load_pid" || { log "the load generator failed:"; tail -n 20 "$work/load.log" >&2; exit 1; }
load_pid=""
log "$kills kills in $((SECONDS - started))s; $(wc -l <"$work/acks.jsonl") appends acked, $(wc -l <"$work/maybe.jsonl") with outcome unknown"

# What the last kill left must verify.
verify_args=("${store_args[@]}")
if ! "$bin" verify "${verify_args[@]}" >"$work/verify.txt" 2>"$work/verify.err"; then
  log "sluice verify failed:"; cat "$work/verify.txt" >&2; exit 1
fi
grep -E '^(  (manifests|packs|chunk objects|index segments|inline chunks|records) |orphans)' "$work/verify.txt" >&2 || true

# Every acked record exactly once, in order.
start_node
python3 - "$base" "$work" <<'PY'
import http.client, json, sys
base, work = sys.argv[1], sys.argv[2]
host, port = base.removeprefix("http://").split(":")
def get(path):
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path, headers={"s2-basin": "crash-basin"})
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200, (path, resp.status, body[:200])
    return json.loads(body)
tail = get("/v1/streams/crash/records/tail")["tail"]["seq_num"]
records, seq = [], 0
while seq < tail:
    batch = get(f"/v1/streams/crash/records?seq_num={seq}&count=1000")["records"]
    assert batch, f"nothing at {seq} below the tail {tail}"
    for r in batch:
        assert r["seq_num"] == seq, f"seq_num {r['seq_num']} where {seq} was expected"
        records.append(r["body"])
        seq += 1
at = {}
for i, body in enumerate(records):
    assert body not in at, f"{body[:40]} at both {at[body]} and {i}"
    at[body] = i
acked = [json.loads(l) for l in open(f"{work}/acks.jsonl")]
unknown = [json.loads(l) for l in open(f"{work}/maybe.jsonl")]
mine = set()
for a in acked:
    for i, body in enumerate(a["bodies"]):
        assert at.get(body) == a["start"] + i, f"acked {body[:40]} at {a['start'] + i}, found at {at.get(body)}"
        mine.add(body)
landed = 0
for m in unknown:
    where = [at.get(b) for b in m["bodies"]]
    if where[0] is None:
        assert all(w is None for w in where), f"part of a batch landed: {m['bodies'][0][:40]}"
        continue
    assert where == list(range(where[0], where[0] + len(where))), f"a batch landed torn: {where}"
    mine.update(m["bodies"])
    landed += 1
stray = [b for b in records if b not in mine]
assert not stray, f"{len(stray)} records nobody appended, e.g. {stray[0][:40]}"
print(f"crash-loop: read {len(records)} records: {sum(len(a['bodies']) for a in acked)} acked, all exactly once in order; {landed} of {len(unknown)} unacknowledged appends landed whole", file=sys.stderr)
PY
kill -TERM "$node_pid"; wait "$node_pid" 2>/dev/null || true; node_pid=""
log "passed in $((SECONDS - started))s"
failed=0
