//! The per-stream appender: one task per stream per node that group-commits appends.
//!
//! While a commit is in flight, new requests queue; the next commit takes everything
//! queued (up to a size cap), so under load each manifest write carries many batches.
//! A commit writes one chunk, then the manifest with `If-Match` on the version the
//! commit was planned against; success is durability, and only then are requests acked.
//! A small chunk instead travels inside the manifest, so the commit is that one write;
//! after the ack, the inline chunks gathered so far are written out as one pack, off the
//! commit path, and a later manifest drops their bytes.
//!
//! Whatever a manifest write references for the first time (its chunk, a pack, a folded
//! segment) was started at most `REFERENCE_WINDOW` before the write is issued; a commit
//! that would take longer is planned again under fresh keys. That bound is what lets the
//! orphan sweep delete unreferenced objects older than its grace (`engine/reach.rs`).
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | the task: gathering requests into batches, when a batch goes out |
//! | `mailbox.rs` | starting the task on demand, ending it once idle, in order |
//! | `plan.rs` | a commit worked out against one manifest version, without I/O |
//! | `pipeline.rs` | commits in flight, planned on top of each other |
//! | `commit.rs` | landing a commit; the retrying path after a race or an unknown outcome |
//! | `spill.rs` | writing inline chunks out as packs |

mod commit;
mod mailbox;
mod pipeline;
mod plan;
mod spill;
#[cfg(test)]
mod tests;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};

pub use self::mailbox::Appender;
#[cfg(test)]
pub(crate) use self::spill::SPILL_MIN_CHUNKS;
use self::{
    pipeline::{PIPELINE_DEPTH, PIPELINE_MIN_BYTES, Pipeline},
    spill::Spills,
};
use super::{
    clock::sleep_until_opt,
    error::{EngineResult, Position},
    handle::{StorageClass, StreamCore},
    record::AppendInput,
};

/// How long to wait for more requests before committing, per storage class, and how
/// big a commit may get.
#[derive(Debug, Clone, Copy)]
pub struct AppenderSettings {
    pub express_linger: Duration,
    pub standard_linger: Duration,
    /// A lingering commit goes out early once it holds this many bytes.
    pub linger_commit_bytes: usize,
    pub max_commit_bytes: usize,
    pub queue_depth: usize,
    /// The task ends once it has had nothing to do for this long, and the next append
    /// starts another ([`Appender`]): an idle stream then holds neither.
    pub idle_exit: Duration,
}

impl Default for AppenderSettings {
    fn default() -> Self {
        Self {
            express_linger: Duration::ZERO,
            standard_linger: Duration::from_millis(200),
            linger_commit_bytes: 4 * 1024 * 1024,
            max_commit_bytes: 8 * 1024 * 1024,
            queue_depth: 4096,
            idle_exit: DEFAULT_IDLE_EXIT,
        }
    }
}

/// The default of `--appender-idle-exit`.
pub const DEFAULT_IDLE_EXIT: Duration = Duration::from_secs(1);

/// The acknowledgement of one applied batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub start: Position,
    pub end: Position,
    pub tail: Position,
}

/// Shared by the requests of one append session: once one fails, the rest are refused
/// unapplied, so nothing is applied after a failed input.
#[derive(Debug, Default)]
pub struct SessionGate {
    failed: AtomicBool,
    /// The last minute (epoch seconds) the session's appends were counted as an
    /// operation in: a session's appends make one operation per minute, as S2 meters them.
    metered_minute: std::sync::atomic::AtomicU32,
}

