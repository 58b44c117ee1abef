//! Listing markers: one empty object per version of a stream catalog entry, whose key
//! holds what a stream listing shows of that version ([`listing`](super::listing) reads
//! them; [`catalog`](super::catalog) writes and deletes them with the entries).

use s2_common::encryption::EncryptionAlgorithm;
use time::OffsetDateTime;
use tracing::debug;

use super::layout;
use crate::storage::{DynStore, ETag};

/// What a stream listing shows of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedStream {
    pub name: String,
    pub created_at: OffsetDateTime,
    pub deleted_at: Option<OffsetDateTime>,
    pub cipher: Option<EncryptionAlgorithm>,
}

/// Keys after an entry's scanned for the markers of one of its versions.
const MARKERS_SCANNED: usize = 32;

/// The marker fields of a listed stream, `<etag hash>_<created>_<deleted|n>_<cipher>`;
/// `None` for times a marker cannot hold exactly (before 1970 or not in UTC), which
/// then always list by GET.
fn marker_fields(listed: &ListedStream, etag: &ETag) -> Option<String> {
    let nanos = |t: OffsetDateTime| {
        (t.offset().is_utc() && t.unix_timestamp_nanos() >= 0).then(|| t.unix_timestamp_nanos())
    };
    let created = nanos(listed.created_at)?;
    let deleted = match listed.deleted_at {
        Some(t) => nanos(t)?.to_string(),
        None => "n".to_owned(),
    };
    let cipher = match listed.cipher {
        None => "n",
        Some(EncryptionAlgorithm::Aegis256) => "a",
        Some(EncryptionAlgorithm::Aes256Gcm) => "g",
    };
    Some(format!(
        "{:016x}_{created}_{deleted}_{cipher}",
        etag_hash(etag)
    ))
}

/// Reads [`marker_fields`] back: the ETag hash and the listed fields but the name.
pub(super) fn parse_marker_fields(
    fields: &str,
) -> Option<(
    u64,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Option<EncryptionAlgorithm>,
)> {
    let mut parts = fields.split('_');
    let (hash, created, deleted, cipher) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || hash.len() != 16 {
        return None;
    }
    let time = |digits: &str| {
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse::<i128>().ok())
            .flatten()
            .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok())
    };
    let deleted = match deleted {
        "n" => None,
        t => Some(time(t)?),
    };
    let cipher = match cipher {
        "n" => None,
        "a" => Some(EncryptionAlgorithm::Aegis256),
        "g" => Some(EncryptionAlgorithm::Aes256Gcm),
        _ => return None,
    };
    Some((
        u64::from_str_radix(hash, 16).ok()?,
        time(created)?,
        deleted,
        cipher,
    ))
}

pub(super) fn etag_hash(etag: &ETag) -> u64 {
    xxhash_rust::xxh3::xxh3_64(etag.as_str().as_bytes())
}

/// The marker key of `entry` as of version `etag`, if its fields fit one.
pub(super) fn marker_key(basin: &str, listed: &ListedStream, etag: &ETag) -> Option<String> {
    let fields = marker_fields(listed, etag)?;
    Some(layout::stream_marker_key(basin, &listed.name, &fields))
}

/// Writes the marker of `entry` as of version `etag`. Best effort: without it the entry
/// lists by GET.
pub(super) async fn write_marker(store: &DynStore, basin: &str, entry: &ListedStream, etag: &ETag) {
    let Some(key) = marker_key(basin, entry, etag) else {
        return;
    };
    if let Err(e) = store.put(&key, bytes::Bytes::new()).await {
        debug!(basin, stream = %entry.name, error = %e, "writing a listing marker failed");
    }
}

/// Deletes the markers of `name`'s entry version `etag` (superseded by the caller).
pub(super) async fn delete_markers(store: &DynStore, basin: &str, name: &str, etag: &ETag) {
    let entry_key = layout::stream_key(basin, name);
    let hash = format!("{:016x}_", etag_hash(etag));
    let result = async {
        // The markers of a name follow its entry key; few versions ever leave one.
        let page = store
            .list(
                &layout::streams_dir(basin),
                Some(&entry_key),
                MARKERS_SCANNED,
            )
            .await?;
        let keys: Vec<String> = page
            .keys
            .into_iter()
            .filter(|k| {
                k.strip_prefix(&entry_key)
                    .is_some_and(|fields| fields.starts_with(&hash))
            })
            .collect();
        if !keys.is_empty() {
            store.delete_many(&keys).await?;
        }
        Ok::<_, crate::storage::StorageError>(())
    }
    .await;
    if let Err(e) = result {
        debug!(basin, stream = name, error = %e, "deleting listing markers failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(deleted: bool, cipher: Option<EncryptionAlgorithm>) -> ListedStream {
        ListedStream {
            name: "s".into(),
            created_at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_000_000)
                .unwrap(),
            deleted_at: deleted
                .then(|| OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()),
            cipher,
        }
    }

    #[test]
    fn marker_fields_read_back() {
        let etag = ETag::new("\"abc\"");
        for (deleted, cipher) in [
            (false, None),
            (true, Some(EncryptionAlgorithm::Aegis256)),
            (false, Some(EncryptionAlgorithm::Aes256Gcm)),
        ] {
            let l = listed(deleted, cipher);
            let fields = marker_fields(&l, &etag).unwrap();
            let (hash, created_at, deleted_at, cipher) = parse_marker_fields(&fields).unwrap();
            assert_eq!(hash, etag_hash(&etag));
            assert_eq!(
                ListedStream {
                    name: "s".into(),
                    created_at,
                    deleted_at,
                    cipher
                },
                l
            );
        }
        for odd in [
            "",
            "x",
            "0123_1_n_n",
            "0123456789abcdef_1_n_z",
            "0123456789abcdef_-1_n_n",
        ] {
            assert!(parse_marker_fields(odd).is_none(), "{odd}");
        }
    }

    #[test]
    fn times_a_marker_cannot_hold_exactly_get_none() {
        let mut l = listed(false, None);
        l.created_at = l
            .created_at
            .to_offset(time::UtcOffset::from_hms(1, 0, 0).unwrap());
        assert!(marker_fields(&l, &ETag::new("e")).is_none());
    }
}
