//! What the fuzz properties share (tests only).
//!
//! Every decoder of bytes that come from outside the process (S2S frames, append bodies,
//! stored chunks, manifests, index segments, group and catalog objects, Redis commands)
//! has properties in a `fuzz` module next to it, so `cargo test --lib fuzz` selects them
//! all. Each says: whatever the input, the decoder returns a value or an error with a
//! message, never panics, and whatever it returns can be used by its readers without a
//! panic either.
//!
//! Inputs are arbitrary bytes or JSON and, because random input rarely gets past a magic
//! number, a checksum or a parser's first check, valid encodings changed by a few
//! [`Mutation`]s or [`JsonMutation`]s (with the checksum then recomputed by
//! [`reseal_xxh3`], so the decoder's later checks are reached too). Where a value's
//! fields matter more than its bytes (a manifest's ranges, a chunk's header, a command's
//! words), the modules also build inputs field by field with values at their edges
//! ([`edge_u64`], [`edge_string`]).
//!
//! Each property runs a modest number of cases ([`config`]) so the whole set stays a few
//! seconds of CI; `PROPTEST_CASES=N` runs every one N times instead (`scripts/fuzz.sh`
//! repeats that for a given time).

use proptest::{prelude::*, sample::Index, test_runner::contextualize_config};
use serde_json::{Value, json};

/// A fuzz property's config: `cases` cases, unless the `PROPTEST_CASES` environment
/// variable sets the count (as for any proptest default), which is how longer runs are
/// asked for.
pub fn config(cases: u32) -> ProptestConfig {
    contextualize_config(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    })
}

/// Numbers at the edges decoders get wrong: zero, one, type limits, powers of two.
pub fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::from(u8::MAX)),
        Just(u64::from(u16::MAX)),
        Just(u64::from(u32::MAX)),
        Just(u64::from(u32::MAX) + 1),
        Just(i64::MAX as u64),
        Just(u64::MAX - 1),
        Just(u64::MAX),
        (0u32..64).prop_map(|b| 1u64 << b),
        any::<u64>(),
    ]
}

/// One change to an encoding. Positions are [`Index`]es, so they fit whatever length the
/// bytes have when the change applies.
#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    /// Writes a protobuf varint over the bytes there (lengths and counts are varints).
    Varint(Index, u64),
    /// Writes the low `width` bytes of a number, big-endian, over the bytes there
    /// (headers' fixed-width fields).
    BigEndian(Index, u64, usize),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    /// Copies a run of bytes to another place (a repeated field, a record twice).
    Duplicate(Index, usize, Index),
    Truncate(Index),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![any::<u8>(), Just(0u8), Just(0x7f), Just(0x80), Just(0xff)];
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        3 => (any::<Index>(), byte).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        2 => (any::<Index>(), edge_u64()).prop_map(|(i, v)| Mutation::Varint(i, v)),
        2 => (any::<Index>(), edge_u64(), prop_oneof![Just(2usize), Just(4), Just(8)])
            .prop_map(|(i, v, w)| Mutation::BigEndian(i, v, w)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 1usize..32).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => (any::<Index>(), 1usize..64, any::<Index>())
            .prop_map(|(i, n, j)| Mutation::Duplicate(i, n, j)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..32).prop_map(Mutation::Extend),
    ]
}

/// One to five mutations.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..6)
}

/// Applies `mutations` in order.
pub fn mutate(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for m in mutations {
        let len = bytes.len();
        // Positions within the bytes (insertions may also go at the end).
        let at = |i: &Index| if len == 0 { 0 } else { i.index(len) };
        match m {
            Mutation::FlipBit(i, bit) if len > 0 => bytes[at(i)] ^= 1 << bit,
            Mutation::SetByte(i, b) if len > 0 => bytes[at(i)] = *b,
            Mutation::Varint(i, v) => {
                let mut varint = Vec::new();
                prost::encoding::encode_varint(*v, &mut varint);
                let start = at(i);
                let end = (start + varint.len()).min(len);
                bytes.splice(start..end, varint);
            }
            Mutation::BigEndian(i, v, width) => {
                let start = at(i);
                let end = (start + width).min(len);
                bytes.splice(start..end, v.to_be_bytes()[8 - width..].iter().copied());
            }
            Mutation::Insert(i, b) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Remove(i, n) if len > 0 => {
                let start = at(i);
                bytes.drain(start..(start + n).min(len));
            }
            Mutation::Duplicate(i, n, j) if len > 0 => {
                let start = at(i);
                let run = bytes[start..(start + n).min(len)].to_vec();
                let to = j.index(len + 1);
                bytes.splice(to..to, run);
            }
            Mutation::Truncate(i) => bytes.truncate(at(i)),
            Mutation::Extend(b) => bytes.extend_from_slice(b),
            _ => {}
        }
    }
}

