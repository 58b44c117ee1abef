//! Stream listings at scale: served from LIST requests alone (the entries' listing
//! markers), page for page what reading every entry shows, and for buckets written
//! without markers the same again, by reading the entries.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use sluice::storage::{
    DynStore,
    counting::{CountingStore, StoreCounters},
};

use crate::{
    harness::{Backend, TestServer, basin_name},
    http::Api,
    on_both_backends,
};

on_both_backends!(listings_come_from_list_requests_and_match_reading_every_entry);

/// One page as the API answers it: the streams (name, created_at, deleted_at, cipher as
/// JSON) and `has_more`.
async fn page(api: &Api, prefix: &str, start_after: &str, limit: usize) -> (Vec<Value>, bool) {
    let q = format!(
        "prefix={}&start_after={}&limit={limit}",
        encode(prefix),
        encode(start_after)
    );
    let page = api.get(&format!("/streams?{q}")).await.assert_status(200);
    (
        page["streams"].as_array().unwrap().clone(),
        page["has_more"].as_bool().unwrap(),
    )
}

/// `s` percent-encoded for a query or a path segment.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every page of a listing with `prefix`, `limit` at a time, from `start_after` on.
async fn pages(
    api: &Api,
    prefix: &str,
    start_after: &str,
    limit: usize,
) -> Vec<(Vec<Value>, bool)> {
    let mut out = Vec::new();
    let mut after = start_after.to_owned();
    loop {
        let (streams, more) = page(api, prefix, &after, limit).await;
        if let Some(last) = streams.last() {
            after = last["name"].as_str().unwrap().to_owned();
        }
        let done = !more;
        out.push((streams, more));
        if done || out.len() > 1000 {
            return out;
        }
    }
}

/// The listings the test compares, each as its pages.
async fn listings(api: &Api) -> Vec<Vec<(Vec<Value>, bool)>> {
    let mut out = Vec::new();
    for (prefix, start_after, limit) in [
        ("", "", 1000),
        ("", "", 1),
        ("", "", 7),
        ("", "s0100", 50),
        ("s01", "", 9),
        ("s01", "s0105", 3),
        ("s", "a", 1000),
        ("a", "", 2),
        ("a-", "", 10),
        ("x", "", 10),
        ("名", "", 10),
        ("", "名前", 10),
        ("zzz", "", 10),
        ("", "zzz", 10),
    ] {
        out.push(pages(api, prefix, start_after, limit).await);
    }
    out
}

fn gets(counters: &StoreCounters) -> u64 {
    counters.snapshot().gets
}

/// Deletes every listing marker under the basin's streams, as a bucket written before
/// them has none.
async fn remove_markers(store: &DynStore, basin: &str) -> usize {
    let dir = format!("streams/{basin}/");
    let mut markers = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(&dir, after.as_deref(), 1000).await.unwrap();
        after = page.keys.last().cloned();
        markers.extend(page.keys.into_iter().filter(|k| !k.ends_with('.')));
        if !page.truncated {
            break;
        }
    }
    for chunk in markers.chunks(1000) {
        store.delete_many(chunk).await.unwrap();
    }
    markers.len()
}

async fn listings_come_from_list_requests_and_match_reading_every_entry(backend: Backend) {
    let counters = Arc::new(StoreCounters::default());
    let wrap = {
        let counters = counters.clone();
        move |s: DynStore| -> DynStore { Arc::new(CountingStore::new(s, counters)) }
    };
    // Deleted streams stay listed as deleting for the whole test, and no upkeep pass
    // reads the catalog meanwhile.
    let server = TestServer::start_wrapped(
        backend,
        |c| {
            c.engine.deletion_grace = Duration::from_secs(3600);
            c.engine.maintenance_interval = Duration::from_secs(3600);
        },
        wrap,
    )
    .await;
    let basin = basin_name();
    Api::new(&server).create_basin(&basin, json!({})).await;
    let api = Api::new(&server).basin(&basin);
    let long = "x".repeat(300);
    let mut names: Vec<String> = (0..240).map(|i| format!("s{i:04}")).collect();
    names.extend(["a", "a-", "a/b", "ab", "名前", "z z+%", long.as_str()].map(String::from));
    for n in &names {
        api.create_stream(n, json!(null)).await;
    }
    for n in ["s0003", "s0104", "a-", long.as_str()] {
        api.delete(&format!("/streams/{}", encode(n)))
            .await
            .assert_status(202);
    }

    let before = gets(&counters);
    let from_markers = listings(&api).await;
    let requests: usize = from_markers.iter().map(Vec::len).sum();
    // One read per request (the basin's entry), none per stream.
    assert!(
        gets(&counters) - before <= requests as u64,
        "{} reads for {requests} listing requests",
        gets(&counters) - before
    );

    let full = &from_markers[0];
    assert_eq!(full.len(), 1, "one page of 1000");
    let listed: Vec<&str> = full[0]
        .0
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
    sorted.sort();
    assert_eq!(listed, sorted);
    for s in &full[0].0 {
        let deleting =
            ["s0003", "s0104", "a-", long.as_str()].contains(&s["name"].as_str().unwrap());
        assert_eq!(!s["deleted_at"].is_null(), deleting, "{s}");
        assert!(s["created_at"].is_string(), "{s}");
    }

    // Without markers every entry is read, as before them; the pages are the same.
    assert!(remove_markers(&server.store(), &basin).await >= names.len());
    let before = gets(&counters);
    let from_entries = listings(&api).await;
    assert!(gets(&counters) - before >= names.len() as u64);
    assert_eq!(from_entries, from_markers);

    // Those reads wrote the markers back: listing needs no reads per stream again.
    let before = gets(&counters);
    assert_eq!(listings(&api).await, from_markers);
    assert!(gets(&counters) - before <= requests as u64);
}
