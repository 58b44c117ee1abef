//! Applying the consumer-group commands: `XGROUP`, `XREADGROUP`, `XACK`, `XPENDING`,
//! `XCLAIM`, `XAUTOCLAIM`, `XINFO GROUPS|CONSUMERS` and the groups of `XINFO STREAM`.
//!
//! A group is one object changed by conditional writes ([`crate::engine::groups`]); a
//! node's commands on one group go out together through its group commit
//! ([`super::group_commit`]), and what a command answers is what a winning write recorded,
//! so an entry is handed to one consumer at a time whichever node serves it. What the state
//! machine needs to know of the stream (which ids still exist, the stream's counters) is
//! read before each try.

use std::collections::HashSet;

use bytes::Bytes;
use s2_common::access::Operation;

use super::group_commit;
use super::{
    Context, RedisError, RedisResult, Reply,
    cmd::{
        xack::Xack, xautoclaim::Xautoclaim, xclaim::Xclaim, xgroup::Xgroup, xpending::Xpending,
        xreadgroup::Xreadgroup,
    },
    ids::{EntryId, GroupFrom, GroupStart},
    keyspace::{Entry, Key, Snapshot},
    streams::{block_deadline, wait_for_any},
};
use crate::engine::{ClaimOptions, EngineError, GroupState, StreamFacts};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Group and consumer names are UTF-8 on Sluice (they name objects).
fn name_of(what: &str, b: &Bytes) -> RedisResult<String> {
    String::from_utf8(b.to_vec())
        .map_err(|_| RedisError::err(format!("{what} names must be UTF-8 on Sluice")))
}

/// `NOGROUP No such key '<k>' or consumer group '<g>'` and its variants.
fn no_group(key: &[u8], group: &[u8], suffix: &str) -> RedisError {
    RedisError::Reply(format!(
        "NOGROUP No such key '{}' or consumer group '{}'{suffix}",
        text(key),
        text(group)
    ))
}

fn no_such_group_for_key(key: &[u8], group: &[u8]) -> RedisError {
    RedisError::Reply(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        text(group),
        text(key)
    ))
}

/// The stream's counters as the group state machine needs them.
pub async fn facts(ctx: &Context, key: &Key, snap: &Snapshot) -> RedisResult<StreamFacts> {
    let first = snap.first_entry(&ctx.engine, key).await?;
    Ok(StreamFacts {
        entries_added: snap.entries_added(),
        length: snap.length(),
        first_id: first.map_or(EntryId::ZERO, |e| e.id),
        last_id: snap.last_id(),
        max_deleted_id: snap.state().max_deleted_id(),
    })
}

/// Which of `ids` are live entries, with the entries.
async fn existing(
    ctx: &Context,
    key: &Key,
    snap: &Snapshot,
    ids: impl IntoIterator<Item = EntryId>,
) -> RedisResult<Vec<Entry>> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for id in ids {
        if seen.insert(id)
            && let Some(e) = snap.find(&ctx.engine, key, id).await?
        {
            found.push(e);
        }
    }
    Ok(found)
}

fn exists_in(entries: &[Entry]) -> impl Fn(EntryId) -> bool + '_ {
    move |id| entries.iter().any(|e| e.id == id)
}

/// Runs `change` on the group through this node's group commit
/// ([`super::group_commit`]).
async fn update<P, R, F>(
    ctx: &Context,
    key: &Key,
    group: &str,
    missing: impl Fn() -> RedisError,
    prepare: impl Fn(&GroupState) -> F,
    change: impl FnMut(&mut GroupState, &P) -> (R, bool),
) -> RedisResult<R>
where
    F: std::future::Future<Output = RedisResult<P>>,
{
    group_commit::update(&ctx.engine, key, group, missing, prepare, change).await
}

