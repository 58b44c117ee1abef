//! Group commit for consumer groups: the changes this node's commands make to one group
//! go out together, one conditional write for all the commands that arrived while the
//! previous write was under way, instead of a read and a write each.
//!
//! Each command applies its change to the group as this node last knew it, under the
//! group's lock, then waits for the write of its *batch*; it answers only once that write
//! has landed, so nothing a command reports is ever lost or seen by another command before
//! it is durable. At most one write per group is under way on a node; the commands that
//! arrive meanwhile form the next batch, built on top of the one being written. When a
//! write loses its race (another node changed the group), that batch and every batch built
//! on it are discarded: their commands run again on the group as re-read, so across nodes
//! the group still moves only by conditional writes, and an entry is still handed to one
//! consumer at a time. A command that changes nothing still waits for its batch, since
//! what it saw includes the changes of the commands before it.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::sync::{Mutex, Notify};

use super::{RedisError, RedisResult, keyspace::Key};
use crate::engine::{Engine, GroupDelta, GroupState, LoadedGroup, Races, StreamHandle};

/// What became of a batch's write.
#[derive(Clone, Debug)]
enum Outcome {
    /// Landed (or there was nothing to write): its commands' answers stand.
    Written,
    /// Another writer got there first: run the commands again.
    Raced,
    /// The write failed, and may or may not have landed.
    Failed(RedisError),
}

/// The batches settled so far, for their waiters.
#[derive(Clone, Debug, Default)]
struct Settled {
    /// `(first, last, outcome)` for the most recent runs of settled batches.
    runs: VecDeque<(u64, u64, Outcome)>,
}

/// How many settled runs are remembered; a waiter looks its batch up as soon as it is
/// woken, so only the last few are ever needed.
const SETTLED_KEPT: usize = 256;

impl Settled {
    fn outcome_of(&self, batch: u64) -> Option<Outcome> {
        self.runs
            .iter()
            .rev()
            .find(|(first, last, _)| (*first..=*last).contains(&batch))
            .map(|(_, _, outcome)| outcome.clone())
    }

    fn push(&mut self, first: u64, last: u64, outcome: Outcome) {
        if self.runs.len() == SETTLED_KEPT {
            self.runs.pop_front();
        }
        self.runs.push_back((first, last, outcome));
    }
}

/// One group as this node works on it.
struct Cache {
    /// The group as last written or read (`stored`, at its log position) and with every
    /// change applied since (`state`); `None` until read (again) from the store.
    state: Option<Held>,
    /// Whether the batch being gathered changed anything.
    dirty: bool,
    /// The batch being gathered.
    batch: u64,
    /// Whether a write is under way.
    writing: bool,
}

struct Held {
    /// Taken by the write under way (nothing else needs it meanwhile), and put back
    /// as written when it lands.
    stored: Option<LoadedGroup>,
    state: GroupState,
}

struct Shared {
    cache: Mutex<Cache>,
    settled: parking_lot::Mutex<Settled>,
    /// Wakes the waiters when a batch is settled. (Not a `watch`: its wake-ups come in a
    /// random order, which would make a seeded simulation unrepeatable.)
    notify: Notify,
    /// Whether this node is writing a checkpoint of the group.
    checkpointing: AtomicBool,
}

/// How many groups a process keeps between commands; past it, the ones no command is
/// using are let go (and read again from the store when next used).
const GROUPS_KEPT: usize = 1024;

/// The shared state of a group on this node (the engine `instance`), by stream id and
/// group name. Kept between commands (up to [`GROUPS_KEPT`] groups), not only while one
/// is running: reading a group is a root, a checkpoint, a listing and every record since,
/// so a node that dropped it whenever its commands took turns would read all that for
/// every command. What is kept is checked against the store by every batch's write (or,
/// for a batch that changed nothing, by [`Engine::group_is_current`]), so keeping it
/// longer changes no answer: a lost race re-reads.
fn shared(instance: u64, stream_id: &str, group: &str) -> Arc<Shared> {
    type Groups = HashMap<(u64, String, String), Arc<Shared>>;
    static GROUPS: LazyLock<parking_lot::Mutex<Groups>> = LazyLock::new(Default::default);
    let mut groups = GROUPS.lock();
    let name = (instance, stream_id.to_owned(), group.to_owned());
    if let Some(g) = groups.get(&name) {
        return g.clone();
    }
    if groups.len() >= GROUPS_KEPT {
        // Only the map holds these: no command is on them, no write under way.
        groups.retain(|_, g| Arc::strong_count(g) > 1);
    }
    let g = Arc::new(Shared {
        cache: Mutex::new(Cache {
            state: None,
            dirty: false,
            batch: 0,
            writing: false,
        }),
        settled: parking_lot::Mutex::default(),
        notify: Notify::new(),
        checkpointing: AtomicBool::new(false),
    });
    groups.insert(name, g.clone());
    g
}

