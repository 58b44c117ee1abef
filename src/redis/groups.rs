//! Consumer-group commands. Every change is a conditional write of the group's object,
//! retried on a race, and what a command returns is what its winning write recorded: an
//! entry is handed to one consumer at a time, whichever node serves it.

use axum::extract::{Path, State};
use http::StatusCode;
use s2_api::v1::error::ErrorCode;
use s2_common::{access::Operation, stream::ReadFrom};
use serde::{Deserialize, Serialize};

use super::{
    Entry, KeyPath, RedisError, RedisResult, Stop, block_for, count_of, entry_at,
    ids::{Bound, entry_id, parse_id, parse_range},
    now_ms, open, open_or_create, read_entries,
    streams::Entries,
};
use crate::{
    api::{
        ApiError, AppState,
        auth::Caller,
        extract::{JsonBody, QueryOf},
    },
    engine::{
        Engine, EngineError,
        catalog::Written,
        groups::{GroupState, Pending},
        stream::StreamHandle,
    },
};

/// Tries of one command's read-modify-write while other consumers keep winning.
const MAX_RACES: usize = 32;

/// Before the `attempt`th try (from 0): nothing, then a random pause of up to 1, 2, 4 …
/// 64 ms, so that consumers racing for one group's object spread out instead of
/// colliding again.
async fn back_off(attempt: usize) {
    if attempt > 0 {
        let cap_ms = 1u64 << (attempt - 1).min(6);
        let pause = rand::random_range(0..=cap_ms * 1000);
        tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
    }
}

fn raced() -> RedisError {
    ApiError::new(
        ErrorCode::TransactionConflict,
        "the consumer group kept changing concurrently; retry",
    )
    .into()
}

fn check_name(what: &str, name: &str) -> RedisResult<()> {
    if name.is_empty() || name.len() > 255 || name.contains('\0') {
        return Err(
            ApiError::invalid(format!("{what} must be 1 to 255 bytes, without NUL")).into(),
        );
    }
    Ok(())
}

/// An id a consumer gave, as a seq_num; `0` and `0-0` mean before everything.
fn after_id(id: &str) -> RedisResult<Option<u64>> {
    Ok(match id {
        "0" | "0-0" => None,
        id => Some(parse_id(id)?),
    })
}

/// Applies `change` to the group until its write wins, unless it changes nothing.
async fn update<R>(
    engine: &Engine,
    stream: &StreamHandle,
    group: &str,
    mut change: impl FnMut(&mut GroupState) -> (R, bool),
) -> RedisResult<R> {
    for attempt in 0..MAX_RACES {
        back_off(attempt).await;
        let Some(read) = engine.group(stream, group).await? else {
            return Err(RedisError::no_group(group));
        };
        let mut state = read.entry;
        let (answer, changed) = change(&mut state);
        if !changed {
            return Ok(answer);
        }
        if let Written::Done(_) = engine.replace_group(stream, state, &read.etag).await? {
            return Ok(answer);
        }
    }
    Err(raced())
}

/// Entries at `seqs`, in order; a record that is gone shows as its id with no fields.
async fn entries_at(
    engine: &Engine,
    stream: &StreamHandle,
    group: &GroupState,
    seqs: &[u64],
) -> RedisResult<Vec<Entry>> {
    let mut entries = Vec::with_capacity(seqs.len());
    for &seq in seqs {
        let entry = match entry_at(engine, stream, seq).await? {
            Some(entry) => entry,
            None => {
                let timestamp = group.pending.get(&seq).map_or(0, |p| p.timestamp);
                Entry {
                    id: entry_id(timestamp, seq),
                    fields: None,
                    body: None,
                    seq_num: seq,
                    timestamp,
                }
            }
        };
        entries.push(entry);
    }
    Ok(entries)
}

#[derive(Deserialize)]
pub struct CreateRequest {
    group: String,
    /// Where delivery starts: after this id, `$` (the tail: only new entries) or `0`.
    #[serde(default = "tail_id")]
    id: String,
    /// Create the key if it does not exist.
    #[serde(default)]
    mkstream: bool,
}

