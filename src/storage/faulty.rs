//! A seeded, failing store for tests: wraps a real store and injects errors before a
//! request reaches it, lost responses after it took effect, delays, and races (another
//! writer's action just before a chosen conditional write).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::{
    DynStore, ETag, ListPage, MetaPage, Object, PutOutcome, Revalidated, StorageError,
    StorageResult, Store,
};

/// Probabilities (0.0–1.0) of each fault, per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// The request fails without reaching the store.
    pub fail_before: f64,
    /// The request takes effect, then its response is lost (reported as an error).
    pub lose_response: f64,
    /// The request is delayed by up to `max_delay` first.
    pub delay: f64,
    pub max_delay: Duration,
}

pub struct FaultyStore {
    inner: DynStore,
    faults: Arc<Mutex<Faults>>,
    rng: Mutex<StdRng>,
    race: Mutex<Option<Race>>,
}

/// What runs before the `nth` conditional write of `key`.
struct Race {
    key: String,
    nth: usize,
    before: BoxFuture<'static, ()>,
}

enum Fault {
    None,
    Before,
    After,
}

impl FaultyStore {
    pub fn new(inner: DynStore, seed: u64, faults: Faults) -> Self {
        Self {
            inner,
            faults: Arc::new(Mutex::new(faults)),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            race: Mutex::new(None),
        }
    }

    /// Runs `before` ahead of the `nth` conditional write (`If-Match`) of `key` from now
    /// on, e.g. another node's commit landing between a re-read and a retry.
    pub fn race_before(&self, key: String, nth: usize, before: BoxFuture<'static, ()>) {
        assert!(nth > 0, "the first write is the 1st");
        *self.race.lock() = Some(Race { key, nth, before });
    }

    /// The race due before this conditional write of `key`, if any.
    fn race_due(&self, key: &str) -> Option<BoxFuture<'static, ()>> {
        let mut race = self.race.lock();
        let r = race.as_mut().filter(|r| r.key == key)?;
        r.nth -= 1;
        (r.nth == 0).then(|| race.take().expect("a race").before)
    }

    /// Change the fault rates while the store is in use (e.g. heal it at the end of a test).
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock() = faults;
    }

    async fn roll(&self) -> Fault {
        let faults = *self.faults.lock();
        let (delay, fault) = {
            let mut rng = self.rng.lock();
            let delay = (rng.random_bool(faults.delay.clamp(0.0, 1.0))
                && !faults.max_delay.is_zero())
            .then(|| rng.random_range(Duration::ZERO..faults.max_delay));
            let fault = if rng.random_bool(faults.fail_before.clamp(0.0, 1.0)) {
                Fault::Before
            } else if rng.random_bool(faults.lose_response.clamp(0.0, 1.0)) {
                Fault::After
            } else {
                Fault::None
            };
            (delay, fault)
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        fault
    }

    async fn run<T, F>(&self, op: F) -> StorageResult<T>
    where
        F: Future<Output = StorageResult<T>>,
    {
        match self.roll().await {
            Fault::Before => Err(StorageError::Unavailable("injected: request failed".into())),
            Fault::After => {
                let _ = op.await;
                Err(StorageError::Unavailable("injected: response lost".into()))
            }
            Fault::None => op.await,
        }
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn get(&self, key: &str) -> StorageResult<Option<Object>> {
        self.run(self.inner.get(key)).await
    }

    async fn get_bytes(&self, key: &str) -> StorageResult<Option<Bytes>> {
        self.run(self.inner.get_bytes(key)).await
    }

    async fn revalidate(&self, key: &str, etag: &ETag) -> StorageResult<Revalidated> {
        self.run(self.inner.revalidate(key, etag)).await
    }

    async fn put(&self, key: &str, bytes: Bytes) -> StorageResult<ETag> {
        self.run(self.inner.put(key, bytes)).await
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> StorageResult<PutOutcome> {
        self.run(self.inner.put_if_absent(key, bytes)).await
    }

    async fn put_if_match(
        &self,
        key: &str,
        bytes: Bytes,
        etag: &ETag,
    ) -> StorageResult<PutOutcome> {
        if let Some(before) = self.race_due(key) {
            before.await;
        }
        self.run(self.inner.put_if_match(key, bytes, etag)).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StorageResult<ListPage> {
        self.run(self.inner.list(prefix, start_after, limit)).await
    }

    async fn list_meta(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StorageResult<MetaPage> {
        self.run(self.inner.list_meta(prefix, start_after, limit))
            .await
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.run(self.inner.delete(key)).await
    }

    async fn delete_many(&self, keys: &[String]) -> StorageResult<()> {
        self.run(self.inner.delete_many(keys)).await
    }

    async fn health(&self) -> StorageResult<()> {
        self.inner.health().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lost_responses_still_take_effect() {
        let inner = super::super::memory();
        let store = FaultyStore::new(
            inner.clone(),
            7,
            Faults {
                lose_response: 1.0,
                ..Default::default()
            },
        );
        assert!(store.put("k", Bytes::from_static(b"v")).await.is_err());
        assert!(inner.get("k").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn failed_requests_do_not_take_effect() {
        let inner = super::super::memory();
        let store = FaultyStore::new(
            inner.clone(),
            7,
            Faults {
                fail_before: 1.0,
                ..Default::default()
            },
        );
        assert!(store.put("k", Bytes::from_static(b"v")).await.is_err());
        assert!(inner.get("k").await.unwrap().is_none());
    }
}
