//! Several nodes on one bucket: any node serves any request, with S2's semantics holding
//! across nodes (visibility, conditions, fencing, timestamps, catalog races, deletion).

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    harness::{Backend, TestServer, basin_name, eventually},
    http::Api,
};

async fn three_nodes() -> (Vec<TestServer>, String) {
    let a = TestServer::start(Backend::Ministack).await;
    let b = a.start_peer().await;
    let c = a.start_peer().await;
    let basin = basin_name();
    Api::new(&a).create_basin(&basin, json!({})).await;
    (vec![a, b, c], basin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_on_one_node_are_visible_on_the_others_at_once() {
    let (nodes, basin) = three_nodes().await;
    let api: Vec<Api> = nodes.iter().map(|n| Api::new(n).basin(&basin)).collect();
    api[0].create_stream("s", json!(null)).await;
    for i in 0..10u64 {
        let ack = api[(i % 3) as usize]
            .append("s", json!({"records": [{"body": format!("{i}")}]}))
            .await
            .assert_status(200);
        assert_eq!(ack["start"]["seq_num"], i);
        // Read-your-writes through any other node: tail and reads revalidate.
        for other in &api {
            assert_eq!(other.tail("s").await, i + 1);
        }
        let read = api[((i + 1) % 3) as usize]
            .read("s", &format!("seq_num={i}"))
            .await
            .assert_status(200);
        assert_eq!(read["records"][0]["body"], format!("{i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_on_another_node_see_appends_within_the_poll_interval() {
    let (nodes, basin) = three_nodes().await;
    let writer = Api::new(&nodes[0]).basin(&basin);
    writer.create_stream("f", json!(null)).await;
    // A long poll on node B wakes for a commit made on node A.
    let poller = {
        let api = Api::new(&nodes[1]).basin(&basin);
        tokio::spawn(async move { api.read("f", "seq_num=0&wait=30").await })
    };
    // The poller is registered once node B has opened the stream; give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = tokio::time::Instant::now();
    writer
        .append("f", json!({"records": [{"body": "across"}]}))
        .await
        .assert_status(200);
    let reply = poller.await.unwrap().assert_status(200);
    assert_eq!(reply["records"][0]["body"], "across");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(2), "took {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_and_fencing_hold_across_nodes() {
    let (nodes, basin) = three_nodes().await;
    let api: Vec<Api> = nodes.iter().map(|n| Api::new(n).basin(&basin)).collect();
    api[0].create_stream("c", json!(null)).await;
    api[0]
        .append("c", json!({"records": [{"body": "0"}], "match_seq_num": 0}))
        .await
        .assert_status(200);
    // Node B has not seen the stream yet; its condition check must still be current.
    let r = api[1]
        .append("c", json!({"records": [{"body": "x"}], "match_seq_num": 0}))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json()),
        (412, json!({"seq_num_mismatch": 1}))
    );
    api[1]
        .append(
            "c",
            json!({"records": [{"headers": [["", "fence"]], "body": "node-b"}], "match_seq_num": 1}),
        )
        .await
        .assert_status(200);
    let r = api[2]
        .append(
            "c",
            json!({"records": [{"body": "y"}], "fencing_token": ""}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json()),
        (412, json!({"fencing_token_mismatch": "node-b"}))
    );
    api[2]
        .append(
            "c",
            json!({"records": [{"body": "y"}], "fencing_token": "node-b"}),
        )
        .await
        .assert_status(200);
    // Timestamps stay monotonic whichever node assigns them.
    let t = api[0]
        .append("c", json!({"records": [{"body": "late", "timestamp": 1}]}))
        .await
        .assert_status(200)["start"]["timestamp"]
        .as_u64()
        .unwrap();
    let read = api[1].read("c", "seq_num=0").await.assert_status(200);
    let ts: Vec<u64> = read["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["timestamp"].as_u64().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    assert_eq!(*ts.last().unwrap(), t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_through_every_node_all_succeed_gap_free() {
    let (nodes, basin) = three_nodes().await;
    Api::new(&nodes[0])
        .basin(&basin)
        .create_stream("hot", json!(null))
        .await;
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for t in 0..3 {
            let api = Api::new(node).basin(&basin);
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..15 {
                    let body = format!("{n}-{t}-{i}");
                    let r = api
                        .append("hot", json!({"records": [{"body": body}]}))
                        .await;
                    let ack = r.assert_status(200);
                    acked.push((ack["start"]["seq_num"].as_u64().unwrap(), body));
                }
                acked
            }));
        }
    }
    let mut acked: Vec<(u64, String)> = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked.sort();
    let api = Api::new(&nodes[2]).basin(&basin);
    let read = api.read("hot", "seq_num=0").await.assert_status(200);
    let got: Vec<(u64, String)> = read["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["seq_num"].as_u64().unwrap(),
                r["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got, acked,
        "every ack exactly once, at its position, gap-free"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_races_resolve_to_one_outcome() {
    let (nodes, basin) = three_nodes().await;
    for round in 0..5 {
        let name = format!("race-{round}");
        let creates: Vec<_> = nodes
            .iter()
            .map(|n| {
                let api = Api::new(n).basin(&basin);
                let name = name.clone();
                tokio::spawn(async move { api.post("/streams", json!({"stream": name})).await })
            })
            .collect();
        let mut statuses = Vec::new();
        for c in creates {
            let r = c.await.unwrap();
            if r.status != 201 {
                r.assert_error(409, "resource_already_exists");
            }
            statuses.push(r.status.as_u16());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{statuses:?}"
        );
    }
    let listed = Api::new(&nodes[1])
        .basin(&basin)
        .get("/streams")
        .await
        .assert_status(200);
    assert_eq!(listed["streams"].as_array().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_on_one_node_stops_appends_on_the_others() {
    let (nodes, basin) = three_nodes().await;
    let a = Api::new(&nodes[0]).basin(&basin);
    let b = Api::new(&nodes[1]).basin(&basin);
    a.create_stream("d", json!(null)).await;
    b.append("d", json!({"records": [{"body": "before"}]}))
        .await
        .assert_status(200);
    a.delete("/streams/d").await.assert_status(202);
    let r = b.append("d", json!({"records": [{"body": "after"}]})).await;
    assert!(
        r.status == 404 || r.status == 409,
        "an append after the deletion is refused: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    if r.status == 409 {
        r.assert_error(409, "stream_deletion_pending");
    }
    eventually(Duration::from_secs(20), || async {
        (b.get("/streams/d").await.status == 404).then_some(())
    })
    .await;
    // The name can be reused through any node, and starts empty.
    b.create_stream("d", json!(null)).await;
    let tail: Value = a.get("/streams/d/records/tail").await.assert_status(200);
    assert_eq!(tail["tail"]["seq_num"], 0);
}
