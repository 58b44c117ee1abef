use std::time::Duration;

use futures::future;

use s2_common::config::{BasinConfig, OptionalStreamConfig};

use super::{SPILL_MIN_CHUNKS, plan::Plan, spill::Spill, *};
use crate::{
    engine::{
        AutoCreate, Engine, Random,
        handle::{StreamState, config_json},
        layout,
        maintenance::DEFAULT_GC_GRACE,
        manifest::{MAX_INLINE_CHUNKS, Manifest, Pack},
        record::RecordBatchBuilder,
        testing::*,
    },
    storage::{self, DynStore, ETag},
};

fn request(body: &[u8]) -> AppendRequest {
    let mut b = RecordBatchBuilder::new();
    b.push(None, std::iter::empty(), body).unwrap();
    AppendRequest {
        input: AppendInput {
            batch: b.finish().unwrap(),
            match_seq_num: None,
            fencing_token: None,
        },
        arrival_ms: 1,
        received: std::time::Instant::now(),
        session: None,
        reply: oneshot::channel().0,
    }
}

/// A state whose manifest carries `n` one-record inline chunks.
fn state_with_inline(n: usize) -> StreamState {
    let config = config_json(&Default::default());
    let state = StreamState::new(Manifest::new("id".into(), config, 0), ETag::new("e")).unwrap();
    with_more_inline(state, n)
}

fn with_more_inline(mut state: StreamState, n: usize) -> StreamState {
    for _ in 0..n {
        let i = state.manifest.next_seq;
        let plan = Plan::build(
            &state,
            &[request(&[i as u8])],
            &Random::seeded(i),
            1,
            &[],
            &[],
        );
        assert!(plan.writes.is_empty(), "commit {i} is one write");
        state = StreamState::new(plan.manifest, ETag::new("e")).unwrap();
    }
    state
}

async fn spill(pack: Pack, stored: Option<bool>) -> Spill {
    let spill = match stored {
        Some(ok) => Spill::start(pack, future::ready(ok)),
        None => Spill::start(pack, future::pending()),
    };
    if stored.is_some() {
        // Not awaiting `done`: the spill must learn its outcome by itself.
        while spill.in_flight() {
            tokio::task::yield_now().await;
        }
    }
    spill
}

#[tokio::test]
async fn a_stored_pack_takes_its_members_out_of_the_next_manifest() {
    let state = state_with_inline(20);
    let pack = state.manifest.pack_inline(0, 9).unwrap();
    let stored = [spill(pack.clone(), Some(true)).await];
    let plan = Plan::build(
        &state,
        &[request(b"next")],
        &Random::seeded(99),
        1,
        &[],
        &stored,
    );
    assert!(plan.writes.is_empty());
    assert_eq!(plan.manifest.inline_refs().len(), 1);
    assert_eq!(plan.manifest.chunks[..20], pack.members[..]);
    plan.manifest.check_invariants().unwrap();

    let unfinished = [spill(pack, None).await];
    let plan = Plan::build(
        &state,
        &[request(b"next")],
        &Random::seeded(99),
        1,
        &[],
        &unfinished,
    );
    assert!(
        plan.writes.is_empty(),
        "nothing waits for a pack while there is room"
    );
    assert_eq!(plan.manifest.inline_refs().len(), 21);
    plan.manifest.check_invariants().unwrap();
}

/// When the manifest has no room for another inline chunk, the ones it carries leave
/// in the pack being written (awaited, not rewritten: same key) and a new one.
#[tokio::test]
async fn a_full_manifest_sends_its_inline_chunks_out_before_the_next() {
    let state = state_with_inline(16);
    let spills = [spill(state.manifest.pack_inline(0, 9).unwrap(), None).await];
    let state = with_more_inline(state, MAX_INLINE_CHUNKS - 16);
    let plan = Plan::build(
        &state,
        &[request(b"next")],
        &Random::seeded(99),
        1,
        &[],
        &spills,
    );
    assert_eq!(
        plan.writes.len(),
        2,
        "the pack under way and one for the rest"
    );
    assert_eq!(plan.writes[0].0, spills[0].pack.key);
    let (rest_key, rest_bytes) = &plan.writes[1];
    let m = &plan.manifest;
    assert_eq!(m.inline_refs().len(), 1);
    assert_eq!(m.chunks[..16], spills[0].pack.members[..]);
    for r in &m.chunks[16..MAX_INLINE_CHUNKS] {
        let (key, range) = r.location("id");
        assert_eq!(&key, rest_key);
        let range = range.unwrap();
        assert_eq!(
            rest_bytes.slice(range.start as usize..range.end as usize),
            state.manifest.inline_chunks[r.first_seq as usize]
        );
    }
    m.check_invariants().unwrap();
}

