//! Upkeep's orphan sweep: deletes the objects nothing reaches ([`super::reach`]) once they
//! are older than the orphan grace: chunks of failed commit attempts, packs and index
//! segments whose manifest write lost, trimmed objects of streams no node keeps open,
//! objects written after their stream's deletion began, the directories of streams whose
//! creation never finished, and stream deletions that stalled.
//!
//! A pass, in the order the safety argument of [`super::reach`] needs:
//! 1. read every stream catalog entry (if any cannot be read, the pass stops: a stream it
//!    does not know of would look homeless);
//! 2. list `data/`, one stream directory at a time; for a live stream read its manifest
//!    *after* listing its directory, and delete what is unreferenced and due;
//! 3. for directories no entry named, read the catalog again *after* the listing, and
//!    delete what is still homeless and older than the grace.
//!
//! A pass lists every object under `data/` and reads every live stream's manifest (its
//! index segments come from the cache), so it runs with the catalog-wide upkeep pass,
//! every tenth round, not with every round.
//!
//! Never deleted: manifests and group roots of live streams, the log records and
//! checkpoints their roots reach (read after the listing, as the manifest is: positions
//! only grow, so what a root no longer reaches it never will), keys Sluice does not write, and
//! anything in a stream whose manifest cannot be read or decoded (a problem for
//! `sluice verify` to report, not for upkeep to act on), and the packs this node is
//! writing out. Any node may run a pass at any time; deletions are idempotent.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use futures::{StreamExt, TryStreamExt};
use tracing::{debug, warn};

use super::{
    Engine, EngineError, EngineResult,
    catalog::StreamEntry,
    layout,
    manifest::Manifest,
    reach::{self, Graces, Owner, Reach},
};
use crate::storage::{DynStore, ListedObject};

/// Keys listed per page while walking `data/` (S3 serves a page in requests of 1000; the
/// local directory walks the whole prefix for every page, so pages are large).
const PAGE: usize = 10_000;
/// Catalog entries read at once.
const CATALOG_CONCURRENCY: usize = 32;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepStats {
    /// Objects listed under `data/`.
    pub listed: u64,
    /// Orphans deleted.
    pub deleted: u64,
    /// Stalled stream deletions finished.
    pub deletions_finished: u64,
}

/// A stream catalog entry with its basin.
pub(super) struct Named {
    pub basin: String,
    pub entry: StreamEntry,
}

/// Every stream catalog entry, by the data directory it names. An entry that cannot be
/// read is an error: the sweep must not take that stream's directory for homeless.
pub(super) async fn stream_owners(store: &DynStore) -> EngineResult<HashMap<String, Vec<Named>>> {
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list("streams/", after.as_deref(), PAGE).await?;
        after = page.keys.last().cloned();
        keys.extend(
            page.keys
                .into_iter()
                .filter(|k| !layout::is_stream_marker(k)),
        );
        if !page.truncated {
            break;
        }
    }
    let entries: Vec<Option<Named>> = futures::stream::iter(keys)
        .map(|key| async move {
            let Some(bytes) = store.get_bytes(&key).await? else {
                return Ok(None); // removed since the listing
            };
            let entry: StreamEntry = serde_json::from_slice(&bytes)
                .map_err(|e| EngineError::Corrupt(format!("catalog object {key}: {e}")))?;
            let basin = key
                .strip_prefix("streams/")
                .and_then(|rest| rest.split_once('/'))
                .map(|(basin, _)| basin.to_owned())
                .ok_or_else(|| EngineError::Corrupt(format!("catalog key {key}")))?;
            Ok::<_, EngineError>(Some(Named { basin, entry }))
        })
        .buffer_unordered(CATALOG_CONCURRENCY)
        .try_collect()
        .await?;
    let mut owners: HashMap<String, Vec<Named>> = HashMap::new();
    for named in entries.into_iter().flatten() {
        owners
            .entry(named.entry.id.clone())
            .or_default()
            .push(named);
    }
    Ok(owners)
}

