//! The plate endpoints' request bodies and queries, decoded strictly: an unknown field is
//! refused, and required fields are `Option`s so that a missing one is `invalid_request`
//! rather than a decoding error.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddBody {
    pub(super) key: Option<String>,
    pub(super) id: Option<Text>,
    pub(super) values: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RangeQuery {
    pub(super) start: Option<String>,
    pub(super) end: Option<String>,
    pub(super) count: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamRef {
    pub(super) key: Option<String>,
    pub(super) id: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadBody {
    pub(super) streams: Option<Vec<StreamRef>>,
    pub(super) count: Option<u64>,
    pub(super) block_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TrimBody {
    pub(super) key: Option<String>,
    pub(super) strategy: Option<String>,
    pub(super) threshold: Option<Text>,
    pub(super) approximate: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeleteBody {
    pub(super) key: Option<String>,
    pub(super) ids: Option<Vec<Text>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InfoQuery {
    pub(super) section: Option<String>,
    pub(super) group: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupCreateBody {
    pub(super) key: Option<String>,
    pub(super) group: Option<String>,
    pub(super) id: Option<Text>,
    pub(super) mkstream: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupReadBody {
    pub(super) group: Option<String>,
    pub(super) consumer: Option<String>,
    pub(super) streams: Option<Vec<StreamRef>>,
    pub(super) count: Option<u64>,
    pub(super) block_ms: Option<u64>,
    pub(super) noack: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AckBody {
    pub(super) key: Option<String>,
    pub(super) group: Option<String>,
    pub(super) ids: Option<Vec<Text>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PendingQuery {
    pub(super) start: Option<String>,
    pub(super) end: Option<String>,
    pub(super) count: Option<String>,
    pub(super) consumer: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClaimBody {
    pub(super) key: Option<String>,
    pub(super) group: Option<String>,
    pub(super) consumer: Option<String>,
    pub(super) min_idle_ms: Option<u64>,
    pub(super) ids: Option<Vec<Text>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AutoclaimBody {
    pub(super) key: Option<String>,
    pub(super) group: Option<String>,
    pub(super) consumer: Option<String>,
    pub(super) min_idle_ms: Option<u64>,
    pub(super) start: Option<Text>,
    pub(super) count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandBody {
    pub(super) command: Option<String>,
    pub(super) args: Option<Vec<Arg>>,
}

/// An id or threshold: a JSON string, or a number sent as its text.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Text {
    String(String),
    Number(serde_json::Number),
}

impl Text {
    pub(super) fn into_string(self) -> String {
        match self {
            Self::String(s) => s,
            Self::Number(n) => n.to_string(),
        }
    }
}

/// An argument of the command endpoints: a string, or a number or boolean sent as text.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Arg {
    String(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Arg {
    pub(super) fn into_string(self) -> String {
        match self {
            Self::String(s) => s,
            Self::Number(n) => n.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}
