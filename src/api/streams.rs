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

use super::{
    AppState,
    error::ApiError,
    extract::{BasinHeader, JsonBody, OptionalJsonBody, QueryOf, StreamPath, optional_header},
};
use crate::engine::{Provisioned, StreamEntry};

fn stream_info(entry: StreamEntry) -> Result<StreamInfo, ApiError> {
    let name: StreamName = entry
        .name
        .parse()
        .map_err(|e: s2_common::ValidationError| ApiError::invalid(e.to_string()))?;
    Ok(StreamInfo {
        name,
        created_at: entry.created_at,
        deleted_at: entry.deleted_at,
        cipher: None,
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
) -> Result<Response, ApiError> {
    let (outcome, entry) = match result {
        Provisioned::Created(e) => ("created", e),
        Provisioned::Updated(e) => ("updated", e),
        Provisioned::Unchanged(e) => ("noop", e),
    };
    Ok((
        status,
        [(PROVISION_RESULT_HEADER.clone(), outcome)],
        axum::Json(stream_info(entry)?),
    )
        .into_response())
}

pub async fn list(
    State(state): State<AppState>,
    BasinHeader(basin): BasinHeader,
    QueryOf(request): QueryOf<ListStreamsRequest>,
) -> Result<axum::Json<ListStreamsResponse>, ApiError> {
    let request: CommonListRequest = request.try_into()?;
    let (entries, has_more) = state
        .engine
        .list_streams(
            &basin,
            &request.prefix,
            &request.start_after,
            request.limit.as_usize(),
        )
        .await?;
    Ok(axum::Json(ListStreamsResponse {
        streams: entries
            .into_iter()
            .map(stream_info)
            .collect::<Result<_, _>>()?,
        has_more,
    }))
}

pub async fn create(
    State(state): State<AppState>,
    BasinHeader(basin): BasinHeader,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateStreamRequest>,
) -> Result<Response, ApiError> {
    let token = optional_header::<RequestToken>(&headers)?.map(|t| t.to_string());
    let config = optional_config(request.config)?;
    let result = state
        .engine
        .create_stream(&basin, &request.stream, config, token)
        .await?;
    provisioned_response(StatusCode::CREATED, result)
}

pub async fn get_config(
    State(state): State<AppState>,
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
) -> Result<axum::Json<ApiStreamConfig>, ApiError> {
    let config = state.engine.stream_config(&basin, &stream).await?;
    Ok(axum::Json(config.into()))
}

pub async fn ensure(
    State(state): State<AppState>,
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
    OptionalJsonBody(config): OptionalJsonBody<ApiStreamConfig>,
) -> Result<Response, ApiError> {
    let config = optional_config(config)?;
    let result = state.engine.ensure_stream(&basin, &stream, config).await?;
    let status = match result {
        Provisioned::Created(_) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    provisioned_response(status, result)
}

pub async fn reconfigure(
    State(state): State<AppState>,
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
    JsonBody(request): JsonBody<ApiStreamReconfiguration>,
) -> Result<axum::Json<ApiStreamConfig>, ApiError> {
    let config = state
        .engine
        .reconfigure_stream(&basin, &stream, request.try_into()?)
        .await?;
    Ok(axum::Json(config.into()))
}

pub async fn delete(
    State(state): State<AppState>,
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_stream(&basin, &stream).await?;
    Ok(StatusCode::ACCEPTED)
}
