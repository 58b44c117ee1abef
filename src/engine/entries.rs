//! Entry ids: every record that is not a command has a Redis-style id `<ms>-<seq>`,
//! strictly increasing with seq_num whichever surface appended it.
//!
//! How a record's id is formed (the appender enforces it):
//! - a record of two or more headers whose first header has an empty name starts with an
//!   *id header*, which is not one of its fields (the S2 surface refuses empty header
//!   names outside command records, so only the Redis surface writes these). Its value is
//!   the record's id, `<ms>-<seq>` (`XADD key 5-3 …`, `XADD key 5-* …`), or empty when the
//!   id is derived as below (written only so that a first field with an empty name is not
//!   taken for an id header). The appender refuses a batch whose carried id is not above
//!   the stream's last id.
//! - any other record's id is `<timestamp>-<seq_num>`: `XADD key *` and every S2 append.
//!   Its timestamp is raised, if need be, so that this id is above the last one: to the
//!   last id's ms, and one past it when its seq_num would not be above the last id's seq.
//! - command records (one header, empty name) have no id and are not entries.
//!
//! The stream's last id is kept in the manifest ([`super::manifest::EntryState`]), so it
//! survives trims that remove every entry, as Redis's last-generated id does.

use std::fmt;

/// A Redis stream id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EntryId {
    pub ms: u64,
    pub seq: u64,
}

impl EntryId {
    pub const ZERO: EntryId = EntryId { ms: 0, seq: 0 };
    pub const MAX: EntryId = EntryId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// Parses exactly `<ms>-<seq>` (both decimal u64).
    pub fn parse_exact(text: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(text).ok()?;
        let (ms, seq) = text.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The id right after this one, if any.
    pub fn next(self) -> Option<Self> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(Self { ms: self.ms, seq }),
            None => self.ms.checked_add(1).map(|ms| Self { ms, seq: 0 }),
        }
    }

    /// The id right before this one, if any.
    pub fn prev(self) -> Option<Self> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(Self { ms: self.ms, seq }),
            None => self.ms.checked_sub(1).map(|ms| Self { ms, seq: u64::MAX }),
        }
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Whether a record's headers start with an id header, and the id it carries (`None`
/// when its value is empty or not an id: the id is then derived).
pub fn id_header(headers: &[(&[u8], &[u8])]) -> Option<Option<EntryId>> {
    match headers {
        [(b"", value), _, ..] => Some(EntryId::parse_exact(value)),
        _ => None,
    }
}

/// Whether a record's headers make it a command record rather than an entry.
pub fn is_command(headers: &[(&[u8], &[u8])]) -> bool {
    matches!(headers, [(name, _)] if name.is_empty())
}

/// The id and timestamp of a record that carries no id, given its timestamp and seq_num
/// and the stream's last id: `<timestamp>-<seq_num>`, the timestamp raised so the id is
/// above `last`.
pub fn derived(timestamp: u64, seq_num: u64, last: EntryId) -> (EntryId, u64) {
    let ts = if timestamp > last.ms {
        timestamp
    } else if seq_num > last.seq {
        last.ms
    } else {
        last.ms.saturating_add(1)
    };
    (EntryId::new(ts, seq_num), ts)
}

/// A stream's entry bookkeeping, kept in its manifest: the last id, how many command
/// records it ever had (entries added = seq_nums used − command records), entries deleted
/// one by one (`XDEL`), and where Redis's nodes of entries begin (see [`Self::nodes`]).
///
/// Invariants: `deleted` holds sorted, disjoint, non-adjacent `[start, end)` pairs, all at
/// or above the first readable seq_num and below the tail; `node_starts` is sorted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryState {
    #[prost(uint64, tag = "1")]
    pub last_ms: u64,
    #[prost(uint64, tag = "2")]
    pub last_seq: u64,
    #[prost(uint64, tag = "3")]
    pub command_records: u64,
    /// Deleted seq_nums as flattened `[start, end)` pairs.
    #[prost(uint64, repeated, tag = "4")]
    pub deleted: Vec<u64>,
    #[prost(uint64, tag = "5")]
    pub max_deleted_ms: u64,
    #[prost(uint64, tag = "6")]
    pub max_deleted_seq: u64,
    /// Seq_nums where a node began other than [`NODE_ENTRIES`] after the previous start
    /// (the stream's tail node was emptied, so the next entry opened a new one).
    #[prost(uint64, repeated, tag = "7")]
    pub node_starts: Vec<u64>,
}

