//! A stream opened on this node: its identity, the latest manifest this node knows, and
//! the channel that wakes followers when that changes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use s2_common::{config::StreamConfig, encryption::EncryptionAlgorithm};
use tokio::{sync::watch, time::Instant};

use super::{
    cache::ObjectCache,
    chunk::Chunk,
    clock::Clock,
    error::{EngineError, EngineResult, Position},
    layout,
    manifest::{ChunkRef, Manifest, StoredManifest},
    metrics::EngineMetrics,
    notices::Notices,
    random::Random,
    retry::Races,
    usage::StreamUsage,
};
use crate::storage::{DynStore, ETag, PutOutcome, Revalidated, StorageResult};

/// A manifest as of some version, with what is derived from it.
#[derive(Debug)]
pub struct StreamState {
    pub manifest: Manifest,
    pub etag: ETag,
    pub config: StreamConfig,
    /// The manifest's inline chunks, decoded, in the order of its inline references.
    pub inline: Vec<Arc<Chunk>>,
}

impl StreamState {
    pub fn new(manifest: Manifest, etag: ETag) -> EngineResult<Self> {
        Self::reusing(manifest, etag, std::iter::empty())
    }

    /// [`new`](Self::new), taking decoded inline chunks from `known` where they are ones
    /// this manifest carries (the committing node built the newest; the previous state
    /// holds the rest) instead of decoding and checksumming them again.
    pub fn reusing<'a>(
        manifest: Manifest,
        etag: ETag,
        known: impl IntoIterator<Item = (&'a ChunkRef, &'a Arc<Chunk>)>,
    ) -> EngineResult<Self> {
        let config = parse_config(&manifest.config_json)?;
        let refs = manifest.inline_refs();
        let mut inline: Vec<Option<Arc<Chunk>>> = vec![None; refs.len()];
        for (k, chunk) in known {
            let i = refs.partition_point(|r| r.first_seq < k.first_seq);
            if let Some(r) = refs.get(i)
                && r.same_chunk(k)
            {
                inline[i] = Some(chunk.clone());
            }
        }
        let inline = inline
            .into_iter()
            .zip(&manifest.inline_chunks)
            .map(|(known, bytes)| match known {
                Some(chunk) => Ok(chunk),
                None => Chunk::decode(bytes.clone())
                    .map(Arc::new)
                    .map_err(|e| EngineError::Corrupt(format!("inline chunk: {e}"))),
            })
            .collect::<EngineResult<Vec<_>>>()?;
        Ok(Self {
            manifest,
            etag,
            config,
            inline,
        })
    }

    /// The inline chunks' references and decoded bytes.
    pub fn known_inline(&self) -> impl Iterator<Item = (&ChunkRef, &Arc<Chunk>)> {
        self.manifest.inline_refs().iter().zip(&self.inline)
    }

    /// The decoded bytes of inline chunk `r`.
    pub fn inline_chunk(&self, r: &ChunkRef) -> EngineResult<Arc<Chunk>> {
        self.known_inline()
            .find(|(k, _)| k.same_chunk(r))
            .map(|(_, chunk)| chunk.clone())
            .ok_or_else(|| {
                EngineError::Corrupt("inline chunk reference without inline bytes".into())
            })
    }

    pub fn storage_class(&self) -> StorageClass {
        StorageClass::of(&self.config)
    }

    /// Records that arrived before this are past the stream's retention age, if it has one.
    pub fn expire_before(&self, now_ms: u64) -> Option<u64> {
        self.config
            .retention_policy
            .age()
            .map(|age| now_ms.saturating_sub(age.as_millis() as u64))
    }

    pub fn tail(&self) -> Position {
        Position {
            seq_num: self.manifest.next_seq,
            timestamp: self.manifest.last_timestamp,
        }
    }
}

/// How a stream's appends are committed: `express` as soon as possible, `standard` after
/// a linger that gathers more of them per write. S2 types it as a string; anything but
/// `standard` is served as `express`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageClass {
    Express,
    Standard,
}

