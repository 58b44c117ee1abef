//! What is reachable in a bucket: the one definition that `sluice verify` reports orphans
//! by ([`super::verify`]) and upkeep's sweep deletes by ([`super::sweep`]). Pure: callers
//! list, read and delete; this module only judges what they found.
//!
//! Reachability, from the catalog down ([`super::layout`] has every key):
//! - a stream catalog entry reaches its data directory `data/<id>/`; a directory no entry
//!   names is *homeless*. While an entry (or its manifest) carries a deletion time, the
//!   directory is being deleted and its deletion removes everything in it;
//! - a live stream's manifest reaches its index segments, and through the manifest's and
//!   the segments' chunk references the objects holding chunks: a chunk's own object or
//!   the pack it was written out in (an inline chunk lives in the manifest and has none);
//! - a live stream reaches every consumer group's root under it (a group's key is its
//!   only reference), and a root reaches the checkpoints and records of its log it still
//!   needs ([`GroupLogRoots`]): those of its incarnation, records above its floor,
//!   checkpoints at its newest position and the one before. A checkpoint above the
//!   root's newest may be one whose root write is still under way, so only an old one is
//!   an orphan; the others were superseded and are never read again, since positions only
//!   grow and incarnations are never reused.
//!
//! An unreferenced chunk or segment object whose key seq_num is at or above the index
//! start was never referenced by any manifest (references only ever leave the index at
//! its front, by trims, retention and deletion; an inline chunk's reference turns into a
//! pack reference and keeps it). One below the index start may have been, and a reader
//! holding an older manifest may still be reading it.
//!
//! # Why deleting an old orphan is safe
//!
//! The sweep lists a directory first, then reads the manifest, then deletes what that
//! manifest does not reference and what the listing showed older than the orphan grace.
//! That is safe because of this invariant, which the appender keeps
//! ([`super::appender`]):
//!
//! > Every object a manifest write references that the manifest it replaces did not is
//! > one the writer started writing at most [`REFERENCE_WINDOW`] before it issued that
//! > manifest write.
//!
//! (A commit writes its chunk, any pack and any folded segment, then the manifest with
//! `If-Match`; a pack written out after an earlier commit is taken into a manifest only
//! within [`PACK_REUSE_WINDOW`] of starting its write, and a commit whose objects have
//! grown older than the window is planned again under fresh keys instead of written.)
//! So if an object listed at time `L` was then older than the grace, any manifest write
//! that would first reference it was issued before `L - grace + REFERENCE_WINDOW`, and,
//! with the grace longer than [`REFERENCE_WINDOW`] plus the longest a manifest write takes
//! to land plus the clock skew between nodes and the store, landed before `L`: the
//! manifest read after the listing shows it. Not referenced there, it never will be. A
//! manifest that replaces it cannot bring the reference back, since references leave the
//! index only at the front and are never re-added.
//!
//! For homeless directories the same holds one level up: a stream's objects are written
//! only once its catalog entry exists, except its first manifest, written just before the
//! entry ([`super::Engine::create_stream`]). So a directory none of the catalog entries
//! listed *after* the directory names, whose objects were all older than the grace, will
//! never belong to a stream: the sweep deletes them.
//!
//! Objects below the index start (trimmed, expired) have a second condition, for readers:
//! they have been unreachable for a grace period, which holds once the manifest has not
//! changed for that long (every change of what is reachable is a manifest write).
//!
//! Keys Sluice does not write are reported by `verify` but never deleted: they may belong
//! to a newer version of Sluice or to someone else.

use std::{collections::HashSet, time::Duration};

use super::{
    layout::{self, DataObject},
    manifest::{IndexSegment, Manifest},
};

/// The longest a writer may take from starting to write an object to issuing the
/// manifest write that first references it; the appender plans a commit again rather
/// than exceed it. The orphan grace must be longer, by the longest a manifest write takes
/// to land and the clock skew between nodes and the store.
pub const REFERENCE_WINDOW: Duration = Duration::from_secs(10);

/// How long after a pack's write started a commit may still take it into the manifest
/// in place of the inline chunks it holds; an older one is left for the sweep and its
/// members are packed again. Below [`REFERENCE_WINDOW`], leaving a commit planned with
/// it the rest of the window.
pub const PACK_REUSE_WINDOW: Duration = Duration::from_secs(5);
const _: () = assert!(PACK_REUSE_WINDOW.as_millis() < REFERENCE_WINDOW.as_millis());

