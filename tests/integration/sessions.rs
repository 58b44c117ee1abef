//! Streaming: S2S append and read sessions through the Rust SDK, SSE with a plain HTTP
//! client, raw S2S frames over HTTP/1.1 and HTTP/2, and bad frames.

use std::{num::NonZeroU32, time::Duration};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::StreamExt;
use prost::Message;
use reqwest::Method;
use s2_api::v1::stream::proto;
use s2_sdk::{
    append_session::AppendSessionConfig,
    producer::ProducerConfig,
    types::{
        AppendInput, AppendRecord, AppendRecordBatch, Compression, ReadFrom, ReadInput, ReadLimits,
        ReadSessionConfig, ReadSessionRetryPolicy, ReadStart, ReadStop, RetryConfig,
    },
};
use serde_json::{Value, json};

use crate::{
    harness::{Backend, TestServer, basin_name},
    http::Api,
    on_every_backend,
};

on_every_backend!(
    sdk_append_session_pipelines_with_acks_in_order,
    sdk_read_session_catches_up_then_follows,
    sse_streams_batches_pings_and_resumes,
    raw_s2s_over_http1_and_http2,
    bad_frames_end_only_their_session,
    compressed_sessions_and_requests,
);

/// Tests that configure or restart the node run in process only.
mod in_process {
    use super::*;

    crate::on_both_backends!(
        sdk_sessions_survive_a_server_restart,
        read_sessions_heartbeat_and_end_on_their_bounds,
    );
}

fn records(prefix: &str, n: usize) -> AppendRecordBatch {
    AppendRecordBatch::try_from_iter(
        (0..n).map(|i| AppendRecord::new(format!("{prefix}-{i}")).unwrap()),
    )
    .unwrap()
}

async fn sdk_append_session_pipelines_with_acks_in_order(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = server.sdk().basin(server.create_basin(true).await);
    let stream = basin.stream("pipelined".parse().unwrap());
    let session = stream.append_session(
        AppendSessionConfig::new().with_max_unacked_batches(NonZeroU32::new(64).unwrap()),
    );
    let mut tickets = Vec::new();
    for b in 0..200 {
        tickets.push(
            session
                .submit(AppendInput::new(records(&format!("b{b}"), 1 + b % 7)))
                .await
                .unwrap(),
        );
    }
    let mut expected_start = 0;
    for (b, ticket) in tickets.into_iter().enumerate() {
        let ack = ticket.await.unwrap();
        assert_eq!(ack.start.seq_num, expected_start, "batch {b}");
        assert_eq!(ack.end.seq_num - ack.start.seq_num, (1 + b % 7) as u64);
        expected_start = ack.end.seq_num;
    }
    session.close().await.unwrap();
    assert_eq!(stream.check_tail().await.unwrap().seq_num, expected_start);

    // A condition failure ends the session: nothing after the failed input is applied.
    let session = stream.append_session(AppendSessionConfig::new());
    let ok = session
        .submit(AppendInput::new(records("ok", 1)))
        .await
        .unwrap();
    let bad = session
        .submit(AppendInput::new(records("bad", 1)).with_match_seq_num(0))
        .await
        .unwrap();
    let after = session.submit(AppendInput::new(records("after", 1))).await;
    ok.await.unwrap();
    assert!(bad.await.is_err());
    if let Ok(after) = after {
        assert!(after.await.is_err());
    }
    assert_eq!(
        stream.check_tail().await.unwrap().seq_num,
        expected_start + 1
    );
}

