//! Fuzz properties of [`Manifest::decode_object`] and [`IndexSegment::decode_object`]
//! (see `crate::fuzzing`). Both come back from the store, so any bytes must give a value
//! or a `CorruptManifest` with a message. A manifest that decodes keeps its invariants,
//! the accessors a reader uses answer without a panic, and the transitions a writer
//! makes from it (packing, dropping unreadable entries, folding, the next commit) keep
//! the invariants. (What a node then builds from it, its `StreamState`, is fuzzed in
//! `handle.rs` with the generators here.) The accessors are also tried
//! on manifests that break the invariants (`fuzz_manifest_fields_at_edges`), which a
//! decode refuses but which a bug could still build in memory.

use proptest::prelude::*;

use super::*;
use crate::fuzzing::{self, edge_string, edge_u64, mutate, mutations, reseal_xxh3};

/// One commit of a generated history: how many records, and how it is stored (0: its own
/// object; 1, 2: inline; 3: inline, then the inline chunks are packed).
type Commit = (u32, u8);

fn commits() -> impl Strategy<Value = Vec<Commit>> {
    prop_oneof![
        4 => prop::collection::vec((1u32..5, 0u8..4), 0..12),
        // Enough commits to fold chunk references into segments.
        1 => prop::collection::vec((1u32..3, 0u8..1), 97..130),
    ]
}

/// A manifest and the segments folded out of it, built the way the appender does.
fn history(commits: &[Commit]) -> (Manifest, Vec<IndexSegment>) {
    let (mut states, segments) = history_of_states(commits);
    (states.pop().expect("the first state at least"), segments)
}

/// Every state of [`history`], oldest first.
fn history_of_states(commits: &[Commit]) -> (Vec<Manifest>, Vec<IndexSegment>) {
    let mut m = Manifest::new("id".into(), "{}".into(), 0);
    let mut states = vec![m.clone()];
    let mut segments = Vec::new();
    for (i, &(count, kind)) in commits.iter().enumerate() {
        let i = i as u64;
        let mut next = m.next_version();
        let ts = 2 * i;
        let r = ChunkRef {
            first_seq: next.next_seq,
            count,
            first_timestamp: ts,
            last_timestamp: ts + 1,
            metered_bytes: 10 * u64::from(count),
            size: 100,
            commit: i,
            committed_at_ms: ts,
            inline: false,
            pack: None,
        };
        if (kind == 0 || kind == 3 || next.inline_refs().len() == MAX_INLINE_CHUNKS)
            && let Some(pack) = next.pack_inline(0, !i)
        {
            next.evict_inline(&pack);
        }
        if kind == 0 {
            next.push_chunk(r);
        } else {
            let chunk =
                crate::engine::chunk::chunk_of_bodies(r.first_seq, (0..count).map(|_| &b"x"[..]));
            let bytes = chunk.bytes().clone();
            next.push_inline_chunk(
                ChunkRef {
                    inline: true,
                    size: bytes.len() as u64,
                    ..r
                },
                bytes,
            );
        }
        if let Some((_, segment)) = next.fold_if_needed(i) {
            segments.push(segment);
        }
        m = next;
        states.push(m.clone());
    }
    (states, segments)
}

/// The successive states of a stream's manifest as the appender and upkeep make them:
/// commits (own objects, inline, packed, folded), then a trim.
pub(in crate::engine) fn history_states() -> impl Strategy<Value = Vec<Manifest>> {
    (commits(), any::<prop::sample::Index>()).prop_map(|(commits, trim)| {
        let (mut states, _) = history_of_states(&commits);
        let last = states.last().expect("the first state at least");
        let mut trimmed = last.next_version();
        trimmed.trim_point = trim.index(last.next_seq as usize + 1) as u64;
        trimmed.drop_unreadable(None);
        states.push(trimmed);
        states
    })
}

