//! Fuzz property of access token entries as authentication reads them (see
//! `crate::fuzzing`): any stored entry that decodes gives a caller or a refusal with a
//! message ([`StoredToken::from_entry`], an unusable entry being an unknown token), and a
//! caller answers the checks requests make of it without a panic.

use proptest::prelude::*;
use s2_common::access::Operation;

use super::*;
use crate::fuzzing::{self, access_token_entry_json, edge_string, json_mutations, mutate_json};

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("a".to_owned()),
        "[a-z0-9-]{0,12}",
        edge_string()
    ]
}

proptest! {
    #![proptest_config(fuzzing::config(2000))]

    #[test]
    fn fuzz_access_token_entry_as_authentication_reads_it(
        doc in access_token_entry_json(),
        ms in prop::option::of(json_mutations()),
        names in prop::collection::vec(name(), 3),
        ops in prop::collection::vec(prop::sample::select(enumset::EnumSet::<Operation>::all().iter().collect::<Vec<_>>()), 1..3),
    ) {
        let mut doc = doc;
        if let Some(ms) = &ms {
            mutate_json(&mut doc, ms);
        }
        let Ok(entry) = serde_json::from_value::<AccessTokenEntry>(doc) else {
            return Ok(());
        };
        match StoredToken::from_entry(&entry) {
            Ok(stored) => {
                let grant = &stored.caller;
                let (basin, stream, token) = (&names[0], &names[1], &names[2]);
                for &op in &ops {
                    let _ = grant.may(op);
                    let _ = grant.may_on_basin(op, basin);
                    let _ = grant.may_on_stream(op, basin, stream);
                    let _ = grant.may_on_token(op, token);
                }
                let _ = (grant.stored_stream_name(stream), grant.shown_stream_name(stream));
                let _ = (grant.basins_listing(basin), grant.streams_listing(stream));
                let _ = grant.tokens_listing(token);
                let _ = grant.includes(grant);
            }
            Err(e) => prop_assert!(!e.is_empty(), "an error without a message"),
        }
    }
}
