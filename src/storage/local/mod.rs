//! The embedded default: objects as files under a local directory.
//!
//! `object_store`'s `LocalFileSystem` serves reads, listings and deletes. It has no
//! conditional replace, its ETags derive from inode and mtime (which can repeat), and its
//! writes are not synced to disk. This backend therefore
//! - versions objects by a hash of their content (like S3's MD5 ETags),
//! - makes conditional writes (creates and replaces: manifests, catalog entries, group
//!   state) durable through a journal, one append and one `fdatasync` each, shared by
//!   concurrent writes, and folds them into the keys' files off the write path
//!   ([`journal`]),
//! - writes other objects (chunks, packs) through a synced file moved into place and a
//!   synced directory, so an acknowledged write survives a machine crash, not just a
//!   process crash,
//! - replaces a file by swapping it with a spare file that then keeps the replaced
//!   version for the next replace, so folding a manifest neither creates nor frees an inode
//!   (on ext4 without a journal, every inode creation scans past the inodes freed in the
//!   last minutes),
//! - performs every write under a per-key lock, so check-then-write is atomic for this
//!   process, and every read under the same lock shared, so no read is still reading a
//!   replaced file when its inode is overwritten as the spare,
//! - holds an exclusive lock file on the directory, so no second process can write to it.

mod journal;

pub use journal::DEFAULT_ROTATE_BYTES as DEFAULT_LOCAL_JOURNAL_BYTES;

use std::{
    fs::{File, OpenOptions},
    path::{Path as FsPath, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, local::LocalFileSystem};
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use self::journal::Journal;
use super::{
    ETag, ListPage, ListedObject, MetaPage, Object, PutOutcome, Revalidated, StorageError,
    StorageResult, Store, content_etag,
    remote::{listed, path, unavailable},
};

const LOCK_FILE: &str = ".sluice.lock";
const KEY_LOCK_STRIPES: usize = 256;
/// Suffix of a key's spare file. `LocalFileSystem` listings skip names ending in `#<digits>`.
const SPARE_SUFFIX: &str = "#0";

/// The files of keys and the locks that order their writes, as the store and its
/// journal's checkpointer share them.
#[derive(Clone, Debug)]
struct Files {
    fs: Arc<LocalFileSystem>,
    key_locks: Arc<Vec<Arc<RwLock<()>>>>,
}

impl Files {
    fn key_lock(&self, key: &str) -> Arc<RwLock<()>> {
        let stripe = xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as usize % KEY_LOCK_STRIPES;
        self.key_locks[stripe].clone()
    }

    fn file_path(&self, key: &str) -> StorageResult<PathBuf> {
        self.fs
            .path_to_filesystem(&path(key)?)
            .map_err(|e| StorageError::Config(e.to_string()))
    }
}

pub struct LocalStore {
    root: PathBuf,
    files: Files,
    journal: Arc<Journal>,
    /// Versions of conditionally written objects as this process last wrote them. The
    /// directory lock makes this process the only writer, so these are current and a
    /// conditional replace need not read the object back.
    versions: parking_lot::Mutex<std::collections::HashMap<String, ETag>>,
    /// Held for the life of the store; the OS releases it when the process exits.
    _lock_file: File,
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        // Before the directory lock goes: no checkpoint of this store runs after it.
        self.journal.close(&self.root, &self.files);
    }
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("root", &self.root)
            .finish()
    }
}

impl LocalStore {
    /// Opens (creating if needed) the directory `root`. Fails if another process holds it.
    pub fn open(root: impl AsRef<FsPath>) -> StorageResult<Self> {
        Self::open_with(root, journal::DEFAULT_ROTATE_BYTES)
    }

