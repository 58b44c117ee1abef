//! Consumer groups of the plate surface under concurrency: consumers on several nodes
//! (peers on one bucket, or the cluster behind its load balancer) share one group; `>`
//! never hands an entry to two of them, none is lost, and acks are seen from every node.

use std::collections::BTreeSet;

use futures::future::join_all;

use crate::{
    harness::{Backend, TestServer},
    http::Api,
    on_every_backend,
};

on_every_backend!(consumers_on_several_nodes_share_a_group_exactly);

const ENTRIES: usize = 90;
const CONSUMERS: usize = 6;

async fn consumers_on_several_nodes_share_a_group_exactly(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = server.create_basin(false).await.to_string();
    // On ministack consumers talk to three nodes on one bucket; the cluster spreads them
    // over its nodes through the balancer.
    let mut nodes = vec![];
    if backend == Backend::Ministack {
        nodes.push(server.start_peer().await);
        nodes.push(server.start_peer().await);
    }
    let plates: Vec<Api> = std::iter::once(&server)
        .chain(nodes.iter())
        .map(|n| Api::plate(n, &basin))
        .collect();
    let plate = &plates[0];
    plate
        .command(&["XGROUP", "CREATE", "jobs", "workers", "0", "MKSTREAM"])
        .await
        .unwrap();
    let mut added = BTreeSet::new();
    for i in 0..ENTRIES {
        let id = plates[i % plates.len()]
            .command(&["XADD", "jobs", "*", "n", &i.to_string()])
            .await
            .unwrap();
        added.insert(id.as_str().unwrap().to_owned());
    }

    let plates = &plates;
    let consumers = (0..CONSUMERS).map(|c| {
        let plate = &plates[c % plates.len()];
        async move {
            let consumer = format!("c{c}");
            let mut got = Vec::new();
            while let Some(ids) = plate.read_new("jobs", "workers", &consumer, 4).await {
                // Half the acks go through another node than the read.
                let acker = &plates[(c + ids.len()) % plates.len()];
                acker.ack_all("jobs", "workers", &ids).await;
                got.extend(ids);
            }
            got
        }
    });
    let delivered: Vec<String> = join_all(consumers).await.into_iter().flatten().collect();
    let unique: BTreeSet<String> = delivered.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        delivered.len(),
        "an entry went to two consumers"
    );
    assert_eq!(unique, added, "an entry was lost");
    for plate in plates {
        let summary = plate
            .command(&["XPENDING", "jobs", "workers"])
            .await
            .unwrap();
        assert_eq!(summary[0], 0, "acks not seen on every node: {summary}");
        let groups = plate.command(&["XINFO", "GROUPS", "jobs"]).await.unwrap();
        assert_eq!(groups[0]["entries-read"], ENTRIES, "{groups}");
        assert_eq!(groups[0]["lag"], 0, "{groups}");
    }
}
