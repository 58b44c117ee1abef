//! Sending a command to its key's home. A command that could not be sent (no connection,
//! the peer refusing before it ran) runs on this node instead, which is always correct; one
//! whose answer is lost after it was sent may have taken effect, so it is answered with a
//! retryable error rather than run again here.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use tracing::{debug, warn};

use super::{
    Conn, Home, Homes, Peer,
    wire::{
        BLOCK_CAP_HEADER, COMMAND_PATH, CREDENTIAL_HEADER, NODE_PATH, PLATE_HEADER, decode_result,
        encode_argv,
    },
};
use crate::{
    peers::connect,
    redis::{
        Context, RedisError, RedisResult, Reply,
        cmd::{Command, xgroup::Xgroup},
        streams::block_deadline,
    },
};

/// How long connecting to a peer, or a probe's answer, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A forwarded blocking read waits at most this long on its home before it is asked again,
/// so that a home shutting down never holds a reader for long.
const BLOCK_SLICE: Duration = Duration::from_secs(5);
/// How long a forwarded command may take beyond its blocking, before its answer counts
/// as lost: above the engine's own retry budgets.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests one connection to a peer carries at once, below the streams a node admits on
/// one HTTP/2 connection (`server::http_builder`); past it another connection is made.
const REQUESTS_PER_CONNECTION: usize = 90;

/// What became of a command sent to its home.
enum Forwarded {
    /// The home ran it (or its answer was lost: then an `Unavailable` error).
    Answered(RedisResult<Reply>),
    /// Nothing reached the home: the command may run here.
    NotSent,
}

/// The keys a command changes, when it is one that runs on its keys' home, and how long
/// it blocks.
fn homed_keys(command: &Command) -> Option<(Vec<&Bytes>, Option<u64>)> {
    let one = |key| Some((vec![key], None));
    match command {
        Command::Xadd(c) => one(&c.key),
        Command::Xtrim(c) => one(&c.key),
        Command::Xdel(c) => one(&c.key),
        Command::Xack(c) => one(&c.key),
        Command::Xclaim(c) => one(&c.key),
        Command::Xautoclaim(c) => one(&c.key),
        Command::Xreadgroup(c) => Some((c.keys.iter().collect(), c.block_ms)),
        Command::Xgroup(g) => match g {
            Xgroup::Create { key, .. }
            | Xgroup::SetId { key, .. }
            | Xgroup::Destroy { key, .. }
            | Xgroup::CreateConsumer { key, .. }
            | Xgroup::DelConsumer { key, .. } => one(key),
            Xgroup::Help => None,
        },
        Command::Xlen(_)
        | Command::Xrange(_)
        | Command::Xread(_)
        | Command::Xinfo(_)
        | Command::Xpending(_) => None,
    }
}

impl Homes {
    /// Whether `key` of `plate` has its home on another node.
    pub fn is_elsewhere(&self, plate: &str, key: &[u8]) -> bool {
        matches!(self.home(plate, key), Home::Peer(_))
    }

    /// Runs `command` (parsed from `argv`) on its keys' home if that is another node; `None`
    /// when it is to run here.
    pub async fn run_at_home(
        &self,
        ctx: &Context,
        command: &Command,
        argv: &[Bytes],
    ) -> Option<RedisResult<Reply>> {
        if self.peers.is_empty() {
            return None;
        }
        let (keys, block_ms) = homed_keys(command)?;
        let Home::Peer(addr) = self.home_of_all(&ctx.plate, keys.into_iter())? else {
            return None;
        };
        let peer = self.peer(addr);
        let deadline = block_deadline(ctx, block_ms);
        loop {
            let cap = deadline.map(|until| {
                until
                    .map_or(BLOCK_SLICE, |t| t.saturating_duration_since(Instant::now()))
                    .min(BLOCK_SLICE)
            });
            match self.forward(peer, ctx, argv, cap).await {
                Forwarded::NotSent => {
                    self.ran_here_instead.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                Forwarded::Answered(Ok(Reply::NilArray))
                    if deadline.is_some_and(|until| until.is_none_or(|t| Instant::now() < t)) => {}
                Forwarded::Answered(result) => return Some(result),
            }
        }
    }

    /// Sends one command to `peer`, a blocking read waiting there at most `block_cap`.
    async fn forward(
        &self,
        peer: &Peer,
        ctx: &Context,
        argv: &[Bytes],
        block_cap: Option<Duration>,
    ) -> Forwarded {
        let Ok(plate) = HeaderValue::from_str(&ctx.plate) else {
            return Forwarded::NotSent;
        };
        let mut request = self.request(peer, Method::POST, COMMAND_PATH, encode_argv(argv));
        let headers = request.headers_mut();
        headers.insert(PLATE_HEADER, plate);
        if let Some(credential) = &ctx.credential {
            headers.insert(CREDENTIAL_HEADER, credential.clone());
        }
        if let Some(cap) = block_cap {
            headers.insert(BLOCK_CAP_HEADER, HeaderValue::from(cap.as_millis() as u64));
        }
        let Some(mut held) = self.sender(peer).await else {
            return Forwarded::NotSent;
        };
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        let lost = |e: String| {
            Forwarded::Answered(Err(RedisError::Unavailable(format!(
                "the node serving this key ({}) did not answer ({e}); the command may or may \
                 not have taken effect",
                peer.addr.0
            ))))
        };
        let answer = async {
            let response = held.conn.sender.send_request(request).await.map_err(|e| {
                if e.is_canceled() {
                    None
                } else {
                    Some(format!("request: {e}"))
                }
            })?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| Some(format!("answer: {e}")))?
                .to_bytes();
            Ok::<_, Option<String>>((status, body))
        };
        let timeout = ANSWER_TIMEOUT + block_cap.unwrap_or_default();
        match tokio::time::timeout(timeout, answer).await {
            Err(_) => lost(format!("no answer within {timeout:?}")),
            Ok(Err(None)) => {
                forget(peer, &held).await;
                Forwarded::NotSent
            }
            Ok(Err(Some(e))) => {
                forget(peer, &held).await;
                lost(e)
            }
            Ok(Ok((StatusCode::OK, body))) => match decode_result(body) {
                Ok(result) => Forwarded::Answered(result),
                Err(e) => lost(format!("an answer this node cannot read: {e}")),
            },
            // Refused before it ran: a peer shutting down, or one that does not take this
            // node's secret.
            Ok(Ok((status, body))) => {
                warn!(peer = %peer.addr.0, %status, answer = %String::from_utf8_lossy(&body),
                    "a peer refused a forwarded command; running it here");
                Forwarded::NotSent
            }
        }
    }

