//! Entry ids: every record that is not a command has a Redis-style id `<ms>-<seq>`,
//! strictly increasing with seq_num whichever surface appended it.
//!
//! How a record's id is formed (the appender enforces it, [`assign`]):
//! - a record whose first header has an empty name and whose value is an id (and that has
//!   at least one more header) carries its id there: the Redis surface writes one for
//!   explicit ids (`XADD key 5-3 …`, `XADD key 5-* …`) and when the first field's name is
//!   empty. The appender refuses a batch whose carried id is not above the stream's last.
//! - any other record's id is `<timestamp>-<seq_num>`: `XADD key *` and every S2 append.
//!   Its timestamp is raised, if need be, so that this id is above the last one: to the
//!   last id's ms, and one past it when its seq_num would not be above the last id's seq.
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

/// The id a record carries in its first header, if it carries one (see the module doc).
pub fn carried_id(headers: &[(&[u8], &[u8])]) -> Option<EntryId> {
    match headers {
        [(name, value), _, ..] if name.is_empty() => EntryId::parse_exact(value),
        _ => None,
    }
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
    fn only_a_leading_empty_name_with_company_carries_an_id() {
        let h = |v: &[(&'static [u8], &'static [u8])]| v.to_vec();
        assert_eq!(
            carried_id(&h(&[(b"", b"5-3"), (b"f", b"v")])),
            Some(EntryId::new(5, 3))
        );
        assert_eq!(carried_id(&h(&[(b"", b"5-3")])), None, "a command record");
        assert_eq!(carried_id(&h(&[(b"f", b"5-3"), (b"", b"1-1")])), None);
        assert_eq!(carried_id(&h(&[(b"", b"x"), (b"f", b"v")])), None);
    }
}
