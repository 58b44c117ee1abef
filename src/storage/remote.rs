//! Backends implemented directly by `object_store`: any S3-compatible bucket, and memory.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{
    ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, UpdateVersion,
    aws::{AmazonS3Builder, S3ConditionalPut},
    memory::InMemory,
    path::Path,
    prefix::PrefixStore,
};

use super::{
    ETag, ListPage, ListedObject, MetaPage, Object, PutOutcome, Revalidated, StorageError,
    StorageResult, Store,
};

/// Where and how to reach an S3-compatible bucket. Built from the standard AWS
/// environment by [`S3Settings::from_env`].
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

impl S3Settings {
    /// `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`), `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`, else `us-east-1`) and the static credential variables.
    pub fn from_env(bucket: impl Into<String>) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            bucket: bucket.into(),
            endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_owned()),
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: var("AWS_SESSION_TOKEN"),
        }
    }
}

/// Whether request bodies to `endpoint` (`None`: AWS's own, over TLS) must be signed: plain
/// HTTP to anything but loopback. An endpoint that does not parse is treated by its
/// scheme alone.
fn bodies_need_signing(endpoint: Option<&str>) -> bool {
    let Some(endpoint) = endpoint else {
        return false;
    };
    if !endpoint.starts_with("http://") {
        return false;
    }
    let Ok(uri) = endpoint.parse::<http::Uri>() else {
        return true;
    };
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// A [`Store`] over an `object_store` backend with native conditional writes.
#[derive(Debug)]
pub struct RemoteStore {
    inner: Arc<dyn ObjectStore>,
}

impl RemoteStore {
    pub fn memory() -> Self {
        Self {
            inner: Arc::new(InMemory::new()),
        }
    }

    /// A bucket, with every key placed under `prefix` when one is given.
    pub fn s3(settings: &S3Settings, prefix: Option<&str>) -> StorageResult<Self> {
        let bucket = s3_builder(settings)
            .build()
            .map_err(|e| StorageError::Config(e.to_string()))?;
        let inner: Arc<dyn ObjectStore> = match prefix.map(|p| p.trim_matches('/')) {
            Some(p) if !p.is_empty() => Arc::new(PrefixStore::new(bucket, path(p)?)),
            _ => Arc::new(bucket),
        };
        Ok(Self { inner })
    }
}

/// How requests to the bucket are made.
///
/// Request bodies are signed only over plain HTTP to another machine. Over TLS (the
/// default endpoint, or an `https://` one) the connection already protects a body's
/// integrity, and signing it means hashing every byte written with SHA-256 before the
/// request leaves (the largest user-space cost in a node's profile on S3, and
/// milliseconds on the path of every multi-MiB commit). Over plain HTTP that hash is the
/// only check that a body arrived as sent, except on loopback (`localhost`, `127.0.0.0/8`,
/// `[::1]`: an S3 server on the same machine), where a body crosses no link that could
/// damage it.
fn s3_builder(settings: &S3Settings) -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&settings.bucket)
        .with_region(&settings.region)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_unsigned_payload(!bodies_need_signing(settings.endpoint.as_deref()))
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..Default::default()
        })
        .with_client_options(
            ClientOptions::new()
                .with_timeout(Duration::from_secs(30))
                .with_connect_timeout(Duration::from_secs(5))
                .with_pool_idle_timeout(Duration::from_secs(60)),
        );
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
        if endpoint.starts_with("http://") {
            builder = builder
                .with_allow_http(true)
                .with_virtual_hosted_style_request(false);
        }
    }
    if let Some(id) = &settings.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &settings.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = &settings.session_token {
        builder = builder.with_token(token);
    }
    builder
}

pub(super) fn path(key: &str) -> StorageResult<Path> {
    Path::parse(key).map_err(|e| StorageError::Config(format!("invalid key {key:?}: {e}")))
}

pub(super) fn unavailable(e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { path, .. } => StorageError::NotFound(path),
        other => StorageError::Unavailable(other.to_string()),
    }
}

/// A listing entry as [`Store::list_meta`] reports it.
pub(super) fn listed(meta: &object_store::ObjectMeta) -> ListedObject {
    ListedObject {
        key: meta.location.to_string(),
        size: meta.size,
        modified_ms: u64::try_from(meta.last_modified.timestamp_millis()).ok(),
        etag: meta.e_tag.clone().map(ETag::new),
    }
}

fn etag_of(tag: Option<String>, key: &str) -> StorageResult<ETag> {
    tag.map(ETag::new)
        .ok_or_else(|| StorageError::Unavailable(format!("no ETag returned for {key}")))
}