pub async fn xgroup(ctx: &Context, c: &Xgroup) -> RedisResult<Reply> {
    let requires_key = || {
        RedisError::err(
            "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
        )
    };
    let op = Operation::ReconfigureStream;
    match c {
        Xgroup::Help => Ok(Reply::Array(
            super::cmd::xgroup::HELP.iter().map(Reply::text).collect(),
        )),
        Xgroup::Create {
            key: name,
            group,
            start,
            mkstream,
            entries_read,
        } => {
            // With MKSTREAM nothing is created for a command that fails.
            let key = if *mkstream {
                start.clone()?;
                ctx.open_or_create(name, op).await?
            } else {
                ctx.open(name, op).await?.ok_or_else(requires_key)?
            };
            let group_name = name_of("group", group)?;
            let snap = Snapshot::take(&ctx.engine, &key).await?;
            let last_id = match start.clone()? {
                GroupStart::Last => snap.last_id(),
                GroupStart::Id(id) => id,
            };
            let state =
                GroupState::new(&group_name, last_id, entries_read.map(|n| n.max(0) as u64));
            match ctx.engine.create_group(&key.handle, &state).await {
                Ok(()) => {
                    group_commit::forget(&ctx.engine, &key.handle.core.id, &group_name).await;
                    Ok(Reply::ok())
                }
                Err(EngineError::AlreadyExists(_)) => Err(RedisError::Reply(
                    "BUSYGROUP Consumer Group name already exists".into(),
                )),
                Err(e) => Err(e.into()),
            }
        }
        Xgroup::SetId {
            key: name,
            group,
            start,
            entries_read,
        } => {
            let key = ctx.open(name, op).await?.ok_or_else(requires_key)?;
            let group_name = name_of("group", group)?;
            if ctx.engine.group(&key.handle, &group_name).await?.is_none() {
                return Err(no_such_group_for_key(name, group));
            }
            let snap = Snapshot::take(&ctx.engine, &key).await?;
            let last_id = match start.clone()? {
                GroupStart::Last => snap.last_id(),
                GroupStart::Id(id) => id,
            };
            let entries_read = entries_read.map(|n| n.max(0) as u64);
            update(
                ctx,
                &key,
                &group_name,
                || no_such_group_for_key(name, group),
                |_| async { Ok(()) },
                |g, ()| {
                    g.set_id(last_id, entries_read);
                    (Reply::ok(), true)
                },
            )
            .await
        }
        Xgroup::Destroy { key: name, group } => {
            let key = ctx.open(name, op).await?.ok_or_else(requires_key)?;
            let group_name = name_of("group", group)?;
            let deleted = ctx.engine.delete_group(&key.handle, &group_name).await?;
            group_commit::forget(&ctx.engine, &key.handle.core.id, &group_name).await;
            Ok(Reply::Int(i64::from(deleted)))
        }
        Xgroup::CreateConsumer {
            key: name,
            group,
            consumer,
        } => {
            let key = ctx.open(name, op).await?.ok_or_else(requires_key)?;
            let (group_name, consumer) = (name_of("group", group)?, name_of("consumer", consumer)?);
            let now = ctx.engine.clock().now_ms();
            update(
                ctx,
                &key,
                &group_name,
                || no_such_group_for_key(name, group),
                |_| async { Ok(()) },
                |g, ()| {
                    let created = g.create_consumer(&consumer, now);
                    (Reply::Int(i64::from(created)), created)
                },
            )
            .await
        }
        Xgroup::DelConsumer {
            key: name,
            group,
            consumer,
        } => {
            let key = ctx.open(name, op).await?.ok_or_else(requires_key)?;
            let (group_name, consumer) = (name_of("group", group)?, name_of("consumer", consumer)?);
            update(
                ctx,
                &key,
                &group_name,
                || no_such_group_for_key(name, group),
                |_| async { Ok(()) },
                |g, ()| {
                    let known = g.consumers.contains_key(&consumer);
                    let pending = g.delete_consumer(&consumer);
                    (Reply::int(pending), known)
                },
            )
            .await
        }
    }
}

