//! Overload: clients offering far more than a slow store accepts, with 1 MB unary
//! appends. The node runs in a child process (this test binary again, as the ignored
//! `overload_node`), so that its resident memory is its own and not that of the other
//! tests running in this process; its store is a local directory behind the fault
//! injector, every request delayed by up to 4 s.
//!
//! What must hold: the node's memory stays within its append budget plus a stated margin;
//! every acked append reads back; every refusal is the retryable 429 `rate_limited`; and
//! once the load stops the node serves a new client within seconds.
//!
//! `SLUICE_OVERLOAD_BUDGET_MIB` overrides the budget (e.g. 100000, to see the node without
//! one); the assertions on memory are then skipped.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;
use sluice::storage::{
    DynStore,
    faulty::{Faults, FaultyStore},
};

use crate::{
    harness::{Backend, TestServer},
    http::Api,
};

const BUDGET_MIB: usize = 32;
const CLIENTS: usize = 200;
const STREAMS: usize = 8;
const LOAD: Duration = Duration::from_secs(10);
/// Each append: one record of about 1 MB (a JSON string of `x`s after a tag).
const RECORD_BYTES: usize = 1_000_000;

const CHILD_ENV: &str = "SLUICE_OVERLOAD_NODE";

/// Not a test by itself: the node of `overload_keeps_memory_within_the_budget`, run in a
/// child process. Prints its address, heals its store when told (`heal` on stdin), and
/// stops when stdin closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of overload_keeps_memory_within_the_budget"]
async fn overload_node() {
    let Ok(budget_mib) = std::env::var(CHILD_ENV) else {
        return;
    };
    let budget = budget_mib.parse::<usize>().unwrap() * 1024 * 1024;
    let faulty: Arc<Mutex<Option<Arc<FaultyStore>>>> = Arc::default();
    let slot = faulty.clone();
    let slow = Faults {
        delay: 1.0,
        max_delay: Duration::from_secs(4),
        ..Faults::default()
    };
    let server = TestServer::start_wrapped(
        Backend::Local,
        |c| {
            c.limits.append_inflight_bytes = budget;
            // Cached chunks are memory too; keep them out of the figure.
            c.engine.cache_bytes = 8 * 1024 * 1024;
        },
        move |store| {
            let f = Arc::new(FaultyStore::new(store, 0x10ad, Faults::default()));
            *slot.lock().unwrap() = Some(f.clone());
            f as DynStore
        },
    )
    .await;
    let faulty = faulty.lock().unwrap().clone().unwrap();
    faulty.set_faults(slow);
    println!("ADDR {}", server.addr);
    let lines = tokio::task::spawn_blocking(move || {
        for line in std::io::stdin().lines() {
            match line.as_deref() {
                Ok("heal") => faulty.set_faults(Faults::default()),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    lines.await.unwrap();
    drop(server);
}

struct Node {
    child: Child,
    stdin: ChildStdin,
    addr: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(budget_mib: usize) -> Node {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "overload::overload_node",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, budget_mib.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the node process");
    let stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut addr = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        // libtest writes `test overload::overload_node ... ` before it on the same line.
        if let Some((_, a)) = line.split_once("ADDR ") {
            addr = Some(a.trim().to_owned());
            break;
        }
    }
    Node {
        child,
        stdin,
        addr: addr.expect("the node's address"),
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn over_h2(client: usize) -> bool {
    client.is_multiple_of(4)
}

/// One client's outcome per append: its tag, the stream, and the acked seq_num or the
/// refusal's status and code.
enum Outcome {
    Acked {
        tag: String,
        stream: usize,
        seq: u64,
    },
    Refused {
        status: u16,
        code: String,
    },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_keeps_memory_within_the_budget() {
    let override_mib = std::env::var("SLUICE_OVERLOAD_BUDGET_MIB").ok();
    let budget_mib = override_mib
        .as_deref()
        .map_or(BUDGET_MIB, |m| m.parse().unwrap());
    let node = start_node(budget_mib);
    let pid = node.child.id();
    let base = format!("http://{}", node.addr);
    let basin = crate::harness::basin_name();
    let setup = reqwest::Client::new();
    let r = setup
        .post(format!("{base}/v1/basins"))
        .json(&json!({"basin": basin, "config": {"create_stream_on_append": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The streams exist before the load, so that it measures appends, not creations.
    for s in 0..STREAMS {
        let r = setup
            .post(format!("{base}/v1/streams"))
            .header("s2-basin", &basin)
            .json(&json!({"stream": format!("s{s}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let baseline = status_kib(pid, "VmRSS:");

    // Sample the node's memory and its in-flight bytes while the load runs.
    let done = Arc::new(AtomicBool::new(false));
    let peak_inflight = Arc::new(AtomicU64::new(0));
    let sampler = tokio::spawn({
        let (done, peak_inflight, base) = (done.clone(), peak_inflight.clone(), base.clone());
        async move {
            let client = reqwest::Client::new();
            let mut peak_rss = 0;
            while !done.load(Ordering::Relaxed) {
                peak_rss = peak_rss.max(status_kib(pid, "VmRSS:"));
                if let Ok(r) = client.get(format!("{base}/metrics")).send().await
                    && let Ok(text) = r.text().await
                    && let Some(v) = text.lines().find_map(|l| {
                        l.strip_prefix("sluice_append_inflight_bytes ")?
                            .parse()
                            .ok()
                    })
                {
                    peak_inflight.fetch_max(v, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak_rss
        }
    });

    // 200 clients, a quarter over HTTP/2 (one connection), the rest over HTTP/1.1 (one
    // connection each), each appending 1 MB records back to back.
    let h1 = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let client = if over_h2(c) { h2.clone() } else { h1.clone() };
        let (base, basin) = (base.clone(), basin.clone());
        clients.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let stream = c % STREAMS;
            let mut i = 0;
            while started.elapsed() < LOAD {
                let tag = format!("c{c}-{i}");
                let mut body = tag.clone();
                body.push(' ');
                body.push_str(&"x".repeat(RECORD_BYTES - body.len()));
                let r = client
                    .post(format!("{base}/v1/streams/s{stream}/records"))
                    .header("s2-basin", &basin)
                    .json(&json!({"records": [{"body": body}]}))
                    .send()
                    .await
                    .expect("every request is answered");
                let status = r.status().as_u16();
                let j: serde_json::Value = r.json().await.unwrap();

                outcomes.push(if status == 200 {
                    let seq = j["start"]["seq_num"].as_u64().unwrap();
                    Outcome::Acked { tag, stream, seq }
                } else {
                    Outcome::Refused {
                        status,
                        code: j["code"].as_str().unwrap_or_default().to_owned(),
                    }
                });
                i += 1;
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for c in clients {
        outcomes.extend(c.await.unwrap());
    }
    let load_time = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let peak_rss = sampler.await.unwrap().max(status_kib(pid, "VmHWM:"));

    // The node serves a new client again soon after the load stops, store still slow:
    // at once for what needs no commit, within a commit's store round trips for an
    // append (each of its writes delayed up to 4 s).
    let recovery = Instant::now();
    let fresh = reqwest::Client::new();
    let tail = fresh
        .get(format!("{base}/v1/streams/s1/records/tail"))
        .header("s2-basin", &basin)
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    let tail_in = recovery.elapsed();
    loop {
        let r = fresh
            .post(format!("{base}/v1/streams/s1/records"))
            .header("s2-basin", &basin)
            .json(&json!({"records": [{"body": "after the storm"}]}))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 429);
        assert!(
            recovery.elapsed() < Duration::from_secs(30),
            "not serving again"
        );
    }
    let recovered_in = recovery.elapsed();
    assert!(tail_in < Duration::from_secs(10), "{tail_in:?}");

    let acked: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Acked { tag, stream, seq } => Some((tag.clone(), *stream, *seq)),
            Outcome::Refused { .. } => None,
        })
        .collect();
    let mut refusals: HashMap<(u16, String), usize> = HashMap::new();
    for o in &outcomes {
        if let Outcome::Refused { status, code } = o {
            *refusals.entry((*status, code.clone())).or_default() += 1;
        }
    }
    let mut acked_h2 = 0;
    for (tag, _, _) in &acked {
        let c: usize = tag[1..].split('-').next().unwrap().parse().unwrap();
        acked_h2 += usize::from(over_h2(c));
    }
    eprintln!("overload: {acked_h2} of the acked appends came over HTTP/2");
    let growth_mib = peak_rss.saturating_sub(baseline) as f64 / 1024.0;
    eprintln!(
        "overload: budget {budget_mib} MiB; {} appends offered in {load_time:.1?} \
         ({:.0} MB/s), {} acked ({:.1} MB/s), refusals {refusals:?}; node RSS baseline \
         {:.0} MiB, peak {:.0} MiB (+{growth_mib:.0} MiB); peak in-flight {:.1} MiB; \
         after the load, a new client's check-tail took {tail_in:.1?} and its append \
         {recovered_in:.1?}",
        outcomes.len(),
        outcomes.len() as f64 * RECORD_BYTES as f64 / 1e6 / load_time.as_secs_f64(),
        acked.len(),
        acked.len() as f64 * RECORD_BYTES as f64 / 1e6 / load_time.as_secs_f64(),
        baseline as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        peak_inflight.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
    );

    // Refused appends got the retryable refusal, and only that.
    for (status, code) in refusals.keys() {
        assert_eq!((*status, code.as_str()), (429, "rate_limited"));
    }
    assert!(!acked.is_empty(), "nothing was acked");
    if override_mib.is_none() {
        assert!(!refusals.is_empty(), "an overloaded node refused nothing");
        // The budget bounds request bodies; each admitted append is held as its batch and,
        // while its commit is written, as the commit's chunk (about twice its size), and
        // the HTTP stack buffers what clients sent before admission (up to a 16 MiB
        // window on the HTTP/2 connection; the HTTP/1.1 connections' 64 KiB read
        // buffers): 3 × budget + 64 MiB.
        let allowed = 3.0 * budget_mib as f64 + 64.0;
        assert!(
            growth_mib < allowed,
            "the node grew {growth_mib:.0} MiB under overload, over {allowed:.0} MiB"
        );
        assert!(peak_inflight.load(Ordering::Relaxed) <= (budget_mib as u64) << 20);
    }

    // Every acked append reads back, where its ack said.
    writeln!(&node.stdin, "heal").unwrap();
    let api = Api::at(&base).basin(&basin);
    for (tag, stream, seq) in &acked {
        let r = api
            .read(&format!("s{stream}"), &format!("seq_num={seq}&count=1"))
            .await;
        let j = r.assert_status(200);
        let body = j["records"][0]["body"].as_str().unwrap();
        assert!(
            body.starts_with(&format!("{tag} ")),
            "s{stream}/{seq} is not {tag}"
        );
    }
    drop(node);
}