/// Small commits are one write each, their chunks inside the manifest; any node reads
/// them from there before they have objects. Once enough have gathered they are
/// written out as one pack, and the next commit (from any node) points into it.
#[tokio::test]
async fn small_chunks_travel_in_the_manifest_until_packed() {
    let store = storage::memory();
    let (a, b) = (
        Engine::new(store.clone(), two_engines_config()),
        Engine::new(store.clone(), two_engines_config()),
    );
    a.create_basin("inline-basin", BasinConfig::default(), None)
        .await
        .unwrap();
    a.create_stream("inline-basin", "s", OptionalStreamConfig::default(), None)
        .await
        .unwrap();
    let on_a = a.open("inline-basin", "s", AutoCreate::No).await.unwrap();
    let id = on_a.core.id.clone();
    a.append(&on_a, batch(&[b"r0", b"r1"]), None).await.unwrap();
    let state = on_a.core.current();
    let first = state.manifest.inline_refs()[0].clone();
    let built = on_a.core.node.cache.chunk(&id, &first).await.unwrap();
    assert!(
        Arc::ptr_eq(&state.inline[0], &built),
        "the committing node reuses the chunk it built"
    );
    let n = SPILL_MIN_CHUNKS as u32;
    for i in 2..n {
        a.append(&on_a, batch(&[format!("r{i}").as_bytes()]), None)
            .await
            .unwrap();
    }
    let kept = on_a.core.current();
    assert_eq!(kept.manifest.inline_refs().len(), n as usize - 1);
    for (r, chunk) in kept.known_inline().take(n as usize - 2) {
        let previous = on_a.core.node.cache.chunk(&id, r).await.unwrap();
        assert!(Arc::ptr_eq(chunk, &previous), "decoded once");
    }
    let records =
        |end: u32| -> Vec<Vec<u8>> { (0..end).map(|i| format!("r{i}").into_bytes()).collect() };

    let on_b = b.open("inline-basin", "s", AutoCreate::No).await.unwrap();
    assert_eq!(read_all(&b, &on_b).await, records(n));

    // The n-th inline chunk starts a pack of all of them; the commit after it is
    // written drops their bytes.
    a.append(&on_a, batch(&[format!("r{n}").as_bytes()]), None)
        .await
        .unwrap();
    spills_settled(&on_a).await;
    let packs = chunk_keys(&store, &id).await;
    assert_eq!(packs.len(), 1, "{packs:?}");
    assert_eq!(
        first_seq_of_key(&packs[0]),
        u64::from(n),
        "named by its newest member"
    );
    a.append(&on_a, batch(&[format!("r{}", n + 1).as_bytes()]), None)
        .await
        .unwrap();
    let m = on_a.core.current().manifest.clone();
    assert_eq!(m.inline_refs().len(), 1);
    assert!(
        m.chunks[..n as usize]
            .iter()
            .all(|c| c.pack.is_some() && !c.inline)
    );
    m.check_invariants().unwrap();

    // A node that never saw the inline chunks reads them from the pack, by range.
    let c = Engine::new(store.clone(), two_engines_config());
    let on_c = c.open("inline-basin", "s", AutoCreate::No).await.unwrap();
    assert_eq!(read_all(&c, &on_c).await, records(n + 2));

    // Node b commits next, with the newest chunk still inline and no pack of its own
    // under way.
    b.append(&on_b, batch(&[format!("r{}", n + 2).as_bytes()]), None)
        .await
        .unwrap();
    assert_eq!(on_b.core.current().manifest.inline_refs().len(), 2);

    // A chunk too big to travel inline takes the inline ones out with it.
    let big = vec![7u8; INLINE_MAX_BYTES + 1];
    b.append(&on_b, batch(&[&big]), None).await.unwrap();
    let m = on_b.core.current().manifest.clone();
    assert!(m.inline_refs().is_empty() && m.inline_chunks.is_empty());
    m.check_invariants().unwrap();
    let d = Engine::new(store.clone(), two_engines_config());
    let on_d = d.open("inline-basin", "s", AutoCreate::No).await.unwrap();
    let mut all = read_all(&d, &on_d).await;
    assert_eq!(all.pop(), Some(big));
    assert_eq!(all, records(n + 3));

    // Trimming into the pack keeps it; trimming past its newest member collects it.
    let pack_key = packs[0].clone();
    a.append(&on_a, trim(4), None).await.unwrap();
    a.maintain(&on_a).await.unwrap(); // marks
    a.maintain(&on_a).await.unwrap(); // deletes
    assert!(store.get(&pack_key).await.unwrap().is_some());
    let e = Engine::new(store.clone(), two_engines_config());
    let on_e = e.open("inline-basin", "s", AutoCreate::No).await.unwrap();
    let read = read_all(&e, &on_e).await;
    assert_eq!(read[0], b"r4");
    a.append(&on_a, trim(u64::from(n) + 1), None).await.unwrap();
    a.maintain(&on_a).await.unwrap();
    a.maintain(&on_a).await.unwrap();
    assert!(store.get(&pack_key).await.unwrap().is_none());
}

