//! Deterministic simulation: several nodes (engines with their HTTP apps, in this process)
//! over one in-memory bucket, each behind its own fault-injecting store, on one
//! current-thread runtime whose clock is paused and whose randomness is seeded. Clients
//! drive the three S2 workflows (plain appends, `match_seq_num` appends, appends under
//! fencing, with reads and tail checks) on one stream and consumer-group operations on
//! another, through the same HTTP routes a network client uses.
//!
//! The S2 history must be linearizable (`integration/linearizability.rs`); the group's
//! history must keep the group's promises: an entry is delivered by `>` to one consumer
//! at most, an acknowledged entry is never pending again, and every entry ends up
//! delivered or pending. Each seed runs twice and must produce the same history, so a
//! failing seed replays exactly:
//!
//! ```text
//! SLUICE_SIM_SEED=<seed> cargo test --test simulation -- --nocapture
//! SLUICE_SIM_SEEDS=200 cargo test --test simulation     # more seeds than CI's
//! ```

#[allow(dead_code)]
#[path = "integration/linearizability.rs"]
mod linearizability;

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
    rc::Rc,
    sync::Arc,
    time::Duration,
};

use axum::{Router, body::Body};
use bytes::Bytes;
use http::{Request, StatusCode};
use linearizability::{Append, History, Op, OpId, Outcome};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use sluice::{
    engine::{Clock, PollIntervals, Random},
    server::{self, Backend, ServerConfig},
    storage::{
        self, DynStore,
        faulty::{Faults, FaultyStore},
    },
};
use tower::ServiceExt;

const NODES: usize = 3;
const S2_CLIENTS: usize = 4;
const OPS_PER_CLIENT: usize = 25;
const CONSUMERS: usize = 3;
const GROUP_ROUNDS: usize = 15;
/// A request that takes longer than this (in simulated time) counts as lost.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const BASIN: &str = "sim-basin";
/// The seeds CI runs; `SLUICE_SIM_SEEDS` runs more.
const DEFAULT_SEEDS: u64 = 16;

fn faults() -> Faults {
    Faults {
        fail_before: 0.03,
        lose_response: 0.03,
        delay: 0.5,
        max_delay: Duration::from_millis(40),
    }
}

/// What one run recorded: the S2 history, and a log of every operation in the order it
/// ended, with simulated times, for comparing runs.
struct Run {
    s2: History,
    log: Vec<String>,
    violations: Vec<String>,
}

/// Everything clients share; one thread, so `Rc<RefCell<…>>`.
#[derive(Clone)]
struct World {
    nodes: Rc<Vec<Router>>,
    stores: Rc<Vec<Arc<FaultyStore>>>,
    origin: tokio::time::Instant,
    s2: Rc<RefCell<History>>,
    log: Rc<RefCell<Vec<String>>>,
}

impl World {
    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn note(&self, line: String) {
        let at = self.origin.elapsed().as_millis();
        self.log.borrow_mut().push(format!("{at:>7} ms {line}"));
    }

    fn invoke(&self, op: Op) -> OpId {
        let at = self.now();
        self.s2.borrow_mut().invoke(op, at)
    }

    fn complete(&self, id: OpId, outcome: Outcome) {
        self.note(format!("s2 op {} -> {outcome}", id.0));
        let at = self.now();
        self.s2.borrow_mut().complete(id, outcome, at);
    }

