//! Applying the commands that touch a key's entries (not its groups): `XADD`, `XLEN`,
//! `XRANGE`/`XREVRANGE`, `XREAD`, `XTRIM`, `XDEL`, `XINFO STREAM`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use s2_common::access::Operation;

use super::{
    Context, RedisError, RedisResult, Reply,
    cmd::{TrimBy, TrimSpec, xadd::Xadd, xdel::Xdel, xrange::Xrange, xread::Xread},
    ids::{AddId, EntryId, ReadFrom},
    keyspace::{Entry, Key, Snapshot},
};
use crate::engine::{
    Ack, AppendInput, ConditionFailed, EngineError, EntryState, EntryView, NODE_ENTRIES, Races,
    RecordBatchBuilder, read_unary,
};

/// How the appender words its refusal of an entry id (see [`crate::engine::entries`]).
const ID_NOT_ABOVE: &str = "is not above the stream's last id";

fn raced() -> RedisError {
    RedisError::Unavailable("the key kept changing concurrently; retry".into())
}

fn exhausted() -> RedisError {
    RedisError::err("The stream has exhausted the last possible ID, unable to add more items")
}

fn too_small() -> RedisError {
    RedisError::err("The ID specified in XADD is equal or smaller than the target stream top item")
}

pub async fn xadd(ctx: &Context, c: &Xadd) -> RedisResult<Reply> {
    if let Some(started) = xadd_start(ctx, c).await {
        return match started? {
            Started::Now(reply) => Ok(reply),
            Started::Later(ack) => ack.await,
        };
    }
    let Some(key) = open_for_add(ctx, c).await? else {
        return Ok(Reply::Nil);
    };
    let fields = field_refs(c);
    let id = match c.id {
        AddId::Auto => auto_id(append(ctx, &key, None, &fields, None).await)?,
        AddId::AutoSeq(_) | AddId::Exact(_) => add_explicit(ctx, &key, c.id, &fields).await?,
    };
    if let Some(spec) = c.trim {
        trim(ctx, &key, spec).await?;
    }
    Ok(Reply::text(id))
}

/// An `XADD` begun: its reply now, or the wait for its acknowledgement.
pub enum Started {
    Now(Reply),
    Later(BoxFuture<'static, RedisResult<Reply>>),
}

/// Begins an `XADD` whose effect is fixed once its entry is queued at the key's
/// appender — an id of `*` and no trimming — and returns without waiting for the
/// commit: the appender applies entries in the order they are queued, so entries
/// begun one after another get increasing ids whatever commits they land in. `None`
/// for any other `XADD` (its id or its trimming depends on the entries before it),
/// before anything is done.
pub async fn xadd_start(ctx: &Context, c: &Xadd) -> Option<RedisResult<Started>> {
    if c.id != AddId::Auto || c.trim.is_some() {
        return None;
    }
    Some(
        async {
            let Some(key) = open_for_add(ctx, c).await? else {
                return Ok(Started::Now(Reply::Nil));
            };
            let input = append_input(None, &field_refs(c), None)?;
            let ack = ctx
                .engine
                .submit(&key.handle, input, None)
                .await
                .map_err(RedisError::from)?;
            Ok(Started::Later(Box::pin(async move {
                let acked = ack.await.unwrap_or_else(|_| {
                    Err(EngineError::Storage(
                        "appender stopped before answering".into(),
                    ))
                });
                auto_id(acked_or(acked)).map(Reply::text)
            })))
        }
        .await,
    )
}

/// The id the appender gave an entry added with `*`.
fn auto_id(acked: Result<Ack, AppendError>) -> RedisResult<EntryId> {
    match acked {
        Ok(ack) => Ok(EntryId::new(ack.start.timestamp, ack.start.seq_num)),
        // The appender refuses a derived id only past the largest id there is.
        Err(AppendError::Failed(RedisError::Reply(m))) if m.contains(ID_NOT_ABOVE) => {
            Err(exhausted())
        }
        Err(e) => Err(e.into()),
    }
}

/// The key an `XADD` adds to, created unless `NOMKSTREAM`; `None` when it does not
/// exist and may not be created.
async fn open_for_add(ctx: &Context, c: &Xadd) -> RedisResult<Option<Key>> {
    if c.nomkstream {
        ctx.open(&c.key, Operation::Append).await
    } else {
        ctx.open_or_create(&c.key, Operation::Append)
            .await
            .map(Some)
    }
}

fn field_refs(c: &Xadd) -> Vec<(&[u8], &[u8])> {
    c.fields.iter().map(|(f, v)| (&f[..], &v[..])).collect()
}

/// Adds an entry whose id depends on the key's last one, conditional on no other append
/// landing in between.
async fn add_explicit(
    ctx: &Context,
    key: &Key,
    wanted: AddId,
    fields: &[(&[u8], &[u8])],
) -> RedisResult<EntryId> {
    let mut races = Races::new("the key", ctx.engine.random());
    loop {
        races.next().await?;
        let view = ctx.engine.entry_view(&key.handle).await?;
        let last = view.state.last_id();
        if last == EntryId::MAX {
            return Err(exhausted());
        }
        let id = match wanted {
            AddId::Exact(id) if id > last => id,
            AddId::AutoSeq(ms) if ms > last.ms => EntryId::new(ms, 0),
            AddId::AutoSeq(ms) if ms == last.ms && last.seq < u64::MAX => {
                EntryId::new(ms, last.seq + 1)
            }
            _ => return Err(too_small()),
        };
        match append(ctx, key, Some(id), fields, Some(view.next_seq())).await {
            Ok(_) => return Ok(id),
            Err(AppendError::Moved) => continue,
            Err(AppendError::Failed(e)) => return Err(e),
        }
    }
}

enum AppendError {
    /// The match_seq_num no longer held.
    Moved,
    Failed(RedisError),
}

impl From<AppendError> for RedisError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Moved => raced(),
            AppendError::Failed(e) => e,
        }
    }
}