/// A valid manifest with the other fields at their edges.
pub(in crate::engine) fn valid_manifest() -> impl Strategy<Value = (Manifest, Vec<IndexSegment>)> {
    (
        commits(),
        any::<prop::sample::Index>(),
        prop::option::of(edge_u64()),
        prop_oneof![Just(String::new()), edge_string()],
        prop::option::of((
            edge_u64(),
            edge_u64(),
            prop::collection::vec(edge_u64(), 0..4),
        )),
    )
        .prop_map(|(commits, trim, deleted_at_ms, fencing_token, entries)| {
            let (mut m, segments) = history(&commits);
            m.trim_point = trim.index(m.next_seq as usize + 1) as u64;
            m.drop_unreadable(None);
            m.deleted_at_ms = deleted_at_ms;
            // A valid token: at most 36 bytes (longer ones are an `Edit`).
            m.fencing_token = fencing_token
                .char_indices()
                .take_while(|(i, c)| i + c.len_utf8() <= MAX_FENCING_TOKEN_BYTES)
                .map(|(_, c)| c)
                .collect();
            m.entries = entries.map(|(last_ms, command_records, node_starts)| EntryState {
                last_ms,
                command_records,
                node_starts,
                ..Default::default()
            });
            (m, segments)
        })
}

/// A change to one field of a manifest, to a value at an edge: what a mutation of the
/// bytes rarely reaches (a varint exactly where a field's value is), with the encoding
/// still well-formed.
#[derive(Debug, Clone)]
pub(in crate::engine) enum Edit {
    /// version, next_seq, last_timestamp, trim_point, created_at_ms, last_append_ms.
    Top(u8, u64),
    /// first_seq, count, first_timestamp, last_timestamp, size, commit, committed_at_ms.
    Chunk(prop::sample::Index, u8, u64),
    /// first_seq, end_seq, first_timestamp, last_timestamp, newest_committed_at_ms.
    Segment(prop::sample::Index, u8, u64),
    ToggleInline(prop::sample::Index),
    /// Packs the chunk at (key seq, id, offset).
    Pack(prop::sample::Index, u64, u64),
    DropInlineBytes(prop::sample::Index),
    AddInlineBytes(Vec<u8>),
    /// Deleted ranges and node starts of the entry state.
    Entries(Vec<u64>, Vec<u64>),
    FencingToken(String),
}

pub(in crate::engine) fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let i = any::<prop::sample::Index>;
    let edit = prop_oneof![
        (0u8..6, edge_u64()).prop_map(|(f, v)| Edit::Top(f, v)),
        (i(), 0u8..7, edge_u64()).prop_map(|(c, f, v)| Edit::Chunk(c, f, v)),
        (i(), 0u8..5, edge_u64()).prop_map(|(c, f, v)| Edit::Segment(c, f, v)),
        i().prop_map(Edit::ToggleInline),
        (i(), edge_u64(), edge_u64()).prop_map(|(c, k, o)| Edit::Pack(c, k, o)),
        i().prop_map(Edit::DropInlineBytes),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Edit::AddInlineBytes),
        (
            prop::collection::vec(edge_u64(), 0..5),
            prop::collection::vec(edge_u64(), 0..3)
        )
            .prop_map(|(d, n)| Edit::Entries(d, n)),
        edge_string().prop_map(Edit::FencingToken),
    ];
    prop::collection::vec(edit, 1..4)
}

pub(in crate::engine) fn apply(m: &mut Manifest, edits: &[Edit]) {
    for e in edits {
        match e {
            Edit::Top(f, v) => {
                let v = *v;
                match f {
                    0 => m.version = v,
                    1 => m.next_seq = v,
                    2 => m.last_timestamp = v,
                    3 => m.trim_point = v,
                    4 => m.created_at_ms = v,
                    _ => m.last_append_ms = v,
                }
            }
            Edit::Chunk(i, f, v) if !m.chunks.is_empty() => {
                let c = i.get_mut(&mut m.chunks);
                let v = *v;
                match f {
                    0 => c.first_seq = v,
                    1 => c.count = v as u32,
                    2 => c.first_timestamp = v,
                    3 => c.last_timestamp = v,
                    4 => c.size = v,
                    5 => c.commit = v,
                    _ => c.committed_at_ms = v,
                }
            }
            Edit::Segment(i, f, v) if !m.segments.is_empty() => {
                let s = i.get_mut(&mut m.segments);
                let v = *v;
                match f {
                    0 => s.first_seq = v,
                    1 => s.end_seq = v,
                    2 => s.first_timestamp = v,
                    3 => s.last_timestamp = v,
                    _ => s.newest_committed_at_ms = v,
                }
            }
            Edit::ToggleInline(i) if !m.chunks.is_empty() => {
                let c = i.get_mut(&mut m.chunks);
                c.inline = !c.inline;
            }
            Edit::Pack(i, key_seq, offset) if !m.chunks.is_empty() => {
                i.get_mut(&mut m.chunks).pack = Some(PackLoc {
                    key_seq: *key_seq,
                    id: 1,
                    offset: *offset,
                });
            }
            Edit::DropInlineBytes(i) if !m.inline_chunks.is_empty() => {
                let at = i.index(m.inline_chunks.len());
                m.inline_chunks.remove(at);
            }
            Edit::AddInlineBytes(b) => m.inline_chunks.push(Bytes::from(b.clone())),
            Edit::Entries(deleted, node_starts) => {
                let mut entries = m.entry_state();
                entries.deleted.clone_from(deleted);
                entries.node_starts.clone_from(node_starts);
                m.entries = Some(entries);
            }
            Edit::FencingToken(t) => m.fencing_token.clone_from(t),
            _ => {}
        }
    }
}

