//! Deleting basins and streams: a deletion mark first (after which nothing new can be
//! written), the objects after a grace period, the catalog entry last; interrupted
//! deletions are resumed by the next process.

use std::{sync::Arc, time::Duration};

use tracing::{info, warn};

use super::{
    Engine, EngineError, EngineResult,
    catalog::{StreamEntry, Written},
    handle::StreamState,
    layout,
    manifest::Manifest,
    retry::Races,
};
use crate::storage::PutOutcome;

impl Engine {
    /// Marks the basin deleted and removes its streams and then the basin in the
    /// background.
    pub async fn delete_basin(&self, name: &str) -> EngineResult<()> {
        let mut races = Races::new("basin", self.random());
        loop {
            races.next().await?;
            let v = self.basin(name).await?;
            if v.entry.deleted_at.is_some() {
                return Ok(());
            }
            let mut entry = v.entry;
            entry.version += 1;
            entry.deleted_at = Some(self.clock().now());
            if let Written::Done(_) = self.inner.catalog.replace_basin(&entry, &v.etag).await? {
                let engine = self.clone();
                let name = name.to_owned();
                tokio::spawn(async move { engine.finish_basin_deletion(&name).await });
                return Ok(());
            }
        }
    }

    pub(super) async fn finish_basin_deletion(&self, basin: &str) {
        tokio::time::sleep(self.inner.config.deletion_grace).await;
        loop {
            let result: EngineResult<bool> = async {
                let streams = self.inner.catalog.all_streams(basin).await?;
                if streams.is_empty() {
                    return Ok(true);
                }
                for s in streams {
                    self.mark_stream_deleted(basin, &s.name).await.ok();
                    self.finish_stream_deletion(basin, &s).await?;
                }
                Ok(false)
            }
            .await;
            match result {
                Ok(true) => break,
                Ok(false) => continue,
                Err(e) => {
                    warn!(basin, error = %e, "basin deletion stalled; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        // Streams created concurrently with the deletion mark have had a grace period to
        // appear; check once more before the basin goes.
        tokio::time::sleep(self.inner.config.deletion_grace).await;
        match self.inner.catalog.all_streams(basin).await {
            Ok(s) if s.is_empty() => {
                if let Err(e) = self.inner.catalog.remove_basin(basin).await {
                    warn!(basin, error = %e, "removing basin entry failed");
                } else {
                    info!(basin, "basin deleted");
                }
            }
            _ => Box::pin(self.finish_basin_deletion(basin)).await,
        }
    }

    pub async fn delete_stream(&self, basin: &str, name: &str) -> EngineResult<()> {
        let entry = self.mark_stream_deleted(basin, name).await?;
        let engine = self.clone();
        let basin = basin.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(engine.inner.config.deletion_grace).await;
            if let Err(e) = engine.finish_stream_deletion(&basin, &entry).await {
                warn!(basin, stream = %entry.name, error = %e, "stream deletion stalled");
            }
        });
        Ok(())
    }

    /// Sets the deletion time on the catalog entry and the manifest, after which no
    /// append can succeed. Idempotent.
    pub(super) async fn mark_stream_deleted(
        &self,
        basin: &str,
        name: &str,
    ) -> EngineResult<StreamEntry> {
        let entry = self.mark_entry_deleted(basin, name).await?;
        self.mark_manifest_deleted(basin, &entry).await?;
        Ok(entry)
    }

    /// Sets the deletion time on the stream's catalog entry (the one its name names now).
    async fn mark_entry_deleted(&self, basin: &str, name: &str) -> EngineResult<StreamEntry> {
        let mut races = Races::new("stream", self.random());
        let entry = loop {
            races.next().await?;
            let v = self
                .inner
                .catalog
                .stream(basin, name)
                .await?
                .ok_or_else(|| EngineError::StreamNotFound(name.to_owned()))?;
            if v.entry.deleted_at.is_some() {
                break v.entry;
            }
            let mut entry = v.entry;
            entry.version += 1;
            entry.deleted_at = Some(self.clock().now());
            if let Written::Done(v) = self
                .inner
                .catalog
                .replace_stream(basin, &entry, &v.etag)
                .await?
            {
                break v.entry;
            }
        };
        Ok(entry)
    }

    /// Sets the deletion time on the manifest of the stream `entry` names (by its data
    /// id, so never on a successor of the same name), after which no append can succeed.
    async fn mark_manifest_deleted(&self, basin: &str, entry: &StreamEntry) -> EngineResult<()> {
        let name = entry.name.as_str();
        let key = layout::manifest_key(&entry.id);
        let mut races = Races::new("stream", self.random());
        loop {
            races.next().await?;
            let Some(obj) = self.inner.store.get(&key).await? else {
                break;
            };
            let manifest = Manifest::decode_object(&obj.bytes)
                .map_err(|e| EngineError::Corrupt(e.to_string()))?;
            if manifest.is_deleted() {
                break;
            }
            let mut next = manifest.next_version();
            next.deleted_at_ms = Some(self.clock().now_ms());
            if let PutOutcome::Written(etag) = self
                .inner
                .store
                .put_if_match(&key, next.encode_for_store().0, &obj.etag)
                .await?
            {
                self.sample_deleted(basin, name, next.created_at_ms);
                if let Some(h) = self.cached_handle(basin, name)
                    && h.core.id == entry.id
                {
                    h.core.publish(Arc::new(StreamState::new(next, etag)?));
                }
                break;
            }
        }
        if self
            .cached_handle(basin, name)
            .is_some_and(|h| h.core.id == entry.id)
        {
            self.forget_stream(basin, name);
        }
        Ok(())
    }

    /// Removes a deletion-marked stream's objects, then its catalog entry.
    pub(super) async fn finish_stream_deletion(
        &self,
        basin: &str,
        entry: &StreamEntry,
    ) -> EngineResult<()> {
        let dir = layout::stream_data_dir(&entry.id);
        let manifest_key = layout::manifest_key(&entry.id);
        loop {
            let page = self.inner.store.list(&dir, None, 1000).await?;
            let keys: Vec<String> = page
                .keys
                .into_iter()
                .filter(|k| *k != manifest_key)
                .collect();
            self.inner.store.delete_many(&keys).await?;
            if !page.truncated {
                break;
            }
        }
        self.inner.store.delete(&manifest_key).await?;
        self.inner.gc_marks.forget(&entry.id);
        // Only remove the entry that was deleted, never a successor of the same name.
        if let Some(v) = self.inner.catalog.stream(basin, &entry.name).await?
            && v.entry.id == entry.id
        {
            self.inner
                .catalog
                .remove_stream(basin, &entry.name, &v.etag)
                .await?;
        }
        Ok(())
    }

    /// Finishes the deletion of the stream `entry` (marked deleted when listed): by its
    /// data id, since its name may belong to a new stream by now.
    async fn resume_stream_deletion(&self, basin: &str, entry: &StreamEntry) {
        let result = match self.mark_manifest_deleted(basin, entry).await {
            Ok(()) => self.finish_stream_deletion(basin, entry).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            warn!(basin, stream = %entry.name, error = %e, "stream deletion stalled");
        }
    }

    /// Finishes the deletions a previous process of this deployment left pending.
    pub(super) async fn resume_deletions(&self) -> EngineResult<()> {
        let mut after = String::new();
        loop {
            let (basins, more) = self.inner.catalog.list_basins("", &after, 1000).await?;
            for b in &basins {
                if b.deleted_at.is_some() {
                    let engine = self.clone();
                    let name = b.name.clone();
                    tokio::spawn(async move { engine.finish_basin_deletion(&name).await });
                    continue;
                }
                let listed = self.inner.catalog.all_listed_streams(&b.name).await?;
                for l in listed.iter().filter(|l| l.deleted_at.is_some()) {
                    let Some(s) = self.inner.catalog.stream(&b.name, &l.name).await? else {
                        continue;
                    };
                    let (engine, basin, s) = (self.clone(), b.name.clone(), s.entry);
                    if s.deleted_at.is_some() {
                        tokio::spawn(
                            async move { engine.resume_stream_deletion(&basin, &s).await },
                        );
                    }
                }
            }
            match (more, basins.last()) {
                (true, Some(last)) => after = last.name.clone(),
                _ => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use s2_common::config::OptionalStreamConfig;

    use crate::{
        engine::{AutoCreate, testing::*},
        storage,
    };

    /// A deletion resumed from an old listing of the catalog finishes the stream it
    /// listed, not the new stream that took its name meanwhile.
    #[tokio::test]
    async fn a_resumed_deletion_spares_a_new_stream_of_the_same_name() {
        let (engine, old) = engine_with_stream(storage::memory(), Duration::ZERO).await;
        let listed = engine.mark_stream_deleted("test-basin", "s").await.unwrap();
        engine
            .finish_stream_deletion("test-basin", &listed)
            .await
            .unwrap();
        drop(old);
        engine
            .create_stream("test-basin", "s", OptionalStreamConfig::default(), None)
            .await
            .unwrap();

        engine.resume_stream_deletion("test-basin", &listed).await;

        let new = engine
            .open("test-basin", "s", AutoCreate::No)
            .await
            .expect("the new stream is alive");
        assert_ne!(new.core.id, listed.id);
        engine
            .append(&new, batch(&[b"still here"]), None)
            .await
            .unwrap();
    }
}
