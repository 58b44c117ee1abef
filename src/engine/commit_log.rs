//! A stream's commit log: what one manifest transition changed, as a *link*. Pure: the
//! format and the arithmetic of links. Nothing reads or writes links yet; the build order
//! in `docs/design/commit-log.md` says what takes them up and how.
//!
//! Every change of a stream's state (a commit, a trim by upkeep, a reconfiguration, the
//! deletion mark) is written as the link at `data/<id>/log/<version>`: the change from
//! version `version - 1` to `version`, created with `If-None-Match`, so exactly one writer
//! wins each version whichever node it runs on. The manifest is a *checkpoint*: the whole
//! state as of its version, written now and then off the ack path. The stream's state is
//! the checkpoint with every link above it applied, up to the first version without one.
//!
//! A link carries the new scalars verbatim and, for each list of the manifest (index
//! segments, chunk references, inline chunk bytes), how much of the old list survives and
//! what follows it: `new = old[dropped..dropped + kept] ++ pushed`. Lists change at their
//! ends (commits push, folds and trims drop from the front), so a commit's link holds its
//! own chunk and little else; packing inline chunks rewrites the references it packs,
//! which then travel as pushed. Any split that satisfies the equation is correct;
//! [`Link::between`] picks the longest kept run.

use bytes::Bytes;
use prost::Message;

use super::{
    entries::EntryState,
    manifest::{ChunkRef, CorruptManifest, Manifest, SegmentRef, decode_framed, encode_framed},
};

const MAGIC: &[u8; 4] = b"SLLG";
const FORMAT: u8 = 1;

/// The change from one version of a stream's manifest to the next.
#[derive(Clone, PartialEq, Message)]
pub struct Link {
    /// The version this link makes: the base's plus one.
    #[prost(uint64, tag = "1")]
    pub version: u64,
    #[prost(uint64, tag = "2")]
    pub next_seq: u64,
    #[prost(uint64, tag = "3")]
    pub last_timestamp: u64,
    #[prost(string, tag = "4")]
    pub fencing_token: String,
    #[prost(uint64, tag = "5")]
    pub trim_point: u64,
    #[prost(uint64, optional, tag = "6")]
    pub deleted_at_ms: Option<u64>,
    /// The new configuration, when it changed.
    #[prost(string, optional, tag = "7")]
    pub config_json: Option<String>,
    #[prost(uint64, tag = "8")]
    pub created_at_ms: u64,
    #[prost(uint64, tag = "9")]
    pub last_append_ms: u64,
    #[prost(message, optional, tag = "10")]
    pub segments: Option<Splice>,
    #[prost(message, repeated, tag = "11")]
    pub pushed_segments: Vec<SegmentRef>,
    #[prost(message, optional, tag = "12")]
    pub chunks: Option<Splice>,
    #[prost(message, repeated, tag = "13")]
    pub pushed_chunks: Vec<ChunkRef>,
    #[prost(message, optional, tag = "14")]
    pub inline_chunks: Option<Splice>,
    #[prost(bytes = "bytes", repeated, tag = "15")]
    pub pushed_inline_chunks: Vec<Bytes>,
    /// The new entry state, when it changed.
    #[prost(message, optional, tag = "16")]
    pub entries: Option<EntriesChange>,
}

/// Which run of a list survives a transition: `dropped` items from its front are gone,
/// the `kept` ones after them stay, and any after those are gone too. Absent: the whole
/// list is kept.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct Splice {
    #[prost(uint64, tag = "1")]
    pub dropped: u64,
    #[prost(uint64, tag = "2")]
    pub kept: u64,
}

/// The new entry state: its scalars, and its lists only when they changed.
#[derive(Clone, PartialEq, Message)]
pub struct EntriesChange {
    /// The state became absent (only a manifest written before entry ids has none).
    #[prost(bool, tag = "1")]
    pub cleared: bool,
    #[prost(uint64, tag = "2")]
    pub last_ms: u64,
    #[prost(uint64, tag = "3")]
    pub last_seq: u64,
    #[prost(uint64, tag = "4")]
    pub command_records: u64,
    #[prost(uint64, tag = "5")]
    pub max_deleted_ms: u64,
    #[prost(uint64, tag = "6")]
    pub max_deleted_seq: u64,
    #[prost(message, optional, tag = "7")]
    pub deleted: Option<U64List>,
    #[prost(message, optional, tag = "8")]
    pub node_starts: Option<U64List>,
}

/// A list that may be absent (unchanged) or empty.
#[derive(Clone, PartialEq, Message)]
pub struct U64List {
    #[prost(uint64, repeated, tag = "1")]
    pub values: Vec<u64>,
}