async fn append(
    ctx: &Context,
    key: &Key,
    id: Option<EntryId>,
    fields: &[(&[u8], &[u8])],
    match_seq_num: Option<u64>,
) -> Result<Ack, AppendError> {
    let input = append_input(id, fields, match_seq_num).map_err(AppendError::Failed)?;
    acked_or(ctx.engine.append(&key.handle, input, None).await)
}

/// One entry as the batch the appender takes.
fn append_input(
    id: Option<EntryId>,
    fields: &[(&[u8], &[u8])],
    match_seq_num: Option<u64>,
) -> RedisResult<AppendInput> {
    let mut builder = RecordBatchBuilder::with_capacity(1, 0);
    let batch = builder
        .push_entry(id, fields)
        .and_then(|()| builder.finish())
        .map_err(|e| RedisError::err(format!("{e:?}")))?;
    Ok(AppendInput {
        batch,
        match_seq_num,
        fencing_token: None,
    })
}

/// The appender's answer, its refusals in Redis's terms.
fn acked_or(acked: Result<Ack, EngineError>) -> Result<Ack, AppendError> {
    match acked {
        Ok(ack) => Ok(ack),
        Err(EngineError::ConditionFailed(ConditionFailed::SeqNumMismatch(_))) => {
            Err(AppendError::Moved)
        }
        Err(EngineError::ConditionFailed(ConditionFailed::FencingTokenMismatch(_))) => Err(
            AppendError::Failed(RedisError::err("the stream is fenced by an S2 client")),
        ),
        Err(e) => Err(AppendError::Failed(e.into())),
    }
}

pub async fn xlen(ctx: &Context, key: &[u8]) -> RedisResult<Reply> {
    let Some(key) = ctx.open(key, Operation::Read).await? else {
        return Ok(Reply::Int(0));
    };
    let snap = Snapshot::take(&ctx.engine, &key).await?;
    Ok(Reply::int(snap.length()))
}

fn entries_reply(entries: &[Entry]) -> Reply {
    Reply::Array(entries.iter().map(Entry::reply).collect())
}

/// `COUNT` as a number of entries (`None`: all).
fn count_limit(count: Option<u64>) -> usize {
    count.map_or(usize::MAX, |c| usize::try_from(c).unwrap_or(usize::MAX))
}

pub async fn xrange(ctx: &Context, c: &Xrange) -> RedisResult<Reply> {
    let Some(key) = ctx.open(&c.key, Operation::Read).await? else {
        return Ok(Reply::Array(vec![]));
    };
    let max = count_limit(c.count);
    if max == 0 {
        return Ok(Reply::NilArray);
    }
    if c.start > c.end {
        return Ok(Reply::Array(vec![]));
    }
    let snap = Snapshot::take(&ctx.engine, &key).await?;
    let entries = range(ctx, &key, &snap, c.start, c.end, max, c.rev).await?;
    Ok(entries_reply(&entries))
}