/// Recomputes the trailer of a format that ends in the big-endian xxh3-64 of every byte
/// before it (chunks, manifests, index segments), so a mutated object passes the checksum
/// and reaches the checks after it.
pub fn reseal_xxh3(bytes: &mut [u8]) {
    if let Some(body_end) = bytes.len().checked_sub(8) {
        let sum = xxhash_rust::xxh3::xxh3_64(&bytes[..body_end]);
        bytes[body_end..].copy_from_slice(&sum.to_be_bytes());
    }
}

/// Strings a JSON field is likely to be checked against: empty, long, not ASCII, and the
/// shapes of ids, timestamps and base64, besides arbitrary text.
pub fn edge_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("x".repeat(300)),
        Just("0-0".to_owned()),
        Just("18446744073709551615-18446744073709551615".to_owned()),
        Just("2024-02-29T23:59:60Z".to_owned()),
        Just("1970-01-01T00:00:00Z".to_owned()),
        Just("-1".to_owned()),
        "[0-9]{1,20}-[0-9]{1,20}",
        "[A-Za-z0-9+/=]{0,12}",
        "[a-z0-9-]{0,12}",
        "\\PC{0,12}",
    ]
}

/// Arbitrary JSON: scalars at their edges, and arrays and objects of them a few levels
/// deep.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        edge_u64().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(Value::from(-1)),
        any::<f64>().prop_map(Value::from),
        edge_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(edge_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An S2 `StreamConfig` as JSON, each field absent, valid or at an edge (an age of 0 or
/// `u64::MAX` seconds, an unknown storage class or mode).
pub fn stream_config_json() -> impl Strategy<Value = Value> {
    let retention = prop_oneof![
        edge_u64().prop_map(|age| json!({ "age": age })),
        Just(json!({ "infinite": {} })),
        json_value(),
    ];
    let mode = prop_oneof![
        Just("client-prefer".to_owned()),
        Just("client-require".to_owned()),
        Just("arrival".to_owned()),
        edge_string(),
    ];
    (
        prop::option::of(prop_oneof![
            Just("express".to_owned()),
            Just("standard".to_owned()),
            edge_string()
        ]),
        prop::option::of(retention),
        prop::option::of((prop::option::of(mode), prop::option::of(any::<bool>()))),
        prop::option::of(edge_u64()),
    )
        .prop_map(
            |(storage_class, retention, timestamping, delete_on_empty)| {
                let mut c = serde_json::Map::new();
                if let Some(s) = storage_class {
                    c.insert("storage_class".into(), s.into());
                }
                if let Some(r) = retention {
                    c.insert("retention_policy".into(), r);
                }
                if let Some((mode, uncapped)) = timestamping {
                    c.insert(
                        "timestamping".into(),
                        json!({ "mode": mode, "uncapped": uncapped }),
                    );
                }
                if let Some(age) = delete_on_empty {
                    c.insert("delete_on_empty".into(), json!({ "min_age_secs": age }));
                }
                Value::Object(c)
            },
        )
}

/// An RFC 3339 time: valid ones at the edges of what `time` accepts, and near misses.
pub fn rfc3339() -> impl Strategy<Value = Value> {
    let valid = prop::sample::select(vec![
        "1970-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
        "0000-01-01T00:00:00Z",
        "2024-02-29T12:00:00+14:00",
    ]);
    let invalid = prop::sample::select(vec!["2023-02-29T12:00:00Z", "2024-01-01T24:00:00Z"]);
    prop_oneof![
        4 => valid.prop_map(Value::from),
        1 => invalid.prop_map(Value::from),
        1 => edge_string().prop_map(Value::from),
    ]
}

/// A stored access token entry (`catalog::AccessTokenEntry`) as JSON: its scope's parts
/// valid, at an edge or anything; its digest hex of any length and case.
pub fn access_token_entry_json() -> impl Strategy<Value = Value> {
    // Mostly valid parts, so that whole entries are often usable.
    let resource = || {
        prop_oneof![
            3 => Just(Value::Null),
            3 => "([a-z0-9][a-z0-9-]{0,4})?".prop_map(|p| json!({ "prefix": p })),
            2 => "[a-z0-9][a-z0-9-]{7,12}".prop_map(|e| json!({ "exact": e })),
            1 => edge_string().prop_map(|p| json!({ "prefix": p })),
            1 => json_value(),
        ]
    };
    let ops = prop_oneof![
        3 => Just(json!(["append", "read", "list-streams"])),
        1 => Just(json!(["list-basins", "create-stream", "nope"])),
        1 => json_value(),
    ];
    (
        prop_oneof![3 => "[a-z0-9_-]{1,12}", 1 => edge_string()],
        prop_oneof![3 => Just(Value::Null), 1 => rfc3339()],
        any::<bool>(),
        (resource(), resource(), resource(), ops),
        prop_oneof![
            2 => Just("00".repeat(32)),
            2 => "[0-9a-f]{64}",
            1 => "[0-9a-fA-FxX]{0,66}",
            1 => edge_string()
        ],
        rfc3339(),
    )
        .prop_map(
            |(id, expires, prefix, (basins, streams, tokens, ops), sha, issued)| {
                json!({
                    "info": {
                        "id": id,
                        "expires_at": expires,
                        "auto_prefix_streams": prefix,
                        "scope": {
                            "basins": basins,
                            "streams": streams,
                            "access_tokens": tokens,
                            "op_groups": null,
                            "ops": ops,
                        },
                    },
                    "secret_sha256": sha,
                    "issued_at": issued,
                })
            },
        )
}

/// One change to a JSON document, at the node a preorder walk reaches at the index.
#[derive(Debug, Clone)]
pub enum JsonMutation {
    Replace(Index, Value),
    /// Removes a member of an object or an element of an array.
    Remove(Index, Index),
    /// Adds a member to an object (or an element to an array).
    Add(Index, String, Value),
}

/// One to four JSON mutations.
pub fn json_mutations() -> impl Strategy<Value = Vec<JsonMutation>> {
    let one = prop_oneof![
        3 => (any::<Index>(), json_value()).prop_map(|(i, v)| JsonMutation::Replace(i, v)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(i, j)| JsonMutation::Remove(i, j)),
        1 => (any::<Index>(), edge_string(), json_value())
            .prop_map(|(i, k, v)| JsonMutation::Add(i, k, v)),
    ];
    prop::collection::vec(one, 1..5)
}

fn node_count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(node_count).sum(),
        Value::Object(o) => o.values().map(node_count).sum(),
        _ => 0,
    }
}

