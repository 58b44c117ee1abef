//! The state of one Redis consumer group, as Redis 7.0 (7.0.15) keeps it, and every
//! transition the group commands make to it. Pure and synchronous: no I/O, no clock (every
//! time is `now_ms`, ms since the epoch, given by the caller), so the caller wraps it in a
//! read-modify-write of the group's object and feeds it what it knows of the stream
//! ([`StreamFacts`], and `exists` closures saying whether an entry is still in the stream).
//! The caller reads the entries and renders the replies.
//!
//! The model is exactly 7.0's: a group has a last delivered id, an `entries_read` counter
//! (`None` is Redis's `SCG_INVALID_ENTRIES_READ`, shown as nil), a pending entries list
//! (PEL) of `id -> (consumer, delivery time, delivery count)` and consumers that have only
//! a `seen-time` (7.0 has no `active-time` nor `inactive`: those came with 7.2; XINFO
//! CONSUMERS in 7.0 shows `name`, `pending`, `idle`). Redis's per-consumer PELs are the
//! group PEL filtered by consumer here.
//!
//! Names: group and consumer names are `String`s. Redis names are binary-safe; this surface
//! takes them as UTF-8 (as it does key names), so a caller must refuse, or map losslessly,
//! names that are not UTF-8. `String`'s order is the order of its UTF-8 bytes, which is
//! the order Redis lists consumers in (its radix tree is ordered by name bytes).
//!
//! JSON (serde): ids are strings `"<ms>-<seq>"`; the PEL is an object from id to
//! `[consumer, delivery_ms, deliveries]`; consumers an object from name to seen-time, e.g.
//! `{"version":3,"name":"g","last_id":"2-0","entries_read":2,
//!   "pending":{"1-0":["alice",1700000000000,1]},"consumers":{"alice":1700000000000}}`.
//!
//! Invariant (checked by [`GroupState::check`] in tests after every transition): every
//! pending entry's consumer is one of the group's consumers. Nothing more holds in Redis:
//! pending ids may be above `last_id` (after `XGROUP SETID` backwards, or `XCLAIM … FORCE`
//! of an entry not yet delivered), pending entries may be gone from the stream (XDEL,
//! trims), and `entries_read` may exceed the stream's `entries-added` (`ENTRIESREAD`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::entries::EntryId;

/// What Redis knows of the stream when a group command runs, as `XINFO STREAM` shows it.
///
/// - `entries_added`: `entries-added`, how many entries were ever added (XADD, or set by
///   `XSETID … ENTRIESADDED`); deletions and trims do not lower it.
/// - `length`: how many entries the stream holds now.
/// - `first_id`: `recorded-first-entry-id`, the id of the stream's first entry now, or
///   `0-0` when it is empty.
/// - `last_id`: `last-generated-id`, the highest id the stream ever had (or set by
///   `XSETID`); it survives deleting and trimming every entry.
/// - `max_deleted_id`: `max-deleted-entry-id`, the highest id ever removed by XDEL (or set
///   by `XSETID … MAXDELETEDID`), `0-0` if none. Trims do not set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamFacts {
    pub entries_added: u64,
    pub length: u64,
    pub first_id: EntryId,
    pub last_id: EntryId,
    pub max_deleted_id: EntryId,
}

impl StreamFacts {
    /// Redis's `streamRangeHasTombstones(s, start, NULL)`: whether the stream may have a
    /// hole made by XDEL at or after `start`. True when it is non-empty, has a max deleted
    /// id at or above its first entry, and `start` is at or below that id.
    pub fn has_tombstones_from(&self, start: EntryId) -> bool {
        self.length != 0
            && self.max_deleted_id != EntryId::ZERO
            && self.first_id <= self.max_deleted_id
            && start <= self.max_deleted_id
    }

