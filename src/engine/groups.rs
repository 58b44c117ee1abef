//! Consumer groups: which records of a stream a group has handed out, to whom, and which
//! are still unacknowledged. Each group is one object (`data/<stream-id>/groups/<name>`)
//! changed only by conditional writes, so consumers on any node agree on every delivery;
//! the group goes when the stream's data goes.
//!
//! Invariants (checked by [`GroupState::check`] in tests after every transition): every
//! pending seq_num is below `next_seq`, and every pending entry's consumer is known.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    Engine,
    catalog::{Versioned, Written},
    error::{EngineError, EngineResult},
    layout,
    stream::StreamHandle,
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupState {
    /// Bumped on every write so that no two writes have equal bytes.
    pub version: u64,
    pub name: String,
    /// The first seq_num not yet delivered to the group.
    pub next_seq: u64,
    /// How the surface names the last record delivered, for display.
    pub last_delivered_id: String,
    /// Delivered and not yet acknowledged, by seq_num.
    pub pending: BTreeMap<u64, Pending>,
    /// Every consumer the group has seen, with when it last read (ms since the epoch).
    pub consumers: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    pub consumer: String,
    /// The record's timestamp.
    pub timestamp: u64,
    /// When it was last delivered (ms since the epoch).
    pub delivered_ms: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
}

