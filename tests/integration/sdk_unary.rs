//! The official Rust SDK against Sluice: control plane and unary data plane.

use std::time::Duration;

use futures::StreamExt;
use s2_sdk::{
    error::{AppendConditionFailed, AppendError, ReadError, RequestError},
    types::{
        AppendInput, AppendRecord, AppendRecordBatch, BasinConfig, BasinReconfiguration,
        CommandRecord, CreateBasinInput, CreateStreamInput, DeleteBasinInput, DeleteStreamInput,
        EnsureBasinInput, FencingToken, Header, ListAllStreamsInput, ListBasinsInput,
        ListStreamsInput, ReadFrom, ReadInput, ReadLimits, ReadStart, ReadStop,
        ReconfigureBasinInput, ReconfigureStreamInput, RetentionPolicy, StreamConfig,
        StreamReconfiguration, TimestampingConfig, TimestampingMode,
    },
};

use crate::{
    harness::{Backend, TestServer, basin_name, eventually},
    on_every_backend,
};

on_every_backend!(
    sdk_basin_and_stream_lifecycle,
    sdk_unary_append_read_and_check_tail,
    sdk_fence_trim_and_typed_condition_failures,
);

fn batch(bodies: &[&str]) -> AppendRecordBatch {
    AppendRecordBatch::try_from_iter(bodies.iter().map(|b| {
        AppendRecord::new(b.to_string())
            .unwrap()
            .with_headers([Header::new("h", b.to_string())])
            .unwrap()
    }))
    .unwrap()
}

