//! Planning a commit: which queued requests apply, their seq_nums, timestamps and entry
//! ids, the chunk they make, where it goes (inline in the manifest or its own object) and
//! the next manifest, all worked out against one manifest version without I/O.

use std::sync::Arc;

use bytes::Bytes;
use s2_common::{
    config::{TimestampingConfig, TimestampingMode},
    encryption::EncryptionAlgorithm,
};
use tokio::time::Instant;

use super::{AppendRequest, INLINE_MAX_BYTES, SessionGate, spill::Spill};
use crate::engine::{
    AppendInput,
    chunk::{Chunk, ChunkBuilder},
    crypt::AES_GCM_MAX_SEQ_NUM,
    entries::{self, EntryId, EntryState},
    error::{ConditionFailed, EngineError, EngineResult, Position},
    handle::StreamState,
    manifest::{ChunkRef, IndexSegment, MAX_INLINE_CHUNKS, MAX_INLINE_TOTAL_BYTES, Manifest},
    random::Random,
    reach::REFERENCE_WINDOW,
    record::Command,
};

/// What became of one request in a planned commit.
#[derive(Debug, Clone)]
pub(super) enum Outcome {
    Applied { start: Position, end: Position },
    Rejected(EngineError),
}

/// A commit worked out against one manifest version.
pub(super) struct Plan {
    pub manifest: Manifest,
    pub chunk: Option<(ChunkRef, Arc<Chunk>)>,
    /// Objects that must be durable before the manifest is written: the chunk (unless it
    /// goes inline), a folded index segment, and packs of inline chunks that must leave
    /// the manifest (which this node is usually writing out already; see `spill.rs`).
    pub writes: Vec<(String, Bytes)>,
    /// The index segment folded out of the manifest, if any, under its key.
    pub segment: Option<(String, Arc<IndexSegment>)>,
    pub outcomes: Vec<Outcome>,
    /// Sessions (by [`SessionGate`] address) with a request refused in this plan; a plan
    /// stacked on this one must apply none of their later requests.
    pub failed_sessions: Vec<usize>,
    /// When the oldest object the manifest references for the first time started being
    /// written: the plan's own writes start after it was made, a pack taken in started
    /// when its spill did. See [`within_reference_window`].
    pub oldest_write: Instant,
}