fn tail_id() -> String {
    "$".into()
}

#[derive(Serialize)]
pub struct Done {
    ok: bool,
}

/// `XGROUP CREATE key group id [MKSTREAM]`; `BUSYGROUP` (409) if the group exists.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    JsonBody(request): JsonBody<CreateRequest>,
) -> RedisResult<(StatusCode, axum::Json<Done>)> {
    check_name("a group name", &request.group)?;
    let op = Operation::ReconfigureStream;
    let stream = if request.mkstream {
        open_or_create(&state, &caller, op, &path).await?
    } else {
        open(&state, &caller, op, &path).await?
    };
    let (next_seq, last_id) = match request.id.as_str() {
        "$" => {
            let tail = state.engine.check_tail(&stream).await?;
            match tail.seq_num {
                0 => (0, "0-0".to_owned()),
                n => (n, entry_id(tail.timestamp, n - 1)),
            }
        }
        id => match after_id(id)? {
            None => (0, "0-0".to_owned()),
            Some(seq) => (seq.saturating_add(1), id.to_owned()),
        },
    };
    let group = GroupState::new(&request.group, next_seq, last_id);
    match state.engine.create_group(&stream, &group).await {
        Ok(()) => Ok((StatusCode::CREATED, axum::Json(Done { ok: true }))),
        Err(EngineError::AlreadyExists(_)) => Err(RedisError::Redis {
            status: StatusCode::CONFLICT,
            code: "BUSYGROUP",
            message: format!("consumer group `{}` already exists", request.group),
        }),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct GroupRequest {
    group: String,
}

#[derive(Serialize)]
pub struct Destroyed {
    destroyed: u64,
}

/// `XGROUP DESTROY key group`: how many groups were destroyed (0 or 1).
pub async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    JsonBody(request): JsonBody<GroupRequest>,
) -> RedisResult<axum::Json<Destroyed>> {
    let stream = open(&state, &caller, Operation::ReconfigureStream, &path).await?;
    let destroyed = state.engine.delete_group(&stream, &request.group).await?;
    Ok(axum::Json(Destroyed {
        destroyed: u64::from(destroyed),
    }))
}

#[derive(Deserialize)]
pub struct ConsumerRequest {
    group: String,
    consumer: String,
}

#[derive(Serialize)]
pub struct Removed {
    pending: usize,
}

/// `XGROUP DELCONSUMER key group consumer`: how many pending entries it had.
pub async fn delete_consumer(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    JsonBody(request): JsonBody<ConsumerRequest>,
) -> RedisResult<axum::Json<Removed>> {
    let stream = open(&state, &caller, Operation::ReconfigureStream, &path).await?;
    let pending = update(&state.engine, &stream, &request.group, |g| {
        let known = g.consumers.contains_key(&request.consumer);
        let pending = g.remove_consumer(&request.consumer);
        (pending, known)
    })
    .await?;
    Ok(axum::Json(Removed { pending }))
}

#[derive(Deserialize)]
pub struct ReadRequest {
    group: String,
    consumer: String,
    /// `>` for entries never delivered to the group; otherwise the consumer's own pending
    /// entries after this id (`0`: all of them).
    #[serde(default = "new_entries")]
    id: String,
    count: Option<usize>,
    /// With `>`: wait up to this long when there is nothing new (0: as long as possible).
    block_ms: Option<u64>,
    /// Deliver without tracking: the entries count as acknowledged at once.
    #[serde(default)]
    noack: bool,
}

fn new_entries() -> String {
    ">".into()
}

/// `XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key id`.
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    JsonBody(request): JsonBody<ReadRequest>,
) -> RedisResult<axum::Json<Entries>> {
    check_name("a consumer name", &request.consumer)?;
    let stream = open(&state, &caller, Operation::Read, &path).await?;
    let count = count_of(request.count)?;
    let history = match request.id.as_str() {
        ">" => None,
        id => Some(after_id(id)?),
    };
    let mut wait = block_for(request.block_ms);
    for attempt in 0..MAX_RACES {
        back_off(attempt).await;
        let Some(read) = state.engine.group(&stream, &request.group).await? else {
            return Err(RedisError::no_group(&request.group));
        };
        let mut group = read.entry;
        let now = now_ms();
        let entries = match history {
            None => {
                let from = ReadFrom::SeqNum(group.next_seq);
                let found = read_entries(
                    &state.engine,
                    &stream,
                    from,
                    count,
                    Stop::default(),
                    wait.take(),
                )
                .await?;
                if found.next_seq.is_none() && group.consumers.contains_key(&request.consumer) {
                    return Ok(axum::Json(Entries { entries: vec![] }));
                }
                let delivered: Vec<(u64, u64)> = found
                    .entries
                    .iter()
                    .map(|e| (e.seq_num, e.timestamp))
                    .collect();
                if let Some(last) = found.entries.last() {
                    group.last_delivered_id = last.id.clone();
                }
                let up_to = found.next_seq.unwrap_or(group.next_seq);
                group.deliver_new(&request.consumer, &delivered, up_to, now, !request.noack);
                found.entries
            }
            Some(after) => {
                let seqs = group.pending_of(&request.consumer, after, count);
                let entries = entries_at(&state.engine, &stream, &group, &seqs).await?;
                group.redeliver(&seqs, now);
                group.touch(&request.consumer, now);
                entries
            }
        };
        if let Written::Done(_) = state
            .engine
            .replace_group(&stream, group, &read.etag)
            .await?
        {
            return Ok(axum::Json(Entries { entries }));
        }
    }
    Err(raced())
}