/// How `new` continues `old`: the splice and what follows the kept run.
fn splice_of<T: PartialEq + Clone>(old: &[T], new: &[T]) -> (Option<Splice>, Vec<T>) {
    if old == new {
        return (None, Vec::new());
    }
    let Some(dropped) = new
        .first()
        .and_then(|first| old.iter().position(|o| o == first))
    else {
        let splice = Splice {
            dropped: 0,
            kept: 0,
        };
        return (Some(splice), new.to_vec());
    };
    let kept = old[dropped..]
        .iter()
        .zip(new)
        .take_while(|(o, n)| o == n)
        .count();
    let splice = Splice {
        dropped: dropped as u64,
        kept: kept as u64,
    };
    (Some(splice), new[kept..].to_vec())
}

/// `old` changed by `splice` and `pushed`.
fn spliced<T: Clone>(
    old: &[T],
    splice: Option<Splice>,
    pushed: &[T],
    what: &str,
) -> Result<Vec<T>, CorruptManifest> {
    let Some(Splice { dropped, kept }) = splice else {
        if !pushed.is_empty() {
            return Err(CorruptManifest(format!(
                "link pushes {what} without a splice"
            )));
        }
        return Ok(old.to_vec());
    };
    let end = dropped
        .checked_add(kept)
        .filter(|&end| end <= old.len() as u64)
        .ok_or_else(|| {
            CorruptManifest(format!(
                "link keeps {what} {dropped}..+{kept} of {}",
                old.len()
            ))
        })?;
    let mut list = Vec::with_capacity(kept as usize + pushed.len());
    list.extend_from_slice(&old[dropped as usize..end as usize]);
    list.extend_from_slice(pushed);
    Ok(list)
}

impl EntriesChange {
    fn between(old: Option<&EntryState>, new: Option<&EntryState>) -> Option<Self> {
        if old == new {
            return None;
        }
        let Some(new) = new else {
            return Some(Self {
                cleared: true,
                ..Default::default()
            });
        };
        let list = |o: Option<&Vec<u64>>, n: &Vec<u64>| {
            (o != Some(n)).then(|| U64List { values: n.clone() })
        };
        Some(Self {
            cleared: false,
            last_ms: new.last_ms,
            last_seq: new.last_seq,
            command_records: new.command_records,
            max_deleted_ms: new.max_deleted_ms,
            max_deleted_seq: new.max_deleted_seq,
            deleted: list(old.map(|o| &o.deleted), &new.deleted),
            node_starts: list(old.map(|o| &o.node_starts), &new.node_starts),
        })
    }

    fn apply(&self, old: Option<&EntryState>) -> Option<EntryState> {
        if self.cleared {
            return None;
        }
        let list = |changed: &Option<U64List>, old: Option<&Vec<u64>>| match changed {
            Some(l) => l.values.clone(),
            None => old.cloned().unwrap_or_default(),
        };
        Some(EntryState {
            last_ms: self.last_ms,
            last_seq: self.last_seq,
            command_records: self.command_records,
            deleted: list(&self.deleted, old.map(|o| &o.deleted)),
            max_deleted_ms: self.max_deleted_ms,
            max_deleted_seq: self.max_deleted_seq,
            node_starts: list(&self.node_starts, old.map(|o| &o.node_starts)),
        })
    }
}

impl Link {
    /// The link that turns `old` into `new`, its successor.
    pub fn between(old: &Manifest, new: &Manifest) -> Self {
        debug_assert_eq!(new.version, old.version.wrapping_add(1));
        debug_assert_eq!(new.stream_id, old.stream_id);
        let (segments, pushed_segments) = splice_of(&old.segments, &new.segments);
        let (chunks, pushed_chunks) = splice_of(&old.chunks, &new.chunks);
        let (inline_chunks, pushed_inline_chunks) =
            splice_of(&old.inline_chunks, &new.inline_chunks);
        Self {
            version: new.version,
            next_seq: new.next_seq,
            last_timestamp: new.last_timestamp,
            fencing_token: new.fencing_token.clone(),
            trim_point: new.trim_point,
            deleted_at_ms: new.deleted_at_ms,
            config_json: (old.config_json != new.config_json).then(|| new.config_json.clone()),
            created_at_ms: new.created_at_ms,
            last_append_ms: new.last_append_ms,
            segments,
            pushed_segments,
            chunks,
            pushed_chunks,
            inline_chunks,
            pushed_inline_chunks,
            entries: EntriesChange::between(old.entries.as_ref(), new.entries.as_ref()),
        }
    }

