//! Account-level access-token operations: issue, list, revoke.

use axum::extract::{FromRequestParts, Path, State};
use http::{StatusCode, request::Parts};
use s2_api::v1::access::{
    AccessTokenInfo, IssueAccessTokenRequest, IssueAccessTokenResponse, ListAccessTokensRequest,
    ListAccessTokensResponse,
};
use s2_common::access::{AccessTokenId, ListAccessTokensRequest as CommonListRequest, Operation};
use time::OffsetDateTime;

use super::{
    AppState,
    auth::{Caller, Grant, new_secret},
    error::ApiError,
    extract::{JsonBody, QueryOf},
};
use crate::engine::AccessTokenEntry;

/// The token id named by the path (`/access-tokens/{id}`).
pub struct TokenPath(AccessTokenId);

impl FromRequestParts<AppState> for TokenPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_path(e.body_text()))?;
        raw.parse()
            .map(Self)
            .map_err(|e: s2_common::ValidationError| ApiError::bad_path(e.to_string()))
    }
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryOf(request): QueryOf<ListAccessTokensRequest>,
) -> Result<axum::Json<ListAccessTokensResponse>, ApiError> {
    caller.may(Operation::ListAccessTokens)?;
    let request: CommonListRequest = request.try_into()?;
    let Some(listing) = caller.tokens_listing(&request.prefix) else {
        return Ok(axum::Json(ListAccessTokensResponse {
            access_tokens: Vec::new(),
            has_more: false,
        }));
    };
    let (mut entries, has_more) = state
        .engine
        .list_access_tokens(
            &listing.prefix,
            &request.start_after,
            request.limit.as_usize(),
        )
        .await?;
    if let Some(only) = &listing.only {
        entries.retain(|e| e.info.id.as_ref() as &str == only);
    }
    Ok(axum::Json(ListAccessTokensResponse {
        access_tokens: entries.into_iter().map(|e| e.info).collect(),
        has_more: has_more && listing.only.is_none(),
    }))
}

/// Issues a token no wider than the caller's own: its operations, resources and expiry
/// must all be within the caller's (the expiry defaults to the caller's).
pub async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<IssueAccessTokenRequest>,
) -> Result<(StatusCode, axum::Json<IssueAccessTokenResponse>), ApiError> {
    caller.may_on_token(Operation::IssueAccessToken, &request.id)?;
    let request: s2_common::access::IssueAccessTokenRequest = request.try_into()?;
    let expires_at = request.expires_at.or(caller.expires_at);
    if expires_at.is_some_and(|t| t <= OffsetDateTime::now_utc()) {
        return Err(ApiError::invalid("`expires_at` is in the past"));
    }
    let grant = Grant::new(
        request.scope.clone(),
        expires_at,
        request.auto_prefix_streams,
    )
    .map_err(ApiError::invalid)?;
    if !caller.includes(&grant) {
        return Err(ApiError::new(
            s2_api::v1::error::ErrorCode::PermissionDenied,
            "a token can only issue tokens within its own scope and expiry",
        ));
    }
    let id = request.id.to_string();
    let (secret, secret_sha256) = new_secret(&id);
    let entry = AccessTokenEntry {
        info: AccessTokenInfo::from(s2_common::access::AccessTokenInfo {
            id: request.id,
            expires_at,
            auto_prefix_streams: request.auto_prefix_streams,
            scope: request.scope,
        }),
        secret_sha256,
        issued_at: OffsetDateTime::now_utc(),
    };
    state.engine.issue_access_token(&entry).await?;
    state.auth.forget(&id).await;
    Ok((
        StatusCode::CREATED,
        axum::Json(IssueAccessTokenResponse {
            access_token: secret,
        }),
    ))
}

pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    TokenPath(id): TokenPath,
) -> Result<StatusCode, ApiError> {
    caller.may_on_token(Operation::RevokeAccessToken, &id)?;
    state.engine.revoke_access_token(&id).await?;
    state.auth.forget(&id).await;
    Ok(StatusCode::NO_CONTENT)
}
