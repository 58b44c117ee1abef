//! The bucket, one page: every kind of object Sluice writes, its key, who writes it,
//! whether it ever changes, and how it is encoded. Anyone debugging a bucket starts here.
//!
//! | key | kind | written by | mutability | encoding |
//! |---|---|---|---|---|
//! | `basins/<encoded name>` | basin catalog entry | control plane | replaced with `If-Match`, created with `If-None-Match` | JSON [`catalog::BasinEntry`](super::catalog::BasinEntry), `version` bumps on every write |
//! | `streams/<basin>/<encoded name>` | stream catalog entry | control plane | as above | JSON [`catalog::StreamEntry`](super::catalog::StreamEntry) |
//! | `streams/<basin>/<encoded name><etag hash>_<created>_<deleted or n>_<cipher>` | listing marker of one version of a stream catalog entry: what a stream listing shows of it, for the version whose ETag hashes (xxh3-64) to `<etag hash>`; times in ns since the epoch, cipher `n`/`a`(egis-256)/`g` (aes-256-gcm) | the writer of that version, after writing it; a listing that had to read the entry | empty, never changed; deleted by whoever supersedes or removes that version | the key ([`listing`](super::listing)) |
//! | `access-tokens/<encoded id>` | access token: its info and the SHA-256 of its secret, never the secret | issue and revoke requests | created with `If-None-Match`, deleted on revoke | JSON [`catalog::AccessTokenEntry`](super::catalog::AccessTokenEntry) |
//! | `data/<stream-id>/manifest` | stream manifest: tail, fencing token, trim point, config, chunk index, and the bytes of recent small chunks not yet written out in a pack (at most 32 chunks, 1 MiB) | the stream's appender; reconfigure, delete | replaced with `If-Match`, created with `If-None-Match` | [`manifest`](super::manifest) format 1 |
//! | (inside the manifest) | entry bookkeeping of the Redis surface: the last entry id, command records counted, entries deleted one by one (`XDEL`) as `[start, end)` seq_num ranges, the largest deleted id, where nodes of 100 entries begin (see below) | the appender (ids), `XDEL`/`XTRIM` through [`Engine::modify_entries`](super::Engine::modify_entries) | with the manifest | [`entries::EntryState`](super::entries::EntryState), manifest field 14 |
//! | `data/<stream-id>/chunks/<first-seq>-<commit>` | records of one commit | the stream's appender | immutable, key never reused | [`chunk`](super::chunk) format 1 |
//! | `data/<stream-id>/chunks/<first-seq>-<pack-id>` | a pack: consecutive small commits' chunks, back to back, written out of the manifest that carried them (after their acks, before a manifest drops their bytes); `<first-seq>` is the newest member's | the stream's appender | immutable, key never reused | chunks in [`chunk`](super::chunk) format 1, located by [`manifest::PackLoc`](super::manifest::PackLoc) |
//! | `data/<stream-id>/groups/<encoded name>` | a consumer group's root: its log's incarnation, newest checkpoint and the one before (or, as Sluice wrote it before the log, the whole group) | `XGROUP CREATE`, checkpoints | created with `If-None-Match`, replaced with `If-Match` by checkpoints, deleted with the group or the stream | JSON [`group_log::GroupRoot`](super::group_log::GroupRoot) (older: [`group_state::GroupState`](super::group_state::GroupState)) |
//! | `data/<stream-id>/group-logs/<encoded name>/<incarnation>/r-<position>` | a consumer group's log record: what one write of the group changed | the group commands (one write per batch, [`groups`](super::groups)) | created with `If-None-Match` at the next position, never changed; deleted once two checkpoints are above it, with the group or the stream | JSON [`group_log::LogRecord`](super::group_log::LogRecord) |
//! | `data/<stream-id>/group-logs/<encoded name>/<incarnation>/c-<position>` | a consumer group's checkpoint: the whole group as of a log position | whichever node's writes made one due, off the commands' path | immutable; deleted once it is neither the root's checkpoint nor the one before | JSON [`group_state::GroupState`](super::group_state::GroupState) |
//! | `data/<stream-id>/index/<first-seq>-<commit>` | chunk references folded out of the manifest | the stream's appender | immutable | [`manifest`](super::manifest) index segment |
//! | `usage/minutes/<hour>/<node>` | one node's usage in one hour, by minute: appends and reads per stream, control-plane operations per basin and for the account, stored-bytes samples | that node's usage flush ([`usage`](super::usage)) | rewritten whole by its one writer at each flush while the hour is current, then left alone | JSON [`usage::object`](super::usage) format 1 |
//! | `usage/hours/<day>/<node>` | the same, one day by hour | as above | as above | as above |
//!
//! Entries (the Redis surface's view of a stream): every record that is not a command has
//! an id, carried in an id header or derived as `<timestamp>-<seq_num>`
//! ([`entries`](super::entries)), strictly increasing with seq_num. Deleting an entry
//! (`XDEL`) leaves the record in place and adds its seq_num to the manifest's deleted
//! ranges, so a deletion is one conditional manifest write, seen by every node with the
//! manifest, and survives restarts; ranges below the trim point are dropped. Trimming
//! (`XTRIM`, `XADD … MAXLEN`) moves the manifest's trim point, as an S2 trim does, without
//! a command record. Nodes are runs of 100 seq_nums from each node start, which is how
//! approximate trims (`~`) count whole nodes as Redis does.
//!
//! Encrypted streams (the stream entry's `cipher`): every record that is not a command is
//! stored sealed in chunks and packs, and so in manifests' inline chunks
//! ([`crypt`](super::crypt) has the envelope, [`record::Sealed`](super::record::Sealed)
//! how a chunk holds it). No object holds such a record's headers or body in plaintext,
//! nor the key.
//!
//! Names in catalog keys use an order-preserving encoding ([`encode_name`]) so that a LIST
//! with `start-after` returns basins and streams in the byte order S2 promises. Stream data
//! lives under an immutable random id, never the name, so a deleted stream's data can be
//! removed while a new stream of the same name is already in use.
//!
//! `<hour>` and `<day>` are the period's start in epoch seconds, zero-padded to 10 digits
//! so that usage keys sort by time; `<node>` is the writing process's random id.
//!
//! `<first-seq>` is zero-padded to 20 digits and `<commit>` is 16 hex digits, so chunk and
//! segment keys sort by sequence number; so are a group log's `<position>` and
//! `<incarnation>`, so its records sort by position.
//!
//! Objects nothing references (orphans: a failed commit attempt's chunk, a pack or segment
//! whose manifest write lost, objects written after their stream's deletion began) are
//! found by [`reach`](super::reach), the one definition of what is reachable, which
//! `sluice verify` reports from and upkeep deletes by once they are older than a grace
//! period. [`parse_data_key`] reads the keys above back.

