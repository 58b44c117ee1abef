//! Basins: their catalog entries, created, reconfigured and listed. Deletion is in
//! `deletion.rs`.

use s2_common::config::{BasinConfig, BasinReconfiguration};

use super::{
    Engine, EngineError, EngineResult, Provisioned,
    catalog::{BasinEntry, Versioned, Written},
    retry::Races,
};

impl BasinEntry {
    /// A basin's first catalog entry.
    fn first(
        name: &str,
        config: s2_api::v1::config::BasinConfig,
        request_token: Option<String>,
        created_at: time::OffsetDateTime,
    ) -> Self {
        Self {
            version: 1,
            name: name.to_owned(),
            created_at,
            deleted_at: None,
            config,
            request_token,
        }
    }

    /// The basin's config as S2 types it.
    pub(super) fn basin_config(&self) -> EngineResult<BasinConfig> {
        self.config
            .clone()
            .try_into()
            .map_err(|e: s2_common::ValidationError| EngineError::Corrupt(e.to_string()))
    }
}

fn validated(config: BasinConfig) -> EngineResult<s2_api::v1::config::BasinConfig> {
    config
        .validate()
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
    Ok(config.into())
}

impl Engine {
    pub async fn list_basins(
        &self,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> EngineResult<(Vec<BasinEntry>, bool)> {
        self.inner
            .catalog
            .list_basins(prefix, start_after, limit)
            .await
    }

    pub(super) async fn basin(&self, name: &str) -> EngineResult<Versioned<BasinEntry>> {
        self.inner
            .catalog
            .basin(name)
            .await?
            .ok_or_else(|| EngineError::BasinNotFound(name.to_owned()))
    }

    /// The basin, which must exist and not be being deleted.
    pub(super) async fn live_basin(&self, name: &str) -> EngineResult<Versioned<BasinEntry>> {
        let basin = self.basin(name).await?;
        if basin.entry.deleted_at.is_some() {
            return Err(EngineError::BasinDeletionPending(name.to_owned()));
        }
        Ok(basin)
    }

    pub async fn basin_entry(&self, name: &str) -> EngineResult<BasinEntry> {
        Ok(self.basin(name).await?.entry)
    }

    /// Creates the basin; a retry of the same request (same token and config) finds it
    /// `Unchanged`, anything else that exists is `AlreadyExists`.
    pub async fn create_basin(
        &self,
        name: &str,
        config: BasinConfig,
        request_token: Option<String>,
    ) -> EngineResult<Provisioned<BasinEntry>> {
        let entry = BasinEntry::first(
            name,
            validated(config)?,
            request_token.clone(),
            self.clock().now(),
        );
        let mut races = Races::new("basin", self.random());
        loop {
            races.next().await?;
            if let Written::Done(v) = self.inner.catalog.create_basin(&entry).await? {
                return Ok(Provisioned::Created(v.entry));
            }
            let Some(existing) = self.inner.catalog.basin(name).await? else {
                continue;
            };
            let existing = existing.entry;
            if existing.deleted_at.is_some() {
                return Err(EngineError::BasinDeletionPending(name.to_owned()));
            }
            if request_token.is_some()
                && existing.request_token == request_token
                && existing.config == entry.config
            {
                return Ok(Provisioned::Unchanged(existing));
            }
            return Err(EngineError::AlreadyExists("basin already exists".into()));
        }
    }

    /// Makes the basin exist with exactly `config`, creating or reconfiguring it.
    pub async fn ensure_basin(
        &self,
        name: &str,
        config: BasinConfig,
    ) -> EngineResult<Provisioned<BasinEntry>> {
        let api_config = validated(config)?;
        let mut races = Races::new("basin", self.random());
        loop {
            races.next().await?;
            match self.inner.catalog.basin(name).await? {
                None => {
                    let entry =
                        BasinEntry::first(name, api_config.clone(), None, self.clock().now());
                    if let Written::Done(v) = self.inner.catalog.create_basin(&entry).await? {
                        return Ok(Provisioned::Created(v.entry));
                    }
                }
                Some(v) if v.entry.deleted_at.is_some() => {
                    return Err(EngineError::BasinDeletionPending(name.to_owned()));
                }
                Some(v) if v.entry.config == api_config => {
                    return Ok(Provisioned::Unchanged(v.entry));
                }
                Some(v) => {
                    let mut entry = v.entry;
                    entry.version += 1;
                    entry.config = api_config.clone();
                    if let Written::Done(v) =
                        self.inner.catalog.replace_basin(&entry, &v.etag).await?
                    {
                        return Ok(Provisioned::Updated(v.entry));
                    }
                }
            }
        }
    }

    pub async fn reconfigure_basin(
        &self,
        name: &str,
        reconfiguration: BasinReconfiguration,
    ) -> EngineResult<BasinEntry> {
        let mut races = Races::new("basin", self.random());
        loop {
            races.next().await?;
            let v = self.live_basin(name).await?;
            let config = v.entry.basin_config()?.reconfigure(reconfiguration.clone());
            let mut entry = v.entry;
            entry.version += 1;
            entry.config = validated(config)?;
            if let Written::Done(v) = self.inner.catalog.replace_basin(&entry, &v.etag).await? {
                return Ok(v.entry);
            }
        }
    }
}