    /// Redis's `streamEstimateDistanceFromFirstEverEntry`: the `entries_read` counter of a
    /// group whose last delivered id is `id`, when the stream's facts determine it.
    pub fn estimate_entries_read(&self, id: EntryId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.length == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        if id == self.last_id {
            return Some(self.entries_added);
        }
        if id > self.last_id {
            return None;
        }
        if self.max_deleted_id == EntryId::ZERO || self.max_deleted_id < self.first_id {
            let before_first = self.entries_added.saturating_sub(self.length);
            if id < self.first_id {
                return Some(before_first);
            }
            if id == self.first_id {
                return Some(before_first + 1);
            }
        }
        None
    }
}

/// One consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// Bumped by the caller on every write, so that no two writes have equal bytes.
    pub version: u64,
    pub name: String,
    /// `last-delivered-id`.
    #[serde(with = "id_text")]
    pub last_id: EntryId,
    /// `entries-read`; `None` when Redis does not know it (nil).
    pub entries_read: Option<u64>,
    /// Delivered and not acknowledged, by id.
    #[serde(with = "pel_json")]
    pub pending: BTreeMap<EntryId, Pending>,
    /// Every consumer, by name.
    pub consumers: BTreeMap<String, Consumer>,
}

/// A pending entry (Redis's NACK).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(String, u64, u64)", into = "(String, u64, u64)")]
pub struct Pending {
    pub consumer: String,
    /// When it was last delivered (ms since the epoch).
    pub delivered_ms: u64,
    /// How many times it was delivered. Increments wrap, as Redis's `uint64_t` does, so a
    /// stored count at `u64::MAX` becomes 0 rather than a panic.
    pub deliveries: u64,
}

impl From<(String, u64, u64)> for Pending {
    fn from((consumer, delivered_ms, deliveries): (String, u64, u64)) -> Self {
        Self {
            consumer,
            delivered_ms,
            deliveries,
        }
    }
}

impl From<Pending> for (String, u64, u64) {
    fn from(p: Pending) -> Self {
        (p.consumer, p.delivered_ms, p.deliveries)
    }
}

/// A consumer: Redis 7.0 keeps only its `seen-time` (and its PEL, which is the group's
/// pending entries it owns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Consumer {
    /// When a command last looked it up (ms since the epoch): XREADGROUP that served it,
    /// XCLAIM/XAUTOCLAIM that claimed something for it, or its creation.
    pub seen_ms: u64,
}

/// When XCLAIM sets the delivery time of what it claims (the last of `IDLE`/`TIME` given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimTime {
    /// `IDLE <ms>`: the delivery time is `now - ms`.
    Idle(i64),
    /// `TIME <ms-unix-time>`.
    Time(i64),
}

/// XCLAIM's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClaimOptions {
    /// `IDLE`/`TIME`; when absent, or when it gives a time before the epoch or after
    /// `now`, the delivery time becomes `now`.
    pub time: Option<ClaimTime>,
    /// `RETRYCOUNT`: sets the delivery count. Redis takes a negative count as not given:
    /// pass `None` for it.
    pub retry_count: Option<u64>,
    /// `FORCE`: ids not pending but still in the stream are claimed too (not subject to
    /// the min idle time).
    pub force: bool,
    /// `JUSTID`: the delivery count is not incremented.
    pub just_id: bool,
    /// `LASTID`: the group's last id moves up to it if it is higher (entries-read is left
    /// as it is).
    pub last_id: Option<EntryId>,
}

/// What XCLAIM did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClaimResult {
    /// The ids claimed, in the order given (an id given twice is claimed twice): the reply,
    /// as ids (JUSTID) or as the entries, which all exist.
    pub claimed: Vec<EntryId>,
    /// Ids that were pending but are no longer in the stream: removed from the PEL. Not
    /// part of the reply.
    pub removed: Vec<EntryId>,
}

/// What XAUTOCLAIM did: its three-element reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AutoClaimResult {
    /// Where the next call should start; `0-0` when the scan reached the PEL's end.
    pub next: EntryId,
    /// The ids claimed, ascending; all exist in the stream.
    pub claimed: Vec<EntryId>,
    /// Pending ids found no longer in the stream, removed from the PEL, ascending.
    pub deleted: Vec<EntryId>,
}

