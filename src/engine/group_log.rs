//! A consumer group as stored: a small *root* object naming the group's log, immutable
//! *checkpoints* (the whole [`GroupState`] as of a log position) and log *records* (what
//! one write changed, a [`GroupDelta`]), so that a write costs what it changes, not the
//! size of the pending entries list. Pure: formats and the arithmetic of deltas; the I/O
//! is [`super::groups`].
//!
//! Positions: a group's state has a position, its `version`. The checkpoint at position
//! `C` holds the state as of `C`; the record at position `p > C` holds the change from
//! `p - 1` to `p`. A record is written with a conditional create at the next position,
//! so exactly one writer wins each position whichever node it runs on.
//!
//! The root (`groups/<name>`) holds the log's `incarnation` (a random id given at
//! `XGROUP CREATE`, naming the directory of its checkpoints and records, so a group
//! destroyed and created again never reads its predecessor's log), the newest checkpoint's
//! position and the one before it. Invariants:
//! - the root's checkpoint positions only grow while its incarnation lives;
//! - records at positions above [`GroupRoot::floor`] and the checkpoints at `checkpoint`
//!   and `previous` are never deleted while the root names them; below, they are garbage;
//! - so a writer that won position `p` and then reads a root of its incarnation with
//!   `p > floor` knows its record was not written into a slot already collected: its win
//!   is real. A root gone, of another incarnation, or with `p <= floor`, voids it.
//!
//! A root in the older form (the whole [`GroupState`] in one object, as Sluice wrote
//! before the log) reads as a checkpoint at its `version` of incarnation 0, inline; the
//! first checkpoint replaces it with a root in the current form (incarnation 0 still).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    entries::EntryId,
    group_state::{Consumer, GroupState, Pending, id_text, pel_json},
};

/// What one write changed in a group; applying it to the state it was taken from gives
/// the state written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDelta {
    /// The new `last-delivered-id` and `entries-read`, when either changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<Counters>,
    /// Pending entries added or changed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "pel_json")]
    pub pending: BTreeMap<EntryId, Pending>,
    /// Pending entries removed (acknowledged, or gone with their consumer).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "id_list")]
    pub acked: Vec<EntryId>,
    /// Consumers added or seen.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consumers: BTreeMap<String, Consumer>,
    /// Consumers deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gone: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    #[serde(with = "id_text")]
    pub last_id: EntryId,
    pub entries_read: Option<u64>,
}

/// The changed keys of two sorted maps: `(added or changed, removed)`, in one walk.
fn diff_maps<'a, K: Ord + Clone, V: PartialEq + Clone>(
    old: &'a BTreeMap<K, V>,
    new: &'a BTreeMap<K, V>,
) -> (BTreeMap<K, V>, Vec<K>) {
    let (mut put, mut removed) = (BTreeMap::new(), Vec::new());
    let (mut o, mut n) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (o.peek(), n.peek()) {
            (None, None) => break,
            (Some((k, _)), None) => {
                removed.push((*k).clone());
                o.next();
            }
            (None, Some((k, v))) => {
                put.insert((*k).clone(), (*v).clone());
                n.next();
            }
            (Some((ko, vo)), Some((kn, vn))) => match ko.cmp(kn) {
                std::cmp::Ordering::Less => {
                    removed.push((*ko).clone());
                    o.next();
                }
                std::cmp::Ordering::Greater => {
                    put.insert((*kn).clone(), (*vn).clone());
                    n.next();
                }
                std::cmp::Ordering::Equal => {
                    if vo != vn {
                        put.insert((*kn).clone(), (*vn).clone());
                    }
                    o.next();
                    n.next();
                }
            },
        }
    }
    (put, removed)
}

impl GroupDelta {
    /// What changed from `old` to `new` (the `version` aside: a record's position is its
    /// version).
    pub fn between(old: &GroupState, new: &GroupState) -> Self {
        let counters = (old.last_id != new.last_id || old.entries_read != new.entries_read)
            .then_some(Counters {
                last_id: new.last_id,
                entries_read: new.entries_read,
            });
        let (pending, acked) = diff_maps(&old.pending, &new.pending);
        let (consumers, gone) = diff_maps(&old.consumers, &new.consumers);
        Self {
            counters,
            pending,
            acked,
            consumers,
            gone,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Applies the change to the state it was taken from (removals first, then additions).
    pub fn apply(&self, g: &mut GroupState) {
        if let Some(c) = self.counters {
            g.last_id = c.last_id;
            g.entries_read = c.entries_read;
        }
        for id in &self.acked {
            g.pending.remove(id);
        }
        for name in &self.gone {
            g.consumers.remove(name);
        }
        g.pending
            .extend(self.pending.iter().map(|(k, v)| (*k, v.clone())));
        g.consumers
            .extend(self.consumers.iter().map(|(k, v)| (k.clone(), *v)));
    }
}

/// One log record, at `position`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub position: u64,
    pub delta: GroupDelta,
}

/// The root object of a group in its current form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRoot {
    pub name: String,
    /// Names the directory of this group's log: random, or 0 for a group first stored in
    /// the older form.
    #[serde(with = "hex_u64")]
    pub incarnation: u64,
    /// The newest checkpoint's position.
    pub checkpoint: u64,
    /// The checkpoint before it, kept for readers that started from it.
    #[serde(default)]
    pub previous: Option<u64>,
}

impl GroupRoot {
    /// Records at or below this position may have been collected.
    pub fn floor(&self) -> u64 {
        self.previous.unwrap_or(0)
    }
}

