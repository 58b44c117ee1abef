//! Many clients on several nodes append (plain, with `match_seq_num`, and under fencing),
//! read from the head and check the tail of one stream at random; the recorded history
//! must be linearizable under the S2 model (see `linearizability`). One variant kills a
//! node with SIGKILL in the middle: clients retry elsewhere, and still no acked record may
//! be lost and none duplicated. The `balanced` variants do the same through the nginx of
//! `scripts/cluster-tests.sh`, every client on the balancer's addresses.
//!
//! The read-session variants read with read sessions instead of unary reads (raw S2S over
//! h2c, the SDK's read session to the tail and following until caught up, SSE over
//! HTTP/1.1) while nodes are killed and restarted one after another. A session that ends
//! cleanly is an answer ("these are all the records up to the tail"), so a balancer that
//! ends a dead node's streams cleanly instead of resetting them turns a cut read into a
//! short one, which the checker rejects. Errors are indeterminate, as for unary reads.
//! Those sessions are short, so few are cut; three followers (raw S2S, SDK) therefore
//! follow the stream from its head for the whole run, and every node dies under one of
//! them at least once. A following session must never end cleanly, must resume where it
//! failed, and each follower must end up with exactly the stream's records.

use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use prost::Message;
use s2_api::v1::stream::proto;
use s2_sdk::{
    S2,
    types::{
        ReadFrom, ReadInput, ReadSessionConfig, ReadStart, ReadStop, RetryConfig, S2Config,
        S2Endpoints,
    },
};
use serde_json::{Value, json};

use crate::{
    harness::{S3Endpoint, S3Server, basin_name, s3_server, unique},
    linearizability::{self, Append, Op, Outcome, Recorder},
};

/// Appends stop once the stream holds this many records, so that a single unary read
/// (at most 1000 records) still returns everything from the head.
const MAX_RECORDS: u64 = 700;
const CLIENTS: usize = 9;

/// A read session may take this long before it counts as failed.
const SESSION_TIMEOUT: Duration = Duration::from_secs(20);

/// `sluice serve` processes on one ministack bucket and prefix.
struct Nodes {
    children: Vec<Option<Child>>,
    ports: Vec<u16>,
    endpoints: Vec<String>,
    s3: S3Endpoint,
    prefix: String,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Nodes {
    async fn start(n: usize) -> Self {
        let mut nodes = Self {
            children: Vec::new(),
            ports: Vec::new(),
            endpoints: Vec::new(),
            s3: s3_server(S3Server::Ministack),
            prefix: unique("lin"),
        };
        for _ in 0..n {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            nodes.ports.push(port);
            nodes.endpoints.push(format!("http://127.0.0.1:{port}"));
            nodes.children.push(None);
        }
        for i in 0..n {
            nodes.spawn(i);
        }
        for i in 0..n {
            nodes.wait_healthy(i).await;
        }
        nodes
    }

    fn spawn(&mut self, i: usize) {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--host", "127.0.0.1"])
            .args(["--port", &self.ports[i].to_string()])
            .args(["--bucket", &self.s3.bucket, "--path", &self.prefix])
            .env("AWS_ENDPOINT_URL", &self.s3.endpoint)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start sluice");
        self.children[i] = Some(child);
    }

    async fn wait_healthy(&self, i: usize) {
        let client = reqwest::Client::new();
        let url = format!("{}/health", self.endpoints[i]);
        crate::harness::eventually(Duration::from_secs(30), || async {
            let ok = client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            ok.then_some(())
        })
        .await;
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().expect("SIGKILL");
            child.wait().unwrap();
        }
    }

    /// Starts node `i` again on its port (its old process is gone).
    async fn restart(&mut self, i: usize) {
        self.kill(i);
        // The port may take a moment to be free again.
        crate::harness::eventually(Duration::from_secs(10), || async {
            std::net::TcpListener::bind(("127.0.0.1", self.ports[i]))
                .is_ok()
                .then_some(())
        })
        .await;
        self.spawn(i);
        self.wait_healthy(i).await;
    }
}

