//! Access tokens through the official Rust SDK and plain HTTP: a node with a root token
//! refuses requests without a valid token, issues scoped tokens, enforces their scope and
//! expiry, and forgets revoked ones.

use std::time::Duration;

use s2_sdk::{
    S2,
    error::{AppendError, ReadError, RequestError},
    types::{
        AccessTokenMatcher, AccessTokenScopeInput, AppendInput, AppendRecord, AppendRecordBatch,
        BasinMatcher, CommandRecord, CreateBasinInput, CreateStreamInput, IssueAccessTokenInput,
        ListAccessTokensInput, ListBasinsInput, ListStreamsInput, Operation,
        OperationGroupPermissions, ReadInput, ReadWritePermissions, S2DateTime, StreamMatcher,
    },
};
use serde_json::json;

use crate::{
    harness::{Backend, TestServer, basin_name, eventually},
    on_both_backends,
};

on_both_backends!(
    requests_without_a_valid_token_are_refused,
    issued_tokens_are_scoped_listed_and_revoked,
    command_records_need_their_own_operations,
    auto_prefixed_tokens_see_only_their_namespace,
    a_token_issues_only_narrower_tokens_and_expires,
    bad_token_requests_get_clear_errors,
);

const ROOT: &str = "root-secret-for-tests";

async fn start(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |c| c.root_token = Some(ROOT.into())).await
}

fn code_of(e: &RequestError) -> (u16, String) {
    match e {
        RequestError::Server(e) => (e.status.as_u16(), e.code.clone()),
        e => panic!("not a server error: {e:?}"),
    }
}

fn append_code(e: &AppendError) -> (u16, String) {
    match e {
        AppendError::Request(e) => code_of(e),
        e => panic!("not a request error: {e:?}"),
    }
}

fn read_code(e: &ReadError) -> (u16, String) {
    match e {
        ReadError::Request(e) => code_of(e),
        e => panic!("not a request error: {e:?}"),
    }
}

fn denied() -> (u16, String) {
    (403, "permission_denied".into())
}

fn unauthenticated() -> (u16, String) {
    (401, "authn".into())
}

fn records(bodies: &[&str]) -> AppendInput {
    AppendInput::new(
        AppendRecordBatch::try_from_iter(
            bodies
                .iter()
                .map(|b| AppendRecord::new(b.to_string()).unwrap()),
        )
        .unwrap(),
    )
}

async fn new_basin(s2: &S2) -> s2_sdk::types::BasinName {
    let name: s2_sdk::types::BasinName = basin_name().parse().unwrap();
    s2.create_basin(CreateBasinInput::new(name.clone()))
        .await
        .unwrap();
    name
}

async fn issue(s2: &S2, input: IssueAccessTokenInput) -> Result<String, RequestError> {
    s2.issue_access_token(input).await
}

fn stream_rw() -> OperationGroupPermissions {
    OperationGroupPermissions::new().with_stream(ReadWritePermissions::read_write())
}

