//! What `verify` found: a typed report for tests and `--json`, and the summary a person
//! reads.

use std::{collections::BTreeMap, fmt, time::Duration};

use serde::Serialize;

use crate::engine::reach;

/// The kinds of objects in a bucket ([`crate::engine::layout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Basin,
    Stream,
    AccessToken,
    Manifest,
    Segment,
    /// A chunk object, or an object under `chunks/` nothing references (chunk or pack).
    Chunk,
    Pack,
    /// A chunk carried in its manifest.
    InlineChunk,
    Group,
    /// A consumer group's log record or checkpoint.
    GroupLog,
    /// A key Sluice does not write.
    Other,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Basin => "basins",
            Kind::Stream => "streams",
            Kind::AccessToken => "access tokens",
            Kind::Manifest => "manifests",
            Kind::Segment => "index segments",
            Kind::Chunk => "chunk objects",
            Kind::Pack => "packs",
            Kind::InlineChunk => "inline chunks",
            Kind::Group => "consumer groups",
            Kind::GroupLog => "consumer group log objects",
            Kind::Other => "other objects",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Basin => "basin entry",
            Kind::Stream => "stream entry",
            Kind::AccessToken => "access token",
            Kind::Manifest => "manifest",
            Kind::Segment => "index segment",
            Kind::Chunk => "chunk",
            Kind::Pack => "pack",
            Kind::InlineChunk => "inline chunk",
            Kind::Group => "consumer group",
            Kind::GroupLog => "consumer group log object",
            Kind::Other => "object",
        })
    }
}

/// Something wrong with one object: the bucket is not sound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The object's key (for an inline chunk, its manifest's, with the chunk named in
    /// `what`).
    pub key: String,
    pub kind: Kind,
    pub what: String,
}

/// An object nothing references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrphanEntry {
    pub key: String,
    pub kind: Kind,
    pub why: reach::Orphan,
    pub size: u64,
    /// Time since it was last written, by the store's clock; `None` if unknown.
    pub age_ms: Option<u64>,
    /// Upkeep would have deleted it by now (see [`reach::Orphan::overdue`]): a failure.
    pub overdue: bool,
}

/// Worth knowing, not wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub key: String,
    pub what: String,
}

/// Objects and records seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Objects checked, by kind (inline chunks too, though they are no objects).
    pub objects: BTreeMap<Kind, u64>,
    /// Streams whose deletion is under way (counted among the streams).
    pub streams_being_deleted: u64,
    pub basins_being_deleted: u64,
    /// Records decoded and checked, and their metered bytes.
    pub records: u64,
    pub record_bytes: u64,
    /// Bytes read from the store.
    pub bytes_read: u64,
}

impl Counts {
    pub fn add(&mut self, kind: Kind, n: u64) {
        *self.objects.entry(kind).or_default() += n;
    }

    pub fn of(&self, kind: Kind) -> u64 {
        self.objects.get(&kind).copied().unwrap_or_default()
    }

    pub(super) fn merge(&mut self, other: Counts) {
        for (kind, n) in other.objects {
            self.add(kind, n);
        }
        self.streams_being_deleted += other.streams_being_deleted;
        self.basins_being_deleted += other.basins_being_deleted;
        self.records += other.records;
        self.record_bytes += other.record_bytes;
        self.bytes_read += other.bytes_read;
    }
}

/// Everything one run of `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub grace_ms: u64,
    pub counts: Counts,
    pub problems: Vec<Problem>,
    pub orphans: Vec<OrphanEntry>,
    pub notes: Vec<Note>,
}

impl Report {
    /// Sound: no problem and no orphan upkeep should have deleted by now.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty() && self.overdue_orphans().next().is_none()
    }

    pub fn overdue_orphans(&self) -> impl Iterator<Item = &OrphanEntry> {
        self.orphans.iter().filter(|o| o.overdue)
    }

    /// The problems with the object `key`.
    pub fn problems_with<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Problem> {
        self.problems.iter().filter(move |p| p.key == key)
    }
}

/// Findings about one part of the bucket, merged into the report.
#[derive(Debug, Default)]
pub(super) struct Findings {
    pub counts: Counts,
    pub problems: Vec<Problem>,
    pub orphans: Vec<OrphanEntry>,
    pub notes: Vec<Note>,
}

impl Findings {
    pub fn problem(&mut self, key: impl Into<String>, kind: Kind, what: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            kind,
            what: what.into(),
        });
    }

    pub fn note(&mut self, key: impl Into<String>, what: impl Into<String>) {
        self.notes.push(Note {
            key: key.into(),
            what: what.into(),
        });
    }

    pub fn merge_into(self, report: &mut Report) {
        report.counts.merge(self.counts);
        report.problems.extend(self.problems);
        report.orphans.extend(self.orphans);
        report.notes.extend(self.notes);
    }
}

