//! Process wiring: storage backend from flags and environment, the engine, the HTTP app
//! (the S2 routes, the plate routes and the dashboard under the layers they share), and an
//! HTTP listener that speaks HTTP/1.1 and HTTP/2 on one port (cleartext with prior
//! knowledge, or TLS with ALPN: `tls`), within the node's connection limits
//! ([`crate::limits`]; one connection's are in `conn`). `init` applies `--init-file` before
//! the port opens.

mod conn;
pub mod init;
pub mod tls;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    response::Response,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};
use tower::ServiceExt;
use tower_http::{
    compression::{
        CompressionLayer,
        predicate::{NotForContentType, Predicate, SizeAbove},
    },
    cors::CorsLayer,
    decompression::RequestDecompressionLayer,
};
use tracing::{info, warn};

use self::conn::{Activity, StallIo, Tracked};
use crate::{
    api, dashboard,
    engine::{AppenderSettings, Engine, EngineConfig, PollIntervals},
    limits::{Limits, MIN_HEADER_BYTES},
    peers::{self, PeerSecret, PeerSettings},
    storage::{DynStore, LocalStore, RemoteStore, S3Settings, StorageError},
};
use crate::{
    http::{AppState, Draining},
    redis,
};

pub use crate::redis::resp::RespConfig;

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A local directory, locked to this process (the embedded default).
    Local(PathBuf),
    /// An S3-compatible bucket, optionally under a key prefix.
    S3 {
        settings: S3Settings,
        prefix: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub backend: Backend,
    pub engine: EngineConfig,
    /// How long shutdown waits for open connections before closing them.
    pub shutdown_grace: Duration,
    /// With a root token, every request needs an access token ([`crate::http::auth`]).
    pub root_token: Option<String>,
    /// What the node admits ([`crate::limits`]).
    pub limits: Limits,
    /// Serve HTTPS instead of cleartext HTTP ([`tls`]).
    pub tls: Option<tls::Tls>,
    /// Answer browsers' cross-origin requests (CORS); `--no-cors` turns it off.
    pub cors: bool,
    /// The other nodes on the bucket, told of this node's commits and telling it of
    /// theirs ([`crate::peers`]).
    pub peers: PeerSettings,
    /// On a local directory, the journal's size at which it is folded into the files
    /// (`--local-journal-bytes`; [`crate::storage::LocalStore`]).
    pub local_journal_bytes: u64,
}

impl ServerConfig {
    pub fn new(backend: Backend) -> Self {
        let engine = EngineConfig {
            // A locked local directory has exactly one writer: no one else's commits to
            // poll for.
            poll: match backend {
                Backend::S3 { .. } => Some(PollIntervals::default()),
                Backend::Local(_) => None,
            },
            appender: AppenderSettings {
                standard_linger: default_standard_linger(&backend),
                ..AppenderSettings::default()
            },
            ..EngineConfig::default()
        };
        Self {
            backend,
            engine,
            shutdown_grace: Duration::from_secs(10),
            root_token: None,
            limits: Limits::default(),
            tls: None,
            cors: true,
            peers: PeerSettings::default(),
            local_journal_bytes: crate::storage::DEFAULT_LOCAL_JOURNAL_BYTES,
        }
    }
}

/// How long `standard` streams gather appends into one commit, unless configured. Lingering
/// trades latency for fewer object-store requests per GiB; a local directory charges
/// nothing per request, so there `standard` commits as promptly as `express`.
pub fn default_standard_linger(backend: &Backend) -> Duration {
    match backend {
        Backend::S3 { .. } => AppenderSettings::default().standard_linger,
        Backend::Local(_) => Duration::ZERO,
    }
}

pub fn open_store(backend: &Backend) -> Result<DynStore, StorageError> {
    open_store_with(backend, crate::storage::DEFAULT_LOCAL_JOURNAL_BYTES)
}

/// [`open_store`], a local directory's journal folded whenever it passes
/// `local_journal_bytes`.
pub fn open_store_with(
    backend: &Backend,
    local_journal_bytes: u64,
) -> Result<DynStore, StorageError> {
    Ok(match backend {
        Backend::Local(root) => Arc::new(LocalStore::open_with(root, local_journal_bytes)?),
        Backend::S3 { settings, prefix } => Arc::new(RemoteStore::s3(settings, prefix.as_deref())?),
    })
}

/// A node's parts: engine, the store it runs on, its HTTP app, the authenticator its
/// surfaces share, and the switch that tells sessions the node is shutting down.
pub struct Node {
    pub engine: Engine,
    pub store: DynStore,
    pub app: axum::Router,
    pub auth: crate::http::auth::Authenticator,
    pub draining: Draining,
    /// With `--peers`, where each Redis key's commands run.
    pub homes: Option<Arc<redis::Homes>>,
}

