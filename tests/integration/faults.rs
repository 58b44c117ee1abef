//! Storage faults (failed requests, lost responses, delays) under concurrent appends: an
//! acked append is durable and applied once; nothing is ever applied twice. Under the same
//! faults a consumer group hands each entry to one consumer and loses none.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;
use sluice::storage::{
    DynStore,
    faulty::{Faults, FaultyStore},
};

use crate::{
    harness::{Backend, TestServer, basin_name},
    http::Api,
    on_both_backends,
};

on_both_backends!(
    faults_never_lose_acked_or_duplicate_appends,
    faults_never_hand_a_group_entry_to_two_consumers,
);

/// (batch tag, acked seq range if acked, HTTP status).
type Outcome = (String, Option<(u64, u64)>, u16);

/// A node over a fault-injecting store, and the handle that sets its faults.
async fn faulty_server(backend: Backend) -> (TestServer, Arc<FaultyStore>) {
    let faulty: Arc<Mutex<Option<Arc<FaultyStore>>>> = Arc::default();
    let slot = faulty.clone();
    let server = TestServer::start_wrapped(
        backend,
        |_| {},
        move |store| {
            let f = Arc::new(FaultyStore::new(store, 0x5eed, Faults::default()));
            *slot.lock().unwrap() = Some(f.clone());
            f as DynStore
        },
    )
    .await;
    let faulty = faulty.lock().unwrap().clone().unwrap();
    (server, faulty)
}

fn some_faults() -> Faults {
    Faults {
        fail_before: 0.15,
        lose_response: 0.15,
        delay: 0.2,
        max_delay: Duration::from_millis(20),
    }
}

/// Only retryable storage-side failures are acceptable under injected faults.
#[track_caller]
fn assert_retryable(reply: &crate::http::Reply) {
    let code = reply.json()["code"].as_str().unwrap().to_owned();
    assert!(
        ["storage", "transaction_conflict", "other"].contains(&code.as_str()),
        "unexpected {code}"
    );
}

