//! Fuzz properties of the JSON append body (see `crate::fuzzing`): any bytes or JSON sent
//! as an append, through the same extractor and [`decode_json_input`] as the handler, in
//! both `s2-format`s, give a batch within the limits or an error with a message; and
//! records sent well-formed come back exactly.

use axum::extract::FromRequest;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::engine::record::{MAX_APPEND_BYTES, MAX_APPEND_RECORDS};
use crate::fuzzing::{
    self, edge_string, edge_u64, json_mutations, json_value, mutate, mutate_json, mutations,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
}

fn message(e: &ApiError) -> String {
    match e {
        ApiError::Standard { message, .. } => message.clone(),
        other => format!("{other:?}"),
    }
}

/// The handler's JSON path: extract the body, then decode it in `format`.
fn decode(
    rt: &tokio::runtime::Runtime,
    body: Vec<u8>,
    format: Format,
) -> Result<(usize, AppendInput), ApiError> {
    let request = Request::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a request");
    // The extractor's own decoding, without the app state it reads the body's limits from.
    let s2_api::data::Json(input) = rt
        .block_on(s2_api::data::Json::<JsonAppendInput>::from_request(
            request,
            &(),
        ))
        .map_err(|e| ApiError::bad_json(e.body_text()))?;
    let sent = input.records.len();
    Ok((sent, decode_json_input(input, format)?))
}

/// An accepted body is one batch of what was sent, within the limits; a refused one says
/// why.
fn check(outcome: Result<(usize, AppendInput), ApiError>) -> Result<(), TestCaseError> {
    match outcome {
        Ok((sent, input)) => {
            prop_assert_eq!(input.batch.len(), sent);
            prop_assert!((1..=MAX_APPEND_RECORDS).contains(&sent));
            prop_assert!(input.batch.metered_bytes() <= MAX_APPEND_BYTES);
            prop_assert_eq!(input.batch.encoded_records().count(), sent);
        }
        Err(e) => prop_assert!(!message(&e).is_empty(), "an error without a message"),
    }
    Ok(())
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![Just(Format::Raw), Just(Format::Base64)]
}

/// A record's data, and how it is sent in `format`.
type Sent = (Option<u64>, Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>);

fn sent_records() -> impl Strategy<Value = Vec<Sent>> {
    let data = || prop::collection::vec(any::<u8>(), 0..16);
    prop::collection::vec(
        (
            prop::option::of(edge_u64()),
            prop::collection::vec((prop::collection::vec(any::<u8>(), 1..8), data()), 0..3),
            data(),
        ),
        0..5,
    )
}

/// The JSON a client sends for `records` in `format` (raw sends text: bytes that are not
/// UTF-8 go as their lossy text).
fn document(records: &[Sent], format: Format, token: &Option<String>, seq: Option<u64>) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(ts, headers, body)| {
            let headers: Vec<Value> = headers
                .iter()
                .map(|(n, v)| json!([format.encode(n), format.encode(v)]))
                .collect();
            json!({"timestamp": ts, "headers": headers, "body": format.encode(body)})
        })
        .collect();
    json!({"records": records, "fencing_token": token, "match_seq_num": seq})
}

proptest! {
    #![proptest_config(fuzzing::config(2000))]

    #[test]
    fn fuzz_json_append_arbitrary_bytes(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..96),
            "[\\[\\]{}\",:0-9a-z ]{0,64}".prop_map(String::into_bytes),
        ],
        format in format(),
    ) {
        check(decode(&runtime(), bytes, format))?;
    }

    #[test]
    fn fuzz_json_append_arbitrary_values(value in json_value(), format in format()) {
        check(decode(&runtime(), serde_json::to_vec(&value).expect("JSON"), format))?;
    }

    /// Well-formed bodies with their values replaced, removed or added anywhere.
    #[test]
    fn fuzz_json_append_mutated_values(
        records in sent_records(),
        format in format(),
        token in prop::option::of(edge_string()),
        ms in json_mutations(),
    ) {
        let mut doc = document(&records, format, &token, None);
        mutate_json(&mut doc, &ms);
        check(decode(&runtime(), serde_json::to_vec(&doc).expect("JSON"), format))?;
    }

    /// Well-formed bodies with a few bytes changed.
    #[test]
    fn fuzz_json_append_mutated_bytes(
        records in sent_records(),
        format in format(),
        ms in mutations(),
    ) {
        let mut bytes = serde_json::to_vec(&document(&records, format, &None, None)).expect("JSON");
        mutate(&mut bytes, &ms);
        check(decode(&runtime(), bytes, format))?;
    }

    /// Records sent well-formed are the records appended, in both formats.
    #[test]
    fn fuzz_json_append_round_trips(
        records in sent_records(),
        format in format(),
        seq in prop::option::of(edge_u64()),
    ) {
        let doc = document(&records, format, &Some("tok".into()), seq);
        let outcome = decode(&runtime(), serde_json::to_vec(&doc).expect("JSON"), format);
        if records.is_empty() {
            prop_assert!(outcome.is_err());
            return Ok(());
        }
        let (_, input) = outcome.map_err(|e| TestCaseError::fail(message(&e)))?;
        prop_assert_eq!(input.match_seq_num, seq);
        prop_assert_eq!(input.fencing_token.as_deref(), Some("tok"));
        for ((meta, fields), (ts, headers, body)) in input.batch.encoded_records().zip(&records) {
            prop_assert_eq!(meta.timestamp, *ts);
            let mut entry = bytes::BytesMut::new();
            crate::engine::record::put_sequenced(&mut entry, 0, 0, fields);
            let rec = s2_api::v1::stream::proto::ReadBatch::decode(entry.freeze())
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .records
                .remove(0);
            // What the client meant: its bytes, as its format carries them.
            let meant = |b: &[u8]| format.decode(format.encode(b)).expect("encoded here");
            prop_assert_eq!(rec.body, meant(body));
            prop_assert_eq!(rec.headers.len(), headers.len());
            for (h, (n, v)) in rec.headers.iter().zip(headers) {
                prop_assert_eq!((&h.name, &h.value), (&meant(n), &meant(v)));
            }
        }
    }
}
