//! A plate's keys as Redis sees them: each key a stream of the plate's basin, its entries
//! the stream's records that are not commands and not deleted, in id order.
//!
//! What a command reads is one [`Snapshot`] of the key's manifest (tail, trim point, entry
//! bookkeeping) plus records read from the stream; ids grow with seq_nums, so finding an id
//! is a binary search over seq_nums ([`Snapshot::seek`]).

use std::sync::Arc;

use bytes::Bytes;
use s2_common::{
    access::Operation,
    config::OptionalStreamConfig,
    encryption::EncryptionAlgorithm,
    read_extent::ReadLimit,
    stream::{ReadEnd, ReadFrom, ReadStart},
};

use super::{Context, RedisError, RedisResult, Reply, ids::EntryId, seek_hints};
use crate::engine::{
    AutoCreate, Engine, EngineError, EntryState, EntryView, StreamHandle, entries, read_unary,
};

/// A stream record as the Redis surface reads it.
#[derive(Debug, Clone)]
pub struct Rec {
    pub seq: u64,
    /// `None` for a command record, which is never an entry.
    pub id: Option<EntryId>,
    pub fields: Vec<(Bytes, Bytes)>,
}

/// An entry: its id and fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub id: EntryId,
    pub fields: Vec<(Bytes, Bytes)>,
}

impl Entry {
    /// `[id, [field, value, …]]`.
    pub fn reply(&self) -> Reply {
        Reply::Array(vec![
            Reply::text(self.id),
            Reply::Array(
                self.fields
                    .iter()
                    .flat_map(|(f, v)| [Reply::Bulk(f.clone()), Reply::Bulk(v.clone())])
                    .collect(),
            ),
        ])
    }
}

/// An open key.
#[derive(Clone)]
pub struct Key {
    pub handle: Arc<StreamHandle>,
}

impl Context {
    /// The stream a key names, if `op` is granted on it.
    fn stream_name(&self, key: &[u8], op: Operation) -> RedisResult<String> {
        let name = std::str::from_utf8(key)
            .map_err(|_| RedisError::err("key names must be UTF-8 on Sluice"))?;
        name.parse::<s2_common::stream::StreamName>()
            .map_err(|e| RedisError::err(format!("invalid key name: {e}")))?;
        self.caller
            .may_on_stream(op, &self.plate, name)
            .map_err(RedisError::from)
    }

