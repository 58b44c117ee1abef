//! `verify` and upkeep's orphan sweep against a real node's storage: each kind of damage
//! is named by its object's key, and after a random workload (both surfaces, deletions,
//! consumer groups, restarts) upkeep leaves the bucket sound with no orphan at all.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::{Rng, SeedableRng, rngs::StdRng};
use s2_sdk::types::{
    AppendInput, AppendRecord, AppendRecordBatch, BasinConfig, BasinName, CommandRecord,
    CreateBasinInput, CreateStreamInput, DeleteBasinInput, DeleteStreamInput, StreamName,
};
use sluice::{
    engine::{
        StreamEntry,
        verify::{self, Report},
    },
    internals::{Manifest, layout},
    storage::DynStore,
};

use crate::{
    harness::{Backend, TestServer, basin_name},
    http::Api,
    on_both_backends,
};

on_both_backends!(
    verify_names_each_kind_of_damage,
    a_random_workload_then_upkeep_leaves_no_orphans
);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A verify run with `grace`, judging ages as of `later` from now.
async fn check(store: &DynStore, grace: Duration, later: Duration) -> Report {
    let options = verify::Options {
        grace,
        now_ms: now_ms() + later.as_millis() as u64,
        ..verify::Options::default()
    };
    verify::verify(store, &options).await.expect("verify runs")
}

async fn stream_id(store: &DynStore, basin: &str, stream: &str) -> String {
    let bytes = store
        .get_bytes(&layout::stream_key(basin, stream))
        .await
        .unwrap()
        .expect("a catalog entry");
    serde_json::from_slice::<StreamEntry>(&bytes).unwrap().id
}

async fn manifest(store: &DynStore, id: &str) -> (Bytes, Manifest) {
    let bytes = store
        .get_bytes(&layout::manifest_key(id))
        .await
        .unwrap()
        .unwrap();
    let m = Manifest::decode_object(&bytes).unwrap();
    (bytes, m)
}

fn batch(bodies: impl IntoIterator<Item = Vec<u8>>) -> AppendInput {
    AppendInput::new(
        AppendRecordBatch::try_from_iter(bodies.into_iter().map(|b| AppendRecord::new(b).unwrap()))
            .unwrap(),
    )
}

const GRACE: Duration = Duration::from_secs(300);

async fn verify_names_each_kind_of_damage(backend: Backend) {
    let server = TestServer::start(backend).await;
    let store = server.store();
    let basin = server.create_basin(false).await;
    let sdk = server.sdk().basin(basin.clone());
    sdk.create_stream(CreateStreamInput::new("s".parse().unwrap()))
        .await
        .unwrap();
    let stream = sdk.stream("s".parse().unwrap());
    // Enough commits to fold an index segment; small ones travel inline and leave in
    // packs, every 30th is too big to and gets its own object.
    for i in 0..100u32 {
        let body = if i % 30 == 7 {
            vec![b'x'; 300 * 1024]
        } else {
            format!("record {i}").into_bytes()
        };
        stream.append(batch([body])).await.unwrap();
    }
    let report = check(&store, GRACE, Duration::ZERO).await;
    assert!(report.is_sound(), "{report}");
    assert!(report.counts.records >= 100, "{report}");

    let id = stream_id(&store, basin.as_ref(), "s").await;
    let (manifest_bytes, m) = manifest(&store, &id).await;
    let own = m
        .chunks
        .iter()
        .find(|c| !c.inline && c.pack.is_none())
        .expect("a chunk with its own object")
        .key(&id);
    let original = store.get_bytes(&own).await.unwrap().unwrap();

    // (a) A corrupted chunk.
    let mut flipped = original.to_vec();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    store.put(&own, flipped.into()).await.unwrap();
    let report = check(&store, GRACE, Duration::ZERO).await;
    assert!(!report.is_sound());
    assert!(
        report
            .problems_with(&own)
            .any(|p| p.what.contains("checksum mismatch")),
        "{report}"
    );
    assert!(report.to_string().contains(&own));

    // (b) A missing chunk.
    store.delete(&own).await.unwrap();
    let report = check(&store, GRACE, Duration::ZERO).await;
    assert!(
        report
            .problems_with(&own)
            .any(|p| p.what.starts_with("missing: referenced by")),
        "{report}"
    );
    store.put(&own, original).await.unwrap();

    // (c) A manifest with a seq_num gap.
    let mut gapped = m.clone();
    let last = gapped.chunks.len() - 1;
    gapped.chunks[last].first_seq += 1;
    gapped.next_seq += 1;
    let mkey = layout::manifest_key(&id);
    store.put(&mkey, gapped.encode_object()).await.unwrap();
    let report = check(&store, GRACE, Duration::ZERO).await;
    assert!(
        report
            .problems_with(&mkey)
            .any(|p| p.what.contains("gap or overlap")),
        "{report}"
    );
    store.put(&mkey, manifest_bytes).await.unwrap();

    // (d) An orphan: no failure while younger than the grace, one after.
    let orphan = layout::chunk_key(&id, m.next_seq + 1000, 0xdead);
    store
        .put(&orphan, Bytes::from_static(b"a failed attempt"))
        .await
        .unwrap();
    let report = check(&store, GRACE, Duration::ZERO).await;
    assert!(report.is_sound(), "{report}");
    assert!(report.orphans.iter().any(|o| o.key == orphan && !o.overdue));
    let report = check(&store, GRACE, GRACE + Duration::from_secs(1)).await;
    assert!(!report.is_sound());
    assert!(
        report.overdue_orphans().any(|o| o.key == orphan),
        "{report}"
    );
    assert!(report.to_string().contains(&orphan));
    store.delete(&orphan).await.unwrap();

    let report = check(&store, GRACE, Duration::ZERO).await;
    assert!(report.is_sound(), "{report}");
}