/// `1.5 KiB`, `3.2 MiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `45s`, `12m3s`, `2h5m`, `3d4h`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..10 => format!("{:.1}s", d.as_secs_f64()),
        10..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

/// At most this many orphans and notes are listed one per line; the rest are counted.
const LISTED: usize = 50;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let grace = duration(Duration::from_millis(self.grace_ms));
        writeln!(f, "objects checked:")?;
        for (kind, n) in &self.counts.objects {
            write!(f, "  {:<16}{n:>10}", kind.label())?;
            match kind {
                Kind::Stream if self.counts.streams_being_deleted > 0 => {
                    write!(f, "  ({} being deleted)", self.counts.streams_being_deleted)?
                }
                Kind::Basin if self.counts.basins_being_deleted > 0 => {
                    write!(f, "  ({} being deleted)", self.counts.basins_being_deleted)?
                }
                _ => {}
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "  {:<16}{:>10}  ({} metered; {} read from the store)",
            "records",
            self.counts.records,
            bytes(self.counts.record_bytes),
            bytes(self.counts.bytes_read)
        )?;
        let overdue = self.overdue_orphans().count();
        writeln!(
            f,
            "orphans (objects nothing references): {}, {overdue} older than the {grace} grace",
            self.orphans.len()
        )?;
        let mut orphans: Vec<&OrphanEntry> = self.orphans.iter().collect();
        orphans.sort_by_key(|o| (!o.overdue, o.key.as_str()));
        for o in orphans.iter().take(LISTED) {
            let age = o.age_ms.map_or("age unknown".to_owned(), |a| {
                format!("{} old", duration(Duration::from_millis(a)))
            });
            let verdict = if o.overdue {
                "FAIL"
            } else {
                "within the grace: may belong to a write in flight"
            };
            let why = match o.why {
                reach::Orphan::NeverReferenced => "never referenced",
                reach::Orphan::Dropped => "trimmed or expired, not yet collected",
                reach::Orphan::Superseded => "a consumer group's log no longer needs it",
                reach::Orphan::Homeless => "no stream owns its directory",
                reach::Orphan::Unrecognised => "not a key Sluice writes",
            };
            writeln!(
                f,
                "  {}  {}, {}, {age}, {why}  [{verdict}]",
                o.key,
                o.kind,
                bytes(o.size)
            )?;
        }
        if orphans.len() > LISTED {
            writeln!(f, "  … and {} more", orphans.len() - LISTED)?;
        }
        if !self.notes.is_empty() {
            writeln!(f, "notes: {}", self.notes.len())?;
            for n in self.notes.iter().take(LISTED) {
                writeln!(f, "  {}: {}", n.key, n.what)?;
            }
            if self.notes.len() > LISTED {
                writeln!(f, "  … and {} more", self.notes.len() - LISTED)?;
            }
        }
        writeln!(f, "problems: {}", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {} ({}): {}", p.key, p.kind, p.what)?;
        }
        if self.is_sound() {
            write!(f, "result: sound")
        } else {
            write!(
                f,
                "result: NOT SOUND ({} problems, {overdue} orphans older than the grace)",
                self.problems.len()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(duration(Duration::from_millis(2500)), "2.5s");
        assert_eq!(duration(Duration::from_secs(45)), "45s");
        assert_eq!(duration(Duration::from_secs(723)), "12m3s");
        assert_eq!(duration(Duration::from_secs(7500)), "2h5m");
        assert_eq!(duration(Duration::from_secs(4 * 86400 + 3600)), "4d1h");
    }

    #[test]
    fn a_report_is_sound_without_problems_or_overdue_orphans() {
        let mut report = Report {
            grace_ms: 300_000,
            ..Report::default()
        };
        report.counts.add(Kind::Manifest, 2);
        let young = OrphanEntry {
            key: "data/s/chunks/x".into(),
            kind: Kind::Chunk,
            why: reach::Orphan::NeverReferenced,
            size: 10,
            age_ms: Some(1000),
            overdue: false,
        };
        report.orphans.push(young.clone());
        assert!(report.is_sound());
        let text = report.to_string();
        assert!(text.contains("manifests"), "{text}");
        assert!(text.contains("1 B") || text.contains("10 B"), "{text}");
        assert!(text.ends_with("result: sound"), "{text}");
        report.orphans.push(OrphanEntry {
            overdue: true,
            age_ms: Some(600_000),
            ..young
        });
        assert!(!report.is_sound());
        report.problems.push(Problem {
            key: "data/s/manifest".into(),
            kind: Kind::Manifest,
            what: "checksum mismatch".into(),
        });
        let text = report.to_string();
        assert!(text.contains("10m0s old"), "{text}");
        assert!(text.contains("[FAIL]"), "{text}");
        assert!(
            text.contains("data/s/manifest (manifest): checksum mismatch"),
            "{text}"
        );
        assert!(
            text.ends_with("NOT SOUND (1 problems, 1 orphans older than the grace)"),
            "{text}"
        );
    }
}
