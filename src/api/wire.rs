//! The S2 wire encodings the record handlers and sessions share: positions, acks, and
//! read batches as protobuf (built from the cached chunks' own bytes) and JSON.

use axum::body::Bytes;
use bytes::{BufMut, BytesMut};
use prost::Message;
use s2_api::{
    data::Format,
    v1::stream::{
        Header as JsonHeader, ReadBatch as JsonReadBatch, SequencedRecord as JsonRecord,
        StreamPosition, proto,
    },
};

use crate::engine::{Ack, Position, ReadBatch};

pub fn position(p: Position) -> StreamPosition {
    StreamPosition {
        seq_num: p.seq_num,
        timestamp: p.timestamp,
    }
}

pub fn proto_position(p: Position) -> proto::StreamPosition {
    proto::StreamPosition {
        seq_num: p.seq_num,
        timestamp: p.timestamp,
    }
}

pub fn proto_ack(ack: &Ack) -> proto::AppendAck {
    proto::AppendAck {
        start: Some(proto_position(ack.start)),
        end: Some(proto_position(ack.end)),
        tail: Some(proto_position(ack.tail)),
    }
}

/// A protobuf `ReadBatch`: the records' stored bytes, then the tail if known.
pub fn encode_proto_batch(batch: &ReadBatch) -> Bytes {
    let mut buf = BytesMut::with_capacity(proto_batch_len(batch));
    put_proto_batch(batch, &mut buf);
    buf.freeze()
}

/// Size of [`encode_proto_batch`]'s output.
pub fn proto_batch_len(batch: &ReadBatch) -> usize {
    let records: usize = batch.slices.iter().map(|s| s.encoded_len()).sum();
    records
        + batch
            .tail
            .map_or(0, |t| 2 + proto_position(t).encoded_len())
}

/// Writes [`encode_proto_batch`]'s output into `buf`, copying each record's bytes once.
fn put_proto_batch(batch: &ReadBatch, buf: &mut BytesMut) {
    for slice in &batch.slices {
        buf.put_slice(slice.encoded_slice());
    }
    put_proto_tail(batch, buf);
}

fn put_proto_tail(batch: &ReadBatch, buf: &mut BytesMut) {
    if let Some(tail) = batch.tail {
        let tail = proto_position(tail);
        buf.put_u8(0x12);
        prost::encoding::encode_varint(tail.encoded_len() as u64, buf);
        tail.encode(buf).expect("BytesMut grows");
    }
}

/// Runs of records at least this long are sent as slices of the cached chunks; shorter
/// ones are copied. A slice earns its own HTTP/2 DATA frames only if it fills one (16 KiB
/// by default): a batch of many tiny slices would otherwise cost the client a frame each.
pub const SHARED_SLICE_MIN_BYTES: usize = 16 * 1024;

/// `prefix` followed by [`encode_proto_batch`]'s output, as pieces to send in order.
/// Runs of records of at least [`SHARED_SLICE_MIN_BYTES`] are the cached chunks' own
/// bytes, not copies; the prefix, shorter runs and the tail are copied into one buffer
/// shared by the pieces between them.
pub fn proto_batch_parts(prefix: &[u8], batch: &ReadBatch) -> Vec<Bytes> {
    let copied: usize = batch
        .slices
        .iter()
        .map(|s| s.encoded_len())
        .filter(|&len| len < SHARED_SLICE_MIN_BYTES)
        .sum();
    let mut buf = BytesMut::with_capacity(prefix.len() + copied + MAX_TAIL_LEN);
    let mut parts = Vec::new();
    buf.put_slice(prefix);
    for slice in &batch.slices {
        if slice.encoded_len() < SHARED_SLICE_MIN_BYTES {
            buf.put_slice(slice.encoded_slice());
            continue;
        }
        if !buf.is_empty() {
            parts.push(buf.split().freeze());
        }
        parts.push(slice.encoded());
    }
    put_proto_tail(batch, &mut buf);
    if !buf.is_empty() {
        parts.push(buf.freeze());
    }
    parts
}

