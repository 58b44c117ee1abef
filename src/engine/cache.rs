//! Caches over immutable objects. Chunk and index-segment keys are never reused, so a
//! cached object is valid for as long as it is cached; only capacity evicts.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;

use moka::{future::Cache, policy::EvictionPolicy};

use super::{
    chunk::Chunk,
    error::{EngineError, EngineResult},
    manifest::{ChunkRef, IndexSegment, SegmentRef},
};
use crate::storage::DynStore;

/// Bytes of whole packs kept for members about to be read, and for how long unused.
const PACK_CACHE_BYTES: u64 = 64 * 1024 * 1024;
const PACK_IDLE: Duration = Duration::from_secs(10);

async fn get_object(store: &DynStore, key: &str) -> EngineResult<Bytes> {
    store
        .get_bytes(key)
        .await?
        .ok_or_else(|| EngineError::ObjectMissing(key.to_owned()))
}

#[derive(Clone)]
pub struct ObjectCache {
    store: DynStore,
    chunks: Cache<String, Arc<Chunk>>,
    /// Whole packs, briefly: a reader needs all of a pack's members one after another,
    /// and one read of the object serves them all.
    packs: Cache<String, Bytes>,
    segments: Cache<String, Arc<IndexSegment>>,
}

impl ObjectCache {
    /// `capacity_bytes` bounds the chunk bytes held in memory.
    ///
    /// Every cache here evicts the least recently used entry first: in a log the newest
    /// objects are the hot ones, and moka's default frequency-based admission turns away a
    /// just-committed chunk or a just-fetched pack (seen once) in favour of old entries
    /// that were read a few times, even entries of streams since deleted.
    pub fn new(store: DynStore, capacity_bytes: u64) -> Self {
        Self {
            store,
            chunks: Cache::builder()
                .max_capacity(capacity_bytes)
                .eviction_policy(EvictionPolicy::lru())
                .weigher(|_k: &String, v: &Arc<Chunk>| v.weight().try_into().unwrap_or(u32::MAX))
                .build(),
            packs: Cache::builder()
                .max_capacity(PACK_CACHE_BYTES)
                .eviction_policy(EvictionPolicy::lru())
                .weigher(|_k: &String, v: &Bytes| v.len().try_into().unwrap_or(u32::MAX))
                .time_to_idle(PACK_IDLE)
                .build(),
            segments: Cache::builder()
                .max_capacity(64 * 1024 * 1024)
                .eviction_policy(EvictionPolicy::lru())
                .weigher(|_k: &String, v: &Arc<IndexSegment>| {
                    (v.chunks.len() * 64).try_into().unwrap_or(u32::MAX)
                })
                .build(),
        }
    }

    /// Makes a just-written chunk readable without a round trip.
    pub async fn insert_chunk(&self, key: String, chunk: Arc<Chunk>) {
        self.chunks.insert(key, chunk).await;
    }

    /// Makes a just-written index segment readable without a round trip.
    pub async fn insert_segment(&self, key: String, segment: Arc<IndexSegment>) {
        self.segments.insert(key, segment).await;
    }

    /// Bytes of chunks held, as the cache last tallied them (it settles evictions in
    /// batches, so this may trail the last few inserts).
    pub fn chunk_bytes(&self) -> u64 {
        self.chunks.weighted_size()
    }

    /// Chunk `r` if it is in memory.
    pub async fn cached_chunk(&self, stream_id: &str, r: &ChunkRef) -> Option<Arc<Chunk>> {
        self.chunks.get(&r.key(stream_id)).await
    }

    fn has_chunk(&self, stream_id: &str, r: &ChunkRef) -> bool {
        self.chunks.contains_key(&r.key(stream_id))
    }

    /// Starts loading `refs` that are not cached, in the background.
    pub fn prefetch(&self, stream_id: &str, refs: Vec<ChunkRef>) {
        for r in refs {
            if self.has_chunk(stream_id, &r) {
                continue;
            }
            let cache = self.clone();
            let stream_id = stream_id.to_owned();
            tokio::spawn(async move {
                let _ = cache.chunk(&stream_id, &r).await;
            });
        }
    }

