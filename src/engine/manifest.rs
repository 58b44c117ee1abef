//! The manifest: a stream's one serialization point.
//!
//! Every change to a stream's state (an append, a fence, a trim, a reconfiguration, the
//! start of its deletion) is a new manifest written with `If-Match` on the previous one's
//! ETag, so concurrent writers from any node are ordered by the object store. The manifest
//! holds the tail, fencing token, trim point, resolved config, and the index of the chunks
//! that hold the records; older index entries are folded into immutable index segments.
//!
//! Invariants, checked by [`Manifest::check_invariants`] after every transition in tests,
//! before every write in debug builds, and on every decode (a stored manifest that breaks
//! one is corrupt):
//! - `version` increases by one with every write, so no two writes have equal bytes;
//! - the index (segments, then chunks) covers one gap-free run of seq_nums that ends at
//!   `next_seq`, or is empty (everything trimmed or nothing written);
//! - timestamps never decrease along the index, and the newest entry's last timestamp is
//!   `last_timestamp`;
//! - `trim_point <= next_seq`;
//! - the fencing token is at most [`MAX_FENCING_TOKEN_BYTES`] bytes, as every fence
//!   command's is (the S2 surface shows it, as S2's type, to an append that mismatches);
//! - the inline chunks are the newest references, at most [`MAX_INLINE_CHUNKS`] of them and
//!   [`MAX_INLINE_TOTAL_BYTES`] together, and `inline_chunks` holds exactly their bytes, in
//!   order;
//! - every chunk and segment referenced exists and is never rewritten (keys are unique per
//!   commit or pack), except that inline chunks may have no object yet: a manifest that
//!   stops carrying a chunk's bytes is written only after the pack holding them is.
//!
//! Encoding, format 1: magic `SLMF`, format byte, protobuf `Manifest`, xxh3-64 of the
//! preceding bytes (big-endian). Format 2 is reserved for the manifest as a checkpoint of
//! the commit log ([`super::commit_log`], `docs/design/commit-log.md`), which this release
//! refuses ("unknown format 2") rather than read without the links above it.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

pub use super::entries::EntryState;

use super::layout;
use super::record::MAX_FENCING_TOKEN_BYTES;

const MAGIC: &[u8; 4] = b"SLMF";
const SEGMENT_MAGIC: &[u8; 4] = b"SLIX";
const FORMAT: u8 = 1;

/// Chunk references kept in the manifest before the oldest are folded into a segment.
/// Every commit rewrites them all (about 60 bytes each), so fewer keep small commits
/// cheap in bytes; every fold costs one more write.
pub const MAX_MANIFEST_CHUNKS: usize = 96;
/// How many of the oldest chunk references one fold moves into a segment.
pub const FOLD_CHUNKS: usize = 64;
/// Most chunks the manifest carries inline; at most [`MAX_MANIFEST_CHUNKS`] + 1 −
/// [`FOLD_CHUNKS`], so a fold never reaches an inline chunk.
pub const MAX_INLINE_CHUNKS: usize = 32;
const _: () = assert!(MAX_INLINE_CHUNKS < MAX_MANIFEST_CHUNKS + 1 - FOLD_CHUNKS);
/// Most bytes of inline chunks the manifest carries.
pub const MAX_INLINE_TOTAL_BYTES: usize = 1024 * 1024;

#[derive(Clone, PartialEq, Message)]
pub struct Manifest {
    #[prost(uint64, tag = "1")]
    pub version: u64,
    #[prost(string, tag = "2")]
    pub stream_id: String,
    /// Seq_num the next record will get.
    #[prost(uint64, tag = "3")]
    pub next_seq: u64,
    /// Timestamp of the last record ever appended (0 if none).
    #[prost(uint64, tag = "4")]
    pub last_timestamp: u64,
    #[prost(string, tag = "5")]
    pub fencing_token: String,
    /// Records below this seq_num are unreadable.
    #[prost(uint64, tag = "6")]
    pub trim_point: u64,
    /// Set once deletion has started; no write may follow except by the deleter.
    #[prost(uint64, optional, tag = "7")]
    pub deleted_at_ms: Option<u64>,
    /// The stream's resolved configuration, as S2 `StreamConfig` JSON.
    #[prost(string, tag = "8")]
    pub config_json: String,
    #[prost(uint64, tag = "9")]
    pub created_at_ms: u64,
    /// Wall-clock time of the last append (for `delete_on_empty`).
    #[prost(uint64, tag = "10")]
    pub last_append_ms: u64,
    #[prost(message, repeated, tag = "11")]
    pub segments: Vec<SegmentRef>,
    #[prost(message, repeated, tag = "12")]
    pub chunks: Vec<ChunkRef>,
    /// The bytes of the inline chunks (the newest references with [`ChunkRef::inline`]),
    /// oldest first. A small commit is then one write, this manifest; several of them are
    /// later written out together as one pack object (see [`PackLoc`]).
    #[prost(bytes = "bytes", repeated, tag = "13")]
    pub inline_chunks: Vec<Bytes>,
    /// Entry ids and Redis's view of the stream (deletions, nodes); absent in manifests
    /// written before entry ids existed ([`Manifest::entry_state`] then infers the last id).
    #[prost(message, optional, tag = "14")]
    pub entries: Option<EntryState>,
}

