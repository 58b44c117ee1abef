//! Chunk objects: the records of one commit, immutable once written.
//!
//! Format 1, all integers big-endian:
//!
//! ```text
//! 0   magic "SLCK"
//! 4   format version (1), then 3 zero bytes
//! 8   first seq_num (u64)
//! 16  record count (u32)
//! 20  records: each one `ReadBatch.records` entry (protobuf field 1, a SequencedRecord)
//! -8  xxh3-64 of every byte before it
//! ```
//!
//! Records are stored exactly as a protobuf `ReadBatch` carries them, so any run of
//! consecutive records is already a valid `ReadBatch` body: protobuf reads are slices of the
//! cached chunk. Seq_nums inside a chunk are consecutive from `first seq_num`. An encrypted
//! stream's records are stored sealed ([`Sealed`](super::record::Sealed)), with their
//! plaintext's metered size; reads serve them opened, from chunks built in memory.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::record::{SequencedView, put_sequenced};

const MAGIC: &[u8; 4] = b"SLCK";
const FORMAT: u8 = 1;
const HEADER_LEN: usize = 20;
const TRAILER_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
#[error("corrupt chunk: {0}")]
pub struct CorruptChunk(String);

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Offset just past this record in the chunk; it starts where the previous one ends.
    end: u32,
    timestamp: u64,
    metered: u32,
}

/// A decoded chunk: the object's bytes plus where each record lies in them.
#[derive(Debug)]
pub struct Chunk {
    data: Bytes,
    first_seq: u64,
    entries: Vec<Entry>,
}

/// One record of a chunk, still encoded.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRecord<'a> {
    pub seq_num: u64,
    pub timestamp: u64,
    pub metered: usize,
    /// The `ReadBatch.records` entry (tag, length, `SequencedRecord`).
    pub entry: &'a [u8],
}

impl<'a> ChunkRecord<'a> {
    /// The record's `SequencedRecord` message, without the field tag and length.
    pub fn view(&self) -> SequencedView<'a> {
        let mut buf: &'a [u8] = &self.entry[1..];
        prost::encoding::decode_varint(&mut buf).expect("validated on decode");
        SequencedView::parse(buf).expect("validated on decode")
    }
}

impl Chunk {
    pub fn decode(data: Bytes) -> Result<Self, CorruptChunk> {
        let bad = |m: &str| CorruptChunk(m.to_owned());
        if data.len() < HEADER_LEN + TRAILER_LEN || &data[..4] != MAGIC {
            return Err(bad("bad magic or too short"));
        }
        if data[4] != FORMAT {
            return Err(CorruptChunk(format!("unknown format {}", data[4])));
        }
        let body_end = data.len() - TRAILER_LEN;
        let checksum = u64::from_be_bytes(data[body_end..].try_into().expect("8 bytes"));
        if xxhash_rust::xxh3::xxh3_64(&data[..body_end]) != checksum {
            return Err(bad("checksum mismatch"));
        }
        let first_seq = u64::from_be_bytes(data[8..16].try_into().expect("8 bytes"));
        let count = u32::from_be_bytes(data[16..20].try_into().expect("4 bytes")) as usize;
        // With the last seq_num representable, `first_seq + i` below and `end_seq()`
        // cannot overflow.
        if first_seq.checked_add(count as u64).is_none() {
            return Err(bad("record count runs past the last seq_num"));
        }
        let mut buf = &data[HEADER_LEN..body_end];
        // The count is only trusted as far as the bytes could hold it (an entry is at
        // least a tag and a length), so a corrupt count cannot reserve gigabytes.
        let mut entries = Vec::with_capacity(count.min(buf.len() / 2));
        while !buf.is_empty() {
            if entries.len() == count {
                return Err(bad("more records than the record count"));
            }
            let start_len = buf.len();
            if buf[0] != 0x0a {
                return Err(bad("record is not a ReadBatch entry"));
            }
            buf = &buf[1..];
            let len =
                prost::encoding::decode_varint(&mut buf).map_err(|_| bad("bad length"))? as usize;
            if len > buf.len() {
                return Err(bad("record overruns chunk"));
            }
            let view =
                SequencedView::parse(&buf[..len]).map_err(|e| CorruptChunk(e.to_string()))?;
            let expected_seq = first_seq + entries.len() as u64;
            if view.seq_num != expected_seq {
                return Err(CorruptChunk(format!(
                    "seq_num {} where {expected_seq} was expected",
                    view.seq_num
                )));
            }
            let metered = view.metered().map_err(|e| CorruptChunk(e.to_string()))?;
            buf = &buf[len..];
            let consumed = start_len - buf.len();
            let prev_end = entries
                .last()
                .map_or(HEADER_LEN, |e: &Entry| e.end as usize);
            entries.push(Entry {
                end: (prev_end + consumed) as u32,
                timestamp: view.timestamp,
                metered: metered as u32,
            });
        }
        if entries.len() != count {
            return Err(bad("record count mismatch"));
        }
        Ok(Self {
            data,
            first_seq,
            entries,
        })
    }

