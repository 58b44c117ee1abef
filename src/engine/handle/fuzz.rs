//! Fuzz property of what a node builds from a manifest it reads (see `crate::fuzzing`):
//! [`StreamState::new`] on any manifest that decodes, valid or with fields at their edges,
//! its config and inline chunks arbitrary, gives a state or an error with a message, and
//! the state answers a reader (its tail, config, inline chunks) without a panic.

use proptest::prelude::*;

use super::*;
use crate::engine::manifest::fuzz::{apply, edits, valid_manifest};
use crate::fuzzing::{self, edge_u64, json_value, stream_config_json};

proptest! {
    #![proptest_config(fuzzing::config(1000))]

    #[test]
    fn fuzz_stream_state_of_a_decoded_manifest(
        (m, _) in valid_manifest(),
        edits in prop::option::weighted(0.5, edits()),
        config in prop_oneof![
            Just(None),
            Just(Some(config_json(&Default::default()))),
            stream_config_json().prop_map(|v| Some(v.to_string())),
            json_value().prop_map(|v| Some(v.to_string())),
        ],
        now in edge_u64(),
    ) {
        let mut m = m;
        apply(&mut m, edits.as_deref().unwrap_or_default());
        if let Some(config) = config {
            m.config_json = config;
        }
        let Ok(m) = Manifest::decode_object(&m.encode_object()) else {
            return Ok(());
        };
        match StreamState::new(m, ETag::new("e")) {
            Ok(state) => {
                let _ = (state.tail(), state.storage_class(), state.expire_before(now));
                for r in state.manifest.inline_refs() {
                    let chunk = state.inline_chunk(r).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let _ = chunk.index_of_seq(r.first_seq);
                }
                prop_assert_eq!(state.known_inline().count(), state.manifest.inline_refs().len());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty(), "an error without a message"),
        }
    }
}
