//! Each key's home node: with `--peers`, the commands that change a key (`XADD`, `XTRIM`,
//! `XDEL`, the group commands) run on one node of the cluster, whichever node the client
//! reached, so that its group commit gathers them all instead of racing the other nodes'
//! writes to the same objects (docs/design/key-homes.md).
//!
//! A node draws a random id when it starts and learns its peers' by asking each every
//! [`PROBE_INTERVAL`]; a key's home is the node, among this one and the peers that answered
//! the last probe, whose id scores highest with the key (rendezvous hashing), so every node
//! that sees the same nodes up picks the same home, and a node going down moves only its own
//! keys. Correctness never depends on the choice: the forwarded command runs through the
//! same conditional writes as a local one, so two nodes that disagree for a while (one
//! starting, a probe lost) only race as they would without homes.
//!
//! | file | what it is |
//! |---|---|
//! | `mod.rs` | the nodes up, the choice of a key's home, the probes |
//! | `client.rs` | sending a command to its home and waiting for the answer |
//! | `serve.rs` | the routes a node serves its peers: its id, and running a forwarded command |
//! | `wire.rs` | how a forwarded command and its answer are encoded |

mod client;
mod serve;
pub mod wire;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http2::SendRequest;
use tokio::sync::Mutex;

pub use self::serve::routes;
use crate::{
    http::Draining,
    peers::{PeerAddr, PeerSecret},
};

/// How often each peer is asked for its id; a peer that does not answer stops being a
/// home until it does.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Unanswered probes in a row after which a peer counts as down.
const PROBES_MISSED: u32 = 3;

/// The nodes of the cluster as this node sees them, and the connections to them.
pub struct Homes {
    /// This node's id, drawn at start; never 0.
    id: u64,
    peers: Vec<Peer>,
    secret: Option<Arc<PeerSecret>>,
    forwarded: AtomicU64,
    ran_here_instead: AtomicU64,
}

/// One peer: where it listens, its id while it answers probes (0 while it does not), and
/// the HTTP/2 connections the probes and forwarded commands share.
struct Peer {
    addr: PeerAddr,
    id: AtomicU64,
    conns: Mutex<Vec<Conn>>,
}

/// One HTTP/2 connection to a peer, and how many requests it carries now: a node admits
/// a bounded number at once on one connection, and a blocked read holds its request.
#[derive(Clone)]
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

/// Where a key's commands run.
pub enum Home<'a> {
    Here,
    Peer(&'a PeerAddr),
}

impl Homes {
    pub fn new(peers: &[PeerAddr], secret: Option<Arc<PeerSecret>>) -> Arc<Self> {
        let id = loop {
            let id = crate::engine::Random::os().u64();
            if id != 0 {
                break id;
            }
        };
        Arc::new(Self {
            id,
            peers: peers
                .iter()
                .map(|addr| Peer {
                    addr: addr.clone(),
                    id: AtomicU64::new(0),
                    conns: Mutex::new(Vec::new()),
                })
                .collect(),
            secret,
            forwarded: AtomicU64::new(0),
            ran_here_instead: AtomicU64::new(0),
        })
    }

    /// Starts probing every peer; the probes end when the node drains.
    pub fn spawn_probes(self: &Arc<Self>, draining: &Draining) {
        for index in 0..self.peers.len() {
            let homes = self.clone();
            let draining = draining.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = homes.probe_forever(index) => {}
                    () = draining.started() => {}
                }
            });
        }
    }

    /// Probes one peer for as long as the node runs. A peer that refuses connections is
    /// down at once (see [`Self::sender`]); one whose probes go unanswered, only after
    /// [`PROBES_MISSED`] in a row, so that a busy moment does not move its keys.
    async fn probe_forever(&self, index: usize) {
        let peer = &self.peers[index];
        let mut missed = 0;
        loop {
            let id = match self.probe(peer).await {
                Some(id) => {
                    missed = 0;
                    id
                }
                None => {
                    missed += 1;
                    if missed < PROBES_MISSED {
                        peer.id.load(Ordering::Relaxed)
                    } else {
                        0
                    }
                }
            };
            let before = peer.id.swap(id, Ordering::Relaxed);
            if before != id {
                tracing::info!(peer = %peer.addr.0, up = id != 0, "a peer's keys changed home");
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// The home of `key` of `plate`.
    pub fn home(&self, plate: &str, key: &[u8]) -> Home<'_> {
        let target = key_hash(plate, key);
        let mut best = (score(self.id, target), Home::Here);
        for peer in &self.peers {
            let id = peer.id.load(Ordering::Relaxed);
            if id != 0 && id != self.id && score(id, target) > best.0 {
                best = (score(id, target), Home::Peer(&peer.addr));
            }
        }
        best.1
    }

    /// The home shared by every key of `keys`, `None` when they have different homes (the
    /// command then runs here).
    pub fn home_of_all<'k>(
        &self,
        plate: &str,
        mut keys: impl Iterator<Item = &'k Bytes>,
    ) -> Option<Home<'_>> {
        let first = keys.next()?;
        let home = self.home(plate, first);
        let same = |other: &Home| match (&home, other) {
            (Home::Here, Home::Here) => true,
            (Home::Peer(a), Home::Peer(b)) => a == b,
            _ => false,
        };
        keys.all(|k| same(&self.home(plate, k))).then_some(home)
    }

    /// Commands sent to their home, and commands that ran here because their home could not
    /// be reached before anything was sent.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.forwarded.load(Ordering::Relaxed),
            self.ran_here_instead.load(Ordering::Relaxed),
        )
    }

    fn peer(&self, addr: &PeerAddr) -> &Peer {
        self.peers
            .iter()
            .find(|p| &p.addr == addr)
            .expect("a home is one of the peers")
    }
}