impl StorageClass {
    pub fn of(config: &StreamConfig) -> Self {
        match config.storage_class.as_deref() {
            Some("standard") => Self::Standard,
            _ => Self::Express,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Express => "express",
            Self::Standard => "standard",
        }
    }
}

/// The stored JSON of a resolved stream config.
pub fn parse_config(json: &str) -> EngineResult<StreamConfig> {
    let api: s2_api::v1::config::StreamConfig = serde_json::from_str(json)
        .map_err(|e| EngineError::Corrupt(format!("stream config: {e}")))?;
    let optional: s2_common::config::OptionalStreamConfig = api
        .try_into()
        .map_err(|e: s2_common::ValidationError| EngineError::Corrupt(e.to_string()))?;
    Ok(optional.into())
}

/// JSON of a resolved stream config, for the manifest.
pub fn config_json(config: &StreamConfig) -> String {
    let api = s2_api::v1::config::StreamConfig::from(config.clone());
    serde_json::to_string(&api).expect("config serializes")
}

/// The last read of a stream's manifest that ended.
struct LastRefresh {
    /// When it ended.
    at: Instant,
    /// Its number among the refreshes begun (0: none yet).
    number: u64,
}

/// How far followers' polling of a quiet stream slows down: at most this many times the
/// base interval.
pub const POLL_BACKOFF_LIMIT: u32 = 10;

/// What every stream opened on a node shares with the others: one per engine, which each
/// [`StreamCore`] points to rather than holding copies of its own.
pub struct NodeServices {
    pub store: DynStore,
    pub cache: ObjectCache,
    pub metrics: Arc<EngineMetrics>,
    pub clock: Clock,
    pub random: Random,
    /// Peers' notices of commits: told of this node's commits, consulted for polling.
    pub notices: Arc<Notices>,
    /// Gap without records after which followers get a heartbeat.
    pub heartbeat: std::ops::Range<Duration>,
}

/// Shared by everything on this node that works with one stream.
pub struct StreamCore {
    pub basin: String,
    pub name: String,
    pub id: String,
    /// The stream's cipher, fixed when it was created; `None` for a plain stream.
    pub cipher: Option<EncryptionAlgorithm>,
    pub(super) node: Arc<NodeServices>,
    /// This node's usage counts of the stream.
    pub(super) usage: Arc<StreamUsage>,
    state: watch::Sender<Arc<StreamState>>,
    /// Read sessions waiting at the tail ([`TailFollower`]): what this node asks its
    /// peers to tell it of.
    tail_followers: AtomicUsize,
    /// When the manifest was last read from storage; serializes refreshes so that any
    /// number of followers cause at most one read per poll interval.
    last_refresh: tokio::sync::Mutex<LastRefresh>,
    /// Refreshes begun so far; each is numbered by this count when it begins.
    refreshes_begun: AtomicU64,
    /// Set when the stream turned out to be deleted or replaced; the registry then
    /// resolves the name afresh.
    stale: AtomicBool,
    /// How often followers look for commits made by other nodes while such commits are
    /// recent; `None` when this node is the only writer (the local directory is locked to
    /// one process). See [`Self::poll_interval`].
    poll_base: Option<Duration>,
    /// When a read of the manifest last found it changed by someone else (or the stream
    /// was opened here).
    last_outside_change: parking_lot::Mutex<Instant>,
}

/// Which stream a [`StreamCore`] is: its names and the cipher its records are sealed with.
pub struct StreamIdentity {
    pub basin: String,
    pub name: String,
    pub cipher: Option<EncryptionAlgorithm>,
}

