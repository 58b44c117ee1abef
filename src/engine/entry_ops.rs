//! What the Redis surface asks of a stream's entries beyond appends and reads: its entry
//! bookkeeping ([`EntryState`]) as of the store, and conditional changes to it (deletions,
//! trims) through the stream's manifest, so every node sees them at once.

use super::{
    Engine, StreamHandle,
    entries::EntryState,
    error::{EngineError, EngineResult, Position},
};

/// A stream's entries as of one manifest.
#[derive(Debug, Clone)]
pub struct EntryView {
    /// The first readable seq_num (after trims and retention).
    pub first_readable: u64,
    pub tail: Position,
    pub state: EntryState,
}

impl EntryView {
    pub fn next_seq(&self) -> u64 {
        self.tail.seq_num
    }
}

/// A change being made to a stream's entries.
pub struct EntryEdit<'a> {
    pub view: &'a EntryView,
    pub state: &'a mut EntryState,
    /// Make records below this seq_num unreadable (never moves backwards, capped at the
    /// tail).
    pub trim_to: Option<u64>,
}

impl Engine {
    /// The stream's entries as the store has them now.
    pub async fn entry_view(&self, handle: &StreamHandle) -> EngineResult<EntryView> {
        let state = handle.core.refresh().await?;
        if state.manifest.is_deleted() {
            return Err(EngineError::StreamDeletionPending(handle.core.name.clone()));
        }
        Ok(EntryView {
            first_readable: state.manifest.first_readable(),
            tail: state.tail(),
            state: state.manifest.entry_state(),
        })
    }

    /// Applies `change` to the latest entries with a conditional write of the manifest,
    /// again on a race. `change` returns `None` when there is nothing to write, and its
    /// result is that of the try that was written (or found nothing to do).
    pub async fn modify_entries<R>(
        &self,
        handle: &StreamHandle,
        mut change: impl FnMut(&mut EntryEdit<'_>) -> EngineResult<Option<R>>,
        unchanged: impl Fn() -> R,
    ) -> EngineResult<R> {
        let mut result = None;
        handle.core.modify_manifest(|m| {
            let view = EntryView {
                first_readable: m.first_readable(),
                tail: Position {
                    seq_num: m.next_seq,
                    timestamp: m.last_timestamp,
                },
                state: m.entry_state(),
            };
            let mut state = view.state.clone();
            let mut edit = EntryEdit {
                view: &view,
                state: &mut state,
                trim_to: None,
            };
            let Some(r) = change(&mut edit)? else {
                result = None;
                return Ok(false);
            };
            if let Some(point) = edit.trim_to {
                m.trim_point = m.trim_point.max(point.min(m.next_seq));
                m.drop_unreadable(None);
            }
            state.prune(m.first_readable());
            let limit = self.inner.config.max_deleted_ranges;
            if state.deleted_range_count() > limit {
                return Err(EngineError::Invalid(format!(
                    "the stream would keep more than {limit} runs of deleted entries (--redis-max-deleted-ranges); trim it first"
                )));
            }
            debug_assert_eq!(state.check(m.first_readable(), m.next_seq), Ok(()));
            m.entries = Some(state);
            result = Some(r);
            Ok(true)
        })
        .await?;
        Ok(result.unwrap_or_else(unchanged))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        engine::{
            entries::EntryId,
            record::{AppendInput, RecordBatchBuilder},
        },
        storage,
    };

    fn entry(id: Option<EntryId>, fields: &[(&[u8], &[u8])]) -> AppendInput {
        let mut b = RecordBatchBuilder::new();
        b.push_entry(id, fields).unwrap();
        AppendInput {
            batch: b.finish().unwrap(),
            match_seq_num: None,
            fencing_token: None,
        }
    }

    fn body(text: &[u8]) -> AppendInput {
        let mut b = RecordBatchBuilder::new();
        b.push(None, std::iter::empty(), text).unwrap();
        AppendInput {
            batch: b.finish().unwrap(),
            match_seq_num: None,
            fencing_token: None,
        }
    }

    #[tokio::test]
    async fn ids_stay_above_the_last_whichever_surface_appends() {
        let (engine, h) =
            crate::engine::testing::engine_with_stream(storage::memory(), Duration::from_secs(1))
                .await;
        let f: &[(&[u8], &[u8])] = &[(b"f", b"v")];

        // An explicit id far in the future: later derived ids go past it.
        let future = EntryId::new(u64::MAX / 2, 1_000);
        engine
            .append(&h, entry(Some(future), f), None)
            .await
            .unwrap();
        let ack = engine.append(&h, body(b"s2"), None).await.unwrap();
        let derived = EntryId::new(ack.start.timestamp, ack.start.seq_num);
        assert_eq!(
            derived,
            EntryId::new(future.ms + 1, 1),
            "raised past the last id"
        );
        let view = engine.entry_view(&h).await.unwrap();
        assert_eq!(view.state.last_id(), derived);

        // A carried id not above the last is refused, and nothing is written.
        let refused = engine.append(&h, entry(Some(future), f), None).await;
        assert!(
            matches!(refused, Err(EngineError::Invalid(_))),
            "{refused:?}"
        );
        assert_eq!(engine.entry_view(&h).await.unwrap().tail.seq_num, 2);

        // Deletions and trims land in the manifest and are seen on a fresh read.
        let deleted = engine
            .modify_entries(
                &h,
                |edit| {
                    edit.state.delete(1);
                    edit.trim_to = Some(1);
                    Ok(Some(()))
                },
                || (),
            )
            .await;
        deleted.unwrap();
        let view = engine.entry_view(&h).await.unwrap();
        assert_eq!(view.first_readable, 1);
        assert!(view.state.is_deleted(1));
        assert_eq!(view.state.entries_added(view.next_seq()), 2);
    }
}