    /// [`Self::open`], its journal checkpointed whenever it passes `rotate_bytes`.
    pub fn open_with(root: impl AsRef<FsPath>, rotate_bytes: u64) -> StorageResult<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| {
            StorageError::Config(format!(
                "cannot create data directory {}: {e}",
                root.display()
            ))
        })?;
        let root = root.canonicalize().map_err(|e| {
            StorageError::Config(format!(
                "cannot open data directory {}: {e}",
                root.display()
            ))
        })?;
        let lock_path = root.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                StorageError::Config(format!(
                    "cannot open lock file {}: {e}",
                    lock_path.display()
                ))
            })?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StorageError::Config(format!(
                    "data directory {} is in use by another Sluice process (lock file {}); \
                     run several nodes on an S3 bucket instead",
                    root.display(),
                    lock_path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StorageError::Config(format!(
                    "cannot lock {}: {e}",
                    lock_path.display()
                )));
            }
        }
        let fs = Arc::new(
            LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| StorageError::Config(e.to_string()))?
                .with_automatic_cleanup(true),
        );
        let files = Files {
            fs,
            key_locks: Arc::new(
                (0..KEY_LOCK_STRIPES)
                    .map(|_| Arc::new(RwLock::new(())))
                    .collect(),
            ),
        };
        let journal = Journal::open(&root, files.clone(), rotate_bytes)?;
        Ok(Self {
            root,
            files,
            journal,
            versions: parking_lot::Mutex::new(std::collections::HashMap::new()),
            _lock_file: lock_file,
        })
    }

    pub fn root(&self) -> &FsPath {
        &self.root
    }

    fn key_lock(&self, key: &str) -> Arc<RwLock<()>> {
        self.files.key_lock(key)
    }

    /// Held while writing or deleting `key`.
    async fn lock_key(&self, key: &str) -> OwnedRwLockWriteGuard<()> {
        self.key_lock(key).write_owned().await
    }

    /// Held while reading `key`: no replace can recycle the file being read meanwhile.
    async fn share_key(&self, key: &str) -> OwnedRwLockReadGuard<()> {
        self.key_lock(key).read_owned().await
    }

    fn file_path(&self, key: &str) -> StorageResult<PathBuf> {
        self.files.file_path(key)
    }

    /// Whether `key` holds an object; the caller holds its lock. Only creates ask, of keys
    /// that are small when they exist (catalog entries, manifests, group records).
    async fn exists(&self, key: &str) -> StorageResult<bool> {
        Ok(self.read_file(key).await?.is_some())
    }

    /// Reads `key` and works out its version; the caller holds its lock.
    async fn read(&self, key: &str) -> StorageResult<Option<Object>> {
        Ok(self.read_file(key).await?.map(|bytes| Object {
            etag: content_etag(&bytes),
            bytes,
        }))
    }

    /// Reads `key`'s latest journaled version, else its file, into a buffer that is not
    /// zeroed first (`object_store`'s local reads zero it); the caller holds its lock.
    async fn read_file(&self, key: &str) -> StorageResult<Option<Bytes>> {
        if let Some(entry) = self.journal.entry(key) {
            return Ok(entry.content);
        }
        let file = self.file_path(key)?;
        match tokio::task::spawn_blocking(move || std::fs::read(file)).await {
            Ok(Ok(bytes)) => Ok(Some(bytes.into())),
            // A directory, or a path through a file, holds no object (S3 would answer 404).
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::IsADirectory
                        | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Ok(Err(e)) => Err(StorageError::Unavailable(format!("reading {key}: {e}"))),
            Err(e) => Err(StorageError::Unavailable(format!("read task: {e}"))),
        }
    }

    /// Writes `bytes` to `key`'s file durably ([`replace_durably`]); the caller holds the
    /// key's lock.
    async fn write_file(&self, key: &str, bytes: Bytes) -> StorageResult<ETag> {
        let etag = content_etag(&bytes);
        let target = self.file_path(key)?;
        tokio::task::spawn_blocking(move || replace_durably(&target, &bytes, Expect::Fresh))
            .await
            .map_err(|e| StorageError::Unavailable(format!("write task: {e}")))?
            .map_err(|e| StorageError::Unavailable(format!("writing {key}: {e}")))?;
        Ok(etag)
    }
}

/// `target` with `suffix` appended to its file name, in the same directory.
fn sibling(target: &FsPath, suffix: &str) -> PathBuf {
    let mut name = target.file_name().expect("keys name a file").to_owned();
    name.push(suffix);
    target.with_file_name(name)
}

/// Opens `path` with `options`, creating its directory first only if it is missing: a
/// directory exists for every write but the first under it, or the first after deleting
/// its last object removed it.
fn open_creating_dir(options: &OpenOptions, path: &FsPath) -> std::io::Result<File> {
    match options.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_dir_durably(path.parent().expect("keys have a parent directory"))?;
            options.open(path)
        }
        result => result,
    }
}

