//! A thin JSON-over-HTTP client for asserting on exact statuses and bodies.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::TestServer;

pub struct Api {
    client: reqwest::Client,
    base: String,
    basin: Option<String>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts an S2 error with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        let json = self.json();
        assert_eq!(
            (self.status.as_u16(), json["code"].as_str()),
            (status, Some(code)),
            "unexpected reply: {json}"
        );
        assert!(json["message"].is_string(), "no message: {json}");
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        if self.body.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }
}

impl Api {
    pub fn new(server: &TestServer) -> Self {
        Self {
            client: server.http(),
            base: server.url("/v1"),
            basin: None,
        }
    }

    /// A client of the node at `endpoint` (`http://host:port`), such as one in another
    /// process.
    pub fn at(endpoint: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(90))
                .build()
                .unwrap(),
            base: format!("{endpoint}/v1"),
            basin: None,
        }
    }

    /// A client of a plate's Redis-Streams surface (`/{basin}/streams`).
    pub fn plate(server: &TestServer, basin: &str) -> Self {
        Self {
            client: server.http(),
            base: server.url(&format!("/{basin}/streams")),
            basin: None,
        }
    }

    /// Runs one Redis command through `POST /{plate}/streams/command`: its `data.result`,
    /// or the error body with its status.
    pub async fn command(&self, args: &[&str]) -> Result<Value, (u16, Value)> {
        let body = serde_json::json!({"command": args[0], "args": &args[1..]});
        let reply = self.post("/command", body).await;
        let json = reply.json();
        match reply.status.as_u16() {
            200 => Ok(json["data"]["result"].clone()),
            status => Err((status, json["error"].clone())),
        }
    }

    /// `XREADGROUP GROUP group consumer COUNT count STREAMS key >`: the ids delivered,
    /// `None` when nothing new was left.
    pub async fn read_new(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Option<Vec<String>> {
        let count = count.to_string();
        let args = [
            "XREADGROUP",
            "GROUP",
            group,
            consumer,
            "COUNT",
            &count,
            "STREAMS",
            key,
            ">",
        ];
        let reply = self.command(&args).await.expect("xreadgroup");
        if reply.is_null() {
            return None;
        }
        let entries = reply[key].as_array().expect("the key's entries");
        Some(
            entries
                .iter()
                .map(|e| e[0].as_str().unwrap().to_owned())
                .collect(),
        )
    }

    /// `XACK key group ids…`, which must ack every one.
    pub async fn ack_all(&self, key: &str, group: &str, ids: &[String]) {
        let mut ack = vec!["XACK", key, group];
        ack.extend(ids.iter().map(String::as_str));
        let acked = self.command(&ack).await.expect("xack");
        assert_eq!(acked, ids.len(), "acks of {ids:?}");
    }

    pub fn basin(mut self, basin: &str) -> Self {
        self.basin = Some(basin.to_owned());
        self
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = &self.basin {
            req = req.header("s2-basin", b);
        }
        req
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request");
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.expect("body"),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(Method::DELETE, path)).await
    }

    pub async fn json(&self, method: Method, path: &str, body: Value) -> Reply {
        self.send(self.request(method, path).json(&body)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.json(Method::POST, path, body).await
    }

    /// Creates a basin with the given config; panics unless 201.
    pub async fn create_basin(&self, name: &str, config: Value) {
        self.post(
            "/basins",
            serde_json::json!({"basin": name, "config": config}),
        )
        .await
        .assert_status(201);
    }

    pub async fn create_stream(&self, name: &str, config: Value) {
        self.post(
            "/streams",
            serde_json::json!({"stream": name, "config": config}),
        )
        .await
        .assert_status(201);
    }

    pub async fn append(&self, stream: &str, body: Value) -> Reply {
        self.post(&format!("/streams/{}/records", enc(stream)), body)
            .await
    }

    pub async fn read(&self, stream: &str, query: &str) -> Reply {
        self.get(&format!("/streams/{}/records?{query}", enc(stream)))
            .await
    }

    pub async fn tail(&self, stream: &str) -> u64 {
        let reply = self
            .get(&format!("/streams/{}/records/tail", enc(stream)))
            .await;
        reply.assert_status(200)["tail"]["seq_num"]
            .as_u64()
            .unwrap()
    }
}

/// Percent-encodes a path segment like the SDK does.
pub fn enc(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
