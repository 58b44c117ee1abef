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
//! segment) was started at most [`REFERENCE_WINDOW`] before the write is issued; a commit
//! that would take longer is planned again under fresh keys. That bound is what lets the
//! orphan sweep delete unreferenced objects older than its grace ([`super::reach`]).
//!
//! On a precondition failure another writer got there first: re-read the manifest,
//! re-check every request's conditions against it, re-number, and retry. On an
//! ambiguous failure (timeout, lost response) the write may have landed: re-read and
//! look for one of this commit's attempts in the manifest before trying again, so an
//! append is never applied twice. Conditions that fail are only reported against a
//! manifest read fresh for the purpose, so a 412 never reflects stale state.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use s2_common::config::{TimestampingConfig, TimestampingMode};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tracing::{debug, warn};

use super::{
    chunk::{Chunk, ChunkBuilder},
    entries::{self, EntryId, EntryState},
    error::{ConditionFailed, EngineError, EngineResult, Position},
    layout,
    manifest::{ChunkRef, IndexSegment, MAX_INLINE_CHUNKS, MAX_INLINE_TOTAL_BYTES, Manifest},
    reach::REFERENCE_WINDOW,
    record::{AppendInput, Command},
    stream::{Spill, StreamCore, StreamState},
};
use crate::storage::{PutOutcome, StorageResult};

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
}

impl Default for AppenderSettings {
    fn default() -> Self {
        Self {
            express_linger: Duration::ZERO,
            standard_linger: Duration::from_millis(200),
            linger_commit_bytes: 4 * 1024 * 1024,
            max_commit_bytes: 8 * 1024 * 1024,
            queue_depth: 4096,
        }
    }
}

/// How long a commit keeps retrying after precondition failures (other nodes' commits)
/// before giving up with the retryable `transaction_conflict`; below the SDK's 5 s
/// request timeout, so the client sees the conflict rather than a timeout.
const CONFLICT_BUDGET: Duration = Duration::from_secs(3);
/// Longest pause between conflicting attempts.
const MAX_CONFLICT_BACKOFF: Duration = Duration::from_millis(100);
/// Attempts to write (or resolve) a commit through storage errors.
const MAX_STORAGE_ATTEMPTS: usize = 6;

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
}

