//! The streams' control plane: creating, listing and reconfiguring streams. A stream is a
//! catalog entry (its identity) plus a manifest (its config and index); creation writes the
//! manifest first, so no catalog entry ever names a stream without one.

use s2_common::config::{BasinConfig, OptionalStreamConfig, StreamConfig, StreamReconfiguration};

use super::{
    AutoCreate, Engine, EngineError, EngineResult, Provisioned,
    catalog::{StreamEntry, Written},
    handle::{StorageClass, config_json, parse_config},
    layout,
    manifest::Manifest,
    markers::ListedStream,
    retry::Races,
};
use crate::storage::PutOutcome;

/// A stream config with every field resolved: the request's fields, else the basin's
/// defaults, else S2's defaults (storage class `express`).
pub fn resolve_stream_config(requested: OptionalStreamConfig, basin: &BasinConfig) -> StreamConfig {
    let mut resolved = requested.merge(basin.default_stream_config.clone());
    if resolved.storage_class.is_none() {
        resolved.storage_class = Some(StorageClass::Express.name().into());
    }
    resolved
}

fn validate(config: &OptionalStreamConfig) -> EngineResult<()> {
    config
        .validate()
        .map_err(|e| EngineError::Invalid(e.to_string()))
}

/// The config a creating request asked for, as kept to recognise its retries.
fn requested_json(config: &OptionalStreamConfig) -> serde_json::Value {
    serde_json::to_value(s2_api::v1::config::StreamConfig::from(StreamConfig::from(
        config.clone(),
    )))
    .expect("config serializes")
}

impl StreamEntry {
    /// A new stream's catalog entry, under a data id never used before.
    fn first(
        name: &str,
        requested: serde_json::Value,
        request_token: Option<String>,
        basin: &BasinConfig,
        (created_at, id): (time::OffsetDateTime, u128),
    ) -> Self {
        Self {
            version: 1,
            name: name.to_owned(),
            id: format!("{id:032x}"),
            created_at,
            deleted_at: None,
            request_token,
            requested_config: Some(requested),
            cipher: basin.stream_cipher,
        }
    }
}