async fn sdk_read_session_catches_up_then_follows(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = server.sdk().basin(server.create_basin(true).await);
    let stream = basin.stream("follow".parse().unwrap());
    for i in 0..30 {
        stream
            .append(AppendInput::new(records(&format!("old{i}"), 10)))
            .await
            .unwrap();
    }
    let mut session = stream
        .read_session(
            ReadInput::new().with_start(ReadStart::new().with_from(ReadFrom::SeqNum(0))),
            ReadSessionConfig::new(),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 300 {
        let batch = session.next().await.unwrap().unwrap();
        seen.extend(batch.records.into_iter().map(|r| r.seq_num));
    }
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
    tokio::time::timeout(Duration::from_secs(10), session.caught_up())
        .await
        .expect("caught up")
        .unwrap();

    let producer = stream.producer(ProducerConfig::new());
    let mut tickets = Vec::new();
    for i in 0..250 {
        tickets.push(
            producer
                .submit(AppendRecord::new(format!("new{i}")).unwrap())
                .await
                .unwrap(),
        );
    }
    for (i, t) in tickets.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().seq_num, 300 + i as u64);
    }
    producer.close().await.unwrap();
    let mut bodies = Vec::new();
    while bodies.len() < 250 {
        let batch = tokio::time::timeout(Duration::from_secs(10), session.next())
            .await
            .expect("follower saw new records")
            .unwrap()
            .unwrap();
        bodies.extend(batch.records.into_iter().map(|r| r.body));
    }
    let expected: Vec<Bytes> = (0..250).map(|i| Bytes::from(format!("new{i}"))).collect();
    assert_eq!(bodies, expected);
}

async fn sdk_sessions_survive_a_server_restart(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let basin_name = server.create_basin(true).await;
    let sdk = server.sdk_with(|c| {
        c.with_retry(RetryConfig::new().with_max_attempts(NonZeroU32::new(30).unwrap()))
    });
    let stream = sdk.basin(basin_name).stream("restarts".parse().unwrap());
    stream.check_tail().await.unwrap(); // creates it: the basin creates streams on read
    let reader = {
        let stream = stream.clone();
        tokio::spawn(async move {
            let mut session = stream
                .read_session(
                    ReadInput::new().with_start(ReadStart::new().with_from(ReadFrom::SeqNum(0))),
                    ReadSessionConfig::new().with_retry_policy(ReadSessionRetryPolicy::Indefinite),
                )
                .await
                .unwrap();
            let mut got = Vec::new();
            while got.len() < 400 {
                let batch = session.next().await.unwrap().unwrap();
                got.extend(batch.records.into_iter().map(|r| (r.seq_num, r.body)));
            }
            got
        })
    };
    let producer = stream.producer(ProducerConfig::new());
    let mut tickets = Vec::new();
    for i in 0..200 {
        tickets.push(
            producer
                .submit(AppendRecord::new(format!("r{i}")).unwrap())
                .await
                .unwrap(),
        );
    }
    for t in tickets.drain(..) {
        t.await.unwrap();
    }
    server = server.restart().await;
    for i in 200..400 {
        tickets.push(
            producer
                .submit(AppendRecord::new(format!("r{i}")).unwrap())
                .await
                .unwrap(),
        );
    }
    for t in tickets {
        t.await.unwrap();
    }
    producer.close().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("reader finished")
        .unwrap();
    let expected: Vec<(u64, Bytes)> = (0..400u64)
        .map(|i| (i, Bytes::from(format!("r{i}"))))
        .collect();
    assert_eq!(got, expected, "no loss, no duplicates, in order");
    drop(server);
}

/// Parses `text/event-stream` into (event, id, data) triples.
fn parse_sse(text: &str) -> Vec<(String, Option<String>, String)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let (mut event, mut id, mut data) = (String::new(), None, String::new());
            for line in e.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            (event, id, data)
        })
        .collect()
}

