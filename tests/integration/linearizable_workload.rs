//! Many clients on several nodes append (plain, with `match_seq_num`, and under fencing),
//! read from the head and check the tail of one stream at random; the recorded history
//! must be linearizable under the S2 model (see `linearizability`). One variant kills a
//! node with SIGKILL in the middle: clients retry elsewhere, and still no acked record may
//! be lost and none duplicated. The `balanced` variant does the same through the nginx of
//! `scripts/cluster-tests.sh`, every client on the balancer's HTTP/1.1 address.

use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::{
    harness::{S3Server, basin_name, s3_server, unique},
    linearizability::{self, Append, Op, Outcome, Recorder},
};

/// Appends stop once the stream holds this many records, so that a single unary read
/// (at most 1000 records) still returns everything from the head.
const MAX_RECORDS: u64 = 700;
const CLIENTS: usize = 9;

/// `sluice serve` processes on one ministack bucket and prefix.
struct Nodes {
    children: Vec<Option<Child>>,
    endpoints: Vec<String>,
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
        let s3 = s3_server(S3Server::Ministack);
        let prefix = unique("lin");
        let mut children = Vec::new();
        let mut endpoints = Vec::new();
        for _ in 0..n {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
                .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--bucket", &s3.bucket, "--path", &prefix])
                .env("AWS_ENDPOINT_URL", &s3.endpoint)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .expect("start sluice");
            children.push(Some(child));
            endpoints.push(format!("http://127.0.0.1:{port}"));
        }
        let client = reqwest::Client::new();
        for e in &endpoints {
            crate::harness::eventually(Duration::from_secs(30), || async {
                let ok = client
                    .get(format!("{e}/health"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                ok.then_some(())
            })
            .await;
        }
        Self {
            children,
            endpoints,
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().expect("SIGKILL");
            child.wait().unwrap();
        }
    }
}

/// Where the workload runs.
enum Deployment {
    /// Nodes of our own; clients spread over them and fail over by themselves.
    Nodes(Nodes),
    /// The cluster of `scripts/cluster.sh` (its state directory), behind its balancer.
    Balanced { endpoint: String, state: String },
}

impl Deployment {
    fn endpoints(&self) -> Vec<String> {
        match self {
            Self::Nodes(nodes) => nodes.endpoints.clone(),
            Self::Balanced { endpoint, .. } => vec![endpoint.clone()],
        }
    }

    /// Kills the second node with SIGKILL.
    async fn kill_a_node(&mut self) {
        match self {
            Self::Nodes(nodes) => nodes.kill(1),
            // Requests the balancer sends there from now on find the port closed and must
            // go elsewhere; those in flight on it must fail.
            Self::Balanced { state, .. } => cluster_script(&["kill-node", state, "2"]).await,
        }
    }

    /// Brings the killed node back, for the cluster's later users.
    async fn revive(&mut self) {
        if let Self::Balanced { state, .. } = self {
            cluster_script(&["restart-node", state, "2"]).await;
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

/// What a client believes about the stream, to aim its conditions.
#[derive(Default)]
struct Beliefs {
    tail: u64,
    token: String,
}

struct Client {
    http: reqwest::Client,
    endpoints: Arc<Vec<String>>,
    node: usize,
    basin: String,
    recorder: Recorder,
    id: usize,
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}/v1/streams/lin{path}", self.endpoints[self.node])
    }

    /// Sends an append; any answer other than an ack or a 412 is indeterminate.
    async fn append(&mut self, append: Append, beliefs: &mut Beliefs) {
        let records: Vec<Value> = match &append.set_fence {
            Some(token) => vec![json!({"headers": [["", "fence"]], "body": token})],
            None => append
                .bodies
                .iter()
                .map(|b| json!({"body": std::str::from_utf8(b).unwrap()}))
                .collect(),
        };
        let mut body = json!({"records": records});
        if let Some(m) = append.match_seq_num {
            body["match_seq_num"] = json!(m);
        }
        if let Some(t) = &append.fencing_token {
            body["fencing_token"] = json!(t);
        }
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
                70..85 => self.read_from_head(&mut beliefs).await,
                _ => self.check_tail(&mut beliefs).await,
            }
            tail_seen.fetch_max(beliefs.tail, Ordering::Relaxed);
            i += 1;
        }
    }
}

async fn run_workload(mut deployment: Deployment, kill_a_node: bool) {
    let endpoints = Arc::new(deployment.endpoints());
    let basin = basin_name();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
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

    let recorder = Recorder::new();
    let stop = Arc::new(AtomicBool::new(false));
    let tail_seen = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let client = Client {
                http: http.clone(),
                endpoints: endpoints.clone(),
                node: id % endpoints.len(),
                basin: basin.clone(),
                recorder: recorder.clone(),
                id,
            };
            tokio::spawn(client.run(stop.clone(), tail_seen.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    if kill_a_node {
        deployment.kill_a_node().await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    if kill_a_node {
        deployment.revive().await;
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
    eprintln!(
        "workload (kill: {kill_a_node}): {} operations, {acked} acked appends, {indeterminate} indeterminate",
        entries.len()
    );
    assert!(
        acked > 50,
        "too few acked appends to mean anything ({acked})"
    );
    match linearizability::check(&history) {
        Ok(lin) => eprintln!("linearizable ({} states explored)", lin.explored),
        Err(v) => panic!("history is not linearizable: {v}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_on_three_nodes_see_a_linearizable_stream() {
    run_workload(Deployment::Nodes(Nodes::start(3).await), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_workload_loses_and_duplicates_nothing() {
    run_workload(Deployment::Nodes(Nodes::start(3).await), true).await;
}

/// Run by `scripts/cluster-tests.sh` on its own, after the suite: it kills a node.
mod balanced {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a running cluster: scripts/cluster-tests.sh"]
    async fn a_node_killed_behind_the_balancer_loses_and_duplicates_nothing() {
        let var = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("{name} (set by scripts/cluster-tests.sh)"))
        };
        // The workload's plain HTTP client speaks HTTP/1.1.
        let deployment = Deployment::Balanced {
            endpoint: std::env::var("SLUICE_TEST_CLUSTER_HTTP1_ENDPOINT")
                .unwrap_or_else(|_| var("SLUICE_TEST_CLUSTER_ENDPOINT")),
            state: var("SLUICE_TEST_CLUSTER_STATE"),
        };
        run_workload(deployment, true).await;
    }
}
