//! The watch a node serves its peers: `POST` [`WATCH_PATH`] with the streams a peer
//! follows; the response's head is sent at once (the peer then knows its watch is held),
//! its body once this node has a newer state of one of them, or empty when the hold ends
//! or the node shuts down.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{Router, body::Body, extract::State, response::Response, routing::post};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::{
    PeerSecret,
    wire::{WATCH_PATH, WatchRequest, encode_answer},
};
use crate::{
    engine::{Engine, notices::Followed},
    http::Draining,
};

/// What the watch handler runs with.
#[derive(Clone)]
struct Watching {
    engine: Engine,
    draining: Draining,
    secret: Option<Arc<PeerSecret>>,
    /// The longest this node holds a watch (`--peer-watch-hold`).
    max_hold: Duration,
}

/// The watch route, with its own state; without a secret any caller may watch, as any
/// caller may read when the node has no root token.
pub fn routes(
    engine: Engine,
    draining: Draining,
    secret: Option<Arc<PeerSecret>>,
    max_hold: Duration,
) -> Router {
    Router::new()
        .route(WATCH_PATH, post(watch))
        .with_state(Watching {
            engine,
            draining,
            secret,
            max_hold,
        })
}

async fn watch(State(w): State<Watching>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(secret) = &w.secret
        && !secret.admits(&headers)
    {
        return failure(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a peer watch needs `Authorization: Bearer` with the cluster's peer secret",
        );
    }
    let request: WatchRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return failure(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("watch request: {e}"),
            );
        }
    };
    let hold = Duration::from_millis(request.hold_ms).min(w.max_hold);
    let wanted: Vec<Followed> = request.streams.into_iter().map(Followed::from).collect();
    let answer = futures::stream::once(async move {
        let give_up = async {
            tokio::select! {
                () = tokio::time::sleep(hold) => {}
                () = w.draining.started() => {}
            }
        };
        let notices = w.engine.newer_states(&wanted, give_up).await;
        Ok::<_, Infallible>(encode_answer(&notices))
    });
    let mut response = Response::new(Body::from_stream(answer));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

fn failure(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
