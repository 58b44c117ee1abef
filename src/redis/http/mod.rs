//! The plate HTTP surface (`../shared/streams-http-api.md`, user docs in
//! `docs/streams-api.md`): under `/{plate}/streams/...`, fourteen wrapper endpoints that
//! each build one stream command from a JSON body or a query, and two command endpoints
//! that take a command and its arguments as they are. Every handler is the same five
//! steps: authenticate, decode the path, decode the body or query strictly, build the
//! argument list, [`execute`] it; the reply or error goes out in the plate envelope
//! (`{"ok": true, "data": {"result": …}}` / `{"ok": false, "error": {code, message}}`).
//!
//! A plate is a basin; its name may carry one leading `$` (the service's documented
//! examples write `/$[id]/streams/...`). Key names in paths are percent-decoded.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{FromRequestParts, RawPathParams, State, rejection::RawPathParamsRejection},
    response::{IntoResponse, Response},
    routing::{MethodRouter, get, post},
};
use http::{HeaderMap, StatusCode, Uri, request::Parts};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Context, Homes, RedisError, execute};
use bodies::*;

mod bodies;
use crate::{
    engine::EngineError,
    http::{
        AppState,
        auth::{Caller, Scheme},
    },
};

/// The longest a blocking read waits over HTTP; then it answers `null`.
pub const MAX_BLOCK: Duration = Duration::from_secs(60);

/// The plate routes; the server mounts them beside the S2 routes.
pub fn routes() -> Router<AppState> {
    let on = |r: MethodRouter<AppState>| r.fallback(method_not_allowed);
    Router::new()
        .route("/{plate}/streams/add", on(post(add)))
        .route("/{plate}/streams/length/{key}", on(get(length)))
        .route("/{plate}/streams/range/{key}", on(get(range)))
        .route("/{plate}/streams/reverse/{key}", on(get(reverse)))
        .route("/{plate}/streams/read", on(post(read)))
        .route("/{plate}/streams/trim", on(post(trim)))
        .route("/{plate}/streams/delete", on(post(delete)))
        .route("/{plate}/streams/info/{key}", on(get(info)))
        .route("/{plate}/streams/groups/create", on(post(group_create)))
        .route("/{plate}/streams/groups/read", on(post(group_read)))
        .route("/{plate}/streams/groups/ack", on(post(group_ack)))
        .route(
            "/{plate}/streams/groups/pending/{key}/{group}",
            on(get(group_pending)),
        )
        .route("/{plate}/streams/groups/claim", on(post(group_claim)))
        .route(
            "/{plate}/streams/groups/autoclaim",
            on(post(group_autoclaim)),
        )
        .route("/{plate}/streams/command", on(post(command)))
        .route("/{plate}/streams/{key}/command", on(post(key_command)))
}

/// The request extension by which the plate routes learn where each key's commands run
/// (set over the node's whole app; absent, every command runs here).
#[derive(Clone, Default)]
pub struct KeyHomes(pub Option<Arc<Homes>>);

/// Whether a path no route takes is under a plate (`/{plate}/streams[/...]`, `/v1` aside),
/// so that its 404 is in this surface's envelope.
pub fn is_plate_path(path: &str) -> bool {
    let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
    let plate = segments.next().unwrap_or_default();
    !plate.is_empty() && plate != "v1" && segments.next() == Some("streams")
}

/// The answer to a path under a plate that no route takes.
pub async fn not_found() -> Response {
    Failure::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response()
}

async fn method_not_allowed() -> Response {
    Failure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take this method",
    )
    .into_response()
}

// ---------------------------------------------------------------------------------------
// The endpoints: each builds its command's argument list.