impl SessionGate {
    /// Whether an append in `minute` begins a new operation of the session.
    pub(crate) fn begins_minute(&self, minute: u32) -> bool {
        self.metered_minute.swap(minute, Ordering::Relaxed) != minute
    }

    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

pub struct AppendRequest {
    pub input: AppendInput,
    /// Wall-clock milliseconds when the request arrived; its records' arrival time.
    pub arrival_ms: u64,
    /// When the request reached the engine; its ack's latency is measured from here.
    pub received: std::time::Instant,
    pub session: Option<Arc<SessionGate>>,
    pub reply: oneshot::Sender<EngineResult<Ack>>,
}

/// What the appender task works with: the stream, and the packs it is writing out.
#[derive(Clone)]
struct Writer {
    core: Arc<StreamCore>,
    spills: Arc<Spills>,
}

/// The task: gathers requests into commits until its mailbox closes and everything
/// queued is settled. Once it has been idle for `settings.idle_exit` it calls `retire`
/// (which takes its mailbox out of reach of new requests) and closes the mailbox.
///
/// Commits are planned and settled in futures of their own (boxed), so that the task's
/// own state while it waits stays small.
async fn run(
    w: Writer,
    mut rx: mpsc::Receiver<AppendRequest>,
    settings: AppenderSettings,
    retire: impl FnOnce(),
) {
    let mut retire = Some(retire);
    let core = w.core.clone();
    let mut pipe = Pipeline::new(w);
    let mut batch = Batch::default();
    let mut input_open = true;
    loop {
        // Take whatever is already queued, without waiting.
        while input_open && batch.bytes < settings.max_commit_bytes {
            match rx.try_recv() {
                Ok(req) => batch.add(req, linger(&core, &settings)),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => input_open = false,
            }
        }
        // Checked after taking what was queued: a mailbox found closed there leaves
        // nothing for the wait below to wake on.
        if !input_open && batch.is_empty() && pipe.is_empty() {
            return;
        }
        let full = batch.bytes >= settings.max_commit_bytes;
        let due = !batch.is_empty()
            && (full
                || !input_open
                || batch.bytes >= settings.linger_commit_bytes
                || tokio::time::Instant::now() >= batch.deadline);
        if due && may_stage(&pipe, &batch) {
            let pending = batch.take();
            if pipe.is_empty() {
                Box::pin(pipe.push_first(pending)).await;
            } else {
                pipe.push_stacked(pending);
            }
            continue;
        }
        pipe.start_head();
        let receiving = input_open && !full;
        let deadline = (!batch.is_empty() && may_stage(&pipe, &batch)).then_some(batch.deadline);
        let idle = input_open && batch.is_empty() && pipe.is_empty() && retire.is_some();
        tokio::select! {
            biased;
            finished = pipe.head_finished(), if !pipe.is_empty() => {
                Box::pin(pipe.settle_head(finished)).await;
            }
            req = rx.recv(), if receiving => match req {
                Some(req) => batch.add(req, linger(&core, &settings)),
                None => input_open = false,
            },
            () = sleep_until_opt(deadline) => {}
            () = tokio::time::sleep(settings.idle_exit), if idle => {
                // Requests queued before the close are still received, then `None`.
                if let Some(retire) = retire.take() {
                    retire();
                }
                rx.close();
            }
        }
    }
}

/// Whether `batch` may go out as a commit now. A batch small enough to travel inline is
/// only a manifest write, which cannot overlap the one in flight, so it waits for the
/// pipeline to empty and keeps gathering meanwhile: the slower the store, the larger the
/// commits, and no more requests than the store can take. A larger batch may overlap its
/// chunk write with one commit in flight; beyond that, only large ones deepen the pipeline.
fn may_stage(pipe: &Pipeline, batch: &Batch) -> bool {
    pipe.is_empty()
        || (pipe.len() < 2 && batch.bytes > INLINE_MAX_BYTES)
        || (batch.bytes >= PIPELINE_MIN_BYTES && pipe.len() < PIPELINE_DEPTH)
}

/// Requests gathered for the next commit.
struct Batch {
    requests: Vec<AppendRequest>,
    bytes: usize,
    /// When the batch should be committed, whatever its size: its first request's arrival
    /// plus the storage class's linger.
    deadline: tokio::time::Instant,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            requests: Vec::new(),
            bytes: 0,
            deadline: tokio::time::Instant::now(),
        }
    }
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    fn add(&mut self, req: AppendRequest, linger: Duration) {
        if self.requests.is_empty() {
            self.deadline = tokio::time::Instant::now() + linger;
        }
        self.bytes += req.input.batch.metered_bytes();
        self.requests.push(req);
    }

    fn take(&mut self) -> Vec<AppendRequest> {
        self.bytes = 0;
        std::mem::take(&mut self.requests)
    }
}

/// How long the stream's storage class lets a commit wait for more appends.
fn linger(core: &StreamCore, settings: &AppenderSettings) -> Duration {
    match core.current().storage_class() {
        StorageClass::Standard => settings.standard_linger,
        StorageClass::Express => settings.express_linger,
    }
}

/// Chunks up to this size travel inside the manifest: the commit is then one write.
pub const INLINE_MAX_BYTES: usize = 256 * 1024;