    /// The manifest this link makes of `old`, refused unless it is `old`'s successor and
    /// keeps the manifest's invariants (links come back from the store).
    pub fn apply(&self, old: &Manifest) -> Result<Manifest, CorruptManifest> {
        if self.version != old.version.wrapping_add(1) {
            return Err(CorruptManifest(format!(
                "link of version {} follows version {}",
                self.version, old.version
            )));
        }
        let next = Manifest {
            version: self.version,
            stream_id: old.stream_id.clone(),
            next_seq: self.next_seq,
            last_timestamp: self.last_timestamp,
            fencing_token: self.fencing_token.clone(),
            trim_point: self.trim_point,
            deleted_at_ms: self.deleted_at_ms,
            config_json: self
                .config_json
                .clone()
                .unwrap_or_else(|| old.config_json.clone()),
            created_at_ms: self.created_at_ms,
            last_append_ms: self.last_append_ms,
            segments: spliced(
                &old.segments,
                self.segments,
                &self.pushed_segments,
                "segments",
            )?,
            chunks: spliced(&old.chunks, self.chunks, &self.pushed_chunks, "chunks")?,
            inline_chunks: spliced(
                &old.inline_chunks,
                self.inline_chunks,
                &self.pushed_inline_chunks,
                "inline chunks",
            )?,
            entries: match &self.entries {
                Some(change) => change.apply(old.entries.as_ref()),
                None => old.entries.clone(),
            },
        };
        next.check_invariants().map_err(CorruptManifest)?;
        Ok(next)
    }

    pub fn encode_object(&self) -> Bytes {
        encode_framed(MAGIC, FORMAT, self)
    }

    pub fn decode_object(bytes: &[u8]) -> Result<Self, CorruptManifest> {
        decode_framed(MAGIC, &[FORMAT], bytes).map(|(link, _)| link)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{
        engine::manifest::fuzz::{history_states, valid_manifest},
        fuzzing::{self, mutate, mutations},
    };

    fn successor_of(old: &Manifest, mut new: Manifest) -> Manifest {
        new.version = old.version.wrapping_add(1);
        new.stream_id = old.stream_id.clone();
        new
    }

    /// The encoded link from `old` to `new` applied to `old` gives `new`.
    fn round_trip(old: &Manifest, new: &Manifest) -> Result<(), TestCaseError> {
        let link = Link::decode_object(&Link::between(old, new).encode_object()).unwrap();
        prop_assert_eq!(&link.apply(old).unwrap(), new);
        Ok(())
    }

    proptest! {
        #![proptest_config(fuzzing::config(300))]

        /// Between any two valid manifests, however unrelated.
        #[test]
        fn a_link_makes_the_successor_of_any_manifest(
            (old, _) in valid_manifest(),
            (new, _) in valid_manifest(),
        ) {
            let new = successor_of(&old, new);
            round_trip(&old, &new)?;
        }

        /// Along a history built the way the appender builds one, where a link carries
        /// about one commit's worth.
        #[test]
        fn links_follow_a_history(states in history_states()) {
            for pair in states.windows(2) {
                round_trip(&pair[0], &pair[1])?;
                let link = Link::between(&pair[0], &pair[1]);
                prop_assert!(link.pushed_chunks.len() <= 1 + pair[0].inline_refs().len());
                prop_assert!(link.pushed_inline_chunks.len() <= 1);
                prop_assert!(link.pushed_segments.len() <= 1);
            }
        }

        /// Links come back from the store: any bytes give a link or an error, and a link
        /// that does not fit its base is refused, never a panic or a broken manifest.
        #[test]
        fn damaged_links_are_refused_not_applied(
            (old, _) in valid_manifest(),
            (new, _) in valid_manifest(),
            m in mutations(),
        ) {
            let new = successor_of(&old, new);
            let mut bytes = Link::between(&old, &new).encode_object().to_vec();
            mutate(&mut bytes, &m);
            crate::fuzzing::reseal_xxh3(&mut bytes);
            if let Ok(link) = Link::decode_object(&bytes)
                && let Ok(applied) = link.apply(&old)
            {
                prop_assert_eq!(applied.check_invariants(), Ok(()));
            }
        }
    }

    /// A checkpoint is format 2 of the manifest; until the log is read, a release must
    /// refuse one rather than take it for the whole state.
    #[test]
    fn this_release_refuses_a_checkpoint() {
        let m = Manifest::new("s".into(), "{}".into(), 0);
        let checkpoint = encode_framed(b"SLMF", 2, &m);
        let err = Manifest::decode_object(&checkpoint).unwrap_err();
        assert!(err.0.contains("unknown format 2"), "{err}");
    }

    #[test]
    fn a_link_must_follow_its_base() {
        let old = Manifest::new("s".into(), "{}".into(), 0);
        let mut new = old.next_version();
        new.trim_point = 0;
        let link = Link::between(&old, &new);
        assert!(link.apply(&new).is_err(), "applied to its own result");
        let mut later = old.clone();
        later.version = 7;
        assert!(
            link.apply(&later)
                .unwrap_err()
                .0
                .contains("follows version 7")
        );
    }
}