/// What the workload works on.
struct World {
    basins: Vec<String>,
    streams: Vec<&'static str>,
    keys: Vec<&'static str>,
}

impl World {
    fn basin(&self, rng: &mut StdRng) -> &str {
        &self.basins[rng.random_range(0..self.basins.len())]
    }
}

async fn create_basin(server: &TestServer) -> String {
    let name: BasinName = basin_name().parse().unwrap();
    let config = BasinConfig::new().with_create_stream_on_append(true);
    server
        .sdk()
        .create_basin(CreateBasinInput::new(name.clone()).with_config(config))
        .await
        .expect("create basin");
    name.to_string()
}

/// One random step; failures (of requests to what was just deleted, a group that
/// already exists, …) are part of the workload.
async fn step(server: &TestServer, world: &mut World, rng: &mut StdRng) {
    let basin = world.basin(rng).to_owned();
    let s2 = server.sdk().basin(basin.parse().unwrap());
    let stream: StreamName = world.streams[rng.random_range(0..world.streams.len())]
        .parse()
        .unwrap();
    let plate = Api::plate(server, &basin);
    let key = world.keys[rng.random_range(0..world.keys.len())];
    match rng.random_range(0..100) {
        0..30 => {
            let n = rng.random_range(1..6);
            let bodies = (0..n).map(|i| format!("r{i}-{}", rng.random::<u32>()).into_bytes());
            let _ = s2
                .stream(stream)
                .append(batch(bodies.collect::<Vec<_>>()))
                .await;
        }
        30..34 => {
            let _ = s2
                .stream(stream)
                .append(batch([vec![b'b'; 300 * 1024]]))
                .await;
        }
        34..40 => {
            let handle = s2.stream(stream);
            if let Ok(tail) = handle.check_tail().await {
                let point = rng.random_range(0..=tail.seq_num);
                let trim = AppendRecordBatch::try_from_iter([AppendRecord::from(
                    CommandRecord::trim(point),
                )])
                .unwrap();
                let _ = handle.append(AppendInput::new(trim)).await;
            }
        }
        40..43 => {
            let _ = s2
                .delete_stream(DeleteStreamInput::new(stream).with_ignore_not_found(true))
                .await;
        }
        43..45 => {
            let i = rng.random_range(0..world.basins.len());
            let gone = std::mem::replace(&mut world.basins[i], create_basin(server).await);
            let _ = server
                .sdk()
                .delete_basin(DeleteBasinInput::new(gone.parse().unwrap()))
                .await;
        }
        45..62 => {
            let _ = plate.command(&["XADD", key, "*", "f", "v"]).await;
        }
        62..66 => {
            let _ = plate
                .command(&["XGROUP", "CREATE", key, "g", "0", "MKSTREAM"])
                .await;
        }
        66..76 => {
            let consumer = format!("c{}", rng.random_range(0..3));
            let _ = plate
                .command(&[
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    &consumer,
                    "COUNT",
                    "3",
                    "STREAMS",
                    key,
                    ">",
                ])
                .await;
        }
        76..82 => {
            if let Ok(pending) = plate.command(&["XPENDING", key, "g", "-", "+", "5"]).await {
                let ids: Vec<String> = pending
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|row| row[0].as_str().map(str::to_owned))
                    .collect();
                let mut ack = vec!["XACK", key, "g"];
                ack.extend(ids.iter().map(String::as_str));
                if !ids.is_empty() {
                    let _ = plate.command(&ack).await;
                }
            }
        }
        82..86 => {
            if let Ok(first) = plate
                .command(&["XRANGE", key, "-", "+", "COUNT", "1"])
                .await
                && let Some(id) = first[0][0].as_str()
            {
                let _ = plate.command(&["XDEL", key, id]).await;
            }
        }
        86..90 => {
            let n = rng.random_range(0..5).to_string();
            let _ = plate.command(&["XTRIM", key, "MAXLEN", &n]).await;
        }
        90..92 => {
            let _ = plate.command(&["XGROUP", "DESTROY", key, "g"]).await;
        }
        92..94 => {
            let _ = plate.command(&["DEL", key]).await;
        }
        _ => {
            let _ = s2.stream(stream).check_tail().await;
        }
    }
}