/// Where the workload runs.
enum Deployment {
    /// Nodes of our own; clients spread over them and fail over by themselves.
    Nodes(Nodes),
    /// The cluster of `scripts/cluster.sh` (its state directory), behind its balancer:
    /// h2c at `h2`, HTTP/1.1 at `http1`.
    Balanced {
        h2: String,
        http1: String,
        state: String,
        nodes: usize,
    },
}

impl Deployment {
    /// The cluster that `scripts/cluster-tests.sh` describes in the environment.
    fn balanced() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("{name} (set by scripts/cluster-tests.sh)"))
        };
        let h2 = var("SLUICE_TEST_CLUSTER_ENDPOINT");
        Self::Balanced {
            http1: std::env::var("SLUICE_TEST_CLUSTER_HTTP1_ENDPOINT").unwrap_or(h2.clone()),
            h2,
            state: var("SLUICE_TEST_CLUSTER_STATE"),
            nodes: std::env::var("SLUICE_CLUSTER_NODES").map_or(3, |n| n.parse().unwrap()),
        }
    }

    /// Base URLs for HTTP/1.1 clients.
    fn endpoints(&self) -> Vec<String> {
        match self {
            Self::Nodes(nodes) => nodes.endpoints.clone(),
            Self::Balanced { http1, .. } => vec![http1.clone()],
        }
    }

    /// Base URLs for h2c clients, in the order of [`Self::endpoints`].
    fn h2_endpoints(&self) -> Vec<String> {
        match self {
            Self::Nodes(nodes) => nodes.endpoints.clone(),
            Self::Balanced { h2, .. } => vec![h2.clone()],
        }
    }

    fn nodes(&self) -> usize {
        match self {
            Self::Nodes(nodes) => nodes.endpoints.len(),
            Self::Balanced { nodes, .. } => *nodes,
        }
    }

    /// Kills node `i` (0-based) with SIGKILL.
    async fn kill(&mut self, i: usize) {
        match self {
            Self::Nodes(nodes) => nodes.kill(i),
            // Requests the balancer sends there from now on find the port closed and go
            // elsewhere; streams that were open to it must end with an error.
            Self::Balanced { state, .. } => {
                cluster_script(&["kill-node", state, &(i + 1).to_string()]).await
            }
        }
    }

    /// Starts node `i` again on its port.
    async fn restart(&mut self, i: usize) {
        match self {
            Self::Nodes(nodes) => nodes.restart(i).await,
            Self::Balanced { state, .. } => {
                cluster_script(&["restart-node", state, &(i + 1).to_string()]).await
            }
        }
    }
}

async fn cluster_script(args: &[&str]) {
    let status =
        tokio::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh"))
            .args(args)
            .stdout(Stdio::null())
            .status()
            .await
            .expect("run scripts/cluster.sh");
    assert!(status.success(), "scripts/cluster.sh {args:?}: {status}");
}

/// Which nodes die during the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kills {
    None,
    /// The second node, once, 2 s in; it stays down until the clients are done.
    One,
    /// Every node in turn: killed, down for a second, restarted.
    Rolling,
}

/// How clients read the stream from its head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reads {
    /// Unary reads (one JSON reply of at most 1000 records).
    Unary,
    /// Read sessions, of the kinds in [`SessionKind`].
    Sessions,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SessionKind {
    /// Raw S2S over h2c, `wait=0`: every record up to the tail, then a clean end.
    S2sToTail,
    /// The SDK's read session with `wait=0` (it resumes by itself after errors).
    SdkToTail,
    /// The SDK's following read session, dropped once it has caught up with the tail.
    SdkFollowing,
    /// SSE over HTTP/1.1, `wait=0`: ends with `data: [DONE]`.
    SseToTail,
}

const SESSION_KINDS: [SessionKind; 4] = [
    SessionKind::S2sToTail,
    SessionKind::SdkToTail,
    SessionKind::SdkFollowing,
    SessionKind::SseToTail,
];

/// What a client believes about the stream, to aim its conditions.
#[derive(Default)]
struct Beliefs {
    tail: u64,
    token: String,
}

