//! Heap bytes a node holds per stream, counted by a counting global allocator around
//! mimalloc (the server's allocator), with the process's RSS beside them.
//!
//! One node on a local directory (a temp dir), driven in this process through its HTTP
//! app (`tower::ServiceExt::oneshot`, the routes a network client uses, no sockets). After
//! a warm-up round (lazily built node-wide state: pools, caches' tables, metric families),
//! it takes `--count` new streams through four steps and prints the live heap bytes and
//! RSS per stream after each, over the figures before the first:
//!
//! 1. created (`POST /v1/streams`): what the catalog costs a node that keeps nothing;
//! 2. opened (`GET …/records/tail`): the stream's handle, core and state, no appender;
//! 3. appended once (`POST …/records`, one small record): 0.2 s later, with the appender
//!    tasks still running, and again once they ended (`--appender-idle-exit` passed):
//!    what the commit left (the state's inline chunk, its cache entry, usage counts);
//! 4. released (`--stream-idle-release` passed, no stream open): what survives a stream.
//!
//! After step 4 it asks mimalloc to return what it can (`mi_collect(true)`) and prints RSS
//! again: the difference is the allocator's retention, not memory streams hold.
//!
//! ```sh
//! cargo run --release --example stream_memory -- --count 2000 --idle-release-ms 20000
//! ```
//!
//! `--sizes` also prints, per step, the allocation sizes each stream added (which a
//! debugger's breakpoint on that size then names); the snapshots take RSS of their own.
//!
//! Live bytes are what the node's allocations request (`Layout::size`) and have not
//! freed; the allocator's own rounding and metadata are not in them (RSS shows those).

use std::{
    alloc::{GlobalAlloc, Layout},
    sync::atomic::{AtomicIsize, Ordering},
    time::{Duration, Instant},
};

use axum::{Router, body::Body};
use futures::StreamExt;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use sluice::server::{self, Backend, ServerConfig};
use tower::ServiceExt;

/// mimalloc, counting the bytes requested and not yet freed.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Live allocations by requested size (the last slot: that size or larger), for
/// `--sizes`: which allocations each stream adds.
const SIZE_SLOTS: usize = 1 << 16;
static BY_SIZE: [AtomicIsize; SIZE_SLOTS] = [const { AtomicIsize::new(0) }; SIZE_SLOTS];

