//! `sluice verify`: a read-only walk over a whole bucket that checks every object Sluice
//! writes ([`super::layout`]) and returns a typed [`Report`].
//!
//! What it checks:
//! - catalog: every basin, stream and access-token entry parses, its key encodes its name
//!   (or id), every stream entry's basin exists, no two entries share a stream id, and
//!   deletions still pending have not stalled past the grace;
//! - every live stream's manifest: its checksum, that it belongs to its directory, its
//!   config, and its invariants ([`super::manifest::Manifest::check_invariants`]: the index
//!   covers one gap-free run of seq_nums ending at the tail, timestamps never decrease,
//!   the trim point is within the stream, inline chunks are the newest and within bounds),
//!   and its entry bookkeeping (deleted ranges sorted and within the stream);
//! - every index segment the manifest names: present, checksum, and that its chunk
//!   references are gap-free and match the segment's range, timestamps and totals;
//! - every chunk the index references, wherever it is (its own object, its range of a
//!   pack, or inline in the manifest): present, its checksum, that it holds exactly the
//!   referenced seq_nums, size, timestamps and metered bytes, that timestamps never
//!   decrease from record to record across the whole stream, and that entry ids (the
//!   Redis surface's) strictly increase and stay within the manifest's last id;
//! - every consumer group: its root parses and is named by its key, the checkpoint it
//!   names is there, the log records after it are contiguous and parse, every pending
//!   entry of the group they replay to belongs to one of its consumers, and it belongs to
//!   a stream;
//! - orphans: every object nothing reaches ([`super::reach`]), with its age. Those older
//!   than the grace are failures, younger ones may belong to writes in flight.
//!
//! What it cannot check: that what was acknowledged is still there (the bucket holds no
//! record of acks; the crash-loop script compares against its own), anything inside a
//! record's body, and, on a bucket nodes are writing to, a consistent snapshot: a stream
//! that changes while it is checked is read again once if a referenced object went
//! missing, and objects written since they were listed show as young orphans.
//!
//! Order of work, as upkeep's sweep ([`super::sweep`]): the catalog, then `data/` one
//! stream directory at a time, each listed before its manifest is read, so what the
//! manifest references is never taken for an orphan.

mod catalog;
mod groups;
mod report;
mod stream;

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::{Duration, Instant},
};

pub use report::{Counts, Kind, Note, OrphanEntry, Problem, Report, duration};

use super::{
    Clock, EngineResult,
    reach::{self, Graces},
    sweep::StreamDirs,
};
use crate::storage::{DynStore, ListedObject};

/// How a run goes.
pub struct Options {
    /// Orphans younger than this are reported but are no failure.
    pub grace: Duration,
    /// "Now" for ages, in ms since the epoch (tests move it forward).
    pub now_ms: u64,
    /// Objects read at once within one stream.
    pub concurrency: usize,
    /// Called at most once a second with how far the walk has got.
    pub progress: Option<ProgressFn>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            grace: super::maintenance::DEFAULT_ORPHAN_GRACE,
            now_ms: Clock::System.now_ms(),
            concurrency: 16,
            progress: None,
        }
    }
}

/// Where progress goes.
pub type ProgressFn = Box<dyn Fn(&Progress) + Send + Sync>;

/// How far a run has got.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub objects: u64,
    pub streams: u64,
    pub bytes_read: u64,
}

/// What every check needs.
pub(super) struct Ctx<'a> {
    pub store: &'a DynStore,
    pub options: &'a Options,
    pub graces: Graces,
    objects: AtomicU64,
    streams: AtomicU64,
    bytes_read: AtomicU64,
    last_progress: parking_lot::Mutex<Instant>,
}

impl<'a> Ctx<'a> {
    fn new(store: &'a DynStore, options: &'a Options) -> Self {
        Self {
            store,
            options,
            graces: Graces::both(options.grace),
            objects: AtomicU64::new(0),
            streams: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            last_progress: parking_lot::Mutex::new(Instant::now()),
        }
    }

    /// Reads `key`'s bytes, counting them.
    pub async fn get(&self, key: &str) -> EngineResult<Option<bytes::Bytes>> {
        let bytes = self.store.get_bytes(key).await?;
        let n = bytes.as_ref().map_or(0, |b| b.len() as u64);
        self.bytes_read.fetch_add(n, Relaxed);
        self.seen(1);
        Ok(bytes)
    }

    fn seen(&self, objects: u64) {
        self.objects.fetch_add(objects, Relaxed);
        let Some(progress) = &self.options.progress else {
            return;
        };
        let mut last = self.last_progress.lock();
        if last.elapsed() >= Duration::from_secs(1) {
            *last = Instant::now();
            progress(&self.progress());
        }
    }

    fn progress(&self) -> Progress {
        Progress {
            objects: self.objects.load(Relaxed),
            streams: self.streams.load(Relaxed),
            bytes_read: self.bytes_read.load(Relaxed),
        }
    }

    /// Age of a listed object now.
    pub fn age(&self, o: &ListedObject) -> Option<Duration> {
        reach::age(o.modified_ms, self.options.now_ms)
    }
}

/// Every object under `prefix`, in key order.
pub(super) async fn list_all(store: &DynStore, prefix: &str) -> EngineResult<Vec<ListedObject>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_meta(prefix, after.as_deref(), 1000).await?;
        after = page.objects.last().map(|o| o.key.clone());
        out.extend(page.objects);
        if !page.truncated || after.is_none() {
            return Ok(out);
        }
    }
}

/// Walks the whole store read-only and reports what it found. An error means the walk
/// could not finish (storage unreachable), not that the bucket is unsound.
pub async fn verify(store: &DynStore, options: &Options) -> EngineResult<Report> {
    let ctx = Ctx::new(store, options);
    let mut report = Report {
        grace_ms: options.grace.as_millis() as u64,
        ..Report::default()
    };
    let (catalog, findings) = catalog::walk(&ctx).await?;
    findings.merge_into(&mut report);
    let mut seen = std::collections::HashSet::new();
    let mut dirs = StreamDirs::new(store);
    while let Some((id, objects)) = dirs.next().await? {
        ctx.streams.fetch_add(1, Relaxed);
        ctx.seen(objects.len() as u64);
        let refs = catalog
            .streams
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        stream::check_dir(&ctx, &id, objects, refs)
            .await?
            .merge_into(&mut report);
        seen.insert(id);
    }
    // Streams whose directory is gone altogether.
    for (id, refs) in &catalog.streams {
        if !seen.contains(id) {
            stream::check_dir(&ctx, id, Vec::new(), refs)
                .await?
                .merge_into(&mut report);
        }
    }
    report.counts.bytes_read = ctx.bytes_read.load(Relaxed);
    if let Some(progress) = &options.progress {
        progress(&ctx.progress());
    }
    Ok(report)
}

#[cfg(test)]
pub(crate) mod tests;
