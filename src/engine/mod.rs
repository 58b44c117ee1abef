//! The log: catalog, per-stream appenders, readers and followers, caches and background
//! work, over object storage. Knows nothing about HTTP.

pub mod appender;
pub mod cache;
pub mod catalog;
pub mod chunk;
pub mod entries;
pub mod entry_ops;
pub mod error;
pub mod group_state;
pub mod groups;
pub mod layout;
mod maintenance;
pub mod manifest;
pub mod metrics;
pub mod reach;
pub mod reader;
pub mod record;
pub mod stream;
pub mod sweep;
pub mod verify;

use std::{collections::HashMap, sync::Arc, time::Duration};

use parking_lot::Mutex;
use s2_common::{
    config::{
        BasinConfig, BasinReconfiguration, OptionalStreamConfig, StreamConfig,
        StreamReconfiguration,
    },
    read_extent::{CountOrBytes, ReadLimit},
    stream::{ReadEnd, ReadFrom, ReadStart},
};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tracing::{info, warn};

use self::{
    appender::AppendRequest,
    cache::ObjectCache,
    catalog::{Catalog, Versioned, Written},
    manifest::Manifest,
    metrics::EngineMetrics,
    reader::ReadPlan,
    stream::{NodeServices, StreamCore, StreamHandle, StreamState, config_json},
};
pub use self::{
    appender::{Ack, AppenderSettings, SessionGate},
    catalog::{AccessTokenEntry, BasinEntry, StreamEntry},
    error::{ConditionFailed, EngineError, EngineResult, Position},
    reader::{ReadBatch, ReadOutput, ReadSession},
    record::AppendInput,
};
use crate::storage::{DynStore, PutOutcome};

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
    /// How long an object must have been unreachable before upkeep deletes it.
    pub gc_grace: Duration,
    /// How old an object nothing references must be before upkeep's orphan sweep deletes
    /// it ([`reach`]): longer than [`reach::REFERENCE_WINDOW`] plus the longest a manifest
    /// write takes to land, so that no write in flight is about to reference it. Shorter
    /// is safe only while nothing writes (tests).
    pub orphan_grace: Duration,
    /// The most runs of deleted entries (`XDEL`) a stream's manifest keeps.
    pub max_deleted_ranges: usize,
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
            gc_grace: maintenance::DEFAULT_GC_GRACE,
            orphan_grace: maintenance::DEFAULT_ORPHAN_GRACE,
            max_deleted_ranges: 10_000,
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
    OnAppend(OptionalStreamConfig),
    /// If the basin creates streams on read (and check-tail).
    OnRead(OptionalStreamConfig),
}

type StreamKey = (String, String);

struct Inner {
    store: DynStore,
    catalog: Catalog,
    cache: ObjectCache,
    config: EngineConfig,
    streams: Mutex<HashMap<StreamKey, Arc<StreamHandle>>>,
    metrics: Arc<EngineMetrics>,
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// Retries of a control-plane read-modify-write that keeps losing races.
const MAX_CATALOG_RACES: usize = 32;

fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t)
}

fn now_ms() -> u64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64
}

fn new_stream_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn too_many_races(what: &str) -> EngineError {
    EngineError::TransactionConflict(format!("{what} kept changing concurrently; retry"))
}

/// A stream config with every field resolved: the request's fields, else the basin's
/// defaults, else S2's defaults (storage class `express`).
pub fn resolve_stream_config(requested: OptionalStreamConfig, basin: &BasinConfig) -> StreamConfig {
    let mut resolved = requested.merge(basin.default_stream_config.clone());
    if resolved.storage_class.is_none() {
        resolved.storage_class = Some("express".into());
    }
    resolved
}

fn basin_config_of(entry: &BasinEntry) -> EngineResult<BasinConfig> {
    entry
        .config
        .clone()
        .try_into()
        .map_err(|e: s2_common::ValidationError| EngineError::Corrupt(e.to_string()))
}

impl Engine {
    pub fn new(store: DynStore, config: EngineConfig) -> Self {
        let engine = Self {
            inner: Arc::new(Inner {
                catalog: Catalog::new(store.clone()),
                cache: ObjectCache::new(store.clone(), config.cache_bytes),
                store,
                config,
                streams: Mutex::new(HashMap::new()),
                metrics: Arc::default(),
            }),
        };
        engine.spawn_background();
        engine
    }

