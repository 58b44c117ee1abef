//! Catalog objects: one per basin, one per stream, each created with `If-None-Match` and
//! changed with `If-Match`, so racing control-plane requests from any node resolve to
//! exactly one outcome.
//!
//! A basin entry holds the basin's config. A stream entry holds only identity (name,
//! immutable data id, creation and deletion times, the creating request's token); the
//! stream's config lives in its manifest, where every append reads it. An access token
//! entry holds the token's info and a digest of its secret.

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{
    error::{EngineError, EngineResult},
    layout,
    markers::{self, ListedStream},
};
use crate::storage::{DynStore, ETag, PutOutcome};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BasinEntry {
    /// Bumped on every write so that no two writes have equal bytes.
    pub version: u64,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub deleted_at: Option<OffsetDateTime>,
    pub config: s2_api::v1::config::BasinConfig,
    #[serde(default)]
    pub request_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamEntry {
    pub version: u64,
    pub name: String,
    /// Where the stream's data lives: `data/<id>/…`. Never reused.
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub deleted_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub request_token: Option<String>,
    /// The config the creating request asked for, to recognise an idempotent retry.
    #[serde(default)]
    pub requested_config: Option<serde_json::Value>,
    /// The cipher of the stream's records: its basin's `stream_cipher` when it was
    /// created, never changed after.
    #[serde(default)]
    pub cipher: Option<s2_common::encryption::EncryptionAlgorithm>,
}

impl From<&StreamEntry> for ListedStream {
    fn from(e: &StreamEntry) -> Self {
        Self {
            name: e.name.clone(),
            created_at: e.created_at,
            deleted_at: e.deleted_at,
            cipher: e.cipher,
        }
    }
}

/// An issued access token. The secret itself is never stored: whoever presents it is
/// checked against `secret_sha256`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessTokenEntry {
    pub info: s2_api::v1::access::AccessTokenInfo,
    /// Lowercase hex of the SHA-256 of the secret.
    pub secret_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

/// A catalog entry with the version it was read at.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub entry: T,
    pub etag: ETag,
}

/// Outcome of a conditional catalog write.
pub enum Written<T> {
    Done(Versioned<T>),
    /// Someone else changed the object first; re-read and decide again.
    Raced,
}

/// Reads and writes catalog objects.
#[derive(Clone)]
pub struct Catalog {
    store: DynStore,
}

const LIST_FETCH_CONCURRENCY: usize = 32;