    /// Asks `peer` for its id.
    pub(super) async fn probe(&self, peer: &Peer) -> Option<u64> {
        let request = self.request(peer, Method::GET, NODE_PATH, Bytes::new());
        let mut held = self.sender(peer).await?;
        let asked = async {
            let response = held.conn.sender.send_request(request).await.ok()?;
            if response.status() != StatusCode::OK {
                return None;
            }
            let body = response.into_body().collect().await.ok()?.to_bytes();
            u64::from_str_radix(std::str::from_utf8(&body).ok()?.trim(), 16).ok()
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, asked).await {
            Ok(Some(id)) => Some(id),
            _ => {
                forget(peer, &held).await;
                None
            }
        }
    }

    fn request(
        &self,
        peer: &Peer,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Request<Full<Bytes>> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", peer.addr.0))
            .header(header::HOST, &peer.addr.0)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(body))
            .expect("a valid request");
        if let Some(bearer) = self.secret.as_ref().and_then(|s| s.bearer()) {
            request.headers_mut().insert(header::AUTHORIZATION, bearer);
        }
        request
    }

    /// A connection to `peer` ready for one more request, made if every one open carries
    /// [`REQUESTS_PER_CONNECTION`]; `None` (and the peer counted down) if it cannot be.
    async fn sender(&self, peer: &Peer) -> Option<Held> {
        let mut conns = peer.conns.lock().await;
        conns.retain(|c| !c.sender.is_closed());
        let free = conns
            .iter()
            .find(|c| c.in_flight.load(Ordering::Relaxed) < REQUESTS_PER_CONNECTION)
            .cloned();
        let conn = match free {
            Some(conn) => conn,
            None => match tokio::time::timeout(CONNECT_TIMEOUT, connect(&peer.addr)).await {
                Ok(Ok(sender)) => {
                    let conn = Conn {
                        sender,
                        in_flight: Arc::default(),
                    };
                    conns.push(conn.clone());
                    conn
                }
                Ok(Err(e)) => return self.down(peer, &e),
                Err(_) => return self.down(peer, "no connection within the timeout"),
            },
        };
        drop(conns);
        conn.in_flight.fetch_add(1, Ordering::Relaxed);
        let mut held = Held { conn };
        match held.conn.sender.ready().await {
            Ok(()) => Some(held),
            Err(e) => {
                forget(peer, &held).await;
                self.down(peer, &e.to_string())
            }
        }
    }

    fn down<T>(&self, peer: &Peer, why: &str) -> Option<T> {
        if peer.id.swap(0, Ordering::Relaxed) != 0 {
            debug!(peer = %peer.addr.0, why, "peer unreachable; its keys are served here");
        }
        None
    }
}

/// A connection with one request of this node's on it, counted until dropped.
struct Held {
    conn: Conn,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.conn.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Stops using the connection `held` is on: it failed.
async fn forget(peer: &Peer, held: &Held) {
    peer.conns
        .lock()
        .await
        .retain(|c| !Arc::ptr_eq(&c.in_flight, &held.conn.in_flight));
}
