//! The node's limits as clients meet them (README, "Limits"): oversized heads and bodies,
//! trickled heads and bodies, readers that never read, idle connections, the connection
//! limit, and appends beyond the in-flight budget on both surfaces. Each test configures
//! short limits so that it runs in seconds; timing bounds are "cut off within its timeout
//! plus slack", never performance.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use prost::Message;
use s2_api::v1::stream::proto;
use serde_json::{Value, json};
use sluice::{limits::Limits, server::ServerConfig};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::{
    harness::{Backend, TestServer, basin_name},
    http::Api,
};

const SLACK: Duration = Duration::from_secs(3);

async fn node(tweak: impl FnOnce(&mut Limits)) -> TestServer {
    TestServer::start_with(Backend::Local, |c: &mut ServerConfig| tweak(&mut c.limits)).await
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(&server.addr).await.unwrap()
}

/// Reads an HTTP/1.1 response head; its status and the head's text.
async fn response_head(conn: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut byte))
            .await
            .expect("a response head")
            .unwrap();
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head)
}

/// Reads whatever the peer sends until it closes (or resets); how long that took and
/// how many bytes came.
async fn until_closed(conn: &mut TcpStream, within: Duration) -> (Duration, usize) {
    let started = Instant::now();
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at((started + within).into(), conn.read(&mut buf)).await {
            Err(_) => panic!("still open after {within:?} ({total} bytes read)"),
            Ok(Ok(0) | Err(_)) => return (started.elapsed(), total),
            Ok(Ok(n)) => total += n,
        }
    }
}