impl SessionGate {
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

pub fn spawn(core: Arc<StreamCore>, settings: AppenderSettings) -> mpsc::Sender<AppendRequest> {
    let (tx, rx) = mpsc::channel(settings.queue_depth);
    tokio::spawn(run(core, rx, settings));
    tx
}

async fn run(
    core: Arc<StreamCore>,
    mut rx: mpsc::Receiver<AppendRequest>,
    settings: AppenderSettings,
) {
    let mut pipe = Pipeline::new(core.clone());
    let mut batch = Batch::default();
    let mut input_open = true;
    loop {
        if !input_open && batch.is_empty() && pipe.is_empty() {
            return;
        }
        // Take whatever is already queued, without waiting.
        while input_open && batch.bytes < settings.max_commit_bytes {
            match rx.try_recv() {
                Ok(req) => batch.add(req, linger(&core, &settings)),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => input_open = false,
            }
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
                pipe.push_first(pending).await;
            } else {
                pipe.push_stacked(pending);
            }
            continue;
        }
        pipe.start_head();
        let receiving = input_open && !full;
        let deadline = (!batch.is_empty() && may_stage(&pipe, &batch)).then_some(batch.deadline);
        tokio::select! {
            biased;
            finished = pipe.head_finished(), if !pipe.is_empty() => pipe.settle_head(finished).await,
            req = rx.recv(), if receiving => match req {
                Some(req) => batch.add(req, linger(&core, &settings)),
                None => input_open = false,
            },
            () = sleep_until_opt(deadline) => {}
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

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// How long the stream's storage class lets a commit wait for more appends.
fn linger(core: &StreamCore, settings: &AppenderSettings) -> Duration {
    if is_standard(core) {
        settings.standard_linger
    } else {
        settings.express_linger
    }
}

/// Whether the stream's storage class is `standard`; anything else is served as `express`.
fn is_standard(core: &StreamCore) -> bool {
    core.current().config.storage_class.as_deref() == Some("standard")
}

/// Chunks up to this size travel inside the manifest: the commit is then one write.
pub const INLINE_MAX_BYTES: usize = 256 * 1024;
/// Inline chunks are written out (as one pack) once there are this many of them, or
/// [`SPILL_MIN_BYTES`]: fewer requests per commit, against larger manifests.
pub const SPILL_MIN_CHUNKS: usize = 8;
const SPILL_MIN_BYTES: usize = 256 * 1024;

/// Commits planned but not yet settled, at most this many at once. Their chunks are
/// written concurrently; their manifest writes happen one at a time, in order. Requests
/// keep being gathered while commits are in flight, so a lingering (`standard`) stream
/// fills its next commit while the previous one is being written.
const PIPELINE_DEPTH: usize = 4;
/// Batches smaller than this do not deepen the pipeline beyond two commits.
const PIPELINE_MIN_BYTES: usize = 1024 * 1024;

/// A planned commit in the pipeline.
struct Stage {
    requests: Vec<AppendRequest>,
    plan: Plan,
    /// The chunk write, started when the commit was planned; `None` once handed to the
    /// head's commit task, or if the plan writes nothing.
    chunk_write: Option<JoinHandle<EngineResult<()>>>,
}

/// What the head's commit task found.
struct HeadResult {
    chunk: EngineResult<()>,
    /// `None` when the chunk could not be written, so the manifest was not attempted.
    manifest: Option<StorageResult<PutOutcome>>,
}

/// Commits in flight for one stream, oldest first. Each is planned on top of the one
/// before it, as if that one succeeds; the manifest of the oldest (the head) is written
/// with `If-Match` on the last settled state. When every write succeeds, consecutive
/// commits overlap; when one does not, it and everything stacked on it go through the
/// retrying path instead, in order.
struct Pipeline {
    core: Arc<StreamCore>,
    stages: VecDeque<Stage>,
    /// The state the head was planned against: the last one settled.
    base: Arc<StreamState>,
    head_task: Option<JoinHandle<HeadResult>>,
}

impl Pipeline {
    fn new(core: Arc<StreamCore>) -> Self {
        let base = core.current();
        Self {
            core,
            stages: VecDeque::new(),
            base,
            head_task: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    fn len(&self) -> usize {
        self.stages.len()
    }

    /// Plans `pending` against the latest state this node knows, re-read first if any
    /// condition fails (a refusal must reflect the stream as it is). Requests that need no
    /// write are answered at once.
    async fn push_first(&mut self, pending: Vec<AppendRequest>) {
        let core = &self.core;
        let mut state = core.current();
        let spills = core.spills.lock().clone();
        let mut plan = Plan::build(&state, &pending, rand::random(), now_ms(), &[], &spills);
        if plan.has_rejections() {
            state = match core.refresh().await {
                Ok(s) => s,
                Err(e) => return fail_all(pending, e),
            };
            plan = Plan::build(&state, &pending, rand::random(), now_ms(), &[], &spills);
        }
        if state.manifest.is_deleted() {
            core.mark_stale();
            return fail_all(
                pending,
                EngineError::StreamDeletionPending(core.name.clone()),
            );
        }
        if plan.chunk.is_none() {
            return reply(core, pending, plan.outcomes, state.tail());
        }
        self.base = state;
        let chunk_write = spawn_writes(core, &plan);
        self.stages.push_back(Stage {
            requests: pending,
            plan,
            chunk_write,
        });
    }

    /// Plans `pending` on top of the newest commit in flight, as if all of them succeed.
    fn push_stacked(&mut self, pending: Vec<AppendRequest>) {
        let top = self
            .stages
            .back()
            .expect("stacking needs a commit in flight");
        let projected = StreamState {
            manifest: top.plan.manifest.clone(),
            etag: self.base.etag.clone(),
            config: self.base.config.clone(),
            inline: Vec::new(),
        };
        let failed: Vec<usize> = self
            .stages
            .iter()
            .flat_map(|s| s.plan.failed_sessions.iter().copied())
            .collect();
        let spills = self.core.spills.lock().clone();
        let plan = Plan::build(
            &projected,
            &pending,
            rand::random(),
            now_ms(),
            &failed,
            &spills,
        );
        let chunk_write = spawn_writes(&self.core, &plan);
        self.stages.push_back(Stage {
            requests: pending,
            plan,
            chunk_write,
        });
    }

    /// Starts the head's manifest write (after its chunk is durable), unless it is
    /// already under way.
    fn start_head(&mut self) {
        if self.head_task.is_some() {
            return;
        }
        let Some(head) = self.stages.front_mut() else {
            return;
        };
        let chunk_write = head.chunk_write.take();
        let store = self.core.store.clone();
        let key = layout::manifest_key(&self.core.id);
        let etag = self.base.etag.clone();
        let bytes = head
            .plan
            .chunk
            .is_some()
            .then(|| head.plan.manifest.encode_object());
        let oldest_write = head.plan.oldest_write;
        self.head_task = Some(tokio::spawn(async move {
            if let Some(chunk_write) = chunk_write {
                let chunk = match chunk_write.await {
                    Ok(r) => r,
                    Err(e) => Err(EngineError::Storage(format!("chunk write task: {e}"))),
                };
                if chunk.is_err() {
                    return HeadResult {
                        chunk,
                        manifest: None,
                    };
                }
            }
            if bytes.is_some()
                && let Err(e) = within_reference_window(oldest_write)
            {
                // Settled like a failed chunk write: planned again, under fresh keys.
                return HeadResult {
                    chunk: Err(e),
                    manifest: None,
                };
            }
            let manifest = match bytes {
                Some(bytes) => Some(store.put_if_match(&key, bytes, &etag).await),
                None => None,
            };
            HeadResult {
                chunk: Ok(()),
                manifest,
            }
        }));
    }

    async fn head_finished(&mut self) -> HeadResult {
        let task = self.head_task.as_mut().expect("started");
        let result = match task.await {
            Ok(r) => r,
            Err(e) => HeadResult {
                chunk: Err(EngineError::Storage(format!("commit task: {e}"))),
                manifest: None,
            },
        };
        self.head_task = None;
        result
    }

    /// Acts on the head's outcome: acks it and moves on, or settles it and everything
    /// stacked on it through the retrying path.
    async fn settle_head(&mut self, result: HeadResult) {
        let Stage { requests, plan, .. } = self.stages.pop_front().expect("a head");
        let core = self.core.clone();
        match (plan.chunk.clone(), result) {
            // Planned on top of commits that all landed: its refusals are current.
            (None, _) => reply(&core, requests, plan.outcomes, self.base.tail()),
            (
                Some((chunk_ref, chunk)),
                HeadResult {
                    chunk: Ok(()),
                    manifest: Some(Ok(PutOutcome::Written(etag))),
                },
            ) => {
                committed(&core, (&chunk_ref, &chunk), plan.segment.clone()).await;
                let built = plan.chunk.as_ref().map(|(r, c)| (r, c));
                let known = self.base.known_inline().chain(built);
                match StreamState::reusing(plan.manifest, etag, known) {
                    Ok(state) => {
                        spill_inline(&core, &state);
                        let state = Arc::new(state);
                        core.publish(state.clone());
                        reply(&core, requests, plan.outcomes, state.tail());
                        self.base = state;
                    }
                    Err(e) => {
                        fail_all(requests, e);
                        self.fall_back().await;
                    }
                }
            }
            (
                Some((chunk_ref, chunk)),
                HeadResult {
                    chunk: chunk_result,
                    manifest,
                },
            ) => {
                let attempts = match manifest {
                    // Lost a race, or the outcome is unknown: the write may have landed.
                    Some(outcome) => {
                        match &outcome {
                            Ok(_) => {
                                core.metrics.lost_race();
                                debug!(stream = %core.name, "manifest changed underneath a commit")
                            }
                            Err(e) => {
                                warn!(stream = %core.name, error = %e, "manifest write failed; resolving")
                            }
                        }
                        vec![Attempt {
                            chunk_ref,
                            outcomes: plan.outcomes,
                            chunk,
                            segment: plan.segment,
                        }]
                    }
                    None => {
                        if let Err(e) = chunk_result {
                            warn!(stream = %core.name, error = %e, "writing chunk failed");
                        }
                        Vec::new()
                    }
                };
                commit(&core, requests, attempts).await;
                self.fall_back().await;
            }
        }
    }

    /// Settles every remaining commit through the retrying path, in order, and starts
    /// again from the latest state.
    async fn fall_back(&mut self) {
        while let Some(stage) = self.stages.pop_front() {
            commit(&self.core, stage.requests, Vec::new()).await;
        }
        self.base = self.core.current();
    }
}

/// Starts writing the objects `plan` needs before its manifest, if any.
fn spawn_writes(core: &Arc<StreamCore>, plan: &Plan) -> Option<JoinHandle<EngineResult<()>>> {
    if plan.chunk.is_none() || plan.writes.is_empty() {
        return None;
    }
    let core = core.clone();
    let writes = plan.writes.clone();
    Some(tokio::spawn(
        async move { write_objects(&core, &writes).await },
    ))
}

/// After a commit is acked, starts writing the inline chunks of `state` out as one pack,
/// unless a pack is being written already or they are too few to be worth a request yet:
/// a small commit then costs one write (its manifest) plus a share of the pack's, and no
/// commit waits for a pack unless the manifest would outgrow its inline bounds.
fn spill_inline(core: &StreamCore, state: &StreamState) {
    let inline = state.manifest.inline_refs();
    let mut spills = core.spills.lock();
    // Keep the packs that did not fail, may still be taken in, and hold chunks still
    // carried inline.
    spills.retain(|s| {
        s.done.peek() != Some(&false) && s.fresh() && inline.iter().any(|r| s.pack.holds(r))
    });
    if spills.iter().any(Spill::in_flight) {
        return;
    }
    let packed = inline
        .iter()
        .take_while(|r| spills.iter().any(|s| s.pack.holds(r)))
        .count();
    let rest = &state.manifest.inline_chunks[packed..];
    if rest.len() < SPILL_MIN_CHUNKS && rest.iter().map(Bytes::len).sum::<usize>() < SPILL_MIN_BYTES
    {
        return;
    }
    let Some(pack) = state.manifest.pack_inline(packed, rand::random()) else {
        return;
    };
    let store = core.store.clone();
    let (key, bytes) = (pack.key.clone(), pack.bytes.clone());
    spills.push(Spill::start(pack, async move {
        store.put(&key, bytes).await.is_ok()
    }));
}

/// What became of one request in a planned commit.
#[derive(Debug, Clone)]
enum Outcome {
    Applied { start: Position, end: Position },
    Rejected(EngineError),
}

/// A commit worked out against one manifest version.
struct Plan {
    manifest: Manifest,
    chunk: Option<(ChunkRef, Arc<Chunk>)>,
    /// Objects that must be durable before the manifest is written: the chunk (unless it
    /// goes inline), a folded index segment, and packs of inline chunks that must leave
    /// the manifest (which this node is usually writing out already; see `write_objects`).
    writes: Vec<(String, Bytes)>,
    /// The index segment folded out of the manifest, if any, under its key.
    segment: Option<(String, Arc<IndexSegment>)>,
    outcomes: Vec<Outcome>,
    /// Sessions (by [`SessionGate`] address) with a request refused in this plan; a plan
    /// stacked on this one must apply none of their later requests.
    failed_sessions: Vec<usize>,
    /// When the oldest object the manifest references for the first time started being
    /// written: the plan's own writes start after it was made, a pack taken in started
    /// when its spill did. See [`within_reference_window`].
    oldest_write: tokio::time::Instant,
}

/// Whether a manifest write whose newly referenced objects started being written at
/// `oldest_write` may still be issued: within [`REFERENCE_WINDOW`], which the orphan
/// sweep relies on ([`super::reach`]).
fn within_reference_window(oldest_write: tokio::time::Instant) -> EngineResult<()> {
    let waited = oldest_write.elapsed();
    if waited > REFERENCE_WINDOW {
        return Err(EngineError::Storage(format!(
            "a commit's objects were written {waited:?} before its manifest write; planning it again"
        )));
    }
    Ok(())
}

fn gate_id(gate: &Arc<SessionGate>) -> usize {
    Arc::as_ptr(gate) as usize
}

impl Plan {
    /// Plans `pending` in order against `state`. `prior_failed` are sessions refused by a
    /// plan this one is stacked on.
    /// `spills` are this node's packs of inline chunks (see [`Spill`]).
    fn build(
        state: &StreamState,
        pending: &[AppendRequest],
        commit: u64,
        now_ms: u64,
        prior_failed: &[usize],
        spills: &[Spill],
    ) -> Self {
        let mut manifest = state.manifest.next_version();
        let stream_id = manifest.stream_id.clone();
        let mut writes = Vec::new();
        let mut segment = None;
        let mut oldest_write = tokio::time::Instant::now();
        // Only packs whose write started recently: an older one may be gone to the sweep.
        for spill in spills.iter().filter(|s| s.stored() && s.fresh()) {
            if manifest.evict_inline(&spill.pack) > 0 {
                oldest_write = oldest_write.min(spill.started);
            }
        }
        let ts_config = state.config.timestamping;
        let capacity: usize = pending
            .iter()
            .map(|r| r.input.batch.payload_len() + r.input.batch.len() * 24)
            .sum();
        let mut chunk = ChunkBuilder::new(manifest.next_seq, capacity);
        let mut last_ts = manifest.last_timestamp;
        let mut fencing_token = manifest.fencing_token.clone();
        let mut trim_point = manifest.trim_point;
        let mut entries = EntryState::of(&manifest);
        let mut metered_total = 0u64;
        let mut failed_sessions: Vec<usize> = Vec::new();
        let mut outcomes = Vec::with_capacity(pending.len());

        for req in pending {
            let gate = req.session.as_ref().map(gate_id);
            if req.session.as_ref().is_some_and(|g| g.has_failed())
                || gate.is_some_and(|g| failed_sessions.contains(&g) || prior_failed.contains(&g))
            {
                outcomes.push(Outcome::Rejected(EngineError::SessionAborted));
                continue;
            }
            let input = &req.input;
            let rejection = if let Some(token) = &input.fencing_token
                && *token != fencing_token
            {
                Some(EngineError::ConditionFailed(
                    ConditionFailed::FencingTokenMismatch(fencing_token.clone()),
                ))
            } else if let Some(expected) = input.match_seq_num
                && expected != chunk.next_seq()
            {
                Some(EngineError::ConditionFailed(
                    ConditionFailed::SeqNumMismatch(chunk.next_seq()),
                ))
            } else if ts_config.mode == TimestampingMode::ClientRequire
                && input.batch.records().iter().any(|r| r.timestamp.is_none())
            {
                Some(EngineError::Invalid(
                    "record timestamp is required by the stream's timestamping mode".into(),
                ))
            } else {
                None
            };
            if let Some(e) = rejection {
                if let Some(g) = gate {
                    failed_sessions.push(g);
                }
                outcomes.push(Outcome::Rejected(e));
                continue;
            }

            let arrival = req.arrival_ms;
            let Some(stamped) = stamp(
                input,
                ts_config,
                arrival,
                last_ts,
                chunk.next_seq(),
                &entries,
            ) else {
                if let Some(g) = gate {
                    failed_sessions.push(g);
                }
                outcomes.push(Outcome::Rejected(EngineError::Invalid(format!(
                    "an entry id is not above the stream's last id ({})",
                    entries.last_id()
                ))));
                continue;
            };
            let mut start = None;
            for ((meta, fields), (ts, id)) in input.batch.encoded_records().zip(stamped) {
                last_ts = ts;
                let seq = chunk.next_seq();
                start.get_or_insert(Position {
                    seq_num: seq,
                    timestamp: ts,
                });
                match &meta.command {
                    Some(Command::Fence(token)) => fencing_token.clone_from(token),
                    Some(Command::Trim(point)) => {
                        trim_point = trim_point.max((*point).min(seq + 1));
                    }
                    None => {}
                }
                match id {
                    Some(id) => entries.set_last_id(id),
                    None => entries.command_records += 1,
                }
                chunk.push(ts, meta.metered as usize, fields);
            }
            metered_total += input.batch.metered_bytes() as u64;
            outcomes.push(Outcome::Applied {
                start: start.expect("batches are non-empty"),
                end: Position {
                    seq_num: chunk.next_seq(),
                    timestamp: last_ts,
                },
            });
        }

        let chunk = (!chunk.is_empty()).then(|| {
            let chunk = Arc::new(chunk.finish());
            let first = chunk.record(0).timestamp;
            let r = ChunkRef {
                first_seq: chunk.first_seq(),
                count: chunk.len() as u32,
                first_timestamp: first,
                last_timestamp: last_ts,
                metered_bytes: metered_total,
                size: chunk.bytes().len() as u64,
                commit,
                committed_at_ms: now_ms,
                inline: chunk.bytes().len() <= INLINE_MAX_BYTES,
                pack: None,
            };
            (r, chunk)
        });
        if let Some((r, c)) = &chunk {
            let fits = r.inline
                && manifest.inline_refs().len() < MAX_INLINE_CHUNKS
                && manifest.inline_bytes() + c.bytes().len() <= MAX_INLINE_TOTAL_BYTES;
            if !fits {
                // Inline chunks must stay the newest, within bounds: the ones carried so
                // far leave now, in the packs they are being written to, or a new one.
                for spill in spills.iter().filter(|s| s.fresh()) {
                    if manifest.evict_inline(&spill.pack) > 0 {
                        writes.push((spill.pack.key.clone(), spill.pack.bytes.clone()));
                        oldest_write = oldest_write.min(spill.started);
                    }
                }
                if let Some(pack) = manifest.pack_inline(0, rand::random()) {
                    manifest.evict_inline(&pack);
                    writes.push((pack.key, pack.bytes));
                }
            }
            if r.inline {
                manifest.push_inline_chunk(r.clone(), c.bytes().clone());
            } else {
                writes.push((r.key(&stream_id), c.bytes().clone()));
                manifest.push_chunk(r.clone());
            }
            manifest.fencing_token = fencing_token;
            manifest.trim_point = trim_point;
            manifest.entries = Some(entries);
            let expire_before = state
                .config
                .retention_policy
                .age()
                .map(|age| now_ms.saturating_sub(age.as_millis() as u64));
            manifest.drop_unreadable(expire_before);
            let first_readable = manifest.first_readable();
            if let Some(e) = manifest.entries.as_mut() {
                e.prune(first_readable);
            }
            if let Some((seg_ref, seg)) = manifest.fold_if_needed(commit) {
                let key = seg_ref.key(&stream_id);
                writes.push((key.clone(), seg.encode_object()));
                segment = Some((key, Arc::new(seg)));
            }
        }
        Plan {
            manifest,
            chunk,
            writes,
            segment,
            outcomes,
            failed_sessions,
            oldest_write,
        }
    }

    fn has_rejections(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Rejected(e) if !matches!(e, EngineError::SessionAborted)))
    }
}

/// Each record's timestamp and entry id (`None` for a command record), in order, or
/// `None` if a carried id is not above the id before it ([`super::entries`]).
fn stamp(
    input: &AppendInput,
    ts_config: TimestampingConfig,
    arrival: u64,
    mut last_ts: u64,
    first_seq: u64,
    entries: &EntryState,
) -> Option<Vec<(u64, Option<EntryId>)>> {
    let mut last_id = entries.last_id();
    let mut stamped = Vec::with_capacity(input.batch.len());
    for (i, meta) in input.batch.records().iter().enumerate() {
        let ts = match ts_config.mode {
            TimestampingMode::Arrival => arrival,
            TimestampingMode::ClientPrefer | TimestampingMode::ClientRequire => {
                meta.timestamp.unwrap_or(arrival)
            }
        };
        let ts = if ts_config.uncapped {
            ts
        } else {
            ts.min(arrival)
        };
        let mut ts = ts.max(last_ts);
        let id = match (&meta.command, meta.carried_id) {
            (Some(_), _) => None,
            (None, Some(id)) if id <= last_id => return None,
            (None, Some(id)) => Some(id),
            (None, None) => {
                let (id, raised) = entries::derived(ts, first_seq + i as u64, last_id);
                if id <= last_id {
                    // Only when the last id is the largest there is.
                    return None;
                }
                ts = raised;
                Some(id)
            }
        };
        if let Some(id) = id {
            last_id = id;
        }
        last_ts = ts;
        stamped.push((ts, id));
    }
    Some(stamped)
}

/// A written-or-maybe-written attempt of the current commit.
struct Attempt {
    chunk_ref: ChunkRef,
    outcomes: Vec<Outcome>,
    chunk: Arc<Chunk>,
    segment: Option<(String, Arc<IndexSegment>)>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Answers `pending` with their `outcomes`, observing the latency of every ack.
fn reply(core: &StreamCore, pending: Vec<AppendRequest>, outcomes: Vec<Outcome>, tail: Position) {
    let metrics = &core.metrics;
    let acks = if is_standard(core) {
        &metrics.ack_standard
    } else {
        &metrics.ack_express
    };
    for (req, outcome) in pending.into_iter().zip(outcomes) {
        let result = match outcome {
            Outcome::Applied { start, end } => {
                acks.observe_duration(req.received.elapsed());
                Ok(Ack { start, end, tail })
            }
            Outcome::Rejected(e) => {
                if let Some(gate) = &req.session {
                    gate.fail();
                }
                Err(e)
            }
        };
        let _ = req.reply.send(result);
    }
}

fn fail_all(pending: Vec<AppendRequest>, error: EngineError) {
    for req in pending {
        if let Some(gate) = &req.session {
            gate.fail();
        }
        let _ = req.reply.send(Err(error.clone()));
    }
}

/// Which of `attempts`, if any, the manifest shows landed.
fn landed(attempts: &mut Vec<Attempt>, manifest: &Manifest) -> Option<Attempt> {
    let i = attempts
        .iter()
        .position(|a| manifest.contains_commit(a.chunk_ref.first_seq, a.chunk_ref.commit))?;
    Some(attempts.swap_remove(i))
}

/// Sleeps a uniformly random time up to `base · 2^attempt`, capped at `cap`, so that
/// writers that collided spread out.
async fn backoff_capped(attempt: usize, base: Duration, cap: Duration) {
    let max = (base * (1u32 << attempt.min(10))).min(cap);
    let jitter = rand::random_range(0..=max.as_micros() as u64);
    tokio::time::sleep(Duration::from_micros(jitter)).await;
}

async fn backoff(attempt: usize, base: Duration) {
    backoff_capped(attempt, base, Duration::from_secs(1)).await;
}

/// Re-reads the manifest after a failed or unknown write, with retries.
async fn reload(core: &StreamCore) -> EngineResult<Arc<StreamState>> {
    let mut last_error = None;
    for attempt in 0..MAX_STORAGE_ATTEMPTS {
        match core.refresh().await {
            Ok(state) => return Ok(state),
            Err(EngineError::Storage(e)) => {
                last_error = Some(EngineError::Storage(e));
                backoff(attempt, Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.expect("at least one attempt"))
}

/// The retrying path: commits `pending` one attempt after another until one lands, it is
/// clear that none will, or the budget is spent. `attempts` made earlier (whose outcome is
/// unknown) are looked for first.
async fn commit(core: &StreamCore, mut pending: Vec<AppendRequest>, mut attempts: Vec<Attempt>) {
    let started = tokio::time::Instant::now();
    let mut conflicts = 0;
    let mut storage_failures = 0;
    let mut state = core.current();
    let mut fresh = false;
    if !attempts.is_empty() {
        let Some((reread, unanswered)) = reread_unless_landed(core, pending, &mut attempts).await
        else {
            return;
        };
        (state, pending) = (reread, unanswered);
        fresh = true;
        conflicts = 1;
    }
    loop {
        if state.manifest.is_deleted() {
            core.mark_stale();
            return fail_all(
                pending,
                EngineError::StreamDeletionPending(core.name.clone()),
            );
        }
        let spills = core.spills.lock().clone();
        let plan = Plan::build(&state, &pending, rand::random(), now_ms(), &[], &spills);
        if plan.has_rejections() && !fresh {
            match core.refresh().await {
                Ok(s) => {
                    state = s;
                    fresh = true;
                    continue;
                }
                Err(e) => return fail_all(pending, e),
            }
        }
        let Some((chunk_ref, chunk)) = plan.chunk.clone() else {
            let tail = state.tail();
            return reply(core, pending, plan.outcomes, tail);
        };

        let written = write_objects(core, &plan.writes)
            .await
            .and_then(|()| within_reference_window(plan.oldest_write));
        if let Err(e) = written {
            storage_failures += 1;
            warn!(stream = %core.name, error = %e, "writing chunk failed");
            if storage_failures >= MAX_STORAGE_ATTEMPTS {
                return fail_all(pending, e);
            }
            backoff(storage_failures, Duration::from_millis(20)).await;
            continue;
        }

        attempts.push(Attempt {
            chunk_ref: chunk_ref.clone(),
            outcomes: plan.outcomes.clone(),
            chunk: chunk.clone(),
            segment: plan.segment.clone(),
        });
        let bytes = plan.manifest.encode_object();
        let key = layout::manifest_key(&core.id);
        let result = core.store.put_if_match(&key, bytes, &state.etag).await;
        match result {
            Ok(PutOutcome::Written(etag)) => {
                committed(core, (&chunk_ref, &chunk), plan.segment.clone()).await;
                let built = plan.chunk.as_ref().map(|(r, c)| (r, c));
                let known = state.known_inline().chain(built);
                let new_state = match StreamState::reusing(plan.manifest, etag, known) {
                    Ok(s) => Arc::new(s),
                    Err(e) => return fail_all(pending, e),
                };
                spill_inline(core, &new_state);
                let tail = new_state.tail();
                core.publish(new_state);
                return reply(core, pending, plan.outcomes, tail);
            }
            Ok(PutOutcome::PreconditionFailed) => {
                core.metrics.lost_race();
                conflicts += 1;
                debug!(stream = %core.name, conflicts, "manifest changed underneath a commit");
            }
            Err(e) => {
                storage_failures += 1;
                warn!(stream = %core.name, error = %e, "manifest write failed; resolving");
            }
        }

        // The write failed or its outcome is unknown: find out where the stream stands.
        let Some((reread, unanswered)) = reread_unless_landed(core, pending, &mut attempts).await
        else {
            return;
        };
        (state, pending) = (reread, unanswered);
        fresh = true;
        if conflicts > 0 && started.elapsed() > CONFLICT_BUDGET {
            return fail_all(
                pending,
                EngineError::TransactionConflict(
                    "too many concurrent writers on this stream; retry".into(),
                ),
            );
        }
        if storage_failures >= MAX_STORAGE_ATTEMPTS {
            return fail_all(
                pending,
                EngineError::Storage(
                    "object storage keeps failing; the append may or may not have been applied"
                        .into(),
                ),
            );
        }
        backoff_capped(
            conflicts + storage_failures,
            Duration::from_millis(2),
            MAX_CONFLICT_BACKOFF,
        )
        .await;
    }
}

/// Re-reads the manifest after writes whose outcome is unknown and hands it back with
/// `pending`, unless one of `attempts` landed or the read failed: then `pending` has been
/// answered and this returns `None`.
async fn reread_unless_landed(
    core: &StreamCore,
    pending: Vec<AppendRequest>,
    attempts: &mut Vec<Attempt>,
) -> Option<(Arc<StreamState>, Vec<AppendRequest>)> {
    let state = match reload(core).await {
        Ok(s) => s,
        Err(e) => {
            fail_all(pending, e);
            return None;
        }
    };
    if let Some(attempt) = landed(attempts, &state.manifest) {
        committed(core, (&attempt.chunk_ref, &attempt.chunk), attempt.segment).await;
        reply(core, pending, attempt.outcomes, state.tail());
        return None;
    }
    Some((state, pending))
}

/// Takes note of a commit that just landed (or, after an unknown outcome, turned out to
/// have): counts it, and makes what it wrote readable from memory: its chunk, and the
/// index segment it folded, which a catch-up read needs before any of that segment's
/// chunks.
async fn committed(
    core: &StreamCore,
    (chunk_ref, chunk): (&ChunkRef, &Arc<Chunk>),
    segment: Option<(String, Arc<IndexSegment>)>,
) {
    core.metrics.commit_bytes.observe(chunk_ref.size);
    core.cache
        .insert_chunk(chunk_ref.key(&core.id), chunk.clone())
        .await;
    if let Some((key, segment)) = segment {
        core.cache.insert_segment(key, segment).await;
    }
}

/// Makes `writes` durable, concurrently. A write whose object this node is already
/// writing out (a pack of inline chunks, [`spill_inline`]) waits for that instead of
/// repeating it.
async fn write_objects(core: &StreamCore, writes: &[(String, Bytes)]) -> EngineResult<()> {
    let results = futures::future::join_all(writes.iter().map(|(key, bytes)| async move {
        let spill = core
            .spills
            .lock()
            .iter()
            .find(|s| s.pack.key == *key)
            .map(|s| s.done.clone());
        if let Some(done) = spill
            && done.await
        {
            return Ok(());
        }
        core.store.put(key, bytes.clone()).await.map(drop)
    }))
    .await;
    for r in results {
        r?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use futures::future;

    use super::*;
    use crate::{
        engine::{manifest::Pack, record::RecordBatchBuilder},
        storage::ETag,
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
        let config = super::super::stream::config_json(&Default::default());
        let state =
            StreamState::new(Manifest::new("id".into(), config, 0), ETag::new("e")).unwrap();
        with_more_inline(state, n)
    }

    fn with_more_inline(mut state: StreamState, n: usize) -> StreamState {
        for _ in 0..n {
            let i = state.manifest.next_seq;
            let plan = Plan::build(&state, &[request(&[i as u8])], i, 1, &[], &[]);
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
        let plan = Plan::build(&state, &[request(b"next")], 99, 1, &[], &stored);
        assert!(plan.writes.is_empty());
        assert_eq!(plan.manifest.inline_refs().len(), 1);
        assert_eq!(plan.manifest.chunks[..20], pack.members[..]);
        plan.manifest.check_invariants().unwrap();

        let unfinished = [spill(pack, None).await];
        let plan = Plan::build(&state, &[request(b"next")], 99, 1, &[], &unfinished);
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
        let plan = Plan::build(&state, &[request(b"next")], 99, 1, &[], &spills);
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

    /// A pack whose write started longer than the reuse window ago is not taken into the
    /// manifest (the orphan sweep may have deleted it): its members stay inline, or leave
    /// in a new pack, and a plan that waited past the reference window is not written.
    #[tokio::test(start_paused = true)]
    async fn packs_are_taken_in_only_while_fresh() {
        use crate::engine::reach::PACK_REUSE_WINDOW;
        let state = state_with_inline(20);
        let pack = state.manifest.pack_inline(0, 9).unwrap();
        let stored = [spill(pack.clone(), Some(true)).await];
        tokio::time::advance(PACK_REUSE_WINDOW).await;
        let plan = Plan::build(&state, &[request(b"next")], 99, 1, &[], &stored);
        assert_eq!(plan.manifest.inline_refs().len(), 21, "still inline");
        assert!(within_reference_window(plan.oldest_write).is_ok());

        let full = with_more_inline(state, MAX_INLINE_CHUNKS - 20);
        let plan = Plan::build(&full, &[request(b"next")], 99, 1, &[], &stored);
        assert_eq!(plan.writes.len(), 1, "one new pack for all of them");
        assert_ne!(plan.writes[0].0, pack.key);
        plan.manifest.check_invariants().unwrap();

        tokio::time::advance(REFERENCE_WINDOW + Duration::from_millis(1)).await;
        assert!(within_reference_window(plan.oldest_write).is_err());
    }
}
