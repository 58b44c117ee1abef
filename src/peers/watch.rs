//! This node's watch of one peer: over one HTTP/2 connection, a held request naming the
//! streams followed here, asked again as soon as it is answered and whenever the followed
//! streams change (the old request is cancelled). While the peer holds the request, the
//! streams it names count as covered by that peer ([`Notices::cover`]); a failure uncovers
//! them at once, so their followers poll at the usual rate until the peer answers again.

use std::{collections::HashSet, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{net::TcpStream, time::Instant};
use tracing::{debug, warn};

use super::{
    PeerAddr, PeerSecret,
    wire::{WATCH_PATH, WatchRequest, WatchedStream, decode_answer},
};
use crate::{
    engine::{
        Engine,
        notices::{Followed, Notice, Notices, PeerSlot},
    },
    http::Draining,
};

/// How long connecting to a peer and its answer's head may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How much later than the hold a held watch may be answered before it counts as lost.
const ANSWER_SLACK: Duration = Duration::from_secs(5);
/// The pause after a failed watch: doubling from the first, up to the second.
const RETRY_PAUSE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

pub(super) struct PeerWatch {
    pub slot: PeerSlot,
    pub engine: Engine,
    pub peer: PeerAddr,
    pub secret: Option<Arc<PeerSecret>>,
    pub hold: Duration,
}

impl PeerWatch {
    /// Watches the peer until `draining` starts.
    pub async fn run(self, draining: Draining) {
        tokio::select! {
            () = self.watch() => {}
            () = draining.started() => {}
        }
        self.notices().uncover(self.slot);
    }

    fn notices(&self) -> &Notices {
        self.engine.notices()
    }

    async fn watch(&self) {
        let mut follows = self.notices().follows();
        let mut conn: Option<SendRequest<Full<Bytes>>> = None;
        let mut failures: u32 = 0;
        loop {
            follows.borrow_and_update();
            let followed = self.engine.followed();
            if followed.is_empty() {
                self.notices().uncover(self.slot);
                let _ = follows.changed().await;
                continue;
            }
            let round = tokio::select! {
                r = self.round(&mut conn, followed) => r,
                // Asked again with the streams followed now; the held request is dropped.
                _ = follows.changed() => continue,
            };
            match round.and_then(|notices| self.adopt(notices)) {
                Ok(()) => failures = 0,
                Err(e) => {
                    self.notices().uncover(self.slot);
                    self.notices().watch_failed();
                    conn = None;
                    if failures == 0 {
                        warn!(peer = %self.peer.0, error = %e, "peer watch failed; followers poll until it answers");
                    } else {
                        debug!(peer = %self.peer.0, error = %e, "peer watch failed again");
                    }
                    failures = failures.saturating_add(1);
                    let pause = RETRY_PAUSE.0.saturating_mul(1 << failures.min(8)) / 2;
                    tokio::time::sleep(pause.min(RETRY_PAUSE.1)).await;
                }
            }
        }
    }

    /// One watch: sends it, marks its streams covered once the peer holds it, and returns
    /// the peer's newer states (none when the hold ended).
    async fn round(
        &self,
        conn: &mut Option<SendRequest<Full<Bytes>>>,
        followed: Vec<Followed>,
    ) -> Result<Vec<Notice>, String> {
        let ids: HashSet<String> = followed.iter().map(|f| f.id.clone()).collect();
        let body = serde_json::to_vec(&WatchRequest {
            hold_ms: u64::try_from(self.hold.as_millis()).unwrap_or(u64::MAX),
            streams: followed.into_iter().map(WatchedStream::from).collect(),
        })
        .expect("watch requests serialize");
        let mut request = Request::post(WATCH_PATH)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::HOST, &self.peer.0)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request");
        *request.uri_mut() = format!("http://{}{WATCH_PATH}", self.peer.0)
            .parse()
            .map_err(|e| format!("peer address: {e}"))?;
        if let Some(bearer) = self.secret.as_ref().and_then(|s| s.bearer.clone()) {
            request.headers_mut().insert(header::AUTHORIZATION, bearer);
        }
        let head = async {
            let sender = match conn {
                Some(s) if !s.is_closed() => s,
                _ => conn.insert(connect(&self.peer).await?),
            };
            sender
                .ready()
                .await
                .map_err(|e| format!("connection: {e}"))?;
            sender
                .send_request(request)
                .await
                .map_err(|e| format!("request: {e}"))
        };
        let response = tokio::time::timeout(CONNECT_TIMEOUT, head)
            .await
            .map_err(|_| format!("no answer within {CONNECT_TIMEOUT:?}"))??;
        if response.status() != StatusCode::OK {
            let status = response.status();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            let text = body
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            return Err(format!("answered {status}: {text}"));
        }
        let deadline = self.hold + ANSWER_SLACK;
        self.notices()
            .cover(self.slot, ids, Instant::now() + deadline);
        let body = tokio::time::timeout(deadline, response.into_body().collect())
            .await
            .map_err(|_| format!("watch not answered within {deadline:?}"))?
            .map_err(|e| format!("answer: {e}"))?
            .to_bytes();
        decode_answer(body)
    }

    /// Adopts a peer's states; a state this node refuses fails the watch, which would
    /// otherwise be answered with it again at once.
    fn adopt(&self, notices: Vec<Notice>) -> Result<(), String> {
        for notice in notices {
            self.engine
                .adopt(notice)
                .map_err(|e| format!("a peer's state: {e}"))?;
        }
        Ok(())
    }
}

/// An HTTP/2 (prior knowledge) connection to `peer`.
pub(crate) async fn connect(peer: &PeerAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = TcpStream::connect(&peer.0)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let peer = peer.0.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!(%peer, error = %e, "peer connection ended");
        }
    });
    Ok(sender)
}