/// Pushes `item` onto one of a manifest's lists, growing it by an eighth at a time: each
/// commit pushes once onto a clone of the last manifest, which has no spare room, and the
/// usual doubling would leave every open stream's state with room for up to twice (for
/// one reference, four times) the references it holds.
fn push_snug<T>(list: &mut Vec<T>, item: T) {
    if list.len() == list.capacity() {
        list.reserve_exact(1 + list.len() / 8);
    }
    list.push(item);
}

/// Where one commit's records are.
#[derive(Clone, PartialEq, Message)]
pub struct ChunkRef {
    #[prost(uint64, tag = "1")]
    pub first_seq: u64,
    #[prost(uint32, tag = "2")]
    pub count: u32,
    #[prost(uint64, tag = "3")]
    pub first_timestamp: u64,
    #[prost(uint64, tag = "4")]
    pub last_timestamp: u64,
    #[prost(uint64, tag = "5")]
    pub metered_bytes: u64,
    /// Size of the chunk object.
    #[prost(uint64, tag = "6")]
    pub size: u64,
    /// The commit that wrote it; part of the key, and how a writer whose response was lost
    /// recognises its own commit.
    #[prost(fixed64, tag = "7")]
    pub commit: u64,
    /// Wall-clock time of the commit, for age-based retention (record timestamps may be
    /// anything a client chose).
    #[prost(uint64, tag = "8")]
    pub committed_at_ms: u64,
    /// The chunk's bytes are in the manifest's `inline_chunks`, and maybe not (yet) in
    /// any object.
    #[prost(bool, tag = "9")]
    pub inline: bool,
    /// Set when the chunk was written out of the manifest as part of a pack; otherwise
    /// (and while inline) its object, if any, is its own, under [`Self::key`].
    #[prost(message, optional, tag = "10")]
    pub pack: Option<PackLoc>,
}

/// Where a chunk is inside a pack: one object holding several consecutive chunks that
/// travelled inline, back to back, each exactly as it would be stored alone.
///
/// A pack's key is a chunk key named after its newest member's first seq_num and a
/// random pack id, so it is unique per pack (two nodes packing overlapping runs never
/// collide), and garbage collection, which deletes chunk objects whose key seq_num is below
/// the index start, deletes it only once every member is unreachable.
#[derive(Clone, PartialEq, Message)]
pub struct PackLoc {
    /// First seq_num of the pack's newest member.
    #[prost(uint64, tag = "1")]
    pub key_seq: u64,
    #[prost(fixed64, tag = "2")]
    pub id: u64,
    /// Where this chunk's bytes start in the pack.
    #[prost(uint64, tag = "3")]
    pub offset: u64,
}

impl ChunkRef {
    /// One past the chunk's last seq_num. Saturating: a stored reference whose range runs
    /// past `u64::MAX` is corrupt ([`Manifest::check_invariants`] says so), and reading it
    /// must fail on its bytes, not panic here.
    pub fn end_seq(&self) -> u64 {
        self.first_seq.saturating_add(u64::from(self.count))
    }

    /// The chunk's identity (also its cache key), and the key of its object unless packed.
    pub fn key(&self, stream_id: &str) -> String {
        layout::chunk_key(stream_id, self.first_seq, self.commit)
    }

    /// The object holding the chunk, and the byte range in it (`None`: the whole object).
    pub fn location(&self, stream_id: &str) -> (String, Option<std::ops::Range<u64>>) {
        match &self.pack {
            // Saturating: a corrupt offset gives a range past the pack's end, which the
            // cache refuses as corrupt, rather than a panic here.
            Some(p) => (
                layout::chunk_key(stream_id, p.key_seq, p.id),
                Some(p.offset..p.offset.saturating_add(self.size)),
            ),
            None => (self.key(stream_id), None),
        }
    }

    /// Whether both refer to the same commit's chunk (wherever its bytes are).
    pub fn same_chunk(&self, other: &ChunkRef) -> bool {
        (self.first_seq, self.commit) == (other.first_seq, other.commit)
    }
}

/// Consecutive inline chunks laid out as one object, and their references pointing into it.
#[derive(Debug, Clone)]
pub struct Pack {
    pub key: String,
    pub bytes: Bytes,
    /// The members' references as they are once packed (not inline, `pack` set).
    pub members: Vec<ChunkRef>,
}