/// Creates `dir` and whatever of its ancestors is missing, and syncs the directory each
/// new one was made in, so that a file synced in `dir` is reachable after a crash.
fn create_dir_durably(dir: &FsPath) -> std::io::Result<()> {
    let mut existing = dir;
    while !existing.exists() {
        existing = existing.parent().expect("the root exists");
    }
    std::fs::create_dir_all(dir)?;
    let mut made = dir;
    while made != existing {
        let parent = made.parent().expect("below an existing directory");
        File::open(parent)?.sync_all()?;
        made = parent;
    }
    Ok(())
}

/// Whether the key being written is expected to exist already, which decides the move
/// tried first (each is one system call when it guesses right, two otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// A fresh key (`put`: chunks, packs, segments are written once).
    Fresh,
    /// A replaced key (`put_if_match`: manifests and other state).
    Existing,
}

/// Whether a file write is synced on its own, or left to one sync of the whole file
/// system later ([`journal`]'s folds, whose journal keeps every version until then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sync {
    Each,
    Later,
}

/// Writes `bytes` into `target`'s spare file (created on first use, written over in place
/// after), syncs its data, swaps it with `target` (or moves it there if `target` does not
/// exist yet), then syncs the directory. A crash leaves `target` whole, old or new; the
/// spare's content never matters.
///
/// The spare is written over rather than truncated first and cut only where the new
/// content is shorter, and synced with `fdatasync`: the blocks it already has are reused,
/// so a write no longer than the last one changes no metadata a read needs, and the sync
/// writes the data alone. `fdatasync` still writes a changed size or new blocks, so the
/// spare's content is durable either way before it is moved into place.
fn replace_durably(target: &FsPath, bytes: &[u8], expect: Expect) -> std::io::Result<()> {
    replace_file(target, bytes, expect, Sync::Each)
}

