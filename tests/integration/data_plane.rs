//! Unary append and read over JSON and protobuf: formats, conditions, command records,
//! timestamps, start positions, bounds, long polls, auto-creation.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use prost::Message;
use reqwest::Method;
use s2_api::v1::stream::proto;
use serde_json::{Value, json};

use crate::{
    harness::{Backend, TestServer, basin_name},
    http::Api,
    on_every_backend,
};

on_every_backend!(
    json_append_and_read_round_trip,
    protobuf_append_and_read_round_trip,
    conditions_fail_with_exact_bodies,
    fence_and_trim_commands,
    timestamping_modes,
    start_positions_and_bounds,
    long_poll_returns_when_records_arrive,
    auto_create_on_append_and_read,
    large_batches_and_many_chunks_read_back,
);

/// Tests that configure or restart the node run in process only.
mod in_process {
    use super::*;

    crate::on_both_backends!(retention_and_delete_on_empty_apply_in_the_background,);
}

async fn setup(backend: Backend) -> (TestServer, Api, String) {
    let server = TestServer::start(backend).await;
    let basin = basin_name();
    Api::new(&server).create_basin(&basin, json!({})).await;
    let api = Api::new(&server).basin(&basin);
    (server, api, basin)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn records(reply: &Value) -> &Vec<Value> {
    reply["records"].as_array().expect("records")
}

async fn json_append_and_read_round_trip(backend: Backend) {
    let (_server, api, _) = setup(backend).await;
    api.create_stream("s", json!(null)).await;
    let before = now_ms();
    let ack = api
        .append(
            "s",
            json!({"records": [
                {"body": "hi", "headers": [["k", "v"], ["k", "dup"]]},
                {"headers": [["", "fence"]], "body": "tok"},
                {}
            ]}),
        )
        .await
        .assert_status(200);
    assert_eq!(ack["start"]["seq_num"], 0);
    assert_eq!(ack["end"]["seq_num"], 3);
    assert_eq!(ack["tail"]["seq_num"], 3);
    let ts = ack["start"]["timestamp"].as_u64().unwrap();
    assert!(ts >= before && ts <= now_ms(), "arrival time in ms");

    let read = api.read("s", "seq_num=0").await.assert_status(200);
    let recs = records(&read);
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0]["headers"], json!([["k", "v"], ["k", "dup"]]));
    assert_eq!(recs[0]["body"], "hi");
    assert_eq!(recs[1]["headers"], json!([["", "fence"]]));
    assert_eq!(recs[1]["body"], "tok");
    assert!(recs[2].get("headers").is_none() && recs[2].get("body").is_none());

    // base64 round-trips binary data; raw output is lossy UTF-8.
    let ack = api
        .send(
            api.request(Method::POST, "/streams/s/records")
                .header("s2-format", "base64")
                .json(&json!({"records": [{"body": "AP8=", "headers": [["AQ==", ""]]}]})),
        )
        .await
        .assert_status(200);
    let seq = ack["start"]["seq_num"].as_u64().unwrap();
    let b64 = api
        .send(
            api.request(Method::GET, &format!("/streams/s/records?seq_num={seq}"))
                .header("s2-format", "base64"),
        )
        .await
        .assert_status(200);
    assert_eq!(records(&b64)[0]["body"], "AP8=");
    assert_eq!(records(&b64)[0]["headers"], json!([["AQ==", ""]]));
    let raw = api
        .read("s", &format!("seq_num={seq}"))
        .await
        .assert_status(200);
    assert_eq!(records(&raw)[0]["body"], "\u{0}\u{FFFD}");
    // Legacy alias.
    let alias = api
        .send(
            api.request(Method::GET, &format!("/streams/s/records?seq_num={seq}"))
                .header("s2-format", "json-binsafe"),
        )
        .await
        .assert_status(200);
    assert_eq!(records(&alias)[0]["body"], "AP8=");
    api.send(
        api.request(Method::POST, "/streams/s/records")
            .header("s2-format", "base64")
            .json(&json!({"records": [{"body": "not base64!"}]})),
    )
    .await
    .assert_error(422, "invalid");
}

