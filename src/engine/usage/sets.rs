//! S2's metric sets from usage objects: which objects each set reads, and the names, units
//! and kinds of the metrics it returns.
//!
//! Names follow S2's: `append-ops` is one accumulation per storage class (`express`,
//! `standard`), `read-ops` one per read type (`unary`, `streaming`), `account-ops` and
//! `basin-ops` one per operation with requests in the range (named as access-token
//! operations are, `list-basins`), the throughputs and storage one metric named after the
//! set, `active-basins` a label.

use s2_common::metrics::{
    AccountMetricSet, AccumulationMetric, BasinMetricSet, GaugeMetric, LabelMetric, Metric,
    MetricUnit, StreamMetricSet, TimeseriesInterval,
};

use super::{
    Granularity,
    object::Counts,
    query::{self, Scope, Window},
};
use crate::engine::{Engine, EngineResult};

/// A validated request range: `[start, end)` in epoch seconds, `start <= end`.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub start: u32,
    pub end: u32,
    pub interval: Option<TimeseriesInterval>,
}

fn secs(interval: TimeseriesInterval) -> u32 {
    match interval {
        TimeseriesInterval::Minute => 60,
        TimeseriesInterval::Hour => 3600,
        TimeseriesInterval::Day => 86_400,
    }
}

/// The objects that hold buckets of `interval` or finer.
fn granularity(interval: TimeseriesInterval) -> Granularity {
    match interval {
        TimeseriesInterval::Minute => Granularity::Minutes,
        TimeseriesInterval::Hour | TimeseriesInterval::Day => Granularity::Hours,
    }
}

fn window(range: Range, step: u32) -> Window {
    Window {
        start: range.start,
        end: range.end,
        step,
    }
}

fn accumulation(
    name: &str,
    unit: MetricUnit,
    interval: TimeseriesInterval,
    values: Vec<(u32, f64)>,
) -> Metric {
    Metric::Accumulation(AccumulationMetric {
        name: name.into(),
        unit,
        interval,
        values,
    })
}

type Pick = fn(&Counts) -> u64;

impl Engine {
    pub async fn account_metrics(
        &self,
        set: AccountMetricSet,
        range: Range,
    ) -> EngineResult<Vec<Metric>> {
        Ok(match set {
            AccountMetricSet::ActiveBasins => {
                let objects = self
                    .usage_objects(Granularity::Hours, range.start, range.end)
                    .await?;
                let values = query::active_basins(&objects, window(range, 3600));
                vec![Metric::Label(LabelMetric {
                    name: "active-basins".into(),
                    values,
                })]
            }
            AccountMetricSet::AccountOps => self.operations("", range).await?,
            // Sluice bills nothing.
            AccountMetricSet::EstimatedBillableUsage => Vec::new(),
        })
    }

    pub async fn basin_metrics(
        &self,
        basin: &str,
        set: BasinMetricSet,
        range: Range,
    ) -> EngineResult<Vec<Metric>> {
        let scope = Scope::Basin(basin);
        let (unit, picks): (MetricUnit, Vec<(&str, Pick)>) = match set {
            BasinMetricSet::Storage => {
                return self
                    .storage(scope, Granularity::Hours, range, "storage")
                    .await;
            }
            BasinMetricSet::BasinOps => return self.operations(basin, range).await,
            BasinMetricSet::AppendOps => (
                MetricUnit::Operations,
                vec![
                    ("express", |c: &Counts| c.append_express),
                    ("standard", |c: &Counts| c.append_standard),
                ],
            ),
            BasinMetricSet::ReadOps => (
                MetricUnit::Operations,
                vec![
                    ("unary", |c: &Counts| c.read_unary),
                    ("streaming", |c: &Counts| c.read_streaming),
                ],
            ),
            BasinMetricSet::AppendThroughput => (
                MetricUnit::Bytes,
                vec![("append-throughput", |c: &Counts| c.append_bytes)],
            ),
            BasinMetricSet::ReadThroughput => (
                MetricUnit::Bytes,
                vec![("read-throughput", |c: &Counts| c.read_bytes)],
            ),
        };
        let interval = range.interval.unwrap_or(TimeseriesInterval::Minute);
        let objects = self
            .usage_objects(granularity(interval), range.start, range.end)
            .await?;
        let w = window(range, secs(interval));
        Ok(picks
            .into_iter()
            .map(|(name, pick)| {
                accumulation(
                    name,
                    unit,
                    interval,
                    query::accumulate(&objects, scope, w, pick),
                )
            })
            .collect())
    }

    pub async fn stream_metrics(
        &self,
        basin: &str,
        stream: &str,
        set: StreamMetricSet,
        range: Range,
    ) -> EngineResult<Vec<Metric>> {
        match set {
            StreamMetricSet::Storage => {
                let scope = Scope::Stream(basin, stream);
                self.storage(scope, Granularity::Minutes, range, "storage")
                    .await
            }
        }
    }

    /// Control-plane operations of `basin` (empty: the account); hourly unless asked.
    async fn operations(&self, basin: &str, range: Range) -> EngineResult<Vec<Metric>> {
        let interval = range.interval.unwrap_or(TimeseriesInterval::Hour);
        let objects = self
            .usage_objects(granularity(interval), range.start, range.end)
            .await?;
        let ops = query::operations(&objects, basin, window(range, secs(interval)));
        Ok(ops
            .into_iter()
            .map(|(op, values)| accumulation(&op, MetricUnit::Operations, interval, values))
            .collect())
    }

    /// The storage gauge of `scope`, one point per bucket of `g`.
    async fn storage(
        &self,
        scope: Scope<'_>,
        g: Granularity,
        range: Range,
        name: &str,
    ) -> EngineResult<Vec<Metric>> {
        let objects = self.usage_objects(g, range.start, range.end).await?;
        let values = query::storage(&objects, scope, window(range, g.bucket_secs()));
        Ok(vec![Metric::Gauge(GaugeMetric {
            name: name.into(),
            unit: MetricUnit::Bytes,
            values,
        })])
    }
}
