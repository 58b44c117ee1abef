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
mod id_text {
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
mod pel_json {
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
mod tests {
    //! Each test replays a session against Redis 7.0.15 (redis-cli, shown above it) on a
    //! small model of the stream, asserting what Redis replied. Redis's times are its
    //! clock's; here `now` is chosen, so idle times are asserted where they are determined.
    use std::collections::BTreeSet;

    use super::*;

    fn id(ms: u64, seq: u64) -> EntryId {
        EntryId::new(ms, seq)
    }

    /// A stream as Redis keeps the facts of one.
    #[derive(Default)]
    struct Sim {
        entries: BTreeSet<EntryId>,
        added: u64,
        last: EntryId,
        max_deleted: EntryId,
    }

    impl Sim {
        fn with(ids: &[EntryId]) -> Self {
            let mut s = Self::default();
            for &i in ids {
                s.xadd(i);
            }
            s
        }
        fn xadd(&mut self, i: EntryId) {
            assert!(i > self.last);
            self.entries.insert(i);
            self.added += 1;
            self.last = i;
        }
        fn xdel(&mut self, i: EntryId) {
            if self.entries.remove(&i) {
                self.max_deleted = self.max_deleted.max(i);
            }
        }
        fn trim(&mut self, maxlen: usize) {
            while self.entries.len() > maxlen {
                self.entries.pop_first();
            }
        }
        fn facts(&self) -> StreamFacts {
            StreamFacts {
                entries_added: self.added,
                length: self.entries.len() as u64,
                first_id: self.entries.first().copied().unwrap_or_default(),
                last_id: self.last,
                max_deleted_id: self.max_deleted,
            }
        }
        fn exists(&self) -> impl Fn(EntryId) -> bool + '_ {
            |i| self.entries.contains(&i)
        }
        /// `XREADGROUP GROUP g c COUNT n STREAMS s >`: what Redis hands out.
        fn read_new(&self, g: &mut GroupState, c: &str, count: usize, now: u64, noack: bool) {
            let ids: Vec<EntryId> = self
                .entries
                .iter()
                .copied()
                .filter(|&i| i > g.last_id)
                .take(if count == 0 { usize::MAX } else { count })
                .collect();
            g.deliver_new(c, &ids, now, noack, &self.facts());
            g.check().unwrap();
        }
    }

    fn read_lag(g: &GroupState, s: &Sim) -> (Option<u64>, Option<i64>) {
        let info = g.info(&s.facts());
        (info.entries_read, info.lag)
    }

    // XADD s 1-1 f v ; XADD s 2-1 f v ; XADD s 3-1 f v
    // XGROUP CREATE s g0 0
    // XGROUP CREATE s gd $
    // XGROUP CREATE s ge 0 ENTRIESREAD 1
    // XGROUP CREATE s gbig 0 ENTRIESREAD 100
    // XINFO GROUPS s  -> g0: last 0-0 entries-read nil lag 3; gbig: 0-0 100 lag -97;
    //                    gd: 3-1 nil lag 0; ge: 0-0 1 lag 2
    // XREADGROUP GROUP g0 alice COUNT 1 STREAMS s >   -> 1-1
    // XINFO GROUPS s  -> g0: consumers 1 pending 1 last 1-1 entries-read 1 lag 2
    // XREADGROUP GROUP ge bob COUNT 1 STREAMS s >     -> 1-1
    // XREADGROUP GROUP gd bob COUNT 1 STREAMS s >     -> (nil)
    // XINFO CONSUMERS s gd                             -> (empty array)
    // XINFO GROUPS s  -> gd: consumers 0 ...; ge: consumers 1 pending 1 last 1-1
    //                    entries-read 2 lag 1
    #[test]
    fn fresh_groups_at_zero_at_dollar_and_with_entriesread() {
        let s = Sim::with(&[id(1, 1), id(2, 1), id(3, 1)]);
        let mut g0 = GroupState::new("g0", EntryId::ZERO, None);
        let mut gd = GroupState::new("gd", s.last, None);
        let mut ge = GroupState::new("ge", EntryId::ZERO, Some(1));
        let gbig = GroupState::new("gbig", EntryId::ZERO, Some(100));
        assert_eq!(read_lag(&g0, &s), (None, Some(3)));
        assert_eq!(read_lag(&gbig, &s), (Some(100), Some(-97)));
        assert_eq!(read_lag(&gd, &s), (None, Some(0)));
        assert_eq!(read_lag(&ge, &s), (Some(1), Some(2)));

        s.read_new(&mut g0, "alice", 1, 10, false);
        let info = g0.info(&s.facts());
        assert_eq!(
            info,
            GroupInfo {
                name: "g0".into(),
                consumers: 1,
                pending: 1,
                last_delivered_id: id(1, 1),
                entries_read: Some(1),
                lag: Some(2),
            }
        );
        s.read_new(&mut ge, "bob", 1, 10, false);
        s.read_new(&mut gd, "bob", 1, 10, false);
        assert!(gd.consumers_info(10).is_empty());
        assert_eq!(gd.info(&s.facts()).consumers, 0);
        assert_eq!(read_lag(&ge, &s), (Some(2), Some(1)));
    }