fn proto_input(bodies: &[&[u8]]) -> proto::AppendInput {
    proto::AppendInput {
        records: bodies
            .iter()
            .map(|b| proto::AppendRecord {
                timestamp: None,
                headers: vec![proto::Header {
                    name: Bytes::from_static(b"h"),
                    value: Bytes::copy_from_slice(b),
                }],
                body: Bytes::copy_from_slice(b),
            })
            .collect(),
        match_seq_num: None,
        fencing_token: None,
    }
}

async fn protobuf_append_and_read_round_trip(backend: Backend) {
    let (_server, api, _) = setup(backend).await;
    api.create_stream("p", json!(null)).await;
    let binary: Vec<u8> = (0..=255).collect();
    let input = proto_input(&[b"one", &binary, b""]);
    let reply = api
        .send(
            api.request(Method::POST, "/streams/p/records")
                .header("content-type", "application/protobuf")
                .header("accept", "application/protobuf")
                .body(input.encode_to_vec()),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/protobuf");
    let ack = proto::AppendAck::decode(reply.body).unwrap();
    assert_eq!(ack.start.unwrap().seq_num, 0);
    assert_eq!(ack.end.unwrap().seq_num, 3);

    let reply = api
        .send(
            api.request(Method::GET, "/streams/p/records?seq_num=1")
                .header("accept", "application/x-protobuf"),
        )
        .await;
    assert_eq!(reply.status, 200);
    let batch = proto::ReadBatch::decode(reply.body).unwrap();
    assert_eq!(batch.records.len(), 2);
    assert_eq!(batch.records[0].seq_num, 1);
    assert_eq!(&batch.records[0].body[..], &binary[..]);
    assert_eq!(&batch.records[0].headers[0].value[..], &binary[..]);
    assert!(batch.records[1].body.is_empty());
    assert_eq!(batch.tail.unwrap().seq_num, 3);

    // JSON ack for a protobuf body when JSON is accepted.
    let reply = api
        .send(
            api.request(Method::POST, "/streams/p/records")
                .header("content-type", "application/x-protobuf")
                .body(proto_input(&[b"four"]).encode_to_vec()),
        )
        .await
        .assert_status(200);
    assert_eq!(reply["start"]["seq_num"], 3);

    // Records long enough to be sent as the cached chunk's own bytes come back whole, with
    // the length of the response stated up front.
    let large: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 40 * 1024]).collect();
    let bodies: Vec<&[u8]> = large.iter().map(|b| &b[..]).collect();
    let reply = api
        .send(
            api.request(Method::POST, "/streams/p/records")
                .header("content-type", "application/protobuf")
                .body(proto_input(&bodies).encode_to_vec()),
        )
        .await;
    assert_eq!(reply.status, 200);
    let reply = api
        .send(
            api.request(Method::GET, "/streams/p/records?seq_num=4")
                .header("accept", "application/protobuf"),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers["content-length"],
        reply.body.len().to_string().as_str()
    );
    let batch = proto::ReadBatch::decode(reply.body).unwrap();
    let seq_nums: Vec<u64> = batch.records.iter().map(|r| r.seq_num).collect();
    assert_eq!(seq_nums, vec![4, 5, 6]);
    for (record, body) in batch.records.iter().zip(&large) {
        assert_eq!(&record.body[..], &body[..]);
    }
    assert_eq!(batch.tail.unwrap().seq_num, 7);
}

async fn conditions_fail_with_exact_bodies(backend: Backend) {
    let (_server, api, _) = setup(backend).await;
    api.create_stream("c", json!(null)).await;
    api.append("c", json!({"records": [{"body": "a"}], "match_seq_num": 0}))
        .await
        .assert_status(200);
    let r = api
        .append("c", json!({"records": [{"body": "b"}], "match_seq_num": 0}))
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(r.json(), json!({"seq_num_mismatch": 1}));

    let r = api
        .append(
            "c",
            json!({"records": [{"body": "b"}], "fencing_token": "nope"}),
        )
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(r.json(), json!({"fencing_token_mismatch": ""}));
    // Fencing is checked before the sequence number.
    let r = api
        .append(
            "c",
            json!({"records": [{"body": "b"}], "fencing_token": "nope", "match_seq_num": 9}),
        )
        .await;
    assert_eq!(r.json(), json!({"fencing_token_mismatch": ""}));
    let r = api
        .append(
            "c",
            json!({"records": [{"body": "b"}], "fencing_token": "", "match_seq_num": 1}),
        )
        .await;
    r.assert_status(200);
    assert_eq!(api.tail("c").await, 2, "failed appends wrote nothing");
}

