//! Reading: catch-up from chunks, then following the tail.
//!
//! A [`ReadSession`] is pulled by its consumer (an HTTP body), so a slow reader simply
//! stops pulling and holds nothing but its position: there is no buffer to grow. Batches
//! are slices of cached chunks, so serving protobuf copies record bytes once at most.
//! Followers wake on this node's commits through the stream's watch channel, which also
//! carries states peers hand over ([`super::notices`]), and, when other nodes may write,
//! re-read the manifest at most once per poll interval per stream.

use std::{ops::Range, sync::Arc, time::Duration};

use bytes::Bytes;
use s2_common::read_extent::{EvaluatedReadLimit, ReadLimit, ReadUntil};
use tokio::{sync::watch, time::Instant};

use super::{
    chunk::{Chunk, ChunkRecord},
    clock::sleep_until_opt,
    crypt::{self, Encryption},
    error::{EngineError, EngineResult, Position},
    handle::{StreamCore, StreamState, TailFollower},
    manifest::{ChunkRef, Located},
};

/// How far ahead of a reader that reads from storage chunks are fetched: up to this many
/// chunks, or bytes. Small chunks are often members of one pack, fetched by one read.
const READ_AHEAD_CHUNKS: usize = 64;
const READ_AHEAD_BYTES: u64 = 8 * 1024 * 1024;

/// The references to fetch ahead, from the ones that follow a chunk being fetched.
fn read_ahead<'a>(following: impl Iterator<Item = &'a ChunkRef>) -> Vec<ChunkRef> {
    let mut bytes = 0;
    following
        .filter(|r| !r.inline)
        .take(READ_AHEAD_CHUNKS)
        .take_while(|r| {
            bytes += r.size;
            bytes <= READ_AHEAD_BYTES
        })
        .cloned()
        .collect()
}

/// Records per batch and metered bytes per batch, at most.
pub const MAX_READ_BATCH_RECORDS: usize = 1000;
pub const MAX_READ_BATCH_BYTES: usize = 1024 * 1024;

/// Consecutive records of one chunk.
#[derive(Debug, Clone)]
pub struct ChunkSlice {
    chunk: Arc<Chunk>,
    range: Range<usize>,
}

impl ChunkSlice {
    /// Records `range` of `chunk`; `range` must lie within the chunk.
    pub fn new(chunk: Arc<Chunk>, range: Range<usize>) -> Self {
        assert!(range.end <= chunk.len(), "slice beyond the chunk");
        Self { chunk, range }
    }

    pub fn records(&self) -> impl Iterator<Item = ChunkRecord<'_>> {
        self.range.clone().map(|i| self.chunk.record(i))
    }

    /// The records as encoded `ReadBatch.records` entries, borrowed from the chunk.
    pub fn encoded_slice(&self) -> &[u8] {
        self.chunk.entries(self.range.clone())
    }

    /// The records as encoded `ReadBatch.records` entries.
    pub fn encoded(&self) -> Bytes {
        self.chunk.entries_bytes(self.range.clone())
    }

    pub fn encoded_len(&self) -> usize {
        self.chunk.entries_len(self.range.clone())
    }
}

/// Records in seq_num order, at most 1000 and 1 MiB metered.
#[derive(Debug, Clone, Default)]
pub struct ReadBatch {
    pub slices: Vec<ChunkSlice>,
    pub count: usize,
    pub metered_bytes: usize,
    /// The tail, when the batch reaches it.
    pub tail: Option<Position>,
}

impl ReadBatch {
    pub fn records(&self) -> impl Iterator<Item = ChunkRecord<'_>> {
        self.slices.iter().flat_map(|s| s.records())
    }

    pub fn last_seq_num(&self) -> Option<u64> {
        self.slices
            .last()
            .map(|s| s.chunk.first_seq() + s.range.end as u64 - 1)
    }

    /// The batch with an encrypted stream's records opened with the request's key, as
    /// slices of plaintext chunks built in memory; a plain stream's as it is.
    fn opened(self, encryption: &Encryption) -> EngineResult<ReadBatch> {
        if encryption.cipher().is_none() {
            return Ok(self);
        }
        let mut slices = Vec::with_capacity(self.slices.len());
        for slice in &self.slices {
            if let Some(chunk) = encryption.open_records(slice.records(), slice.encoded_len())? {
                let len = chunk.len();
                slices.push(ChunkSlice::new(Arc::new(chunk), 0..len));
            }
        }
        Ok(ReadBatch { slices, ..self })
    }

    fn append(&mut self, other: ReadBatch) {
        self.slices.extend(other.slices);
        self.count += other.count;
        self.metered_bytes += other.metered_bytes;
        self.tail = other.tail;
    }
}