async fn a_random_workload_then_upkeep_leaves_no_orphans(backend: Backend) {
    let seed: u64 = std::env::var("SLUICE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("workload seed {seed} (SLUICE_TEST_SEED reruns it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut server = TestServer::start(backend).await;
    let mut world = World {
        basins: vec![create_basin(&server).await, create_basin(&server).await],
        streams: vec!["s1", "s2", "s3"],
        keys: vec!["k1", "k2"],
    };
    let steps = match backend {
        Backend::Ministack => 150,
        _ => 250,
    };
    for i in 0..steps {
        if i % 100 == 99 {
            server = server.restart().await;
        }
        step(&server, &mut world, &mut rng).await;
    }

    // Orphans of the kinds crashes leave: a chunk of a commit attempt whose manifest
    // write never happened, and the directory of a creation that never wrote its entry.
    let store = server.store();
    let live = world.basins[0].clone();
    server
        .sdk()
        .basin(live.parse().unwrap())
        .stream("planted".parse().unwrap())
        .append(batch([b"x".to_vec()]))
        .await
        .unwrap();
    let id = stream_id(&store, &live, "planted").await;
    let (_, m) = manifest(&store, &id).await;
    let planted = [
        layout::chunk_key(&id, m.next_seq, 0xdead),
        layout::chunk_key("0123feed", 0, 1),
        layout::manifest_key("0123feed"),
    ];
    for key in &planted {
        store.put(key, Bytes::from_static(b"orphan")).await.unwrap();
    }
    // (Deletions may still be under way: within the normal grace they are no problem.)
    let before = check(&store, GRACE, Duration::ZERO).await;
    assert!(before.is_sound(), "seed {seed}: {before}");
    assert!(before.orphans.len() >= planted.len(), "{before}");
    let mut whys = std::collections::BTreeMap::new();
    for o in &before.orphans {
        *whys.entry(format!("{:?}", o.why)).or_insert(0) += 1;
    }
    eprintln!("orphans before the sweep: {whys:?}");

    // A node whose upkeep may sweep every orphan at once: nothing writes any more.
    drop(store); // a local directory's store holds its lock
    let server = server
        .restart_with(|c| {
            c.engine.orphan_grace = Duration::ZERO;
            c.engine.gc_grace = Duration::ZERO;
        })
        .await;
    let store = server.store();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let report = loop {
        let report = check(&store, Duration::ZERO, Duration::ZERO).await;
        if report.is_sound() && report.orphans.is_empty() {
            break report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "seed {seed}: upkeep left this after a minute:\n{report}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(report.counts.records > 0, "{report}");
    for key in &planted {
        assert!(store.get_bytes(key).await.unwrap().is_none(), "{key} left");
    }
    eprintln!("{report}");
}