/// Walks `data/` one stream directory at a time, in key order.
pub struct StreamDirs<'a> {
    store: &'a DynStore,
    after: Option<String>,
    buffered: std::collections::VecDeque<ListedObject>,
    exhausted: bool,
}

impl<'a> StreamDirs<'a> {
    pub fn new(store: &'a DynStore) -> Self {
        Self {
            store,
            after: None,
            buffered: Default::default(),
            exhausted: false,
        }
    }

    /// The next directory's id and objects, as listed. Keys under `data/` that name no
    /// stream directory come back with an empty id.
    pub async fn next(&mut self) -> EngineResult<Option<(String, Vec<ListedObject>)>> {
        let mut dir: Option<(String, Vec<ListedObject>)> = None;
        loop {
            while let Some(o) = self.buffered.front() {
                let id = layout::parse_data_key(&o.key).map_or("", |(id, _)| id);
                match &mut dir {
                    None => dir = Some((id.to_owned(), Vec::new())),
                    Some((current, _)) if current != id => return Ok(dir),
                    Some(_) => {}
                }
                let o = self.buffered.pop_front().expect("a front");
                dir.as_mut().expect("set above").1.push(o);
            }
            if self.exhausted {
                return Ok(dir);
            }
            let page = self
                .store
                .list_meta("data/", self.after.as_deref(), PAGE)
                .await?;
            self.after = page.objects.last().map(|o| o.key.clone());
            self.exhausted = !page.truncated || page.objects.is_empty();
            self.buffered.extend(page.objects);
        }
    }
}

impl Engine {
    /// One sweep over the whole bucket, with the configured graces.
    pub async fn sweep_orphans(&self) -> EngineResult<SweepStats> {
        let graces = Graces {
            orphan: self.inner.config.orphan_grace,
            unreachable: self.inner.config.gc_grace,
        };
        let store = &self.inner.store;
        let owners = stream_owners(store).await?;
        let mut stats = SweepStats {
            deletions_finished: self.finish_stalled_deletions(&owners).await,
            ..SweepStats::default()
        };
        let mut homeless: Vec<(String, Vec<String>)> = Vec::new();
        let mut dirs = StreamDirs::new(store);
        while let Some((id, objects)) = dirs.next().await? {
            stats.listed += objects.len() as u64;
            if id.is_empty() {
                continue;
            }
            let named = owners.get(&id).map(Vec::as_slice).unwrap_or_default();
            match Owner::of(named.iter().map(|n| n.entry.deleted_at.is_some())) {
                Owner::BeingDeleted => {}
                Owner::Live => stats.deleted += self.sweep_live(&id, &objects, &graces).await,
                Owner::Homeless => {
                    let now = self.clock().now_ms();
                    let due: Vec<String> = objects
                        .iter()
                        .filter(|o| {
                            let age = reach::age(o.modified_ms, now);
                            let reach = layout::parse_data_key(&o.key).map(|(_, object)| {
                                reach::judge(
                                    &o.key,
                                    &object,
                                    Owner::Homeless,
                                    None,
                                    &HashSet::new(),
                                )
                            });
                            matches!(reach, Some(Reach::Orphan(k)) if k.due(age, None, &graces))
                        })
                        .map(|o| o.key.clone())
                        .collect();
                    if !due.is_empty() {
                        homeless.push((id, due));
                    }
                }
            }
        }
        if !homeless.is_empty() {
            // Only what no entry names even now: a stream created since the first read
            // of the catalog wrote its manifest just before its entry.
            let owners = stream_owners(store).await?;
            for (id, keys) in homeless {
                if !owners.contains_key(&id) {
                    stats.deleted += delete_all(store, &keys).await?;
                    debug!(stream_id = %id, deleted = keys.len(), "swept a homeless directory");
                }
            }
        }
        Ok(stats)
    }