/// XPENDING's summary form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PendingSummary {
    pub count: usize,
    /// The lowest and highest pending ids; `None` (nil, nil, nil array) when none.
    pub range: Option<(EntryId, EntryId)>,
    /// Consumers with at least one pending entry, by name, with their counts.
    pub consumers: Vec<(String, usize)>,
}

/// A row of XPENDING's extended form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    pub id: EntryId,
    pub consumer: String,
    /// ms since its last delivery, 0 if that is in the future.
    pub idle_ms: u64,
    pub deliveries: u64,
}

/// A group in XINFO GROUPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub consumers: usize,
    pub pending: usize,
    pub last_delivered_id: EntryId,
    /// nil when `None`.
    pub entries_read: Option<u64>,
    /// nil when `None`; negative when `entries_read` was set above `entries-added`.
    pub lag: Option<i64>,
}

/// A consumer in XINFO CONSUMERS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub name: String,
    pub pending: usize,
    /// ms since its seen-time, 0 if that is in the future.
    pub idle_ms: u64,
}

/// A group in `XINFO STREAM … FULL`: `name`, `last-delivered-id`, `entries-read`, `lag`,
/// `pel-count`, `pending`, `consumers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFull {
    pub name: String,
    pub last_delivered_id: EntryId,
    pub entries_read: Option<u64>,
    pub lag: Option<i64>,
    pub pel_count: usize,
    /// The first pending entries (at most COUNT): id, consumer, delivery time, count.
    pub pending: Vec<(EntryId, String, u64, u64)>,
    pub consumers: Vec<ConsumerFull>,
}

/// A consumer in `XINFO STREAM … FULL`: `name`, `seen-time`, `pel-count`, `pending`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerFull {
    pub name: String,
    pub seen_ms: u64,
    pub pel_count: usize,
    /// Its first pending entries (at most COUNT): id, delivery time, count.
    pub pending: Vec<(EntryId, u64, u64)>,
}

