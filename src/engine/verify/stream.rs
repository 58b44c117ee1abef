//! One stream directory's part of `verify`: manifest, index segments, chunks (own
//! objects, packs, inline), consumer groups, and its orphans.

use std::collections::HashMap;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::{
    Ctx,
    catalog::StreamRef,
    list_all,
    report::{Findings, Kind, OrphanEntry},
};
use crate::{
    engine::{
        EngineResult, StreamEntry,
        chunk::Chunk,
        entries::{self, EntryId, EntryState},
        handle::parse_config,
        layout::{self, DataObject},
        manifest::{ChunkRef, IndexSegment, Manifest, SegmentRef},
        reach::{self, Owner, Reach},
    },
    storage::ListedObject,
};

fn kind_of(object: &DataObject) -> Kind {
    match object {
        DataObject::Manifest => Kind::Manifest,
        DataObject::Chunk { .. } => Kind::Chunk,
        DataObject::Segment { .. } => Kind::Segment,
        DataObject::Group { .. } => Kind::Group,
        DataObject::GroupLog { .. } => Kind::GroupLog,
        DataObject::Unknown => Kind::Other,
    }
}

/// Checks the directory `data/<id>/`, listed as `objects`, owned by the catalog entries
/// `refs`.
pub(super) async fn check_dir(
    ctx: &Ctx<'_>,
    id: &str,
    objects: Vec<ListedObject>,
    refs: &[StreamRef],
) -> EngineResult<Findings> {
    let owner = Owner::of(refs.iter().map(|r| r.deleted));
    if owner != Owner::Live {
        let mut f = Findings::default();
        for o in &objects {
            let object = layout::parse_data_key(&o.key).map_or(DataObject::Unknown, |(_, x)| x);
            match reach::judge(&o.key, &object, owner, None, &Default::default()) {
                Reach::Orphan(why) => orphan(ctx, &mut f, o, kind_of(&object), why, None),
                Reach::Reachable | Reach::BeingDeleted => f.counts.add(kind_of(&object), 1),
            }
        }
        return Ok(f);
    }
    let entry = refs.iter().find(|r| !r.deleted).expect("a live entry");
    let (f, changed) = check_live(ctx, id, &objects, entry).await?;
    if !changed {
        return Ok(f);
    }
    // A referenced object was missing and the manifest has changed since: the stream
    // moved on while it was checked (trimmed and collected); once more, afresh.
    let objects = list_all(ctx.store, &layout::stream_data_dir(id)).await?;
    Ok(check_live(ctx, id, &objects, entry).await?.0)
}

fn orphan(
    ctx: &Ctx<'_>,
    f: &mut Findings,
    o: &ListedObject,
    kind: Kind,
    why: reach::Orphan,
    manifest_unchanged_for: Option<std::time::Duration>,
) {
    let age = ctx.age(o);
    f.orphans.push(OrphanEntry {
        key: o.key.clone(),
        kind,
        why,
        size: o.size,
        age_ms: age.map(|a| a.as_millis() as u64),
        overdue: why.overdue(age, manifest_unchanged_for, &ctx.graces),
    });
}

