//! Fuzz properties of group objects (see `crate::fuzzing`): a group is read back from the
//! store as JSON (`catalog.rs`), so any bytes or JSON must give a
//! [`GroupState`] or an error with a message; one that decodes answers [`GroupState::check`]
//! and every command's transition and view without a panic, whatever its counters and
//! times; those whose invariant holds keep it through every transition; and a group
//! re-encodes to itself.

use proptest::prelude::*;

use super::*;
use crate::fuzzing::{
    self, edge_string, edge_u64, json_mutations, json_value, mutate, mutate_json, mutations,
};

/// A few names, so that pending entries and consumers meet.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["alice", "bob", ""]).prop_map(str::to_owned),
        1 => edge_string(),
    ]
}

fn id() -> impl Strategy<Value = EntryId> {
    prop_oneof![
        2 => (0u64..4, 0u64..4).prop_map(|(ms, seq)| EntryId::new(ms, seq)),
        1 => (edge_u64(), edge_u64()).prop_map(|(ms, seq)| EntryId::new(ms, seq)),
        1 => Just(EntryId::MAX),
    ]
}

/// A group as stored: edge counters and times, pending entries of consumers that may not
/// exist (which only a corrupt object would have).
fn group() -> impl Strategy<Value = GroupState> {
    (
        edge_u64(),
        name(),
        id(),
        prop::option::of(edge_u64()),
        prop::collection::btree_map(id(), (name(), edge_u64(), edge_u64()), 0..5),
        prop::collection::btree_map(name(), edge_u64(), 0..3),
    )
        .prop_map(
            |(version, name, last_id, entries_read, pending, consumers)| GroupState {
                version,
                name,
                last_id,
                entries_read,
                pending: pending.into_iter().map(|(i, p)| (i, p.into())).collect(),
                consumers: consumers
                    .into_iter()
                    .map(|(n, seen_ms)| (n, Consumer { seen_ms }))
                    .collect(),
            },
        )
}

fn facts() -> impl Strategy<Value = StreamFacts> {
    (edge_u64(), edge_u64(), id(), id(), id()).prop_map(
        |(entries_added, length, first_id, last_id, max_deleted_id)| StreamFacts {
            entries_added,
            length,
            first_id,
            last_id,
            max_deleted_id,
        },
    )
}

/// One group command's transition or view, with arguments anywhere in their ranges.
#[derive(Debug, Clone)]
enum Op {
    SetId(EntryId, Option<u64>),
    CreateConsumer(String, u64),
    DeleteConsumer(String),
    Touch(String, u64),
    DeliverNew(String, Vec<EntryId>, u64, bool),
    ReadHistory(String, EntryId, usize, u64),
    Ack(Vec<EntryId>),
    PendingRange(EntryId, EntryId, usize, Option<String>, i64, u64),
    Claim(String, Vec<EntryId>, i64, u64, ClaimOptions),
    Autoclaim(String, EntryId, usize, i64, u64, bool),
    Views(u64, usize),
}

