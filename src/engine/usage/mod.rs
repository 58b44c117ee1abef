//! Usage, for S2's metrics API: what every node counted, kept in the bucket, summed on
//! request.
//!
//! A node counts in memory ([`counters`]) per stream and minute: append operations (by
//! storage class) and metered bytes, read operations (unary, streaming) and metered
//! bytes, counted by [`Engine::submit`] and read sessions for every surface alike; per
//! basin (or the account) and minute, the control-plane operations the S2 surface reports
//! with [`Engine::count_operation`]. It samples each open stream's stored bytes (the
//! metered bytes its manifest indexes, [`Manifest::stored_bytes`]) at every flush, and
//! every stream's at upkeep's catalog-wide pass.
//!
//! Every flush interval the node merges what it counted into two objects of its own
//! ([`object`]): the hour's (minute buckets) and the day's (hour buckets), and writes those
//! that changed, so a node's usage costs at most four PUTs per flush however busy it is
//! (two when no period ended since the last). A node's objects carry a random id made at
//! start, so every process writes its own keys and needs no condition; a restart starts new
//! ones and the old ones keep counting. A write that fails is retried at the next flush
//! from memory; a node that dies loses what it counted since its last flush. The server
//! flushes on graceful shutdown.
//!
//! A query lists the objects of the periods its range touches (minute figures from hour
//! objects, hour and day figures from day objects, so 90 days of days are 90 objects per
//! node) and sums them ([`query`]). Figures are as fresh as each node's last flush.
//! Upkeep's catalog-wide pass, on any node, deletes objects whose period ended more than
//! [`KEEP_SECS`] ago, which no query can reach; deleting twice is harmless.
//!
//! Storage is a gauge: at each step, for every stream, the sample of the newest manifest
//! version any node took before the step ended; a deleted stream counts 0 from its
//! deletion on this node, and once other nodes notice. A stream nobody opened in a period
//! is seen through the samples carried into that period's objects and upkeep's pass.

mod counters;
mod object;
mod query;
mod sets;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, TryStreamExt};
use tracing::warn;

pub(super) use self::counters::minute_of;
pub use self::{counters::StreamUsage, sets::Range};
use self::{
    counters::{NodeUsage, StreamKey},
    object::{DELETED, Sample, UsageObject},
};
use super::{Engine, EngineError, EngineResult, layout, manifest::Manifest};

/// The default of `--metrics-flush-interval`.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// A node's samples older than this are not carried into new objects: a stream nobody
/// opened or visited for that long (deleted meanwhile, say) stops being reported by it.
const CARRY_SAMPLES_FOR_SECS: u32 = 2 * 3600;

/// How long after its period ends a usage object is kept: the longest range a query may
/// ask for (90 days, as S2 bounds it) and two days for clocks and late queries.
pub const KEEP_SECS: u32 = 92 * 86_400;

/// Objects fetched at once by a query.
const QUERY_CONCURRENCY: usize = 16;

/// The two granularities objects are kept at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Granularity {
    /// An hour per object, of minute buckets.
    Minutes,
    /// A day per object, of hour buckets.
    Hours,
}

impl Granularity {
    pub(super) fn dir(self) -> &'static str {
        match self {
            Self::Minutes => "minutes",
            Self::Hours => "hours",
        }
    }

    fn period_secs(self) -> u32 {
        match self {
            Self::Minutes => 3600,
            Self::Hours => 86_400,
        }
    }

    fn bucket_secs(self) -> u32 {
        match self {
            Self::Minutes => 60,
            Self::Hours => 3600,
        }
    }

    fn period_of(self, secs: u32) -> u32 {
        secs - secs % self.period_secs()
    }
}

/// The node's usage: its counters and the objects it is writing.
pub(super) struct Usage {
    /// This process's id in usage keys.
    node: String,
    counters: NodeUsage,
    flush: tokio::sync::Mutex<Flushing>,
}

#[derive(Default)]
struct Flushing {
    /// The objects of the periods this node wrote last, by key.
    open: BTreeMap<String, UsageObject>,
    /// Keys of open objects changed since they were last written.
    dirty: BTreeSet<String>,
    /// The latest sample of every stream this node saw, carried into new objects.
    known: HashMap<StreamKey, Sample>,
}

impl Usage {
    pub(super) fn new(node: String) -> Self {
        Self {
            node,
            counters: NodeUsage::default(),
            flush: tokio::sync::Mutex::default(),
        }
    }