#[derive(Deserialize)]
pub struct AckRequest {
    group: String,
    ids: Vec<String>,
}

#[derive(Serialize)]
pub struct Acked {
    acked: usize,
}

/// `XACK key group id …`: how many of the ids were pending.
pub async fn ack(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    JsonBody(request): JsonBody<AckRequest>,
) -> RedisResult<axum::Json<Acked>> {
    let stream = open(&state, &caller, Operation::Read, &path).await?;
    let seqs = request
        .ids
        .iter()
        .map(|id| parse_id(id))
        .collect::<Result<Vec<_>, _>>()?;
    let acked = update(&state.engine, &stream, &request.group, |g| {
        let acked = g.ack(&seqs);
        (acked, acked > 0)
    })
    .await?;
    Ok(axum::Json(Acked { acked }))
}

#[derive(Deserialize)]
pub struct PendingQuery {
    group: String,
    start: Option<String>,
    end: Option<String>,
    /// Present: list entries; absent: the summary.
    count: Option<usize>,
    consumer: Option<String>,
    #[serde(default)]
    idle_ms: u64,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum PendingReply {
    Summary {
        pending: usize,
        min_id: Option<String>,
        max_id: Option<String>,
        consumers: Vec<ConsumerPending>,
    },
    Entries {
        entries: Vec<PendingEntry>,
    },
}

#[derive(Serialize)]
pub struct ConsumerPending {
    name: String,
    pending: usize,
}

#[derive(Serialize)]
pub struct PendingEntry {
    id: String,
    consumer: String,
    idle_ms: u64,
    deliveries: u64,
}

/// `XPENDING key group` (the summary) or `XPENDING key group [IDLE ms] start end count
/// [consumer]` (the entries).
pub async fn pending(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    QueryOf(query): QueryOf<PendingQuery>,
) -> RedisResult<axum::Json<PendingReply>> {
    let stream = open(&state, &caller, Operation::Read, &path).await?;
    let Some(read) = state.engine.group(&stream, &query.group).await? else {
        return Err(RedisError::no_group(&query.group));
    };
    let group = read.entry;
    let id_of = |(seq, p): (&u64, &Pending)| entry_id(p.timestamp, *seq);
    let Some(count) = query.count else {
        let mut consumers: Vec<ConsumerPending> = Vec::new();
        for p in group.pending.values() {
            match consumers.iter_mut().find(|c| c.name == p.consumer) {
                Some(c) => c.pending += 1,
                None => consumers.push(ConsumerPending {
                    name: p.consumer.clone(),
                    pending: 1,
                }),
            }
        }
        consumers.sort_by(|a, b| a.name.cmp(&b.name));
        return Ok(axum::Json(PendingReply::Summary {
            pending: group.pending.len(),
            min_id: group.pending.iter().next().map(id_of),
            max_id: group.pending.iter().next_back().map(id_of),
            consumers,
        }));
    };
    let (start, end) = parse_range(query.start.as_deref(), query.end.as_deref())?;
    let now = now_ms();
    let entries = group
        .pending
        .iter()
        .filter(|(seq, p)| {
            after_start(start, **seq, p.timestamp) && before_end(end, **seq, p.timestamp)
        })
        .filter(|(_, p)| query.consumer.as_ref().is_none_or(|c| *c == p.consumer))
        .filter(|(_, p)| now.saturating_sub(p.delivered_ms) >= query.idle_ms)
        .take(count_of(Some(count))?)
        .map(|(seq, p)| PendingEntry {
            id: entry_id(p.timestamp, *seq),
            consumer: p.consumer.clone(),
            idle_ms: now.saturating_sub(p.delivered_ms),
            deliveries: p.deliveries,
        })
        .collect();
    Ok(axum::Json(PendingReply::Entries { entries }))
}

fn after_start(bound: super::ids::RangeBound, seq: u64, timestamp: u64) -> bool {
    match bound.at {
        Bound::Open => true,
        Bound::Seq(s) => seq > s || (seq == s && !bound.exclusive),
        Bound::Time(t) => timestamp > t || (timestamp == t && !bound.exclusive),
    }
}

fn before_end(bound: super::ids::RangeBound, seq: u64, timestamp: u64) -> bool {
    match bound.at {
        Bound::Open => true,
        Bound::Seq(s) => seq < s || (seq == s && !bound.exclusive),
        Bound::Time(t) => timestamp < t || (timestamp == t && !bound.exclusive),
    }
}

#[derive(Deserialize)]
pub struct ClaimRequest {
    group: String,
    consumer: String,
    #[serde(default)]
    min_idle_ms: u64,
    ids: Vec<String>,
    /// Return the claimed ids only.
    #[serde(default)]
    justid: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum Claimed {
    Entries { entries: Vec<Entry> },
    Ids { ids: Vec<String> },
}

/// `XCLAIM key group consumer min-idle-time id … [JUSTID]`: the entries it now has.
pub async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    JsonBody(request): JsonBody<ClaimRequest>,
) -> RedisResult<axum::Json<Claimed>> {
    check_name("a consumer name", &request.consumer)?;
    let stream = open(&state, &caller, Operation::Read, &path).await?;
    let seqs = request
        .ids
        .iter()
        .map(|id| parse_id(id))
        .collect::<Result<Vec<_>, _>>()?;
    let now = now_ms();
    let (claimed, group) = update(&state.engine, &stream, &request.group, |g| {
        let claimed = g.claim(&request.consumer, &seqs, request.min_idle_ms, now);
        let changed = !claimed.is_empty();
        ((claimed, g.clone()), changed)
    })
    .await?;
    if request.justid {
        let ids = claimed
            .iter()
            .map(|seq| entry_id(group.pending[seq].timestamp, *seq))
            .collect();
        return Ok(axum::Json(Claimed::Ids { ids }));
    }
    let entries = entries_at(&state.engine, &stream, &group, &claimed).await?;
    Ok(axum::Json(Claimed::Entries { entries }))
}

#[derive(Deserialize)]
pub struct AutoClaimRequest {
    group: String,
    consumer: String,
    #[serde(default)]
    min_idle_ms: u64,
    /// Scan pending entries from this id.
    #[serde(default = "zero_id")]
    start: String,
    count: Option<usize>,
    #[serde(default)]
    justid: bool,
}

fn zero_id() -> String {
    "0-0".into()
}

#[derive(Serialize)]
pub struct AutoClaimed {
    /// Where the next scan starts; `0-0` when the scan reached the end.
    next: String,
    #[serde(flatten)]
    claimed: Claimed,
    /// Pending ids whose records are gone; they are no longer pending.
    deleted: Vec<String>,
}

/// `XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID]`.
pub async fn autoclaim(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    JsonBody(request): JsonBody<AutoClaimRequest>,
) -> RedisResult<axum::Json<AutoClaimed>> {
    check_name("a consumer name", &request.consumer)?;
    let stream = open(&state, &caller, Operation::Read, &path).await?;
    let start = after_id(&request.start)?.unwrap_or(0);
    let count = count_of(request.count)?;
    for attempt in 0..MAX_RACES {
        back_off(attempt).await;
        let Some(read) = state.engine.group(&stream, &request.group).await? else {
            return Err(RedisError::no_group(&request.group));
        };
        let mut group = read.entry;
        let now = now_ms();
        let (idle, next) = group.idle_from(start, request.min_idle_ms, now, count);
        let next = next.map_or_else(
            || "0-0".to_owned(),
            |seq| entry_id(group.pending[&seq].timestamp, seq),
        );
        if idle.is_empty() {
            return Ok(axum::Json(AutoClaimed {
                next,
                claimed: Claimed::Entries { entries: vec![] },
                deleted: vec![],
            }));
        }
        let found = entries_at(&state.engine, &stream, &group, &idle).await?;
        let (entries, gone): (Vec<Entry>, Vec<Entry>) =
            found.into_iter().partition(|e| e.fields.is_some());
        let live: Vec<u64> = entries.iter().map(|e| e.seq_num).collect();
        let gone_seqs: Vec<u64> = gone.iter().map(|e| e.seq_num).collect();
        group.claim(&request.consumer, &live, request.min_idle_ms, now);
        group.ack(&gone_seqs);
        if let Written::Done(_) = state
            .engine
            .replace_group(&stream, group, &read.etag)
            .await?
        {
            let claimed = if request.justid {
                Claimed::Ids {
                    ids: entries.into_iter().map(|e| e.id).collect(),
                }
            } else {
                Claimed::Entries { entries }
            };
            return Ok(axum::Json(AutoClaimed {
                next,
                claimed,
                deleted: gone.into_iter().map(|e| e.id).collect(),
            }));
        }
    }
    Err(raced())
}

#[derive(Serialize)]
pub struct GroupInfo {
    name: String,
    consumers: usize,
    pending: usize,
    last_delivered_id: String,
}

#[derive(Serialize)]
pub struct Groups {
    groups: Vec<GroupInfo>,
}

/// `XINFO GROUPS key`.
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
) -> RedisResult<axum::Json<Groups>> {
    let stream = open(&state, &caller, Operation::Read, &path).await?;
    let groups = state
        .engine
        .groups(&stream)
        .await?
        .into_iter()
        .map(|g| GroupInfo {
            consumers: g.consumers.len(),
            pending: g.pending.len(),
            last_delivered_id: g.last_delivered_id,
            name: g.name,
        })
        .collect();
    Ok(axum::Json(Groups { groups }))
}

#[derive(Deserialize)]
pub struct ConsumersQuery {
    group: String,
}

#[derive(Serialize)]
pub struct ConsumerInfo {
    name: String,
    pending: usize,
    idle_ms: u64,
}

#[derive(Serialize)]
pub struct Consumers {
    consumers: Vec<ConsumerInfo>,
}

/// `XINFO CONSUMERS key group`: idle time is since the consumer last read or claimed.
pub async fn consumers(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    QueryOf(query): QueryOf<ConsumersQuery>,
) -> RedisResult<axum::Json<Consumers>> {
    let stream = open(&state, &caller, Operation::Read, &path).await?;
    let Some(read) = state.engine.group(&stream, &query.group).await? else {
        return Err(RedisError::no_group(&query.group));
    };
    let group = read.entry;
    let now = now_ms();
    let consumers = group
        .consumers
        .iter()
        .map(|(name, &seen)| ConsumerInfo {
            name: name.clone(),
            pending: group
                .pending
                .values()
                .filter(|p| &p.consumer == name)
                .count(),
            idle_ms: now.saturating_sub(seen),
        })
        .collect();
    Ok(axum::Json(Consumers { consumers }))
}