async fn add(State(state): State<AppState>, req: Incoming, body: AppendBody) -> Response {
    serve_append(&state, req, &body, |_| {
        let b: AddBody = body.json()?;
        let key = required("key", b.key)?;
        let values = b.values.filter(|v| !v.is_empty()).ok_or_else(|| {
            Failure::invalid_request("`values` must have at least one field".into())
        })?;
        let mut argv = Argv::new("XADD");
        argv.push(key);
        argv.push(b.id.map_or_else(|| "*".into(), Text::into_string));
        for (field, value) in values {
            argv.push(field);
            argv.push(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        }
        Ok(argv)
    })
    .await
}

async fn length(State(state): State<AppState>, req: Incoming) -> Response {
    serve(&state, req, |req| {
        let mut argv = Argv::new("XLEN");
        argv.push(req.param("key")?);
        Ok(argv)
    })
    .await
}

async fn range(State(state): State<AppState>, req: Incoming) -> Response {
    serve(&state, req, |req| ranged(req, "XRANGE", "-", "+")).await
}

async fn reverse(State(state): State<AppState>, req: Incoming) -> Response {
    serve(&state, req, |req| ranged(req, "XREVRANGE", "+", "-")).await
}

fn ranged(req: &Incoming, name: &str, start: &str, end: &str) -> Result<Argv, Failure> {
    let key = req.param("key")?;
    let q: RangeQuery = req.query()?;
    let mut argv = Argv::new(name);
    argv.push(key);
    argv.push(bound(q.start).unwrap_or_else(|| start.into()));
    argv.push(bound(q.end).unwrap_or_else(|| end.into()));
    if let Some(count) = integer("count", q.count)? {
        argv.push("COUNT");
        argv.push(count);
    }
    Ok(argv)
}

async fn read(State(state): State<AppState>, req: Incoming, body: Body) -> Response {
    serve(&state, req, |_| {
        let b: ReadBody = body.json()?;
        let streams = streams(b.streams, "$")?;
        let mut argv = Argv::new("XREAD");
        argv.options(b.count, b.block_ms);
        argv.streams(streams);
        Ok(argv)
    })
    .await
}

async fn trim(State(state): State<AppState>, req: Incoming, body: Body) -> Response {
    serve(&state, req, |_| {
        let b: TrimBody = body.json()?;
        let key = required("key", b.key)?;
        let strategy = required("strategy", b.strategy)?;
        let strategy = match strategy.to_ascii_lowercase().as_str() {
            "maxlen" => "MAXLEN",
            "minid" => "MINID",
            _ => {
                return Err(Failure::invalid_request(format!(
                    "`strategy` must be \"maxlen\" or \"minid\", not {strategy:?}"
                )));
            }
        };
        let threshold = required("threshold", b.threshold.map(Text::into_string))?;
        let mut argv = Argv::new("XTRIM");
        argv.push(key);
        argv.push(strategy);
        if b.approximate == Some(true) {
            argv.push("~");
        }
        argv.push(threshold);
        Ok(argv)
    })
    .await
}

async fn delete(State(state): State<AppState>, req: Incoming, body: Body) -> Response {
    serve(&state, req, |_| {
        let b: DeleteBody = body.json()?;
        let key = required("key", b.key)?;
        let ids = ids(b.ids)?;
        let mut argv = Argv::new("XDEL");
        argv.push(key);
        argv.extend(ids);
        Ok(argv)
    })
    .await
}

async fn info(State(state): State<AppState>, req: Incoming) -> Response {
    serve(&state, req, |req| {
        let key = req.param("key")?;
        let q: InfoQuery = req.query()?;
        let section = present(q.section).unwrap_or_else(|| "stream".into());
        let group = present(q.group);
        let mut argv = Argv::new("XINFO");
        match (section.to_ascii_lowercase().as_str(), group) {
            ("stream", None) => {
                argv.push("STREAM");
                argv.push(key);
            }
            ("groups", None) => {
                argv.push("GROUPS");
                argv.push(key);
            }
            ("consumers", Some(group)) => {
                argv.push("CONSUMERS");
                argv.push(key);
                argv.push(group);
            }
            ("consumers", None) => {
                return Err(Failure::invalid_query(
                    "`section=consumers` needs `group`".into(),
                ));
            }
            ("stream" | "groups", Some(_)) => {
                return Err(Failure::invalid_query(
                    "`group` goes only with `section=consumers`".into(),
                ));
            }
            _ => {
                return Err(Failure::invalid_query(format!(
                    "`section` must be stream, groups or consumers, not {section:?}"
                )));
            }
        }
        Ok(argv)
    })
    .await
}

async fn group_create(State(state): State<AppState>, req: Incoming, body: Body) -> Response {
    serve(&state, req, |_| {
        let b: GroupCreateBody = body.json()?;
        let key = required("key", b.key)?;
        let group = required("group", b.group)?;
        let mut argv = Argv::new("XGROUP");
        argv.push("CREATE");
        argv.push(key);
        argv.push(group);
        argv.push(b.id.map_or_else(|| "$".into(), Text::into_string));
        if b.mkstream == Some(true) {
            argv.push("MKSTREAM");
        }
        Ok(argv)
    })
    .await
}

async fn group_read(State(state): State<AppState>, req: Incoming, body: Body) -> Response {
    serve(&state, req, |_| {
        let b: GroupReadBody = body.json()?;
        let group = required("group", b.group)?;
        let consumer = required("consumer", b.consumer)?;
        let streams = streams(b.streams, ">")?;
        let mut argv = Argv::new("XREADGROUP");
        argv.push("GROUP");
        argv.push(group);
        argv.push(consumer);
        argv.options(b.count, b.block_ms);
        if b.noack == Some(true) {
            argv.push("NOACK");
        }
        argv.streams(streams);
        Ok(argv)
    })
    .await
}

async fn group_ack(State(state): State<AppState>, req: Incoming, body: Body) -> Response {
    serve(&state, req, |_| {
        let b: AckBody = body.json()?;
        let key = required("key", b.key)?;
        let group = required("group", b.group)?;
        let ids = ids(b.ids)?;
        let mut argv = Argv::new("XACK");
        argv.push(key);
        argv.push(group);
        argv.extend(ids);
        Ok(argv)
    })
    .await
}

async fn group_pending(State(state): State<AppState>, req: Incoming) -> Response {
    serve(&state, req, |req| {
        let key = req.param("key")?;
        let group = req.param("group")?;
        let q: PendingQuery = req.query()?;
        let mut argv = Argv::new("XPENDING");
        argv.push(key);
        argv.push(group);
        let (end, consumer) = (bound(q.end), present(q.consumer));
        let count = integer("count", q.count)?;
        match bound(q.start) {
            None if end.is_some() || count.is_some() || consumer.is_some() => {
                return Err(Failure::invalid_query(
                    "`end`, `count` and `consumer` need `start` (the extended form)".into(),
                ));
            }
            None => {}
            Some(start) => {
                argv.push(start);
                argv.push(end.unwrap_or_else(|| "+".into()));
                argv.push(count.unwrap_or_else(|| "10".into()));
                argv.extend(consumer);
            }
        }
        Ok(argv)
    })
    .await
}

async fn group_claim(State(state): State<AppState>, req: Incoming, body: Body) -> Response {
    serve(&state, req, |_| {
        let b: ClaimBody = body.json()?;
        let key = required("key", b.key)?;
        let group = required("group", b.group)?;
        let consumer = required("consumer", b.consumer)?;
        let min_idle = b.min_idle_ms.ok_or_else(|| missing("min_idle_ms"))?;
        let ids = ids(b.ids)?;
        let mut argv = Argv::new("XCLAIM");
        argv.push(key);
        argv.push(group);
        argv.push(consumer);
        argv.push(min_idle.to_string());
        argv.extend(ids);
        Ok(argv)
    })
    .await
}

async fn group_autoclaim(State(state): State<AppState>, req: Incoming, body: Body) -> Response {
    serve(&state, req, |_| {
        let b: AutoclaimBody = body.json()?;
        let key = required("key", b.key)?;
        let group = required("group", b.group)?;
        let consumer = required("consumer", b.consumer)?;
        let min_idle = b.min_idle_ms.ok_or_else(|| missing("min_idle_ms"))?;
        let start = required("start", b.start.map(Text::into_string))?;
        let mut argv = Argv::new("XAUTOCLAIM");
        argv.push(key);
        argv.push(group);
        argv.push(consumer);
        argv.push(min_idle.to_string());
        argv.push(start);
        if let Some(count) = b.count {
            argv.push("COUNT");
            argv.push(count.to_string());
        }
        Ok(argv)
    })
    .await
}

async fn command(State(state): State<AppState>, req: Incoming, body: AppendBody) -> Response {
    serve_append(&state, req, &body, |_| command_argv(&body, None)).await
}

async fn key_command(State(state): State<AppState>, req: Incoming, body: AppendBody) -> Response {
    serve_append(&state, req, &body, |req| {
        let key = req.param("key")?;
        command_argv(&body, Some(key))
    })
    .await
}

/// The command and its arguments; a command other than `XADD` gives its body's admitted
/// bytes back at once.
fn command_argv(body: &AppendBody, key: Option<String>) -> Result<Argv, Failure> {
    let b: CommandBody = body.json()?;
    let name = required("command", b.command)?;
    if !name.eq_ignore_ascii_case("XADD") {
        body.release();
    }
    let mut argv = Argv::new(name);
    argv.extend(key);
    argv.extend(b.args.into_iter().flatten().map(Arg::into_string));
    Ok(argv)
}

/// `STREAMS k1 k2 … id1 id2 …` from `[{key, id}]`, ids defaulting to `default_id`.
fn streams(
    streams: Option<Vec<StreamRef>>,
    default_id: &str,
) -> Result<Vec<(String, String)>, Failure> {
    let streams = streams
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Failure::invalid_request("`streams` must name at least one key".into()))?;
    streams
        .into_iter()
        .map(|s| {
            let key = required("streams[].key", s.key)?;
            let id = s.id.map_or_else(|| default_id.into(), Text::into_string);
            Ok((key, id))
        })
        .collect()
}