pub async fn xreadgroup(ctx: &Context, c: &Xreadgroup) -> RedisResult<Reply> {
    let group_name = name_of("group", &c.group)?;
    let consumer = name_of("consumer", &c.consumer)?;
    let nogroup = |key: &Bytes| no_group(key, &c.group, " in XREADGROUP with GROUP option");
    // Every key and group must exist before anything is served.
    let mut keys = Vec::with_capacity(c.keys.len());
    let mut starts = Vec::with_capacity(c.keys.len());
    for (name, from) in c.keys.iter().zip(&c.from) {
        let op = Operation::Read;
        let key = ctx.open(name, op).await?.ok_or_else(|| nogroup(name))?;
        if !group_commit::exists(&ctx.engine, &key, &group_name).await? {
            return Err(nogroup(name));
        }
        keys.push(key);
        starts.push(from.clone()?);
    }
    let max = match c.count {
        None | Some(0) => usize::MAX,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let deadline = block_deadline(ctx, c.block_ms);
    loop {
        let mut replies = Vec::new();
        let mut any_history = false;
        let mut waits = Vec::new();
        for ((name, key), from) in c.keys.iter().zip(&keys).zip(&starts) {
            let from = match from {
                GroupFrom::After(id) if *id == EntryId::MAX => GroupFrom::New,
                other => *other,
            };
            match from {
                GroupFrom::New => {
                    let (entries, next_seq) = deliver_new(
                        ctx,
                        key,
                        name,
                        &c.group,
                        &group_name,
                        &consumer,
                        max,
                        c.noack,
                    )
                    .await?;
                    if !entries.is_empty() {
                        replies.push((name.clone(), Reply::Array(entries)));
                    }
                    waits.push((key.clone(), next_seq));
                }
                GroupFrom::After(after) => {
                    any_history = true;
                    let entries =
                        history(ctx, key, name, &c.group, &group_name, &consumer, after, max)
                            .await?;
                    replies.push((name.clone(), Reply::Array(entries)));
                }
            }
        }
        if !replies.is_empty() || any_history {
            return Ok(Reply::streams(replies));
        }
        match deadline {
            Some(Some(at)) if std::time::Instant::now() < at => {
                wait_for_any(ctx, &waits, at).await?
            }
            Some(None) => {
                let at = std::time::Instant::now() + std::time::Duration::from_secs(3600);
                wait_for_any(ctx, &waits, at).await?
            }
            _ => return Ok(Reply::NilArray),
        }
    }
}

/// `>` on one key: the entries above the group's last id, handed to `consumer`; and the
/// tail seq_num the read saw (to wait past when there were none).
#[allow(clippy::too_many_arguments)]
async fn deliver_new(
    ctx: &Context,
    key: &Key,
    name: &Bytes,
    group: &Bytes,
    group_name: &str,
    consumer: &str,
    max: usize,
    noack: bool,
) -> RedisResult<(Vec<Reply>, u64)> {
    let now = ctx.engine.clock().now_ms();
    // Read before the group is locked, so that concurrent commands share the manifest's
    // revalidation: the snapshot is taken after the command began, so it holds every
    // entry added before that, which is all a read may be required to see.
    let snap = Snapshot::take(&ctx.engine, key).await?;
    let facts = facts(ctx, key, &snap).await?;
    let snap = &snap;
    let replies = update(
        ctx,
        key,
        group_name,
        || no_group(name, group, " in XREADGROUP with GROUP option"),
        move |g: &GroupState| {
            let last_id = g.last_id;
            async move { super::streams::after(ctx, key, snap, last_id, max).await }
        },
        |g, entries| {
            let ids: Vec<EntryId> = entries.iter().map(|e| e.id).collect();
            g.deliver_new(consumer, &ids, now, noack, &facts);
            let replies: Vec<Reply> = entries.iter().map(Entry::reply).collect();
            let changed = !ids.is_empty();
            (replies, changed)
        },
    )
    .await?;
    Ok((replies, snap.next_seq()))
}

/// A consumer's pending entries above `after`; gone ones as `[id, nil]`.
#[allow(clippy::too_many_arguments)]
async fn history(
    ctx: &Context,
    key: &Key,
    name: &Bytes,
    group: &Bytes,
    group_name: &str,
    consumer: &str,
    after: EntryId,
    max: usize,
) -> RedisResult<Vec<Reply>> {
    let now = ctx.engine.clock().now_ms();
    let count = if max == usize::MAX { 0 } else { max };
    // Taken outside the group's lock, as in `deliver_new`.
    let snap = &Snapshot::take(&ctx.engine, key).await?;
    update(
        ctx,
        key,
        group_name,
        || no_group(name, group, " in XREADGROUP with GROUP option"),
        move |g: &GroupState| {
            let start = after.next().unwrap_or(EntryId::MAX);
            let candidates: Vec<EntryId> = g
                .pending
                .range(start..)
                .filter(|(_, p)| p.consumer == consumer)
                .map(|(id, _)| *id)
                .take(max)
                .collect();
            async move { existing(ctx, key, snap, candidates).await }
        },
        |g, entries| {
            let walked = g.read_history(consumer, after, count, now, exists_in(entries));
            let replies = walked
                .iter()
                .map(|(id, present)| match present {
                    true => entries
                        .iter()
                        .find(|e| e.id == *id)
                        .map_or(Reply::Nil, Entry::reply),
                    false => Reply::Array(vec![Reply::text(id), Reply::NilArray]),
                })
                .collect();
            (replies, true)
        },
    )
    .await
}

pub async fn xack(ctx: &Context, c: &Xack) -> RedisResult<Reply> {
    let Some(key) = ctx.open(&c.key, Operation::Read).await? else {
        return Ok(Reply::Int(0));
    };
    let group_name = name_of("group", &c.group)?;
    if !group_commit::exists(&ctx.engine, &key, &group_name).await? {
        return Ok(Reply::Int(0));
    }
    let ids = c.ids.clone()?;
    let acked = update(
        ctx,
        &key,
        &group_name,
        || RedisError::Reply(String::new()),
        |_| async { Ok(()) },
        |g, ()| {
            let n = g.ack(&ids);
            (n, n > 0)
        },
    )
    .await;
    match acked {
        Ok(n) => Ok(Reply::int(n)),
        Err(RedisError::Reply(t)) if t.is_empty() => Ok(Reply::Int(0)),
        Err(e) => Err(e),
    }
}

pub async fn xpending(ctx: &Context, c: &Xpending) -> RedisResult<Reply> {
    let missing = || no_group(&c.key, &c.group, "");
    let key = ctx
        .open(&c.key, Operation::Read)
        .await?
        .ok_or_else(missing)?;
    let group_name = name_of("group", &c.group)?;
    let Some(read) = ctx.engine.group(&key.handle, &group_name).await? else {
        return Err(missing());
    };
    let g = read.state;
    let Some(range) = &c.range else {
        let s = g.pending_summary();
        return Ok(match s.range {
            None => Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]),
            Some((lo, hi)) => Reply::Array(vec![
                Reply::int(s.count),
                Reply::text(lo),
                Reply::text(hi),
                Reply::Array(
                    s.consumers
                        .iter()
                        .map(|(name, n)| Reply::Array(vec![Reply::text(name), Reply::text(n)]))
                        .collect(),
                ),
            ]),
        });
    };
    let consumer = range.consumer.as_ref().map(|b| text(b));
    let min_idle = range
        .min_idle_ms
        .map_or(0, |ms| i64::try_from(ms).unwrap_or(i64::MAX));
    let rows = g.pending_range(
        range.start,
        range.end,
        usize::try_from(range.count).unwrap_or(usize::MAX),
        consumer.as_deref(),
        min_idle,
        ctx.engine.clock().now_ms(),
    );
    Ok(Reply::Array(
        rows.iter()
            .map(|r| {
                Reply::Array(vec![
                    Reply::text(r.id),
                    Reply::text(&r.consumer),
                    Reply::int(r.idle_ms),
                    Reply::int(r.deliveries),
                ])
            })
            .collect(),
    ))
}