async fn faults_never_lose_acked_or_duplicate_appends(backend: Backend) {
    let (server, faulty) = faulty_server(backend).await;
    let basin = basin_name();
    Api::new(&server).create_basin(&basin, json!({})).await;
    Api::new(&server)
        .basin(&basin)
        .create_stream("f", json!(null))
        .await;

    faulty.set_faults(some_faults());
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for t in 0..4 {
        let api = Api::new(&server).basin(&basin);
        let outcomes = outcomes.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while tokio::time::Instant::now() < deadline {
                let tag = format!("{t}-{i}");
                let reply = api
                    .append("f", json!({"records": [{"body": format!("{tag}/0")}, {"body": format!("{tag}/1")}]}))
                    .await;
                let range = (reply.status == 200).then(|| {
                    let j = reply.json();
                    (j["start"]["seq_num"].as_u64().unwrap(), j["end"]["seq_num"].as_u64().unwrap())
                });
                if reply.status != 200 {
                    assert_retryable(&reply);
                }
                outcomes.lock().unwrap().push((tag, range, reply.status.as_u16()));
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    faulty.set_faults(Faults::default());

    let outcomes = outcomes.lock().unwrap().clone();
    let acked = outcomes.iter().filter(|o| o.1.is_some()).count();
    let failed = outcomes.len() - acked;
    assert!(
        acked > 20,
        "too few successful appends to mean anything: {acked}"
    );
    eprintln!("faults test: {acked} acked, {failed} failed appends");

    let api = Api::new(&server).basin(&basin);
    let tail = api.tail("f").await;
    let mut positions: HashMap<String, u64> = HashMap::new();
    let mut next = 0;
    while next < tail {
        let reply = api
            .read("f", &format!("seq_num={next}"))
            .await
            .assert_status(200);
        for r in reply["records"].as_array().unwrap() {
            assert_eq!(r["seq_num"].as_u64().unwrap(), next, "gap-free");
            let body = r["body"].as_str().unwrap().to_owned();
            assert!(
                positions.insert(body.clone(), next).is_none(),
                "{body} applied twice"
            );
            next += 1;
        }
    }
    for (tag, range, _) in &outcomes {
        match range {
            Some((start, end)) => {
                assert_eq!(end - start, 2);
                assert_eq!(
                    positions.get(&format!("{tag}/0")),
                    Some(start),
                    "acked {tag} lost or moved"
                );
                assert_eq!(positions.get(&format!("{tag}/1")), Some(&(start + 1)));
            }
            None => {
                // A failed append may have landed (the error said so), but atomically.
                assert_eq!(
                    positions.contains_key(&format!("{tag}/0")),
                    positions.contains_key(&format!("{tag}/1")),
                    "{tag} half applied"
                );
            }
        }
    }
    let landed = positions.len() / 2;
    assert!(landed >= acked && landed <= outcomes.len());
}

async fn faults_never_hand_a_group_entry_to_two_consumers(backend: Backend) {
    let (server, faulty) = faulty_server(backend).await;
    let basin = basin_name();
    Api::new(&server).create_basin(&basin, json!({})).await;
    let plate = Api::plate(&server, &basin);
    plate
        .command(&["XGROUP", "CREATE", "work", "g", "0", "MKSTREAM"])
        .await
        .unwrap();
    let mut all = Vec::new();
    for i in 0..60 {
        let id = plate
            .command(&["XADD", "work", "*", "i", &i.to_string()])
            .await
            .unwrap();
        all.push(id.as_str().unwrap().to_owned());
    }

    faulty.set_faults(some_faults());
    let consumers = (0..3).map(|c| {
        let plate = Api::plate(&server, &basin);
        tokio::spawn(async move {
            let mut got = Vec::new();
            let consumer = format!("c{c}");
            loop {
                let args = [
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    &consumer,
                    "COUNT",
                    "4",
                    "STREAMS",
                    "work",
                    ">",
                ];
                let reply = match plate.command(&args).await {
                    Ok(reply) => reply,
                    Err((status, error)) => {
                        assert_eq!(
                            (status, error["code"].as_str()),
                            (503, Some("unavailable")),
                            "{error}"
                        );
                        continue;
                    }
                };
                if reply.is_null() {
                    return got;
                }
                for e in reply["work"].as_array().unwrap() {
                    got.push(e[0].as_str().unwrap().to_owned());
                }
            }
        })
    });
    let mut returned: HashMap<String, usize> = HashMap::new();
    for (c, task) in consumers.enumerate() {
        for id in task.await.unwrap() {
            assert!(
                returned.insert(id.clone(), c).is_none(),
                "{id} handed out twice"
            );
        }
    }
    faulty.set_faults(Faults::default());

    // Every entry is pending with exactly one consumer, the one it was returned to if it
    // was returned (a lost response leaves it pending, for that consumer's history).
    let mut pending: HashMap<String, usize> = HashMap::new();
    for c in 0..3 {
        let consumer = format!("c{c}");
        let args = [
            "XREADGROUP",
            "GROUP",
            "g",
            &consumer,
            "STREAMS",
            "work",
            "0",
        ];
        let history = plate.command(&args).await.unwrap();
        for e in history["work"].as_array().unwrap() {
            let id = e[0].as_str().unwrap().to_owned();
            assert!(
                pending.insert(id.clone(), c).is_none(),
                "{id} pending twice"
            );
        }
    }
    let mut ids: Vec<&String> = pending.keys().collect();
    ids.sort_by_key(|id| id.rsplit('-').next().unwrap().parse::<u64>().unwrap());
    assert_eq!(ids, all.iter().collect::<Vec<_>>(), "an entry was lost");
    for (id, c) in &returned {
        assert_eq!(
            pending.get(id),
            Some(c),
            "{id} returned to c{c}, pending elsewhere"
        );
    }
    eprintln!(
        "group faults test: {} of {} entries returned, the rest pending after lost responses",
        returned.len(),
        all.len()
    );
}
