//! Concurrent appenders on one stream: every acked record is read back exactly once, at
//! its acked position, with gap-free seq_nums.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use s2_sdk::types::{
    AppendInput, AppendRecord, AppendRecordBatch, CreateStreamInput, ReadFrom, ReadInput, ReadStart,
};

use crate::{
    harness::{Backend, TestServer},
    on_every_backend,
};

on_every_backend!(eight_concurrent_appenders_lose_and_duplicate_nothing,);

/// (task, batch index, start seq_num, end seq_num), in the order each task saw its acks.
type AckedBatch = (usize, usize, u64, u64);

async fn eight_concurrent_appenders_lose_and_duplicate_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin_name = server.create_basin(false).await;
    let basin = server.sdk().basin(basin_name.clone());
    basin
        .create_stream(CreateStreamInput::new("c".parse().unwrap()))
        .await
        .unwrap();

    let acks: Arc<Mutex<Vec<AckedBatch>>> = Arc::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for task in 0..8usize {
        let stream = server
            .sdk()
            .basin(basin_name.clone())
            .stream("c".parse().unwrap());
        let acks = acks.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0usize;
            while tokio::time::Instant::now() < deadline {
                let n = 1 + (task + i) % 5;
                let records = AppendRecordBatch::try_from_iter(
                    (0..n).map(|j| AppendRecord::new(format!("{task}:{i}:{j}")).unwrap()),
                )
                .unwrap();
                let ack = stream
                    .append(AppendInput::new(records))
                    .await
                    .expect("append");
                assert_eq!(ack.end.seq_num - ack.start.seq_num, n as u64);
                acks.lock()
                    .unwrap()
                    .push((task, i, ack.start.seq_num, ack.end.seq_num));
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    let total: u64 = acks.iter().map(|(_, _, s, e)| e - s).sum();
    assert!(
        total > 100,
        "the test appended too little to mean anything ({total})"
    );

    // Expected body at every acked position.
    let mut expected: HashMap<u64, String> = HashMap::new();
    let mut last_end_per_task: HashMap<usize, u64> = HashMap::new();
    for (task, i, start, end) in &acks {
        let prev = last_end_per_task.insert(*task, *end).unwrap_or(0);
        assert!(*start >= prev, "a task's acks are in seq order");
        for (j, seq) in (*start..*end).enumerate() {
            assert!(
                expected.insert(seq, format!("{task}:{i}:{j}")).is_none(),
                "seq {seq} acked twice"
            );
        }
    }

    let stream = basin.stream("c".parse().unwrap());
    let tail = stream.check_tail().await.unwrap().seq_num;
    assert_eq!(tail, total, "no record beyond the acked ones");
    let mut next = 0u64;
    while next < tail {
        let batch = stream
            .read(ReadInput::new().with_start(ReadStart::new().with_from(ReadFrom::SeqNum(next))))
            .await
            .unwrap();
        for r in batch.records {
            assert_eq!(r.seq_num, next, "gap-free seq_nums");
            assert_eq!(
                std::str::from_utf8(&r.body).unwrap(),
                expected[&r.seq_num],
                "record at {next}"
            );
            next += 1;
        }
    }
    assert_eq!(next, tail);
}