/// Forgets what this node knows of a group, after it was destroyed or created anew here.
pub async fn forget(engine: &Engine, stream_id: &str, group: &str) {
    let shared = shared(engine.instance(), stream_id, group);
    shared.cache.lock().await.state = None;
}

/// Reads the group into `cache` if this node knows nothing of it; whether it exists.
async fn load(engine: &Engine, key: &Key, group: &str, cache: &mut Cache) -> RedisResult<bool> {
    if cache.state.is_none() {
        let Some(read) = engine.group(&key.handle, group).await? else {
            return Ok(false);
        };
        cache.state = Some(Held {
            state: read.state.clone(),
            stored: Some(read),
        });
    }
    Ok(true)
}

/// Whether the group exists, as this node last knew it (read from the store if it knows
/// nothing yet). A group destroyed elsewhere since is found out by the next write.
pub async fn exists(engine: &Engine, key: &Key, group: &str) -> RedisResult<bool> {
    let shared = shared(engine.instance(), &key.handle.core.id, group);
    let mut cache = shared.cache.lock().await;
    load(engine, key, group, &mut cache).await
}

/// Runs `change` on the group and answers once its batch's write has landed, again on a
/// re-read group after a lost race; `change` returns its answer and whether it changed
/// anything. `prepare` reads what a try needs from the stream, taking from the group only
/// what it copies out before its future runs (the future holds no borrow of the group).
pub async fn update<P, R, F>(
    engine: &Engine,
    key: &Key,
    group: &str,
    missing: impl Fn() -> RedisError,
    prepare: impl Fn(&GroupState) -> F,
    mut change: impl FnMut(&mut GroupState, &P) -> (R, bool),
) -> RedisResult<R>
where
    F: std::future::Future<Output = RedisResult<P>>,
{
    let shared = shared(engine.instance(), &key.handle.core.id, group);
    let mut races = Races::new("the consumer group", engine.random());
    loop {
        races.next().await?;
        let (answer, batch) = {
            let mut cache = shared.cache.lock().await;
            if !load(engine, key, group, &mut cache).await? {
                return Err(missing());
            }
            let prepared = prepare(&cache.state.as_ref().expect("read above").state).await?;
            let state = &mut cache.state.as_mut().expect("read above").state;
            let (answer, changed) = change(state, &prepared);
            if changed {
                debug_assert_eq!(state.check(), Ok(()));
                cache.dirty = true;
            }
            (answer, cache.batch)
        };
        match settle(&shared, engine, &key.handle, batch).await {
            Outcome::Written => return Ok(answer),
            Outcome::Raced => continue,
            Outcome::Failed(e) => return Err(e),
        }
    }
}

/// What a batch's write starts from: the group as stored, and what the batch changed.
type Base = Option<(LoadedGroup, Option<GroupDelta>)>;

/// Waits until `batch` is settled, starting its write when it is the batch being
/// gathered and no write is under way.
async fn settle(
    shared: &Arc<Shared>,
    engine: &Engine,
    handle: &Arc<StreamHandle>,
    batch: u64,
) -> Outcome {
    loop {
        let notified = shared.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(outcome) = shared.settled.lock().outcome_of(batch) {
            return outcome;
        }
        {
            let mut cache = shared.cache.lock().await;
            if !cache.writing && cache.batch == batch {
                cache.writing = true;
                cache.batch += 1;
                let dirty = std::mem::take(&mut cache.dirty);
                let base: Base = cache.state.as_mut().map(|held| {
                    let stored = held.stored.take().expect("no write under way");
                    let delta = dirty
                        .then(|| GroupDelta::between(&stored.state, &held.state))
                        .filter(|d| !d.is_empty());
                    (stored, delta)
                });
                drop(cache);
                let write = write(shared.clone(), engine.clone(), handle.clone(), batch, base);
                tokio::spawn(write);
            }
        }
        notified.await;
    }
}