/// Every key under `data/<id>/` the manifest reaches: itself, its index segments, and the
/// objects holding its chunks (own objects and packs), given the contents of its segments.
pub fn referenced_keys<'a>(
    manifest: &Manifest,
    segments: impl IntoIterator<Item = &'a IndexSegment>,
) -> HashSet<String> {
    let id = &manifest.stream_id;
    let mut keys = HashSet::new();
    keys.insert(layout::manifest_key(id));
    keys.extend(manifest.segments.iter().map(|s| s.key(id)));
    let folded = segments.into_iter().flat_map(|s| s.chunks.iter());
    for chunk in folded.chain(&manifest.chunks) {
        if !chunk.inline {
            keys.insert(chunk.location(id).0);
        }
    }
    keys
}

/// The roots of a live stream's consumer groups, read after the listing, by group name:
/// `(incarnation, newest checkpoint, floor)` ([`super::group_log::GroupRoot`]).
pub type GroupLogRoots = std::collections::HashMap<String, (u64, u64, u64)>;

/// The keys among `listed` that a group's root reaches: for [`judge`]'s `referenced`.
/// A checkpoint above the root's newest is not reached (yet); judged a young
/// never-referenced orphan, it is left alone for the orphan grace.
pub fn reached_group_logs<'a>(
    listed: impl IntoIterator<Item = &'a str>,
    roots: &GroupLogRoots,
) -> HashSet<String> {
    listed
        .into_iter()
        .filter(|key| {
            let Some((
                _,
                DataObject::GroupLog {
                    name,
                    incarnation,
                    entry,
                },
            )) = layout::parse_data_key(key)
            else {
                return false;
            };
            let Some(&(live, checkpoint, floor)) = roots.get(&name) else {
                return false;
            };
            incarnation == live
                && match entry {
                    layout::GroupLogEntry::Record(p) => p > floor,
                    layout::GroupLogEntry::Checkpoint(p) => p == checkpoint || p == floor,
                }
        })
        .map(str::to_owned)
        .collect()
}

/// Who owns a stream directory, as the catalog (and the manifest) say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A catalog entry without a deletion time names it, and its manifest has none.
    Live,
    /// Its stream's deletion has started; the deletion removes everything in it.
    BeingDeleted,
    /// No catalog entry names it.
    Homeless,
}

impl Owner {
    /// From the deletion marks of the catalog entries naming the directory.
    pub fn of(deleted: impl IntoIterator<Item = bool>) -> Self {
        let mut owner = Owner::Homeless;
        for deleted in deleted {
            if deleted {
                return Owner::BeingDeleted;
            }
            owner = Owner::Live;
        }
        owner
    }
}

/// Why nothing references an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Orphan {
    /// A chunk or segment at or above the index start that no manifest ever referenced:
    /// a failed commit attempt's, a pack or fold whose manifest write lost, or one whose
    /// write has not been referenced yet.
    NeverReferenced,
    /// A chunk or segment below the index start: trimmed or expired, not yet collected.
    Dropped,
    /// A consumer group's log record or checkpoint its group no longer needs (superseded
    /// by a checkpoint, or of a group destroyed since).
    Superseded,
    /// In a directory no stream owns.
    Homeless,
    /// A key Sluice does not write.
    Unrecognised,
}

/// How an object stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Reachable,
    BeingDeleted,
    Orphan(Orphan),
}

