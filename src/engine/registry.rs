//! The streams opened on this node: one [`StreamHandle`] per stream, shared by its
//! appender, readers and followers, and released once nothing has used it for
//! [`EngineConfig::stream_idle_release`](super::EngineConfig::stream_idle_release): its
//! appender ends, its manifest and everything derived from it are freed, and the next
//! request opens it afresh from the manifest in the bucket. A released stream holds no
//! memory on the node but its share of the caches, which are bounded on their own, and
//! its usage series in the usage objects this node keeps open (the current and previous
//! hour's and day's, `usage/`).

use std::{
    sync::{Arc, OnceLock, Weak},
    time::Duration,
};

use tokio::time::Instant;

use s2_common::encryption::EncryptionKey;

use super::{
    AutoCreate, Engine, EngineError, EngineResult,
    appender::Appender,
    crypt::Encryption,
    handle::{StorageClass, StreamCore, StreamIdentity, StreamState},
    layout,
    manifest::Manifest,
};

/// A stream opened on this node: its [`StreamCore`] and, once something appends, its
/// appender.
pub struct StreamHandle {
    pub core: Arc<StreamCore>,
    appender: OnceLock<Appender>,
    /// When the registry last handed the handle out.
    last_used: parking_lot::Mutex<Instant>,
}

impl StreamHandle {
    fn new(core: StreamCore) -> Self {
        Self {
            core: Arc::new(core),
            appender: OnceLock::new(),
            last_used: parking_lot::Mutex::new(Instant::now()),
        }
    }

    fn touch(&self) {
        *self.last_used.lock() = Instant::now();
    }

    /// Nothing but the registry holds the handle, no follower waits on the stream, and
    /// the registry last handed it out at least `idle` ago.
    fn idle_for(self: &Arc<Self>, idle: Duration) -> bool {
        Arc::strong_count(self) == 1
            && self.core.follower_count() == 0
            && self.last_used.lock().elapsed() >= idle
    }

    /// What a request with `key` (its `s2-encryption-key`) may do with the stream's
    /// records: `bad_header` if the stream is encrypted and the key missing or malformed.
    pub fn encryption(&self, key: Option<EncryptionKey>) -> EngineResult<Encryption> {
        Encryption::resolve(self.core.cipher, key, &self.core.id)
    }

    /// The stream's appender, made on first use; its task comes and goes
    /// ([`Appender`]), and ends at the latest when this handle is dropped.
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
        let handle = streams
            .get(&(basin.to_owned(), name.to_owned()))
            .filter(|h| !h.core.is_stale())?;
        handle.touch();
        Some(handle.clone())
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
        let identity = StreamIdentity {
            basin: basin.to_owned(),
            name: name.to_owned(),
            cipher: entry.cipher,
        };
        let core = StreamCore::new(
            identity,
            self.inner.node.clone(),
            self.inner.usage.stream(basin, name),
            state,
            poll,
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

    /// Drops opened streams nothing on this node has used for `idle`, and stale ones.
    pub(super) fn evict_idle_streams(&self, idle: Duration) {
        self.inner
            .streams
            .lock()
            .retain(|_, h| !h.core.is_stale() && !h.idle_for(idle));
    }

    /// Whether the stream is open on this node (without counting as a use).
    pub(super) fn is_open(&self, basin: &str, name: &str) -> bool {
        let key = (basin.to_owned(), name.to_owned());
        self.inner.streams.lock().contains_key(&key)
    }

    /// Releases the stream at once if nothing on this node uses it: for streams opened
    /// only for upkeep.
    pub(super) fn release_if_unused(&self, basin: &str, name: &str) {
        let key = (basin.to_owned(), name.to_owned());
        let mut streams = self.inner.streams.lock();
        if streams
            .get(&key)
            .is_some_and(|h| h.idle_for(Duration::ZERO))
        {
            streams.remove(&key);
        }
    }

    /// Streams opened on this node.
    pub fn open_streams(&self) -> usize {
        self.inner.streams.lock().len()
    }

    /// Releases idle streams every quarter of the idle time (between 250 ms and 15 s),
    /// until the engine is dropped.
    pub(super) fn spawn_idle_release(&self) {
        let idle = self.inner.config.stream_idle_release;
        let weak: Weak<_> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let period = (idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(15));
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Engine { inner }.evict_idle_streams(idle);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use s2_common::config::{BasinConfig, OptionalStreamConfig};

    use super::*;
    use crate::{
        engine::{EngineConfig, testing::*},
        storage,
    };

    #[tokio::test]
    async fn an_idle_stream_is_released_and_reopens_at_its_tail() {
        let engine = Engine::new(
            storage::memory(),
            EngineConfig {
                poll: None,
                maintenance_interval: Duration::from_secs(3600),
                stream_idle_release: Duration::from_millis(300),
                ..EngineConfig::default()
            },
        );
        engine
            .create_basin("b", BasinConfig::default(), None)
            .await
            .unwrap();
        engine
            .create_stream("b", "s", OptionalStreamConfig::default(), None)
            .await
            .unwrap();
        let h = engine.open("b", "s", AutoCreate::No).await.unwrap();
        engine.append(&h, batch(&[b"a", b"b"]), None).await.unwrap();
        let core = Arc::downgrade(&h.core);

        // Held, it stays however long it has been idle.
        engine.evict_idle_streams(Duration::ZERO);
        assert!(engine.is_open("b", "s"));
        drop(h);
        // Unused but used recently, it stays.
        engine.evict_idle_streams(Duration::from_secs(3600));
        assert!(engine.is_open("b", "s"));

        // The background release drops it, and with it the core its appender shared.
        let deadline = Instant::now() + Duration::from_secs(10);
        while engine.is_open("b", "s") || core.strong_count() > 0 {
            assert!(
                Instant::now() < deadline,
                "the idle stream was not released"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(engine.open_streams(), 0);

        let h = engine.open("b", "s", AutoCreate::No).await.unwrap();
        assert_eq!(h.core.current().tail().seq_num, 2);
        let ack = engine.append(&h, batch(&[b"c"]), None).await.unwrap();
        assert_eq!((ack.start.seq_num, ack.tail.seq_num), (2, 3));
        assert_eq!(read_all(&engine, &h).await, [b"a", b"b", b"c"]);
    }

    #[tokio::test]
    async fn a_followed_stream_is_not_released() {
        let (engine, h) = engine_with_stream(storage::memory(), Duration::ZERO).await;
        let follower = h.core.subscribe();
        drop(h);
        engine.evict_idle_streams(Duration::ZERO);
        assert!(engine.is_open("test-basin", "s"));
        drop(follower);
        engine.evict_idle_streams(Duration::ZERO);
        assert!(!engine.is_open("test-basin", "s"));
    }
}
