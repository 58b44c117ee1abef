//! Commits told between nodes: the engine's half of peer notices (the HTTP half is
//! [`crate::peers`]).
//!
//! A node that follows a stream's tail asks each peer for states of that stream newer than
//! the version it knows ([`Engine::newer_states`], a long poll the peer holds until one of
//! its own commits makes one); the answer carries the manifest as written, which the
//! follower adopts ([`Engine::adopt`]) without reading the store. That is safe because a
//! node only ever hands over states it wrote or read: a manifest is handed over after its
//! conditional write succeeded, so it is durable, and a follower adopts only versions above
//! the one it has, so nothing is skipped or replayed (a manifest is the whole state, not a
//! delta). Its etag is the one the store returned, so later revalidations and conditional
//! writes of the follower stay exact.
//!
//! Notices never carry correctness: while every peer's watch covers a stream
//! ([`Notices::covers`]) its followers still poll, only at the quiet-stream rate; as soon
//! as one peer's watch fails or lapses they poll at the usual rate again.

use std::{
    collections::HashSet,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::{sync::watch, time::Instant};

use super::{Engine, EngineError, EngineResult, manifest::Manifest};
use crate::storage::ETag;

/// A stream a node follows, as it asks a peer about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub basin: String,
    pub stream: String,
    /// The stream's internal id: a stream deleted and created again under the same name
    /// is another stream.
    pub id: String,
    /// The manifest version the asking node knows.
    pub version: u64,
}

/// A state of a stream newer than its follower knew: the manifest as stored, and its etag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub basin: String,
    pub stream: String,
    pub id: String,
    pub etag: ETag,
    pub manifest: Bytes,
}

/// Which peer a watch is: its index among this node's peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSlot(usize);

/// What one peer's watch covers: the streams of its request, while the peer answers.
#[derive(Debug, Default)]
struct Cover {
    streams: HashSet<String>,
    until: Option<Instant>,
}

/// The node-wide state of notices, shared by every stream opened on the node.
#[derive(Debug)]
pub struct Notices {
    /// Bumped on each commit this node lands: wakes the peers' watches it serves.
    commits: watch::Sender<u64>,
    /// Bumped when a stream gets its first session waiting at its tail or loses its
    /// last: tells this node's watches of its peers to ask again.
    follows: watch::Sender<u64>,
    /// One per peer this node watches.
    covers: Mutex<Vec<Cover>>,
    adopted: AtomicU64,
    not_newer: AtomicU64,
    watch_errors: AtomicU64,
    watches_answered: AtomicU64,
}

impl Default for Notices {
    fn default() -> Self {
        Self {
            commits: watch::Sender::new(0),
            follows: watch::Sender::new(0),
            covers: Mutex::default(),
            adopted: AtomicU64::new(0),
            not_newer: AtomicU64::new(0),
            watch_errors: AtomicU64::new(0),
            watches_answered: AtomicU64::new(0),
        }
    }
}

/// What notices did on this node, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoticeCounts {
    /// Peers' states this node took as newer than its own ...
    pub adopted: u64,
    /// ... and ones it already had (or no longer follows).
    pub not_newer: u64,
    /// Watches of peers that failed (unreachable, refused, malformed answer).
    pub watch_errors: u64,
    /// Watches this node answered for its peers.
    pub watches_answered: u64,
}

