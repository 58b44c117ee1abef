//! What this node's engine has done, for `/metrics`: how long appends waited for their
//! acks, how large commits were and how often one lost its manifest race, and where
//! readers found the chunks they read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::metrics::Histogram;

#[derive(Debug)]
pub struct EngineMetrics {
    /// From an append reaching the engine to its ack, for appends that were applied, on
    /// `express` streams ...
    pub ack_express: Histogram,
    /// ... and on `standard` ones, whose commits linger.
    pub ack_standard: Histogram,
    /// Bytes of the chunk of each commit that landed, so their count is the node's
    /// commits.
    pub commit_bytes: Histogram,
    /// Conditional manifest writes of commits that found the manifest changed since this
    /// node read it: another node committed first.
    commit_conflicts: AtomicU64,
    /// Chunks readers found in memory (cached, or carried by the manifest) ...
    chunks_from_memory: AtomicU64,
    /// ... and ones they waited for from the store (perhaps already being fetched ahead).
    chunks_from_store: AtomicU64,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            ack_express: Histogram::latency(),
            ack_standard: Histogram::latency(),
            commit_bytes: Histogram::size(),
            commit_conflicts: AtomicU64::new(0),
            chunks_from_memory: AtomicU64::new(0),
            chunks_from_store: AtomicU64::new(0),
        }
    }
}

impl EngineMetrics {
    pub fn conflicts(&self) -> u64 {
        self.commit_conflicts.load(Relaxed)
    }

    /// Chunks readers found in memory, and ones they waited for from the store.
    pub fn chunk_reads(&self) -> (u64, u64) {
        (
            self.chunks_from_memory.load(Relaxed),
            self.chunks_from_store.load(Relaxed),
        )
    }

    pub(super) fn lost_race(&self) {
        self.commit_conflicts.fetch_add(1, Relaxed);
    }

    pub(super) fn chunk_read(&self, from_memory: bool) {
        let counter = if from_memory {
            &self.chunks_from_memory
        } else {
            &self.chunks_from_store
        };
        counter.fetch_add(1, Relaxed);
    }
}