    // XADD s 1-1 … 4-1 ; XGROUP CREATE s g 0
    // XREADGROUP GROUP g c COUNT 1 STREAMS s >   -> 1-1
    // XDEL s 3-1
    // XINFO GROUPS s   -> last 1-1 entries-read 1 lag nil
    // XREADGROUP GROUP g c COUNT 1 STREAMS s >   -> 2-1
    // XINFO GROUPS s   -> last 2-1 entries-read nil lag nil
    // XREADGROUP GROUP g c COUNT 1 STREAMS s >   -> 4-1
    // XINFO GROUPS s   -> last 4-1 entries-read 4 lag 0
    // XDEL s 1-1       (before the group's last id)
    // XINFO GROUPS s   -> entries-read 4 lag 0
    // XADD s 5-1 f v
    // XINFO GROUPS s   -> entries-read 4 lag 1
    // XREADGROUP GROUP g c COUNT 1 STREAMS s >   -> 5-1
    // XINFO GROUPS s   -> last 5-1 entries-read 5 lag 0
    #[test]
    fn xdel_after_and_before_the_last_id() {
        let mut s = Sim::with(&[id(1, 1), id(2, 1), id(3, 1), id(4, 1)]);
        let mut g = GroupState::new("g", EntryId::ZERO, None);
        s.read_new(&mut g, "c", 1, 1, false);
        s.xdel(id(3, 1));
        assert_eq!(read_lag(&g, &s), (Some(1), None));
        s.read_new(&mut g, "c", 1, 2, false);
        assert_eq!(g.last_id, id(2, 1));
        assert_eq!(read_lag(&g, &s), (None, None));
        s.read_new(&mut g, "c", 1, 3, false);
        assert_eq!(g.last_id, id(4, 1));
        assert_eq!(read_lag(&g, &s), (Some(4), Some(0)));
        s.xdel(id(1, 1));
        assert_eq!(read_lag(&g, &s), (Some(4), Some(0)));
        s.xadd(id(5, 1));
        assert_eq!(read_lag(&g, &s), (Some(4), Some(1)));
        s.read_new(&mut g, "c", 1, 4, false);
        assert_eq!(read_lag(&g, &s), (Some(5), Some(0)));
        assert_eq!(g.info(&s.facts()).pending, 4);
    }

    // XADD t 1-0 … 5-0 ; XGROUP CREATE t g 0 ; XGROUP CREATE t g2 0
    // XREADGROUP GROUP g2 c COUNT 2 STREAMS t >   -> 1-0 2-0
    // XTRIM t MAXLEN 3                             -> 2
    // XINFO GROUPS t  -> g: 0-0 nil lag 3; g2: 2-0 2 lag 3
    // XREADGROUP GROUP g c COUNT 1 STREAMS t >    -> 3-0
    // XREADGROUP GROUP g2 c COUNT 1 STREAMS t >   -> 3-0
    // XINFO GROUPS t  -> g: 3-0 3 lag 2; g2: 3-0 3 lag 2
    // XTRIM t MAXLEN 0                             -> 3
    // XINFO GROUPS t  -> (unchanged) g: 3-0 3 lag 2
    // XGROUP CREATE t g3 0 ; XGROUP CREATE t g4 3-0 ; XGROUP CREATE t g5 9-0
    // XINFO GROUPS t  -> g3: 0-0 nil lag 0; g4: 3-0 nil lag 0; g5: 9-0 nil lag nil
    // XGROUP SETID t g 2-0
    // XINFO GROUPS t  -> g: consumers 1 pending 1 last 2-0 entries-read nil lag 0
    #[test]
    fn trims() {
        let mut s = Sim::with(&[id(1, 0), id(2, 0), id(3, 0), id(4, 0), id(5, 0)]);
        let mut g = GroupState::new("g", EntryId::ZERO, None);
        let mut g2 = GroupState::new("g2", EntryId::ZERO, None);
        s.read_new(&mut g2, "c", 2, 1, false);
        s.trim(3);
        assert_eq!(read_lag(&g, &s), (None, Some(3)));
        assert_eq!(read_lag(&g2, &s), (Some(2), Some(3)));
        s.read_new(&mut g, "c", 1, 2, false);
        s.read_new(&mut g2, "c", 1, 2, false);
        assert_eq!(read_lag(&g, &s), (Some(3), Some(2)));
        assert_eq!(read_lag(&g2, &s), (Some(3), Some(2)));
        s.trim(0);
        assert_eq!(read_lag(&g, &s), (Some(3), Some(2)));
        let g3 = GroupState::new("g3", EntryId::ZERO, None);
        let g4 = GroupState::new("g4", id(3, 0), None);
        let g5 = GroupState::new("g5", id(9, 0), None);
        assert_eq!(read_lag(&g3, &s), (None, Some(0)));
        assert_eq!(read_lag(&g4, &s), (None, Some(0)));
        assert_eq!(read_lag(&g5, &s), (None, None));
        g.set_id(id(2, 0), None);
        g.check().unwrap();
        let info = g.info(&s.facts());
        assert_eq!((info.consumers, info.pending), (1, 1));
        assert_eq!((info.last_delivered_id, info.lag), (id(2, 0), Some(0)));
        assert_eq!(info.entries_read, None);
    }

