//! Request extraction with S2's error codes: a bad `s2-basin` header is `bad_header`, a
//! bad path segment `bad_path`, a bad query `bad_query`, bad JSON `bad_json`, a missing
//! or invalid bearer token `authn`.

use axum::{
    body::Body,
    extract::{FromRequest, FromRequestParts, Path, Query, Request},
};
use http::{HeaderMap, request::Parts};
use s2_common::{
    access::AccessTokenId,
    basin::BasinName,
    http::{ParseableHeader, extract::HeaderRejection},
    stream::StreamName,
};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::http::{
    AppState,
    auth::{Caller, Scheme},
    body::{check_announced, read_body},
};

/// The basin of a stream-level request, from the `s2-basin` header.
pub struct BasinHeader(pub BasinName);

impl<S: Send + Sync> FromRequestParts<S> for BasinHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        s2_common::http::extract::parse_header::<BasinName>(&parts.headers)
            .map(Self)
            .map_err(|e| ApiError::bad_header(e.to_string()))
    }
}

/// The single path parameter, percent-decoded, parsed as `T`.
async fn path_param<S: Send + Sync, T>(parts: &mut Parts, state: &S) -> Result<T, ApiError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let Path(raw) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::bad_path(e.body_text()))?;
    raw.parse::<T>()
        .map_err(|e| ApiError::bad_path(e.to_string()))
}

/// The stream named by the path (`/streams/{stream}…`).
pub struct StreamPath(pub StreamName);

impl<S: Send + Sync> FromRequestParts<S> for StreamPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        path_param(parts, state).await.map(Self)
    }
}

/// The basin named by the path (`/basins/{basin}`).
pub struct BasinPath(pub BasinName);

impl<S: Send + Sync> FromRequestParts<S> for BasinPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        path_param(parts, state).await.map(Self)
    }
}

/// The access token named by the path (`/access-tokens/{id}`).
pub struct TokenPath(pub AccessTokenId);

impl<S: Send + Sync> FromRequestParts<S> for TokenPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        path_param(parts, state).await.map(Self)
    }
}

/// Query parameters.
pub struct QueryOf<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryOf<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Self(q))
            .map_err(|e| ApiError::bad_query(e.body_text()))
    }
}

/// `req` with its body read whole within the node's limits (413 over
/// `--max-body-bytes`, 408 past `--body-read-timeout`), put back in memory for one of
/// S2's extractors to decode; a body that fails on the way in is `bad`.
pub async fn read_within_limits(
    req: Request,
    state: &AppState,
    bad: fn(String) -> ApiError,
) -> Result<Request, ApiError> {
    check_announced(req.headers(), &state.limits).map_err(|e| ApiError::body(e, bad))?;
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, &state.limits)
        .await
        .map_err(|e| ApiError::body(e, bad))?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// A JSON body (`Content-Type: application/json` required).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let req = read_within_limits(req, state, ApiError::bad_json).await?;
        s2_api::data::Json::<T>::from_request(req, state)
            .await
            .map(|s2_api::data::Json(v)| Self(v))
            .map_err(|e| ApiError::bad_json(e.body_text()))
    }
}

/// An optional JSON body: absent, empty, or `null` all mean `None`.
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let req = read_within_limits(req, state, ApiError::bad_json).await?;
        s2_api::data::extract::JsonOpt::<Option<T>>::from_request(req, state)
            .await
            .map(|s2_api::data::extract::JsonOpt(v)| Self(v.flatten()))
            .map_err(|e| ApiError::bad_json(e.body_text()))
    }
}

/// An optional header of a type S2 defines; present but malformed is `bad_header`.
pub fn optional_header<T>(headers: &HeaderMap) -> Result<Option<T>, ApiError>
where
    T: ParseableHeader,
    T::Err: std::fmt::Display,
{
    match s2_common::http::extract::parse_header::<T>(headers) {
        Ok(v) => Ok(Some(v)),
        Err(HeaderRejection::MissingHeader(_)) => Ok(None),
        Err(e) => Err(ApiError::bad_header(e.to_string())),
    }
}

/// The caller, from `Authorization: Bearer <token>`: S2's `authn` (401) when tokens are on
/// and it is missing or invalid.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(state
            .auth
            .authenticate(&parts.headers, Scheme::Bearer)
            .await?)
    }
}