    /// The encoded object.
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// One past the last seq_num in the chunk.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes the cache should account for.
    pub fn weight(&self) -> usize {
        self.data.len() + self.entries.len() * std::mem::size_of::<Entry>()
    }

    fn start_of(&self, i: usize) -> usize {
        if i == 0 {
            HEADER_LEN
        } else {
            self.entries[i - 1].end as usize
        }
    }

    pub fn record(&self, i: usize) -> ChunkRecord<'_> {
        let e = self.entries[i];
        ChunkRecord {
            seq_num: self.first_seq + i as u64,
            timestamp: e.timestamp,
            metered: e.metered as usize,
            entry: &self.data[self.start_of(i)..e.end as usize],
        }
    }

    /// Index of the first record with seq_num ≥ `seq` (may be `len()`).
    pub fn index_of_seq(&self, seq: u64) -> usize {
        (seq.saturating_sub(self.first_seq) as usize).min(self.entries.len())
    }

    /// Index of the first record with timestamp ≥ `ts` (timestamps never decrease).
    pub fn index_of_timestamp(&self, ts: u64) -> usize {
        self.entries.partition_point(|e| e.timestamp < ts)
    }

    /// Size of [`Self::entries`] for `range`.
    pub fn entries_len(&self, range: Range<usize>) -> usize {
        self.entries(range).len()
    }

    /// The encoded `ReadBatch.records` entries of records `range`, borrowed.
    pub fn entries(&self, range: Range<usize>) -> &[u8] {
        if range.is_empty() {
            return &[];
        }
        &self.data[self.start_of(range.start)..self.entries[range.end - 1].end as usize]
    }

    /// [`Self::entries`] as one slice of the chunk's bytes, not a copy.
    pub fn entries_bytes(&self, range: Range<usize>) -> Bytes {
        self.data.slice_ref(self.entries(range))
    }
}

/// Accumulates sequenced records into a chunk.
pub struct ChunkBuilder {
    buf: BytesMut,
    first_seq: u64,
    entries: Vec<Entry>,
}

