//! The metrics API (`/v1/metrics…`) through the official Rust SDK: a known workload run
//! through two nodes on one bucket shows up in every metric set, summed across the nodes,
//! and survives a node's restart; requests are checked and scoped by access tokens.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use s2_sdk::{
    S2,
    error::RequestError,
    types::{
        AccessTokenScopeInput, AccountMetricSet, AppendInput, AppendRecord, AppendRecordBatch,
        BasinMatcher, BasinMetricSet, BasinName, CreateBasinInput, CreateStreamInput,
        GetAccountMetricsInput, GetBasinMetricsInput, GetStreamMetricsInput, IssueAccessTokenInput,
        ListBasinsInput, Metric, Operation, ReadFrom, ReadInput, ReadLimits, ReadStart, ReadStop,
        StreamMetricSet, TimeRange, TimeRangeAndInterval, TimeseriesInterval,
    },
};

use crate::harness::{Backend, TestServer, basin_name, eventually};

crate::on_both_backends!(metrics_requests_are_checked_and_scoped,);

const ROOT: &str = "root-secret-for-metrics";
/// Bytes of each record's body; its metered size is 8 more.
const BODY: usize = 100;
const METERED: f64 = (BODY + 8) as f64;
const APPENDS: usize = 6;
const READS: usize = 4;
/// Records each read returns.
const READ_COUNT: usize = 2;

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// The last hour to a minute ahead.
fn recent() -> (u32, u32) {
    (now() - 3600, now() + 60)
}

fn record() -> AppendInput {
    let record = AppendRecord::new(vec![b'x'; BODY]).unwrap();
    AppendInput::new(AppendRecordBatch::try_from_iter([record]).unwrap())
}

/// The total of each named series (0 for a series present but empty).
fn totals(metrics: &[Metric]) -> BTreeMap<String, f64> {
    metrics
        .iter()
        .map(|m| match m {
            Metric::Accumulation(a) => (a.name.clone(), a.values.iter().map(|(_, v)| v).sum()),
            Metric::Gauge(g) => (
                g.name.clone(),
                g.values.last().map(|(_, v)| *v).unwrap_or_default(),
            ),
            Metric::Scalar(s) => (s.name.clone(), s.value),
            Metric::Label(l) => (l.name.clone(), l.values.len() as f64),
        })
        .collect()
}

fn with_interval(interval: TimeseriesInterval) -> TimeRangeAndInterval {
    let (start, end) = recent();
    TimeRangeAndInterval::new(start, end).with_interval(interval)
}

/// Every figure the workload should produce, as seen through `s2`.
async fn figures(s2: &S2, basin: &BasinName) -> BTreeMap<String, f64> {
    let (start, end) = recent();
    let mut all = BTreeMap::new();
    let basin_set = |set| GetBasinMetricsInput::new(basin.clone(), set);
    for (prefix, set) in [
        (
            "append-ops",
            BasinMetricSet::AppendOps(with_interval(TimeseriesInterval::Minute)),
        ),
        (
            "read-ops",
            BasinMetricSet::ReadOps(with_interval(TimeseriesInterval::Hour)),
        ),
        (
            "append-throughput",
            BasinMetricSet::AppendThroughput(with_interval(TimeseriesInterval::Day)),
        ),
        (
            "read-throughput",
            BasinMetricSet::ReadThroughput(with_interval(TimeseriesInterval::Minute)),
        ),
        (
            "basin-ops",
            BasinMetricSet::BasinOps(with_interval(TimeseriesInterval::Hour)),
        ),
        (
            "basin-storage",
            BasinMetricSet::Storage(TimeRange::new(start, end)),
        ),
    ] {
        let metrics = s2.get_basin_metrics(basin_set(set)).await.unwrap();
        for (name, v) in totals(&metrics) {
            all.insert(format!("{prefix}/{name}"), v);
        }
    }
    let stream = s2
        .get_stream_metrics(GetStreamMetricsInput::new(
            basin.clone(),
            "s".parse().unwrap(),
            StreamMetricSet::Storage(TimeRange::new(start, end)),
        ))
        .await
        .unwrap();
    all.insert("stream-storage".into(), totals(&stream)["storage"]);
    let ops = s2
        .get_account_metrics(GetAccountMetricsInput::new(AccountMetricSet::AccountOps(
            with_interval(TimeseriesInterval::Minute),
        )))
        .await
        .unwrap();
    for (name, v) in totals(&ops) {
        all.insert(format!("account-ops/{name}"), v);
    }
    let active = s2
        .get_account_metrics(GetAccountMetricsInput::new(AccountMetricSet::ActiveBasins(
            TimeRange::new(start, end),
        )))
        .await
        .unwrap();
    let Metric::Label(label) = &active[0] else {
        panic!("active-basins is a label: {active:?}")
    };
    assert_eq!(label.name, "active-basins");
    all.insert(
        "active-basins/this".into(),
        f64::from(u8::from(label.values.contains(&basin.to_string()))),
    );
    all
}

