//! Background upkeep of streams: age-based retention, dropping trimmed index entries,
//! `delete_on_empty`, and deleting objects no index reaches any more; with every
//! catalog-wide pass, the orphan sweep over the whole bucket ([`super::sweep`]).
//!
//! Every node does this for the streams it has open, and now and then for every stream in
//! the catalog, so streams nobody uses are kept too. Running it on several nodes at once
//! is harmless: index changes are conditional manifest writes, deletions are idempotent,
//! and an object is deleted only after it has been unreachable for a grace period (a
//! reader holding an older manifest re-reads it when an object is gone).

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::time::Instant;
use tracing::{debug, warn};

use super::{
    Engine, EngineError, EngineResult, StreamHandle,
    handle::{StreamCore, StreamState},
};
use crate::storage::DynStore;

/// Upkeep's memory of each stream's unreachable objects between passes, by data id. The
/// engine keeps it rather than the stream's handle, so a stream nobody keeps open (opened
/// afresh by every catalog-wide pass, and dropped after it) still has its garbage
/// collected once the grace has passed.
#[derive(Default)]
pub(super) struct GcMarks(parking_lot::Mutex<HashMap<String, GcMark>>);

impl GcMarks {
    /// Forgets a stream whose data is gone.
    pub(super) fn forget(&self, stream_id: &str) {
        self.0.lock().remove(stream_id);
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct GcMark {
    /// Objects below this seq_num have been deleted.
    collected_below: u64,
    /// The index start seen at some pass, and when: objects below it become deletable
    /// once the grace period has passed.
    pending: Option<(u64, Instant)>,
}

/// Objects unreachable for less than this are left alone.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(30);

/// Objects nothing references that are younger than this are left alone by the orphan
/// sweep (and `sluice verify` does not count them as failures): they may belong to a
/// write in flight. Far above [`super::reach::REFERENCE_WINDOW`] plus a manifest write's
/// longest round trip (30 s timeout, retried within 30 s), since sweeping late costs only
/// the orphans' storage for a while.
pub const DEFAULT_ORPHAN_GRACE: Duration = Duration::from_secs(5 * 60);

fn is_empty_and_idle(state: &StreamState, now: u64) -> bool {
    let Some(min_age) = state.config.delete_on_empty.min_age() else {
        return false;
    };
    let m = &state.manifest;
    let last_activity = m.created_at_ms.max(m.last_append_ms);
    m.first_readable() == m.next_seq
        && now.saturating_sub(last_activity) >= min_age.as_millis() as u64
}

/// Deletes chunk and segment objects of `stream_id` whose first seq_num is below `below`:
/// dropped index entries, and failed commit attempts at positions since dropped.
async fn collect_garbage(store: &DynStore, stream_id: &str, below: u64) -> EngineResult<usize> {
    let mut deleted = 0;
    for dir in ["chunks/", "index/"] {
        let dir = format!("{}{dir}", super::layout::stream_data_dir(stream_id));
        let mut after: Option<String> = None;
        'pages: loop {
            let page = store.list(&dir, after.as_deref(), 1000).await?;
            let mut doomed = Vec::new();
            let mut done = false;
            for key in &page.keys {
                match super::layout::first_seq_in_key(key) {
                    Some(seq) if seq < below => doomed.push(key.clone()),
                    Some(_) => {
                        done = true;
                        break;
                    }
                    None => {}
                }
            }
            store.delete_many(&doomed).await?;
            deleted += doomed.len();
            if done {
                break 'pages;
            }
            match (page.truncated, page.keys.last()) {
                (true, Some(last)) => after = Some(last.clone()),
                _ => break,
            }
        }
    }
    Ok(deleted)
}

impl Engine {
    /// One upkeep pass over one stream.
    pub async fn maintain(&self, handle: &StreamHandle) -> EngineResult<()> {
        let core = &handle.core;
        let state = core.refresh().await?;
        if state.manifest.is_deleted() {
            return Ok(());
        }
        let now = core.node.clock.now_ms();
        let cutoff = state.expire_before(now);
        if state.manifest.clone().drop_unreadable(cutoff) {
            core.modify_manifest(|m| Ok(m.drop_unreadable(cutoff)))
                .await?;
        }
        let state = core.current();
        if is_empty_and_idle(&state, now) {
            debug!(basin = %core.basin, stream = %core.name, "deleting empty stream");
            return match self.delete_stream(&core.basin, &core.name).await {
                Ok(()) | Err(EngineError::StreamNotFound(_)) => Ok(()),
                Err(e) => Err(e),
            };
        }
        self.collect_unreachable(
            core,
            state.manifest.index_start(),
            self.inner.config.gc_grace,
        )
        .await
    }

