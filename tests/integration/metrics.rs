//! `GET /metrics`: object-store requests timed by kind, append acks by storage class,
//! commits by size, commits that lost their manifest race, and where reads found chunks.

use std::{collections::HashMap, time::Duration};

use serde_json::json;

use crate::{
    harness::{Backend, TestServer, basin_name},
    http::Api,
};

crate::on_both_backends!(metrics_time_store_requests_acks_commits_and_reads,);

/// Every sample of a Prometheus text exposition, by name and labels as written.
async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let reply = server
        .http()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let text = reply.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("a sample");
            (name.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn sample(samples: &HashMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {samples:?}"))
}

async fn metrics_time_store_requests_acks_commits_and_reads(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = basin_name();
    Api::new(&server).create_basin(&basin, json!({})).await;
    let api = Api::new(&server).basin(&basin);
    api.create_stream("e", json!({"storage_class": "express"}))
        .await;
    api.create_stream("s", json!({"storage_class": "standard"}))
        .await;
    for (stream, appends) in [("e", 3), ("s", 2)] {
        for i in 0..appends {
            api.append(stream, json!({"records": [{"body": format!("{i}")}]}))
                .await
                .assert_status(200);
        }
    }
    // A rejected append is not an ack.
    api.append("e", json!({"records": [{"body": "x"}], "match_seq_num": 0}))
        .await
        .assert_status(412);

    let m = scrape(&server).await;
    let acks = "sluice_append_ack_duration_seconds";
    assert_eq!(
        sample(&m, &format!("{acks}_count{{storage_class=\"express\"}}")),
        3.0
    );
    assert_eq!(
        sample(&m, &format!("{acks}_count{{storage_class=\"standard\"}}")),
        2.0
    );
    assert_eq!(
        sample(
            &m,
            &format!("{acks}_bucket{{storage_class=\"standard\",le=\"+Inf\"}}")
        ),
        2.0
    );
    if backend == Backend::Ministack {
        // On a bucket a `standard` commit lingers 200 ms, and the ack's latency holds it.
        let waited = sample(&m, &format!("{acks}_sum{{storage_class=\"standard\"}}"));
        assert!(waited >= 0.4, "two standard acks took {waited} s in all");
    }
    // Each applied append was one commit of one small record.
    assert_eq!(sample(&m, "sluice_commit_bytes_count"), 5.0);
    assert_eq!(sample(&m, "sluice_commit_bytes_bucket{le=\"1024\"}"), 5.0);
    assert_eq!(sample(&m, "sluice_commit_conflicts_total"), 0.0);
    // Every request counted is timed once it completes; background work may have one in
    // flight.
    for op in ["get", "put"] {
        let total = sample(&m, &format!("sluice_store_requests_total{{op=\"{op}\"}}"));
        let timed = sample(
            &m,
            &format!("sluice_store_request_duration_seconds_count{{op=\"{op}\"}}"),
        );
        assert!(
            timed > 0.0 && timed <= total,
            "{op}: {timed} timed of {total}"
        );
    }

    // Just committed, or carried in the manifest: read from memory.
    let reply = api.read("e", "seq_num=0").await.assert_status(200);
    assert_eq!(reply["records"].as_array().unwrap().len(), 3);
    let m = scrape(&server).await;
    assert!(sample(&m, "sluice_read_chunks_total{source=\"memory\"}") >= 3.0);
    assert_eq!(
        sample(&m, "sluice_read_chunks_total{source=\"store\"}"),
        0.0
    );
    assert!(m.contains_key("sluice_cache_chunk_bytes"));

    // A chunk too large to travel in the manifest, read by a node that did not write it.
    let big = "x".repeat(300 * 1024);
    api.append("e", json!({"records": [{"body": big}]}))
        .await
        .assert_status(200);
    let server = server.restart().await;
    let api = Api::new(&server).basin(&basin);
    let reply = api.read("e", "seq_num=3").await.assert_status(200);
    assert_eq!(
        reply["records"][0]["body"].as_str().unwrap().len(),
        big.len()
    );
    let m = scrape(&server).await;
    assert_eq!(
        sample(&m, "sluice_read_chunks_total{source=\"store\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_a_manifest_another_node_changed_counts_a_conflict() {
    // A's upkeep would re-read the manifest (or drop the idle stream) on its next tick,
    // learning of B's commit without a race: the harness's 100 ms tick is shorter than a
    // slow run's gap between the two appends.
    let a = TestServer::start_with(Backend::Ministack, |c| {
        c.engine.maintenance_interval = Duration::from_secs(3600)
    })
    .await;
    let b = a.start_peer().await;
    let basin = basin_name();
    Api::new(&a).create_basin(&basin, json!({})).await;
    let (on_a, on_b) = (Api::new(&a).basin(&basin), Api::new(&b).basin(&basin));
    on_a.create_stream("s", json!(null)).await;
    let record = json!({"records": [{"body": "x"}]});
    on_a.append("s", record.clone()).await.assert_status(200);
    on_b.append("s", record.clone()).await.assert_status(200);
    // A still knows the manifest as of its own commit: its next write loses the race,
    // re-reads, and lands.
    let ack = on_a.append("s", record).await.assert_status(200);
    assert_eq!(ack["start"]["seq_num"], 2);
    assert_eq!(
        sample(&scrape(&a).await, "sluice_commit_conflicts_total"),
        1.0
    );
    assert_eq!(
        sample(&scrape(&b).await, "sluice_commit_conflicts_total"),
        0.0
    );
}