async fn sdk_basin_and_stream_lifecycle(backend: Backend) {
    let server = TestServer::start(backend).await;
    let s2 = server.sdk();
    let name: s2_sdk::types::BasinName = basin_name().parse().unwrap();
    let info = s2
        .create_basin(CreateBasinInput::new(name.clone()))
        .await
        .unwrap();
    assert_eq!(info.name, name);
    let err = s2
        .create_basin(CreateBasinInput::new(name.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Server(e) if e.code == "resource_already_exists" && e.status == 409),
        "{err:?}"
    );
    let listed = s2
        .list_basins(ListBasinsInput::new().with_prefix(name.to_string().parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(listed.values.len(), 1);
    s2.reconfigure_basin(ReconfigureBasinInput::new(
        name.clone(),
        BasinReconfiguration::new().with_create_stream_on_append(true),
    ))
    .await
    .unwrap();
    let config = s2.get_basin_config(name.clone()).await.unwrap();
    assert!(config.create_stream_on_append);
    s2.ensure_basin(EnsureBasinInput::new(name.clone()).with_config(BasinConfig::new()))
        .await
        .unwrap();

    let basin = s2.basin(name.clone());
    for s in ["one", "two/three"] {
        basin
            .create_stream(
                CreateStreamInput::new(s.parse().unwrap()).with_config(
                    StreamConfig::new()
                        .with_retention_policy(RetentionPolicy::Age(3600))
                        .with_timestamping(
                            TimestampingConfig::new().with_mode(TimestampingMode::Arrival),
                        ),
                ),
            )
            .await
            .unwrap();
    }
    let page = basin.list_streams(ListStreamsInput::new()).await.unwrap();
    let names: Vec<String> = page.values.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, vec!["one", "two/three"]);
    let all: Vec<_> = basin
        .list_all_streams(ListAllStreamsInput::new())
        .collect()
        .await;
    assert_eq!(all.len(), 2);
    let config = basin
        .get_stream_config("two/three".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(config.retention_policy, Some(RetentionPolicy::Age(3600)));
    basin
        .reconfigure_stream(ReconfigureStreamInput::new(
            "two/three".parse().unwrap(),
            StreamReconfiguration::new().with_retention_policy(RetentionPolicy::Infinite),
        ))
        .await
        .unwrap();
    let config = basin
        .get_stream_config("two/three".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(config.retention_policy, Some(RetentionPolicy::Infinite));

    basin
        .delete_stream(DeleteStreamInput::new("one".parse().unwrap()))
        .await
        .unwrap();
    s2.delete_basin(DeleteBasinInput::new(name.clone()))
        .await
        .unwrap();
    eventually(Duration::from_secs(30), || {
        let s2 = s2.clone();
        let name = name.clone();
        async move { s2.get_basin_config(name).await.is_err().then_some(()) }
    })
    .await;
    let err = s2.get_basin_config(name).await.unwrap_err();
    assert!(
        matches!(&err, RequestError::Server(e) if e.code == "basin_not_found"),
        "{err:?}"
    );
}

async fn sdk_unary_append_read_and_check_tail(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = server.sdk().basin(server.create_basin(false).await);
    basin
        .create_stream(CreateStreamInput::new("s".parse().unwrap()))
        .await
        .unwrap();
    let stream = basin.stream("s".parse().unwrap());
    assert_eq!(stream.check_tail().await.unwrap().seq_num, 0);

    let ack = stream
        .append(AppendInput::new(batch(&["a", "b", "c"])))
        .await
        .unwrap();
    assert_eq!((ack.start.seq_num, ack.end.seq_num), (0, 3));
    let ack = stream
        .append(AppendInput::new(batch(&["d"])).with_match_seq_num(3))
        .await
        .unwrap();
    assert_eq!(ack.tail.seq_num, 4);
    assert_eq!(stream.check_tail().await.unwrap().seq_num, 4);

    let read = stream
        .read(
            ReadInput::new()
                .with_start(ReadStart::new().with_from(ReadFrom::SeqNum(1)))
                .with_stop(ReadStop::new().with_limits(ReadLimits::new().with_count(2))),
        )
        .await
        .unwrap();
    let bodies: Vec<&[u8]> = read.records.iter().map(|r| &r.body[..]).collect();
    assert_eq!(bodies, vec![&b"b"[..], &b"c"[..]]);
    assert_eq!(&read.records[0].headers[0].value[..], b"b");

    let err = stream
        .read(ReadInput::new().with_start(ReadStart::new().with_from(ReadFrom::SeqNum(10))))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReadError::ReadUnwritten(tail) if tail.seq_num == 4),
        "{err:?}"
    );
    let read = stream
        .read(ReadInput::new().with_start(ReadStart::new().with_from(ReadFrom::TailOffset(1))))
        .await
        .unwrap();
    assert_eq!(read.records[0].seq_num, 3);
}

async fn sdk_fence_trim_and_typed_condition_failures(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = server.sdk().basin(server.create_basin(true).await);
    let stream = basin.stream("fenced".parse().unwrap());
    stream
        .append(AppendInput::new(batch(&["a", "b", "c"])))
        .await
        .unwrap();

    let token: FencingToken = "writer-1".parse().unwrap();
    let fence =
        AppendRecordBatch::try_from_iter([AppendRecord::from(CommandRecord::fence(token.clone()))])
            .unwrap();
    stream.append(AppendInput::new(fence)).await.unwrap();

    let err = stream
        .append(AppendInput::new(batch(&["x"])).with_fencing_token("other".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppendError::ConditionFailed(AppendConditionFailed::FencingTokenMismatch(t)) if t.to_string() == "writer-1"),
        "{err:?}"
    );
    let err = stream
        .append(AppendInput::new(batch(&["x"])).with_match_seq_num(0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::ConditionFailed(AppendConditionFailed::SeqNumMismatch(4))
        ),
        "{err:?}"
    );
    stream
        .append(AppendInput::new(batch(&["x"])).with_fencing_token(token))
        .await
        .unwrap();

    let trim =
        AppendRecordBatch::try_from_iter([AppendRecord::from(CommandRecord::trim(2))]).unwrap();
    stream.append(AppendInput::new(trim)).await.unwrap();
    let read = stream
        .read(
            ReadInput::new()
                .with_start(ReadStart::new().with_from(ReadFrom::SeqNum(0)))
                .with_ignore_command_records(true),
        )
        .await
        .unwrap();
    let seqs: Vec<u64> = read.records.iter().map(|r| r.seq_num).collect();
    assert_eq!(seqs, vec![2, 4], "records before the trim point are gone");
}