async fn sse_streams_batches_pings_and_resumes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = basin_name();
    Api::new(&server).create_basin(&basin, json!({})).await;
    let api = Api::new(&server).basin(&basin);
    api.create_stream("sse", json!(null)).await;
    api.append(
        "sse",
        json!({"records": [{"body": "a"}, {"body": "bb"}, {"body": "ccc"}]}),
    )
    .await
    .assert_status(200);

    // A following SSE read: the batch, a ping when it starts following, then new records.
    let resp = api
        .request(Method::GET, "/streams/sse/records?seq_num=0")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["cache-control"], "no-cache, no-transform");
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let mut next_events = async |want: usize, text: &mut String| {
        loop {
            let events = parse_sse(text);
            if events.len() >= want && text.ends_with("\n\n") {
                return events;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
                .await
                .expect("event in time")
                .unwrap()
                .unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    let events = next_events(2, &mut text).await;
    assert_eq!(events[0].0, "batch");
    assert_eq!(
        events[0].1.as_deref(),
        Some("2,3,30"),
        "last seq, count, metered bytes"
    );
    let batch: Value = serde_json::from_str(&events[0].2).unwrap();
    assert_eq!(batch["records"][2]["body"], "ccc");
    assert_eq!(events[1].0, "ping");
    let ping: Value = serde_json::from_str(&events[1].2).unwrap();
    assert_eq!(ping["tail"]["seq_num"], 3);
    assert!(ping["timestamp"].as_u64().unwrap() > 0);

    api.append("sse", json!({"records": [{"body": "dddd"}, {"body": "e"}]}))
        .await
        .assert_status(200);
    let events = next_events(3, &mut text).await;
    assert_eq!(events[2].0, "batch");
    assert_eq!(events[2].1.as_deref(), Some("4,5,51"), "ids are cumulative");

    // Resume after the first event with a total budget of 4 records: one more arrives.
    let resumed = api
        .request(Method::GET, "/streams/sse/records?seq_num=0&count=4")
        .header("accept", "text/event-stream")
        .header("s2-format", "base64")
        .header("last-event-id", "2,3,30")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = parse_sse(&resumed);
    assert_eq!(events.len(), 2, "{resumed}");
    assert_eq!(events[0].1.as_deref(), Some("3,4,42"));
    let batch: Value = serde_json::from_str(&events[0].2).unwrap();
    assert_eq!(batch["records"][0]["body"], "ZGRkZA==");
    assert_eq!(events[1], (String::new(), None, "[DONE]".to_owned()));

    // Errors found before streaming starts are plain HTTP errors.
    let r = api
        .request(Method::GET, "/streams/sse/records?seq_num=99")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
}

fn frame(payload: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_uint((payload.len() + 1) as u64, 3);
    b.put_u8(0);
    b.put_slice(payload);
    b.freeze()
}

/// Splits S2S frames: (terminal?, payload).
fn parse_frames(mut buf: Bytes) -> Vec<(bool, Bytes)> {
    let mut out = Vec::new();
    while buf.len() >= 3 {
        let len = ((buf[0] as usize) << 16) | ((buf[1] as usize) << 8) | buf[2] as usize;
        assert!(buf.len() >= 3 + len, "truncated frame");
        buf.advance(3);
        let mut f = buf.split_to(len);
        let flag = f.get_u8();
        assert_eq!(flag & 0x60, 0, "uncompressed without Accept-Encoding");
        out.push((flag & 0x80 != 0, f));
    }
    assert!(buf.is_empty());
    out
}

fn append_input(bodies: &[&str]) -> Vec<u8> {
    proto::AppendInput {
        records: bodies
            .iter()
            .map(|b| proto::AppendRecord {
                timestamp: None,
                headers: vec![],
                body: Bytes::copy_from_slice(b.as_bytes()),
            })
            .collect(),
        match_seq_num: None,
        fencing_token: None,
    }
    .encode_to_vec()
}

async fn raw_s2s_over_http1_and_http2(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = basin_name();
    Api::new(&server)
        .create_basin(&basin, json!({"create_stream_on_append": true}))
        .await;
    for (client, stream) in [(server.http(), "h1"), (server.h2(), "h2")] {
        let url = |path: &str| match stream {
            "h1" => server.url(path),
            _ => server.h2_url(path),
        };
        // Append session with a streaming request body; acks arrive while it is open.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let request = client
            .post(url(&format!("/v1/streams/{stream}/records")))
            .header("s2-basin", &basin)
            .header("content-type", "s2s/proto")
            .body(reqwest::Body::wrap_stream(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ));
        let pending = tokio::spawn(request.send());
        tx.send(Ok(frame(&append_input(&["one", "two"]))))
            .await
            .unwrap();
        let resp = pending.await.unwrap().unwrap();
        assert_eq!(
            resp.status(),
            200,
            "{stream}: head arrives before the body ends"
        );
        assert_eq!(resp.headers()["content-type"], "s2s/proto");
        let mut body = resp.bytes_stream();
        let first = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("first ack while the request is still open")
            .unwrap()
            .unwrap();
        let acks = parse_frames(first);
        let ack = proto::AppendAck::decode(acks[0].1.clone()).unwrap();
        assert_eq!(
            (ack.start.unwrap().seq_num, ack.end.unwrap().seq_num),
            (0, 2)
        );
        tx.send(Ok(frame(&append_input(&["three"])))).await.unwrap();
        drop(tx);
        let mut rest = BytesMut::new();
        while let Some(chunk) = body.next().await {
            rest.extend_from_slice(&chunk.unwrap());
        }
        let frames = parse_frames(rest.freeze());
        assert_eq!(
            frames.len(),
            1,
            "{stream}: one ack, then a clean end without a terminal frame"
        );
        assert!(!frames[0].0);
        let ack = proto::AppendAck::decode(frames[0].1.clone()).unwrap();
        assert_eq!(ack.end.unwrap().seq_num, 3);

        // Read session with wait=0 ends at the tail.
        let resp = client
            .get(url(&format!(
                "/v1/streams/{stream}/records?seq_num=0&wait=0"
            )))
            .header("s2-basin", &basin)
            .header("content-type", "s2s/proto")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let frames = parse_frames(resp.bytes().await.unwrap());
        let bodies: Vec<Bytes> = frames
            .iter()
            .flat_map(|(terminal, f)| {
                assert!(!terminal);
                proto::ReadBatch::decode(f.clone()).unwrap().records
            })
            .map(|r| r.body)
            .collect();
        assert_eq!(bodies, vec!["one", "two", "three"]);
    }
}

/// Sends `body` as an append session and returns the terminal frame's status and JSON.
async fn terminal_for(server: &TestServer, basin: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = server
        .h2()
        .post(server.h2_url("/v1/streams/bad/records"))
        .header("s2-basin", basin)
        .header("content-type", "s2s/proto")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let frames = parse_frames(resp.bytes().await.unwrap());
    let (terminal, mut payload) = frames.last().cloned().expect("a frame");
    assert!(terminal, "ends with a terminal frame");
    let status = payload.get_u16();
    (status, serde_json::from_slice(&payload).unwrap())
}

async fn bad_frames_end_only_their_session(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = basin_name();
    Api::new(&server)
        .create_basin(&basin, json!({"create_stream_on_append": true}))
        .await;
    Api::new(&server)
        .basin(&basin)
        .append("bad", json!({"records": [{"body": "seed"}]}))
        .await
        .assert_status(200);

    // A healthy session stays open alongside the bad ones on the same connection.
    let client = server.h2();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let healthy = tokio::spawn(
        client
            .post(server.h2_url("/v1/streams/bad/records"))
            .header("s2-basin", &basin)
            .header("content-type", "s2s/proto")
            .body(reqwest::Body::wrap_stream(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ))
            .send(),
    );

    let mut oversized = vec![0x20, 0x00, 0x01, 0x00];
    oversized.extend(std::iter::repeat_n(0u8, 64));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("zero length", vec![0, 0, 0], 400, "bad_frame"),
        (
            "compression bits 11",
            vec![0, 0, 2, 0x60, 1],
            400,
            "bad_frame",
        ),
        (
            "terminal from client",
            vec![0, 0, 3, 0x80, 1, 144],
            400,
            "bad_frame",
        ),
        (
            "undecodable protobuf",
            frame(&[0x0a, 0x05, 0x01]).to_vec(),
            400,
            "bad_frame",
        ),
        ("oversized frame", oversized, 400, "bad_frame"),
        ("truncated frame", vec![0, 0, 9, 0, 1], 400, "bad_frame"),
        (
            "empty batch",
            frame(&append_input(&[])).to_vec(),
            422,
            "invalid",
        ),
    ];
    for (what, body, status, code) in cases {
        let (got_status, json) = terminal_for(&server, &basin, body).await;
        assert_eq!(
            (got_status, json["code"].as_str()),
            (status, Some(code)),
            "{what}: {json}"
        );
    }
    // Valid inputs before a bad frame are acked; nothing after it is applied.
    let mut body = frame(&append_input(&["before"])).to_vec();
    body.extend([0, 0, 0]);
    body.extend(frame(&append_input(&["after"])));
    let resp = client
        .post(server.h2_url("/v1/streams/bad/records"))
        .header("s2-basin", &basin)
        .header("content-type", "s2s/proto")
        .body(body)
        .send()
        .await
        .unwrap();
    let frames = parse_frames(resp.bytes().await.unwrap());
    assert_eq!(frames.len(), 2);
    assert!(!frames[0].0 && frames[1].0);

    tx.send(Ok(frame(&append_input(&["healthy"]))))
        .await
        .unwrap();
    drop(tx);
    let resp = healthy.await.unwrap().unwrap();
    let frames = parse_frames(resp.bytes().await.unwrap());
    assert_eq!(frames.len(), 1);
    let ack = proto::AppendAck::decode(frames[0].1.clone()).unwrap();
    assert_eq!(ack.end.unwrap().seq_num, 3, "seed, before, healthy");
}

/// Opens a raw S2S read session and returns its response body stream.
async fn s2s_read(
    server: &TestServer,
    basin: &str,
    query: &str,
) -> impl futures::Stream<Item = reqwest::Result<Bytes>> + use<> {
    let resp = server
        .h2()
        .get(server.h2_url(&format!("/v1/streams/hb/records?{query}")))
        .header("s2-basin", basin)
        .header("content-type", "s2s/proto")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{query}");
    resp.bytes_stream()
}

/// Reads frames until the body ends, decoding each as a `ReadBatch`.
async fn all_batches(
    body: impl futures::Stream<Item = reqwest::Result<Bytes>>,
) -> Vec<proto::ReadBatch> {
    let mut buf = BytesMut::new();
    futures::pin_mut!(body);
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), body.next())
        .await
        .expect("session ends in time")
    {
        buf.extend_from_slice(&chunk.unwrap());
    }
    parse_frames(buf.freeze())
        .into_iter()
        .map(|(terminal, f)| {
            assert!(!terminal, "ends normally");
            proto::ReadBatch::decode(f).unwrap()
        })
        .collect()
}