/// A small commit costs one write (its manifest) plus a share of a pack's, even
/// when a commit needs a pack before its write has ended.
#[tokio::test]
async fn small_commits_cost_about_one_write_each() {
    use crate::storage::{
        counting::{CountingStore, StoreCounters},
        faulty::{Faults, FaultyStore},
    };
    let counters = Arc::new(StoreCounters::default());
    let slow = FaultyStore::new(
        storage::memory(),
        7,
        Faults {
            delay: 1.0,
            max_delay: Duration::from_millis(20),
            ..Faults::default()
        },
    );
    let store: DynStore = Arc::new(CountingStore::new(Arc::new(slow), counters.clone()));
    let (engine, handle) = engine_with_stream(store, DEFAULT_GC_GRACE).await;
    let before = counters.snapshot().puts;
    const APPENDS: u64 = 64;
    for i in 0..APPENDS {
        engine
            .append(&handle, batch(&[&i.to_be_bytes()]), None)
            .await
            .unwrap();
    }
    spills_settled(&handle).await;
    let puts = counters.snapshot().puts - before;
    assert!(
        (APPENDS + 1..=APPENDS + APPENDS / SPILL_MIN_CHUNKS as u64 + 1).contains(&puts),
        "{puts} writes for {APPENDS} commits"
    );
    assert_eq!(read_all(&engine, &handle).await.len(), APPENDS as usize);
}

/// A commit that loses its manifest race, re-reads, and loses again to a commit made
/// in between counts both races: the first where the pipeline learns of it, the
/// second in the retrying path.
#[tokio::test]
async fn every_lost_manifest_race_is_counted() {
    let store = storage::memory();
    let b = Engine::new(store.clone(), two_engines_config());
    let race = Arc::new(storage::faulty::FaultyStore::new(
        store.clone(),
        0,
        storage::faulty::Faults::default(),
    ));
    let a = Engine::new(race.clone(), two_engines_config());
    a.create_basin("race-basin", BasinConfig::default(), None)
        .await
        .unwrap();
    a.create_stream("race-basin", "s", OptionalStreamConfig::default(), None)
        .await
        .unwrap();
    let on_a = a.open("race-basin", "s", AutoCreate::No).await.unwrap();
    a.append(&on_a, batch(&[b"r0"]), None).await.unwrap();
    let on_b = b.open("race-basin", "s", AutoCreate::No).await.unwrap();
    b.append(&on_b, batch(&[b"r1"]), None).await.unwrap();
    // A still knows the manifest as of r0: its next write fails; after re-reading,
    // B commits again just before A's second write.
    let (b2, on_b2) = (b.clone(), on_b.clone());
    let key = layout::manifest_key(&on_a.core.id);
    race.race_before(
        key,
        2,
        Box::pin(async move {
            b2.append(&on_b2, batch(&[b"r2"]), None).await.unwrap();
        }),
    );
    let ack = a.append(&on_a, batch(&[b"r3"]), None).await.unwrap();
    assert_eq!(ack.start.seq_num, 3);
    assert_eq!(a.metrics().conflicts(), 2);
    assert_eq!(b.metrics().conflicts(), 0);
}

