//! Account-level access-token operations: issue, list, revoke.

use axum::extract::State;
use http::StatusCode;
use s2_api::v1::access::{
    AccessTokenInfo, IssueAccessTokenRequest, IssueAccessTokenResponse, ListAccessTokensRequest,
    ListAccessTokensResponse,
};
use s2_common::access::{ListAccessTokensRequest as CommonListRequest, Operation};

use super::{
    error::ApiError,
    extract::{JsonBody, QueryOf, TokenPath},
};
use crate::engine::AccessTokenEntry;
use crate::http::{
    AppState,
    auth::{Caller, Grant, new_secret},
};

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
    let has_more = listing.cut(&mut entries, has_more, |e| e.info.id.as_ref());
    Ok(axum::Json(ListAccessTokensResponse {
        access_tokens: entries.into_iter().map(|e| e.info).collect(),
        has_more,
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
    let now = state.engine.clock().now();
    if expires_at.is_some_and(|t| t <= now) {
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
        issued_at: now,
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