const BASINS: &str = "basins/";
const STREAMS: &str = "streams/";
const DATA: &str = "data/";
const ACCESS_TOKENS: &str = "access-tokens/";
const USAGE: &str = "usage/";

/// Characters per path segment of an encoded name: keeps file names short on local disks.
const SEGMENT_CHARS: usize = 128;
const TERMINATOR: char = '.';
const BASE32HEX: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// Order-preserving encoding of a name into key characters: lowercase base32hex without
/// padding (whose alphabet is in ASCII order), split into segments of 128 characters by
/// `/`, terminated by `.`. For names `a < b` (bytewise), `encode_name(a) < encode_name(b)`,
/// and no encoded name is a prefix of another, so a file never shares its path with a
/// directory on a local disk.
pub fn encode_name(name: &str) -> String {
    let mut out = encode_determined(name.as_bytes(), true);
    out.push(TERMINATOR);
    out
}

/// The longest key-character prefix shared by the encodings of all names that start with
/// `prefix`.
pub fn encode_name_prefix(prefix: &str) -> String {
    encode_determined(prefix.as_bytes(), false)
}

/// Inverse of [`encode_name`]; `None` for text that no name encodes to.
pub fn decode_name(encoded: &str) -> Option<String> {
    let body = encoded.strip_suffix(TERMINATOR)?;
    let mut bytes = Vec::with_capacity(body.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes().filter(|&c| c != b'/') {
        let v = BASE32HEX.iter().position(|&a| a == c)? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    String::from_utf8(bytes).ok()
}

/// Base32hex of `bytes`; with `pad_last`, a final partial character is emitted with zero
/// bits, otherwise only characters fully determined by `bytes` are.
fn encode_determined(bytes: &[u8], pad_last: bool) -> String {
    let mut chars = Vec::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            chars.push(BASE32HEX[((acc >> bits) & 31) as usize]);
        }
        acc &= (1 << bits) - 1;
    }
    if pad_last && bits > 0 {
        chars.push(BASE32HEX[((acc << (5 - bits)) & 31) as usize]);
    }
    let mut out = String::with_capacity(chars.len() + chars.len() / SEGMENT_CHARS + 1);
    for (i, segment) in chars.chunks(SEGMENT_CHARS).enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(std::str::from_utf8(segment).expect("ascii"));
    }
    out
}

