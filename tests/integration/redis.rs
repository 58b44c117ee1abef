//! The Redis-Streams-style surface over plain HTTP: entries, ranges, blocking reads and
//! consumer groups, on every backend; consumers on several nodes share a group.

use std::collections::BTreeSet;

use futures::future::join_all;
use s2_sdk::types::{AppendInput, AppendRecord, AppendRecordBatch, CommandRecord};
use serde_json::{Value, json};

use crate::{
    harness::{Backend, TestServer, eventually},
    http::Api,
    on_every_backend,
};

on_every_backend!(
    entries_are_added_ranged_and_read,
    consumer_groups_track_delivery_acks_and_claims,
    concurrent_consumers_never_share_an_entry,
    entries_whose_records_are_gone_leave_the_pending_list,
    reverse_ranges_trims_and_info,
);

fn ids(reply: &Value) -> Vec<String> {
    reply["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {reply}"))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

fn seq_of(id: &str) -> u64 {
    id.rsplit('-').next().unwrap().parse().unwrap()
}

async fn add(key: &Api, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        let reply = key
            .post(
                "/xadd",
                json!({"fields": [["n", i.to_string()], ["kind", "test"]]}),
            )
            .await
            .assert_status(200);
        out.push(reply["id"].as_str().unwrap().to_owned());
    }
    out
}

