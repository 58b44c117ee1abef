//! Where consumer groups are kept: each group is one object
//! (`data/<stream-id>/groups/<name>`, [`GroupState`]) changed only by conditional writes,
//! so consumers on any node agree on every delivery; the group goes when the stream's data
//! goes. What a group does is [`super::group_state`].

use super::{
    Engine, StreamHandle,
    catalog::{Versioned, Written},
    error::{EngineError, EngineResult},
    group_state::GroupState,
    layout,
};

impl Engine {
    pub async fn group(
        &self,
        stream: &StreamHandle,
        name: &str,
    ) -> EngineResult<Option<Versioned<GroupState>>> {
        self.inner
            .catalog
            .get(&layout::group_key(&stream.core.id, name))
            .await
    }

    /// Creates a group; a name in use is `AlreadyExists`.
    pub async fn create_group(
        &self,
        stream: &StreamHandle,
        group: &GroupState,
    ) -> EngineResult<()> {
        let key = layout::group_key(&stream.core.id, &group.name);
        match self.inner.catalog.create(&key, group).await? {
            Written::Done(_) => Ok(()),
            Written::Raced => Err(EngineError::AlreadyExists(format!(
                "consumer group {} already exists",
                group.name
            ))),
        }
    }

    /// Writes `group` over the version read with `etag`, bumping its version.
    pub async fn replace_group(
        &self,
        stream: &StreamHandle,
        mut group: GroupState,
        etag: &crate::storage::ETag,
    ) -> EngineResult<Written<GroupState>> {
        group.version += 1;
        let key = layout::group_key(&stream.core.id, &group.name);
        self.inner.catalog.replace(&key, &group, etag).await
    }

    /// Whether the group is still the version `etag` names (a conditional read: no bytes
    /// move when it is).
    pub async fn group_is_current(
        &self,
        stream: &StreamHandle,
        name: &str,
        etag: &crate::storage::ETag,
    ) -> EngineResult<bool> {
        let key = layout::group_key(&stream.core.id, name);
        Ok(matches!(
            self.inner.store.revalidate(&key, etag).await?,
            crate::storage::Revalidated::Unchanged
        ))
    }

    /// Deletes a group; whether it existed.
    pub async fn delete_group(&self, stream: &StreamHandle, name: &str) -> EngineResult<bool> {
        let key = layout::group_key(&stream.core.id, name);
        if self.inner.catalog.get::<GroupState>(&key).await?.is_none() {
            return Ok(false);
        }
        self.inner.store.delete(&key).await?;
        Ok(true)
    }

    /// Every group of the stream, by name.
    pub async fn groups(&self, stream: &StreamHandle) -> EngineResult<Vec<GroupState>> {
        let dir = layout::groups_dir(&stream.core.id);
        let listed = self.inner.catalog.list_names(&dir, "", "", 10_000).await?;
        Ok(self.inner.catalog.fetch_listed(listed).await?.0)
    }
}