/// Writes `batch` (what it changed as one log record), then settles it, and on a lost
/// race or a failure also every batch built on it. Runs on its own task, so a command
/// that gives up waiting never leaves its batch unsettled.
async fn write(
    shared: Arc<Shared>,
    engine: Engine,
    handle: Arc<StreamHandle>,
    batch: u64,
    base: Base,
) {
    let written = match base {
        Some((mut stored, Some(delta))) => {
            match engine.append_group(&handle, &mut stored, &delta).await {
                Ok(true) => Ok(Some(stored)),
                Ok(false) => Err(Outcome::Raced),
                Err(e) => Err(Outcome::Failed(e.into())),
            }
        }
        // Nothing to write, but the answers came from what this node knew: they stand
        // only if the group has not changed elsewhere since.
        Some((mut stored, None)) => match engine.group_is_current(&handle, &mut stored).await {
            Ok(true) => Ok(Some(stored)),
            Ok(false) => Err(Outcome::Raced),
            Err(e) => Err(Outcome::Failed(e.into())),
        },
        None => Ok(None),
    };
    let mut cache = shared.cache.lock().await;
    cache.writing = false;
    let (last, outcome) = match written {
        Ok(stored) => {
            if let (Some(stored), Some(held)) = (stored, cache.state.as_mut()) {
                // The batches gathered meanwhile build on what was just written.
                held.state.version = stored.state.version;
                if engine.checkpoint_due(&stored)
                    && !shared.checkpointing.swap(true, Ordering::AcqRel)
                {
                    tokio::spawn(checkpoint(
                        shared.clone(),
                        engine.clone(),
                        handle.clone(),
                        stored.clone(),
                    ));
                }
                held.stored = Some(stored);
            }
            (batch, Outcome::Written)
        }
        Err(outcome) => {
            // Everything built on this batch goes too: its commands run again.
            cache.state = None;
            cache.dirty = false;
            let last = cache.batch;
            cache.batch += 1;
            (last, outcome)
        }
    };
    drop(cache);
    shared.settled.lock().push(batch, last, outcome);
    shared.notify.notify_waiters();
}

