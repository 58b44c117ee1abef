//! Counting the control-plane requests of the S2 surface in usage, for the `account-ops`
//! and `basin-ops` metric sets: each request is one operation, named as S2 names the
//! access-token operation it needs. Requests refused for their token (401, 403) do not
//! count. Appends and reads are counted by the engine, for every surface.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::{Method, StatusCode};

use crate::http::AppState;

/// Whom an operation is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Account,
    /// The basin of the `s2-basin` header.
    Basin,
}

/// The operation a request to `path` (under `/v1`) makes, if it is a control-plane one.
fn operation(method: &Method, path: &str) -> Option<(Level, &'static str)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let m = method.clone();
    use Level::*;
    Some(match (segments.as_slice(), m) {
        (["basins"], Method::GET) => (Account, "list-basins"),
        (["basins"], Method::POST) => (Account, "create-basin"),
        (["basins", _], Method::GET) => (Account, "get-basin-config"),
        (["basins", _], Method::PUT) => (Account, "create-basin"),
        (["basins", _], Method::PATCH) => (Account, "reconfigure-basin"),
        (["basins", _], Method::DELETE) => (Account, "delete-basin"),
        (["access-tokens"], Method::GET) => (Account, "list-access-tokens"),
        (["access-tokens"], Method::POST) => (Account, "issue-access-token"),
        (["access-tokens", _], Method::DELETE) => (Account, "revoke-access-token"),
        (["metrics"], Method::GET) => (Account, "account-metrics"),
        (["metrics", _], Method::GET) => (Account, "basin-metrics"),
        (["metrics", _, _], Method::GET) => (Account, "stream-metrics"),
        (["streams"], Method::GET) => (Basin, "list-streams"),
        (["streams"], Method::POST) => (Basin, "create-stream"),
        (["streams", _], Method::GET) => (Basin, "get-stream-config"),
        (["streams", _], Method::PUT) => (Basin, "create-stream"),
        (["streams", _], Method::PATCH) => (Basin, "reconfigure-stream"),
        (["streams", _], Method::DELETE) => (Basin, "delete-stream"),
        (["streams", _, "records", "tail"], Method::GET) => (Basin, "check-tail"),
        _ => return None,
    })
}

/// Counts the request's operation once it is answered (a layer of the `/v1` routes).
pub async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let op = operation(request.method(), path);
    let basin = match op {
        Some((Level::Basin, _)) => request
            .headers()
            .get("s2-basin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        _ => None,
    };
    let response = next.run(request).await;
    let refused = matches!(
        response.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    );
    match op {
        Some((Level::Account, name)) if !refused => state.engine.count_operation(None, name),
        Some((Level::Basin, name)) if !refused => {
            if let Some(basin) = &basin {
                state.engine.count_operation(Some(basin), name);
            }
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_requests_as_s2_names_their_operations() {
        let op = |m: Method, p: &str| operation(&m, p);
        assert_eq!(
            op(Method::GET, "/basins"),
            Some((Level::Account, "list-basins"))
        );
        assert_eq!(
            op(Method::PUT, "/basins/b"),
            Some((Level::Account, "create-basin"))
        );
        assert_eq!(
            op(Method::GET, "/metrics/b/s%2Fx"),
            Some((Level::Account, "stream-metrics"))
        );
        assert_eq!(
            op(Method::GET, "/streams/s/records/tail"),
            Some((Level::Basin, "check-tail"))
        );
        assert_eq!(op(Method::POST, "/streams/s/records"), None);
        assert_eq!(op(Method::GET, "/streams/s/records"), None);
        assert_eq!(op(Method::GET, "/locations"), None);
    }
}
