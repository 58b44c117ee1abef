//! Behaviour every backend must show. Unit tests run it against memory and the local
//! directory; integration tests against real S3 servers (ministack, moto).

use std::sync::Arc;

use bytes::Bytes;

use super::{PutOutcome, Revalidated, Store};

/// Single-client semantics: conditional create and replace, conditional reads, ranges,
/// listing order and pagination, deletion. Uses keys under `contract/`.
pub async fn check(store: &dyn Store) {
    let k = "contract/a";
    assert!(store.get(k).await.unwrap().is_none());
    let e1 = match store
        .put_if_absent(k, Bytes::from_static(b"one"))
        .await
        .unwrap()
    {
        PutOutcome::Written(e) => e,
        other => panic!("create failed: {other:?}"),
    };
    assert_eq!(
        store
            .put_if_absent(k, Bytes::from_static(b"two"))
            .await
            .unwrap(),
        PutOutcome::PreconditionFailed
    );
    let got = store.get(k).await.unwrap().unwrap();
    assert_eq!(got.bytes, Bytes::from_static(b"one"));
    assert_eq!(got.etag, e1);
    assert_eq!(
        store.get_bytes(k).await.unwrap(),
        Some(Bytes::from_static(b"one"))
    );
    assert_eq!(store.get_bytes("contract/missing").await.unwrap(), None);
    assert!(matches!(
        store.revalidate(k, &e1).await.unwrap(),
        Revalidated::Unchanged
    ));

    let e2 = match store
        .put_if_match(k, Bytes::from_static(b"three"), &e1)
        .await
        .unwrap()
    {
        PutOutcome::Written(e) => e,
        other => panic!("replace failed: {other:?}"),
    };
    assert_ne!(e1, e2);
    assert_eq!(
        store
            .put_if_match(k, Bytes::from_static(b"four"), &e1)
            .await
            .unwrap(),
        PutOutcome::PreconditionFailed
    );
    match store.revalidate(k, &e1).await.unwrap() {
        Revalidated::Changed(o) => {
            assert_eq!(o.bytes, Bytes::from_static(b"three"));
            assert_eq!(o.etag, e2);
        }
        other => panic!("expected change, got {other:?}"),
    }
    assert_eq!(
        store
            .put_if_match("contract/missing", Bytes::from_static(b"x"), &e1)
            .await
            .unwrap(),
        PutOutcome::PreconditionFailed
    );

    for name in [
        "contract/l/b",
        "contract/l/a",
        "contract/l/c/d",
        "contract/l/a-",
    ] {
        store.put(name, Bytes::from_static(b"v")).await.unwrap();
    }
    let all = store.list("contract/l/", None, 100).await.unwrap();
    assert_eq!(
        all.keys,
        vec![
            "contract/l/a",
            "contract/l/a-",
            "contract/l/b",
            "contract/l/c/d"
        ]
    );
    assert!(!all.truncated);
    let page = store
        .list("contract/l/", Some("contract/l/a"), 2)
        .await
        .unwrap();
    assert_eq!(page.keys, vec!["contract/l/a-", "contract/l/b"]);
    assert!(page.truncated);
    check_list_meta(store).await;

    store.delete("contract/l/b").await.unwrap();
    store.delete("contract/l/b").await.unwrap();
    assert!(store.get("contract/l/b").await.unwrap().is_none());
    assert!(matches!(
        store.revalidate("contract/l/b", &e2).await.unwrap(),
        Revalidated::Missing
    ));
    store.health().await.unwrap();
}

/// Listing with metadata pages like `list` and reports sizes and recent modification
/// times (by the store's clock, so only loosely against this process's).
async fn check_list_meta(store: &dyn Store) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64;
    store
        .put("contract/l/a", Bytes::from_static(b"sized"))
        .await
        .unwrap();
    let all = store.list_meta("contract/l/", None, 100).await.unwrap();
    let keys: Vec<&str> = all.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "contract/l/a",
            "contract/l/a-",
            "contract/l/b",
            "contract/l/c/d"
        ]
    );
    assert!(!all.truncated);
    assert_eq!(all.objects[0].size, 5);
    let modified = all.objects[0].modified_ms.expect("a modification time");
    assert!(
        modified.abs_diff(now_ms) < 10 * 60 * 1000,
        "modified {modified}, now {now_ms}"
    );
    let page = store
        .list_meta("contract/l/", Some("contract/l/a"), 2)
        .await
        .unwrap();
    let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["contract/l/a-", "contract/l/b"]);
    assert!(page.truncated);
}

/// Concurrent conditional writes to one key admit exactly one winner each round.
pub async fn check_races(store: Arc<dyn Store>, rounds: usize) {
    for round in 0..rounds {
        let key = format!("contract/race/{round}");
        let creates: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(
                    async move { store.put_if_absent(&key, Bytes::from(format!("{i}"))).await },
                )
            })
            .collect();
        let mut etag = None;
        for t in creates {
            if let PutOutcome::Written(e) = t.await.expect("task").expect("create") {
                assert!(etag.is_none(), "two creates of {key} succeeded");
                etag = Some(e);
            }
        }
        let etag = etag.expect("one create succeeds");
        let replaces: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                let key = key.clone();
                let etag = etag.clone();
                tokio::spawn(async move {
                    store
                        .put_if_match(&key, Bytes::from(format!("r{i}")), &etag)
                        .await
                })
            })
            .collect();
        let mut winners = 0;
        for t in replaces {
            if matches!(
                t.await.expect("task").expect("replace"),
                PutOutcome::Written(_)
            ) {
                winners += 1;
            }
        }
        assert_eq!(
            winners, 1,
            "round {round}: {winners} conditional replaces succeeded"
        );
    }
}
