//! Fuzz properties of catalog objects (see `crate::fuzzing`): basin, stream and access
//! token entries are read back from the store as JSON ([`Catalog::get`]), so any bytes or
//! JSON must give an entry or an error with a message; an entry that decodes re-encodes
//! to itself, and a basin's config answers [`BasinEntry::basin_config`] (validated, or a
//! `Corrupt` error with a message) without a panic. What `http::auth` makes of a token
//! entry is fuzzed there.

use proptest::prelude::*;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::*;
use crate::fuzzing::{
    self, access_token_entry_json, edge_string, edge_u64, json_mutations, json_value, mutate,
    mutate_json, mutations, rfc3339, stream_config_json,
};

fn basin_json() -> impl Strategy<Value = Value> {
    (
        edge_u64(),
        edge_string(),
        rfc3339(),
        prop::option::of(rfc3339()),
        prop::option::of(stream_config_json()),
        any::<bool>(),
        prop::option::of(edge_string()),
    )
        .prop_map(
            |(version, name, created, deleted, stream, on_append, token)| {
                json!({
                    "version": version,
                    "name": name,
                    "created_at": created,
                    "deleted_at": deleted,
                    "config": {
                        "default_stream_config": stream,
                        "create_stream_on_append": on_append,
                        "create_stream_on_read": !on_append,
                    },
                    "request_token": token,
                })
            },
        )
}

fn stream_json() -> impl Strategy<Value = Value> {
    (
        edge_u64(),
        edge_string(),
        edge_string(),
        rfc3339(),
        prop::option::of(rfc3339()),
        prop::option::of(edge_string()),
        prop::option::of(prop_oneof![stream_config_json(), json_value()]),
    )
        .prop_map(|(version, name, id, created, deleted, token, requested)| {
            json!({
                "version": version,
                "name": name,
                "id": id,
                "created_at": created,
                "deleted_at": deleted,
                "request_token": token,
                "requested_config": requested,
            })
        })
}

/// Decodes `bytes` as a `T`; one that decodes must re-encode to the same JSON (an entry
/// written back after a read-modify-write loses nothing), and go through `then`.
fn decode<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    then: impl FnOnce(&T) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(entry) => {
            let encoded = serde_json::to_vec(&entry).expect("catalog entries serialize");
            let again: T = serde_json::from_slice(&encoded)
                .map_err(|e| TestCaseError::fail(format!("does not re-decode: {e}")))?;
            let (again, first) = (
                serde_json::to_value(&again).expect("JSON"),
                serde_json::to_value(&entry).expect("JSON"),
            );
            // serde_json (without `float_roundtrip`) may read a float back one ULP off; no
            // entry Sluice writes holds one (a stream's `requested_config` is integers).
            if !has_float(&first) {
                prop_assert_eq!(again, first);
            }
            then(&entry)
        }
        Err(e) => {
            prop_assert!(!e.to_string().is_empty(), "an error without a message");
            Ok(())
        }
    }
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}

fn basin(bytes: &[u8]) -> Result<(), TestCaseError> {
    decode::<BasinEntry>(bytes, |entry| {
        if let Err(e) = entry.basin_config() {
            prop_assert!(!e.to_string().is_empty());
        }
        Ok(())
    })
}

fn stream(bytes: &[u8]) -> Result<(), TestCaseError> {
    decode::<StreamEntry>(bytes, |_| Ok(()))
}

fn token(bytes: &[u8]) -> Result<(), TestCaseError> {
    decode::<AccessTokenEntry>(bytes, |_| Ok(()))
}

/// Every kind of entry from the same bytes.
fn all(bytes: &[u8]) -> Result<(), TestCaseError> {
    basin(bytes)?;
    stream(bytes)?;
    token(bytes)
}

fn bytes_of(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON")
}

proptest! {
    #![proptest_config(fuzzing::config(2000))]

    #[test]
    fn fuzz_catalog_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        all(&bytes)?;
    }

    #[test]
    fn fuzz_catalog_arbitrary_json(value in json_value()) {
        all(&bytes_of(&value))?;
    }

    /// Entries shaped as stored, each field valid, at an edge, or anything, then with
    /// values replaced, removed or added anywhere.
    #[test]
    fn fuzz_catalog_entries_mutated(
        basin_doc in basin_json(),
        stream_doc in stream_json(),
        token_doc in access_token_entry_json(),
        ms in prop::option::of(json_mutations()),
    ) {
        for (mut doc, decode) in [
            (basin_doc, basin as fn(&[u8]) -> Result<(), TestCaseError>),
            (stream_doc, stream),
            (token_doc, token),
        ] {
            if let Some(ms) = &ms {
                mutate_json(&mut doc, ms);
            }
            decode(&bytes_of(&doc))?;
        }
    }

    #[test]
    fn fuzz_catalog_entries_mutated_bytes(basin_doc in basin_json(), ms in mutations()) {
        let mut bytes = bytes_of(&basin_doc);
        mutate(&mut bytes, &ms);
        all(&bytes)?;
    }
}
