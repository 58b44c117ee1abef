//! The pipelined path: commits planned on top of the ones in flight, their chunk writes
//! overlapping, their manifest writes one at a time in order. A commit that does not land
//! cleanly goes, with everything stacked on it, through the retrying path (`commit.rs`).

use std::{collections::VecDeque, sync::Arc};

use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{
    AppendRequest, Writer,
    commit::{Attempt, commit, fail_all, land, reply},
    plan::{Plan, within_reference_window},
    spill::write_objects,
};
use crate::{
    engine::{
        error::{EngineError, EngineResult},
        handle::StreamState,
    },
    storage::{PutOutcome, StorageResult},
};

/// Commits planned but not yet settled, at most this many at once. Their chunks are
/// written concurrently; their manifest writes happen one at a time, in order. Requests
/// keep being gathered while commits are in flight, so a lingering (`standard`) stream
/// fills its next commit while the previous one is being written.
pub(super) const PIPELINE_DEPTH: usize = 4;
/// Batches smaller than this do not deepen the pipeline beyond two commits.
pub(super) const PIPELINE_MIN_BYTES: usize = 1024 * 1024;

/// A planned commit in the pipeline.
struct Stage {
    requests: Vec<AppendRequest>,
    plan: Plan,
    /// The chunk write, started when the commit was planned; `None` once handed to the
    /// head's commit task, or if the plan writes nothing.
    chunk_write: Option<JoinHandle<EngineResult<()>>>,
}

/// What the head's commit task found.
pub(super) struct HeadResult {
    chunk: EngineResult<()>,
    /// `None` when the chunk could not be written, so the manifest was not attempted.
    manifest: Option<StorageResult<PutOutcome>>,
}

/// Commits in flight for one stream, oldest first. Each is planned on top of the one
/// before it, as if that one succeeds; the manifest of the oldest (the head) is written
/// with `If-Match` on the last settled state. When every write succeeds, consecutive
/// commits overlap; when one does not, it and everything stacked on it go through the
/// retrying path instead, in order.
pub(super) struct Pipeline {
    w: Writer,
    stages: VecDeque<Stage>,
    /// The state the head was planned against: the last one settled.
    base: Arc<StreamState>,
    head_task: Option<JoinHandle<HeadResult>>,
}

impl Pipeline {
    pub fn new(w: Writer) -> Self {
        let base = w.core.current();
        Self {
            w,
            stages: VecDeque::new(),
            base,
            head_task: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    pub fn len(&self) -> usize {
        self.stages.len()
    }

    /// Plans `pending` against the latest state this node knows, re-read first if any
    /// condition fails (a refusal must reflect the stream as it is). Requests that need no
    /// write are answered at once.
    pub async fn push_first(&mut self, pending: Vec<AppendRequest>) {
        let core = &self.w.core;
        let mut state = core.current();
        let spills = self.w.spills.lock().clone();
        let now_ms = core.node.clock.now_ms();
        let plan_on = |state: &StreamState| {
            Plan::build(state, &pending, &core.node.random, now_ms, &[], &spills)
        };
        let mut plan = plan_on(&state);
        if plan.has_rejections() {
            state = match core.refresh().await {
                Ok(s) => s,
                Err(e) => return fail_all(pending, e),
            };
            plan = plan_on(&state);
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
        let chunk_write = spawn_writes(&self.w, &plan);
        self.stages.push_back(Stage {
            requests: pending,
            plan,
            chunk_write,
        });
    }

    /// Plans `pending` on top of the newest commit in flight, as if all of them succeed.
    pub fn push_stacked(&mut self, pending: Vec<AppendRequest>) {
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
        let spills = self.w.spills.lock().clone();
        let plan = Plan::build(
            &projected,
            &pending,
            &self.w.core.node.random,
            self.w.core.node.clock.now_ms(),
            &failed,
            &spills,
        );
        let chunk_write = spawn_writes(&self.w, &plan);
        self.stages.push_back(Stage {
            requests: pending,
            plan,
            chunk_write,
        });
    }

    /// Starts the head's manifest write (after its chunk is durable), unless it is
    /// already under way.
    pub fn start_head(&mut self) {
        if self.head_task.is_some() {
            return;
        }
        let Some(head) = self.stages.front_mut() else {
            return;
        };
        let chunk_write = head.chunk_write.take();
        let core = self.w.core.clone();
        let etag = self.base.etag.clone();
        let manifest = head
            .plan
            .chunk
            .is_some()
            .then(|| head.plan.manifest.encode_for_store());
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
            if manifest.is_some()
                && let Err(e) = within_reference_window(oldest_write)
            {
                // Settled like a failed chunk write: planned again, under fresh keys.
                return HeadResult {
                    chunk: Err(e),
                    manifest: None,
                };
            }
            let manifest = match manifest {
                Some(bytes) => Some(core.write_manifest(bytes, &etag).await),
                None => None,
            };
            HeadResult {
                chunk: Ok(()),
                manifest,
            }
        }));
    }

    pub async fn head_finished(&mut self) -> HeadResult {
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
    pub async fn settle_head(&mut self, result: HeadResult) {
        let Stage { requests, plan, .. } = self.stages.pop_front().expect("a head");
        let w = self.w.clone();
        let core = &w.core;
        match (plan.chunk.clone(), result) {
            // Planned on top of commits that all landed: its refusals are current.
            (None, _) => reply(core, requests, plan.outcomes, self.base.tail()),
            (
                Some(_),
                HeadResult {
                    chunk: Ok(()),
                    manifest: Some(Ok(PutOutcome::Written(etag))),
                },
            ) => match land(&w, &self.base, plan, etag, requests).await {
                Some(state) => self.base = state,
                None => self.fall_back().await,
            },
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
                                core.node.metrics.lost_race();
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
                commit(&w, requests, attempts).await;
                self.fall_back().await;
            }
        }
    }

    /// Settles every remaining commit through the retrying path, in order, and starts
    /// again from the latest state.
    async fn fall_back(&mut self) {
        while let Some(stage) = self.stages.pop_front() {
            commit(&self.w, stage.requests, Vec::new()).await;
        }
        self.base = self.w.core.current();
    }
}

/// Starts writing the objects `plan` needs before its manifest, if any.
fn spawn_writes(w: &Writer, plan: &Plan) -> Option<JoinHandle<EngineResult<()>>> {
    if plan.chunk.is_none() || plan.writes.is_empty() {
        return None;
    }
    let w = w.clone();
    let writes = plan.writes.clone();
    Some(tokio::spawn(
        async move { write_objects(&w, &writes).await },
    ))
}
