//! The plate API (the Redis-Streams HTTP surface, `docs/streams-api.md`): one example per
//! wrapper endpoint and command endpoint, one per error code, with exact response bodies,
//! and the service's documented examples run verbatim with Node's `fetch`.
//!
//! Replies are Redis 7's, rendered as a RESP3 client sees them (checked against
//! redis-server 7.0).

use std::time::Duration;

use reqwest::header::AUTHORIZATION;
use s2_sdk::types::{
    AccessTokenScopeInput, BasinMatcher, CreateBasinInput, IssueAccessTokenInput,
    OperationGroupPermissions, ReadWritePermissions,
};
use serde_json::{Value, json};

use crate::{
    harness::{Backend, TestServer, basin_name},
    on_both_backends,
};

on_both_backends!(
    add_returns_the_id,
    add_defaults_to_a_generated_id_and_sorts_fields,
    length_counts_entries,
    range_reads_forward,
    reverse_reads_backward,
    read_answers_a_map_keyed_by_stream,
    read_times_out_with_null,
    trim_by_max_length,
    delete_removes_entries,
    info_shows_the_stream_and_its_groups,
    groups_create_read_ack_and_pending,
    groups_claim_and_autoclaim,
    command_runs_any_stream_command,
    key_command_puts_the_key_first,
    keys_in_paths_are_percent_decoded,
    invalid_json_is_refused,
    invalid_request_is_refused,
    invalid_query_is_refused,
    invalid_path_value_is_refused,
    unsupported_commands_are_refused,
    unknown_plates_and_routes_are_not_found,
    redis_errors_keep_their_text,
    nogroup_is_404,
    busygroup_is_409,
    tokens_are_required_when_on,
    tokens_are_scoped,
    documented_examples_run_verbatim,
);

const ROOT: &str = "root-secret-for-plate-tests";

/// A node with one plate (basin), and a client of its plate API.
struct Plate {
    server: TestServer,
    client: reqwest::Client,
    name: String,
    token: Option<String>,
}

impl Plate {
    async fn start(backend: Backend) -> Self {
        Self::on(TestServer::start(backend).await, None).await
    }

    /// A node with a root token; requests carry `token` (none: no `Authorization`).
    async fn with_tokens(backend: Backend) -> Self {
        let server = TestServer::start_with(backend, |c| c.root_token = Some(ROOT.into())).await;
        Self::on(server, Some(ROOT.into())).await
    }

    async fn on(server: TestServer, token: Option<String>) -> Self {
        let name = basin_name();
        server
            .sdk_as(token.as_deref().unwrap_or("ignored"))
            .create_basin(CreateBasinInput::new(name.parse().unwrap()))
            .await
            .expect("create basin");
        Self {
            client: server.http(),
            server,
            name,
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(&format!("/{}/streams/{path}", self.name))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let req = match &self.token {
            Some(t) => req.header(AUTHORIZATION, t),
            None => req,
        };
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let body = resp.bytes().await.expect("body");
        let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "status {status}, body not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        (status, json)
    }

    /// POSTs a JSON body (with `content-type: application/json`).
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.client.post(self.url(path)).json(&body))
            .await
    }

    /// POSTs raw bytes, with no `content-type`.
    async fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        self.send(self.client.post(self.url(path)).body(body.to_owned()))
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(self.url(path))).await
    }

    /// Runs a command through the command endpoint and returns its result.
    async fn run(&self, command: &str, args: Value) -> Value {
        let (status, body) = self
            .post("command", json!({"command": command, "args": args}))
            .await;
        assert_eq!(status, 200, "{command} {args}: {body}");
        body["data"]["result"].clone()
    }

    async fn add(&self, key: &str, id: &str, fields: Value) -> Value {
        let mut args = vec![json!(key), json!(id)];
        args.extend(fields.as_array().unwrap().iter().cloned());
        self.run("XADD", Value::Array(args)).await
    }
}

fn ok(result: Value) -> (u16, Value) {
    (200, json!({"ok": true, "data": {"result": result}}))
}

fn err(status: u16, code: &str, message: &str) -> (u16, Value) {
    (
        status,
        json!({"ok": false, "error": {"code": code, "message": message}}),
    )
}

fn is_id(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.split_once('-')
            .is_some_and(|(ms, seq)| ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok())
    })
}

