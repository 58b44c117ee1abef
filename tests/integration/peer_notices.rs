//! Nodes telling each other of commits (`--peers`): a follower on node B sees node A's
//! commit through A's answer to B's watch, without B polling; with the peer down, B's
//! polling still delivers; the watch is refused without the cluster's secret.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::json;
use sluice::{
    engine::PollIntervals,
    peers::{PeerAddr, wire::WATCH_PATH},
};

use crate::{
    harness::{Backend, TestServer, basin_name},
    http::Api,
};

/// Polling so rare that a test would time out long before a follower's poll.
const NEVER: Duration = Duration::from_secs(3600);

const ADOPTED: &str = "sluice_peer_notices_total{outcome=\"adopted\"}";
const FAILED: &str = "sluice_peer_watches_total{result=\"failed\"}";

/// An SSE read of `stream` on `node` from the start: returns once the session follows the
/// tail (its first event, a ping, comes after it counts as following), and the rest of
/// the body to wait for records on.
async fn follow(
    node: &TestServer,
    basin: &str,
    stream: &str,
) -> impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin {
    let resp = Api::new(node)
        .basin(basin)
        .request(Method::GET, &format!("/streams/{stream}/records?seq_num=0"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("a ping when the session follows")
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&first).contains("ping"),
        "{first:?}"
    );
    body
}

/// Reads events until one carries `body`.
async fn until_record(
    events: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    body: &str,
) {
    let mut text = String::new();
    while !text.contains(body) {
        let chunk = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("the record in time")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// B polls (and runs upkeep) once an hour, so the record reaches B's follower only as A's
/// answer to B's watch: B adopts A's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_sees_another_nodes_commit_through_its_notice() {
    let a = TestServer::start(Backend::Ministack).await;
    let a_addr = PeerAddr(a.addr.clone());
    let b = a
        .start_peer_with(|c| {
            c.peers.peers = vec![a_addr];
            c.engine.poll = Some(PollIntervals {
                express: NEVER,
                standard: NEVER,
            });
            // Upkeep re-reads open streams' manifests too.
            c.engine.maintenance_interval = NEVER;
        })
        .await;
    let basin = basin_name();
    Api::new(&a).create_basin(&basin, json!({})).await;
    let writer = Api::new(&a).basin(&basin);
    writer.create_stream("n", json!(null)).await;

    let mut events = follow(&b, &basin, "n").await;
    for i in 0..3 {
        writer
            .append("n", json!({"records": [{"body": format!("notice-{i}")}]}))
            .await
            .assert_status(200);
        until_record(&mut events, &format!("notice-{i}")).await;
    }
    assert!(b.metric(ADOPTED).await >= 1, "adopted A's states");
    assert_eq!(b.metric(FAILED).await, 0);
}

/// B's only peer is down: its watch fails, and its followers poll at the usual rate, so
/// A's commit still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_peer_down_polling_still_delivers() {
    let a = TestServer::start(Backend::Ministack).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let b = a
        .start_peer_with(|c| {
            c.peers.peers = vec![PeerAddr(closed)];
            c.engine.maintenance_interval = NEVER;
        })
        .await;
    let basin = basin_name();
    Api::new(&a).create_basin(&basin, json!({})).await;
    let writer = Api::new(&a).basin(&basin);
    writer.create_stream("d", json!(null)).await;

    let mut events = follow(&b, &basin, "d").await;
    writer
        .append("d", json!({"records": [{"body": "polled"}]}))
        .await
        .assert_status(200);
    until_record(&mut events, "polled").await;
    assert_eq!(b.metric(ADOPTED).await, 0, "nothing came as a notice");
    assert!(
        b.metric(FAILED).await >= 1,
        "the watch of the closed port failed"
    );
}

/// With a root token the watch needs it (or the peer secret): refused without, with a
/// wrong one, answered with it; a malformed watch is a 400, not a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_needs_the_clusters_secret() {
    let node =
        TestServer::start_with(Backend::Local, |c| c.root_token = Some("root-1".into())).await;
    let http = node.http();
    let watch = json!({"hold_ms": 10, "streams": []});
    let refused = http
        .post(node.url(WATCH_PATH))
        .json(&watch)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let wrong = http
        .post(node.url(WATCH_PATH))
        .bearer_auth("root-2")
        .json(&watch)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let answered = http
        .post(node.url(WATCH_PATH))
        .bearer_auth("root-1")
        .json(&watch)
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 200);
    assert!(answered.bytes().await.unwrap().is_empty(), "nothing newer");
    let malformed = http
        .post(node.url(WATCH_PATH))
        .bearer_auth("root-1")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
}
