//! Locations: a deployment has one, named after its storage (`local` for a directory, the
//! bucket for S3); the SDK and plain HTTP list it, get it as the default, and may set the
//! default only to it; basins are in it and nowhere else. Tokens need the locations'
//! operations.

use s2_sdk::types::{AccessTokenScopeInput, IssueAccessTokenInput, LocationName, Operation};
use serde_json::json;

use crate::{
    harness::{Backend, S3Server, TestServer, s3_settings},
    http::Api,
    on_both_backends,
};

on_both_backends!(the_one_location_is_listed_got_and_set);

fn expected_name(backend: Backend) -> String {
    match backend {
        Backend::Local => "local".into(),
        _ => s3_settings(S3Server::Ministack).bucket,
    }
}

async fn the_one_location_is_listed_got_and_set(backend: Backend) {
    let server = TestServer::start(backend).await;
    let name = expected_name(backend);
    let s2 = server.sdk();
    let listed = s2.list_locations().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name.as_ref() as &str, name);
    assert!(!listed[0].is_private);
    let default = s2.get_default_location().await.unwrap();
    assert_eq!(default, listed[0]);
    let location: LocationName = name.parse().unwrap();
    assert_eq!(s2.set_default_location(location).await.unwrap(), listed[0]);

    let api = Api::new(&server);
    let body = api.get("/locations").await.assert_status(200);
    assert_eq!(
        body,
        json!([{"name": name, "is_private": false,
                "storage_classes": ["standard", "express"],
                "default_storage_class": "express"}])
    );
    api.get("/locations/default").await.assert_status(200);
    api.json(
        reqwest::Method::PUT,
        "/locations/default",
        json!("elsewhere"),
    )
    .await
    .assert_error(422, "invalid");
    api.json(
        reqwest::Method::PUT,
        "/locations/default",
        json!("not a name!"),
    )
    .await
    .assert_error(400, "bad_json");

    // Basins are in it: created there by default or by name, never elsewhere. Their
    // `location` stays unnamed, as `s2 lite`'s, so the CLI prints them as for it.
    let basin = crate::harness::basin_name();
    let created = api
        .post("/basins", json!({"basin": basin, "location": name}))
        .await
        .assert_status(201);
    assert_eq!(created["location"], serde_json::Value::Null, "{created}");
    let other = crate::harness::basin_name();
    api.post("/basins", json!({"basin": other, "location": "elsewhere"}))
        .await
        .assert_error(422, "invalid");
    api.json(
        reqwest::Method::PUT,
        &format!("/basins/{other}"),
        json!({"location": "elsewhere"}),
    )
    .await
    .assert_error(422, "invalid");
    api.get(&format!("/basins/{other}"))
        .await
        .assert_error(404, "basin_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_need_their_operations() {
    const ROOT: &str = "root-secret-for-location-tests";
    let server = TestServer::start_with(Backend::Local, |c| c.root_token = Some(ROOT.into())).await;
    let root = server.sdk_as(ROOT);
    let issue = |ops: Vec<Operation>| {
        let root = root.clone();
        async move {
            let id = crate::harness::unique("loc").parse().unwrap();
            root.issue_access_token(IssueAccessTokenInput::new(
                id,
                AccessTokenScopeInput::from_ops(ops),
            ))
            .await
            .unwrap()
        }
    };
    let reader = server.sdk_as(
        &issue(vec![
            Operation::ListLocations,
            Operation::GetDefaultLocation,
        ])
        .await,
    );
    reader.list_locations().await.unwrap();
    reader.get_default_location().await.unwrap();
    let err = reader
        .set_default_location("local".parse().unwrap())
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("permission_denied"), "{err:?}");
    let other = server.sdk_as(&issue(vec![Operation::ListBasins]).await);
    let err = other.list_locations().await.unwrap_err();
    assert!(format!("{err:?}").contains("permission_denied"), "{err:?}");
}
