//! Object storage behind one small trait.
//!
//! Everything Sluice persists goes through [`Store`]: whole-object gets and ranged gets,
//! unconditional puts for immutable objects, conditional create (`If-None-Match: *`) and
//! conditional replace (`If-Match: <etag>`) for the objects that serialize state, sorted
//! listing and deletion. Backends: any S3-compatible bucket, a local directory (the
//! embedded default) and memory (unit tests). Wrappers add request accounting
//! ([`counting::CountingStore`]) and seeded faults for tests ([`faulty::FaultyStore`]).

pub mod conformance;
pub mod counting;
pub mod faulty;
mod local;
mod remote;

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use bytes::Bytes;

pub use local::{DEFAULT_LOCAL_JOURNAL_BYTES, LocalStore};
pub use remote::{RemoteStore, S3Settings};

/// Version tag of a stored object: the HTTP ETag on S3, a content hash elsewhere.
///
/// Equal bytes may give equal tags, so objects that are conditionally replaced carry a
/// version number of their own to make every write distinct.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ETag(Arc<str>);

impl ETag {
    pub fn new(tag: impl Into<Arc<str>>) -> Self {
        Self(tag.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ETag({})", self.0)
    }
}

/// An object's bytes with the version they were read at.
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Bytes,
    pub etag: ETag,
}

/// Result of a conditional read against a known version.
#[derive(Debug)]
pub enum Revalidated {
    /// The object still has the given version.
    Unchanged,
    Changed(Object),
    Missing,
}

/// Result of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Written(ETag),
    /// The precondition did not hold: the object exists (create) or has another version
    /// or is gone (replace). Nothing was written by this request.
    PreconditionFailed,
}

/// One page of a listing, in byte order of keys.
#[derive(Debug, Default)]
pub struct ListPage {
    pub keys: Vec<String>,
    /// More keys matched than were returned.
    pub truncated: bool,
}

/// One object of a listing with what the store knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    /// When the object was last written, in ms since the epoch by the store's clock;
    /// `None` where the backend cannot tell. Verification and the orphan sweep judge an
    /// unreferenced object's age by it ([`crate::engine::reach`]).
    pub modified_ms: Option<u64>,
    /// The object's version as a read would report it, where the listing tells it
    /// (S3 and memory always; the local directory for objects this process wrote):
    /// [`crate::engine::listing`] serves stream listings from the LIST alone by it.
    pub etag: Option<ETag>,
}

/// One page of a listing with metadata, in byte order of keys.
#[derive(Debug, Default)]
pub struct MetaPage {
    pub objects: Vec<ListedObject>,
    /// More keys matched than were returned.
    pub truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found: {0}")]
    NotFound(String),
    /// The request may or may not have taken effect (timeout, lost response, 5xx).
    #[error("object storage: {0}")]
    Unavailable(String),
    #[error("object storage misconfigured: {0}")]
    Config(String),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// The operations Sluice needs from an object store. Keys are `/`-separated UTF-8 paths
/// relative to the store's root; every implementation must be safe for concurrent use.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The whole object, or `None` if it does not exist.
    async fn get(&self, key: &str) -> StorageResult<Option<Object>>;

    /// Re-read `key` only if its version differs from `etag`.
    async fn revalidate(&self, key: &str, etag: &ETag) -> StorageResult<Revalidated>;

    /// The whole object without its version, or `None` if it does not exist: for readers
    /// that will not write conditionally on what they read (chunks, packs, index
    /// segments), so a backend that must work the version out can skip it.
    async fn get_bytes(&self, key: &str) -> StorageResult<Option<Bytes>> {
        Ok(self.get(key).await?.map(|o| o.bytes))
    }

    /// Unconditional write, for objects that are written once under a fresh key.
    async fn put(&self, key: &str, bytes: Bytes) -> StorageResult<ETag>;

    /// Write only if no object exists at `key`.
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> StorageResult<PutOutcome>;

    /// Write only if the object at `key` currently has version `etag`.
    async fn put_if_match(&self, key: &str, bytes: Bytes, etag: &ETag)
    -> StorageResult<PutOutcome>;

    /// Keys under `prefix` strictly greater than `start_after`, sorted by bytes, at most
    /// `limit` of them.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StorageResult<ListPage>;

    /// [`Self::list`] with each object's size and modification time. The default knows
    /// no times (`modified_ms: None`); every backend here overrides it.
    async fn list_meta(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StorageResult<MetaPage> {
        let page = self.list(prefix, start_after, limit).await?;
        Ok(MetaPage {
            objects: page
                .keys
                .into_iter()
                .map(|key| ListedObject {
                    key,
                    size: 0,
                    modified_ms: None,
                    etag: None,
                })
                .collect(),
            truncated: page.truncated,
        })
    }

    /// Delete `key`; deleting a missing key succeeds.
    async fn delete(&self, key: &str) -> StorageResult<()>;

    /// Delete every key in `keys` (at most 1000), in as few requests as the backend
    /// allows; missing keys are fine.
    async fn delete_many(&self, keys: &[String]) -> StorageResult<()> {
        for key in keys {
            self.delete(key).await?;
        }
        Ok(())
    }

    /// Cheap round trip that proves the store is reachable.
    async fn health(&self) -> StorageResult<()>;
}

pub type DynStore = Arc<dyn Store>;

/// In-memory store for unit tests: `object_store`'s memory backend with S3-like
/// conditional semantics.
pub fn memory() -> DynStore {
    Arc::new(RemoteStore::memory())
}

/// Content hash used as the version tag where the backend has no usable ETag.
pub(crate) fn content_etag(bytes: &[u8]) -> ETag {
    let hash = xxhash_rust::xxh3::xxh3_128(bytes);
    ETag::new(format!("{hash:032x}"))
}