/// The `n`-th node of a preorder walk (`n` < [`node_count`]).
fn node_mut(v: &mut Value, mut n: usize) -> &mut Value {
    if n == 0 {
        return v;
    }
    n -= 1;
    let children: Vec<&mut Value> = match v {
        Value::Array(a) => a.iter_mut().collect(),
        Value::Object(o) => o.values_mut().collect(),
        _ => unreachable!("n is below the node count"),
    };
    for child in children {
        let size = node_count(child);
        if n < size {
            return node_mut(child, n);
        }
        n -= size;
    }
    unreachable!("n is below the node count")
}

/// Applies `mutations` in order.
pub fn mutate_json(doc: &mut Value, mutations: &[JsonMutation]) {
    for m in mutations {
        let count = node_count(doc);
        match m {
            JsonMutation::Replace(i, v) => *node_mut(doc, i.index(count)) = v.clone(),
            JsonMutation::Remove(i, j) => match node_mut(doc, i.index(count)) {
                Value::Array(a) if !a.is_empty() => {
                    let k = j.index(a.len());
                    a.remove(k);
                }
                Value::Object(o) if !o.is_empty() => {
                    let key = o.keys().nth(j.index(o.len())).expect("in range").clone();
                    o.remove(&key);
                }
                _ => {}
            },
            JsonMutation::Add(i, k, v) => match node_mut(doc, i.index(count)) {
                Value::Array(a) => a.push(v.clone()),
                Value::Object(o) => {
                    o.insert(k.clone(), v.clone());
                }
                _ => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest! {
        #![proptest_config(config(64))]

        /// Mutations fit any length, the empty input included.
        #[test]
        fn fuzz_mutations_stay_in_bounds(
            start in prop::collection::vec(any::<u8>(), 0..4),
            ms in prop::collection::vec(mutations(), 1..4),
        ) {
            let mut bytes = start;
            for m in &ms {
                mutate(&mut bytes, m);
            }
        }

        /// JSON mutations reach any node of any document.
        #[test]
        fn fuzz_json_mutations_stay_in_bounds(mut doc in json_value(), ms in json_mutations()) {
            mutate_json(&mut doc, &ms);
        }
    }

    #[test]
    fn reseal_writes_the_checksum_of_what_precedes_it() {
        let mut sealed = vec![1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0];
        reseal_xxh3(&mut sealed);
        assert_eq!(
            sealed[3..],
            xxhash_rust::xxh3::xxh3_64(&[1, 2, 3]).to_be_bytes()
        );
        reseal_xxh3(&mut [1, 2]);
    }

    #[test]
    fn json_nodes_are_numbered_in_preorder() {
        let mut doc = json!({"a": [1, {"b": 2}], "c": 3});
        assert_eq!(node_count(&doc), 6);
        *node_mut(&mut doc, 4) = Value::Null;
        *node_mut(&mut doc, 5) = Value::Bool(true);
        assert_eq!(doc, json!({"a": [1, {"b": null}], "c": true}));
    }
}