/// What a reader does with any manifest it loads; nothing may panic.
fn read_any(m: &Manifest, probes: &[u64]) -> Result<(), TestCaseError> {
    if let Err(e) = m.check_invariants() {
        prop_assert!(!e.is_empty());
    }
    let _ = (m.index_start(), m.first_readable(), m.is_deleted());
    let _ = (m.inline_refs().len(), m.inline_bytes());
    let entries = m.entry_state();
    let _ = (entries.last_id(), entries.max_deleted_id());
    for &p in probes {
        let _ = (m.locate_seq(p), m.locate_timestamp(p));
        let _ = m.contains_commit(p, p);
        let _ = entries.entries_added(p);
    }
    for c in &m.chunks {
        let _ = (c.end_seq(), c.key(&m.stream_id), c.location(&m.stream_id));
    }
    for s in &m.segments {
        let _ = s.key(&m.stream_id);
    }
    Ok(())
}

/// What a writer does with a manifest whose invariants hold: every step keeps them.
fn write_valid(m: &Manifest, probes: &[u64]) -> Result<(), TestCaseError> {
    let first_readable = m.first_readable();
    let entries = m.entry_state();
    if entries.check(first_readable, m.next_seq).is_ok() {
        for &p in probes {
            let seq = p.min(m.next_seq.saturating_sub(1));
            let _ = (
                entries.is_deleted(seq),
                entries.deleted_within(first_readable..seq),
            );
            let _ = entries.node_of(seq);
        }
    }
    let keeps = |m: &Manifest, step: &str| {
        m.check_invariants()
            .map_err(|e| TestCaseError::fail(format!("{step}: {e}")))
    };
    let mut next = m.next_version();
    if let Some(pack) = next.pack_inline(0, 7) {
        prop_assert_eq!(next.evict_inline(&pack), pack.members.len());
        keeps(&next, "pack")?;
    }
    let mut next = m.next_version();
    next.trim_point = probes.first().map_or(0, |&p| p.min(next.next_seq));
    next.drop_unreadable(probes.get(1).copied());
    keeps(&next, "drop_unreadable")?;
    // The next commit, with its own object: the inline chunks are packed first, as the
    // appender does, since inline chunks are the newest.
    let mut next = m.next_version();
    if let Some(pack) = next.pack_inline(0, 8) {
        next.evict_inline(&pack);
    }
    let count = (u64::MAX - next.next_seq).min(3) as u32;
    if count > 0 {
        next.push_chunk(ChunkRef {
            first_seq: next.next_seq,
            count,
            first_timestamp: next.last_timestamp,
            last_timestamp: next.last_timestamp,
            ..Default::default()
        });
        next.fold_if_needed(1);
        keeps(&next, "commit")?;
    }
    Ok(())
}

fn decode_manifest(bytes: &[u8], probes: &[u64]) -> Result<(), TestCaseError> {
    match Manifest::decode_object(bytes) {
        Ok(m) => {
            prop_assert_eq!(m.check_invariants(), Ok(()), "decoded, invariants broken");
            // The S2 surface shows the stored token in a fencing mismatch, as S2's type.
            prop_assert!(
                m.fencing_token
                    .parse::<s2_common::record::FencingToken>()
                    .is_ok(),
                "a stored fencing token S2 cannot show: {:?}",
                m.fencing_token
            );
            read_any(&m, probes)?;
            write_valid(&m, probes)?;
        }
        Err(e) => prop_assert!(!e.0.is_empty(), "an error without a message"),
    }
    Ok(())
}