pub fn basins_dir() -> &'static str {
    BASINS
}

pub fn basin_key(basin: &str) -> String {
    format!("{BASINS}{}", encode_name(basin))
}

pub fn streams_dir(basin: &str) -> String {
    format!("{STREAMS}{basin}/")
}

pub fn stream_key(basin: &str, stream: &str) -> String {
    format!("{STREAMS}{basin}/{}", encode_name(stream))
}

/// A listing marker of a stream catalog entry version: the entry's key followed by the
/// marker's fields ([`listing`](super::listing)), so it sorts right after the entry and
/// before the next name's.
pub fn stream_marker_key(basin: &str, stream: &str, fields: &str) -> String {
    format!("{}{fields}", stream_key(basin, stream))
}

/// The stream name a key under a basin's streams directory stands for, and the marker
/// fields after the name if it is no catalog entry key.
pub fn stream_listing_key(dir: &str, key: &str) -> Option<(String, Option<String>)> {
    let rest = key.strip_prefix(dir)?;
    let end = rest.find(TERMINATOR)? + TERMINATOR.len_utf8();
    let (encoded, fields) = rest.split_at(end);
    let name = decode_name(encoded)?;
    Some((name, (!fields.is_empty()).then(|| fields.to_owned())))
}

/// Whether `key` is a stream listing marker (under `streams/<basin>/`, after a name).
pub fn is_stream_marker(key: &str) -> bool {
    key.strip_prefix(STREAMS)
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(_, rest)| stream_listing_key("", rest))
        .is_some_and(|(_, fields)| fields.is_some())
}

pub fn access_tokens_dir() -> &'static str {
    ACCESS_TOKENS
}

pub fn access_token_key(id: &str) -> String {
    format!("{ACCESS_TOKENS}{}", encode_name(id))
}

pub fn stream_data_dir(stream_id: &str) -> String {
    format!("{DATA}{stream_id}/")
}

pub fn manifest_key(stream_id: &str) -> String {
    format!("{DATA}{stream_id}/manifest")
}

pub fn chunk_key(stream_id: &str, first_seq: u64, commit: u64) -> String {
    format!("{DATA}{stream_id}/chunks/{first_seq:020}-{commit:016x}")
}

pub fn groups_dir(stream_id: &str) -> String {
    format!("{DATA}{stream_id}/groups/")
}

pub fn group_key(stream_id: &str, group: &str) -> String {
    format!("{DATA}{stream_id}/groups/{}", encode_name(group))
}

/// Every object of every incarnation of a group's log.
pub fn group_log_dir(stream_id: &str, group: &str) -> String {
    format!("{DATA}{stream_id}/group-logs/{}/", encode_name(group))
}

/// The objects of one incarnation of a group's log.
pub fn group_incarnation_dir(stream_id: &str, group: &str, incarnation: u64) -> String {
    format!("{}{incarnation:016x}/", group_log_dir(stream_id, group))
}

/// A group's log record at `position`.
pub fn group_record_key(stream_id: &str, group: &str, incarnation: u64, position: u64) -> String {
    let dir = group_incarnation_dir(stream_id, group, incarnation);
    format!("{dir}{GROUP_RECORD}{position:020}")
}

/// A group's checkpoint at `position`.
pub fn group_checkpoint_key(
    stream_id: &str,
    group: &str,
    incarnation: u64,
    position: u64,
) -> String {
    let dir = group_incarnation_dir(stream_id, group, incarnation);
    format!("{dir}{GROUP_CHECKPOINT}{position:020}")
}

const GROUP_RECORD: &str = "r-";
const GROUP_CHECKPOINT: &str = "c-";

pub fn segment_key(stream_id: &str, first_seq: u64, commit: u64) -> String {
    format!("{DATA}{stream_id}/index/{first_seq:020}-{commit:016x}")
}

/// The usage objects of one granularity (`minutes`, `hours`).
pub fn usage_dir(granularity: &str) -> String {
    format!("{USAGE}{granularity}/")
}

/// Where the usage objects of the period starting at `start` begin; every one of them
/// sorts after it.
pub fn usage_period_prefix(granularity: &str, start: u32) -> String {
    format!("{USAGE}{granularity}/{start:010}/")
}

pub fn usage_key(granularity: &str, start: u32, node: &str) -> String {
    format!("{USAGE}{granularity}/{start:010}/{node}")
}

/// The period start a usage key names.
pub fn usage_period_in_key(granularity: &str, key: &str) -> Option<u32> {
    let rest = key.strip_prefix(USAGE)?.strip_prefix(granularity)?;
    let (start, node) = rest.strip_prefix('/')?.split_once('/')?;
    (start.len() == 10 && !node.is_empty())
        .then(|| start.parse().ok())
        .flatten()
}