struct Client {
    http: reqwest::Client,
    h2: reqwest::Client,
    endpoints: Arc<Vec<String>>,
    h2_endpoints: Arc<Vec<String>>,
    sdks: Arc<Vec<S2>>,
    node: usize,
    basin: String,
    recorder: Recorder,
    id: usize,
    reads: Reads,
    /// Following sessions that ended cleanly: never right.
    clean_ends: Arc<AtomicU64>,
    /// The last operation failed: pause before the next.
    backoff: bool,
}

/// What a read session got: every record up to the tail, or nothing known.
enum SessionRead {
    Records(Vec<Bytes>),
    /// An error, a timeout, or an end that cannot be complete.
    Failed,
    /// A following session ended cleanly after these records.
    EndedCleanly(Vec<Bytes>),
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}/v1/streams/lin{path}", self.endpoints[self.node])
    }

    fn h2_url(&self, path: &str) -> String {
        format!("{}/v1/streams/lin{path}", self.h2_endpoints[self.node])
    }

    /// Sends an append; any answer other than an ack or a 412 is indeterminate.
    async fn append(&mut self, append: Append, beliefs: &mut Beliefs) {
        let body = append.json_body();
        let id = self.recorder.invoke(Op::Append(append.clone()));
        let reply = self
            .http
            .post(self.url("/records"))
            .header("s2-basin", &self.basin)
            .json(&body)
            .send()
            .await;
        let outcome = match reply {
            Ok(r) if r.status() == 200 => {
                let ack: Value = r.json().await.unwrap_or(Value::Null);
                match (
                    ack["start"]["seq_num"].as_u64(),
                    ack["end"]["seq_num"].as_u64(),
                ) {
                    (Some(start), Some(end)) => {
                        beliefs.tail = end;
                        if let Some(t) = &append.set_fence {
                            beliefs.token.clone_from(t);
                        }
                        Outcome::Appended { start, end }
                    }
                    _ => Outcome::Indeterminate,
                }
            }
            Ok(r) if r.status() == 412 => {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if let Some(next) = body["seq_num_mismatch"].as_u64() {
                    beliefs.tail = next;
                    Outcome::SeqNumMismatch(next)
                } else if let Some(token) = body["fencing_token_mismatch"].as_str() {
                    beliefs.token = token.to_owned();
                    Outcome::FencingTokenMismatch(token.to_owned())
                } else {
                    Outcome::Indeterminate
                }
            }
            _ => {
                self.failover();
                Outcome::Indeterminate
            }
        };
        self.recorder.complete(id, outcome);
    }

    async fn read_from_head(&mut self, beliefs: &mut Beliefs) {
        let id = self.recorder.invoke(Op::ReadFromHead);
        let reply = self
            .http
            .get(self.url("/records?seq_num=0&clamp=true&wait=0"))
            .header("s2-basin", &self.basin)
            .send()
            .await;
        let outcome = match reply {
            Ok(r) if r.status() == 200 => match r.json::<Value>().await {
                Ok(batch) => {
                    let bodies: Vec<Bytes> = batch["records"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| Bytes::from(r["body"].as_str().unwrap_or("").to_owned()))
                        .collect();
                    beliefs.tail = beliefs.tail.max(bodies.len() as u64);
                    Outcome::Read {
                        count: bodies.len() as u64,
                        hash: linearizability::hash_bodies(&bodies),
                    }
                }
                Err(_) => Outcome::Indeterminate,
            },
            // An empty stream: nothing to read from the head.
            Ok(r) if r.status() == 416 => Outcome::Read {
                count: 0,
                hash: linearizability::hash_bodies(Vec::<Bytes>::new()),
            },
            _ => {
                self.failover();
                Outcome::Indeterminate
            }
        };
        self.recorder.complete(id, outcome);
    }

    /// A read from the head through a read session of the given kind.
    async fn session_read(&mut self, kind: SessionKind, beliefs: &mut Beliefs) {
        let id = self.recorder.invoke(Op::ReadFromHead);
        let read = match tokio::time::timeout(SESSION_TIMEOUT, self.session(kind)).await {
            Ok(read) => read,
            Err(_) => SessionRead::Failed,
        };
        let outcome = match read {
            SessionRead::Records(bodies) => {
                beliefs.tail = beliefs.tail.max(bodies.len() as u64);
                Outcome::Read {
                    count: bodies.len() as u64,
                    hash: linearizability::hash_bodies(&bodies),
                }
            }
            SessionRead::Failed => {
                self.failover();
                Outcome::Indeterminate
            }
            SessionRead::EndedCleanly(bodies) => {
                self.clean_ends.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "client {}: a following {kind:?} session ended cleanly after {} records",
                    self.id,
                    bodies.len()
                );
                Outcome::Indeterminate
            }
        };
        self.recorder.complete(id, outcome);
    }

    async fn session(&self, kind: SessionKind) -> SessionRead {
        let query = "/records?seq_num=0&clamp=true&wait=0";
        match kind {
            SessionKind::S2sToTail => {
                let reply = self
                    .h2
                    .get(self.h2_url(query))
                    .header("s2-basin", &self.basin)
                    .header("content-type", "s2s/proto")
                    .send()
                    .await;
                match reply {
                    Ok(r) if r.status() == 200 => read_s2s(r).await,
                    Ok(r) if r.status() == 416 => SessionRead::Records(vec![]),
                    _ => SessionRead::Failed,
                }
            }
            SessionKind::SseToTail => {
                let reply = self
                    .http
                    .get(self.url(query))
                    .header("s2-basin", &self.basin)
                    .header("accept", "text/event-stream")
                    .send()
                    .await;
                match reply {
                    Ok(r) if r.status() == 200 => read_sse(r).await,
                    Ok(r) if r.status() == 416 => SessionRead::Records(vec![]),
                    _ => SessionRead::Failed,
                }
            }
            SessionKind::SdkToTail | SessionKind::SdkFollowing => {
                let stream = self.sdks[self.node]
                    .basin(self.basin.parse().unwrap())
                    .stream("lin".parse().unwrap());
                let following = kind == SessionKind::SdkFollowing;
                let mut input =
                    ReadInput::new().with_start(ReadStart::new().with_from(ReadFrom::SeqNum(0)));
                if !following {
                    input = input.with_stop(ReadStop::new().with_wait(0));
                }
                let mut session = match stream.read_session(input, ReadSessionConfig::new()).await {
                    Ok(session) => session,
                    Err(s2_sdk::error::ReadSessionError::Read(
                        s2_sdk::error::ReadError::ReadUnwritten(_),
                    )) if !following => return SessionRead::Records(vec![]),
                    Err(_) => return SessionRead::Failed,
                };
                let mut bodies = Vec::new();
                loop {
                    match session.next().await {
                        Some(Ok(batch)) => {
                            bodies.extend(batch.records.iter().map(|r| r.body.clone()));
                            // Caught up: the tail is known and nothing is missing before it.
                            if following
                                && batch.tail.is_some_and(|t| t.seq_num == bodies.len() as u64)
                            {
                                return SessionRead::Records(bodies);
                            }
                        }
                        Some(Err(_)) => return SessionRead::Failed,
                        None if following => return SessionRead::EndedCleanly(bodies),
                        None => return SessionRead::Records(bodies),
                    }
                }
            }
        }
    }

    async fn check_tail(&mut self, beliefs: &mut Beliefs) {
        let id = self.recorder.invoke(Op::CheckTail);
        let reply = self
            .http
            .get(self.url("/records/tail"))
            .header("s2-basin", &self.basin)
            .send()
            .await;
        let outcome = match reply {
            Ok(r) if r.status() == 200 => match r.json::<Value>().await {
                Ok(v) => {
                    let tail = v["tail"]["seq_num"].as_u64().unwrap();
                    beliefs.tail = tail;
                    Outcome::Tail(tail)
                }
                Err(_) => Outcome::Indeterminate,
            },
            _ => {
                self.failover();
                Outcome::Indeterminate
            }
        };
        self.recorder.complete(id, outcome);
    }

    /// After a transport failure or server error, use the next node (what a load
    /// balancer's redispatch does).
    fn failover(&mut self) {
        self.node = (self.node + 1) % self.endpoints.len();
        self.backoff = true;
    }

    async fn run(mut self, stop: Arc<AtomicBool>, tail_seen: Arc<AtomicU64>) {
        let mut beliefs = Beliefs::default();
        let fencer = self.id.is_multiple_of(3);
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let roll = rand::random_range(0..100u32);
            let room = tail_seen.load(Ordering::Relaxed) < MAX_RECORDS;
            let body = |j: u64| Bytes::from(format!("c{}-{i}-{j}", self.id));
            match roll {
                0..35 if room => {
                    let n = rand::random_range(1..=3u64);
                    self.append(Append::new((0..n).map(body)), &mut beliefs)
                        .await;
                }
                35..50 if room => {
                    let append = Append::new([body(0)]).with_match_seq_num(beliefs.tail);
                    self.append(append, &mut beliefs).await;
                }
                50..60 if room && fencer => {
                    let token = format!("t{}-{i}", self.id);
                    let append = Append::fence(token).with_fencing_token(beliefs.token.clone());
                    self.append(append, &mut beliefs).await;
                }
                60..70 if room && fencer => {
                    let append = Append::new([body(0)]).with_fencing_token(beliefs.token.clone());
                    self.append(append, &mut beliefs).await;
                }
                70..85 if self.reads == Reads::Unary => self.read_from_head(&mut beliefs).await,
                70..90 => {
                    let kind = SESSION_KINDS[rand::random_range(0..SESSION_KINDS.len())];
                    self.session_read(kind, &mut beliefs).await
                }
                _ => self.check_tail(&mut beliefs).await,
            }
            tail_seen.fetch_max(beliefs.tail, Ordering::Relaxed);
            if std::mem::take(&mut self.backoff) {
                // As a real client would, rather than spin on errors.
                tokio::time::sleep(Duration::from_millis(rand::random_range(5..50))).await;
            }
            i += 1;
        }
    }
}