    pub(super) fn stream(&self, basin: &str, name: &str) -> Arc<StreamUsage> {
        self.counters.stream(basin, name)
    }
}

impl Flushing {
    /// The open object of `minute`'s period at `g`, started with the known samples.
    fn object(&mut self, node: &str, g: Granularity, minute: u32) -> &mut UsageObject {
        let start = g.period_of(minute);
        let key = layout::usage_key(g.dir(), start, node);
        self.dirty.insert(key.clone());
        let known = &self.known;
        self.open.entry(key).or_insert_with(|| {
            let mut o = UsageObject::new(node, start, g.bucket_secs());
            for ((basin, stream), sample) in known {
                o.add_sample(basin, stream, *sample);
            }
            o
        })
    }

    fn each(&mut self, node: &str, minute: u32, mut f: impl FnMut(&mut UsageObject)) {
        for g in [Granularity::Minutes, Granularity::Hours] {
            f(self.object(node, g, minute));
        }
    }
}

fn sample_of(m: &Manifest, now: u32) -> Sample {
    Sample {
        at: now,
        created_ms: m.created_at_ms,
        version: if m.is_deleted() { DELETED } else { m.version },
        bytes: if m.is_deleted() { 0 } else { m.stored_bytes() },
    }
}

impl Engine {
    /// One request of a control-plane operation (`op` as S2 names it, `list-basins`):
    /// of `basin`, or of the account when `None`.
    pub fn count_operation(&self, basin: Option<&str>, op: &'static str) {
        let now = self.clock().now_ms();
        self.inner
            .usage
            .counters
            .op(now, basin.unwrap_or_default(), op);
    }

    /// Records a stream's stored bytes as of its manifest `m`, which this node read.
    pub(super) fn sample_usage(&self, basin: &str, name: &str, m: &Manifest) {
        let now = (self.clock().now_ms() / 1000) as u32;
        self.inner
            .usage
            .counters
            .sample(basin, name, sample_of(m, now));
    }

    /// Records that the stream created at `created_ms` is gone: 0 bytes from now on.
    pub(super) fn sample_deleted(&self, basin: &str, name: &str, created_ms: u64) {
        let at = (self.clock().now_ms() / 1000) as u32;
        let sample = Sample {
            at,
            created_ms,
            version: DELETED,
            bytes: 0,
        };
        self.inner.usage.counters.sample(basin, name, sample);
    }