async fn healthy(server: &TestServer) {
    let r = server
        .http()
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431_on_http1_and_are_refused_on_http2() {
    let server = node(|_| {}).await;
    let big = "x".repeat(200 * 1024);
    // HTTP/1.1: 431, before any handler runs.
    let r = server
        .http()
        .get(server.url("/v1/basins"))
        .header("x-padding", &big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    // HTTP/2: a header block over the advertised SETTINGS_MAX_HEADER_LIST_SIZE is answered
    // 431 (and its stream refused) when it comes in few frames; one spread over more
    // CONTINUATION frames than that size needs (200 KiB in the 16 KiB frames a client
    // uses before it has the node's settings) makes h2 close the whole connection with
    // GOAWAY `ENHANCE_YOUR_CALM`. Which of the two a client sees depends on its framing.
    for size in [80 * 1024, 200 * 1024] {
        let r = server
            .h2()
            .get(server.url("/v1/basins"))
            .header("x-padding", "x".repeat(size))
            .send()
            .await;
        match r {
            Ok(r) => assert_eq!(r.status(), 431, "{size}"),
            Err(e) => assert!(format!("{e:?}").contains("ENHANCE_YOUR_CALM"), "{e:?}"),
        }
    }
    // Heads within the limit (64 KiB by default) still work, on both.
    let fine = "x".repeat(32 * 1024);
    for client in [server.http(), server.h2()] {
        let r = client
            .get(server.url("/v1/basins"))
            .header("x-padding", &fine)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// POSTs `body` over HTTP/2 (which lets a client read an answer that comes before its
/// body is sent); the status and JSON reply.
async fn post_h2(
    server: &TestServer,
    path: &str,
    basin: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let r = server
        .h2()
        .post(server.url(path))
        .header("s2-basin", basin)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413_in_each_surfaces_envelope() {
    let server = node(|l| l.max_body_bytes = 64 * 1024).await;
    let basin = basin_name();
    Api::new(&server)
        .create_basin(&basin, json!({"create_stream_on_append": true}))
        .await;
    let big = "x".repeat(100 * 1024);
    let api = Api::new(&server).basin(&basin);
    api.append("s", json!({"records": [{"body": "small"}]}))
        .await
        .assert_status(200);
    let before = api.tail("s").await;
    let json_of = |v: Value| serde_json::to_vec(&v).unwrap();

    // S2: JSON and protobuf appends, with a content-length and chunked (no length known
    // up front, so refused as it arrives), and a control-plane JSON body.
    let appends = "/v1/streams/s/records";
    let json_append = json_of(json!({"records": [{"body": big}]}));
    let (status, j) = post_h2(&server, appends, &basin, "application/json", json_append).await;
    assert_eq!((status, j["code"].as_str()), (413, Some("invalid")), "{j}");
    let chunks = futures::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 10 * 1024]))),
    );
    let chunked = reqwest::Body::wrap_stream(chunks);
    let (status, j) = post_h2(&server, appends, &basin, "application/json", chunked).await;
    assert_eq!((status, j["code"].as_str()), (413, Some("invalid")), "{j}");
    let proto_append = proto::AppendInput {
        records: vec![proto::AppendRecord {
            timestamp: None,
            headers: vec![],
            body: Bytes::from(big.clone()),
        }],
        match_seq_num: None,
        fencing_token: None,
    }
    .encode_to_vec();
    let (status, j) = post_h2(
        &server,
        appends,
        &basin,
        "application/protobuf",
        proto_append,
    )
    .await;
    assert_eq!((status, j["code"].as_str()), (413, Some("invalid")), "{j}");
    let basin_body = json_of(json!({"basin": basin_name(), "config": {"padding": big}}));
    let (status, j) = post_h2(
        &server,
        "/v1/basins",
        &basin,
        "application/json",
        basin_body,
    )
    .await;
    assert_eq!((status, j["code"].as_str()), (413, Some("invalid")), "{j}");
    // HTTP/1.1: an announced length over the limit is answered before any of the body is
    // read (and the connection closed, so a client still sending may see a broken pipe).
    let mut h1 = connect(&server).await;
    let head = format!(
        "POST {appends} HTTP/1.1\r\nhost: x\r\ns2-basin: {basin}\r\n\
         content-type: application/json\r\ncontent-length: 10000000\r\n\r\n"
    );
    h1.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(response_head(&mut h1).await.0, 413);
    assert_eq!(
        api.tail("s").await,
        before,
        "nothing of a refused append was applied"
    );

    // The plate surface: its own envelope.
    for (path, body) in [
        ("add", json!({"key": "k", "values": {"f": big}})),
        (
            "command",
            json!({"command": "XADD", "args": ["k", "*", "f", big]}),
        ),
    ] {
        let path = format!("/{basin}/streams/{path}");
        let (status, j) = post_h2(&server, &path, &basin, "application/json", json_of(body)).await;
        assert_eq!(
            (status, j["ok"].as_bool(), j["error"]["code"].as_str()),
            (413, Some(false), Some("payload_too_large")),
            "{path}: {j}"
        );
    }
    let plate = Api::plate(&server, &basin);
    assert_eq!(plate.command(&["XLEN", "k"]).await, Ok(json!(0)));
}