/// What `XCLAIM` and `XAUTOCLAIM` answer for the ids they claimed: the ids (`JUSTID`) or
/// the entries.
fn claimed_reply(claimed: &[EntryId], entries: &[Entry], justid: bool) -> Reply {
    Reply::Array(
        claimed
            .iter()
            .map(|id| match justid {
                true => Reply::text(id),
                false => entries
                    .iter()
                    .find(|e| e.id == *id)
                    .map_or(Reply::Nil, Entry::reply),
            })
            .collect(),
    )
}

pub async fn xclaim(ctx: &Context, c: &Xclaim) -> RedisResult<Reply> {
    let missing = || no_group(&c.key, &c.group, "");
    let key = &ctx
        .open(&c.key, Operation::Read)
        .await?
        .ok_or_else(missing)?;
    let group_name = name_of("group", &c.group)?;
    let consumer = name_of("consumer", &c.consumer)?;
    if ctx.engine.group(&key.handle, &group_name).await?.is_none() {
        return Err(missing());
    }
    if let Some(e) = &c.late_error {
        return Err(e.clone());
    }
    let options = ClaimOptions {
        time: c.time,
        retry_count: c.retry_count,
        force: c.force,
        just_id: c.justid,
        last_id: c.last_id,
    };
    let min_idle = i64::try_from(c.min_idle_ms).unwrap_or(i64::MAX);
    let now = ctx.engine.clock().now_ms();
    // Taken outside the group's lock, as in `deliver_new`.
    let snap = &Snapshot::take(&ctx.engine, key).await?;
    update(
        ctx,
        key,
        &group_name,
        missing,
        move |_: &GroupState| async move { existing(ctx, key, snap, c.ids.iter().copied()).await },
        |g, entries| {
            let before = g.clone();
            let result = g.claim(
                &consumer,
                &c.ids,
                min_idle,
                now,
                &options,
                exists_in(entries),
            );
            let changed = *g != before;
            (claimed_reply(&result.claimed, entries, c.justid), changed)
        },
    )
    .await
}