/// Entries with ids in `start..=end`, at most `max`, oldest or (`rev`) newest first.
pub async fn range(
    ctx: &Context,
    key: &Key,
    snap: &Snapshot,
    start: EntryId,
    end: EntryId,
    max: usize,
    rev: bool,
) -> RedisResult<Vec<Entry>> {
    if rev {
        let before = match end.next() {
            Some(after) => snap.seek(&ctx.engine, key, after).await?,
            None => snap.next_seq(),
        };
        snap.backward(&ctx.engine, key, before, start, max).await
    } else {
        let from = snap.seek(&ctx.engine, key, start).await?;
        snap.forward(&ctx.engine, key, from, end, max).await
    }
}

/// Entries with ids above `after`, at most `max`.
pub async fn after(
    ctx: &Context,
    key: &Key,
    snap: &Snapshot,
    after: EntryId,
    max: usize,
) -> RedisResult<Vec<Entry>> {
    match after.next() {
        Some(start) => range(ctx, key, snap, start, EntryId::MAX, max, false).await,
        None => Ok(Vec::new()),
    }
}

pub async fn xread(ctx: &Context, c: &Xread) -> RedisResult<Reply> {
    let max = count_limit(c.count);
    let max = if max == 0 { usize::MAX } else { max };
    // `$` is the last id as the command arrives.
    let mut from = Vec::with_capacity(c.keys.len());
    for (name, start) in c.keys.iter().zip(&c.from) {
        let key = ctx.open(name, Operation::Read).await?;
        let after = match (start, &key) {
            (ReadFrom::After(id), _) => *id,
            (ReadFrom::Last, Some(k)) => ctx.engine.entry_view(&k.handle).await?.state.last_id(),
            (ReadFrom::Last, None) => EntryId::ZERO,
        };
        from.push(after);
    }
    let deadline = block_deadline(ctx, c.block_ms);
    loop {
        let mut found = Vec::new();
        let mut keys = Vec::new();
        for (name, after_id) in c.keys.iter().zip(&from) {
            let Some(key) = ctx.open(name, Operation::Read).await? else {
                continue;
            };
            let snap = Snapshot::take(&ctx.engine, &key).await?;
            let entries = after(ctx, &key, &snap, *after_id, max).await?;
            if !entries.is_empty() {
                found.push((name.clone(), entries_reply(&entries)));
            }
            keys.push((key, snap.next_seq()));
        }
        if !found.is_empty() {
            return Ok(Reply::streams(found));
        }
        match deadline {
            Some(Some(at)) if Instant::now() < at => wait_for_any(ctx, &keys, at).await?,
            Some(None) => {
                wait_for_any(ctx, &keys, Instant::now() + Duration::from_secs(3600)).await?
            }
            _ => return Ok(Reply::NilArray),
        }
    }
}

/// When a `BLOCK` ends: `None` without `BLOCK`; `Some(None)` never.
pub fn block_deadline(ctx: &Context, block_ms: Option<u64>) -> Option<Option<Instant>> {
    let block_ms = block_ms?;
    let wait = match (block_ms, ctx.max_block) {
        (0, None) => return Some(None),
        (0, Some(cap)) => cap,
        (ms, cap) => {
            let d = Duration::from_millis(ms);
            cap.map_or(d, |cap| d.min(cap))
        }
    };
    Some(Some(Instant::now() + wait))
}

/// Waits until one of `keys` gets a record past the given seq_num, or `until`; keys that
/// do not exist yet are looked at again every so often.
pub async fn wait_for_any(ctx: &Context, keys: &[(Key, u64)], until: Instant) -> RedisResult<()> {
    let recheck = Instant::now() + Duration::from_millis(250);
    let until = until.min(recheck.max(Instant::now()));
    let wait = until.saturating_duration_since(Instant::now());
    if keys.is_empty() {
        tokio::time::sleep(wait).await;
        return Ok(());
    }
    let waits = keys.iter().map(|(key, next_seq)| {
        let engine = ctx.engine.clone();
        let handle = key.handle.clone();
        let next_seq = *next_seq;
        Box::pin(async move {
            use s2_common::{
                read_extent::ReadLimit,
                stream::{ReadEnd, ReadFrom as S2From, ReadStart},
            };
            let start = ReadStart {
                from: S2From::SeqNum(next_seq),
                clamp: true,
            };
            let end = ReadEnd {
                limit: ReadLimit::Count(1),
                until: None.into(),
                wait: Some(wait),
            };
            match engine.read(&handle, start, end, true).await {
                Ok(session) => read_unary(session).await.map(|_| ()),
                Err(EngineError::Unwritten(_)) => Ok(()),
                Err(e) => Err(e),
            }
        })
    });
    let (first, _, _) = futures::future::select_all(waits).await;
    first?;
    Ok(())
}

