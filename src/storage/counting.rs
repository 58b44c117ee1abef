//! Request accounting: how many object-store requests of each kind, and how many bytes,
//! a node has made. Feeds `/metrics` and the benchmark's requests-per-GiB figures.

use std::{
    ops::Range,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use async_trait::async_trait;
use bytes::Bytes;

use super::{DynStore, ETag, ListPage, Object, PutOutcome, Revalidated, StorageResult, Store};

/// Monotonic counters; read them with [`StoreCounters::snapshot`].
#[derive(Debug, Default)]
pub struct StoreCounters {
    gets: AtomicU64,
    puts: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CountersSnapshot {
    pub gets: u64,
    pub puts: u64,
    pub lists: u64,
    pub deletes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl StoreCounters {
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            gets: self.gets.load(Relaxed),
            puts: self.puts.load(Relaxed),
            lists: self.lists.load(Relaxed),
            deletes: self.deletes.load(Relaxed),
            bytes_read: self.bytes_read.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
        }
    }

    fn read(&self, bytes: usize) {
        self.gets.fetch_add(1, Relaxed);
        self.bytes_read.fetch_add(bytes as u64, Relaxed);
    }

    fn wrote(&self, bytes: usize) {
        self.puts.fetch_add(1, Relaxed);
        self.bytes_written.fetch_add(bytes as u64, Relaxed);
    }
}

/// Counts every request that reaches the wrapped store, failed ones included.
pub struct CountingStore {
    inner: DynStore,
    counters: std::sync::Arc<StoreCounters>,
}

impl CountingStore {
    pub fn new(inner: DynStore, counters: std::sync::Arc<StoreCounters>) -> Self {
        Self { inner, counters }
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn get(&self, key: &str) -> StorageResult<Option<Object>> {
        let res = self.inner.get(key).await;
        let len = match &res {
            Ok(Some(o)) => o.bytes.len(),
            _ => 0,
        };
        self.counters.read(len);
        res
    }

    async fn get_bytes(&self, key: &str) -> StorageResult<Option<Bytes>> {
        let res = self.inner.get_bytes(key).await;
        let len = match &res {
            Ok(Some(b)) => b.len(),
            _ => 0,
        };
        self.counters.read(len);
        res
    }

    async fn revalidate(&self, key: &str, etag: &ETag) -> StorageResult<Revalidated> {
        let res = self.inner.revalidate(key, etag).await;
        let len = match &res {
            Ok(Revalidated::Changed(o)) => o.bytes.len(),
            _ => 0,
        };
        self.counters.read(len);
        res
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> StorageResult<Bytes> {
        let res = self.inner.get_range(key, range).await;
        self.counters
            .read(res.as_ref().map(|b| b.len()).unwrap_or_default());
        res
    }

    async fn put(&self, key: &str, bytes: Bytes) -> StorageResult<ETag> {
        self.counters.wrote(bytes.len());
        self.inner.put(key, bytes).await
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> StorageResult<PutOutcome> {
        self.counters.wrote(bytes.len());
        self.inner.put_if_absent(key, bytes).await
    }

    async fn put_if_match(
        &self,
        key: &str,
        bytes: Bytes,
        etag: &ETag,
    ) -> StorageResult<PutOutcome> {
        self.counters.wrote(bytes.len());
        self.inner.put_if_match(key, bytes, etag).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StorageResult<ListPage> {
        self.counters.lists.fetch_add(1, Relaxed);
        self.inner.list(prefix, start_after, limit).await
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.counters.deletes.fetch_add(1, Relaxed);
        self.inner.delete(key).await
    }

    async fn delete_many(&self, keys: &[String]) -> StorageResult<()> {
        // One bulk request per call on S3 (the local directory deletes one by one).
        self.counters.deletes.fetch_add(1, Relaxed);
        self.inner.delete_many(keys).await
    }

    async fn health(&self) -> StorageResult<()> {
        self.inner.health().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn counts_requests_and_bytes() {
        let counters = Arc::new(StoreCounters::default());
        let store = CountingStore::new(super::super::memory(), counters.clone());
        store.put("a", Bytes::from_static(b"12345")).await.unwrap();
        store.get("a").await.unwrap();
        store.get("missing").await.unwrap();
        store.list("", None, 10).await.unwrap();
        store.delete("a").await.unwrap();
        assert_eq!(
            counters.snapshot(),
            CountersSnapshot {
                gets: 2,
                puts: 1,
                lists: 1,
                deletes: 1,
                bytes_read: 5,
                bytes_written: 5,
            }
        );
    }
}
