//! Access tokens as the catalog keeps them; what a token may do is the surfaces' concern.

use super::{
    Engine, EngineError, EngineResult,
    catalog::{AccessTokenEntry, Written},
};

impl Engine {
    pub async fn access_token(&self, id: &str) -> EngineResult<Option<AccessTokenEntry>> {
        self.inner.catalog.access_token(id).await
    }

    /// Stores a new token; an id already in use is `AlreadyExists`, whatever its scope.
    pub async fn issue_access_token(&self, entry: &AccessTokenEntry) -> EngineResult<()> {
        match self.inner.catalog.create_access_token(entry).await? {
            Written::Done(_) => Ok(()),
            Written::Raced => Err(EngineError::AlreadyExists(format!(
                "access token {} already exists",
                entry.info.id.as_ref() as &str
            ))),
        }
    }

    /// Removes a token, returning what it was.
    pub async fn revoke_access_token(&self, id: &str) -> EngineResult<AccessTokenEntry> {
        let entry = self
            .inner
            .catalog
            .access_token(id)
            .await?
            .ok_or_else(|| EngineError::AccessTokenNotFound(id.to_owned()))?;
        self.inner.catalog.remove_access_token(id).await?;
        Ok(entry)
    }

    pub async fn list_access_tokens(
        &self,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> EngineResult<(Vec<AccessTokenEntry>, bool)> {
        self.inner
            .catalog
            .list_access_tokens(prefix, start_after, limit)
            .await
    }
}