/// Upper bound of [`put_proto_tail`]'s output: tag, length, and two varint fields.
const MAX_TAIL_LEN: usize = 2 + 2 * 11;

/// A JSON `ReadBatch` with record data encoded per `s2-format`.
pub fn json_batch(batch: &ReadBatch, format: Format) -> JsonReadBatch {
    let records = batch
        .records()
        .map(|r| {
            let view = r.view();
            let (headers, body) = view.parts().expect("validated on decode");
            JsonRecord {
                seq_num: r.seq_num,
                timestamp: r.timestamp,
                headers: headers
                    .into_iter()
                    .map(|(n, v)| JsonHeader(format.encode(n), format.encode(v)))
                    .collect(),
                body: format.encode(body),
            }
        })
        .collect();
    JsonReadBatch {
        records,
        tail: batch.tail.map(position),
    }
}

#[cfg(test)]
mod tests {
    use std::{ops::Range, sync::Arc};

    use prost::Message;
    use s2_api::v1::stream::proto;

    use super::*;
    use crate::engine::{
        chunk::{Chunk, chunk_of_bodies},
        reader::ChunkSlice,
    };

    /// A chunk from `first_seq` of `n` records whose bodies are `size` bytes.
    fn chunk(first_seq: u64, n: usize, size: usize) -> Arc<Chunk> {
        let bodies: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; size]).collect();
        Arc::new(chunk_of_bodies(first_seq, bodies.iter().map(|b| &b[..])))
    }

    fn batch(slices: Vec<(Arc<Chunk>, Range<usize>)>, tail: Option<Position>) -> ReadBatch {
        let slices: Vec<_> = slices
            .into_iter()
            .map(|(c, r)| ChunkSlice::new(c, r))
            .collect();
        ReadBatch {
            count: slices.iter().map(|s| s.records().count()).sum(),
            metered_bytes: slices
                .iter()
                .flat_map(|s| s.records())
                .map(|r| r.metered)
                .sum(),
            slices,
            tail,
        }
    }

    fn seq_nums(encoded: &[u8]) -> Vec<u64> {
        let batch = proto::ReadBatch::decode(encoded).unwrap();
        batch.records.iter().map(|r| r.seq_num).collect()
    }

    #[test]
    fn batch_parts_send_large_runs_from_the_chunk_and_copy_the_rest() {
        let large = chunk(3, 4, 8192);
        let tail = Position {
            seq_num: 12,
            timestamp: 7,
        };
        let batch = batch(
            vec![
                (chunk(0, 3, 100), 0..3),
                (large.clone(), 0..4),
                (chunk(7, 3, 100), 0..2),
            ],
            Some(tail),
        );

        let parts = proto_batch_parts(b"pre", &batch);

        assert_eq!(
            parts.len(),
            3,
            "copied run, shared run, copied run and tail"
        );
        let shared = ChunkSlice::new(large, 0..4).encoded();
        assert_eq!(
            parts[1].as_ptr(),
            shared.as_ptr(),
            "the large run is not copied"
        );
        let joined = parts.concat();
        assert_eq!(&joined[..3], b"pre");
        assert_eq!(&joined[3..], &encode_proto_batch(&batch)[..]);
        assert_eq!(seq_nums(&joined[3..]), (0..9).collect::<Vec<_>>());
        let decoded = proto::ReadBatch::decode(&joined[3..]).unwrap();
        assert_eq!(decoded.tail.map(|t| t.seq_num), Some(12));
    }

    #[test]
    fn batch_parts_of_short_runs_are_one_buffer() {
        let slices = (0..10).map(|i| (chunk(i, 1, 1024), 0..1)).collect();
        let batch = batch(slices, None);

        let parts = proto_batch_parts(&[9], &batch);

        assert_eq!(parts.len(), 1);
        assert_eq!(&parts[0][1..], &encode_proto_batch(&batch)[..]);
        assert_eq!(seq_nums(&parts[0][1..]), (0..10).collect::<Vec<_>>());
    }
}