/// Two entries in `events`: 1-1 {type: signup, user_id: 123}, 2-1 {type: login, user_id: 7}.
async fn two_events(p: &Plate) {
    assert_eq!(
        p.post(
            "add",
            json!({"key": "events", "id": "1-1", "values": {"type": "signup", "user_id": 123}})
        )
        .await,
        ok(json!("1-1"))
    );
    assert_eq!(
        p.add("events", "2-1", json!(["type", "login", "user_id", "7"]))
            .await,
        json!("2-1")
    );
}

fn signup() -> Value {
    json!(["1-1", ["type", "signup", "user_id", "123"]])
}

fn login() -> Value {
    json!(["2-1", ["type", "login", "user_id", "7"]])
}

// --- the wrapper endpoints -------------------------------------------------------------

async fn add_returns_the_id(backend: Backend) {
    let p = Plate::start(backend).await;
    two_events(&p).await;
    // `<ms>-*` as Redis: the next sequence number in that millisecond.
    assert_eq!(
        p.post(
            "add",
            json!({"key": "events", "id": "2-*", "values": {"a": "b"}})
        )
        .await,
        ok(json!("2-2"))
    );
}

async fn add_defaults_to_a_generated_id_and_sorts_fields(backend: Backend) {
    let p = Plate::start(backend).await;
    // No content-type: the body is JSON all the same.
    let (status, body) = p
        .post_raw(
            "add",
            r#"{"key":"k","values":{"zeta":"z","alpha":{"a":1},"num":1.5,"yes":true,"nil":null}}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["result"].clone();
    assert!(is_id(&id), "{body}");
    assert_eq!(
        p.get("range/k").await,
        ok(json!([[
            id,
            [
                "alpha",
                r#"{"a":1}"#,
                "nil",
                "null",
                "num",
                "1.5",
                "yes",
                "true",
                "zeta",
                "z"
            ]
        ]]))
    );
}

async fn length_counts_entries(backend: Backend) {
    let p = Plate::start(backend).await;
    assert_eq!(p.get("length/events").await, ok(json!(0)));
    two_events(&p).await;
    assert_eq!(p.get("length/events").await, ok(json!(2)));
}

async fn range_reads_forward(backend: Backend) {
    let p = Plate::start(backend).await;
    two_events(&p).await;
    assert_eq!(p.get("range/events").await, ok(json!([signup(), login()])));
    assert_eq!(
        p.get("range/events?start=-&end=%2B&count=1").await,
        ok(json!([signup()]))
    );
    // A bare `+` (which a query decodes as a space) is `+` too.
    assert_eq!(
        p.get("range/events?start=-&end=+").await,
        ok(json!([signup(), login()]))
    );
    assert_eq!(
        p.get("range/events?start=(1-1&count=").await,
        ok(json!([login()]))
    );
    assert_eq!(p.get("range/missing").await, ok(json!([])));
}

async fn reverse_reads_backward(backend: Backend) {
    let p = Plate::start(backend).await;
    two_events(&p).await;
    assert_eq!(
        p.get("reverse/events").await,
        ok(json!([login(), signup()]))
    );
    assert_eq!(p.get("reverse/events?count=1").await, ok(json!([login()])));
    assert_eq!(
        p.get("reverse/events?start=1-1&end=-").await,
        ok(json!([signup()]))
    );
}

async fn read_answers_a_map_keyed_by_stream(backend: Backend) {
    let p = Plate::start(backend).await;
    two_events(&p).await;
    assert_eq!(
        p.post(
            "read",
            json!({"streams": [{"key": "events", "id": "0"}, {"key": "audit", "id": "0"}], "count": 25})
        )
        .await,
        ok(json!({"events": [signup(), login()]}))
    );
    assert_eq!(
        p.post(
            "read",
            json!({"streams": [{"key": "events", "id": "1-1"}], "count": 1})
        )
        .await,
        ok(json!({"events": [login()]}))
    );
    // A blocked read wakes on an add.
    let waiter = {
        let req = p
            .client
            .post(p.url("read"))
            .json(&json!({"streams": [{"key": "audit"}], "block_ms": 20_000}));
        tokio::spawn(async move { req.send().await.unwrap().json::<Value>().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        p.add("audit", "5-1", json!(["who", "me"])).await,
        json!("5-1")
    );
    assert_eq!(
        waiter.await.unwrap(),
        ok(json!({"audit": [["5-1", ["who", "me"]]]})).1
    );
}

async fn read_times_out_with_null(backend: Backend) {
    let p = Plate::start(backend).await;
    two_events(&p).await;
    assert_eq!(
        p.post(
            "read",
            json!({"streams": [{"key": "events", "id": "$"}], "block_ms": 200})
        )
        .await,
        ok(Value::Null)
    );
    // Without BLOCK and nothing new: null too.
    assert_eq!(
        p.post("read", json!({"streams": [{"key": "events", "id": "2-1"}]}))
            .await,
        ok(Value::Null)
    );
}

async fn trim_by_max_length(backend: Backend) {
    let p = Plate::start(backend).await;
    two_events(&p).await;
    assert_eq!(
        p.post(
            "trim",
            json!({"key": "events", "strategy": "maxlen", "threshold": 1000, "approximate": true})
        )
        .await,
        ok(json!(0))
    );
    assert_eq!(
        p.post(
            "trim",
            json!({"key": "events", "strategy": "maxlen", "threshold": 1})
        )
        .await,
        ok(json!(1))
    );
    assert_eq!(p.get("range/events").await, ok(json!([login()])));
    assert_eq!(
        p.post(
            "trim",
            json!({"key": "events", "strategy": "minid", "threshold": "3-0"})
        )
        .await,
        ok(json!(1))
    );
    assert_eq!(p.get("length/events").await, ok(json!(0)));
}

async fn delete_removes_entries(backend: Backend) {
    let p = Plate::start(backend).await;
    two_events(&p).await;
    assert_eq!(
        p.post("delete", json!({"key": "events", "ids": ["1-1", "9-9"]}))
            .await,
        ok(json!(1))
    );
    assert_eq!(p.get("length/events").await, ok(json!(1)));
    assert_eq!(p.get("range/events").await, ok(json!([login()])));
}

async fn info_shows_the_stream_and_its_groups(backend: Backend) {
    let p = Plate::start(backend).await;
    two_events(&p).await;
    let (status, body) = p.get("info/events").await;
    assert_eq!(status, 200, "{body}");
    let info = &body["data"]["result"];
    for (field, value) in [
        ("length", json!(2)),
        ("last-generated-id", json!("2-1")),
        ("max-deleted-entry-id", json!("0-0")),
        ("entries-added", json!(2)),
        ("recorded-first-entry-id", json!("1-1")),
        ("groups", json!(0)),
        ("first-entry", signup()),
        ("last-entry", login()),
    ] {
        assert_eq!(info[field], value, "{field} in {info}");
    }
    assert_eq!(p.get("info/events?section=stream").await.1, body);
    assert_eq!(p.get("info/events?section=groups").await, ok(json!([])));
    assert_eq!(
        p.post(
            "groups/create",
            json!({"key": "events", "group": "workers"})
        )
        .await,
        ok(json!("OK"))
    );
    assert_eq!(
        p.get("info/events?section=groups").await,
        ok(json!([{
            "name": "workers", "consumers": 0, "pending": 0,
            "last-delivered-id": "2-1", "entries-read": null, "lag": 0
        }]))
    );
    assert_eq!(
        p.get("info/events?section=consumers&group=workers").await,
        ok(json!([]))
    );
    assert_eq!(
        p.get("info/missing").await,
        err(400, "ERR", "ERR no such key")
    );
}

async fn groups_create_read_ack_and_pending(backend: Backend) {
    let p = Plate::start(backend).await;
    assert_eq!(
        p.post(
            "groups/create",
            json!({"key": "events", "group": "workers", "id": "$", "mkstream": true})
        )
        .await,
        ok(json!("OK"))
    );
    let read = json!({"group": "workers", "consumer": "worker-1", "streams": [{"key": "events"}], "count": 10});
    assert_eq!(p.post("groups/read", read.clone()).await, ok(Value::Null));
    two_events(&p).await;
    assert_eq!(
        p.post("groups/read", read.clone()).await,
        ok(json!({"events": [signup(), login()]}))
    );
    assert_eq!(
        p.get("groups/pending/events/workers").await,
        ok(json!([2, "1-1", "2-1", [["worker-1", "2"]]]))
    );
    let (status, body) = p
        .get("groups/pending/events/workers?start=-&consumer=worker-1")
        .await;
    assert_eq!(status, 200, "{body}");
    let pending = body["data"]["result"].as_array().unwrap().clone();
    assert_eq!(pending.len(), 2, "{body}");
    for (entry, id) in pending.iter().zip(["1-1", "2-1"]) {
        assert_eq!(entry[0], json!(id), "{body}");
        assert_eq!(entry[1], json!("worker-1"), "{body}");
        assert!(entry[2].is_u64(), "idle time: {body}");
        assert_eq!(entry[3], json!(1), "deliveries: {body}");
    }
    assert_eq!(
        p.post(
            "groups/ack",
            json!({"key": "events", "group": "workers", "ids": ["1-1", "1-1", "7-7"]})
        )
        .await,
        ok(json!(1))
    );
    assert_eq!(
        p.get("groups/pending/events/workers").await,
        ok(json!([1, "2-1", "2-1", [["worker-1", "1"]]]))
    );
    // Re-reading its own history (id 0) with NOACK.
    assert_eq!(
        p.post(
            "groups/read",
            json!({"group": "workers", "consumer": "worker-1", "streams": [{"key": "events", "id": "0"}], "noack": true})
        )
        .await,
        ok(json!({"events": [login()]}))
    );
}

async fn groups_claim_and_autoclaim(backend: Backend) {
    let p = Plate::start(backend).await;
    two_events(&p).await;
    assert_eq!(
        p.post(
            "groups/create",
            json!({"key": "events", "group": "workers", "id": "0"})
        )
        .await,
        ok(json!("OK"))
    );
    p.post(
        "groups/read",
        json!({"group": "workers", "consumer": "worker-1", "streams": [{"key": "events"}]}),
    )
    .await;
    assert_eq!(
        p.post(
            "groups/claim",
            json!({"key": "events", "group": "workers", "consumer": "worker-2", "min_idle_ms": 0, "ids": ["2-1"]})
        )
        .await,
        ok(json!([login()]))
    );
    // Nothing has been idle an hour.
    assert_eq!(
        p.post(
            "groups/claim",
            json!({"key": "events", "group": "workers", "consumer": "worker-3", "min_idle_ms": 3_600_000u64, "ids": ["1-1"]})
        )
        .await,
        ok(json!([]))
    );
    assert_eq!(
        p.post(
            "groups/autoclaim",
            json!({"key": "events", "group": "workers", "consumer": "worker-3", "min_idle_ms": 0, "start": "0-0", "count": 10})
        )
        .await,
        ok(json!(["0-0", [signup(), login()], []]))
    );
    assert_eq!(
        p.get("groups/pending/events/workers").await,
        ok(json!([2, "1-1", "2-1", [["worker-3", "2"]]]))
    );
}

async fn command_runs_any_stream_command(backend: Backend) {
    let p = Plate::start(backend).await;
    let (status, body) = p
        .post(
            "command",
            json!({"command": "XADD", "args": ["events", "*", "type", "signup"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(is_id(&body["data"]["result"]), "{body}");
    // Lower case, numbers and booleans as their text, every option Redis has.
    assert_eq!(
        p.post(
            "command",
            json!({"command": "xadd", "args": ["events", "NOMKSTREAM", "MAXLEN", "~", 1000, "LIMIT", 100, "*", "n", 5, "b", true]})
        )
        .await
        .0,
        200
    );
    assert_eq!(p.run("XLEN", json!(["events"])).await, json!(2));
    assert_eq!(
        p.post(
            "command",
            json!({"command": "XGROUP", "args": ["CREATE", "events", "g", "$"]})
        )
        .await,
        ok(json!("OK"))
    );
    assert_eq!(
        p.post(
            "command",
            json!({"command": "XGROUP", "args": ["CREATECONSUMER", "events", "g", "c1"]})
        )
        .await,
        ok(json!(1))
    );
    assert_eq!(
        p.post(
            "command",
            json!({"command": "XGROUP", "args": ["SETID", "events", "g", "0"]})
        )
        .await,
        ok(json!("OK"))
    );
}

async fn key_command_puts_the_key_first(backend: Backend) {
    let p = Plate::start(backend).await;
    two_events(&p).await;
    assert_eq!(
        p.post("events/command", json!({"command": "XLEN"})).await,
        ok(json!(2))
    );
    assert_eq!(
        p.post(
            "events/command",
            json!({"command": "XRANGE", "args": ["-", "+", "COUNT", 1]})
        )
        .await,
        ok(json!([signup()]))
    );
    assert_eq!(
        p.post(
            "audit/command",
            json!({"command": "XADD", "args": ["3-0", "k", "v"]})
        )
        .await,
        ok(json!("3-0"))
    );
}

async fn keys_in_paths_are_percent_decoded(backend: Backend) {
    let p = Plate::start(backend).await;
    assert_eq!(
        p.post(
            "add",
            json!({"key": "a/b c", "id": "1-0", "values": {"f": "v"}})
        )
        .await,
        ok(json!("1-0"))
    );
    assert_eq!(p.get("length/a%2Fb%20c").await, ok(json!(1)));
    assert_eq!(
        p.post("a%2Fb%20c/command", json!({"command": "XLEN"}))
            .await,
        ok(json!(1))
    );
    assert_eq!(
        p.post("read", json!({"streams": [{"key": "a/b c", "id": "0"}]}))
            .await,
        ok(json!({"a/b c": [["1-0", ["f", "v"]]]}))
    );
}

// --- errors ------------------------------------------------------------------------------

async fn invalid_json_is_refused(backend: Backend) {
    let p = Plate::start(backend).await;
    let invalid = |message: &str| err(400, "invalid_json", message);
    assert_eq!(
        p.post_raw("add", "{not json").await,
        invalid("key must be a string at line 1 column 2")
    );
    assert_eq!(
        p.post_raw("add", "").await,
        invalid("EOF while parsing a value at line 1 column 0")
    );
    assert_eq!(
        p.post_raw("add", r#"{"key":"k","values":{"f":"v"},"extra":1}"#)
            .await,
        invalid("unknown field `extra`, expected one of `key`, `id`, `values` at line 1 column 37")
    );
    assert_eq!(
        p.post_raw("read", r#"{"streams":[{"key":"k","idd":"0"}]}"#)
            .await,
        invalid("unknown field `idd`, expected `key` or `id` at line 1 column 28")
    );
    assert_eq!(
        p.post_raw("add", r#"{"key":1,"values":{"f":"v"}}"#).await,
        invalid("invalid type: integer `1`, expected a string at line 1 column 8")
    );
    assert_eq!(
        p.post_raw(
            "trim",
            r#"{"key":"k","strategy":"maxlen","threshold":1,"approximate":"yes"}"#
        )
        .await,
        invalid("invalid type: string \"yes\", expected a boolean at line 1 column 64")
    );
    assert_eq!(
        p.post_raw("command", r#"{"command":"XLEN","args":[["nested"]]}"#)
            .await,
        invalid("data did not match any variant of untagged enum Arg at line 1 column 37")
    );
}

async fn invalid_request_is_refused(backend: Backend) {
    let p = Plate::start(backend).await;
    let required = |field: &str| err(400, "invalid_request", &format!("`{field}` is required"));
    assert_eq!(
        p.post("add", json!({"values": {"f": "v"}})).await,
        required("key")
    );
    assert_eq!(
        p.post("add", json!({"key": "", "values": {"f": "v"}}))
            .await,
        required("key")
    );
    assert_eq!(
        p.post("add", json!({"key": "k", "values": {}})).await,
        err(
            400,
            "invalid_request",
            "`values` must have at least one field"
        )
    );
    assert_eq!(
        p.post("read", json!({"streams": []})).await,
        err(
            400,
            "invalid_request",
            "`streams` must name at least one key"
        )
    );
    assert_eq!(
        p.post("read", json!({"streams": [{"id": "0"}]})).await,
        required("streams[].key")
    );
    assert_eq!(
        p.post(
            "trim",
            json!({"key": "k", "strategy": "size", "threshold": 1})
        )
        .await,
        err(
            400,
            "invalid_request",
            "`strategy` must be \"maxlen\" or \"minid\", not \"size\""
        )
    );
    assert_eq!(
        p.post("trim", json!({"key": "k", "strategy": "maxlen"}))
            .await,
        required("threshold")
    );
    assert_eq!(
        p.post("delete", json!({"key": "k", "ids": []})).await,
        err(400, "invalid_request", "`ids` must name at least one id")
    );
    assert_eq!(
        p.post("groups/create", json!({"key": "k"})).await,
        required("group")
    );
    assert_eq!(
        p.post(
            "groups/read",
            json!({"group": "g", "streams": [{"key": "k"}]})
        )
        .await,
        required("consumer")
    );
    assert_eq!(
        p.post("groups/ack", json!({"key": "k", "group": "g"}))
            .await,
        err(400, "invalid_request", "`ids` must name at least one id")
    );
    assert_eq!(
        p.post(
            "groups/claim",
            json!({"key": "k", "group": "g", "consumer": "c", "ids": ["1-1"]})
        )
        .await,
        required("min_idle_ms")
    );
    assert_eq!(
        p.post(
            "groups/autoclaim",
            json!({"key": "k", "group": "g", "consumer": "c", "min_idle_ms": 0})
        )
        .await,
        required("start")
    );
    assert_eq!(
        p.post("command", json!({"args": ["k"]})).await,
        required("command")
    );
}

async fn invalid_query_is_refused(backend: Backend) {
    let p = Plate::start(backend).await;
    assert_eq!(
        p.get("range/k?count=ten").await,
        err(
            400,
            "invalid_query",
            "`count` must be an integer, not \"ten\""
        )
    );
    assert_eq!(
        p.get("reverse/k?limit=1").await,
        err(
            400,
            "invalid_query",
            "Failed to deserialize query string: limit: unknown field `limit`, expected one of `start`, `end`, `count`"
        )
    );
    assert_eq!(
        p.get("info/k?section=everything").await,
        err(
            400,
            "invalid_query",
            "`section` must be stream, groups or consumers, not \"everything\""
        )
    );
    assert_eq!(
        p.get("info/k?section=consumers").await,
        err(400, "invalid_query", "`section=consumers` needs `group`")
    );
    assert_eq!(
        p.get("groups/pending/k/g?count=5").await,
        err(
            400,
            "invalid_query",
            "`end`, `count` and `consumer` need `start` (the extended form)"
        )
    );
}

async fn invalid_path_value_is_refused(backend: Backend) {
    let p = Plate::start(backend).await;
    assert_eq!(
        p.get("length/%FF").await,
        err(400, "invalid_path_value", "Invalid UTF-8 in `key`")
    );
    let (status, body) = p
        .send(p.client.get(p.server.url("/Not_A_Basin/streams/length/k")))
        .await;
    assert_eq!(
        (status, body),
        err(
            400,
            "invalid_path_value",
            "plate \"Not_A_Basin\" is not a valid basin name: basin name must begin with a lowercase letter or number"
        )
    );
}

async fn unsupported_commands_are_refused(backend: Backend) {
    let p = Plate::start(backend).await;
    let allowed = "allowed: XADD XLEN XRANGE XREVRANGE XREAD XTRIM XDEL XINFO XGROUP \
                   XREADGROUP XACK XPENDING XCLAIM XAUTOCLAIM";
    assert_eq!(
        p.post("command", json!({"command": "GET", "args": ["k"]}))
            .await,
        err(
            400,
            "unsupported_command",
            &format!("unsupported command 'GET'; {allowed}")
        )
    );
    assert_eq!(
        p.post("k/command", json!({"command": "flushall"})).await,
        err(
            400,
            "unsupported_command",
            &format!("unsupported command 'flushall'; {allowed}")
        )
    );
}

async fn unknown_plates_and_routes_are_not_found(backend: Backend) {
    let p = Plate::start(backend).await;
    let other = p.server.url(&format!("/{}/streams/length/k", basin_name()));
    let (status, body) = p.send(p.client.get(other)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["ok"], json!(false));
    assert_eq!(body["error"]["code"], json!("not_found"));
    // Even for a command that fails before it would look at the plate.
    let other = p.server.url(&format!("/{}/streams/command", basin_name()));
    let (status, body) = p
        .send(
            p.client
                .post(other)
                .json(&json!({"command": "XADD", "args": ["k"]})),
        )
        .await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    assert_eq!(
        p.get("no/such/route").await,
        err(404, "not_found", "no such route")
    );
    assert_eq!(
        p.get("add").await,
        err(
            405,
            "method_not_allowed",
            "this route does not take this method"
        )
    );
}

async fn redis_errors_keep_their_text(backend: Backend) {
    let p = Plate::start(backend).await;
    two_events(&p).await;
    assert_eq!(
        p.post(
            "add",
            json!({"key": "events", "id": "2-1", "values": {"f": "v"}})
        )
        .await,
        err(
            400,
            "ERR",
            "ERR The ID specified in XADD is equal or smaller than the target stream top item"
        )
    );
    assert_eq!(
        p.post(
            "add",
            json!({"key": "new", "id": "0-0", "values": {"f": "v"}})
        )
        .await,
        err(
            400,
            "ERR",
            "ERR The ID specified in XADD must be greater than 0-0"
        )
    );
    assert_eq!(
        p.post("command", json!({"command": "XADD", "args": ["k"]}))
            .await,
        err(
            400,
            "ERR",
            "ERR wrong number of arguments for 'xadd' command"
        )
    );
    assert_eq!(
        p.get("range/events?start=nope").await,
        err(
            400,
            "ERR",
            "ERR Invalid stream ID specified as stream command argument"
        )
    );
}

async fn nogroup_is_404(backend: Backend) {
    let p = Plate::start(backend).await;
    two_events(&p).await;
    assert_eq!(
        p.post(
            "groups/read",
            json!({"group": "nogroup", "consumer": "c", "streams": [{"key": "events"}]})
        )
        .await,
        err(
            404,
            "NOGROUP",
            "NOGROUP No such key 'events' or consumer group 'nogroup' in XREADGROUP with GROUP option"
        )
    );
}

async fn busygroup_is_409(backend: Backend) {
    let p = Plate::start(backend).await;
    let create = json!({"key": "events", "group": "workers", "mkstream": true});
    assert_eq!(
        p.post("groups/create", create.clone()).await,
        ok(json!("OK"))
    );
    assert_eq!(
        p.post("groups/create", create).await,
        err(
            409,
            "BUSYGROUP",
            "BUSYGROUP Consumer Group name already exists"
        )
    );
}

async fn tokens_are_required_when_on(backend: Backend) {
    let mut p = Plate::with_tokens(backend).await;
    // A request that passes authentication fails on its body: the bare form and
    // `Bearer` both work.
    let past_auth = err(400, "invalid_request", "`key` is required");
    assert_eq!(
        p.post("add", json!({"values": {"f": "v"}})).await,
        past_auth
    );
    p.token = Some(format!("Bearer {ROOT}"));
    assert_eq!(
        p.post("add", json!({"values": {"f": "v"}})).await,
        past_auth
    );
    p.token = None;
    assert_eq!(
        p.post("add", json!({"values": {"f": "v"}})).await,
        err(
            401,
            "missing_authorization",
            "an access token is required: `Authorization: <token>`"
        )
    );
    assert_eq!(
        p.get("length/k").await,
        err(
            401,
            "missing_authorization",
            "an access token is required: `Authorization: <token>`"
        )
    );
    for bad in ["not-a-token", "Bearer not-a-token", "6162.00"] {
        p.token = Some(bad.into());
        assert_eq!(
            p.get("length/k").await,
            err(401, "invalid_authorization", "invalid access token"),
            "{bad}"
        );
    }
    // The S2 surface still wants `Bearer`.
    let resp = p
        .client
        .get(p.server.url("/v1/basins"))
        .header(AUTHORIZATION, ROOT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

async fn tokens_are_scoped(backend: Backend) {
    let mut p = Plate::with_tokens(backend).await;
    let root = p.server.sdk_as(ROOT);
    let elsewhere: s2_sdk::types::BasinName = basin_name().parse().unwrap();
    let stream_rw =
        OperationGroupPermissions::new().with_stream(ReadWritePermissions::read_write());
    let secret = root
        .issue_access_token(IssueAccessTokenInput::new(
            "plate/other".parse().unwrap(),
            AccessTokenScopeInput::from_op_group_perms(stream_rw)
                .with_basins(BasinMatcher::Exact(elsewhere)),
        ))
        .await
        .unwrap();
    p.token = Some(secret);
    let (status, body) = p.get("length/k").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["ok"], json!(false));
    assert_eq!(body["error"]["code"], json!("permission_denied"));
    assert!(body["error"]["message"].is_string(), "{body}");
}

// --- the service's documented examples ---------------------------------------------------

/// The examples of `streams-api-docs.txt`, each verbatim but for `[id]` and `[base-url]`,
/// in its own block so that their `const`s do not clash; `console.log` prints JSON.
const EXAMPLES: &[&str] = &[
    r#"const plateId = "[id]";
const apiKey = "your-api-key";
const baseUrl = "[base-url]";
const response = await fetch(`${baseUrl}/$[id]/streams/add`, {
method: "POST",
headers: {
"Authorization": apiKey,
"Content-Type": "application/json"
},
body: JSON.stringify({
key: "events",
values: {
type: "signup",
user_id: 123
}
})
});
const data = await response.json();
console.log(data);"#,
    r#"const plateId = "[id]";
const apiKey = "your-api-key";
const baseUrl = "[base-url]";
const response = await fetch(`${baseUrl}/$[id]/streams/length/events`, {
method: "GET",
headers: {
"Authorization": apiKey
}
});
const data = await response.json();
console.log(data);"#,
    r#"const plateId = "[id]";
const apiKey = "your-api-key";
const baseUrl = "[base-url]";
const params = new URLSearchParams({
start: "-",
end: "+",
count: "10"
});
const response = await fetch(`${baseUrl}/$[id]/streams/range/events?${params}`, {
method: "GET",
headers: {
"Authorization": apiKey
}
});
const data = await response.json();
console.log(data);"#,
    r#"const plateId = "[id]";
const apiKey = "your-api-key";
const baseUrl = "[base-url]";
const response = await fetch(`${baseUrl}/$[id]/streams/read`, {
method: "POST",
headers: {
"Authorization": apiKey,
"Content-Type": "application/json"
},
body: JSON.stringify({
streams: [
{ key: "events", id: "$" },
{ key: "audit", id: "$" }
],
block_ms: 5000,
count: 25
})
});
const data = await response.json();
console.log(data);"#,
    r#"const plateId = "[id]";
const apiKey = "your-api-key";
const baseUrl = "[base-url]";
const response = await fetch(`${baseUrl}/$[id]/streams/trim`, {
method: "POST",
headers: {
"Authorization": apiKey,
"Content-Type": "application/json"
},
body: JSON.stringify({
key: "events",
strategy: "maxlen",
threshold: 1000,
approximate: true
})
});
const data = await response.json();
console.log(data);"#,
    r#"const plateId = "[id]";
const apiKey = "your-api-key";
const baseUrl = "[base-url]";
const response = await fetch(`${baseUrl}/$[id]/streams/groups/create`, {
method: "POST",
headers: {
"Authorization": apiKey,
"Content-Type": "application/json"
},
body: JSON.stringify({
key: "events",
group: "workers",
id: "$",
mkstream: true
})
});
const data = await response.json();
console.log(data);"#,
    r#"const plateId = "[id]";
const apiKey = "your-api-key";
const baseUrl = "[base-url]";
const response = await fetch(`${baseUrl}/$[id]/streams/groups/read`, {
method: "POST",
headers: {
"Authorization": apiKey,
"Content-Type": "application/json"
},
body: JSON.stringify({
group: "workers",
consumer: "worker-1",
streams: [
{ key: "events", id: ">" }
],
count: 10
})
});
const data = await response.json();
console.log(data);"#,
    r#"const plateId = "[id]";
const apiKey = "your-api-key";
const baseUrl = "[base-url]";
const response = await fetch(`${baseUrl}/$[id]/streams/command`, {
method: "POST",
headers: {
"Authorization": apiKey,
"Content-Type": "application/json"
},
body: JSON.stringify({
command: "XADD",
args: ["events", "*", "type", "signup"]
})
});
const data = await response.json();
console.log(data);"#,
    r#"const plateId = "[id]";
const apiKey = "your-api-key";
const baseUrl = "[base-url]";
const response = await fetch(`${baseUrl}/$[id]/streams/events/command`, {
method: "POST",
headers: {
"Authorization": apiKey,
"Content-Type": "application/json"
},
body: JSON.stringify({
command: "XLEN"
})
});
const data = await response.json();
console.log(data);"#,
];

/// Runs the examples in order with `node`; one JSON line per example.
async fn run_examples(base_url: &str, plate: &str) -> Option<Vec<Value>> {
    let mut script =
        String::from("console.log = (v) => process.stdout.write(JSON.stringify(v) + \"\\n\");\n");
    for example in EXAMPLES {
        script.push_str("{\n");
        script.push_str(
            &example
                .replace("[base-url]", base_url)
                .replace("[id]", plate),
        );
        script.push_str("\n}\n");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("examples.mjs");
    std::fs::write(&path, script).unwrap();
    let out = match tokio::process::Command::new("node")
        .arg(&path)
        .output()
        .await
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running node: {e}"),
    };
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

async fn documented_examples_run_verbatim(backend: Backend) {
    let p = Plate::start(backend).await;
    let Some(out) = run_examples(&p.server.url(""), &p.name).await else {
        eprintln!("skipped: `node` is not installed");
        return;
    };
    let ok = |result: Value| ok(result).1;
    assert_eq!(out.len(), EXAMPLES.len(), "{out:?}");
    let added = out[0]["data"]["result"].clone();
    assert!(is_id(&added), "add: {}", out[0]);
    assert_eq!(out[0], ok(added.clone()));
    assert_eq!(out[1], ok(json!(1)), "length");
    assert_eq!(
        out[2],
        ok(json!([[added, ["type", "signup", "user_id", "123"]]])),
        "range"
    );
    assert_eq!(out[3], ok(Value::Null), "read: nothing new within 5 s");
    assert_eq!(out[4], ok(json!(0)), "trim: under 1000 entries");
    assert_eq!(out[5], ok(json!("OK")), "groups/create");
    assert_eq!(out[6], ok(Value::Null), "groups/read: nothing after `$`");
    assert!(is_id(&out[7]["data"]["result"]), "command: {}", out[7]);
    assert_eq!(out[8], ok(json!(2)), "key command");
}
