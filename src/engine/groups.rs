//! Where consumer groups are kept: per group a root object, checkpoints and a log of
//! records ([`super::group_log`] has the formats and invariants), so a write stores what
//! it changed and consumers on any node agree on every delivery: a record is created at
//! the next position only if none is there, and counts only once the root, read after
//! it, shows it was not written into a slot already collected. A node keeps the group it
//! last read or wrote ([`LoadedGroup`]) and before answering from it checks it is still
//! current the same way. Checkpoints are written off the commands' path when enough log
//! has built up; each one collects what the one before it superseded. The group goes
//! when the stream's data goes. What a group does is [`super::group_state`].

use std::collections::BTreeSet;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::{
    Engine, StreamHandle,
    error::{EngineError, EngineResult},
    group_log::{GroupDelta, GroupRoot, LogRecord, RootForm},
    group_state::GroupState,
    layout,
    reach::GroupLogRoots,
    retry::Races,
};
use crate::storage::{ETag, PutOutcome, Revalidated};

/// Where a node knows a group's log to stand.
#[derive(Debug, Clone)]
pub struct GroupLog {
    incarnation: u64,
    /// The version of the root this node last read.
    root_etag: ETag,
    /// That root's newest checkpoint and [`GroupRoot::floor`].
    checkpoint: u64,
    floor: u64,
    /// Whether the root is in the older form (the group inline, no records below it).
    inline: bool,
    /// Bytes of records this node wrote or read since `checkpoint`.
    bytes_since: u64,
}

/// A group as of its position (`state.version`), with where its log stands.
#[derive(Debug, Clone)]
pub struct LoadedGroup {
    pub state: GroupState,
    pub log: GroupLog,
}

/// The reads a load retries when a checkpoint or the group's destruction moved the
/// objects it was reading.
const LOAD_TRIES: usize = 8;
/// Log records read at once.
const READ_AHEAD: usize = 16;
/// Tries of each read of a group's objects: a load makes several, so one that failed
/// (and may be repeated freely) is tried again rather than failing the whole load.
const READ_TRIES: usize = 4;

/// Runs the read `read` until it succeeds or has failed [`READ_TRIES`] times.
async fn retrying<T, F: std::future::Future<Output = crate::storage::StorageResult<T>>>(
    read: impl Fn() -> F,
) -> crate::storage::StorageResult<T> {
    let mut tries = 1;
    loop {
        match read().await {
            Err(crate::storage::StorageError::Unavailable(_)) if tries < READ_TRIES => tries += 1,
            other => return other,
        }
    }
}

impl Engine {
    fn root_key(stream: &StreamHandle, name: &str) -> String {
        layout::group_key(&stream.core.id, name)
    }

    /// The group as of now, or `None` if it does not exist.
    pub async fn group(
        &self,
        stream: &StreamHandle,
        name: &str,
    ) -> EngineResult<Option<LoadedGroup>> {
        let mut races = Races::new("the consumer group's log", self.random());
        for _ in 0..LOAD_TRIES {
            races.next().await?;
            if let Some(loaded) = self.try_load_group(stream, name).await? {
                return Ok(loaded);
            }
        }
        Err(EngineError::TransactionConflict(
            "the consumer group kept being checkpointed while read; retry".into(),
        ))
    }

    /// One try of [`Self::group`]; `None` when a checkpoint collected what it was reading.
    async fn try_load_group(
        &self,
        stream: &StreamHandle,
        name: &str,
    ) -> EngineResult<Option<Option<LoadedGroup>>> {
        let store = &self.inner.store;
        let root_key = Self::root_key(stream, name);
        let Some(root) = retrying(|| store.get(&root_key)).await? else {
            return Ok(Some(None));
        };
        let form = RootForm::parse(&root.bytes).map_err(EngineError::Corrupt)?;
        let incarnation = form.incarnation();
        let mut state = match &form {
            RootForm::Inline(g) => g.clone(),
            RootForm::Log(r) => {
                let key =
                    layout::group_checkpoint_key(&stream.core.id, name, incarnation, r.checkpoint);
                let Some(bytes) = retrying(|| store.get_bytes(&key)).await? else {
                    return Ok(None);
                };
                let g: GroupState = serde_json::from_slice(&bytes)
                    .map_err(|e| EngineError::Corrupt(format!("{key}: {e}")))?;
                if g.version != r.checkpoint {
                    return Err(EngineError::Corrupt(format!("{key}: at {}", g.version)));
                }
                g
            }
        };
        let mut log = GroupLog {
            incarnation,
            root_etag: root.etag,
            checkpoint: form.checkpoint(),
            floor: form.floor(),
            inline: matches!(form, RootForm::Inline(_)),
            bytes_since: 0,
        };
        // The records after the checkpoint, listed in one request and read together.
        let dir = layout::group_incarnation_dir(&stream.core.id, name, incarnation);
        let after = layout::group_record_key(&stream.core.id, name, incarnation, log.checkpoint);
        let mut keys = Vec::new();
        let mut start = after;
        loop {
            let page = retrying(|| store.list(&dir, Some(&start), 1000)).await?;
            keys.extend(
                page.keys
                    .iter()
                    .filter(|k| {
                        matches!(
                            layout::parse_data_key(k),
                            Some((
                                _,
                                layout::DataObject::GroupLog {
                                    entry: layout::GroupLogEntry::Record(_),
                                    ..
                                }
                            ))
                        )
                    })
                    .cloned(),
            );
            match (page.truncated, page.keys.last()) {
                (true, Some(last)) => start = last.clone(),
                _ => break,
            }
        }
        let records: Vec<Option<Bytes>> = futures::stream::iter(keys)
            .map(|key| async move { retrying(|| store.get_bytes(&key)).await })
            .buffered(READ_AHEAD)
            .try_collect()
            .await?;
        for bytes in records {
            let Some(bytes) = bytes else {
                return Ok(None);
            };
            let record: LogRecord = serde_json::from_slice(&bytes)
                .map_err(|e| EngineError::Corrupt(format!("group {name:?} log record: {e}")))?;
            if record.position != state.version + 1 {
                // A gap: records below were collected while listing.
                return Ok(None);
            }
            record.delta.apply(&mut state);
            state.version = record.position;
            log.bytes_since += bytes.len() as u64;
        }
        // The state is current as of the listing if the root still names it.
        Ok(self
            .confirm_root(stream, name, &mut log, state.version + 1)
            .await?
            .then_some(Some(LoadedGroup { state, log })))
    }