impl Pack {
    pub fn holds(&self, r: &ChunkRef) -> bool {
        self.members.iter().any(|m| m.same_chunk(r))
    }
}

/// Where a run of folded chunk references is.
#[derive(Clone, PartialEq, Message)]
pub struct SegmentRef {
    #[prost(uint64, tag = "1")]
    pub first_seq: u64,
    #[prost(uint64, tag = "2")]
    pub end_seq: u64,
    #[prost(uint64, tag = "3")]
    pub first_timestamp: u64,
    #[prost(uint64, tag = "4")]
    pub last_timestamp: u64,
    #[prost(fixed64, tag = "5")]
    pub commit: u64,
    #[prost(uint64, tag = "6")]
    pub newest_committed_at_ms: u64,
    #[prost(uint64, tag = "7")]
    pub metered_bytes: u64,
}

impl SegmentRef {
    pub fn key(&self, stream_id: &str) -> String {
        layout::segment_key(stream_id, self.first_seq, self.commit)
    }
}

/// An index segment object: chunk references in seq_num order.
#[derive(Clone, PartialEq, Message)]
pub struct IndexSegment {
    #[prost(message, repeated, tag = "1")]
    pub chunks: Vec<ChunkRef>,
}

#[derive(Debug, thiserror::Error)]
#[error("corrupt manifest: {0}")]
pub struct CorruptManifest(pub String);

/// `magic`, `format`, the message, and xxh3-64 of the preceding bytes (big-endian).
pub(super) fn encode_framed(magic: &[u8; 4], format: u8, msg: &impl Message) -> Bytes {
    let mut buf = BytesMut::with_capacity(5 + msg.encoded_len() + 8);
    buf.put_slice(magic);
    buf.put_u8(format);
    msg.encode(&mut buf).expect("BytesMut grows");
    let checksum = xxhash_rust::xxh3::xxh3_64(&buf);
    buf.put_u64(checksum);
    buf.freeze()
}

/// The message framed by [`encode_framed`] and its format, one of `formats`.
pub(super) fn decode_framed<M: Message + Default>(
    magic: &[u8; 4],
    formats: &[u8],
    bytes: &[u8],
) -> Result<(M, u8), CorruptManifest> {
    if bytes.len() < 13 || &bytes[..4] != magic {
        return Err(CorruptManifest("bad magic or too short".into()));
    }
    let format = bytes[4];
    if !formats.contains(&format) {
        return Err(CorruptManifest(format!("unknown format {format}")));
    }
    let body_end = bytes.len() - 8;
    let checksum = u64::from_be_bytes(bytes[body_end..].try_into().expect("8 bytes"));
    if xxhash_rust::xxh3::xxh3_64(&bytes[..body_end]) != checksum {
        return Err(CorruptManifest("checksum mismatch".into()));
    }
    M::decode(&bytes[5..body_end])
        .map(|m| (m, format))
        .map_err(|e| CorruptManifest(e.to_string()))
}

impl IndexSegment {
    pub fn encode_object(&self) -> Bytes {
        encode_framed(SEGMENT_MAGIC, FORMAT, self)
    }

    pub fn decode_object(bytes: &[u8]) -> Result<Self, CorruptManifest> {
        decode_framed(SEGMENT_MAGIC, &[FORMAT], bytes).map(|(s, _)| s)
    }
}