async fn entries_are_added_ranged_and_read(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = server.create_basin(false).await.to_string();
    let key = Api::redis_key(&server, &basin, "orders/eu");
    key.post("/xadd", json!({"fields": [["a", "1"]], "nomkstream": true}))
        .await
        .assert_error(404, "stream_not_found");
    let added = add(&key, 3).await;
    assert_eq!(
        added.iter().map(|id| seq_of(id)).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let first_ms: u64 = added[0].split('-').next().unwrap().parse().unwrap();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() as u64 * 1000;
    assert!(
        first_ms.abs_diff(now_ms) < 600_000,
        "ids carry the time: {first_ms}"
    );

    assert_eq!(key.get("/xlen").await.assert_status(200)["length"], 3);
    let all = key.get("/xrange").await.assert_status(200);
    assert_eq!(ids(&all), added);
    assert_eq!(
        all["entries"][1]["fields"],
        json!([["n", "1"], ["kind", "test"]])
    );
    let page = key
        .get(&format!("/xrange?start=({}&count=1", added[0]))
        .await
        .assert_status(200);
    assert_eq!(ids(&page), [added[1].clone()]);
    let upto = key
        .get(&format!("/xrange?start=-&end=({}", added[2]))
        .await
        .assert_status(200);
    assert_eq!(ids(&upto), added[..2]);
    let none = key.get("/xrange?end=(0-0").await.assert_status(200);
    assert_eq!(ids(&none), Vec::<String>::new());

    let after = key
        .get(&format!("/xread?id={}", added[0]))
        .await
        .assert_status(200);
    assert_eq!(ids(&after), added[1..]);
    let fresh = key.get("/xread?id=$").await.assert_status(200);
    assert_eq!(ids(&fresh), Vec::<String>::new());
    // A blocking read after the last id returns the next entry whenever it comes.
    let waiting = {
        let key = Api::redis_key(&server, &basin, "orders/eu");
        let last = added[2].clone();
        tokio::spawn(async move {
            key.get(&format!("/xread?id={last}&block_ms=30000"))
                .await
                .assert_status(200)
        })
    };
    let next = add(&key, 1).await;
    assert_eq!(ids(&waiting.await.unwrap()), next);

    // Records appended through the S2 API show as entries; command records do not.
    let stream = server
        .sdk()
        .basin(basin.parse().unwrap())
        .stream("orders/eu".parse().unwrap());
    let batch = AppendRecordBatch::try_from_iter([
        AppendRecord::from(CommandRecord::fence("f".parse().unwrap())),
        AppendRecord::new("plain body").unwrap(),
    ])
    .unwrap();
    stream.append(AppendInput::new(batch)).await.unwrap();
    let tail = key
        .get(&format!("/xrange?start=({}", next[0]))
        .await
        .assert_status(200);
    assert_eq!(tail["entries"].as_array().unwrap().len(), 1, "{tail}");
    assert_eq!(tail["entries"][0]["body"], "plain body");
    assert_eq!(tail["entries"][0]["fields"], json!([]));

    key.post("/xadd", json!({"fields": []}))
        .await
        .assert_error(422, "invalid");
    key.post("/xadd", json!({"fields": [["", "v"]]}))
        .await
        .assert_error(422, "invalid");
    key.get("/xrange?start=nope")
        .await
        .assert_error(400, "bad_query");
    key.get("/xread?id=1").await.assert_error(400, "bad_query");
}

async fn consumer_groups_track_delivery_acks_and_claims(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = server.create_basin(false).await.to_string();
    let key = Api::redis_key(&server, &basin, "jobs");
    let group = |extra: Value| {
        let mut body = json!({"group": "workers"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    key.post("/xgroup/create", group(json!({"id": "0"})))
        .await
        .assert_error(404, "stream_not_found");
    key.post(
        "/xgroup/create",
        group(json!({"id": "0", "mkstream": true})),
    )
    .await
    .assert_status(201);
    key.post("/xgroup/create", group(json!({"id": "0"})))
        .await
        .assert_error(409, "BUSYGROUP");
    let added = add(&key, 5).await;

    let read = |consumer: &str, id: &str, count: u64| {
        key.post(
            "/xreadgroup",
            group(json!({"consumer": consumer, "id": id, "count": count})),
        )
    };
    assert_eq!(ids(&read("a", ">", 2).await.assert_status(200)), added[..2]);
    assert_eq!(
        ids(&read("b", ">", 10).await.assert_status(200)),
        added[2..]
    );
    assert_eq!(
        ids(&read("a", ">", 10).await.assert_status(200)),
        Vec::<String>::new()
    );

    let summary = key.get("/xpending?group=workers").await.assert_status(200);
    assert_eq!(summary["pending"], 5);
    assert_eq!(summary["min_id"], added[0].as_str());
    assert_eq!(summary["max_id"], added[4].as_str());
    assert_eq!(
        summary["consumers"],
        json!([{"name": "a", "pending": 2}, {"name": "b", "pending": 3}])
    );

    let ack = |ids: &[String]| key.post("/xack", group(json!({"ids": ids})));
    assert_eq!(ack(&added[..2]).await.assert_status(200)["acked"], 2);
    assert_eq!(ack(&added[..2]).await.assert_status(200)["acked"], 0);

    // A consumer's history: its own pending entries, delivered again.
    let history = read("b", "0", 10).await.assert_status(200);
    assert_eq!(ids(&history), added[2..]);
    assert_eq!(history["entries"][0]["fields"][0], json!(["n", "2"]));
    let listed = key
        .get("/xpending?group=workers&start=-&end=%2B&count=10&consumer=b")
        .await
        .assert_status(200);
    let deliveries: Vec<u64> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["deliveries"].as_u64().unwrap())
        .collect();
    assert_eq!(deliveries, [2, 2, 2]);

    let claimed = key
        .post(
            "/xclaim",
            group(json!({"consumer": "c", "min_idle_ms": 0, "ids": [added[2]]})),
        )
        .await
        .assert_status(200);
    assert_eq!(ids(&claimed), [added[2].clone()]);
    let not_idle = key
        .post(
            "/xclaim",
            group(json!({"consumer": "c", "min_idle_ms": 3_600_000, "ids": [added[3]], "justid": true})),
        )
        .await
        .assert_status(200);
    assert_eq!(not_idle["ids"], json!([]));
    let auto = key
        .post(
            "/xautoclaim",
            group(json!({"consumer": "a", "min_idle_ms": 0, "start": "0-0", "count": 2})),
        )
        .await
        .assert_status(200);
    assert_eq!(ids(&auto), added[2..4]);
    assert_eq!(auto["next"], added[4].as_str());
    assert_eq!(auto["deleted"], json!([]));

    let info = key.get("/xinfo/groups").await.assert_status(200);
    assert_eq!(
        info["groups"],
        json!([{"name": "workers", "consumers": 3, "pending": 3, "last_delivered_id": added[4]}])
    );
    let removed = key
        .post("/xgroup/delconsumer", group(json!({"consumer": "a"})))
        .await
        .assert_status(200);
    assert_eq!(removed["pending"], 2);
    assert_eq!(
        key.post("/xgroup/destroy", group(json!({})))
            .await
            .assert_status(200)["destroyed"],
        1
    );
    read("a", ">", 1).await.assert_error(404, "NOGROUP");
    key.post("/xack", group(json!({"ids": ["x"]})))
        .await
        .assert_error(400, "bad_query");
}

async fn concurrent_consumers_never_share_an_entry(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = server.create_basin(false).await.to_string();
    let key = Api::redis_key(&server, &basin, "tasks");
    key.post(
        "/xgroup/create",
        json!({"group": "g", "id": "0", "mkstream": true}),
    )
    .await
    .assert_status(201);
    let added: BTreeSet<String> = add(&key, 60).await.into_iter().collect();
    // On ministack half the consumers talk to a second node on the same bucket.
    let peer = match backend {
        Backend::Ministack => Some(server.start_peer().await),
        _ => None,
    };
    let consumers = (0..4).map(|i| {
        let node = match (&peer, i % 2) {
            (Some(peer), 1) => peer,
            _ => &server,
        };
        let key = Api::redis_key(node, &basin, "tasks");
        async move {
            let mut got = Vec::new();
            loop {
                let reply = key
                    .post(
                        "/xreadgroup",
                        json!({"group": "g", "consumer": format!("c{i}"), "count": 3}),
                    )
                    .await
                    .assert_status(200);
                let batch = ids(&reply);
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch);
            }
        }
    });
    let delivered: Vec<String> = join_all(consumers).await.into_iter().flatten().collect();
    let unique: BTreeSet<String> = delivered.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        delivered.len(),
        "an entry went to two consumers"
    );
    assert_eq!(unique, added);
    let summary = key.get("/xpending?group=g").await.assert_status(200);
    assert_eq!(summary["pending"], 60);
}

async fn entries_whose_records_are_gone_leave_the_pending_list(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = server.create_basin(false).await.to_string();
    let key = Api::redis_key(&server, &basin, "trimmed");
    key.post(
        "/xgroup/create",
        json!({"group": "g", "id": "0", "mkstream": true}),
    )
    .await
    .assert_status(201);
    let added = add(&key, 4).await;
    let read = key
        .post("/xreadgroup", json!({"group": "g", "consumer": "a"}))
        .await
        .assert_status(200);
    assert_eq!(ids(&read), added);
    let stream = server
        .sdk()
        .basin(basin.parse().unwrap())
        .stream("trimmed".parse().unwrap());
    let trim =
        AppendRecordBatch::try_from_iter([AppendRecord::from(CommandRecord::trim(2))]).unwrap();
    stream.append(AppendInput::new(trim)).await.unwrap();
    eventually(std::time::Duration::from_secs(30), || async {
        let left = key.get("/xrange").await.assert_status(200);
        (ids(&left) == added[2..]).then_some(())
    })
    .await;

    let history = key
        .post(
            "/xreadgroup",
            json!({"group": "g", "consumer": "a", "id": "0"}),
        )
        .await
        .assert_status(200);
    assert_eq!(ids(&history), added);
    assert_eq!(history["entries"][0]["fields"], Value::Null);
    assert_eq!(history["entries"][2]["fields"][0], json!(["n", "2"]));
    let auto = key
        .post(
            "/xautoclaim",
            json!({"group": "g", "consumer": "b", "min_idle_ms": 0}),
        )
        .await
        .assert_status(200);
    assert_eq!(ids(&auto), added[2..]);
    assert_eq!(auto["deleted"], json!(added[..2]));
    let summary = key.get("/xpending?group=g").await.assert_status(200);
    assert_eq!(summary["pending"], 2);
}

async fn reverse_ranges_trims_and_info(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = server.create_basin(false).await.to_string();
    let key = Api::redis_key(&server, &basin, "events");
    let added = add(&key, 5).await;
    let newest = key.get("/xrevrange?count=2").await.assert_status(200);
    assert_eq!(ids(&newest), [added[4].clone(), added[3].clone()]);
    let window = key
        .get(&format!("/xrevrange?end=({}&start={}", added[3], added[1]))
        .await
        .assert_status(200);
    assert_eq!(ids(&window), [added[2].clone(), added[1].clone()]);
    let all = key.get("/xrevrange").await.assert_status(200);
    assert_eq!(ids(&all), added.iter().rev().cloned().collect::<Vec<_>>());

    let info = key.get("/xinfo/stream").await.assert_status(200);
    assert_eq!(info["length"], 5);
    assert_eq!(info["groups"], 0);
    assert_eq!(info["first_entry"]["id"], added[0].as_str());
    assert_eq!(info["last_entry"]["id"], added[4].as_str());
    assert_eq!(info["last_generated_id"], added[4].as_str());

    key.post("/xgroup/create", json!({"group": "g", "id": "0"}))
        .await
        .assert_status(201);
    key.post(
        "/xreadgroup",
        json!({"group": "g", "consumer": "a", "count": 2}),
    )
    .await
    .assert_status(200);
    let consumers = key.get("/xinfo/consumers?group=g").await.assert_status(200);
    assert_eq!(consumers["consumers"][0]["name"], "a");
    assert_eq!(consumers["consumers"][0]["pending"], 2);
    assert!(consumers["consumers"][0]["idle_ms"].is_u64(), "{consumers}");
    key.get("/xinfo/consumers?group=nope")
        .await
        .assert_error(404, "NOGROUP");

    // MAXLEN 2 keeps the last two entries; the trim is itself a record.
    let trimmed = key
        .post("/xtrim", json!({"maxlen": 2}))
        .await
        .assert_status(200);
    assert_eq!(trimmed["trimmed"], 3);
    let remaining = |want: Vec<String>| {
        let key = &key;
        async move {
            eventually(std::time::Duration::from_secs(30), || async {
                let left = key.get("/xrange").await.assert_status(200);
                (ids(&left) == want).then_some(())
            })
            .await
        }
    };
    remaining(added[3..].to_vec()).await;
    assert_eq!(key.get("/xlen").await.assert_status(200)["length"], 3);
    let trimmed = key
        .post("/xtrim", json!({"minid": added[4]}))
        .await
        .assert_status(200);
    assert_eq!(trimmed["trimmed"], 1);
    remaining(added[4..].to_vec()).await;
    for body in [json!({}), json!({"maxlen": 1, "minid": added[4]})] {
        key.post("/xtrim", body).await.assert_error(422, "invalid");
    }
}
