//! Durability across restarts: what was acked before a restart is readable after it.

use s2_sdk::types::{
    AppendInput, AppendRecord, AppendRecordBatch, CreateStreamInput, ReadFrom, ReadInput, ReadStart,
};

use crate::{
    harness::{Backend, TestServer},
    on_both_backends,
};

on_both_backends!(acked_appends_survive_a_restart);

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