/// Judges one object of a stream directory. `manifest` is the live stream's manifest read
/// after the listing, `referenced` its [`referenced_keys`]; both are ignored for other
/// owners.
pub fn judge(
    key: &str,
    object: &DataObject,
    owner: Owner,
    manifest: Option<&Manifest>,
    referenced: &HashSet<String>,
) -> Reach {
    match (owner, object) {
        (Owner::BeingDeleted, _) => Reach::BeingDeleted,
        (_, DataObject::Unknown) => Reach::Orphan(Orphan::Unrecognised),
        (Owner::Homeless, _) => Reach::Orphan(Orphan::Homeless),
        (Owner::Live, DataObject::Manifest | DataObject::Group { .. }) => Reach::Reachable,
        (Owner::Live, DataObject::GroupLog { entry, .. }) => {
            if referenced.contains(key) {
                Reach::Reachable
            } else if matches!(entry, layout::GroupLogEntry::Checkpoint(_)) {
                // Maybe one whose root write is under way.
                Reach::Orphan(Orphan::NeverReferenced)
            } else {
                Reach::Orphan(Orphan::Superseded)
            }
        }
        (
            Owner::Live,
            DataObject::Chunk { first_seq, .. } | DataObject::Segment { first_seq, .. },
        ) => {
            if referenced.contains(key) {
                Reach::Reachable
            } else if manifest.is_some_and(|m| *first_seq < m.index_start()) {
                Reach::Orphan(Orphan::Dropped)
            } else {
                Reach::Orphan(Orphan::NeverReferenced)
            }
        }
    }
}

/// The grace periods orphans get before upkeep deletes them.
#[derive(Debug, Clone, Copy)]
pub struct Graces {
    /// How old an unreferenced object must be, so that no write in flight can be about to
    /// reference it (see the module documentation).
    pub orphan: Duration,
    /// How long an object below the index start must have been unreachable, so that
    /// readers holding an older manifest are done with it.
    pub unreachable: Duration,
}

impl Graces {
    /// One grace for both, as `sluice verify --grace` gives.
    pub fn both(grace: Duration) -> Self {
        Self {
            orphan: grace,
            unreachable: grace,
        }
    }
}

/// Age of an object modified at `modified_ms` (store clock) at `now_ms`; `None` if the
/// store did not say.
pub fn age(modified_ms: Option<u64>, now_ms: u64) -> Option<Duration> {
    modified_ms.map(|m| Duration::from_millis(now_ms.saturating_sub(m)))
}

impl Orphan {
    /// Whether upkeep deletes it now: it is older than the orphan grace (an unknown age
    /// is never old enough) and, below the index start, the manifest that dropped it has
    /// been unchanged for the unreachable grace. Unrecognised keys are never deleted.
    pub fn due(
        self,
        age: Option<Duration>,
        manifest_unchanged_for: Option<Duration>,
        graces: &Graces,
    ) -> bool {
        let old = |a: Option<Duration>, grace| a.is_some_and(|a| a >= grace);
        match self {
            Orphan::Unrecognised => false,
            Orphan::NeverReferenced | Orphan::Homeless | Orphan::Superseded => {
                old(age, graces.orphan)
            }
            Orphan::Dropped => {
                old(age, graces.orphan) && old(manifest_unchanged_for, graces.unreachable)
            }
        }
    }

    /// Whether `verify` counts it as a failure: upkeep would have deleted it by now, or it
    /// is an unrecognised key older than the grace (or of unknown age: nothing then shows
    /// it is not stale).
    pub fn overdue(
        self,
        age: Option<Duration>,
        manifest_unchanged_for: Option<Duration>,
        graces: &Graces,
    ) -> bool {
        match self {
            Orphan::Unrecognised => age.is_none_or(|a| a >= graces.orphan),
            _ if age.is_none() => true,
            _ => self.due(age, manifest_unchanged_for, graces),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::manifest::{ChunkRef, PackLoc, SegmentRef};

    fn chunk(first_seq: u64, commit: u64) -> ChunkRef {
        ChunkRef {
            first_seq,
            count: 1,
            first_timestamp: first_seq,
            last_timestamp: first_seq,
            size: 10,
            commit,
            ..ChunkRef::default()
        }
    }

    /// A manifest over 0..4: seq 0 folded into a segment, 1 in its own object, 2 packed, 3
    /// inline.
    fn manifest() -> (Manifest, IndexSegment) {
        let mut m = Manifest::new("s".into(), "{}".into(), 0);
        let segment = IndexSegment {
            chunks: vec![chunk(0, 1)],
        };
        m.segments.push(SegmentRef {
            first_seq: 0,
            end_seq: 1,
            commit: 9,
            ..SegmentRef::default()
        });
        m.chunks.push(chunk(1, 2));
        m.chunks.push(ChunkRef {
            pack: Some(PackLoc {
                key_seq: 2,
                id: 0xaa,
                offset: 0,
            }),
            ..chunk(2, 3)
        });
        m.chunks.push(ChunkRef {
            inline: true,
            ..chunk(3, 4)
        });
        m.next_seq = 4;
        (m, segment)
    }

    #[test]
    fn a_manifest_reaches_its_segments_chunk_objects_and_packs_but_no_inline_chunk() {
        let (m, segment) = manifest();
        let mut keys: Vec<_> = referenced_keys(&m, [&segment]).into_iter().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                layout::chunk_key("s", 0, 1),
                layout::chunk_key("s", 1, 2),
                layout::chunk_key("s", 2, 0xaa),
                layout::segment_key("s", 0, 9),
                layout::manifest_key("s"),
            ]
        );
    }