pub async fn xtrim(ctx: &Context, name: &Bytes, spec: TrimSpec) -> RedisResult<Reply> {
    let Some(key) = ctx.open(name, Operation::Trim).await? else {
        return Ok(Reply::Int(0));
    };
    Ok(Reply::int(trim(ctx, &key, spec).await?))
}

/// Whether two snapshots show the same entries (so a change planned on one holds on the
/// other).
fn same_entries(a: &EntryView, b: &Snapshot) -> bool {
    a.first_readable == b.first() && a.tail == b.view.tail && a.state == *b.state()
}

/// Redis's `streamTrim` over Sluice's nodes ([`NODE_ENTRIES`]): whole nodes go first; an
/// exact trim then removes entries from the next node one by one, `~` stops instead.
/// Returns how many entries went.
pub async fn trim(ctx: &Context, key: &Key, spec: TrimSpec) -> RedisResult<u64> {
    let mut races = Races::new("the key", ctx.engine.random());
    loop {
        races.next().await?;
        let snap = Snapshot::take(&ctx.engine, key).await?;
        let (trim_to, removed) = plan_trim(ctx, key, &snap, spec).await?;
        if removed == 0 {
            return Ok(0);
        }
        let outcome = ctx
            .engine
            .modify_entries(
                &key.handle,
                |edit| {
                    if !same_entries(edit.view, &snap) {
                        return Ok(Some(false));
                    }
                    edit.trim_to = Some(trim_to);
                    if trim_to >= snap.next_seq() {
                        edit.state.start_node_at(snap.next_seq());
                    }
                    Ok(Some(true))
                },
                || true,
            )
            .await?;
        if outcome {
            return Ok(removed);
        }
    }
}

/// The seq_num to trim to and how many entries that removes.
async fn plan_trim(
    ctx: &Context,
    key: &Key,
    snap: &Snapshot,
    spec: TrimSpec,
) -> RedisResult<(u64, u64)> {
    let mut length = snap.length();
    let limit = match (spec.approximate, spec.limit) {
        (false, _) => 0,
        (true, None) => 100 * NODE_ENTRIES,
        (true, Some(l)) => l,
    };
    let mut at = snap.first();
    let mut removed = 0u64;
    let state = snap.state();
    while at < snap.next_seq() {
        if let TrimBy::MaxLen(max) = spec.by
            && length <= max
        {
            break;
        }
        let node = state.node_of(at);
        let node_end = node.end.min(snap.next_seq());
        let live = snap.live_within(at..node_end);
        if live == 0 {
            at = node_end;
            continue;
        }
        // Redis stops before a node that would take it past the limit.
        if limit > 0 && removed + live > limit {
            break;
        }
        let remove_node = match spec.by {
            TrimBy::MaxLen(max) => length - live >= max,
            TrimBy::MinId(min) => node_last_id(ctx, key, snap, node_end).await? < min,
        };
        if remove_node {
            length -= live;
            removed += live;
            at = node_end;
            continue;
        }
        if spec.approximate {
            break;
        }
        // Entries of this node one by one.
        let entries = snap
            .forward(&ctx.engine, key, at, EntryId::MAX, live as usize)
            .await?;
        for e in entries {
            let done = match spec.by {
                TrimBy::MaxLen(max) => length <= max,
                TrimBy::MinId(min) => e.id >= min,
            };
            if done {
                return Ok((e.seq, removed));
            }
            length -= 1;
            removed += 1;
            at = e.seq + 1;
        }
        break;
    }
    Ok((at, removed))
}

/// The id of the last record of a node ending before `node_end`, deleted or not.
async fn node_last_id(
    ctx: &Context,
    key: &Key,
    snap: &Snapshot,
    node_end: u64,
) -> RedisResult<EntryId> {
    let from = node_end.saturating_sub(NODE_ENTRIES).max(snap.first());
    let recs = super::keyspace::records(&ctx.engine, key, from, (node_end - from) as usize).await?;
    Ok(recs
        .iter()
        .rev()
        .filter(|r| r.seq < node_end)
        .find_map(|r| r.id)
        .unwrap_or(EntryId::ZERO))
}