pub fn build_node(config: &ServerConfig) -> Result<Node, StorageError> {
    Ok(build_node_on(
        open_store_with(&config.backend, config.local_journal_bytes)?,
        config,
    ))
}

/// A node over an already opened store (tests wrap stores, e.g. to inject faults).
pub fn build_node_on(store: DynStore, config: &ServerConfig) -> Node {
    let engine = Engine::new(store.clone(), config.engine.clone());
    let draining = Draining::default();
    let location = match &config.backend {
        Backend::Local(_) => crate::http::state::LOCAL_LOCATION
            .parse()
            .expect("a valid location name"),
        Backend::S3 { settings, .. } => crate::http::state::bucket_location(&settings.bucket),
    };
    let state = AppState::new(
        engine.clone(),
        draining.clone(),
        config.root_token.as_deref(),
        &config.limits,
    )
    .with_location(location);
    let auth = state.auth.clone();
    // With a root token and no peer secret of their own, peers present the root token.
    let peer_secret = config.peers.secret.clone().or_else(|| {
        config
            .root_token
            .as_deref()
            .map(|t| Arc::new(PeerSecret::new(t)))
    });
    peers::spawn_watches(&engine, &config.peers, peer_secret.clone(), &draining);
    // Built even without peers: a node serves forwarded commands to the peers that name it.
    let homes = config
        .peers
        .key_homes
        .then(|| redis::Homes::new(&config.peers.peers, peer_secret.clone()));
    let mut peer_routes = peers::routes(
        engine.clone(),
        draining.clone(),
        peer_secret,
        config.peers.hold,
    );
    if let Some(homes) = &homes {
        homes.spawn_probes(&draining);
        peer_routes = peer_routes.merge(redis::homes::routes(
            engine.clone(),
            auth.clone(),
            homes.clone(),
        ));
    }
    let app = app(state, config.cors)
        .layer(axum::Extension(redis::http::KeyHomes(homes.clone())))
        .merge(peer_routes);
    Node {
        engine,
        store,
        app,
        auth,
        draining,
        homes,
    }
}

/// Serves RESP (`--redis-port`) for `node` on `listener` until the node drains, then
/// closes its connections within `grace` ([`redis::resp`]).
pub fn spawn_resp(
    listener: TcpListener,
    node: &Node,
    config: RespConfig,
    grace: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(redis::resp::serve(
        listener,
        node.engine.clone(),
        node.homes.clone(),
        node.auth.clone(),
        config,
        node.draining.clone(),
        grace,
    ))
}

/// The node's HTTP app: the S2 surface, the plate surface and the dashboard side by side,
/// under the layers they share (body limit, compression, decompression, and with `cors` a
/// CORS layer that admits every origin, as `s2 lite`'s) and one fallback.
/// Handlers read bodies within `--max-body-bytes` themselves ([`crate::http::body`]), each
/// answering in its surface's envelope; the layer is the same limit for any extractor
/// that reads a body on its own.
pub fn app(state: AppState, cors: bool) -> Router {
    let max_body = state.limits.max_body_bytes;
    let compress_when = SizeAbove::new(1024)
        .and(NotForContentType::SSE)
        .and(NotForContentType::const_new("s2s/proto"));
    let router = Router::new()
        .merge(api::routes(state.clone()))
        .merge(redis::http::routes())
        .merge(dashboard::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CompressionLayer::new().compress_when(compress_when))
        .layer(RequestDecompressionLayer::new());
    let router = if cors {
        router.layer(CorsLayer::very_permissive())
    } else {
        router
    };
    router.with_state(state)
}

/// A path no route takes: in the plate surface's envelope under `/{plate}/streams`, else
/// S2's; a browser asking for `/` is sent to the dashboard instead.
async fn not_found(request: Request) -> Response {
    if let Some(redirect) = dashboard::browser_redirect(&request) {
        redirect
    } else if redis::http::is_plate_path(request.uri().path()) {
        redis::http::not_found().await
    } else {
        api::not_found().await
    }
}

