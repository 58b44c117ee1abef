//! Basin-level stream operations.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, StatusCode};
use s2_api::v1::{
    config::{StreamConfig as ApiStreamConfig, StreamReconfiguration as ApiStreamReconfiguration},
    stream::{CreateStreamRequest, ListStreamsRequest, ListStreamsResponse, StreamInfo},
};
use s2_common::{
    config::OptionalStreamConfig,
    resources::{PROVISION_RESULT_HEADER, RequestToken},
    stream::{ListStreamsRequest as CommonListRequest, StreamName},
};

use s2_common::access::Operation;

use super::{
    error::ApiError,
    extract::{BasinHeader, JsonBody, OptionalJsonBody, QueryOf, StreamPath, optional_header},
};
use crate::engine::{ListedStream, Provisioned, StreamEntry};
use crate::http::{
    AppState,
    auth::{Caller, Grant},
};

/// A stream as the caller sees it: without its token's auto-prefix.
fn stream_info(entry: ListedStream, caller: &Grant) -> Result<StreamInfo, ApiError> {
    let name: StreamName = caller
        .shown_stream_name(&entry.name)
        .parse()
        .map_err(|e: s2_common::ValidationError| ApiError::invalid(e.to_string()))?;
    Ok(StreamInfo {
        name,
        created_at: entry.created_at,
        deleted_at: entry.deleted_at,
        cipher: entry.cipher.map(Into::into),
    })
}

fn optional_config(config: Option<ApiStreamConfig>) -> Result<OptionalStreamConfig, ApiError> {
    Ok(config
        .map(TryInto::try_into)
        .transpose()?
        .unwrap_or_default())
}

fn provisioned_response(
    status: StatusCode,
    result: Provisioned<StreamEntry>,
    caller: &Grant,
) -> Result<Response, ApiError> {
    let (outcome, entry) = match result {
        Provisioned::Created(e) => ("created", e),
        Provisioned::Updated(e) => ("updated", e),
        Provisioned::Unchanged(e) => ("noop", e),
    };
    Ok((
        status,
        [(PROVISION_RESULT_HEADER.clone(), outcome)],
        axum::Json(stream_info(ListedStream::from(&entry), caller)?),
    )
        .into_response())
}

/// With an auto-prefixing token, `prefix` and `start_after` are relative to its prefix.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    BasinHeader(basin): BasinHeader,
    QueryOf(request): QueryOf<ListStreamsRequest>,
) -> Result<axum::Json<ListStreamsResponse>, ApiError> {
    caller.may_on_basin(Operation::ListStreams, &basin)?;
    let request: CommonListRequest = request.try_into()?;
    let prefix = caller.stored_stream_name(&request.prefix)?;
    let start_after = match request.start_after.is_empty() {
        true => String::new(),
        false => caller.stored_stream_name(&request.start_after)?,
    };
    let Some(listing) = caller.streams_listing(&prefix) else {
        return Ok(axum::Json(ListStreamsResponse {
            streams: Vec::new(),
            has_more: false,
        }));
    };
    let (mut entries, has_more) = state
        .engine
        .list_streams(
            &basin,
            &listing.prefix,
            &start_after,
            request.limit.as_usize(),
        )
        .await?;
    let has_more = listing.cut(&mut entries, has_more, |e| &e.name);
    Ok(axum::Json(ListStreamsResponse {
        streams: entries
            .into_iter()
            .map(|e| stream_info(e, &caller))
            .collect::<Result<_, _>>()?,
        has_more,
    }))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    BasinHeader(basin): BasinHeader,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateStreamRequest>,
) -> Result<Response, ApiError> {
    let stream = caller.may_on_stream(Operation::CreateStream, &basin, &request.stream)?;
    let token = optional_header::<RequestToken>(&headers)?.map(|t| t.to_string());
    let config = optional_config(request.config)?;
    let result = state
        .engine
        .create_stream(&basin, &stream, config, token)
        .await?;
    provisioned_response(StatusCode::CREATED, result, &caller)
}

pub async fn get_config(
    State(state): State<AppState>,
    caller: Caller,
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
) -> Result<axum::Json<ApiStreamConfig>, ApiError> {
    let stream = caller.may_on_stream(Operation::GetStreamConfig, &basin, &stream)?;
    let config = state.engine.stream_config(&basin, &stream).await?;
    Ok(axum::Json(config.into()))
}

/// Creates the stream or brings its config to the one given: both operations' permission.
pub async fn ensure(
    State(state): State<AppState>,
    caller: Caller,
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
    OptionalJsonBody(config): OptionalJsonBody<ApiStreamConfig>,
) -> Result<Response, ApiError> {
    let stream = caller.may_on_stream(Operation::CreateStream, &basin, &stream)?;
    caller.may(Operation::ReconfigureStream)?;
    let config = optional_config(config)?;
    let result = state.engine.ensure_stream(&basin, &stream, config).await?;
    let status = match result {
        Provisioned::Created(_) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    provisioned_response(status, result, &caller)
}

pub async fn reconfigure(
    State(state): State<AppState>,
    caller: Caller,
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
    JsonBody(request): JsonBody<ApiStreamReconfiguration>,
) -> Result<axum::Json<ApiStreamConfig>, ApiError> {
    let stream = caller.may_on_stream(Operation::ReconfigureStream, &basin, &stream)?;
    let config = state
        .engine
        .reconfigure_stream(&basin, &stream, request.try_into()?)
        .await?;
    Ok(axum::Json(config.into()))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
) -> Result<StatusCode, ApiError> {
    let stream = caller.may_on_stream(Operation::DeleteStream, &basin, &stream)?;
    state.engine.delete_stream(&basin, &stream).await?;
    Ok(StatusCode::ACCEPTED)
}
