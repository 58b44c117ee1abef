//! Redis replies, typed once and rendered per front door: as JSON for the plate HTTP
//! surface (the way a RESP3 client sees them), and later as RESP2/RESP3.

use bytes::Bytes;
use serde_json::Value;

/// A reply as Redis would send it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A nil bulk string or a nil array (RESP3: null).
    Nil,
    Int(i64),
    /// A simple string (`+OK`).
    Simple(&'static str),
    Bulk(Bytes),
    Array(Vec<Reply>),
    /// A map (RESP3); RESP2 flattens it to an array of keys and values.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    pub fn ok() -> Self {
        Self::Simple("OK")
    }

    pub fn text(text: impl ToString) -> Self {
        Self::Bulk(Bytes::from(text.to_string()))
    }

    pub fn int(n: impl TryInto<i64>) -> Self {
        Self::Int(n.try_into().unwrap_or(i64::MAX))
    }

    /// A map whose keys are strings.
    pub fn map<K: Into<Bytes>>(pairs: impl IntoIterator<Item = (K, Reply)>) -> Self {
        Self::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Self::Bulk(k.into()), v))
                .collect(),
        )
    }

    /// JSON as the plate surface shows it: strings (bytes as UTF-8, lossily), numbers,
    /// `null`, arrays, and maps as objects (keys as text).
    pub fn to_json(&self) -> Value {
        match self {
            Self::Nil => Value::Null,
            Self::Int(n) => Value::from(*n),
            Self::Simple(s) => Value::from(*s),
            Self::Bulk(b) => Value::from(String::from_utf8_lossy(b).into_owned()),
            Self::Array(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            Self::Map(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    fn key_text(&self) -> String {
        match self.to_json() {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_render_as_a_resp3_client_sees_them() {
        let entry = Reply::Array(vec![
            Reply::text("1-1"),
            Reply::Array(vec![Reply::text("f"), Reply::text("v")]),
        ]);
        let reply = Reply::Array(vec![
            Reply::Nil,
            Reply::Int(3),
            Reply::ok(),
            Reply::map([("k", Reply::Array(vec![entry]))]),
        ]);
        assert_eq!(
            reply.to_json(),
            json!([null, 3, "OK", {"k": [["1-1", ["f", "v"]]]}])
        );
    }
}