    pub fn store(&self) -> &DynStore {
        &self.inner.store
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

    // ---- basins ----

    pub async fn list_basins(
        &self,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> EngineResult<(Vec<BasinEntry>, bool)> {
        self.inner
            .catalog
            .list_basins(prefix, start_after, limit)
            .await
    }

    async fn basin(&self, name: &str) -> EngineResult<Versioned<BasinEntry>> {
        self.inner
            .catalog
            .basin(name)
            .await?
            .ok_or_else(|| EngineError::BasinNotFound(name.to_owned()))
    }

    /// The basin, which must exist and not be being deleted.
    async fn live_basin(&self, name: &str) -> EngineResult<Versioned<BasinEntry>> {
        let basin = self.basin(name).await?;
        if basin.entry.deleted_at.is_some() {
            return Err(EngineError::BasinDeletionPending(name.to_owned()));
        }
        Ok(basin)
    }

    pub async fn create_basin(
        &self,
        name: &str,
        config: BasinConfig,
        request_token: Option<String>,
    ) -> EngineResult<Provisioned<BasinEntry>> {
        config
            .validate()
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let api_config = s2_api::v1::config::BasinConfig::from(config);
        let entry = BasinEntry {
            version: 1,
            name: name.to_owned(),
            created_at: now(),
            deleted_at: None,
            config: api_config,
            request_token: request_token.clone(),
        };
        for _ in 0..MAX_CATALOG_RACES {
            if let Written::Done(v) = self.inner.catalog.create_basin(&entry).await? {
                return Ok(Provisioned::Created(v.entry));
            }
            let Some(existing) = self.inner.catalog.basin(name).await? else {
                continue;
            };
            let existing = existing.entry;
            if existing.deleted_at.is_some() {
                return Err(EngineError::BasinDeletionPending(name.to_owned()));
            }
            if request_token.is_some()
                && existing.request_token == request_token
                && existing.config == entry.config
            {
                return Ok(Provisioned::Unchanged(existing));
            }
            return Err(EngineError::AlreadyExists("basin already exists".into()));
        }
        Err(too_many_races("basin"))
    }

    pub async fn ensure_basin(
        &self,
        name: &str,
        config: BasinConfig,
    ) -> EngineResult<Provisioned<BasinEntry>> {
        config
            .validate()
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let api_config = s2_api::v1::config::BasinConfig::from(config);
        for _ in 0..MAX_CATALOG_RACES {
            match self.inner.catalog.basin(name).await? {
                None => {
                    let entry = BasinEntry {
                        version: 1,
                        name: name.to_owned(),
                        created_at: now(),
                        deleted_at: None,
                        config: api_config.clone(),
                        request_token: None,
                    };
                    if let Written::Done(v) = self.inner.catalog.create_basin(&entry).await? {
                        return Ok(Provisioned::Created(v.entry));
                    }
                }
                Some(v) if v.entry.deleted_at.is_some() => {
                    return Err(EngineError::BasinDeletionPending(name.to_owned()));
                }
                Some(v) if v.entry.config == api_config => {
                    return Ok(Provisioned::Unchanged(v.entry));
                }
                Some(v) => {
                    let mut entry = v.entry;
                    entry.version += 1;
                    entry.config = api_config.clone();
                    if let Written::Done(v) =
                        self.inner.catalog.replace_basin(&entry, &v.etag).await?
                    {
                        return Ok(Provisioned::Updated(v.entry));
                    }
                }
            }
        }
        Err(too_many_races("basin"))
    }

    pub async fn basin_entry(&self, name: &str) -> EngineResult<BasinEntry> {
        Ok(self.basin(name).await?.entry)
    }

    pub async fn reconfigure_basin(
        &self,
        name: &str,
        reconfiguration: BasinReconfiguration,
    ) -> EngineResult<BasinEntry> {
        for _ in 0..MAX_CATALOG_RACES {
            let v = self.live_basin(name).await?;
            let config = basin_config_of(&v.entry)?.reconfigure(reconfiguration.clone());
            config
                .validate()
                .map_err(|e| EngineError::Invalid(e.to_string()))?;
            let mut entry = v.entry;
            entry.version += 1;
            entry.config = config.into();
            if let Written::Done(v) = self.inner.catalog.replace_basin(&entry, &v.etag).await? {
                return Ok(v.entry);
            }
        }
        Err(too_many_races("basin"))
    }

    /// Marks the basin deleted and removes its streams and then the basin in the
    /// background.
    pub async fn delete_basin(&self, name: &str) -> EngineResult<()> {
        for _ in 0..MAX_CATALOG_RACES {
            let v = self.basin(name).await?;
            if v.entry.deleted_at.is_some() {
                return Ok(());
            }
            let mut entry = v.entry;
            entry.version += 1;
            entry.deleted_at = Some(now());
            if let Written::Done(_) = self.inner.catalog.replace_basin(&entry, &v.etag).await? {
                let engine = self.clone();
                let name = name.to_owned();
                tokio::spawn(async move { engine.finish_basin_deletion(&name).await });
                return Ok(());
            }
        }
        Err(too_many_races("basin"))
    }

    async fn finish_basin_deletion(&self, basin: &str) {
        tokio::time::sleep(self.inner.config.deletion_grace).await;
        loop {
            let result: EngineResult<bool> = async {
                let streams = self.inner.catalog.all_streams(basin).await?;
                if streams.is_empty() {
                    return Ok(true);
                }
                for s in streams {
                    self.mark_stream_deleted(basin, &s.name).await.ok();
                    self.finish_stream_deletion(basin, &s).await?;
                }
                Ok(false)
            }
            .await;
            match result {
                Ok(true) => break,
                Ok(false) => continue,
                Err(e) => {
                    warn!(basin, error = %e, "basin deletion stalled; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        // Streams created concurrently with the deletion mark have had a grace period to
        // appear; check once more before the basin goes.
        tokio::time::sleep(self.inner.config.deletion_grace).await;
        match self.inner.catalog.all_streams(basin).await {
            Ok(s) if s.is_empty() => {
                if let Err(e) = self.inner.catalog.remove_basin(basin).await {
                    warn!(basin, error = %e, "removing basin entry failed");
                } else {
                    info!(basin, "basin deleted");
                }
            }
            _ => Box::pin(self.finish_basin_deletion(basin)).await,
        }
    }

    // ---- access tokens ----

    pub async fn access_token(&self, id: &str) -> EngineResult<Option<AccessTokenEntry>> {
        self.inner.catalog.access_token(id).await
    }

    /// Stores a new token; an id already in use is `AlreadyExists`, whatever its scope.
    pub async fn issue_access_token(&self, entry: &AccessTokenEntry) -> EngineResult<()> {
        match self.inner.catalog.create_access_token(entry).await? {
            Written::Done(_) => Ok(()),
            Written::Raced => Err(EngineError::AlreadyExists(format!(
                "access token {} already exists",
                entry.info.id.as_ref() as &str
            ))),
        }
    }

    /// Removes a token, returning what it was.
    pub async fn revoke_access_token(&self, id: &str) -> EngineResult<AccessTokenEntry> {
        let entry = self
            .inner
            .catalog
            .access_token(id)
            .await?
            .ok_or_else(|| EngineError::AccessTokenNotFound(id.to_owned()))?;
        self.inner.catalog.remove_access_token(id).await?;
        Ok(entry)
    }

    pub async fn list_access_tokens(
        &self,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> EngineResult<(Vec<AccessTokenEntry>, bool)> {
        self.inner
            .catalog
            .list_access_tokens(prefix, start_after, limit)
            .await
    }

    // ---- streams: control plane ----

    pub async fn list_streams(
        &self,
        basin: &str,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> EngineResult<(Vec<StreamEntry>, bool)> {
        self.basin(basin).await?;
        self.inner
            .catalog
            .list_streams(basin, prefix, start_after, limit)
            .await
    }

    pub async fn create_stream(
        &self,
        basin: &str,
        name: &str,
        config: OptionalStreamConfig,
        request_token: Option<String>,
    ) -> EngineResult<Provisioned<StreamEntry>> {
        config
            .validate()
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let basin_entry = self.live_basin(basin).await?.entry;
        let requested = serde_json::to_value(s2_api::v1::config::StreamConfig::from(
            StreamConfig::from(config.clone()),
        ))
        .expect("config serializes");
        let resolved = resolve_stream_config(config, &basin_config_of(&basin_entry)?);
        for _ in 0..MAX_CATALOG_RACES {
            if let Some(existing) = self.inner.catalog.stream(basin, name).await? {
                let existing = existing.entry;
                if existing.deleted_at.is_some() {
                    return Err(EngineError::StreamDeletionPending(name.to_owned()));
                }
                if request_token.is_some()
                    && existing.request_token == request_token
                    && existing.requested_config.as_ref() == Some(&requested)
                {
                    return Ok(Provisioned::Unchanged(existing));
                }
                return Err(EngineError::AlreadyExists("stream already exists".into()));
            }
            let entry = StreamEntry {
                version: 1,
                name: name.to_owned(),
                id: new_stream_id(),
                created_at: now(),
                deleted_at: None,
                request_token: request_token.clone(),
                requested_config: Some(requested.clone()),
            };
            if let Some(v) = self.create_stream_objects(basin, entry, &resolved).await? {
                return Ok(Provisioned::Created(v));
            }
        }
        Err(too_many_races("stream"))
    }

    /// Writes a new stream's manifest, then its catalog entry. `None` if another request
    /// created the stream first (its manifest is then removed again).
    async fn create_stream_objects(
        &self,
        basin: &str,
        entry: StreamEntry,
        config: &StreamConfig,
    ) -> EngineResult<Option<StreamEntry>> {
        let manifest = Manifest::new(entry.id.clone(), config_json(config), now_ms());
        let key = layout::manifest_key(&entry.id);
        match self
            .inner
            .store
            .put_if_absent(&key, manifest.encode_object())
            .await?
        {
            PutOutcome::Written(_) => {}
            PutOutcome::PreconditionFailed => {
                return Err(EngineError::Corrupt(format!(
                    "stream id collision at {key}"
                )));
            }
        }
        match self.inner.catalog.create_stream(basin, &entry).await {
            Ok(Written::Done(v)) => Ok(Some(v.entry)),
            Ok(Written::Raced) => {
                self.inner.store.delete(&key).await.ok();
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn ensure_stream(
        &self,
        basin: &str,
        name: &str,
        config: OptionalStreamConfig,
    ) -> EngineResult<Provisioned<StreamEntry>> {
        config
            .validate()
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let basin_entry = self.live_basin(basin).await?.entry;
        let resolved = resolve_stream_config(config.clone(), &basin_config_of(&basin_entry)?);
        for _ in 0..MAX_CATALOG_RACES {
            match self.inner.catalog.stream(basin, name).await? {
                None => {
                    let requested = serde_json::to_value(s2_api::v1::config::StreamConfig::from(
                        StreamConfig::from(config.clone()),
                    ))
                    .expect("config serializes");
                    let entry = StreamEntry {
                        version: 1,
                        name: name.to_owned(),
                        id: new_stream_id(),
                        created_at: now(),
                        deleted_at: None,
                        request_token: None,
                        requested_config: Some(requested),
                    };
                    if let Some(v) = self.create_stream_objects(basin, entry, &resolved).await? {
                        return Ok(Provisioned::Created(v));
                    }
                }
                Some(v) if v.entry.deleted_at.is_some() => {
                    return Err(EngineError::StreamDeletionPending(name.to_owned()));
                }
                Some(v) => {
                    let handle = self.open(basin, name, AutoCreate::No).await?;
                    let mut changed = false;
                    let target = config_json(&resolved);
                    self.modify_manifest(&handle.core, |m| {
                        changed = m.config_json != target;
                        if changed {
                            m.config_json.clone_from(&target);
                        }
                        Ok(changed)
                    })
                    .await?;
                    return Ok(if changed {
                        Provisioned::Updated(v.entry)
                    } else {
                        Provisioned::Unchanged(v.entry)
                    });
                }
            }
        }
        Err(too_many_races("stream"))
    }

    pub async fn stream_config(&self, basin: &str, name: &str) -> EngineResult<StreamConfig> {
        let handle = self.open(basin, name, AutoCreate::No).await?;
        let state = handle.core.refresh().await?;
        if state.manifest.is_deleted() {
            return Err(EngineError::StreamDeletionPending(name.to_owned()));
        }
        Ok(state.config.clone())
    }

    pub async fn reconfigure_stream(
        &self,
        basin: &str,
        name: &str,
        reconfiguration: StreamReconfiguration,
    ) -> EngineResult<StreamConfig> {
        let basin_entry = self.live_basin(basin).await?.entry;
        let basin_config = basin_config_of(&basin_entry)?;
        let handle = self.open(basin, name, AutoCreate::No).await?;
        let state = self
            .modify_manifest(&handle.core, |m| {
                let current = stream::parse_config(&m.config_json)?;
                let requested =
                    OptionalStreamConfig::from(current).reconfigure(reconfiguration.clone());
                requested
                    .validate()
                    .map_err(|e| EngineError::Invalid(e.to_string()))?;
                m.config_json = config_json(&resolve_stream_config(requested, &basin_config));
                Ok(true)
            })
            .await?;
        Ok(state.config.clone())
    }

    /// Applies `change` to the latest manifest and writes it with `If-Match`, retrying
    /// on races. `change` returns whether there is anything to write.
    async fn modify_manifest(
        &self,
        core: &StreamCore,
        mut change: impl FnMut(&mut Manifest) -> EngineResult<bool>,
    ) -> EngineResult<Arc<StreamState>> {
        for _ in 0..MAX_CATALOG_RACES {
            let state = core.refresh().await?;
            if state.manifest.is_deleted() {
                return Err(EngineError::StreamDeletionPending(core.name.clone()));
            }
            let mut next = state.manifest.next_version();
            if !change(&mut next)? {
                return Ok(state);
            }
            let key = layout::manifest_key(&core.id);
            if let PutOutcome::Written(etag) = self
                .inner
                .store
                .put_if_match(&key, next.encode_object(), &state.etag)
                .await?
            {
                let state = Arc::new(StreamState::reusing(next, etag, state.known_inline())?);
                core.publish(state.clone());
                return Ok(state);
            }
        }
        Err(too_many_races("stream"))
    }

    pub async fn delete_stream(&self, basin: &str, name: &str) -> EngineResult<()> {
        let entry = self.mark_stream_deleted(basin, name).await?;
        let engine = self.clone();
        let basin = basin.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(engine.inner.config.deletion_grace).await;
            if let Err(e) = engine.finish_stream_deletion(&basin, &entry).await {
                warn!(basin, stream = %entry.name, error = %e, "stream deletion stalled");
            }
        });
        Ok(())
    }

    /// Sets the deletion time on the catalog entry and the manifest, after which no
    /// append can succeed. Idempotent.
    async fn mark_stream_deleted(&self, basin: &str, name: &str) -> EngineResult<StreamEntry> {
        let mut marked = None;
        for _ in 0..MAX_CATALOG_RACES {
            let v = self
                .inner
                .catalog
                .stream(basin, name)
                .await?
                .ok_or_else(|| EngineError::StreamNotFound(name.to_owned()))?;
            if v.entry.deleted_at.is_some() {
                marked = Some(v.entry);
                break;
            }
            let mut entry = v.entry;
            entry.version += 1;
            entry.deleted_at = Some(now());
            if let Written::Done(v) = self
                .inner
                .catalog
                .replace_stream(basin, &entry, &v.etag)
                .await?
            {
                marked = Some(v.entry);
                break;
            }
        }
        let entry = marked.ok_or_else(|| too_many_races("stream"))?;
        let key = layout::manifest_key(&entry.id);
        for _ in 0..MAX_CATALOG_RACES {
            let Some(obj) = self.inner.store.get(&key).await? else {
                break;
            };
            let manifest = Manifest::decode_object(&obj.bytes)
                .map_err(|e| EngineError::Corrupt(e.to_string()))?;
            if manifest.is_deleted() {
                break;
            }
            let mut next = manifest.next_version();
            next.deleted_at_ms = Some(now_ms());
            if let PutOutcome::Written(etag) = self
                .inner
                .store
                .put_if_match(&key, next.encode_object(), &obj.etag)
                .await?
            {
                if let Some(h) = self.cached_handle(basin, name)
                    && h.core.id == entry.id
                {
                    h.core.publish(Arc::new(StreamState::new(next, etag)?));
                }
                break;
            }
        }
        self.forget_stream(basin, name);
        Ok(entry)
    }

    /// Removes a deletion-marked stream's objects, then its catalog entry.
    async fn finish_stream_deletion(&self, basin: &str, entry: &StreamEntry) -> EngineResult<()> {
        let dir = layout::stream_data_dir(&entry.id);
        let manifest_key = layout::manifest_key(&entry.id);
        loop {
            let page = self.inner.store.list(&dir, None, 1000).await?;
            let keys: Vec<String> = page
                .keys
                .into_iter()
                .filter(|k| *k != manifest_key)
                .collect();
            self.inner.store.delete_many(&keys).await?;
            if !page.truncated {
                break;
            }
        }
        self.inner.store.delete(&manifest_key).await?;
        // Only remove the entry that was deleted, never a successor of the same name.
        if let Some(v) = self.inner.catalog.stream(basin, &entry.name).await?
            && v.entry.id == entry.id
        {
            self.inner.catalog.remove_stream(basin, &entry.name).await?;
        }
        Ok(())
    }

    // ---- streams: data plane ----

    fn cached_handle(&self, basin: &str, name: &str) -> Option<Arc<StreamHandle>> {
        let streams = self.inner.streams.lock();
        streams
            .get(&(basin.to_owned(), name.to_owned()))
            .filter(|h| !h.core.is_stale())
            .cloned()
    }

    fn forget_stream(&self, basin: &str, name: &str) {
        self.inner
            .streams
            .lock()
            .remove(&(basin.to_owned(), name.to_owned()));
    }

    /// The stream, opened on this node; created first if `auto_create` and the basin
    /// allow it.
    pub async fn open(
        &self,
        basin: &str,
        name: &str,
        auto_create: AutoCreate,
    ) -> EngineResult<Arc<StreamHandle>> {
        if let Some(h) = self.cached_handle(basin, name) {
            return Ok(h);
        }
        let basin_entry = self.live_basin(basin).await?.entry;
        let entry = match self.inner.catalog.stream(basin, name).await? {
            Some(v) => v.entry,
            None => {
                let basin_config = basin_config_of(&basin_entry)?;
                let patch = match auto_create {
                    AutoCreate::OnAppend(patch) if basin_config.create_stream_on_append => patch,
                    AutoCreate::OnRead(patch) if basin_config.create_stream_on_read => patch,
                    _ => return Err(EngineError::StreamNotFound(name.to_owned())),
                };
                match self.create_stream(basin, name, patch, None).await {
                    Ok(p) => p.into_inner(),
                    Err(EngineError::AlreadyExists(_)) => {
                        self.inner
                            .catalog
                            .stream(basin, name)
                            .await?
                            .ok_or_else(|| EngineError::StreamNotFound(name.to_owned()))?
                            .entry
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if entry.deleted_at.is_some() {
            return Err(EngineError::StreamDeletionPending(name.to_owned()));
        }
        let obj = self
            .inner
            .store
            .get(&layout::manifest_key(&entry.id))
            .await?
            .ok_or_else(|| EngineError::StreamNotFound(name.to_owned()))?;
        let manifest =
            Manifest::decode_object(&obj.bytes).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        if manifest.is_deleted() {
            return Err(EngineError::StreamDeletionPending(name.to_owned()));
        }
        let state = StreamState::new(manifest, obj.etag)?;
        let poll = self
            .inner
            .config
            .poll
            .map(|p| match state.config.storage_class.as_deref() {
                Some("standard") => p.standard,
                _ => p.express,
            });
        let node = NodeServices {
            store: self.inner.store.clone(),
            cache: self.inner.cache.clone(),
            metrics: self.inner.metrics.clone(),
        };
        let core = StreamCore::new(
            basin.to_owned(),
            name.to_owned(),
            node,
            state,
            poll,
            self.inner.config.heartbeat.clone(),
        );
        let handle = Arc::new(StreamHandle::new(core));
        let mut streams = self.inner.streams.lock();
        let slot = streams
            .entry((basin.to_owned(), name.to_owned()))
            .or_insert_with(|| handle.clone());
        if slot.core.is_stale() {
            *slot = handle;
        }
        Ok(slot.clone())
    }

    /// Appends one batch; resolves when it is durable (or refused).
    pub async fn append(
        &self,
        handle: &StreamHandle,
        input: AppendInput,
        session: Option<Arc<SessionGate>>,
    ) -> EngineResult<Ack> {
        self.submit(handle, input, session)
            .await?
            .await
            .map_err(|_| EngineError::Storage("appender stopped before answering".into()))?
    }

    /// Queues one batch and returns where its outcome will arrive; batches submitted in
    /// order are applied in order.
    pub async fn submit(
        &self,
        handle: &StreamHandle,
        input: AppendInput,
        session: Option<Arc<SessionGate>>,
    ) -> EngineResult<oneshot::Receiver<EngineResult<Ack>>> {
        let settings = self.inner.config.appender;
        let mailbox = handle.appender(|core| appender::spawn(core, settings));
        let (reply, rx) = oneshot::channel();
        mailbox
            .send(AppendRequest {
                input,
                arrival_ms: now_ms(),
                received: std::time::Instant::now(),
                session,
                reply,
            })
            .await
            .map_err(|_| EngineError::Storage("appender stopped".into()))?;
        Ok(rx)
    }

    pub async fn check_tail(&self, handle: &StreamHandle) -> EngineResult<Position> {
        Ok(self.retained(handle).await?.1)
    }

    /// The first seq_num still readable (after trims and retention), and the tail.
    pub async fn retained(&self, handle: &StreamHandle) -> EngineResult<(u64, Position)> {
        let state = handle.core.refresh().await?;
        if state.manifest.is_deleted() {
            return Err(EngineError::StreamDeletionPending(handle.core.name.clone()));
        }
        Ok((state.manifest.first_readable(), state.tail()))
    }

    /// Starts a read. `unary` reads are capped at one batch and 60 s of waiting.
    pub async fn read(
        &self,
        handle: &StreamHandle,
        start: ReadStart,
        mut end: ReadEnd,
        unary: bool,
    ) -> EngineResult<ReadSession> {
        if unary {
            end.limit = ReadLimit::CountOrBytes(end.limit.into_allowance(CountOrBytes {
                count: reader::MAX_BATCH_RECORDS,
                bytes: reader::MAX_BATCH_BYTES,
            }));
            end.wait = end.wait.map(|w| w.min(Duration::from_secs(60)));
        }
        if let ReadFrom::Timestamp(ts) = start.from
            && end.until.deny(ts)
        {
            return Err(EngineError::Invalid(
                "start `timestamp` exceeds or equal to `until`".into(),
            ));
        }
        let core = handle.core.clone();
        if matches!(
            end.limit.remaining(0, 0),
            s2_common::read_extent::EvaluatedReadLimit::Exhausted
        ) {
            return Ok(ReadSession::empty(core));
        }
        let state = core.refresh().await?;
        if state.manifest.is_deleted() {
            return Err(EngineError::StreamDeletionPending(core.name.clone()));
        }
        let tail = state.tail();
        let plan = ReadPlan {
            start_seq: 0,
            limit: end.limit,
            until: end.until,
            wait: end.wait,
        };
        let beyond = match start.from {
            ReadFrom::SeqNum(seq) => seq > tail.seq_num,
            ReadFrom::Timestamp(ts) => ts > tail.timestamp,
            ReadFrom::TailOffset(_) => false,
        };
        let start_seq = if beyond {
            if !start.clamp {
                return Err(EngineError::Unwritten(tail));
            }
            tail.seq_num
        } else {
            match start.from {
                ReadFrom::SeqNum(seq) => seq,
                ReadFrom::TailOffset(k) => tail.seq_num.saturating_sub(k),
                ReadFrom::Timestamp(ts) => reader::seq_for_timestamp(&core, &state, ts).await?,
            }
        };
        let start_seq = start_seq.max(state.manifest.first_readable());
        let plan = ReadPlan { start_seq, ..plan };
        if start_seq >= tail.seq_num && !plan.may_follow() {
            return Err(EngineError::Unwritten(tail));
        }
        Ok(ReadSession::new(core, plan))
    }

    // ---- background ----

    fn spawn_background(&self) {
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
                engine.evict_idle_streams();
            }
        });
    }

    /// Drops opened streams nothing on this node uses.
    fn evict_idle_streams(&self) {
        self.inner.streams.lock().retain(|_, h| {
            !h.core.is_stale() && (Arc::strong_count(h) > 1 || h.core.follower_count() > 0)
        });
    }

    async fn resume_deletions(&self) -> EngineResult<()> {
        let mut after = String::new();
        loop {
            let (basins, more) = self.inner.catalog.list_basins("", &after, 1000).await?;
            for b in &basins {
                if b.deleted_at.is_some() {
                    let engine = self.clone();
                    let name = b.name.clone();
                    tokio::spawn(async move { engine.finish_basin_deletion(&name).await });
                    continue;
                }
                for s in self.inner.catalog.all_streams(&b.name).await? {
                    if s.deleted_at.is_some() {
                        let engine = self.clone();
                        let basin = b.name.clone();
                        tokio::spawn(async move {
                            engine.mark_stream_deleted(&basin, &s.name).await.ok();
                            if let Err(e) = engine.finish_stream_deletion(&basin, &s).await {
                                warn!(basin, stream = %s.name, error = %e, "stream deletion stalled");
                            }
                        });
                    }
                }
            }
            match (more, basins.last()) {
                (true, Some(last)) => after = last.name.clone(),
                _ => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        engine::{
            appender::{INLINE_MAX_BYTES, SPILL_MIN_CHUNKS},
            record::RecordBatchBuilder,
        },
        storage,
    };

    fn batch(bodies: &[&[u8]]) -> AppendInput {
        let mut b = RecordBatchBuilder::new();
        for body in bodies {
            b.push(None, std::iter::empty(), body).unwrap();
        }
        AppendInput {
            batch: b.finish().unwrap(),
            match_seq_num: None,
            fencing_token: None,
        }
    }

    fn trim(point: u64) -> AppendInput {
        let mut b = RecordBatchBuilder::new();
        b.push(
            None,
            [(&b""[..], &b"trim"[..])].into_iter(),
            &point.to_be_bytes(),
        )
        .unwrap();
        AppendInput {
            batch: b.finish().unwrap(),
            match_seq_num: None,
            fencing_token: None,
        }
    }

    /// An engine without polling or periodic upkeep, and the stream `s` on it.
    pub(crate) async fn engine_with_stream(
        store: DynStore,
        gc_grace: Duration,
    ) -> (Engine, Arc<StreamHandle>) {
        let engine = Engine::new(
            store,
            EngineConfig {
                poll: None,
                gc_grace,
                maintenance_interval: Duration::from_secs(3600),
                ..EngineConfig::default()
            },
        );
        engine
            .create_basin("test-basin", BasinConfig::default(), None)
            .await
            .unwrap();
        engine
            .create_stream("test-basin", "s", OptionalStreamConfig::default(), None)
            .await
            .unwrap();
        let handle = engine
            .open("test-basin", "s", AutoCreate::No)
            .await
            .unwrap();
        (engine, handle)
    }

    async fn chunk_keys(store: &DynStore, id: &str) -> Vec<String> {
        store
            .list(
                &format!("{}chunks/", layout::stream_data_dir(id)),
                None,
                1000,
            )
            .await
            .unwrap()
            .keys
    }

    /// Waits for this node's packs of inline chunks to be written.
    async fn spills_settled(handle: &StreamHandle) {
        let writes: Vec<_> = handle
            .core
            .spills
            .lock()
            .iter()
            .map(|s| s.done.clone())
            .collect();
        for w in writes {
            w.await;
        }
    }

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
            .map(|k| maintenance_first_seq(k))
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
            .map(|k| maintenance_first_seq(k))
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

    async fn read_all(engine: &Engine, handle: &StreamHandle) -> Vec<Vec<u8>> {
        let start = ReadStart {
            from: ReadFrom::SeqNum(0),
            clamp: false,
        };
        let session = engine
            .read(handle, start, ReadEnd::default(), true)
            .await
            .unwrap();
        let read = reader::read_unary(session).await.unwrap();
        read.records()
            .map(|r| r.view().parts().unwrap().1.to_vec())
            .collect()
    }

    /// Another node on `store`, every request it makes counted, with the stream `s` open.
    async fn counted_node(
        store: DynStore,
        config: EngineConfig,
    ) -> (
        Engine,
        Arc<StreamHandle>,
        Arc<crate::storage::counting::StoreCounters>,
    ) {
        use crate::storage::counting::{CountingStore, StoreCounters};
        let counters = Arc::new(StoreCounters::default());
        let engine = Engine::new(
            Arc::new(CountingStore::new(store, counters.clone())),
            config,
        );
        let handle = engine
            .open("test-basin", "s", AutoCreate::No)
            .await
            .unwrap();
        (engine, handle, counters)
    }

    fn two_engines_config() -> EngineConfig {
        EngineConfig {
            poll: None,
            maintenance_interval: Duration::from_secs(3600),
            gc_grace: Duration::ZERO,
            ..EngineConfig::default()
        }
    }

    /// Small commits are one write each, their chunks inside the manifest; any node reads
    /// them from there before they have objects. Once enough have gathered they are
    /// written out as one pack, and the next commit (from any node) points into it.
    #[tokio::test]
    async fn small_chunks_travel_in_the_manifest_until_packed() {
        let store = storage::memory();
        let (a, b) = (
            Engine::new(store.clone(), two_engines_config()),
            Engine::new(store.clone(), two_engines_config()),
        );
        a.create_basin("inline-basin", BasinConfig::default(), None)
            .await
            .unwrap();
        a.create_stream("inline-basin", "s", OptionalStreamConfig::default(), None)
            .await
            .unwrap();
        let on_a = a.open("inline-basin", "s", AutoCreate::No).await.unwrap();
        let id = on_a.core.id.clone();
        a.append(&on_a, batch(&[b"r0", b"r1"]), None).await.unwrap();
        let state = on_a.core.current();
        let first = state.manifest.inline_refs()[0].clone();
        let built = on_a.core.cache.chunk(&id, &first).await.unwrap();
        assert!(
            Arc::ptr_eq(&state.inline[0], &built),
            "the committing node reuses the chunk it built"
        );
        let n = SPILL_MIN_CHUNKS as u32;
        for i in 2..n {
            a.append(&on_a, batch(&[format!("r{i}").as_bytes()]), None)
                .await
                .unwrap();
        }
        let kept = on_a.core.current();
        assert_eq!(kept.manifest.inline_refs().len(), n as usize - 1);
        for (r, chunk) in kept.known_inline().take(n as usize - 2) {
            let previous = on_a.core.cache.chunk(&id, r).await.unwrap();
            assert!(Arc::ptr_eq(chunk, &previous), "decoded once");
        }
        let records =
            |end: u32| -> Vec<Vec<u8>> { (0..end).map(|i| format!("r{i}").into_bytes()).collect() };

        let on_b = b.open("inline-basin", "s", AutoCreate::No).await.unwrap();
        assert_eq!(read_all(&b, &on_b).await, records(n));

        // The n-th inline chunk starts a pack of all of them; the commit after it is
        // written drops their bytes.
        a.append(&on_a, batch(&[format!("r{n}").as_bytes()]), None)
            .await
            .unwrap();
        spills_settled(&on_a).await;
        let packs = chunk_keys(&store, &id).await;
        assert_eq!(packs.len(), 1, "{packs:?}");
        assert_eq!(
            maintenance_first_seq(&packs[0]),
            u64::from(n),
            "named by its newest member"
        );
        a.append(&on_a, batch(&[format!("r{}", n + 1).as_bytes()]), None)
            .await
            .unwrap();
        let m = on_a.core.current().manifest.clone();
        assert_eq!(m.inline_refs().len(), 1);
        assert!(
            m.chunks[..n as usize]
                .iter()
                .all(|c| c.pack.is_some() && !c.inline)
        );
        m.check_invariants().unwrap();

        // A node that never saw the inline chunks reads them from the pack, by range.
        let c = Engine::new(store.clone(), two_engines_config());
        let on_c = c.open("inline-basin", "s", AutoCreate::No).await.unwrap();
        assert_eq!(read_all(&c, &on_c).await, records(n + 2));

        // Node b commits next, with the newest chunk still inline and no pack of its own
        // under way.
        b.append(&on_b, batch(&[format!("r{}", n + 2).as_bytes()]), None)
            .await
            .unwrap();
        assert_eq!(on_b.core.current().manifest.inline_refs().len(), 2);

        // A chunk too big to travel inline takes the inline ones out with it.
        let big = vec![7u8; INLINE_MAX_BYTES + 1];
        b.append(&on_b, batch(&[&big]), None).await.unwrap();
        let m = on_b.core.current().manifest.clone();
        assert!(m.inline_refs().is_empty() && m.inline_chunks.is_empty());
        m.check_invariants().unwrap();
        let d = Engine::new(store.clone(), two_engines_config());
        let on_d = d.open("inline-basin", "s", AutoCreate::No).await.unwrap();
        let mut all = read_all(&d, &on_d).await;
        assert_eq!(all.pop(), Some(big));
        assert_eq!(all, records(n + 3));

        // Trimming into the pack keeps it; trimming past its newest member collects it.
        let pack_key = packs[0].clone();
        a.append(&on_a, trim(4), None).await.unwrap();
        a.maintain(&on_a).await.unwrap(); // marks
        a.maintain(&on_a).await.unwrap(); // deletes
        assert!(store.get(&pack_key).await.unwrap().is_some());
        let e = Engine::new(store.clone(), two_engines_config());
        let on_e = e.open("inline-basin", "s", AutoCreate::No).await.unwrap();
        let read = read_all(&e, &on_e).await;
        assert_eq!(read[0], b"r4");
        a.append(&on_a, trim(u64::from(n) + 1), None).await.unwrap();
        a.maintain(&on_a).await.unwrap();
        a.maintain(&on_a).await.unwrap();
        assert!(store.get(&pack_key).await.unwrap().is_none());
    }

    /// A small commit costs one write (its manifest) plus a share of a pack's, even
    /// when a commit needs a pack before its write has ended.
    #[tokio::test]
    async fn small_commits_cost_about_one_write_each() {
        use crate::storage::{
            counting::{CountingStore, StoreCounters},
            faulty::{Faults, FaultyStore},
        };
        let counters = Arc::new(StoreCounters::default());
        let slow = FaultyStore::new(
            storage::memory(),
            7,
            Faults {
                delay: 1.0,
                max_delay: Duration::from_millis(20),
                ..Faults::default()
            },
        );
        let store: DynStore = Arc::new(CountingStore::new(Arc::new(slow), counters.clone()));
        let (engine, handle) = engine_with_stream(store, maintenance::DEFAULT_GC_GRACE).await;
        let before = counters.snapshot().puts;
        const APPENDS: u64 = 64;
        for i in 0..APPENDS {
            engine
                .append(&handle, batch(&[&i.to_be_bytes()]), None)
                .await
                .unwrap();
        }
        spills_settled(&handle).await;
        let puts = counters.snapshot().puts - before;
        assert!(
            (APPENDS + 1..=APPENDS + APPENDS / SPILL_MIN_CHUNKS as u64 + 1).contains(&puts),
            "{puts} writes for {APPENDS} commits"
        );
        assert_eq!(read_all(&engine, &handle).await.len(), APPENDS as usize);
    }

    /// A node reading chunks that were packed together fetches the pack once.
    #[tokio::test]
    async fn packed_chunks_are_fetched_with_one_read() {
        let store = storage::memory();
        let (writer, on_writer) =
            engine_with_stream(store.clone(), maintenance::DEFAULT_GC_GRACE).await;
        let n = SPILL_MIN_CHUNKS as u64;
        for i in 0..=n {
            writer
                .append(&on_writer, batch(&[&i.to_be_bytes()]), None)
                .await
                .unwrap();
            spills_settled(&on_writer).await;
        }
        let m = on_writer.core.current().manifest.clone();
        assert!(m.chunks[..n as usize].iter().all(|c| c.pack.is_some()));

        let (reader, on_reader, counters) = counted_node(store, two_engines_config()).await;
        let before = counters.snapshot().gets;
        assert_eq!(read_all(&reader, &on_reader).await.len(), n as usize + 1);
        assert_eq!(
            counters.snapshot().gets - before,
            2,
            "the manifest, then the pack"
        );
    }

    /// A node reading a chunk from storage fetches the ones after it meanwhile, so a
    /// catch-up does not wait a round trip per chunk.
    #[tokio::test]
    async fn a_reader_on_a_cold_cache_fetches_the_next_chunks_ahead() {
        let store = storage::memory();
        let (writer, on_writer) =
            engine_with_stream(store.clone(), maintenance::DEFAULT_GC_GRACE).await;
        const CHUNKS: u64 = 6;
        let body = vec![7; 300 * 1024]; // too large to travel inside the manifest
        for _ in 0..CHUNKS {
            writer
                .append(&on_writer, batch(&[&body]), None)
                .await
                .unwrap();
        }
        let (_reader, on_reader, counters) = counted_node(store, two_engines_config()).await;
        // Counted in bytes: the catalog's small objects may be read meanwhile.
        let chunk_bytes = (CHUNKS * body.len() as u64)..((CHUNKS + 1) * body.len() as u64);
        let before = counters.snapshot().bytes_read;
        let read = || counters.snapshot().bytes_read - before;

        let state = on_reader.core.current();
        reader::chunk_at(&on_reader.core, &state, 0).await.unwrap();

        let fetched_all = async {
            while read() < chunk_bytes.start {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), fetched_all)
            .await
            .expect("the chunks after the first are fetched without being read");
        for seq in 0..CHUNKS {
            reader::chunk_at(&on_reader.core, &state, seq)
                .await
                .unwrap();
        }
        assert!(chunk_bytes.contains(&read()), "each chunk read once");
    }

    /// The node that folds chunk references into an index segment keeps the segment, so a
    /// catch-up read over it starts from memory instead of a round trip per segment.
    #[tokio::test]
    async fn a_catch_up_read_finds_the_written_segments_in_memory() {
        use crate::storage::counting::{CountingStore, StoreCounters};
        let counters = Arc::new(StoreCounters::default());
        let store: DynStore = Arc::new(CountingStore::new(storage::memory(), counters.clone()));
        let (engine, handle) = engine_with_stream(store, maintenance::DEFAULT_GC_GRACE).await;
        let appends = manifest::MAX_MANIFEST_CHUNKS as u64 + 1;
        for i in 0..appends {
            engine
                .append(&handle, batch(&[&i.to_be_bytes()]), None)
                .await
                .unwrap();
        }
        assert_eq!(handle.core.current().manifest.segments.len(), 1);
        let before = counters.snapshot().gets;
        assert_eq!(read_all(&engine, &handle).await.len(), appends as usize);
        assert_eq!(
            counters.snapshot().gets - before,
            1,
            "only the manifest is read again"
        );
    }

    /// A follower of a stream nobody else writes polls its manifest less and less often,
    /// down to a tenth of the base rate, and still sees another node's commit within a
    /// quarter of the quiet spell before it; once others commit, polling is brisk again.
    #[tokio::test(start_paused = true)]
    async fn followers_of_a_quiet_stream_poll_less_often() {
        const BASE: Duration = Duration::from_millis(50);
        let store = storage::memory();
        let (writer, on_writer) =
            engine_with_stream(store.clone(), maintenance::DEFAULT_GC_GRACE).await;
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
        let cap = BASE * stream::POLL_BACKOFF_LIMIT;
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

    fn maintenance_first_seq(key: &str) -> u64 {
        key.rsplit('/').next().unwrap()[..20].parse().unwrap()
    }

    /// A commit that loses its manifest race, re-reads, and loses again to a commit made
    /// in between counts both races: the first where the pipeline learns of it, the
    /// second in the retrying path.
    #[tokio::test]
    async fn every_lost_manifest_race_is_counted() {
        let store = storage::memory();
        let b = Engine::new(store.clone(), two_engines_config());
        let race = Arc::new(storage::faulty::FaultyStore::new(
            store.clone(),
            0,
            storage::faulty::Faults::default(),
        ));
        let a = Engine::new(race.clone(), two_engines_config());
        a.create_basin("race-basin", BasinConfig::default(), None)
            .await
            .unwrap();
        a.create_stream("race-basin", "s", OptionalStreamConfig::default(), None)
            .await
            .unwrap();
        let on_a = a.open("race-basin", "s", AutoCreate::No).await.unwrap();
        a.append(&on_a, batch(&[b"r0"]), None).await.unwrap();
        let on_b = b.open("race-basin", "s", AutoCreate::No).await.unwrap();
        b.append(&on_b, batch(&[b"r1"]), None).await.unwrap();
        // A still knows the manifest as of r0: its next write fails; after re-reading,
        // B commits again just before A's second write.
        let (b2, on_b2) = (b.clone(), on_b.clone());
        let key = layout::manifest_key(&on_a.core.id);
        race.race_before(
            key,
            2,
            Box::pin(async move {
                b2.append(&on_b2, batch(&[b"r2"]), None).await.unwrap();
            }),
        );
        let ack = a.append(&on_a, batch(&[b"r3"]), None).await.unwrap();
        assert_eq!(ack.start.seq_num, 3);
        assert_eq!(a.metrics().conflicts(), 2);
        assert_eq!(b.metrics().conflicts(), 0);
    }
}