fn ids(ids: Option<Vec<Text>>) -> Result<Vec<String>, Failure> {
    let ids = ids
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Failure::invalid_request("`ids` must name at least one id".into()))?;
    Ok(ids.into_iter().map(Text::into_string).collect())
}

fn required(name: &str, value: Option<String>) -> Result<String, Failure> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| missing(name))
}

fn missing(name: &str) -> Failure {
    Failure::invalid_request(format!("`{name}` is required"))
}

/// A query value; empty counts as absent.
fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// A range bound from a query. A bare `+` in a query decodes to a space; ids have no
/// spaces, so a space is taken back as the `+` it was written as (`?end=+` works as well
/// as `?end=%2B`).
fn bound(value: Option<String>) -> Option<String> {
    present(value).map(|v| v.replace(' ', "+"))
}

/// An integer query value, as given.
fn integer(name: &str, value: Option<String>) -> Result<Option<String>, Failure> {
    match present(value) {
        None => Ok(None),
        Some(v) if v.parse::<i64>().is_ok() => Ok(Some(v)),
        Some(v) => Err(Failure::invalid_query(format!(
            "`{name}` must be an integer, not {v:?}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// The plumbing every endpoint shares.

/// A command's argument list, `argv[0]` its name.
struct Argv(Vec<Bytes>);

impl Argv {
    fn new(name: impl Into<String>) -> Self {
        Self(vec![Bytes::from(name.into())])
    }

    fn push(&mut self, arg: impl Into<String>) {
        self.0.push(Bytes::from(arg.into()));
    }

    fn extend<S: Into<String>>(&mut self, args: impl IntoIterator<Item = S>) {
        args.into_iter().for_each(|a| self.push(a));
    }

    fn options(&mut self, count: Option<u64>, block_ms: Option<u64>) {
        if let Some(count) = count {
            self.push("COUNT");
            self.push(count.to_string());
        }
        if let Some(block) = block_ms {
            self.push("BLOCK");
            self.push(block.to_string());
        }
    }

    fn streams(&mut self, streams: Vec<(String, String)>) {
        self.push("STREAMS");
        let (keys, ids): (Vec<_>, Vec<_>) = streams.into_iter().unzip();
        self.extend(keys);
        self.extend(ids);
    }
}

/// What every request brings besides its body: headers, path values (not yet decoded, so
/// that a bad one is this surface's error), and the URI for the query.
struct Incoming {
    headers: HeaderMap,
    /// With `--peers`, where each key's commands run ([`crate::redis::homes`]).
    homes: Option<Arc<Homes>>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    uri: Uri,
}

impl FromRequestParts<AppState> for Incoming {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            headers: parts.headers.clone(),
            homes: parts.extensions.get::<KeyHomes>().and_then(|h| h.0.clone()),
            params: RawPathParams::from_request_parts(parts, state).await,
            uri: parts.uri.clone(),
        })
    }
}

impl Incoming {
    /// A percent-decoded path value.
    fn param(&self, name: &str) -> Result<String, Failure> {
        let params = self
            .params
            .as_ref()
            .map_err(|e| Failure::invalid_path_value(e.body_text()))?;
        params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .ok_or_else(|| Failure::invalid_path_value(format!("no `{name}` in the path")))
    }

    /// The plate (basin) name: one leading `$` dropped, and it must be a basin name.
    fn plate(&self) -> Result<String, Failure> {
        let raw = self.param("plate")?;
        let name = raw.strip_prefix('$').unwrap_or(&raw);
        name.parse::<s2_common::basin::BasinName>().map_err(|e| {
            Failure::invalid_path_value(format!("plate {name:?} is not a valid basin name: {e}"))
        })?;
        Ok(name.to_owned())
    }

    fn query<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        axum::extract::Query::<T>::try_from_uri(&self.uri)
            .map(|axum::extract::Query(q)| q)
            .map_err(|e| Failure::invalid_query(e.body_text()))
    }
}

/// [`serve`] for an endpoint that may append: the caller is authenticated before its body
/// is admitted and read ([`AppendBody::admit`]), so that no one without a token spends
/// the node's append budget.
async fn serve_append(
    state: &AppState,
    req: Incoming,
    body: &AppendBody,
    argv: impl FnOnce(&Incoming) -> Result<Argv, Failure>,
) -> Response {
    let admitted = async {
        authenticate(state, &req.headers).await?;
        body.admit(state).await
    };
    match admitted.await {
        Ok(()) => serve(state, req, argv).await,
        Err(failure) => failure.into_response(),
    }
}

/// Authenticates, builds the command with `argv`, runs it, and renders the outcome.
async fn serve(
    state: &AppState,
    req: Incoming,
    argv: impl FnOnce(&Incoming) -> Result<Argv, Failure>,
) -> Response {
    match run(state, &req, argv).await {
        Ok(result) => (
            StatusCode::OK,
            Json(json!({"ok": true, "data": {"result": result}})),
        )
            .into_response(),
        Err(failure) => failure.into_response(),
    }
}

async fn run(
    state: &AppState,
    req: &Incoming,
    argv: impl FnOnce(&Incoming) -> Result<Argv, Failure>,
) -> Result<Value, Failure> {
    let caller = authenticate(state, &req.headers).await?;
    let plate = req.plate()?;
    let Argv(argv) = argv(req)?;
    let ctx = Context {
        engine: state.engine.clone(),
        caller,
        plate,
        max_block: Some(MAX_BLOCK),
        homes: req.homes.clone(),
        credential: req.headers.get(http::header::AUTHORIZATION).cloned(),
    };
    match execute(&ctx, &argv).await {
        Ok(reply) => Ok(reply.to_json()),
        Err(
            e @ (RedisError::PlateNotFound(_)
            | RedisError::MissingAuthorization(_)
            | RedisError::InvalidAuthorization(_)
            | RedisError::PermissionDenied(_)
            | RedisError::Unavailable(_)),
        ) => Err(e.into()),
        // A command refused before it reached the engine: on a plate that does not exist,
        // that is the answer rather than the command's error.
        Err(e) => {
            plate_exists(state, &ctx.plate).await?;
            Err(e.into())
        }
    }
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, Failure> {
    state
        .auth
        .authenticate(headers, Scheme::BearerOrBare)
        .await
        .map_err(|e| RedisError::from(e).into())
}

async fn plate_exists(state: &AppState, plate: &str) -> Result<(), Failure> {
    match state.engine.basin_entry(plate).await {
        Ok(entry) if entry.deleted_at.is_none() => Ok(()),
        Ok(_) | Err(EngineError::BasinNotFound(_)) => {
            Err(RedisError::PlateNotFound(format!("no such plate: {plate}")).into())
        }
        Err(e) => Err(RedisError::from(e).into()),
    }
}

/// An error reply: status, code and message.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    code: String,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    fn invalid_request(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    fn invalid_query(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", message)
    }

    fn invalid_path_value(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_path_value", message)
    }
}

