//! Packs of inline chunks: after a commit is acked, the small chunks its manifest carries
//! are written out together as one object, off the commit path, and a later manifest drops
//! their bytes; a commit that must drop them sooner waits for that write instead of
//! repeating it.

use bytes::Bytes;
use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};

use tokio::time::Instant;

use super::Writer;
use crate::engine::{EngineResult, handle::StreamState, manifest::Pack, reach::PACK_REUSE_WINDOW};

/// Inline chunks are written out (as one pack) once there are this many of them, or
/// [`SPILL_MIN_BYTES`]: fewer requests per commit, against larger manifests.
pub const SPILL_MIN_CHUNKS: usize = 8;
const SPILL_MIN_BYTES: usize = 256 * 1024;

/// A pack of inline chunks being written out after their commits were acknowledged.
#[derive(Clone)]
pub struct Spill {
    pub pack: Pack,
    /// Whether the write succeeded, once it has ended.
    pub done: Shared<BoxFuture<'static, bool>>,
    /// When the write started: the pack object is no older than this.
    pub started: Instant,
}

impl Spill {
    /// Starts `write` (storing `pack`) in the background; it runs to the end whether or
    /// not anyone waits for it, so [`Self::stored`] and [`Self::in_flight`] stay current.
    pub fn start(pack: Pack, write: impl Future<Output = bool> + Send + 'static) -> Self {
        let started = Instant::now();
        let done = write.boxed().shared();
        tokio::spawn(done.clone());
        Self {
            pack,
            done,
            started,
        }
    }

    /// Whether a commit may still take the pack into the manifest: its write started
    /// within [`PACK_REUSE_WINDOW`], so the orphan sweep cannot have deleted it (see
    /// `engine/reach.rs`).
    pub fn fresh(&self) -> bool {
        self.started.elapsed() < PACK_REUSE_WINDOW
    }

    pub fn stored(&self) -> bool {
        self.done.peek() == Some(&true)
    }

    pub fn in_flight(&self) -> bool {
        self.done.peek().is_none()
    }
}

/// The packs one appender is writing out, or has written and whose members the manifest
/// still carries, oldest first.
pub type Spills = parking_lot::Mutex<Vec<Spill>>;

/// After a commit is acked, starts writing the inline chunks of `state` out as one pack,
/// unless a pack is being written already or they are too few to be worth a request yet:
/// a small commit then costs one write (its manifest) plus a share of the pack's, and no
/// commit waits for a pack unless the manifest would outgrow its inline bounds.
pub(super) fn spill_inline(w: &Writer, state: &StreamState) {
    let inline = state.manifest.inline_refs();
    let mut spills = w.spills.lock();
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
    let Some(pack) = state.manifest.pack_inline(packed, w.core.node.random.u64()) else {
        return;
    };
    let store = w.core.node.store.clone();
    let (key, bytes) = (pack.key.clone(), pack.bytes.clone());
    spills.push(Spill::start(pack, async move {
        store.put(&key, bytes).await.is_ok()
    }));
}

/// Makes `writes` durable, concurrently. A write whose object this appender is already
/// writing out (a pack, [`spill_inline`]) waits for that instead of repeating it.
pub(super) async fn write_objects(w: &Writer, writes: &[(String, Bytes)]) -> EngineResult<()> {
    let results = futures::future::join_all(writes.iter().map(|(key, bytes)| async move {
        let spill = w
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
        w.core.node.store.put(key, bytes.clone()).await.map(drop)
    }))
    .await;
    for r in results {
        r?;
    }
    Ok(())
}
