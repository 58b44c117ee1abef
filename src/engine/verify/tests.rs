//! The checkers against the in-memory store: a clean bucket after a workload that
//! exercises every object kind is sound, and each kind of damage is found and named.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use s2_common::config::{BasinConfig, OptionalStreamConfig};

use super::*;
use crate::{
    engine::{
        AutoCreate, Engine, EngineConfig, StreamHandle, appender::INLINE_MAX_BYTES,
        entries::EntryId, group_state::GroupState, layout, manifest::Manifest, record::AppendInput,
    },
    storage::{self, DynStore},
};

/// One record with this body.
pub(crate) fn body(bytes: &[u8]) -> AppendInput {
    batch(&[bytes])
}

pub(crate) use crate::engine::testing::{batch, trim};

/// An engine without polling or periodic upkeep, sweeping orphans older than
/// `orphan_grace` when asked.
pub(crate) fn engine(store: DynStore, orphan_grace: Duration) -> Engine {
    Engine::new(
        store,
        EngineConfig {
            poll: None,
            maintenance_interval: Duration::from_secs(3600),
            deletion_grace: Duration::from_secs(3600),
            gc_grace: Duration::ZERO,
            orphan_grace,
            ..EngineConfig::default()
        },
    )
}

pub(crate) use crate::engine::testing::spills_settled;

/// Basin `b`, stream `s` with appends that leave every kind of object: inline chunks,
/// packs, chunks with their own objects, an index segment, a trim, a consumer group.
pub(crate) async fn workload(engine: &Engine) -> Arc<StreamHandle> {
    engine
        .create_basin("b", BasinConfig::default(), None)
        .await
        .unwrap();
    engine
        .create_stream("b", "s", OptionalStreamConfig::default(), None)
        .await
        .unwrap();
    let h = engine.open("b", "s", AutoCreate::No).await.unwrap();
    let big = vec![7u8; INLINE_MAX_BYTES + 1];
    for i in 0..110u32 {
        let input = if i % 25 == 3 {
            body(&big)
        } else {
            body(format!("record {i}").as_bytes())
        };
        engine.append(&h, input, None).await.unwrap();
        spills_settled(&h).await;
    }
    engine.append(&h, trim(5), None).await.unwrap();
    let group = GroupState::new("g", EntryId::ZERO, Some(0));
    engine.create_group(&h, &group).await.unwrap();
    // A last commit takes the stored pack in, so nothing is left unreferenced.
    spills_settled(&h).await;
    engine.append(&h, body(b"last"), None).await.unwrap();
    spills_settled(&h).await;
    h
}

pub(crate) async fn run(store: &DynStore, grace: Duration, later: Duration) -> Report {
    let options = Options {
        grace,
        now_ms: crate::engine::Clock::System.now_ms() + later.as_millis() as u64,
        ..Options::default()
    };
    verify(store, &options).await.unwrap()
}

async fn manifest_of(store: &DynStore, h: &StreamHandle) -> Manifest {
    let bytes = store
        .get_bytes(&layout::manifest_key(&h.core.id))
        .await
        .unwrap()
        .unwrap();
    Manifest::decode_object(&bytes).unwrap()
}

const GRACE: Duration = Duration::from_secs(300);

#[tokio::test]
async fn a_bucket_after_a_workload_is_sound_and_every_kind_is_checked() {
    let store = storage::memory();
    let engine = engine(store.clone(), GRACE);
    let h = workload(&engine).await;
    let report = run(&store, GRACE, Duration::ZERO).await;
    assert!(report.is_sound(), "{report}");
    let c = &report.counts;
    for kind in [
        Kind::Basin,
        Kind::Stream,
        Kind::Manifest,
        Kind::Segment,
        Kind::Chunk,
        Kind::Pack,
        Kind::InlineChunk,
        Kind::Group,
    ] {
        assert!(c.of(kind) > 0, "no {kind} checked: {report}");
    }
    let m = manifest_of(&store, &h).await;
    assert_eq!(c.records, m.next_seq - m.index_start(), "{report}");
    // At most a pack being written out, not yet taken in.
    assert!(
        report
            .orphans
            .iter()
            .all(|o| o.why == reach::Orphan::NeverReferenced && !o.overdue),
        "{report}"
    );
    let text = report.to_string();
    assert!(text.ends_with("result: sound"), "{text}");
}

