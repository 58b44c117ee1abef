//! Bad input gets the exact S2 error code and status, and writes nothing.

use reqwest::Method;
use serde_json::json;

use crate::{
    harness::{Backend, TestServer, basin_name},
    http::Api,
    on_every_backend,
};

on_every_backend!(
    bad_appends_are_refused_and_write_nothing,
    bad_names_headers_and_queries,
);

async fn bad_appends_are_refused_and_write_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let basin = basin_name();
    Api::new(&server).create_basin(&basin, json!({})).await;
    let api = Api::new(&server).basin(&basin);
    api.create_stream("s", json!(null)).await;
    let post = || api.request(Method::POST, "/streams/s/records");

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "malformed JSON",
            post()
                .header("content-type", "application/json")
                .body("{\"records\": [}"),
            400,
            "bad_json",
        ),
        (
            "JSON of the wrong shape",
            post().json(&json!({"records": "nope"})),
            400,
            "bad_json",
        ),
        (
            "JSON without content type",
            post().body(r#"{"records":[{"body":"x"}]}"#),
            400,
            "bad_json",
        ),
        (
            "malformed protobuf",
            post()
                .header("content-type", "application/protobuf")
                .body(vec![0x0a, 0x05, 0x01]),
            400,
            "bad_proto",
        ),
        (
            "unknown s2-format",
            post()
                .header("s2-format", "hex")
                .json(&json!({"records": [{"body": "x"}]})),
            400,
            "bad_header",
        ),
        (
            "empty batch",
            post().json(&json!({"records": []})),
            422,
            "invalid",
        ),
        (
            "1001 records",
            post().json(&json!({"records": vec![json!({"body": "x"}); 1001]})),
            422,
            "invalid",
        ),
        (
            "over 1 MiB metered",
            post().json(
                &json!({"records": [{"body": "x".repeat(600_000)}, {"body": "y".repeat(600_000)}]}),
            ),
            422,
            "invalid",
        ),
        (
            "one record over 1 MiB",
            post().json(&json!({"records": [{"body": "x".repeat(1024 * 1024)}]})),
            422,
            "invalid",
        ),
        (
            "empty header name",
            post().json(&json!({"records": [{"body": "x", "headers": [["", "v"], ["a", "b"]]}]})),
            422,
            "invalid",
        ),
        (
            "unknown command",
            post().json(&json!({"records": [{"headers": [["", "explode"]]}]})),
            422,
            "invalid",
        ),
        (
            "bad trim payload",
            post().json(&json!({"records": [{"headers": [["", "trim"]], "body": "12"}]})),
            422,
            "invalid",
        ),
        (
            "fencing token too long",
            post().json(&json!({"records": [{"body": "x"}], "fencing_token": "x".repeat(37)})),
            400,
            "bad_json",
        ),
        (
            "bad record in an otherwise fine batch",
            post().json(&json!({"records": [{"body": "ok"}, {"headers": [["", "nope"]]}]})),
            422,
            "invalid",
        ),
    ];
    for (what, req, status, code) in cases {
        let reply = api.send(req).await;
        assert_eq!(
            (
                reply.status.as_u16(),
                reply.json()["code"].as_str().map(str::to_owned)
            ),
            (status, Some(code.to_owned())),
            "{what}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(reply.json()["message"].is_string(), "{what}");
    }
    assert_eq!(api.tail("s").await, 0, "nothing was written");
    let r = api.read("s", "seq_num=0").await;
    assert_eq!(r.status, 416);
}

async fn bad_names_headers_and_queries(backend: Backend) {
    let server = TestServer::start(backend).await;
    let account = Api::new(&server);
    for bad in [
        "short",
        "UPPERCASE-basin",
        "-leading-hyphen",
        "trailing-hyphen-",
        "has_underscore1",
    ] {
        account
            .post("/basins", json!({"basin": bad}))
            .await
            .assert_error(400, "bad_json");
        account
            .get(&format!("/basins/{bad}"))
            .await
            .assert_error(400, "bad_path");
    }
    let basin = basin_name();
    account.create_basin(&basin, json!({})).await;

    // Missing or invalid basin header.
    let no_basin = Api::new(&server);
    let r = no_basin.get("/streams").await;
    r.assert_error(400, "bad_header");
    assert_eq!(r.json()["message"], "Missing header `s2-basin`");
    no_basin
        .post("/streams/s/records", json!({"records": [{"body": "x"}]}))
        .await
        .assert_error(400, "bad_header");
    Api::new(&server)
        .basin("Not A Basin")
        .get("/streams")
        .await
        .assert_error(400, "bad_header");

    let api = Api::new(&server).basin(&basin);
    for bad in [
        json!(""),
        json!("."),
        json!(".."),
        json!("a\u{0}b"),
        json!("x".repeat(513)),
    ] {
        api.post("/streams", json!({"stream": bad}))
            .await
            .assert_error(400, "bad_json");
    }
    let nul = api.get("/streams/a%00b").await;
    if backend == Backend::Cluster {
        // nginx refuses a NUL byte in a path itself (400, its own HTML page).
        assert_eq!(nul.status, 400);
    } else {
        nul.assert_error(400, "bad_path");
    }
    api.get("/streams/%FF").await.assert_error(400, "bad_path");

    api.create_stream("s", json!(null)).await;
    api.read("s", "seq_num=0&timestamp=5")
        .await
        .assert_error(422, "invalid");
    api.read("s", "seq_num=0&tail_offset=1")
        .await
        .assert_error(422, "invalid");
    api.read("s", "seq_num=minus-one")
        .await
        .assert_error(400, "bad_query");
    api.read("s", "count=-1")
        .await
        .assert_error(400, "bad_query");
    api.get("/streams?limit=x")
        .await
        .assert_error(400, "bad_query");
    account
        .send(
            account
                .request(Method::POST, "/basins")
                .header("s2-request-token", "x".repeat(37))
                .json(&json!({"basin": basin_name()})),
        )
        .await
        .assert_error(400, "bad_header");
    assert_eq!(api.tail("s").await, 0);
}