impl GroupState {
    pub fn new(name: &str, next_seq: u64, last_delivered_id: String) -> Self {
        Self {
            version: 1,
            name: name.to_owned(),
            next_seq,
            last_delivered_id,
            pending: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// Notes that `consumer` read at `now_ms`.
    pub fn touch(&mut self, consumer: &str, now_ms: u64) {
        self.consumers.insert(consumer.to_owned(), now_ms);
    }

    /// Hands `records` (seq_num and timestamp, at or after `next_seq`, ascending) to
    /// `consumer`; the group then continues at `read_up_to`, the seq_num after the last
    /// record looked at (command records in between are passed, not handed out). With
    /// `track` false the records count as acknowledged at once.
    pub fn deliver_new(
        &mut self,
        consumer: &str,
        records: &[(u64, u64)],
        read_up_to: u64,
        now_ms: u64,
        track: bool,
    ) {
        self.touch(consumer, now_ms);
        if track {
            for &(seq, timestamp) in records {
                self.pending.insert(
                    seq,
                    Pending {
                        consumer: consumer.to_owned(),
                        timestamp,
                        delivered_ms: now_ms,
                        deliveries: 1,
                    },
                );
            }
        }
        self.next_seq = self.next_seq.max(read_up_to);
    }

    /// `consumer`'s own pending seq_nums after `after`, at most `count`.
    pub fn pending_of(&self, consumer: &str, after: Option<u64>, count: usize) -> Vec<u64> {
        let from = after.map_or(0, |a| a.saturating_add(1));
        self.pending
            .range(from..)
            .filter(|(_, p)| p.consumer == consumer)
            .map(|(&seq, _)| seq)
            .take(count)
            .collect()
    }

    /// Delivers pending entries again to the consumer that has them.
    pub fn redeliver(&mut self, seqs: &[u64], now_ms: u64) {
        for seq in seqs {
            if let Some(p) = self.pending.get_mut(seq) {
                p.delivered_ms = now_ms;
                p.deliveries += 1;
            }
        }
    }

    /// Acknowledges `seqs`; returns how many were pending.
    pub fn ack(&mut self, seqs: &[u64]) -> usize {
        seqs.iter()
            .filter(|s| self.pending.remove(s).is_some())
            .count()
    }

    /// Gives `consumer` those of `seqs` that are pending and idle for at least
    /// `min_idle_ms`; returns them.
    pub fn claim(
        &mut self,
        consumer: &str,
        seqs: &[u64],
        min_idle_ms: u64,
        now_ms: u64,
    ) -> Vec<u64> {
        self.touch(consumer, now_ms);
        let mut claimed = Vec::new();
        for &seq in seqs {
            if let Some(p) = self.pending.get_mut(&seq)
                && now_ms.saturating_sub(p.delivered_ms) >= min_idle_ms
            {
                p.consumer = consumer.to_owned();
                p.delivered_ms = now_ms;
                p.deliveries += 1;
                claimed.push(seq);
            }
        }
        claimed
    }

    /// Pending seq_nums from `from` on idle for at least `min_idle_ms`, at most `count`,
    /// and the seq_num to continue from (`None`: none left).
    pub fn idle_from(
        &self,
        from: u64,
        min_idle_ms: u64,
        now_ms: u64,
        count: usize,
    ) -> (Vec<u64>, Option<u64>) {
        let mut idle = self
            .pending
            .range(from..)
            .filter(|(_, p)| now_ms.saturating_sub(p.delivered_ms) >= min_idle_ms)
            .map(|(&seq, _)| seq);
        let found: Vec<u64> = idle.by_ref().take(count).collect();
        (found, idle.next())
    }

    /// Forgets `consumer` and its pending entries; returns how many it had.
    pub fn remove_consumer(&mut self, consumer: &str) -> usize {
        self.consumers.remove(consumer);
        let before = self.pending.len();
        self.pending.retain(|_, p| p.consumer != consumer);
        before - self.pending.len()
    }

    #[cfg(test)]
    fn check(&self) {
        for (seq, p) in &self.pending {
            assert!(*seq < self.next_seq, "pending {seq} not yet delivered");
            assert!(
                self.consumers.contains_key(&p.consumer),
                "unknown {}",
                p.consumer
            );
        }
    }
}

impl Engine {
    pub async fn group(
        &self,
        stream: &StreamHandle,
        name: &str,
    ) -> EngineResult<Option<Versioned<GroupState>>> {
        self.inner
            .catalog
            .get(&layout::group_key(&stream.core.id, name))
            .await
    }

    /// Creates a group; a name in use is `AlreadyExists`.
    pub async fn create_group(
        &self,
        stream: &StreamHandle,
        group: &GroupState,
    ) -> EngineResult<()> {
        let key = layout::group_key(&stream.core.id, &group.name);
        match self.inner.catalog.create(&key, group).await? {
            Written::Done(_) => Ok(()),
            Written::Raced => Err(EngineError::AlreadyExists(format!(
                "consumer group {} already exists",
                group.name
            ))),
        }
    }

    /// Writes `group` over the version read with `etag`, bumping its version.
    pub async fn replace_group(
        &self,
        stream: &StreamHandle,
        mut group: GroupState,
        etag: &crate::storage::ETag,
    ) -> EngineResult<Written<GroupState>> {
        group.version += 1;
        let key = layout::group_key(&stream.core.id, &group.name);
        self.inner.catalog.replace(&key, &group, etag).await
    }

    /// Deletes a group; whether it existed.
    pub async fn delete_group(&self, stream: &StreamHandle, name: &str) -> EngineResult<bool> {
        let key = layout::group_key(&stream.core.id, name);
        if self.inner.catalog.get::<GroupState>(&key).await?.is_none() {
            return Ok(false);
        }
        self.inner.store.delete(&key).await?;
        Ok(true)
    }

    /// Every group of the stream, by name.
    pub async fn groups(&self, stream: &StreamHandle) -> EngineResult<Vec<GroupState>> {
        let dir = layout::groups_dir(&stream.core.id);
        let listed = self.inner.catalog.list_names(&dir, "", "", 10_000).await?;
        Ok(self.inner.catalog.fetch_listed(listed).await?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_acks_and_claims_keep_the_invariants() {
        let mut g = GroupState::new("g", 5, "0-4".into());
        g.deliver_new("a", &[(5, 50), (6, 60), (8, 80)], 9, 1_000, true);
        g.check();
        assert_eq!(g.next_seq, 9);
        assert_eq!(g.pending_of("a", None, 10), [5, 6, 8]);
        assert_eq!(g.pending_of("a", Some(5), 1), [6]);
        g.deliver_new("b", &[(9, 90)], 10, 1_500, true);
        g.deliver_new("b", &[(10, 100)], 11, 1_600, false);
        g.check();
        assert_eq!(g.next_seq, 11);
        assert_eq!(
            g.pending.len(),
            4,
            "an unacknowledged read of `noack` is not pending"
        );

        assert_eq!(g.ack(&[6, 6, 7]), 1);
        assert_eq!(g.claim("c", &[5, 8, 9], 800, 2_000), [5, 8]);
        g.check();
        assert_eq!(g.pending[&5].consumer, "c");
        assert_eq!(g.pending[&5].deliveries, 2);
        assert_eq!(g.pending[&9].consumer, "b");
        g.redeliver(&[9], 2_100);
        assert_eq!(g.pending[&9].deliveries, 2);

        assert_eq!(g.idle_from(0, 0, 2_100, 2), (vec![5, 8], Some(9)));
        assert_eq!(g.idle_from(9, 0, 2_100, 2), (vec![9], None));
        assert_eq!(g.idle_from(0, 50, 2_120, 5), (vec![5, 8], None));
        assert_eq!(g.idle_from(0, 150, 2_120, 5), (vec![], None));

        assert_eq!(g.remove_consumer("c"), 2);
        g.check();
        assert_eq!(g.pending.keys().copied().collect::<Vec<_>>(), [9]);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut g = GroupState::new("名前/g", 0, "0-0".into());
        g.deliver_new("a", &[(0, 1), (1, 1)], 2, 7, true);
        let json = serde_json::to_vec(&g).unwrap();
        assert_eq!(serde_json::from_slice::<GroupState>(&json).unwrap(), g);
    }
}
