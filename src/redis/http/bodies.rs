//! The plate endpoints' request bodies and queries, decoded strictly: an unknown field is
//! refused, and required fields are `Option`s so that a missing one is `invalid_request`
//! rather than a decoding error. Bodies are read within the node's limits ([`Body`]), and
//! those that may carry an append are first admitted against the node's in-flight append
//! bytes ([`AppendBody`]).

use std::{collections::BTreeMap, sync::OnceLock};

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
};
use http::StatusCode;
use parking_lot::Mutex;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;

use super::Failure;
use crate::http::{
    AppState,
    body::{BodyError, announced_len, check_announced, discard_for_http1, read_body},
    budget::AppendPermit,
};

/// A request body, read whole within `--max-body-bytes` and `--body-read-timeout` whatever
/// its `content-type`; a body that could not be read fails when the endpoint decodes it.
pub(super) struct Body(Result<Bytes, BodyError>);

impl FromRequest<AppState> for Body {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let read = match check_announced(req.headers(), &state.limits) {
            Ok(()) => read_body(req.into_body(), &state.limits).await,
            Err(e) => Err(e),
        };
        Ok(Self(read))
    }
}

impl Body {
    pub(super) fn json<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        let bytes = self.0.as_ref().map_err(|e| {
            let (status, code) = match e {
                BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
                BodyError::TimedOut { .. } => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
                BodyError::Failed(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            };
            Failure::new(status, code, e.to_string())
        })?;
        serde_json::from_slice(bytes)
            .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))
    }
}

/// The body of an endpoint that may append (`add`, the command endpoints), unread until
/// [`AppendBody::admit`]: once the caller is authenticated, it is admitted against the
/// node's in-flight append bytes for its announced length (or the largest body allowed,
/// given back once read), read, and holds its bytes until the reply, like an S2 unary
/// append. A command that turns out not to append gives them back at once
/// ([`AppendBody::release`]).
pub(super) struct AppendBody {
    unread: Mutex<Option<(http::request::Parts, axum::body::Body)>>,
    body: OnceLock<Body>,
    permit: Mutex<Option<AppendPermit>>,
}

impl FromRequest<AppState> for AppendBody {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, _: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        Ok(Self {
            unread: Mutex::new(Some((parts, body))),
            body: OnceLock::new(),
            permit: Mutex::new(None),
        })
    }
}

impl AppendBody {
    /// Admits and reads the body: 413 `payload_too_large` at once if its length is
    /// announced over the limit, 503 `unavailable` if the node's in-flight append bytes
    /// stay spent for `--append-admission-timeout` (nothing read, nothing applied).
    pub(super) async fn admit(&self, state: &AppState) -> Result<(), Failure> {
        let Some((parts, body)) = self.unread.lock().take() else {
            return Ok(());
        };
        let (headers, limits) = (&parts.headers, &state.limits);
        if let Err(e) = check_announced(headers, limits) {
            let _ = self.body.set(Body(Err(e)));
            return Ok(());
        }
        let expected = announced_len(headers).unwrap_or(limits.max_body_bytes);
        let mut permit = match state.budget.admit(expected).await {
            Ok(permit) => permit,
            Err(refused) => {
                discard_for_http1(parts.version, body, limits).await;
                return Err(Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!(
                        "this node's in-flight append bytes stayed at their limit for {:?} \
                         (--append-inflight-bytes); nothing was applied, retry",
                        refused.waited
                    ),
                ));
            }
        };
        let read = read_body(body, limits).await;
        if let Ok(bytes) = &read {
            permit.shrink_to(bytes.len());
            *self.permit.lock() = Some(permit);
        }
        let _ = self.body.set(Body(read));
        Ok(())
    }

    /// Gives the admitted bytes back early: what was read does not append.
    pub(super) fn release(&self) {
        self.permit.lock().take();
    }

    pub(super) fn json<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        self.body
            .get()
            .expect("admitted before it is decoded")
            .json()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddBody {
    pub(super) key: Option<String>,
    pub(super) id: Option<Text>,
    pub(super) values: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RangeQuery {
    pub(super) start: Option<String>,
    pub(super) end: Option<String>,
    pub(super) count: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamRef {
    pub(super) key: Option<String>,
    pub(super) id: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadBody {
    pub(super) streams: Option<Vec<StreamRef>>,
    pub(super) count: Option<u64>,
    pub(super) block_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TrimBody {
    pub(super) key: Option<String>,
    pub(super) strategy: Option<String>,
    pub(super) threshold: Option<Text>,
    pub(super) approximate: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeleteBody {
    pub(super) key: Option<String>,
    pub(super) ids: Option<Vec<Text>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InfoQuery {
    pub(super) section: Option<String>,
    pub(super) group: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupCreateBody {
    pub(super) key: Option<String>,
    pub(super) group: Option<String>,
    pub(super) id: Option<Text>,
    pub(super) mkstream: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupReadBody {
    pub(super) group: Option<String>,
    pub(super) consumer: Option<String>,
    pub(super) streams: Option<Vec<StreamRef>>,
    pub(super) count: Option<u64>,
    pub(super) block_ms: Option<u64>,
    pub(super) noack: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AckBody {
    pub(super) key: Option<String>,
    pub(super) group: Option<String>,
    pub(super) ids: Option<Vec<Text>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PendingQuery {
    pub(super) start: Option<String>,
    pub(super) end: Option<String>,
    pub(super) count: Option<String>,
    pub(super) consumer: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClaimBody {
    pub(super) key: Option<String>,
    pub(super) group: Option<String>,
    pub(super) consumer: Option<String>,
    pub(super) min_idle_ms: Option<u64>,
    pub(super) ids: Option<Vec<Text>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AutoclaimBody {
    pub(super) key: Option<String>,
    pub(super) group: Option<String>,
    pub(super) consumer: Option<String>,
    pub(super) min_idle_ms: Option<u64>,
    pub(super) start: Option<Text>,
    pub(super) count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandBody {
    pub(super) command: Option<String>,
    pub(super) args: Option<Vec<Arg>>,
}

/// An id or threshold: a JSON string, or a number sent as its text.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Text {
    String(String),
    Number(serde_json::Number),
}

impl Text {
    pub(super) fn into_string(self) -> String {
        match self {
            Self::String(s) => s,
            Self::Number(n) => n.to_string(),
        }
    }
}

/// An argument of the command endpoints: a string, or a number or boolean sent as text.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Arg {
    String(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Arg {
    pub(super) fn into_string(self) -> String {
        match self {
            Self::String(s) => s,
            Self::Number(n) => n.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}