    // XGROUP CREATE e g 0 MKSTREAM ; XGROUP CREATE e g2 5-0
    // XINFO GROUPS e  -> g: 0-0 nil lag 0; g2: 5-0 nil lag 0
    // XGROUP SETID e g 7-0 ENTRIESREAD 3
    // XINFO GROUPS e  -> g: 7-0 3 lag 0
    #[test]
    fn a_stream_that_never_had_entries() {
        let s = Sim::default();
        let mut g = GroupState::new("g", EntryId::ZERO, None);
        let g2 = GroupState::new("g2", id(5, 0), None);
        assert_eq!(read_lag(&g, &s), (None, Some(0)));
        assert_eq!(read_lag(&g2, &s), (None, Some(0)));
        g.set_id(id(7, 0), Some(3));
        assert_eq!(read_lag(&g, &s), (Some(3), Some(0)));
    }

    // XADD s 1-0 2-0 3-0 ; XGROUP CREATE s g 0
    // XREADGROUP GROUP g alice STREAMS s >        -> 1-0 2-0 3-0
    // XCLAIM s g alice 0 1-0 2-0 RETRYCOUNT 5 JUSTID
    // XGROUP SETID s g 0 ENTRIESREAD 0
    // XREADGROUP GROUP g bob COUNT 1 STREAMS s >          -> 1-0
    // XREADGROUP GROUP g bob COUNT 1 NOACK STREAMS s >    -> 2-0
    // XPENDING s g - + 10  -> 1-0 bob _ 1; 2-0 alice _ 5; 3-0 alice _ 1
    // XINFO GROUPS s       -> consumers 2 pending 3 last 2-0 entries-read 2 lag 1
    // XACK s g 1-0 1-0 9-0 3-0   -> 2
    // XPENDING s g          -> 1 2-0 2-0 [[alice 1]]
    #[test]
    fn setid_backwards_redelivers_and_noack_leaves_the_pel() {
        let s = Sim::with(&[id(1, 0), id(2, 0), id(3, 0)]);
        let mut g = GroupState::new("g", EntryId::ZERO, None);
        s.read_new(&mut g, "alice", 0, 100, false);
        let opts = ClaimOptions {
            retry_count: Some(5),
            just_id: true,
            ..Default::default()
        };
        let r = g.claim("alice", &[id(1, 0), id(2, 0)], 0, 110, &opts, s.exists());
        assert_eq!(r.claimed, [id(1, 0), id(2, 0)]);
        g.set_id(EntryId::ZERO, Some(0));
        g.check().unwrap();
        s.read_new(&mut g, "bob", 1, 120, false);
        s.read_new(&mut g, "bob", 1, 130, true);
        let rows = g.pending_range(EntryId::ZERO, EntryId::MAX, 10, None, 0, 140);
        let rows: Vec<_> = rows
            .iter()
            .map(|r| (r.id, r.consumer.as_str(), r.idle_ms, r.deliveries))
            .collect();
        assert_eq!(
            rows,
            [
                (id(1, 0), "bob", 20, 1),
                (id(2, 0), "alice", 30, 5),
                (id(3, 0), "alice", 40, 1)
            ]
        );
        let info = g.info(&s.facts());
        assert_eq!((info.consumers, info.pending), (2, 3));
        assert_eq!(
            (info.last_delivered_id, info.entries_read, info.lag),
            (id(2, 0), Some(2), Some(1))
        );
        assert_eq!(g.ack(&[id(1, 0), id(1, 0), id(9, 0), id(3, 0)]), 2);
        assert_eq!(
            g.pending_summary(),
            PendingSummary {
                count: 1,
                range: Some((id(2, 0), id(2, 0))),
                consumers: vec![("alice".into(), 1)],
            }
        );
        g.check().unwrap();
    }

