//! Fuzz properties of [`Chunk::decode`] (see `crate::fuzzing`): a chunk comes back from
//! the store, so any bytes must give a chunk or a `CorruptChunk`, and a chunk that decodes
//! must serve every read without a panic, as valid `ReadBatch` entries.

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message;
use s2_api::v1::stream::proto;

use super::*;
use crate::engine::record::RecordBatchBuilder;
use crate::fuzzing::{self, edge_u64, mutate, mutations, reseal_xxh3};

/// A record as a generator makes it: timestamp step, headers, body.
type RecordSpec = (u64, Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>);

fn record_spec() -> impl Strategy<Value = RecordSpec> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..24);
    (
        prop_oneof![Just(0u64), 0u64..1000, edge_u64()],
        prop::collection::vec((prop::collection::vec(any::<u8>(), 1..8), bytes()), 0..3),
        bytes(),
    )
}

/// A valid chunk of up to 6 records from `first_seq` (low enough for its records to fit).
fn valid_chunk() -> impl Strategy<Value = Chunk> {
    (
        prop_oneof![
            Just(0u64),
            0u64..1_000_000,
            edge_u64().prop_map(|s| s.min(u64::MAX - 6))
        ],
        prop::collection::vec(record_spec(), 0..6),
    )
        .prop_map(|(first_seq, specs)| build(first_seq, &specs))
}

fn build(first_seq: u64, specs: &[RecordSpec]) -> Chunk {
    let mut builder = ChunkBuilder::new(first_seq, 0);
    let mut ts = 0u64;
    for (step, headers, body) in specs {
        ts = ts.saturating_add(*step);
        let mut batch = RecordBatchBuilder::new();
        batch
            .push(None, headers.iter().map(|(n, v)| (&n[..], &v[..])), body)
            .expect("small records are valid");
        let batch = batch.finish().expect("one record");
        let (meta, fields) = batch.encoded_records().next().expect("one record");
        builder.push(ts, meta.metered as usize, fields);
    }
    builder.finish()
}

/// Every accessor a reader uses, over every record and some ranges: none may panic, each
/// record's view must parse as decode promised, and any run of entries must be a
/// `ReadBatch` a client can decode.
fn exercise(chunk: &Chunk, probes: &[u64]) -> Result<(), TestCaseError> {
    let n = chunk.len();
    prop_assert_eq!(chunk.end_seq() - chunk.first_seq(), n as u64);
    for i in 0..n {
        let r = chunk.record(i);
        prop_assert_eq!(r.seq_num, chunk.first_seq() + i as u64);
        let view = r.view();
        prop_assert_eq!((view.seq_num, view.timestamp), (r.seq_num, r.timestamp));
        prop_assert_eq!(view.metered().map_err(|e| e.to_string()), Ok(r.metered));
        prop_assert!(view.parts().is_ok());
    }
    let all = proto::ReadBatch::decode(chunk.entries_bytes(0..n))
        .map_err(|e| TestCaseError::fail(format!("entries are not a ReadBatch: {e}")))?;
    prop_assert_eq!(all.records.len(), n);
    for (i, rec) in all.records.iter().enumerate() {
        prop_assert_eq!(rec.seq_num, chunk.first_seq() + i as u64);
    }
    for &p in probes {
        let i = chunk.index_of_seq(p);
        prop_assert!(i <= n);
        let j = chunk.index_of_timestamp(p);
        prop_assert!(j <= n);
        let (a, b) = (i.min(j), i.max(j));
        prop_assert_eq!(chunk.entries_len(a..b), chunk.entries(a..b).len());
        let _ = chunk.entries_bytes(a..b);
    }
    let _ = chunk.weight();
    Ok(())
}

fn decode_and_exercise(bytes: Vec<u8>, probes: &[u64]) -> Result<(), TestCaseError> {
    match Chunk::decode(Bytes::from(bytes)) {
        Ok(chunk) => exercise(&chunk, probes),
        Err(e) => {
            prop_assert!(!e.0.is_empty(), "an error without a message");
            Ok(())
        }
    }
}

