//! The routes a node serves its peers for key homes: `GET` [`NODE_PATH`], its id (what a
//! probe asks), and `POST` [`COMMAND_PATH`], a command forwarded to this node as its key's
//! home. A forwarded command runs here as it would for a client of this node: authenticated
//! with the credential it came with, and never forwarded again (one hop at most, whatever
//! the nodes believe about each other).

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    response::Response,
    routing::{get, post},
};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::{
    Homes,
    wire::{
        BLOCK_CAP_HEADER, COMMAND_PATH, CREDENTIAL_HEADER, NODE_PATH, PLATE_HEADER, decode_argv,
        encode_result,
    },
};
use crate::{
    engine::Engine,
    http::auth::{Authenticator, Scheme},
    redis::{Context, RedisError, execute},
};

#[derive(Clone)]
struct Serving {
    engine: Engine,
    auth: Authenticator,
    homes: Arc<Homes>,
}

/// The routes, with their own state. They take the same secret as peer watches.
pub fn routes(engine: Engine, auth: Authenticator, homes: Arc<Homes>) -> Router {
    Router::new()
        .route(NODE_PATH, get(node))
        .route(COMMAND_PATH, post(command))
        .with_state(Serving {
            engine,
            auth,
            homes,
        })
}

async fn node(State(s): State<Serving>, headers: HeaderMap) -> Response {
    if let Some(refused) = refused(&s, &headers) {
        return refused;
    }
    answer(StatusCode::OK, format!("{:016x}", s.homes.id).into())
}

async fn command(State(s): State<Serving>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = refused(&s, &headers) {
        return refused;
    }
    let Some(plate) = headers
        .get(PLATE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return bad_request(&format!("a forwarded command needs `{PLATE_HEADER}`"));
    };
    let block_cap = match headers.get(BLOCK_CAP_HEADER).map(|v| v.to_str()) {
        None => None,
        Some(Ok(ms)) => match ms.parse() {
            Ok(ms) => Some(Duration::from_millis(ms)),
            Err(_) => return bad_request(&format!("`{BLOCK_CAP_HEADER}` is not a number")),
        },
        Some(Err(_)) => return bad_request(&format!("`{BLOCK_CAP_HEADER}` is not a number")),
    };
    let argv = match decode_argv(body) {
        Ok(argv) => argv,
        Err(e) => return bad_request(&format!("forwarded command: {e}")),
    };
    let mut presented = HeaderMap::new();
    if let Some(credential) = headers.get(CREDENTIAL_HEADER) {
        presented.insert(header::AUTHORIZATION, credential.clone());
    }
    let result = match s.auth.authenticate(&presented, Scheme::BearerOrBare).await {
        Ok(caller) => {
            let ctx = Context {
                engine: s.engine.clone(),
                caller,
                plate,
                max_block: block_cap,
                homes: None,
                credential: None,
            };
            execute(&ctx, &argv).await
        }
        Err(e) => Err(RedisError::from(e)),
    };
    answer(StatusCode::OK, encode_result(&result))
}

/// The refusal of a request without the cluster's peer secret, if one is set.
fn refused(s: &Serving, headers: &HeaderMap) -> Option<Response> {
    let secret = s.homes.secret.as_ref()?;
    (!secret.admits(headers)).then(|| {
        answer(
            StatusCode::UNAUTHORIZED,
            "a peer request needs `Authorization: Bearer` with the cluster's peer secret".into(),
        )
    })
}

fn bad_request(message: &str) -> Response {
    answer(StatusCode::BAD_REQUEST, message.to_owned().into())
}

fn answer(status: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}
