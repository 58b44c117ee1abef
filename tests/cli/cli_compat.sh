#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Runs the s2 CLI (0.43.4) against a fresh Sluice server and checks that every command
# has the expected effect (by its output, not only its exit code).
#
#   tests/cli/cli_compat.sh [local|ministack|moto]      (default: local)
#
# Needs target/debug/sluice (`cargo build --bin sluice`) and the s2 CLI from
# scripts/install-tools.sh. See scripts/with-sluice.sh for the environment knobs.
set -euo pipefail

BACKEND="${1:-local}"
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# shellcheck source=../../scripts/with-sluice.sh disable=SC1091
source "$ROOT/scripts/with-sluice.sh"

[[ -x "$S2_CLI" ]] || sluice_die "s2 CLI not found at $S2_CLI (run scripts/install-tools.sh)"
S2_CLI_VERSION="$("$S2_CLI" --version 2>/dev/null || true)"
[[ "$S2_CLI_VERSION" == "s2 0.43.4"* ]] || sluice_log "warning: these checks were written for s2 0.43.4, found '$S2_CLI_VERSION'"
CLI_TIMEOUT="${CLI_TIMEOUT:-60}"   # seconds for any single CLI command
WAIT_TIMEOUT="${WAIT_TIMEOUT:-30}" # seconds for eventually consistent effects

PASSED=0
START=$SECONDS

sluice_start "$BACKEND"
T="$SLUICE_WORK_DIR/cli"
mkdir -p "$T"

ok() { PASSED=$((PASSED + 1)); printf 'ok %d - %s\n' "$PASSED" "$*"; }
fail() {
  printf 'FAIL - %s\n' "$1" >&2
  shift
  local f
  for f in "$@"; do
    [[ -f "$f" ]] || { printf '  %s\n' "$f" >&2; continue; }
    printf '  --- %s:\n' "${f##*/}" >&2
    sed 's/^/  | /' "$f" | head -n 60 >&2
  done
  printf '%d passed, 1 failed\n' "$PASSED"
  exit 1
}

# s2 <name> <args...>: run the CLI, stdout -> $T/<name>.out, stderr -> $T/<name>.err.
# Fails the test if it does not exit 0. Stdin is inherited.
s2() {
  local name="$1"; shift
  local rc=0
  timeout "$CLI_TIMEOUT" "$S2_CLI" "$@" >"$T/$name.out" 2>"$T/$name.err" || rc=$?
  if ((rc != 0)); then
    fail "s2 $* exited $rc" "$T/$name.out" "$T/$name.err"
  fi
}
# s2_fails <name> <args...>: the CLI must exit non-zero.
s2_fails() {
  local name="$1"; shift
  local rc=0
  timeout "$CLI_TIMEOUT" "$S2_CLI" "$@" >"$T/$name.out" 2>"$T/$name.err" || rc=$?
  if ((rc == 0)); then fail "s2 $* should have failed but exited 0" "$T/$name.out" "$T/$name.err"; fi
  if ((rc == 124)); then fail "s2 $* timed out after ${CLI_TIMEOUT}s" "$T/$name.out" "$T/$name.err"; fi
}
# expect_file_eq <name> <file> <expected content>
expect_file_eq() {
  local what="$1" file="$2" want="$3"
  printf '%s\n' "$want" >"$file.want"
  if ! diff -u "$file.want" "$file" >"$file.diff"; then
    fail "$what: output differs from the expected (diff want→got)" "$file.diff"
  fi
}
# expect_grep <what> <file> <fixed string>
expect_grep() {
  local what="$1" file="$2" needle="$3"
  grep -qF -- "$needle" "$file" || fail "$what: '$needle' not found" "$file"
}
expect_no_grep() {
  local what="$1" file="$2" needle="$3"
  if grep -qF -- "$needle" "$file"; then fail "$what: unexpected '$needle'" "$file"; fi
}
# Value next to <key> in the CLI's config tables, e.g. `| Age |  2days  |` -> 2days.
cfg_value() {
  awk -F'|' -v k="$2" '{
    for (i = 1; i < NF; i++) {
      a = $i; gsub(/^ +| +$/, "", a)
      if (a == k) { b = $(i + 1); gsub(/^ +| +$/, "", b); print b; exit }
    }
  }' "$1"
}
expect_cfg() {
  local what="$1" file="$2" key="$3" want="$4" got
  got="$(cfg_value "$file" "$key")"
  [[ "$got" == "$want" ]] || fail "$what: $key is '$got', expected '$want'" "$file"
}
# poll_until <timeout_s> <description> <command...>: retry the command every 0.1 s.
poll_until() {
  local limit="$1" what="$2"; shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}