/// Where to find the first record at or after a position.
#[derive(Debug, Clone, PartialEq)]
pub enum Located<'a> {
    Chunk(&'a ChunkRef),
    Segment(&'a SegmentRef),
    /// Nothing at or after the position below the tail.
    Tail,
}

/// An encoded manifest that passed [`Manifest::encode_for_store`].
pub struct StoredManifest(pub Bytes);

impl Manifest {
    pub fn new(stream_id: String, config_json: String, now_ms: u64) -> Self {
        Self {
            version: 1,
            stream_id,
            config_json,
            created_at_ms: now_ms,
            ..Default::default()
        }
    }

    pub fn encode_object(&self) -> Bytes {
        encode_framed(MAGIC, FORMAT, self)
    }

    /// The bytes of a manifest write. Every write of a manifest takes them from here, so
    /// in debug builds none is written that breaks [`Self::check_invariants`].
    pub fn encode_for_store(&self) -> StoredManifest {
        debug_assert_eq!(
            self.check_invariants(),
            Ok(()),
            "manifest of {}",
            self.stream_id
        );
        StoredManifest(self.encode_object())
    }

    /// Decodes a stored manifest, refusing one that breaks an invariant. Every write checks
    /// them ([`Self::encode_for_store`]), so such a manifest is corrupt however its checksum
    /// came to match; and the transitions that follow a read (packing, dropping unreadable
    /// entries, folding) rely on them: on an inline reference without its bytes, say, they
    /// would panic where this returns a clear error.
    pub fn decode_object(bytes: &[u8]) -> Result<Self, CorruptManifest> {
        let (manifest, _): (Self, u8) = decode_framed(MAGIC, &[FORMAT], bytes)?;
        manifest.check_invariants().map_err(CorruptManifest)?;
        Ok(manifest)
    }

    /// The entry state this manifest records, or for one written before entry ids existed,
    /// one whose last id is at or above every earlier record's `<timestamp>-<seq_num>`.
    pub fn entry_state(&self) -> EntryState {
        self.entries.clone().unwrap_or_else(|| {
            let mut state = EntryState::default();
            if self.next_seq > 0 {
                state.last_ms = self.last_timestamp;
                state.last_seq = self.next_seq - 1;
            }
            state
        })
    }

    /// The successor state every write starts from. The version wraps rather than
    /// overflows: no stream makes 2^64 writes, but a corrupt stored version must not make
    /// the next write panic, and a wrapped one still differs from the last.
    pub fn next_version(&self) -> Self {
        let mut next = self.clone();
        next.version = next.version.wrapping_add(1);
        next
    }

    /// Metered bytes of the records the index holds (folded segments included): what
    /// the stream stores, as usage reports it. Records trimmed but still in an indexed
    /// chunk count until upkeep drops the chunk.
    pub fn stored_bytes(&self) -> u64 {
        let segments: u64 = self.segments.iter().map(|s| s.metered_bytes).sum();
        let chunks: u64 = self.chunks.iter().map(|c| c.metered_bytes).sum();
        segments + chunks
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at_ms.is_some()
    }

    /// First seq_num still covered by the index (`next_seq` if none is).
    pub fn index_start(&self) -> u64 {
        self.segments
            .first()
            .map(|s| s.first_seq)
            .or_else(|| self.chunks.first().map(|c| c.first_seq))
            .unwrap_or(self.next_seq)
    }

    /// First readable seq_num.
    pub fn first_readable(&self) -> u64 {
        self.trim_point.max(self.index_start()).min(self.next_seq)
    }

    /// Adds the chunk of a commit at the tail.
    pub fn push_chunk(&mut self, chunk: ChunkRef) {
        debug_assert_eq!(chunk.first_seq, self.next_seq);
        self.next_seq = chunk.end_seq();
        self.last_timestamp = chunk.last_timestamp;
        self.last_append_ms = self.last_append_ms.max(chunk.committed_at_ms);
        push_snug(&mut self.chunks, chunk);
    }

    /// Adds a commit's chunk at the tail, its bytes carried in the manifest. The caller
    /// keeps within [`MAX_INLINE_CHUNKS`] and [`MAX_INLINE_TOTAL_BYTES`].
    pub fn push_inline_chunk(&mut self, chunk: ChunkRef, bytes: Bytes) {
        debug_assert!(chunk.inline && chunk.size == bytes.len() as u64);
        self.push_chunk(chunk);
        push_snug(&mut self.inline_chunks, bytes);
    }

    /// The chunks whose bytes are in this manifest: the newest references, oldest first.
    pub fn inline_refs(&self) -> &[ChunkRef] {
        let n = self.chunks.iter().rev().take_while(|c| c.inline).count();
        &self.chunks[self.chunks.len() - n..]
    }

    /// Total size of the inline chunks.
    pub fn inline_bytes(&self) -> usize {
        self.inline_chunks.iter().map(Bytes::len).sum()
    }

    /// The inline chunks from the `skip`-th on, laid out as a pack named by `id`. Nothing
    /// changes here: the manifest drops them ([`Self::evict_inline`]) once the pack is
    /// stored.
    pub fn pack_inline(&self, skip: usize, id: u64) -> Option<Pack> {
        let refs = self.inline_refs().get(skip..).filter(|r| !r.is_empty())?;
        let chunks = &self.inline_chunks[skip..];
        let key_seq = refs.last().expect("non-empty").first_seq;
        let mut bytes = bytes::BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
        let mut members = Vec::with_capacity(refs.len());
        for (r, chunk) in refs.iter().zip(chunks) {
            members.push(ChunkRef {
                inline: false,
                pack: Some(PackLoc {
                    key_seq,
                    id,
                    offset: bytes.len() as u64,
                }),
                ..r.clone()
            });
            bytes.extend_from_slice(chunk);
        }
        Some(Pack {
            key: layout::chunk_key(&self.stream_id, key_seq, id),
            bytes: bytes.freeze(),
            members,
        })
    }

    /// Drops from the manifest the bytes of the inline chunks that `pack` holds (the caller
    /// has stored it, or stores it before this manifest), pointing their references into
    /// it. Members no longer indexed are skipped. Returns how many chunks left.
    pub fn evict_inline(&mut self, pack: &Pack) -> usize {
        let start = self.chunks.len() - self.inline_refs().len();
        let mut evicted = 0;
        for member in &pack.members {
            match self.chunks.get(start + evicted) {
                Some(r) if r.inline && r.same_chunk(member) => {
                    self.chunks[start + evicted] = member.clone();
                    evicted += 1;
                }
                _ if evicted == 0 => continue,
                _ => break,
            }
        }
        self.inline_chunks.drain(..evicted);
        evicted
    }

    /// If the manifest holds too many chunk references, moves the oldest into a segment
    /// written under `commit`'s key, and returns that segment for the caller to store
    /// before the manifest.
    pub fn fold_if_needed(&mut self, commit: u64) -> Option<(SegmentRef, IndexSegment)> {
        if self.chunks.len() <= MAX_MANIFEST_CHUNKS {
            return None;
        }
        let folded: Vec<ChunkRef> = self.chunks.drain(..FOLD_CHUNKS).collect();
        debug_assert!(
            folded.iter().all(|c| !c.inline),
            "inline chunks are never folded"
        );
        let first = folded.first().expect("non-empty");
        let last = folded.last().expect("non-empty");
        let seg = SegmentRef {
            first_seq: first.first_seq,
            end_seq: last.end_seq(),
            first_timestamp: first.first_timestamp,
            last_timestamp: last.last_timestamp,
            commit,
            newest_committed_at_ms: folded.iter().map(|c| c.committed_at_ms).max().unwrap_or(0),
            metered_bytes: folded.iter().map(|c| c.metered_bytes).sum(),
        };
        self.segments.push(seg.clone());
        Some((seg, IndexSegment { chunks: folded }))
    }

    /// Drops index entries that no read can reach any more: those wholly below the trim
    /// point, and, with `expire_before_ms`, those committed before it (age-based
    /// retention). The objects they name become garbage (see [`Self::index_start`]).
    /// Returns whether anything was dropped.
    pub fn drop_unreadable(&mut self, expire_before_ms: Option<u64>) -> bool {
        let expired = |committed_at_ms: u64| expire_before_ms.is_some_and(|t| committed_at_ms < t);
        let before = (self.segments.len(), self.chunks.len());
        let trim_point = self.trim_point;
        let keep = self
            .segments
            .iter()
            .position(|s| s.end_seq > trim_point && !expired(s.newest_committed_at_ms))
            .unwrap_or(self.segments.len());
        self.segments.drain(..keep);
        if self.segments.is_empty() {
            let keep = self
                .chunks
                .iter()
                .position(|c| c.end_seq() > trim_point && !expired(c.committed_at_ms))
                .unwrap_or(self.chunks.len());
            self.chunks.drain(..keep);
        }
        let dropped_inline = self.inline_chunks.len() - self.inline_refs().len();
        self.inline_chunks.drain(..dropped_inline);
        before != (self.segments.len(), self.chunks.len())
    }

    /// The chunk or segment holding the first record with seq_num ≥ `seq`.
    pub fn locate_seq(&self, seq: u64) -> Located<'_> {
        if seq >= self.next_seq {
            return Located::Tail;
        }
        let i = self.segments.partition_point(|s| s.end_seq <= seq);
        if let Some(seg) = self.segments.get(i) {
            return Located::Segment(seg);
        }
        let i = self.chunks.partition_point(|c| c.end_seq() <= seq);
        self.chunks.get(i).map_or(Located::Tail, Located::Chunk)
    }

    /// The chunk or segment holding the first record with timestamp ≥ `ts`.
    pub fn locate_timestamp(&self, ts: u64) -> Located<'_> {
        let i = self.segments.partition_point(|s| s.last_timestamp < ts);
        if let Some(seg) = self.segments.get(i) {
            return Located::Segment(seg);
        }
        let i = self.chunks.partition_point(|c| c.last_timestamp < ts);
        self.chunks.get(i).map_or(Located::Tail, Located::Chunk)
    }

    /// Whether a commit's chunk is in the in-manifest index; how a writer whose response
    /// was lost learns that its commit landed.
    pub fn contains_commit(&self, first_seq: u64, commit: u64) -> bool {
        let i = self.chunks.partition_point(|c| c.first_seq < first_seq);
        self.chunks
            .get(i)
            .is_some_and(|c| c.first_seq == first_seq && c.commit == commit)
    }

    /// Checks the invariants listed in the module documentation.
    pub fn check_invariants(&self) -> Result<(), String> {
        let inline = self.inline_refs();
        if self.chunks.iter().filter(|c| c.inline).count() != inline.len() {
            return Err("an inline chunk is older than a chunk that is not".into());
        }
        if inline.len() > MAX_INLINE_CHUNKS || self.inline_bytes() > MAX_INLINE_TOTAL_BYTES {
            return Err(format!(
                "{} inline chunks of {} bytes",
                inline.len(),
                self.inline_bytes()
            ));
        }
        if self.inline_chunks.len() != inline.len()
            || inline
                .iter()
                .zip(&self.inline_chunks)
                .any(|(r, b)| r.size != b.len() as u64 || r.pack.is_some())
        {
            return Err("inline bytes do not match the inline chunks".into());
        }
        if self.fencing_token.len() > MAX_FENCING_TOKEN_BYTES {
            return Err(format!(
                "fencing token of {} bytes, over {MAX_FENCING_TOKEN_BYTES}",
                self.fencing_token.len()
            ));
        }
        if self.trim_point > self.next_seq {
            return Err(format!(
                "trim point {} beyond tail {}",
                self.trim_point, self.next_seq
            ));
        }
        let mut expected: Option<u64> = None;
        let mut last_ts = 0u64;
        let mut check = |first: u64, end: u64, first_ts: u64, last_ts_entry: u64| {
            if let Some(e) = expected
                && e != first
            {
                return Err(format!("gap or overlap: {first} where {e} was expected"));
            }
            if end <= first {
                return Err(format!("empty or inverted range {first}..{end}"));
            }
            if first_ts < last_ts || last_ts_entry < first_ts {
                return Err(format!("timestamps go backwards at seq {first}"));
            }
            expected = Some(end);
            last_ts = last_ts_entry;
            Ok(())
        };
        for s in &self.segments {
            check(s.first_seq, s.end_seq, s.first_timestamp, s.last_timestamp)?;
        }
        for c in &self.chunks {
            if c.first_seq.checked_add(u64::from(c.count)).is_none() {
                return Err(format!(
                    "chunk at {} runs past the last seq_num",
                    c.first_seq
                ));
            }
            check(
                c.first_seq,
                c.end_seq(),
                c.first_timestamp,
                c.last_timestamp,
            )?;
        }
        if let Some(end) = expected {
            if end != self.next_seq {
                return Err(format!("index ends at {end}, tail is {}", self.next_seq));
            }
            if last_ts != self.last_timestamp {
                return Err(format!(
                    "newest timestamp {last_ts}, manifest says {}",
                    self.last_timestamp
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod fuzz;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn chunk(first_seq: u64, count: u32, ts: u64, commit: u64) -> ChunkRef {
        ChunkRef {
            first_seq,
            count,
            first_timestamp: ts,
            last_timestamp: ts + 1,
            metered_bytes: 10 * u64::from(count),
            size: 100,
            commit,
            committed_at_ms: ts,
            inline: false,
            pack: None,
        }
    }

    /// Each commit pushes onto a clone of the manifest before it; the lists it grows keep
    /// room for at most an eighth more (and one) than they hold.
    #[test]
    fn commits_leave_the_manifest_lists_snug() {
        let mut m = Manifest::new("id".into(), "{}".into(), 0);
        for n in 1..=200usize {
            let mut next = m.next_version();
            let (r, b) = inline(next.next_seq, 1, n as u64, n as u64, b"x");
            next.push_inline_chunk(r, b);
            let room = n + n / 8 + 1;
            assert!(
                next.chunks.capacity() <= room,
                "{n} refs, room for {}",
                next.chunks.capacity()
            );
            assert!(next.inline_chunks.capacity() <= room);
            m = next;
        }
    }

    #[test]
    fn encodes_and_detects_corruption() {
        let mut m = Manifest::new("id".into(), "{}".into(), 5);
        m.push_chunk(chunk(0, 3, 10, 1));
        let bytes = m.encode_object();
        assert_eq!(Manifest::decode_object(&bytes).unwrap(), m);
        let mut bad = bytes.to_vec();
        bad[8] ^= 0xff;
        assert!(Manifest::decode_object(&bad).is_err());
    }

    /// Found by `fuzz_manifest_fields_at_edges`: a stored chunk reference whose pack range
    /// ran past `u64::MAX` overflowed in `location`; one whose seq_num range did, in
    /// `end_seq`, the same sum (used by every read and by the invariant check itself).
    #[test]
    fn ranges_past_u64_max_are_corrupt_not_a_panic() {
        let mut m = Manifest::new("id".into(), "{}".into(), 0);
        m.push_chunk(chunk(0, 3, 10, 1));
        m.chunks[0].first_seq = u64::MAX - 1;
        assert_eq!(m.chunks[0].end_seq(), u64::MAX);
        assert_eq!(
            m.check_invariants(),
            Err(format!(
                "chunk at {} runs past the last seq_num",
                u64::MAX - 1
            ))
        );
        let _ = m.locate_seq(u64::MAX - 1);
        m.chunks[0].pack = Some(PackLoc {
            key_seq: 0,
            id: 1,
            offset: u64::MAX - 1,
        });
        assert_eq!(
            m.chunks[0].location("id").1,
            Some(u64::MAX - 1..u64::MAX),
            "a range past any pack's end, which the cache refuses"
        );
    }

    /// Found by `fuzz_manifest_fields_at_edges`: a manifest with an inline reference but no
    /// inline bytes decoded, and `drop_unreadable` (retention, on any manifest read) then
    /// underflowed `inline_chunks.len() - inline_refs().len()`, a panic in release builds
    /// too. Decoding now refuses what breaks an invariant.
    #[test]
    fn decoding_refuses_broken_invariants() {
        let mut m = Manifest::new("id".into(), "{}".into(), 0);
        let (r, b) = inline(0, 2, 10, 1, b"chunk");
        m.push_inline_chunk(r, b);
        m.inline_chunks.clear();
        let err = Manifest::decode_object(&m.encode_object()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt manifest: inline bytes do not match the inline chunks"
        );
    }

    /// Found by `fuzz_manifest_round_trips`: a stored fencing token over 36 bytes decoded,
    /// and the S2 surface's answer to an append whose token then mismatched panicked
    /// (`ApiError::to_error_response` shows the stored token as S2's `FencingToken`).
    #[test]
    fn decoding_refuses_a_fencing_token_no_fence_could_set() {
        let mut m = Manifest::new("id".into(), "{}".into(), 0);
        m.fencing_token = "x".repeat(MAX_FENCING_TOKEN_BYTES);
        assert!(Manifest::decode_object(&m.encode_object()).is_ok());
        m.fencing_token.push('x');
        let err = Manifest::decode_object(&m.encode_object()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt manifest: fencing token of 37 bytes, over 36"
        );
    }

    /// Found by `fuzz_manifest_fields_at_edges`: the next write after a stored version of
    /// `u64::MAX` overflowed.
    #[test]
    fn the_version_wraps() {
        let m = Manifest {
            version: u64::MAX,
            ..Manifest::new("id".into(), "{}".into(), 0)
        };
        assert_eq!(m.next_version().version, 0);
    }

    #[test]
    fn drops_trimmed_and_expired_entries_only_from_the_front() {
        let mut m = Manifest::new("id".into(), "{}".into(), 0);
        m.push_chunk(chunk(0, 3, 10, 1));
        m.push_chunk(chunk(3, 2, 20, 2));
        m.push_chunk(chunk(5, 2, 30, 3));
        assert!(!m.drop_unreadable(None));
        m.trim_point = 4;
        assert!(m.drop_unreadable(None), "0..3 is wholly trimmed");
        assert_eq!(m.index_start(), 3);
        assert!(
            !m.drop_unreadable(Some(20)),
            "committed at 20 is not before 20"
        );
        assert!(m.drop_unreadable(Some(31)));
        assert!(m.chunks.is_empty());
        assert_eq!(m.first_readable(), m.next_seq);
        m.check_invariants().unwrap();
    }

    fn inline(
        first_seq: u64,
        count: u32,
        ts: u64,
        commit: u64,
        bytes: &'static [u8],
    ) -> (ChunkRef, Bytes) {
        let r = ChunkRef {
            inline: true,
            size: bytes.len() as u64,
            ..chunk(first_seq, count, ts, commit)
        };
        (r, Bytes::from_static(bytes))
    }

    #[test]
    fn the_newest_chunks_travel_inline_until_packed() {
        let mut m = Manifest::new("id".into(), "{}".into(), 0);
        m.push_chunk(chunk(0, 3, 10, 1));
        let (r, b) = inline(3, 2, 20, 2, b"chunk 2");
        m.push_inline_chunk(r, b);
        let (r, b) = inline(5, 1, 30, 3, b"chunk three");
        m.push_inline_chunk(r, b);
        m.check_invariants().unwrap();
        let decoded = Manifest::decode_object(&m.encode_object()).unwrap();
        assert_eq!(decoded, m);
        let commits: Vec<u64> = decoded.inline_refs().iter().map(|c| c.commit).collect();
        assert_eq!(commits, [2, 3]);
        assert_eq!(decoded.inline_bytes(), 18);

        let pack = m.pack_inline(0, 0xab).unwrap();
        assert_eq!(&pack.bytes[..], b"chunk 2chunk three");
        assert_eq!(
            pack.key,
            layout::chunk_key("id", 5, 0xab),
            "named by the newest member"
        );
        let ranges: Vec<_> = pack.members.iter().map(|r| r.location("id")).collect();
        assert_eq!(ranges[0], (pack.key.clone(), Some(0..7)));
        assert_eq!(ranges[1], (pack.key.clone(), Some(7..18)));
        assert!(m.pack_inline(2, 1).is_none());

        // A commit lands meanwhile; the pack then takes the older two out.
        let mut next = m.next_version();
        let (r, b) = inline(6, 1, 40, 4, b"four");
        next.push_inline_chunk(r, b);
        assert_eq!(next.evict_inline(&pack), 2);
        assert_eq!(next.inline_refs().len(), 1);
        assert_eq!(&next.inline_chunks[..], [Bytes::from_static(b"four")]);
        assert_eq!(next.chunks[1], pack.members[0]);
        next.check_invariants().unwrap();
        assert_eq!(next.evict_inline(&pack), 0, "already out");

        // Trimmed members are skipped.
        let mut trimmed = m.next_version();
        trimmed.trim_point = 5;
        assert!(trimmed.drop_unreadable(None));
        assert_eq!(
            trimmed.inline_chunks.len(),
            1,
            "trimmed inline bytes go too"
        );
        trimmed.check_invariants().unwrap();
        assert_eq!(trimmed.evict_inline(&pack), 1);
        assert!(trimmed.inline_chunks.is_empty());
        trimmed.check_invariants().unwrap();

        let mut stale = m.clone();
        stale.push_chunk(chunk(6, 1, 40, 4));
        assert!(
            stale.check_invariants().is_err(),
            "an older chunk is inline"
        );
        let mut orphan = m.clone();
        orphan.chunks[2].inline = false;
        assert!(
            orphan.check_invariants().is_err(),
            "bytes without a reference"
        );
        let mut too_many = Manifest::new("id".into(), "{}".into(), 0);
        for i in 0..=MAX_INLINE_CHUNKS as u64 {
            let (r, b) = inline(i, 1, i, i, b"x");
            too_many.push_inline_chunk(r, b);
        }
        assert!(too_many.check_invariants().is_err());
    }

    #[test]
    fn locates_positions() {
        let mut m = Manifest::new("id".into(), "{}".into(), 0);
        m.push_chunk(chunk(0, 3, 10, 1));
        m.push_chunk(chunk(3, 2, 20, 2));
        assert_eq!(m.locate_seq(0), Located::Chunk(&m.chunks[0]));
        assert_eq!(m.locate_seq(4), Located::Chunk(&m.chunks[1]));
        assert_eq!(m.locate_seq(5), Located::Tail);
        assert_eq!(m.locate_timestamp(11), Located::Chunk(&m.chunks[0]));
        assert_eq!(m.locate_timestamp(12), Located::Chunk(&m.chunks[1]));
        assert_eq!(m.locate_timestamp(22), Located::Tail);
        assert!(m.contains_commit(3, 2));
        assert!(!m.contains_commit(3, 9));
    }

    proptest! {
        /// Any sequence of commits, inline or not, with packing and folding, keeps every
        /// invariant and every record locatable.
        #[test]
        fn invariants_hold_through_commits_packs_and_folds(
            commits in prop::collection::vec((1u32..50, 0u8..4), 1..700),
        ) {
            let mut m = Manifest::new("id".into(), "{}".into(), 0);
            let mut ts = 0;
            let mut pending_pack: Option<Pack> = None;
            for (i, (count, kind)) in commits.iter().enumerate() {
                let mut next = m.next_version();
                let r = chunk(next.next_seq, *count, ts, i as u64);
                // Kinds: 0 a chunk with its own object, 1 and 2 inline, 3 also packs the
                // inline ones (dropping them once the pack of an earlier step is stored).
                if let Some(pack) = pending_pack.take() {
                    next.evict_inline(&pack);
                }
                if *kind == 3 {
                    pending_pack = next.pack_inline(0, i as u64);
                }
                if (*kind == 0 || next.inline_refs().len() == MAX_INLINE_CHUNKS)
                    && let Some(pack) = next.pack_inline(0, !(i as u64))
                {
                    prop_assert_eq!(next.evict_inline(&pack), pack.members.len());
                }
                if *kind == 0 {
                    next.push_chunk(r);
                } else {
                    let bytes = Bytes::from(vec![*kind; *count as usize]);
                    next.push_inline_chunk(ChunkRef { inline: true, size: bytes.len() as u64, ..r }, bytes);
                }
                ts += 2;
                if let Some((seg, idx)) = next.fold_if_needed(i as u64) {
                    prop_assert_eq!(idx.chunks.len(), FOLD_CHUNKS);
                    prop_assert_eq!(seg.first_seq, idx.chunks[0].first_seq);
                }
                prop_assert_eq!(next.version, m.version + 1);
                next.check_invariants().map_err(TestCaseError::fail)?;
                m = next;
            }
            prop_assert!(m.chunks.len() <= MAX_MANIFEST_CHUNKS);
            for seq in (0..m.next_seq).step_by(97) {
                let found = match m.locate_seq(seq) {
                    Located::Chunk(c) => c.first_seq <= seq && seq < c.end_seq(),
                    Located::Segment(s) => s.first_seq <= seq && seq < s.end_seq,
                    Located::Tail => false,
                };
                prop_assert!(found, "seq {} not located", seq);
            }
        }
    }
}
