//! Each Redis key's home node (`--peers`): the commands that change a key run on one node
//! whichever node the client reached, so writers and consumers of one key on two nodes
//! never race each other's conditional writes; a blocking group read forwarded to the home
//! waits there for as long as the client asked; with the home gone, the key's commands
//! run where they arrive; a node serves forwarded commands only to callers with the
//! cluster's secret.
//!
//! Node B names node A in `--peers` and A names none: B sends A the keys whose home is A
//! (by B's view of the two), A runs every command itself.

use std::{collections::BTreeSet, time::Duration};

use futures::future::join_all;
use serde_json::Value;
use sluice::peers::PeerAddr;

use crate::{
    harness::{Backend, TestServer},
    http::Api,
};

const FORWARDED: &str = "sluice_redis_key_homes_total{outcome=\"forwarded\"}";
const CONFLICTS: &str = "sluice_commit_conflicts_total";

/// Node A, node B naming A as its peer, a plate on them, and a key whose home is A: the
/// first key B forwards (B knows A's id within a probe interval of starting).
async fn two_nodes_and_a_key_homed_on_a() -> (TestServer, TestServer, String, String) {
    let a = TestServer::start(Backend::Ministack).await;
    let a_addr = PeerAddr(a.addr.clone());
    let b = a.start_peer_with(|c| c.peers.peers = vec![a_addr]).await;
    let plate = a.create_basin(false).await.to_string();
    let via_b = Api::plate(&b, &plate);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for i in 0.. {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never forwarded a command to A"
        );
        let key = format!("key-{i}");
        let before = b.metric(FORWARDED).await;
        via_b
            .command(&["XADD", &key, "*", "seed", "1"])
            .await
            .unwrap();
        if b.metric(FORWARDED).await > before {
            return (a, b, plate, key);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_and_consumers_of_one_key_on_two_nodes_never_race() {
    const WRITERS: usize = 16;
    const ADDS: usize = 20;
    const CONSUMERS: usize = 8;
    let (a, b, plate, key) = two_nodes_and_a_key_homed_on_a().await;
    let nodes = [Api::plate(&a, &plate), Api::plate(&b, &plate)];
    let conflicts_before = (a.metric(CONFLICTS).await, b.metric(CONFLICTS).await);
    let forwarded_before = b.metric(FORWARDED).await;

    let nodes = &nodes;
    let key = key.as_str();
    let writers = (0..WRITERS).map(|w| async move {
        let mut ids = Vec::new();
        for i in 0..ADDS {
            let id = nodes[w % 2]
                .command(&["XADD", key, "*", "w", &w.to_string(), "i", &i.to_string()])
                .await
                .unwrap_or_else(|e| panic!("writer {w}'s add {i}: {e:?}"));
            ids.push(id.as_str().unwrap().to_owned());
        }
        ids
    });
    let added: Vec<String> = join_all(writers).await.into_iter().flatten().collect();
    let unique: BTreeSet<String> = added.iter().cloned().collect();
    assert_eq!(unique.len(), WRITERS * ADDS, "ids given twice");
    for node in nodes {
        assert_eq!(
            node.command(&["XLEN", key]).await.unwrap(),
            WRITERS * ADDS + 1
        );
    }

    nodes[1]
        .command(&["XGROUP", "CREATE", key, "workers", "0"])
        .await
        .unwrap();
    let consumers = (0..CONSUMERS).map(|c| async move {
        let consumer = format!("c{c}");
        let mut got = Vec::new();
        while let Some(ids) = nodes[c % 2].read_new(key, "workers", &consumer, 10).await {
            nodes[(c + 1) % 2].ack_all(key, "workers", &ids).await;
            got.extend(ids);
        }
        got
    });
    let delivered: Vec<String> = join_all(consumers).await.into_iter().flatten().collect();
    let delivered_once: BTreeSet<String> = delivered.iter().cloned().collect();
    assert_eq!(
        delivered_once.len(),
        delivered.len(),
        "an entry went to two consumers"
    );
    assert_eq!(
        delivered_once.len(),
        WRITERS * ADDS + 1,
        "an entry was lost"
    );
    for node in nodes {
        let summary = node.command(&["XPENDING", key, "workers"]).await.unwrap();
        assert_eq!(summary[0], 0, "acks not seen on every node: {summary}");
    }

    // Every one of B's commands went to A, so no commit on either node found the stream
    // changed underneath it.
    assert!(b.metric(FORWARDED).await >= forwarded_before + (WRITERS * ADDS / 2) as u64);
    assert_eq!(
        (a.metric(CONFLICTS).await, b.metric(CONFLICTS).await),
        conflicts_before,
        "commits raced although every write went to the key's home"
    );
}

/// A forwarded `BLOCK` longer than one wait on the home (5 s) is asked again until the
/// client's time is up, and an add on the home wakes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_group_read_forwarded_to_the_home_waits_as_long_as_asked() {
    let (a, b, plate, key) = two_nodes_and_a_key_homed_on_a().await;
    let (on_a, on_b) = (Api::plate(&a, &plate), Api::plate(&b, &plate));
    on_b.command(&["XGROUP", "CREATE", &key, "g", "$"])
        .await
        .unwrap();
    let read = {
        let key = key.clone();
        tokio::spawn(async move {
            on_b.command(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "20000",
                "STREAMS",
                &key,
                ">",
            ])
            .await
            .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!read.is_finished(), "the read did not wait");
    let id = on_a
        .command(&["XADD", &key, "*", "late", "1"])
        .await
        .unwrap();
    let reply: Value = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the add wakes the read")
        .unwrap();
    assert_eq!(reply[key.as_str()][0][0], id, "{reply}");
}

/// More blocked group reads than one HTTP/2 connection carries at once, forwarded to the
/// home: an add through the same node is not held behind them (it takes another
/// connection), and wakes one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blocked_reads_forwarded_by_the_hundred_do_not_hold_up_other_commands() {
    const READERS: usize = 120;
    let (_a, b, plate, key) = two_nodes_and_a_key_homed_on_a().await;
    let on_b = Api::plate(&b, &plate);
    on_b.command(&["XGROUP", "CREATE", &key, "g", "$"])
        .await
        .unwrap();
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (on_b, key) = (Api::plate(&b, &plate), key.clone());
            tokio::spawn(async move {
                let consumer = format!("c{r}");
                on_b.command(&[
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    &consumer,
                    "BLOCK",
                    "0",
                    "STREAMS",
                    &key,
                    ">",
                ])
                .await
                .unwrap()
            })
        })
        .collect();
    // Every read is waiting on the home once B has forwarded them all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while b.metric(FORWARDED).await < READERS as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reads were not forwarded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = tokio::time::timeout(
        Duration::from_secs(3),
        on_b.command(&["XADD", &key, "*", "wake", "1"]),
    )
    .await
    .expect("an add is not held behind blocked reads")
    .unwrap();
    let woken = loop {
        if let Some(done) = readers.iter().position(|r| r.is_finished()) {
            break done;
        }
        assert!(tokio::time::Instant::now() < deadline, "no read woke");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut readers = readers;
    let reply = readers.swap_remove(woken).await.unwrap();
    assert_eq!(reply[key.as_str()][0][0], id, "{reply}");
    for r in readers {
        r.abort();
    }
}

/// With its home stopped, a key's commands run on the node they reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_home_gone_a_keys_commands_run_where_they_arrive() {
    let (mut a, b, plate, key) = two_nodes_and_a_key_homed_on_a().await;
    a.stop().await;
    let on_b = Api::plate(&b, &plate);
    on_b.command(&["XADD", &key, "*", "after", "1"])
        .await
        .unwrap();
    assert_eq!(on_b.command(&["XLEN", &key]).await.unwrap(), 2);
}

/// A node with a root token (and so a peer secret) runs a forwarded command only for a
/// caller that presents it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_commands_need_the_clusters_secret() {
    let node = TestServer::start_with(Backend::Ministack, |c| {
        c.root_token = Some("root-secret".into())
    })
    .await;
    let url = node.url("/_sluice/peer/v1/redis");
    let client = node.http();
    let unauthorized = client.post(&url).body("x").send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);
    let no_plate = client
        .post(&url)
        .bearer_auth("root-secret")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(no_plate.status(), 400);
    let node_id = client
        .get(node.url("/_sluice/peer/v1/node"))
        .send()
        .await
        .unwrap();
    assert_eq!(node_id.status(), 401);
}