/// Some object of the stream's index: a chunk with its own object, or a pack.
fn object_of(m: &Manifest, packed: bool) -> String {
    m.chunks
        .iter()
        .find(|c| !c.inline && c.pack.is_some() == packed)
        .map(|c| c.location(&m.stream_id).0)
        .expect("such a chunk")
}

#[tokio::test]
async fn a_corrupted_chunk_is_named() {
    let store = storage::memory();
    let h = workload(&engine(store.clone(), GRACE)).await;
    let m = manifest_of(&store, &h).await;
    let key = object_of(&m, false);
    let mut bytes = store.get_bytes(&key).await.unwrap().unwrap().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    store.put(&key, Bytes::from(bytes)).await.unwrap();
    let report = run(&store, GRACE, Duration::ZERO).await;
    assert!(!report.is_sound());
    let problems: Vec<_> = report.problems_with(&key).collect();
    assert!(
        problems
            .iter()
            .any(|p| p.what.contains("checksum mismatch")),
        "{report}"
    );
    assert!(report.to_string().contains(&key));
}

#[tokio::test]
async fn a_missing_pack_is_named() {
    let store = storage::memory();
    let h = workload(&engine(store.clone(), GRACE)).await;
    let m = manifest_of(&store, &h).await;
    let key = object_of(&m, true);
    store.delete(&key).await.unwrap();
    let report = run(&store, GRACE, Duration::ZERO).await;
    assert!(!report.is_sound());
    let problem = report.problems_with(&key).next().expect("named");
    assert_eq!(problem.kind, Kind::Pack);
    assert!(
        problem.what.starts_with("missing: referenced by"),
        "{report}"
    );
}

#[tokio::test]
async fn a_missing_index_segment_is_named() {
    let store = storage::memory();
    let h = workload(&engine(store.clone(), GRACE)).await;
    let m = manifest_of(&store, &h).await;
    let key = m.segments[0].key(&m.stream_id);
    store.delete(&key).await.unwrap();
    let report = run(&store, GRACE, Duration::ZERO).await;
    assert!(report.problems_with(&key).next().is_some(), "{report}");
}

#[tokio::test]
async fn a_manifest_with_a_seq_num_gap_is_named() {
    let store = storage::memory();
    let h = workload(&engine(store.clone(), GRACE)).await;
    let mut m = manifest_of(&store, &h).await;
    let last = m.chunks.len() - 1;
    m.chunks[last].first_seq += 1;
    m.next_seq += 1;
    let key = layout::manifest_key(&h.core.id);
    store.put(&key, m.encode_object()).await.unwrap();
    let report = run(&store, GRACE, Duration::ZERO).await;
    let problem = report.problems_with(&key).next().expect("named");
    assert!(problem.what.contains("gap or overlap"), "{report}");
}

#[tokio::test]
async fn a_corrupted_manifest_is_named() {
    let store = storage::memory();
    let h = workload(&engine(store.clone(), GRACE)).await;
    let key = layout::manifest_key(&h.core.id);
    let mut bytes = store.get_bytes(&key).await.unwrap().unwrap().to_vec();
    bytes[10] ^= 1;
    store.put(&key, Bytes::from(bytes)).await.unwrap();
    let report = run(&store, GRACE, Duration::ZERO).await;
    let problem = report.problems_with(&key).next().expect("named");
    assert!(problem.what.contains("checksum mismatch"), "{report}");
}

