//! What this node's appenders have done, for `/metrics`: how long appends waited for
//! their acks, how large commits were, and how often a commit lost its manifest race.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::metrics::Histogram;

#[derive(Debug)]
pub struct AppendMetrics {
    /// From an append reaching the engine to its ack, for appends that were applied, on
    /// `express` streams ...
    pub ack_express: Histogram,
    /// ... and on `standard` ones, whose commits linger.
    pub ack_standard: Histogram,
    /// Bytes of the chunk of each commit that landed, so their count is the node's
    /// commits.
    pub commit_bytes: Histogram,
    /// Conditional manifest writes that found the manifest changed: another node
    /// committed first, or an earlier attempt whose answer was lost had landed.
    pub commit_conflicts: AtomicU64,
}

impl Default for AppendMetrics {
    fn default() -> Self {
        Self {
            ack_express: Histogram::latency(),
            ack_standard: Histogram::latency(),
            commit_bytes: Histogram::size(),
            commit_conflicts: AtomicU64::new(0),
        }
    }
}

impl AppendMetrics {
    pub fn conflicts(&self) -> u64 {
        self.commit_conflicts.load(Relaxed)
    }

    pub(super) fn lost_race(&self) {
        self.commit_conflicts.fetch_add(1, Relaxed);
    }
}
