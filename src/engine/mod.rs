//! The log: catalog, per-stream appenders, readers and followers, caches and background
//! work, over object storage. Knows nothing about HTTP.
//!
//! # Files
//!
//! | file | what it is | who calls it |
//! |---|---|---|
//! | `mod.rs` | [`Engine`], its configuration, this map | the surfaces, `server` |
//! | `basins.rs` | basins: create, ensure, reconfigure, list | `api::basins`, the Redis keyspace |
//! | `streams.rs` | streams' control plane: create, ensure, reconfigure, list | `api::streams`, `registry.rs` |
//! | `access_tokens.rs` | access tokens in the catalog | `api::access_tokens`, `http::auth` |
//! | `deletion.rs` | deleting basins and streams, resuming interrupted deletions | `api`, `maintenance.rs` |
//! | `registry.rs` | [`StreamHandle`]: the streams opened on this node | `data.rs`, the surfaces |
//! | `data.rs` | appends and reads: the data plane's entry points | `api::records`, `api::s2s`, the Redis commands |
//! | `appender/` | one task per stream that group-commits appends: plan, write chunk, write manifest, ack | `data.rs` |
//! | `reader.rs` | read sessions: catch-up from chunks, then following the tail | `data.rs` |
//! | `handle.rs` | [`StreamCore`](handle::StreamCore)/[`StreamState`](handle::StreamState): a stream's latest manifest on this node, its refresh and its conditional changes | appender, reader, upkeep |
//! | `maintenance.rs` | background work: retention, `delete_on_empty`, garbage collection | [`Engine::new`] |
//! | `entries.rs`, `entry_ops.rs` | Redis entry ids and deletions kept in the manifest | appender, the Redis commands |
//! | `group_state.rs`, `group_log.rs`, `groups.rs` | consumer groups: the state machine, the formats of its root, checkpoints and log, and their reads and writes | the Redis commands |
//! | `catalog.rs` | catalog objects (basins, streams, tokens), conditional writes | control plane files |
//! | `listing.rs`, `markers.rs` | stream listings from LIST alone; the entries' listing markers | `streams.rs`, `maintenance.rs`, `deletion.rs`; `catalog.rs` |
//! | `manifest.rs` | the per-stream manifest and index segments, with their invariants | appender, reader, upkeep |
//! | `commit_log.rs` | links of a stream's commit log: one manifest transition each (`docs/design/commit-log.md`) | not yet wired; its tests |
//! | `chunk.rs`, `record.rs` | the chunk format; append batches as received | appender, reader, surfaces |
//! | `crypt.rs` | encrypted streams: records sealed on the way in, opened on the way out | the surfaces, `data.rs`, `reader.rs` |
//! | `notices.rs` | peers' notices of commits: the states a peer asks for, adopting a peer's state, which streams peers watch | [`crate::peers`], `handle.rs` |
//! | `cache.rs` | decoded chunks and segments, shared by every stream on the node | reader, appender |
//! | `layout.rs` | every object's key, in one place | everything that names an object |
//! | `retry.rs` | the read-modify-write primitive and back-off | catalog, manifest and group changes |
//! | `clock.rs` | the one clock | everything that stores a time |
//! | `error.rs`, `metrics.rs` | engine errors; the engine's counters | |
//! | `usage/` | usage for S2's metrics API: per-stream and per-operation counts and storage samples, flushed to the bucket, summed on request | `data.rs`, `reader.rs`, `api::metrics` |
//!
//! An append, by file: `api/records.rs` or `api/s2s.rs` parses it (`record.rs`), `data.rs`
//! hands it to the stream's appender (`registry.rs` finds the stream), `appender/plan.rs`
//! numbers it into a chunk and the next manifest, `appender/commit.rs` writes the chunk
//! and then the manifest with `If-Match` (`handle.rs`, keys from `layout.rs`), through
//! [`crate::storage`].