    /// The key, if it exists and `op` is granted on it. An encrypted stream is refused:
    /// no Redis command carries its key.
    pub async fn open(&self, key: &[u8], op: Operation) -> RedisResult<Option<Key>> {
        let name = self.stream_name(key, op)?;
        match self.engine.open(&self.plate, &name, AutoCreate::No).await {
            Ok(handle) => match handle.core.cipher {
                Some(cipher) => Err(encrypted(cipher)),
                None => Ok(Some(Key { handle })),
            },
            Err(EngineError::StreamNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The key, created (with the basin's defaults) if it does not exist, which needs
    /// `create-stream` too.
    pub async fn open_or_create(&self, key: &[u8], op: Operation) -> RedisResult<Key> {
        if let Some(k) = self.open(key, op).await? {
            return Ok(k);
        }
        let name = self.stream_name(key, Operation::CreateStream)?;
        let basin = self.engine.basin_entry(&self.plate).await?;
        if let Some(cipher) = basin.config.stream_cipher {
            // The new stream would be encrypted, and then refused.
            return Err(encrypted(cipher.into()));
        }
        match self
            .engine
            .create_stream(&self.plate, &name, OptionalStreamConfig::default(), None)
            .await
        {
            Ok(_) | Err(EngineError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let handle = self.engine.open(&self.plate, &name, AutoCreate::No).await?;
        match handle.core.cipher {
            Some(cipher) => Err(encrypted(cipher)),
            None => Ok(Key { handle }),
        }
    }
}

/// The refusal of an encrypted stream (or of creating one), whose records only the S2 API
/// can append and read, with the key in `s2-encryption-key`.
fn encrypted(cipher: EncryptionAlgorithm) -> RedisError {
    RedisError::err(format!(
        "the key is an encrypted stream ({cipher}): Redis commands cannot carry its \
         encryption key; use the S2 API with s2-encryption-key"
    ))
}

/// Up to `max` records from `from` on (clamped to what is readable), commands included,
/// of what this node knows of the stream: callers read below the tail of a [`Snapshot`],
/// which revalidated the manifest when it was taken.
pub async fn records(engine: &Engine, key: &Key, from: u64, max: usize) -> RedisResult<Vec<Rec>> {
    let end = ReadEnd {
        limit: ReadLimit::Count(max),
        until: None.into(),
        wait: None,
    };
    let start = ReadStart {
        from: ReadFrom::SeqNum(from),
        clamp: true,
    };
    let batch = match engine.read_known(&key.handle, start, end).await {
        Ok(session) => read_unary(session).await?,
        Err(EngineError::Unwritten(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::with_capacity(batch.count);
    for record in batch.records() {
        let view = record.view();
        let (headers, body) = view
            .parts()
            .map_err(|e| RedisError::Unavailable(format!("corrupt record: {e:?}")))?;
        if entries::is_command(&headers) {
            out.push(Rec {
                seq: record.seq_num,
                id: None,
                fields: Vec::new(),
            });
            continue;
        }
        let (id, fields) = match entries::id_header(&headers) {
            Some(carried) => (
                carried.unwrap_or(EntryId::new(record.timestamp, record.seq_num)),
                &headers[1..],
            ),
            None => (EntryId::new(record.timestamp, record.seq_num), &headers[..]),
        };
        let mut fields: Vec<(Bytes, Bytes)> = fields
            .iter()
            .map(|(n, v)| (Bytes::copy_from_slice(n), Bytes::copy_from_slice(v)))
            .collect();
        if !body.is_empty() {
            fields.push((Bytes::from_static(b"body"), Bytes::copy_from_slice(body)));
        }
        out.push(Rec {
            seq: record.seq_num,
            id: Some(id),
            fields,
        });
    }
    Ok(out)
}

/// Records read per call while scanning.
const SCAN_BATCH: usize = 256;
/// Fewest records a forward read asks for, so that a few holes (deleted entries, command
/// records) do not each cost a read.
const FORWARD_MIN: usize = 16;
/// Most records a backward scan holds at once.
const WINDOW_MAX: usize = 4096;

/// One key as of one manifest: which seq_nums hold entries and what Redis counts of it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub view: EntryView,
    /// Command records' seq_nums in the readable range (found by a scan only when the
    /// stream ever had command records).
    commands: Vec<u64>,
}

impl Snapshot {
    pub async fn take(engine: &Engine, key: &Key) -> RedisResult<Self> {
        let view = engine.entry_view(&key.handle).await?;
        let mut commands = Vec::new();
        if view.state.command_records > 0 {
            let mut at = view.first_readable;
            while at < view.next_seq() {
                let recs = records(engine, key, at, SCAN_BATCH * 4).await?;
                let Some(last) = recs.last() else { break };
                at = last.seq + 1;
                commands.extend(recs.iter().filter(|r| r.id.is_none()).map(|r| r.seq));
            }
        }
        Ok(Self { view, commands })
    }

    pub fn state(&self) -> &EntryState {
        &self.view.state
    }

    pub fn first(&self) -> u64 {
        self.view.first_readable
    }

    pub fn next_seq(&self) -> u64 {
        self.view.next_seq()
    }

    /// Whether `seq` holds no entry (a deleted entry or a command record).
    pub fn is_hole(&self, seq: u64) -> bool {
        self.view.state.is_deleted(seq) || self.commands.binary_search(&seq).is_ok()
    }

    /// Entries in `range` (clamped to the readable range).
    pub fn live_within(&self, range: std::ops::Range<u64>) -> u64 {
        let range = range.start.max(self.first())..range.end.min(self.next_seq());
        if range.is_empty() {
            return 0;
        }
        let commands = self.commands.iter().filter(|s| range.contains(s)).count() as u64;
        (range.end - range.start) - self.view.state.deleted_within(range) - commands
    }

    /// `XLEN`.
    pub fn length(&self) -> u64 {
        self.live_within(self.first()..self.next_seq())
    }

    pub fn last_id(&self) -> EntryId {
        self.view.state.last_id()
    }

    pub fn entries_added(&self) -> u64 {
        self.view.state.entries_added(self.next_seq())
    }

    /// Entries from seq_num `from` on with ids up to `end`, at most `max`.
    pub async fn forward(
        &self,
        engine: &Engine,
        key: &Key,
        from: u64,
        end: EntryId,
        max: usize,
    ) -> RedisResult<Vec<Entry>> {
        let mut out = Vec::new();
        let mut at = from.max(self.first());
        while out.len() < max && at < self.next_seq() {
            let want = (max - out.len()).clamp(FORWARD_MIN, SCAN_BATCH);
            let recs = records(engine, key, at, want).await?;
            let Some(last) = recs.last() else { break };
            at = last.seq + 1;
            for r in recs {
                let Some(id) = r.id else { continue };
                if r.seq >= self.next_seq() || id > end {
                    return Ok(self.learnt(engine, key, out));
                }
                if self.is_hole(r.seq) {
                    continue;
                }
                out.push(Entry {
                    seq: r.seq,
                    id,
                    fields: r.fields,
                });
                if out.len() == max {
                    break;
                }
            }
        }
        Ok(self.learnt(engine, key, out))
    }

    /// `entries`, after noting where the last of them sits for later seeks.
    fn learnt(&self, engine: &Engine, key: &Key, entries: Vec<Entry>) -> Vec<Entry> {
        if let Some(last) = entries.last() {
            seek_hints::learn(engine.instance(), &key.handle.core.id, last.seq, last.id);
        }
        entries
    }

    /// Entries below seq_num `before` with ids down to `start`, newest first, at most `max`.
    pub async fn backward(
        &self,
        engine: &Engine,
        key: &Key,
        before: u64,
        start: EntryId,
        max: usize,
    ) -> RedisResult<Vec<Entry>> {
        let mut out = Vec::new();
        let mut below = before.min(self.next_seq());
        let window = max.saturating_add(8).clamp(SCAN_BATCH, WINDOW_MAX) as u64;
        while out.len() < max && below > self.first() {
            let from = below.saturating_sub(window).max(self.first());
            // One read may stop short of `below` (a batch's limits): read the window whole.
            let mut recs = Vec::new();
            let mut at = from;
            while at < below {
                let batch = records(engine, key, at, (below - at) as usize).await?;
                let Some(last) = batch.last() else { break };
                at = last.seq + 1;
                recs.extend(batch.into_iter().filter(|r| r.seq < below));
            }
            below = from;
            for r in recs.into_iter().rev() {
                let Some(id) = r.id else { continue };
                if id < start {
                    return Ok(out);
                }
                if self.is_hole(r.seq) {
                    continue;
                }
                out.push(Entry {
                    seq: r.seq,
                    id,
                    fields: r.fields,
                });
                if out.len() == max {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The first record at or after `seq` that is not a command: its seq_num and id.
    async fn id_from(
        &self,
        engine: &Engine,
        key: &Key,
        mut seq: u64,
    ) -> RedisResult<Option<(u64, EntryId)>> {
        while seq < self.next_seq() {
            let recs = records(engine, key, seq, 16).await?;
            let Some(last) = recs.last() else { break };
            if let Some(r) = recs
                .iter()
                .find(|r| r.id.is_some() && r.seq < self.next_seq())
            {
                return Ok(Some((r.seq, r.id.expect("found"))));
            }
            seq = last.seq + 1;
        }
        Ok(None)
    }

    /// The first seq_num whose record (deleted or not) has an id at or above `id`; the
    /// tail if there is none.
    pub async fn seek(&self, engine: &Engine, key: &Key, id: EntryId) -> RedisResult<u64> {
        if id > self.last_id() {
            return Ok(self.next_seq());
        }
        let stream = &key.handle.core.id;
        let (mut lo, mut hi) =
            seek_hints::bounds(engine.instance(), stream, id, self.first(), self.next_seq());
        // Readers mostly ask for what follows a hint: try the low end before halving.
        if lo < hi {
            match self.id_from(engine, key, lo).await? {
                None => return Ok(lo),
                Some((_, found)) if found >= id => return Ok(lo),
                Some((seq, _)) => lo = seq + 1,
            }
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.id_from(engine, key, mid).await? {
                None => hi = mid,
                Some((_, found)) if found >= id => hi = mid,
                Some((seq, _)) => lo = seq + 1,
            }
        }
        Ok(lo)
    }

    /// The first entry, if any.
    pub async fn first_entry(&self, engine: &Engine, key: &Key) -> RedisResult<Option<Entry>> {
        Ok(self
            .forward(engine, key, self.first(), EntryId::MAX, 1)
            .await?
            .pop())
    }

    /// The last entry, if any.
    pub async fn last_entry(&self, engine: &Engine, key: &Key) -> RedisResult<Option<Entry>> {
        Ok(self
            .backward(engine, key, self.next_seq(), EntryId::ZERO, 1)
            .await?
            .pop())
    }

    /// The live entry with exactly this id, if any.
    pub async fn find(
        &self,
        engine: &Engine,
        key: &Key,
        id: EntryId,
    ) -> RedisResult<Option<Entry>> {
        let seq = self.seek(engine, key, id).await?;
        Ok(self
            .forward(engine, key, seq, id, 1)
            .await?
            .pop()
            .filter(|e| e.id == id))
    }
}
