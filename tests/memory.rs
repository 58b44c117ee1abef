//! Memory stays bounded with many idle followers and with a reader that never reads.
//! Measures the resident set of a real `sluice` process (its own binary, so the figures
//! are the server's alone) and prints the figures.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::json;

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--cache-mib",
            "64",
        ])
        .arg("--local-root")
        .arg(dir.path())
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start sluice");
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            && r.status() == 200
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Server {
        child,
        port,
        _dir: dir,
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Waits until RSS changes by less than 512 KiB over half a second; returns it.
async fn settled_rss(pid: u32) -> u64 {
    let mut last = rss_kib(pid);
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss_kib(pid);
        if now.abs_diff(last) < 512 {
            return now;
        }
        last = now;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_bounded_for_idle_followers_and_stalled_readers() {
    let server = start_server().await;
    let pid = server.child.id();
    let base = format!("http://127.0.0.1:{}", server.port);
    let http = reqwest::Client::new();
    let basin = "memory-test-basin";
    let r = http
        .post(format!("{base}/v1/basins"))
        .json(&json!({"basin": basin, "config": {"create_stream_on_append": true, "create_stream_on_read": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let baseline = settled_rss(pid).await;

    // 200 followers on 200 streams, over four h2 connections, each past catch-up.
    let clients: Vec<reqwest::Client> = (0..4)
        .map(|_| {
            reqwest::Client::builder()
                .http2_prior_knowledge()
                .build()
                .unwrap()
        })
        .collect();
    let mut followers = Vec::new();
    for i in 0..200 {
        let resp = clients[i % 4]
            .get(format!("{base}/v1/streams/idle-{i}/records?seq_num=0"))
            .header("s2-basin", basin)
            .header("content-type", "s2s/proto")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        // The first frame is the heartbeat that says the session is following.
        let first = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("heartbeat")
            .unwrap()
            .unwrap();
        assert!(first.len() > 4);
        followers.push(body);
    }
    let with_followers = settled_rss(pid).await;
    let per_follower = (with_followers.saturating_sub(baseline)) as f64 / 200.0;
    eprintln!(
        "memory: baseline {baseline} KiB; with 200 idle followers {with_followers} KiB \
         ({per_follower:.1} KiB per follower)"
    );
    assert!(per_follower < 128.0, "{per_follower} KiB per idle follower");

    // 64 MiB in one stream, then a reader that never reads.
    let big = "x".repeat(1024 * 1024 - 64);
    for _ in 0..64 {
        let r = http
            .post(format!("{base}/v1/streams/big/records"))
            .header("s2-basin", basin)
            .json(&json!({"records": [{"body": big}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let after_writes = settled_rss(pid).await;
    let stalled = clients[0]
        .get(format!("{base}/v1/streams/big/records?seq_num=0"))
        .header("s2-basin", basin)
        .header("content-type", "s2s/proto")
        .send()
        .await
        .unwrap();
    assert_eq!(stalled.status(), 200);
    let with_stalled = settled_rss(pid).await;
    eprintln!(
        "memory: after writing 64 MiB {after_writes} KiB; with a reader that never reads \
         {with_stalled} KiB (+{} KiB)",
        with_stalled as i64 - after_writes as i64
    );
    assert!(
        with_stalled < after_writes + 32 * 1024,
        "a stalled reader grew the server by {} KiB",
        with_stalled - after_writes
    );

    // The stalled reader was paused, not broken: it can still read everything.
    let mut body = stalled.bytes_stream();
    let mut buf = BytesMut::new();
    let mut records = 0;
    while records < 64 {
        let chunk: Bytes = tokio::time::timeout(Duration::from_secs(30), body.next())
            .await
            .expect("data flows once the reader reads")
            .unwrap()
            .unwrap();
        buf.extend_from_slice(&chunk);
        while buf.len() >= 3 {
            let len = ((buf[0] as usize) << 16) | ((buf[1] as usize) << 8) | buf[2] as usize;
            if buf.len() < 3 + len {
                break;
            }
            let frame = buf.split_to(3 + len);
            let batch: s2_api::v1::stream::proto::ReadBatch =
                prost::Message::decode(&frame[4..]).unwrap();
            records += batch.records.len();
        }
    }
    drop(followers);
}
