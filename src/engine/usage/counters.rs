//! What this node counted since its last flush: per stream and minute, appends and reads;
//! per basin (or the account) and minute, control-plane operations; and the latest
//! storage sample of every stream it has seen.
//!
//! The hot path takes only its own stream's lock ([`StreamUsage`]), never one shared by
//! every stream; the node-wide maps are touched when a stream is opened on this node, per
//! control-plane request, and by the flush.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use parking_lot::Mutex;

use super::object::{Counts, Sample};

/// Seconds since the epoch of the start of the minute holding `ms`.
pub fn minute_of(ms: u64) -> u32 {
    let secs = ms / 1000;
    u32::try_from(secs - secs % 60).unwrap_or(u32::MAX - 59)
}

/// One stream's counts on this node, by minute, since the last flush.
#[derive(Debug, Default)]
pub struct StreamUsage {
    /// In minute order; rarely more than one entry between flushes.
    minutes: Mutex<Vec<(u32, Counts)>>,
}

impl StreamUsage {
    fn with(&self, now_ms: u64, f: impl FnOnce(&mut Counts)) {
        let minute = minute_of(now_ms);
        let mut minutes = self.minutes.lock();
        match minutes.iter_mut().rev().find(|(m, _)| *m == minute) {
            Some((_, counts)) => f(counts),
            None => {
                let mut counts = Counts::default();
                f(&mut counts);
                minutes.push((minute, counts));
            }
        }
    }

    /// An append of `bytes` metered bytes to a `standard` stream or an `express` one;
    /// `new_op` unless it continues a session's operation of this minute.
    pub fn appended(&self, now_ms: u64, standard: bool, new_op: bool, bytes: u64) {
        self.with(now_ms, |c| {
            if new_op {
                if standard {
                    c.append_standard += 1;
                } else {
                    c.append_express += 1;
                }
            }
            c.append_bytes += bytes;
        });
    }

    /// A read operation began: unary, or a streaming session's minute.
    pub fn read_op(&self, now_ms: u64, unary: bool) {
        self.with(now_ms, |c| {
            if unary {
                c.read_unary += 1;
            } else {
                c.read_streaming += 1;
            }
        });
    }

    /// `bytes` metered bytes read.
    pub fn read_bytes(&self, now_ms: u64, bytes: u64) {
        if bytes > 0 {
            self.with(now_ms, |c| c.read_bytes += bytes);
        }
    }

    fn take(&self) -> Vec<(u32, Counts)> {
        std::mem::take(&mut *self.minutes.lock())
    }
}

pub type StreamKey = (String, String);

/// Control-plane operations by `(basin or "" for the account, operation)`, then minute.
pub type OpCounts = BTreeMap<(String, &'static str), BTreeMap<u32, u64>>;

/// Everything this node counted and has not flushed yet.
#[derive(Debug, Default)]
pub struct Drained {
    pub streams: Vec<(StreamKey, u32, Counts)>,
    pub ops: OpCounts,
    pub samples: Vec<(StreamKey, Sample)>,
}

/// The node's counters.
#[derive(Debug, Default)]
pub struct NodeUsage {
    streams: Mutex<HashMap<StreamKey, Arc<StreamUsage>>>,
    ops: Mutex<OpCounts>,
    samples: Mutex<Vec<(StreamKey, Sample)>>,
}

impl NodeUsage {
    /// The counters of a stream, shared by everything on this node that serves it.
    pub fn stream(&self, basin: &str, name: &str) -> Arc<StreamUsage> {
        self.streams
            .lock()
            .entry((basin.to_owned(), name.to_owned()))
            .or_default()
            .clone()
    }

    /// One control-plane request: `basin` empty for an account-level operation.
    pub fn op(&self, now_ms: u64, basin: &str, op: &'static str) {
        *self
            .ops
            .lock()
            .entry((basin.to_owned(), op))
            .or_default()
            .entry(minute_of(now_ms))
            .or_default() += 1;
    }

    /// A stream's stored bytes as of a manifest version.
    pub fn sample(&self, basin: &str, name: &str, sample: Sample) {
        self.samples
            .lock()
            .push(((basin.to_owned(), name.to_owned()), sample));
    }

    /// Takes everything counted so far; forgets streams nothing on the node holds.
    pub fn drain(&self) -> Drained {
        let mut streams = Vec::new();
        self.streams.lock().retain(|key, usage| {
            for (minute, counts) in usage.take() {
                streams.push((key.clone(), minute, counts));
            }
            Arc::strong_count(usage) > 1
        });
        Drained {
            streams,
            ops: std::mem::take(&mut *self.ops.lock()),
            samples: std::mem::take(&mut *self.samples.lock()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_minute_and_drain_once() {
        let node = NodeUsage::default();
        let s = node.stream("b", "s");
        s.appended(60_000, false, true, 10);
        s.appended(119_999, false, false, 5);
        s.appended(120_000, true, true, 7);
        s.read_op(120_500, true);
        s.read_bytes(120_500, 3);
        node.op(61_000, "", "list-basins");
        node.op(62_000, "", "list-basins");
        let d = node.drain();
        assert_eq!(d.streams.len(), 2);
        let (_, m0, c0) = &d.streams[0];
        assert_eq!((*m0, c0.append_express, c0.append_bytes), (60, 1, 15));
        let (_, m1, c1) = &d.streams[1];
        assert_eq!(
            (
                *m1,
                c1.append_standard,
                c1.append_bytes,
                c1.read_unary,
                c1.read_bytes
            ),
            (120, 1, 7, 1, 3)
        );
        assert_eq!(d.ops[&(String::new(), "list-basins")][&60], 2);
        let again = node.drain();
        assert!(again.streams.is_empty() && again.ops.is_empty());
    }

    #[test]
    fn streams_nobody_holds_are_forgotten_after_a_drain() {
        let node = NodeUsage::default();
        node.stream("b", "gone").read_op(0, false);
        let held = node.stream("b", "held");
        node.drain();
        assert_eq!(node.streams.lock().len(), 1);
        drop(held);
    }
}