impl StreamCore {
    pub fn new(
        identity: StreamIdentity,
        node: Arc<NodeServices>,
        usage: Arc<StreamUsage>,
        state: StreamState,
        poll_base: Option<Duration>,
    ) -> Self {
        let StreamIdentity {
            basin,
            name,
            cipher,
        } = identity;
        Self {
            basin,
            name,
            id: state.manifest.stream_id.clone(),
            cipher,
            node,
            usage,
            state: watch::Sender::new(Arc::new(state)),
            tail_followers: AtomicUsize::new(0),
            last_refresh: tokio::sync::Mutex::new(LastRefresh {
                at: Instant::now(),
                number: 0,
            }),
            refreshes_begun: AtomicU64::new(0),
            stale: AtomicBool::new(false),
            poll_base,
            last_outside_change: parking_lot::Mutex::new(Instant::now()),
        }
    }

    /// How long followers wait before looking for other nodes' commits: the base interval
    /// while others committed recently, then a quarter of the time since anyone else last
    /// did, up to [`POLL_BACKOFF_LIMIT`] times the base. A stream only this node writes,
    /// or nobody writes, thus costs a tenth of the reads, and a commit after a quiet spell
    /// is seen within a quarter of that spell. While every peer watches the stream for
    /// this node ([`Notices::covers`]) their commits arrive as notices, and polling is only
    /// the fallback, at the quiet-stream rate.
    pub fn poll_interval(&self) -> Option<Duration> {
        let base = self.poll_base?;
        if self.node.notices.covers(&self.id) {
            return Some(base * POLL_BACKOFF_LIMIT);
        }
        let quiet = self.last_outside_change.lock().elapsed();
        Some((quiet / 4).clamp(base, base * POLL_BACKOFF_LIMIT))
    }

    /// Counts a read session as waiting at the tail until the returned guard drops.
    pub fn tail_follower(self: &Arc<Self>) -> TailFollower {
        if self.tail_followers.fetch_add(1, Ordering::Relaxed) == 0 {
            self.node.notices.follows_changed();
        }
        TailFollower(self.clone())
    }

    /// Read sessions waiting at the tail of the stream on this node.
    pub fn tail_followers(&self) -> usize {
        self.tail_followers.load(Ordering::Relaxed)
    }