/// A root object as read: the current form, or the older whole group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootForm {
    Log(GroupRoot),
    /// The older form: the group itself, a checkpoint at its `version`, incarnation 0.
    Inline(GroupState),
}

impl RootForm {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        match serde_json::from_slice::<GroupRoot>(bytes) {
            Ok(root) => Ok(Self::Log(root)),
            Err(root_error) => match serde_json::from_slice::<GroupState>(bytes) {
                Ok(g) => Ok(Self::Inline(g)),
                Err(e) => Err(format!(
                    "neither a group root ({root_error}) nor a group ({e})"
                )),
            },
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Log(r) => &r.name,
            Self::Inline(g) => &g.name,
        }
    }

    pub fn incarnation(&self) -> u64 {
        match self {
            Self::Log(r) => r.incarnation,
            Self::Inline(_) => 0,
        }
    }

    pub fn checkpoint(&self) -> u64 {
        match self {
            Self::Log(r) => r.checkpoint,
            Self::Inline(g) => g.version,
        }
    }

    pub fn floor(&self) -> u64 {
        match self {
            Self::Log(r) => r.floor(),
            Self::Inline(_) => 0,
        }
    }
}

/// A `u64` as 16 hex digits.
mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{n:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        u64::from_str_radix(&text, 16).map_err(|_| D::Error::custom("not 16 hex digits"))
    }
}

/// Ids as a list of `<ms>-<seq>` strings.
mod id_list {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{EntryId, id_text};

    pub fn serialize<S: Serializer>(ids: &[EntryId], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ids.iter().map(|id| id.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<EntryId>, D::Error> {
        Vec::<std::borrow::Cow<str>>::deserialize(d)?
            .iter()
            .map(|t| id_text::parse(t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn group(pending: &[(u64, &str, u64)], consumers: &[(&str, u64)]) -> GroupState {
        let mut g = GroupState::new("g", EntryId::new(5, 0), Some(5));
        for (ms, c, n) in pending {
            g.pending.insert(
                EntryId::new(*ms, 0),
                Pending {
                    consumer: (*c).into(),
                    delivered_ms: 100,
                    deliveries: *n,
                },
            );
        }
        for (c, seen) in consumers {
            g.consumers.insert((*c).into(), Consumer { seen_ms: *seen });
        }
        g
    }

    #[test]
    fn a_delta_names_only_what_changed() {
        let old = group(
            &[(1, "a", 1), (2, "a", 1), (3, "b", 1)],
            &[("a", 1), ("b", 1)],
        );
        let new = group(&[(2, "a", 2), (3, "b", 1), (4, "b", 1)], &[("b", 9)]);
        let d = GroupDelta::between(&old, &new);
        assert_eq!(d.acked, vec![EntryId::new(1, 0)]);
        assert_eq!(
            d.pending.keys().copied().collect::<Vec<_>>(),
            vec![EntryId::new(2, 0), EntryId::new(4, 0)]
        );
        assert_eq!(d.gone, vec!["a".to_owned()]);
        assert_eq!(d.consumers.len(), 1);
        assert_eq!(d.counters, None);
        let mut applied = old.clone();
        d.apply(&mut applied);
        assert_eq!(applied, new);
        assert!(GroupDelta::between(&new, &new).is_empty());
    }

    #[test]
    fn roots_of_both_forms_parse() {
        let root = GroupRoot {
            name: "g".into(),
            incarnation: 0xabc,
            checkpoint: 7,
            previous: Some(3),
        };
        let bytes = serde_json::to_vec(&root).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("\"0000000000000abc\""));
        assert_eq!(RootForm::parse(&bytes), Ok(RootForm::Log(root)));
        let old = group(&[(1, "a", 1)], &[("a", 1)]);
        let form = RootForm::parse(&serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!((form.incarnation(), form.checkpoint()), (0, old.version));
        assert_eq!(form, RootForm::Inline(old));
        assert!(RootForm::parse(b"{}").is_err());
    }

    fn arbitrary_group() -> impl Strategy<Value = GroupState> {
        let names = prop::sample::select(vec!["a", "b", "c"]);
        (
            prop::collection::btree_map(0u64..20, (names.clone(), 0u64..3), 0..12),
            prop::collection::btree_map(names, 0u64..3, 0..3),
            0u64..4,
            prop::option::of(0u64..4),
        )
            .prop_map(|(pending, consumers, last, read)| {
                let mut g = GroupState::new("g", EntryId::new(last, 0), read);
                g.pending = pending
                    .into_iter()
                    .map(|(ms, (c, n))| {
                        let p = Pending {
                            consumer: c.into(),
                            delivered_ms: 1,
                            deliveries: n,
                        };
                        (EntryId::new(ms, 0), p)
                    })
                    .collect();
                g.consumers = consumers
                    .into_iter()
                    .map(|(c, s)| (c.to_owned(), Consumer { seen_ms: s }))
                    .collect();
                g
            })
    }

    proptest! {
        /// Any delta, through its JSON, turns the state it was taken from into the other.
        #[test]
        fn a_delta_through_json_reproduces_the_state(old in arbitrary_group(), new in arbitrary_group()) {
            let d = GroupDelta::between(&old, &new);
            let record = LogRecord { position: 9, delta: d };
            let bytes = serde_json::to_vec(&record).unwrap();
            let back: LogRecord = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(&back, &record);
            let mut applied = old.clone();
            back.delta.apply(&mut applied);
            applied.version = new.version;
            prop_assert_eq!(applied, new);
        }
    }
}