/// What the workload should show (control-plane counts of metrics requests themselves
/// grow with every look, so they are left out).
fn expected(appends: usize) -> BTreeMap<String, f64> {
    let n = appends as f64;
    [
        ("append-ops/express", n),
        ("append-ops/standard", 0.0),
        ("read-ops/unary", READS as f64),
        ("read-ops/streaming", 0.0),
        ("append-throughput/append-throughput", n * METERED),
        (
            "read-throughput/read-throughput",
            READS as f64 * READ_COUNT as f64 * METERED,
        ),
        ("basin-ops/create-stream", 1.0),
        ("basin-storage/storage", n * METERED),
        ("stream-storage", n * METERED),
        ("account-ops/create-basin", 1.0),
        ("account-ops/list-basins", 2.0),
        ("active-basins/this", 1.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn comparable(mut all: BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    all.retain(|k, _| !k.contains("-metrics"));
    all
}

async fn until_figures_are(s2: &S2, basin: &BasinName, want: &BTreeMap<String, f64>) {
    let mut last = BTreeMap::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            last = comparable(figures(s2, basin).await);
            if &last == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(found.is_ok(), "figures {last:#?}\nwanted {want:#?}");
}

fn flush_often(c: &mut sluice::server::ServerConfig) {
    c.root_token = Some(ROOT.into());
    c.engine.usage_flush_interval = Duration::from_millis(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_node_workload_shows_in_every_metric_set_and_survives_a_restart() {
    let a = TestServer::start_with(Backend::Ministack, flush_often).await;
    let b = a.start_peer_with(flush_often).await;
    let (on_a, on_b) = (a.sdk_as(ROOT), b.sdk_as(ROOT));
    let basin: BasinName = basin_name().parse().unwrap();
    on_a.create_basin(CreateBasinInput::new(basin.clone()))
        .await
        .unwrap();
    on_a.basin(basin.clone())
        .create_stream(CreateStreamInput::new("s".parse().unwrap()))
        .await
        .unwrap();
    for _ in 0..2 {
        on_b.list_basins(ListBasinsInput::new()).await.unwrap();
    }
    let streams = [&on_a, &on_b].map(|s2| s2.basin(basin.clone()).stream("s".parse().unwrap()));
    for i in 0..APPENDS {
        streams[i % 2].append(record()).await.unwrap();
    }
    for i in 0..READS {
        let read = streams[i % 2]
            .read(
                ReadInput::new()
                    .with_start(ReadStart::new().with_from(ReadFrom::SeqNum(0)))
                    .with_stop(
                        ReadStop::new().with_limits(ReadLimits::new().with_count(READ_COUNT)),
                    ),
            )
            .await
            .unwrap();
        assert_eq!(read.records.len(), READ_COUNT);
    }
    // Storage is the stream's size as its manifest knows it, whichever node samples it.
    until_figures_are(&on_b, &basin, &expected(APPENDS)).await;
    until_figures_are(&on_a, &basin, &expected(APPENDS)).await;

    // A new process on A's port: what the old one counted is in the bucket, and what the
    // new one counts adds to it.
    let a = a.restart_with(flush_often).await;
    let on_a = a.sdk_as(ROOT);
    until_figures_are(&on_a, &basin, &expected(APPENDS)).await;
    on_a.basin(basin.clone())
        .stream("s".parse().unwrap())
        .append(record())
        .await
        .unwrap();
    until_figures_are(&on_b, &basin, &expected(APPENDS + 1)).await;
    drop(b);
}

fn code_of(e: &RequestError) -> (u16, String) {
    match e {
        RequestError::Server(e) => (e.status.as_u16(), e.code.clone()),
        e => panic!("not a server error: {e:?}"),
    }
}

async fn metrics_requests_are_checked_and_scoped(backend: Backend) {
    let server = TestServer::start_with(backend, flush_often).await;
    let root = server.sdk_as(ROOT);
    let basin: BasinName = basin_name().parse().unwrap();
    root.create_basin(CreateBasinInput::new(basin.clone()))
        .await
        .unwrap();
    let other: BasinName = basin_name().parse().unwrap();

    // A token for one basin's metrics only.
    let scope = AccessTokenScopeInput::from_ops([Operation::GetBasinMetrics])
        .with_basins(BasinMatcher::Exact(basin.clone()));
    let secret = root
        .issue_access_token(IssueAccessTokenInput::new(
            "metrics/reader".parse().unwrap(),
            scope,
        ))
        .await
        .unwrap();
    let reader = server.sdk_as(&secret);
    let (start, end) = recent();
    let ops = |b: &BasinName| {
        GetBasinMetricsInput::new(
            b.clone(),
            BasinMetricSet::AppendOps(TimeRangeAndInterval::new(start, end)),
        )
    };
    let metrics = reader.get_basin_metrics(ops(&basin)).await.unwrap();
    assert_eq!(
        totals(&metrics).keys().collect::<Vec<_>>(),
        ["express", "standard"]
    );
    let denied = (403, "permission_denied".to_owned());
    let err = reader.get_basin_metrics(ops(&other)).await.unwrap_err();
    assert_eq!(code_of(&err), denied);
    let err = reader
        .get_account_metrics(GetAccountMetricsInput::new(AccountMetricSet::AccountOps(
            TimeRangeAndInterval::new(start, end),
        )))
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), denied);
    let err = reader
        .get_stream_metrics(GetStreamMetricsInput::new(
            basin.clone(),
            "s".parse().unwrap(),
            StreamMetricSet::Storage(TimeRange::new(start, end)),
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), denied);

    // Bad requests, as plain HTTP.
    let http = server.http();
    let get = |query: String| {
        http.get(server.url(&format!("/v1/metrics/{basin}?{query}")))
            .header("authorization", format!("Bearer {ROOT}"))
            .send()
    };
    let day = 86_400;
    for (query, code) in [
        ("set=bogus&start=0&end=60".to_owned(), "bad_query"),
        (
            format!("set=append-ops&start={start}&end={end}&interval=week"),
            "bad_query",
        ),
        ("set=append-ops".to_owned(), "bad_query"),
        (
            format!("set=append-ops&start={end}&end={start}"),
            "bad_query",
        ),
        (
            format!("set=storage&start={}&end={end}", end - 91 * day),
            "bad_query",
        ),
    ] {
        let resp = get(query.clone()).await.unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], code, "{query}: {body}");
    }
    let resp = get(format!("set=storage&start={}&end={end}", end - 90 * day))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "90 days are allowed");
    let body: serde_json::Value = resp.json().await.unwrap();
    let points = body["values"][0]["gauge"]["values"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        (90 * 24..=90 * 24 + 1).contains(&points),
        "one point per hour: {points}"
    );

    // The account's operations count, and metrics requests among them.
    let seen = eventually(Duration::from_secs(20), || async {
        let ops = root
            .get_account_metrics(GetAccountMetricsInput::new(AccountMetricSet::AccountOps(
                TimeRangeAndInterval::new(start, end),
            )))
            .await
            .unwrap();
        let t = totals(&ops);
        (t.get("create-basin") == Some(&1.0) && t.contains_key("basin-metrics")).then_some(t)
    })
    .await;
    assert!(seen["issue-access-token"] >= 1.0, "{seen:?}");
}