/// Whether a manifest write whose newly referenced objects started being written at
/// `oldest_write` may still be issued: within [`REFERENCE_WINDOW`], which the orphan
/// sweep relies on (`engine/reach.rs`).
pub(super) fn within_reference_window(oldest_write: Instant) -> EngineResult<()> {
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

/// The records of one commit as they are numbered, and what they change.
struct Numbering {
    chunk: ChunkBuilder,
    last_ts: u64,
    fencing_token: String,
    trim_point: u64,
    entries: EntryState,
    metered: u64,
}

impl Numbering {
    fn new(manifest: &Manifest, pending: &[AppendRequest]) -> Self {
        let capacity: usize = pending
            .iter()
            .map(|r| r.input.batch.payload_len() + r.input.batch.len() * 24)
            .sum();
        Self {
            chunk: ChunkBuilder::new(manifest.next_seq, capacity),
            last_ts: manifest.last_timestamp,
            fencing_token: manifest.fencing_token.clone(),
            trim_point: manifest.trim_point,
            entries: manifest.entry_state(),
            metered: 0,
        }
    }

    /// Why `input` may not apply after the records numbered so far, if it may not.
    fn refusal(&self, input: &AppendInput, ts_config: TimestampingConfig) -> Option<EngineError> {
        if let Some(token) = &input.fencing_token
            && *token != self.fencing_token
        {
            return Some(EngineError::ConditionFailed(
                ConditionFailed::FencingTokenMismatch(self.fencing_token.clone()),
            ));
        }
        if let Some(expected) = input.match_seq_num
            && expected != self.chunk.next_seq()
        {
            return Some(EngineError::ConditionFailed(
                ConditionFailed::SeqNumMismatch(self.chunk.next_seq()),
            ));
        }
        if input.batch.cipher() == Some(EncryptionAlgorithm::Aes256Gcm) {
            // Random 96-bit nonces keep one AES-GCM key safe for 2^32 records only.
            let first = self.chunk.next_seq();
            let over = input.batch.records().iter().enumerate().find_map(|(i, r)| {
                let seq = first + i as u64;
                (r.command.is_none() && seq > AES_GCM_MAX_SEQ_NUM).then_some(seq)
            });
            if let Some(seq) = over {
                return Some(EngineError::Invalid(format!(
                    "max assignable sequence number is {AES_GCM_MAX_SEQ_NUM}; attempted {seq}"
                )));
            }
        }
        if ts_config.mode == TimestampingMode::ClientRequire
            && input.batch.records().iter().any(|r| r.timestamp.is_none())
        {
            return Some(EngineError::Invalid(
                "record timestamp is required by the stream's timestamping mode".into(),
            ));
        }
        None
    }

    /// Numbers `req`'s records after the ones so far, or refuses it if one of its entry
    /// ids is not above the last.
    fn apply(&mut self, req: &AppendRequest, ts_config: TimestampingConfig) -> Outcome {
        let input = &req.input;
        let Some(stamped) = stamp(
            input,
            ts_config,
            req.arrival_ms,
            self.last_ts,
            self.chunk.next_seq(),
            &self.entries,
        ) else {
            return Outcome::Rejected(EngineError::Invalid(format!(
                "an entry id is not above the stream's last id ({})",
                self.entries.last_id()
            )));
        };
        let mut start = None;
        for ((meta, fields), (ts, id)) in input.batch.encoded_records().zip(stamped) {
            self.last_ts = ts;
            let seq = self.chunk.next_seq();
            start.get_or_insert(Position {
                seq_num: seq,
                timestamp: ts,
            });
            match &meta.command {
                Some(Command::Fence(token)) => self.fencing_token.clone_from(token),
                Some(Command::Trim(point)) => {
                    self.trim_point = self.trim_point.max((*point).min(seq + 1));
                }
                None => {}
            }
            match id {
                Some(id) => self.entries.set_last_id(id),
                None => self.entries.command_records += 1,
            }
            self.chunk.push(ts, meta.metered as usize, fields);
        }
        self.metered += input.batch.metered_bytes() as u64;
        Outcome::Applied {
            start: start.expect("batches are non-empty"),
            end: Position {
                seq_num: self.chunk.next_seq(),
                timestamp: self.last_ts,
            },
        }
    }

    /// The chunk of the records numbered, with its reference, unless there are none.
    fn finish(self, commit: u64, now_ms: u64) -> Option<(ChunkRef, Arc<Chunk>, Settled)> {
        if self.chunk.is_empty() {
            return None;
        }
        let chunk = Arc::new(self.chunk.finish());
        let r = ChunkRef {
            first_seq: chunk.first_seq(),
            count: chunk.len() as u32,
            first_timestamp: chunk.record(0).timestamp,
            last_timestamp: self.last_ts,
            metered_bytes: self.metered,
            size: chunk.bytes().len() as u64,
            commit,
            committed_at_ms: now_ms,
            inline: chunk.bytes().len() <= INLINE_MAX_BYTES,
            pack: None,
        };
        let settled = Settled {
            fencing_token: self.fencing_token,
            trim_point: self.trim_point,
            entries: self.entries,
        };
        Some((r, chunk, settled))
    }
}

/// What the commit's records leave in the manifest besides the chunk.
struct Settled {
    fencing_token: String,
    trim_point: u64,
    entries: EntryState,
}

impl Plan {
    /// Plans `pending` in order against `state`, drawing the commit's id (and a pack's)
    /// from `ids`. `prior_failed` are sessions refused by a plan this one is stacked on;
    /// `spills` are this appender's packs of inline chunks.
    pub fn build(
        state: &StreamState,
        pending: &[AppendRequest],
        ids: &Random,
        now_ms: u64,
        prior_failed: &[usize],
        spills: &[Spill],
    ) -> Self {
        let mut manifest = state.manifest.next_version();
        let mut oldest_write = Instant::now();
        // Only packs whose write started recently: an older one may be gone to the sweep.
        for spill in spills.iter().filter(|s| s.stored() && s.fresh()) {
            if manifest.evict_inline(&spill.pack) > 0 {
                oldest_write = oldest_write.min(spill.started);
            }
        }
        let ts_config = state.config.timestamping;
        let mut numbering = Numbering::new(&manifest, pending);
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
            let outcome = match numbering.refusal(&req.input, ts_config) {
                Some(e) => Outcome::Rejected(e),
                None => numbering.apply(req, ts_config),
            };
            if let (Outcome::Rejected(_), Some(g)) = (&outcome, gate) {
                failed_sessions.push(g);
            }
            outcomes.push(outcome);
        }

        let mut writes = Vec::new();
        let mut segment = None;
        let commit = ids.u64();
        let chunk = numbering.finish(commit, now_ms).map(|(r, chunk, settled)| {
            writes.extend(place_chunk(
                &mut manifest,
                (&r, &chunk),
                spills,
                ids,
                &mut oldest_write,
            ));
            manifest.fencing_token = settled.fencing_token;
            manifest.trim_point = settled.trim_point;
            manifest.entries = Some(settled.entries);
            manifest.drop_unreadable(state.expire_before(now_ms));
            let first_readable = manifest.first_readable();
            if let Some(e) = manifest.entries.as_mut() {
                e.prune(first_readable);
            }
            if let Some((seg_ref, seg)) = manifest.fold_if_needed(commit) {
                let key = seg_ref.key(&manifest.stream_id);
                writes.push((key.clone(), seg.encode_object()));
                segment = Some((key, Arc::new(seg)));
            }
            (r, chunk)
        });
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

    pub fn has_rejections(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Rejected(e) if !matches!(e, EngineError::SessionAborted)))
    }
}

