//! The metrics API (`/v1/metrics`, `/v1/metrics/{basin}`, `/v1/metrics/{basin}/{stream}`):
//! S2's metric sets over the usage every node keeps in the bucket
//! ([`crate::engine::usage`]).
//!
//! A request names a set and a range `[start, end)` in epoch seconds: both are required,
//! `start` may not follow `end`, and the range spans at most [`MAX_RANGE_SECS`] (90 days,
//! as S2 says). Every refusal of the query (an unknown set or interval included) is 400
//! `bad_query`, the one client error S2's document lists for these routes besides 403.
//! An `end` in the future is cut to the current minute's end. The token needs the set's
//! operation (`account-metrics`, `basin-metrics`, `stream-metrics`) and, for a basin or a
//! stream, to cover it.

use axum::{
    Json,
    extract::{FromRequestParts, Path, State},
    http::request::Parts,
};
use s2_api::v1::metrics::{
    AccountMetricSetRequest, BasinMetricSetRequest, MetricSetResponse, StreamMetricSetRequest,
};
use s2_common::{
    access::Operation,
    basin::BasinName,
    metrics::{
        AccountMetricsRequest, BasinMetricsRequest, Metric, StreamMetricsRequest,
        TimeseriesInterval,
    },
    stream::StreamName,
};

use super::{error::ApiError, extract::QueryOf};
use crate::{
    engine::usage::Range,
    http::{AppState, auth::Caller},
};

/// The longest range a request may span.
pub const MAX_RANGE_SECS: u32 = 90 * 86_400;

fn range(
    start: Option<u32>,
    end: Option<u32>,
    interval: Option<TimeseriesInterval>,
    now_ms: u64,
) -> Result<Range, ApiError> {
    let (Some(start), Some(end)) = (start, end) else {
        return Err(ApiError::bad_query(
            "`start` and `end` (epoch seconds) are required",
        ));
    };
    if start > end {
        return Err(ApiError::bad_query("`start` is after `end`"));
    }
    if end - start > MAX_RANGE_SECS {
        return Err(ApiError::bad_query("time ranges may span at most 90 days"));
    }
    let now = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
    let horizon = now.saturating_add(60 - now % 60);
    let end = end.min(horizon);
    Ok(Range {
        start: start.min(end),
        end,
        interval,
    })
}

fn response(metrics: Vec<Metric>) -> Json<MetricSetResponse> {
    Json(MetricSetResponse {
        values: metrics.into_iter().map(Into::into).collect(),
    })
}

pub async fn account(
    State(state): State<AppState>,
    caller: Caller,
    QueryOf(request): QueryOf<AccountMetricSetRequest>,
) -> Result<Json<MetricSetResponse>, ApiError> {
    caller.may(Operation::AccountMetrics)?;
    let request: AccountMetricsRequest = request.into();
    let now = state.engine.clock().now_ms();
    let range = range(request.start, request.end, request.interval, now)?;
    let metrics = state.engine.account_metrics(request.set, range).await?;
    Ok(response(metrics))
}

/// `/metrics/{basin}`.
pub struct MetricsBasin(BasinName);

impl<S: Send + Sync> FromRequestParts<S> for MetricsBasin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(basin) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_path(e.body_text()))?;
        basin
            .parse()
            .map(Self)
            .map_err(|e: s2_common::ValidationError| ApiError::bad_path(e.to_string()))
    }
}

/// `/metrics/{basin}/{stream}`.
pub struct MetricsStream(BasinName, StreamName);

impl<S: Send + Sync> FromRequestParts<S> for MetricsStream {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((basin, stream)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_path(e.body_text()))?;
        let bad = |e: s2_common::ValidationError| ApiError::bad_path(e.to_string());
        Ok(Self(
            basin.parse().map_err(bad)?,
            stream.parse().map_err(bad)?,
        ))
    }
}

pub async fn basin(
    State(state): State<AppState>,
    caller: Caller,
    MetricsBasin(basin): MetricsBasin,
    QueryOf(request): QueryOf<BasinMetricSetRequest>,
) -> Result<Json<MetricSetResponse>, ApiError> {
    caller.may_on_basin(Operation::BasinMetrics, &basin)?;
    let request: BasinMetricsRequest = request.into();
    let now = state.engine.clock().now_ms();
    let range = range(request.start, request.end, request.interval, now)?;
    let metrics = state
        .engine
        .basin_metrics(&basin, request.set, range)
        .await?;
    Ok(response(metrics))
}

pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    MetricsStream(basin, stream): MetricsStream,
    QueryOf(request): QueryOf<StreamMetricSetRequest>,
) -> Result<Json<MetricSetResponse>, ApiError> {
    let stream = caller.may_on_stream(Operation::StreamMetrics, &basin, &stream)?;
    let request: StreamMetricsRequest = request.into();
    let now = state.engine.clock().now_ms();
    let range = range(request.start, request.end, request.interval, now)?;
    let metrics = state
        .engine
        .stream_metrics(&basin, &stream, request.set, range)
        .await?;
    Ok(response(metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_and_cut_at_now() {
        let now_ms = 1_000_030_000;
        assert!(range(None, Some(5), None, now_ms).is_err());
        assert!(range(Some(5), None, None, now_ms).is_err());
        assert!(range(Some(6), Some(5), None, now_ms).is_err());
        assert!(range(Some(0), Some(MAX_RANGE_SECS + 1), None, now_ms).is_err());
        let r = range(
            Some(0),
            Some(MAX_RANGE_SECS),
            None,
            u64::from(MAX_RANGE_SECS) * 1000,
        )
        .unwrap();
        assert_eq!((r.start, r.end), (0, MAX_RANGE_SECS));
        let r = range(Some(999_000), Some(1_100_000), None, now_ms).unwrap();
        assert_eq!(r.end, 1_000_080, "cut to the end of the current minute");
        let r = range(Some(1_050_000), Some(1_100_000), None, now_ms).unwrap();
        assert_eq!((r.start, r.end), (1_000_080, 1_000_080));
    }
}