    // XADD s 1-0 … 6-0 ; XGROUP CREATE s g 0
    // XREADGROUP GROUP g alice COUNT 3 STREAMS s >        -> 1-0 2-0 3-0
    // XCLAIM s g bob 0 1-0 TIME 1000 JUSTID               -> 1-0
    // XCLAIM s g bob 0 2-0 RETRYCOUNT 7 IDLE 5000 JUSTID  -> 2-0
    // XCLAIM s g bob 0 5-0 FORCE JUSTID                   -> 5-0
    // XCLAIM s g bob 0 6-0 FORCE                          -> [6-0 [f v]]
    // XCLAIM s g bob 0 9-0 FORCE JUSTID                   -> (empty array)
    // XPENDING s g - + 10  -> 1-0 bob (now-1000) 1; 2-0 bob 5027 7; 3-0 alice 48 1;
    //                         5-0 bob 20 1; 6-0 bob 14 2
    // XDEL s 3-0
    // XCLAIM s g bob 0 3-0 4-0 JUSTID                     -> (empty array)
    // XPENDING s g - + 10  -> 1-0 2-0 5-0 6-0 (3-0 gone)
    // XCLAIM s g carol 0 1-0 TIME 99999999999999 LASTID 8-0 JUSTID  -> 1-0
    // XPENDING s g - + 10  -> 1-0 carol 6 1; …
    // XINFO GROUPS s       -> consumers 3 pending 4 last 8-0 entries-read 3 lag 3
    // XCLAIM s g dave 3600000 1-0 JUSTID                  -> (empty array)
    // XINFO CONSUMERS s g  -> alice 0, bob 3, carol 1 (no dave)
    // XCLAIM s g erin 3600000 5-0 FORCE JUSTID            -> (empty array)
    // XCLAIM s g erin 0 5-0 5-0 JUSTID                    -> 5-0 5-0
    // XPENDING s g - + 10  -> 1-0 carol 1; 2-0 bob 7; 5-0 erin 1; 6-0 bob 2
    // XINFO CONSUMERS s g  -> alice 0, bob 2, carol 1, erin 1
    #[test]
    fn xclaim_options() {
        let mut s = Sim::with(&[id(1, 0), id(2, 0), id(3, 0), id(4, 0), id(5, 0), id(6, 0)]);
        let mut g = GroupState::new("g", EntryId::ZERO, None);
        let t0 = 1_000_000;
        s.read_new(&mut g, "alice", 3, t0, false);
        let just = ClaimOptions {
            just_id: true,
            ..Default::default()
        };
        let claim = |g: &mut GroupState, s: &Sim, c: &str, min, ids: &[EntryId], now, o| {
            let r = g.claim(c, ids, min, now, &o, s.exists());
            g.check().unwrap();
            r
        };
        let o = ClaimOptions {
            time: Some(ClaimTime::Time(1000)),
            ..just
        };
        assert_eq!(
            claim(&mut g, &s, "bob", 0, &[id(1, 0)], t0 + 1, o).claimed,
            [id(1, 0)]
        );
        let o = ClaimOptions {
            retry_count: Some(7),
            time: Some(ClaimTime::Idle(5000)),
            ..just
        };
        assert_eq!(
            claim(&mut g, &s, "bob", 0, &[id(2, 0)], t0 + 2, o).claimed,
            [id(2, 0)]
        );
        let force = ClaimOptions {
            force: true,
            ..just
        };
        assert_eq!(
            claim(&mut g, &s, "bob", 0, &[id(5, 0)], t0 + 3, force).claimed,
            [id(5, 0)]
        );
        let o = ClaimOptions {
            force: true,
            ..Default::default()
        };
        assert_eq!(
            claim(&mut g, &s, "bob", 0, &[id(6, 0)], t0 + 4, o).claimed,
            [id(6, 0)]
        );
        assert!(
            claim(&mut g, &s, "bob", 0, &[id(9, 0)], t0 + 5, force)
                .claimed
                .is_empty()
        );
        let rows: Vec<_> = g
            .pending_range(EntryId::ZERO, EntryId::MAX, 10, None, 0, t0 + 10)
            .into_iter()
            .map(|r| (r.id, r.consumer, r.idle_ms, r.deliveries))
            .collect();
        assert_eq!(
            rows,
            [
                (id(1, 0), "bob".into(), t0 + 10 - 1000, 1),
                (id(2, 0), "bob".into(), 5008, 7),
                (id(3, 0), "alice".into(), 10, 1),
                (id(5, 0), "bob".into(), 7, 1),
                (id(6, 0), "bob".into(), 6, 2),
            ]
        );

        s.xdel(id(3, 0));
        let r = claim(&mut g, &s, "bob", 0, &[id(3, 0), id(4, 0)], t0 + 20, just);
        assert_eq!(
            r,
            ClaimResult {
                claimed: vec![],
                removed: vec![id(3, 0)]
            }
        );
        assert_eq!(
            g.pending.keys().copied().collect::<Vec<_>>(),
            [id(1, 0), id(2, 0), id(5, 0), id(6, 0)]
        );

        let o = ClaimOptions {
            time: Some(ClaimTime::Time(99_999_999_999_999)),
            last_id: Some(id(8, 0)),
            ..just
        };
        assert_eq!(
            claim(&mut g, &s, "carol", 0, &[id(1, 0)], t0 + 30, o).claimed,
            [id(1, 0)]
        );
        let p = &g.pending[&id(1, 0)];
        assert_eq!(
            (p.consumer.as_str(), p.delivered_ms, p.deliveries),
            ("carol", t0 + 30, 1)
        );
        let info = g.info(&s.facts());
        assert_eq!((info.consumers, info.pending), (3, 4));
        assert_eq!(
            (info.last_delivered_id, info.entries_read, info.lag),
            (id(8, 0), Some(3), Some(3))
        );

        let hour = 3_600_000;
        assert!(
            claim(&mut g, &s, "dave", hour, &[id(1, 0)], t0 + 40, just)
                .claimed
                .is_empty()
        );
        let names: Vec<_> = g
            .consumers_info(t0 + 40)
            .into_iter()
            .map(|c| (c.name, c.pending))
            .collect();
        assert_eq!(
            names,
            [("alice".into(), 0), ("bob".into(), 3), ("carol".into(), 1)]
        );
        assert!(
            claim(&mut g, &s, "erin", hour, &[id(5, 0)], t0 + 50, force)
                .claimed
                .is_empty()
        );
        let r = claim(&mut g, &s, "erin", 0, &[id(5, 0), id(5, 0)], t0 + 60, just);
        assert_eq!(r.claimed, [id(5, 0), id(5, 0)]);
        let rows: Vec<_> = g
            .pending
            .iter()
            .map(|(&i, p)| (i, p.consumer.as_str(), p.deliveries))
            .collect();
        assert_eq!(
            rows,
            [
                (id(1, 0), "carol", 1),
                (id(2, 0), "bob", 7),
                (id(5, 0), "erin", 1),
                (id(6, 0), "bob", 2)
            ]
        );
        let names: Vec<_> = g
            .consumers_info(t0 + 60)
            .into_iter()
            .map(|c| (c.name, c.pending, c.idle_ms))
            .collect();
        assert_eq!(
            names,
            [
                ("alice".into(), 0, 60),
                ("bob".into(), 2, 56),
                ("carol".into(), 1, 30),
                ("erin".into(), 1, 0)
            ]
        );
    }