/// Takes the complete S2S frames off the front of `buf` as read batches; `Err` for a
/// terminal frame (an error), a compressed one (never asked for) or one that does not
/// decode.
fn s2s_batches(buf: &mut BytesMut) -> Result<Vec<proto::ReadBatch>, ()> {
    let mut batches = Vec::new();
    while buf.len() >= 3 {
        let len = ((buf[0] as usize) << 16) | ((buf[1] as usize) << 8) | buf[2] as usize;
        if buf.len() < 3 + len {
            break;
        }
        let mut frame = buf.split_to(3 + len).freeze();
        frame.advance(3);
        let flags = frame.get_u8();
        if flags & 0x80 != 0 || flags & 0x60 != 0 {
            return Err(());
        }
        batches.push(proto::ReadBatch::decode(frame).map_err(|_| ())?);
    }
    Ok(batches)
}

/// Reads an S2S read session's frames until its body ends.
async fn read_s2s(reply: reqwest::Response) -> SessionRead {
    let mut body = reply.bytes_stream();
    let mut buf = BytesMut::new();
    let mut bodies = Vec::new();
    loop {
        match body.next().await {
            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
            Some(Err(_)) => return SessionRead::Failed,
            // A clean end between frames: the session says it is complete.
            None if buf.is_empty() => return SessionRead::Records(bodies),
            None => return SessionRead::Failed,
        }
        match s2s_batches(&mut buf) {
            Ok(batches) => {
                bodies.extend(batches.into_iter().flat_map(|b| b.records).map(|r| r.body))
            }
            Err(()) => return SessionRead::Failed,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FollowerKind {
    /// Raw S2S over h2c; opened again from the next record after an error.
    RawS2s,
    /// The SDK's read session (which resumes by itself after errors).
    Sdk,
}

/// What a [`Follower`] saw.
#[derive(Default, Debug)]
struct Followed {
    bodies: Vec<Bytes>,
    /// Sessions that ended cleanly: a following session never should.
    clean_ends: u64,
    /// Sessions that failed, and were opened again from the next record.
    errors: u64,
    /// Records that arrived out of seq_num order (duplicates, gaps).
    out_of_order: u64,
}

/// Follows the stream from its head for the whole workload, so that every node killed
/// has following sessions open at that moment.
struct Follower {
    kind: FollowerKind,
    /// Without a request timeout: a following session stays open.
    h2: reqwest::Client,
    h2_endpoints: Arc<Vec<String>>,
    sdks: Arc<Vec<S2>>,
    node: usize,
    basin: String,
}

/// How a follower's session ended.
enum SessionEnd {
    Stopped,
    Clean,
    Failed,
}

impl Follower {
    async fn run(mut self, stop: Arc<AtomicBool>, progress: Arc<AtomicU64>) -> Followed {
        let mut seen = Followed::default();
        while !stop.load(Ordering::Relaxed) {
            let end = match self.kind {
                FollowerKind::RawS2s => self.raw_session(&mut seen, &stop, &progress).await,
                FollowerKind::Sdk => self.sdk_session(&mut seen, &stop, &progress).await,
            };
            match end {
                SessionEnd::Stopped => break,
                SessionEnd::Clean => seen.clean_ends += 1,
                SessionEnd::Failed => {
                    seen.errors += 1;
                    self.node = (self.node + 1) % self.h2_endpoints.len();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        seen
    }

    fn take(seen: &mut Followed, progress: &AtomicU64, seq_num: u64, body: Bytes) {
        if seq_num == seen.bodies.len() as u64 {
            seen.bodies.push(body);
            progress.store(seen.bodies.len() as u64, Ordering::Relaxed);
        } else {
            seen.out_of_order += 1;
        }
    }

    async fn raw_session(
        &self,
        seen: &mut Followed,
        stop: &AtomicBool,
        progress: &AtomicU64,
    ) -> SessionEnd {
        let url = format!(
            "{}/v1/streams/lin/records?seq_num={}",
            self.h2_endpoints[self.node],
            seen.bodies.len()
        );
        let request = self
            .h2
            .get(url)
            .header("s2-basin", &self.basin)
            .header("content-type", "s2s/proto")
            .send();
        let reply = match tokio::time::timeout(Duration::from_secs(10), request).await {
            Ok(Ok(r)) if r.status() == 200 => r,
            _ => return SessionEnd::Failed,
        };
        let mut body = reply.bytes_stream();
        let mut buf = BytesMut::new();
        loop {
            let next = match tokio::time::timeout(Duration::from_millis(200), body.next()).await {
                Ok(next) => next,
                Err(_) if stop.load(Ordering::Relaxed) => return SessionEnd::Stopped,
                Err(_) => continue,
            };
            match next {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(_)) => return SessionEnd::Failed,
                None => return SessionEnd::Clean,
            }
            let Ok(batches) = s2s_batches(&mut buf) else {
                return SessionEnd::Failed;
            };
            for record in batches.into_iter().flat_map(|b| b.records) {
                Self::take(seen, progress, record.seq_num, record.body);
            }
        }
    }

    async fn sdk_session(
        &self,
        seen: &mut Followed,
        stop: &AtomicBool,
        progress: &AtomicU64,
    ) -> SessionEnd {
        let stream = self.sdks[self.node]
            .basin(self.basin.parse().unwrap())
            .stream("lin".parse().unwrap());
        let from = ReadFrom::SeqNum(seen.bodies.len() as u64);
        let input = ReadInput::new().with_start(ReadStart::new().with_from(from));
        let mut session = match stream.read_session(input, ReadSessionConfig::new()).await {
            Ok(session) => session,
            Err(_) => return SessionEnd::Failed,
        };
        loop {
            let next = match tokio::time::timeout(Duration::from_millis(200), session.next()).await
            {
                Ok(next) => next,
                Err(_) if stop.load(Ordering::Relaxed) => return SessionEnd::Stopped,
                Err(_) => continue,
            };
            match next {
                Some(Ok(batch)) => {
                    for record in batch.records {
                        Self::take(seen, progress, record.seq_num, record.body);
                    }
                }
                Some(Err(_)) => return SessionEnd::Failed,
                None => return SessionEnd::Clean,
            }
        }
    }
}

const FOLLOWERS: [FollowerKind; 3] = [
    FollowerKind::RawS2s,
    FollowerKind::Sdk,
    FollowerKind::RawS2s,
];

/// The whole stream, read to its tail in one S2S session (retried until one succeeds).
async fn final_contents(h2: &reqwest::Client, endpoints: &[String], basin: &str) -> Vec<Bytes> {
    for attempt in 0..50 {
        let url = format!(
            "{}/v1/streams/lin/records?seq_num=0&clamp=true&wait=0",
            endpoints[attempt % endpoints.len()]
        );
        let reply = h2
            .get(url)
            .header("s2-basin", basin)
            .header("content-type", "s2s/proto")
            .send()
            .await;
        if let Ok(r) = reply
            && r.status() == 200
            && let SessionRead::Records(bodies) = read_s2s(r).await
        {
            return bodies;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no read session to the tail succeeded");
}

/// Reads an SSE response until `data: [DONE]`; an end without it is a failure (that is
/// what the marker is for).
async fn read_sse(reply: reqwest::Response) -> SessionRead {
    let mut body = reply.bytes_stream();
    let mut text = String::new();
    let mut bodies = Vec::new();
    loop {
        match body.next().await {
            Some(Ok(chunk)) => match std::str::from_utf8(&chunk) {
                Ok(s) => text.push_str(s),
                Err(_) => return SessionRead::Failed,
            },
            _ => return SessionRead::Failed,
        }
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            let (mut name, mut data) = ("", String::new());
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            match name {
                "" if data == "[DONE]" => return SessionRead::Records(bodies),
                "batch" => match serde_json::from_str::<Value>(&data) {
                    Ok(batch) => bodies.extend(
                        batch["records"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|r| Bytes::from(r["body"].as_str().unwrap_or("").to_owned())),
                    ),
                    Err(_) => return SessionRead::Failed,
                },
                "ping" => {}
                _ => return SessionRead::Failed,
            }
        }
    }
}

async fn run_workload(mut deployment: Deployment, kills: Kills, reads: Reads) {
    let endpoints = Arc::new(deployment.endpoints());
    let h2_endpoints = Arc::new(deployment.h2_endpoints());
    let basin = basin_name();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let sdks: Arc<Vec<S2>> = Arc::new(
        h2_endpoints
            .iter()
            .map(|e| {
                let config = S2Config::new("ignored")
                    .with_endpoints(S2Endpoints::for_endpoint(e).unwrap())
                    .with_retry(RetryConfig::new());
                S2::new(config).unwrap()
            })
            .collect(),
    );
    let r = http
        .post(format!("{}/v1/basins", endpoints[0]))
        .json(
            &json!({"basin": basin, "config": {"create_stream_on_append": true,
                                                  "create_stream_on_read": true}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(format!("{}/v1/streams", endpoints[0]))
        .header("s2-basin", &basin)
        .json(&json!({"stream": "lin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let stop_followers = Arc::new(AtomicBool::new(false));
    let followers: Vec<_> = match reads {
        Reads::Unary => vec![],
        Reads::Sessions => FOLLOWERS
            .iter()
            .enumerate()
            .map(|(i, &kind)| {
                let follower = Follower {
                    kind,
                    h2: reqwest::Client::builder()
                        .http2_prior_knowledge()
                        .build()
                        .unwrap(),
                    h2_endpoints: h2_endpoints.clone(),
                    sdks: sdks.clone(),
                    node: i % h2_endpoints.len(),
                    basin: basin.clone(),
                };
                let progress = Arc::new(AtomicU64::new(0));
                let task = tokio::spawn(follower.run(stop_followers.clone(), progress.clone()));
                (kind, progress, task)
            })
            .collect(),
    };

    let recorder = Recorder::new();
    let stop = Arc::new(AtomicBool::new(false));
    let tail_seen = Arc::new(AtomicU64::new(0));
    let clean_ends = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let client = Client {
                http: http.clone(),
                h2: h2.clone(),
                endpoints: endpoints.clone(),
                h2_endpoints: h2_endpoints.clone(),
                sdks: sdks.clone(),
                node: id % endpoints.len(),
                basin: basin.clone(),
                recorder: recorder.clone(),
                id,
                reads,
                clean_ends: clean_ends.clone(),
                backoff: false,
            };
            tokio::spawn(client.run(stop.clone(), tail_seen.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    match kills {
        Kills::None => tokio::time::sleep(Duration::from_secs(2)).await,
        Kills::One => {
            deployment.kill(1).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        Kills::Rolling => {
            // The second node first, as with `Kills::One`, then the others.
            let n = deployment.nodes();
            for i in (0..n).map(|i| (i + 1) % n) {
                deployment.kill(i).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                deployment.restart(i).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    if kills == Kills::One {
        // For the cluster's later users.
        deployment.restart(1).await;
    }

    // Every follower must catch up with the final stream, and have seen exactly it.
    if !followers.is_empty() {
        let contents = final_contents(&h2, &h2_endpoints, &basin).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline
            && followers
                .iter()
                .any(|(_, p, _)| p.load(Ordering::Relaxed) < contents.len() as u64)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop_followers.store(true, Ordering::Relaxed);
        let mut seens = Vec::new();
        for (kind, _, task) in followers {
            let seen = task.await.unwrap();
            eprintln!(
                "follower ({kind:?}): {} records, {} sessions failed and resumed, {} ended cleanly",
                seen.bodies.len(),
                seen.errors,
                seen.clean_ends
            );
            seens.push((kind, seen));
        }
        for (kind, seen) in seens {
            assert_eq!(
                seen.clean_ends, 0,
                "a following {kind:?} session ended cleanly {} times (a dead node's stream \
                 must end with an error)",
                seen.clean_ends
            );
            assert_eq!(seen.out_of_order, 0, "{kind:?}: records out of order");
            assert!(
                seen.bodies == contents,
                "{kind:?} follower saw {} records, not the stream's {}, or other ones",
                seen.bodies.len(),
                contents.len()
            );
        }
    }

    let history = recorder.history();
    let entries = history.entries();
    let acked = entries
        .iter()
        .filter(|e| {
            matches!(
                e.completion.as_ref().map(|c| &c.outcome),
                Some(Outcome::Appended { .. })
            )
        })
        .count();
    let indeterminate = entries
        .iter()
        .filter(|e| {
            e.completion
                .as_ref()
                .is_none_or(|c| c.outcome == Outcome::Indeterminate)
        })
        .count();
    let reads_done = entries
        .iter()
        .filter(|e| {
            e.op == Op::ReadFromHead
                && matches!(
                    e.completion.as_ref().map(|c| &c.outcome),
                    Some(Outcome::Read { .. })
                )
        })
        .count();
    eprintln!(
        "workload (kills: {kills:?}, reads: {reads:?}): {} operations, {acked} acked appends, \
         {reads_done} complete reads from the head, {indeterminate} indeterminate",
        entries.len()
    );
    assert!(
        acked > 50,
        "too few acked appends to mean anything ({acked})"
    );
    let clean_ends = clean_ends.load(Ordering::Relaxed);
    assert_eq!(
        clean_ends, 0,
        "{clean_ends} following read sessions ended cleanly (a dead node's stream must end \
         with an error)"
    );
    match linearizability::check(&history) {
        Ok(lin) => eprintln!("linearizable ({} states explored)", lin.explored),
        Err(v) => panic!("history is not linearizable: {v}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_on_three_nodes_see_a_linearizable_stream() {
    let nodes = Deployment::Nodes(Nodes::start(3).await);
    run_workload(nodes, Kills::None, Reads::Unary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_workload_loses_and_duplicates_nothing() {
    let nodes = Deployment::Nodes(Nodes::start(3).await);
    run_workload(nodes, Kills::One, Reads::Unary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_sessions_stay_linearizable_while_nodes_are_killed() {
    let nodes = Deployment::Nodes(Nodes::start(3).await);
    run_workload(nodes, Kills::Rolling, Reads::Sessions).await;
}

/// Run by `scripts/cluster-tests.sh` on their own, after the suite: they kill nodes.
mod balanced {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a running cluster: scripts/cluster-tests.sh"]
    async fn a_node_killed_behind_the_balancer_loses_and_duplicates_nothing() {
        run_workload(Deployment::balanced(), Kills::One, Reads::Unary).await;
    }

    /// Fails behind a balancer that ends a dead node's HTTP/2 streams cleanly (Debian's
    /// HAProxy 2.6): the followers' sessions then end cleanly when their node dies.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a running cluster: scripts/cluster-tests.sh"]
    async fn read_sessions_behind_the_balancer_stay_linearizable_while_nodes_are_killed() {
        run_workload(Deployment::balanced(), Kills::Rolling, Reads::Sessions).await;
    }
}
