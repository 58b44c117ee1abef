//! Durability across restarts: what was acked before a restart is readable after it.

use s2_sdk::types::{
    AppendInput, AppendRecord, AppendRecordBatch, CreateStreamInput, ReadFrom, ReadInput, ReadStart,
};

use serde_json::json;

use crate::{
    harness::{Backend, TestServer},
    http::Api,
    on_both_backends,
};

on_both_backends!(
    acked_appends_survive_a_restart,
    entries_deletions_and_groups_survive_a_restart
);

async fn acked_appends_survive_a_restart(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin_name = server.create_basin(false).await;
    let basin = server.sdk().basin(basin_name.clone());
    basin
        .create_stream(CreateStreamInput::new("durable".parse().unwrap()))
        .await
        .unwrap();
    let stream = basin.stream("durable".parse().unwrap());
    let mut acked = 0u64;
    for i in 0..50 {
        let records = AppendRecordBatch::try_from_iter(
            (0..4).map(|j| AppendRecord::new(format!("{i}-{j}")).unwrap()),
        )
        .unwrap();
        acked = stream
            .append(AppendInput::new(records))
            .await
            .unwrap()
            .end
            .seq_num;
    }

    let server = server.restart().await;
    let stream = server
        .sdk()
        .basin(basin_name)
        .stream("durable".parse().unwrap());
    assert_eq!(stream.check_tail().await.unwrap().seq_num, acked);
    let mut next = 0;
    while next < acked {
        let batch = stream
            .read(ReadInput::new().with_start(ReadStart::new().with_from(ReadFrom::SeqNum(next))))
            .await
            .unwrap();
        for r in batch.records {
            assert_eq!(r.seq_num, next);
            assert_eq!(r.body, format!("{}-{}", next / 4, next % 4));
            next += 1;
        }
    }
    // Appends continue after the last acked position.
    let ack = stream
        .append(AppendInput::new(
            AppendRecordBatch::try_from_iter([AppendRecord::new("after").unwrap()]).unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(ack.start.seq_num, acked);
}

/// What the Redis-Streams API wrote (explicit ids, deletions, trims, a group's pending
/// entries) is the same after a restart, and ids keep growing past the last one.
async fn entries_deletions_and_groups_survive_a_restart(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = server.create_basin(false).await.to_string();
    let plate = Api::plate(&server, &basin);
    let run = |args: &'static [&'static str]| {
        let plate = &plate;
        async move { plate.command(args).await.unwrap() }
    };
    for id in ["1-1", "2-1", "3-1", "4-1", "5-1"] {
        plate.command(&["XADD", "k", id, "f", id]).await.unwrap();
    }
    assert_eq!(run(&["XDEL", "k", "3-1"]).await, 1);
    assert_eq!(run(&["XTRIM", "k", "MINID", "2"]).await, 1);
    run(&["XGROUP", "CREATE", "k", "g", "0"]).await;
    run(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "COUNT",
        "2",
        "STREAMS",
        "k",
        ">",
    ])
    .await;
    let before = (
        run(&["XRANGE", "k", "-", "+"]).await,
        run(&["XINFO", "STREAM", "k"]).await,
        run(&["XPENDING", "k", "g", "-", "+", "10"]).await,
    );
    assert_eq!(
        before.0,
        json!([
            ["2-1", ["f", "2-1"]],
            ["4-1", ["f", "4-1"]],
            ["5-1", ["f", "5-1"]]
        ])
    );
    assert_eq!(before.1["length"], 3);
    assert_eq!(before.1["max-deleted-entry-id"], "3-1");

    let server = server.restart().await;
    let plate = Api::plate(&server, &basin);
    let run = |args: &'static [&'static str]| {
        let plate = &plate;
        async move { plate.command(args).await.unwrap() }
    };
    assert_eq!(run(&["XRANGE", "k", "-", "+"]).await, before.0);
    assert_eq!(run(&["XINFO", "STREAM", "k"]).await, before.1);
    let pending = run(&["XPENDING", "k", "g", "-", "+", "10"]).await;
    let ids = |rows: &serde_json::Value| {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&pending), ids(&before.2));
    let refused = plate
        .command(&["XADD", "k", "5-1", "f", "v"])
        .await
        .unwrap_err();
    assert_eq!(refused.0, 400);
    assert_eq!(
        refused.1["message"],
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    );
    assert_eq!(run(&["XADD", "k", "5-*", "f", "v"]).await, "5-2");
}
