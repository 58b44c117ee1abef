//! Account-level basin operations.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, StatusCode};
use s2_api::v1::{
    basin::{
        BasinInfo, BasinState, CreateBasinRequest, EnsureBasinRequest, ListBasinsRequest,
        ListBasinsResponse,
    },
    config::{BasinConfig as ApiBasinConfig, BasinReconfiguration as ApiBasinReconfiguration},
};
use s2_common::{
    basin::{BasinName, ListBasinsRequest as CommonListRequest},
    config::BasinConfig,
    location::LocationName,
    resources::{PROVISION_RESULT_HEADER, RequestToken},
};

use s2_common::access::Operation;

use super::{
    error::ApiError,
    extract::{BasinPath, JsonBody, OptionalJsonBody, QueryOf, optional_header},
};
use crate::engine::{BasinEntry, Provisioned};
use crate::http::{AppState, auth::Caller};

/// A basin as S2 describes it. Every basin is in the deployment's one location, left
/// unnamed as `s2 lite` leaves it, so clients print basins as they do for `s2 lite`.
pub fn basin_info(entry: BasinEntry) -> Result<BasinInfo, ApiError> {
    let name: BasinName = entry
        .name
        .parse()
        .map_err(|e: s2_common::ValidationError| ApiError::invalid(e.to_string()))?;
    Ok(BasinInfo {
        name,
        location: None,
        created_at: entry.created_at,
        state: if entry.deleted_at.is_some() {
            BasinState::Deleting
        } else {
            BasinState::Active
        },
        deleted_at: entry.deleted_at,
    })
}

fn provisioned_response(
    status: StatusCode,
    result: Provisioned<BasinEntry>,
) -> Result<Response, ApiError> {
    let (outcome, entry) = match result {
        Provisioned::Created(e) => ("created", e),
        Provisioned::Updated(e) => ("updated", e),
        Provisioned::Unchanged(e) => ("noop", e),
    };
    Ok((
        status,
        [(PROVISION_RESULT_HEADER.clone(), outcome)],
        axum::Json(basin_info(entry)?),
    )
        .into_response())
}

/// A basin may be placed only in the deployment's one location (or in no named one).
fn check_location(state: &AppState, location: Option<&LocationName>) -> Result<(), ApiError> {
    match location {
        Some(l) if *l != state.location => Err(ApiError::invalid(format!(
            "no location {:?}: this deployment has one location, {:?}",
            l.as_ref() as &str,
            state.location.as_ref() as &str
        ))),
        _ => Ok(()),
    }
}

fn config_from(config: Option<ApiBasinConfig>) -> Result<BasinConfig, ApiError> {
    Ok(config
        .map(TryInto::try_into)
        .transpose()?
        .unwrap_or_default())
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryOf(request): QueryOf<ListBasinsRequest>,
) -> Result<axum::Json<ListBasinsResponse>, ApiError> {
    caller.may(Operation::ListBasins)?;
    let request: CommonListRequest = request.try_into()?;
    let Some(listing) = caller.basins_listing(&request.prefix) else {
        return Ok(axum::Json(ListBasinsResponse {
            basins: Vec::new(),
            has_more: false,
        }));
    };
    let (mut entries, has_more) = state
        .engine
        .list_basins(
            &listing.prefix,
            &request.start_after,
            request.limit.as_usize(),
        )
        .await?;
    let has_more = listing.cut(&mut entries, has_more, |e| &e.name);
    Ok(axum::Json(ListBasinsResponse {
        basins: entries
            .into_iter()
            .map(basin_info)
            .collect::<Result<_, _>>()?,
        has_more,
    }))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateBasinRequest>,
) -> Result<Response, ApiError> {
    caller.may_on_basin(Operation::CreateBasin, &request.basin)?;
    let token = optional_header::<RequestToken>(&headers)?.map(|t| t.to_string());
    check_location(&state, request.location.as_ref())?;
    let config = config_from(request.config)?;
    let result = state
        .engine
        .create_basin(&request.basin, config, token)
        .await?;
    provisioned_response(StatusCode::CREATED, result)
}

pub async fn get_config(
    State(state): State<AppState>,
    caller: Caller,
    BasinPath(basin): BasinPath,
) -> Result<axum::Json<ApiBasinConfig>, ApiError> {
    caller.may_on_basin(Operation::GetBasinConfig, &basin)?;
    let entry = state.engine.basin_entry(&basin).await?;
    Ok(axum::Json(entry.config))
}

/// Creates the basin or brings its config to the one given: both operations' permission.
pub async fn ensure(
    State(state): State<AppState>,
    caller: Caller,
    BasinPath(basin): BasinPath,
    OptionalJsonBody(request): OptionalJsonBody<EnsureBasinRequest>,
) -> Result<Response, ApiError> {
    caller.may_on_basin(Operation::CreateBasin, &basin)?;
    caller.may(Operation::ReconfigureBasin)?;
    let (location, config) = request.map_or((None, None), |r| (r.location, r.config));
    check_location(&state, location.as_ref())?;
    let config = config_from(config)?;
    let result = state.engine.ensure_basin(&basin, config).await?;
    let status = match result {
        Provisioned::Created(_) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    provisioned_response(status, result)
}

pub async fn reconfigure(
    State(state): State<AppState>,
    caller: Caller,
    BasinPath(basin): BasinPath,
    JsonBody(request): JsonBody<ApiBasinReconfiguration>,
) -> Result<axum::Json<ApiBasinConfig>, ApiError> {
    caller.may_on_basin(Operation::ReconfigureBasin, &basin)?;
    let entry = state
        .engine
        .reconfigure_basin(&basin, request.try_into()?)
        .await?;
    Ok(axum::Json(entry.config))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    BasinPath(basin): BasinPath,
) -> Result<StatusCode, ApiError> {
    caller.may_on_basin(Operation::DeleteBasin, &basin)?;
    state.engine.delete_basin(&basin).await?;
    Ok(StatusCode::ACCEPTED)
}