pub async fn xautoclaim(ctx: &Context, c: &Xautoclaim) -> RedisResult<Reply> {
    let missing = || no_group(&c.key, &c.group, "");
    let key = &ctx
        .open(&c.key, Operation::Read)
        .await?
        .ok_or_else(missing)?;
    let group_name = name_of("group", &c.group)?;
    let consumer = name_of("consumer", &c.consumer)?;
    let min_idle = i64::try_from(c.min_idle_ms).unwrap_or(i64::MAX);
    let count = usize::try_from(c.count).unwrap_or(usize::MAX);
    let now = ctx.engine.clock().now_ms();
    // Taken outside the group's lock, as in `deliver_new`.
    let snap = &Snapshot::take(&ctx.engine, key).await?;
    update(
        ctx,
        key,
        &group_name,
        missing,
        move |g: &GroupState| {
            let candidates: Vec<EntryId> = g
                .pending
                .range(c.start..)
                .map(|(id, _)| *id)
                .take(count.saturating_mul(10))
                .collect();
            async move { existing(ctx, key, snap, candidates).await }
        },
        |g, entries| {
            let before = g.clone();
            let r = g.autoclaim(
                &consumer,
                c.start,
                count,
                min_idle,
                now,
                c.justid,
                exists_in(entries),
            );
            let reply = Reply::Array(vec![
                Reply::text(r.next),
                claimed_reply(&r.claimed, entries, c.justid),
                Reply::Array(r.deleted.iter().map(Reply::text).collect()),
            ]);
            let changed = *g != before;
            (reply, changed)
        },
    )
    .await
}

