//! Request accounting: how many object-store requests of each kind a node has made, how
//! many bytes they moved and how long they took. Feeds `/metrics` and the benchmark's
//! requests-per-GiB figures.

use std::{
    future::Future,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Instant,
};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    DynStore, ETag, ListPage, MetaPage, Object, PutOutcome, Revalidated, StorageResult, Store,
};
use crate::metrics::Histogram;

/// Monotonic counters; read them with [`StoreCounters::snapshot`].
#[derive(Debug, Default)]
pub struct StoreCounters {
    gets: AtomicU64,
    puts: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    /// How long requests took, by the kinds the counters count; failed ones included.
    pub latency: StoreLatencies,
}

/// One latency histogram per kind of request. Conditional writes count as puts, and
/// ranged reads and revalidations as gets, as in [`CountersSnapshot`].
#[derive(Debug)]
pub struct StoreLatencies {
    pub get: Histogram,
    pub put: Histogram,
    pub list: Histogram,
    pub delete: Histogram,
}

impl Default for StoreLatencies {
    fn default() -> Self {
        Self {
            get: Histogram::latency(),
            put: Histogram::latency(),
            list: Histogram::latency(),
            delete: Histogram::latency(),
        }
    }
}

/// Awaits `request`, observing how long it took in `histogram`.
async fn timed<T>(histogram: &Histogram, request: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let result = request.await;
    histogram.observe_duration(started.elapsed());
    result
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
        let res = timed(&self.counters.latency.get, self.inner.get(key)).await;
        let len = match &res {
            Ok(Some(o)) => o.bytes.len(),
            _ => 0,
        };
        self.counters.read(len);
        res
    }

    async fn get_bytes(&self, key: &str) -> StorageResult<Option<Bytes>> {
        let res = timed(&self.counters.latency.get, self.inner.get_bytes(key)).await;
        let len = match &res {
            Ok(Some(b)) => b.len(),
            _ => 0,
        };
        self.counters.read(len);
        res
    }

    async fn revalidate(&self, key: &str, etag: &ETag) -> StorageResult<Revalidated> {
        let res = timed(&self.counters.latency.get, self.inner.revalidate(key, etag)).await;
        let len = match &res {
            Ok(Revalidated::Changed(o)) => o.bytes.len(),
            _ => 0,
        };
        self.counters.read(len);
        res
    }

    async fn put(&self, key: &str, bytes: Bytes) -> StorageResult<ETag> {
        self.counters.wrote(bytes.len());
        timed(&self.counters.latency.put, self.inner.put(key, bytes)).await
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> StorageResult<PutOutcome> {
        self.counters.wrote(bytes.len());
        timed(
            &self.counters.latency.put,
            self.inner.put_if_absent(key, bytes),
        )
        .await
    }

    async fn put_if_match(
        &self,
        key: &str,
        bytes: Bytes,
        etag: &ETag,
    ) -> StorageResult<PutOutcome> {
        self.counters.wrote(bytes.len());
        timed(
            &self.counters.latency.put,
            self.inner.put_if_match(key, bytes, etag),
        )
        .await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StorageResult<ListPage> {
        self.counters.lists.fetch_add(1, Relaxed);
        timed(
            &self.counters.latency.list,
            self.inner.list(prefix, start_after, limit),
        )
        .await
    }

    async fn list_meta(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StorageResult<MetaPage> {
        self.counters.lists.fetch_add(1, Relaxed);
        timed(
            &self.counters.latency.list,
            self.inner.list_meta(prefix, start_after, limit),
        )
        .await
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.counters.deletes.fetch_add(1, Relaxed);
        timed(&self.counters.latency.delete, self.inner.delete(key)).await
    }

    async fn delete_many(&self, keys: &[String]) -> StorageResult<()> {
        // One bulk request per call on S3 (the local directory deletes one by one).
        self.counters.deletes.fetch_add(1, Relaxed);
        timed(&self.counters.latency.delete, self.inner.delete_many(keys)).await
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
        let latency = &counters.latency;
        let timed = [&latency.get, &latency.put, &latency.list, &latency.delete].map(|h| h.count());
        assert_eq!(timed, [2, 1, 1, 1]);
    }

    #[tokio::test]
    async fn a_request_is_timed_until_it_completes() {
        let h = Histogram::latency();
        timed(&h, tokio::time::sleep(std::time::Duration::from_millis(30))).await;
        let below = |bound| crate::metrics::tests::at_or_below(&h, bound);
        assert_eq!((below(20_000), below(50_000)), (0, 1));
        let sum = h.cumulative().1;
        assert!(sum >= 30_000, "{sum} µs");
    }
}