async fn read_sessions_heartbeat_and_end_on_their_bounds(backend: Backend) {
    let server = TestServer::start_with(backend, |c| {
        c.engine.heartbeat = Duration::from_millis(50)..Duration::from_millis(100);
    })
    .await;
    let basin = basin_name();
    Api::new(&server)
        .create_basin(&basin, json!({"create_stream_on_append": true}))
        .await;
    let api = Api::new(&server).basin(&basin);
    api.append(
        "hb",
        json!({"records": [{"body": "a", "timestamp": 10}, {"body": "b", "timestamp": 20},
                           {"body": "c", "timestamp": 30}]}),
    )
    .await
    .assert_status(200);

    // An idle follower: the catch-up batch, then heartbeats (empty, with the tail).
    let body = s2s_read(&server, &basin, "seq_num=0").await;
    futures::pin_mut!(body);
    let mut buf = BytesMut::new();
    let mut heartbeats = 0;
    let mut records = 0;
    while heartbeats < 4 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("heartbeats keep coming")
            .unwrap()
            .unwrap();
        buf.extend_from_slice(&chunk);
        while buf.len() >= 3 {
            let len = ((buf[0] as usize) << 16) | ((buf[1] as usize) << 8) | buf[2] as usize;
            if buf.len() < 3 + len {
                break;
            }
            let frame = buf.split_to(3 + len).freeze();
            let batch = proto::ReadBatch::decode(frame.slice(4..)).unwrap();
            if batch.records.is_empty() {
                assert_eq!(batch.tail.unwrap().seq_num, 3);
                heartbeats += 1;
            } else {
                records += batch.records.len();
            }
        }
    }
    assert_eq!(records, 3);

    // Bounded sessions end normally when their bound is reached.
    let count =
        |batches: &[proto::ReadBatch]| batches.iter().map(|b| b.records.len()).sum::<usize>();
    assert_eq!(
        count(&all_batches(s2s_read(&server, &basin, "seq_num=0&count=2").await).await),
        2
    );
    assert_eq!(
        count(&all_batches(s2s_read(&server, &basin, "seq_num=0&until=30").await).await),
        2
    );
    assert_eq!(
        count(&all_batches(s2s_read(&server, &basin, "seq_num=0&bytes=18").await).await),
        2
    );
    // `wait` bounds the idle gap: the session ends a second after its last delivery.
    let started = tokio::time::Instant::now();
    let batches = all_batches(s2s_read(&server, &basin, "seq_num=1&wait=1").await).await;
    assert_eq!(count(&batches), 2);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