/// `XINFO GROUPS key`.
pub async fn xinfo_groups(ctx: &Context, key: &Key) -> RedisResult<Reply> {
    let snap = Snapshot::take(&ctx.engine, key).await?;
    let facts = facts(ctx, key, &snap).await?;
    let groups = ctx.engine.groups(&key.handle).await?;
    Ok(Reply::Array(
        groups
            .iter()
            .map(|g| {
                let i = g.info(&facts);
                Reply::map([
                    ("name", Reply::text(&i.name)),
                    ("consumers", Reply::int(i.consumers)),
                    ("pending", Reply::int(i.pending)),
                    ("last-delivered-id", Reply::text(i.last_delivered_id)),
                    (
                        "entries-read",
                        i.entries_read.map_or(Reply::Nil, Reply::int),
                    ),
                    ("lag", i.lag.map_or(Reply::Nil, Reply::Int)),
                ])
            })
            .collect(),
    ))
}

/// `XINFO CONSUMERS key group`.
pub async fn xinfo_consumers(
    ctx: &Context,
    key: &Key,
    name: &Bytes,
    group: &Bytes,
) -> RedisResult<Reply> {
    let group_name = name_of("group", group)?;
    let Some(read) = ctx.engine.group(&key.handle, &group_name).await? else {
        return Err(no_such_group_for_key(name, group));
    };
    Ok(Reply::Array(
        read.state
            .consumers_info(ctx.engine.clock().now_ms())
            .iter()
            .map(|c| {
                Reply::map([
                    ("name", Reply::text(&c.name)),
                    ("pending", Reply::int(c.pending)),
                    ("idle", Reply::int(c.idle_ms)),
                ])
            })
            .collect(),
    ))
}

/// The `groups` field of `XINFO STREAM`: a count, or with `FULL` (COUNT `count`) each
/// group's detail.
pub async fn stream_groups(ctx: &Context, key: &Key, full: Option<u64>) -> RedisResult<Reply> {
    let groups = ctx.engine.groups(&key.handle).await?;
    let Some(count) = full else {
        return Ok(Reply::int(groups.len()));
    };
    let snap = Snapshot::take(&ctx.engine, key).await?;
    let facts = facts(ctx, key, &snap).await?;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    Ok(Reply::Array(
        groups
            .iter()
            .map(|g| {
                let f = g.full_info(&facts, count);
                Reply::map([
                    ("name", Reply::text(&f.name)),
                    ("last-delivered-id", Reply::text(f.last_delivered_id)),
                    (
                        "entries-read",
                        f.entries_read.map_or(Reply::Nil, Reply::int),
                    ),
                    ("lag", f.lag.map_or(Reply::Nil, Reply::Int)),
                    ("pel-count", Reply::int(f.pel_count)),
                    (
                        "pending",
                        Reply::Array(
                            f.pending
                                .iter()
                                .map(|(id, consumer, at, n)| {
                                    Reply::Array(vec![
                                        Reply::text(id),
                                        Reply::text(consumer),
                                        Reply::int(*at),
                                        Reply::int(*n),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                    (
                        "consumers",
                        Reply::Array(
                            f.consumers
                                .iter()
                                .map(|c| {
                                    Reply::map([
                                        ("name", Reply::text(&c.name)),
                                        ("seen-time", Reply::int(c.seen_ms)),
                                        ("pel-count", Reply::int(c.pel_count)),
                                        (
                                            "pending",
                                            Reply::Array(
                                                c.pending
                                                    .iter()
                                                    .map(|(id, at, n)| {
                                                        Reply::Array(vec![
                                                            Reply::text(id),
                                                            Reply::int(*at),
                                                            Reply::int(*n),
                                                        ])
                                                    })
                                                    .collect(),
                                            ),
                                        ),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect(),
    ))
}