# has_lines <file> <n>: the file exists and has at least n lines.
has_lines() { [[ -f "$1" ]] && (($(wc -l <"$1") >= $2)); }

# Names are unique per run, so a failure never collides with a previous one.
SUFFIX="$(printf '%04x%04x' "$RANDOM" "$RANDOM")"
BASIN="cli-compat-$SUFFIX"
OTHER_BASIN="cli-other-$SUFFIX"
S="s2://$BASIN/events"
S_OTHER="s2://$BASIN/other"

printf '# s2 CLI compatibility: %s against %s (%s backend)\n' "$S2_CLI_VERSION" "$SLUICE_ENDPOINT" "$BACKEND"

# ------------------------------------------------------------------ basins --
s2 create-basin create-basin "$BASIN"
expect_grep "create-basin" "$T/create-basin.err" "Basin created"
s2 create-basin2 create-basin "$OTHER_BASIN" --create-stream-on-append --retention-policy 3d
ok "create-basin $BASIN and $OTHER_BASIN (the latter with --create-stream-on-append)"

s2_fails create-basin-dup create-basin "$BASIN"
expect_grep "create-basin (duplicate)" "$T/create-basin-dup.err" "already exists"
ok "create-basin on an existing name fails with 'already exists'"

s2 list-basins list-basins
grep -qx -- "$BASIN" "$T/list-basins.out" || fail "list-basins: no line '$BASIN'" "$T/list-basins.out"
grep -qx -- "$OTHER_BASIN" "$T/list-basins.out" || fail "list-basins: no line '$OTHER_BASIN'" "$T/list-basins.out"
ok "list-basins lists both basins"

s2 list-basins-prefix list-basins --prefix cli-compat-
expect_file_eq "list-basins --prefix cli-compat-" "$T/list-basins-prefix.out" "$BASIN"
ok "list-basins --prefix filters"

# ----------------------------------------------------------------- streams --
s2 create-stream create-stream "$S" --retention-policy 1d --timestamping-mode client-prefer
expect_grep "create-stream" "$T/create-stream.err" "Stream created"
s2 create-stream2 create-stream "$S_OTHER"
ok "create-stream $S (retention 1d) and $S_OTHER"

s2 list-streams list-streams "$BASIN"
expect_file_eq "list-streams $BASIN" "$T/list-streams.out" "$S
$S_OTHER"
s2 list-streams-uri list-streams "s2://$BASIN/ev"
expect_file_eq "list-streams s2://$BASIN/ev" "$T/list-streams-uri.out" "$S"
s2 list-streams-prefix list-streams "$BASIN" --prefix oth
expect_file_eq "list-streams --prefix oth" "$T/list-streams-prefix.out" "$S_OTHER"
ok "list-streams (all, by s2:// prefix URI, by --prefix)"

s2 get-stream-config get-stream-config "$S"
expect_cfg "get-stream-config" "$T/get-stream-config.out" Age 1day
expect_cfg "get-stream-config" "$T/get-stream-config.out" timestamping_mode client-prefer
expect_cfg "get-stream-config" "$T/get-stream-config.out" timestamping_uncapped false
ok "get-stream-config shows retention 1day, timestamping client-prefer"

s2 reconfigure-stream reconfigure-stream "$S" --retention-policy 2d --timestamping-mode arrival \
  --timestamping-uncapped true --delete-on-empty-min-age 1h
