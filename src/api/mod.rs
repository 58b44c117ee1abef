//! The S2 HTTP surface: routing, extraction with S2's error codes, content negotiation.
//! Knows nothing about objects; every operation is parse, call the engine, shape the
//! response.

mod access_tokens;
pub mod auth;
mod basins;
pub mod error;
pub mod extract;
mod metrics;
mod records;
pub mod s2s;
mod sse;
mod streams;

use std::sync::Arc;

use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    response::{IntoResponse, Response},
    routing::{any, delete, get},
};
use http::StatusCode;
use tokio::sync::watch;
use tower_http::{
    compression::{
        CompressionLayer,
        predicate::{NotForContentType, Predicate, SizeAbove},
    },
    cors::CorsLayer,
    decompression::RequestDecompressionLayer,
};

use self::auth::Authenticator;
pub use self::error::ApiError;
use crate::{engine::Engine, storage::counting::StoreCounters};

/// Set when the node begins shutting down: sessions end with `server_draining` so that
/// clients reconnect elsewhere.
#[derive(Clone, Debug)]
pub struct Draining(Arc<watch::Sender<bool>>);

impl Default for Draining {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }
}

impl Draining {
    pub fn start(&self) {
        self.0.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once draining has started.
    pub async fn started(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }
}

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub counters: Arc<StoreCounters>,
    pub draining: Draining,
    pub auth: Authenticator,
}

impl AppState {
    /// With `root_token`, every S2 request must carry a valid access token.
    pub fn new(
        engine: Engine,
        counters: Arc<StoreCounters>,
        draining: Draining,
        root_token: Option<&str>,
    ) -> Self {
        Self {
            auth: Authenticator::new(engine.clone(), root_token),
            engine,
            counters,
            draining,
        }
    }
}

/// Unary append bodies can be 1 MiB metered, which base64 JSON inflates; allow headroom.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/basins", get(basins::list).post(basins::create))
        .route(
            "/basins/{basin}",
            get(basins::get_config)
                .put(basins::ensure)
                .patch(basins::reconfigure)
                .delete(basins::delete),
        )
        .route("/streams", get(streams::list).post(streams::create))
        .route(
            "/streams/{stream}",
            get(streams::get_config)
                .put(streams::ensure)
                .patch(streams::reconfigure)
                .delete(streams::delete),
        )
        .route("/streams/{stream}/records/tail", get(records::check_tail))
        .route(
            "/streams/{stream}/records",
            get(records::read).post(records::append),
        )
        .route(
            "/access-tokens",
            get(access_tokens::list).post(access_tokens::issue),
        )
        .route("/access-tokens/{id}", delete(access_tokens::revoke))
        .route("/metrics", any(not_implemented))
        .route("/metrics/{*rest}", any(not_implemented))
        .route("/locations", any(not_implemented))
        .route("/locations/{*rest}", any(not_implemented));

    let compress_when = SizeAbove::new(1024)
        .and(NotForContentType::SSE)
        .and(NotForContentType::const_new("s2s/proto"));

    Router::new()
        .nest("/v1", v1)
        .route("/health", get(health))
        .route("/ping", get(health))
        .route("/metrics", get(metrics::prometheus))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CompressionLayer::new().compress_when(compress_when))
        .layer(RequestDecompressionLayer::new())
        .layer(CorsLayer::very_permissive())
        .with_state(state)
}

/// Authenticates first, so that a node with a root token answers no one without a token.
async fn not_implemented(_caller: auth::Caller) -> ApiError {
    ApiError::not_implemented("not implemented by Sluice yet")
}

async fn not_found() -> Response {
    ApiError::bad_path("no such route").into_response()
}

async fn health(State(state): State<AppState>) -> Response {
    match state.engine.health().await {
        Ok(()) => (StatusCode::OK, "OK").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("storage unavailable: {e}"),
        )
            .into_response(),
    }
}