    /// One request to `node`; `None` if it took longer than [`REQUEST_TIMEOUT`].
    async fn send(
        &self,
        node: usize,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> Option<(StatusCode, Value)> {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("s2-basin", BASIN);
        let body = match body {
            Some(v) => {
                request = request.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let app = self.nodes[node].clone();
        let call = async {
            let reply = app.oneshot(request.body(body).unwrap()).await.unwrap();
            let status = reply.status();
            let bytes = axum::body::to_bytes(reply.into_body(), 16 << 20)
                .await
                .ok()?;
            Some((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, call)
            .await
            .ok()
            .flatten()
    }

    /// A Redis command through the plate surface: its result, or `Err` with the error
    /// code (`None` when the request was lost).
    async fn command(&self, node: usize, args: &[&str]) -> Result<Value, Option<String>> {
        let body = json!({"command": args[0], "args": &args[1..]});
        match self
            .send(
                node,
                "POST",
                &format!("/{BASIN}/streams/command"),
                Some(body),
            )
            .await
        {
            Some((StatusCode::OK, v)) => Ok(v["data"]["result"].clone()),
            Some((_, v)) => Err(Some(v["error"]["code"].as_str().unwrap_or("?").to_owned())),
            None => Err(None),
        }
    }
}

/// Builds the nodes: each an engine and its HTTP app over the shared bucket, behind its
/// own faulty store, with the simulated clock and randomness drawn from `seed`.
fn world(seed: u64) -> World {
    let bucket: DynStore = storage::memory();
    let mut nodes = Vec::new();
    let mut stores = Vec::new();
    for i in 0..NODES as u64 {
        let store = Arc::new(FaultyStore::new(
            bucket.clone(),
            seed * 31 + i,
            Faults::default(),
        ));
        let mut config = ServerConfig::new(Backend::Local("unused".into()));
        config.engine.poll = Some(PollIntervals::default());
        config.engine.clock = Clock::simulated(1_767_225_600_000);
        config.engine.random = Random::seeded(seed * 131 + i);
        config.engine.deletion_grace = Duration::from_millis(100);
        // Checkpoints (and the collection of what they supersede) every few group
        // writes, so nodes holding an older group meet them.
        config.engine.group_checkpoint_records = 3;
        nodes.push(server::build_node_on(store.clone(), &config).app);
        stores.push(store);
    }
    World {
        nodes: Rc::new(nodes),
        stores: Rc::new(stores),
        origin: tokio::time::Instant::now(),
        s2: Rc::default(),
        log: Rc::default(),
    }
}

/// What a client believes about the S2 stream, to aim its conditions.
#[derive(Default)]
struct Beliefs {
    tail: u64,
    token: String,
}

async fn s2_client(world: World, id: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed * 1009 + id as u64);
    let mut beliefs = Beliefs::default();
    let uri = "/v1/streams/lin/records";
    for i in 0..OPS_PER_CLIENT {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..30))).await;
        let node = rng.random_range(0..NODES);
        let roll = rng.random_range(0..100u32);
        if roll < 55 {
            let n = rng.random_range(1..=3u64);
            let mut append = Append::new((0..n).map(|j| Bytes::from(format!("c{id}-{i}-{j}"))));
            match rng.random_range(0..4u32) {
                0 => append = append.with_match_seq_num(beliefs.tail),
                1 => append = append.with_fencing_token(beliefs.token.clone()),
                2 if id == 0 => {
                    append =
                        Append::fence(format!("f{i}")).with_fencing_token(beliefs.token.clone());
                }
                _ => {}
            }
            let body = append.json_body();
            let op = world.invoke(Op::Append(append.clone()));
            let outcome = match world.send(node, "POST", uri, Some(body)).await {
                Some((StatusCode::OK, ack)) => {
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
                Some((StatusCode::PRECONDITION_FAILED, v)) => {
                    if let Some(next) = v["seq_num_mismatch"].as_u64() {
                        beliefs.tail = next;
                        Outcome::SeqNumMismatch(next)
                    } else if let Some(token) = v["fencing_token_mismatch"].as_str() {
                        beliefs.token = token.to_owned();
                        Outcome::FencingTokenMismatch(token.to_owned())
                    } else {
                        Outcome::Indeterminate
                    }
                }
                _ => Outcome::Indeterminate,
            };
            world.complete(op, outcome);
        } else if roll < 80 {
            let op = world.invoke(Op::ReadFromHead);
            let reply = world
                .send(
                    node,
                    "GET",
                    &format!("{uri}?seq_num=0&clamp=true&wait=0"),
                    None,
                )
                .await;
            let outcome = match reply {
                Some((StatusCode::OK, batch)) => {
                    let bodies: Vec<Bytes> = batch["records"]
                        .as_array()
                        .map(|records| {
                            records
                                .iter()
                                .map(|r| Bytes::from(r["body"].as_str().unwrap_or("").to_owned()))
                                .collect()
                        })
                        .unwrap_or_default();
                    beliefs.tail = beliefs.tail.max(bodies.len() as u64);
                    Outcome::Read {
                        count: bodies.len() as u64,
                        hash: linearizability::hash_bodies(&bodies),
                    }
                }
                Some((StatusCode::RANGE_NOT_SATISFIABLE, _)) => Outcome::Read {
                    count: 0,
                    hash: linearizability::hash_bodies(Vec::<Bytes>::new()),
                },
                _ => Outcome::Indeterminate,
            };
            world.complete(op, outcome);
        } else {
            let op = world.invoke(Op::CheckTail);
            let outcome = match world.send(node, "GET", &format!("{uri}/tail"), None).await {
                Some((StatusCode::OK, v)) => match v["tail"]["seq_num"].as_u64() {
                    Some(tail) => {
                        beliefs.tail = tail;
                        Outcome::Tail(tail)
                    }
                    None => Outcome::Indeterminate,
                },
                _ => Outcome::Indeterminate,
            };
            world.complete(op, outcome);
        }
    }
}

/// What the group's clients saw.
#[derive(Default)]
struct GroupLog {
    /// Entry id → the consumers whose `>` read returned it.
    delivered: BTreeMap<String, Vec<usize>>,
    /// Ids whose `XACK` was answered.
    acked: BTreeSet<String>,
}

/// The ids of an `XREADGROUP` reply (`{key: [[id, fields], …]}`) or an `XRANGE`- or
/// `XPENDING`-shaped one (`[[id, …], …]`).
fn entry_ids(reply: &Value, by_key: bool) -> Vec<String> {
    let entries: Vec<&Value> = if by_key {
        reply
            .as_object()
            .into_iter()
            .flat_map(|streams| streams.values())
            .filter_map(Value::as_array)
            .flatten()
            .collect()
    } else {
        reply.as_array().into_iter().flatten().collect()
    };
    entries
        .iter()
        .filter_map(|e| e.get(0)?.as_str().map(str::to_owned))
        .collect()
}

async fn producer(world: World, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed * 7919);
    for i in 0..GROUP_ROUNDS * 2 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..25))).await;
        let node = rng.random_range(0..NODES);
        let n = i.to_string();
        let outcome = world.command(node, &["XADD", "g", "*", "n", &n]).await;
        world.note(format!("XADD {n} on {node} -> {outcome:?}"));
    }
}