mod access_tokens;
mod appender;
mod basins;
mod cache;
mod catalog;
pub(crate) mod chunk;
mod clock;
// Pure and tested; the stream's reads and writes take it up in the next step of
// `docs/design/commit-log.md`.
#[cfg_attr(not(test), allow(dead_code))]
mod commit_log;
mod crypt;
mod data;
mod deletion;
pub(crate) mod entries;
mod entry_ops;
mod error;
mod group_log;
mod group_state;
mod groups;
mod handle;
pub(crate) mod layout;
mod listing;
mod maintenance;
pub(crate) mod manifest;
mod markers;
mod metrics;
pub mod notices;
mod random;
mod reach;
pub(crate) mod reader;
pub(crate) mod record;
mod registry;
mod retry;
mod streams;
mod sweep;
#[cfg(test)]
pub(crate) mod testing;
pub mod usage;
pub mod verify;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use parking_lot::Mutex;

pub use self::{
    appender::{Ack, AppenderSettings, SessionGate},
    catalog::{AccessTokenEntry, BasinEntry, StreamEntry, Written},
    clock::Clock,
    crypt::Encryption,
    entries::{EntryId, EntryState, NODE_ENTRIES},
    entry_ops::EntryView,
    error::{ConditionFailed, EngineError, EngineResult, Position},
    group_log::GroupDelta,
    group_state::{ClaimOptions, ClaimTime, GroupState, StreamFacts},
    groups::{GroupLog, LoadedGroup},
    markers::ListedStream,
    random::Random,
    reader::{ReadBatch, ReadOutput, ReadSession, read_unary},
    record::{
        AppendInput, Command, InputError, RecordBatch, RecordBatchBuilder, parse_append_input,
    },
    registry::StreamHandle,
    retry::Races,
    streams::resolve_stream_config,
};
use self::{cache::ObjectCache, catalog::Catalog, metrics::EngineMetrics};
use crate::storage::{
    DynStore,
    counting::{CountingStore, StoreCounters},
};

/// How often followers re-read a manifest to see other nodes' commits, per storage class.
#[derive(Debug, Clone, Copy)]
pub struct PollIntervals {
    pub express: Duration,
    pub standard: Duration,
}

impl Default for PollIntervals {
    fn default() -> Self {
        Self {
            express: Duration::from_millis(50),
            standard: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Bytes of chunks kept in memory.
    pub cache_bytes: u64,
    pub appender: AppenderSettings,
    /// `None` when this node is the only one writing to its storage.
    pub poll: Option<PollIntervals>,
    /// Delay between marking a resource deleted and removing its objects, so that
    /// requests already in flight on other nodes finish first.
    pub deletion_grace: Duration,
    /// A following read session sends a heartbeat after a random gap in this range
    /// without records (S2 clients give up after 20 s of silence).
    pub heartbeat: std::ops::Range<Duration>,
    /// How often open streams get their upkeep (retention, trimming, `delete_on_empty`,
    /// garbage); every stream in the catalog gets it every tenth time.
    pub maintenance_interval: Duration,
    /// How long a stream nothing on this node uses stays open here before it is released
    /// (`registry.rs`); checked every quarter of it (between 250 ms and 15 s).
    pub stream_idle_release: Duration,
    /// How long an object must have been unreachable before upkeep deletes it.
    pub gc_grace: Duration,
    /// How old an object nothing references must be before upkeep's orphan sweep deletes
    /// it ([`reach`]): longer than [`reach::REFERENCE_WINDOW`] plus the longest a manifest
    /// write takes to land, so that no write in flight is about to reference it. Shorter
    /// is safe only while nothing writes (tests).
    pub orphan_grace: Duration,
    /// The most runs of deleted entries (`XDEL`) a stream's manifest keeps.
    pub max_deleted_ranges: usize,
    /// How often the node writes its usage counts to the bucket ([`usage`]).
    pub usage_flush_interval: Duration,
    /// A consumer group gets a checkpoint once this many log records, or this many bytes
    /// of them, are past its last one ([`groups`]): fewer records make reading a group
    /// cheaper, more make its writes cheaper.
    pub group_checkpoint_records: u64,
    pub group_checkpoint_bytes: u64,
    /// Where every stored time comes from.
    pub clock: Clock,
    /// Where every random choice comes from.
    pub random: Random,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            cache_bytes: 1024 * 1024 * 1024,
            appender: AppenderSettings::default(),
            poll: Some(PollIntervals::default()),
            deletion_grace: Duration::from_secs(1),
            heartbeat: Duration::from_secs(5)..Duration::from_secs(15),
            maintenance_interval: Duration::from_secs(60),
            stream_idle_release: Duration::from_secs(60),
            gc_grace: maintenance::DEFAULT_GC_GRACE,
            orphan_grace: maintenance::DEFAULT_ORPHAN_GRACE,
            max_deleted_ranges: 10_000,
            usage_flush_interval: usage::DEFAULT_FLUSH_INTERVAL,
            group_checkpoint_records: 256,
            group_checkpoint_bytes: 1024 * 1024,
            clock: Clock::System,
            random: Random::os(),
        }
    }
}

