//! Where recently found entries sit in their streams, to narrow the binary search that
//! finds an id ([`super::keyspace::Snapshot::seek`]).
//!
//! A hint says "the record at seq_num `s` carries id `i`". Records never change and ids
//! grow with seq_nums, so a hint stays true for as long as the stream's data lives (its
//! data id is never reused), and bounds every seek: an id above `i` lies after `s`, one at
//! or below it at or before `s`. A trimmed hint still bounds; a stale one cannot exist.
//! Consumers mostly ask for what follows what they were last given, so a seek that starts
//! from a hint usually ends at the record right after it, in one read instead of one per
//! halving of the stream.

use std::{collections::HashMap, sync::LazyLock};

use super::ids::EntryId;

/// Hints kept per stream: the most recent ones, as consumers of one stream read near one
/// another.
const PER_STREAM: usize = 8;
/// Streams whose hints an engine keeps; past it, all are dropped and learnt again.
const STREAMS_KEPT: usize = 4096;

/// By engine instance, then stream data id (looked up by `&str`, so a lookup allocates
/// nothing).
type Hints = HashMap<u64, HashMap<String, Vec<(u64, EntryId)>>>;

static HINTS: LazyLock<parking_lot::Mutex<Hints>> = LazyLock::new(Default::default);

/// Notes that the record at `seq` of the stream with data id `stream` (on the engine
/// `instance`) carries `id`.
pub fn learn(instance: u64, stream: &str, seq: u64, id: EntryId) {
    let mut hints = HINTS.lock();
    let streams = hints.entry(instance).or_default();
    if !streams.contains_key(stream) && streams.len() >= STREAMS_KEPT {
        streams.clear();
    }
    if !streams.contains_key(stream) {
        streams.insert(stream.to_owned(), Vec::with_capacity(PER_STREAM));
    }
    let known = streams.get_mut(stream).expect("inserted above");
    if let Some(at) = known.iter().position(|(s, _)| *s == seq) {
        known.remove(at);
    } else if known.len() == PER_STREAM {
        known.remove(0);
    }
    known.push((seq, id));
}

/// The narrowest `(lo, hi)` within `lo..=hi` that the hints allow for the first seq_num
/// whose record has an id at or above `id`: `lo` rises past every hint below `id`, `hi`
/// falls to every hint at or above it. Hints outside `lo..hi` (past the tail a command
/// saw, or trimmed) are left out.
pub fn bounds(instance: u64, stream: &str, id: EntryId, lo: u64, hi: u64) -> (u64, u64) {
    let within = lo..hi;
    let (mut lo, mut hi) = (lo, hi);
    let hints = HINTS.lock();
    if let Some(known) = hints.get(&instance).and_then(|streams| streams.get(stream)) {
        for &(seq, at) in known.iter().filter(|(seq, _)| within.contains(seq)) {
            if at < id {
                lo = lo.max(seq + 1);
            } else {
                hi = hi.min(seq);
            }
        }
    }
    (lo, hi.max(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_bound_a_seek_from_both_sides() {
        let s = "hints-bound";
        assert_eq!(bounds(1, s, EntryId::new(5, 0), 0, 100), (0, 100));
        learn(1, s, 10, EntryId::new(3, 0));
        learn(1, s, 40, EntryId::new(9, 0));
        assert_eq!(bounds(1, s, EntryId::new(5, 0), 0, 100), (11, 40));
        assert_eq!(bounds(1, s, EntryId::new(3, 0), 0, 100), (0, 10));
        assert_eq!(bounds(1, s, EntryId::new(3, 1), 0, 100), (11, 40));
        assert_eq!(bounds(1, s, EntryId::new(10, 0), 0, 100), (41, 100));
        // Another engine, another stream: nothing known.
        assert_eq!(bounds(2, s, EntryId::new(5, 0), 0, 100), (0, 100));
        assert_eq!(bounds(1, "other", EntryId::new(5, 0), 0, 100), (0, 100));
        // Hints outside the range searched are left out.
        assert_eq!(bounds(1, s, EntryId::new(5, 0), 20, 30), (20, 30));
        assert_eq!(bounds(1, s, EntryId::new(10, 0), 0, 40), (11, 40));
    }

    #[test]
    fn only_the_latest_hints_are_kept() {
        let s = "hints-latest";
        for i in 0..20u64 {
            learn(1, s, i * 10, EntryId::new(i, 0));
        }
        // The hint at seq 10 is gone; the ones from seq 120 on are kept.
        assert_eq!(bounds(1, s, EntryId::new(1, 1), 0, 1000), (0, 120));
        assert_eq!(bounds(1, s, EntryId::new(15, 1), 0, 1000), (151, 160));
    }
}
