//! The S2 HTTP surface: routing, extraction with S2's error codes, content negotiation.
//! Knows nothing about objects; every operation is parse, call the engine, shape the
//! response. State and access tokens come from [`crate::http`]; the server mounts
//! [`routes`] beside the plate surface.
//!
//! - `basins`, `streams`, `access_tokens`: the control plane, one handler per operation;
//!   `records`: append, read, check-tail, with `sse` and `s2s` sessions, whose shared
//!   encodings are `wire`; `metrics`: S2's metrics API over the usage in the bucket,
//!   whose control-plane operations `operations` counts; `locations`: the deployment's
//!   one location; `prometheus`: the Prometheus text of the node's counters.
//! - [`extract`]: request extraction with S2's codes, the S2 [`Caller`] extractor
//!   included; [`error`]: [`ApiError`], S2's error bodies.

mod access_tokens;
mod basins;
pub(crate) mod error;
pub(crate) mod extract;
mod locations;
mod metrics;
mod operations;
mod prometheus;
mod records;
pub(crate) mod s2s;
mod sse;
mod streams;
mod wire;

use axum::{
    Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::{any, delete, get},
};
use http::StatusCode;

pub use self::error::ApiError;
use crate::http::AppState;

/// The S2 routes (`/v1/...`) and the node's own (`/health`, `/ping`, `/metrics`); the
/// server adds the layers both surfaces share.
pub fn routes(state: AppState) -> Router<AppState> {
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
        .route("/metrics", get(metrics::account))
        .route("/metrics/{basin}", get(metrics::basin))
        .route("/metrics/{basin}/{stream}", get(metrics::stream))
        .route("/locations", get(locations::list))
        .route(
            "/locations/default",
            get(locations::get_default).put(locations::set_default),
        )
        // Every other path under `/v1` is S2's, never a plate's (`/{plate}/streams/...`
        // would otherwise take `/v1/streams/{key}/command`).
        .route("/{*rest}", any(not_found))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            operations::count,
        ));

    Router::new()
        .nest("/v1", v1)
        .route("/health", get(health))
        .route("/ping", get(health))
        .route("/metrics", get(prometheus::prometheus))
}

/// S2's answer to a path no route takes.
pub async fn not_found() -> Response {
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