fn counted(size: usize, n: isize) {
    LIVE.fetch_add(size as isize * n, Ordering::Relaxed);
    BY_SIZE[size.min(SIZE_SLOTS - 1)].fetch_add(n, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to mimalloc unchanged; the counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { INNER.alloc(layout) };
        if !p.is_null() {
            counted(layout.size(), 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { INNER.alloc_zeroed(layout) };
        if !p.is_null() {
            counted(layout.size(), 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { INNER.dealloc(ptr, layout) };
        counted(layout.size(), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { INNER.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            counted(layout.size(), -1);
            counted(new_size, 1);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

unsafe extern "C" {
    /// mimalloc's `mi_collect`: frees what it retains (linked in by the `mimalloc` crate).
    fn mi_collect(force: bool);
}

const BASIN: &str = "mem-basin";
const CONCURRENCY: usize = 32;

struct Args {
    count: usize,
    warmup: usize,
    idle_release: Duration,
    sizes: bool,
}

fn args() -> Args {
    let mut a = Args {
        count: 2000,
        warmup: 500,
        idle_release: Duration::from_secs(20),
        sizes: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--sizes" {
            a.sizes = true;
            continue;
        }
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let n: u64 = value
            .parse()
            .unwrap_or_else(|_| panic!("{flag}: not a number: {value}"));
        match flag.as_str() {
            "--count" => a.count = n as usize,
            "--warmup" => a.warmup = n as usize,
            "--idle-release-ms" => a.idle_release = Duration::from_millis(n),
            _ => panic!("unknown flag {flag} (--count, --warmup, --idle-release-ms, --sizes)"),
        }
    }
    a
}

/// Live bytes counted so far (with `--sizes` snapshots among them).
fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn rss() -> isize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<isize>().ok())
        .map_or(0, |kib| kib * 1024)
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> StatusCode {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("s2-basin", BASIN);
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let reply = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = reply.status();
    let _ = axum::body::to_bytes(reply.into_body(), 1 << 20).await;
    status
}

/// Runs `step` for streams `range`, `CONCURRENCY` at a time.
async fn each(
    app: &Router,
    range: std::ops::Range<usize>,
    step: &str,
    expect: &[StatusCode],
) -> usize {
    let failures = futures::stream::iter(range)
        .map(|i| async move {
            let name = format!("s{i:06}");
            let status = match step {
                "create" => call(app, "POST", "/v1/streams", Some(json!({"stream": name}))).await,
                "open" => {
                    call(
                        app,
                        "GET",
                        &format!("/v1/streams/{name}/records/tail"),
                        None,
                    )
                    .await
                }
                "append" => {
                    let body = json!({"records": [{"body": "hello"}]});
                    call(
                        app,
                        "POST",
                        &format!("/v1/streams/{name}/records"),
                        Some(body),
                    )
                    .await
                }
                _ => unreachable!(),
            };
            usize::from(!expect.contains(&status))
        })
        .buffer_unordered(CONCURRENCY)
        .fold(0, |a, b| async move { a + b })
        .await;
    assert_eq!(failures, 0, "{failures} failed requests at {step}");
    failures
}

async fn created_opened_appended(app: &Router, range: std::ops::Range<usize>) {
    each(app, range.clone(), "create", &[StatusCode::CREATED]).await;
    each(app, range.clone(), "open", &[StatusCode::OK]).await;
    each(app, range, "append", &[StatusCode::OK]).await;
}

async fn wait_released(engine: &sluice::engine::Engine, idle: Duration) {
    let deadline = Instant::now() + idle * 4 + Duration::from_secs(30);
    while engine.open_streams() > 0 {
        assert!(Instant::now() < deadline, "streams were not released");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let tasks that end with the release (appenders) finish dropping what they hold.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

struct Point {
    live: isize,
    rss: isize,
    open: usize,
    /// With `--sizes`: live allocations by size ([`BY_SIZE`]).
    sizes: Option<Vec<isize>>,
}

/// Bytes held by `--sizes` snapshots, left out of the live figures.
static SNAPSHOTS: AtomicIsize = AtomicIsize::new(0);

fn point(engine: &sluice::engine::Engine, sizes: bool) -> Point {
    let sizes = sizes.then(|| {
        let v: Vec<isize> = BY_SIZE.iter().map(|n| n.load(Ordering::Relaxed)).collect();
        SNAPSHOTS.fetch_add(
            (v.capacity() * std::mem::size_of::<isize>()) as isize,
            Ordering::Relaxed,
        );
        v
    });
    Point {
        live: live() - SNAPSHOTS.load(Ordering::Relaxed),
        rss: rss(),
        open: engine.open_streams(),
        sizes,
    }
}

/// The allocation sizes whose live count changed by at least a quarter of one a stream
/// from `from` to `to`, largest share first.
fn sizes(label: &str, from: &Point, to: &Point, n: usize) {
    let (Some(a), Some(b)) = (&from.sizes, &to.sizes) else {
        return;
    };
    let mut rows: Vec<(usize, f64)> = (0..SIZE_SLOTS)
        .map(|size| (size, (b[size] - a[size]) as f64 / n as f64))
        .filter(|(_, per)| per.abs() >= 0.25)
        .collect();
    rows.sort_by(|x, y| (y.0 as f64 * y.1.abs()).total_cmp(&(x.0 as f64 * x.1.abs())));
    println!("  {label}: allocations a stream, by size");
    for (size, per) in rows.into_iter().take(25) {
        let size_label = if size == SIZE_SLOTS - 1 {
            format!(">={size}")
        } else {
            size.to_string()
        };
        println!(
            "    {size_label:>7} B x {per:>5.2} = {:>7.0} B",
            size as f64 * per
        );
    }
}

fn report(label: &str, base: &Point, now: &Point, n: usize) {
    let n = n as f64;
    println!(
        "{label:<37} live {:>9} B ({:>6.0} B a stream)  RSS {:>6.1} MiB ({:>6.0} B a stream)  {} open",
        now.live,
        (now.live - base.live) as f64 / n,
        now.rss as f64 / (1 << 20) as f64,
        (now.rss - base.rss) as f64 / n,
        now.open,
    );
}

fn main() {
    let a = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run(a));
}

async fn run(a: Args) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = ServerConfig::new(Backend::Local(dir.path().to_owned()));
    config.engine.stream_idle_release = a.idle_release;
    let node = server::build_node(&config).expect("a node on the temp dir");
    let (app, engine) = (node.app.clone(), node.engine.clone());
    let status = call(&app, "POST", "/v1/basins", Some(json!({"basin": BASIN}))).await;
    assert_eq!(status, StatusCode::CREATED, "create basin");

    created_opened_appended(&app, 0..a.warmup).await;
    wait_released(&engine, a.idle_release).await;

    let range = a.warmup..a.warmup + a.count;
    let n = a.count;
    let started = Instant::now();
    let base = point(&engine, a.sizes);
    report("before", &base, &base, n);
    each(&app, range.clone(), "create", &[StatusCode::CREATED]).await;
    let created = point(&engine, a.sizes);
    report("1. created", &base, &created, n);
    each(&app, range.clone(), "open", &[StatusCode::OK]).await;
    let opened = point(&engine, a.sizes);
    report("2. opened (check-tail)", &base, &opened, n);
    each(&app, range.clone(), "append", &[StatusCode::OK]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    report(
        "3. appended once, 0.2 s later",
        &base,
        &point(&engine, false),
        n,
    );
    tokio::time::sleep(config.engine.appender.idle_exit + Duration::from_millis(500)).await;
    let appended = point(&engine, a.sizes);
    report("3. appended once, open and idle", &base, &appended, n);
    assert!(
        appended.open >= n && started.elapsed() < a.idle_release,
        "streams were released before step 3 was measured ({} open after {:?}): \
         raise --idle-release-ms",
        appended.open,
        started.elapsed()
    );
    wait_released(&engine, a.idle_release).await;
    let released = point(&engine, a.sizes);
    report("4. released", &base, &released, n);
    // SAFETY: mi_collect takes no pointers; it may run at any time from any thread.
    unsafe { mi_collect(true) };
    report(
        "4. released, after mi_collect(true)",
        &base,
        &point(&engine, false),
        n,
    );
    println!("chunk cache: {} B", engine.cached_chunk_bytes());
    sizes("1. created", &base, &created, n);
    sizes("2. opened, over 1", &created, &opened, n);
    sizes("3. appended, over 2", &opened, &appended, n);
    sizes("4. released, over before", &base, &released, n);
}
