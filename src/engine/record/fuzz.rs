//! Fuzz properties of [`parse_append_input`], the protobuf `AppendInput` of unary and S2S
//! appends (see `crate::fuzzing`): any bytes give a batch or an error with a message; a
//! batch keeps its limits and re-encodes into records that parse back; and whatever this
//! scanner accepts, prost decodes to the same records, so clients and Sluice agree on what
//! was appended.

use proptest::prelude::*;
use prost::Message;
use s2_api::v1::stream::proto;

use super::*;
use crate::fuzzing::{self, edge_string, edge_u64, mutate, mutations};

fn bytes_up_to(n: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..n)
}

/// A header: usually named, sometimes the empty name of a command record.
fn header() -> impl Strategy<Value = proto::Header> {
    let name = prop_oneof![
        4 => bytes_up_to(8),
        1 => Just(Vec::new()),
        1 => Just(b"fence".to_vec()),
    ];
    let value = prop_oneof![
        4 => bytes_up_to(8),
        1 => Just(b"fence".to_vec()),
        1 => Just(b"trim".to_vec()),
    ];
    (name, value).prop_map(|(n, v)| proto::Header {
        name: n.into(),
        value: v.into(),
    })
}

fn append_record() -> impl Strategy<Value = proto::AppendRecord> {
    (
        prop::option::of(edge_u64()),
        prop::collection::vec(header(), 0..3),
        prop_oneof![bytes_up_to(40), Just(7u64.to_be_bytes().to_vec())],
    )
        .prop_map(|(timestamp, headers, body)| proto::AppendRecord {
            timestamp,
            headers,
            body: body.into(),
        })
}

/// An `AppendInput` as a client might send it, valid or breaking a rule.
fn append_input() -> impl Strategy<Value = proto::AppendInput> {
    (
        prop::collection::vec(append_record(), 0..6),
        prop::option::of(edge_u64()),
        prop::option::of(edge_string()),
    )
        .prop_map(
            |(records, match_seq_num, fencing_token)| proto::AppendInput {
                records,
                match_seq_num,
                fencing_token,
            },
        )
}

/// What any accepted input must be: within the limits, and each record's encoded fields a
/// `SequencedRecord` once sequenced, whose metered size is the one recorded.
fn check_accepted(input: &AppendInput) -> Result<(), TestCaseError> {
    let batch = &input.batch;
    prop_assert!((1..=MAX_APPEND_RECORDS).contains(&batch.len()));
    prop_assert!(batch.metered_bytes() <= MAX_APPEND_BYTES);
    let metered: usize = batch.records().iter().map(|m| m.metered as usize).sum();
    prop_assert_eq!(metered, batch.metered_bytes());
    if let Some(token) = &input.fencing_token {
        prop_assert!(token.len() <= MAX_FENCING_TOKEN_BYTES);
    }
    for (meta, fields) in batch.encoded_records() {
        let mut entry = BytesMut::new();
        put_sequenced(&mut entry, 3, 4, fields);
        let mut inner = &entry[1..];
        decode_varint(&mut inner).expect("put_sequenced wrote a length");
        let view = SequencedView::parse(inner).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!((view.seq_num, view.timestamp), (3, 4));
        prop_assert_eq!(view.metered().ok(), Some(meta.metered as usize));
        let (headers, _) = view
            .parts()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(meta.command.is_some(), matches!(&headers[..], [(b"", _)]));
    }
    Ok(())
}

/// Parses `bytes`; an accepted input must be well-formed and agree with prost.
fn parse_and_check(bytes: &[u8]) -> Result<(), TestCaseError> {
    match parse_append_input(bytes) {
        Ok(input) => {
            check_accepted(&input)?;
            let theirs = proto::AppendInput::decode(bytes)
                .map_err(|e| TestCaseError::fail(format!("accepted, but prost says: {e}")))?;
            prop_assert_eq!(input.match_seq_num, theirs.match_seq_num);
            prop_assert_eq!(&input.fencing_token, &theirs.fencing_token);
            prop_assert_eq!(input.batch.len(), theirs.records.len());
            for ((meta, fields), rec) in input.batch.encoded_records().zip(&theirs.records) {
                prop_assert_eq!(meta.timestamp, rec.timestamp);
                let mut entry = BytesMut::new();
                put_sequenced(&mut entry, 0, 0, fields);
                let batch = proto::ReadBatch::decode(entry.freeze())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let ours = &batch.records[0];
                prop_assert_eq!(&ours.body, &rec.body);
                prop_assert_eq!(&ours.headers, &rec.headers);
            }
        }
        Err(e) => prop_assert!(!e.to_string().is_empty(), "an error without a message"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(fuzzing::config(4000))]

    #[test]
    fn fuzz_append_input_arbitrary_bytes(bytes in bytes_up_to(200)) {
        parse_and_check(&bytes)?;
    }

    /// Inputs a client might send are accepted exactly when they keep the rules, and
    /// then mean what prost reads in them.
    #[test]
    fn fuzz_append_input_as_prost_encodes_it(input in append_input()) {
        let bytes = input.encode_to_vec();
        parse_and_check(&bytes)?;
        let plain_records = input.records.iter().all(|r| r.headers.iter().all(|h| !h.name.is_empty()));
        let token_fits = input.fencing_token.as_ref().is_none_or(|t| t.len() <= MAX_FENCING_TOKEN_BYTES);
        if plain_records && token_fits && !input.records.is_empty() {
            prop_assert!(parse_append_input(&bytes).is_ok());
        }
    }

    #[test]
    fn fuzz_append_input_mutated(input in append_input(), ms in mutations()) {
        let mut bytes = input.encode_to_vec();
        mutate(&mut bytes, &ms);
        parse_and_check(&bytes)?;
    }

    /// A record as the reader sees it in a chunk: any bytes after the position fields
    /// parse or fail, and agree between `parts` and `metered`.
    #[test]
    fn fuzz_sequenced_view_arbitrary_fields(fields in bytes_up_to(64), seq in edge_u64()) {
        let mut entry = BytesMut::new();
        put_sequenced(&mut entry, seq, 0, &fields);
        let mut inner = &entry[1..];
        decode_varint(&mut inner).expect("put_sequenced wrote a length");
        let view = SequencedView::parse(inner).map(|v| (v.parts().is_ok(), v.metered().is_ok()));
        if let Ok((parts, metered)) = view {
            prop_assert_eq!(parts, metered);
        }
    }
}