/// Checks a live stream's directory; also says whether a referenced object was missing
/// and the manifest has changed since it was read.
async fn check_live(
    ctx: &Ctx<'_>,
    id: &str,
    objects: &[ListedObject],
    entry: &StreamRef,
) -> EngineResult<(Findings, bool)> {
    let mut f = Findings::default();
    let mkey = layout::manifest_key(id);
    let Some(manifest_bytes) = ctx.get(&mkey).await? else {
        if still_names(ctx, entry, id).await? {
            f.problem(
                &mkey,
                Kind::Manifest,
                format!("missing: {} names this stream", entry.key),
            );
        }
        return Ok((f, false));
    };
    let m = match Manifest::decode_object(&manifest_bytes) {
        Ok(m) => m,
        Err(e) => {
            f.problem(&mkey, Kind::Manifest, e.to_string());
            return Ok((f, false));
        }
    };
    f.counts.add(Kind::Manifest, 1);
    if m.is_deleted() && !still_names(ctx, entry, id).await? {
        return Ok((f, false)); // its deletion began after the catalog was read
    }
    check_manifest(&mut f, &mkey, id, &m, entry);

    let mut missing = false;
    let segments: Vec<(SegmentRef, Option<Bytes>)> = futures::stream::iter(m.segments.clone())
        .map(|s| async move {
            let bytes = ctx.get(&s.key(id)).await?;
            Ok::<_, crate::engine::EngineError>((s, bytes))
        })
        .buffered(ctx.options.concurrency)
        .try_collect()
        .await?;
    let mut decoded = Vec::new();
    let mut refs: Vec<(ChunkRef, String)> = Vec::new();
    for (s, bytes) in segments {
        let key = s.key(id);
        let Some(bytes) = bytes else {
            missing = true;
            f.problem(
                &key,
                Kind::Segment,
                format!(
                    "missing: referenced by {mkey} for seq {}..{}",
                    s.first_seq, s.end_seq
                ),
            );
            continue;
        };
        f.counts.add(Kind::Segment, 1);
        match IndexSegment::decode_object(&bytes) {
            Ok(seg) => {
                check_segment(&mut f, &key, &s, &seg);
                refs.extend(seg.chunks.iter().map(|c| (c.clone(), key.clone())));
                decoded.push(seg);
            }
            Err(e) => f.problem(&key, Kind::Segment, e.to_string()),
        }
    }
    refs.extend(m.chunks.iter().map(|c| (c.clone(), mkey.clone())));
    missing |= check_chunks(ctx, &mut f, id, &m, &refs).await?;

    let mut referenced = reach::referenced_keys(&m, &decoded);
    let mut roots = reach::GroupLogRoots::new();
    for o in objects {
        if let Some((_, DataObject::Group { name })) = layout::parse_data_key(&o.key) {
            super::groups::check_group(ctx, &mut f, objects, &o.key, &name, &mut roots).await?;
        }
    }
    referenced.extend(reach::reached_group_logs(
        objects.iter().map(|o| o.key.as_str()),
        &roots,
    ));
    let manifest_unchanged_for = objects
        .iter()
        .find(|o| o.key == mkey)
        .and_then(|o| ctx.age(o));
    for o in objects {
        let object = layout::parse_data_key(&o.key).map_or(DataObject::Unknown, |(_, x)| x);
        match reach::judge(&o.key, &object, Owner::Live, Some(&m), &referenced) {
            Reach::Orphan(why) => orphan(
                ctx,
                &mut f,
                o,
                kind_of(&object),
                why,
                manifest_unchanged_for,
            ),
            Reach::Reachable | Reach::BeingDeleted => {
                if matches!(object, DataObject::GroupLog { .. }) {
                    f.counts.add(Kind::GroupLog, 1);
                }
            }
        }
    }
    let changed = missing
        && ctx
            .get(&mkey)
            .await?
            .is_none_or(|now| now != manifest_bytes);
    Ok((f, changed))
}

/// Whether the catalog entry still names the live stream `id`: one deleted since the
/// catalog was read has lost its manifest rightly.
async fn still_names(ctx: &Ctx<'_>, entry: &StreamRef, id: &str) -> EngineResult<bool> {
    let Some(bytes) = ctx.get(&entry.key).await? else {
        return Ok(false);
    };
    Ok(serde_json::from_slice::<StreamEntry>(&bytes)
        .map_or(true, |e| e.id == id && e.deleted_at.is_none()))
}

fn check_manifest(f: &mut Findings, key: &str, id: &str, m: &Manifest, entry: &StreamRef) {
    if m.stream_id != id {
        f.problem(
            key,
            Kind::Manifest,
            format!(
                "belongs to stream id {:?}, not to its directory's",
                m.stream_id
            ),
        );
    }
    if m.is_deleted() {
        f.problem(
            key,
            Kind::Manifest,
            format!("marked deleted, but its catalog entry {} is not", entry.key),
        );
    }
    if let Err(e) = parse_config(&m.config_json) {
        f.problem(key, Kind::Manifest, e.to_string());
    }
    if let Err(e) = m.check_invariants() {
        f.problem(key, Kind::Manifest, e);
    }
    if let Some(e) = &m.entries
        && let Err(e) = e.check(0, m.next_seq)
    {
        f.problem(key, Kind::Manifest, format!("entry bookkeeping: {e}"));
    }
}