#[async_trait]
impl Store for RemoteStore {
    async fn get(&self, key: &str) -> StorageResult<Option<Object>> {
        match self.inner.get(&path(key)?).await {
            Ok(res) => {
                let etag = etag_of(res.meta.e_tag.clone(), key)?;
                let bytes = res.bytes().await.map_err(unavailable)?;
                Ok(Some(Object { bytes, etag }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn revalidate(&self, key: &str, etag: &ETag) -> StorageResult<Revalidated> {
        let opts = GetOptions {
            if_none_match: Some(etag.as_str().to_owned()),
            ..Default::default()
        };
        match self.inner.get_opts(&path(key)?, opts).await {
            Ok(res) => {
                let new_etag = etag_of(res.meta.e_tag.clone(), key)?;
                let bytes = res.bytes().await.map_err(unavailable)?;
                if &new_etag == etag {
                    // Some servers ignore If-None-Match and answer 200 with the same object.
                    return Ok(Revalidated::Unchanged);
                }
                Ok(Revalidated::Changed(Object {
                    bytes,
                    etag: new_etag,
                }))
            }
            Err(object_store::Error::NotModified { .. }) => Ok(Revalidated::Unchanged),
            Err(object_store::Error::NotFound { .. }) => Ok(Revalidated::Missing),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn put(&self, key: &str, bytes: Bytes) -> StorageResult<ETag> {
        let res = self
            .inner
            .put(&path(key)?, PutPayload::from_bytes(bytes))
            .await
            .map_err(unavailable)?;
        etag_of(res.e_tag, key)
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> StorageResult<PutOutcome> {
        let opts = PutOptions::from(PutMode::Create);
        match self
            .inner
            .put_opts(&path(key)?, PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(res) => Ok(PutOutcome::Written(etag_of(res.e_tag, key)?)),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(PutOutcome::PreconditionFailed),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn put_if_match(
        &self,
        key: &str,
        bytes: Bytes,
        etag: &ETag,
    ) -> StorageResult<PutOutcome> {
        let opts = PutOptions::from(PutMode::Update(UpdateVersion {
            e_tag: Some(etag.as_str().to_owned()),
            version: None,
        }));
        match self
            .inner
            .put_opts(&path(key)?, PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(res) => Ok(PutOutcome::Written(etag_of(res.e_tag, key)?)),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::NotFound { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => Ok(PutOutcome::PreconditionFailed),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StorageResult<ListPage> {
        let dir = path(prefix.trim_end_matches('/'))?;
        let stream = match start_after {
            Some(offset) => self.inner.list_with_offset(Some(&dir), &path(offset)?),
            None => self.inner.list(Some(&dir)),
        };
        // S3 and the memory backend both list in byte order of keys.
        let mut keys: Vec<String> = stream
            .take(limit.saturating_add(1))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(unavailable)?;
        let truncated = keys.len() > limit;
        keys.truncate(limit);
        Ok(ListPage { keys, truncated })
    }

    async fn list_meta(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StorageResult<MetaPage> {
        let dir = path(prefix.trim_end_matches('/'))?;
        let stream = match start_after {
            Some(offset) => self.inner.list_with_offset(Some(&dir), &path(offset)?),
            None => self.inner.list(Some(&dir)),
        };
        let mut objects: Vec<ListedObject> = stream
            .take(limit.saturating_add(1))
            .map_ok(|meta| listed(&meta))
            .try_collect()
            .await
            .map_err(unavailable)?;
        let truncated = objects.len() > limit;
        objects.truncate(limit);
        Ok(MetaPage { objects, truncated })
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        match self.inner.delete(&path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete_many(&self, keys: &[String]) -> StorageResult<()> {
        let paths: Vec<Path> = keys.iter().map(|k| path(k)).collect::<Result<_, _>>()?;
        let results: Vec<_> = self
            .inner
            .delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed())
            .collect()
            .await;
        for r in results {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }

    async fn health(&self) -> StorageResult<()> {
        match self.inner.head(&Path::from("sluice-health-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload_signed(endpoint: Option<&str>) -> bool {
        let mut settings = S3Settings::from_env("bucket");
        settings.endpoint = endpoint.map(str::to_owned);
        let unsigned = s3_builder(&settings)
            .get_config_value(&object_store::aws::AmazonS3ConfigKey::UnsignedPayload);
        unsigned.as_deref() == Some("false")
    }

    #[test]
    fn bodies_are_signed_only_over_plain_http_beyond_loopback() {
        assert!(payload_signed(Some("http://10.1.2.3:9000")));
        assert!(payload_signed(Some("http://s3.example.test")));
        assert!(payload_signed(Some("http://127.0.0.1.example.test:9000")));
        assert!(!payload_signed(Some("https://s3.example.test")));
        assert!(!payload_signed(None), "the default endpoint is https");
        for loopback in [
            "http://127.0.0.1:9000",
            "http://127.3.4.5",
            "http://localhost:4566/",
            "http://[::1]:9000",
        ] {
            assert!(!payload_signed(Some(loopback)), "{loopback}");
        }
    }

    #[tokio::test]
    async fn memory_store_honours_the_contract() {
        let store = Arc::new(RemoteStore::memory());
        super::super::conformance::check(store.as_ref()).await;
        super::super::conformance::check_races(store, 3).await;
    }
}