/// A pack whose write started longer than the reuse window ago is not taken into the
/// manifest (the orphan sweep may have deleted it): its members stay inline, or leave in
/// a new pack, and a plan that waited past the reference window is not written.
#[tokio::test(start_paused = true)]
async fn packs_are_taken_in_only_while_fresh() {
    use super::plan::within_reference_window;
    use crate::engine::reach::{PACK_REUSE_WINDOW, REFERENCE_WINDOW};
    let state = state_with_inline(20);
    let pack = state.manifest.pack_inline(0, 9).unwrap();
    let stored = [spill(pack.clone(), Some(true)).await];
    tokio::time::advance(PACK_REUSE_WINDOW).await;
    let ids = Random::seeded(99);
    let plan = Plan::build(&state, &[request(b"next")], &ids, 1, &[], &stored);
    assert_eq!(plan.manifest.inline_refs().len(), 21, "still inline");
    assert!(within_reference_window(plan.oldest_write).is_ok());

    let full = with_more_inline(state, MAX_INLINE_CHUNKS - 20);
    let plan = Plan::build(&full, &[request(b"next")], &ids, 1, &[], &stored);
    assert_eq!(plan.writes.len(), 1, "one new pack for all of them");
    assert_ne!(plan.writes[0].0, pack.key);
    plan.manifest.check_invariants().unwrap();

    tokio::time::advance(REFERENCE_WINDOW + Duration::from_millis(1)).await;
    assert!(within_reference_window(plan.oldest_write).is_err());
}

/// An engine whose appender tasks end after `idle_exit` without appends, with the stream
/// `s` open on it.
async fn engine_with_idle_exit(idle_exit: Duration) -> (Engine, Arc<crate::engine::StreamHandle>) {
    engine_configured_with_stream(
        storage::memory(),
        crate::engine::EngineConfig {
            poll: None,
            maintenance_interval: Duration::from_secs(3600),
            appender: AppenderSettings {
                idle_exit,
                ..AppenderSettings::default()
            },
            ..crate::engine::EngineConfig::default()
        },
    )
    .await
}

/// The task ends once nothing was appended for `idle_exit`; the next append starts
/// another, which continues at the tail.
#[tokio::test(start_paused = true)]
async fn an_idle_appender_ends_and_the_next_append_starts_another() {
    let idle_exit = Duration::from_secs(5);
    let (engine, handle) = engine_with_idle_exit(idle_exit).await;
    engine.append(&handle, batch(&[b"a"]), None).await.unwrap();
    let appender = handle.started_appender().expect("started by the append");
    assert!(appender.is_running());
    tokio::time::sleep(idle_exit / 2).await;
    assert!(
        appender.is_running(),
        "ended before it was idle for long enough"
    );
    tokio::time::sleep(idle_exit).await;
    assert!(
        !appender.is_running(),
        "still running after {idle_exit:?} idle"
    );

    let ack = engine.append(&handle, batch(&[b"b"]), None).await.unwrap();
    assert_eq!((ack.start.seq_num, ack.tail.seq_num), (1, 2));
    assert!(appender.is_running());
    assert_eq!(read_all(&engine, &handle).await, [b"a", b"b"]);
}

/// Requests submitted one after another are applied in that order while tasks retire
/// (after every commit, with no idle time) and new ones start between them, on two
/// worker threads. The narrowest case, a request that reaches a mailbox between its
/// task's last look and the close, is left to the `turn` ([`Appender`]): no schedule
/// here forces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_keep_their_order_while_appender_tasks_come_and_go() {
    let (engine, handle) = engine_with_idle_exit(Duration::ZERO).await;
    let mut acks = Vec::new();
    let mut retired = 0;
    for i in 0..300u32 {
        let rx = engine
            .submit(&handle, batch(&[&i.to_be_bytes()]), None)
            .await
            .unwrap();
        acks.push(rx);
        if i % 50 == 49 {
            // Let the task settle what it has and retire before the next submission.
            let last = acks.pop().unwrap().await.unwrap().unwrap();
            assert_eq!(last.start.seq_num, u64::from(i));
            let appender = handle.started_appender().unwrap();
            while appender.is_running() {
                tokio::task::yield_now().await;
            }
            retired += 1;
        } else if i % 7 == 0 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(retired, 6);
    let mut next = 0;
    for rx in acks {
        let ack = rx.await.unwrap().unwrap();
        assert!(ack.start.seq_num >= next, "applied out of order: {ack:?}");
        next = ack.end.seq_num;
    }
    let bodies: Vec<Vec<u8>> = (0..300u32).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(read_all(&engine, &handle).await, bodies);
}

/// The task's own state while it waits for requests stays small (commits are planned and
/// settled in boxed futures): it is what every stream appended to within the idle time
/// holds on the node.
#[tokio::test]
async fn the_appender_task_is_small_while_it_waits() {
    let (_engine, handle) = engine_with_stream(storage::memory(), DEFAULT_GC_GRACE).await;
    let w = Writer {
        core: handle.core.clone(),
        spills: Arc::default(),
    };
    let (_tx, rx) = mpsc::channel(1);
    let task = run(w, rx, AppenderSettings::default(), || {});
    let size = std::mem::size_of_val(&task);
    assert!(size <= 1024, "the appender task's future is {size} bytes");
}