/// Whether the result of an idempotent control-plane write created, changed or kept.
#[derive(Debug, Clone)]
pub enum Provisioned<T> {
    Created(T),
    Updated(T),
    Unchanged(T),
}

impl<T> Provisioned<T> {
    pub fn into_inner(self) -> T {
        match self {
            Self::Created(t) | Self::Updated(t) | Self::Unchanged(t) => t,
        }
    }
}

/// May a data-plane request create the stream it names?
#[derive(Debug, Clone)]
pub enum AutoCreate {
    No,
    /// If the basin creates streams on append; with the `s2-stream-config` patch.
    OnAppend(s2_common::config::OptionalStreamConfig),
    /// If the basin creates streams on read (and check-tail).
    OnRead(s2_common::config::OptionalStreamConfig),
}

type StreamKey = (String, String);

struct Inner {
    /// Unique among the engines of this process; see [`Engine::instance`].
    instance: u64,
    /// The store, every request counted in `store_counters`.
    store: DynStore,
    store_counters: Arc<StoreCounters>,
    catalog: Catalog,
    cache: ObjectCache,
    config: EngineConfig,
    /// Ordered, so that work over every open stream happens in the same order each run.
    streams: Mutex<BTreeMap<StreamKey, Arc<StreamHandle>>>,
    gc_marks: maintenance::GcMarks,
    metrics: Arc<EngineMetrics>,
    usage: usage::Usage,
    notices: Arc<notices::Notices>,
    /// What every open stream's core points to.
    node: Arc<handle::NodeServices>,
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    pub fn new(store: DynStore, config: EngineConfig) -> Self {
        let store_counters = Arc::new(StoreCounters::default());
        let store: DynStore = Arc::new(CountingStore::new(store, store_counters.clone()));
        static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let instance = INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let usage = usage::Usage::new(format!("{:016x}", config.random.u64()));
        let flush_every = config.usage_flush_interval;
        let node = Arc::new(handle::NodeServices {
            store: store.clone(),
            cache: ObjectCache::new(store.clone(), config.cache_bytes),
            metrics: Arc::default(),
            clock: config.clock,
            random: config.random.clone(),
            notices: Arc::default(),
            heartbeat: config.heartbeat.clone(),
        });
        let engine = Self {
            inner: Arc::new(Inner {
                instance,
                store_counters,
                catalog: Catalog::new(store.clone()),
                cache: node.cache.clone(),
                store,
                config,
                streams: Mutex::new(BTreeMap::new()),
                gc_marks: maintenance::GcMarks::default(),
                metrics: node.metrics.clone(),
                usage,
                notices: node.notices.clone(),
                node,
            }),
        };
        engine.spawn_background();
        engine.spawn_idle_release();
        engine.spawn_usage_flush(flush_every);
        engine
    }

    /// Which engine of this process this is (a process may run several nodes, as the
    /// simulation does): what the surfaces key their per-node state by.
    pub fn instance(&self) -> u64 {
        self.inner.instance
    }

    pub fn clock(&self) -> Clock {
        self.inner.config.clock
    }

    pub fn random(&self) -> &Random {
        &self.inner.config.random
    }

    /// The requests this engine made of its store, and their latencies.
    pub fn store_counters(&self) -> &StoreCounters {
        &self.inner.store_counters
    }

    pub fn metrics(&self) -> &EngineMetrics {
        &self.inner.metrics
    }

    /// Bytes of chunks this node's cache holds; see [`ObjectCache::chunk_bytes`].
    pub fn cached_chunk_bytes(&self) -> u64 {
        self.inner.cache.chunk_bytes()
    }

    pub async fn health(&self) -> EngineResult<()> {
        Ok(self.inner.store.health().await?)
    }
}
