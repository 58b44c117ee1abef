//! The data plane: appends (handed to the stream's appender) and reads.

use std::{sync::Arc, time::Duration};

use s2_common::{
    read_extent::{CountOrBytes, EvaluatedReadLimit, ReadLimit},
    stream::{ReadEnd, ReadFrom, ReadStart},
};
use tokio::sync::oneshot;

use super::{
    Ack, AppendInput, Engine, EngineError, EngineResult, Position, ReadSession, SessionGate,
    StreamHandle,
    appender::{AppendRequest, Appender},
    crypt,
    reader::{self, ReadPlan},
};

impl Engine {
    /// Appends one batch; resolves when it is durable (or refused).
    pub async fn append(
        &self,
        handle: &StreamHandle,
        input: AppendInput,
        session: Option<Arc<SessionGate>>,
    ) -> EngineResult<Ack> {
        self.submit(handle, input, session)
            .await?
            .await
            .map_err(|_| EngineError::Storage("appender stopped before answering".into()))?
    }

    /// Queues one batch and returns where its outcome will arrive; batches submitted in
    /// order are applied in order.
    pub async fn submit(
        &self,
        handle: &StreamHandle,
        input: AppendInput,
        session: Option<Arc<SessionGate>>,
    ) -> EngineResult<oneshot::Receiver<EngineResult<Ack>>> {
        if input.batch.cipher() != handle.core.cipher {
            // Records reach an encrypted stream sealed with its cipher, or not at all.
            return Err(match handle.core.cipher {
                Some(cipher) => crypt::missing_key(cipher),
                None => EngineError::Invalid("sealed records for a plain stream".into()),
            });
        }
        let now_ms = self.clock().now_ms();
        let new_op = session
            .as_ref()
            .is_none_or(|gate| gate.begins_minute(super::usage::minute_of(now_ms)));
        handle.core.usage.appended(
            now_ms,
            handle.core.current().storage_class() == super::handle::StorageClass::Standard,
            new_op,
            input.batch.metered_bytes() as u64,
        );
        let settings = self.inner.config.appender;
        let (reply, rx) = oneshot::channel();
        handle
            .appender(|core| Appender::new(core, settings))
            .send(AppendRequest {
                input,
                arrival_ms: now_ms,
                received: std::time::Instant::now(),
                session,
                reply,
            })
            .await;
        Ok(rx)
    }

    pub async fn check_tail(&self, handle: &StreamHandle) -> EngineResult<Position> {
        Ok(self.retained(handle).await?.1)
    }

    /// The first seq_num still readable (after trims and retention), and the tail.
    pub async fn retained(&self, handle: &StreamHandle) -> EngineResult<(u64, Position)> {
        let state = handle.core.refresh().await?;
        if state.manifest.is_deleted() {
            return Err(EngineError::StreamDeletionPending(handle.core.name.clone()));
        }
        Ok((state.manifest.first_readable(), state.tail()))
    }

    /// Starts a read. `unary` reads are capped at one batch and 60 s of waiting. The
    /// session counts as one read operation when unary, else one per minute it serves.
    /// The read sees every commit acked before it was called, on any node: it starts from
    /// a revalidation of the manifest.
    pub async fn read(
        &self,
        handle: &StreamHandle,
        start: ReadStart,
        end: ReadEnd,
        unary: bool,
    ) -> EngineResult<ReadSession> {
        self.start_read(handle, start, end, unary, true).await
    }

    /// A unary read of what this node already knows of the stream, without revalidating
    /// the manifest: for a caller that revalidated it itself and reads below the tail it
    /// saw then (the Redis surface's snapshots), so that one command costs one
    /// revalidation however many reads it makes.
    pub async fn read_known(
        &self,
        handle: &StreamHandle,
        start: ReadStart,
        end: ReadEnd,
    ) -> EngineResult<ReadSession> {
        self.start_read(handle, start, end, true, false).await
    }

    async fn start_read(
        &self,
        handle: &StreamHandle,
        start: ReadStart,
        mut end: ReadEnd,
        unary: bool,
        revalidate: bool,
    ) -> EngineResult<ReadSession> {
        if unary {
            end.limit = ReadLimit::CountOrBytes(end.limit.into_allowance(CountOrBytes {
                count: reader::MAX_READ_BATCH_RECORDS,
                bytes: reader::MAX_READ_BATCH_BYTES,
            }));
            end.wait = end.wait.map(|w| w.min(Duration::from_secs(60)));
        }
        if let ReadFrom::Timestamp(ts) = start.from
            && end.until.deny(ts)
        {
            return Err(EngineError::Invalid(
                "start `timestamp` exceeds or equal to `until`".into(),
            ));
        }
        let core = handle.core.clone();
        if matches!(end.limit.remaining(0, 0), EvaluatedReadLimit::Exhausted) {
            return Ok(ReadSession::empty(core).metered(unary));
        }
        let state = match revalidate {
            true => core.refresh().await?,
            false => core.current(),
        };
        if state.manifest.is_deleted() {
            return Err(EngineError::StreamDeletionPending(core.name.clone()));
        }
        let tail = state.tail();
        let plan = ReadPlan {
            start_seq: 0,
            limit: end.limit,
            until: end.until,
            wait: end.wait,
        };
        let beyond = match start.from {
            ReadFrom::SeqNum(seq) => seq > tail.seq_num,
            ReadFrom::Timestamp(ts) => ts > tail.timestamp,
            ReadFrom::TailOffset(_) => false,
        };
        let start_seq = if beyond {
            if !start.clamp {
                return Err(EngineError::Unwritten(tail));
            }
            tail.seq_num
        } else {
            match start.from {
                ReadFrom::SeqNum(seq) => seq,
                ReadFrom::TailOffset(k) => tail.seq_num.saturating_sub(k),
                ReadFrom::Timestamp(ts) => reader::seq_for_timestamp(&core, &state, ts).await?,
            }
        };
        let start_seq = start_seq.max(state.manifest.first_readable());
        let plan = ReadPlan { start_seq, ..plan };
        if start_seq >= tail.seq_num && !plan.may_follow() {
            return Err(EngineError::Unwritten(tail));
        }
        Ok(ReadSession::new(core, plan).metered(unary))
    }
}