async fn compressed_sessions_and_requests(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin_name = server.create_basin(true).await;
    for (i, compression) in [Compression::Zstd, Compression::Gzip]
        .into_iter()
        .enumerate()
    {
        let sdk = server.sdk_with(|c| c.with_compression(compression));
        let stream = sdk
            .basin(basin_name.clone())
            .stream(format!("z{i}").parse().unwrap());
        // Compressible batches well over the 1 KiB threshold, both unary and in a session.
        let body = "compress me ".repeat(500);
        stream
            .append(AppendInput::new(records(&body, 3)))
            .await
            .unwrap();
        let session = stream.append_session(AppendSessionConfig::new());
        let ack = session
            .submit(AppendInput::new(records(&body, 5)))
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(ack.end.seq_num, 8);
        session.close().await.unwrap();

        let unary = stream
            .read(ReadInput::new().with_start(ReadStart::new().with_from(ReadFrom::SeqNum(0))))
            .await
            .unwrap();
        assert_eq!(unary.records.len(), 8);
        let mut read = stream
            .read_session(
                ReadInput::new()
                    .with_start(ReadStart::new().with_from(ReadFrom::SeqNum(0)))
                    .with_stop(ReadStop::new().with_limits(ReadLimits::new().with_count(8))),
                ReadSessionConfig::new(),
            )
            .await
            .unwrap();
        let mut bodies = Vec::new();
        while let Some(batch) = read.next().await {
            bodies.extend(batch.unwrap().records.into_iter().map(|r| r.body));
        }
        assert_eq!(bodies.len(), 8);
        assert!(
            bodies.iter().all(|b| b.starts_with(body.as_bytes())),
            "{compression:?}"
        );

        // The server compresses session frames as `Accept-Encoding` asks.
        let (encoding, bits) = match compression {
            Compression::Zstd => ("zstd", 0x20),
            _ => ("gzip", 0x40),
        };
        let raw = server
            .h2()
            .get(server.h2_url(&format!("/v1/streams/z{i}/records?seq_num=0&count=8")))
            .header("s2-basin", basin_name.to_string())
            .header("content-type", "s2s/proto")
            .header("accept-encoding", encoding)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(raw[3] & 0x60, bits, "{encoding} frame flag");
        let len = ((raw[0] as usize) << 16) | ((raw[1] as usize) << 8) | raw[2] as usize;
        assert!(
            len < 8 * body.len() / 4,
            "{encoding} frame is compressed ({len} bytes)"
        );
    }
}