    /// Deletes objects below `index_start` once they have been unreachable for `grace`.
    async fn collect_unreachable(
        &self,
        core: &StreamCore,
        index_start: u64,
        grace: Duration,
    ) -> EngineResult<()> {
        let marks = &self.inner.gc_marks;
        let due = {
            let mut marks = marks.0.lock();
            let mark = marks.entry(core.id.clone()).or_default();
            match mark.pending {
                // Everything below the mark was unreachable when it was set.
                Some((below, since)) if since.elapsed() >= grace => Some(below),
                Some(_) => None,
                None => {
                    if index_start > mark.collected_below {
                        mark.pending = Some((index_start, Instant::now()));
                    }
                    None
                }
            }
        };
        if let Some(below) = due {
            let n = collect_garbage(&self.inner.store, &core.id, below).await?;
            debug!(stream = %core.name, deleted = n, below, "collected unreachable objects");
            let mut marks = marks.0.lock();
            let mark = marks.entry(core.id.clone()).or_default();
            mark.collected_below = mark.collected_below.max(below);
            mark.pending = (index_start > below).then(|| (index_start, Instant::now()));
        }
        Ok(())
    }

    /// Starts this engine's background work: resuming deletions a previous process left
    /// pending, then periodic upkeep; it ends when the engine is dropped.
    pub(super) fn spawn_background(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            // Finish deletions a previous process of this deployment left pending.
            if let Some(inner) = weak.upgrade() {
                let engine = Engine { inner };
                if let Err(e) = engine.resume_deletions().await {
                    warn!(error = %e, "resuming pending deletions failed");
                }
            }
            let period = weak
                .upgrade()
                .map_or(Duration::from_secs(60), |i| i.config.maintenance_interval);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            for round in 1u64.. {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let engine = Engine { inner };
                if round % 10 == 0 {
                    if let Err(e) = engine.maintain_all_streams().await {
                        warn!(error = %e, "catalog-wide upkeep failed");
                    }
                } else {
                    engine.maintain_open_streams().await;
                }
            }
        });
    }

    /// Upkeep of every stream open on this node.
    pub(super) async fn maintain_open_streams(&self) {
        let handles: Vec<_> = self.inner.streams.lock().values().cloned().collect();
        for h in handles {
            if let Err(e) = self.maintain(&h).await {
                warn!(basin = %h.core.basin, stream = %h.core.name, error = %e, "stream upkeep failed");
            }
        }
    }

    /// Upkeep of every stream in the catalog, opening each in turn.
    pub(super) async fn maintain_all_streams(&self) -> EngineResult<()> {
        let mut after = String::new();
        loop {
            let (basins, more) = self.inner.catalog.list_basins("", &after, 1000).await?;
            for b in basins.iter().filter(|b| b.deleted_at.is_none()) {
                for s in self.inner.catalog.all_listed_streams(&b.name).await? {
                    if s.deleted_at.is_some() {
                        continue;
                    }
                    let was_open = self.is_open(&b.name, &s.name);
                    match self.open(&b.name, &s.name, super::AutoCreate::No).await {
                        Ok(h) => {
                            if let Err(e) = self.maintain(&h).await {
                                warn!(basin = %b.name, stream = %s.name, error = %e, "stream upkeep failed");
                            }
                            self.sample_usage(&b.name, &s.name, &h.core.current().manifest);
                            drop(h);
                            if !was_open {
                                self.release_if_unused(&b.name, &s.name);
                            }
                        }
                        Err(e) => {
                            debug!(basin = %b.name, stream = %s.name, error = %e, "skipping upkeep")
                        }
                    }
                }
            }
            match (more, basins.last()) {
                (true, Some(last)) => after = last.name.clone(),
                _ => break,
            }
        }
        match self.sweep_orphans().await {
            Ok(stats) => debug!(?stats, "orphan sweep"),
            Err(e) => warn!(error = %e, "orphan sweep failed"),
        }
        match self.prune_usage().await {
            Ok(n) => debug!(deleted = n, "usage objects pruned"),
            Err(e) => warn!(error = %e, "pruning usage objects failed"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use s2_common::stream::{ReadEnd, ReadFrom, ReadStart};

    use super::*;
    use crate::{
        engine::{appender::INLINE_MAX_BYTES, reader, testing::*},
        storage,
    };

    #[tokio::test]
    async fn upkeep_deletes_trimmed_chunks_after_the_grace_period() {
        let store = storage::memory();
        let (engine, handle) = engine_with_stream(store.clone(), Duration::ZERO).await;
        // Too large to travel inline: each commit writes its chunk's object.
        let body = vec![1u8; INLINE_MAX_BYTES / 2 + 1];
        for _ in 0..5u8 {
            engine
                .append(&handle, batch(&[&body, &body]), None)
                .await
                .unwrap();
        }
        let id = handle.core.id.clone();
        let written: Vec<u64> = chunk_keys(&store, &id)
            .await
            .iter()
            .map(|k| first_seq_of_key(k))
            .collect();
        assert_eq!(written, [0, 2, 4, 6, 8], "{written:?}");

        // Trim below seq 6: chunks 0..2, 2..4 and 4..6 become unreachable.
        engine.append(&handle, trim(6), None).await.unwrap();
        assert_eq!(handle.core.current().manifest.index_start(), 6);
        engine.maintain(&handle).await.unwrap(); // marks
        engine.maintain(&handle).await.unwrap(); // deletes, the grace period being zero
        let left: Vec<u64> = chunk_keys(&store, &id)
            .await
            .iter()
            .map(|k| first_seq_of_key(k))
            .collect();
        assert_eq!(left[..2], [6, 8], "{left:?}");
        assert!(left.iter().all(|&seq| seq >= 6), "{left:?}");

        let session = engine
            .read(
                &handle,
                ReadStart {
                    from: ReadFrom::SeqNum(0),
                    clamp: false,
                },
                ReadEnd::default(),
                true,
            )
            .await
            .unwrap();
        let read = reader::read_unary(session).await.unwrap();
        assert_eq!(read.records().next().unwrap().seq_num, 6);
    }

    /// A stream nobody keeps open is opened afresh by each catalog-wide pass and dropped
    /// after it; its trimmed chunks are still deleted once the grace has passed.
    #[tokio::test]
    async fn upkeep_collects_the_garbage_of_streams_no_one_keeps_open() {
        let store = storage::memory();
        let (engine, handle) = engine_with_stream(store.clone(), Duration::ZERO).await;
        let body = vec![1u8; INLINE_MAX_BYTES / 2 + 1];
        for _ in 0..3u8 {
            engine
                .append(&handle, batch(&[&body, &body]), None)
                .await
                .unwrap();
        }
        engine.append(&handle, trim(4), None).await.unwrap();
        let id = handle.core.id.clone();
        drop(handle);
        for _ in 0..2 {
            engine.evict_idle_streams(Duration::ZERO);
            engine.maintain_all_streams().await.unwrap();
        }
        let left: Vec<u64> = chunk_keys(&store, &id)
            .await
            .iter()
            .map(|k| first_seq_of_key(k))
            .collect();
        assert!(left.iter().all(|&seq| seq >= 4), "{left:?}");
    }
}