    pub fn current(&self) -> Arc<StreamState> {
        self.state.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<StreamState>> {
        self.state.subscribe()
    }

    pub fn follower_count(&self) -> usize {
        self.state.receiver_count()
    }

    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Relaxed);
    }

    fn manifest_key(&self) -> String {
        layout::manifest_key(&self.id)
    }

    /// Writes `next` over the manifest version `etag`; the one way a manifest is replaced.
    pub async fn write_manifest(
        &self,
        next: StoredManifest,
        etag: &ETag,
    ) -> StorageResult<PutOutcome> {
        self.node
            .store
            .put_if_match(&self.manifest_key(), next.0, etag)
            .await
    }

    /// Applies `change` to the latest manifest and writes it conditionally, again after a
    /// lost race ([`Races`]); `change` returns whether there is anything to
    /// write. The appender has its own loop: it must also resolve writes whose outcome is
    /// unknown without applying an append twice.
    pub async fn modify_manifest(
        &self,
        mut change: impl FnMut(&mut Manifest) -> EngineResult<bool>,
    ) -> EngineResult<Arc<StreamState>> {
        let mut races = Races::new("stream", &self.node.random);
        loop {
            races.next().await?;
            let state = self.refresh().await?;
            if state.manifest.is_deleted() {
                return Err(EngineError::StreamDeletionPending(self.name.clone()));
            }
            let mut next = state.manifest.next_version();
            if !change(&mut next)? {
                return Ok(state);
            }
            let written = self
                .write_manifest(next.encode_for_store(), &state.etag)
                .await?;
            if let PutOutcome::Written(etag) = written {
                let state = Arc::new(StreamState::reusing(next, etag, state.known_inline())?);
                self.publish(state.clone());
                return Ok(state);
            }
        }
    }

    /// Makes `state`, which this node wrote, current unless a newer version is already
    /// known; wakes followers, and the watches of peers this node serves.
    pub fn publish(&self, state: Arc<StreamState>) {
        if self.take(state) {
            self.node.notices.committed();
        }
    }

    /// Makes `state`, read from the store or handed over by a peer, current unless a
    /// newer version is already known; wakes followers. Whether it became current.
    fn take(&self, state: Arc<StreamState>) -> bool {
        if state.manifest.is_deleted() {
            self.mark_stale();
        }
        self.state.send_if_modified(|current| {
            if state.manifest.version > current.manifest.version {
                *current = state;
                true
            } else {
                false
            }
        })
    }

    /// [`take`](Self::take) for a state just read from the store: one of the same version
    /// as this node's, but another etag, replaces it without waking anyone. Versions
    /// identify a manifest (each write is conditional on its predecessor), so the two are
    /// the same state; the store's etag is the one its conditions compare with, should a
    /// peer have handed over its state with the etag spelled otherwise.
    fn take_read(&self, state: Arc<StreamState>) {
        if self.take(state.clone()) {
            return;
        }
        self.state.send_if_modified(|current| {
            if state.manifest.version == current.manifest.version && state.etag != current.etag {
                *current = state;
            }
            false
        });
    }

    /// Takes a state a peer wrote or read ([`super::notices`]) if it is newer than this
    /// node's; whether it was.
    pub(super) fn adopt(&self, manifest: Manifest, etag: ETag) -> EngineResult<bool> {
        let known = self.current();
        if manifest.version <= known.manifest.version {
            return Ok(false);
        }
        let state = StreamState::reusing(manifest, etag, known.known_inline())?;
        *self.last_outside_change.lock() = Instant::now();
        Ok(self.take(Arc::new(state)))
    }

    /// The latest state as of a read of the manifest that began after this call: callers
    /// that queue behind one read share the next, so any number of concurrent callers
    /// cost at most two reads, and each still sees every commit that landed before it
    /// called.
    pub async fn refresh(&self) -> EngineResult<Arc<StreamState>> {
        let ticket = self.refreshes_begun.load(Ordering::SeqCst);
        let last = self.last_refresh.lock().await;
        if last.number > ticket {
            return Ok(self.current());
        }
        self.refresh_locked(last).await
    }

    /// [`refresh`](Self::refresh), unless some caller refreshed within `max_age`.
    pub async fn refresh_if_older(&self, max_age: Duration) -> EngineResult<Arc<StreamState>> {
        let last = self.last_refresh.lock().await;
        if last.at.elapsed() < max_age {
            return Ok(self.current());
        }
        self.refresh_locked(last).await
    }

    /// Reads the manifest if it changed since the version this node knows and publishes
    /// it; the lock is held until then, so whoever finds this refresh ended sees its state.
    async fn refresh_locked(
        &self,
        mut last: tokio::sync::MutexGuard<'_, LastRefresh>,
    ) -> EngineResult<Arc<StreamState>> {
        let number = self.refreshes_begun.fetch_add(1, Ordering::SeqCst) + 1;
        let known = self.current();
        let result = self
            .node
            .store
            .revalidate(&self.manifest_key(), &known.etag)
            .await?;
        let state = match result {
            Revalidated::Unchanged => self.current(),
            Revalidated::Changed(obj) => {
                *self.last_outside_change.lock() = Instant::now();
                let manifest = Manifest::decode_object(&obj.bytes)
                    .map_err(|e| EngineError::Corrupt(e.to_string()))?;
                let state = StreamState::reusing(manifest, obj.etag, known.known_inline())?;
                self.take_read(Arc::new(state));
                self.current()
            }
            Revalidated::Missing => {
                self.mark_stale();
                return Err(EngineError::StreamNotFound(self.name.clone()));
            }
        };
        *last = LastRefresh {
            at: Instant::now(),
            number,
        };
        Ok(state)
    }
}

/// A read session waiting at a stream's tail, counted while this lives.
pub struct TailFollower(Arc<StreamCore>);

impl Drop for TailFollower {
    fn drop(&mut self) {
        if self.0.tail_followers.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.node.notices.follows_changed();
        }
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use s2_common::stream::{ReadEnd, ReadFrom, ReadStart};

