//! The streams opened on this node: one [`StreamHandle`] per stream, shared by its
//! appender, readers and followers, and dropped when nothing uses it.

use std::sync::{Arc, OnceLock};

use s2_common::encryption::EncryptionKey;

use super::{
    AutoCreate, Engine, EngineError, EngineResult,
    appender::Appender,
    crypt::Encryption,
    handle::{NodeServices, StorageClass, StreamCore, StreamIdentity, StreamState},
    layout,
    manifest::Manifest,
};

/// A stream opened on this node: its [`StreamCore`] and, once something appends, its
/// appender.
pub struct StreamHandle {
    pub core: Arc<StreamCore>,
    appender: OnceLock<Appender>,
}

impl StreamHandle {
    fn new(core: StreamCore) -> Self {
        Self {
            core: Arc::new(core),
            appender: OnceLock::new(),
        }
    }

    /// What a request with `key` (its `s2-encryption-key`) may do with the stream's
    /// records: `bad_header` if the stream is encrypted and the key missing or malformed.
    pub fn encryption(&self, key: Option<EncryptionKey>) -> EngineResult<Encryption> {
        Encryption::resolve(self.core.cipher, key, &self.core.id)
    }

    /// The stream's appender, started on first use; it ends when this handle is dropped.
    pub(super) fn appender(&self, start: impl FnOnce(Arc<StreamCore>) -> Appender) -> &Appender {
        self.appender.get_or_init(|| start(self.core.clone()))
    }

    /// Keys of the packs this node's appender is writing out for the stream, or has
    /// written and the manifest still carries inline.
    pub(super) fn pack_keys(&self) -> Vec<String> {
        self.appender
            .get()
            .map(Appender::pack_keys)
            .unwrap_or_default()
    }

    /// The appender, if anything appended through this handle.
    #[cfg(test)]
    pub(super) fn started_appender(&self) -> Option<&Appender> {
        self.appender.get()
    }
}

impl Engine {
    pub(super) fn cached_handle(&self, basin: &str, name: &str) -> Option<Arc<StreamHandle>> {
        let streams = self.inner.streams.lock();
        streams
            .get(&(basin.to_owned(), name.to_owned()))
            .filter(|h| !h.core.is_stale())
            .cloned()
    }

    pub(super) fn forget_stream(&self, basin: &str, name: &str) {
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
                let basin_config = basin_entry.basin_config()?;
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
        let poll = self.inner.config.poll.map(|p| match state.storage_class() {
            StorageClass::Standard => p.standard,
            StorageClass::Express => p.express,
        });
        let node = NodeServices {
            store: self.inner.store.clone(),
            cache: self.inner.cache.clone(),
            metrics: self.inner.metrics.clone(),
            clock: self.clock(),
            random: self.random().clone(),
            notices: self.inner.notices.clone(),
        };
        let identity = StreamIdentity {
            basin: basin.to_owned(),
            name: name.to_owned(),
            cipher: entry.cipher,
        };
        let core = StreamCore::new(
            identity,
            node,
            self.inner.usage.stream(basin, name),
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

    /// Drops opened streams nothing on this node uses.
    pub(super) fn evict_idle_streams(&self) {
        self.inner.streams.lock().retain(|_, h| {
            !h.core.is_stale() && (Arc::strong_count(h) > 1 || h.core.follower_count() > 0)
        });
    }
}