expect_grep "reconfigure-stream" "$T/reconfigure-stream.err" "Stream reconfigured"
expect_cfg "reconfigure-stream output" "$T/reconfigure-stream.out" Age 2days
expect_cfg "reconfigure-stream output" "$T/reconfigure-stream.out" timestamping_mode arrival
s2 get-stream-config2 get-stream-config "$S"
expect_cfg "get-stream-config after reconfigure" "$T/get-stream-config2.out" Age 2days
expect_cfg "get-stream-config after reconfigure" "$T/get-stream-config2.out" timestamping_mode arrival
expect_cfg "get-stream-config after reconfigure" "$T/get-stream-config2.out" timestamping_uncapped true
expect_cfg "get-stream-config after reconfigure" "$T/get-stream-config2.out" delete_on_empty_min_age 1h
ok "reconfigure-stream changes retention/timestamping/delete-on-empty (seen by get-stream-config)"

s2 reconfigure-stream2 reconfigure-stream "$S" --timestamping-mode client-prefer
s2 get-stream-config3 get-stream-config "$S"
expect_cfg "partial reconfigure" "$T/get-stream-config3.out" timestamping_mode client-prefer
expect_cfg "partial reconfigure keeps other fields" "$T/get-stream-config3.out" Age 2days
expect_cfg "partial reconfigure keeps other fields" "$T/get-stream-config3.out" timestamping_uncapped true
ok "reconfigure-stream with one flag leaves the other fields alone"

# ------------------------------------------------------------- data plane --
s2 check-tail-empty check-tail "$S"
expect_file_eq "check-tail (empty stream)" "$T/check-tail-empty.out" "0 @ 0"
ok "check-tail on an empty stream: 0 @ 0"

s2 append append "$S" <<<$'line-1\nline-2\nline-3\nline-4\nline-5'
expect_grep "append" "$T/append.err" "[APPENDED] 0..5"
ok "append 5 lines from stdin: [APPENDED] 0..5"

s2 check-tail check-tail "$S"
[[ "$(cat "$T/check-tail.out")" =~ ^5\ @\ ([0-9]+)$ ]] || fail "check-tail after append: expected '5 @ <ts>'" "$T/check-tail.out"
TS="${BASH_REMATCH[1]}"
NOW_MS=$(($(date +%s) * 1000))
((TS > NOW_MS - 600000 && TS < NOW_MS + 600000)) || fail "check-tail timestamp $TS is not near now ($NOW_MS)"
ok "check-tail after append: 5 @ $TS"

s2 read-all read "$S" --seq-num 0 --count 5
expect_file_eq "read --seq-num 0 --count 5" "$T/read-all.out" "line-1
line-2
line-3
line-4
line-5"
expect_grep "read summary" "$T/read-all.err" "5 records in range 0..=4"
ok "read --seq-num 0 --count 5 returns the 5 bodies in order"

s2 read-mid read "$S" --seq-num 2 --count 2 --format json
python3 - "$T/read-mid.out" <<'EOF' || fail "read --seq-num 2 --count 2 --format json" "$T/read-mid.out"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert [r["seq_num"] for r in recs] == [2, 3], recs
assert [r["body"] for r in recs] == ["line-3", "line-4"], recs
assert all(isinstance(r["timestamp"], int) and r["timestamp"] > 0 for r in recs), recs
EOF
ok "read --seq-num 2 --count 2 --format json: seq_nums 2,3 with bodies and timestamps"

s2 read-tail-offset read "$S" --tail-offset 1 --count 1
expect_file_eq "read --tail-offset 1" "$T/read-tail-offset.out" "line-5"
ok "read --tail-offset 1 returns the last record"

s2_fails read-beyond read "$S" --seq-num 100 --count 1
expect_grep "read beyond the tail" "$T/read-beyond.err" "tail"
ok "read --seq-num beyond the tail fails and reports the tail"

s2 tail tail "$S" -n 2
expect_file_eq "tail -n 2" "$T/tail.out" "line-4
line-5"
ok "tail -n 2 shows the last 2 records"