/// A chunk object assembled field by field, each field valid or at an edge: any first
/// seq_num, a record count that may disagree, records whose seq_nums may not follow, and
/// record fields that are well-formed or arbitrary. Sealed with a valid checksum.
fn assembled_chunk() -> impl Strategy<Value = Vec<u8>> {
    let fields = prop_oneof![
        record_spec().prop_map(|(_, headers, body)| {
            let mut batch = RecordBatchBuilder::new();
            batch
                .push(None, headers.iter().map(|(n, v)| (&n[..], &v[..])), &body)
                .expect("small records are valid");
            let batch = batch.finish().expect("one record");
            batch
                .encoded_records()
                .next()
                .expect("one record")
                .1
                .to_vec()
        }),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    (
        edge_u64(),
        prop::collection::vec((fields, any::<bool>(), edge_u64(), edge_u64()), 0..4),
        prop_oneof![Just(None), any::<u32>().prop_map(Some)],
    )
        .prop_map(|(first_seq, records, count)| {
            let mut b = b"SLCK\x01\0\0\0".to_vec();
            b.extend(first_seq.to_be_bytes());
            let count = count.unwrap_or(records.len() as u32);
            b.extend(count.to_be_bytes());
            for (i, (fields, follows, seq, ts)) in records.iter().enumerate() {
                let seq = if *follows {
                    first_seq.wrapping_add(i as u64)
                } else {
                    *seq
                };
                put_sequenced(&mut b, seq, *ts, fields);
            }
            b.extend([0; 8]);
            reseal_xxh3(&mut b);
            b
        })
}

fn probes() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(edge_u64(), 0..4)
}

proptest! {
    #![proptest_config(fuzzing::config(4000))]

    /// Arbitrary bytes, and arbitrary bytes behind a valid header and before a valid
    /// checksum (random bytes alone never get past the magic).
    #[test]
    fn fuzz_chunk_arbitrary_bytes(
        body in prop::collection::vec(any::<u8>(), 0..200),
        framed in any::<bool>(),
        probes in probes(),
    ) {
        let bytes = if framed {
            let mut b = b"SLCK\x01\0\0\0".to_vec();
            b.extend(&body);
            b.extend([0; 8]);
            reseal_xxh3(&mut b);
            b
        } else {
            body
        };
        decode_and_exercise(bytes, &probes)?;
    }

    /// Chunks assembled from fields at their edges, with a valid checksum.
    #[test]
    fn fuzz_chunk_assembled(bytes in assembled_chunk(), probes in probes()) {
        decode_and_exercise(bytes, &probes)?;
    }

    /// A chunk decodes to what was built.
    #[test]
    fn fuzz_chunk_round_trips(chunk in valid_chunk()) {
        let decoded = Chunk::decode(chunk.bytes().clone()).map_err(|e| TestCaseError::fail(e.0))?;
        prop_assert_eq!((decoded.first_seq(), decoded.len()), (chunk.first_seq(), chunk.len()));
        for i in 0..chunk.len() {
            let (a, b) = (decoded.record(i), chunk.record(i));
            prop_assert_eq!((a.seq_num, a.timestamp, a.metered, a.entry), (b.seq_num, b.timestamp, b.metered, b.entry));
        }
        exercise(&decoded, &[0, chunk.first_seq() + 1, u64::MAX])?;
    }

    /// A valid chunk with a few bytes changed, its checksum recomputed or not: a clear
    /// error, or a chunk whose every record reads.
    #[test]
    fn fuzz_chunk_mutated(
        chunk in valid_chunk(),
        ms in mutations(),
        reseal in prop::bool::weighted(0.9),
        probes in probes(),
    ) {
        let mut bytes = chunk.bytes().to_vec();
        mutate(&mut bytes, &ms);
        if reseal {
            reseal_xxh3(&mut bytes);
        }
        decode_and_exercise(bytes, &probes)?;
    }
}