/// `now - then` as Redis computes it on signed ms.
fn elapsed(now_ms: u64, then_ms: u64) -> i64 {
    (i128::from(now_ms) - i128::from(then_ms)).clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

fn idle(now_ms: u64, then_ms: u64) -> u64 {
    elapsed(now_ms, then_ms).max(0) as u64
}

impl GroupState {
    /// `XGROUP CREATE key name <id> [ENTRIESREAD n]`: `last_id` is the id given (the
    /// stream's last-generated id for `$`, `0-0` for `$` with MKSTREAM); `entries_read` is
    /// `ENTRIESREAD`'s value, `None` when absent or -1 (7.0 does not estimate it).
    pub fn new(name: &str, last_id: EntryId, entries_read: Option<u64>) -> Self {
        Self {
            version: 1,
            name: name.to_owned(),
            last_id,
            entries_read,
            pending: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// `XGROUP SETID key name <id> [ENTRIESREAD n]`: sets both, backwards too;
    /// `entries_read` is `None` when ENTRIESREAD is absent or -1. The PEL is left alone.
    pub fn set_id(&mut self, last_id: EntryId, entries_read: Option<u64>) {
        self.last_id = last_id;
        self.entries_read = entries_read;
    }

    /// `XGROUP CREATECONSUMER`: whether it was created (an existing consumer's seen-time
    /// is left alone).
    pub fn create_consumer(&mut self, name: &str, now_ms: u64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers
            .insert(name.to_owned(), Consumer { seen_ms: now_ms });
        true
    }

    /// `XGROUP DELCONSUMER`: removes the consumer and its pending entries; returns how
    /// many it had (0 if it did not exist).
    pub fn delete_consumer(&mut self, name: &str) -> usize {
        if self.consumers.remove(name).is_none() {
            return 0;
        }
        let before = self.pending.len();
        self.pending.retain(|_, p| p.consumer != name);
        before - self.pending.len()
    }

    /// Redis's consumer lookup with refresh, creating it if missing: the consumer's
    /// seen-time becomes `now_ms`. The other methods call it when Redis does; call it
    /// directly only where Redis looks a consumer up without anything else changing
    /// (a blocked XREADGROUP served with nothing).
    pub fn touch_consumer(&mut self, name: &str, now_ms: u64) {
        match self.consumers.get_mut(name) {
            Some(c) => c.seen_ms = now_ms,
            None => {
                self.consumers
                    .insert(name.to_owned(), Consumer { seen_ms: now_ms });
            }
        }
    }

    /// Pending entries `consumer` has.
    pub fn pending_of(&self, consumer: &str) -> usize {
        self.pending
            .values()
            .filter(|p| p.consumer == consumer)
            .count()
    }

    /// `XREADGROUP … <key> >` served: `delivered` are the ids handed out, ascending: the
    /// stream's entries above `last_id`, at most COUNT (COUNT 0 or absent: all), read when
    /// `facts` held. Redis serves (and so looks up or creates the consumer) only when the
    /// stream has an entry above `last_id`, which is when `delivered` is non-empty: with it
    /// empty this does nothing. (An id of `MAX` given to XREADGROUP means `>` too.)
    ///
    /// For each id above `last_id`, `entries_read` is incremented if it is known and the
    /// stream has no tombstone at or after the id, else it becomes the estimate for the id
    /// (when the stream ever had entries), and `last_id` becomes the id. Without `noack`
    /// each id becomes pending for `consumer`, delivered now once, even if another consumer
    /// had it (after SETID backwards); with `noack` the PEL is not touched at all.
    pub fn deliver_new(
        &mut self,
        consumer: &str,
        delivered: &[EntryId],
        now_ms: u64,
        noack: bool,
        facts: &StreamFacts,
    ) {
        if delivered.is_empty() {
            return;
        }
        self.touch_consumer(consumer, now_ms);
        for &id in delivered {
            if id > self.last_id {
                if self.entries_read.is_some() && !facts.has_tombstones_from(id) {
                    // Wrapping, as Redis's counter does, rather than a panic on a stored
                    // value at the top of the range.
                    self.entries_read = self.entries_read.map(|n| n.wrapping_add(1));
                } else if facts.entries_added != 0 {
                    self.entries_read = facts.estimate_entries_read(id);
                }
                self.last_id = id;
            }
            if !noack {
                self.pending.insert(
                    id,
                    Pending {
                        consumer: consumer.to_owned(),
                        delivered_ms: now_ms,
                        deliveries: 1,
                    },
                );
            }
        }
    }

    /// `XREADGROUP … <key> <id>` (any id but `>` and `MAX`, which means `>`): the
    /// consumer's history. Looks up or creates the consumer (seen-time `now`), then walks
    /// its pending ids above `after`, at most `count` (0: all). Each comes with whether it
    /// still exists in the stream: existing ones are delivered again (delivery time `now`,
    /// count + 1) and replied with their entry; gone ones are replied as `[id, nil]` and
    /// left as they are. NOACK changes nothing here.
    pub fn read_history(
        &mut self,
        consumer: &str,
        after: EntryId,
        count: usize,
        now_ms: u64,
        exists: impl Fn(EntryId) -> bool,
    ) -> Vec<(EntryId, bool)> {
        self.touch_consumer(consumer, now_ms);
        let Some(start) = after.next() else {
            return Vec::new();
        };
        let limit = if count == 0 { usize::MAX } else { count };
        let mut out = Vec::new();
        for (&id, p) in self.pending.range_mut(start..) {
            if out.len() == limit {
                break;
            }
            if p.consumer != consumer {
                continue;
            }
            let present = exists(id);
            if present {
                p.delivered_ms = now_ms;
                p.deliveries = p.deliveries.wrapping_add(1);
            }
            out.push((id, present));
        }
        out
    }

    /// XACK: removes those of `ids` that are pending; returns how many were (an id given
    /// twice counts once).
    pub fn ack(&mut self, ids: &[EntryId]) -> usize {
        ids.iter()
            .filter(|id| self.pending.remove(id).is_some())
            .count()
    }

    /// `XPENDING key group`.
    pub fn pending_summary(&self) -> PendingSummary {
        let (Some((&min, _)), Some((&max, _))) = (
            self.pending.first_key_value(),
            self.pending.last_key_value(),
        ) else {
            return PendingSummary::default();
        };
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for p in self.pending.values() {
            *counts.entry(&p.consumer).or_default() += 1;
        }
        PendingSummary {
            count: self.pending.len(),
            range: Some((min, max)),
            consumers: counts
                .into_iter()
                .map(|(name, n)| (name.to_owned(), n))
                .collect(),
        }
    }

    /// `XPENDING key group [IDLE min_idle] start end count [consumer]`: pending entries
    /// with ids in `[start, end]` (the caller turns exclusive bounds `(` into inclusive
    /// ones, and `-`/`+` into `0-0`/`MAX`), ascending, at most `count` (a negative COUNT is
    /// 0: nothing). With `consumer`, only its entries, and nothing if it does not exist
    /// (its seen-time is not touched). With `min_idle` non-zero (IDLE, which may be
    /// negative), only entries idle for at least that long.
    pub fn pending_range(
        &self,
        start: EntryId,
        end: EntryId,
        count: usize,
        consumer: Option<&str>,
        min_idle: i64,
        now_ms: u64,
    ) -> Vec<PendingRow> {
        if start > end {
            return Vec::new();
        }
        if let Some(c) = consumer
            && !self.consumers.contains_key(c)
        {
            return Vec::new();
        }
        self.pending
            .range(start..=end)
            .filter(|(_, p)| consumer.is_none_or(|c| p.consumer == c))
            .filter(|(_, p)| min_idle == 0 || elapsed(now_ms, p.delivered_ms) >= min_idle)
            .take(count)
            .map(|(&id, p)| PendingRow {
                id,
                consumer: p.consumer.clone(),
                idle_ms: idle(now_ms, p.delivered_ms),
                deliveries: p.deliveries,
            })
            .collect()
    }

    /// `XCLAIM key group consumer min_idle id… [options]`, in Redis 7.0's order:
    ///
    /// 1. LASTID moves `last_id` up (only up; `entries_read` unchanged).
    /// 2. For each id in the order given: if it is no longer in the stream, it is removed
    ///    from the PEL if pending (listed in `removed`) and not claimed, FORCE or not. If it
    ///    exists and is not pending: with FORCE it becomes pending (delivery count 1,
    ///    before the increment below) and is claimed regardless of `min_idle`; without,
    ///    it is skipped. If pending: skipped when `min_idle` > 0 and it has been idle for
    ///    less. A claimed id goes to `consumer` (looked up or created, seen-time `now`, on
    ///    the first claim only: no claim, no consumer), its delivery time becomes the
    ///    IDLE/TIME time (`now` if absent, before the epoch or after `now`), its count
    ///    RETRYCOUNT if given, else + 1 unless JUSTID.
    ///
    /// `min_idle` below 0 counts as 0.
    pub fn claim(
        &mut self,
        consumer: &str,
        ids: &[EntryId],
        min_idle: i64,
        now_ms: u64,
        options: &ClaimOptions,
        exists: impl Fn(EntryId) -> bool,
    ) -> ClaimResult {
        if let Some(last) = options.last_id
            && last > self.last_id
        {
            self.last_id = last;
        }
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let delivery_ms = match options.time {
            None => now,
            Some(ClaimTime::Idle(ms)) => now.saturating_sub(ms),
            Some(ClaimTime::Time(t)) => t,
        };
        let delivery_ms = if (0..=now).contains(&delivery_ms) {
            delivery_ms as u64
        } else {
            now_ms
        };
        let mut result = ClaimResult::default();
        let mut looked_up = false;
        for &id in ids {
            if !exists(id) {
                if self.pending.remove(&id).is_some() {
                    result.removed.push(id);
                }
                continue;
            }
            match self.pending.get(&id) {
                Some(p) if min_idle > 0 && elapsed(now_ms, p.delivered_ms) < min_idle => continue,
                Some(_) => {}
                None if options.force => {}
                None => continue,
            }
            if !looked_up {
                self.touch_consumer(consumer, now_ms);
                looked_up = true;
            }
            // A forced entry starts as Redis's new NACK: delivered once, nobody's.
            let p = self.pending.entry(id).or_insert_with(|| Pending {
                consumer: String::new(),
                delivered_ms: now_ms,
                deliveries: 1,
            });
            if p.consumer != consumer {
                p.consumer = consumer.to_owned();
            }
            p.delivered_ms = delivery_ms;
            if let Some(n) = options.retry_count {
                p.deliveries = n;
            } else if !options.just_id {
                p.deliveries = p.deliveries.wrapping_add(1);
            }
            result.claimed.push(id);
        }
        result
    }

    /// `XAUTOCLAIM key group consumer min_idle start [COUNT count] [JUSTID]` (`start`
    /// inclusive: the caller turns `(id` into the id after it; COUNT is at least 1, 100 by
    /// default). Walks the PEL from `start`, looking at no more than `count * 10` entries
    /// and stopping once `count` entries were claimed or deleted: an entry gone from the
    /// stream is removed from the PEL and listed in `deleted` (whatever its idle time); one
    /// idle for less than `min_idle` (when > 0) is passed; any other is claimed: it goes
    /// to `consumer` (looked up or created on the first claim, seen-time `now`), delivered
    /// now, its count + 1 unless JUSTID. `next` is the first pending id after the last
    /// looked at, `0-0` if none.
    #[allow(clippy::too_many_arguments)] // XAUTOCLAIM's arguments, as Redis has them
    pub fn autoclaim(
        &mut self,
        consumer: &str,
        start: EntryId,
        count: usize,
        min_idle: i64,
        now_ms: u64,
        just_id: bool,
        exists: impl Fn(EntryId) -> bool,
    ) -> AutoClaimResult {
        let mut remaining = count;
        let mut attempts = count.saturating_mul(10);
        let mut result = AutoClaimResult::default();
        let mut looked_up = false;
        // The next id to look from; `None` past `MAX`.
        let mut cursor = Some(start);
        while attempts > 0 && remaining > 0 {
            attempts -= 1;
            let Some(from) = cursor else { break };
            let Some((&id, p)) = self.pending.range(from..).next() else {
                cursor = None;
                break;
            };
            cursor = id.next();
            if !exists(id) {
                self.pending.remove(&id);
                result.deleted.push(id);
                remaining -= 1;
                continue;
            }
            if min_idle > 0 && elapsed(now_ms, p.delivered_ms) < min_idle {
                continue;
            }
            if !looked_up {
                self.touch_consumer(consumer, now_ms);
                looked_up = true;
            }
            let p = self.pending.get_mut(&id).expect("looked up above");
            if p.consumer != consumer {
                p.consumer = consumer.to_owned();
            }
            p.delivered_ms = now_ms;
            if !just_id {
                p.deliveries = p.deliveries.wrapping_add(1);
            }
            result.claimed.push(id);
            remaining -= 1;
        }
        result.next = cursor
            .and_then(|from| self.pending.range(from..).next().map(|(&id, _)| id))
            .unwrap_or(EntryId::ZERO);
        result
    }

    /// The group's lag as XINFO GROUPS and XINFO STREAM FULL show it (`None`: nil): 0 for
    /// a stream that never had entries; `entries-added - entries_read` when the counter is
    /// known and no tombstone lies at or after `last_id`; else `entries-added` minus the
    /// estimate for `last_id` if there is one.
    pub fn lag(&self, facts: &StreamFacts) -> Option<i64> {
        let added = facts.entries_added as i64;
        if facts.entries_added == 0 {
            return Some(0);
        }
        if let Some(read) = self.entries_read
            && !facts.has_tombstones_from(self.last_id)
        {
            return Some(added.wrapping_sub(read as i64));
        }
        facts
            .estimate_entries_read(self.last_id)
            .map(|read| added.wrapping_sub(read as i64))
    }

    /// The group in XINFO GROUPS.
    pub fn info(&self, facts: &StreamFacts) -> GroupInfo {
        GroupInfo {
            name: self.name.clone(),
            consumers: self.consumers.len(),
            pending: self.pending.len(),
            last_delivered_id: self.last_id,
            entries_read: self.entries_read,
            lag: self.lag(facts),
        }
    }

    fn pending_counts(&self) -> BTreeMap<&str, usize> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for p in self.pending.values() {
            *counts.entry(&p.consumer).or_default() += 1;
        }
        counts
    }

    /// XINFO CONSUMERS, in Redis's order (by name bytes). Touches nothing.
    pub fn consumers_info(&self, now_ms: u64) -> Vec<ConsumerInfo> {
        let counts = self.pending_counts();
        self.consumers
            .iter()
            .map(|(name, c)| ConsumerInfo {
                name: name.clone(),
                pending: counts.get(name.as_str()).copied().unwrap_or(0),
                idle_ms: idle(now_ms, c.seen_ms),
            })
            .collect()
    }

    /// The group in `XINFO STREAM key FULL [COUNT count]`: `count` limits each PEL listed
    /// (the group's and each consumer's; Redis's default is 10, COUNT 0 lists all).
    pub fn full_info(&self, facts: &StreamFacts, count: usize) -> GroupFull {
        let limit = if count == 0 { usize::MAX } else { count };
        let counts = self.pending_counts();
        GroupFull {
            name: self.name.clone(),
            last_delivered_id: self.last_id,
            entries_read: self.entries_read,
            lag: self.lag(facts),
            pel_count: self.pending.len(),
            pending: self
                .pending
                .iter()
                .take(limit)
                .map(|(&id, p)| (id, p.consumer.clone(), p.delivered_ms, p.deliveries))
                .collect(),
            consumers: self
                .consumers
                .iter()
                .map(|(name, c)| ConsumerFull {
                    name: name.clone(),
                    seen_ms: c.seen_ms,
                    pel_count: counts.get(name.as_str()).copied().unwrap_or(0),
                    pending: self
                        .pending
                        .iter()
                        .filter(|(_, p)| &p.consumer == name)
                        .take(limit)
                        .map(|(&id, p)| (id, p.delivered_ms, p.deliveries))
                        .collect(),
                })
                .collect(),
        }
    }

    /// Checks the invariant: every pending entry's consumer exists.
    pub fn check(&self) -> Result<(), String> {
        for (id, p) in &self.pending {
            if !self.consumers.contains_key(&p.consumer) {
                return Err(format!(
                    "group {:?}: pending {id} belongs to unknown consumer {:?}",
                    self.name, p.consumer
                ));
            }
        }
        Ok(())
    }
}

/// An id as the string `<ms>-<seq>`.
pub(super) mod id_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use super::EntryId;

    pub fn serialize<S: Serializer>(id: &EntryId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn parse<E: Error>(text: &str) -> Result<EntryId, E> {
        EntryId::parse_exact(text.as_bytes())
            .ok_or_else(|| E::custom(format!("not an entry id: {text:?}")))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EntryId, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        parse(&text)
    }
}

/// The PEL as an object from `<ms>-<seq>` to the pending entry.
pub(super) mod pel_json {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::{EntryId, Pending};

    pub fn serialize<S: Serializer>(
        pel: &BTreeMap<EntryId, Pending>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(pel.iter().map(|(id, p)| (id.to_string(), p.clone())))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<EntryId, Pending>, D::Error> {
        BTreeMap::<String, Pending>::deserialize(d)?
            .into_iter()
            .map(|(text, p)| Ok((super::id_text::parse(&text)?, p)))
            .collect()
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests;