async fn consumer(world: World, id: usize, seed: u64, log: Rc<RefCell<GroupLog>>) {
    let mut rng = StdRng::seed_from_u64(seed * 104_729 + id as u64);
    let name = format!("c{id}");
    for _ in 0..GROUP_ROUNDS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..40))).await;
        let node = rng.random_range(0..NODES);
        let reply = world
            .command(
                node,
                &[
                    "XREADGROUP",
                    "GROUP",
                    "grp",
                    &name,
                    "COUNT",
                    "3",
                    "STREAMS",
                    "g",
                    ">",
                ],
            )
            .await;
        world.note(format!("XREADGROUP {name} on {node} -> {reply:?}"));
        let Ok(reply) = reply else { continue };
        let ids = entry_ids(&reply, true);
        for id_ in &ids {
            log.borrow_mut()
                .delivered
                .entry(id_.clone())
                .or_default()
                .push(id);
        }
        if !ids.is_empty() && rng.random_bool(0.7) {
            let mut args = vec!["XACK", "g", "grp"];
            args.extend(ids.iter().map(String::as_str));
            let node = rng.random_range(0..NODES);
            let acked = world.command(node, &args).await;
            world.note(format!("XACK {ids:?} on {node} -> {acked:?}"));
            if acked.is_ok() {
                log.borrow_mut().acked.extend(ids);
            }
        }
    }
}