async fn fence_and_trim_commands(backend: Backend) {
    let (_server, api, _) = setup(backend).await;
    api.create_stream("f", json!(null)).await;
    // The fence applies to batches after the one carrying it; the batch's own condition
    // is checked against the previous token.
    api.append(
        "f",
        json!({"records": [{"headers": [["", "fence"]], "body": "t1"}, {"body": "x"}],
               "fencing_token": ""}),
    )
    .await
    .assert_status(200);
    let r = api
        .append(
            "f",
            json!({"records": [{"body": "y"}], "fencing_token": ""}),
        )
        .await;
    assert_eq!(r.json(), json!({"fencing_token_mismatch": "t1"}));
    // Appends without a token are not fenced.
    api.append("f", json!({"records": [{"body": "z"}]}))
        .await
        .assert_status(200);
    api.append(
        "f",
        json!({"records": [{"headers": [["", "fence"]], "body": ""}], "fencing_token": "t1"}),
    )
    .await
    .assert_status(200);
    api.append(
        "f",
        json!({"records": [{"body": "w"}], "fencing_token": ""}),
    )
    .await
    .assert_status(200);
    assert_eq!(api.tail("f").await, 5);

    // Trim to 3 (base64 8-byte big-endian body): seq 0..3 become unreadable.
    api.send(
        api.request(Method::POST, "/streams/f/records")
            .header("s2-format", "base64")
            .json(&json!({"records": [{"headers": [["", "dHJpbQ=="]], "body": "AAAAAAAAAAM="}]})),
    )
    .await
    .assert_status(200);
    let read = api.read("f", "seq_num=0").await.assert_status(200);
    let seqs: Vec<u64> = records(&read)
        .iter()
        .map(|r| r["seq_num"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        vec![3, 4, 5],
        "trimmed records are skipped; the trim record stays"
    );
    // A trim point beyond the trim record is capped at its seq_num + 1, and never regresses.
    api.send(
        api.request(Method::POST, "/streams/f/records")
            .header("s2-format", "base64")
            .json(&json!({"records": [{"headers": [["", "dHJpbQ=="]], "body": "AAAAAAAAA+g="}]})),
    )
    .await
    .assert_status(200);
    let read = api.read("f", "seq_num=0").await;
    assert_eq!(read.status, 416, "everything up to the tail is trimmed");
    api.send(
        api.request(Method::POST, "/streams/f/records")
            .header("s2-format", "base64")
            .json(&json!({"records": [{"headers": [["", "dHJpbQ=="]], "body": "AAAAAAAAAAE="}]})),
    )
    .await
    .assert_status(200);
    let read = api.read("f", "seq_num=0").await.assert_status(200);
    assert_eq!(records(&read)[0]["seq_num"], 7);
}

async fn timestamping_modes(backend: Backend) {
    let (_server, api, _) = setup(backend).await;
    let far_future = now_ms() + 3_600_000;

    api.create_stream("prefer", json!(null)).await;
    let ack = api
        .append(
            "prefer",
            json!({"records": [{"timestamp": 5, "body": "a"}, {"timestamp": 3, "body": "b"},
                               {"timestamp": far_future, "body": "c"}]}),
        )
        .await
        .assert_status(200);
    let read = api.read("prefer", "seq_num=0").await.assert_status(200);
    let ts: Vec<u64> = records(&read)
        .iter()
        .map(|r| r["timestamp"].as_u64().unwrap())
        .collect();
    assert_eq!(&ts[..2], &[5, 5], "raised to the running maximum");
    assert!(ts[2] < far_future, "capped at arrival time");
    assert_eq!(ack["end"]["timestamp"].as_u64().unwrap(), ts[2]);
    // Monotonic across batches too.
    let ack = api
        .append(
            "prefer",
            json!({"records": [{"timestamp": 1, "body": "d"}]}),
        )
        .await
        .assert_status(200);
    assert_eq!(ack["start"]["timestamp"].as_u64().unwrap(), ts[2]);

    api.create_stream(
        "require",
        json!({"timestamping": {"mode": "client-require", "uncapped": true}}),
    )
    .await;
    api.append(
        "require",
        json!({"records": [{"timestamp": 1, "body": "a"}, {"body": "b"}]}),
    )
    .await
    .assert_error(422, "invalid");
    assert_eq!(api.tail("require").await, 0);
    let ack = api
        .append(
            "require",
            json!({"records": [{"timestamp": far_future, "body": "a"}]}),
        )
        .await
        .assert_status(200);
    assert_eq!(
        ack["start"]["timestamp"], far_future,
        "uncapped keeps future timestamps"
    );

    api.create_stream("arrival", json!({"timestamping": {"mode": "arrival"}}))
        .await;
    let ack = api
        .append(
            "arrival",
            json!({"records": [{"timestamp": 7, "body": "a"}]}),
        )
        .await
        .assert_status(200);
    assert!(ack["start"]["timestamp"].as_u64().unwrap() > 1_000_000_000_000);
}

async fn start_positions_and_bounds(backend: Backend) {
    let (_server, api, _) = setup(backend).await;
    api.create_stream("r", json!({"timestamping": {"mode": "client-require"}}))
        .await;
    for i in 0..10u64 {
        api.append(
            "r",
            json!({"records": [{"timestamp": 100 + i * 10, "body": format!("{i}")}]}),
        )
        .await
        .assert_status(200);
    }
    let seqs = |v: &Value| -> Vec<u64> {
        records(v)
            .iter()
            .map(|r| r["seq_num"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        seqs(&api.read("r", "seq_num=7").await.assert_status(200)),
        vec![7, 8, 9]
    );
    assert_eq!(
        seqs(&api.read("r", "timestamp=125").await.assert_status(200)),
        vec![3, 4, 5, 6, 7, 8, 9]
    );
    assert_eq!(
        seqs(&api.read("r", "tail_offset=2").await.assert_status(200)),
        vec![8, 9]
    );
    assert_eq!(
        seqs(&api.read("r", "tail_offset=50").await.assert_status(200)).len(),
        10
    );
    assert_eq!(
        seqs(&api.read("r", "seq_num=0&count=3").await.assert_status(200)),
        vec![0, 1, 2]
    );
    // Each record meters 8 + 1 bytes; 20 bytes fit two.
    assert_eq!(
        seqs(&api.read("r", "seq_num=0&bytes=20").await.assert_status(200)),
        vec![0, 1]
    );
    assert_eq!(
        seqs(
            &api.read("r", "seq_num=0&until=130")
                .await
                .assert_status(200)
        ),
        vec![0, 1, 2]
    );
    assert_eq!(
        seqs(&api.read("r", "seq_num=0&count=0").await.assert_status(200)),
        Vec::<u64>::new()
    );
    api.read("r", "timestamp=150&until=150")
        .await
        .assert_error(422, "invalid");

    let tail = json!({"tail": {"seq_num": 10, "timestamp": 190}});
    for q in [
        "seq_num=11",
        "seq_num=10",
        "timestamp=191",
        "tail_offset=0",
        "",
    ] {
        let r = api.read("r", q).await;
        assert_eq!((r.status.as_u16(), r.json()), (416, tail.clone()), "{q}");
    }
    // clamp starts at the tail, which still cannot be read without waiting.
    assert_eq!(api.read("r", "seq_num=50&clamp=true").await.status, 416);
    let r = api
        .read("r", "seq_num=50&clamp=true&wait=1")
        .await
        .assert_status(200);
    assert_eq!(records(&r).len(), 0, "empty after the wait");
}

async fn long_poll_returns_when_records_arrive(backend: Backend) {
    let (server, api, basin) = setup(backend).await;
    api.create_stream("lp", json!(null)).await;
    let reader = {
        let api = Api::new(&server).basin(&basin);
        tokio::spawn(async move { api.read("lp", "seq_num=0&wait=30").await })
    };
    // The reader is waiting once a follower is registered; appending then wakes it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = tokio::time::Instant::now();
    api.append("lp", json!({"records": [{"body": "wake"}]}))
        .await
        .assert_status(200);
    let reply = reader.await.unwrap().assert_status(200);
    assert_eq!(records(&reply)[0]["body"], "wake");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the commit, not the timeout"
    );
}

async fn auto_create_on_append_and_read(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = basin_name();
    Api::new(&server)
        .create_basin(
            &basin,
            json!({"create_stream_on_append": true, "create_stream_on_read": true}),
        )
        .await;
    let api = Api::new(&server).basin(&basin);
    api.send(
        api.request(Method::POST, "/streams/auto1/records")
            .header("s2-stream-config", r#"{"storage_class":"standard"}"#)
            .json(&json!({"records": [{"body": "x"}]})),
    )
    .await
    .assert_status(200);
    assert_eq!(
        api.get("/streams/auto1").await.assert_status(200)["storage_class"],
        "standard"
    );
    api.get("/streams/auto2/records/tail")
        .await
        .assert_status(200);
    assert_eq!(
        api.read("auto3", "seq_num=0").await.status,
        416,
        "created, then empty"
    );
    api.get("/streams/auto3").await.assert_status(200);

    let plain = basin_name();
    Api::new(&server).create_basin(&plain, json!({})).await;
    let api = Api::new(&server).basin(&plain);
    api.append("nope", json!({"records": [{"body": "x"}]}))
        .await
        .assert_error(404, "stream_not_found");
    api.read("nope", "seq_num=0")
        .await
        .assert_error(404, "stream_not_found");
    api.get("/streams/nope/records/tail")
        .await
        .assert_error(404, "stream_not_found");
}

async fn large_batches_and_many_chunks_read_back(backend: Backend) {
    let (_server, api, _) = setup(backend).await;
    api.create_stream("big", json!(null)).await;
    // 300 commits spill the manifest index into a segment; reads must still find them.
    let body = "x".repeat(3000);
    for i in 0..300 {
        let recs: Vec<Value> = (0..3)
            .map(|j| json!({"body": format!("{i}-{j}-{body}")}))
            .collect();
        api.append("big", json!({"records": recs}))
            .await
            .assert_status(200);
    }
    let mut next = 0u64;
    while next < 900 {
        let reply = api
            .read("big", &format!("seq_num={next}"))
            .await
            .assert_status(200);
        let recs = records(&reply);
        assert!(!recs.is_empty());
        for r in recs {
            assert_eq!(r["seq_num"].as_u64().unwrap(), next);
            let (i, j) = (next / 3, next % 3);
            assert!(
                r["body"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{i}-{j}-"))
            );
            next += 1;
        }
        // Unary reads stop at 1 MiB metered.
        let metered: usize = recs.len() * (8 + 3000 + 8);
        assert!(metered <= 1024 * 1024 + 3100);
    }
    // One full 1 MiB record batch, the largest allowed.
    let big = "y".repeat(1024 * 1024 - 8);
    api.append("big", json!({"records": [{"body": big}]}))
        .await
        .assert_status(200);
    let reply = api.read("big", "seq_num=900").await.assert_status(200);
    assert_eq!(
        records(&reply)[0]["body"].as_str().unwrap().len(),
        1024 * 1024 - 8
    );
}

async fn retention_and_delete_on_empty_apply_in_the_background(backend: Backend) {
    let (_server, api, _) = setup(backend).await;
    api.create_stream("short-lived", json!({"retention_policy": {"age": 1}}))
        .await;
    api.append(
        "short-lived",
        json!({"records": [{"body": "a"}, {"body": "b"}]}),
    )
    .await
    .assert_status(200);
    assert_eq!(
        records(
            &api.read("short-lived", "seq_num=0")
                .await
                .assert_status(200)
        )
        .len(),
        2
    );
    crate::harness::eventually(Duration::from_secs(15), || async {
        (api.read("short-lived", "seq_num=0").await.status == 416).then_some(())
    })
    .await;
    assert_eq!(api.tail("short-lived").await, 2, "expiry keeps the tail");
    api.append("short-lived", json!({"records": [{"body": "c"}]}))
        .await
        .assert_status(200);
    assert_eq!(
        records(
            &api.read("short-lived", "seq_num=0")
                .await
                .assert_status(200)
        )[0]["seq_num"],
        2
    );

    api.create_stream("ephemeral", json!({"delete_on_empty": {"min_age_secs": 1}}))
        .await;
    api.create_stream("kept", json!({"delete_on_empty": {"min_age_secs": 1}}))
        .await;
    api.append("kept", json!({"records": [{"body": "keeps it alive"}]}))
        .await
        .assert_status(200);
    crate::harness::eventually(Duration::from_secs(15), || async {
        (api.get("/streams/ephemeral").await.status == 404).then_some(())
    })
    .await;
    api.get("/streams/kept").await.assert_status(200);
}