/// A segment's chunk references must be gap-free and agree with its reference in the
/// manifest.
fn check_segment(f: &mut Findings, key: &str, s: &SegmentRef, seg: &IndexSegment) {
    let mut bad = |what: String| f.problem(key, Kind::Segment, what);
    let (Some(first), Some(last)) = (seg.chunks.first(), seg.chunks.last()) else {
        return bad("holds no chunk references".into());
    };
    if (first.first_seq, last.end_seq()) != (s.first_seq, s.end_seq) {
        bad(format!(
            "covers {}..{}, the manifest says {}..{}",
            first.first_seq,
            last.end_seq(),
            s.first_seq,
            s.end_seq
        ));
    }
    if (first.first_timestamp, last.last_timestamp) != (s.first_timestamp, s.last_timestamp) {
        bad("timestamps differ from the manifest's reference".into());
    }
    let metered: u64 = seg.chunks.iter().map(|c| c.metered_bytes).sum();
    let newest = seg
        .chunks
        .iter()
        .map(|c| c.committed_at_ms)
        .max()
        .unwrap_or(0);
    if metered != s.metered_bytes || newest != s.newest_committed_at_ms {
        bad("totals differ from the manifest's reference".into());
    }
    for w in seg.chunks.windows(2) {
        if w[1].first_seq != w[0].end_seq() {
            bad(format!(
                "gap or overlap: {} where {} was expected",
                w[1].first_seq,
                w[0].end_seq()
            ));
        }
        if w[1].first_timestamp < w[0].last_timestamp {
            bad(format!("timestamps go backwards at seq {}", w[1].first_seq));
        }
    }
    if let Some(c) = seg.chunks.iter().find(|c| c.inline || c.count == 0) {
        bad(format!("chunk at seq {} is inline or empty", c.first_seq));
    }
}

/// One read: an object and the chunks in it (several for a pack), or an inline chunk.
enum Unit {
    Object {
        key: String,
        packed: bool,
        members: Vec<(ChunkRef, String)>,
    },
    Inline {
        chunk: (ChunkRef, String),
        bytes: Option<Bytes>,
    },
}

/// Across a stream's records, in order.
#[derive(Default)]
struct RecordState {
    last_ts: u64,
    last_id: Option<EntryId>,
}

/// Reads and checks every chunk `refs` name (with where each reference is); whether a
/// referenced object was missing.
async fn check_chunks(
    ctx: &Ctx<'_>,
    f: &mut Findings,
    id: &str,
    m: &Manifest,
    refs: &[(ChunkRef, String)],
) -> EngineResult<bool> {
    let inline: HashMap<(u64, u64), &Bytes> = m
        .inline_refs()
        .iter()
        .zip(&m.inline_chunks)
        .map(|(r, b)| ((r.first_seq, r.commit), b))
        .collect();
    let mut units: Vec<Unit> = Vec::new();
    for (r, origin) in refs {
        if r.inline {
            let bytes = inline.get(&(r.first_seq, r.commit)).map(|b| (*b).clone());
            units.push(Unit::Inline {
                chunk: (r.clone(), origin.clone()),
                bytes,
            });
            continue;
        }
        let key = r.location(id).0;
        match units.last_mut() {
            Some(Unit::Object {
                key: k, members, ..
            }) if *k == key => members.push((r.clone(), origin.clone())),
            _ => units.push(Unit::Object {
                key,
                packed: r.pack.is_some(),
                members: vec![(r.clone(), origin.clone())],
            }),
        }
    }
    let mut fetched = futures::stream::iter(units)
        .map(|u| async move {
            let bytes = match &u {
                Unit::Object { key, .. } => ctx.get(key).await?,
                Unit::Inline { bytes, .. } => bytes.clone(),
            };
            Ok::<_, crate::engine::EngineError>((u, bytes))
        })
        .buffered(ctx.options.concurrency);
    let mut state = RecordState::default();
    let mut missing = false;
    while let Some((unit, bytes)) = fetched.try_next().await? {
        match unit {
            Unit::Inline {
                chunk: (r, origin), ..
            } => {
                f.counts.add(Kind::InlineChunk, 1);
                let what = format!("inline chunk {}-{:016x}", r.first_seq, r.commit);
                match bytes {
                    None => f.problem(
                        &origin,
                        Kind::InlineChunk,
                        format!("{what}: its bytes are not in the manifest"),
                    ),
                    Some(b) => check_chunk(f, &origin, Kind::InlineChunk, &what, &r, b, &mut state),
                }
            }
            Unit::Object {
                key,
                packed,
                members,
            } => {
                let kind = if packed { Kind::Pack } else { Kind::Chunk };
                let Some(object) = bytes else {
                    missing = true;
                    let (first, _) = &members[0];
                    let end = members.last().expect("a member").0.end_seq();
                    let origin = &members[0].1;
                    f.problem(
                        &key,
                        kind,
                        format!(
                            "missing: referenced by {origin} for seq {}..{end}",
                            first.first_seq
                        ),
                    );
                    continue;
                };
                f.counts.add(kind, 1);
                for (r, _) in &members {
                    let what = format!("chunk {}..{}", r.first_seq, r.end_seq());
                    let bytes = match (&r.pack, packed) {
                        (Some(p), true) => {
                            let (start, end) = (p.offset, p.offset + r.size);
                            if end > object.len() as u64 {
                                f.problem(
                                    &key,
                                    kind,
                                    format!(
                                        "{what} ends at byte {end}, the object has {}",
                                        object.len()
                                    ),
                                );
                                continue;
                            }
                            object.slice(start as usize..end as usize)
                        }
                        _ => object.clone(),
                    };
                    check_chunk(f, &key, kind, &what, r, bytes, &mut state);
                }
            }
        }
    }
    if let Some(entries) = &m.entries
        && let Some(last) = state.last_id
        && last > EntryState::last_id(entries)
    {
        f.problem(
            layout::manifest_key(id),
            Kind::Manifest,
            format!(
                "holds entry id {last}, above its last id {}",
                entries.last_id()
            ),
        );
    }
    Ok(missing)
}

