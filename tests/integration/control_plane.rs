//! Basins and streams: lifecycle, idempotency, listing, configuration, deletion.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::{
    harness::{Backend, TestServer, basin_name, eventually},
    http::Api,
    on_every_backend,
};

on_every_backend!(
    basin_lifecycle,
    basin_listing_is_ordered_and_paginated,
    stream_lifecycle,
    stream_listing_is_ordered_and_paginated,
    stream_config_resolution_and_reconfiguration,
    deletion_frees_the_name,
    deleting_a_basin_deletes_its_streams,
);

async fn basin_lifecycle(backend: Backend) {
    let server = TestServer::start(backend).await;
    let api = Api::new(&server);
    let name = basin_name();

    let created = api
        .send(
            api.request(Method::POST, "/basins")
                .header("s2-request-token", "token-1")
                .json(&json!({"basin": name, "config": {"create_stream_on_append": true}})),
        )
        .await;
    let info = created.assert_status(201);
    assert_eq!(created.headers["s2-provision-result"], "created");
    assert_eq!(info["name"], name);
    assert_eq!(info["deleted_at"], serde_json::Value::Null);
    assert_eq!(info["state"], "active");
    assert!(info["created_at"].as_str().unwrap().ends_with('Z'));

    // A retry with the same token and config is a no-op success; anything else conflicts.
    let replay = api
        .send(
            api.request(Method::POST, "/basins")
                .header("s2-request-token", "token-1")
                .json(&json!({"basin": name, "config": {"create_stream_on_append": true}})),
        )
        .await;
    assert_eq!(replay.assert_status(201)["created_at"], info["created_at"]);
    assert_eq!(replay.headers["s2-provision-result"], "noop");
    api.post("/basins", json!({"basin": name}))
        .await
        .assert_error(409, "resource_already_exists");

    let config = api.get(&format!("/basins/{name}")).await.assert_status(200);
    assert_eq!(
        config,
        json!({"default_stream_config": null, "stream_cipher": null,
               "create_stream_on_append": true, "create_stream_on_read": false})
    );

    // PATCH: absent fields stay, values set.
    let patched = api
        .json(
            Method::PATCH,
            &format!("/basins/{name}"),
            json!({"create_stream_on_read": true,
                   "default_stream_config": {"storage_class": "standard"}}),
        )
        .await
        .assert_status(200);
    assert_eq!(patched["create_stream_on_append"], true);
    assert_eq!(patched["create_stream_on_read"], true);
    assert_eq!(
        patched["default_stream_config"]["storage_class"],
        "standard"
    );
    // null resets.
    let patched = api
        .json(
            Method::PATCH,
            &format!("/basins/{name}"),
            json!({"default_stream_config": null}),
        )
        .await
        .assert_status(200);
    assert_eq!(patched["default_stream_config"], serde_json::Value::Null);

    // PUT replaces the config; identical PUT is a no-op.
    let ensured = api
        .json(
            Method::PUT,
            &format!("/basins/{name}"),
            json!({"config": {}}),
        )
        .await;
    ensured.assert_status(200);
    assert_eq!(ensured.headers["s2-provision-result"], "updated");
    let ensured = api
        .json(
            Method::PUT,
            &format!("/basins/{name}"),
            json!({"config": {}}),
        )
        .await;
    ensured.assert_status(200);
    assert_eq!(ensured.headers["s2-provision-result"], "noop");
    let fresh = basin_name();
    let ensured = api
        .send(api.request(Method::PUT, &format!("/basins/{fresh}")))
        .await;
    ensured.assert_status(201);
    assert_eq!(ensured.headers["s2-provision-result"], "created");

    // Deletion is asynchronous and repeatable while pending.
    api.delete(&format!("/basins/{name}"))
        .await
        .assert_status(202);
    api.delete(&format!("/basins/{name}"))
        .await
        .assert_status(202);
    eventually(Duration::from_secs(20), || async {
        (api.get(&format!("/basins/{name}")).await.status == 404).then_some(())
    })
    .await;
    api.get(&format!("/basins/{name}"))
        .await
        .assert_error(404, "basin_not_found");
    api.delete(&format!("/basins/{name}"))
        .await
        .assert_error(404, "basin_not_found");
    api.json(Method::PATCH, &format!("/basins/{name}"), json!({}))
        .await
        .assert_error(404, "basin_not_found");
}