/// [`replace_durably`], or with [`Sync::Later`] the same moves unsynced: a crash may
/// then leave `target` torn, which only a caller holding the content elsewhere may allow.
fn replace_file(target: &FsPath, bytes: &[u8], expect: Expect, sync: Sync) -> std::io::Result<()> {
    use std::io::Write;
    let dir = target.parent().expect("keys have a parent directory");
    let spare = sibling(target, SPARE_SUFFIX);
    let mut file = open_creating_dir(OpenOptions::new().write(true).create(true), &spare)?;
    let old_len = file.metadata()?.len();
    file.write_all(bytes)?;
    if old_len > bytes.len() as u64 {
        file.set_len(bytes.len() as u64)?;
    }
    if sync == Sync::Each {
        file.sync_data()?;
    }
    drop(file);
    move_into_place(&spare, target, expect)?;
    if sync == Sync::Each {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Moves `spare` to `target`. Where `target` exists, the two are exchanged atomically, so
/// `spare` keeps the replaced file; where it does not (or the exchange is not possible on
/// this file system or OS), `spare` is renamed to `target`.
#[cfg(target_os = "linux")]
fn move_into_place(spare: &FsPath, target: &FsPath, expect: Expect) -> std::io::Result<()> {
    use rustix::{
        fs::{CWD, RenameFlags, renameat_with},
        io::Errno,
    };
    if expect == Expect::Fresh {
        match renameat_with(CWD, spare, CWD, target, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(Errno::EXIST) => {}
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                return std::fs::rename(spare, target);
            }
            Err(e) => return Err(e.into()),
        }
    }
    match renameat_with(CWD, spare, CWD, target, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(()),
        Err(Errno::NOENT | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
            std::fs::rename(spare, target)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn move_into_place(spare: &FsPath, target: &FsPath, _: Expect) -> std::io::Result<()> {
    std::fs::rename(spare, target)
}

#[async_trait]
impl Store for LocalStore {
    async fn get(&self, key: &str) -> StorageResult<Option<Object>> {
        let _shared = self.share_key(key).await;
        let obj = self.read(key).await?;
        // No write can run under the shared lock: this is the current version.
        if let Some(o) = &obj {
            self.versions.lock().insert(key.to_owned(), o.etag.clone());
        }
        Ok(obj)
    }

    async fn get_bytes(&self, key: &str) -> StorageResult<Option<Bytes>> {
        let _shared = self.share_key(key).await;
        self.read_file(key).await
    }

    async fn revalidate(&self, key: &str, etag: &ETag) -> StorageResult<Revalidated> {
        let _shared = self.share_key(key).await;
        Ok(match self.read(key).await? {
            None => Revalidated::Missing,
            Some(obj) if &obj.etag == etag => Revalidated::Unchanged,
            Some(obj) => Revalidated::Changed(obj),
        })
    }

    async fn put(&self, key: &str, bytes: Bytes) -> StorageResult<ETag> {
        let _guard = self.lock_key(key).await;
        self.versions.lock().remove(key);
        if self.journal.entry(key).is_some() {
            let etag = content_etag(&bytes);
            self.journal.write(key, Some(bytes)).await?;
            return Ok(etag);
        }
        self.write_file(key, bytes).await
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> StorageResult<PutOutcome> {
        let _guard = self.lock_key(key).await;
        if self.exists(key).await? {
            return Ok(PutOutcome::PreconditionFailed);
        }
        let etag = content_etag(&bytes);
        self.journal.write(key, Some(bytes)).await?;
        self.versions.lock().insert(key.to_owned(), etag.clone());
        Ok(PutOutcome::Written(etag))
    }

    async fn put_if_match(
        &self,
        key: &str,
        bytes: Bytes,
        etag: &ETag,
    ) -> StorageResult<PutOutcome> {
        let _guard = self.lock_key(key).await;
        let known = self.versions.lock().get(key).cloned();
        let current = match known {
            Some(v) => Some(v),
            None => self.read(key).await?.map(|o| o.etag),
        };
        if current.as_ref() != Some(etag) {
            return Ok(PutOutcome::PreconditionFailed);
        }
        let written = content_etag(&bytes);
        if let Err(e) = self.journal.write(key, Some(bytes)).await {
            // The record may or may not be in the journal: read the key next time.
            self.versions.lock().remove(key);
            return Err(e);
        }
        self.versions.lock().insert(key.to_owned(), written.clone());
        Ok(PutOutcome::Written(written))
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StorageResult<ListPage> {
        let page = self.list_meta(prefix, start_after, limit).await?;
        Ok(ListPage {
            keys: page.objects.into_iter().map(|o| o.key).collect(),
            truncated: page.truncated,
        })
    }

    async fn list_meta(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StorageResult<MetaPage> {
        let trimmed = prefix.trim_end_matches('/');
        let dir = path(trimmed)?;
        let under = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        };
        // Journaled versions first: each names a key's latest version, file or not.
        let journaled = self.journal.entries_under(&under);
        let mut objects: Vec<_> = self
            .files
            .fs
            .list(Some(&dir))
            .map_ok(|meta| listed(&meta))
            .try_collect()
            .await
            .map_err(unavailable)?;
        let shadowed: std::collections::HashSet<&str> =
            journaled.iter().map(|(k, _)| k.as_str()).collect();
        objects.retain(|o| !shadowed.contains(o.key.as_str()));
        objects.extend(journaled.iter().filter_map(|(key, entry)| {
            let content = entry.content.as_ref()?;
            Some(ListedObject {
                key: key.clone(),
                size: content.len() as u64,
                modified_ms: Some(entry.modified_ms),
                etag: Some(content_etag(content)),
            })
        }));
        objects.retain(|o| start_after.is_none_or(|after| o.key.as_str() > after));
        objects.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let truncated = objects.len() > limit;
        objects.truncate(limit);
        // `object_store`'s tags here are not this backend's versions; only a version this
        // process wrote or read is known without reading the file.
        let versions = self.versions.lock();
        for o in objects.iter_mut().filter(|o| o.etag.is_none()) {
            o.etag = versions.get(&o.key).cloned();
        }
        Ok(MetaPage { objects, truncated })
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        let _guard = self.lock_key(key).await;
        self.versions.lock().remove(key);
        // A journaled key is deleted by a tombstone first: replaying the journal must not
        // bring back a version the deletion took away.
        if self.journal.entry(key).is_some() {
            self.journal.write(key, None).await?;
        }
        // The spare first: the object's removal also removes its directory once empty.
        match tokio::fs::remove_file(sibling(&self.file_path(key)?, SPARE_SUFFIX)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::Unavailable(format!("deleting {key}: {e}"))),
        }
        match self.files.fs.delete(&path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn health(&self) -> StorageResult<()> {
        tokio::fs::metadata(self.root.join(LOCK_FILE))
            .await
            .map(|_| ())
            .map_err(|e| StorageError::Unavailable(format!("data directory: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_store_honours_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        super::super::conformance::check(&store).await;
        super::super::conformance::check_races(Arc::new(store), 3).await;
    }

    fn inode(path: &FsPath) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
    }

    #[test]
    fn a_replaced_file_is_kept_as_the_spare_and_written_over_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s/manifest");
        let spare = sibling(&target, SPARE_SUFFIX);
        replace_durably(&target, b"v0", Expect::Fresh).unwrap();
        for v in 1..=3 {
            let replaced = inode(&target);
            let body = format!("v{v}");
            replace_durably(&target, body.as_bytes(), Expect::Existing).unwrap();
            assert_eq!(inode(&spare), replaced, "replace {v}");
            assert_eq!(std::fs::read(&target).unwrap(), body.as_bytes());
        }
    }

    /// A store whose journal is never checkpointed while the test runs.
    fn journaled(dir: &FsPath) -> LocalStore {
        LocalStore::open_with(dir, u64::MAX).unwrap()
    }

    fn journal_files(dir: &FsPath) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with(".sluice-journal.")
            })
            .count()
    }

    async fn create(store: &LocalStore, key: &str, body: &'static [u8]) -> ETag {
        match store.put_if_absent(key, Bytes::from_static(body)).await {
            Ok(PutOutcome::Written(etag)) => etag,
            other => panic!("create {key}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn conditional_writes_are_journaled_and_replayed_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let store = journaled(dir.path());
        let etag = create(&store, "s/manifest", b"v0").await;
        let etag = match store
            .put_if_match("s/manifest", Bytes::from_static(b"v1"), &etag)
            .await
        {
            Ok(PutOutcome::Written(etag)) => etag,
            other => panic!("replace: {other:?}"),
        };
        create(&store, "s/gone", b"x").await;
        store.delete("s/gone").await.unwrap();
        // The journal alone holds them: no key has a file yet.
        assert!(!store.file_path("s/manifest").unwrap().exists());
        assert_eq!(journal_files(dir.path()), 1);
        assert_eq!(
            store.get("s/manifest").await.unwrap().unwrap().bytes,
            &b"v1"[..]
        );
        assert_eq!(
            store.list("s/", None, 10).await.unwrap().keys,
            ["s/manifest"]
        );
        let listed = store.list_meta("s/", None, 10).await.unwrap().objects;
        assert_eq!(listed[0].etag.as_ref(), Some(&etag));
        assert_eq!(listed[0].size, 2);
        // Closed as a crash leaves it (nothing folded), with a torn record after.
        store
            .journal
            .crash_at_close
            .store(true, std::sync::atomic::Ordering::Relaxed);
        drop(store);
        let journal = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains(".sluice-journal."))
            .unwrap();
        let mut torn = std::fs::OpenOptions::new()
            .append(true)
            .open(journal)
            .unwrap();
        std::io::Write::write_all(&mut torn, &[0, 0, 0, 40, 1, 2, 3]).unwrap();
        drop(torn);

        let store = journaled(dir.path());
        assert_eq!(journal_files(dir.path()), 0, "replayed into files");
        assert_eq!(
            std::fs::read(store.file_path("s/manifest").unwrap()).unwrap(),
            b"v1"
        );
        let read = store.get("s/manifest").await.unwrap().unwrap();
        assert_eq!((read.bytes, read.etag), (Bytes::from_static(b"v1"), etag));
        assert!(
            store.get("s/gone").await.unwrap().is_none(),
            "deleted stays deleted"
        );
        assert!(matches!(
            store
                .put_if_absent("s/manifest", Bytes::from_static(b"again"))
                .await
                .unwrap(),
            PutOutcome::PreconditionFailed
        ));
    }

    #[tokio::test]
    async fn a_full_journal_is_folded_into_the_files_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        // Every append passes the size: each rotates and is checkpointed.
        let store = LocalStore::open_with(dir.path(), 1).unwrap();
        let mut etag = create(&store, "s/m", b"v0").await;
        for v in 1..=20 {
            etag = match store
                .put_if_match("s/m", Bytes::from(format!("v{v}")), &etag)
                .await
            {
                Ok(PutOutcome::Written(etag)) => etag,
                other => panic!("replace {v}: {other:?}"),
            };
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while journal_files(dir.path()) > 0 || store.journal.entry("s/m").is_some() {
            assert!(std::time::Instant::now() < deadline, "never checkpointed");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            std::fs::read(store.file_path("s/m").unwrap()).unwrap(),
            b"v20"
        );
        assert_eq!(store.get("s/m").await.unwrap().unwrap().etag, etag);
        // Written again after its entry went: through the journal, as every conditional write.
        let PutOutcome::Written(_) = store
            .put_if_match("s/m", Bytes::from_static(b"v21"), &etag)
            .await
            .unwrap()
        else {
            panic!("replace after the checkpoint")
        };
        // A clean close folds the journal: plain files, as an older Sluice reads them.
        drop(store);
        assert_eq!(journal_files(dir.path()), 0);
        assert_eq!(std::fs::read(dir.path().join("s/m")).unwrap(), b"v21");
        let store = journaled(dir.path());
        assert_eq!(store.get("s/m").await.unwrap().unwrap().bytes, &b"v21"[..]);
    }

    #[tokio::test]
    async fn a_shorter_replace_leaves_nothing_of_the_longer_content_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let mut etag = match store
            .put_if_absent("s/m", Bytes::from_static(b"0"))
            .await
            .unwrap()
        {
            PutOutcome::Written(etag) => etag,
            other => panic!("create: {other:?}"),
        };
        for body in ["a long first version", "short", "a longer third one!", "x"] {
            let body = Bytes::from(body);
            etag = match store.put_if_match("s/m", body.clone(), &etag).await {
                Ok(PutOutcome::Written(etag)) => etag,
                other => panic!("replace with {body:?}: {other:?}"),
            };
            assert_eq!(store.get("s/m").await.unwrap().unwrap().bytes, body);
        }
        for body in ["unconditional, long", "short"] {
            store.put("s/m", Bytes::from(body)).await.unwrap();
            assert_eq!(
                &store.get("s/m").await.unwrap().unwrap().bytes[..],
                body.as_bytes()
            );
        }
    }

    #[tokio::test]
    async fn a_write_recreates_the_directory_its_last_object_took_away() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        for round in 0..2 {
            store.put("d/e/k", Bytes::from_static(b"x")).await.unwrap();
            store.delete("d/e/k").await.unwrap();
            assert!(!dir.path().join("d/e").exists(), "round {round}");
        }
        assert!(matches!(
            store
                .put_if_absent("d/e/k", Bytes::from_static(b"y"))
                .await
                .unwrap(),
            PutOutcome::Written(_)
        ));
        assert_eq!(&store.get("d/e/k").await.unwrap().unwrap().bytes[..], b"y");
    }

    #[tokio::test]
    async fn deleting_a_replaced_object_deletes_its_spare_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store
            .put("s/manifest", Bytes::from_static(b"a"))
            .await
            .unwrap();
        store
            .put("s/manifest", Bytes::from_static(b"b"))
            .await
            .unwrap();
        let target = store.file_path("s/manifest").unwrap();
        assert!(sibling(&target, SPARE_SUFFIX).exists());
        store.delete("s/manifest").await.unwrap();
        assert!(!target.parent().unwrap().exists());
    }

    #[tokio::test]
    async fn a_directory_or_a_path_through_a_file_holds_no_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store.put("a/b", Bytes::from_static(b"x")).await.unwrap();
        for key in ["a", "a/b/c"] {
            assert!(store.get(key).await.unwrap().is_none(), "{key}");
            assert!(store.get_bytes(key).await.unwrap().is_none(), "{key}");
        }
    }

    #[tokio::test]
    async fn a_replace_waits_for_reads_of_the_key_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::open(dir.path()).unwrap());
        store.put("k", Bytes::from_static(b"a")).await.unwrap();
        let reading = store.share_key("k").await;
        let mut replace = std::pin::pin!(store.put("k", Bytes::from_static(b"b")));
        assert!(futures::poll!(&mut replace).is_pending());
        drop(reading);
        replace.await.unwrap();
        assert_eq!(&store.get("k").await.unwrap().unwrap().bytes[..], b"b");
    }

    #[tokio::test]
    async fn a_second_open_of_the_same_directory_fails_fast() {
        let dir = tempfile::tempdir().unwrap();
        let _first = LocalStore::open(dir.path()).unwrap();
        let err = LocalStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another Sluice process"), "{err}");
    }

    #[tokio::test]
    async fn concurrent_conditional_replaces_admit_exactly_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::open(dir.path()).unwrap());
        let PutOutcome::Written(etag) = store
            .put_if_absent("k", Bytes::from_static(b"0"))
            .await
            .unwrap()
        else {
            panic!("create failed")
        };
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                let etag = etag.clone();
                tokio::spawn(async move {
                    store
                        .put_if_match("k", Bytes::from(format!("v{i}")), &etag)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), PutOutcome::Written(_)) {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
    }
}