/// Decodes one chunk and checks it against its reference and the records before it.
fn check_chunk(
    f: &mut Findings,
    key: &str,
    kind: Kind,
    what: &str,
    r: &ChunkRef,
    bytes: Bytes,
    state: &mut RecordState,
) {
    let mut bad = |m: String| f.problem(key, kind, format!("{what}: {m}"));
    if bytes.len() as u64 != r.size {
        bad(format!("{} bytes, the index says {}", bytes.len(), r.size));
    }
    let chunk = match Chunk::decode(bytes) {
        Ok(c) => c,
        Err(e) => return bad(e.to_string()),
    };
    if (chunk.first_seq(), chunk.len()) != (r.first_seq, r.count as usize) {
        return bad(format!(
            "holds {}..{}, the index says {}..{}",
            chunk.first_seq(),
            chunk.end_seq(),
            r.first_seq,
            r.end_seq()
        ));
    }
    let mut metered = 0u64;
    let mut problems = Vec::new();
    for i in 0..chunk.len() {
        let rec = chunk.record(i);
        metered += rec.metered as u64;
        if rec.timestamp < state.last_ts {
            problems.push(format!("timestamp goes backwards at seq {}", rec.seq_num));
        }
        state.last_ts = rec.timestamp;
        let Ok((headers, _)) = rec.view().parts() else {
            problems.push(format!("record {} does not parse", rec.seq_num));
            continue;
        };
        if entries::is_command(&headers) {
            continue;
        }
        let id = match entries::id_header(&headers) {
            Some(Some(carried)) => carried,
            _ => EntryId::new(rec.timestamp, rec.seq_num),
        };
        if state.last_id.is_some_and(|last| id <= last) {
            problems.push(format!(
                "entry id {id} at seq {} is not above the one before",
                rec.seq_num
            ));
        }
        state.last_id = Some(id);
    }
    let (first, last) = (
        chunk.record(0).timestamp,
        chunk.record(chunk.len() - 1).timestamp,
    );
    if (first, last) != (r.first_timestamp, r.last_timestamp) {
        problems.push(format!(
            "timestamps {first}..{last}, the index says {}..{}",
            r.first_timestamp, r.last_timestamp
        ));
    }
    if metered != r.metered_bytes {
        problems.push(format!(
            "{metered} metered bytes, the index says {}",
            r.metered_bytes
        ));
    }
    f.counts.records += chunk.len() as u64;
    f.counts.record_bytes += metered;
    for p in problems.into_iter().take(3) {
        f.problem(key, kind, format!("{what}: {p}"));
    }
}