    #[test]
    fn objects_are_judged_by_owner_reference_and_index_start() {
        let (mut m, segment) = manifest();
        let judge_key = |key: String, owner, m: &Manifest| {
            let (_, object) = layout::parse_data_key(&key).unwrap();
            let segments = m.segments.iter().map(|_| &segment);
            judge(&key, &object, owner, Some(m), &referenced_keys(m, segments))
        };
        use Owner::*;
        assert_eq!(
            judge_key(layout::chunk_key("s", 1, 2), Live, &m),
            Reach::Reachable
        );
        assert_eq!(
            judge_key(layout::group_key("s", "g"), Live, &m),
            Reach::Reachable
        );
        assert_eq!(
            judge_key(layout::chunk_key("s", 3, 4), Live, &m),
            Reach::Orphan(Orphan::NeverReferenced),
            "an object under an inline chunk's key"
        );
        assert_eq!(
            judge_key(layout::chunk_key("s", 4, 7), Live, &m),
            Reach::Orphan(Orphan::NeverReferenced),
            "a failed attempt at the tail"
        );
        assert_eq!(
            judge_key("data/s/chunks/x".into(), Live, &m),
            Reach::Orphan(Orphan::Unrecognised)
        );
        assert_eq!(
            judge_key(layout::manifest_key("s"), Homeless, &m),
            Reach::Orphan(Orphan::Homeless)
        );
        assert_eq!(
            judge_key(layout::chunk_key("s", 4, 7), BeingDeleted, &m),
            Reach::BeingDeleted
        );
        m.segments.clear();
        assert_eq!(
            judge_key(layout::segment_key("s", 0, 9), Live, &m),
            Reach::Orphan(Orphan::Dropped),
            "below the index start"
        );
        assert_eq!(Owner::of([]), Homeless);
        assert_eq!(Owner::of([false]), Live);
        assert_eq!(Owner::of([false, true]), BeingDeleted);
    }

    #[test]
    fn orphans_are_due_after_their_graces() {
        let graces = Graces {
            orphan: Duration::from_secs(60),
            unreachable: Duration::from_secs(30),
        };
        let s = |secs| Some(Duration::from_secs(secs));
        assert!(!Orphan::NeverReferenced.due(s(59), None, &graces));
        assert!(Orphan::NeverReferenced.due(s(60), None, &graces));
        assert!(Orphan::Homeless.due(s(61), None, &graces));
        assert!(!Orphan::Homeless.due(None, None, &graces), "unknown age");
        assert!(!Orphan::Dropped.due(s(600), s(29), &graces));
        assert!(!Orphan::Dropped.due(s(600), None, &graces));
        assert!(Orphan::Dropped.due(s(600), s(30), &graces));
        assert!(!Orphan::Unrecognised.due(s(6000), s(6000), &graces));
        assert!(Orphan::Unrecognised.overdue(s(6000), None, &graces));
        assert!(!Orphan::Unrecognised.overdue(s(1), None, &graces));
        assert!(Orphan::NeverReferenced.overdue(None, None, &graces));
        assert!(!Orphan::Dropped.overdue(s(600), s(29), &graces));
        let zero = Graces::both(Duration::ZERO);
        assert!(Orphan::NeverReferenced.due(s(0), None, &zero));
        assert_eq!(age(Some(1_000), 4_000), s(3));
        assert_eq!(age(Some(5_000), 4_000), s(0), "the store's clock ahead");
    }
}