/// The first seq_num a chunk, pack or segment key names (`…/<first-seq>-<commit>`).
pub fn first_seq_in_key(key: &str) -> Option<u64> {
    key.rsplit('/').next()?.split('-').next()?.parse().ok()
}

/// The name a key under `dir` (a catalog or groups directory) stands for.
pub fn name_in_dir(dir: &str, key: &str) -> Option<String> {
    key.strip_prefix(dir).and_then(decode_name)
}

/// What a key under `data/<stream-id>/` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataObject {
    Manifest,
    /// A chunk object or a pack (the key does not tell them apart): `<seq>-<id>`.
    Chunk {
        first_seq: u64,
        id: u64,
    },
    /// An index segment: `<first-seq>-<commit>`.
    Segment {
        first_seq: u64,
        commit: u64,
    },
    /// A consumer group's root, by its decoded name.
    Group {
        name: String,
    },
    /// A record or checkpoint of a consumer group's log.
    GroupLog {
        name: String,
        incarnation: u64,
        entry: GroupLogEntry,
    },
    /// Under a stream's directory but no key Sluice writes.
    Unknown,
}

/// What an object of a group's log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupLogEntry {
    Record(u64),
    Checkpoint(u64),
}

/// `<encoded name><incarnation>/<r-|c-><position>` under `group-logs/`.
fn parse_group_log(rest: &str) -> Option<DataObject> {
    let mut parts = rest.rsplitn(3, '/');
    let (leaf, incarnation, name) = (parts.next()?, parts.next()?, parts.next()?);
    let position = |digits: &str| {
        (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    };
    let entry = if let Some(p) = leaf.strip_prefix(GROUP_RECORD) {
        GroupLogEntry::Record(position(p)?)
    } else {
        GroupLogEntry::Checkpoint(position(leaf.strip_prefix(GROUP_CHECKPOINT)?)?)
    };
    let hex = incarnation.len() == 16
        && incarnation
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    Some(DataObject::GroupLog {
        name: decode_name(name)?,
        incarnation: hex
            .then(|| u64::from_str_radix(incarnation, 16).ok())
            .flatten()?,
        entry,
    })
}

/// The stream id and object a key under `data/` names; `None` if the key is not under
/// `data/<stream-id>/`.
pub fn parse_data_key(key: &str) -> Option<(&str, DataObject)> {
    let (id, rest) = key.strip_prefix(DATA)?.split_once('/')?;
    if id.is_empty() {
        return None;
    }
    let seq_and_hex = |name: &str| -> Option<(u64, u64)> {
        let (seq, hex) = name.split_once('-')?;
        let digits = |s: &str, n: usize, radix: u32| {
            s.len() == n
                && s.chars()
                    .all(|c| c.is_digit(radix) && !c.is_ascii_uppercase())
        };
        if !digits(seq, 20, 10) || !digits(hex, 16, 16) {
            return None;
        }
        Some((seq.parse().ok()?, u64::from_str_radix(hex, 16).ok()?))
    };
    let object = if rest == "manifest" {
        DataObject::Manifest
    } else if let Some(name) = rest.strip_prefix("chunks/") {
        seq_and_hex(name).map_or(DataObject::Unknown, |(first_seq, id)| DataObject::Chunk {
            first_seq,
            id,
        })
    } else if let Some(name) = rest.strip_prefix("index/") {
        seq_and_hex(name).map_or(DataObject::Unknown, |(first_seq, commit)| {
            DataObject::Segment { first_seq, commit }
        })
    } else if let Some(name) = rest.strip_prefix("groups/") {
        decode_name(name).map_or(DataObject::Unknown, |name| DataObject::Group { name })
    } else if let Some(rest) = rest.strip_prefix("group-logs/") {
        parse_group_log(rest).unwrap_or(DataObject::Unknown)
    } else {
        DataObject::Unknown
    };
    Some((id, object))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn keys_name_their_first_seq_num() {
        assert_eq!(first_seq_in_key(&chunk_key("abc", 42, 255)), Some(42));
        assert_eq!(first_seq_in_key(&segment_key("abc", 7, 1)), Some(7));
        assert_eq!(first_seq_in_key(&manifest_key("abc")), None);
    }

    #[test]
    fn usage_keys_sort_by_period_and_name_it() {
        let key = usage_key("minutes", 3600, "n1");
        assert_eq!(key, "usage/minutes/0000003600/n1");
        assert_eq!(usage_period_in_key("minutes", &key), Some(3600));
        assert_eq!(usage_period_in_key("hours", &key), None);
        assert!(usage_key("minutes", 7200, "a") > usage_key("minutes", 3600, "z"));
        assert!(usage_period_prefix("minutes", 3599) < key);
        assert!(usage_period_prefix("minutes", 3600) < key);
    }

    #[test]
    fn stream_markers_sort_after_their_entry_and_before_the_next_name() {
        let dir = streams_dir("b");
        let long = "x".repeat(300);
        for (a, b) in [
            ("a", "a-"),
            ("a", "b"),
            (long.as_str(), "y"),
            ("a", "a\u{7f}"),
        ] {
            let marker = stream_marker_key("b", a, "00_1_n_n");
            assert!(stream_key("b", a) < marker && marker < stream_key("b", b));
            assert_eq!(
                stream_listing_key(&dir, &marker),
                Some((a.to_owned(), Some("00_1_n_n".to_owned())))
            );
            assert_eq!(
                stream_listing_key(&dir, &stream_key("b", a)),
                Some((a.to_owned(), None))
            );
        }
        assert_eq!(stream_listing_key(&dir, "streams/b/zz"), None);
        assert!(is_stream_marker(&stream_marker_key("b", "a", "00_1_n_n")));
        assert!(!is_stream_marker(&stream_key("b", "a")));
        assert!(!is_stream_marker(&basin_key("a")));
    }

    #[test]
    fn encodes_names_readably_enough() {
        assert_eq!(encode_name("a"), "c4.");
        assert_eq!(decode_name("c4.").as_deref(), Some("a"));
        assert_eq!(decode_name("c4"), None);
        assert_eq!(decode_name("zz."), None);
    }

    #[test]
    fn long_names_are_split_into_segments() {
        let name = "x".repeat(512);
        let key = encode_name(&name);
        assert!(key.split('/').all(|s| s.len() <= SEGMENT_CHARS + 1));
        assert_eq!(decode_name(&key).unwrap(), name);
        assert!(stream_key("my-basin-1", &name).len() < 1024);
    }

    #[test]
    fn data_keys_parse_back() {
        assert_eq!(
            parse_data_key(&manifest_key("s1")),
            Some(("s1", DataObject::Manifest))
        );
        assert_eq!(
            parse_data_key(&chunk_key("s1", 42, 0xff)),
            Some((
                "s1",
                DataObject::Chunk {
                    first_seq: 42,
                    id: 0xff
                }
            ))
        );
        assert_eq!(
            parse_data_key(&segment_key("s1", 7, u64::MAX)),
            Some((
                "s1",
                DataObject::Segment {
                    first_seq: 7,
                    commit: u64::MAX
                }
            ))
        );
        let long = "g".repeat(300);
        assert_eq!(
            parse_data_key(&group_key("s1", &long)),
            Some(("s1", DataObject::Group { name: long }))
        );
        for odd in [
            "data/s1/chunks/42-ff",
            "data/s1/chunks/00000000000000000042-00000000000000FF",
            "data/s1/index/x",
            "data/s1/groups/zz.",
            "data/s1/other",
        ] {
            assert_eq!(
                parse_data_key(odd),
                Some(("s1", DataObject::Unknown)),
                "{odd}"
            );
        }
        assert_eq!(parse_data_key("basins/c4."), None);
        assert_eq!(parse_data_key("data/"), None);
    }

    proptest! {
        #[test]
        fn encoding_preserves_byte_order(a in "\\PC{1,200}", b in "\\PC{1,200}") {
            let (ea, eb) = (encode_name(&a), encode_name(&b));
            prop_assert_eq!(a.as_bytes().cmp(b.as_bytes()), ea.cmp(&eb));
            prop_assert_eq!(decode_name(&ea).unwrap(), a);
        }

        #[test]
        fn prefix_encoding_is_a_prefix_of_every_match(p in "\\PC{0,150}", rest in "\\PC{0,150}") {
            let name = format!("{p}{rest}");
            prop_assume!(!name.is_empty());
            prop_assert!(encode_name(&name).starts_with(&encode_name_prefix(&p)));
        }

        #[test]
        fn no_encoding_is_a_path_prefix_of_another(a in "[a-z]{1,300}", b in "[a-z]{1,300}") {
            prop_assume!(a != b);
            let (ea, eb) = (encode_name(&a), encode_name(&b));
            prop_assert!(!eb.starts_with(&ea));
            let dir = format!("{}/", ea);
            prop_assert!(!eb.starts_with(&dir));
        }
    }
}