/// What a reader does with a segment: find a chunk in it and where its object is.
fn decode_segment(bytes: &[u8], probes: &[u64]) -> Result<(), TestCaseError> {
    match IndexSegment::decode_object(bytes) {
        Ok(seg) => {
            for &p in probes {
                let i = seg.chunks.partition_point(|c| c.end_seq() <= p);
                if let Some(c) = seg.chunks.get(i) {
                    let _ = (c.key("id"), c.location("id"));
                }
            }
        }
        Err(e) => prop_assert!(!e.0.is_empty(), "an error without a message"),
    }
    Ok(())
}

fn probes() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(edge_u64(), 1..4)
}

/// Arbitrary bytes, or arbitrary bytes framed as `magic` with a valid checksum.
fn framed_or_not(magic: &'static [u8; 4], format: u8) -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(any::<u8>(), 0..160), any::<bool>()).prop_map(move |(body, framed)| {
        if !framed {
            return body;
        }
        let mut b = magic.to_vec();
        b.push(format);
        b.extend(body);
        b.extend([0; 8]);
        reseal_xxh3(&mut b);
        b
    })
}

proptest! {
    #![proptest_config(fuzzing::config(1000))]

    #[test]
    fn fuzz_manifest_arbitrary_bytes(bytes in framed_or_not(MAGIC, FORMAT), probes in probes()) {
        decode_manifest(&bytes, &probes)?;
    }

    /// A valid manifest decodes to itself, and keeps its invariants through a writer's
    /// steps.
    #[test]
    fn fuzz_manifest_round_trips((m, _) in valid_manifest(), probes in probes()) {
        m.check_invariants().map_err(TestCaseError::fail)?;
        let decoded = Manifest::decode_object(&m.encode_object())
            .map_err(|e| TestCaseError::fail(e.0))?;
        prop_assert_eq!(&decoded, &m);
        read_any(&decoded, &probes)?;
        write_valid(&decoded, &probes)?;
    }

    /// A valid manifest with a few bytes changed, mostly with its checksum recomputed.
    #[test]
    fn fuzz_manifest_mutated(
        (m, _) in valid_manifest(),
        ms in mutations(),
        reseal in prop::bool::weighted(0.9),
        probes in probes(),
    ) {
        let mut bytes = m.encode_object().to_vec();
        mutate(&mut bytes, &ms);
        if reseal {
            reseal_xxh3(&mut bytes);
        }
        decode_manifest(&bytes, &probes)?;
    }

    /// A valid manifest with fields set to values at their edges, consistent or not.
    #[test]
    fn fuzz_manifest_fields_at_edges(
        (m, _) in valid_manifest(),
        edits in edits(),
        probes in probes(),
    ) {
        let mut m = m;
        apply(&mut m, &edits);
        // Whatever a reader would make of it, invariants or not.
        read_any(&m, &probes)?;
        let bytes = m.encode_object();
        match (Manifest::decode_object(&bytes), m.check_invariants()) {
            (Ok(decoded), Ok(())) => prop_assert_eq!(decoded, m),
            (Err(e), Err(broken)) => prop_assert_eq!(e.0, broken),
            (decoded, checked) => prop_assert!(false, "decoded {:?}, invariants {:?}", decoded.is_ok(), checked),
        }
        decode_manifest(&bytes, &probes)?;
    }

    #[test]
    fn fuzz_index_segment_arbitrary_bytes(bytes in framed_or_not(SEGMENT_MAGIC, FORMAT), probes in probes()) {
        decode_segment(&bytes, &probes)?;
    }

    #[test]
    fn fuzz_index_segment_mutated(
        (_, segments) in valid_manifest(),
        ms in mutations(),
        probes in probes(),
    ) {
        let segment = segments.into_iter().next().unwrap_or(IndexSegment { chunks: vec![] });
        let mut bytes = segment.encode_object().to_vec();
        prop_assert_eq!(IndexSegment::decode_object(&bytes).ok(), Some(segment));
        mutate(&mut bytes, &ms);
        reseal_xxh3(&mut bytes);
        decode_segment(&bytes, &probes)?;
    }
}
