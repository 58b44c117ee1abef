//! Redis ids as commands give them: the forms each command accepts and Redis's errors
//! for the rest. The id type itself is the engine's [`EntryId`].

pub use crate::engine::entries::EntryId;

/// The id of an `XADD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddId {
    /// `*`: the next id, Redis's way (`<now ms>-0`, or the last id's ms with seq + 1).
    Auto,
    /// `<ms>-*`.
    AutoSeq(u64),
    /// `<ms>-<seq>` or `<ms>` (seq 0).
    Exact(EntryId),
}

/// Where `XREAD` starts on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// `$`: after the key's last entry when the command arrives.
    Last,
    /// After this id.
    After(EntryId),
}

/// Where `XREADGROUP` starts on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupFrom {
    /// `>`: entries never delivered to the group.
    New,
    /// The consumer's own pending entries after this id.
    After(EntryId),
}

/// The id a group starts at (`XGROUP CREATE`/`SETID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStart {
    /// `$`: the key's last id.
    Last,
    Id(EntryId),
}