pub async fn xdel(ctx: &Context, c: &Xdel) -> RedisResult<Reply> {
    let Some(key) = ctx.open(&c.key, Operation::Trim).await? else {
        return Ok(Reply::Int(0));
    };
    let ids = c.ids.clone()?;
    let mut races = Races::new("the key", ctx.engine.random());
    loop {
        races.next().await?;
        let snap = Snapshot::take(&ctx.engine, &key).await?;
        let mut found = Vec::new();
        for id in &ids {
            if let Some(e) = snap.find(&ctx.engine, &key, *id).await? {
                found.push((e.seq, e.id));
            }
        }
        if found.is_empty() {
            return Ok(Reply::Int(0));
        }
        let outcome = ctx
            .engine
            .modify_entries(
                &key.handle,
                |edit| {
                    if !same_entries(edit.view, &snap) {
                        return Ok(Some(None));
                    }
                    let deleted = delete_in(edit.state, &snap, &found);
                    // A deleted run at the head goes with the trim point.
                    if let Some(head) = edit.state.deleted_ranges().next()
                        && head.start == snap.first()
                    {
                        edit.trim_to = Some(head.end);
                    }
                    Ok(Some(Some(deleted)))
                },
                || None,
            )
            .await?;
        if let Some(deleted) = outcome {
            return Ok(Reply::int(deleted));
        }
    }
}

/// Marks `found` (seq_num, id) deleted; how many were not already. A tail node left
/// without entries is gone, so the next entry opens a new node, as in Redis.
fn delete_in(state: &mut EntryState, snap: &Snapshot, found: &[(u64, EntryId)]) -> u64 {
    let mut deleted = 0;
    for &(seq, id) in found {
        if state.delete(seq) {
            deleted += 1;
            if id > state.max_deleted_id() {
                (state.max_deleted_ms, state.max_deleted_seq) = (id.ms, id.seq);
            }
        }
    }
    let next = snap.next_seq();
    if next > 0 {
        let tail_node = state.node_of(next - 1);
        let from = tail_node.start.max(snap.first());
        let dead = state.deleted_within(from..next);
        if next - from == dead {
            state.start_node_at(next);
        }
    }
    deleted
}

/// Nodes holding entries, as `XINFO STREAM`'s `radix-tree-keys`.
pub fn node_count(snap: &Snapshot) -> u64 {
    let mut at = snap.first();
    let mut nodes = 0;
    while at < snap.next_seq() {
        let end = snap.state().node_of(at).end.min(snap.next_seq());
        if snap.live_within(at..end) > 0 {
            nodes += 1;
        }
        at = end;
    }
    nodes
}

/// `XINFO STREAM key [FULL [COUNT n]]`. `groups` is the key's groups as `XINFO STREAM`
/// shows them: their count, or with `FULL` their detail.
pub async fn xinfo_stream(
    ctx: &Context,
    key: &Key,
    full: Option<u64>,
    groups: Reply,
) -> RedisResult<Reply> {
    let snap = Snapshot::take(&ctx.engine, key).await?;
    let first = snap.first_entry(&ctx.engine, key).await?;
    let keys = node_count(&snap);
    let mut fields: Vec<(&'static str, Reply)> = vec![
        ("length", Reply::int(snap.length())),
        ("radix-tree-keys", Reply::int(keys)),
        ("radix-tree-nodes", Reply::int(keys + 1)),
        ("last-generated-id", Reply::text(snap.last_id())),
        (
            "max-deleted-entry-id",
            Reply::text(snap.state().max_deleted_id()),
        ),
        ("entries-added", Reply::int(snap.entries_added())),
        (
            "recorded-first-entry-id",
            Reply::text(first.as_ref().map_or(EntryId::ZERO, |e| e.id)),
        ),
    ];
    match full {
        None => {
            let last = snap.last_entry(&ctx.engine, key).await?;
            fields.push(("groups", groups));
            fields.push((
                "first-entry",
                first.as_ref().map_or(Reply::Nil, Entry::reply),
            ));
            fields.push(("last-entry", last.as_ref().map_or(Reply::Nil, Entry::reply)));
        }
        Some(count) => {
            let max = if count == 0 {
                usize::MAX
            } else {
                count_limit(Some(count))
            };
            let entries = snap
                .forward(&ctx.engine, key, snap.first(), EntryId::MAX, max)
                .await?;
            fields.push(("entries", entries_reply(&entries)));
            fields.push(("groups", groups));
        }
    }
    Ok(Reply::map(fields))
}