impl ChunkBuilder {
    pub fn new(first_seq: u64, capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + capacity + TRAILER_LEN);
        buf.put_slice(MAGIC);
        buf.put_slice(&[FORMAT, 0, 0, 0]);
        buf.put_u64(first_seq);
        buf.put_u32(0);
        Self {
            buf,
            first_seq,
            entries: Vec::new(),
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the next record; `fields` are its encoded headers and body.
    pub fn push(&mut self, timestamp: u64, metered: usize, fields: &[u8]) {
        let seq = self.next_seq();
        put_sequenced(&mut self.buf, seq, timestamp, fields);
        self.entries.push(Entry {
            end: self.buf.len() as u32,
            timestamp,
            metered: metered as u32,
        });
    }

    pub fn finish(mut self) -> Chunk {
        let count = self.entries.len() as u32;
        self.buf[16..20].copy_from_slice(&count.to_be_bytes());
        let checksum = xxhash_rust::xxh3::xxh3_64(&self.buf);
        self.buf.put_u64(checksum);
        Chunk {
            data: self.buf.freeze(),
            first_seq: self.first_seq,
            entries: self.entries,
        }
    }
}

/// A chunk from `first_seq` of records with these bodies, no headers and timestamp 0.
#[cfg(test)]
pub fn chunk_of_bodies<'a>(first_seq: u64, bodies: impl IntoIterator<Item = &'a [u8]>) -> Chunk {
    let mut records = crate::engine::record::RecordBatchBuilder::new();
    for body in bodies {
        records.push(None, std::iter::empty(), body).unwrap();
    }
    let records = records.finish().unwrap();
    let mut builder = ChunkBuilder::new(first_seq, records.payload_len());
    for (meta, fields) in records.encoded_records() {
        builder.push(0, meta.metered as usize, fields);
    }
    builder.finish()
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use prost::Message;
    use s2_api::v1::stream::proto;

    use super::*;
    use crate::engine::record::RecordBatchBuilder;

    fn sample_chunk(first_seq: u64, n: usize) -> Chunk {
        let mut batch = RecordBatchBuilder::new();
        for i in 0..n {
            let body = format!("body-{i}");
            batch
                .push(None, [(&b"h"[..], &b"v"[..])].into_iter(), body.as_bytes())
                .unwrap();
        }
        let batch = batch.finish().unwrap();
        let mut builder = ChunkBuilder::new(first_seq, batch.payload_len());
        for (i, (meta, fields)) in batch.encoded_records().enumerate() {
            builder.push(100 + i as u64, meta.metered as usize, fields);
        }
        builder.finish()
    }

    #[test]
    fn round_trips_and_slices_as_read_batches() {
        let chunk = sample_chunk(10, 5);
        let decoded = Chunk::decode(chunk.bytes().clone()).unwrap();
        assert_eq!((decoded.first_seq(), decoded.end_seq()), (10, 15));
        assert_eq!(decoded.index_of_seq(12), 2);
        assert_eq!(decoded.index_of_seq(3), 0);
        assert_eq!(decoded.index_of_timestamp(103), 3);
        assert_eq!(decoded.record(1).metered, 8 + 2 + 2 + 6);

        let batch = proto::ReadBatch::decode(decoded.entries_bytes(1..4)).unwrap();
        let seqs: Vec<_> = batch.records.iter().map(|r| r.seq_num).collect();
        assert_eq!(seqs, vec![11, 12, 13]);
        assert_eq!(&batch.records[0].body[..], b"body-1");
        assert_eq!(batch.records[2].timestamp, 103);
        let (headers, body) = decoded.record(4).view().parts().unwrap();
        assert_eq!(headers, vec![(&b"h"[..], &b"v"[..])]);
        assert_eq!(body, b"body-4");
    }

    /// A chunk object with this header and these encoded records, correctly sealed.
    fn sealed(first_seq: u64, count: u32, records: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_slice(MAGIC);
        b.put_slice(&[FORMAT, 0, 0, 0]);
        b.put_u64(first_seq);
        b.put_u32(count);
        b.put_slice(records);
        let sum = xxhash_rust::xxh3::xxh3_64(&b);
        b.put_u64(sum);
        b.freeze()
    }

    /// Found by `fuzz_chunk_mutated`: the count reserved memory before any record was
    /// read, so a count of 2^32 − 1 aborted the process (a 100 GB allocation).
    #[test]
    fn a_corrupt_record_count_is_refused_without_reserving_it() {
        let mut records = BytesMut::new();
        put_sequenced(&mut records, 0, 0, b"");
        let err = Chunk::decode(sealed(0, u32::MAX, &records)).unwrap_err();
        assert_eq!(err.to_string(), "corrupt chunk: record count mismatch");
        put_sequenced(&mut records, 1, 0, b"");
        let err = Chunk::decode(sealed(0, 1, &records)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt chunk: more records than the record count"
        );
    }

    /// Found by `fuzz_chunk_assembled`: a first seq_num near `u64::MAX` overflowed
    /// `first_seq + i` while decoding (and `end_seq()` after).
    #[test]
    fn seq_nums_past_the_last_are_refused() {
        let mut records = BytesMut::new();
        put_sequenced(&mut records, u64::MAX, 0, b"");
        let err = Chunk::decode(sealed(u64::MAX, 1, &records)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt chunk: record count runs past the last seq_num"
        );
        let last = Chunk::decode(sealed(u64::MAX - 1, 1, &{
            let mut r = BytesMut::new();
            put_sequenced(&mut r, u64::MAX - 1, 0, b"");
            r
        }))
        .unwrap();
        assert_eq!(last.end_seq(), u64::MAX);
    }

    /// Found by `fuzz_chunk_mutated`: a seq_num field after the body (here with the wrong
    /// wire type), or a field number beyond protobuf's, passed decoding, and the entries
    /// were then no `ReadBatch` a client could decode.
    #[test]
    fn fields_a_client_cannot_decode_are_refused() {
        let mut records = BytesMut::new();
        // Body "x", then field 1 as length-delimited.
        put_sequenced(&mut records, 0, 0, &[0x22, 1, b'x', 0x0a, 0]);
        let err = Chunk::decode(sealed(0, 1, &records)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt chunk: seq_num or timestamp after the record's headers or body"
        );
        // Likewise an unknown field whose number is beyond protobuf's (key 2^32 + 2).
        let mut records = BytesMut::new();
        put_sequenced(&mut records, 0, 0, &[0x82, 0x80, 0x80, 0x80, 0x10, 0]);
        let err = Chunk::decode(sealed(0, 1, &records)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt chunk: invalid field key 4294967298"
        );
    }

    #[test]
    fn detects_corruption() {
        let chunk = sample_chunk(0, 3);
        let mut bytes = chunk.bytes().to_vec();
        bytes[30] ^= 1;
        assert!(Chunk::decode(Bytes::from(bytes)).is_err());
        assert!(Chunk::decode(Bytes::from_static(b"nope")).is_err());
    }
}
