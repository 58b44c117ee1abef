//! Stream listings from the store's LIST alone.
//!
//! A stream listing shows a stream's name, creation and deletion times and cipher. Every
//! version of a stream catalog entry gets a listing marker: an empty object next to the
//! entry whose key holds those fields and a hash of the entry version's ETag
//! ([`layout::stream_marker_key`]). The entry stays the one truth, created with
//! `If-None-Match` and replaced with `If-Match` exactly as before; a marker only says
//! "the entry version with this ETag shows these fields", which stays true for ever, so
//! writing one never races with anything.
//!
//! A listing pages through the basin's `streams/<basin>/` directory. A name's entry key
//! is a prefix of its markers' keys, so each name's entry comes first, then its markers,
//! and the next name after all of them ([`layout::encode_name`] keeps names in order and
//! no encoded name is a prefix of another). A name lists with the fields of the marker
//! whose ETag hash matches the ETag the LIST reports for its entry. Where none matches
//! (an entry written by a Sluice without markers, a marker not yet written or lost to a
//! crash, a backend whose LIST does not tell the version), that entry alone is read with
//! a GET, as every entry was before, and its marker written for the next listing if the
//! LIST told the version (so that a marker will match): old buckets migrate entry by
//! entry as they are listed. Markers without an entry, or with another version's hash,
//! list nothing.
//!
//! Whoever supersedes an entry version deletes that version's markers: the replacing
//! write (deletion marks) and the removal. A marker left by a crash in between is
//! harmless and never matches again, since every entry write changes its bytes (`version`)
//! and so its ETag.

use futures::{StreamExt, TryStreamExt};
use s2_common::encryption::EncryptionAlgorithm;
use time::OffsetDateTime;
use tracing::debug;

use super::{
    catalog::{Catalog, StreamEntry},
    error::EngineResult,
    layout,
};
use crate::storage::{DynStore, ETag, ListedObject};

/// What a stream listing shows of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedStream {
    pub name: String,
    pub created_at: OffsetDateTime,
    pub deleted_at: Option<OffsetDateTime>,
    pub cipher: Option<EncryptionAlgorithm>,
}

impl From<&StreamEntry> for ListedStream {
    fn from(e: &StreamEntry) -> Self {
        Self {
            name: e.name.clone(),
            created_at: e.created_at,
            deleted_at: e.deleted_at,
            cipher: e.cipher,
        }
    }
}