    // XADD s 1-0 … 8-0 ; XGROUP CREATE s g 0
    // XREADGROUP GROUP g alice STREAMS s >                 -> 1-0 … 8-0
    // XCLAIM s g alice 0 2-0 4-0 6-0 TIME 1000 JUSTID      (long idle)
    // XDEL s 3-0 5-0
    // XAUTOCLAIM s g bob 3600000 0 COUNT 1 JUSTID          -> 3-0 [2-0] []
    // XAUTOCLAIM s g bob 3600000 0 COUNT 2 JUSTID          -> 5-0 [4-0] [3-0]
    // XAUTOCLAIM s g bob 3600000 5-0 COUNT 2 JUSTID        -> 7-0 [6-0] [5-0]
    // XAUTOCLAIM s g bob 3600000 7-0 COUNT 2 JUSTID        -> 0-0 [] []
    // XAUTOCLAIM s g carol 0 0 COUNT 1                     -> 2-0 [[1-0 [f v]]] []
    // XAUTOCLAIM s g carol 0 0 COUNT 5 JUSTID              -> 8-0 [1-0 2-0 4-0 6-0 7-0] []
    // XPENDING s g - + 10  -> 1-0 carol 2; 2-0 carol 1; 4-0 carol 1; 6-0 carol 1;
    //                         7-0 carol 1; 8-0 alice 1
    // XINFO CONSUMERS s g  -> alice 1, bob 0, carol 5
    #[test]
    fn xautoclaim() {
        let mut s = Sim::with(&(1..=8).map(|i| id(i, 0)).collect::<Vec<_>>());
        let mut g = GroupState::new("g", EntryId::ZERO, None);
        let t0 = 5_000_000;
        s.read_new(&mut g, "alice", 0, t0, false);
        let o = ClaimOptions {
            time: Some(ClaimTime::Time(1000)),
            just_id: true,
            ..Default::default()
        };
        g.claim(
            "alice",
            &[id(2, 0), id(4, 0), id(6, 0)],
            0,
            t0,
            &o,
            s.exists(),
        );
        s.xdel(id(3, 0));
        s.xdel(id(5, 0));
        let hour = 3_600_000;
        let auto = |g: &mut GroupState, s: &Sim, c: &str, min, start, count, now, just| {
            let r = g.autoclaim(c, start, count, min, now, just, s.exists());
            g.check().unwrap();
            (r.next, r.claimed, r.deleted)
        };
        let t = t0 + 10;
        assert_eq!(
            auto(&mut g, &s, "bob", hour, EntryId::ZERO, 1, t, true),
            (id(3, 0), vec![id(2, 0)], vec![])
        );
        assert_eq!(
            auto(&mut g, &s, "bob", hour, EntryId::ZERO, 2, t, true),
            (id(5, 0), vec![id(4, 0)], vec![id(3, 0)])
        );
        assert_eq!(
            auto(&mut g, &s, "bob", hour, id(5, 0), 2, t, true),
            (id(7, 0), vec![id(6, 0)], vec![id(5, 0)])
        );
        assert_eq!(
            auto(&mut g, &s, "bob", hour, id(7, 0), 2, t, true),
            (EntryId::ZERO, vec![], vec![])
        );
        assert_eq!(
            auto(&mut g, &s, "carol", 0, EntryId::ZERO, 1, t + 10, false),
            (id(2, 0), vec![id(1, 0)], vec![])
        );
        assert_eq!(
            auto(&mut g, &s, "carol", 0, EntryId::ZERO, 5, t + 20, true),
            (
                id(8, 0),
                vec![id(1, 0), id(2, 0), id(4, 0), id(6, 0), id(7, 0)],
                vec![]
            )
        );
        let rows: Vec<_> = g
            .pending
            .iter()
            .map(|(&i, p)| (i, p.consumer.as_str(), p.deliveries))
            .collect();
        assert_eq!(
            rows,
            [
                (id(1, 0), "carol", 2),
                (id(2, 0), "carol", 1),
                (id(4, 0), "carol", 1),
                (id(6, 0), "carol", 1),
                (id(7, 0), "carol", 1),
                (id(8, 0), "alice", 1)
            ]
        );
        let names: Vec<_> = g
            .consumers_info(t + 20)
            .into_iter()
            .map(|c| (c.name, c.pending))
            .collect();
        assert_eq!(
            names,
            [("alice".into(), 1), ("bob".into(), 0), ("carol".into(), 5)]
        );
    }

