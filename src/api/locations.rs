//! Locations: a deployment has exactly one, where its data lives (`http::AppState::location`:
//! `local` for a directory, the bucket's name for S3). Listing and getting the default
//! answer with it; setting the default accepts only it.

use axum::extract::State;
use s2_api::v1::location::LocationInfo;
use s2_common::{access::Operation, location::LocationName};

use super::{error::ApiError, extract::JsonBody};
use crate::http::{AppState, auth::Caller};

fn info(state: &AppState) -> LocationInfo {
    LocationInfo {
        name: state.location.clone(),
        is_private: false,
        storage_classes: Some(vec!["standard".into(), "express".into()]),
        default_storage_class: Some("express".into()),
    }
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<LocationInfo>>, ApiError> {
    caller.may(Operation::ListLocations)?;
    Ok(axum::Json(vec![info(&state)]))
}

pub async fn get_default(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<LocationInfo>, ApiError> {
    caller.may(Operation::GetDefaultLocation)?;
    Ok(axum::Json(info(&state)))
}

/// Setting the default to the one location changes nothing; any other is `invalid`.
pub async fn set_default(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(location): JsonBody<LocationName>,
) -> Result<axum::Json<LocationInfo>, ApiError> {
    caller.may(Operation::SetDefaultLocation)?;
    if location != state.location {
        return Err(ApiError::invalid(format!(
            "no location {:?}: this deployment has one location, {:?}",
            location.as_ref() as &str,
            state.location.as_ref() as &str
        )));
    }
    Ok(axum::Json(info(&state)))
}