    /// Deletes the due orphans of a live stream's directory, listed as `objects`; how
    /// many. Problems reading the stream leave it alone.
    async fn sweep_live(&self, id: &str, objects: &[ListedObject], graces: &Graces) -> u64 {
        let manifest = match self.inner.store.get_bytes(&layout::manifest_key(id)).await {
            Ok(Some(bytes)) => match Manifest::decode_object(&bytes) {
                Ok(m) if !m.is_deleted() && m.stream_id == id => m,
                Ok(_) => return 0,
                Err(e) => {
                    warn!(stream_id = %id, error = %e, "not sweeping a stream whose manifest is corrupt");
                    return 0;
                }
            },
            Ok(None) => return 0, // deleted since the catalog was read
            Err(e) => {
                debug!(stream_id = %id, error = %e, "not sweeping a stream whose manifest is unreadable");
                return 0;
            }
        };
        let mut segments = Vec::with_capacity(manifest.segments.len());
        for s in &manifest.segments {
            match self.inner.cache.segment(id, s).await {
                Ok(seg) => segments.push(seg),
                Err(e) => {
                    warn!(stream_id = %id, error = %e, "not sweeping a stream with an unreadable index segment");
                    return 0;
                }
            }
        }
        let mut referenced = reach::referenced_keys(&manifest, segments.iter().map(|s| &**s));
        let listed = || objects.iter().map(|o| o.key.as_str());
        match self.group_log_roots(id, listed()).await {
            Ok(roots) => referenced.extend(reach::reached_group_logs(listed(), &roots)),
            Err(e) => {
                debug!(stream_id = %id, error = %e, "not sweeping a stream whose groups are unreadable");
                return 0;
            }
        }
        let writing = self.packs_being_written(id);
        let now = self.clock().now_ms();
        let manifest_key = layout::manifest_key(id);
        // As listed, before the read: see the module documentation of `reach`.
        let manifest_unchanged_for = objects
            .iter()
            .find(|o| o.key == manifest_key)
            .and_then(|o| reach::age(o.modified_ms, now));
        let due: Vec<String> = objects
            .iter()
            .filter(|o| !writing.contains(&o.key))
            .filter(|o| {
                let Some((_, object)) = layout::parse_data_key(&o.key) else {
                    return false;
                };
                let age = reach::age(o.modified_ms, now);
                match reach::judge(&o.key, &object, Owner::Live, Some(&manifest), &referenced) {
                    Reach::Orphan(k) => k.due(age, manifest_unchanged_for, graces),
                    Reach::Reachable | Reach::BeingDeleted => false,
                }
            })
            .map(|o| o.key.clone())
            .collect();
        if due.is_empty() {
            return 0;
        }
        match delete_all(&self.inner.store, &due).await {
            Ok(n) => {
                debug!(stream_id = %id, deleted = n, "swept orphans");
                n
            }
            Err(e) => {
                warn!(stream_id = %id, error = %e, "sweeping orphans failed");
                0
            }
        }
    }

    /// Keys of the packs this node is writing out (or has written, not yet referenced)
    /// for the stream `id`: a commit here may be about to take them in.
    fn packs_being_written(&self, id: &str) -> HashSet<String> {
        let streams = self.inner.streams.lock();
        streams
            .values()
            .filter(|h| h.core.id == id)
            .flat_map(|h| h.pack_keys())
            .collect()
    }

    /// Finishes the deletions of streams marked deleted longer than the deletion grace
    /// plus the orphan grace ago (their finisher died with its node, or gave up); how
    /// many.
    async fn finish_stalled_deletions(&self, owners: &HashMap<String, Vec<Named>>) -> u64 {
        let config = &self.inner.config;
        let stalled_after = config.deletion_grace + config.orphan_grace;
        let now = self.clock().now();
        let mut finished = 0;
        for named in owners.values().flatten() {
            let Some(deleted_at) = named.entry.deleted_at else {
                continue;
            };
            let since = Duration::try_from(now - deleted_at).unwrap_or_default();
            if since < stalled_after {
                continue;
            }
            match self
                .finish_stream_deletion(&named.basin, &named.entry)
                .await
            {
                Ok(()) => finished += 1,
                Err(e) => {
                    warn!(basin = %named.basin, stream = %named.entry.name, error = %e, "finishing a stalled stream deletion failed")
                }
            }
        }
        finished
    }
}