/// Entries per node: Redis's default `stream-node-max-entries`. Approximate trimming
/// (`~`) removes whole nodes only, as Redis does.
pub const NODE_ENTRIES: u64 = 100;

impl EntryState {
    pub fn last_id(&self) -> EntryId {
        EntryId::new(self.last_ms, self.last_seq)
    }

    pub fn set_last_id(&mut self, id: EntryId) {
        (self.last_ms, self.last_seq) = (id.ms, id.seq);
    }

    pub fn max_deleted_id(&self) -> EntryId {
        EntryId::new(self.max_deleted_ms, self.max_deleted_seq)
    }

    /// Entries ever added, given the tail.
    pub fn entries_added(&self, next_seq: u64) -> u64 {
        next_seq.saturating_sub(self.command_records)
    }

    /// The deleted `[start, end)` ranges, ascending.
    pub fn deleted_ranges(&self) -> impl Iterator<Item = std::ops::Range<u64>> + '_ {
        self.deleted.chunks_exact(2).map(|p| p[0]..p[1])
    }

    pub fn is_deleted(&self, seq: u64) -> bool {
        let i = self.deleted.partition_point(|&b| b <= seq);
        i % 2 == 1
    }

    /// How many seq_nums of `range` are deleted.
    pub fn deleted_within(&self, range: std::ops::Range<u64>) -> u64 {
        self.deleted_ranges()
            .map(|r| {
                r.end
                    .min(range.end)
                    .saturating_sub(r.start.max(range.start))
            })
            .sum()
    }

    /// Marks `seq` deleted; whether it was not already.
    pub fn delete(&mut self, seq: u64) -> bool {
        if self.is_deleted(seq) {
            return false;
        }
        let mut ranges: Vec<std::ops::Range<u64>> = self.deleted_ranges().collect();
        let at = ranges.partition_point(|r| r.start < seq);
        ranges.insert(at, seq..seq + 1);
        self.set_ranges(ranges);
        true
    }

    /// Forgets deletions below `first_readable` and node starts at or below it.
    pub fn prune(&mut self, first_readable: u64) {
        let ranges: Vec<_> = self
            .deleted_ranges()
            .filter(|r| r.end > first_readable)
            .map(|r| r.start.max(first_readable)..r.end)
            .collect();
        self.set_ranges(ranges);
        let keep_from = self.node_starts.partition_point(|&s| s <= first_readable);
        // The last start at or below the first readable record still shapes the nodes.
        self.node_starts.drain(..keep_from.saturating_sub(1));
    }

    /// Stores `ranges` (ascending, disjoint), merging adjacent ones.
    fn set_ranges(&mut self, ranges: Vec<std::ops::Range<u64>>) {
        let mut flat: Vec<u64> = Vec::with_capacity(ranges.len() * 2);
        for r in ranges.into_iter().filter(|r| !r.is_empty()) {
            if flat.last() == Some(&r.start) {
                *flat.last_mut().expect("non-empty") = r.end;
            } else {
                flat.extend([r.start, r.end]);
            }
        }
        self.deleted = flat;
    }

    /// How many deleted ranges are kept.
    pub fn deleted_range_count(&self) -> usize {
        self.deleted.len() / 2
    }

    /// The node holding `seq`: `[start, end)`. Nodes begin at 0 and at each of
    /// `node_starts`, and every [`NODE_ENTRIES`] seq_nums after a beginning. The last
    /// node before `u64::MAX` ends there (`start + NODE_ENTRIES` saturates).
    pub fn node_of(&self, seq: u64) -> std::ops::Range<u64> {
        let i = self.node_starts.partition_point(|&s| s <= seq);
        let base = if i == 0 { 0 } else { self.node_starts[i - 1] };
        let start = base + (seq - base) / NODE_ENTRIES * NODE_ENTRIES;
        let mut end = start.saturating_add(NODE_ENTRIES);
        if let Some(&next) = self.node_starts.get(i) {
            end = end.min(next);
        }
        start..end
    }

    /// Records that the next entry, at `seq`, opens a new node.
    pub fn start_node_at(&mut self, seq: u64) {
        if self.node_of(seq).start != seq {
            let at = self.node_starts.partition_point(|&s| s < seq);
            self.node_starts.insert(at, seq);
        }
    }

    /// Checks the invariants against the readable range.
    pub fn check(&self, first_readable: u64, next_seq: u64) -> Result<(), String> {
        if !self.deleted.len().is_multiple_of(2) {
            return Err("deleted ranges are not pairs".into());
        }
        if self.deleted.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("deleted ranges not ascending: {:?}", self.deleted));
        }
        if let (Some(&lo), Some(&hi)) = (self.deleted.first(), self.deleted.last())
            && (lo < first_readable || hi > next_seq)
        {
            return Err(format!(
                "deleted ranges {lo}..{hi} outside {first_readable}..{next_seq}"
            ));
        }
        if self.node_starts.windows(2).any(|w| w[0] >= w[1]) {
            return Err("node starts not ascending".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_order_and_step() {
        assert_eq!(EntryId::parse_exact(b"5-3"), Some(EntryId::new(5, 3)));
        for bad in [&b"5"[..], b"-3", b"5-", b"a-1", b"5-3-1", b"+1-2", b" 5-3"] {
            assert_eq!(EntryId::parse_exact(bad), None, "{bad:?}");
        }
        assert!(EntryId::new(5, 3) < EntryId::new(6, 0));
        assert_eq!(EntryId::new(5, u64::MAX).next(), Some(EntryId::new(6, 0)));
        assert_eq!(EntryId::MAX.next(), None);
        assert_eq!(EntryId::new(6, 0).prev(), Some(EntryId::new(5, u64::MAX)));
        assert_eq!(EntryId::ZERO.prev(), None);
        assert_eq!(EntryId::new(1, 2).to_string(), "1-2");
    }

    /// Found by `fuzz_manifest_fields_at_edges`: the node of a seq_num within
    /// [`NODE_ENTRIES`] of `u64::MAX` overflowed its end.
    #[test]
    fn the_last_node_ends_at_u64_max() {
        let state = EntryState::default();
        let start = (u64::MAX - 5) / NODE_ENTRIES * NODE_ENTRIES;
        assert_eq!(state.node_of(u64::MAX - 5), start..u64::MAX);
    }

    #[test]
    fn derived_ids_stay_above_the_last() {
        let last = EntryId::new(100, 7);
        assert_eq!(derived(150, 3, last), (EntryId::new(150, 3), 150));
        assert_eq!(derived(90, 8, last), (EntryId::new(100, 8), 100));
        assert_eq!(derived(100, 7, last), (EntryId::new(101, 7), 101));
        for (ts, seq) in [(0, 0), (100, 0), (99, 100), (200, 1)] {
            assert!(derived(ts, seq, last).0 > last);
        }
    }

    #[test]
    fn deletions_merge_prune_and_count() {
        let mut e = EntryState::default();
        for seq in [5, 7, 6, 9] {
            assert!(e.delete(seq));
        }
        assert!(!e.delete(6));
        assert_eq!(e.deleted, [5, 8, 9, 10]);
        assert!(e.is_deleted(5) && e.is_deleted(7) && !e.is_deleted(8) && e.is_deleted(9));
        assert_eq!(e.deleted_within(0..20), 4);
        assert_eq!(e.deleted_within(6..9), 2);
        e.check(0, 10).unwrap();
        e.prune(7);
        assert_eq!(e.deleted, [7, 8, 9, 10]);
        e.prune(10);
        assert!(e.deleted.is_empty());
    }

    #[test]
    fn nodes_are_runs_of_a_hundred_from_each_start() {
        let mut e = EntryState::default();
        assert_eq!(e.node_of(0), 0..100);
        assert_eq!(e.node_of(250), 200..300);
        e.start_node_at(230);
        assert_eq!(e.node_of(229), 200..230);
        assert_eq!(e.node_of(230), 230..330);
        assert_eq!(e.node_of(331), 330..430);
        e.start_node_at(330);
        assert_eq!(e.node_starts, [230], "330 already begins a node");
        e.prune(260);
        assert_eq!(e.node_starts, [230]);
        e.prune(400);
        assert_eq!(
            e.node_starts,
            [230],
            "the last start below still shapes the nodes"
        );
    }

    #[test]
    fn only_a_leading_empty_name_with_company_carries_an_id() {
        let h = |v: &[(&'static [u8], &'static [u8])]| v.to_vec();
        assert_eq!(
            id_header(&h(&[(b"", b"5-3"), (b"f", b"v")])),
            Some(Some(EntryId::new(5, 3)))
        );
        assert_eq!(id_header(&h(&[(b"", b"trim")])), None, "a command record");
        assert!(is_command(&h(&[(b"", b"trim")])));
        assert_eq!(id_header(&h(&[(b"f", b"5-3"), (b"", b"1-1")])), None);
        assert_eq!(id_header(&h(&[(b"", b""), (b"", b"v")])), Some(None));
    }
}
