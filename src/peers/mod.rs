//! Nodes telling each other of commits, so that a follower on one node sees another node's
//! commit without waiting for its next poll of the manifest (docs/design/peer-notices.md).
//!
//! Each node watches each of its peers (`--peers`): a long-poll request naming the streams
//! followed on this node and the versions it knows, which the peer holds until one of its
//! commits makes a newer state and answers with that manifest as written; this node adopts
//! it (the engine's half: [`crate::engine::notices`]). A node serves the same watch to its
//! peers. Nothing depends on the watches for correctness: while they cover a stream its
//! followers poll at the quiet-stream rate, and at the usual rate otherwise.
//!
//! | file | what it is |
//! |---|---|
//! | `mod.rs` | settings (`--peers`, the secret, the hold), starting the watches |
//! | `wire.rs` | the watch's request and answer formats, its path |
//! | `serve.rs` | the watch this node serves its peers |
//! | `watch.rs` | this node's watch of one peer |

mod serve;
mod watch;
pub mod wire;

use std::{sync::Arc, time::Duration};

use http::{HeaderMap, Uri, header};
use ring::digest::{SHA256, digest};

pub use self::serve::routes;
pub(crate) use self::watch::connect;
use crate::{engine::Engine, http::Draining};

/// The default of `--peer-watch-hold`.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(10);

/// How this node works with its peers.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// The other nodes on the same bucket, as `host:port` of their HTTP listeners.
    pub peers: Vec<PeerAddr>,
    /// What a watch must present, both ways (`--peer-secret`, else the root token);
    /// `None`: nothing.
    pub secret: Option<Arc<PeerSecret>>,
    /// How long a watch is held before it is answered empty and asked again; also the
    /// longest this node holds its peers' watches.
    pub hold: Duration,
    /// Whether a Redis key's writes and group commands run on its home node
    /// ([`crate::redis::homes`]).
    pub key_homes: bool,
}

impl Default for PeerSettings {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            secret: None,
            hold: DEFAULT_HOLD,
            key_homes: true,
        }
    }
}

/// A peer's HTTP listener (cleartext; `--tls-*` nodes cannot be watched yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr(pub String);

impl PeerAddr {
    /// `http://host:port` (a trailing `/` allowed) or `host:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let uri: Uri = s
            .trim()
            .parse()
            .map_err(|e| format!("peer `{s}` is not a URL: {e}"))?;
        match uri.scheme_str() {
            None | Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "peer `{s}`: only http:// peers are supported, not {other}://"
                ));
            }
        }
        if !matches!(uri.path(), "" | "/") {
            return Err(format!("peer `{s}`: a peer URL has no path"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("peer `{s}` names no host"))?;
        if authority.port_u16().is_none() {
            return Err(format!("peer `{s}` names no port"));
        }
        Ok(Self(authority.as_str().to_owned()))
    }

    /// A comma-separated list, as `--peers` takes it; empty entries are skipped.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Self::parse)
            .collect()
    }
}

/// The secret of peer watches, kept as its digest.
pub struct PeerSecret {
    sha256: Vec<u8>,
    /// The header value this node presents to its peers; `None` if the secret cannot be
    /// one (then this node's watches are refused, and main refuses such a flag).
    bearer: Option<http::HeaderValue>,
}

impl std::fmt::Debug for PeerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerSecret(..)")
    }
}

impl PeerSecret {
    pub fn new(secret: &str) -> Self {
        let bearer = http::HeaderValue::try_from(format!("Bearer {secret}"))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        Self {
            sha256: digest(&SHA256, secret.as_bytes()).as_ref().to_vec(),
            bearer,
        }
    }

    /// Whether `secret` can travel in a header, as peers present it.
    pub fn check(secret: &str) -> Result<(), String> {
        match Self::new(secret).bearer {
            Some(_) => Ok(()),
            None => Err("the peer secret must be printable ASCII".to_owned()),
        }
    }

    /// The `Authorization` value this node presents to its peers.
    pub(crate) fn bearer(&self) -> Option<http::HeaderValue> {
        self.bearer.clone()
    }

    pub(crate) fn admits(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        presented.is_some_and(|p| digest(&SHA256, p.as_bytes()).as_ref() == self.sha256)
    }
}

/// Starts this node's watch of each peer; each ends when the node drains.
pub fn spawn_watches(
    engine: &Engine,
    settings: &PeerSettings,
    secret: Option<Arc<PeerSecret>>,
    draining: &Draining,
) {
    if !settings.peers.is_empty() {
        tracing::info!(
            peers = settings.peers.len(),
            "watching peers for their commits"
        );
    }
    for peer in &settings.peers {
        let watch = watch::PeerWatch {
            slot: engine.notices().add_peer(),
            engine: engine.clone(),
            peer: peer.clone(),
            secret: secret.clone(),
            hold: settings.hold,
        };
        tokio::spawn(watch.run(draining.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_are_checked() {
        assert_eq!(
            PeerAddr::parse("http://127.0.0.1:8080/").unwrap(),
            PeerAddr("127.0.0.1:8080".into())
        );
        assert_eq!(
            PeerAddr::parse_list(" node-a:1, http://node-b:2 ,").unwrap(),
            vec![PeerAddr("node-a:1".into()), PeerAddr("node-b:2".into())]
        );
        assert!(
            PeerAddr::parse("https://a:1")
                .unwrap_err()
                .contains("http://")
        );
        assert!(PeerAddr::parse("http://a").unwrap_err().contains("port"));
        assert!(
            PeerAddr::parse("http://a:1/x")
                .unwrap_err()
                .contains("path")
        );
        assert!(PeerAddr::parse("a b").is_err());
    }

    #[test]
    fn the_secret_is_required_exactly() {
        let secret = PeerSecret::new("s3cret");
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert!(secret.admits(&with("Bearer s3cret")));
        assert!(!secret.admits(&with("Bearer s3cre")));
        assert!(!secret.admits(&with("s3cret")));
        assert!(!secret.admits(&HeaderMap::new()));
        assert!(PeerSecret::check("line\nbreak").is_err());
        assert!(PeerSecret::check("fine").is_ok());
    }
}