# ------------------------------------------------------------------ fence --
s2 fence fence "$S" fence-token-1
expect_grep "fence" "$T/fence.err" 'new fencing token "fence-token-1"'
s2 check-tail-fence check-tail "$S"
[[ "$(cat "$T/check-tail-fence.out")" =~ ^6\ @ ]] || fail "check-tail after fence: expected 6 (fence is a command record)" "$T/check-tail-fence.out"
s2_fails append-wrong-token append "$S" --fencing-token wrong-token <<<'bad'
expect_grep "append with a wrong fencing token" "$T/append-wrong-token.err" "fencing token mismatch"
s2 append-right-token append "$S" --fencing-token fence-token-1 <<<'fenced-1'
expect_grep "append with the right fencing token" "$T/append-right-token.err" "[APPENDED] 6..7"
s2_fails fence-wrong fence "$S" fence-token-2 --fencing-token wrong-token
expect_grep "fence with a wrong current token" "$T/fence-wrong.err" "fencing token mismatch"
s2 read-fence read "$S" --seq-num 5 --count 2 --format json
python3 - "$T/read-fence.out" <<'EOF' || fail "read of the fence command record" "$T/read-fence.out"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert [r["seq_num"] for r in recs] == [5, 6], recs
assert recs[0].get("headers") == [["", "fence"]] and recs[0]["body"] == "fence-token-1", recs[0]
assert recs[1]["body"] == "fenced-1" and not recs[1].get("headers"), recs[1]
EOF
ok "fence sets a token: wrong token rejected, right token accepted, fence record readable"

# ------------------------------------------------------------------- trim --
s2 trim trim "$S" 3 --fencing-token fence-token-1
expect_grep "trim" "$T/trim.err" "trim to 3"
s2 check-tail-trim check-tail "$S"
[[ "$(cat "$T/check-tail-trim.out")" =~ ^8\ @ ]] || fail "check-tail after trim: expected 8" "$T/check-tail-trim.out"
first_seq_is() { # trim is eventually consistent: poll a read from 0
  timeout "$CLI_TIMEOUT" "$S2_CLI" read "$S" --seq-num 0 --count 1 --format json >"$T/read-trimmed.out" 2>"$T/read-trimmed.err" \
    && python3 -c 'import json,sys; sys.exit(0 if json.loads(open(sys.argv[1]).readline())["seq_num"] == int(sys.argv[2]) else 1)' \
      "$T/read-trimmed.out" "$1"
}
poll_until "$WAIT_TIMEOUT" "trim" first_seq_is 3 || fail "after trim to 3, a read from 0 does not start at 3 within ${WAIT_TIMEOUT}s" "$T/read-trimmed.out" "$T/read-trimmed.err"
ok "trim 3: reads from 0 start at seq_num 3"

# A trim point beyond the tail is capped at the trim record's own seq_num + 1, so
# records appended later stay readable.
s2 append-other append "$S_OTHER" <<<$'o-1\no-2'
s2 trim-beyond trim "$S_OTHER" 1000
expect_grep "trim beyond the tail" "$T/trim-beyond.err" "trim to 1000"
s2 append-other2 append "$S_OTHER" <<<'after-trim'
expect_grep "append after trim" "$T/append-other2.err" "[APPENDED] 3..4"
only_after_trim() {
  timeout "$CLI_TIMEOUT" "$S2_CLI" read "$S_OTHER" --seq-num 0 --count 10 --format json \
    >"$T/read-other.out" 2>"$T/read-other.err" \
    && [[ "$(cat "$T/read-other.out")" == '{"seq_num":3,"timestamp":'*',"body":"after-trim"}' ]]
}
poll_until "$WAIT_TIMEOUT" "trim beyond tail" only_after_trim \
  || fail "after trim 1000 at seq_num 2, a read from 0 should return only seq_num 3" "$T/read-other.out" "$T/read-other.err"
ok "trim beyond the tail: capped at the trim record, later records readable"

