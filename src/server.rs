//! Process wiring: storage backend from flags and environment, the engine, the HTTP app
//! (the S2 routes and the plate routes under the layers they share), and an HTTP listener
//! that speaks HTTP/1.1 and HTTP/2 cleartext (prior knowledge) on one port.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    response::Response,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::net::TcpListener;
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

use crate::{
    api,
    engine::{AppenderSettings, Engine, EngineConfig, PollIntervals},
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
    Ok(match backend {
        Backend::Local(root) => Arc::new(LocalStore::open(root)?),
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
}

pub fn build_node(config: &ServerConfig) -> Result<Node, StorageError> {
    Ok(build_node_on(open_store(&config.backend)?, config))
}

/// A node over an already opened store (tests wrap stores, e.g. to inject faults).
pub fn build_node_on(store: DynStore, config: &ServerConfig) -> Node {
    let engine = Engine::new(store.clone(), config.engine.clone());
    let draining = Draining::default();
    let state = AppState::new(
        engine.clone(),
        draining.clone(),
        config.root_token.as_deref(),
    );
    let auth = state.auth.clone();
    Node {
        engine,
        store,
        app: app(state),
        auth,
        draining,
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
        node.auth.clone(),
        config,
        node.draining.clone(),
        grace,
    ))
}

/// Unary append bodies can be 1 MiB metered, which base64 JSON inflates; allow headroom.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The node's HTTP app: the S2 surface and the plate surface side by side, under the
/// layers both share (body limit, compression, decompression, CORS) and one fallback.
pub fn app(state: AppState) -> Router {
    let compress_when = SizeAbove::new(1024)
        .and(NotForContentType::SSE)
        .and(NotForContentType::const_new("s2s/proto"));
    Router::new()
        .merge(api::routes())
        .merge(redis::http::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CompressionLayer::new().compress_when(compress_when))
        .layer(RequestDecompressionLayer::new())
        .layer(CorsLayer::very_permissive())
        .with_state(state)
}

/// A path no route takes: in the plate surface's envelope under `/{plate}/streams`, else
/// S2's.
async fn not_found(request: Request) -> Response {
    if redis::http::is_plate_path(request.uri().path()) {
        redis::http::not_found().await
    } else {
        api::not_found().await
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains connections for up
/// to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    draining: Draining,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .initial_stream_window_size(4 * 1024 * 1024)
        .initial_connection_window_size(16 * 1024 * 1024)
        .max_frame_size(256 * 1024)
        .max_send_buf_size(4 * 1024 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
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
                let app = app.clone();
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    info!("shutting down: draining sessions and connections");
    draining.start();
    tokio::select! {
        () = graceful.shutdown() => info!("all connections closed"),
        () = tokio::time::sleep(grace) => warn!("closing connections still open after {grace:?}"),
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