#[derive(Debug, Clone)]
pub enum ReadOutput {
    Batch(ReadBatch),
    /// Nothing new; the session is following and this is the tail.
    Heartbeat(Position),
}

/// Where a session starts and when it ends, after defaults and caps were applied.
#[derive(Debug, Clone, Copy)]
pub struct ReadPlan {
    pub start_seq: u64,
    pub limit: ReadLimit,
    pub until: ReadUntil,
    pub wait: Option<Duration>,
}

impl ReadPlan {
    /// Whether the session may wait at the tail for more records.
    pub fn may_follow(&self) -> bool {
        (self.limit.is_unbounded() && self.until.is_unbounded())
            || self.wait.is_some_and(|d| !d.is_zero())
    }
}

/// A random gap in `range`, so that many idle sessions do not beat in step.
fn heartbeat_gap(core: &StreamCore) -> Duration {
    let range = &core.node.heartbeat;
    if range.is_empty() {
        return range.start;
    }
    core.node.random.in_range(range.clone())
}

pub struct ReadSession {
    core: Arc<StreamCore>,
    rx: watch::Receiver<Arc<StreamState>>,
    next_seq: u64,
    limit: EvaluatedReadLimit,
    until: ReadUntil,
    wait: Option<Duration>,
    may_follow: bool,
    wait_deadline: Option<Instant>,
    /// Set once the session reached the tail: from then on it counts as following.
    following: Option<TailFollower>,
    next_heartbeat: Instant,
    /// When a following session next looks for other nodes' commits; a heartbeat in
    /// between does not put it off.
    next_poll: Option<Instant>,
    done: bool,
    /// Opens an encrypted stream's records ([`Self::decrypting`]); without it such a
    /// session yields an error instead of its records.
    encryption: Option<Encryption>,
    /// Whether the session counts as a unary read or a streaming one in usage; `None`
    /// for sessions no client asked for.
    metered_as_unary: Option<bool>,
    /// The last minute (epoch seconds) the session was counted as an operation in.
    metered_minute: Option<u32>,
}

impl ReadSession {
    pub fn new(core: Arc<StreamCore>, plan: ReadPlan) -> Self {
        let rx = core.subscribe();
        Self {
            core,
            rx,
            next_seq: plan.start_seq,
            limit: EvaluatedReadLimit::Remaining(plan.limit),
            until: plan.until,
            wait: plan.wait,
            may_follow: plan.may_follow(),
            wait_deadline: None,
            following: None,
            next_heartbeat: Instant::now(),
            next_poll: None,
            done: false,
            encryption: None,
            metered_as_unary: None,
            metered_minute: None,
        }
    }

    /// The session, yielding records opened with `encryption` (the request's key).
    pub fn decrypting(mut self, encryption: Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }

    /// An encrypted stream's batch opened; any other output as it is.
    fn opened(&self, out: ReadOutput) -> EngineResult<ReadOutput> {
        match (out, self.core.cipher) {
            (ReadOutput::Batch(batch), Some(cipher)) => match &self.encryption {
                Some(e) => Ok(ReadOutput::Batch(batch.opened(e)?)),
                None => Err(crypt::missing_key(cipher)),
            },
            (out, _) => Ok(out),
        }
    }

    /// Counts the session in usage: one read operation if `unary`, else one per minute
    /// in which it is asked for output.
    pub fn metered(mut self, unary: bool) -> Self {
        self.metered_as_unary = Some(unary);
        self
    }

    fn meter(&mut self, out: Option<&ReadOutput>) {
        let Some(unary) = self.metered_as_unary else {
            return;
        };
        let now = self.core.node.clock.now_ms();
        let minute = super::usage::minute_of(now);
        let begins = match self.metered_minute {
            None => true,
            Some(m) => !unary && m != minute,
        };
        if begins {
            self.metered_minute = Some(minute);
            self.core.usage.read_op(now, unary);
        }
        if let Some(ReadOutput::Batch(b)) = out {
            self.core.usage.read_bytes(now, b.metered_bytes as u64);
        }
    }