/// A stable 64-bit hash of a plate's key (FNV-1a): every node, whatever its build, must
/// place a key the same way.
fn key_hash(plate: &str, key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in plate.as_bytes().iter().chain([0xff].iter()).chain(key) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A node's score for a key: splitmix64's finalizer over both, so that a small change of
/// either changes every bit.
fn score(node: u64, key: u64) -> u64 {
    let mut z = node ^ key.rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn homes_with(up: &[u64]) -> Arc<Homes> {
        let addrs: Vec<PeerAddr> = (0..up.len())
            .map(|i| PeerAddr(format!("127.0.0.1:{}", 1000 + i)))
            .collect();
        let homes = Homes::new(&addrs, None);
        for (peer, id) in homes.peers.iter().zip(up) {
            peer.id.store(*id, Ordering::Relaxed);
        }
        homes
    }

    fn here(h: Home) -> bool {
        matches!(h, Home::Here)
    }

    #[test]
    fn alone_every_key_is_at_home_here() {
        let homes = homes_with(&[0, 0]);
        assert!((0..100).all(|i| here(homes.home("p", format!("k{i}").as_bytes()))));
    }

    #[test]
    fn keys_spread_over_the_nodes_up_and_only_a_lost_nodes_keys_move() {
        let three = homes_with(&[11, 22]);
        let keys: Vec<String> = (0..3000).map(|i| format!("key-{i}")).collect();
        let where_ = |homes: &Homes, k: &str| match homes.home("plate", k.as_bytes()) {
            Home::Here => "here".to_owned(),
            Home::Peer(a) => a.0.clone(),
        };
        let placed: Vec<String> = keys.iter().map(|k| where_(&three, k)).collect();
        for node in ["here", "127.0.0.1:1000", "127.0.0.1:1001"] {
            let n = placed.iter().filter(|p| *p == node).count();
            assert!((800..1200).contains(&n), "{node} is home to {n} of 3000");
        }
        // The second peer goes down: its keys move, no other key does.
        three.peers[1].id.store(0, Ordering::Relaxed);
        for (k, before) in keys.iter().zip(&placed) {
            let now = where_(&three, k);
            if before == "127.0.0.1:1001" {
                assert_ne!(now, *before);
            } else {
                assert_eq!(now, *before, "{k} moved");
            }
        }
    }

    #[test]
    fn two_nodes_that_see_each_other_agree_on_every_home() {
        let a = homes_with(&[0]);
        let b = homes_with(&[0]);
        a.peers[0].id.store(b.id, Ordering::Relaxed);
        b.peers[0].id.store(a.id, Ordering::Relaxed);
        for i in 0..500 {
            let key = format!("k{i}");
            let at_a = here(a.home("p", key.as_bytes()));
            let at_b = here(b.home("p", key.as_bytes()));
            assert_ne!(at_a, at_b, "{key}: exactly one of the two is its home");
        }
        // The plate is part of the key.
        let differs = (0..100).any(|i| {
            let key = format!("k{i}");
            here(a.home("p", key.as_bytes())) != here(a.home("q", key.as_bytes()))
        });
        assert!(differs);
    }

    #[test]
    fn keys_with_different_homes_have_no_common_one() {
        let homes = homes_with(&[7]);
        let keys: Vec<Bytes> = (0..50).map(|i| Bytes::from(format!("k{i}"))).collect();
        let here_key = keys.iter().find(|k| here(homes.home("p", k))).unwrap();
        let there_key = keys.iter().find(|k| !here(homes.home("p", k))).unwrap();
        assert!(
            homes
                .home_of_all("p", [here_key, here_key].into_iter())
                .is_some()
        );
        assert!(
            homes
                .home_of_all("p", [here_key, there_key].into_iter())
                .is_none()
        );
        assert!(homes.home_of_all("p", std::iter::empty()).is_none());
    }
}