impl From<RedisError> for Failure {
    fn from(e: RedisError) -> Self {
        let status = match &e {
            RedisError::Reply(_) => match e.code() {
                "NOGROUP" => StatusCode::NOT_FOUND,
                "BUSYGROUP" => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            },
            RedisError::Unsupported(_) => StatusCode::BAD_REQUEST,
            RedisError::MissingAuthorization(_) | RedisError::InvalidAuthorization(_) => {
                StatusCode::UNAUTHORIZED
            }
            RedisError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            RedisError::PlateNotFound(_) => StatusCode::NOT_FOUND,
            RedisError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(status, e.code(), e.message())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"ok": false, "error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plate_paths_are_told_from_s2_paths() {
        assert!(is_plate_path("/my-plate-1/streams/nope"));
        assert!(is_plate_path("/$my-plate-1/streams"));
        assert!(!is_plate_path("/v1/streams/x/y"));
        assert!(!is_plate_path("/my-plate-1/other"));
        assert!(!is_plate_path("/"));
    }

    #[test]
    fn redis_errors_have_the_contract_statuses() {
        let status = |e: RedisError| Failure::from(e).status.as_u16();
        assert_eq!(status(RedisError::syntax()), 400);
        assert_eq!(
            status(RedisError::Reply("NOGROUP No such key 'k'".into())),
            404
        );
        assert_eq!(
            status(RedisError::Reply(
                "BUSYGROUP Consumer Group name already exists".into()
            )),
            409
        );
        assert_eq!(status(RedisError::Unsupported("x".into())), 400);
        assert_eq!(status(RedisError::PermissionDenied("x".into())), 403);
        assert_eq!(status(RedisError::Unavailable("x".into())), 503);
    }
}