# Basin with --create-stream-on-append: append to a missing stream creates it, with the
# basin's default config.
s2 append-auto append "s2://$OTHER_BASIN/auto/created" <<<'auto-1'
expect_grep "append to a missing stream (create-stream-on-append)" "$T/append-auto.err" "[APPENDED] 0..1"
s2 list-streams-auto list-streams "$OTHER_BASIN"
expect_file_eq "list-streams after auto-create" "$T/list-streams-auto.out" "s2://$OTHER_BASIN/auto/created"
s2 get-stream-config-auto get-stream-config "s2://$OTHER_BASIN/auto/created"
expect_cfg "auto-created stream config" "$T/get-stream-config-auto.out" Age 3days
s2_fails append-missing append "s2://$BASIN/missing" <<<'x'
expect_grep "append to a missing stream without auto-create" "$T/append-missing.err" "stream_not_found"
ok "create-stream-on-append auto-creates with the basin default (retention 3days); otherwise stream_not_found"

# ----------------------------------------------------- following read --
TAIL_NOW=8
timeout 120 "$S2_CLI" read "$S" --seq-num "$TAIL_NOW" </dev/null >"$T/follow.out" 2>"$T/follow.err" &
FOLLOW_PID=$!
sluice_track_pid "$FOLLOW_PID"
timeout 120 "$S2_CLI" tail "$S" -f -n 2 </dev/null >"$T/tailf.out" 2>"$T/tailf.err" &
TAILF_PID=$!
sluice_track_pid "$TAILF_PID"
# `tail -f -n 2` first prints the last 2 records: fenced-1 (stdout) and the trim command
# record (text format sends command records to stderr). Wait for them so the checks are exact.
poll_until "$WAIT_TIMEOUT" "tail -f initial" has_lines "$T/tailf.out" 1 \
  || fail "tail -f -n 2 did not print the last records" "$T/tailf.out" "$T/tailf.err"
kill -0 "$FOLLOW_PID" 2>/dev/null || fail "following read exited early" "$T/follow.out" "$T/follow.err"
s2 append-live1 append "$S" <<<$'live-1\nlive-2'
s2 append-live2 append "$S" <<<'live-3'
poll_until "$WAIT_TIMEOUT" "follow" has_lines "$T/follow.out" 3 \
  || fail "following read did not receive 3 new records within ${WAIT_TIMEOUT}s" "$T/follow.out" "$T/follow.err"
poll_until "$WAIT_TIMEOUT" "tail -f" has_lines "$T/tailf.out" 4 \
  || fail "tail -f did not receive 3 new records within ${WAIT_TIMEOUT}s" "$T/tailf.out" "$T/tailf.err"
kill -0 "$FOLLOW_PID" 2>/dev/null || fail "following read exited instead of waiting for more" "$T/follow.out" "$T/follow.err"
kill -0 "$TAILF_PID" 2>/dev/null || fail "tail -f exited instead of waiting for more" "$T/tailf.out" "$T/tailf.err"
sluice_kill_pid "$FOLLOW_PID" 5
sluice_kill_pid "$TAILF_PID" 5
expect_file_eq "following read" "$T/follow.out" "live-1
live-2
live-3"
expect_file_eq "tail -f" "$T/tailf.out" "fenced-1
live-1
live-2
live-3"
expect_grep "tail -f (command record on stderr)" "$T/tailf.err" "trim to 3"
ok "read (following) and tail -f receive records appended after they started"

# ----------------------------------------------------------------- delete --
s2 delete-stream delete-stream "$S_OTHER"
expect_grep "delete-stream" "$T/delete-stream.err" "Stream deletion requested"
stream_gone() {
  timeout "$CLI_TIMEOUT" "$S2_CLI" list-streams "$BASIN" >"$T/list-after-delete.out" 2>&1 \
    && ! grep -qF -- "$S_OTHER" "$T/list-after-delete.out"
}
poll_until "$WAIT_TIMEOUT" "stream deletion" stream_gone \
  || fail "deleted stream still listed after ${WAIT_TIMEOUT}s" "$T/list-after-delete.out"