/// Deletes `keys`, a thousand per request.
async fn delete_all(store: &DynStore, keys: &[String]) -> EngineResult<u64> {
    for batch in keys.chunks(1000) {
        store.delete_many(batch).await?;
    }
    Ok(keys.len() as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::{
        engine::{
            AutoCreate,
            verify::{
                Report,
                tests::{body, engine, run, spills_settled, trim, workload},
            },
        },
        storage,
    };

    async fn exists(store: &DynStore, key: &str) -> bool {
        store.get_bytes(key).await.unwrap().is_some()
    }

    async fn manifest(store: &DynStore, id: &str) -> Manifest {
        let bytes = store.get_bytes(&layout::manifest_key(id)).await.unwrap();
        Manifest::decode_object(&bytes.unwrap()).unwrap()
    }

    /// Orphans of every origin, in a store with the workload's stream: a failed attempt
    /// at the tail, and a homeless directory (a creation that never wrote its entry, with
    /// a chunk and a group). Returns their keys.
    async fn plant_orphans(store: &DynStore, id: &str) -> Vec<String> {
        let m = manifest(store, id).await;
        let stray = Manifest::new("0123abcd".into(), "{}".into(), 0);
        let keys = vec![
            layout::chunk_key(id, m.next_seq, 0xdead),
            layout::segment_key(id, m.next_seq, 0xbeef),
            layout::manifest_key("0123abcd"),
            layout::chunk_key("0123abcd", 0, 1),
            layout::group_key("0123abcd", "g"),
        ];
        store.put(&keys[0], Bytes::from_static(b"x")).await.unwrap();
        store.put(&keys[1], Bytes::from_static(b"x")).await.unwrap();
        store.put(&keys[2], stray.encode_object()).await.unwrap();
        store.put(&keys[3], Bytes::from_static(b"x")).await.unwrap();
        store
            .put(&keys[4], Bytes::from_static(b"{}"))
            .await
            .unwrap();
        keys
    }

    fn orphan_keys(report: &Report) -> Vec<&str> {
        report.orphans.iter().map(|o| o.key.as_str()).collect()
    }

    #[tokio::test]
    async fn old_orphans_go_and_everything_reachable_stays() {
        let store = storage::memory();
        let engine = engine(store.clone(), Duration::ZERO);
        let h = workload(&engine).await;
        let planted = plant_orphans(&store, &h.core.id).await;
        // Trimmed past the first index segment, on a stream no upkeep pass has marked:
        // the segment and the chunks it names are dropped from the index.
        engine.append(&h, trim(70), None).await.unwrap();
        let dropped = manifest(&store, &h.core.id).await;
        assert!(dropped.segments.is_empty(), "the segment was dropped");

        let before = run(&store, Duration::ZERO, Duration::ZERO).await;
        let whys: HashSet<_> = before.orphans.iter().map(|o| o.why).collect();
        for why in [
            reach::Orphan::NeverReferenced,
            reach::Orphan::Dropped,
            reach::Orphan::Homeless,
        ] {
            assert!(whys.contains(&why), "no {why:?} orphan: {before}");
        }

        let stats = engine.sweep_orphans().await.unwrap();
        assert!(stats.deleted >= planted.len() as u64, "{stats:?}");
        for key in &planted {
            assert!(!exists(&store, key).await, "{key} left");
        }
        let after = run(&store, Duration::ZERO, Duration::ZERO).await;
        assert!(after.problems.is_empty(), "{after}");
        // All that is left is what this node is writing out and may yet reference.
        let writing = engine.packs_being_written(&h.core.id);
        assert!(
            orphan_keys(&after).iter().all(|k| writing.contains(*k)),
            "{after}"
        );

        // The stream reads whole, from another node, after one more commit (which takes
        // in the pack this node kept).
        engine.append(&h, body(b"after"), None).await.unwrap();
        spills_settled(&h).await;
        let other = crate::engine::verify::tests::engine(store.clone(), Duration::ZERO);
        let on_other = other.open("b", "s", AutoCreate::No).await.unwrap();
        let (first, tail) = other.retained(&on_other).await.unwrap();
        assert_eq!(first, 70);
        let session = other
            .read(
                &on_other,
                s2_common::stream::ReadStart {
                    from: s2_common::stream::ReadFrom::SeqNum(first),
                    clamp: false,
                },
                s2_common::stream::ReadEnd::default(),
                true,
            )
            .await
            .unwrap();
        let batch = crate::engine::reader::read_unary(session).await.unwrap();
        assert_eq!(batch.records().count() as u64, tail.seq_num - first);
        assert!(
            run(&store, Duration::ZERO, Duration::ZERO)
                .await
                .problems
                .is_empty()
        );
    }

    /// A group written to and checkpointed several times: what its checkpoints
    /// superseded, a record written into a collected slot and another incarnation's
    /// objects go; its root, its two checkpoints and the records above its floor stay,
    /// and the group reads the same from another node.
    #[tokio::test]
    async fn a_groups_superseded_log_goes_and_what_its_root_reaches_stays() {
        use crate::engine::{
            entries::EntryId, group_log::GroupDelta, group_log::RootForm, group_state::GroupState,
        };

        let store = storage::memory();
        let engine = engine(store.clone(), Duration::ZERO);
        let h = workload(&engine).await;
        let g0 = GroupState::new("q", EntryId::ZERO, Some(0));
        engine.create_group(&h, &g0).await.unwrap();
        for i in 0..10u64 {
            let mut g = engine.group(&h, "q").await.unwrap().unwrap();
            let mut next = g.state.clone();
            next.touch_consumer(&format!("c{i}"), i);
            let delta = GroupDelta::between(&g.state, &next);
            assert!(engine.append_group(&h, &mut g, &delta).await.unwrap());
            if i % 3 == 2 {
                engine.checkpoint_group(&h, &g).await.unwrap();
            }
        }
        let id = &h.core.id;
        let root = store.get_bytes(&layout::group_key(id, "q")).await.unwrap();
        let RootForm::Log(root) = RootForm::parse(&root.unwrap()).unwrap() else {
            panic!("checkpointed into the current form")
        };
        assert_eq!((root.checkpoint, root.previous), (10, Some(7)));
        let live = root.incarnation;
        let planted = [
            layout::group_record_key(id, "q", live, 3),
            layout::group_record_key(id, "q", live ^ 1, 12),
            layout::group_checkpoint_key(id, "q", live ^ 1, 1),
        ];
        for key in &planted {
            store.put(key, Bytes::from_static(b"{}")).await.unwrap();
        }
        let before = run(&store, Duration::ZERO, Duration::ZERO).await;
        for key in &planted {
            assert!(orphan_keys(&before).contains(&key.as_str()), "{before}");
        }

        engine.sweep_orphans().await.unwrap();
        let mut left: Vec<String> = store
            .list(&layout::group_log_dir(id, "q"), None, 100)
            .await
            .unwrap()
            .keys;
        left.sort();
        let mut reached = vec![
            layout::group_checkpoint_key(id, "q", live, 7),
            layout::group_checkpoint_key(id, "q", live, 10),
        ];
        reached.extend((8..=11).map(|p| layout::group_record_key(id, "q", live, p)));
        reached.sort();
        assert_eq!(left, reached);
        let after = run(&store, Duration::ZERO, Duration::ZERO).await;
        assert!(after.problems.is_empty(), "{after}");
        let other = crate::engine::verify::tests::engine(store.clone(), Duration::ZERO);
        let on_other = other.open("b", "s", AutoCreate::No).await.unwrap();
        let g = other.group(&on_other, "q").await.unwrap().unwrap();
        assert_eq!((g.state.version, g.state.consumers.len()), (11, 10));
    }

    #[tokio::test]
    async fn young_orphans_and_keys_sluice_does_not_write_stay() {
        let store = storage::memory();
        let engine = engine(store.clone(), Duration::from_secs(3600));
        let h = workload(&engine).await;
        let planted = plant_orphans(&store, &h.core.id).await;
        let stats = engine.sweep_orphans().await.unwrap();
        assert_eq!(stats.deleted, 0);
        for key in &planted {
            assert!(exists(&store, key).await, "{key} swept while young");
        }

        let eager = crate::engine::verify::tests::engine(store.clone(), Duration::ZERO);
        let foreign = ["data/0123abcd/notes.txt", "data/99/chunks/not-a-chunk"];
        for key in foreign {
            store.put(key, Bytes::from_static(b"?")).await.unwrap();
        }
        eager.sweep_orphans().await.unwrap();
        for key in foreign {
            assert!(exists(&store, key).await, "{key} deleted");
        }
    }

    #[tokio::test]
    async fn a_stream_whose_manifest_is_corrupt_is_left_alone() {
        let store = storage::memory();
        let engine = engine(store.clone(), Duration::ZERO);
        let h = workload(&engine).await;
        let planted = plant_orphans(&store, &h.core.id).await;
        let key = layout::manifest_key(&h.core.id);
        let mut bytes = store.get_bytes(&key).await.unwrap().unwrap().to_vec();
        bytes[8] ^= 1;
        store.put(&key, Bytes::from(bytes)).await.unwrap();
        engine.sweep_orphans().await.unwrap();
        assert!(
            exists(&store, &planted[0]).await,
            "swept past a corrupt manifest"
        );
        assert!(
            !exists(&store, &planted[2]).await,
            "the homeless directory went"
        );
    }

    #[tokio::test]
    async fn an_unreadable_catalog_entry_stops_the_pass() {
        let store = storage::memory();
        let engine = engine(store.clone(), Duration::ZERO);
        let h = workload(&engine).await;
        let planted = plant_orphans(&store, &h.core.id).await;
        store
            .put(&layout::stream_key("b", "broken"), Bytes::from_static(b"{"))
            .await
            .unwrap();
        assert!(engine.sweep_orphans().await.is_err());
        for key in &planted {
            assert!(exists(&store, key).await, "{key} swept without the catalog");
        }
    }

    #[tokio::test]
    async fn a_stalled_stream_deletion_is_finished() {
        let store = storage::memory();
        let engine = engine(store.clone(), Duration::ZERO);
        let h = workload(&engine).await;
        let id = h.core.id.clone();
        drop(h);
        // Its deletion was marked two hours ago, and its finisher died with its node.
        let key = layout::stream_key("b", "s");
        let mut entry: StreamEntry =
            serde_json::from_slice(&store.get_bytes(&key).await.unwrap().unwrap()).unwrap();
        entry.deleted_at = Some(time::OffsetDateTime::now_utc() - time::Duration::hours(2));
        store
            .put(&key, serde_json::to_vec(&entry).unwrap().into())
            .await
            .unwrap();
        let stats = engine.sweep_orphans().await.unwrap();
        assert_eq!(stats.deletions_finished, 1);
        assert!(!exists(&store, &key).await);
        let left = store
            .list(&layout::stream_data_dir(&id), None, 10)
            .await
            .unwrap();
        assert!(left.keys.is_empty(), "{:?}", left.keys);
        let report = run(&store, Duration::ZERO, Duration::ZERO).await;
        assert!(report.is_sound() && report.orphans.is_empty(), "{report}");
    }
}