fn claim_options() -> impl Strategy<Value = ClaimOptions> {
    let time = prop_oneof![
        Just(None),
        any::<i64>().prop_map(|t| Some(ClaimTime::Idle(t))),
        any::<i64>().prop_map(|t| Some(ClaimTime::Time(t))),
    ];
    (
        time,
        prop::option::of(edge_u64()),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(id()),
    )
        .prop_map(
            |(time, retry_count, force, just_id, last_id)| ClaimOptions {
                time,
                retry_count,
                force,
                just_id,
                last_id,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let ids = || prop::collection::vec(id(), 0..4);
    let count = || prop_oneof![Just(0usize), 1usize..5, Just(usize::MAX)];
    let idle = || prop_oneof![Just(0i64), any::<i64>(), Just(i64::MIN), Just(i64::MAX)];
    prop_oneof![
        (id(), prop::option::of(edge_u64())).prop_map(|(i, n)| Op::SetId(i, n)),
        (name(), edge_u64()).prop_map(|(n, t)| Op::CreateConsumer(n, t)),
        name().prop_map(Op::DeleteConsumer),
        (name(), edge_u64()).prop_map(|(n, t)| Op::Touch(n, t)),
        (name(), ids(), edge_u64(), any::<bool>()).prop_map(|(n, mut i, t, noack)| {
            i.sort();
            i.dedup();
            Op::DeliverNew(n, i, t, noack)
        }),
        (name(), id(), count(), edge_u64()).prop_map(|(n, i, c, t)| Op::ReadHistory(n, i, c, t)),
        ids().prop_map(Op::Ack),
        (
            id(),
            id(),
            count(),
            prop::option::of(name()),
            idle(),
            edge_u64()
        )
            .prop_map(|(a, b, c, n, i, t)| Op::PendingRange(a, b, c, n, i, t)),
        (name(), ids(), idle(), edge_u64(), claim_options())
            .prop_map(|(n, i, m, t, o)| Op::Claim(n, i, m, t, o)),
        (name(), id(), count(), idle(), edge_u64(), any::<bool>())
            .prop_map(|(n, s, c, m, t, j)| Op::Autoclaim(n, s, c, m, t, j)),
        (edge_u64(), count()).prop_map(|(t, c)| Op::Views(t, c)),
    ]
}

/// Runs `ops` on `g`; with `keep` (the invariant held to begin with), checks it after
/// each. Entries "exist" when their ms is even.
fn run(
    g: &mut GroupState,
    ops: &[Op],
    facts: &StreamFacts,
    keep: bool,
) -> Result<(), TestCaseError> {
    let exists = |i: EntryId| i.ms.is_multiple_of(2);
    for op in ops {
        match op.clone() {
            Op::SetId(i, n) => g.set_id(i, n),
            Op::CreateConsumer(n, t) => {
                g.create_consumer(&n, t);
            }
            Op::DeleteConsumer(n) => {
                g.delete_consumer(&n);
            }
            Op::Touch(n, t) => g.touch_consumer(&n, t),
            Op::DeliverNew(n, ids, t, noack) => g.deliver_new(&n, &ids, t, noack, facts),
            Op::ReadHistory(n, after, c, t) => {
                g.read_history(&n, after, c, t, exists);
            }
            Op::Ack(ids) => {
                g.ack(&ids);
            }
            Op::PendingRange(a, b, c, n, idle, t) => {
                g.pending_range(a, b, c, n.as_deref(), idle, t);
            }
            Op::Claim(n, ids, min_idle, t, o) => {
                g.claim(&n, &ids, min_idle, t, &o, exists);
            }
            Op::Autoclaim(n, start, c, min_idle, t, j) => {
                g.autoclaim(&n, start, c, min_idle, t, j, exists);
            }
            Op::Views(t, c) => {
                let _ = (g.pending_summary(), g.lag(facts), g.info(facts));
                let _ = (g.consumers_info(t), g.full_info(facts, c));
                let _ = g.pending_of("alice");
            }
        }
        if keep {
            g.check()
                .map_err(|e| TestCaseError::fail(format!("after {op:?}: {e}")))?;
        }
    }
    Ok(())
}

/// Decodes a stored group and uses it as a command would; a refusal has a message.
fn decode_and_run(bytes: &[u8], ops: &[Op], facts: &StreamFacts) -> Result<(), TestCaseError> {
    match serde_json::from_slice::<GroupState>(bytes) {
        Ok(mut g) => {
            let again: GroupState = serde_json::from_slice(&serde_json::to_vec(&g).expect("JSON"))
                .map_err(|e| TestCaseError::fail(format!("does not re-decode: {e}")))?;
            prop_assert_eq!(&again, &g);
            let keep = match g.check() {
                Ok(()) => true,
                Err(e) => {
                    prop_assert!(!e.is_empty());
                    false
                }
            };
            run(&mut g, ops, facts, keep)?;
        }
        Err(e) => prop_assert!(!e.to_string().is_empty(), "an error without a message"),
    }
    Ok(())
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 0..8)
}

proptest! {
    #![proptest_config(fuzzing::config(1000))]

    #[test]
    fn fuzz_group_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..96),
        ops in ops(),
        facts in facts(),
    ) {
        decode_and_run(&bytes, &ops, &facts)?;
    }

    #[test]
    fn fuzz_group_arbitrary_json(value in json_value(), ops in ops(), facts in facts()) {
        decode_and_run(&serde_json::to_vec(&value).expect("JSON"), &ops, &facts)?;
    }

    /// Groups as stored, counters and times at their edges: they decode to themselves
    /// and every command runs on them.
    #[test]
    fn fuzz_group_stored(g in group(), ops in ops(), facts in facts()) {
        let bytes = serde_json::to_vec(&g).expect("JSON");
        prop_assert_eq!(serde_json::from_slice::<GroupState>(&bytes).ok(), Some(g));
        decode_and_run(&bytes, &ops, &facts)?;
    }

    #[test]
    fn fuzz_group_mutated_json(
        g in group(),
        ms in json_mutations(),
        ops in ops(),
        facts in facts(),
    ) {
        let mut doc = serde_json::to_value(&g).expect("JSON");
        mutate_json(&mut doc, &ms);
        decode_and_run(&serde_json::to_vec(&doc).expect("JSON"), &ops, &facts)?;
    }

    #[test]
    fn fuzz_group_mutated_bytes(g in group(), ms in mutations(), ops in ops(), facts in facts()) {
        let mut bytes = serde_json::to_vec(&g).expect("JSON");
        mutate(&mut bytes, &ms);
        decode_and_run(&bytes, &ops, &facts)?;
    }
}