/// After the faults are healed: drains the group and checks its promises.
async fn check_group(world: &World, log: &RefCell<GroupLog>) -> Vec<String> {
    let mut violations = Vec::new();
    loop {
        let reply = world
            .command(
                0,
                &[
                    "XREADGROUP",
                    "GROUP",
                    "grp",
                    "drain",
                    "COUNT",
                    "100",
                    "STREAMS",
                    "g",
                    ">",
                ],
            )
            .await
            .expect("the drain read succeeds once faults are healed");
        let ids = entry_ids(&reply, true);
        if ids.is_empty() {
            break;
        }
        for id in ids {
            log.borrow_mut()
                .delivered
                .entry(id)
                .or_default()
                .push(usize::MAX);
        }
    }
    let all = world
        .command(1, &["XRANGE", "g", "-", "+"])
        .await
        .expect("XRANGE succeeds once faults are healed");
    let all: BTreeSet<String> = entry_ids(&all, false).into_iter().collect();
    let pending = world
        .command(2, &["XPENDING", "g", "grp", "-", "+", "10000"])
        .await
        .expect("XPENDING succeeds once faults are healed");
    let pending: BTreeSet<String> = entry_ids(&pending, false).into_iter().collect();
    let log = log.borrow();
    for (id, consumers) in &log.delivered {
        if consumers.len() > 1 {
            violations.push(format!("{id} was delivered by `>` to {consumers:?}"));
        }
        if !all.contains(id) {
            violations.push(format!("{id} was delivered but is not in the stream"));
        }
    }
    for id in &all {
        if !log.delivered.contains_key(id) && !pending.contains(id) {
            violations.push(format!("{id} was never delivered and is not pending"));
        }
    }
    for id in log.acked.intersection(&pending) {
        violations.push(format!("{id} was acknowledged but is pending again"));
    }
    violations
}

async fn run(seed: u64) -> Run {
    let world = world(seed);
    let created = world
        .send(0, "POST", "/v1/basins", Some(json!({"basin": BASIN})))
        .await;
    assert_eq!(created.map(|r| r.0), Some(StatusCode::CREATED));
    let created = world
        .send(0, "POST", "/v1/streams", Some(json!({"stream": "lin"})))
        .await;
    assert_eq!(created.map(|r| r.0), Some(StatusCode::CREATED));
    world
        .command(0, &["XGROUP", "CREATE", "g", "grp", "0", "MKSTREAM"])
        .await
        .expect("the group is created");
    for store in world.stores.iter() {
        store.set_faults(faults());
    }

    let group_log = Rc::new(RefCell::new(GroupLog::default()));
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut tasks = Vec::new();
            for id in 0..S2_CLIENTS {
                tasks.push(tokio::task::spawn_local(s2_client(world.clone(), id, seed)));
            }
            tasks.push(tokio::task::spawn_local(producer(world.clone(), seed)));
            for id in 0..CONSUMERS {
                tasks.push(tokio::task::spawn_local(consumer(
                    world.clone(),
                    id,
                    seed,
                    group_log.clone(),
                )));
            }
            for task in tasks {
                task.await.unwrap();
            }
        })
        .await;

    for store in world.stores.iter() {
        store.set_faults(Faults::default());
    }
    let violations = check_group(&world, &group_log).await;
    let s2 = world.s2.borrow().clone();
    let log = world.log.borrow().clone();
    Run {
        s2,
        log,
        violations,
    }
}

/// Runs `seed` on a fresh single-threaded runtime with a paused clock.
fn simulate(seed: u64) -> Run {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(run(seed))
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SLUICE_SIM_SEED") {
        return vec![seed.parse().expect("SLUICE_SIM_SEED is a number")];
    }
    let n = std::env::var("SLUICE_SIM_SEEDS")
        .map(|n| n.parse().expect("SLUICE_SIM_SEEDS is a number"))
        .unwrap_or(DEFAULT_SEEDS);
    (1..=n).collect()
}

#[test]
fn seeded_runs_are_linearizable_keep_the_groups_promises_and_replay_exactly() {
    // Dummy credentials: nothing here talks to a cloud, and nothing may try to.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "sim");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "sim");
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    for seed in seeds() {
        let replay = format!("SLUICE_SIM_SEED={seed} cargo test --test simulation -- --nocapture");
        let first = simulate(seed);
        if std::env::var("SLUICE_SIM_SEED").is_ok() {
            for line in &first.log {
                println!("{line}");
            }
        }
        let checked = linearizability::check(&first.s2);
        assert!(
            checked.is_ok(),
            "seed {seed}: the S2 history is not linearizable: {}\nreplay: {replay}",
            checked.unwrap_err()
        );
        assert!(
            first.violations.is_empty(),
            "seed {seed}: the group broke its promises: {:?}\nreplay: {replay}",
            first.violations
        );
        let second = simulate(seed);
        assert!(
            first.log == second.log && first.s2.entries() == second.s2.entries(),
            "seed {seed} did not replay exactly (first difference at line {:?})\nreplay: {replay}",
            first.log.iter().zip(&second.log).position(|(a, b)| a != b)
        );
    }
}