/// Adds the chunk to `manifest`: inline if it is small and fits the manifest's inline
/// bounds, else as its own object. Inline chunks must stay the newest, within bounds, so
/// a chunk that does not fit takes the ones carried so far out first, in the packs being
/// written for them (if still fresh) or a new one. Returns the objects to write before the
/// manifest; a pack taken in moves `oldest_write` back to when its write started.
fn place_chunk(
    manifest: &mut Manifest,
    (r, chunk): (&ChunkRef, &Chunk),
    spills: &[Spill],
    ids: &Random,
    oldest_write: &mut Instant,
) -> Vec<(String, Bytes)> {
    let mut writes = Vec::new();
    let fits = r.inline
        && manifest.inline_refs().len() < MAX_INLINE_CHUNKS
        && manifest.inline_bytes() + chunk.bytes().len() <= MAX_INLINE_TOTAL_BYTES;
    if !fits {
        for spill in spills.iter().filter(|s| s.fresh()) {
            if manifest.evict_inline(&spill.pack) > 0 {
                writes.push((spill.pack.key.clone(), spill.pack.bytes.clone()));
                *oldest_write = (*oldest_write).min(spill.started);
            }
        }
        if let Some(pack) = manifest.pack_inline(0, ids.u64()) {
            manifest.evict_inline(&pack);
            writes.push((pack.key, pack.bytes));
        }
    }
    if r.inline {
        manifest.push_inline_chunk(r.clone(), chunk.bytes().clone());
    } else {
        writes.push((r.key(&manifest.stream_id), chunk.bytes().clone()));
        manifest.push_chunk(r.clone());
    }
    writes
}

/// Each record's timestamp and entry id (`None` for a command record), in order, or
/// `None` if a carried id is not above the id before it (`engine/entries.rs`).
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