    /// A session that yields nothing (a read whose limit is already exhausted).
    pub fn empty(core: Arc<StreamCore>) -> Self {
        let mut s = Self::new(
            core,
            ReadPlan {
                start_seq: 0,
                limit: ReadLimit::Count(0),
                until: ReadUntil::Unbounded,
                wait: None,
            },
        );
        s.done = true;
        s
    }

    /// The next output, or `None` when the session has ended normally.
    pub async fn next(&mut self) -> Option<EngineResult<ReadOutput>> {
        let advanced = self.advance().await;
        self.meter(advanced.as_ref().ok().and_then(Option::as_ref));
        match advanced.and_then(|out| out.map(|o| self.opened(o)).transpose()) {
            Ok(Some(out)) => Some(Ok(out)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    async fn advance(&mut self) -> EngineResult<Option<ReadOutput>> {
        let mut retried_missing = false;
        loop {
            if self.done {
                return Ok(None);
            }
            let EvaluatedReadLimit::Remaining(limit) = self.limit else {
                return Ok(None);
            };
            let state = self.rx.borrow_and_update().clone();
            if state.manifest.is_deleted() {
                return Err(EngineError::StreamDeletionPending(self.core.name.clone()));
            }
            let tail = state.tail();
            let start = self.next_seq.max(state.manifest.first_readable());
            if start < tail.seq_num {
                let batch = match collect(&self.core, &state, start, limit, self.until).await {
                    Ok(batch) => batch,
                    Err(EngineError::ObjectMissing(_)) if !retried_missing => {
                        // Trimmed or expired since this node last read the manifest: read
                        // it again and resume at the first record that still exists.
                        retried_missing = true;
                        self.core.refresh().await?;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if batch.count == 0 {
                    // `until` or the limit stops the session before any record.
                    return Ok(None);
                }
                self.next_seq = batch.last_seq_num().expect("non-empty") + 1;
                self.limit = limit.remaining(batch.count, batch.metered_bytes);
                self.wait_deadline = self.wait.map(|w| Instant::now() + w);
                self.next_heartbeat = Instant::now() + heartbeat_gap(&self.core);
                return Ok(Some(ReadOutput::Batch(batch)));
            }
            self.next_seq = self.next_seq.max(tail.seq_num);
            if !self.may_follow {
                return Ok(None);
            }
            if self.following.is_none() {
                self.following = Some(self.core.tail_follower());
                if self.wait_deadline.is_none() {
                    self.wait_deadline = self.wait.map(|w| Instant::now() + w);
                }
                if self.wait_deadline.is_some_and(|d| d <= Instant::now()) {
                    return Ok(None);
                }
                self.next_heartbeat = Instant::now() + heartbeat_gap(&self.core);
                return Ok(Some(ReadOutput::Heartbeat(tail)));
            }
            let poll = self.core.poll_interval();
            // A shorter interval (others began committing) brings the poll forward.
            self.next_poll = match (self.next_poll, poll) {
                (_, None) => None,
                (Some(due), Some(p)) => Some(due.min(Instant::now() + p)),
                (None, Some(p)) => Some(Instant::now() + p),
            };
            let wait_deadline = self.wait_deadline;
            tokio::select! {
                biased;
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        return Err(EngineError::Draining);
                    }
                    self.next_poll = None;
                }
                _ = tokio::time::sleep_until(self.next_heartbeat) => {
                    self.next_heartbeat = Instant::now() + heartbeat_gap(&self.core);
                    return Ok(Some(ReadOutput::Heartbeat(tail)));
                }
                _ = sleep_until_opt(wait_deadline) => return Ok(None),
                _ = sleep_until_opt(self.next_poll) => {
                    self.next_poll = None;
                    self.core.refresh_if_older(poll.unwrap_or_default()).await?;
                }
            }
        }
    }
}

/// The chunk holding the first record at or after `seq`, which must be below the tail.
/// A cached chunk costs one lookup; the read-ahead is worked out only on a miss.
pub async fn chunk_at(
    core: &StreamCore,
    state: &StreamState,
    seq: u64,
) -> EngineResult<Arc<Chunk>> {
    let (chunk_ref, segment) = match state.manifest.locate_seq(seq) {
        Located::Chunk(c) if c.inline => {
            core.node.metrics.chunk_read(true);
            return state.inline_chunk(c);
        }
        Located::Chunk(c) => (c.clone(), None),
        Located::Segment(s) => {
            let seg = core.node.cache.segment(&core.id, s).await?;
            let i = seg.chunks.partition_point(|c| c.end_seq() <= seq);
            let chunk_ref = seg
                .chunks
                .get(i)
                .cloned()
                .ok_or_else(|| EngineError::Corrupt(format!("segment lacks seq {seq}")))?;
            (chunk_ref, Some((seg, i)))
        }
        Located::Tail => {
            return Err(EngineError::Corrupt(format!(
                "no chunk holds seq {seq} below tail {}",
                state.manifest.next_seq
            )));
        }
    };
    if let Some(chunk) = core.node.cache.cached_chunk(&core.id, &chunk_ref).await {
        core.node.metrics.chunk_read(true);
        return Ok(chunk);
    }
    core.node.metrics.chunk_read(false);
    // Reading from storage: fetch what comes next meanwhile.
    let manifest_chunks = &state.manifest.chunks;
    let following = match &segment {
        Some((seg, i)) => read_ahead(seg.chunks[i + 1..].iter().chain(manifest_chunks)),
        None => {
            let i = manifest_chunks.partition_point(|r| r.first_seq <= chunk_ref.first_seq);
            read_ahead(manifest_chunks[i..].iter())
        }
    };
    core.node.cache.prefetch(&core.id, following);
    core.node.cache.chunk(&core.id, &chunk_ref).await
}

/// The seq_num of the first record with timestamp ≥ `ts`, or the tail if none.
pub async fn seq_for_timestamp(
    core: &StreamCore,
    state: &StreamState,
    ts: u64,
) -> EngineResult<u64> {
    let chunk_ref: ChunkRef = match state.manifest.locate_timestamp(ts) {
        // Carried in the manifest itself (see `ChunkRef::inline`): it may have no object
        // yet, so it is never fetched.
        Located::Chunk(c) if c.inline => {
            let chunk = state.inline_chunk(c)?;
            return Ok(chunk.first_seq() + chunk.index_of_timestamp(ts) as u64);
        }
        Located::Chunk(c) => c.clone(),
        Located::Segment(s) => {
            let seg = core.node.cache.segment(&core.id, s).await?;
            let i = seg.chunks.partition_point(|c| c.last_timestamp < ts);
            match seg.chunks.get(i) {
                Some(c) => c.clone(),
                None => return Ok(s.end_seq),
            }
        }
        Located::Tail => return Ok(state.manifest.next_seq),
    };
    let chunk = core.node.cache.chunk(&core.id, &chunk_ref).await?;
    let i = chunk.index_of_timestamp(ts);
    Ok(chunk.first_seq() + i as u64)
}

/// Up to one batch of records from `start`, within `limit` and before `until`.
async fn collect(
    core: &StreamCore,
    state: &StreamState,
    start: u64,
    limit: ReadLimit,
    until: ReadUntil,
) -> EngineResult<ReadBatch> {
    let tail = state.tail();
    let mut batch = ReadBatch::default();
    let mut seq = start;
    'chunks: while seq < tail.seq_num {
        let chunk = chunk_at(core, state, seq).await?;
        let begin = chunk.index_of_seq(seq);
        let mut i = begin;
        let mut stop = false;
        while i < chunk.len() {
            let r = chunk.record(i);
            if until.deny(r.timestamp)
                || limit.deny(batch.count + 1, batch.metered_bytes + r.metered)
                || batch.count + 1 > MAX_READ_BATCH_RECORDS
                || batch.metered_bytes + r.metered > MAX_READ_BATCH_BYTES
            {
                stop = true;
                break;
            }
            batch.count += 1;
            batch.metered_bytes += r.metered;
            i += 1;
        }
        if i > begin {
            batch.slices.push(ChunkSlice::new(chunk.clone(), begin..i));
        }
        seq = chunk.first_seq() + i as u64;
        if stop {
            break 'chunks;
        }
    }
    if seq >= tail.seq_num {
        batch.tail = Some(tail);
    }
    Ok(batch)
}

/// Gathers a unary read's result from a session: everything available up to the limits,
/// or, when the read may wait, the first records to arrive before the wait ends.
pub async fn read_unary(mut session: ReadSession) -> EngineResult<ReadBatch> {
    let mut acc = ReadBatch::default();
    let mut waiting = false;
    while let Some(out) = session.next().await {
        match out? {
            ReadOutput::Batch(batch) => {
                acc.append(batch);
                if waiting {
                    break;
                }
            }
            ReadOutput::Heartbeat(_) => {
                if acc.count > 0 {
                    break;
                }
                waiting = true;
            }
        }
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use crate::{
        engine::{appender::SPILL_MIN_CHUNKS, maintenance::DEFAULT_GC_GRACE, manifest, testing::*},
        storage::{self, DynStore},
    };

    /// A node reading chunks that were packed together fetches the pack once.
    #[tokio::test]
    async fn packed_chunks_are_fetched_with_one_read() {
        let store = storage::memory();
        let (writer, on_writer) = engine_with_stream(store.clone(), DEFAULT_GC_GRACE).await;
        let n = SPILL_MIN_CHUNKS as u64;
        for i in 0..=n {
            let i: u64 = i;
            writer
                .append(&on_writer, batch(&[&i.to_be_bytes()]), None)
                .await
                .unwrap();
            spills_settled(&on_writer).await;
        }
        let m = on_writer.core.current().manifest.clone();
        assert!(m.chunks[..n as usize].iter().all(|c| c.pack.is_some()));

        let (reader, on_reader, counters) = counted_node(store, two_engines_config()).await;
        let before = counters.snapshot().gets;
        assert_eq!(read_all(&reader, &on_reader).await.len(), n as usize + 1);
        assert_eq!(
            counters.snapshot().gets - before,
            2,
            "the manifest, then the pack"
        );
    }

    /// A node reading a chunk from storage fetches the ones after it meanwhile, so a
    /// catch-up does not wait a round trip per chunk.
    #[tokio::test]
    async fn a_reader_on_a_cold_cache_fetches_the_next_chunks_ahead() {
        let store = storage::memory();
        let (writer, on_writer) = engine_with_stream(store.clone(), DEFAULT_GC_GRACE).await;
        const CHUNKS: u64 = 6;
        let body = vec![7; 300 * 1024]; // too large to travel inside the manifest
        for _ in 0..CHUNKS {
            writer
                .append(&on_writer, batch(&[&body]), None)
                .await
                .unwrap();
        }
        let (_reader, on_reader, counters) = counted_node(store, two_engines_config()).await;
        // Counted in bytes: the catalog's small objects may be read meanwhile.
        let chunk_bytes = (CHUNKS * body.len() as u64)..((CHUNKS + 1) * body.len() as u64);
        let before = counters.snapshot().bytes_read;
        let read = || counters.snapshot().bytes_read - before;

        let state = on_reader.core.current();
        super::chunk_at(&on_reader.core, &state, 0).await.unwrap();

        let fetched_all = async {
            while read() < chunk_bytes.start {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), fetched_all)
            .await
            .expect("the chunks after the first are fetched without being read");
        for seq in 0..CHUNKS {
            super::chunk_at(&on_reader.core, &state, seq).await.unwrap();
        }
        assert!(chunk_bytes.contains(&read()), "each chunk read once");
    }

    /// The node that folds chunk references into an index segment keeps the segment, so a
    /// catch-up read over it starts from memory instead of a round trip per segment.
    #[tokio::test]
    async fn a_catch_up_read_finds_the_written_segments_in_memory() {
        use crate::storage::counting::{CountingStore, StoreCounters};
        let counters = Arc::new(StoreCounters::default());
        let store: DynStore = Arc::new(CountingStore::new(storage::memory(), counters.clone()));
        let (engine, handle) = engine_with_stream(store, DEFAULT_GC_GRACE).await;
        let appends = manifest::MAX_MANIFEST_CHUNKS as u64 + 1;
        for i in 0..appends {
            engine
                .append(&handle, batch(&[&i.to_be_bytes()]), None)
                .await
                .unwrap();
        }
        assert_eq!(handle.core.current().manifest.segments.len(), 1);
        let before = counters.snapshot().gets;
        assert_eq!(read_all(&engine, &handle).await.len(), appends as usize);
        assert_eq!(
            counters.snapshot().gets - before,
            1,
            "only the manifest is read again"
        );
    }
}