/// Entries read at once where a listing falls back to GETs.
const FALLBACK_CONCURRENCY: usize = 32;
/// Keys after an entry's scanned for the markers of one of its versions.
const MARKERS_SCANNED: usize = 32;
/// Keys per LIST request: S3's largest page.
const LIST_PAGE: usize = 1000;

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
fn parse_marker_fields(
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

fn etag_hash(etag: &ETag) -> u64 {
    xxhash_rust::xxh3::xxh3_64(etag.as_str().as_bytes())
}

/// The marker key of `entry` as of version `etag`, if its fields fit one.
pub(super) fn marker_key(basin: &str, entry: &StreamEntry, etag: &ETag) -> Option<String> {
    let fields = marker_fields(&ListedStream::from(entry), etag)?;
    Some(layout::stream_marker_key(basin, &entry.name, &fields))
}

/// Writes the marker of `entry` as of version `etag`. Best effort: without it the entry
/// lists by GET.
pub(super) async fn write_marker(store: &DynStore, basin: &str, entry: &StreamEntry, etag: &ETag) {
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

/// One name's objects in a listing: its entry (with the version the LIST reported) and
/// its markers' fields.
struct Group {
    name: String,
    entry: Option<(String, Option<ETag>)>,
    markers: Vec<String>,
}

/// A listed stream, or the entry key to read for it and whether its marker is missing
/// (the LIST told the entry's version, and no marker has it).
enum Resolved {
    Listed(ListedStream),
    Read { key: String, marker_missing: bool },
}

impl Group {
    /// `None` for a name without an entry (markers only).
    fn resolve(self) -> Option<Resolved> {
        let (key, etag) = self.entry?;
        let marker_missing = etag.is_some();
        let found = etag.and_then(|etag| {
            let hash = etag_hash(&etag);
            self.markers
                .iter()
                .filter_map(|m| parse_marker_fields(m))
                .find(|(h, ..)| *h == hash)
        });
        Some(match found {
            Some((_, created_at, deleted_at, cipher)) => Resolved::Listed(ListedStream {
                name: self.name,
                created_at,
                deleted_at,
                cipher,
            }),
            None => Resolved::Read {
                key,
                marker_missing,
            },
        })
    }
}

impl Catalog {
    /// Streams of `basin` whose names start with `prefix` and sort after `start_after`, in
    /// name order, at most `limit`, and whether more match.
    pub async fn list_streams(
        &self,
        basin: &str,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> EngineResult<(Vec<ListedStream>, bool)> {
        let dir = layout::streams_dir(basin);
        let (resolved, more) = self.list_groups(&dir, prefix, start_after, limit).await?;
        let store = self.store();
        let listed: Vec<Option<ListedStream>> = futures::stream::iter(resolved)
            .map(|r| async move {
                match r {
                    Resolved::Listed(l) => Ok::<_, super::EngineError>(Some(l)),
                    Resolved::Read {
                        key,
                        marker_missing,
                    } => {
                        // Removed between LIST and GET: simply no longer there.
                        let Some(v) = self.get::<StreamEntry>(&key).await? else {
                            return Ok(None);
                        };
                        if marker_missing {
                            write_marker(store, basin, &v.entry, &v.etag).await;
                        }
                        Ok(Some(ListedStream::from(&v.entry)))
                    }
                }
            })
            .buffered(FALLBACK_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
        Ok((listed.into_iter().flatten().collect(), more))
    }

    /// Every stream of `basin` as a listing shows it, in name order.
    pub async fn all_listed_streams(&self, basin: &str) -> EngineResult<Vec<ListedStream>> {
        let mut out: Vec<ListedStream> = Vec::new();
        loop {
            let after = out.last().map(|l| l.name.clone()).unwrap_or_default();
            let (page, more) = self.list_streams(basin, "", &after, LIST_PAGE).await?;
            out.extend(page);
            if !more {
                return Ok(out);
            }
        }
    }

    /// The names under `dir` that match, grouped with their markers and resolved, at most
    /// `limit` with an entry, and whether more with an entry follow.
    async fn list_groups(
        &self,
        dir: &str,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> EngineResult<(Vec<Resolved>, bool)> {
        let encoded_prefix = format!("{dir}{}", layout::encode_name_prefix(prefix));
        // The markers of `start_after` sort after its entry key, and are skipped by name.
        let mut offset =
            (!start_after.is_empty()).then(|| format!("{dir}{}", layout::encode_name(start_after)));
        if !prefix.is_empty()
            && offset
                .as_deref()
                .is_none_or(|o| o < encoded_prefix.as_str())
        {
            offset = Some(encoded_prefix.clone());
        }
        let mut out = Vec::new();
        let mut group: Option<Group> = None;
        let finish = |group: Option<Group>, out: &mut Vec<Resolved>| {
            if let Some(r) = group.and_then(Group::resolve) {
                out.push(r);
            }
        };
        loop {
            let page_size = limit
                .saturating_mul(2)
                .saturating_add(2)
                .clamp(100, LIST_PAGE);
            let page = self
                .store()
                .list_meta(dir, offset.as_deref(), page_size)
                .await?;
            for ListedObject { key, etag, .. } in &page.objects {
                if !key.starts_with(&encoded_prefix) {
                    finish(group.take(), &mut out);
                    return Ok((out, false));
                }
                let Some((name, fields)) = layout::stream_listing_key(dir, key) else {
                    continue;
                };
                if !name.starts_with(prefix) || name.as_str() <= start_after {
                    continue;
                }
                if group.as_ref().is_none_or(|g| g.name != name) {
                    finish(group.take(), &mut out);
                    // An entry key comes before its markers: a name whose first key is a
                    // marker has no entry.
                    if fields.is_none() && out.len() == limit {
                        return Ok((out, true));
                    }
                    group = Some(Group {
                        name,
                        entry: None,
                        markers: Vec::new(),
                    });
                }
                let g = group.as_mut().expect("just set");
                match fields {
                    None => g.entry = Some((key.clone(), etag.clone())),
                    Some(f) => g.markers.push(f),
                }
            }
            match (page.truncated, page.objects.last()) {
                (true, Some(last)) => offset = Some(last.key.clone()),
                _ => {
                    finish(group.take(), &mut out);
                    return Ok((out, false));
                }
            }
        }
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