    // XADD s 1-0 … 12-0 ; XGROUP CREATE s g 0
    // XREADGROUP GROUP g alice STREAMS s >            -> 1-0 … 12-0
    // XAUTOCLAIM s g bob 3600000 0 COUNT 1 JUSTID     -> 11-0 [] []   (10 attempts)
    // XAUTOCLAIM s g bob 3600000 (10-0 COUNT 1 JUSTID -> 0-0 [] []
    // XAUTOCLAIM s g bob 3600000 11-0 COUNT 1 JUSTID  -> 0-0 [] []
    // XINFO CONSUMERS s g                             -> only alice (12 pending)
    // XINFO STREAM s FULL COUNT 2 -> groups: g last 12-0 entries-read 12 lag 0 pel-count 12
    //   pending [1-0 alice T 1, 2-0 alice T 1]; consumers [alice seen-time T pel-count 12
    //   pending [1-0 T 1, 2-0 T 1]]
    // XPENDING s g IDLE 0 - + 0          -> (empty array)
    // XPENDING s g - + 2 alice           -> 1-0 alice _ 1; 2-0 alice _ 1
    // XPENDING s g - + 2 nobody          -> (empty array)
    #[test]
    fn xautoclaim_attempts_full_info_and_xpending() {
        let s = Sim::with(&(1..=12).map(|i| id(i, 0)).collect::<Vec<_>>());
        let mut g = GroupState::new("g", EntryId::ZERO, None);
        let t = 7_000;
        s.read_new(&mut g, "alice", 0, t, false);
        let hour = 3_600_000;
        let r = g.autoclaim("bob", EntryId::ZERO, 1, hour, t + 1, true, s.exists());
        assert_eq!(
            (r.next, r.claimed.len(), r.deleted.len()),
            (id(11, 0), 0, 0)
        );
        let r = g.autoclaim("bob", id(10, 1), 1, hour, t + 1, true, s.exists());
        assert_eq!(r.next, EntryId::ZERO);
        let r = g.autoclaim("bob", id(11, 0), 1, hour, t + 1, true, s.exists());
        assert_eq!(r.next, EntryId::ZERO);
        assert_eq!(g.consumers.len(), 1);
        g.check().unwrap();

        let full = g.full_info(&s.facts(), 2);
        assert_eq!(
            full,
            GroupFull {
                name: "g".into(),
                last_delivered_id: id(12, 0),
                entries_read: Some(12),
                lag: Some(0),
                pel_count: 12,
                pending: vec![
                    (id(1, 0), "alice".into(), t, 1),
                    (id(2, 0), "alice".into(), t, 1)
                ],
                consumers: vec![ConsumerFull {
                    name: "alice".into(),
                    seen_ms: t,
                    pel_count: 12,
                    pending: vec![(id(1, 0), t, 1), (id(2, 0), t, 1)],
                }],
            }
        );
        assert_eq!(g.full_info(&s.facts(), 0).pending.len(), 12);
        assert!(
            g.pending_range(EntryId::ZERO, EntryId::MAX, 0, None, 0, t)
                .is_empty()
        );
        let mine = g.pending_range(EntryId::ZERO, EntryId::MAX, 2, Some("alice"), 0, t + 5);
        assert_eq!(
            mine.iter().map(|r| (r.id, r.idle_ms)).collect::<Vec<_>>(),
            [(id(1, 0), 5), (id(2, 0), 5)]
        );
        assert!(
            g.pending_range(EntryId::ZERO, EntryId::MAX, 2, Some("nobody"), 0, t)
                .is_empty()
        );
        // IDLE filters by delivery time.
        g.claim(
            "alice",
            &[id(3, 0)],
            0,
            t + 100,
            &ClaimOptions::default(),
            s.exists(),
        );
        let idle = g.pending_range(EntryId::ZERO, EntryId::MAX, 20, None, 50, t + 100);
        assert_eq!(idle.len(), 11);
        assert!(idle.iter().all(|r| r.id != id(3, 0)));
    }