    /// Writes what this node counted since its last flush to its usage objects.
    pub async fn flush_usage(&self) -> EngineResult<()> {
        let handles: Vec<_> = self.inner.streams.lock().values().cloned().collect();
        for h in handles.iter().filter(|h| !h.core.is_stale()) {
            self.sample_usage(&h.core.basin, &h.core.name, &h.core.current().manifest);
        }
        let usage = &self.inner.usage;
        let node = usage.node.as_str();
        let now_ms = self.clock().now_ms();
        let now_minute = minute_of(now_ms);
        let drained = usage.counters.drain();
        let mut f = usage.flush.lock().await;
        for (key, sample) in drained.samples {
            let minute = sample.at - sample.at % 60;
            f.each(node, minute, |o| o.add_sample(&key.0, &key.1, sample));
            let newer = f.known.get(&key).is_none_or(|k| sample.rank() >= k.rank());
            if newer {
                f.known.insert(key, sample);
            }
        }
        f.known
            .retain(|_, s| s.at + CARRY_SAMPLES_FOR_SECS > now_minute);
        for ((basin, stream), minute, counts) in drained.streams {
            f.each(node, minute, |o| {
                o.add_counts(&basin, &stream, minute, &counts)
            });
        }
        for ((basin, op), minutes) in drained.ops {
            for (minute, n) in minutes {
                f.each(node, minute, |o| o.add_op(&basin, op, minute, n));
            }
        }
        // The current periods' objects exist even when quiet, carrying the samples.
        for g in [Granularity::Minutes, Granularity::Hours] {
            let key = layout::usage_key(g.dir(), g.period_of(now_minute), node);
            if !f.open.contains_key(&key) {
                f.object(node, g, now_minute);
            }
        }
        let dirty: Vec<String> = f.dirty.iter().cloned().collect();
        let mut failed = None;
        for key in dirty {
            let bytes = f.open[&key].encode();
            match self.inner.store.put(&key, bytes).await {
                Ok(_) => {
                    f.dirty.remove(&key);
                }
                Err(e) => failed = Some(e),
            }
        }
        // Keep the current and the previous period of each granularity.
        let Flushing { open, dirty, .. } = &mut *f;
        open.retain(|key, o| {
            let period = if o.bucket_secs == 60 { 3600 } else { 86_400 };
            dirty.contains(key) || o.start + 2 * period > now_minute
        });
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Flushes every `interval` while the engine lives.
    pub(super) fn spawn_usage_flush(&self, interval: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = (Engine { inner }).flush_usage().await {
                    warn!(error = %e, "writing usage failed; retrying at the next flush");
                }
            }
        });
    }

    /// Deletes the usage objects of every node whose period ended over [`KEEP_SECS`] ago;
    /// how many.
    pub(super) async fn prune_usage(&self) -> EngineResult<usize> {
        let now = (self.clock().now_ms() / 1000) as u32;
        let cutoff = now.saturating_sub(KEEP_SECS);
        let store = &self.inner.store;
        let mut deleted = 0;
        for g in [Granularity::Minutes, Granularity::Hours] {
            let dir = layout::usage_dir(g.dir());
            loop {
                // Keys sort by period: the expired ones come first.
                let page = store.list(&dir, None, 1000).await?;
                let expired: Vec<String> = page
                    .keys
                    .iter()
                    .filter(|k| {
                        layout::usage_period_in_key(g.dir(), k)
                            .is_some_and(|p| p.saturating_add(g.period_secs()) <= cutoff)
                    })
                    .cloned()
                    .collect();
                if expired.is_empty() {
                    break;
                }
                store.delete_many(&expired).await?;
                deleted += expired.len();
                if expired.len() < page.keys.len() || !page.truncated {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    /// Every node's objects at `g` of the periods `[start, end)` touches.
    async fn usage_objects(
        &self,
        g: Granularity,
        start: u32,
        end: u32,
    ) -> EngineResult<Vec<UsageObject>> {
        let dir = layout::usage_dir(g.dir());
        let first = g.period_of(start);
        let mut after = layout::usage_period_prefix(g.dir(), first.saturating_sub(1));
        let mut keys = Vec::new();
        'pages: loop {
            let page = self
                .inner
                .store
                .list(&dir, Some(after.as_str()), 1000)
                .await?;
            for key in &page.keys {
                match layout::usage_period_in_key(g.dir(), key) {
                    Some(p) if p >= end => break 'pages,
                    Some(p) if p >= first => keys.push(key.clone()),
                    _ => {}
                }
            }
            match page.keys.last() {
                Some(last) if page.truncated => after = last.clone(),
                _ => break,
            }
        }
        let store = self.inner.store.clone();
        futures::stream::iter(keys)
            .map(|key| {
                let store = store.clone();
                async move {
                    let bytes = store.get_bytes(&key).await?;
                    bytes
                        .map(|b| {
                            UsageObject::decode(&b).map_err(|e| {
                                EngineError::Corrupt(format!("usage object {key}: {e}"))
                            })
                        })
                        .transpose()
                }
            })
            .buffer_unordered(QUERY_CONCURRENCY)
            .try_filter_map(|o| async move { Ok(o) })
            .try_collect()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        engine::{Clock, EngineConfig},
        storage,
    };

    #[tokio::test]
    async fn upkeep_prunes_only_what_no_query_reaches() {
        let now: u32 = 200 * 86_400;
        let store = storage::memory();
        let engine = Engine::new(
            store.clone(),
            EngineConfig {
                clock: Clock::simulated(u64::from(now) * 1000),
                ..EngineConfig::default()
            },
        );
        let old_day = now - KEEP_SECS - 86_400;
        let kept_day = now - KEEP_SECS;
        let keys = [
            layout::usage_key("hours", old_day - 86_400, "a"),
            layout::usage_key("hours", old_day, "b"),
            layout::usage_key("hours", kept_day, "a"),
            layout::usage_key("minutes", old_day, "a"),
            layout::usage_key("minutes", now - 3600, "a"),
        ];
        for key in &keys {
            store.put(key, bytes::Bytes::new()).await.unwrap();
        }
        assert_eq!(engine.prune_usage().await.unwrap(), 3);
        let left = |dir: &'static str| {
            let store = store.clone();
            async move {
                store
                    .list(&layout::usage_dir(dir), None, 100)
                    .await
                    .unwrap()
                    .keys
            }
        };
        assert_eq!(left("hours").await, vec![keys[2].clone()]);
        assert_eq!(left("minutes").await, vec![keys[4].clone()]);
        assert_eq!(engine.prune_usage().await.unwrap(), 0);
    }
}