    /// Whether the root, read now, still names `log`'s incarnation with `position` above
    /// its floor (updating what `log` knows of it): then a record at `position` created
    /// before this call is the group's, and one absent before this call was absent in the
    /// log as it stands.
    async fn confirm_root(
        &self,
        stream: &StreamHandle,
        name: &str,
        log: &mut GroupLog,
        position: u64,
    ) -> EngineResult<bool> {
        let key = Self::root_key(stream, name);
        let store = &self.inner.store;
        match retrying(|| store.revalidate(&key, &log.root_etag)).await? {
            Revalidated::Unchanged => Ok(true),
            Revalidated::Missing => Ok(false),
            Revalidated::Changed(object) => {
                let Ok(form) = RootForm::parse(&object.bytes) else {
                    return Ok(false);
                };
                if form.incarnation() != log.incarnation || position <= form.floor() {
                    return Ok(false);
                }
                if form.checkpoint() != log.checkpoint {
                    log.bytes_since = 0;
                }
                log.root_etag = object.etag;
                log.checkpoint = form.checkpoint();
                log.floor = form.floor();
                log.inline = matches!(form, RootForm::Inline(_));
                Ok(true)
            }
        }
    }

    /// Creates a group (its first checkpoint, then its root); a name in use is
    /// `AlreadyExists`.
    pub async fn create_group(
        &self,
        stream: &StreamHandle,
        group: &GroupState,
    ) -> EngineResult<()> {
        let incarnation = self.random().u64().max(1);
        let id = &stream.core.id;
        let checkpoint = layout::group_checkpoint_key(id, &group.name, incarnation, group.version);
        let bytes = serde_json::to_vec(group).expect("a group serializes");
        self.inner.store.put(&checkpoint, bytes.into()).await?;
        let root = GroupRoot {
            name: group.name.clone(),
            incarnation,
            checkpoint: group.version,
            previous: None,
        };
        let bytes = serde_json::to_vec(&root).expect("a root serializes");
        let key = Self::root_key(stream, &group.name);
        match self.inner.store.put_if_absent(&key, bytes.into()).await? {
            PutOutcome::Written(_) => Ok(()),
            PutOutcome::PreconditionFailed => {
                self.inner.store.delete(&checkpoint).await?;
                Err(EngineError::AlreadyExists(format!(
                    "consumer group {} already exists",
                    group.name
                )))
            }
        }
    }

    /// Writes what changed from `group.state` as the record at the next position. `Ok(true)`:
    /// it is the group's, `group` is as written (`delta` applied, at the new position);
    /// `Ok(false)`: another write got there first, or the group was destroyed: re-read.
    pub async fn append_group(
        &self,
        stream: &StreamHandle,
        group: &mut LoadedGroup,
        delta: &GroupDelta,
    ) -> EngineResult<bool> {
        let name = &group.state.name;
        let position = group.state.version + 1;
        let log = &group.log;
        let key = layout::group_record_key(&stream.core.id, name, log.incarnation, position);
        let record = LogRecord {
            position,
            delta: delta.clone(),
        };
        let bytes = serde_json::to_vec(&record).expect("a record serializes");
        let size = bytes.len() as u64;
        if self.inner.store.put_if_absent(&key, bytes.into()).await?
            == PutOutcome::PreconditionFailed
        {
            return Ok(false);
        }
        let name = name.clone();
        if !self
            .confirm_root(stream, &name, &mut group.log, position)
            .await?
        {
            return Ok(false);
        }
        delta.apply(&mut group.state);
        group.state.version = position;
        group.log.bytes_since += size;
        Ok(true)
    }

