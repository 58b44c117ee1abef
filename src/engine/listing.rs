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

use super::{
    catalog::{Catalog, StreamEntry},
    error::EngineResult,
    layout,
    markers::{ListedStream, etag_hash, parse_marker_fields, write_marker},
};
use crate::storage::{ETag, ListedObject};

/// Entries read at once where a listing falls back to GETs.
const FALLBACK_CONCURRENCY: usize = 32;
/// Keys per LIST request: S3's largest page.
const LIST_PAGE: usize = 1000;

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
                            write_marker(store, basin, &ListedStream::from(&v.entry), &v.etag)
                                .await;
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
        // The markers of `start_after` sort after its entry key, and are skipped by name.
        let (encoded_prefix, mut offset) = super::catalog::list_start(dir, prefix, start_after);
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