expect_grep "list-streams after delete" "$T/list-after-delete.out" "$S"
s2_fails get-deleted get-stream-config "$S_OTHER"
expect_grep "get-stream-config of a deleted stream" "$T/get-deleted.err" "stream_not_found"
ok "delete-stream: the stream disappears from list-streams, get-stream-config says stream_not_found"

s2 delete-basin delete-basin "$BASIN"
expect_grep "delete-basin" "$T/delete-basin.err" "Basin deletion requested"
s2 delete-basin2 delete-basin "$OTHER_BASIN"
basins_gone() {
  timeout "$CLI_TIMEOUT" "$S2_CLI" list-basins >"$T/list-basins-after.out" 2>&1 \
    && ! grep -qF -- "$BASIN" "$T/list-basins-after.out" \
    && ! grep -qF -- "$OTHER_BASIN" "$T/list-basins-after.out"
}
poll_until "$WAIT_TIMEOUT" "basin deletion" basins_gone \
  || fail "deleted basins still listed after ${WAIT_TIMEOUT}s" "$T/list-basins-after.out"
s2_fails list-streams-deleted list-streams "$BASIN"
expect_grep "list-streams of a deleted basin" "$T/list-streams-deleted.err" "basin_not_found"
ok "delete-basin: both basins disappear from list-basins; list-streams says basin_not_found"

# ----------------------------------------------------------- access tokens --
# A second node, started with a root token: every request needs a valid token.
sluice_stop
SLUICE_ROOT_TOKEN="cli-root-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export SLUICE_ROOT_TOKEN
sluice_start "$BACKEND"
export S2_ACCESS_TOKEN="$SLUICE_ROOT_TOKEN"
T="$SLUICE_WORK_DIR/cli"
mkdir -p "$T"

S2_ACCESS_TOKEN=wrong s2_fails authn-wrong list-basins
expect_grep "list-basins with a wrong token" "$T/authn-wrong.err" "authn"
s2 create-basin-auth create-basin "$BASIN"
ok "with a root token: a wrong token is refused (authn), the root token creates a basin"

s2 issue-token issue-access-token ci/writer --basins-exact "$BASIN" --streams-prefix logs/ \
  --op-group-perms stream=rw --ops list_streams --expires-in 1d
TOKEN="$(tr -d '[:space:]' <"$T/issue-token.out")"
[[ "$TOKEN" == *.* ]] || fail "issue-access-token printed no token" "$T/issue-token.out" "$T/issue-token.err"
S2_ACCESS_TOKEN="$TOKEN" s2 token-create create-stream "s2://$BASIN/logs/a"
S2_ACCESS_TOKEN="$TOKEN" s2 token-append append "s2://$BASIN/logs/a" <<<$'t-1\nt-2'
S2_ACCESS_TOKEN="$TOKEN" s2 token-read read "s2://$BASIN/logs/a" --seq-num 0 --count 2
expect_file_eq "read with the issued token" "$T/token-read.out" $'t-1\nt-2'
S2_ACCESS_TOKEN="$TOKEN" s2_fails token-outside create-stream "s2://$BASIN/other"
expect_grep "create-stream outside the token's prefix" "$T/token-outside.err" "permission_denied"
S2_ACCESS_TOKEN="$TOKEN" s2_fails token-basins list-basins
expect_grep "list-basins without the operation" "$T/token-basins.err" "permission_denied"
ok "issue-access-token: the token appends and reads under logs/, is denied elsewhere"

s2 list-tokens list-access-tokens
expect_grep "list-access-tokens" "$T/list-tokens.out" "ci/writer"
expect_no_grep "list-access-tokens shows no secret" "$T/list-tokens.out" "${TOKEN#*.}"
s2 revoke-token revoke-access-token ci/writer
S2_ACCESS_TOKEN="$TOKEN" s2_fails token-revoked list-streams "$BASIN"
expect_grep "a revoked token" "$T/token-revoked.err" "authn"
ok "list-access-tokens lists it without its secret; after revoke-access-token it is refused"

printf '# %s backend, %ds\n' "$BACKEND" "$((SECONDS - START))"
printf '%d passed, 0 failed\n' "$PASSED"
