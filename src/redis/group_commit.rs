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
    sync::{Arc, LazyLock, Weak},
};

use tokio::sync::{Mutex, Notify};

use super::{RedisError, RedisResult, keyspace::Key};
use crate::engine::{Engine, GroupState, Races, StreamHandle, Written};

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
    /// The group with every change applied so far, and the version of the stored object
    /// those changes build on; `None` until read (again) from the store.
    state: Option<(GroupState, crate::storage::ETag)>,
    /// Whether the batch being gathered changed anything.
    dirty: bool,
    /// The batch being gathered.
    batch: u64,
    /// Whether a write is under way.
    writing: bool,
}

struct Shared {
    cache: Mutex<Cache>,
    settled: parking_lot::Mutex<Settled>,
    /// Wakes the waiters when a batch is settled. (Not a `watch`: its wake-ups come in a
    /// random order, which would make a seeded simulation unrepeatable.)
    notify: Notify,
}

/// The shared state of a group on this node (the engine `instance`), by stream id and
/// group name.
fn shared(instance: u64, stream_id: &str, group: &str) -> Arc<Shared> {
    type Groups = HashMap<(u64, String, String), Weak<Shared>>;
    static GROUPS: LazyLock<parking_lot::Mutex<Groups>> = LazyLock::new(Default::default);
    let mut groups = GROUPS.lock();
    if groups.len() >= 1024 {
        groups.retain(|_, g| g.strong_count() > 0);
    }
    let name = (instance, stream_id.to_owned(), group.to_owned());
    if let Some(g) = groups.get(&name).and_then(Weak::upgrade) {
        return g;
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
    });
    groups.insert(name, Arc::downgrade(&g));
    g
}

/// Forgets what this node knows of a group, after it was destroyed or created anew here.
pub async fn forget(engine: &Engine, stream_id: &str, group: &str) {
    let shared = shared(engine.instance(), stream_id, group);
    shared.cache.lock().await.state = None;
}

/// Whether the group exists, as this node last knew it (read from the store if it knows
/// nothing yet). A group destroyed elsewhere since is found out by the next write.
pub async fn exists(engine: &Engine, key: &Key, group: &str) -> RedisResult<bool> {
    let shared = shared(engine.instance(), &key.handle.core.id, group);
    let mut cache = shared.cache.lock().await;
    if cache.state.is_none() {
        let Some(read) = engine.group(&key.handle, group).await? else {
            return Ok(false);
        };
        cache.state = Some((read.entry, read.etag));
    }
    Ok(true)
}

/// Runs `change` on the group and answers once its batch's write has landed, again on a
/// re-read group after a lost race; `change` returns its answer and whether it changed
/// anything. `prepare` reads what a try needs from the stream.
pub async fn update<P, R, F>(
    engine: &Engine,
    key: &Key,
    group: &str,
    missing: impl Fn() -> RedisError,
    prepare: impl Fn(GroupState) -> F,
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
            if cache.state.is_none() {
                let Some(read) = engine.group(&key.handle, group).await? else {
                    return Err(missing());
                };
                cache.state = Some((read.entry, read.etag));
            }
            let current = &cache.state.as_ref().expect("read above").0;
            let prepared = prepare(current.clone()).await?;
            let state = &mut cache.state.as_mut().expect("read above").0;
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
                let base = cache.state.clone();
                drop(cache);
                let write = write(
                    shared.clone(),
                    engine.clone(),
                    handle.clone(),
                    batch,
                    base,
                    dirty,
                );
                tokio::spawn(write);
            }
        }
        notified.await;
    }
}

/// Writes `batch` (the group as `base` holds it), then settles it, and on a lost race or
/// a failure also every batch built on it. Runs on its own task, so a command that gives
/// up waiting never leaves its batch unsettled.
async fn write(
    shared: Arc<Shared>,
    engine: Engine,
    handle: Arc<StreamHandle>,
    batch: u64,
    base: Option<(GroupState, crate::storage::ETag)>,
    dirty: bool,
) {
    let written = match base {
        Some((state, etag)) if dirty => match engine.replace_group(&handle, state, &etag).await {
            Ok(Written::Done(v)) => Ok(Some((v.entry.version, v.etag))),
            Ok(Written::Raced) => Err(Outcome::Raced),
            Err(e) => Err(Outcome::Failed(e.into())),
        },
        // Nothing to write, but the answers came from what this node knew: they stand
        // only if the group has not changed elsewhere since.
        Some((state, etag)) => match engine.group_is_current(&handle, &state.name, &etag).await {
            Ok(true) => Ok(None),
            Ok(false) => Err(Outcome::Raced),
            Err(e) => Err(Outcome::Failed(e.into())),
        },
        None => Ok(None),
    };
    let mut cache = shared.cache.lock().await;
    cache.writing = false;
    let (last, outcome) = match written {
        Ok(stored) => {
            if let (Some((version, etag)), Some((state, known))) = (stored, cache.state.as_mut()) {
                // The batches gathered meanwhile build on what was just written.
                state.version = version;
                *known = etag;
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
        let engine = Engine::new(
            store,
            EngineConfig {
                poll: None,
                maintenance_interval: Duration::from_secs(3600),
                ..EngineConfig::default()
            },
        );
        engine
            .create_basin("test-plate", BasinConfig::default(), None)
            .await
            .unwrap();
        let caller = Authenticator::new(engine.clone(), None)
            .authenticate(&http::HeaderMap::new(), Scheme::BearerOrBare)
            .await
            .unwrap();
        let ctx = Context {
            engine,
            caller,
            plate: "test-plate".into(),
            max_block: None,
        };
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
}