/// Writes a checkpoint of `group`, off the commands' path; a failure leaves it for the
/// next write to try again.
async fn checkpoint(
    shared: Arc<Shared>,
    engine: Engine,
    handle: Arc<StreamHandle>,
    group: LoadedGroup,
) {
    if let Err(e) = engine.checkpoint_group(&handle, &group).await {
        tracing::warn!(group = %group.state.name, error = %e, "consumer group checkpoint failed");
    }
    shared.checkpointing.store(false, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, sync::Arc, time::Duration};

    use bytes::Bytes;
    use s2_common::config::BasinConfig;

    use crate::{
        engine::{Engine, EngineConfig},
        http::auth::{Authenticator, Scheme},
        redis::{Context, Reply, execute},
        storage::{
            self, DynStore,
            counting::{CountingStore, StoreCounters},
            faulty::{Faults, FaultyStore},
        },
    };

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    /// 32 consumers reading one group at once on one node cost a few group writes, not one
    /// each, and every entry still goes to exactly one of them.
    #[tokio::test(start_paused = true)]
    async fn concurrent_commands_on_a_group_share_its_writes() {
        let counters = Arc::new(StoreCounters::default());
        let slow: DynStore = Arc::new(FaultyStore::new(
            storage::memory(),
            3,
            Faults {
                delay: 1.0,
                max_delay: Duration::from_millis(5),
                ..Faults::default()
            },
        ));
        let store: DynStore = Arc::new(CountingStore::new(slow, counters.clone()));
        let ctx = plate(store, EngineConfig::default().group_checkpoint_records).await;
        execute(
            &ctx,
            &argv(&["XGROUP", "CREATE", "k", "g", "0", "MKSTREAM"]),
        )
        .await
        .unwrap();
        for i in 0..64 {
            let n = i.to_string();
            execute(&ctx, &argv(&["XADD", "k", "*", "n", &n]))
                .await
                .unwrap();
        }

        let before = counters.snapshot().puts;
        let reads = (0..32).map(|i| {
            let consumer = format!("c{i}");
            let ctx = &ctx;
            async move {
                let words = [
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    &consumer,
                    "COUNT",
                    "2",
                    "STREAMS",
                    "k",
                    ">",
                ];
                execute(ctx, &argv(&words)).await.unwrap()
            }
        });
        let replies = futures::future::join_all(reads).await;
        let writes = counters.snapshot().puts - before;
        assert!(writes <= 4, "{writes} group writes for 32 reads");

        let mut delivered = HashSet::new();
        for reply in replies {
            let Reply::PairMap(streams) = reply else {
                panic!("every reader gets entries: {reply:?}")
            };
            let Reply::Array(entries) = &streams[0].1 else {
                panic!("{streams:?}")
            };
            assert_eq!(entries.len(), 2);
            for e in entries {
                let Reply::Array(parts) = e else {
                    panic!("{e:?}")
                };
                assert!(
                    delivered.insert(format!("{:?}", parts[0])),
                    "delivered twice"
                );
            }
        }
        assert_eq!(delivered.len(), 64);
    }

    /// A plate on `store` whose engine writes checkpoints only after `checkpoint_records`
    /// records.
    async fn plate(store: DynStore, checkpoint_records: u64) -> Context {
        let engine = Engine::new(
            store,
            EngineConfig {
                poll: None,
                maintenance_interval: Duration::from_secs(3600),
                group_checkpoint_records: checkpoint_records,
                ..EngineConfig::default()
            },
        );
        engine
            .ensure_basin("test-plate", BasinConfig::default())
            .await
            .unwrap();
        let caller = Authenticator::new(engine.clone(), None)
            .authenticate(&http::HeaderMap::new(), Scheme::BearerOrBare)
            .await
            .unwrap();
        Context {
            engine,
            caller,
            plate: "test-plate".into(),
            max_block: None,
            homes: None,
            credential: None,
        }
    }

    async fn run(ctx: &Context, words: &[&str]) -> Reply {
        execute(ctx, &argv(words)).await.unwrap()
    }

    /// Bytes one `XACK` and one `XREADGROUP` write with `pending` entries pending.
    async fn bytes_per_command(pending: usize) -> (u64, u64) {
        let ctx = plate(storage::memory(), 1_000_000).await;
        run(&ctx, &["XGROUP", "CREATE", "k", "g", "0", "MKSTREAM"]).await;
        for i in 0..pending + 1 {
            run(&ctx, &["XADD", "k", &format!("{}-1", i + 1), "n", "v"]).await;
        }
        let count = pending.to_string();
        let words = [
            "XREADGROUP",
            "GROUP",
            "g",
            "a",
            "COUNT",
            &count,
            "STREAMS",
            "k",
            ">",
        ];
        run(&ctx, &words).await;
        let written = || ctx.engine.store_counters().snapshot().bytes_written;
        let before = written();
        run(&ctx, &["XACK", "k", "g", "1-1"]).await;
        let ack = written() - before;
        let before = written();
        let words = [
            "XREADGROUP",
            "GROUP",
            "g",
            "b",
            "COUNT",
            "1",
            "STREAMS",
            "k",
            ">",
        ];
        let Reply::PairMap(read) = run(&ctx, &words).await else {
            panic!("the last entry is delivered")
        };
        assert_eq!(format!("{:?}", read).matches("-1").count(), 1, "{read:?}");
        (ack, written() - before)
    }

    /// What one XACK or XREADGROUP writes does not grow with the pending entries list:
    /// the group's log records what a command changed, not the group.
    #[tokio::test]
    async fn a_command_writes_what_it_changes_not_the_pending_list() {
        let (ack_small, read_small) = bytes_per_command(10).await;
        let (ack_large, read_large) = bytes_per_command(10_000).await;
        eprintln!("XACK {ack_small}/{ack_large} B, XREADGROUP {read_small}/{read_large} B");
        for (small, large) in [(ack_small, ack_large), (read_small, read_large)] {
            assert!(small > 0 && small < 400, "{small} bytes");
            assert!(
                large <= small + 16,
                "{large} bytes with 10,000 pending, {small} with 10"
            );
        }
    }

    /// A consumer reading 10 entries and acknowledging them, command after command, on a
    /// group no other node touches: the node keeps the group between its commands, so an
    /// XACK is one record written and the root revalidated, neither command lists or
    /// re-reads the group's log (which grows with every record since the checkpoint), and
    /// an XREADGROUP finds its entries without a binary search over the stream.
    #[tokio::test]
    async fn commands_taking_turns_keep_the_group_between_them() {
        let ctx = plate(storage::memory(), 256).await;
        run(&ctx, &["XGROUP", "CREATE", "k", "g", "0", "MKSTREAM"]).await;
        for i in 0..400 {
            run(&ctx, &["XADD", "k", &format!("{}-1", i + 1), "n", "v"]).await;
        }
        let snap = || ctx.engine.store_counters().snapshot();
        let mut reads = Vec::new();
        for round in 0..40 {
            let before = snap();
            let words = [
                "XREADGROUP",
                "GROUP",
                "g",
                "a",
                "COUNT",
                "10",
                "STREAMS",
                "k",
                ">",
            ];
            let Reply::PairMap(read) = run(&ctx, &words).await else {
                panic!("entries are delivered")
            };
            let mid = snap();
            let ids: Vec<String> = (1..=10).map(|j| format!("{}-1", round * 10 + j)).collect();
            let text = format!("{read:?}");
            assert!(ids.iter().all(|id| text.contains(id)), "{text}");
            let mut words = vec!["XACK", "k", "g"];
            words.extend(ids.iter().map(String::as_str));
            assert_eq!(run(&ctx, &words).await, Reply::Int(10));
            let after = snap();
            if round > 0 {
                assert_eq!(mid.lists + after.lists, 2 * before.lists, "round {round}");
                let ack = (after.gets - mid.gets, after.puts - mid.puts);
                assert_eq!(ack, (1, 1), "XACK in round {round}: (gets, puts)");
                reads.push(mid.gets - before.gets);
            }
        }
        // An XREADGROUP reads two objects whatever the group's log or the stream's length:
        // the stream's manifest, revalidated once for all of the command's reads (the
        // entries come from the chunks this node wrote, and the seek for the group's last
        // id starts from where the previous read ended), and the group's root, confirmed
        // after the command's record is written.
        assert!(
            reads.iter().all(|&r| r == 2),
            "gets per XREADGROUP: {reads:?}"
        );
    }

    /// The group as stored before its log (one object holding all of it) still reads,
    /// takes writes, and is checkpointed into the current form.
    #[tokio::test]
    async fn a_group_stored_whole_reads_and_moves_to_the_log() {
        use crate::engine::{GroupState, layout};

        let store = storage::memory();
        let ctx = plate(store.clone(), 2).await;
        run(&ctx, &["XADD", "k", "1-1", "n", "v"]).await;
        run(&ctx, &["XADD", "k", "2-1", "n", "v"]).await;
        run(&ctx, &["XADD", "k", "3-1", "n", "v"]).await;
        let key = ctx
            .open(b"k", s2_common::access::Operation::Read)
            .await
            .unwrap()
            .unwrap();
        // As an older Sluice wrote it: 1-1 pending to alice, delivered up to 1-1.
        let mut old = GroupState::new("g", crate::engine::EntryId::new(1, 1), Some(1));
        old.version = 41;
        old.touch_consumer("alice", 5);
        old.pending.insert(
            crate::engine::EntryId::new(1, 1),
            ("alice".to_owned(), 5, 1).into(),
        );
        let root = layout::group_key(&key.handle.core.id, "g");
        store
            .put(&root, serde_json::to_vec(&old).unwrap().into())
            .await
            .unwrap();

        let pending = run(&ctx, &["XPENDING", "k", "g"]).await;
        assert!(format!("{pending:?}").contains("alice"), "{pending:?}");
        for consumer in ["bob", "carol"] {
            let words = [
                "XREADGROUP",
                "GROUP",
                "g",
                consumer,
                "COUNT",
                "1",
                "STREAMS",
                "k",
                ">",
            ];
            run(&ctx, &words).await;
        }
        assert_eq!(run(&ctx, &["XACK", "k", "g", "1-1"]).await, Reply::Int(1));
        // Three records past 41: a checkpoint is due and written off the path.
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let bytes = store.get(&root).await.unwrap().unwrap().bytes;
            if String::from_utf8_lossy(&bytes).contains("incarnation") {
                break;
            }
        }
        let bytes = store.get(&root).await.unwrap().unwrap().bytes;
        assert!(
            String::from_utf8_lossy(&bytes).contains("\"checkpoint\""),
            "{bytes:?}"
        );
        let pending = run(&ctx, &["XPENDING", "k", "g"]).await;
        let text = format!("{pending:?}");
        assert!(
            text.contains("bob") && text.contains("carol") && !text.contains("alice"),
            "{text}"
        );
        // A node that has never seen the group reads the same.
        let other = plate(store, 2).await;
        assert_eq!(
            format!("{:?}", run(&other, &["XPENDING", "k", "g"]).await),
            text
        );
    }
}