    // (continuing the xautoclaim session: carol has 1-0 2-0 4-0 6-0 7-0, alice 8-0)
    // XDEL s 7-0
    // XREADGROUP GROUP g carol STREAMS s 0   -> 1-0 2-0 4-0 6-0 with fields, [7-0 nil]
    // XPENDING s g - + 10  -> 1-0 carol 3; 2-0 carol 2; 4-0 carol 2; 6-0 carol 2;
    //                         7-0 carol (older) 1; 8-0 alice 1
    // XREADGROUP GROUP g carol COUNT 1 STREAMS s 2-0   -> 4-0
    // XREADGROUP GROUP g newbie STREAMS s 0            -> s (empty array)
    // XREADGROUP GROUP g carol STREAMS s 18446744073709551615-18446744073709551615 -> (nil)
    //   (that id means `>`; nothing new, so carol is not touched)
    // XINFO CONSUMERS s g  -> alice 1, bob 0, carol 5, newbie 0
    // XGROUP DELCONSUMER s g carol     -> 5
    // XGROUP DELCONSUMER s g zed       -> 0
    // XGROUP CREATECONSUMER s g carol  -> 1
    // XGROUP CREATECONSUMER s g carol  -> 0
    // XPENDING s g                     -> 1 8-0 8-0 [[alice 1]]
    #[test]
    fn history_reads_and_consumers() {
        let mut s = Sim::with(&(1..=8).map(|i| id(i, 0)).collect::<Vec<_>>());
        let mut g = GroupState::new("g", EntryId::ZERO, None);
        s.read_new(&mut g, "alice", 0, 10, false);
        g.create_consumer("bob", 11);
        let o = ClaimOptions {
            just_id: true,
            ..Default::default()
        };
        let mine = [id(1, 0), id(2, 0), id(4, 0), id(6, 0), id(7, 0)];
        g.claim("carol", &mine, 0, 20, &o, s.exists());
        // In the session 3-0 and 5-0 left the PEL through XAUTOCLAIM.
        g.ack(&[id(3, 0), id(5, 0)]);
        s.xdel(id(3, 0));
        s.xdel(id(5, 0));
        s.xdel(id(7, 0));
        let read = g.read_history("carol", EntryId::ZERO, 0, 30, s.exists());
        assert_eq!(
            read,
            [
                (id(1, 0), true),
                (id(2, 0), true),
                (id(4, 0), true),
                (id(6, 0), true),
                (id(7, 0), false)
            ]
        );
        assert_eq!(g.pending[&id(7, 0)].delivered_ms, 20);
        assert_eq!(g.pending[&id(7, 0)].deliveries, 1);
        assert_eq!(g.pending[&id(1, 0)].delivered_ms, 30);
        assert_eq!(g.pending[&id(1, 0)].deliveries, 2);
        assert_eq!(
            g.read_history("carol", id(2, 0), 1, 40, s.exists()),
            [(id(4, 0), true)]
        );
        assert!(
            g.read_history("newbie", EntryId::ZERO, 0, 50, s.exists())
                .is_empty()
        );
        // `>` with nothing new: Redis does not serve, so carol stays as she was.
        s.read_new(&mut g, "carol", 0, 60, false);
        let info: Vec<_> = g
            .consumers_info(70)
            .into_iter()
            .map(|c| (c.name, c.pending, c.idle_ms))
            .collect();
        assert_eq!(
            info,
            [
                ("alice".into(), 1, 60),
                ("bob".into(), 0, 59),
                ("carol".into(), 5, 30),
                ("newbie".into(), 0, 20)
            ]
        );
        assert_eq!(g.delete_consumer("carol"), 5);
        g.check().unwrap();
        assert_eq!(g.delete_consumer("zed"), 0);
        assert!(g.create_consumer("carol", 80));
        assert!(!g.create_consumer("carol", 90));
        assert_eq!(g.consumers["carol"].seen_ms, 80);
        assert_eq!(
            g.pending_summary(),
            PendingSummary {
                count: 1,
                range: Some((id(8, 0), id(8, 0))),
                consumers: vec![("alice".into(), 1)],
            }
        );
        g.check().unwrap();
    }