impl Engine {
    /// Streams of `basin` whose names start with `prefix` and sort after `start_after`, in
    /// name order, at most `limit`, and whether more match; from LIST requests alone
    /// where every entry has its listing marker ([`super::listing`]).
    pub async fn list_streams(
        &self,
        basin: &str,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> EngineResult<(Vec<ListedStream>, bool)> {
        self.basin(basin).await?;
        self.inner
            .catalog
            .list_streams(basin, prefix, start_after, limit)
            .await
    }

    /// Creates the stream; a retry of the same request (same token and config) finds it
    /// `Unchanged`, anything else that exists is `AlreadyExists`.
    pub async fn create_stream(
        &self,
        basin: &str,
        name: &str,
        config: OptionalStreamConfig,
        request_token: Option<String>,
    ) -> EngineResult<Provisioned<StreamEntry>> {
        validate(&config)?;
        let basin_config = self.live_basin(basin).await?.entry.basin_config()?;
        let requested = requested_json(&config);
        let resolved = resolve_stream_config(config, &basin_config);
        let mut races = Races::new("stream", self.random());
        loop {
            races.next().await?;
            if let Some(existing) = self.inner.catalog.stream(basin, name).await? {
                let existing = existing.entry;
                if existing.deleted_at.is_some() {
                    return Err(EngineError::StreamDeletionPending(name.to_owned()));
                }
                if request_token.is_some()
                    && existing.request_token == request_token
                    && existing.requested_config.as_ref() == Some(&requested)
                {
                    return Ok(Provisioned::Unchanged(existing));
                }
                return Err(EngineError::AlreadyExists("stream already exists".into()));
            }
            let entry = StreamEntry::first(
                name,
                requested.clone(),
                request_token.clone(),
                &basin_config,
                (self.clock().now(), self.random().u128()),
            );
            if let Some(v) = self.create_stream_objects(basin, entry, &resolved).await? {
                return Ok(Provisioned::Created(v));
            }
        }
    }

    /// Writes a new stream's manifest, then its catalog entry. `None` if another request
    /// created the stream first (its manifest is then removed again).
    async fn create_stream_objects(
        &self,
        basin: &str,
        entry: StreamEntry,
        config: &StreamConfig,
    ) -> EngineResult<Option<StreamEntry>> {
        let manifest = Manifest::new(entry.id.clone(), config_json(config), self.clock().now_ms());
        let key = layout::manifest_key(&entry.id);
        match self
            .inner
            .store
            .put_if_absent(&key, manifest.encode_for_store().0)
            .await?
        {
            PutOutcome::Written(_) => {}
            PutOutcome::PreconditionFailed => {
                return Err(EngineError::Corrupt(format!(
                    "stream id collision at {key}"
                )));
            }
        }
        match self.inner.catalog.create_stream(basin, &entry).await {
            Ok(Written::Done(v)) => Ok(Some(v.entry)),
            Ok(Written::Raced) => {
                self.inner.store.delete(&key).await.ok();
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes the stream exist with exactly `config` (resolved against the basin's
    /// defaults), creating it or rewriting its manifest's config.
    pub async fn ensure_stream(
        &self,
        basin: &str,
        name: &str,
        config: OptionalStreamConfig,
    ) -> EngineResult<Provisioned<StreamEntry>> {
        validate(&config)?;
        let basin_config = self.live_basin(basin).await?.entry.basin_config()?;
        let resolved = resolve_stream_config(config.clone(), &basin_config);
        let mut races = Races::new("stream", self.random());
        let existing = loop {
            races.next().await?;
            match self.inner.catalog.stream(basin, name).await? {
                None => {
                    let entry = StreamEntry::first(
                        name,
                        requested_json(&config),
                        None,
                        &basin_config,
                        (self.clock().now(), self.random().u128()),
                    );
                    if let Some(v) = self.create_stream_objects(basin, entry, &resolved).await? {
                        return Ok(Provisioned::Created(v));
                    }
                }
                Some(v) if v.entry.deleted_at.is_some() => {
                    return Err(EngineError::StreamDeletionPending(name.to_owned()));
                }
                Some(v) => break v.entry,
            }
        };
        let handle = self.open(basin, name, AutoCreate::No).await?;
        let mut changed = false;
        let target = config_json(&resolved);
        handle
            .core
            .modify_manifest(|m| {
                changed = m.config_json != target;
                if changed {
                    m.config_json.clone_from(&target);
                }
                Ok(changed)
            })
            .await?;
        Ok(if changed {
            Provisioned::Updated(existing)
        } else {
            Provisioned::Unchanged(existing)
        })
    }

    pub async fn stream_config(&self, basin: &str, name: &str) -> EngineResult<StreamConfig> {
        let handle = self.open(basin, name, AutoCreate::No).await?;
        let state = handle.core.refresh().await?;
        if state.manifest.is_deleted() {
            return Err(EngineError::StreamDeletionPending(name.to_owned()));
        }
        Ok(state.config.clone())
    }

    pub async fn reconfigure_stream(
        &self,
        basin: &str,
        name: &str,
        reconfiguration: StreamReconfiguration,
    ) -> EngineResult<StreamConfig> {
        let basin_config = self.live_basin(basin).await?.entry.basin_config()?;
        let handle = self.open(basin, name, AutoCreate::No).await?;
        let state = handle
            .core
            .modify_manifest(|m| {
                let current = parse_config(&m.config_json)?;
                let requested =
                    OptionalStreamConfig::from(current).reconfigure(reconfiguration.clone());
                validate(&requested)?;
                m.config_json = config_json(&resolve_stream_config(requested, &basin_config));
                Ok(true)
            })
            .await?;
        Ok(state.config.clone())
    }
}
