//! The local directory's journal: replaces and creates made durable by one append to a
//! journal file and one `fdatasync`, as a durable Redis writes its append-only file,
//! instead of a file synced, moved into place and its directory synced (two journal
//! commits of the file system, one after the other, for every commit of a stream).
//!
//! - A journaled write appends a record (the key and its new content, or a tombstone) to
//!   the current journal file; concurrent appends share one write and one sync. It is
//!   acknowledged once synced, and its content is then served from memory ([`Entry`]).
//! - When the file passes [`DEFAULT_ROTATE_BYTES`], appends move to a new file (the next
//!   *generation*) and a checkpointer writes every key whose latest record is in an older
//!   generation to its own file (unsynced, then one `syncfs`: until the generations are
//!   deleted they repair whatever a crash tore), then deletes those generations, and only
//!   then forgets their entries; a key written meanwhile keeps its entry (its latest record is
//!   in the newer generation). Until a key's entry is forgotten every write of that key
//!   goes through the journal, so a record replayed at start can never be older than the
//!   key's file.
//! - A store that closes folds the journal into the files (so a directory left by a clean
//!   stop holds plain files). At start, the generations left are replayed in order (a
//!   record whose checksum fails ends its file: it is the torn tail of an append that was
//!   never acknowledged), every key's latest record is written to its file, and the
//!   journal files are deleted.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::Read,
    path::{Path as FsPath, PathBuf},
    sync::{
        Arc, Weak,
        mpsc::{Receiver, Sender, TryRecvError},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::sync::{RwLock, oneshot};

use super::{Expect, Files, Sync, replace_file};
use crate::storage::{StorageError, StorageResult};

/// Journal files are `<root>/.sluice-journal.<generation>`; object listings never look at
/// the root's own files.
const FILE_PREFIX: &str = ".sluice-journal.";
/// The size past which appends move to a new journal file and the old one is checkpointed.
pub const DEFAULT_ROTATE_BYTES: u64 = 64 * 1024 * 1024;
/// One append gathers at most this many bytes of records.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// A journal file is written with zeros this far ahead of its records, so that an append
/// overwrites blocks the file already has and its `fdatasync` changes no metadata (no
/// file-system journal commit); replay ends at the first zero length.
const ZEROED_AHEAD: u64 = 16 * 1024 * 1024;
const CONTENT: u8 = 1;
const TOMBSTONE: u8 = 2;

/// A key's latest journaled version, not yet in its file (or not yet known to be).
#[derive(Clone, Debug)]
pub struct Entry {
    /// `None`: deleted.
    pub content: Option<Bytes>,
    /// The generation holding its latest record.
    generation: u64,
    pub modified_ms: u64,
}

struct Append {
    record: Bytes,
    reply: oneshot::Sender<std::io::Result<u64>>,
}

pub struct Journal {
    entries: parking_lot::Mutex<HashMap<String, Entry>>,
    appends: Sender<Append>,
    /// Held shared by every journaled write from before its append to after its entry is
    /// set; a checkpoint takes it exclusively once, after appends moved to a new
    /// generation, so that every record of the generations it folds has its entry.
    barrier: RwLock<()>,
    /// Set (under the lock) when the store closes; a checkpoint runs holding the lock, so
    /// none is under way once the store's directory lock is released and another store
    /// may replay the same files.
    closed: parking_lot::Mutex<bool>,
    /// Tests: close as a crash would, leaving the journal to be replayed.
    #[cfg(test)]
    pub crash_at_close: std::sync::atomic::AtomicBool,
}

impl Journal {
    /// Replays what an earlier process left in `root`, then starts the writer and the
    /// checkpointer (two threads, which end when the journal is dropped).
    pub fn open(root: &FsPath, files: Files, rotate_bytes: u64) -> StorageResult<Arc<Self>> {
        let config =
            |e: std::io::Error| StorageError::Config(format!("journal in {}: {e}", root.display()));
        let next = recover(root, &files).map_err(config)?;
        let (appends, appended) = std::sync::mpsc::channel();
        let (rotations, rotated) = std::sync::mpsc::channel();
        let journal = Arc::new(Self {
            entries: parking_lot::Mutex::new(HashMap::new()),
            appends,
            barrier: RwLock::new(()),
            closed: parking_lot::Mutex::new(false),
            #[cfg(test)]
            crash_at_close: std::sync::atomic::AtomicBool::new(false),
        });
        let writer = Writer {
            root: root.to_owned(),
            generation: next,
            file: None,
            size: 0,
            zeroed: 0,
            rotate_bytes,
            rotations,
        };
        std::thread::Builder::new()
            .name("sluice-journal".into())
            .spawn(move || writer.run(appended))
            .map_err(config)?;
        let weak = Arc::downgrade(&journal);
        let root = root.to_owned();
        std::thread::Builder::new()
            .name("sluice-checkpoint".into())
            .spawn(move || checkpoint_forever(&root, &weak, &files, &rotated))
            .map_err(config)?;
        Ok(journal)
    }

    /// Waits for a checkpoint under way, stops any later one, and folds every journaled
    /// version into its file, so that a directory left by a store that closed holds plain
    /// files (what an older Sluice, or a backup, reads). The store is closing, so no write
    /// is in flight. A failure leaves the journal for the next open to replay.
    pub fn close(&self, root: &FsPath, files: &Files) {
        let mut closed = self.closed.lock();
        *closed = true;
        #[cfg(test)]
        if self
            .crash_at_close
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let entries = std::mem::take(&mut *self.entries.lock());
        let folded = (|| {
            for (key, entry) in &entries {
                materialize(files, key, entry.content.as_ref())?;
            }
            folded(root)?;
            for generation in generations(root)? {
                remove_if_present(&journal_path(root, generation))?;
            }
            File::open(root)?.sync_all()
        })();
        if let Err(e) = folded {
            tracing::warn!(error = %e, "folding the journal at close failed; it is replayed at the next start");
        }
    }

    /// The latest journaled version of `key`, if its latest version is journaled.
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.entries.lock().get(key).cloned()
    }

    /// Every key under `prefix` with a journaled version.
    pub fn entries_under(&self, prefix: &str) -> Vec<(String, Entry)> {
        self.entries
            .lock()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// Makes `content` (`None`: a deletion) the durable version of `key`; the caller holds
    /// the key's lock.
    pub async fn write(&self, key: &str, content: Option<Bytes>) -> StorageResult<()> {
        let _writing = self.barrier.read().await;
        let record = encode(key, content.as_ref());
        let (reply, replied) = oneshot::channel();
        let failed = |e: String| StorageError::Unavailable(format!("journal write of {key}: {e}"));
        self.appends
            .send(Append { record, reply })
            .map_err(|_| failed("the journal writer stopped".into()))?;
        let generation = replied
            .await
            .map_err(|_| failed("the journal writer stopped".into()))?
            .map_err(|e| failed(e.to_string()))?;
        self.entries.lock().insert(
            key.to_owned(),
            Entry {
                content,
                generation,
                modified_ms: now_ms(),
            },
        );
        Ok(())
    }
}

/// The thread that appends records: it owns the current journal file.
struct Writer {
    root: PathBuf,
    generation: u64,
    file: Option<File>,
    /// Where the next record goes.
    size: u64,
    /// How far the file holds zeros (or records).
    zeroed: u64,
    rotate_bytes: u64,
    rotations: Sender<u64>,
}

impl Writer {
    fn run(mut self, appended: Receiver<Append>) {
        while let Ok(first) = appended.recv() {
            let mut batch = vec![first];
            let mut bytes = batch[0].record.len();
            while bytes < MAX_BATCH_BYTES {
                match appended.try_recv() {
                    Ok(more) => {
                        bytes += more.record.len();
                        batch.push(more);
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            let written = self.append(&batch);
            let generation = self.generation;
            for append in batch {
                let result = match &written {
                    Ok(()) => Ok(generation),
                    Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                };
                let _ = append.reply.send(result);
            }
            // After a failed append the file may end in part of a record; nothing more
            // goes after it.
            if written.is_err() || self.size >= self.rotate_bytes {
                self.rotate();
            }
        }
    }

    fn append(&mut self, batch: &[Append]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.file.is_none() {
            let path = journal_path(&self.root, self.generation);
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            File::open(&self.root)?.sync_all()?;
            self.file = Some(file);
            self.size = 0;
            self.zeroed = 0;
        }
        // One record (one stream committing) is written as it is; several are joined.
        let joined;
        let buf: &[u8] = match batch {
            [one] => &one.record,
            many => {
                joined = many
                    .iter()
                    .map(|a| &a.record[..])
                    .collect::<Vec<_>>()
                    .concat();
                &joined
            }
        };
        let end = self.size + buf.len() as u64;
        if end > self.zeroed {
            self.zero_until(end + ZEROED_AHEAD.min(self.rotate_bytes))?;
        }
        let file = self.file.as_ref().expect("opened above");
        file.write_all_at(buf, self.size)?;
        file.sync_data()?;
        self.size = end;
        Ok(())
    }

    /// Writes zeros from the zeroed end to `end`, synced.
    fn zero_until(&mut self, end: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let file = self.file.as_ref().expect("an open journal file");
        let zeros = vec![0u8; 1024 * 1024];
        while self.zeroed < end {
            let n = (end - self.zeroed).min(zeros.len() as u64) as usize;
            file.write_all_at(&zeros[..n], self.zeroed)?;
            self.zeroed += n as u64;
        }
        file.sync_data()
    }

    /// Moves appends to the next generation (its file is made by the next append) and
    /// hands the current one to the checkpointer.
    fn rotate(&mut self) {
        if self.file.take().is_some() {
            let _ = self.rotations.send(self.generation);
        }
        self.generation += 1;
    }
}

/// Folds every generation the writer moves past into the keys' own files.
fn checkpoint_forever(
    root: &FsPath,
    journal: &Weak<Journal>,
    files: &Files,
    rotated: &Receiver<u64>,
) {
    while let Ok(mut generation) = rotated.recv() {
        while let Ok(later) = rotated.try_recv() {
            generation = later;
        }
        let Some(journal) = journal.upgrade() else {
            return;
        };
        let closed = journal.closed.lock();
        if *closed {
            return;
        }
        if let Err(e) = checkpoint(root, &journal, files, generation) {
            // The generation stays; the next rotation folds it with the next one.
            tracing::warn!(error = %e, generation, "journal checkpoint failed");
        }
    }
}

fn checkpoint(
    root: &FsPath,
    journal: &Journal,
    files: &Files,
    through: u64,
) -> std::io::Result<()> {
    drop(journal.barrier.blocking_write());
    let due: Vec<String> = journal
        .entries
        .lock()
        .iter()
        .filter(|(_, e)| e.generation <= through)
        .map(|(k, _)| k.clone())
        .collect();
    for key in &due {
        let lock = files.key_lock(key);
        let _guard = lock.blocking_write();
        let Some(entry) = journal.entry(key) else {
            continue;
        };
        if entry.generation <= through {
            materialize(files, key, entry.content.as_ref())?;
        }
    }
    folded(root)?;
    for generation in generations(root)? {
        if generation <= through {
            remove_if_present(&journal_path(root, generation))?;
        }
    }
    File::open(root)?.sync_all()?;
    for key in &due {
        let lock = files.key_lock(key);
        let _guard = lock.blocking_write();
        let mut entries = journal.entries.lock();
        if entries.get(key).is_some_and(|e| e.generation <= through) {
            entries.remove(key);
        }
    }
    Ok(())
}

/// How a fold writes the keys' files: unsynced, then one `syncfs` before the journal they
/// came from is deleted (the journal repairs a file a crash tore meanwhile); each synced
/// where there is no `syncfs`.
const FOLD_SYNC: Sync = if cfg!(target_os = "linux") {
    Sync::Later
} else {
    Sync::Each
};

/// Writes `content` to `key`'s file, or deletes it, as a fold does ([`FOLD_SYNC`]).
fn materialize(files: &Files, key: &str, content: Option<&Bytes>) -> std::io::Result<()> {
    let path = files
        .file_path(key)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    match content {
        Some(bytes) => replace_file(&path, bytes, Expect::Existing, FOLD_SYNC),
        None => {
            remove_if_present(&super::sibling(&path, super::SPARE_SUFFIX))?;
            remove_if_present(&path)?;
            match path.parent().map(File::open) {
                Some(Ok(dir)) if FOLD_SYNC == Sync::Each => dir.sync_all(),
                Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
    }
}

/// Makes everything a fold wrote under `root` durable, before its journal goes.
fn folded(root: &FsPath) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::fs::syncfs(File::open(root)?)?;
    let _ = root;
    Ok(())
}

/// Replays the generations left in `root` into the keys' files and deletes them; the
/// generation the writer starts at.
fn recover(root: &FsPath, files: &Files) -> std::io::Result<u64> {
    let generations = generations(root)?;
    let mut latest: HashMap<String, Option<Bytes>> = HashMap::new();
    for &generation in &generations {
        let mut bytes = Vec::new();
        File::open(journal_path(root, generation))?.read_to_end(&mut bytes)?;
        let (records, torn) = decode_all(Bytes::from(bytes));
        if torn {
            tracing::warn!(
                generation,
                "a journal file ends in a record never acknowledged; it is dropped"
            );
        }
        for (key, content) in records {
            latest.insert(key, content);
        }
    }
    for (key, content) in &latest {
        materialize(files, key, content.as_ref())?;
    }
    folded(root)?;
    for &generation in &generations {
        remove_if_present(&journal_path(root, generation))?;
    }
    if !generations.is_empty() {
        File::open(root)?.sync_all()?;
        tracing::info!(
            keys = latest.len(),
            files = generations.len(),
            "replayed the local journal"
        );
    }
    Ok(generations.last().map_or(0, |g| g + 1))
}

/// The journal generations present in `root`, oldest first.
fn generations(root: &FsPath) -> std::io::Result<Vec<u64>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let name = entry?.file_name();
        if let Some(g) = name
            .to_str()
            .and_then(|n| n.strip_prefix(FILE_PREFIX))
            .and_then(|g| g.parse().ok())
        {
            found.push(g);
        }
    }
    found.sort_unstable();
    Ok(found)
}

fn remove_if_present(path: &FsPath) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn journal_path(root: &FsPath, generation: u64) -> PathBuf {
    root.join(format!("{FILE_PREFIX}{generation}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A record: payload length (u32), the payload's xxh3 (u64), then the payload: kind, key
/// length (u32), key, content.
fn encode(key: &str, content: Option<&Bytes>) -> Bytes {
    let body_len = 1 + 4 + key.len() + content.map_or(0, |c| c.len());
    let mut payload = BytesMut::with_capacity(12 + body_len);
    payload.put_u32(body_len as u32);
    payload.put_u64(0);
    payload.put_u8(if content.is_some() {
        CONTENT
    } else {
        TOMBSTONE
    });
    payload.put_u32(key.len() as u32);
    payload.put_slice(key.as_bytes());
    if let Some(c) = content {
        payload.put_slice(c);
    }
    let sum = xxhash_rust::xxh3::xxh3_64(&payload[12..]);
    payload[4..12].copy_from_slice(&sum.to_be_bytes());
    payload.freeze()
}

/// The records of one journal file, and whether it ended in a damaged one (rather than
/// the zeros written ahead of the records, or the file's end).
fn decode_all(mut file: Bytes) -> (Vec<(String, Option<Bytes>)>, bool) {
    let mut records = Vec::new();
    while file.has_remaining() {
        if file.len() >= 4 && file[..4] == [0; 4] {
            // A zero length: the zeros ahead of the records, unless something follows.
            return (records, file.iter().any(|&b| b != 0));
        }
        match decode_one(&mut file) {
            Some(record) => records.push(record),
            None => return (records, true),
        }
    }
    (records, false)
}

fn decode_one(file: &mut Bytes) -> Option<(String, Option<Bytes>)> {
    if file.remaining() < 12 {
        return None;
    }
    let len = file.get_u32() as usize;
    let sum = file.get_u64();
    if len < 5 || file.remaining() < len {
        return None;
    }
    let mut payload = file.split_to(len);
    if xxhash_rust::xxh3::xxh3_64(&payload) != sum {
        return None;
    }
    let kind = payload.get_u8();
    let key_len = payload.get_u32() as usize;
    if payload.remaining() < key_len {
        return None;
    }
    let key = String::from_utf8(payload.split_to(key_len).to_vec()).ok()?;
    match kind {
        CONTENT => Some((key, Some(payload))),
        TOMBSTONE if payload.is_empty() => Some((key, None)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_as_encoded_and_a_torn_tail_ends_the_file() {
        let a = encode("s/manifest", Some(&Bytes::from_static(b"v1")));
        let b = encode("s/other", None);
        let c = encode("s/manifest", Some(&Bytes::from_static(b"")));
        let whole: Bytes = [a.clone(), b.clone(), c.clone()].concat().into();
        let (records, torn) = decode_all(whole.clone());
        assert!(!torn);
        assert_eq!(
            records,
            vec![
                ("s/manifest".into(), Some(Bytes::from_static(b"v1"))),
                ("s/other".into(), None),
                ("s/manifest".into(), Some(Bytes::new())),
            ]
        );
        for cut in a.len() + b.len() + 1..whole.len() {
            let (records, torn) = decode_all(whole.slice(..cut));
            assert!(torn, "cut at {cut}");
            assert_eq!(records.len(), 2, "cut at {cut}");
        }
        let mut zeroed = BytesMut::from(&whole[..]);
        zeroed.put_bytes(0, 4096);
        assert_eq!(decode_all(zeroed.freeze()), (records.clone(), false));
        let mut flipped = BytesMut::from(&whole[..]);
        let at = a.len() + 14;
        flipped[at] ^= 1;
        let (records, torn) = decode_all(flipped.freeze());
        assert!(torn);
        assert_eq!(records.len(), 1);
    }
}
