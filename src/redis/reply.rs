//! Redis replies, typed once and rendered per front door: as JSON for the plate HTTP
//! surface (the way a RESP3 client sees them), and as RESP2/RESP3 by the RESP listener
//! ([`super::resp::codec`]). The variants keep the distinctions Redis's wire makes even
//! where JSON does not: a nil bulk string from a nil array (`$-1` / `*-1` in RESP2), a
//! map that RESP2 flattens from one it shows as pairs, a set, verbatim text.

use bytes::Bytes;
use serde_json::Value;

/// A reply as Redis would send it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A nil bulk string (RESP2 `$-1`, RESP3 null).
    Nil,
    /// A nil array (RESP2 `*-1`, RESP3 null): what `XREAD`/`XREADGROUP` answer when
    /// nothing came, `XRANGE … COUNT 0`, a pending entry's missing fields.
    NilArray,
    Int(i64),
    /// A simple string (`+OK`).
    Simple(&'static str),
    Bulk(Bytes),
    Array(Vec<Reply>),
    /// A map (RESP3); RESP2 flattens it to an array of keys and values.
    Map(Vec<(Reply, Reply)>),
    /// A map (RESP3) that RESP2 shows as an array of `[key, value]` pairs: the reply of
    /// `XREAD` and `XREADGROUP`, keyed by stream.
    PairMap(Vec<(Reply, Reply)>),
    /// A set (RESP3); RESP2 an array. `COMMAND INFO`'s flags and categories.
    Set(Vec<Reply>),
    /// Verbatim text (RESP3 `=…txt:`); RESP2 a bulk string. `INFO`'s reply.
    Verbatim(Bytes),
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

    /// A map keyed by stream name, as `XREAD` and `XREADGROUP` answer ([`Self::PairMap`]).
    pub fn streams<K: Into<Bytes>>(pairs: impl IntoIterator<Item = (K, Reply)>) -> Self {
        Self::PairMap(
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
            Self::Nil | Self::NilArray => Value::Null,
            Self::Int(n) => Value::from(*n),
            Self::Simple(s) => Value::from(*s),
            Self::Bulk(b) | Self::Verbatim(b) => {
                Value::from(String::from_utf8_lossy(b).into_owned())
            }
            Self::Array(items) | Self::Set(items) => {
                Value::Array(items.iter().map(Self::to_json).collect())
            }
            Self::Map(pairs) | Self::PairMap(pairs) => Value::Object(
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