/// The HTTP/1.1 and HTTP/2 settings, limits included: a request head over
/// `--max-header-bytes` is 431 on HTTP/1.1 (hyper's read buffer cannot grow past it) and
/// refused on HTTP/2 (advertised as `SETTINGS_MAX_HEADER_LIST_SIZE`; a larger header
/// block gets 431 and `REFUSED_STREAM`); an HTTP/1.1 head must arrive within
/// `--header-read-timeout`, which also bounds how long a kept-alive connection waits for
/// its next request. HTTP/2 pings every 30 s and closes a connection whose peer does not
/// answer within 20 s.
fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let header_bytes = limits.max_header_bytes.max(MIN_HEADER_BYTES);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .initial_stream_window_size(4 * 1024 * 1024)
        .initial_connection_window_size(16 * 1024 * 1024)
        .max_frame_size(256 * 1024)
        .max_send_buf_size(4 * 1024 * 1024)
        .max_header_list_size(u32::try_from(header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains connections for up
/// to `grace`; over TLS when `tls` is given ([`tls`]). At most `--max-connections` are
/// open at once: at the limit the node stops accepting, so new connections wait in the
/// kernel's listen backlog (their requests unanswered, no work done for them) until one
/// closes, rather than being accepted only to be refused; idle and slow connections (a
/// TLS handshake included) are closed by their timeouts, so slots free up.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    draining: Draining,
    limits: &Limits,
    tls: Option<tls::Tls>,
) {
    let builder = Arc::new(http_builder(limits));
    let max_connections = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max_connections));
    let (stop, stopped) = watch::channel(false);
    let mut warned_full: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if warned_full.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    warn!(
                        max_connections,
                        "at --max-connections: not accepting until one closes"
                    );
                    warned_full = Some(tokio::time::Instant::now());
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = Conn {
                    builder: builder.clone(),
                    peer,
                    app: app.clone(),
                    limits: limits.clone(),
                    stopped: stopped.clone(),
                };
                let tls = tls.as_ref().map(|t| t.acceptor().clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tls {
                        None => conn.serve(stream).await,
                        Some(acceptor) => {
                            let handshake = acceptor.accept(stream);
                            match tokio::time::timeout(conn.limits.header_read_timeout, handshake)
                                .await
                            {
                                Ok(Ok(stream)) => conn.serve(stream).await,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                }
                                Err(_) => tracing::debug!(
                                    %peer,
                                    "TLS handshake not finished within --header-read-timeout"
                                ),
                            }
                        }
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    info!("shutting down: draining sessions and connections");
    draining.start();
    let _ = stop.send(true);
    let all_closed = slots.acquire_many(u32::try_from(max_connections).unwrap_or(u32::MAX));
    tokio::select! {
        _ = all_closed => info!("all connections closed"),
        () = tokio::time::sleep(grace) => warn!("closing connections still open after {grace:?}"),
    }
}

/// What one accepted connection is served with.
struct Conn {
    builder: Arc<auto::Builder<TokioExecutor>>,
    peer: SocketAddr,
    app: axum::Router,
    limits: Limits,
    stopped: watch::Receiver<bool>,
}

impl Conn {
    /// Serves one connection (cleartext, or after its TLS handshake) until it ends: shut
    /// down gracefully when the node stops or when it has been idle (no request in
    /// progress) for `--idle-timeout`; its writes fail once stalled for
    /// `--slow-reader-timeout`.
    async fn serve<I>(self, stream: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            builder,
            peer,
            app,
            limits,
            mut stopped,
        } = self;
        let activity = Activity::new();
        let service = {
            let activity = activity.clone();
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let open = activity.open();
                let response = app.clone().oneshot(req.map(axum::body::Body::new));
                async move {
                    let response = response.await?;
                    Ok::<_, std::convert::Infallible>(response.map(|b| Tracked::body(b, open)))
                }
            })
        };
        let io = TokioIo::new(StallIo::new(stream, limits.slow_reader_timeout));
        let conn = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let idle_timeout = limits.idle_timeout;
        tokio::pin!(conn);
        let mut closing = false;
        // Set once an idle connection is told to close: should the graceful close not
        // finish (a peer halfway through sending a request head, say), the connection is
        // dropped after another idle timeout without a request in progress. That loses
        // nothing: after the close began no new request may start, and none is running.
        let mut drop_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = stopped.wait_for(|s| *s), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = activity.idle_for(idle_timeout), if !closing => {
                    tracing::debug!(%peer, "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    drop_at = Some(tokio::time::Instant::now() + idle_timeout);
                }
                () = sleep_until_opt(drop_at) => {
                    if activity.is_idle() {
                        tracing::debug!(%peer, "dropping an idle connection that did not close");
                        return;
                    }
                    drop_at = Some(tokio::time::Instant::now() + idle_timeout);
                }
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Binds `addr`; a clear error if the port is taken.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_streams_linger_only_where_requests_cost() {
        let s3 = Backend::S3 {
            settings: S3Settings::from_env("b"),
            prefix: None,
        };
        let on_s3 = ServerConfig::new(s3).engine.appender;
        assert_eq!(on_s3.standard_linger, Duration::from_millis(200));
        let local = ServerConfig::new(Backend::Local("d".into()))
            .engine
            .appender;
        assert_eq!(local.standard_linger, Duration::ZERO);
        assert_eq!(local.express_linger, Duration::ZERO);
    }
}