#[tokio::test]
async fn an_orphan_fails_only_once_older_than_the_grace() {
    let store = storage::memory();
    let h = workload(&engine(store.clone(), GRACE)).await;
    let m = manifest_of(&store, &h).await;
    // A failed commit attempt's chunk at the tail.
    let key = layout::chunk_key(&h.core.id, m.next_seq, 0xdead);
    store
        .put(&key, Bytes::from_static(b"attempt"))
        .await
        .unwrap();
    let report = run(&store, GRACE, Duration::ZERO).await;
    assert!(report.is_sound(), "{report}");
    let young = report
        .orphans
        .iter()
        .find(|o| o.key == key)
        .expect("listed");
    assert_eq!(young.why, reach::Orphan::NeverReferenced);
    assert!(!young.overdue);

    let report = run(&store, GRACE, GRACE + Duration::from_secs(1)).await;
    assert!(!report.is_sound());
    let old = report
        .orphans
        .iter()
        .find(|o| o.key == key)
        .expect("listed");
    assert!(old.overdue && old.age_ms.unwrap() > 300_000);
    assert!(report.to_string().contains(&format!("{key}  chunk")));
}

#[tokio::test]
async fn catalog_damage_and_homeless_directories_are_found() {
    let store = storage::memory();
    let engine = engine(store.clone(), GRACE);
    workload(&engine).await;
    // A stream entry whose basin is gone, a directory nobody owns with a group in it,
    // an entry that does not parse, and a key Sluice does not write.
    let orphaned_entry = layout::stream_key("gone", "x");
    let entry = crate::engine::StreamEntry {
        version: 1,
        name: "x".into(),
        id: "feedface".into(),
        created_at: time::OffsetDateTime::now_utc(),
        deleted_at: None,
        request_token: None,
        requested_config: None,
        cipher: None,
    };
    store
        .put(&orphaned_entry, serde_json::to_vec(&entry).unwrap().into())
        .await
        .unwrap();
    let homeless = layout::group_key("0123homeless", "g");
    let group = GroupState::new("g", EntryId::ZERO, None);
    store
        .put(&homeless, serde_json::to_vec(&group).unwrap().into())
        .await
        .unwrap();
    let garbled = layout::basin_key("garbled");
    store
        .put(&garbled, Bytes::from_static(b"{not json"))
        .await
        .unwrap();
    let stray = "data/0123homeless/notes.txt";
    store.put(stray, Bytes::from_static(b"hi")).await.unwrap();

    let report = run(&store, GRACE, GRACE).await;
    assert!(!report.is_sound());
    let named = |key: &str, what: &str| report.problems_with(key).any(|p| p.what.contains(what));
    assert!(named(&orphaned_entry, "has no catalog entry"), "{report}");
    assert!(
        named(&layout::manifest_key("feedface"), "missing"),
        "{report}"
    );
    assert!(named(&garbled, "does not parse"), "{report}");
    let why = |key: &str| {
        report
            .orphans
            .iter()
            .find(|o| o.key == key)
            .map(|o| (o.why, o.overdue))
    };
    assert_eq!(why(&homeless), Some((reach::Orphan::Homeless, true)));
    assert_eq!(why(stray), Some((reach::Orphan::Unrecognised, true)));
}

#[tokio::test]
async fn a_deletion_under_way_is_a_note_until_it_stalls() {
    let store = storage::memory();
    let engine = engine(store.clone(), GRACE);
    workload(&engine).await;
    // deletion_grace is an hour: the deletion is marked, and stays under way.
    engine.delete_stream("b", "s").await.unwrap();
    let report = run(&store, GRACE, Duration::ZERO).await;
    assert!(report.is_sound(), "{report}");
    assert_eq!(report.counts.streams_being_deleted, 1);
    assert!(report.orphans.is_empty(), "{report}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.what.contains("deletion under way"))
    );
    let report = run(&store, GRACE, GRACE).await;
    let key = layout::stream_key("b", "s");
    assert!(
        report
            .problems_with(&key)
            .any(|p| p.what.contains("has not finished")),
        "{report}"
    );
}

#[tokio::test]
async fn progress_is_reported_and_json_round_trips() {
    let store = storage::memory();
    workload(&engine(store.clone(), GRACE)).await;
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = seen.clone();
    let options = Options {
        progress: Some(Box::new(move |p: &Progress| {
            counter.store(p.objects, std::sync::atomic::Ordering::Relaxed);
        })),
        ..Options::default()
    };
    let report = verify(&store, &options).await.unwrap();
    assert!(seen.load(std::sync::atomic::Ordering::Relaxed) > 10);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["counts"]["objects"]["manifest"], 1);
    assert!(json["problems"].as_array().unwrap().is_empty());
}