async fn requests_without_a_valid_token_are_refused(backend: Backend) {
    let server = start(backend).await;
    let http = server.http();
    let get = |auth: Option<&str>| {
        let mut req = http.get(server.url("/v1/basins"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic cm9vdDpyb290"),
        Some("Bearer 00.0000000000000000000000000000000000000000000000000000000000000000"),
    ] {
        let resp = get(auth).await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "authn", "{auth:?}: {body}");
    }
    let resp = get(Some(&format!("Bearer {ROOT}"))).await.unwrap();
    assert_eq!(resp.status(), 200);

    let err = server
        .sdk()
        .list_basins(ListBasinsInput::new())
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), unauthenticated());
    // So do the metrics routes, before they look at their query.
    let resp = http.get(server.url("/v1/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // The Redis-Streams surface asks for the same tokens.
    let resp = http
        .post(server.url("/some-basin/streams/add"))
        .json(&json!({"key": "k", "values": {"f": "v"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The operator's endpoints stay open.
    let resp = http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

async fn issued_tokens_are_scoped_listed_and_revoked(backend: Backend) {
    let server = start(backend).await;
    let root = server.sdk_as(ROOT);
    let basin = new_basin(&root).await;
    let other_basin = new_basin(&root).await;
    root.basin(basin.clone())
        .create_stream(CreateStreamInput::new("hidden".parse().unwrap()))
        .await
        .unwrap();

    let scope = AccessTokenScopeInput::from_op_group_perms(stream_rw())
        .with_ops([Operation::ListStreams])
        .with_basins(BasinMatcher::Exact(basin.clone()))
        .with_streams(StreamMatcher::Prefix("logs/".parse().unwrap()));
    let secret = issue(
        &root,
        IssueAccessTokenInput::new("svc/writer".parse().unwrap(), scope.clone()),
    )
    .await
    .unwrap();
    let err = issue(
        &root,
        IssueAccessTokenInput::new("svc/writer".parse().unwrap(), scope),
    )
    .await
    .unwrap_err();
    assert_eq!(code_of(&err), (409, "resource_already_exists".into()));

    let writer = server.sdk_as(&secret);
    let in_basin = writer.basin(basin.clone());
    in_basin
        .create_stream(CreateStreamInput::new("logs/a".parse().unwrap()))
        .await
        .unwrap();
    let stream = in_basin.stream("logs/a".parse().unwrap());
    let ack = stream.append(records(&["one", "two"])).await.unwrap();
    assert_eq!(ack.end.seq_num, 2);
    let batch = stream.read(ReadInput::new()).await.unwrap();
    assert_eq!(batch.records.len(), 2);
    assert_eq!(stream.check_tail().await.unwrap().seq_num, 2);
    let listed = in_basin
        .list_streams(ListStreamsInput::new())
        .await
        .unwrap();
    let names: Vec<String> = listed.values.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["logs/a"]);

    let err = in_basin
        .create_stream(CreateStreamInput::new("hidden2".parse().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), denied());
    let err = in_basin
        .stream("hidden".parse().unwrap())
        .read(ReadInput::new())
        .await
        .unwrap_err();
    assert_eq!(read_code(&err), denied());
    let err = writer
        .basin(other_basin.clone())
        .stream("logs/a".parse().unwrap())
        .append(records(&["x"]))
        .await
        .unwrap_err();
    assert_eq!(append_code(&err), denied());
    let err = writer
        .list_basins(ListBasinsInput::new())
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), denied());
    // The same scope holds on the Redis-Streams surface.
    let add = |key: &str| {
        server
            .http()
            .post(server.url(&format!("/{basin}/streams/add")))
            .bearer_auth(&secret)
            .json(&json!({"key": key, "values": {"f": "v"}}))
    };
    let added = add("logs/a").send().await.unwrap();
    assert_eq!(added.status(), 200);
    let outside = add("hidden").send().await.unwrap();
    assert_eq!(outside.status(), 403);
    let err = issue(
        &writer,
        IssueAccessTokenInput::new(
            "svc/escalated".parse().unwrap(),
            AccessTokenScopeInput::from_ops([Operation::Read]),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(code_of(&err), denied());

    // Listing shows the scope, never a secret.
    let tokens = root
        .list_access_tokens(ListAccessTokensInput::new())
        .await
        .unwrap();
    let ids: Vec<String> = tokens.values.iter().map(|t| t.id.to_string()).collect();
    assert_eq!(ids, ["svc/writer"]);
    assert!(tokens.values[0].expires_at.is_none());
    let raw = server
        .http()
        .get(server.url("/v1/access-tokens"))
        .bearer_auth(ROOT)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains("\"svc/writer\""), "{raw}");
    assert!(!raw.contains(secret.split_once('.').unwrap().1), "{raw}");

    root.revoke_access_token("svc/writer".parse().unwrap())
        .await
        .unwrap();
    let err = stream.check_tail().await.unwrap_err();
    assert_eq!(read_code(&err), unauthenticated());
    let err = root
        .revoke_access_token("svc/writer".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), (404, "access_token_not_found".into()));
    assert!(
        root.list_access_tokens(ListAccessTokensInput::new())
            .await
            .unwrap()
            .values
            .is_empty()
    );
}

async fn command_records_need_their_own_operations(backend: Backend) {
    let server = start(backend).await;
    let root = server.sdk_as(ROOT);
    let basin = new_basin(&root).await;
    root.basin(basin.clone())
        .create_stream(CreateStreamInput::new("s".parse().unwrap()))
        .await
        .unwrap();
    let secret = issue(
        &root,
        IssueAccessTokenInput::new(
            "appender".parse().unwrap(),
            AccessTokenScopeInput::from_ops([Operation::Append, Operation::CheckTail])
                .with_basins(BasinMatcher::Prefix("".parse().unwrap()))
                .with_streams(StreamMatcher::Prefix("".parse().unwrap())),
        ),
    )
    .await
    .unwrap();
    let stream = server
        .sdk_as(&secret)
        .basin(basin.clone())
        .stream("s".parse().unwrap());
    stream.append(records(&["a"])).await.unwrap();
    for command in [
        CommandRecord::fence("mine".parse().unwrap()),
        CommandRecord::trim(1),
    ] {
        let batch = AppendRecordBatch::try_from_iter([
            AppendRecord::new("b").unwrap(),
            AppendRecord::from(command),
        ])
        .unwrap();
        let err = stream.append(AppendInput::new(batch)).await.unwrap_err();
        assert_eq!(append_code(&err), denied());
    }
    // Nothing of the refused batches was written.
    assert_eq!(stream.check_tail().await.unwrap().seq_num, 1);
}

async fn auto_prefixed_tokens_see_only_their_namespace(backend: Backend) {
    let server = start(backend).await;
    let root = server.sdk_as(ROOT);
    let basin = new_basin(&root).await;
    let secret = issue(
        &root,
        IssueAccessTokenInput::new(
            "tenant-1".parse().unwrap(),
            AccessTokenScopeInput::from_op_group_perms(stream_rw())
                .with_ops([Operation::ListStreams])
                .with_basins(BasinMatcher::Exact(basin.clone()))
                .with_streams(StreamMatcher::Prefix("tenant-1/".parse().unwrap())),
        )
        .with_auto_prefix_streams(true),
    )
    .await
    .unwrap();
    root.basin(basin.clone())
        .create_stream(CreateStreamInput::new("tenant-2/events".parse().unwrap()))
        .await
        .unwrap();

    let tenant = server.sdk_as(&secret).basin(basin.clone());
    let info = tenant
        .create_stream(CreateStreamInput::new("events".parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(info.name.to_string(), "events");
    tenant
        .stream("events".parse().unwrap())
        .append(records(&["hello"]))
        .await
        .unwrap();
    let listed = tenant.list_streams(ListStreamsInput::new()).await.unwrap();
    let names: Vec<String> = listed.values.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["events"]);

    let all = root
        .basin(basin.clone())
        .list_streams(ListStreamsInput::new())
        .await
        .unwrap();
    let names: Vec<String> = all.values.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["tenant-1/events", "tenant-2/events"]);
    let batch = root
        .basin(basin.clone())
        .stream("tenant-1/events".parse().unwrap())
        .read(ReadInput::new())
        .await
        .unwrap();
    assert_eq!(batch.records[0].body, "hello".as_bytes());
}

async fn a_token_issues_only_narrower_tokens_and_expires(backend: Backend) {
    let server = start(backend).await;
    let root = server.sdk_as(ROOT);
    let in_an_hour: S2DateTime = (time::OffsetDateTime::now_utc() + Duration::from_secs(3600))
        .replace_nanosecond(0)
        .unwrap()
        .try_into()
        .unwrap();
    let admin_secret = issue(
        &root,
        IssueAccessTokenInput::new(
            "team/admin".parse().unwrap(),
            AccessTokenScopeInput::from_op_group_perms(
                OperationGroupPermissions::new().with_account(ReadWritePermissions::read_write()),
            )
            .with_access_tokens(AccessTokenMatcher::Prefix("team/".parse().unwrap())),
        )
        .with_expires_at(in_an_hour),
    )
    .await
    .unwrap();
    let admin = server.sdk_as(&admin_secret);
    let narrower = || {
        AccessTokenScopeInput::from_ops([Operation::ListAccessTokens])
            .with_access_tokens(AccessTokenMatcher::Prefix("team/".parse().unwrap()))
    };
    issue(
        &admin,
        IssueAccessTokenInput::new("team/reader".parse().unwrap(), narrower()),
    )
    .await
    .unwrap();
    let listed = admin
        .list_access_tokens(ListAccessTokensInput::new())
        .await
        .unwrap();
    let reader = listed
        .values
        .iter()
        .find(|t| t.id.to_string() == "team/reader")
        .expect("listed");
    assert_eq!(
        reader.expires_at.map(|t| t.to_string()),
        Some(in_an_hour.to_string()),
        "a token's expiry defaults to its issuer's"
    );

    let later: S2DateTime = (time::OffsetDateTime::now_utc() + Duration::from_secs(7200))
        .try_into()
        .unwrap();
    for (id, input) in [
        (
            "team/longer",
            IssueAccessTokenInput::new("team/longer".parse().unwrap(), narrower())
                .with_expires_at(later),
        ),
        (
            "elsewhere",
            IssueAccessTokenInput::new("elsewhere".parse().unwrap(), narrower()),
        ),
        (
            "team/wider",
            IssueAccessTokenInput::new(
                "team/wider".parse().unwrap(),
                AccessTokenScopeInput::from_ops([Operation::Append]),
            ),
        ),
    ] {
        let err = issue(&admin, input).await.unwrap_err();
        assert_eq!(code_of(&err), denied(), "{id}");
    }

    let soon: S2DateTime = (time::OffsetDateTime::now_utc() + Duration::from_secs(1))
        .try_into()
        .unwrap();
    let brief = issue(
        &root,
        IssueAccessTokenInput::new(
            "brief".parse().unwrap(),
            AccessTokenScopeInput::from_ops([Operation::ListBasins]),
        )
        .with_expires_at(soon),
    )
    .await
    .unwrap();
    until_refused(&server.sdk_as(&brief), Duration::from_secs(10)).await;
}

/// Waits until `s2`'s token stops working, then checks that it is refused as `authn`.
async fn until_refused(s2: &S2, timeout: Duration) {
    let err = eventually(timeout, || async {
        s2.list_basins(ListBasinsInput::new()).await.err()
    })
    .await;
    assert_eq!(code_of(&err), unauthenticated());
}

async fn bad_token_requests_get_clear_errors(backend: Backend) {
    let server = start(backend).await;
    let http = server.http();
    let post = |body: serde_json::Value| {
        http.post(server.url("/v1/access-tokens"))
            .bearer_auth(ROOT)
            .json(&body)
            .send()
    };
    let cases = [
        (json!({"id": "t", "scope": {}}), 422, "invalid"),
        (
            json!({"id": "t", "scope": {"ops": ["read"], "streams": {"exact": "s"}}, "auto_prefix_streams": true}),
            422,
            "invalid",
        ),
        (
            json!({"id": "t", "scope": {"ops": ["read"]}, "expires_at": "2001-01-01T00:00:00Z"}),
            422,
            "invalid",
        ),
        (
            json!({"id": "x".repeat(97), "scope": {"ops": ["read"]}}),
            400,
            "bad_json",
        ),
        (
            json!({"id": "t", "scope": {"ops": ["fly"]}}),
            400,
            "bad_json",
        ),
    ];
    for (body, status, code) in cases {
        let resp = post(body.clone()).await.unwrap();
        assert_eq!(resp.status(), status, "{body}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(err["code"], code, "{body}: {err}");
    }
    let resp = http
        .delete(server.url("/v1/access-tokens/missing"))
        .bearer_auth(ROOT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // Nothing was issued by the refused requests.
    let listed: serde_json::Value = http
        .get(server.url("/v1/access-tokens"))
        .bearer_auth(ROOT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["access_tokens"], json!([]));
}

/// A revocation on one node reaches the others within the token cache's lifetime; a
/// token issued again under the same id works on them at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_other_nodes() {
    let a = start(Backend::Ministack).await;
    let b = a
        .start_peer_with(|c| c.root_token = Some(ROOT.into()))
        .await;
    let root_a = a.sdk_as(ROOT);
    let lister = || {
        IssueAccessTokenInput::new(
            "lister".parse().unwrap(),
            AccessTokenScopeInput::from_ops([Operation::ListBasins]),
        )
    };
    let secret = issue(&root_a, lister()).await.unwrap();
    let old_on_b = b.sdk_as(&secret);
    old_on_b.list_basins(ListBasinsInput::new()).await.unwrap();
    // Revoked and issued again under the same id: B, holding the old entry, accepts the
    // new secret and refuses the old one at once.
    root_a
        .revoke_access_token("lister".parse().unwrap())
        .await
        .unwrap();
    let secret = issue(&root_a, lister()).await.unwrap();
    let on_b = b.sdk_as(&secret);
    on_b.list_basins(ListBasinsInput::new()).await.unwrap();
    let err = old_on_b
        .list_basins(ListBasinsInput::new())
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), unauthenticated());
    root_a
        .revoke_access_token("lister".parse().unwrap())
        .await
        .unwrap();
    until_refused(
        &on_b,
        sluice::http::auth::TOKEN_CACHE_TTL + Duration::from_secs(10),
    )
    .await;
}