async fn basin_listing_is_ordered_and_paginated(backend: Backend) {
    let server = TestServer::start(backend).await;
    let api = Api::new(&server);
    let stem = basin_name();
    let names: Vec<String> = ["b", "a", "c-1", "c", "a-z"]
        .iter()
        .map(|s| format!("{stem}-{s}"))
        .collect();
    for n in &names {
        api.create_basin(n, json!({})).await;
    }
    let mut sorted = names.clone();
    sorted.sort();

    let page = api
        .get(&format!("/basins?prefix={stem}&limit=2"))
        .await
        .assert_status(200);
    let got: Vec<&str> = page["basins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        sorted[..2].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(page["has_more"], true);

    let page = api
        .get(&format!("/basins?prefix={stem}&start_after={}", sorted[1]))
        .await
        .assert_status(200);
    let got: Vec<&str> = page["basins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        sorted[2..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(page["has_more"], false);
}

async fn stream_lifecycle(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = basin_name();
    Api::new(&server).create_basin(&basin, json!({})).await;
    let api = Api::new(&server).basin(&basin);

    let created = api
        .send(
            api.request(Method::POST, "/streams")
                .header("s2-request-token", "tok")
                .json(&json!({"stream": "a/b", "config": null})),
        )
        .await;
    let info = created.assert_status(201);
    assert_eq!(
        info.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["cipher", "created_at", "deleted_at", "name"]
    );
    assert_eq!(info["name"], "a/b");
    assert_eq!(created.headers["s2-provision-result"], "created");

    let replay = api
        .send(
            api.request(Method::POST, "/streams")
                .header("s2-request-token", "tok")
                .json(&json!({"stream": "a/b", "config": null})),
        )
        .await;
    assert_eq!(replay.assert_status(201)["created_at"], info["created_at"]);
    assert_eq!(replay.headers["s2-provision-result"], "noop");
    api.send(
        api.request(Method::POST, "/streams")
            .header("s2-request-token", "other")
            .json(&json!({"stream": "a/b"})),
    )
    .await
    .assert_error(409, "resource_already_exists");

    assert_eq!(
        api.get("/streams/a%2Fb").await.assert_status(200),
        json!({"storage_class": "express", "retention_policy": {"age": 604800},
               "timestamping": {"mode": "client-prefer", "uncapped": false},
               "delete_on_empty": {"min_age_secs": 0}})
    );

    api.get("/streams/missing")
        .await
        .assert_error(404, "stream_not_found");
    Api::new(&server)
        .basin(&basin_name())
        .get("/streams")
        .await
        .assert_error(404, "basin_not_found");
    Api::new(&server)
        .basin(&basin_name())
        .post("/streams", json!({"stream": "x"}))
        .await
        .assert_error(404, "basin_not_found");

    // Ensure: created, then replaced config, then no-op.
    let r = api
        .json(
            Method::PUT,
            "/streams/ensured",
            json!({"storage_class": "standard"}),
        )
        .await;
    r.assert_status(201);
    assert_eq!(r.headers["s2-provision-result"], "created");
    let r = api
        .json(
            Method::PUT,
            "/streams/ensured",
            json!({"retention_policy": {"age": 60}}),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.headers["s2-provision-result"], "updated");
    let config = api.get("/streams/ensured").await.assert_status(200);
    assert_eq!(
        config["storage_class"], "express",
        "omitted fields are defaulted"
    );
    assert_eq!(config["retention_policy"], json!({"age": 60}));
    let r = api
        .json(
            Method::PUT,
            "/streams/ensured",
            json!({"retention_policy": {"age": 60}}),
        )
        .await;
    assert_eq!(r.headers["s2-provision-result"], "noop");

    api.delete("/streams/a%2Fb").await.assert_status(202);
    api.delete("/streams/a%2Fb").await.assert_status(202);
    eventually(Duration::from_secs(20), || async {
        (api.get("/streams/a%2Fb").await.status == 404).then_some(())
    })
    .await;
    api.delete("/streams/a%2Fb")
        .await
        .assert_error(404, "stream_not_found");
}

async fn stream_listing_is_ordered_and_paginated(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = basin_name();
    Api::new(&server).create_basin(&basin, json!({})).await;
    let api = Api::new(&server).basin(&basin);
    let names = ["b", "a/b", "a", "a-", "ab", "b/c", "c", "名前", "z z+%"];
    for n in names {
        api.create_stream(n, json!(null)).await;
    }
    let list = |q: String| {
        let api = &api;
        async move {
            let page = api.get(&format!("/streams?{q}")).await.assert_status(200);
            let names: Vec<String> = page["streams"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_owned())
                .collect();
            (names, page["has_more"].as_bool().unwrap())
        }
    };
    let mut sorted: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(list(String::new()).await, (sorted.clone(), false));
    assert_eq!(
        list("prefix=a&limit=3".into()).await,
        (vec!["a".into(), "a-".into(), "a/b".into()], true)
    );
    assert_eq!(
        list("prefix=a&start_after=a%2Fb".into()).await,
        (vec!["ab".into()], false)
    );
    assert_eq!(
        list("start_after=c".into()).await,
        (vec!["z z+%".into(), "名前".into()], false)
    );
    assert_eq!(
        list("prefix=z+z".into()).await,
        (vec!["z z+%".into()], false),
        "query strings are form-encoded: + is a space"
    );
    // limit=0 means the default.
    assert_eq!(list("limit=0".into()).await.0.len(), names.len());
}

async fn stream_config_resolution_and_reconfiguration(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = basin_name();
    Api::new(&server)
        .create_basin(
            &basin,
            json!({"default_stream_config": {"storage_class": "standard",
                                             "retention_policy": {"age": 100}}}),
        )
        .await;
    let api = Api::new(&server).basin(&basin);
    api.create_stream("s", json!({"retention_policy": {"infinite": {}}}))
        .await;
    let config = api.get("/streams/s").await.assert_status(200);
    assert_eq!(
        config["storage_class"], "standard",
        "inherited from the basin"
    );
    assert_eq!(config["retention_policy"], json!({"infinite": {}}));

    let patched = api
        .json(
            Method::PATCH,
            "/streams/s",
            json!({"timestamping": {"mode": "arrival"}, "delete_on_empty": {"min_age_secs": 30}}),
        )
        .await
        .assert_status(200);
    assert_eq!(
        patched["timestamping"],
        json!({"mode": "arrival", "uncapped": false})
    );
    assert_eq!(patched["delete_on_empty"], json!({"min_age_secs": 30}));
    assert_eq!(patched["retention_policy"], json!({"infinite": {}}));
    let patched = api
        .json(
            Method::PATCH,
            "/streams/s",
            json!({"retention_policy": null}),
        )
        .await
        .assert_status(200);
    assert_eq!(
        patched["retention_policy"],
        json!({"age": 100}),
        "null re-inherits"
    );
    api.json(
        Method::PATCH,
        "/streams/s",
        json!({"retention_policy": {"age": 0}}),
    )
    .await
    .assert_error(422, "invalid");
    api.json(Method::PATCH, "/streams/missing", json!({}))
        .await
        .assert_error(404, "stream_not_found");
}

async fn deletion_frees_the_name(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = basin_name();
    Api::new(&server).create_basin(&basin, json!({})).await;
    let api = Api::new(&server).basin(&basin);
    api.create_stream("s", json!(null)).await;
    api.append("s", json!({"records": [{"body": "old"}]}))
        .await
        .assert_status(200);
    api.delete("/streams/s").await.assert_status(202);
    // While pending: data-plane and config requests are refused.
    let r = api.append("s", json!({"records": [{"body": "x"}]})).await;
    if r.status != 404 {
        r.assert_error(409, "stream_deletion_pending");
    }
    eventually(Duration::from_secs(20), || async {
        (api.get("/streams/s").await.status == 404).then_some(())
    })
    .await;
    api.create_stream("s", json!(null)).await;
    assert_eq!(api.tail("s").await, 0, "a recreated stream starts empty");
}

async fn deleting_a_basin_deletes_its_streams(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = basin_name();
    let account = Api::new(&server);
    account.create_basin(&basin, json!({})).await;
    let api = Api::new(&server).basin(&basin);
    for s in ["x", "y"] {
        api.create_stream(s, json!(null)).await;
        api.append(s, json!({"records": [{"body": "r"}]}))
            .await
            .assert_status(200);
    }
    account
        .delete(&format!("/basins/{basin}"))
        .await
        .assert_status(202);
    let listed = account
        .get(&format!("/basins?prefix={basin}"))
        .await
        .assert_status(200);
    if let Some(b) = listed["basins"].as_array().unwrap().first() {
        assert!(b["deleted_at"].is_string(), "listed as deleting: {b}");
        assert_eq!(b["state"], "deleting");
    }
    let r = api.post("/streams", json!({"stream": "z"})).await;
    if r.status != 404 {
        r.assert_error(409, "basin_deletion_pending");
    }
    eventually(Duration::from_secs(30), || async {
        (account.get(&format!("/basins/{basin}")).await.status == 404).then_some(())
    })
    .await;
    // The name is free again, and nothing of the old basin shows through.
    account.create_basin(&basin, json!({})).await;
    let streams = api.get("/streams").await.assert_status(200);
    assert_eq!(streams["streams"], json!([]));
}