impl Notices {
    pub(super) fn committed(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(super) fn follows_changed(&self) {
        self.follows.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes whenever the set of streams followed on this node may have changed.
    pub fn follows(&self) -> watch::Receiver<u64> {
        self.follows.subscribe()
    }

    /// A slot for one more peer's watch; it covers nothing until [`Self::cover`].
    pub fn add_peer(&self) -> PeerSlot {
        let mut covers = self.covers.lock();
        covers.push(Cover::default());
        PeerSlot(covers.len() - 1)
    }

    /// The peer in `slot` answers a watch of `streams` (ids) until `until`.
    pub fn cover(&self, slot: PeerSlot, streams: HashSet<String>, until: Instant) {
        self.covers.lock()[slot.0] = Cover {
            streams,
            until: Some(until),
        };
    }

    /// The peer in `slot` is not known to answer any watch.
    pub fn uncover(&self, slot: PeerSlot) {
        self.covers.lock()[slot.0] = Cover::default();
    }

    /// Whether every peer currently watches stream `id` for this node, so that another
    /// node's commit reaches its followers without polling. False without peers.
    pub fn covers(&self, id: &str) -> bool {
        let covers = self.covers.lock();
        let now = Instant::now();
        !covers.is_empty()
            && covers
                .iter()
                .all(|c| c.until.is_some_and(|u| u > now) && c.streams.contains(id))
    }

    pub fn watch_failed(&self) {
        self.watch_errors.fetch_add(1, Relaxed);
    }

    pub fn counts(&self) -> NoticeCounts {
        NoticeCounts {
            adopted: self.adopted.load(Relaxed),
            not_newer: self.not_newer.load(Relaxed),
            watch_errors: self.watch_errors.load(Relaxed),
            watches_answered: self.watches_answered.load(Relaxed),
        }
    }
}

impl Engine {
    pub fn notices(&self) -> &Notices {
        &self.inner.notices
    }

    /// The streams open on this node with a session waiting at their tail, and the
    /// version of each this node knows.
    pub fn followed(&self) -> Vec<Followed> {
        let streams = self.inner.streams.lock();
        streams
            .iter()
            .filter(|(_, h)| !h.core.is_stale() && h.core.tail_followers() > 0)
            .map(|((basin, stream), h)| Followed {
                basin: basin.clone(),
                stream: stream.clone(),
                id: h.core.id.clone(),
                version: h.core.current().manifest.version,
            })
            .collect()
    }

    /// This node's states of `wanted` newer than the versions given there; if none is,
    /// waits for a commit of this node that makes one, or until `give_up` resolves (then
    /// nothing). Streams this node has not opened have no state here.
    pub async fn newer_states(
        &self,
        wanted: &[Followed],
        give_up: impl Future<Output = ()>,
    ) -> Vec<Notice> {
        let notices = &self.inner.notices;
        let mut commits = notices.commits.subscribe();
        tokio::pin!(give_up);
        loop {
            commits.borrow_and_update();
            let newer: Vec<Notice> = wanted.iter().filter_map(|w| self.newer(w)).collect();
            if !newer.is_empty() {
                notices.watches_answered.fetch_add(1, Relaxed);
                return newer;
            }
            tokio::select! {
                changed = commits.changed() => if changed.is_err() { return Vec::new() },
                () = &mut give_up => return Vec::new(),
            }
        }
    }

    fn newer(&self, wanted: &Followed) -> Option<Notice> {
        let handle = self.cached_handle(&wanted.basin, &wanted.stream)?;
        if handle.core.id != wanted.id {
            return None;
        }
        let state = handle.core.current();
        (state.manifest.version > wanted.version).then(|| Notice {
            basin: wanted.basin.clone(),
            stream: wanted.stream.clone(),
            id: wanted.id.clone(),
            etag: state.etag.clone(),
            manifest: state.manifest.encode_for_store().0,
        })
    }

    /// Takes a peer's newer state of a stream open here, waking its followers; whether it
    /// was newer. A stream not open here (or another stream by that name) is left alone.
    pub fn adopt(&self, notice: Notice) -> EngineResult<bool> {
        let notices = &self.inner.notices;
        let handle = self
            .cached_handle(&notice.basin, &notice.stream)
            .filter(|h| h.core.id == notice.id);
        let Some(handle) = handle else {
            notices.not_newer.fetch_add(1, Relaxed);
            return Ok(false);
        };
        let manifest = Manifest::decode_object(&notice.manifest)
            .map_err(|e| EngineError::Corrupt(format!("a peer's manifest: {e}")))?;
        if manifest.stream_id != notice.id {
            return Err(EngineError::Corrupt(format!(
                "a peer's manifest of stream {} is one of {}",
                notice.id, manifest.stream_id
            )));
        }
        let adopted = handle.core.adopt(manifest, notice.etag)?;
        let counter = if adopted {
            &notices.adopted
        } else {
            &notices.not_newer
        };
        counter.fetch_add(1, Relaxed);
        Ok(adopted)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        engine::{maintenance::DEFAULT_GC_GRACE, testing::*},
        storage,
    };

    fn ids(of: &[&str]) -> HashSet<String> {
        of.iter().map(|s| s.to_string()).collect()
    }

    /// A stream is covered only while every peer's watch includes it and has not lapsed.
    #[tokio::test(start_paused = true)]
    async fn coverage_needs_every_peer_and_lapses() {
        let notices = Notices::default();
        assert!(!notices.covers("s"), "no peers: nothing is covered");
        let a = notices.add_peer();
        let b = notices.add_peer();
        let until = Instant::now() + Duration::from_secs(10);
        notices.cover(a, ids(&["s", "t"]), until);
        assert!(!notices.covers("s"), "peer b does not watch yet");
        notices.cover(b, ids(&["s"]), until);
        assert!(notices.covers("s"));
        assert!(!notices.covers("t"));
        notices.uncover(b);
        assert!(!notices.covers("s"), "peer b failed");
        notices.cover(b, ids(&["s"]), until);
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(!notices.covers("s"), "the watches lapsed");
    }

    /// A peer's newer state is adopted and wakes followers; an older or equal one, or one
    /// of another stream, is not, and a manifest of another stream is refused.
    #[tokio::test]
    async fn only_newer_states_of_the_same_stream_are_adopted() {
        let store = storage::memory();
        let (writer, on_writer) = engine_with_stream(store.clone(), DEFAULT_GC_GRACE).await;
        let (follower, on_follower, counters) = counted_node(store, two_engines_config()).await;
        let start = on_follower.core.current().manifest.version;
        let wanted = vec![Followed {
            basin: on_follower.core.basin.clone(),
            stream: on_follower.core.name.clone(),
            id: on_follower.core.id.clone(),
            version: start,
        }];
        assert!(
            writer
                .newer_states(&wanted, std::future::ready(()))
                .await
                .is_empty(),
            "nothing newer yet"
        );
        writer
            .append(&on_writer, batch(&[b"one"]), None)
            .await
            .unwrap();
        let notices = writer.newer_states(&wanted, std::future::pending()).await;
        assert_eq!(notices.len(), 1);
        let mut rx = on_follower.core.subscribe();
        rx.borrow_and_update();
        let reads = counters.snapshot().gets;
        assert!(follower.adopt(notices[0].clone()).unwrap());
        assert!(rx.has_changed().unwrap(), "followers are woken");
        assert_eq!(on_follower.core.current().tail().seq_num, 1);
        assert_eq!(counters.snapshot().gets, reads, "adopted without a read");
        assert!(!follower.adopt(notices[0].clone()).unwrap(), "not newer");

        let other = Notice {
            id: "another-stream".into(),
            ..notices[0].clone()
        };
        assert!(!follower.adopt(other).unwrap(), "not the stream open here");
        let mut wrong = on_writer.core.current().manifest.clone();
        wrong.stream_id = "another-stream".into();
        wrong.version += 1;
        let forged = Notice {
            manifest: wrong.encode_for_store().0,
            ..notices[0].clone()
        };
        assert!(matches!(
            follower.adopt(forged),
            Err(EngineError::Corrupt(_))
        ));
        let damaged = Notice {
            manifest: Bytes::from_static(b"not a manifest"),
            ..notices[0].clone()
        };
        assert!(follower.adopt(damaged).is_err());
        assert_eq!(on_follower.core.current().tail().seq_num, 1);
    }

    /// A watch held for a stream wakes for this node's next commit of it.
    #[tokio::test]
    async fn a_held_watch_is_answered_by_the_next_commit() {
        let store = storage::memory();
        let (writer, on_writer) = engine_with_stream(store, DEFAULT_GC_GRACE).await;
        let wanted = vec![Followed {
            basin: on_writer.core.basin.clone(),
            stream: on_writer.core.name.clone(),
            id: on_writer.core.id.clone(),
            version: on_writer.core.current().manifest.version,
        }];
        let held = {
            let writer = writer.clone();
            tokio::spawn(async move { writer.newer_states(&wanted, std::future::pending()).await })
        };
        tokio::task::yield_now().await;
        assert!(!held.is_finished());
        writer
            .append(&on_writer, batch(&[b"wake"]), None)
            .await
            .unwrap();
        let notices = held.await.unwrap();
        assert_eq!(notices.len(), 1);
        let m = Manifest::decode_object(&notices[0].manifest).unwrap();
        assert_eq!(m.next_seq, 1);
        assert_eq!(notices[0].etag, on_writer.core.current().etag);
    }
}