impl Catalog {
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }

    pub(super) async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        key: &str,
    ) -> EngineResult<Option<Versioned<T>>> {
        let Some(obj) = self.store.get(key).await? else {
            return Ok(None);
        };
        let entry = serde_json::from_slice(&obj.bytes)
            .map_err(|e| EngineError::Corrupt(format!("catalog object {key}: {e}")))?;
        Ok(Some(Versioned {
            entry,
            etag: obj.etag,
        }))
    }

    pub(super) async fn create<T: Serialize + Clone>(
        &self,
        key: &str,
        entry: &T,
    ) -> EngineResult<Written<T>> {
        let bytes = serde_json::to_vec(entry).expect("catalog entries serialize");
        Ok(match self.store.put_if_absent(key, bytes.into()).await? {
            PutOutcome::Written(etag) => Written::Done(Versioned {
                entry: entry.clone(),
                etag,
            }),
            PutOutcome::PreconditionFailed => Written::Raced,
        })
    }

    pub(super) async fn replace<T: Serialize + Clone>(
        &self,
        key: &str,
        entry: &T,
        etag: &ETag,
    ) -> EngineResult<Written<T>> {
        let bytes = serde_json::to_vec(entry).expect("catalog entries serialize");
        Ok(
            match self.store.put_if_match(key, bytes.into(), etag).await? {
                PutOutcome::Written(etag) => Written::Done(Versioned {
                    entry: entry.clone(),
                    etag,
                }),
                PutOutcome::PreconditionFailed => Written::Raced,
            },
        )
    }

    pub async fn basin(&self, name: &str) -> EngineResult<Option<Versioned<BasinEntry>>> {
        self.get(&layout::basin_key(name)).await
    }

    pub async fn create_basin(&self, entry: &BasinEntry) -> EngineResult<Written<BasinEntry>> {
        self.create(&layout::basin_key(&entry.name), entry).await
    }

    pub async fn replace_basin(
        &self,
        entry: &BasinEntry,
        etag: &ETag,
    ) -> EngineResult<Written<BasinEntry>> {
        self.replace(&layout::basin_key(&entry.name), entry, etag)
            .await
    }

    pub async fn remove_basin(&self, name: &str) -> EngineResult<()> {
        Ok(self.store.delete(&layout::basin_key(name)).await?)
    }

    pub async fn stream(
        &self,
        basin: &str,
        name: &str,
    ) -> EngineResult<Option<Versioned<StreamEntry>>> {
        self.get(&layout::stream_key(basin, name)).await
    }

    /// Creates the stream's entry, then its listing marker.
    pub async fn create_stream(
        &self,
        basin: &str,
        entry: &StreamEntry,
    ) -> EngineResult<Written<StreamEntry>> {
        let written = self
            .create(&layout::stream_key(basin, &entry.name), entry)
            .await?;
        if let Written::Done(v) = &written {
            markers::write_marker(&self.store, basin, &ListedStream::from(&v.entry), &v.etag).await;
        }
        Ok(written)
    }

    /// Replaces version `etag` of the stream's entry, then writes the new version's
    /// listing marker and deletes the replaced version's.
    pub async fn replace_stream(
        &self,
        basin: &str,
        entry: &StreamEntry,
        etag: &ETag,
    ) -> EngineResult<Written<StreamEntry>> {
        let written = self
            .replace(&layout::stream_key(basin, &entry.name), entry, etag)
            .await?;
        if let Written::Done(v) = &written {
            markers::write_marker(&self.store, basin, &ListedStream::from(&v.entry), &v.etag).await;
            markers::delete_markers(&self.store, basin, &entry.name, etag).await;
        }
        Ok(written)
    }

    /// Removes the stream's entry, read at version `etag`, then that version's markers.
    pub async fn remove_stream(&self, basin: &str, name: &str, etag: &ETag) -> EngineResult<()> {
        self.store.delete(&layout::stream_key(basin, name)).await?;
        markers::delete_markers(&self.store, basin, name, etag).await;
        Ok(())
    }

    pub(super) fn store(&self) -> &DynStore {
        &self.store
    }

    pub async fn access_token(&self, id: &str) -> EngineResult<Option<AccessTokenEntry>> {
        Ok(self
            .get(&layout::access_token_key(id))
            .await?
            .map(|v| v.entry))
    }

    pub async fn create_access_token(
        &self,
        entry: &AccessTokenEntry,
    ) -> EngineResult<Written<AccessTokenEntry>> {
        self.create(&layout::access_token_key(entry.info.id.as_ref()), entry)
            .await
    }

    pub async fn remove_access_token(&self, id: &str) -> EngineResult<()> {
        Ok(self.store.delete(&layout::access_token_key(id)).await?)
    }

    /// Access tokens whose ids start with `prefix` and sort after `start_after`, in id order.
    pub async fn list_access_tokens(
        &self,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> EngineResult<(Vec<AccessTokenEntry>, bool)> {
        let keys = self
            .list_names(layout::access_tokens_dir(), prefix, start_after, limit)
            .await?;
        self.fetch_listed(keys).await
    }

    /// Basins whose names start with `prefix` and sort after `start_after`, in name order.
    pub async fn list_basins(
        &self,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> EngineResult<(Vec<BasinEntry>, bool)> {
        let keys = self
            .list_names(layout::basins_dir(), prefix, start_after, limit)
            .await?;
        self.fetch_listed(keys).await
    }

    /// Every stream of `basin` with its whole entry, in name order; for deleting a basin.
    pub async fn all_streams(&self, basin: &str) -> EngineResult<Vec<StreamEntry>> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let keys = self
                .list_names(&layout::streams_dir(basin), "", &after, 1000)
                .await?;
            let (page, more): (Vec<StreamEntry>, _) = self.fetch_listed(keys).await?;
            if let Some(last) = page.last() {
                after = last.name.clone();
            }
            out.extend(page);
            if !more {
                return Ok(out);
            }
        }
    }

    /// Keys of catalog objects in `dir` whose decoded names match, at most `limit`, and
    /// whether more match.
    pub(super) async fn list_names(
        &self,
        dir: &str,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> EngineResult<(Vec<String>, bool)> {
        let (encoded_prefix, mut offset) = list_start(dir, prefix, start_after);
        let mut keys = Vec::new();
        loop {
            let page = self
                .store
                .list(dir, offset.as_deref(), (limit + 1).max(100))
                .await?;
            for key in &page.keys {
                if !key.starts_with(&encoded_prefix) {
                    return Ok((keys, false));
                }
                let Some(name) = layout::name_in_dir(dir, key) else {
                    continue;
                };
                if !name.starts_with(prefix) || name.as_str() <= start_after {
                    continue;
                }
                if keys.len() == limit {
                    return Ok((keys, true));
                }
                keys.push(key.clone());
            }
            match (page.truncated, page.keys.last()) {
                (true, Some(last)) => offset = Some(last.clone()),
                _ => return Ok((keys, false)),
            }
        }
    }

    pub(super) async fn fetch_listed<T>(
        &self,
        (keys, more): (Vec<String>, bool),
    ) -> EngineResult<(Vec<T>, bool)>
    where
        T: for<'de> Deserialize<'de>,
    {
        let entries: Vec<Option<Versioned<T>>> = futures::stream::iter(keys)
            .map(|key| async move { self.get::<T>(&key).await })
            .buffered(LIST_FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        // An entry removed between LIST and GET is simply no longer there.
        Ok((
            entries.into_iter().flatten().map(|v| v.entry).collect(),
            more,
        ))
    }
}

/// Where a listing of the names in `dir` that start with `prefix` and sort after
/// `start_after` begins: the encoded prefix every listed key starts with, and the LIST
/// offset. Names sort like their keys, so the listing starts at the later of the two
/// bounds; no key equals an unterminated encoded prefix, so "after" it means "from" it.
pub(super) fn list_start(dir: &str, prefix: &str, start_after: &str) -> (String, Option<String>) {
    let encoded_prefix = format!("{dir}{}", layout::encode_name_prefix(prefix));
    let mut offset =
        (!start_after.is_empty()).then(|| format!("{dir}{}", layout::encode_name(start_after)));
    if !prefix.is_empty()
        && offset
            .as_deref()
            .is_none_or(|o| o < encoded_prefix.as_str())
    {
        offset = Some(encoded_prefix.clone());
    }
    (encoded_prefix, offset)
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage;

    fn stream_entry(name: &str) -> StreamEntry {
        StreamEntry {
            version: 1,
            name: name.into(),
            id: format!("id-{name}"),
            created_at: OffsetDateTime::UNIX_EPOCH,
            deleted_at: None,
            request_token: None,
            requested_config: None,
            cipher: None,
        }
    }

    #[tokio::test]
    async fn lists_streams_in_name_order_with_prefix_and_start_after() {
        let catalog = Catalog::new(storage::memory());
        let names = ["b", "a/b", "a", "a-", "ab", "b/c", "c", "名前", "a\u{7f}"];
        for n in names {
            assert!(matches!(
                catalog
                    .create_stream("basin", &stream_entry(n))
                    .await
                    .unwrap(),
                Written::Done(_)
            ));
        }
        let names_of = |v: Vec<ListedStream>| v.into_iter().map(|e| e.name).collect::<Vec<_>>();
        let mut sorted = names.to_vec();
        sorted.sort();
        let (all, more) = catalog.list_streams("basin", "", "", 100).await.unwrap();
        assert_eq!(names_of(all), sorted);
        assert!(!more);

        let (page, more) = catalog.list_streams("basin", "a", "", 3).await.unwrap();
        assert_eq!(names_of(page), vec!["a", "a-", "a/b"]);
        assert!(more);
        let (page, more) = catalog.list_streams("basin", "a", "a/b", 3).await.unwrap();
        assert_eq!(names_of(page), vec!["ab", "a\u{7f}"]);
        assert!(!more);
        let (page, _) = catalog.list_streams("basin", "b", "a", 10).await.unwrap();
        assert_eq!(names_of(page), vec!["b", "b/c"]);
        let (page, _) = catalog.list_streams("basin", "", "b/c", 10).await.unwrap();
        assert_eq!(names_of(page), vec!["c", "名前"]);
        assert_eq!(
            catalog.all_streams("basin").await.unwrap().len(),
            names.len()
        );
        let (none, more) = catalog.list_streams("other", "", "", 10).await.unwrap();
        assert!(none.is_empty() && !more);
    }

    #[tokio::test]
    async fn creation_races_have_one_winner() {
        let catalog = Catalog::new(storage::memory());
        let e = stream_entry("s");
        assert!(matches!(
            catalog.create_stream("b", &e).await.unwrap(),
            Written::Done(_)
        ));
        assert!(matches!(
            catalog.create_stream("b", &e).await.unwrap(),
            Written::Raced
        ));
    }
}
