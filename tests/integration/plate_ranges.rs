//! Ranges of the plate surface over more records than one read returns.

use crate::{
    harness::{Backend, TestServer},
    http::Api,
    on_both_backends,
};

on_both_backends!(ranges_without_count_return_every_entry_both_ways);

async fn ranges_without_count_return_every_entry_both_ways(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = server.create_basin(false).await.to_string();
    let plate = Api::plate(&server, &basin);
    // More entries than one engine read returns (1000), with deletions in between.
    const N: usize = 2500;
    let mut batch = vec!["XADD".to_owned(), "k".into(), "*".into()];
    for i in 0..N {
        batch.truncate(3);
        batch.extend(["i".to_owned(), i.to_string()]);
        let args: Vec<&str> = batch.iter().map(String::as_str).collect();
        plate.command(&args).await.unwrap();
    }
    let all = plate.command(&["XRANGE", "k", "-", "+"]).await.unwrap();
    let ids: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), N);
    let mut del = vec!["XDEL", "k"];
    del.extend(ids.iter().step_by(7).map(String::as_str));
    let deleted = plate.command(&del).await.unwrap();
    let left: Vec<&String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 7 != 0)
        .map(|(_, id)| id)
        .collect();
    assert_eq!(deleted, ids.len().div_ceil(7));
    let forward = plate.command(&["XRANGE", "k", "-", "+"]).await.unwrap();
    let reverse = plate.command(&["XREVRANGE", "k", "+", "-"]).await.unwrap();
    let ids_of = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e[0].as_str().unwrap().to_owned())
            .collect()
    };
    let forward = ids_of(&forward);
    let mut reverse = ids_of(&reverse);
    reverse.reverse();
    assert_eq!(forward.iter().collect::<Vec<_>>(), left);
    assert_eq!(reverse, forward);
    assert_eq!(
        plate.command(&["XLEN", "k"]).await.unwrap(),
        left.len(),
        "XLEN"
    );
}
