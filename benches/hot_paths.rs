//! Micro-benchmarks of the hot paths: decoding append input, building and decoding
//! chunks, updating the manifest, and framing S2S read batches.
//!
//!     cargo bench --bench hot_paths

use std::sync::Arc;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, black_box, criterion_group, criterion_main};
use prost::Message;
use s2_api::v1::stream::{proto, s2s::CompressionAlgorithm};
use sluice::internals::{
    Chunk, ChunkBuilder, ChunkRef, ChunkSlice, MAX_MANIFEST_CHUNKS, Manifest, ReadBatch,
    RecordBatch, batch_frame, parse_append_input, regular_frame,
};

/// An encoded `AppendInput` of `n` records of `size` bytes, each with one header.
fn append_input(n: usize, size: usize) -> Vec<u8> {
    proto::AppendInput {
        records: (0..n)
            .map(|i| proto::AppendRecord {
                timestamp: Some(i as u64),
                headers: vec![proto::Header {
                    name: Bytes::from_static(b"hash"),
                    value: Bytes::copy_from_slice(&(i as u64).to_be_bytes()),
                }],
                body: Bytes::from(vec![(i % 251) as u8; size]),
            })
            .collect(),
        match_seq_num: None,
        fencing_token: None,
    }
    .encode_to_vec()
}

fn chunk_of(batch: &RecordBatch) -> Chunk {
    let mut builder = ChunkBuilder::new(1_000_000, batch.payload_len());
    for (i, (meta, fields)) in batch.encoded_records().enumerate() {
        builder.push(i as u64, meta.metered as usize, fields);
    }
    builder.finish()
}

fn record_encoding(c: &mut Criterion) {
    let input = append_input(100, 1024);
    let mut g = c.benchmark_group("append_input");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("parse 100 x 1 KiB", |b| {
        b.iter(|| parse_append_input(black_box(&input)).unwrap())
    });
    g.finish();
}

fn chunks(c: &mut Criterion) {
    let batch = parse_append_input(&append_input(126, 8 * 1024))
        .unwrap()
        .batch;
    let encoded = chunk_of(&batch).bytes().clone();
    let mut g = c.benchmark_group("chunk");
    g.throughput(Throughput::Bytes(encoded.len() as u64));
    g.bench_function("build 126 x 8 KiB", |b| {
        b.iter(|| chunk_of(black_box(&batch)))
    });
    g.bench_function("decode 126 x 8 KiB", |b| {
        b.iter(|| Chunk::decode(black_box(encoded.clone())).unwrap())
    });
    g.finish();
}

fn manifest(c: &mut Criterion) {
    // A full manifest: as many references as it keeps before folding.
    let refs = MAX_MANIFEST_CHUNKS as u64;
    let mut m = Manifest::new("0123456789abcdef".into(), "{}".into(), 0);
    for i in 0..refs - 1 {
        m.push_chunk(ChunkRef {
            first_seq: i * 128,
            count: 128,
            first_timestamp: i,
            last_timestamp: i,
            metered_bytes: 1 << 20,
            size: 1 << 20,
            commit: i,
            committed_at_ms: i,
            inline: false,
            pack: None,
        });
    }
    let encoded = m.encode_object();
    let mut g = c.benchmark_group("manifest");
    g.bench_function(
        format!("commit: next version, push chunk, encode (to {refs} refs)"),
        |b| {
            b.iter_batched(
                || m.clone(),
                |m| {
                    let mut next = m.next_version();
                    next.push_chunk(ChunkRef {
                        first_seq: next.next_seq,
                        count: 128,
                        first_timestamp: 300,
                        last_timestamp: 300,
                        metered_bytes: 1 << 20,
                        size: 1 << 20,
                        commit: 7,
                        committed_at_ms: 7,
                        inline: false,
                        pack: None,
                    });
                    next.encode_object()
                },
                BatchSize::SmallInput,
            )
        },
    );
    g.bench_function(format!("decode ({} refs)", refs - 1), |b| {
        b.iter(|| Manifest::decode_object(black_box(&encoded)).unwrap())
    });
    g.finish();
}

fn framing(c: &mut Criterion) {
    let chunk = Arc::new(chunk_of(
        &parse_append_input(&append_input(126, 8 * 1024))
            .unwrap()
            .batch,
    ));
    let payload = chunk.bytes().clone();
    let batch = ReadBatch {
        slices: vec![ChunkSlice::new(chunk.clone(), 0..chunk.len())],
        count: chunk.len(),
        metered_bytes: payload.len(),
        tail: None,
    };
    let mut g = c.benchmark_group("s2s_frame");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.bench_function("1 MiB uncompressed", |b| {
        b.iter(|| regular_frame(black_box(&payload), CompressionAlgorithm::None))
    });
    g.bench_function("1 MiB zstd", |b| {
        b.iter(|| regular_frame(black_box(&payload), CompressionAlgorithm::Zstd))
    });
    g.bench_function("1 MiB read batch", |b| {
        b.iter(|| batch_frame(black_box(&batch), CompressionAlgorithm::None))
    });
    g.finish();
}

criterion_group!(benches, record_encoding, chunks, manifest, framing);
criterion_main!(benches);