    /// Whether `group` is still the group as it stands: no record after its position, and
    /// the root still its own (a conditional read: no bytes move when it is).
    pub async fn group_is_current(
        &self,
        stream: &StreamHandle,
        group: &mut LoadedGroup,
    ) -> EngineResult<bool> {
        let name = &group.state.name;
        let next = group.state.version + 1;
        let key = layout::group_record_key(&stream.core.id, name, group.log.incarnation, next);
        let store = &self.inner.store;
        if retrying(|| store.get_bytes(&key)).await?.is_some() {
            return Ok(false);
        }
        let name = name.clone();
        self.confirm_root(stream, &name, &mut group.log, next).await
    }

    /// Whether enough log has built up since the checkpoint `group` knows of for another.
    pub fn checkpoint_due(&self, group: &LoadedGroup) -> bool {
        let config = &self.inner.config;
        group.state.version >= group.log.checkpoint + config.group_checkpoint_records.max(1)
            || group.log.bytes_since >= config.group_checkpoint_bytes
    }

    /// Writes `group` as a checkpoint and points the root at it, then deletes what the
    /// root's previous checkpoint covered (that checkpoint and the records up to it).
    /// Losing to another checkpoint is no failure: whoever won collects.
    pub async fn checkpoint_group(
        &self,
        stream: &StreamHandle,
        group: &LoadedGroup,
    ) -> EngineResult<()> {
        let (id, name, log) = (&stream.core.id, &group.state.name, &group.log);
        let position = group.state.version;
        if position <= log.checkpoint {
            return Ok(());
        }
        let store = &self.inner.store;
        let key = layout::group_checkpoint_key(id, name, log.incarnation, position);
        let bytes = serde_json::to_vec(&group.state).expect("a group serializes");
        store.put(&key, bytes.into()).await?;
        let root = GroupRoot {
            name: name.clone(),
            incarnation: log.incarnation,
            checkpoint: position,
            previous: Some(log.checkpoint),
        };
        let bytes = serde_json::to_vec(&root).expect("a root serializes");
        let root_key = Self::root_key(stream, name);
        if store
            .put_if_match(&root_key, bytes.into(), &log.root_etag)
            .await?
            == PutOutcome::PreconditionFailed
        {
            return Ok(());
        }
        // Superseded now: the old previous checkpoint and the records up to the old
        // newest one (readers that read the old root still find its checkpoint and the
        // records after it).
        if log.inline {
            return Ok(());
        }
        let mut garbage: Vec<String> = (log.floor + 1..=log.checkpoint)
            .map(|p| layout::group_record_key(id, name, log.incarnation, p))
            .collect();
        if log.floor > 0 {
            garbage.push(layout::group_checkpoint_key(
                id,
                name,
                log.incarnation,
                log.floor,
            ));
        }
        for keys in garbage.chunks(1000) {
            store.delete_many(keys).await?;
        }
        Ok(())
    }

    /// Deletes a group, its root first and then its log; whether it existed.
    pub async fn delete_group(&self, stream: &StreamHandle, name: &str) -> EngineResult<bool> {
        let key = Self::root_key(stream, name);
        let store = &self.inner.store;
        let Some(root) = store.get(&key).await? else {
            return Ok(false);
        };
        store.delete(&key).await?;
        let incarnation = RootForm::parse(&root.bytes).map_or(0, |f| f.incarnation());
        let dir = layout::group_incarnation_dir(&stream.core.id, name, incarnation);
        loop {
            let page = store.list(&dir, None, 1000).await?;
            if page.keys.is_empty() {
                break;
            }
            store.delete_many(&page.keys).await?;
            if !page.truncated {
                break;
            }
        }
        Ok(true)
    }

    /// The roots of the groups of the live stream `stream_id` that `listed` (a listing of
    /// its directory) shows a root or log object of, read now.
    pub(super) async fn group_log_roots(
        &self,
        stream_id: &str,
        listed: impl IntoIterator<Item = &str>,
    ) -> EngineResult<GroupLogRoots> {
        let names: BTreeSet<String> = listed
            .into_iter()
            .filter_map(|key| match layout::parse_data_key(key)?.1 {
                layout::DataObject::Group { name } | layout::DataObject::GroupLog { name, .. } => {
                    Some(name)
                }
                _ => None,
            })
            .collect();
        let mut roots = GroupLogRoots::new();
        for name in names {
            let key = layout::group_key(stream_id, &name);
            if let Some(bytes) = self.inner.store.get_bytes(&key).await?
                && let Ok(form) = RootForm::parse(&bytes)
            {
                roots.insert(name, (form.incarnation(), form.checkpoint(), form.floor()));
            }
        }
        Ok(roots)
    }

    /// Every group of the stream, by name.
    pub async fn groups(&self, stream: &StreamHandle) -> EngineResult<Vec<GroupState>> {
        let dir = layout::groups_dir(&stream.core.id);
        let (keys, _) = self.inner.catalog.list_names(&dir, "", "", 10_000).await?;
        let mut groups = Vec::new();
        for key in keys {
            let Some(name) = layout::name_in_dir(&dir, &key) else {
                continue;
            };
            if let Some(g) = self.group(stream, &name).await? {
                groups.push(g.state);
            }
        }
        Ok(groups)
    }
}