    /// Chunk `r`, from memory or from its object (or its range of a pack).
    pub async fn chunk(&self, stream_id: &str, r: &ChunkRef) -> EngineResult<Arc<Chunk>> {
        let (object, range) = r.location(stream_id);
        let store = self.store.clone();
        let packs = self.packs.clone();
        let expected = r.clone();
        self.chunks
            .try_get_with(r.key(stream_id), async move {
                let key = object;
                let bytes = match range {
                    Some(range) => {
                        let pack = packs
                            .try_get_with(key.clone(), get_object(&store, &key))
                            .await
                            .map_err(|e: Arc<EngineError>| (*e).clone())?;
                        let (start, end) = (range.start as usize, range.end as usize);
                        if end > pack.len() {
                            return Err(EngineError::Corrupt(format!(
                                "{key}: {} bytes, index says a chunk ends at {end}",
                                pack.len()
                            )));
                        }
                        pack.slice(start..end)
                    }
                    None => get_object(&store, &key).await?,
                };
                let chunk = Chunk::decode(bytes)
                    .map_err(|e| EngineError::Corrupt(format!("{key}: {e}")))?;
                if chunk.first_seq() != expected.first_seq || chunk.len() != expected.count as usize
                {
                    return Err(EngineError::Corrupt(format!(
                        "{key}: holds {}..{}, index says {}..{}",
                        chunk.first_seq(),
                        chunk.end_seq(),
                        expected.first_seq,
                        expected.end_seq()
                    )));
                }
                Ok(Arc::new(chunk))
            })
            .await
            .map_err(|e: Arc<EngineError>| (*e).clone())
    }

    pub async fn segment(
        &self,
        stream_id: &str,
        r: &SegmentRef,
    ) -> EngineResult<Arc<IndexSegment>> {
        let key = r.key(stream_id);
        let store = self.store.clone();
        self.segments
            .try_get_with(key.clone(), async move {
                let obj = store
                    .get(&key)
                    .await?
                    .ok_or_else(|| EngineError::ObjectMissing(key.clone()))?;
                IndexSegment::decode_object(&obj.bytes)
                    .map(Arc::new)
                    .map_err(|e| EngineError::Corrupt(format!("{key}: {e}")))
            })
            .await
            .map_err(|e: Arc<EngineError>| (*e).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::chunk::chunk_of_bodies;

    /// A chunk of one record with a `size`-byte body.
    fn chunk(first_seq: u64, size: usize) -> Arc<Chunk> {
        Arc::new(chunk_of_bodies(first_seq, [&vec![1; size][..]]))
    }

    /// Fills `cache` (room for 16 entries) with entries read several times, then inserts
    /// 16 new ones, and returns how many of the new ones it kept.
    async fn new_entries_kept<V: Clone + Send + Sync + 'static>(
        cache: &Cache<String, V>,
        entry: impl Fn(u64) -> V,
    ) -> usize {
        for i in 0..16 {
            cache.insert(format!("old/{i}"), entry(i)).await;
        }
        for _ in 0..3 {
            for i in 0..16 {
                assert!(cache.get(&format!("old/{i}")).await.is_some());
            }
        }
        for i in 0..16 {
            cache.insert(format!("new/{i}"), entry(i)).await;
            cache.run_pending_tasks().await;
        }
        (0..16)
            .filter(|i| cache.contains_key(&format!("new/{i}")))
            .count()
    }

    #[tokio::test]
    async fn new_chunks_and_packs_displace_old_ones_that_were_read_often() {
        let weight = chunk(0, 64 * 1024).weight() as u64;
        let cache = ObjectCache::new(crate::storage::memory(), 16 * weight);
        let kept = new_entries_kept(&cache.chunks, |i| chunk(i, 64 * 1024)).await;
        assert_eq!(kept, 16, "every new chunk is cached");

        let pack = Bytes::from(vec![0; PACK_CACHE_BYTES as usize / 16]);
        let kept = new_entries_kept(&cache.packs, |_| pack.clone()).await;
        assert_eq!(kept, 16, "every new pack is cached");
    }
}
