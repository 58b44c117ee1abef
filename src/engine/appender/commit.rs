//! Settling commits: landing one whose manifest write succeeded, and the retrying path
//! for one that lost a race or whose outcome is unknown.
//!
//! On a precondition failure another writer got there first: re-read the manifest,
//! re-check every request's conditions against it, re-number, and retry. On an ambiguous
//! failure (timeout, lost response) the write may have landed: re-read and look for one of
//! this commit's attempts in the manifest before trying again, so an append is never
//! applied twice. Conditions that fail are only reported against a manifest read fresh for
//! the purpose, so a 412 never reflects stale state.

use std::{sync::Arc, time::Duration};

use tracing::{debug, warn};

use super::{
    Ack, AppendRequest, Writer,
    plan::{Outcome, Plan, within_reference_window},
    spill::{spill_inline, write_objects},
};
use crate::{
    engine::{
        chunk::Chunk,
        error::{EngineError, EngineResult, Position},
        handle::{StorageClass, StreamCore, StreamState},
        manifest::{ChunkRef, IndexSegment, Manifest},
        retry::Backoff,
    },
    storage::{ETag, PutOutcome},
};

/// How long a commit keeps retrying after precondition failures (other nodes' commits)
/// before giving up with the retryable `transaction_conflict`; below the SDK's 5 s
/// request timeout, so the client sees the conflict rather than a timeout.
const CONFLICT_BUDGET: Duration = Duration::from_secs(3);
/// The pause between tries of a commit that lost a race or could not be written.
const COMMIT_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(2),
    cap: Duration::from_millis(100),
};
/// Attempts to write (or resolve) a commit through storage errors.
const MAX_STORAGE_ATTEMPTS: usize = 6;
/// The pause between reads of the manifest that failed.
const STORAGE_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(20),
    cap: Duration::from_secs(1),
};

/// A written-or-maybe-written attempt of the current commit.
pub(super) struct Attempt {
    pub chunk_ref: ChunkRef,
    pub outcomes: Vec<Outcome>,
    pub chunk: Arc<Chunk>,
    pub segment: Option<(String, Arc<IndexSegment>)>,
}

/// Lands a commit whose manifest write (over `base`) succeeded as `etag`: makes what it
/// wrote readable from memory, publishes the new state, starts writing its inline chunks
/// out if due, and acks `requests`. Both the pipelined path and the retrying path land
/// commits here. `None` if the written manifest does not make a state (then `requests`
/// have failed).
pub(super) async fn land(
    w: &Writer,
    base: &StreamState,
    plan: Plan,
    etag: ETag,
    requests: Vec<AppendRequest>,
) -> Option<Arc<StreamState>> {
    let core = &w.core;
    let (chunk_ref, chunk) = plan.chunk.as_ref().expect("a landed commit wrote a chunk");
    committed(core, (chunk_ref, chunk), plan.segment.clone()).await;
    let known = base.known_inline().chain([(chunk_ref, chunk)]);
    let state = match StreamState::reusing(plan.manifest, etag, known) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            fail_all(requests, e);
            return None;
        }
    };
    spill_inline(w, &state);
    core.publish(state.clone());
    reply(core, requests, plan.outcomes, state.tail());
    Some(state)
}

/// Answers `pending` with their `outcomes`, observing the latency of every ack.
pub(super) fn reply(
    core: &StreamCore,
    pending: Vec<AppendRequest>,
    outcomes: Vec<Outcome>,
    tail: Position,
) {
    let metrics = &core.node.metrics;
    let acks = match core.current().storage_class() {
        StorageClass::Standard => &metrics.ack_standard,
        StorageClass::Express => &metrics.ack_express,
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

pub(super) fn fail_all(pending: Vec<AppendRequest>, error: EngineError) {
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

/// Re-reads the manifest after a failed or unknown write, with retries.
async fn reload(core: &StreamCore) -> EngineResult<Arc<StreamState>> {
    let mut last_error = None;
    for attempt in 0..MAX_STORAGE_ATTEMPTS {
        match core.refresh().await {
            Ok(state) => return Ok(state),
            Err(EngineError::Storage(e)) => {
                last_error = Some(EngineError::Storage(e));
                STORAGE_BACKOFF.pause(attempt + 1, &core.node.random).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.expect("at least one attempt"))
}

/// The retrying path: commits `pending` one attempt after another until one lands, it is
/// clear that none will, or the budget is spent. `attempts` made earlier (whose outcome is
/// unknown) are looked for first.
pub(super) async fn commit(
    w: &Writer,
    mut pending: Vec<AppendRequest>,
    mut attempts: Vec<Attempt>,
) {
    let core = &w.core;
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
        let spills = w.spills.lock().clone();
        let plan = Plan::build(
            &state,
            &pending,
            &core.node.random,
            core.node.clock.now_ms(),
            &[],
            &spills,
        );
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

        let written = write_objects(w, &plan.writes)
            .await
            .and_then(|()| within_reference_window(plan.oldest_write));
        if let Err(e) = written {
            storage_failures += 1;
            warn!(stream = %core.name, error = %e, "writing chunk failed");
            if storage_failures >= MAX_STORAGE_ATTEMPTS {
                return fail_all(pending, e);
            }
            STORAGE_BACKOFF
                .pause(storage_failures + 1, &core.node.random)
                .await;
            continue;
        }

        attempts.push(Attempt {
            chunk_ref,
            outcomes: plan.outcomes.clone(),
            chunk,
            segment: plan.segment.clone(),
        });
        match core
            .write_manifest(plan.manifest.encode_for_store(), &state.etag)
            .await
        {
            Ok(PutOutcome::Written(etag)) => {
                land(w, &state, plan, etag, pending).await;
                return;
            }
            Ok(PutOutcome::PreconditionFailed) => {
                core.node.metrics.lost_race();
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
        COMMIT_BACKOFF
            .pause(conflicts + storage_failures + 1, &core.node.random)
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

/// Takes note of a commit that landed (or, after an unknown outcome, turned out to have):
/// counts it, and makes what it wrote readable from memory: its chunk, and the index
/// segment it folded, which a catch-up read needs before any of that segment's chunks.
async fn committed(
    core: &StreamCore,
    (chunk_ref, chunk): (&ChunkRef, &Arc<Chunk>),
    segment: Option<(String, Arc<IndexSegment>)>,
) {
    core.node.metrics.commit_bytes.observe(chunk_ref.size);
    core.node
        .cache
        .insert_chunk(chunk_ref.key(&core.id), chunk.clone())
        .await;
    if let Some((key, segment)) = segment {
        core.node.cache.insert_segment(key, segment).await;
    }
}