    #[test]
    fn estimates_follow_redis_cases() {
        // Never had entries: 0.
        assert_eq!(
            StreamFacts::default().estimate_entries_read(id(9, 9)),
            Some(0)
        );
        let f = StreamFacts {
            entries_added: 10,
            length: 4,
            first_id: id(7, 0),
            last_id: id(10, 0),
            max_deleted_id: EntryId::ZERO,
        };
        assert_eq!(f.estimate_entries_read(id(10, 0)), Some(10));
        assert_eq!(f.estimate_entries_read(id(11, 0)), None);
        assert_eq!(f.estimate_entries_read(id(7, 0)), Some(7));
        assert_eq!(f.estimate_entries_read(id(3, 0)), Some(6));
        assert_eq!(f.estimate_entries_read(id(8, 0)), None);
        // A tombstone below the first entry (its node trimmed since) does not fragment.
        let f2 = StreamFacts {
            max_deleted_id: id(5, 0),
            ..f
        };
        assert!(!f2.has_tombstones_from(EntryId::ZERO));
        assert_eq!(f2.estimate_entries_read(id(7, 0)), Some(7));
        let f3 = StreamFacts {
            max_deleted_id: id(8, 0),
            ..f
        };
        assert!(f3.has_tombstones_from(id(8, 0)) && !f3.has_tombstones_from(id(8, 1)));
        assert_eq!(f3.estimate_entries_read(id(3, 0)), None);
    }

    #[test]
    fn json_round_trip() {
        let s = Sim::with(&[id(1, 0), id(2, 5), id(3, 0)]);
        let mut g = GroupState::new("grüppe", EntryId::ZERO, None);
        s.read_new(&mut g, "alice", 2, 1_700_000_000_000, false);
        g.create_consumer("bob", 1_700_000_000_001);
        g.version = 3;
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(
            json,
            r#"{"version":3,"name":"grüppe","last_id":"2-5","entries_read":2,"pending":{"1-0":["alice",1700000000000,1],"2-5":["alice",1700000000000,1]},"consumers":{"alice":1700000000000,"bob":1700000000001}}"#
        );
        let back: GroupState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, g);
        let unknown = GroupState::new("g", id(u64::MAX, u64::MAX), Some(u64::MAX));
        let back: GroupState =
            serde_json::from_str(&serde_json::to_string(&unknown).unwrap()).unwrap();
        assert_eq!(back, unknown);
        assert!(
            serde_json::from_str::<GroupState>(
                r#"{"version":1,"name":"g","last_id":"1","entries_read":null,"pending":{},"consumers":{}}"#
            )
            .is_err()
        );
    }

    /// Found by `fuzz_group_stored`: a stored delivery count or `entries_read` at
    /// `u64::MAX` overflowed on the next delivery (not a Redis session: Redis's counters
    /// are C integers and wrap).
    #[test]
    fn counters_at_the_top_wrap() {
        let mut g = GroupState::new("g", id(0, 0), Some(u64::MAX));
        g.deliver_new("c", &[id(1, 0)], 5, false, &StreamFacts::default());
        assert_eq!(g.entries_read, Some(0));
        g.pending.get_mut(&id(1, 0)).unwrap().deliveries = u64::MAX;
        g.read_history("c", id(0, 0), 0, 6, |_| true);
        g.claim("c", &[id(1, 0)], 0, 7, &ClaimOptions::default(), |_| true);
        assert_eq!(g.pending[&id(1, 0)].deliveries, 1);
        g.pending.get_mut(&id(1, 0)).unwrap().deliveries = u64::MAX;
        g.autoclaim("c", id(0, 0), 1, 0, 8, false, |_| true);
        assert_eq!(g.pending[&id(1, 0)].deliveries, 0);
    }
}