    use crate::{
        engine::{EngineConfig, PollIntervals, maintenance::DEFAULT_GC_GRACE, reader, testing::*},
        storage,
    };

    /// Callers that queue behind one manifest read share the next instead of each making
    /// one, and still see a commit that landed before they called.
    #[tokio::test(start_paused = true)]
    async fn concurrent_refreshes_share_a_read() {
        use std::sync::Arc;

        use crate::storage::faulty::{Faults, FaultyStore};
        let bucket = storage::memory();
        let (writer, on_writer) = engine_with_stream(bucket.clone(), DEFAULT_GC_GRACE).await;
        let slow: storage::DynStore = Arc::new(FaultyStore::new(
            bucket,
            1,
            Faults {
                delay: 1.0,
                max_delay: Duration::from_millis(5),
                ..Faults::default()
            },
        ));
        let (_reader, on_reader, counters) = counted_node(slow, two_engines_config()).await;
        writer
            .append(&on_writer, batch(&[b"before the calls"]), None)
            .await
            .unwrap();
        let before = counters.snapshot().gets;
        let states = futures::future::join_all((0..20).map(|_| on_reader.core.refresh())).await;
        assert!(
            states
                .iter()
                .all(|s| s.as_ref().unwrap().tail().seq_num == 1)
        );
        let reads = counters.snapshot().gets - before;
        assert!(
            reads <= 2,
            "{reads} manifest reads for 20 concurrent refreshes"
        );
    }

    /// A follower of a stream nobody else writes polls its manifest less and less often,
    /// down to a tenth of the base rate, and still sees another node's commit within a
    /// quarter of the quiet spell before it; once others commit, polling is brisk again.
    #[tokio::test(start_paused = true)]
    async fn followers_of_a_quiet_stream_poll_less_often() {
        const BASE: Duration = Duration::from_millis(50);
        let store = storage::memory();
        let (writer, on_writer) = engine_with_stream(store.clone(), DEFAULT_GC_GRACE).await;
        let config = EngineConfig {
            poll: Some(PollIntervals {
                express: BASE,
                standard: BASE,
            }),
            ..two_engines_config()
        };
        let (follower, on_follower, counters) = counted_node(store, config).await;
        let start = ReadStart {
            from: ReadFrom::SeqNum(0),
            clamp: false,
        };
        let mut session = follower
            .read(&on_follower, start, ReadEnd::default(), false)
            .await
            .unwrap();
        let (tx, mut records) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(out) = session.next().await {
                if let reader::ReadOutput::Batch(b) = out.unwrap() {
                    tx.send(b.records().count()).unwrap();
                }
            }
        });

        let quiet = Duration::from_secs(60);
        let before = counters.snapshot().gets;
        tokio::time::sleep(quiet).await;
        let polls = counters.snapshot().gets - before;
        let cap = BASE * super::POLL_BACKOFF_LIMIT;
        assert!(
            (quiet.div_duration_f64(cap) as u64..=quiet.div_duration_f64(cap) as u64 + 30)
                .contains(&polls),
            "{polls} manifest reads in {quiet:?} (at the base rate: {})",
            quiet.div_duration_f64(BASE)
        );

        let appended = tokio::time::Instant::now();
        writer
            .append(&on_writer, batch(&[b"after a quiet minute"]), None)
            .await
            .unwrap();
        assert_eq!(records.recv().await, Some(1));
        assert!(
            appended.elapsed() <= cap,
            "seen after {:?}",
            appended.elapsed()
        );

        let before = counters.snapshot().gets;
        for i in 0..10u64 {
            writer
                .append(&on_writer, batch(&[&i.to_be_bytes()]), None)
                .await
                .unwrap();
            assert_eq!(records.recv().await, Some(1));
        }
        let busy = counters.snapshot().gets - before;
        assert!(busy <= 2 * 10, "{busy} reads for 10 commits seen");
        assert!(
            on_follower.core.poll_interval() < Some(BASE * 2),
            "back to brisk polling"
        );
    }
}