/// Sends `bytes` one per second until the peer closes; how long it kept the connection.
async fn trickle(conn: TcpStream, bytes: &'static [u8], give_up: Duration) -> Duration {
    let started = Instant::now();
    let (mut reader, mut writer) = conn.into_split();
    let writing = tokio::spawn(async move {
        for b in bytes.iter().cycle() {
            if writer.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + give_up).into(), reader.read(&mut buf)).await {
            Err(_) => panic!("a trickling client kept its connection for {give_up:?}"),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => {}
        }
    }
    writing.abort();
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_head_is_cut_off_while_others_are_served() {
    let timeout = Duration::from_secs(3);
    let server = node(|l| {
        l.header_read_timeout = timeout;
        l.idle_timeout = timeout;
    })
    .await;
    // HTTP/1.1: a head sent one byte per second (the header-read timeout); HTTP/2: its
    // connection preface, the same way (no request yet, so the idle timeout).
    let h1 = tokio::spawn(trickle(
        connect(&server).await,
        b"GET /v1/basins HTTP/1.1\r\nhost: x\r\nx-slow: yes\r\n",
        timeout + SLACK,
    ));
    let h2 = tokio::spawn(trickle(
        connect(&server).await,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        timeout + SLACK,
    ));
    // Meanwhile the node serves everyone else.
    for _ in 0..5 {
        healthy(&server).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (h1, h2) = (h1.await.unwrap(), h2.await.unwrap());
    eprintln!("trickled heads cut off after {h1:?} (HTTP/1.1) and {h2:?} (HTTP/2)");
    for kept in [h1, h2] {
        assert!(kept >= timeout - Duration::from_millis(200), "{kept:?}");
    }
    healthy(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_and_frames_get_408() {
    let timeout = Duration::from_secs(2);
    let server = node(|l| l.body_read_timeout = timeout).await;
    let basin = basin_name();
    Api::new(&server)
        .create_basin(&basin, json!({"create_stream_on_append": true}))
        .await;

    let trickle = |path: String, content_type: &'static str| {
        let addr = server.addr.clone();
        let basin = basin.clone();
        async move {
            let mut conn = TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\ns2-basin: {basin}\r\n\
                 content-type: {content_type}\r\ncontent-length: 1000\r\n\r\n"
            );
            conn.write_all(head.as_bytes()).await.unwrap();
            let started = Instant::now();
            let (mut reader, mut writer) = conn.into_split();
            let writing = tokio::spawn(async move {
                while writer.write_all(b" ").await.is_ok() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
            let mut response = Vec::new();
            let _ =
                tokio::time::timeout(timeout + SLACK * 2, reader.read_to_end(&mut response)).await;
            writing.abort();
            (
                started.elapsed(),
                String::from_utf8_lossy(&response).into_owned(),
            )
        }
    };
    // S2 unary append and the plate surface's add: 408 in each envelope.
    let (after, response) = trickle("/v1/streams/s/records".into(), "application/json").await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains(r#""code":"request_timeout""#),
        "{response}"
    );
    assert!(after < timeout + SLACK, "{after:?}");
    let (_, response) = trickle(format!("/{basin}/streams/add"), "application/json").await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains(r#""ok":false"#) && response.contains("request_timeout"),
        "{response}"
    );

    // An S2S append session: idle between frames is fine; a frame begun and not finished
    // within the timeout ends the session with a terminal 408.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let request = server
        .h2()
        .post(server.url("/v1/streams/s2s/records"))
        .header("s2-basin", &basin)
        .header("content-type", "s2s/proto")
        .body(reqwest::Body::wrap_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
    let pending = tokio::spawn(request.send());
    let input = frame(&append_input("first"));
    tx.send(Ok(input.clone())).await.unwrap();
    let resp = pending.await.unwrap().unwrap();
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap(); // its ack
    tokio::time::sleep(timeout + Duration::from_secs(1)).await; // idle: allowed
    tx.send(Ok(input.slice(..5))).await.unwrap();
    let started = Instant::now();
    let mut rest = BytesMut::new();
    while let Some(chunk) = tokio::time::timeout(timeout + SLACK, body.next())
        .await
        .unwrap()
    {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let (status, error) = terminal(rest.freeze());
    assert_eq!(
        (status, error["code"].as_str()),
        (408, Some("request_timeout")),
        "{error}"
    );
    assert!(started.elapsed() < timeout + SLACK);
    drop(tx);
    assert_eq!(Api::new(&server).basin(&basin).tail("s2s").await, 1);
}

fn frame(payload: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_uint((payload.len() + 1) as u64, 3);
    b.put_u8(0);
    b.put_slice(payload);
    b.freeze()
}

fn append_input(body: &str) -> Vec<u8> {
    proto::AppendInput {
        records: vec![proto::AppendRecord {
            timestamp: None,
            headers: vec![],
            body: Bytes::copy_from_slice(body.as_bytes()),
        }],
        match_seq_num: None,
        fencing_token: None,
    }
    .encode_to_vec()
}

/// The last frame of a session's output, which must be terminal: its status and JSON.
fn terminal(mut buf: Bytes) -> (u16, Value) {
    let mut last = None;
    while buf.len() >= 3 {
        let len = ((buf[0] as usize) << 16) | ((buf[1] as usize) << 8) | buf[2] as usize;
        let f = buf.slice(3..3 + len);
        buf = buf.slice(3 + len..);
        last = Some(f);
    }
    let f = last.expect("a frame");
    assert!(f[0] & 0x80 != 0, "ends with a terminal frame");
    let status = u16::from_be_bytes([f[1], f[2]]);
    (status, serde_json::from_slice(&f[3..]).unwrap())
}

/// Appends `mib` records of about 1 MiB to `stream`.
async fn fill(server: &TestServer, basin: &str, stream: &str, mib: usize) {
    let api = Api::new(server).basin(basin);
    let body = "x".repeat(1024 * 1024 - 64);
    for _ in 0..mib {
        api.append(stream, json!({"records": [{"body": body}]}))
            .await
            .assert_status(200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_that_never_read_are_cut_off_and_their_buffers_freed() {
    let timeout = Duration::from_secs(3);
    let server = node(|l| {
        l.slow_reader_timeout = timeout;
        l.read_buffer_bytes = 1024 * 1024;
    })
    .await;
    let basin = basin_name();
    Api::new(&server)
        .create_basin(&basin, json!({"create_stream_on_append": true}))
        .await;
    fill(&server, &basin, "big", 24).await;
    let total = 24 * 1024 * 1024;

    // HTTP/1.1 over a socket with a small receive window, never read: the node's writes
    // stall, and the connection is closed.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut h1 = socket.connect(server.addr.parse().unwrap()).await.unwrap();
    let request = format!(
        "GET /v1/streams/big/records?seq_num=0 HTTP/1.1\r\nhost: x\r\ns2-basin: {basin}\r\n\
         content-type: s2s/proto\r\n\r\n"
    );
    h1.write_all(request.as_bytes()).await.unwrap();
    // HTTP/2, a response body never polled: flow control stops the stream, and the
    // session is cut off.
    let stalled = server
        .h2()
        .get(server.url("/v1/streams/big/records?seq_num=0"))
        .header("s2-basin", &basin)
        .header("content-type", "s2s/proto")
        .send()
        .await
        .unwrap();
    assert_eq!(stalled.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.metric("sluice_read_buffered_bytes").await > 0);
    // Others are served meanwhile.
    healthy(&server).await;
    tokio::time::sleep(timeout + SLACK).await;

    assert_eq!(
        server.metric("sluice_read_buffered_bytes").await,
        0,
        "buffers freed"
    );
    assert!(server.metric("sluice_read_sessions_cut_off_total").await >= 1);
    let (_, got) = until_closed(&mut h1, SLACK).await;
    assert!(
        got < total,
        "the HTTP/1.1 reader got {got} of {total} bytes: not cut off"
    );
    let mut body = stalled.bytes_stream();
    let mut got = 0;
    let ended = loop {
        match tokio::time::timeout(SLACK, body.next())
            .await
            .expect("the stream ends")
        {
            Some(Ok(chunk)) => got += chunk.len(),
            Some(Err(e)) => break Err(e),
            None => break Ok(()),
        }
    };
    assert!(
        ended.is_err(),
        "a cut-off session fails, never ends cleanly ({got} bytes)"
    );
    assert!(got < total, "the HTTP/2 reader got {got} of {total} bytes");
    healthy(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let timeout = Duration::from_secs(2);
    let server = node(|l| {
        l.idle_timeout = timeout;
        l.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    // HTTP/2 with no stream open: a GOAWAY, then the connection closes (at the latest one
    // more idle timeout later, should the peer not finish the graceful close).
    let mut h2 = connect(&server).await;
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    // HTTP/1.1 kept alive after one request.
    let mut h1 = connect(&server).await;
    h1.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response_head(&mut h1).await.0, 200);
    let (after, _) = until_closed(&mut h1, timeout + SLACK).await;
    assert!(after >= timeout - Duration::from_millis(200), "{after:?}");
    let (after, _) = until_closed(&mut h2, timeout * 2 + SLACK).await;
    assert!(after >= timeout - Duration::from_millis(200), "{after:?}");
    // A connection busy with a long request is not idle.
    let basin = basin_name();
    Api::new(&server).create_basin(&basin, json!({})).await;
    Api::new(&server)
        .basin(&basin)
        .create_stream("s", json!(null))
        .await;
    let r = server
        .h2()
        .get(server.url("/v1/streams/s/records?seq_num=0&wait=4"))
        .header("s2-basin", &basin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "a 4 s long poll outlives a 2 s idle timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let server = node(|l| l.max_connections = 2).await;
    let first = connect(&server).await;
    let _second = connect(&server).await;
    // The third is not accepted: its request goes unanswered...
    let mut third = connect(&server).await;
    third
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_secs(1), third.read(&mut byte))
            .await
            .is_err(),
        "answered beyond the connection limit"
    );
    // ...until a slot frees up.
    drop(first);
    assert_eq!(response_head(&mut third).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_beyond_the_budget_wait_then_are_refused_retryably() {
    let budget = 1024 * 1024;
    let server = node(|l| {
        l.append_inflight_bytes = budget;
        l.append_admission_timeout = Duration::from_secs(1);
    })
    .await;
    let basin = basin_name();
    Api::new(&server)
        .create_basin(&basin, json!({"create_stream_on_append": true}))
        .await;
    let api = Api::new(&server).basin(&basin);
    api.append("s", json!({"records": [{"body": "before"}]}))
        .await
        .assert_status(200);

    // A slow upload announced as the whole budget holds it while it trickles in.
    let mut holder = connect(&server).await;
    let head = format!(
        "POST /v1/streams/s/records HTTP/1.1\r\nhost: x\r\ns2-basin: {basin}\r\n\
         content-type: application/json\r\ncontent-length: {budget}\r\n\r\n"
    );
    holder.write_all(head.as_bytes()).await.unwrap();
    let mut body = br#"{"records": [{"body": ""#.to_vec();
    body.resize(budget - 4, b'y');
    body.extend_from_slice(br#""}]}"#);
    holder.write_all(&body[..1000]).await.unwrap();
    eventually_in_flight(&server, budget as u64).await;

    // S2, unary JSON and protobuf: 429 `rate_limited` after the admission timeout.
    let started = Instant::now();
    api.append("s", json!({"records": [{"body": "refused"}]}))
        .await
        .assert_error(429, "rate_limited");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(1) + SLACK);
    let proto_append = api
        .send(
            api.request(reqwest::Method::POST, "/streams/s/records")
                .header("content-type", "application/protobuf")
                .body(append_input("refused")),
        )
        .await;
    proto_append.assert_error(429, "rate_limited");
    // S2S append sessions over HTTP/1.1 and HTTP/2: a terminal 429.
    for client in [server.http(), server.h2()] {
        let resp = client
            .post(server.url("/v1/streams/s/records"))
            .header("s2-basin", &basin)
            .header("content-type", "s2s/proto")
            .body(frame(&append_input("refused")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let (status, error) = terminal(resp.bytes().await.unwrap());
        assert_eq!(
            (status, error["code"].as_str()),
            (429, Some("rate_limited"))
        );
    }
    // The plate surface: 503 `unavailable` in its envelope, for `add` and XADD alike.
    let plate = Api::plate(&server, &basin);
    let r = plate
        .post("/add", json!({"key": "s", "values": {"f": "refused"}}))
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "unavailable");
    let r = plate.command(&["XADD", "s", "*", "f", "refused"]).await;
    assert_eq!(r.unwrap_err().0, 503);
    assert!(server.metric("sluice_append_admission_refused_total").await >= 6);

    // Once the holder's append lands, appends are admitted again; nothing refused was
    // applied.
    holder.write_all(&body[1000..]).await.unwrap();
    assert_eq!(response_head(&mut holder).await.0, 200);
    api.append("s", json!({"records": [{"body": "after"}]}))
        .await
        .assert_status(200);
    assert_eq!(plate.command(&["XLEN", "s"]).await, Ok(json!(3)));
    assert_eq!(server.metric("sluice_append_inflight_bytes").await, 0);
}

async fn eventually_in_flight(server: &TestServer, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric("sluice_append_inflight_bytes").await < bytes {
        assert!(Instant::now() < deadline, "the budget was never spent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
